/**
 * PAGER-TESTS.md section 1 (supply / fail), plus the statuses of supplyPages and opRange(FAIL) from
 * SEMANTICS.md's "Statuses at a glance". Fuchsia test names are cited per test.
 */
import { describe, expect, it } from 'vitest';
import { ChildOptions, PAGE_SIZE, PagerOp, ZxStatus } from '../../src/index.js';
import { Blocked, isPattern, keyOf } from './userpager.js';
import {
  auxFilled, auxWithPattern, expectPatternNow, expectZx, isFill, readNow, supplyFill, usePagers,
} from './supply-helpers.js';

const make = usePagers();

describe('supplyPages', () => {
  // Fuchsia: SinglePageTest
  it('a read of one missing page raises exactly one READ (0,1) and completes with the supplied bytes', async () => {
    const t = make();
    const vmo = t.createVmo(4);
    const r = t.read(vmo, 0, 1);
    t.expectRequest('READ', vmo, 0, 1);
    t.expectNoRequest();
    await r.expectBlocked();
    expect(t.supply(vmo, 0, 1)).toBe(1);
    const buf = await r.expectDone();
    expect(isPattern(buf, keyOf(vmo), 0)).toBe(true);
    t.expectNoRequest();
  });

  // Fuchsia: PresupplyTest
  it('pages supplied before any access are read without any request', async () => {
    const t = make();
    const vmo = t.createVmo(4);
    expect(t.supply(vmo, 0, 4)).toBe(4);
    const buf = await t.read(vmo, 0, 4).expectDone();
    expect(isPattern(buf, keyOf(vmo), 0)).toBe(true);
    t.expectNoRequest();
    expect(vmo.counters().faults).toBe(0);
  });

  // Fuchsia: EarlySupplyTest
  it('a supply before the pager read the packet satisfies the reader and withdraws the stale packet', async () => {
    const t = make();
    const vmo = t.createVmo(4);
    const r = t.read(vmo, 1, 1);
    await r.expectBlocked();
    t.supply(vmo, 1, 1); // the pager never read the READ (1,1) packet
    const buf = await r.expectDone();
    expect(isPattern(buf, keyOf(vmo), 1)).toBe(true);
    t.expectNoRequest();
  });

  // Fuchsia: UncommittedSinglePageTest, UncommittedSupply
  it('supplying from uncommitted aux pages installs zero pages that read without a fault', async () => {
    const t = make();
    const vmo = t.createVmo(3);
    const aux = auxFilled(t, 3, [0xaa, undefined, 0xbb]); // page 1 of aux never committed
    expect(t.system.arena.usedFrames).toBe(2);
    expect(t.pager.supplyPages(vmo, 0, 3 * PAGE_SIZE, aux, 0)).toBe(3);
    expect(t.system.arena.usedFrames).toBe(3); // a real zero page was installed for page 1
    const buf = await t.read(vmo, 0, 3).expectDone();
    expect(isFill(buf.subarray(0, PAGE_SIZE), 0xaa)).toBe(true);
    expect(isFill(buf.subarray(PAGE_SIZE, 2 * PAGE_SIZE), 0)).toBe(true);
    expect(isFill(buf.subarray(2 * PAGE_SIZE), 0xbb)).toBe(true);
    t.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ residentPages: 3, faults: 0 });
  });

  // Fuchsia: OverlapSupplyTest
  it('supplyPages skips pages already present (first supply wins) and frees their aux frames', () => {
    const t = make();
    const vmo = t.createVmo(2);
    expect(supplyFill(t, vmo, 0, 1, 0x11)).toBe(1);
    const aux = auxFilled(t, 2, [0x22, 0x22]);
    expect(t.system.arena.usedFrames).toBe(3);
    expect(t.pager.supplyPages(vmo, 0, 2 * PAGE_SIZE, aux, 0)).toBe(1);
    expect(t.system.arena.usedFrames).toBe(2); // aux page 0 was freed, not leaked
    expect(aux.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(0);
    expect(isFill(readNow(vmo, 0, 1), 0x11)).toBe(true);
    expect(isFill(readNow(vmo, 1, 1), 0x22)).toBe(true);
    t.expectNoRequest();
  });

  // Fuchsia: BulkOddLengthSupplyTest, BulkOddOffsetSupplyTest
  it('supplies of odd lengths from odd aux offsets land the right bytes at the right pages', () => {
    const t = make();
    const lengths = [2, 3, 5, 7, 13, 23, 37];
    const total = lengths.reduce((a, b) => a + b, 0);
    const byLength = t.createVmo(total);
    let page = 0;
    for (const len of lengths) {
      expect(t.supply(byLength, page, len)).toBe(len);
      page += len;
    }
    expectPatternNow(byLength, 0, total);

    const byOffset = t.createVmo(total);
    const auxOffsets = [1, 3, 5, 7, 11, 13, 17];
    page = 0;
    lengths.forEach((len, i) => {
      const auxPage = auxOffsets[i];
      const aux = auxWithPattern(t, byOffset, auxPage + len + 1, auxPage, page, len);
      expect(t.pager.supplyPages(byOffset, page * PAGE_SIZE, len * PAGE_SIZE, aux, auxPage * PAGE_SIZE)).toBe(len);
      aux.close();
      page += len;
    });
    expectPatternNow(byOffset, 0, total);
    t.expectNoRequest();
    expect(t.system.arena.usedFrames).toBe(2 * total);
  });

  // Fuchsia: MappedSupplyPages
  it('supplyPages moves frames: the aux range reads zero afterwards and no frame is copied', () => {
    const t = make();
    const vmo = t.createVmo(4);
    const aux = auxWithPattern(t, vmo, 4, 0, 0, 4);
    expect(t.system.arena.usedFrames).toBe(4);
    t.pager.supplyPages(vmo, 0, 4 * PAGE_SIZE, aux, 0);
    expect(t.system.arena.usedFrames).toBe(4);
    expect(aux.attributedPagesInRange(0, 4 * PAGE_SIZE)).toBe(0);
    expect(vmo.attributedPagesInRange(0, 4 * PAGE_SIZE)).toBe(4);
    expect(isFill(readNow(aux, 0, 4), 0)).toBe(true);
    expectPatternNow(vmo, 0, 4);
  });

  // Fuchsia: PinnedSupplyPages
  it('a supply over a pinned page skips it and keeps its contents', async () => {
    const t = make();
    const vmo = t.createVmo(3);
    t.supply(vmo, 1, 1);
    await vmo.commitRangePinned(PAGE_SIZE, PAGE_SIZE);
    expect(vmo.counters().pinnedPages).toBe(1);
    expect(supplyFill(t, vmo, 0, 3, 0xee)).toBe(2);
    expectPatternNow(vmo, 1, 1);
    expect(isFill(readNow(vmo, 0, 1), 0xee)).toBe(true);
    expect(isFill(readNow(vmo, 2, 1), 0xee)).toBe(true);
    expect(vmo.counters().pinnedPages).toBe(1);
    expect(t.system.arena.usedFrames).toBe(3);
    vmo.unpin(PAGE_SIZE, PAGE_SIZE);
    t.expectNoRequest();
  });

  // Fuchsia: CannotOverwriteZeroPage
  it('a supply over a dirty zero range is a no-op: the zeros stay', async () => {
    const t = make();
    const vmo = t.createVmo(2);
    await vmo.zeroRange(0, PAGE_SIZE);
    t.expectNoRequest();
    expect(t.dirtyRanges(vmo)).toEqual([[0, 1, true]]);
    expect(supplyFill(t, vmo, 0, 1, 0x5a)).toBe(0);
    expect(isFill(readNow(vmo, 0, 1), 0)).toBe(true);
    expect(t.system.arena.usedFrames).toBe(0); // the supplied frame was freed
    expect(t.dirtyRanges(vmo)).toEqual([[0, 1, true]]);
    t.expectNoRequest();
  });

  // Fuchsia: MultisupplyCommitTest
  it('one 32-page request answered by 32 one-page supplies completes the commit', async () => {
    const t = make();
    const vmo = t.createVmo(32);
    const c = t.commit(vmo, 0, 32);
    t.expectRequest('READ', vmo, 0, 32);
    for (let i = 0; i < 32; i++) {
      await c.expectBlocked();
      expect(t.supply(vmo, i, 1)).toBe(1);
    }
    await c.expectDone();
    t.expectNoRequest();
    expectPatternNow(vmo, 0, 32);
  });

  // Fuchsia: MulticommitSupplyTest
  it('one supply satisfies several pending commits', async () => {
    const t = make();
    const vmo = t.createVmo(8);
    const commits = [t.commit(vmo, 0, 8), t.commit(vmo, 2, 3), t.commit(vmo, 6, 2), t.commit(vmo, 0, 8)];
    t.expectRequest('READ', vmo, 0, 8);
    t.expectNoRequest();
    for (const c of commits) await c.expectBlocked();
    t.supply(vmo, 0, 8);
    for (const c of commits) await c.expectDone();
    t.expectNoRequest();
  });

  // Fuchsia: CommitRedundantSupplyTest
  it('repeated redundant supplies of the same range are harmless and leak no frames', async () => {
    const t = make();
    const vmo = t.createVmo(4);
    const c = t.commit(vmo, 0, 4);
    t.expectRequest('READ', vmo, 0, 4);
    expect(t.supply(vmo, 0, 4)).toBe(4);
    await c.expectDone();
    for (let i = 0; i < 3; i++) expect(supplyFill(t, vmo, 0, 4, 0x33)).toBe(0);
    expect(t.system.arena.usedFrames).toBe(4);
    expectPatternNow(vmo, 0, 4);
    t.expectNoRequest();
  });

  // Fuchsia: SupplyAfterDetach
  it('supplyPages after detach fails with BAD_STATE and takes nothing from the aux VMO', () => {
    const t = make();
    const vmo = t.createVmo(2);
    t.pager.detachVmo(vmo);
    t.expectRequest('COMPLETE', vmo, 0, 0);
    const aux = auxFilled(t, 1, [0x44]);
    expectZx(() => t.pager.supplyPages(vmo, 0, PAGE_SIZE, aux, 0), ZxStatus.ERR_BAD_STATE);
    expect(vmo.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(0);
    expect(isFill(readNow(aux, 0, 1), 0x44)).toBe(true);
    expect(t.system.arena.usedFrames).toBe(1);
    t.expectNoRequest();
  });
});

describe('supplyPages statuses', () => {
  it('supplyPages with an unaligned offset, length or aux offset is INVALID_ARGS and moves nothing', () => {
    const t = make();
    const vmo = t.createVmo(4);
    const aux = auxFilled(t, 4, [1, 2, 3, 4]);
    expectZx(() => t.pager.supplyPages(vmo, 100, PAGE_SIZE, aux, 0), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => t.pager.supplyPages(vmo, 0, PAGE_SIZE + 1, aux, 0), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => t.pager.supplyPages(vmo, 0, PAGE_SIZE, aux, 512), ZxStatus.ERR_INVALID_ARGS);
    expect(vmo.attributedPagesInRange(0, 4 * PAGE_SIZE)).toBe(0);
    expect(aux.attributedPagesInRange(0, 4 * PAGE_SIZE)).toBe(4);
  });

  it('supplyPages into a VMO this pager did not create is INVALID_ARGS', () => {
    const t = make();
    const other = t.system.createPager();
    const foreign = other.createVmo(0, t.port, 99, 2 * PAGE_SIZE);
    const anon = t.system.createVmo(2 * PAGE_SIZE);
    const aux = auxFilled(t, 1, [7]);
    expectZx(() => t.pager.supplyPages(foreign, 0, PAGE_SIZE, aux, 0), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => t.pager.supplyPages(anon, 0, PAGE_SIZE, aux, 0), ZxStatus.ERR_INVALID_ARGS);
    const own = t.createVmo(2);
    const clone = own.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 2 * PAGE_SIZE);
    expectZx(() => t.pager.supplyPages(clone, 0, PAGE_SIZE, aux, 0), ZxStatus.ERR_INVALID_ARGS);
    expect(foreign.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(0);
    expect(aux.attributedPagesInRange(0, PAGE_SIZE)).toBe(1);
    other.close();
  });

  it('supplyPages past the end of the VMO or of the aux VMO is OUT_OF_RANGE', () => {
    const t = make();
    const vmo = t.createVmo(4);
    const aux = auxFilled(t, 2, [1, 2]);
    expectZx(() => t.pager.supplyPages(vmo, 3 * PAGE_SIZE, 2 * PAGE_SIZE, aux, 0), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => t.pager.supplyPages(vmo, 8 * PAGE_SIZE, 0, aux, 0), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => t.pager.supplyPages(vmo, 2 ** 40, 2 ** 40, aux, 0), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => t.pager.supplyPages(vmo, 0, 2 * PAGE_SIZE, aux, PAGE_SIZE), ZxStatus.ERR_OUT_OF_RANGE);
    expect(vmo.attributedPagesInRange(0, 4 * PAGE_SIZE)).toBe(0);
    expect(aux.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(2);
  });

  it('supplyPages from an aux VMO that is a snapshot clone of an anonymous VMO is BAD_STATE', () => {
    const t = make();
    const vmo = t.createVmo(2);
    const parent = auxFilled(t, 2, [5, 6]);
    const clone = parent.createChild(ChildOptions.SNAPSHOT, 0, 2 * PAGE_SIZE);
    expectZx(() => t.pager.supplyPages(vmo, 0, 2 * PAGE_SIZE, clone, 0), ZxStatus.ERR_BAD_STATE);
    expect(vmo.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(0);
  });

  it('supplyPages from an aux VMO that is a COW clone of a pager VMO is BAD_STATE', () => {
    const t = make();
    const vmo = t.createVmo(2);
    const src = t.createVmo(2);
    t.supply(src, 0, 2);
    const clone = src.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 2 * PAGE_SIZE);
    expectZx(() => t.pager.supplyPages(vmo, 0, 2 * PAGE_SIZE, clone, 0), ZxStatus.ERR_BAD_STATE);
    expect(vmo.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(0);
  });

  it('supplyPages from an aux VMO with children is BAD_STATE, and works once the child is gone', () => {
    const t = make();
    const vmo = t.createVmo(2);
    const aux = auxFilled(t, 2, [5, 6]);
    const child = aux.createChild(ChildOptions.SNAPSHOT, 0, 2 * PAGE_SIZE);
    expectZx(() => t.pager.supplyPages(vmo, 0, 2 * PAGE_SIZE, aux, 0), ZxStatus.ERR_BAD_STATE);
    expect(vmo.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(0);
    child.close();
    expect(t.pager.supplyPages(vmo, 0, 2 * PAGE_SIZE, aux, 0)).toBe(2);
    expect(isFill(readNow(vmo, 1, 1), 6)).toBe(true);
  });

  it('supplyPages from an aux range holding a pinned page is BAD_STATE; a range beside it works', async () => {
    const t = make();
    const vmo = t.createVmo(2);
    const aux = auxFilled(t, 2, [5, 6]);
    await aux.commitRangePinned(0, PAGE_SIZE);
    expectZx(() => t.pager.supplyPages(vmo, 0, 2 * PAGE_SIZE, aux, 0), ZxStatus.ERR_BAD_STATE);
    expect(vmo.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(0);
    expect(aux.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(2);
    expect(t.pager.supplyPages(vmo, PAGE_SIZE, PAGE_SIZE, aux, PAGE_SIZE)).toBe(1);
    expect(isFill(readNow(vmo, 1, 1), 6)).toBe(true);
    aux.unpin(0, PAGE_SIZE);
  });

  it('supplyPages from a pager VMO as aux is NOT_SUPPORTED', () => {
    const t = make();
    const vmo = t.createVmo(2);
    const pagerAux = t.createVmo(2);
    t.supply(pagerAux, 0, 2);
    expectZx(() => t.pager.supplyPages(vmo, 0, 2 * PAGE_SIZE, pagerAux, 0), ZxStatus.ERR_NOT_SUPPORTED);
    expect(vmo.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(0);
    expectPatternNow(pagerAux, 0, 2);
  });

  it('supplyPages moves committed frames at a full budget but is NO_MEMORY when a zero page needs a new one', async () => {
    const t = make({ budgetBytes: 16 * PAGE_SIZE });
    const vmo = t.createVmo(2);
    const filler = t.system.createVmo(15 * PAGE_SIZE);
    await filler.commitRange(0, 15 * PAGE_SIZE); // anonymous: never evicted
    const aux = auxFilled(t, 2, [9, undefined]);
    expect(t.system.arena.usedFrames).toBe(16);
    expect(t.pager.supplyPages(vmo, 0, PAGE_SIZE, aux, 0)).toBe(1); // a move needs no new frame
    expect(t.system.arena.usedFrames).toBe(16);
    // vmo's page 0 is clean and evictable: pin it so that nothing at all can be reclaimed.
    await vmo.commitRangePinned(0, PAGE_SIZE);
    expectZx(() => t.pager.supplyPages(vmo, PAGE_SIZE, PAGE_SIZE, aux, PAGE_SIZE), ZxStatus.ERR_NO_MEMORY);
    expect(t.system.arena.usedFrames).toBe(16);
    expect(vmo.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(1);
    t.system.debugValidate();
    vmo.unpin(0, PAGE_SIZE);
  });
});

describe('opRange(FAIL)', () => {
  // Fuchsia: FailSinglePage
  it('FAIL of a requested page fails the reader with IO and raises no further request', async () => {
    const t = make();
    const vmo = t.createVmo(2);
    const r = t.read(vmo, 0, 1);
    t.expectRequest('READ', vmo, 0, 1);
    t.fail(vmo, 0, 1, ZxStatus.ERR_IO);
    await r.expectFailed(ZxStatus.ERR_IO);
    t.expectNoRequest();
    expect(vmo.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(0);
  });

  // Fuchsia: FailExactRange
  it('an 11-page commit failed as a whole returns the error', async () => {
    const t = make();
    const vmo = t.createVmo(11);
    const c = t.commit(vmo, 0, 11);
    t.expectRequest('READ', vmo, 0, 11);
    t.fail(vmo, 0, 11, ZxStatus.ERR_IO);
    await c.expectFailed(ZxStatus.ERR_IO);
    t.expectNoRequest();
  });

  // Fuchsia: FailMultipleCommits
  it('one FAIL fails 11 disjoint commits, and 11 commits of one range share one request and one FAIL', async () => {
    const t = make();
    const vmo = t.createVmo(11);
    const disjoint = Array.from({ length: 11 }, (_, i) => t.commit(vmo, i, 1));
    for (let i = 0; i < 11; i++) t.expectRequest('READ', vmo, i, 1);
    t.expectNoRequest();
    t.fail(vmo, 0, 11, ZxStatus.ERR_IO);
    for (const c of disjoint) await c.expectFailed(ZxStatus.ERR_IO);
    t.expectNoRequest();

    const same = Array.from({ length: 11 }, () => t.commit(vmo, 0, 11));
    t.expectRequest('READ', vmo, 0, 11);
    t.expectNoRequest();
    for (const c of same) await c.expectBlocked();
    t.fail(vmo, 0, 11, ZxStatus.ERR_IO);
    for (const c of same) await c.expectFailed(ZxStatus.ERR_IO);
    t.expectNoRequest();
  });

  // Fuchsia: FailMultipleVmos
  it('failing a range of one VMO leaves waiters of another VMO untouched', async () => {
    const t = make();
    const a = t.createVmo(2);
    const b = t.createVmo(2);
    const ra = t.read(a, 0, 1);
    const rb = t.read(b, 0, 1);
    t.expectRequest('READ', a, 0, 1);
    t.expectRequest('READ', b, 0, 1);
    t.fail(a, 0, 1, ZxStatus.ERR_IO);
    await ra.expectFailed(ZxStatus.ERR_IO);
    await rb.expectBlocked();
    t.supply(b, 0, 1);
    expect(isPattern(await rb.expectDone(), keyOf(b), 0)).toBe(true);
    t.expectNoRequest();
  });

  // Fuchsia: FailOverlappingRangeCommit, FailOverlappingRangeRead
  it('FAIL over pages 1-9 fails waiters on (0,2),(5,2),(9,2); the one that re-requests page 1 is failed again', async () => {
    const t = make();
    const vmo = t.createVmo(11);
    const a = t.commit(vmo, 0, 2);
    const b = t.read(vmo, 5, 2);
    const c = t.commit(vmo, 9, 2);
    t.expectRequest('READ', vmo, 0, 2);
    t.expectRequest('READ', vmo, 5, 2);
    t.expectRequest('READ', vmo, 9, 2);
    // The pager answers in one go, before the woken committer `a` runs again.
    t.supply(vmo, 0, 1);
    t.fail(vmo, 1, 9, ZxStatus.ERR_IO);
    t.supply(vmo, 10, 1);
    await b.expectFailed(ZxStatus.ERR_IO);
    await c.expectFailed(ZxStatus.ERR_IO);
    // `a` was woken by page 0 and now needs page 1, which nothing covers any more: a fresh request.
    await a.expectBlocked();
    t.expectRequest('READ', vmo, 1, 1);
    t.expectNoRequest();
    t.fail(vmo, 1, 1, ZxStatus.ERR_IO);
    await a.expectFailed(ZxStatus.ERR_IO);
    t.expectNoRequest();
    expect(vmo.attributedPagesInRange(0, 11 * PAGE_SIZE)).toBe(2);
  });

  // Fuchsia: FailRedundant
  it('failing the same range repeatedly is harmless and changes nothing', async () => {
    const t = make();
    const vmo = t.createVmo(2);
    t.supply(vmo, 1, 1);
    const r = t.read(vmo, 0, 1);
    t.expectRequest('READ', vmo, 0, 1);
    for (let i = 0; i < 3; i++) t.fail(vmo, 0, 2, ZxStatus.ERR_IO);
    await r.expectFailed(ZxStatus.ERR_IO);
    for (let i = 0; i < 3; i++) t.fail(vmo, 0, 2, ZxStatus.ERR_IO); // no request outstanding at all
    expectPatternNow(vmo, 1, 1);
    expect(vmo.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(1);
    t.expectNoRequest();
  });

  // Fuchsia: FailEarlyWake
  it('after page 0 of a request is supplied, failing page 1 fails the reader though pages 2-3 are never answered', async () => {
    const t = make();
    const vmo = t.createVmo(4);
    const r = t.read(vmo, 0, 4);
    t.expectRequest('READ', vmo, 0, 4);
    t.supply(vmo, 0, 1);
    await r.expectBlocked();
    t.expectNoRequest();
    t.fail(vmo, 1, 1, ZxStatus.ERR_IO);
    await r.expectFailed(ZxStatus.ERR_IO);
    t.expectNoRequest();
  });

  // Fuchsia: FailOverlapRequest
  it('FAIL of page 1 fails only the waiter needing it; the other re-requests just page 1 and succeeds', async () => {
    const t = make();
    const vmo = t.createVmo(4);
    const a = t.read(vmo, 0, 4);
    t.expectRequest('READ', vmo, 0, 4);
    const b = t.read(vmo, 1, 1);
    t.expectNoRequest();
    t.fail(vmo, 1, 1, ZxStatus.ERR_IO);
    t.supply(vmo, 0, 1);
    t.supply(vmo, 2, 2);
    await b.expectFailed(ZxStatus.ERR_IO);
    await a.expectBlocked();
    t.expectRequest('READ', vmo, 1, 1);
    t.expectNoRequest();
    t.supply(vmo, 1, 1);
    expect(isPattern(await a.expectDone(), keyOf(vmo), 0)).toBe(true);
    t.expectNoRequest();
  });

  // Fuchsia: SupplyAfterFail
  it('FAIL leaves no state: the next fault raises a new request and a supply satisfies it', async () => {
    const t = make();
    const vmo = t.createVmo(2);
    const r1 = t.read(vmo, 0, 1);
    t.expectRequest('READ', vmo, 0, 1);
    t.fail(vmo, 0, 1, ZxStatus.ERR_IO);
    await r1.expectFailed(ZxStatus.ERR_IO);
    const r2 = t.read(vmo, 0, 1);
    t.expectRequest('READ', vmo, 0, 1);
    t.supply(vmo, 0, 1);
    expect(isPattern(await r2.expectDone(), keyOf(vmo), 0)).toBe(true);
    t.expectNoRequest();
  });

  // Fuchsia: FailErrorCode
  it('IO, IO_DATA_INTEGRITY, BAD_STATE, NO_SPACE and BUFFER_TOO_SMALL reach readers and committers unchanged', async () => {
    const t = make();
    for (const status of [ZxStatus.ERR_IO, ZxStatus.ERR_IO_DATA_INTEGRITY, ZxStatus.ERR_BAD_STATE,
      ZxStatus.ERR_NO_SPACE, ZxStatus.ERR_BUFFER_TOO_SMALL]) {
      const vmo = t.createVmo(2);
      const r = t.read(vmo, 0, 1);
      const c = t.commit(vmo, 1, 1);
      t.expectRequest('READ', vmo, 0, 1);
      t.expectRequest('READ', vmo, 1, 1);
      t.fail(vmo, 0, 2, status);
      await r.expectFailed(status);
      await c.expectFailed(status);
      t.expectNoRequest();
    }
  });

  // Fuchsia: FailAfterDetach
  it('detach fails blocked commits with BAD_STATE, and FAIL after detach is BAD_STATE', async () => {
    const t = make();
    const vmo = t.createVmo(2);
    const c = t.commit(vmo, 0, 2);
    t.expectRequest('READ', vmo, 0, 2);
    t.pager.detachVmo(vmo);
    await c.expectFailed(ZxStatus.ERR_BAD_STATE);
    t.expectRequest('COMPLETE', vmo, 0, 0);
    expectZx(() => t.fail(vmo, 0, 2, ZxStatus.ERR_IO), ZxStatus.ERR_BAD_STATE);
    t.expectNoRequest();
  });

  // Fuchsia: FailDirtyRequests (pager-writeback)
  it('FAIL of a DIRTY request fails the writer; the page stays Clean with its old contents', async () => {
    const t = make();
    const vmo = t.createTrapVmo(2);
    t.supply(vmo, 0, 1);
    const w = t.write(vmo, 0, 1, 0xab);
    t.expectRequest('DIRTY', vmo, 0, 1);
    t.fail(vmo, 0, 1, ZxStatus.ERR_IO);
    await w.expectFailed(ZxStatus.ERR_IO);
    expect(t.dirtyRanges(vmo)).toEqual([]);
    expectPatternNow(vmo, 0, 1);
    // And again with NO_SPACE: a new DIRTY request (no state was left), delivered unchanged.
    const w2 = t.write(vmo, 0, 1, 0xcd);
    t.expectRequest('DIRTY', vmo, 0, 1);
    t.fail(vmo, 0, 1, ZxStatus.ERR_NO_SPACE);
    await w2.expectFailed(ZxStatus.ERR_NO_SPACE);
    expect(t.dirtyRanges(vmo)).toEqual([]);
    expectPatternNow(vmo, 0, 1);
    expect(t.pager.queryVmoStats(vmo).modified).toBe(false);
    t.expectNoRequest();
  });
});

describe('opRange(FAIL) statuses', () => {
  it('FAIL with an unaligned offset or length is INVALID_ARGS and fails nothing', async () => {
    const t = make();
    const vmo = t.createVmo(4);
    const r = t.read(vmo, 0, 1);
    t.expectRequest('READ', vmo, 0, 1);
    expectZx(() => t.pager.opRange(PagerOp.FAIL, vmo, 100, PAGE_SIZE, ZxStatus.ERR_IO), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => t.pager.opRange(PagerOp.FAIL, vmo, 0, 100, ZxStatus.ERR_IO), ZxStatus.ERR_INVALID_ARGS);
    await r.expectBlocked();
    t.supply(vmo, 0, 1);
    await r.expectDone();
  });

  it('FAIL past the end of the VMO is OUT_OF_RANGE and fails nothing', async () => {
    const t = make();
    const vmo = t.createVmo(4);
    const r = t.read(vmo, 3, 1);
    t.expectRequest('READ', vmo, 3, 1);
    expectZx(() => t.fail(vmo, 3, 2, ZxStatus.ERR_IO), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => t.fail(vmo, 2 ** 28, 1, ZxStatus.ERR_IO), ZxStatus.ERR_OUT_OF_RANGE);
    await r.expectBlocked();
  });

  it('FAIL on a VMO this pager did not create is INVALID_ARGS and fails nothing', async () => {
    const t = make();
    const other = t.system.createPager();
    const foreign = other.createVmo(0, t.port, 99, 2 * PAGE_SIZE);
    const r = new Blocked(foreign.read(new Uint8Array(PAGE_SIZE), 0));
    expect(t.next()).toMatchObject({ command: 'READ', key: 99, offset: 0, length: PAGE_SIZE });
    expectZx(() => t.pager.opRange(PagerOp.FAIL, foreign, 0, PAGE_SIZE, ZxStatus.ERR_IO), ZxStatus.ERR_INVALID_ARGS);
    const anon = t.system.createVmo(PAGE_SIZE);
    expectZx(() => t.pager.opRange(PagerOp.FAIL, anon, 0, PAGE_SIZE, ZxStatus.ERR_IO), ZxStatus.ERR_INVALID_ARGS);
    await r.expectBlocked();
    other.close();
    await r.expectFailed(ZxStatus.ERR_BAD_STATE);
  });

  it('FAIL with a status outside the allowed five is INVALID_ARGS and fails nothing', async () => {
    const t = make();
    const vmo = t.createVmo(2);
    const r = t.read(vmo, 0, 1);
    t.expectRequest('READ', vmo, 0, 1);
    for (const bad of [ZxStatus.OK, ZxStatus.ERR_NO_MEMORY, ZxStatus.ERR_TIMED_OUT, ZxStatus.ERR_INVALID_ARGS,
      ZxStatus.ERR_NOT_FOUND, ZxStatus.ERR_IO_DATA_LOSS, ZxStatus.ERR_INTERNAL, 12345]) {
      expectZx(() => t.fail(vmo, 0, 1, bad as ZxStatus), ZxStatus.ERR_INVALID_ARGS);
    }
    await r.expectBlocked();
    t.expectNoRequest();
    t.fail(vmo, 0, 1, ZxStatus.ERR_IO_DATA_INTEGRITY);
    await r.expectFailed(ZxStatus.ERR_IO_DATA_INTEGRITY);
  });
});
