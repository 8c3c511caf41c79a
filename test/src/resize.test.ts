/**
 * PAGER-TESTS.md §5 "Resize": one test per checklist line (Fuchsia core tests `pager`, `pager-writeback`).
 */
import { describe, expect, it } from 'vitest';
import {
  MAX_VMO_SIZE_BYTES, VmoOp, VmoOptions, ZxStatus, type VmObject,
} from '../../src/index.js';
import { Blocked, TestPager, isPattern, keyOf, patternByte } from './userpager.js';
import { P, cow, expectZx, expectZxRejects, filled, isFilled, readSync, supplyZero } from './clone-helpers.js';
import { runsOf } from './dirty-helpers.js';

const RESIZABLE = VmoOptions.RESIZABLE;
const TRAP = VmoOptions.TRAP_DIRTY;
const trapModes: Array<[string, number]> = [['without TRAP_DIRTY', 0], ['with TRAP_DIRTY', TRAP]];
/** Seeds of the scattered-write writeback test; each run's seed is in its test name. */
const WRITEBACK_SEEDS = [1, 7, 2024];

/** A seeded PRNG (an LCG): rand(n) is in [0, n). */
function lcg(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state % n;
  };
}

/** Writes `count` pages of `fill` at `page`, answering the DIRTY request when the VMO traps. */
async function writePages(tp: TestPager, vmo: import('../../src/index.js').VmObject, page: number, count: number,
  fill: number, trap: number): Promise<void> {
  const w = tp.write(vmo, page, count, fill);
  if (trap !== 0) {
    await w.expectBlocked();
    tp.expectRequest('DIRTY', vmo, page, count);
    tp.dirty(vmo, page, count);
  }
  await w.expectDone();
}

describe('resize', () => {
  // pager.cc ReadResizeTest
  it('a reader blocked on a range that a shrink to 0 removes fails OUT_OF_RANGE', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2, RESIZABLE);
    const r = tp.read(vmo, 0, 2);
    tp.expectRequest('READ', vmo, 0, 2);
    await r.expectBlocked();
    vmo.resize(0);
    await r.expectFailed(ZxStatus.ERR_OUT_OF_RANGE);
    expect(vmo.sizeBytes).toBe(0);
    tp.expectNoRequest();
    tp.system.debugValidate();
  });

  // pager.cc ResizeCommitTest
  it('a commit cut by a shrink keeps waiting for the page still inside and completes on its supply', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(3, RESIZABLE);
    const c = tp.commit(vmo, 0, 3);
    tp.expectRequest('READ', vmo, 0, 3);
    expect(tp.supply(vmo, 2, 1)).toBe(1);
    vmo.resize(P);
    await c.expectBlocked();
    expect(tp.supply(vmo, 0, 1)).toBe(1);
    await c.expectDone();
    tp.expectNoRequest();
    expect(vmo.attributedPagesInRange(0, P)).toBe(1);
    expect(isPattern(readSync(vmo, 0, P), keyOf(vmo), 0)).toBe(true);
    tp.system.debugValidate();
  });

  // PAGER-TESTS §5 CommitResizeRace
  it('a commit blocked on a page that a shrink removes succeeds', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2, RESIZABLE);
    tp.supply(vmo, 0, 1);
    const c = tp.commit(vmo, 0, 2);
    tp.expectRequest('READ', vmo, 1, 1);
    await c.expectBlocked();
    vmo.resize(P);
    await c.expectDone();
    tp.expectNoRequest();
    expect(isPattern(readSync(vmo, 0, P), keyOf(vmo), 0)).toBe(true);
  });

  // PAGER-TESTS §5 ResizeBlockedPin
  it('a pin blocked on page 1 fails OUT_OF_RANGE when the VMO shrinks to 0, pinning nothing', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2, RESIZABLE);
    tp.supply(vmo, 0, 1);
    const pin = new Blocked(vmo.commitRangePinned(0, 2 * P));
    tp.expectRequest('READ', vmo, 1, 1);
    await pin.expectBlocked();
    vmo.resize(0);
    await pin.expectFailed(ZxStatus.ERR_OUT_OF_RANGE);
    expect(vmo.counters().pinnedPages).toBe(0);
    expect(vmo.counters().residentPages).toBe(0);
    tp.expectNoRequest();
    tp.system.debugValidate();
  });

  // pager-writeback.cc ResizeNonresizableVmo (+ SEMANTICS "Resize": too large is OUT_OF_RANGE)
  it('resizing a non-RESIZABLE VMO is UNAVAILABLE; a size above the maximum is OUT_OF_RANGE', () => {
    const tp = new TestPager();
    const fixed = tp.createVmo(2);
    expectZx(() => fixed.resize(4 * P), ZxStatus.ERR_UNAVAILABLE);
    expectZx(() => fixed.resize(P), ZxStatus.ERR_UNAVAILABLE);
    expect(fixed.sizeBytes).toBe(2 * P);
    expectZx(() => tp.system.createVmo(P).resize(2 * P), ZxStatus.ERR_UNAVAILABLE);
    const resizable = tp.createVmo(2, RESIZABLE);
    expectZx(() => resizable.resize(MAX_VMO_SIZE_BYTES + P), ZxStatus.ERR_OUT_OF_RANGE);
    expect(resizable.sizeBytes).toBe(2 * P);
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizeSupplyZero
  it.each(trapModes)('grown pages read as zero without a request and ignore supplies (%s)', async (_name, trap) => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2, RESIZABLE | trap);
    vmo.resize(4 * P);
    const r = tp.read(vmo, 0, 4);
    tp.expectRequest('READ', vmo, 0, 2);
    tp.expectNoRequest();
    expect(tp.supply(vmo, 0, 2)).toBe(2);
    const buf = await r.expectDone();
    expect(isPattern(buf.subarray(0, 2 * P), keyOf(vmo), 0)).toBe(true);
    expect(isFilled(buf.subarray(2 * P), 0)).toBe(true);
    expect(vmo.attributedPagesInRange(0, 4 * P)).toBe(2);
    // Supplying into the grown range is ignored.
    expect(tp.supply(vmo, 2, 2)).toBe(0);
    expect(vmo.attributedPagesInRange(0, 4 * P)).toBe(2);
    expect(isFilled(readSync(vmo, 2 * P, 2 * P), 0)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([[2, 2, true]]);
    if (trap === 0) {
      await vmo.write(filled(2 * P, 0xaa), 2 * P);
      expect(vmo.attributedPagesInRange(0, 4 * P)).toBe(4);
      expect(isFilled(readSync(vmo, 2 * P, 2 * P), 0xaa)).toBe(true);
      expect(tp.dirtyRanges(vmo)).toEqual([[2, 2, false]]);
    }
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizeDirtyRequest
  it('writes to grown zero pages raise DIRTY only, and the dirty query interleaves real and zero runs', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(2, true);
    const key = keyOf(vmo);
    tp.supply(vmo, 0, 2);
    vmo.resize(3 * P);

    const w1 = tp.write(vmo, 1, 2, 0xaa);
    await w1.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 1, 2);
    tp.expectNoRequest();
    tp.dirty(vmo, 1, 2);
    await w1.expectDone();
    expect(isPattern(readSync(vmo, 0, P), key, 0)).toBe(true);
    expect(isFilled(readSync(vmo, P, 2 * P), 0xaa)).toBe(true);
    expect(vmo.attributedPagesInRange(0, 3 * P)).toBe(3);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, false]]);

    vmo.resize(6 * P);
    const w2 = tp.write(vmo, 4, 1, 0xbb);
    await w2.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 4, 1);
    tp.expectNoRequest();
    tp.dirty(vmo, 4, 1);
    await w2.expectDone();
    expect(isFilled(readSync(vmo, 3 * P, P), 0)).toBe(true);
    expect(isFilled(readSync(vmo, 4 * P, P), 0xbb)).toBe(true);
    expect(isFilled(readSync(vmo, 5 * P, P), 0)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, false], [3, 1, true], [4, 1, false], [5, 1, true]]);

    vmo.resize(8 * P);
    const w3 = tp.write(vmo, 0, 8, 0xcc);
    await w3.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 0, 1);
    tp.expectNoRequest();
    tp.dirty(vmo, 0, 1);
    await w3.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 3, 1);
    tp.expectNoRequest();
    tp.dirty(vmo, 3, 1);
    await w3.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 5, 3);
    tp.dirty(vmo, 5, 3);
    await w3.expectDone();
    expect(isFilled(readSync(vmo, 0, 8 * P), 0xcc)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 8, false]]);
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizeWriteback
  it.each(trapModes)('one writeback over a grown VMO cleans real and zero runs alike (%s)', async (_name, trap) => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1, RESIZABLE | trap);
    tp.supply(vmo, 0, 1);
    vmo.resize(3 * P);
    await writePages(tp, vmo, 0, 1, 0xaa, trap);
    await writePages(tp, vmo, 2, 1, 0xaa, trap);
    expect(isFilled(readSync(vmo, 0, P), 0xaa)).toBe(true);
    expect(isFilled(readSync(vmo, P, P), 0)).toBe(true);
    expect(isFilled(readSync(vmo, 2 * P, P), 0xaa)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false], [1, 1, true], [2, 1, false]]);
    tp.writebackBegin(vmo, 0, 3);
    tp.writebackEnd(vmo, 0, 3);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(isFilled(readSync(vmo, 0, P), 0xaa)).toBe(true);
    expect(isFilled(readSync(vmo, 2 * P, P), 0xaa)).toBe(true);
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizeWithOutstandingDirtyRequests
  it('a shrink fails blocked DIRTY writers and READ readers with OUT_OF_RANGE; their ranges cannot be answered later', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(5, true);
    expect(supplyZero(tp, vmo, 1, 1)).toBe(1);
    tp.supply(vmo, 3, 1);
    vmo.resize(6 * P);
    expect(tp.dirtyRanges(vmo)).toEqual([[5, 1, true]]);

    const t1 = new Blocked(vmo.write(new Uint8Array([0xaa]), P));
    const t2 = new Blocked(vmo.write(new Uint8Array([0xbb]), 3 * P));
    const t3 = new Blocked(vmo.write(new Uint8Array([0xcc]), 5 * P));
    const t4 = new Blocked(vmo.read(new Uint8Array(1), 2 * P));
    for (const t of [t1, t2, t3, t4]) await t.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 1, 1);
    tp.expectRequest('DIRTY', vmo, 3, 1);
    tp.expectRequest('DIRTY', vmo, 5, 1);
    tp.expectRequest('READ', vmo, 2, 1);
    tp.expectNoRequest();

    vmo.resize(P);
    for (const t of [t1, t2, t3, t4]) await t.expectFailed(ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => tp.dirty(vmo, 1, 1), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => tp.dirty(vmo, 3, 1), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => tp.dirty(vmo, 5, 1), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => tp.supply(vmo, 2, 1), ZxStatus.ERR_OUT_OF_RANGE);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    tp.expectNoRequest();
    tp.system.debugValidate();
  });

  // pager-writeback.cc ResizeWritebackWithOutstandingDirtyRequests
  it('WRITEBACK_END over a range a shrink cut away is OUT_OF_RANGE; blocked writers there fail OUT_OF_RANGE', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(2, true);
    const key = keyOf(vmo);
    tp.supply(vmo, 0, 2);
    vmo.resize(5 * P);
    await writePages(tp, vmo, 4, 1, 0xaa, TRAP);
    expect(tp.dirtyRanges(vmo)).toEqual([[2, 2, true], [4, 1, false]]);
    expect(isPattern(readSync(vmo, 0, 2 * P), key, 0)).toBe(true);
    expect(isFilled(readSync(vmo, 2 * P, 2 * P), 0)).toBe(true);
    expect(isFilled(readSync(vmo, 4 * P, P), 0xaa)).toBe(true);

    tp.writebackBegin(vmo, 2, 3);
    const t2 = tp.write(vmo, 1, 2, 0xbb);
    await t2.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 1, 2);
    const t3 = tp.write(vmo, 3, 2, 0xcc);
    await t3.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 3, 2);
    tp.writebackEnd(vmo, 2, 1);

    vmo.resize(P);
    await t2.expectFailed(ZxStatus.ERR_OUT_OF_RANGE);
    await t3.expectFailed(ZxStatus.ERR_OUT_OF_RANGE);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(isPattern(readSync(vmo, 0, P), key, 0)).toBe(true);
    expectZx(() => tp.writebackEnd(vmo, 3, 2), ZxStatus.ERR_OUT_OF_RANGE);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizeWritebackIntersectingWrite, ResizeWritebackNonIntersectingWrite,
  // ResizeWritebackRandomWrites, ResizePartialWriteback...
  it.each(trapModes)('a write during an IS_ZERO writeback keeps exactly the written page dirty after END (%s)', async (_name, trap) => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1, RESIZABLE | trap);
    const key = keyOf(vmo);
    tp.supply(vmo, 0, 1);
    vmo.resize(4 * P);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 3, true]]);
    tp.writebackBegin(vmo, 1, 3, true);
    await writePages(tp, vmo, 2, 1, 0xaa, trap);
    expect(isPattern(readSync(vmo, 0, P), key, 0)).toBe(true);
    expect(isFilled(readSync(vmo, P, P), 0)).toBe(true);
    expect(isFilled(readSync(vmo, 2 * P, P), 0xaa)).toBe(true);
    expect(isFilled(readSync(vmo, 3 * P, P), 0)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, true], [2, 1, false], [3, 1, true]]);
    tp.writebackEnd(vmo, 1, 3);
    expect(tp.dirtyRanges(vmo)).toEqual([[2, 1, false]]);
    tp.writebackBegin(vmo, 0, 4);
    tp.writebackEnd(vmo, 0, 4);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(isFilled(readSync(vmo, 2 * P, P), 0xaa)).toBe(true);
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizeWritebackNonIntersectingWrite
  it.each(trapModes)('writes outside an IS_ZERO writeback leave it alone: END cleans the zero range, the written pages stay dirty (%s)', async (_name, trap) => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1, RESIZABLE | trap);
    tp.supply(vmo, 0, 1);
    vmo.resize(4 * P);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 3, true]]);
    tp.writebackBegin(vmo, 1, 2, true);
    await writePages(tp, vmo, 3, 1, 0xaa, trap); // after the range being written back
    await writePages(tp, vmo, 0, 1, 0xbb, trap); // before it
    tp.expectNoRequest();
    expect(isFilled(readSync(vmo, 0, P), 0xbb)).toBe(true);
    expect(isFilled(readSync(vmo, P, 2 * P), 0)).toBe(true);
    expect(isFilled(readSync(vmo, 3 * P, P), 0xaa)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false], [1, 2, true], [3, 1, false]]);
    tp.writebackEnd(vmo, 1, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false], [3, 1, false]]);
    expect(vmo.counters()).toMatchObject({ residentPages: 2, dirtyPages: 2, dirtyZeroPages: 0 });
    // Written back as zeros, pages 1..2 are a gap now: the pager supplies them (SEMANTICS.md "Dirty tracking").
    const r = tp.read(vmo, 1, 2);
    tp.expectRequest('READ', vmo, 1, 2);
    expect(supplyZero(tp, vmo, 1, 2)).toBe(2);
    expect(isFilled(await r.expectDone(), 0)).toBe(true);
    tp.writebackBegin(vmo, 0, 4);
    tp.writebackEnd(vmo, 0, 4);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(isFilled(readSync(vmo, 0, P), 0xbb)).toBe(true);
    expect(isFilled(readSync(vmo, 3 * P, P), 0xaa)).toBe(true);
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizeWritebackIntersectingWrite with scattered writes (PAGER-TESTS §5 "...RandomWrites")
  it.each(trapModes.flatMap(([name, trap]) => WRITEBACK_SEEDS.map((seed) => [name, trap, seed] as const)))(
    'scattered writes during an IS_ZERO writeback are exactly what stays dirty after END (%s, seed=%i)', async (_name, trap, seed) => {
      const tp = new TestPager();
      const n = 16;
      const vmo = tp.createVmo(1, RESIZABLE | trap);
      const key = keyOf(vmo);
      tp.supply(vmo, 0, 1);
      vmo.resize(n * P);
      expect(tp.dirtyRanges(vmo)).toEqual([[1, n - 1, true]]);
      tp.writebackBegin(vmo, 1, n - 1, true);
      const rand = lcg(seed);
      const fills = new Map<number, number>(); // page -> its last fill
      for (let i = 0; i < 8; i++) {
        const page = 1 + rand(n - 1);
        // A page already written is Dirty: writing it again raises no request even with TRAP_DIRTY.
        await writePages(tp, vmo, page, 1, 0x10 + i, fills.has(page) ? 0 : trap);
        fills.set(page, 0x10 + i);
      }
      tp.expectNoRequest();
      const before: Array<[number, number, boolean]> = [];
      for (let p = 1; p < n; p++) {
        const isZero = !fills.has(p);
        const last = before[before.length - 1];
        if (last !== undefined && last[2] === isZero) last[1]++;
        else before.push([p, 1, isZero]);
      }
      expect(tp.dirtyRanges(vmo)).toEqual(before);
      tp.writebackEnd(vmo, 1, n - 1);
      expect(tp.dirtyRanges(vmo)).toEqual(runsOf(fills.keys()));
      expect(vmo.counters()).toMatchObject({ residentPages: 1 + fills.size, dirtyPages: fills.size, dirtyZeroPages: 0 });
      expect(isPattern(readSync(vmo, 0, P), key, 0)).toBe(true);
      for (const [page, fill] of fills) expect(isFilled(readSync(vmo, page * P, P), fill), `page ${page}`).toBe(true);
      // Every unwritten page was written back as zeros and is a gap now.
      const gap = [...Array(n).keys()].find((p) => p > 0 && !fills.has(p))!;
      const r = tp.read(vmo, gap, 1);
      tp.expectRequest('READ', vmo, gap, 1);
      supplyZero(tp, vmo, gap, 1);
      expect(isFilled(await r.expectDone(), 0)).toBe(true);
      tp.writebackBegin(vmo, 0, n);
      tp.writebackEnd(vmo, 0, n);
      expect(tp.dirtyRanges(vmo)).toEqual([]);
      tp.expectNoRequest();
    });

  // pager-writeback.cc ResizePartialWriteback / DirtyDuringWriteback on a zero range: END over part of
  // the BEGIN range, not reaching the page whose DIRTY request is in flight.
  it('an END over part of an IS_ZERO writeback cleans only that part; the rest stays awaiting clean and the in-flight write dirties its page', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1, true);
    tp.supply(vmo, 0, 1);
    vmo.resize(5 * P);
    tp.writebackBegin(vmo, 1, 4, true);
    const w = tp.write(vmo, 3, 1, 0xaa);
    await w.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 3, 1);
    tp.writebackEnd(vmo, 1, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([[3, 2, true]]);
    await w.expectBlocked();
    tp.expectNoRequest();
    tp.dirty(vmo, 3, 1);
    await w.expectDone();
    expect(tp.dirtyRanges(vmo)).toEqual([[3, 1, false], [4, 1, true]]);
    // Page 4 is still awaiting clean from the first BEGIN: an END with no new BEGIN cleans it, not page 3.
    tp.writebackEnd(vmo, 3, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([[3, 1, false]]);
    expect(isFilled(readSync(vmo, 3 * P, P), 0xaa)).toBe(true);
    expect(vmo.counters()).toMatchObject({ residentPages: 2, dirtyPages: 1, dirtyZeroPages: 0 });
    // Pages 1, 2 and 4 were written back as zeros: gaps, each asked of the pager.
    const r = tp.read(vmo, 1, 2);
    tp.expectRequest('READ', vmo, 1, 2);
    const r4 = tp.read(vmo, 4, 1);
    tp.expectRequest('READ', vmo, 4, 1);
    supplyZero(tp, vmo, 1, 2);
    supplyZero(tp, vmo, 4, 1);
    expect(isFilled(await r.expectDone(), 0)).toBe(true);
    expect(isFilled(await r4.expectDone(), 0)).toBe(true);
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizePartialWriteback with the END reaching the page whose DIRTY is in flight
  // (as DelayedDirtyZeroRange): that page becomes a gap, so the writer asks READ then DIRTY again.
  it('an END over part of an IS_ZERO writeback that covers a page with a DIRTY in flight turns it into a gap: the write re-asks READ then DIRTY', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1, true);
    const key = keyOf(vmo);
    tp.supply(vmo, 0, 1);
    vmo.resize(5 * P);
    tp.writebackBegin(vmo, 1, 4, true);
    const w = new Blocked(vmo.write(new Uint8Array([0xaa]), 3 * P));
    await w.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 3, 1);
    tp.writebackEnd(vmo, 1, 3);
    expect(tp.dirtyRanges(vmo)).toEqual([[4, 1, true]]);
    expectZx(() => tp.dirty(vmo, 3, 1), ZxStatus.ERR_NOT_FOUND);
    await w.expectBlocked();
    tp.expectRequest('READ', vmo, 3, 1);
    tp.supply(vmo, 3, 1);
    await w.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 3, 1);
    tp.dirty(vmo, 3, 1);
    await w.expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[3, 1, false], [4, 1, true]]);
    // The write landed on the pager's page, not on zeros.
    const page3 = readSync(vmo, 3 * P, P);
    expect(page3[0]).toBe(0xaa);
    for (let i = 1; i < P; i++) if (page3[i] !== patternByte(key, 3, i)) expect.fail(`page 3 byte ${i}: ${page3[i]}`);
    tp.writebackEnd(vmo, 4, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([[3, 1, false]]);
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizeWritebackIntersectingResize, ResizeWritebackNonIntersectingResize
  it('a shrink during writeback: END past the new end fails, END inside succeeds; the old gap is the pager\'s to supply', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1, RESIZABLE);
    const key = keyOf(vmo);
    tp.supply(vmo, 0, 1);
    vmo.resize(3 * P);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, true]]);
    tp.writebackBegin(vmo, 1, 2, true);
    vmo.resize(2 * P);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, true]]);
    expect(isFilled(readSync(vmo, P, P), 0)).toBe(true);
    expectZx(() => tp.writebackEnd(vmo, 1, 2), ZxStatus.ERR_OUT_OF_RANGE);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, true]]);
    tp.writebackEnd(vmo, 1, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([]);

    // Grow again: a new zero range at 2; page 1 is now a gap the pager must supply.
    vmo.resize(3 * P);
    expect(tp.dirtyRanges(vmo)).toEqual([[2, 1, true]]);
    const r = tp.read(vmo, 1, 1);
    tp.expectRequest('READ', vmo, 1, 1);
    expect(tp.supply(vmo, 1, 1)).toBe(1);
    expect(isPattern(await r.expectDone(), key, 1)).toBe(true);

    // Writeback of the new zero range, then a shrink that removes it entirely.
    tp.writebackBegin(vmo, 2, 1, true);
    vmo.resize(2 * P);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expectZx(() => tp.writebackEnd(vmo, 2, 1), ZxStatus.ERR_OUT_OF_RANGE);
    expect(isPattern(readSync(vmo, 0, 2 * P), key, 0)).toBe(true);
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizeWritebackAfterGap, ResizeWritebackMulipleGaps, ResizeWritebackSequential
  it.each(trapModes)('zero gaps and real pages of a grown VMO write back independently (%s)', async (_name, trap) => {
    const tp = new TestPager();
    // AfterGap: cleaning page 2 leaves the gap at 1 dirty.
    const a = tp.createVmo(1, RESIZABLE | trap);
    tp.supply(a, 0, 1);
    a.resize(3 * P);
    await writePages(tp, a, 2, 1, 0xaa, trap);
    expect(tp.dirtyRanges(a)).toEqual([[1, 1, true], [2, 1, false]]);
    tp.writebackBegin(a, 2, 1);
    tp.writebackEnd(a, 2, 1);
    expect(tp.dirtyRanges(a)).toEqual([[1, 1, true]]);
    await writePages(tp, a, 2, 1, 0xbb, trap);
    expect(tp.dirtyRanges(a)).toEqual([[1, 1, true], [2, 1, false]]);
    expect(isFilled(readSync(a, 2 * P, P), 0xbb)).toBe(true);

    // MultipleGaps: one writeback over gaps and pages; pages rewritten during it stay dirty.
    const b = tp.createVmo(1, RESIZABLE | trap);
    tp.supply(b, 0, 1);
    b.resize(6 * P);
    expect(tp.dirtyRanges(b)).toEqual([[1, 5, true]]);
    await writePages(tp, b, 2, 1, 0xaa, trap);
    await writePages(tp, b, 4, 1, 0xaa, trap);
    const runs: Array<[number, number, boolean]> = [[1, 1, true], [2, 1, false], [3, 1, true], [4, 1, false], [5, 1, true]];
    expect(tp.dirtyRanges(b)).toEqual(runs);
    tp.writebackBegin(b, 1, 5);
    await writePages(tp, b, 3, 2, 0xbb, trap);
    tp.writebackEnd(b, 1, 5);
    expect(tp.dirtyRanges(b)).toEqual([[3, 2, false]]);
    expect(isFilled(readSync(b, 2 * P, P), 0xaa)).toBe(true);
    expect(isFilled(readSync(b, 3 * P, 2 * P), 0xbb)).toBe(true);

    // Sequential: a BEGIN per run (IS_ZERO for zero runs), then an END per run.
    const c = tp.createVmo(1, RESIZABLE | trap);
    tp.supply(c, 0, 1);
    c.resize(6 * P);
    await writePages(tp, c, 2, 1, 0xaa, trap);
    await writePages(tp, c, 4, 1, 0xaa, trap);
    expect(tp.dirtyRanges(c)).toEqual(runs);
    for (const [page, count, isZero] of runs) tp.writebackBegin(c, page, count, isZero);
    for (const [page, count] of runs) tp.writebackEnd(c, page, count);
    expect(tp.dirtyRanges(c)).toEqual([]);
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizeWritebackPartialEnd
  it('partial writebacks trim a grown zero range progressively', () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1, RESIZABLE);
    tp.supply(vmo, 0, 1);
    vmo.resize(5 * P);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 4, true]]);
    tp.writebackBegin(vmo, 1, 1, true);
    tp.writebackEnd(vmo, 1, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([[2, 3, true]]);
    tp.writebackBegin(vmo, 2, 1, true);
    tp.writebackEnd(vmo, 2, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([[3, 2, true]]);
    tp.writebackBegin(vmo, 3, 2, true);
    tp.writebackEnd(vmo, 3, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    tp.expectNoRequest();
  });

  // pager-writeback.cc ResizeWritebackNewDirtyRequests, ResizeWritebackInterleavedWriteWithMapping
  it('writing a zero gap that was written back needs a READ (pager supplies) and then a DIRTY', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1, true);
    const key = keyOf(vmo);
    tp.supply(vmo, 0, 1);
    vmo.resize(3 * P);
    await writePages(tp, vmo, 2, 1, 0xaa, TRAP);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, true], [2, 1, false]]);
    tp.writebackBegin(vmo, 1, 2);
    tp.writebackEnd(vmo, 1, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([]);

    const t2 = tp.write(vmo, 1, 1, 0xbb);
    await t2.expectBlocked();
    tp.expectRequest('READ', vmo, 1, 1);
    tp.expectNoRequest();
    tp.supply(vmo, 1, 1);
    await t2.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 1, 1);
    const t3 = tp.write(vmo, 2, 1, 0xcc);
    await t3.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 2, 1);
    tp.dirty(vmo, 1, 2);
    await t2.expectDone();
    await t3.expectDone();
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, false]]);
    expect(isPattern(readSync(vmo, 0, P), key, 0)).toBe(true);
    expect(isFilled(readSync(vmo, P, P), 0xbb)).toBe(true);
    expect(isFilled(readSync(vmo, 2 * P, P), 0xcc)).toBe(true);
    tp.expectNoRequest();
  });

  // PAGER-TESTS §5 OpZeroResize
  it('a partial-page zero blocked on READ fails OUT_OF_RANGE when a shrink removes its page', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(3, RESIZABLE);
    tp.supply(vmo, 0, 1);
    const z = new Blocked(vmo.zeroRange(P + 100, 200));
    await z.expectBlocked();
    tp.expectRequest('READ', vmo, 1, 1);
    vmo.resize(P);
    await z.expectFailed(ZxStatus.ERR_OUT_OF_RANGE);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(isPattern(readSync(vmo, 0, P), keyOf(vmo), 0)).toBe(true);
    tp.expectNoRequest();
  });

  // PAGER-TESTS §5 EarlyWakeWithResize
  it('an early-woken read whose remaining range a shrink cuts fails OUT_OF_RANGE', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4, RESIZABLE);
    const r = tp.read(vmo, 0, 4);
    tp.expectRequest('READ', vmo, 0, 4);
    tp.supply(vmo, 0, 1);
    await r.expectBlocked();
    vmo.resize(P);
    await r.expectFailed(ZxStatus.ERR_OUT_OF_RANGE);
    tp.expectNoRequest();
    expect(isPattern(readSync(vmo, 0, P), keyOf(vmo), 0)).toBe(true);
    tp.system.debugValidate();
  });

  // PAGER-TESTS §5 EvictionHintsWithResize
  it('an ALWAYS_NEED hint blocked on READ ends (commit-like: clipped) when a shrink removes its range', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2, RESIZABLE);
    const h = new Blocked(vmo.opRange(VmoOp.ALWAYS_NEED, 0, 2 * P));
    tp.expectRequest('READ', vmo, 0, 2);
    await h.expectBlocked();
    vmo.resize(0);
    // It must not hang, and a commit-like op is clipped by a shrink (SEMANTICS: commit): OK.
    await h.expectDone();
    expect(vmo.counters().residentPages).toBe(0);
    tp.expectNoRequest();
    tp.system.debugValidate();
  });

  // pager.cc CloneResizeCloneHazard
  it('a resizable clone shrunk to 0 makes reads and writes through it OUT_OF_RANGE', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    tp.supply(vmo, 0, 2);
    const clone = cow(vmo, 0, 2, true);
    expect(isPattern(readSync(clone, 0, 2 * P), keyOf(vmo), 0)).toBe(true);
    clone.resize(0);
    await expectZxRejects(clone.read(new Uint8Array(4), 4), ZxStatus.ERR_OUT_OF_RANGE);
    await expectZxRejects(clone.write(new Uint8Array(4), 4), ZxStatus.ERR_OUT_OF_RANGE);
    expect(isPattern(readSync(vmo, 0, 2 * P), keyOf(vmo), 0)).toBe(true);
    tp.expectNoRequest();
  });

  // pager.cc CloneResizeParentOK
  it('shrinking the parent leaves the clone accessible; the cut part reads zero', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2, RESIZABLE);
    tp.supply(vmo, 0, 2);
    const clone = cow(vmo, 0, 2);
    expect(isPattern(readSync(clone, 0, 2 * P), keyOf(vmo), 0)).toBe(true);
    vmo.resize(0);
    expect(isFilled(readSync(clone, 0, 2 * P), 0)).toBe(true);
    await clone.write(new Uint8Array([1, 2, 3, 4]), 4);
    expect(Array.from(readSync(clone, 0, 8))).toEqual([0, 0, 0, 0, 1, 2, 3, 4]);
    tp.expectNoRequest();
    tp.system.debugValidate();
  });

  // pager.cc CloneShrinkGrowParent
  it.each([
    { name: 'aligned, truncate to parent offset', vmoPages: 1, cloneOffset: 0, testPage: 0 },
    { name: 'offset, truncate to before parent offset', vmoPages: 2, cloneOffset: 1, testPage: 0 },
    { name: 'offset, truncate partway through clone', vmoPages: 3, cloneOffset: 1, testPage: 1 },
  ])('pages exposed by re-growing the parent are not visible to an existing clone ($name)', async (c) => {
    const tp = new TestPager();
    const vmo = tp.createVmo(c.vmoPages, RESIZABLE);
    tp.supply(vmo, 0, c.vmoPages);
    const clone = cow(vmo, c.cloneOffset, c.vmoPages);
    const parentPage = c.cloneOffset + c.testPage;
    expect(isPattern(readSync(clone, c.testPage * P, P), keyOf(vmo), parentPage)).toBe(true);
    await vmo.write(new Uint8Array([1, 0, 0, 0]), parentPage * P);
    // The clone has not forked the page, so it sees the parent's write.
    expect(Array.from(readSync(clone, c.testPage * P, 4))).toEqual([1, 0, 0, 0]);
    vmo.resize(0);
    expect(isFilled(readSync(clone, c.testPage * P, P), 0)).toBe(true);
    vmo.resize(c.vmoPages * P);
    tp.supply(vmo, 0, c.vmoPages);
    await vmo.write(new Uint8Array([2, 0, 0, 0]), parentPage * P);
    expect(isFilled(readSync(clone, c.testPage * P, P), 0)).toBe(true);
    tp.expectNoRequest();
  });

  // SEMANTICS.md "Units and ranges": on resize, the bytes past the new content size in its page read
  // as zero. A clone that has not forked that page still sees it through its parent.
  describe('a clone shrunk to an unaligned size: its last page reads zero past the new end', () => {
    const cut = P + 100;

    /** A 2-page pager VMO (pages supplied or not) and a resizable clone of it shrunk to `cut`. */
    function shrunkClone(supplied: boolean): { tp: TestPager; vmo: VmObject; key: number; clone: VmObject } {
      const tp = new TestPager();
      const vmo = tp.createVmo(2);
      if (supplied) tp.supply(vmo, 0, 2);
      const clone = cow(vmo, 0, 2, true);
      clone.resize(cut);
      return { tp, vmo, key: keyOf(vmo), clone };
    }

    /** Page 1 as the clone must show it: the parent's first 100 bytes (from `from`), zeros after. */
    function expectCutPage(page: Uint8Array, key: number, from = 0): void {
      for (let i = from; i < 100; i++) expect(page[i], `byte ${i}`).toBe(patternByte(key, 1, i));
      expect(isFilled(page.subarray(100), 0)).toBe(true);
    }

    it('parent page resident: reads, a grow back and the fork on a later write keep the tail zero', async () => {
      const { tp, vmo, key, clone } = shrunkClone(true);
      expectCutPage(readSync(clone, P, P), key);
      clone.resize(2 * P);
      expect(isFilled(readSync(clone, cut, 2 * P - cut), 0)).toBe(true);
      await clone.write(new Uint8Array([7]), P);
      const forked = readSync(clone, P, P);
      expect(forked[0]).toBe(7);
      expectCutPage(forked, key, 1);
      // The parent keeps its bytes.
      expect(isPattern(readSync(vmo, 0, 2 * P), key, 0)).toBe(true);
      tp.expectNoRequest();
      tp.system.debugValidate();
    });

    it('parent page not resident: the read faults the parent, and the supplied page shows zeros past the end', async () => {
      const { tp, vmo, key, clone } = shrunkClone(false);
      const r = tp.read(clone, 1, 1);
      await r.expectBlocked();
      tp.expectRequest('READ', vmo, 1, 1);
      tp.supply(vmo, 1, 1);
      expectCutPage(await r.expectDone(), key);
      expect(isPattern(readSync(vmo, P, P), key, 1)).toBe(true);
    });

    it('a child of the shrunk clone, and a second shrink within the same page, see the zeros too', async () => {
      const { tp, key, clone } = shrunkClone(true);
      clone.resize(2 * P);
      clone.resize(P + 3000); // the bytes [P+100, P+3000) were zeroed by the first shrink
      const grandchild = cow(clone, 0, 2);
      for (const v of [clone, grandchild]) expectCutPage(readSync(v, P, P), key);
      await grandchild.write(new Uint8Array([9]), P + 1);
      const forked = readSync(grandchild, P, P);
      expect(forked[0]).toBe(patternByte(key, 1, 0));
      expect(forked[1]).toBe(9);
      expectCutPage(forked, key, 2);
      tp.expectNoRequest();
      tp.system.debugValidate();
    });
  });
});
