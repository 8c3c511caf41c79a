/**
 * PAGER-TESTS.md §6 "Clones (COW children, slices, snapshots)": one test per checklist line
 * (Fuchsia core tests `pager`, `pager-writeback`, `snapshot`). pagerfs: SNAPSHOT of a pager-backed
 * VMO is NOT_SUPPORTED; SNAPSHOT of an anonymous VMO is an eager copy.
 */
import { describe, expect, it } from 'vitest';
import {
  ChildOptions, ZxStatus, type VmObject,
} from '../../src/index.js';
import { Blocked, TestPager, isPattern, keyOf } from './userpager.js';
import { P, cow, expectZx, expectZxRejects, filled, isFilled, modified, readSync } from './clone-helpers.js';

describe('clones', () => {
  // pager.cc CloneReadFromCloneTest
  it('reading through a clone raises the READ on the root VMO and the supply satisfies the clone', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    const clone = cow(vmo, 0, 1);
    const r = tp.read(clone, 0, 1);
    await r.expectBlocked();
    tp.expectRequest('READ', vmo, 0, 1);
    tp.supply(vmo, 0, 1);
    expect(isPattern(await r.expectDone(), keyOf(vmo), 0)).toBe(true);
    tp.expectNoRequest();
    expect(vmo.attributedPagesInRange(0, P)).toBe(1);
    expect(clone.attributedPagesInRange(0, P)).toBe(0);
  });

  // pager.cc CloneReadFromParentTest
  it('a page read in through the parent is visible to the clone without another request', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    const clone = cow(vmo, 0, 1);
    const r = tp.read(vmo, 0, 1);
    tp.expectRequest('READ', vmo, 0, 1);
    tp.supply(vmo, 0, 1);
    expect(isPattern(await r.expectDone(), keyOf(vmo), 0)).toBe(true);
    expect(isPattern(readSync(clone, 0, P), keyOf(vmo), 0)).toBe(true);
    tp.expectNoRequest();
  });

  // pager.cc CloneSimultaneousReadTest, CloneSimultaneousChildReadTest
  it('concurrent reads through parent and clone, or through two clones, raise one request', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    const c1 = cow(vmo, 0, 1);
    const r1 = tp.read(vmo, 0, 1);
    const r2 = tp.read(c1, 0, 1);
    await r1.expectBlocked();
    await r2.expectBlocked();
    tp.expectRequest('READ', vmo, 0, 1);
    tp.expectNoRequest();
    tp.supply(vmo, 0, 1);
    expect(isPattern(await r1.expectDone(), keyOf(vmo), 0)).toBe(true);
    expect(isPattern(await r2.expectDone(), keyOf(vmo), 0)).toBe(true);
    tp.expectNoRequest();

    const vmo2 = tp.createVmo(1);
    const a = cow(vmo2, 0, 1);
    const b = cow(vmo2, 0, 1);
    const ra = tp.read(a, 0, 1);
    const rb = tp.read(b, 0, 1);
    await ra.expectBlocked();
    await rb.expectBlocked();
    tp.expectRequest('READ', vmo2, 0, 1);
    tp.expectNoRequest();
    tp.supply(vmo2, 0, 1);
    expect(isPattern(await ra.expectDone(), keyOf(vmo2), 0)).toBe(true);
    expect(isPattern(await rb.expectDone(), keyOf(vmo2), 0)).toBe(true);
    tp.expectNoRequest();
  });

  // pager.cc CloneWriteToCloneTest
  it('a write to a clone faults the root page in but never reaches the parent', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    const key = keyOf(vmo);
    const clone = cow(vmo, 0, 1);
    const w = new Blocked(clone.write(new Uint8Array([0xde, 0xad, 0xbe, 0xef]), 0));
    await w.expectBlocked();
    tp.expectRequest('READ', vmo, 0, 1);
    tp.supply(vmo, 0, 1);
    await w.expectDone();
    expect(isPattern(readSync(vmo, 0, P), key, 0)).toBe(true);
    const c = readSync(clone, 0, P);
    expect(Array.from(c.subarray(0, 4))).toEqual([0xde, 0xad, 0xbe, 0xef]);
    const p = readSync(vmo, 0, P);
    expect(Array.from(c.subarray(4))).toEqual(Array.from(p.subarray(4)));
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    tp.expectNoRequest();
  });

  // pager.cc CloneDetachTest
  it('after the parent is detached, forked clone pages stay readable and unforked ones fail BAD_STATE', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(3);
    const clone = cow(vmo, 0, 3);
    const t1 = tp.read(clone, 1, 1);
    await t1.expectBlocked();
    tp.expectRequest('READ', vmo, 1, 1);
    const t2 = new Blocked(clone.write(new Uint8Array([0xef, 0xbe, 0xad, 0xde]), 0));
    await t2.expectBlocked();
    tp.expectRequest('READ', vmo, 0, 1);
    tp.supply(vmo, 0, 2);
    expect(isPattern(await t1.expectDone(), keyOf(vmo), 1)).toBe(true);
    await t2.expectDone();

    tp.pager.detachVmo(vmo);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    // Page 2: never paged in, not forked.
    await expectZxRejects(clone.read(new Uint8Array(P), 2 * P), ZxStatus.ERR_BAD_STATE);
    // Page 1: paged in earlier but not forked: decommitted by the detach.
    await expectZxRejects(clone.read(new Uint8Array(P), P), ZxStatus.ERR_BAD_STATE);
    // Page 0: forked by the clone.
    expect(Array.from(readSync(clone, 0, 4))).toEqual([0xef, 0xbe, 0xad, 0xde]);
    tp.expectNoRequest();
  });

  // pager.cc CloneCommitTest, CloneChainCommitTest
  it('committing a clone (or a clone of a clone) raises one READ (0, n) on the root; the middle clone holds no pages', async () => {
    const n = 32;
    const tp = new TestPager();
    const vmo = tp.createVmo(n);
    const clone = cow(vmo, 0, n);
    const c = tp.commit(clone, 0, n);
    await c.expectBlocked();
    tp.expectRequest('READ', vmo, 0, n);
    tp.expectNoRequest();
    tp.supply(vmo, 0, n);
    await c.expectDone();
    expect(vmo.attributedPagesInRange(0, n * P)).toBe(n);
    expect(isPattern(readSync(clone, 0, n * P), keyOf(vmo), 0)).toBe(true);
    tp.expectNoRequest();

    const vmo2 = tp.createVmo(n);
    const intermediate = cow(vmo2, 0, n);
    const leaf = cow(intermediate, 0, n);
    const c2 = tp.commit(leaf, 0, n);
    await c2.expectBlocked();
    tp.expectRequest('READ', vmo2, 0, n);
    tp.expectNoRequest();
    tp.supply(vmo2, 0, n);
    await c2.expectDone();
    expect(intermediate.attributedPagesInRange(0, n * P)).toBe(0);
    expect(isPattern(readSync(leaf, 0, n * P), keyOf(vmo2), 0)).toBe(true);
    tp.expectNoRequest();
  });

  // pager.cc CloneMightSeeIntermediateForks, CloneSeesCorrectParentPages
  it('a clone sees its parent as of the right moment and never a sibling\'s forks', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    const key = keyOf(vmo);
    tp.supply(vmo, 0, 2);
    const a = cow(vmo, 0, 2);
    await a.write(filled(P, 0x11), 0);
    const b = cow(vmo, 0, 2); // sibling of a: sees the root, not a's fork
    expect(isPattern(readSync(b, 0, 2 * P), key, 0)).toBe(true);
    const c = cow(a, 0, 2); // child of a: sees a's fork and the root's page 1
    expect(isFilled(readSync(c, 0, P), 0x11)).toBe(true);
    expect(isPattern(readSync(c, P, P), key, 1)).toBe(true);
    await c.write(filled(P, 0x33), P);
    expect(isPattern(readSync(a, P, P), key, 1)).toBe(true);
    expect(isPattern(readSync(b, P, P), key, 1)).toBe(true);
    await b.write(filled(P, 0x22), 0);
    expect(isFilled(readSync(a, 0, P), 0x11)).toBe(true);
    expect(isFilled(readSync(c, 0, P), 0x11)).toBe(true);
    expect(isPattern(readSync(vmo, 0, 2 * P), key, 0)).toBe(true);
    tp.expectNoRequest();
  });

  // pager.cc DeepHierarchy
  it('a 1000-deep clone chain is created, read through and destroyed cleanly', async () => {
    const tp = new TestPager();
    const base = tp.system.stats().vmoCount;
    const vmo = tp.createVmo(1);
    const chain: VmObject[] = [vmo];
    for (let i = 0; i < 1000; i++) chain.push(cow(chain[chain.length - 1], 0, 1));
    const r = tp.read(chain[chain.length - 1], 0, 1);
    await r.expectBlocked();
    tp.expectRequest('READ', vmo, 0, 1);
    tp.supply(vmo, 0, 1);
    expect(isPattern(await r.expectDone(), keyOf(vmo), 0)).toBe(true);
    expect(tp.system.stats().vmoCount).toBe(base + 1001);
    for (const v of chain) v.close();
    expect(tp.system.stats().vmoCount).toBe(base);
    expect(tp.system.arena.usedFrames).toBe(0);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    tp.system.debugValidate();
  });

  // pager-writeback.cc NoDirtyRequestsForClones
  it('writing a clone of a TRAP_DIRTY VMO raises READ on the parent, never DIRTY; writing the parent still traps', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(2);
    const clone = cow(vmo, 0, 2);
    const w = tp.write(clone, 0, 1, 0xaa);
    await w.expectBlocked();
    tp.expectRequest('READ', vmo, 0, 1);
    tp.expectNoRequest();
    tp.supply(vmo, 0, 1);
    await w.expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(isFilled(readSync(clone, 0, P), 0xaa)).toBe(true);

    const pw = tp.write(vmo, 0, 1, 0xbb);
    await pw.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 0, 1);
    tp.dirty(vmo, 0, 1);
    await pw.expectDone();
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    expect(isFilled(readSync(clone, 0, P), 0xaa)).toBe(true);
    tp.expectNoRequest();
  });

  // pager-writeback.cc OpZeroClone
  it('zeroing whole pages of a clone needs no request and leaves the parent untouched', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(2);
    const key = keyOf(vmo);
    tp.supply(vmo, 0, 1);
    const clone = cow(vmo, 0, 2);
    const z = new Blocked(clone.zeroRange(0, 2 * P));
    await z.expectDone();
    tp.expectNoRequest();
    expect(isFilled(readSync(clone, 0, 2 * P), 0)).toBe(true);
    expect(isPattern(readSync(vmo, 0, P), key, 0)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(modified(tp, vmo)).toBe(false);
    tp.expectNoRequest();
  });

  // pager-writeback.cc NoQueryOnClone, NotModifiedCloneWrite
  it('dirty-range query and stats on a clone are INVALID_ARGS; a clone write does not mark the parent modified', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    tp.supply(vmo, 0, 1);
    expect(modified(tp, vmo)).toBe(false);
    const clone = cow(vmo, 0, 1);
    await clone.write(filled(P, 0xcc), 0);
    expect(modified(tp, vmo)).toBe(false);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(isPattern(readSync(vmo, 0, P), keyOf(vmo), 0)).toBe(true);
    expect(isFilled(readSync(clone, 0, P), 0xcc)).toBe(true);
    expectZx(() => tp.pager.queryDirtyRanges(clone, 0, P), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.queryVmoStats(clone, false), ZxStatus.ERR_INVALID_ARGS);
    tp.expectNoRequest();
  });

  // pager-writeback.cc SlicePinWrite, SliceWrite, SliceOpZero
  it('through a slice, requests appear on the parent at parent offsets; query/stats on a slice are INVALID_ARGS; OP_ZERO needs no DIRTY', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(4);
    const slice = vmo.createChild(ChildOptions.SLICE, P, 3 * P);
    // SliceWrite
    const w = tp.write(slice, 0, 1, 0xaa);
    await w.expectBlocked();
    tp.expectRequest('READ', vmo, 1, 1);
    tp.supply(vmo, 1, 1);
    await w.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 1, 1);
    tp.dirty(vmo, 1, 1);
    await w.expectDone();
    expect(isFilled(readSync(vmo, P, P), 0xaa)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false]]);
    // SlicePinWrite
    const pin = new Blocked(slice.commitRangePinned(P, P, true));
    await pin.expectBlocked();
    tp.expectRequest('READ', vmo, 2, 1);
    tp.supply(vmo, 2, 1);
    await pin.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 2, 1);
    tp.dirty(vmo, 2, 1);
    await pin.expectDone();
    expect(vmo.counters().pinnedPages).toBe(1);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, false]]);
    slice.unpin(P, P);
    expect(vmo.counters().pinnedPages).toBe(0);
    // SliceOpZero: whole pages zeroed without DIRTY (or READ).
    tp.supply(vmo, 3, 1);
    await new Blocked(slice.zeroRange(2 * P, P)).expectDone();
    tp.expectNoRequest();
    expect(isFilled(readSync(vmo, 3 * P, P), 0)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, false], [3, 1, true]]);
    // Queries on the slice.
    expectZx(() => tp.pager.queryDirtyRanges(slice, 0, P), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => tp.pager.queryVmoStats(slice, false), ZxStatus.ERR_INVALID_ARGS);
    tp.expectNoRequest();
  });

  // pager.cc DecommitTest
  it('decommit on a pager VMO or its COW child is NOT_SUPPORTED and frees nothing', () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    tp.supply(vmo, 0, 2);
    const clone = cow(vmo, 0, 2);
    expectZx(() => vmo.decommitRange(0, P), ZxStatus.ERR_NOT_SUPPORTED);
    expectZx(() => clone.decommitRange(0, P), ZxStatus.ERR_NOT_SUPPORTED);
    expect(vmo.attributedPagesInRange(0, 2 * P)).toBe(2);
    expect(isPattern(readSync(clone, 0, 2 * P), keyOf(vmo), 0)).toBe(true);
    tp.expectNoRequest();
  });

  describe('snapshot suite (condensed to what a user sees)', () => {
    // snapshot.cc Smoke (pagerfs: SNAPSHOT of pager-backed VMOs is NOT_SUPPORTED)
    it('SNAPSHOT of a pager VMO or of its COW clone is NOT_SUPPORTED and creates no child', () => {
      const tp = new TestPager();
      const vmo = tp.createVmo(2);
      expectZx(() => vmo.createChild(ChildOptions.SNAPSHOT, 0, 2 * P), ZxStatus.ERR_NOT_SUPPORTED);
      expect(vmo.children.size).toBe(0);
      const clone = cow(vmo, 0, 2);
      expectZx(() => clone.createChild(ChildOptions.SNAPSHOT, 0, 2 * P), ZxStatus.ERR_NOT_SUPPORTED);
      expect(clone.children.size).toBe(0);
      tp.expectNoRequest();
    });

    // snapshot.cc Smoke, on an anonymous VMO (eager copy)
    it('SNAPSHOT of an anonymous VMO is an eager copy: later writes on either side stay private', async () => {
      const tp = new TestPager();
      const anon = tp.system.createVmo(2 * P);
      await anon.write(filled(P, 0x11), 0);
      const snap = anon.createChild(ChildOptions.SNAPSHOT, 0, 2 * P);
      expect(snap.attributedPagesInRange(0, 2 * P)).toBe(1);
      await anon.write(filled(P, 0x22), 0);
      expect(isFilled(readSync(snap, 0, P), 0x11)).toBe(true);
      await snap.write(filled(P, 0x33), P);
      expect(isFilled(readSync(anon, P, P), 0)).toBe(true);
      expect(isFilled(readSync(anon, 0, P), 0x22)).toBe(true);
      anon.close();
      expect(isFilled(readSync(snap, 0, P), 0x11)).toBe(true);
      expect(isFilled(readSync(snap, P, P), 0x33)).toBe(true);
    });

    it('a resizable anonymous VMO with a snapshot shrinks and grows; the snapshot keeps its copy', async () => {
      const tp = new TestPager();
      const anon = tp.system.createVmo(4 * P, { resizable: true });
      await anon.write(filled(4 * P, 0x44), 0);
      const snap = anon.createChild(ChildOptions.SNAPSHOT, 0, 4 * P);
      anon.resize(2 * P); // threw InternalError half way (a snapshot is not a see-through child)
      expect(anon.contentSizeBytes).toBe(2 * P);
      anon.resize(4 * P);
      expect(isFilled(readSync(anon, 2 * P, 2 * P), 0)).toBe(true);
      expect(isFilled(readSync(snap, 0, 4 * P), 0x44)).toBe(true);
    });

    // snapshot.cc AtLeastOnWriteAfterSnapshotModified, SnapshotModifiedAfterAtLeastOnWrite
    it('a child of a modified clone sees the modification; each view keeps its own writes', async () => {
      const tp = new TestPager();
      const vmo = tp.createVmo(2);
      const key = keyOf(vmo);
      tp.supply(vmo, 0, 2);
      const a = cow(vmo, 0, 2);
      const sibling = cow(vmo, 0, 2);
      await a.write(filled(P, 0x11), 0);
      const b = cow(a, 0, 2);
      expect(isFilled(readSync(b, 0, P), 0x11)).toBe(true);
      await b.write(filled(P, 0x55), 0);
      await a.write(filled(P, 0x66), P);
      expect(isFilled(readSync(a, 0, P), 0x11)).toBe(true);
      expect(isFilled(readSync(a, P, P), 0x66)).toBe(true);
      expect(isFilled(readSync(b, 0, P), 0x55)).toBe(true);
      // b has not forked page 1: AT_LEAST_ON_WRITE lets it see a's later write or a's content before
      // it (the root's page), never anything else.
      const bPage1 = readSync(b, P, P);
      expect(isFilled(bPage1, 0x66) || isPattern(bPage1, key, 1)).toBe(true);
      expect(isPattern(readSync(vmo, 0, 2 * P), key, 0)).toBe(true);
      expect(isPattern(readSync(sibling, 0, 2 * P), key, 0)).toBe(true);
      // Once b forks page 1 it is b's alone.
      await b.write(filled(P, 0x77), P);
      expect(isFilled(readSync(b, P, P), 0x77)).toBe(true);
      expect(isFilled(readSync(a, P, P), 0x66)).toBe(true);
      expect(isPattern(readSync(vmo, P, P), key, 1)).toBe(true);
      expect(isPattern(readSync(sibling, P, P), key, 1)).toBe(true);
      tp.expectNoRequest();
    });

    // snapshot.cc AtLeastOnWriteAfterSnapshotModified, SnapshotModifiedAfterAtLeastOnWrite, on the
    // VMOs where pagerfs allows both kinds: an anonymous root, where either kind is an eager copy.
    it.each([
      { first: 'SNAPSHOT', second: 'SNAPSHOT_AT_LEAST_ON_WRITE' },
      { first: 'SNAPSHOT_AT_LEAST_ON_WRITE', second: 'SNAPSHOT' },
    ] as const)('on an anonymous VMO, a $second child of a modified $first child keeps every view\'s writes private', async ({ first, second }) => {
      const tp = new TestPager();
      const root = tp.system.createVmo(2 * P);
      await root.write(filled(2 * P, 0x10), 0);
      const mid = root.createChild(ChildOptions[first], 0, 2 * P);
      await mid.write(filled(P, 0x20), 0);
      const leaf = mid.createChild(ChildOptions[second], 0, 2 * P);
      expect(isFilled(readSync(leaf, 0, P), 0x20)).toBe(true);
      expect(isFilled(readSync(leaf, P, P), 0x10)).toBe(true);
      // A write on each side, on pages the others still share with it.
      await root.write(filled(P, 0x11), P);
      await mid.write(filled(P, 0x21), P);
      await leaf.write(filled(P, 0x31), 0);
      await mid.write(filled(P, 0x22), 0);
      const pages = (v: VmObject): number[] => [readSync(v, 0, P), readSync(v, P, P)].map((buf) => (isFilled(buf, buf[0]) ? buf[0] : -1));
      expect(pages(root)).toEqual([0x10, 0x11]);
      expect(pages(mid)).toEqual([0x22, 0x21]);
      expect(pages(leaf)).toEqual([0x31, 0x10]);
      root.close();
      mid.close();
      expect(pages(leaf)).toEqual([0x31, 0x10]);
      tp.expectNoRequest();
    });

    // snapshot.cc SnapshotModifiedAfterAtLeastOnWrite, under a pager root: only AT_LEAST_ON_WRITE
    // chains exist there, so the snapshot steps become AT_LEAST_ON_WRITE and each view is checked.
    it('under a pager root SNAPSHOT is refused at every depth; AT_LEAST_ON_WRITE chains keep each view\'s writes', async () => {
      const tp = new TestPager();
      const vmo = tp.createVmo(2);
      const key = keyOf(vmo);
      tp.supply(vmo, 0, 2);
      await vmo.write(filled(P, 0xd1), 0);
      const alow1 = cow(vmo, 0, 2);
      const alow2 = cow(vmo, 0, 2);
      // SEMANTICS.md "Clones and slices": SNAPSHOT of a pager-backed VMO (root or clone) is NOT_SUPPORTED;
      // two kinds at once name no kind (INVALID_ARGS). The reverse order (SNAPSHOT first) cannot start.
      expectZx(() => vmo.createChild(ChildOptions.SNAPSHOT, 0, 2 * P), ZxStatus.ERR_NOT_SUPPORTED);
      expectZx(() => alow1.createChild(ChildOptions.SNAPSHOT, 0, 2 * P), ZxStatus.ERR_NOT_SUPPORTED);
      expectZx(() => alow1.createChild(ChildOptions.SNAPSHOT | ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 2 * P),
        ZxStatus.ERR_INVALID_ARGS);
      expect(alow1.children.size).toBe(0);
      const alowOfAlow = cow(alow1, 0, 2);
      const clone = cow(vmo, 0, 2);
      await clone.write(filled(P, 0xc0), 0);
      const cloneChild = cow(clone, 0, 2);
      const page0 = (v: VmObject): number => {
        const buf = readSync(v, 0, P);
        return isFilled(buf, buf[0]) ? buf[0] : -1;
      };
      expect([alow1, alow2, alowOfAlow].map(page0)).toEqual([0xd1, 0xd1, 0xd1]);
      expect([clone, cloneChild].map(page0)).toEqual([0xc0, 0xc0]);
      // Writes on every side: a forked page belongs to its view alone.
      await alowOfAlow.write(filled(P, 0x31), 0);
      await alow1.write(filled(P, 0x32), 0);
      await cloneChild.write(filled(P, 0x33), 0);
      await clone.write(filled(P, 0x34), 0);
      await vmo.write(filled(P, 0xd2), 0);
      expect([vmo, alow1, alowOfAlow, clone, cloneChild].map(page0)).toEqual([0xd2, 0x32, 0x31, 0x34, 0x33]);
      // alow2 never forked page 0: it may see the root's later write, or the page as it was.
      expect([0xd1, 0xd2]).toContain(page0(alow2));
      for (const v of [vmo, alow1, alow2, alowOfAlow, clone, cloneChild]) expect(isPattern(readSync(v, P, P), key, 1)).toBe(true);
      tp.expectNoRequest();
    });

    // snapshot.cc DropVmos, ReleaseCowParentPages{Left,Right,LeftAndRight,RightInHiddenNode}
    it('dropping a middle clone (and the root handle) changes no survivor\'s view; the last close frees everything', async () => {
      const tp = new TestPager();
      const vmo = tp.createVmo(3);
      const key = keyOf(vmo);
      tp.supply(vmo, 0, 3);
      const a = cow(vmo, 0, 3);
      await a.write(filled(P, 0x11), 0);
      await a.write(filled(P, 0x22), 2 * P);
      const b = cow(a, 0, 3);
      const sibling = cow(vmo, 0, 3);
      a.close();
      expect(isFilled(readSync(b, 0, P), 0x11)).toBe(true);
      expect(isPattern(readSync(b, P, P), key, 1)).toBe(true);
      expect(isFilled(readSync(b, 2 * P, P), 0x22)).toBe(true);
      expect(isPattern(readSync(sibling, 0, 3 * P), key, 0)).toBe(true);
      vmo.close();
      tp.expectNoRequest(); // children keep the root alive: no COMPLETE yet
      expect(isPattern(readSync(b, P, P), key, 1)).toBe(true);
      sibling.close();
      b.close();
      tp.expectRequest('COMPLETE', vmo, 0, 0);
      expect(tp.system.arena.usedFrames).toBe(0);
      tp.system.debugValidate();
    });

    // snapshot.cc ResizeShrinkSnapshot*
    it('shrinking a resizable clone releases its pages past the end; growing it again exposes zeros', async () => {
      const tp = new TestPager();
      const vmo = tp.createVmo(2);
      const key = keyOf(vmo);
      tp.supply(vmo, 0, 2);
      const a = cow(vmo, 0, 2, true);
      await a.write(filled(2 * P, 0x11), 0);
      expect(a.attributedPagesInRange(0, 2 * P)).toBe(2);
      const used = tp.system.arena.usedFrames;
      a.resize(P);
      expect(a.attributedPagesInRange(0, P)).toBe(1);
      expect(tp.system.arena.usedFrames).toBe(used - 1);
      a.resize(2 * P);
      expect(isFilled(readSync(a, P, P), 0)).toBe(true);
      expect(isPattern(readSync(vmo, P, P), key, 1)).toBe(true);
      tp.expectNoRequest();
    });

    // snapshot.cc SnapshotReadOnlyVmo has no pagerfs counterpart: VMOs carry no rights, so there is no
    // read-only VMO to snapshot; Zircon's ZX_VMO_CHILD_NO_WRITE (1 << 5) is an unknown option here.
    it('the NO_WRITE child option (a read-only child) is refused: INVALID_ARGS, no child', () => {
      const tp = new TestPager();
      const vmo = tp.createVmo(1);
      const NO_WRITE = 1 << 5;
      expectZx(() => vmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE | NO_WRITE, 0, P), ZxStatus.ERR_INVALID_ARGS);
      expect(vmo.children.size).toBe(0);
      tp.expectNoRequest();
    });

    // snapshot.cc ZeroRange*InSnapshot*
    it('zeroing a range in a clone never lets root pages, supplied before or after, leak into it', () => {
      const tp = new TestPager();
      const vmo = tp.createVmo(3);
      const key = keyOf(vmo);
      tp.supply(vmo, 0, 1);
      const a = cow(vmo, 0, 3);
      return a.zeroRange(0, 3 * P).then(() => {
        tp.expectNoRequest();
        expect(isFilled(readSync(a, 0, 3 * P), 0)).toBe(true);
        tp.supply(vmo, 1, 2);
        expect(isFilled(readSync(a, 0, 3 * P), 0)).toBe(true);
        expect(isPattern(readSync(vmo, 0, 3 * P), key, 0)).toBe(true);
        tp.expectNoRequest();
      });
    });
  });
});
