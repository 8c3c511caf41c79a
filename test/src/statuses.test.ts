/**
 * PAGER-TESTS.md §8 "Statuses and queries": one test per checklist line (Fuchsia core tests `pager`,
 * `pager-writeback`), restated for pagerfs's surface (no handles or rights: "bad handle" cases become
 * "a VMO of the wrong kind or of another pager").
 */
import { describe, expect, it } from 'vitest';
import {
  ChildOptions, MAX_VMO_SIZE_BYTES, PagerOp, VmoOptions, WRITEBACK_IS_ZERO, ZxStatus,
} from '../../src/index.js';
import { Blocked, TestPager, isPattern, keyOf, settle } from './userpager.js';
import { P, cow, expectZx, filled, isFilled, modified, readSync } from './clone-helpers.js';

describe('statuses and queries', () => {
  // pager.cc InvalidPagerCreateVmo, Unbounded
  it('createVmo: unknown options (incl. Zircon\'s UNBOUNDED) INVALID_ARGS, oversize OUT_OF_RANGE, closed port/pager BAD_STATE', () => {
    const tp = new TestPager();
    const UNBOUNDED = 1 << 7;
    expectZx(() => tp.pager.createVmo(0xffff_ffff, tp.port, 1, P), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.createVmo(1 << 0, tp.port, 1, P), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.createVmo(UNBOUNDED, tp.port, 1, P), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.createVmo(0, tp.port, 1, MAX_VMO_SIZE_BYTES + P), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => tp.pager.createVmo(0, tp.port, 1, Number.MAX_SAFE_INTEGER + 1), ZxStatus.ERR_OUT_OF_RANGE);
    // Valid option combinations succeed; the size rounds up to pages.
    const ok = tp.pager.createVmo(VmoOptions.RESIZABLE | VmoOptions.TRAP_DIRTY, tp.port, 1, P + 1);
    expect(ok.sizeBytes).toBe(2 * P);
    const closedPort = tp.system.createPort();
    closedPort.close();
    expectZx(() => tp.pager.createVmo(0, closedPort, 1, P), ZxStatus.ERR_BAD_STATE);
    const closedPager = tp.system.createPager();
    closedPager.close();
    expectZx(() => closedPager.createVmo(0, tp.port, 1, P), ZxStatus.ERR_BAD_STATE);
    tp.expectNoRequest();
  });

  // pager.cc InvalidPagerDetachVmo
  it('detaching a non-pager VMO, a clone or another pager\'s VMO is INVALID_ARGS and sends nothing', () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    const other = tp.system.createPager();
    expectZx(() => tp.pager.detachVmo(tp.system.createVmo(P)), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.detachVmo(cow(vmo, 0, 1)), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => other.detachVmo(vmo), ZxStatus.ERR_INVALID_ARGS);
    tp.expectNoRequest();
    tp.pager.detachVmo(vmo);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
  });

  // pager.cc InvalidPagerSupplyPages
  it('supplyPages statuses: wrong VMO INVALID_ARGS, misaligned INVALID_ARGS, pager aux NOT_SUPPORTED, unfit aux BAD_STATE, past either end OUT_OF_RANGE', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    const sys = tp.system;
    const aux = () => sys.createVmo(P);
    // Not a pager VMO of this pager.
    expectZx(() => tp.pager.supplyPages(sys.createVmo(P), 0, P, aux(), 0), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => sys.createPager().supplyPages(vmo, 0, P, aux(), 0), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.supplyPages(cow(vmo, 0, 1), 0, P, aux(), 0), ZxStatus.ERR_INVALID_ARGS);
    // Misaligned offset, length, aux offset.
    expectZx(() => tp.pager.supplyPages(vmo, 1, P, aux(), 0), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.supplyPages(vmo, 0, 1, aux(), 0), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.supplyPages(vmo, 0, P, sys.createVmo(2 * P), 1), ZxStatus.ERR_INVALID_ARGS);
    // Aux a pager VMO.
    const pagerAux = tp.createVmo(1);
    tp.supply(pagerAux, 0, 1);
    expectZx(() => tp.pager.supplyPages(vmo, 0, P, pagerAux, 0), ZxStatus.ERR_NOT_SUPPORTED);
    // Aux pinned, a clone, with children.
    const pinned = aux();
    await pinned.commitRangePinned(0, P);
    expectZx(() => tp.pager.supplyPages(vmo, 0, P, pinned, 0), ZxStatus.ERR_BAD_STATE);
    expectZx(() => tp.pager.supplyPages(vmo, 0, P, cow(pagerAux, 0, 1), 0), ZxStatus.ERR_BAD_STATE);
    const parent = aux();
    parent.createChild(ChildOptions.SLICE, 0, P);
    expectZx(() => tp.pager.supplyPages(vmo, 0, P, parent, 0), ZxStatus.ERR_BAD_STATE);
    // Past the end of the VMO or of the aux VMO.
    expectZx(() => tp.pager.supplyPages(vmo, P, P, aux(), 0), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => tp.pager.supplyPages(vmo, 0, 2 * P, sys.createVmo(2 * P), 0), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => tp.pager.supplyPages(vmo, 0, P, aux(), P), ZxStatus.ERR_OUT_OF_RANGE);
    // Nothing was installed, the pinned aux kept its page.
    expect(vmo.attributedPagesInRange(0, P)).toBe(0);
    expect(pinned.counters().pinnedPages).toBe(1);
    // Detached: BAD_STATE.
    tp.pager.detachVmo(vmo);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    expectZx(() => tp.pager.supplyPages(vmo, 0, P, aux(), 0), ZxStatus.ERR_BAD_STATE);
    tp.expectNoRequest();
    sys.debugValidate();
  });

  // pager.cc InvalidPagerOpRange
  it('pager opRange statuses for FAIL/DIRTY/WRITEBACK_BEGIN/END, unknown op, bad data and flags', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1);
    tp.supply(vmo, 0, 1);
    const other = tp.system.createPager();
    const anon = tp.system.createVmo(P);
    const ops: Array<[PagerOp, number]> = [
      [PagerOp.FAIL, ZxStatus.ERR_IO], [PagerOp.DIRTY, 0], [PagerOp.WRITEBACK_BEGIN, 0], [PagerOp.WRITEBACK_END, 0],
    ];
    for (const [op, data] of ops) {
      expectZx(() => tp.pager.opRange(op, anon, 0, P, data), ZxStatus.ERR_INVALID_ARGS);
      expectZx(() => other.opRange(op, vmo, 0, P, data), ZxStatus.ERR_INVALID_ARGS);
      expectZx(() => tp.pager.opRange(op, vmo, 1, P, data), ZxStatus.ERR_INVALID_ARGS);
      expectZx(() => tp.pager.opRange(op, vmo, 0, 1, data), ZxStatus.ERR_INVALID_ARGS);
      expectZx(() => tp.pager.opRange(op, vmo, 0, 2 * P, data), ZxStatus.ERR_OUT_OF_RANGE);
      expectZx(() => tp.pager.opRange(op, vmo, P, P, data), ZxStatus.ERR_OUT_OF_RANGE);
    }
    expectZx(() => tp.pager.opRange(99 as PagerOp, vmo, 0, P), ZxStatus.ERR_NOT_SUPPORTED);
    expectZx(() => tp.pager.opRange(0 as PagerOp, vmo, 0, P), ZxStatus.ERR_NOT_SUPPORTED);

    // FAIL with a status outside the allowed five: INVALID_ARGS, and a blocked reader is not failed.
    const vmo2 = tp.createVmo(1);
    const r = tp.read(vmo2, 0, 1);
    tp.expectRequest('READ', vmo2, 0, 1);
    for (const bad of [ZxStatus.OK, ZxStatus.ERR_NO_MEMORY, ZxStatus.ERR_TIMED_OUT, ZxStatus.ERR_INTERNAL, ZxStatus.ERR_NOT_FOUND]) {
      expectZx(() => tp.pager.opRange(PagerOp.FAIL, vmo2, 0, P, bad), ZxStatus.ERR_INVALID_ARGS);
    }
    await r.expectBlocked();
    tp.supply(vmo2, 0, 1);
    expect(isPattern(await r.expectDone(), keyOf(vmo2), 0)).toBe(true);

    // DIRTY: data must be 0; NOT_SUPPORTED without TRAP_DIRTY; NOT_FOUND over unsupplied pages.
    expectZx(() => tp.pager.opRange(PagerOp.DIRTY, vmo, 0, P, 1), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.opRange(PagerOp.DIRTY, vmo2, 0, P), ZxStatus.ERR_NOT_SUPPORTED);
    const trap2 = tp.createTrapVmo(2);
    tp.supply(trap2, 0, 1);
    expectZx(() => tp.pager.opRange(PagerOp.DIRTY, trap2, 0, 2 * P), ZxStatus.ERR_NOT_FOUND);
    expect(tp.dirtyRanges(trap2)).toEqual([]);
    // WRITEBACK_END: data must be 0; WRITEBACK_BEGIN: flags 0 or IS_ZERO only.
    expectZx(() => tp.pager.opRange(PagerOp.WRITEBACK_END, vmo, 0, P, 1), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, 0, P, 2), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, 0, P, WRITEBACK_IS_ZERO | 2), ZxStatus.ERR_INVALID_ARGS);
    tp.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, 0, P, 0);
    tp.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, 0, P, WRITEBACK_IS_ZERO);
    tp.pager.opRange(PagerOp.WRITEBACK_END, vmo, 0, P, 0);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    tp.expectNoRequest();
  });

  // pager-writeback.cc InvalidQuery
  it('dirty-range query and stats: wrong VMO INVALID_ARGS, past the end OUT_OF_RANGE, unaligned ranges rounded out', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    tp.supply(vmo, 0, 2);
    await vmo.write(new Uint8Array([1]), 10);
    const other = tp.system.createPager();
    const anon = tp.system.createVmo(P);
    expectZx(() => tp.pager.queryDirtyRanges(anon, 0, P), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => other.queryDirtyRanges(vmo, 0, P), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.queryVmoStats(anon, false), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => other.queryVmoStats(vmo, true), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.queryDirtyRanges(vmo, 0, 3 * P), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => tp.pager.queryDirtyRanges(vmo, 2 * P, 1), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => tp.pager.queryDirtyRanges(vmo, -P, P), ZxStatus.ERR_INVALID_ARGS);
    // Unaligned: rounded out to pages.
    expect(tp.pager.queryDirtyRanges(vmo, 100, 10)).toEqual({ ranges: [{ offset: 0, length: P, isZero: false }], available: 1 });
    expect(tp.pager.queryDirtyRanges(vmo, P + 1, 5)).toEqual({ ranges: [], available: 0 });
    // The failed stats query on another pager did not reset our flag.
    expect(modified(tp, vmo)).toBe(true);
  });

  // pager-writeback.cc InvalidQuery, the cases with no direct form here: `queryVmoStats(vmo, reset)`
  // takes a boolean (no option word to get wrong) and results are returned, not written into a
  // caller's buffer (no null or too-small stats buffer). The nearest equivalents are the query's
  // numeric arguments: an offset or length that is not a non-negative safe integer, and maxRanges.
  it('dirty-range query: a non-integer, negative or infinite offset, length or maxRanges is INVALID_ARGS; maxRanges 0 returns none and counts all', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4);
    tp.supply(vmo, 0, 4);
    await vmo.write(filled(P, 1), 0);
    await vmo.write(filled(P, 2), 2 * P);
    const bad: Array<[number, number]> = [
      [Number.NaN, P], [0.5, P], [-1, P], [Number.POSITIVE_INFINITY, P],
      [0, Number.NaN], [0, 0.5], [0, -P], [0, Number.POSITIVE_INFINITY], [Number.MAX_SAFE_INTEGER + 1, 0],
    ];
    for (const [offset, length] of bad) {
      expectZx(() => tp.pager.queryDirtyRanges(vmo, offset, length), ZxStatus.ERR_INVALID_ARGS);
    }
    expectZx(() => tp.pager.queryDirtyRanges(vmo, 4 * P, 1), ZxStatus.ERR_OUT_OF_RANGE);
    // Empty queries are fine, even at the very end.
    expect(tp.pager.queryDirtyRanges(vmo, 4 * P, 0)).toEqual({ ranges: [], available: 0 });
    expect(tp.pager.queryDirtyRanges(vmo, P, 0)).toEqual({ ranges: [], available: 0 });
    // Zircon's "buffer too small for any range": OK, nothing returned, everything counted.
    const all = [{ offset: 0, length: P, isZero: false }, { offset: 2 * P, length: P, isZero: false }];
    expect(tp.pager.queryDirtyRanges(vmo, 0, 4 * P, 0)).toEqual({ ranges: [], available: 2 });
    expect(tp.pager.queryDirtyRanges(vmo, 0, 4 * P, 2)).toEqual({ ranges: all, available: 2 });
    expect(tp.pager.queryDirtyRanges(vmo, 0, 4 * P, 3)).toEqual({ ranges: all, available: 2 });
    // The room for results is a count (Zircon's null buffer with a size: INVALID_ARGS).
    for (const maxRanges of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expectZx(() => tp.pager.queryDirtyRanges(vmo, 0, 4 * P, maxRanges), ZxStatus.ERR_INVALID_ARGS);
    }
    // A failed query changes nothing.
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false], [2, 1, false]]);
    expect(modified(tp, vmo)).toBe(true);
    tp.expectNoRequest();
  });

  // pager-writeback.cc QueryEarlyTermination
  it('a dirty-range query with room for fewer ranges returns what fits and how many exist; the caller resumes', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4);
    tp.supply(vmo, 0, 4);
    await vmo.write(filled(P, 1), 0);
    await vmo.write(filled(P, 2), 2 * P);
    expect(tp.pager.queryDirtyRanges(vmo, 0, 4 * P, 0)).toEqual({ ranges: [], available: 2 });
    expect(tp.pager.queryDirtyRanges(vmo, 0, 4 * P, 1)).toEqual({ ranges: [{ offset: 0, length: P, isZero: false }], available: 2 });
    expect(tp.pager.queryDirtyRanges(vmo, P, 3 * P, 1)).toEqual({ ranges: [{ offset: 2 * P, length: P, isZero: false }], available: 1 });
    expect(tp.pager.queryDirtyRanges(vmo, 0, 4 * P).available).toBe(2);
  });

  // pager.cc VmoInfoPagerTest
  it('only a pager-created VMO reports itself pager-backed', () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    const anon = tp.system.createVmo(P);
    expect(vmo.isPagerBacked).toBe(true);
    expect(vmo.kind).toBe('pager');
    expect(anon.isPagerBacked).toBe(false);
    expect(anon.kind).toBe('anonymous');
    expect(anon.pagerRoot).toBeNull();
    const clone = cow(vmo, 0, 1);
    expect(clone.pagerRoot).toBe(vmo);
  });

  describe('modified flag (queryVmoStats)', () => {
    // pager-writeback.cc ModifiedOnVmoWrite, ModifiedOnMappingWrite
    it.each([['without TRAP_DIRTY', 0], ['with TRAP_DIRTY', VmoOptions.TRAP_DIRTY]])('a write marks the VMO modified; reading with reset clears it (%s)', async (_n, trap) => {
      const tp = new TestPager();
      const vmo = tp.createVmo(1, trap);
      tp.supply(vmo, 0, 1);
      expect(modified(tp, vmo)).toBe(false);
      const w = new Blocked(vmo.write(new Uint8Array([0xaa]), 0));
      if (trap) {
        tp.expectRequest('DIRTY', vmo, 0, 1);
        tp.dirty(vmo, 0, 1);
      }
      await w.expectDone();
      expect(modified(tp, vmo)).toBe(true);
      expect(modified(tp, vmo)).toBe(false);
      expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    });

    // pager-writeback.cc ModifiedOnResize
    it('a shrink and a grow each mark the VMO modified', () => {
      const tp = new TestPager();
      const vmo = tp.createVmo(2, VmoOptions.RESIZABLE);
      tp.supply(vmo, 0, 2);
      expect(modified(tp, vmo)).toBe(false);
      vmo.resize(P);
      expect(modified(tp, vmo)).toBe(true);
      expect(modified(tp, vmo)).toBe(false);
      vmo.resize(3 * P);
      expect(modified(tp, vmo)).toBe(true);
      expect(modified(tp, vmo)).toBe(false);
      expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, true]]);
    });

    // pager-writeback.cc ModifiedOnOpZero
    it('OP_ZERO marks the VMO modified and reports a zero range', async () => {
      const tp = new TestPager();
      const vmo = tp.createVmo(2);
      tp.supply(vmo, 0, 2);
      expect(modified(tp, vmo)).toBe(false);
      await vmo.zeroRange(0, P);
      expect(modified(tp, vmo)).toBe(true);
      expect(modified(tp, vmo)).toBe(false);
      expect(isFilled(readSync(vmo, 0, P), 0)).toBe(true);
      expect(isPattern(readSync(vmo, P, P), keyOf(vmo), 1)).toBe(true);
      expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, true]]);
      tp.expectNoRequest();
    });

    // pager-writeback.cc ModifiedOnPartialVmoWrite
    it('a write that fails after writing a page still marks the VMO modified', async () => {
      const tp = new TestPager();
      const vmo = tp.createTrapVmo(2);
      tp.supply(vmo, 0, 2);
      tp.dirty(vmo, 0, 1);
      expect(modified(tp, vmo)).toBe(false);
      const w = tp.write(vmo, 0, 2, 0xaa);
      await w.expectBlocked();
      tp.expectRequest('DIRTY', vmo, 1, 1);
      tp.fail(vmo, 1, 1, ZxStatus.ERR_IO);
      await w.expectFailed(ZxStatus.ERR_IO);
      expect(modified(tp, vmo)).toBe(true);
      expect(isFilled(readSync(vmo, 0, P), 0xaa)).toBe(true);
      expect(isPattern(readSync(vmo, P, P), keyOf(vmo), 1)).toBe(true);
      expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
      tp.expectNoRequest();
    });

    // pager-writeback.cc NotModifiedOnVmoRead, NotModifiedOnMappingRead, ModifiedNoReset
    it('reads do not mark the VMO modified; querying without reset keeps the flag', async () => {
      const tp = new TestPager();
      const vmo = tp.createVmo(1);
      const r = tp.read(vmo, 0, 1);
      tp.expectRequest('READ', vmo, 0, 1);
      tp.supply(vmo, 0, 1);
      await r.expectDone();
      readSync(vmo, 0, 1);
      expect(modified(tp, vmo)).toBe(false);
      await vmo.write(new Uint8Array([0xaa]), 0);
      expect(tp.pager.queryVmoStats(vmo, false).modified).toBe(true);
      expect(tp.pager.queryVmoStats(vmo, false).modified).toBe(true);
      expect(modified(tp, vmo)).toBe(true);
      expect(modified(tp, vmo)).toBe(false);
    });

    // pager-writeback.cc NotModifiedOnFailedDirtyRequest, NotModifiedOnFailedVmoWrite
    it('a write failed by the pager (DIRTY or READ failed) does not mark the VMO modified', async () => {
      const tp = new TestPager();
      const trap = tp.createTrapVmo(1);
      tp.supply(trap, 0, 1);
      const w = tp.write(trap, 0, 1, 0xaa);
      await w.expectBlocked();
      tp.expectRequest('DIRTY', trap, 0, 1);
      tp.fail(trap, 0, 1, ZxStatus.ERR_NO_SPACE);
      await w.expectFailed(ZxStatus.ERR_NO_SPACE);
      expect(modified(tp, trap)).toBe(false);
      expect(isPattern(readSync(trap, 0, P), keyOf(trap), 0)).toBe(true);
      expect(tp.dirtyRanges(trap)).toEqual([]);

      const plain = tp.createVmo(1);
      const w2 = tp.write(plain, 0, 1, 0xaa);
      await w2.expectBlocked();
      tp.expectRequest('READ', plain, 0, 1);
      tp.fail(plain, 0, 1, ZxStatus.ERR_IO);
      await w2.expectFailed(ZxStatus.ERR_IO);
      expect(modified(tp, plain)).toBe(false);
      expect(tp.dirtyRanges(plain)).toEqual([]);
      tp.expectNoRequest();
    });

    // pager-writeback.cc NotModifiedOnFailedResize (+ a failed pin)
    it('a failed resize (shrink over a pinned page: BAD_STATE) or a failed pin does not mark the VMO modified', async () => {
      const tp = new TestPager();
      const vmo = tp.createVmo(2, VmoOptions.RESIZABLE | VmoOptions.TRAP_DIRTY);
      tp.supply(vmo, 0, 2);
      await vmo.commitRangePinned(P, P);
      expect(modified(tp, vmo)).toBe(false);
      expectZx(() => vmo.resize(P), ZxStatus.ERR_BAD_STATE);
      expect(vmo.sizeBytes).toBe(2 * P);
      expect(modified(tp, vmo)).toBe(false);
      expect(isPattern(readSync(vmo, 0, 2 * P), keyOf(vmo), 0)).toBe(true);
      vmo.unpin(P, P);
      // A pin for write that the pager refuses.
      const pin = new Blocked(vmo.commitRangePinned(0, P, true));
      await pin.expectBlocked();
      tp.expectRequest('DIRTY', vmo, 0, 1);
      tp.fail(vmo, 0, 1, ZxStatus.ERR_IO);
      await pin.expectFailed(ZxStatus.ERR_IO);
      expect(modified(tp, vmo)).toBe(false);
      expect(vmo.counters().pinnedPages).toBe(0);
      expect(tp.dirtyRanges(vmo)).toEqual([]);
      tp.expectNoRequest();
    });
  });

  // PAGER-TESTS §8 Liveness (Zircon: overtime 20 s, timeout 300 s; small values here)
  it('an unanswered request is reported overtime once and its waiter fails TIMED_OUT', async () => {
    const overtime: number[] = [];
    const tp = new TestPager({
      requestOvertimeMs: 20, requestTimeoutMs: 120, onRequestOvertime: (w) => overtime.push(w.pageIndex),
    });
    const vmo = tp.createVmo(2);
    const started = performance.now();
    const r = tp.read(vmo, 1, 1);
    tp.expectRequest('READ', vmo, 1, 1);
    await r.promise.catch(() => undefined);
    expect(performance.now() - started).toBeGreaterThanOrEqual(100);
    await r.expectFailed(ZxStatus.ERR_TIMED_OUT);
    expect(overtime).toEqual([1]);
    // The pager can still answer; a later reader is satisfied.
    tp.supply(vmo, 1, 1);
    expect(isPattern(readSync(vmo, P, P), keyOf(vmo), 1)).toBe(true);
  });

  it('a request whose waiters all timed out is given up: the next fault asks the pager again', async () => {
    const tp = new TestPager({ requestOvertimeMs: 1000, requestTimeoutMs: 60 });
    const vmo = tp.createVmo(4);
    const first = tp.read(vmo, 0, 2);
    tp.expectRequest('READ', vmo, 0, 2); // read by the pager, never answered (a lost answer)
    await first.promise.catch(() => undefined);
    await first.expectFailed(ZxStatus.ERR_TIMED_OUT);
    // Before, the request stayed outstanding: this read joined it, no packet came, and it timed out too.
    const second = tp.read(vmo, 0, 2);
    tp.expectRequest('READ', vmo, 0, 2);
    tp.supply(vmo, 0, 2);
    expect(isPattern(await second.expectDone(), keyOf(vmo), 0)).toBe(true);
  });

  it('a READ request read by the pager whose pages turn from a zero run into gaps (WRITEBACK_END) is ended: the reader asks again', async () => {
    const tp = new TestPager({ requestOvertimeMs: 1000, requestTimeoutMs: 2000 });
    const vmo = tp.createVmo(4, VmoOptions.TRAP_DIRTY);
    const r = tp.read(vmo, 0, 4);
    tp.expectRequest('READ', vmo, 0, 4); // read by the pager
    await vmo.zeroRange(P, 3 * P); // a punch: pages 1-3 a dirty zero run (resolved)
    tp.writebackBegin(vmo, 1, 3, true);
    tp.writebackEnd(vmo, 1, 3); // written as zeros behind it: gaps again
    tp.supply(vmo, 0, 1);
    await settle();
    // Before, the reader faulted page 1 into the old request, which the pager had answered as far
    // as it ever would: no packet, and it waited out its timeout.
    tp.expectRequest('READ', vmo, 1, 3);
    tp.supply(vmo, 1, 3);
    await r.expectDone();
  });

  it('a request some waiter still waits on is kept when another one times out', async () => {
    // The late reader joins half-way through the timeout, so either race (the early one timing out
    // before the late one joins, or both timing out before the supply) needs a 1 s stall.
    const tp = new TestPager({ requestOvertimeMs: 10_000, requestTimeoutMs: 2000 });
    const vmo = tp.createVmo(4);
    const early = tp.read(vmo, 0, 1);
    tp.expectRequest('READ', vmo, 0, 1);
    await new Promise((r) => setTimeout(r, 1000));
    const late = tp.read(vmo, 0, 1); // joins the request: no new packet
    tp.expectNoRequest();
    await early.promise.catch(() => undefined);
    await early.expectFailed(ZxStatus.ERR_TIMED_OUT);
    tp.supply(vmo, 0, 1);
    expect(isPattern(await late.expectDone(), keyOf(vmo), 0)).toBe(true);
  });
});

// `InvalidPagerCreate` (pager options != 0) has no pagerfs counterpart: createPager takes no options.
