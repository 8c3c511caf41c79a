/**
 * Page queues: which queue a page sits on as its state changes, aging through the LRU generations,
 * move-on-access, the dirty queue and writeback (PAGER-TESTS §7, vmo_move_pages_on_access_test,
 * vmo_eviction_hints_test (queue half), vmo_dirty_pages_test, vmo_dirty_pages_writeback_test,
 * vmo_dirty_pages_with_hints_test).
 */
import { describe, expect, it } from 'vitest';
import { ChildOptions, PAGE_SIZE, VmoOp, type VmObjectPaged } from '../../src/index.js';
import { ACTIVE_GENERATIONS, RECLAIM_GENERATIONS } from '../../src/page-queues.js';
import { EvictionLevel } from '../../src/evictor.js';
import { TestPager, isPattern } from './userpager.js';
import { NO_FRAME, Queue, TRAP, ageOfPage, checkBudget, commit, frameOf, queueOfPage } from './eviction-helpers.js';

function sumCounts(tp: TestPager): number {
  const c = tp.system.queues.counts();
  return c.anonymous + c.wired + c.pagerDirty + c.alwaysNeed + c.dontNeed + c.reclaim.reduce((a, b) => a + b, 0);
}

describe('page queues: placement', () => {
  it('policy constants mirror Zircon (8 reclaim generations, 2 active)', () => {
    expect(RECLAIM_GENERATIONS).toBe(8);
    expect(ACTIVE_GENERATIONS).toBe(2);
    const tp = new TestPager();
    expect(tp.system.queues.counts().reclaim).toHaveLength(8);
  });

  it('every held frame is on exactly one queue, by state; counts are exact', async () => {
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE });
    const anon = tp.system.createVmo(3 * PAGE_SIZE);
    await anon.write(new Uint8Array(3 * PAGE_SIZE).fill(1), 0);
    const vmo = tp.createVmo(8);
    await commit(tp, vmo, 0, 8);
    await vmo.write(new Uint8Array(10).fill(7), 2 * PAGE_SIZE); // page 2 Dirty (no TRAP_DIRTY)
    await vmo.commitRangePinned(4 * PAGE_SIZE, PAGE_SIZE);
    await vmo.opRange(VmoOp.ALWAYS_NEED, 5 * PAGE_SIZE, PAGE_SIZE);
    await vmo.opRange(VmoOp.DONT_NEED, 6 * PAGE_SIZE, PAGE_SIZE);

    expect(queueOfPage(vmo, 2)).toBe(Queue.PagerDirty);
    expect(queueOfPage(vmo, 4)).toBe(Queue.Wired);
    expect(queueOfPage(vmo, 5)).toBe(Queue.AlwaysNeed);
    expect(queueOfPage(vmo, 6)).toBe(Queue.DontNeed);
    for (const p of [0, 1, 3, 7]) expect(ageOfPage(vmo, p)).toBe(0);
    anon.lookup(0, anon.sizeBytes, (_p, fr) => expect(tp.system.queues.queueOf(fr)).toBe(Queue.Anonymous));

    expect(tp.system.queues.counts()).toEqual({
      anonymous: 3, wired: 1, pagerDirty: 1, alwaysNeed: 1, dontNeed: 1, reclaim: [4, 0, 0, 0, 0, 0, 0, 0],
    });
    expect(sumCounts(tp)).toBe(tp.system.arena.usedFrames);
    vmo.unpin(4 * PAGE_SIZE, PAGE_SIZE);
    expect(queueOfPage(vmo, 4)).not.toBe(Queue.Wired);
    expect(sumCounts(tp)).toBe(tp.system.arena.usedFrames);
    checkBudget(tp.system);
  });

  it('a pinned page is Wired whatever else it is, and returns to its own queue when unpinned', async () => {
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE });
    const vmo = tp.createVmo(4);
    await commit(tp, vmo, 0, 4);
    await vmo.opRange(VmoOp.ALWAYS_NEED, 0, PAGE_SIZE);
    await vmo.write(new Uint8Array(1), PAGE_SIZE);
    await vmo.commitRangePinned(0, 3 * PAGE_SIZE);
    for (const p of [0, 1, 2]) expect(queueOfPage(vmo, p)).toBe(Queue.Wired);
    await vmo.commitRangePinned(0, PAGE_SIZE); // pinned twice
    vmo.unpin(0, 3 * PAGE_SIZE);
    expect(queueOfPage(vmo, 0)).toBe(Queue.Wired); // still pinned once
    expect(queueOfPage(vmo, 1)).toBe(Queue.PagerDirty);
    expect(tp.system.queues.isReclaimQueue(queueOfPage(vmo, 2))).toBe(true);
    vmo.unpin(0, PAGE_SIZE);
    expect(queueOfPage(vmo, 0)).toBe(Queue.AlwaysNeed);
    expect(() => vmo.unpin(0, PAGE_SIZE)).toThrow(/not pinned/);
    checkBudget(tp.system);
  });

  it("a clone's private (forked) pages are on the anonymous queue; the parent's stay on reclaim queues", async () => {
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE });
    const vmo = tp.createVmo(2);
    await commit(tp, vmo, 0, 2);
    const clone = vmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 2 * PAGE_SIZE) as VmObjectPaged;
    await clone.write(new Uint8Array(4).fill(3), 0);
    expect(queueOfPage(clone, 0)).toBe(Queue.Anonymous);
    expect(tp.system.queues.isReclaimQueue(queueOfPage(vmo, 0))).toBe(true);
    checkBudget(tp.system);
  });
});

describe('page queues: aging and access (vmo_move_pages_on_access_test)', () => {
  it('a new page is in the newest generation; each aging step moves it one older', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    await commit(tp, vmo, 0, 1);
    expect(ageOfPage(vmo, 0)).toBe(0);
    for (let i = 1; i < RECLAIM_GENERATIONS; i++) {
      tp.system.agePages();
      expect(ageOfPage(vmo, 0)).toBe(i);
    }
    // The oldest generation is the floor: further steps keep the page there (merged, not lost).
    for (let i = 0; i < 5; i++) tp.system.agePages();
    expect(ageOfPage(vmo, 0)).toBe(RECLAIM_GENERATIONS - 1);
    expect(tp.system.queues.counts().reclaim).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
    checkBudget(tp.system);
  });

  it('an access puts the page in the newest generation (on harvest); one aging step moves it one older', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    await commit(tp, vmo, 0, 2);
    for (let i = 0; i < 4; i++) tp.system.agePages();
    expect(ageOfPage(vmo, 0)).toBe(4);
    const r = tp.read(vmo, 0, 1);
    await r.expectDone();
    expect(isPattern(r.value!, 1, 0)).toBe(true);
    expect(tp.system.harvestAccessedBits()).toBe(1);
    expect(ageOfPage(vmo, 0)).toBe(0);
    expect(ageOfPage(vmo, 1)).toBe(4); // not accessed: stays
    tp.system.agePages();
    expect(ageOfPage(vmo, 0)).toBe(1);
    expect(ageOfPage(vmo, 1)).toBe(5);
    // A second harvest with no access moves nothing.
    expect(tp.system.harvestAccessedBits()).toBe(0);
    expect(ageOfPage(vmo, 0)).toBe(1);
    checkBudget(tp.system);
  });

  it("a read through a clone refreshes the parent's page", async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    await commit(tp, vmo, 0, 2);
    const clone = vmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 2 * PAGE_SIZE) as VmObjectPaged;
    for (let i = 0; i < 3; i++) tp.system.agePages();
    expect(ageOfPage(vmo, 1)).toBe(3);
    const r = tp.read(clone, 1, 1);
    await r.expectDone();
    expect(isPattern(r.value!, 1, 1)).toBe(true);
    tp.system.harvestAccessedBits();
    expect(ageOfPage(vmo, 1)).toBe(0);
    expect(ageOfPage(vmo, 0)).toBe(3);
    expect(frameOf(clone, 1)).toBe(NO_FRAME); // a read does not fork
    checkBudget(tp.system);
  });

  it('a read through a slice refreshes the target page', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4);
    await commit(tp, vmo, 0, 4);
    const slice = vmo.createChild(ChildOptions.SLICE, 2 * PAGE_SIZE, 2 * PAGE_SIZE);
    for (let i = 0; i < 3; i++) tp.system.agePages();
    await tp.read(slice, 1, 1).expectDone();
    tp.system.harvestAccessedBits();
    expect(ageOfPage(vmo, 3)).toBe(0);
    expect(ageOfPage(vmo, 2)).toBe(3);
  });

  it('aging past the last generation merges, keeping oldest-first order and every page', async () => {
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE });
    const vmo = tp.createVmo(12);
    // Page i supplied i aging steps after page 0: 12 distinct ages, more than 8 generations.
    for (let i = 0; i < 12; i++) {
      await commit(tp, vmo, i, 1);
      tp.system.agePages();
    }
    const counts = tp.system.queues.counts();
    expect(counts.reclaim.reduce((a, b) => a + b, 0)).toBe(12);
    // Pages 0..4 all merged into the oldest generation, the rest one per generation.
    expect(counts.reclaim).toEqual([0, 1, 1, 1, 1, 1, 1, 6]);
    expect(ageOfPage(vmo, 11)).toBe(1);
    checkBudget(tp.system);
    // The evictor takes them in supply order, oldest first.
    const order: number[] = [];
    for (let i = 0; i < 12; i++) {
      expect(tp.system.reclaim(1, EvictionLevel.OutOfMemory)).toBe(1);
      for (let p = 0; p < 12; p++) if (!order.includes(p) && frameOf(vmo, p) === NO_FRAME) order.push(p);
    }
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    checkBudget(tp.system);
  });
});

describe('page queues: hints (vmo_eviction_hints_test)', () => {
  it('DONT_NEED moves pages to the DontNeed queue; an access pulls a page out to the newest generation', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(3);
    await commit(tp, vmo, 0, 3);
    for (let i = 0; i < 3; i++) tp.system.agePages();
    await vmo.opRange(VmoOp.DONT_NEED, 0, 2 * PAGE_SIZE);
    expect(queueOfPage(vmo, 0)).toBe(Queue.DontNeed);
    expect(queueOfPage(vmo, 1)).toBe(Queue.DontNeed);
    expect(ageOfPage(vmo, 2)).toBe(3);
    expect(tp.system.queues.counts().dontNeed).toBe(2);
    await tp.read(vmo, 1, 1).expectDone();
    expect(ageOfPage(vmo, 1)).toBe(0);
    expect(queueOfPage(vmo, 0)).toBe(Queue.DontNeed);
    // A write pulls it out too (and makes it dirty, whose queue wins).
    await vmo.write(new Uint8Array(1), 0);
    expect(queueOfPage(vmo, 0)).toBe(Queue.PagerDirty);
    tp.expectNoRequest();
    checkBudget(tp.system);
  });

  it('ALWAYS_NEED moves pages to the protected queue; a later DONT_NEED keeps the protection (sticky)', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    await commit(tp, vmo, 0, 2);
    await vmo.opRange(VmoOp.ALWAYS_NEED, 0, PAGE_SIZE);
    expect(queueOfPage(vmo, 0)).toBe(Queue.AlwaysNeed);
    expect(tp.system.queues.counts().alwaysNeed).toBe(1);
    await vmo.opRange(VmoOp.DONT_NEED, 0, 2 * PAGE_SIZE);
    // Moved to the front of reclaim, but still flagged: the evictor gives it back to its queue.
    expect(queueOfPage(vmo, 1)).toBe(Queue.DontNeed);
    expect(tp.system.reclaim(2, EvictionLevel.OnlyOldest)).toBe(1);
    expect(frameOf(vmo, 1)).toBe(NO_FRAME);
    expect(queueOfPage(vmo, 0)).toBe(Queue.AlwaysNeed);
    checkBudget(tp.system);
  });

  it('an always-need page pulled out of DontNeed by an access goes back to the always-need queue', async () => {
    // page-queues.ts: "pager page Clean with AlwaysNeed -> AlwaysNeed"; the queue is a function of state.
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    await commit(tp, vmo, 0, 1);
    await vmo.opRange(VmoOp.ALWAYS_NEED, 0, PAGE_SIZE);
    await vmo.opRange(VmoOp.DONT_NEED, 0, PAGE_SIZE);
    await tp.read(vmo, 0, 1).expectDone();
    // Still protected (sticky) wherever it sits ...
    tp.system.harvestAccessedBits();
    for (let i = 0; i < 4; i++) tp.system.agePages();
    expect(tp.system.reclaim(1, EvictionLevel.OnlyOldest)).toBe(0);
    expect(frameOf(vmo, 0)).not.toBe(NO_FRAME);
    // ... and it should sit on the always-need queue, where counts() reports it.
    expect(queueOfPage(vmo, 0)).toBe(Queue.AlwaysNeed);
    expect(tp.system.queues.counts().alwaysNeed).toBe(1);
  });

  it('RELEASE_ALWAYS_NEED (pagerfs extension) puts the page back on the newest generation', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    await commit(tp, vmo, 0, 2);
    for (let i = 0; i < 3; i++) tp.system.agePages();
    await vmo.opRange(VmoOp.ALWAYS_NEED, 0, 2 * PAGE_SIZE);
    await vmo.opRange(VmoOp.RELEASE_ALWAYS_NEED, 0, PAGE_SIZE);
    expect(ageOfPage(vmo, 0)).toBe(0);
    expect(queueOfPage(vmo, 1)).toBe(Queue.AlwaysNeed);
    // Releasing a page that is not protected changes nothing.
    await vmo.opRange(VmoOp.RELEASE_ALWAYS_NEED, 0, PAGE_SIZE);
    expect(ageOfPage(vmo, 0)).toBe(0);
    tp.expectNoRequest();
    checkBudget(tp.system);
  });
});

describe('page queues: dirty pages (vmo_dirty_pages_test and friends)', () => {
  it('dirty pages live on their own queue; reads, harvest, aging and eviction do not move them', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    await commit(tp, vmo, 0, 2);
    await vmo.write(new Uint8Array(8).fill(5), 0);
    expect(queueOfPage(vmo, 0)).toBe(Queue.PagerDirty);
    expect(tp.system.queues.counts().pagerDirty).toBe(1);
    await tp.read(vmo, 0, 1).expectDone();
    tp.system.harvestAccessedBits();
    for (let i = 0; i < 10; i++) tp.system.agePages();
    expect(queueOfPage(vmo, 0)).toBe(Queue.PagerDirty);
    expect(tp.system.reclaim(10, EvictionLevel.OutOfMemory)).toBe(1); // only page 1
    expect(queueOfPage(vmo, 0)).toBe(Queue.PagerDirty);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    checkBudget(tp.system);
  });

  it('dirty pages of a TRAP_DIRTY VMO are on the dirty queue too', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1, TRAP);
    await commit(tp, vmo, 0, 1);
    const w = tp.write(vmo, 0, 1);
    tp.expectRequest('DIRTY', vmo, 0, 1);
    tp.dirty(vmo, 0, 1);
    await w.expectDone();
    expect(queueOfPage(vmo, 0)).toBe(Queue.PagerDirty);
  });

  it('AwaitingClean stays on the dirty queue; after WRITEBACK_END the page returns to the newest generation', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    await commit(tp, vmo, 0, 1);
    for (let i = 0; i < 5; i++) tp.system.agePages();
    expect(ageOfPage(vmo, 0)).toBe(5);
    await vmo.write(new Uint8Array(1), 0);
    tp.writebackBegin(vmo, 0, 1);
    expect(queueOfPage(vmo, 0)).toBe(Queue.PagerDirty);
    for (let i = 0; i < 3; i++) tp.system.agePages();
    expect(queueOfPage(vmo, 0)).toBe(Queue.PagerDirty);
    tp.writebackEnd(vmo, 0, 1);
    expect(ageOfPage(vmo, 0)).toBe(0);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    checkBudget(tp.system);
  });

  it('hints do not move dirty pages; ALWAYS_NEED still applies once the page is clean, DONT_NEED does not', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    await commit(tp, vmo, 0, 2);
    await vmo.write(new Uint8Array(2 * PAGE_SIZE).fill(9), 0);
    await vmo.opRange(VmoOp.ALWAYS_NEED, 0, PAGE_SIZE);
    await vmo.opRange(VmoOp.DONT_NEED, PAGE_SIZE, PAGE_SIZE);
    expect(queueOfPage(vmo, 0)).toBe(Queue.PagerDirty);
    expect(queueOfPage(vmo, 1)).toBe(Queue.PagerDirty);
    tp.writebackBegin(vmo, 0, 2);
    tp.writebackEnd(vmo, 0, 2);
    expect(queueOfPage(vmo, 0)).toBe(Queue.AlwaysNeed);
    expect(ageOfPage(vmo, 1)).toBe(0);
    tp.system.harvestAccessedBits(); // the write's access is not news any more
    for (let i = 0; i < 3; i++) tp.system.agePages();
    // Page 1 is old and clean: evictable; page 0 is protected.
    expect(tp.system.reclaim(2, EvictionLevel.OnlyOldest)).toBe(1);
    expect(frameOf(vmo, 0)).not.toBe(NO_FRAME);
    expect(frameOf(vmo, 1)).toBe(NO_FRAME);
    tp.expectNoRequest();
    checkBudget(tp.system);
  });

  it('a page written during writeback stays dirty at END and on the dirty queue', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    await commit(tp, vmo, 0, 1);
    await vmo.write(new Uint8Array(1).fill(1), 0);
    tp.writebackBegin(vmo, 0, 1);
    await vmo.write(new Uint8Array(1).fill(2), 1);
    tp.writebackEnd(vmo, 0, 1);
    expect(queueOfPage(vmo, 0)).toBe(Queue.PagerDirty);
    expect(tp.system.reclaim(1, EvictionLevel.OutOfMemory)).toBe(0);
  });
});
