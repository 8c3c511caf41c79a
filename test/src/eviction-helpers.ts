/**
 * Helpers for the eviction / page-queue / budget tests: a seeded PRNG, frame inspection, a content
 * model, and an "auto pager" that answers page requests from a backing store concurrently with a
 * workload (supplies READs in one supply per request, acks DIRTY, writes back on demand).
 */
import { expect } from 'vitest';
import {
  PAGE_SIZE, PagerOp, VmoOptions, WRITEBACK_IS_ZERO, ZxStatus, isZxError,
  type Pager, type Port, type PortPacket, type VmObject, type VmObjectPaged, type VmSystem,
} from '../../src/index.js';
import { Queue } from '../../src/page-queues.js';
import { DirtyState, FrameFlag, NO_FRAME } from '../../src/arena.js';
import { patternPage, type TestPager } from './userpager.js';

export { Queue, DirtyState, FrameFlag, NO_FRAME };

/** mulberry32: a tiny seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  private readonly next: () => number;
  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** Integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const patternCache = new Map<string, Uint8Array>();
/** patternPage(key, page), cached (the thrash test compares 100k pages). */
export function cachedPattern(key: number, page: number): Uint8Array {
  const id = `${key}:${page}`;
  let p = patternCache.get(id);
  if (p === undefined) {
    p = patternPage(key, page);
    patternCache.set(id, p);
  }
  return p;
}

export const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** The frame holding page `page` of `vmo`, or NO_FRAME (no fault). */
export function frameOf(vmo: VmObjectPaged, page: number): number {
  let frame = NO_FRAME;
  vmo.lookup(page * PAGE_SIZE, PAGE_SIZE, (_p, fr) => { frame = fr; });
  return frame;
}

export function isResident(vmo: VmObjectPaged, page: number): boolean {
  return frameOf(vmo, page) !== NO_FRAME;
}

/** Queue of page `page` of `vmo` (Queue.None when not resident). */
export function queueOfPage(vmo: VmObjectPaged, page: number): number {
  const frame = frameOf(vmo, page);
  return frame === NO_FRAME ? Queue.None : vmo.system.queues.queueOf(frame);
}

/** Age (0 = newest) of the reclaim generation page `page` is on; throws if not on a reclaim queue. */
export function ageOfPage(vmo: VmObjectPaged, page: number): number {
  const q = queueOfPage(vmo, page);
  expect(vmo.system.queues.isReclaimQueue(q), `page ${page} is on queue ${q}, not a reclaim queue`).toBe(true);
  return vmo.system.queues.ageOf(q);
}

/** Budget invariant plus the full consistency walk. */
export function checkBudget(system: VmSystem, where = ''): void {
  expect(system.arena.usedFrames, `resident frames exceed the budget ${where}`).toBeLessThanOrEqual(system.arena.limitFrames);
  system.debugValidate();
}

/**
 * Wraps the arena's allocFrame so every single allocation is checked against the budget (catches a
 * transient excess that is repaired before the step ends). Returns a function giving the violations.
 */
export function watchAllocations(system: VmSystem): () => string[] {
  const arena = system.arena;
  const orig = arena.allocFrame.bind(arena);
  const violations: string[] = [];
  arena.allocFrame = () => {
    const f = orig();
    if (arena.usedFrames > arena.limitFrames) violations.push(`used ${arena.usedFrames} > limit ${arena.limitFrames}`);
    return f;
  };
  return () => violations;
}

/**
 * Content of a file: explicit pages over a default of pattern pages below `patternLimit` and zeros
 * above it. Used both for the pager's backing store and for the test's expectation model.
 */
export class Content {
  readonly pages = new Map<number, Uint8Array>();
  constructor(readonly key: number, public patternLimit: number) {}

  get(page: number): Uint8Array {
    const p = this.pages.get(page);
    if (p !== undefined) return p;
    return page < this.patternLimit ? cachedPattern(this.key, page) : ZERO_PAGE;
  }

  set(page: number, bytes: Uint8Array): void {
    this.pages.set(page, Uint8Array.from(bytes));
  }

  /** Everything at or past `pages` is gone: reads as zero from now on. */
  truncate(pages: number): void {
    this.patternLimit = Math.min(this.patternLimit, pages);
    for (const p of [...this.pages.keys()]) if (p >= pages) this.pages.delete(p);
  }

  /** The bytes [offset, offset + length). */
  bytes(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let pos = offset;
    while (pos < offset + length) {
      const page = Math.floor(pos / PAGE_SIZE);
      const inPage = pos - page * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, offset + length - pos);
      out.set(this.get(page).subarray(inPage, inPage + n), pos - offset);
      pos += n;
    }
    return out;
  }

  /** Applies a write of src at offset. */
  write(offset: number, src: Uint8Array): void {
    let pos = offset;
    while (pos < offset + src.length) {
      const page = Math.floor(pos / PAGE_SIZE);
      const inPage = pos - page * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, offset + src.length - pos);
      const copy = Uint8Array.from(this.get(page));
      copy.set(src.subarray(pos - offset, pos - offset + n), inPage);
      this.pages.set(page, copy);
      pos += n;
    }
  }
}

export interface StoreFile {
  key: number;
  vmo: VmObjectPaged;
  /** What the pager supplies (the "backing file"). */
  store: Content;
}

export interface AutoPagerOptions {
  /** Yield a macrotask turn after every packet, so woken readers run before the next supply. */
  yieldBetweenPackets?: boolean;
}

/**
 * An in-test pager that answers requests as they come, concurrently with the workload: READ → one
 * supplyPages of the whole (clipped) range from the store; DIRTY → opRange(DIRTY) (page by page if
 * some page went away); COMPLETE → ignored. NO_MEMORY on a supply is retried after a turn.
 * Unexpected errors are collected in `errors`. Stop with stop(): closes the port, ends the loop.
 */
export class AutoPager {
  readonly pager: Pager;
  readonly port: Port;
  readonly files = new Map<number, StoreFile>();
  readonly errors: unknown[] = [];
  readonly stats = { readPackets: 0, suppliedPages: 0, dirtyPackets: 0, completes: 0, noMemoryRetries: 0, writebacks: 0 };
  private nextKey = 1;
  private loop: Promise<void> | undefined;

  constructor(readonly system: VmSystem, private readonly options: AutoPagerOptions = {}) {
    this.pager = system.createPager();
    this.port = system.createPort();
  }

  createFile(pages: number, options = 0): StoreFile {
    const key = this.nextKey++;
    const vmo = this.pager.createVmo(options, this.port, key, pages * PAGE_SIZE);
    const file: StoreFile = { key, vmo, store: new Content(key, pages) };
    this.files.set(key, file);
    return file;
  }

  start(): void {
    expect(this.loop).toBeUndefined();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.port.close();
    await this.loop;
  }

  private async run(): Promise<void> {
    for await (const packet of this.port) {
      try {
        await this.handle(packet);
      } catch (err) {
        this.errors.push(err);
      }
      if (this.options.yieldBetweenPackets ?? true) await new Promise((r) => setImmediate(r));
    }
  }

  private async handle(packet: PortPacket): Promise<void> {
    if (packet.command === 'COMPLETE') {
      this.stats.completes++;
      return;
    }
    const file = this.files.get(packet.key);
    if (file === undefined) throw new Error(`packet for unknown key ${packet.key}`);
    const start = packet.offset / PAGE_SIZE;
    const end = Math.min((packet.offset + packet.length) / PAGE_SIZE, file.vmo.sizePages);
    if (end <= start) return; // cut away by a shrink
    if (packet.command === 'DIRTY') {
      this.stats.dirtyPackets++;
      this.ackDirty(file, start, end);
      return;
    }
    this.stats.readPackets++;
    for (let attempt = 0; ; attempt++) {
      try {
        this.supply(file, start, end - start);
        return;
      } catch (err) {
        if (!isZxError(err, ZxStatus.ERR_NO_MEMORY) || attempt > 1000) throw err;
        this.stats.noMemoryRetries++;
        await new Promise((r) => setImmediate(r));
      }
    }
  }

  private ackDirty(file: StoreFile, start: number, end: number): void {
    try {
      this.pager.opRange(PagerOp.DIRTY, file.vmo, start * PAGE_SIZE, (end - start) * PAGE_SIZE);
    } catch (err) {
      if (!isZxError(err, ZxStatus.ERR_NOT_FOUND)) throw err;
      // A page of the range went away (evicted): ack the rest; the writer refaults that one as READ.
      for (let p = start; p < end; p++) {
        try {
          this.pager.opRange(PagerOp.DIRTY, file.vmo, p * PAGE_SIZE, PAGE_SIZE);
        } catch (e) {
          if (!isZxError(e, ZxStatus.ERR_NOT_FOUND)) throw e;
        }
      }
    }
  }

  /** Supplies [page, page + count) from the store in one supplyPages call. */
  supply(file: StoreFile, page: number, count: number): number {
    const aux = this.system.createVmo(count * PAGE_SIZE);
    try {
      for (let i = 0; i < count; i++) {
        const n = aux.writeStep(file.store.get(page + i), 0, i * PAGE_SIZE, PAGE_SIZE);
        if (n !== PAGE_SIZE) throw new Error('aux write stopped short');
      }
      const added = this.pager.supplyPages(file.vmo, page * PAGE_SIZE, count * PAGE_SIZE, aux, 0);
      this.stats.suppliedPages += added;
      return added;
    } finally {
      aux.close();
    }
  }

  /** Writes every dirty range of the file back into the store (BEGIN, copy, END, synchronously). */
  writeback(file: StoreFile): void {
    const vmo = file.vmo;
    const { ranges } = this.pager.queryDirtyRanges(vmo, 0, vmo.sizeBytes);
    for (const r of ranges) {
      this.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, r.offset, r.length, r.isZero ? WRITEBACK_IS_ZERO : 0);
      const first = r.offset / PAGE_SIZE;
      const count = r.length / PAGE_SIZE;
      if (r.isZero) {
        for (let p = first; p < first + count; p++) file.store.set(p, ZERO_PAGE);
      } else {
        const buf = new Uint8Array(r.length);
        const n = vmo.readStep(buf, 0, r.offset, r.length);
        expect(n, 'dirty pages must be readable without the pager').toBe(r.length);
        for (let i = 0; i < count; i++) file.store.set(first + i, buf.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
      }
      this.pager.opRange(PagerOp.WRITEBACK_END, vmo, r.offset, r.length);
      this.stats.writebacks++;
    }
  }
}

export const TRAP = VmoOptions.TRAP_DIRTY;
export const RESIZABLE = VmoOptions.RESIZABLE;

/** Reads [offset, offset + length) of vmo; resolves with the bytes. */
export async function readBytes(vmo: VmObject, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await vmo.read(buf, offset, length);
  return buf;
}

/** Faults [page, page + count) in through the test pager (one READ, one supply). */
export async function commit(tp: TestPager, vmo: VmObjectPaged, page: number, count: number): Promise<void> {
  const b = tp.commit(vmo, page, count);
  tp.expectRequest('READ', vmo, page, count);
  tp.supply(vmo, page, count);
  await b.expectDone();
}

/** Expects `p` (a promise, or a function run now) to fail with `status`. */
export async function expectZx(p: Promise<unknown> | (() => unknown), status: ZxStatus): Promise<void> {
  try {
    if (typeof p === 'function') p(); else await p;
  } catch (err) {
    expect(isZxError(err, status), `expected ${ZxStatus[status]}, got ${String(err)}`).toBe(true);
    return;
  }
  expect.fail(`expected ${ZxStatus[status]}, but it succeeded`);
}
