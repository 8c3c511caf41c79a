/**
 * A test pager for test/src, in the manner of Fuchsia's userpager.h: wait for an exact request,
 * supply pattern pages, fail ranges, dirty and write back; plus a blocked-operation helper.
 *
 * Content pattern: byte i of page p of a VMO with key k is patternByte(k, p, i), so every supplied
 * page is distinguishable from every other.
 */
import { expect } from 'vitest';
import {
  PAGE_SIZE, PagerOp, VmSystem, VmoOptions, ZxError, isZxError,
  type Pager, type Port, type PortPacket, type VmObject, type VmObjectPaged, type VmSystemOptions, type ZxStatus,
} from '../../src/index.js';

export function patternByte(key: number, page: number, i: number): number {
  return (key * 131 + page * 31 + i * 7 + 1) & 0xff;
}

export function patternPage(key: number, page: number): Uint8Array {
  const out = new Uint8Array(PAGE_SIZE);
  for (let i = 0; i < PAGE_SIZE; i++) out[i] = patternByte(key, page, i);
  return out;
}

/** True when buf holds the pattern of pages [firstPage, firstPage + buf.length / PAGE_SIZE). */
export function isPattern(buf: Uint8Array, key: number, firstPage: number): boolean {
  for (let off = 0; off < buf.length; off++) {
    const page = firstPage + Math.floor(off / PAGE_SIZE);
    if (buf[off] !== patternByte(key, page, off % PAGE_SIZE)) return false;
  }
  return true;
}

/** Settles after the microtask queue drains and one macrotask turn: "still blocked" means unsettled then. */
export async function settle(): Promise<void> {
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
}

/** Tracks an operation's promise so a test can ask "still blocked?" / "finished?" / "failed with?". */
export class Blocked<T = void> {
  state: 'pending' | 'done' | 'failed' = 'pending';
  error: unknown;
  value: T | undefined;
  constructor(readonly promise: Promise<T>) {
    promise.then((v) => { this.state = 'done'; this.value = v; }, (e: unknown) => { this.state = 'failed'; this.error = e; });
  }
  async expectBlocked(): Promise<void> {
    await settle();
    expect(this.state, `expected blocked, error=${String(this.error)}`).toBe('pending');
  }
  async expectDone(): Promise<T> {
    await settle();
    if (this.state === 'failed') throw this.error;
    expect(this.state).toBe('done');
    return this.value as T;
  }
  async expectFailed(status: ZxStatus): Promise<void> {
    await settle();
    expect(this.state).toBe('failed');
    expect(isZxError(this.error, status), `expected status ${status}, got ${String(this.error)}`).toBe(true);
  }
}

export interface TestPagerOptions extends Partial<VmSystemOptions> {
  budgetBytes?: number;
}

export class TestPager {
  readonly system: VmSystem;
  readonly pager: Pager;
  readonly port: Port;
  private nextKey = 1;

  constructor(options: TestPagerOptions = {}) {
    // Requests up to 1024 pages whatever the budget, so tests can assert one request per run (the
    // default caps a request at a quarter of the budget; budget-pressure tests cover that).
    this.system = new VmSystem({ budgetBytes: 16 << 20, validate: true, maxRequestPages: 1024, ...options });
    this.pager = this.system.createPager();
    this.port = this.system.createPort();
  }

  /** A pager VMO of `pages` pages; key auto-assigned (returned as vmo.key via keyOf). */
  createVmo(pages: number, options = 0): VmObjectPaged {
    const key = this.nextKey++;
    const vmo = this.pager.createVmo(options, this.port, key, pages * PAGE_SIZE);
    keys.set(vmo, key);
    return vmo;
  }

  createTrapVmo(pages: number, resizable = false): VmObjectPaged {
    return this.createVmo(pages, VmoOptions.TRAP_DIRTY | (resizable ? VmoOptions.RESIZABLE : 0));
  }

  /** Supplies pattern pages [page, page + count). */
  supply(vmo: VmObject, page: number, count: number): number {
    const key = keyOf(vmo);
    const aux = this.system.createVmo(count * PAGE_SIZE);
    // Write synchronously: an anonymous VMO never waits.
    for (let i = 0; i < count; i++) {
      const n = aux.writeStep(patternPage(key, page + i), 0, i * PAGE_SIZE, PAGE_SIZE);
      expect(n).toBe(PAGE_SIZE);
    }
    const added = this.pager.supplyPages(vmo, page * PAGE_SIZE, count * PAGE_SIZE, aux, 0);
    aux.close();
    return added;
  }

  fail(vmo: VmObject, page: number, count: number, status: ZxStatus): void {
    this.pager.opRange(PagerOp.FAIL, vmo, page * PAGE_SIZE, count * PAGE_SIZE, status);
  }

  dirty(vmo: VmObject, page: number, count: number): void {
    this.pager.opRange(PagerOp.DIRTY, vmo, page * PAGE_SIZE, count * PAGE_SIZE);
  }

  writebackBegin(vmo: VmObject, page: number, count: number, isZero = false): void {
    this.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, page * PAGE_SIZE, count * PAGE_SIZE, isZero ? 1 : 0);
  }

  writebackEnd(vmo: VmObject, page: number, count: number): void {
    this.pager.opRange(PagerOp.WRITEBACK_END, vmo, page * PAGE_SIZE, count * PAGE_SIZE);
  }

  /** Dirty runs in pages: [startPage, countPages, isZero]. */
  dirtyRanges(vmo: VmObject): Array<[number, number, boolean]> {
    return this.pager.queryDirtyRanges(vmo, 0, vmo.sizeBytes).ranges
      .map((r) => [r.offset / PAGE_SIZE, r.length / PAGE_SIZE, r.isZero] as [number, number, boolean]);
  }

  /** Reads the next packet now, or null (a zero deadline). */
  next(): PortPacket | null {
    return this.port.tryRead();
  }

  /** Asserts the next packet is exactly (command, key of vmo, page, count). */
  expectRequest(command: 'READ' | 'DIRTY' | 'COMPLETE', vmo: VmObject, page: number, count: number): void {
    const p = this.port.tryRead();
    expect(p, `expected ${command} (${page}, ${count})`).not.toBeNull();
    expect({ command: p!.command, key: p!.key, page: p!.offset / PAGE_SIZE, count: p!.length / PAGE_SIZE })
      .toEqual({ command, key: keyOf(vmo), page, count });
  }

  expectNoRequest(): void {
    const p = this.port.tryRead();
    expect(p, `expected no packet, got ${JSON.stringify(p)}`).toBeNull();
  }

  /** Starts a read of pages [page, page + count) and tracks it. */
  read(vmo: VmObject, page: number, count: number): Blocked<Uint8Array> {
    const buf = new Uint8Array(count * PAGE_SIZE);
    return new Blocked(vmo.read(buf, page * PAGE_SIZE).then(() => buf));
  }

  write(vmo: VmObject, page: number, count: number, fill = 0xab): Blocked {
    return new Blocked(vmo.write(new Uint8Array(count * PAGE_SIZE).fill(fill), page * PAGE_SIZE));
  }

  commit(vmo: VmObject, page: number, count: number): Blocked {
    return new Blocked(vmo.commitRange(page * PAGE_SIZE, count * PAGE_SIZE));
  }
}

const keys = new WeakMap<VmObject, number>();
/** The port key a TestPager gave this VMO. */
export function keyOf(vmo: VmObject): number {
  const k = keys.get(vmo);
  if (k === undefined) throw new ZxError(-10 as ZxStatus, 'VMO not created by a TestPager');
  return k;
}
