/**
 * Helpers for detach.test.ts and dirty-writeback.test.ts (on top of userpager.ts's TestPager).
 */
import { expect } from 'vitest';
import {
  PAGE_SIZE, VmoOptions, isZxError, statusName,
  type PortPacket, type VmObject, type VmObjectPaged, type ZxStatus,
} from '../../src/index.js';
import { Blocked, type TestPager } from './userpager.js';

/** The two ways Fuchsia runs most pager-writeback tests. */
export const TRAP_MODES = [
  { mode: 'TRAP_DIRTY', trap: true },
  { mode: 'no TRAP_DIRTY', trap: false },
] as const;

/** A pager VMO of `pages` pages, with TRAP_DIRTY when `trap`, RESIZABLE when `resizable`. */
export function makeVmo(tp: TestPager, pages: number, trap: boolean, resizable = false): VmObjectPaged {
  return tp.createVmo(pages, (trap ? VmoOptions.TRAP_DIRTY : 0) | (resizable ? VmoOptions.RESIZABLE : 0));
}

/** Supplies pages [page, page + count) as zero pages (from an uncommitted aux VMO). */
export function supplyZero(tp: TestPager, vmo: VmObject, page: number, count: number): number {
  const aux = tp.system.createVmo(count * PAGE_SIZE);
  const added = tp.pager.supplyPages(vmo, page * PAGE_SIZE, count * PAGE_SIZE, aux, 0);
  aux.close();
  return added;
}

/**
 * Writes `fill` over pages [page, page + count), which must be resident: with `trap` expects exactly
 * one DIRTY (page, count) request, checks the writer is blocked, answers it with OP_DIRTY; then
 * expects the write done and no further packet.
 */
export async function writeDirty(tp: TestPager, vmo: VmObject, page: number, count: number, trap: boolean, fill = 0xab): Promise<void> {
  const w = tp.write(vmo, page, count, fill);
  if (trap) {
    tp.expectRequest('DIRTY', vmo, page, count);
    await w.expectBlocked();
    tp.dirty(vmo, page, count);
  }
  await w.expectDone();
  tp.expectNoRequest();
}

/** Reads pages [page, page + count), expecting no wait and no packet. */
export async function readNow(tp: TestPager, vmo: VmObject, page: number, count: number): Promise<Uint8Array> {
  const buf = await tp.read(vmo, page, count).expectDone();
  tp.expectNoRequest();
  return buf;
}

/** True when every byte of buf is `value`. */
export function allBytes(buf: Uint8Array, value: number): boolean {
  return buf.every((b) => b === value);
}

/** Asserts fn throws a ZxError with `status`. */
export function expectStatus(fn: () => unknown, status: ZxStatus): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(isZxError(err, status), `expected ${statusName(status)}, got ${err === undefined ? 'no error' : String(err)}`).toBe(true);
}

/** Reads every queued packet now. */
export function drain(tp: TestPager): PortPacket[] {
  const out: PortPacket[] = [];
  for (let p = tp.next(); p !== null; p = tp.next()) out.push(p);
  return out;
}

/** Tracks commitRangePinned of pages [page, page + count). */
export function pin(vmo: VmObject, page: number, count: number, forWrite: boolean): Blocked {
  return new Blocked(vmo.commitRangePinned(page * PAGE_SIZE, count * PAGE_SIZE, forWrite));
}

/** The dirty runs [start, count, isZero] made of a set of dirty (non-zero) pages. */
export function runsOf(pages: Iterable<number>): Array<[number, number, boolean]> {
  const sorted = [...new Set(pages)].sort((a, b) => a - b);
  const out: Array<[number, number, boolean]> = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0] + last[1] === p) last[1]++;
    else out.push([p, 1, false]);
  }
  return out;
}

export function modified(tp: TestPager, vmo: VmObject, reset = false): boolean {
  return tp.pager.queryVmoStats(vmo, reset).modified;
}
