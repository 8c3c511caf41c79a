/**
 * The evictor: order, what may never be evicted, counters, refaulting, targets, and the eviction
 * hints (PAGER-TESTS §7: EvictionHintAlwaysNeed, EvictionHintsOpRange, EvictionHintsWithClones,
 * vmo_eviction_hints_test, vmo_eviction_hints_clone_test, vmo_eviction_test, evictor_*_test).
 *
 * Zircon's evictor targets map onto `system.evictor.reclaim(freeTargetFrames, minFrames, level)`
 * (one round frees max(freeTarget - free, min + carried)) and `evictor.carriedMinFrames`.
 */
import { describe, expect, it } from 'vitest';
import {
  ChildOptions, InternalError, PAGE_SIZE, VmoOp, VmoOptions, ZxStatus, isZxError, type VmObjectPaged,
} from '../../src/index.js';
import { EvictionLevel } from '../../src/evictor.js';
import { Blocked, TestPager, isPattern, patternPage } from './userpager.js';
import {
  AutoPager, Queue, ageOfPage, bytesEqual, checkBudget, frameOf, queueOfPage, readBytes,
  commit, expectZx,
} from './eviction-helpers.js';

function age(tp: TestPager, steps: number): void {
  for (let i = 0; i < steps; i++) tp.system.agePages();
}

function resident(vmo: VmObjectPaged): number[] {
  const out: number[] = [];
  vmo.lookup(0, vmo.sizeBytes, (p) => { out.push(p); });
  return out;
}

// -------------------------------------------------------------------------------------------------
describe('eviction hints (user-space tests, pager.cc)', () => {
  it('EvictionHintAlwaysNeed: ALWAYS_NEED on pages 10-14 of an empty VMO raises READ (10, 5)', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(20);
    const hint = new Blocked(vmo.opRange(VmoOp.ALWAYS_NEED, 10 * PAGE_SIZE, 5 * PAGE_SIZE));
    tp.expectRequest('READ', vmo, 10, 5);
    await hint.expectBlocked();
    tp.supply(vmo, 10, 5);
    await hint.expectDone();
    tp.expectNoRequest();
    expect(resident(vmo)).toEqual([10, 11, 12, 13, 14]);
    for (let p = 10; p < 15; p++) expect(queueOfPage(vmo, p)).toBe(Queue.AlwaysNeed);
    const r = tp.read(vmo, 10, 5);
    await r.expectDone();
    expect(isPattern(r.value!, 1, 10)).toBe(true);
    checkBudget(tp.system);
  });

  it('ALWAYS_NEED and PREFETCH over a grown zero tail ask nothing and keep it a zero run (they dirtied real pages)', async () => {
    for (const op of [VmoOp.ALWAYS_NEED, VmoOp.PREFETCH]) {
      for (const trap of [true, false]) {
        const tp = new TestPager();
        const vmo = tp.createVmo(1, VmoOptions.RESIZABLE | (trap ? VmoOptions.TRAP_DIRTY : 0));
        tp.supply(vmo, 0, 1);
        vmo.resize(4 * PAGE_SIZE);
        await vmo.opRange(op, 0, 4 * PAGE_SIZE); // with TRAP_DIRTY it waited for a DIRTY answer
        tp.expectNoRequest();
        expect(tp.pager.queryDirtyRanges(vmo, 0, 4 * PAGE_SIZE).ranges, `${VmoOp[op]} trap=${trap}`)
          .toEqual([{ offset: PAGE_SIZE, length: 3 * PAGE_SIZE, isZero: true }]);
        expect(vmo.counters().residentPages).toBe(1);
      }
    }
  });

  it('EvictionHintsOpRange: hints on committed pages succeed with no request; unaligned ranges round out', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(8);
    await commit(tp, vmo, 0, 4);
    for (const op of [VmoOp.DONT_NEED, VmoOp.ALWAYS_NEED, VmoOp.RELEASE_ALWAYS_NEED, VmoOp.PREFETCH]) {
      await vmo.opRange(op, 0, 4 * PAGE_SIZE);
      tp.expectNoRequest();
    }
    // Unaligned: [PAGE_SIZE - 1, +2) touches pages 0 and 1.
    await vmo.opRange(VmoOp.DONT_NEED, PAGE_SIZE - 1, 2);
    expect(queueOfPage(vmo, 0)).toBe(Queue.DontNeed);
    expect(queueOfPage(vmo, 1)).toBe(Queue.DontNeed);
    expect(queueOfPage(vmo, 2)).not.toBe(Queue.DontNeed);
    // DONT_NEED over pages never supplied: no request, commits nothing.
    await vmo.opRange(VmoOp.DONT_NEED, 4 * PAGE_SIZE, 4 * PAGE_SIZE);
    tp.expectNoRequest();
    expect(vmo.attributedPagesInRange(4 * PAGE_SIZE, 4 * PAGE_SIZE)).toBe(0);
    // Unaligned ALWAYS_NEED over missing pages asks for the rounded-out range.
    const b = new Blocked(vmo.opRange(VmoOp.ALWAYS_NEED, 5 * PAGE_SIZE + 100, PAGE_SIZE));
    tp.expectRequest('READ', vmo, 5, 2);
    tp.supply(vmo, 5, 2);
    await b.expectDone();
    expect(queueOfPage(vmo, 5)).toBe(Queue.AlwaysNeed);
    expect(queueOfPage(vmo, 6)).toBe(Queue.AlwaysNeed);
    checkBudget(tp.system);
  });

  it('EvictionHintsOpRange: a range past the end is OUT_OF_RANGE for every hint and changes nothing', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4);
    await commit(tp, vmo, 0, 4);
    for (const op of [VmoOp.DONT_NEED, VmoOp.ALWAYS_NEED, VmoOp.RELEASE_ALWAYS_NEED, VmoOp.PREFETCH]) {
      await expectZx(vmo.opRange(op, 2 * PAGE_SIZE, 3 * PAGE_SIZE), ZxStatus.ERR_OUT_OF_RANGE);
      await expectZx(vmo.opRange(op, 5 * PAGE_SIZE, PAGE_SIZE), ZxStatus.ERR_OUT_OF_RANGE);
    }
    tp.expectNoRequest();
    for (let p = 0; p < 4; p++) expect(ageOfPage(vmo, p)).toBe(0);
  });

  it('EvictionHintsOpRange: hints on a non-pager VMO succeed and do nothing', async () => {
    const tp = new TestPager();
    const anon = tp.system.createVmo(4 * PAGE_SIZE);
    await anon.write(new Uint8Array(PAGE_SIZE).fill(1), 0);
    for (const op of [VmoOp.DONT_NEED, VmoOp.ALWAYS_NEED, VmoOp.RELEASE_ALWAYS_NEED, VmoOp.PREFETCH]) {
      await anon.opRange(op, 0, 4 * PAGE_SIZE);
    }
    expect(anon.attributedPagesInRange(0, 4 * PAGE_SIZE)).toBe(1);
    expect(queueOfPage(anon, 0)).toBe(Queue.Anonymous);
    expect(tp.system.queues.counts().dontNeed).toBe(0);
    expect(tp.system.queues.counts().alwaysNeed).toBe(0);
    await expectZx(anon.opRange(VmoOp.DONT_NEED, 0, 5 * PAGE_SIZE), ZxStatus.ERR_OUT_OF_RANGE);
    tp.expectNoRequest();
  });

  it("EvictionHintsWithClones: ALWAYS_NEED via a clone requests only the clone's unforked pages; DONT_NEED raises nothing", async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4);
    await commit(tp, vmo, 0, 2);
    const clone = vmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PAGE_SIZE) as VmObjectPaged;
    await clone.write(new Uint8Array(2 * PAGE_SIZE).fill(0x5a), 0); // forks pages 0 and 1
    // The parent loses its copies: only the clone's forks stay.
    expect(tp.system.reclaim(10, EvictionLevel.OutOfMemory)).toBe(2);
    expect(resident(vmo)).toEqual([]);
    await clone.opRange(VmoOp.DONT_NEED, 0, 4 * PAGE_SIZE);
    tp.expectNoRequest();
    const b = new Blocked(clone.opRange(VmoOp.ALWAYS_NEED, 0, 4 * PAGE_SIZE));
    tp.expectRequest('READ', vmo, 2, 2);
    tp.supply(vmo, 2, 2);
    await b.expectDone();
    tp.expectNoRequest();
    expect(resident(vmo)).toEqual([2, 3]);
    expect(queueOfPage(vmo, 2)).toBe(Queue.AlwaysNeed);
    expect(queueOfPage(clone, 0)).toBe(Queue.Anonymous);
    checkBudget(tp.system);
  });

  // `EvictionHintsVmar`, `EvictionHintsNestedVmar`, `EvictionHintsCloneVmar` have no pagerfs
  // counterpart: the model has no VMARs (address ranges), so hints are given on VMOs only (above).
});

// -------------------------------------------------------------------------------------------------
describe('eviction hints (kernel unit tests)', () => {
  it('vmo_eviction_hints_test: reclaim refuses always-need pages; reclaim that ignores hints (OOM) still succeeds', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(3);
    await commit(tp, vmo, 0, 3);
    await vmo.opRange(VmoOp.ALWAYS_NEED, 0, 3 * PAGE_SIZE);
    age(tp, 6);
    expect(tp.system.reclaim(3, EvictionLevel.OnlyOldest)).toBe(0);
    expect(resident(vmo)).toEqual([0, 1, 2]);
    const before = tp.system.evictor.counters.alwaysNeedOverrides;
    expect(tp.system.reclaim(2, EvictionLevel.OutOfMemory)).toBe(2);
    expect(tp.system.evictor.counters.alwaysNeedOverrides - before).toBe(2);
    expect(resident(vmo)).toHaveLength(1);
    checkBudget(tp.system);
  });

  it('ALWAYS_NEED is sticky: DONT_NEED moves the page to the front of reclaim but does not lift the protection', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    await commit(tp, vmo, 0, 2);
    await vmo.opRange(VmoOp.ALWAYS_NEED, 0, PAGE_SIZE);
    await vmo.opRange(VmoOp.DONT_NEED, 0, 2 * PAGE_SIZE);
    age(tp, 6);
    expect(tp.system.reclaim(5, EvictionLevel.OnlyOldest)).toBe(1);
    expect(resident(vmo)).toEqual([0]);
    // Again, with the page back on its protected queue.
    await vmo.opRange(VmoOp.DONT_NEED, 0, PAGE_SIZE);
    expect(tp.system.reclaim(5, EvictionLevel.OnlyOldest)).toBe(0);
    expect(resident(vmo)).toEqual([0]);
  });

  it('RELEASE_ALWAYS_NEED lifts the protection: the page is evictable again (via DONT_NEED or by aging)', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    await commit(tp, vmo, 0, 2);
    await vmo.opRange(VmoOp.ALWAYS_NEED, 0, 2 * PAGE_SIZE);
    await vmo.opRange(VmoOp.DONT_NEED, 0, PAGE_SIZE);
    await vmo.opRange(VmoOp.RELEASE_ALWAYS_NEED, 0, 2 * PAGE_SIZE);
    // Page 0: released while on DONT_NEED, goes first.
    expect(tp.system.reclaim(1, EvictionLevel.OnlyOldest)).toBe(1);
    expect(resident(vmo)).toEqual([1]);
    // Page 1: back on the newest (active) generation; evictable once it ages out of the active ones.
    expect(tp.system.reclaim(1, EvictionLevel.OnlyOldest)).toBe(0);
    age(tp, 2);
    expect(tp.system.reclaim(1, EvictionLevel.OnlyOldest)).toBe(1);
    expect(resident(vmo)).toEqual([]);
    expect(tp.system.evictor.counters.alwaysNeedOverrides).toBe(0);
    tp.expectNoRequest();
  });

  it('the OutOfMemory level reaches always-need pages, after everything else', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4);
    await commit(tp, vmo, 0, 4);
    await vmo.opRange(VmoOp.ALWAYS_NEED, 0, 2 * PAGE_SIZE);
    // Pages 2, 3 are newest-generation (active): OOM takes them before the protected ones.
    expect(tp.system.reclaim(2, EvictionLevel.OutOfMemory)).toBe(2);
    expect(resident(vmo)).toEqual([0, 1]);
    expect(tp.system.evictor.counters.alwaysNeedOverrides).toBe(0);
    expect(tp.system.reclaim(2, EvictionLevel.OutOfMemory)).toBe(2);
    expect(resident(vmo)).toEqual([]);
    expect(tp.system.evictor.counters.alwaysNeedOverrides).toBe(2);
    checkBudget(tp.system);
  });

  it("vmo_eviction_hints_clone_test: hints via clones reach the root's pages; forked pages are unaffected", async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4);
    await commit(tp, vmo, 0, 4);
    const clone = vmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PAGE_SIZE) as VmObjectPaged;
    await clone.write(new Uint8Array(1).fill(1), PAGE_SIZE); // fork page 1
    const grandchild = clone.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PAGE_SIZE) as VmObjectPaged;
    await grandchild.opRange(VmoOp.DONT_NEED, 0, 4 * PAGE_SIZE);
    // Page 1 resolves to the clone's fork from the grandchild: the root's page 1 is not hinted.
    expect([0, 2, 3].map((p) => queueOfPage(vmo, p))).toEqual([Queue.DontNeed, Queue.DontNeed, Queue.DontNeed]);
    expect(queueOfPage(vmo, 1)).not.toBe(Queue.DontNeed);
    expect(queueOfPage(clone, 1)).toBe(Queue.Anonymous);
    await clone.opRange(VmoOp.ALWAYS_NEED, 0, 4 * PAGE_SIZE);
    expect([0, 2, 3].map((p) => queueOfPage(vmo, p))).toEqual([Queue.AlwaysNeed, Queue.AlwaysNeed, Queue.AlwaysNeed]);
    expect(queueOfPage(vmo, 1)).not.toBe(Queue.AlwaysNeed);
    expect(queueOfPage(clone, 1)).toBe(Queue.Anonymous);
    // Through a slice, too.
    const vmo2 = tp.createVmo(4);
    await commit(tp, vmo2, 0, 4);
    const slice = vmo2.createChild(ChildOptions.SLICE, 2 * PAGE_SIZE, 2 * PAGE_SIZE);
    await slice.opRange(VmoOp.DONT_NEED, 0, PAGE_SIZE);
    expect(queueOfPage(vmo2, 2)).toBe(Queue.DontNeed);
    expect(queueOfPage(vmo2, 3)).not.toBe(Queue.DontNeed);
    expect(queueOfPage(vmo2, 0)).not.toBe(Queue.DontNeed);
    tp.expectNoRequest();
    checkBudget(tp.system);
  });
});

// -------------------------------------------------------------------------------------------------
describe('eviction order', () => {
  it('DONT_NEED first, then the oldest generation; active generations only at the OOM level', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4); // A=0, B=1, C=2, D=3
    await commit(tp, vmo, 0, 1);
    age(tp, 2);
    await commit(tp, vmo, 1, 1);
    age(tp, 2);
    await commit(tp, vmo, 2, 2);
    await vmo.opRange(VmoOp.DONT_NEED, 3 * PAGE_SIZE, PAGE_SIZE);
    expect([ageOfPage(vmo, 0), ageOfPage(vmo, 1), ageOfPage(vmo, 2)]).toEqual([4, 2, 0]);
    const c = tp.system.evictor.counters;
    expect(tp.system.reclaim(1)).toBe(1);
    expect(resident(vmo)).toEqual([0, 1, 2]);
    expect(c.evictedFromDontNeed).toBe(1);
    expect(tp.system.reclaim(1)).toBe(1);
    expect(resident(vmo)).toEqual([1, 2]);
    expect(c.evictedByGeneration[4]).toBe(1);
    expect(tp.system.reclaim(1)).toBe(1);
    expect(resident(vmo)).toEqual([2]);
    expect(c.evictedByGeneration[2]).toBe(1);
    expect(tp.system.reclaim(1)).toBe(0); // C is active
    expect(resident(vmo)).toEqual([2]);
    expect(tp.system.reclaim(1, EvictionLevel.OutOfMemory)).toBe(1);
    expect(resident(vmo)).toEqual([]);
    expect(c.evictedByGeneration[0]).toBe(1);
    expect(c.evictedPages).toBe(4);
    checkBudget(tp.system);
  });

  it('a recently read page survives a pass that takes an older one (harvested access)', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    await commit(tp, vmo, 0, 2);
    age(tp, 4);
    await tp.read(vmo, 1, 1).expectDone();
    tp.system.harvestAccessedBits();
    age(tp, 2); // the read page is now 2 generations old, the other 6
    expect(tp.system.reclaim(1)).toBe(1);
    expect(resident(vmo)).toEqual([1]);
    checkBudget(tp.system);
  });

  it('a recently read page survives a pass that takes an older one (second chance, no harvest)', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(3);
    await commit(tp, vmo, 0, 3);
    age(tp, 4);
    // All three are equally old; page 0 is the oldest of them but was just read.
    await tp.read(vmo, 0, 1).expectDone();
    const chances = tp.system.evictor.counters.secondChances;
    expect(tp.system.reclaim(1)).toBe(1);
    expect(resident(vmo)).toEqual([0, 2]);
    expect(tp.system.evictor.counters.secondChances - chances).toBe(1);
    expect(ageOfPage(vmo, 0)).toBe(0);
    expect(tp.system.reclaim(1)).toBe(1);
    expect(resident(vmo)).toEqual([0]);
    checkBudget(tp.system);
  });
});

// -------------------------------------------------------------------------------------------------
describe('what may never be evicted', () => {
  it('pinned, dirty, awaiting-clean, anonymous and clone-private pages survive even the OOM level', async () => {
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE });
    const vmo = tp.createVmo(8);
    await commit(tp, vmo, 0, 8);
    // (A COW child cannot be made of a VMO holding pins: clone first.)
    const clone = vmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 8 * PAGE_SIZE) as VmObjectPaged;
    await clone.write(new Uint8Array(1).fill(4), 7 * PAGE_SIZE);
    await vmo.commitRangePinned(0, PAGE_SIZE); // 0: pinned
    await vmo.write(new Uint8Array(1).fill(1), PAGE_SIZE); // 1: dirty
    await vmo.write(new Uint8Array(1).fill(2), 2 * PAGE_SIZE); // 2: awaiting clean
    tp.writebackBegin(vmo, 2, 1);
    await vmo.opRange(VmoOp.ALWAYS_NEED, 3 * PAGE_SIZE, PAGE_SIZE); // 3: always-need
    const anon = tp.system.createVmo(2 * PAGE_SIZE);
    await anon.write(new Uint8Array(2 * PAGE_SIZE).fill(3), 0);
    age(tp, 8);

    expect(tp.system.reclaim(100, EvictionLevel.OnlyOldest)).toBe(4); // 4, 5, 6, 7 of the parent
    expect(resident(vmo)).toEqual([0, 1, 2, 3]);
    expect(tp.system.reclaim(100, EvictionLevel.OutOfMemory)).toBe(1); // the always-need page
    expect(resident(vmo)).toEqual([0, 1, 2]);
    expect(resident(anon)).toEqual([0, 1]);
    expect(resident(clone)).toEqual([7]);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, false]]);
    // The evictor's own decision refuses each of them directly, too.
    for (const p of [0, 1, 2]) expect(tp.system.evictor.evictPage(frameOf(vmo, p), true)).toBe(false);
    expect(tp.system.evictor.evictPage(frameOf(anon, 0), true)).toBe(false);
    expect(tp.system.evictor.evictPage(frameOf(clone, 7), true)).toBe(false);
    // Data intact.
    expect((await readBytes(vmo, PAGE_SIZE, 1))[0]).toBe(1);
    expect((await readBytes(clone, 7 * PAGE_SIZE, 1))[0]).toBe(4);
    // Once clean / unpinned they go.
    tp.writebackEnd(vmo, 2, 1);
    tp.writebackBegin(vmo, 1, 1);
    tp.writebackEnd(vmo, 1, 1);
    vmo.unpin(0, PAGE_SIZE);
    expect(tp.system.reclaim(100, EvictionLevel.OutOfMemory)).toBe(3);
    expect(resident(vmo)).toEqual([]);
    checkBudget(tp.system);
  });

  it('a pinned Dirty page cannot be cleaned by writeback, so stays unevictable until unpinned', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    await commit(tp, vmo, 0, 1);
    await vmo.write(new Uint8Array(1).fill(1), 0);
    await vmo.commitRangePinned(0, PAGE_SIZE);
    tp.writebackBegin(vmo, 0, 1);
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    vmo.unpin(0, PAGE_SIZE);
    expect(tp.system.reclaim(1, EvictionLevel.OutOfMemory)).toBe(0);
    tp.writebackBegin(vmo, 0, 1);
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.system.reclaim(1, EvictionLevel.OutOfMemory)).toBe(1);
  });
});

// -------------------------------------------------------------------------------------------------
describe('eviction effects (vmo_eviction_test)', () => {
  it('eviction lowers committed counts and bumps the eviction counters', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4);
    await commit(tp, vmo, 0, 4);
    age(tp, 2);
    const used = tp.system.arena.usedFrames;
    expect(vmo.counters().residentPages).toBe(4);
    expect(tp.system.reclaim(3)).toBe(3);
    expect(vmo.counters().residentPages).toBe(1);
    expect(vmo.attributedPagesInRange(0, 4 * PAGE_SIZE)).toBe(1);
    expect(vmo.evictedPagedCount).toBe(3);
    expect(vmo.counters().evictedPages).toBe(3);
    expect(tp.system.arena.usedFrames).toBe(used - 3);
    const s = tp.system.stats();
    expect(s.evictor.evictedPages).toBe(3);
    expect(s.evictor.reclaimRounds).toBe(1);
    expect(s.evictor.evictedByGeneration.reduce((a, b) => a + b, 0)).toBe(3);
    expect(s.residentBytes).toBe(tp.system.arena.usedFrames * PAGE_SIZE);
    expect(tp.dirtyRanges(vmo)).toEqual([]); // an evicted page leaves no trace
    checkBudget(tp.system);
  });

  it('a page cannot be evicted through the wrong VMO; pinned pages are not evictable', async () => {
    const tp = new TestPager();
    const a = tp.createVmo(2);
    const b = tp.createVmo(2);
    await commit(tp, a, 0, 2);
    await commit(tp, b, 0, 2);
    expect(() => b.evictFrame(frameOf(a, 0))).toThrow(InternalError);
    expect(resident(a)).toEqual([0, 1]);
    await a.commitRangePinned(0, PAGE_SIZE);
    expect(tp.system.evictor.evictPage(frameOf(a, 0), true)).toBe(false);
    expect(() => a.evictFrame(frameOf(a, 0))).toThrow(InternalError);
    expect(tp.system.evictor.evictPage(frameOf(a, 1), false)).toBe(true);
    expect(resident(a)).toEqual([0]);
    expect(a.evictedPagedCount).toBe(1);
    expect(b.evictedPagedCount).toBe(0);
    checkBudget(tp.system);
  });

  it('an evicted page faults to the pager again and reads the same bytes', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4);
    await commit(tp, vmo, 0, 4);
    const first = await readBytes(vmo, 0, 4 * PAGE_SIZE);
    await vmo.opRange(VmoOp.DONT_NEED, PAGE_SIZE, 2 * PAGE_SIZE);
    expect(tp.system.reclaim(2)).toBe(2);
    expect(resident(vmo)).toEqual([0, 3]);
    const r = tp.read(vmo, 0, 4);
    tp.expectRequest('READ', vmo, 1, 2);
    await r.expectBlocked();
    tp.supply(vmo, 1, 2);
    const again = await r.expectDone();
    expect(bytesEqual(again, first)).toBe(true);
    expect(isPattern(again, 1, 0)).toBe(true);
    expect(vmo.counters().faults).toBeGreaterThanOrEqual(2);
    checkBudget(tp.system);
  });

  it('written-back data that is evicted comes back from the pager unchanged', async () => {
    const tp = new TestPager();
    const ap = new AutoPager(tp.system);
    ap.start();
    try {
      const f = ap.createFile(3);
      const data = new Uint8Array(PAGE_SIZE + 10).map((_, i) => (i * 13 + 5) & 0xff);
      await f.vmo.write(data, 100);
      ap.writeback(f);
      expect(ap.pager.queryDirtyRanges(f.vmo, 0, f.vmo.sizeBytes).ranges).toEqual([]);
      expect(tp.system.reclaim(10, EvictionLevel.OutOfMemory)).toBe(2); // pages 0 and 1
      const before = ap.stats.readPackets;
      const back = await readBytes(f.vmo, 0, 3 * PAGE_SIZE);
      expect(ap.stats.readPackets).toBeGreaterThan(before);
      expect(bytesEqual(back.subarray(100, 100 + data.length), data)).toBe(true);
      expect(bytesEqual(back.subarray(0, 100), patternPage(f.key, 0).subarray(0, 100))).toBe(true);
      expect(bytesEqual(back.subarray(2 * PAGE_SIZE), patternPage(f.key, 2))).toBe(true);
      expect(ap.errors).toEqual([]);
    } finally {
      await ap.stop();
    }
  });

  it('a page supplied to an outstanding request is not evicted until the request is answered in full', async () => {
    // pagerfs decision (SEMANTICS: "not under an operation in flight"): pages of a request still
    // outstanding are in flight. Evicting one would leave the request waiting for a page the pager
    // already supplied and will not supply again; so the evictor passes them over until the request
    // retires, after which they are ordinary clean pages and a later fault asks again.
    const tp = new TestPager({ requestTimeoutMs: 3000 });
    const vmo = tp.createVmo(2);
    const r = tp.read(vmo, 0, 2);
    tp.expectRequest('READ', vmo, 0, 2);
    tp.supply(vmo, 0, 1);
    expect(tp.system.reclaim(1, EvictionLevel.OutOfMemory)).toBe(0);
    expect(vmo.counters().residentPages).toBe(1);
    tp.supply(vmo, 1, 1); // the request has now been answered in full
    const buf = await r.expectDone();
    expect(isPattern(buf, 1, 0)).toBe(true);
    tp.expectNoRequest();
    expect(tp.system.reclaim(2, EvictionLevel.OutOfMemory)).toBe(2);
    const again = tp.read(vmo, 0, 1);
    await again.expectBlocked();
    tp.expectRequest('READ', vmo, 0, 1);
    tp.supply(vmo, 0, 1);
    expect(isPattern(await again.expectDone(), 1, 0)).toBe(true);
  });
});

// -------------------------------------------------------------------------------------------------
describe('evictor targets (evictor_unittest.cc)', () => {
  /** 128-page budget (low 2, high 4): n inactive pager pages, nothing else resident. */
  async function setup(n: number): Promise<{ tp: TestPager; vmo: VmObjectPaged }> {
    const tp = new TestPager({ budgetBytes: 128 * PAGE_SIZE });
    const vmo = tp.createVmo(n);
    await commit(tp, vmo, 0, n);
    age(tp, 3);
    expect(tp.system.arena.freeFrames).toBe(128 - n);
    return { tp, vmo };
  }

  it('evictor_pager_backed_test: a round frees exactly max(free target - free, minimum)', async () => {
    const { tp, vmo } = await setup(40);
    const ev = tp.system.evictor;
    expect(ev.reclaim(95, 2, EvictionLevel.OnlyOldest)).toBe(7); // 95 - 88 > 2
    expect(tp.system.arena.freeFrames).toBe(95);
    expect(vmo.counters().residentPages).toBe(33);
    expect(ev.reclaim(0, 5, EvictionLevel.OnlyOldest)).toBe(5); // target met: the minimum
    expect(tp.system.arena.freeFrames).toBe(100);
    expect(ev.carriedMinFrames).toBe(0);
    expect(vmo.evictedPagedCount).toBe(12);
    checkBudget(tp.system);
  });

  it('evictor_free_target_test: a met target evicts nothing; raising it evicts the difference; a minimum is honoured', async () => {
    const { tp } = await setup(40);
    const ev = tp.system.evictor;
    expect(ev.reclaim(95, 0, EvictionLevel.OnlyOldest)).toBe(7);
    const rounds = ev.counters.reclaimRounds;
    expect(ev.reclaim(95, 0, EvictionLevel.OnlyOldest)).toBe(0);
    expect(ev.reclaim(90, 0, EvictionLevel.OnlyOldest)).toBe(0);
    expect(ev.counters.reclaimRounds).toBe(rounds); // nothing to do: no round at all
    expect(ev.reclaim(100, 0, EvictionLevel.OnlyOldest)).toBe(5);
    expect(tp.system.arena.freeFrames).toBe(100);
    expect(ev.reclaim(100, 3, EvictionLevel.OnlyOldest)).toBe(3);
    expect(tp.system.arena.freeFrames).toBe(103);
    checkBudget(tp.system);
  });

  it('evictor_min_target_carried_over_test: a round capped short of its minimum carries the rest over', async () => {
    const tp = new TestPager({ budgetBytes: 128 * PAGE_SIZE });
    const old = tp.createVmo(10);
    await commit(tp, old, 0, 10);
    age(tp, 3);
    const young = tp.createVmo(10);
    await commit(tp, young, 0, 10); // active: out of reach at OnlyOldest
    const ev = tp.system.evictor;
    expect(ev.reclaim(0, 15, EvictionLevel.OnlyOldest)).toBe(10);
    expect(ev.carriedMinFrames).toBe(5);
    age(tp, 2); // the young pages become inactive
    expect(ev.reclaim(0, 0, EvictionLevel.OnlyOldest)).toBe(5); // the carried minimum
    expect(ev.carriedMinFrames).toBe(0);
    expect(young.counters().residentPages).toBe(5);
    expect(ev.reclaim(0, 0, EvictionLevel.OnlyOldest)).toBe(0);
    checkBudget(tp.system);
  });

  it('evictor_combine_targets_test: a carried minimum adds to the next round\'s minimum', async () => {
    const tp = new TestPager({ budgetBytes: 128 * PAGE_SIZE });
    const old = tp.createVmo(4);
    await commit(tp, old, 0, 4);
    age(tp, 3);
    const young = tp.createVmo(20);
    await commit(tp, young, 0, 20);
    const ev = tp.system.evictor;
    expect(ev.reclaim(0, 7, EvictionLevel.OnlyOldest)).toBe(4);
    expect(ev.carriedMinFrames).toBe(3);
    age(tp, 2);
    expect(ev.reclaim(0, 2, EvictionLevel.OnlyOldest)).toBe(5); // 2 + 3
    expect(ev.carriedMinFrames).toBe(0);
    // With a free target as well: max(target - free, min + carried).
    const free = tp.system.arena.freeFrames;
    expect(ev.reclaim(free + 6, 1, EvictionLevel.OnlyOldest)).toBe(6);
    checkBudget(tp.system);
  });

  it('evictor_external_target_test: a one-shot external eviction frees what it asks and leaves the carried target alone', async () => {
    const tp = new TestPager({ budgetBytes: 128 * PAGE_SIZE });
    const old = tp.createVmo(4);
    await commit(tp, old, 0, 4);
    age(tp, 3);
    const young = tp.createVmo(20);
    await commit(tp, young, 0, 20);
    const ev = tp.system.evictor;
    expect(ev.reclaim(0, 7, EvictionLevel.OnlyOldest)).toBe(4);
    expect(ev.carriedMinFrames).toBe(3);
    age(tp, 2);
    // system.reclaim is the one-shot path (vmtouch evict): exactly its own count ...
    expect(tp.system.reclaim(2)).toBe(2);
    // ... and the stored (carried) target is still owed.
    expect(ev.carriedMinFrames).toBe(3);
    expect(ev.reclaim(0, 0, EvictionLevel.OnlyOldest)).toBe(3);
  });
});
