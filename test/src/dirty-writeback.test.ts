/**
 * PAGER-TESTS.md section 4: dirty tracking, DIRTY requests, writeback, OP_ZERO and pinning on pager
 * VMOs (SEMANTICS.md "Dirty tracking and writeback"), plus the statuses of opRange(DIRTY /
 * WRITEBACK_*), queryDirtyRanges and queryVmoStats. Where Fuchsia runs a test with and without
 * TRAP_DIRTY (TEST_WITH_AND_WITHOUT_TRAP_DIRTY), so do we (TRAP_MODES).
 */
import { describe, expect, it } from 'vitest';
import {
  ALLOWED_FAIL_STATUSES, ChildOptions, EvictionLevel, PAGE_SIZE, PagerOp, VmoOp, WRITEBACK_IS_ZERO, ZxStatus, statusName,
  type VmObjectPaged,
} from '../../src/index.js';
import {
  TRAP_MODES, allBytes, expectStatus, makeVmo, modified, pin, readNow, runsOf, supplyZero, writeDirty,
} from './dirty-helpers.js';
import { Blocked, TestPager, isPattern, keyOf, patternByte } from './userpager.js';

/**
 * The model's zero markers (Zircon: a zero-page marker, which has no frame): a dirty zero range,
 * made by growing a RESIZABLE VMO or by whole-page OP_ZERO (SEMANTICS.md "Resize", "Commit,
 * decommit, zero, pin").
 */
const ZERO_MARKER_SOURCES = [{ source: 'grown tail' }, { source: 'OP_ZERO' }] as const;
type ZeroMarkerSource = (typeof ZERO_MARKER_SOURCES)[number]['source'];

/** A 2-page TRAP_DIRTY VMO: page 0 supplied with its pattern, page 1 a zero marker made by `source`. */
async function vmoWithZeroMarker(tp: TestPager, source: ZeroMarkerSource): Promise<VmObjectPaged> {
  let vmo: VmObjectPaged;
  if (source === 'grown tail') {
    vmo = tp.createTrapVmo(1, true);
    tp.supply(vmo, 0, 1);
    vmo.resize(2 * PAGE_SIZE);
  } else {
    vmo = tp.createTrapVmo(2);
    tp.supply(vmo, 0, 2);
    await vmo.zeroRange(PAGE_SIZE, PAGE_SIZE);
  }
  tp.expectNoRequest();
  expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, true]]);
  expect(vmo.counters()).toMatchObject({ residentPages: 1, dirtyPages: 0, dirtyZeroPages: 1 });
  return vmo;
}

describe('DIRTY requests (TRAP_DIRTY)', () => {
  // Fuchsia: SimpleTrapDirty
  it('a write to a supplied page raises DIRTY (0,1), completes after OP_DIRTY, and the page is reported dirty', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1);
    const r = tp.read(vmo, 0, 1);
    tp.expectRequest('READ', vmo, 0, 1);
    tp.supply(vmo, 0, 1);
    await r.expectDone();
    const w = new Blocked(vmo.write(new Uint8Array([0x77]), 0));
    tp.expectRequest('DIRTY', vmo, 0, 1);
    await w.expectBlocked();
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    tp.dirty(vmo, 0, 1);
    await w.expectDone();
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    const buf = await readNow(tp, vmo, 0, 1);
    expect(buf[0]).toBe(0x77);
    for (let i = 1; i < PAGE_SIZE; i++) if (buf[i] !== patternByte(keyOf(vmo), 0, i)) expect.fail(`byte ${i} changed`);
    expect(vmo.counters().dirtyPages).toBe(1);
  });

  // Fuchsia: OpDirtyNoWrite
  it('the pager may dirty pages without any write; contents stay unchanged and no request is raised', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(3);
    tp.supply(vmo, 0, 3);
    tp.dirty(vmo, 0, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 2, false]]);
    expect(isPattern(await readNow(tp, vmo, 0, 3), keyOf(vmo), 0)).toBe(true);
    expect(vmo.counters().dirtyPages).toBe(2);
    // OP_DIRTY during writeback re-dirties too: END then leaves the page dirty.
    tp.writebackBegin(vmo, 0, 2);
    tp.dirty(vmo, 1, 1);
    tp.writebackEnd(vmo, 0, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false]]);
    tp.expectNoRequest();
  });

  // Fuchsia: DirtyRequestsViaMapping (the part that is not about mappings: the pager may dirty more
  // than it was asked, and then later writes there raise no request)
  it('answering a DIRTY request for page 11 with 11..15 means later writes there raise no request', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(20);
    tp.supply(vmo, 0, 20);
    const w = tp.write(vmo, 11, 1, 0xcc);
    tp.expectRequest('DIRTY', vmo, 11, 1);
    tp.dirty(vmo, 11, 5);
    await w.expectDone();
    for (let p = 12; p < 16; p++) await tp.write(vmo, p, 1, 0xcc).expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[11, 5, false]]);
    expect(allBytes(await readNow(tp, vmo, 11, 5), 0xcc)).toBe(true);
  });

  // SEMANTICS.md "Batching" applied to DIRTY: a write whose first clean page an outstanding DIRTY
  // request covers waits on it and sends no second packet.
  it('concurrent writes share an outstanding DIRTY request and ask only for pages it does not cover', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(3);
    tp.supply(vmo, 0, 3);
    const a = tp.write(vmo, 0, 2, 0x0a);
    const b = tp.write(vmo, 1, 2, 0x0b);
    const c = tp.write(vmo, 0, 1, 0x0c);
    tp.expectRequest('DIRTY', vmo, 0, 2);
    tp.expectNoRequest();
    await b.expectBlocked();
    tp.dirty(vmo, 0, 2);
    await a.expectDone();
    await c.expectDone();
    await b.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 2, 1);
    tp.dirty(vmo, 2, 1);
    await b.expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 3, false]]);
  });

  // Fuchsia: DirtyRequestsRepeatedWrites
  it('only the first write to a Clean page traps; writes to the Dirty page do not', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1);
    tp.supply(vmo, 0, 1);
    await writeDirty(tp, vmo, 0, 1, true, 0xcc);
    await tp.write(vmo, 0, 1, 0xdd).expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    expect(allBytes(await readNow(tp, vmo, 0, 1), 0xdd)).toBe(true);
    expect(vmo.counters().faults).toBe(1);
  });

  // Fuchsia: DirtyRequestsForZeroPages, DirtyZeroAndNonZeroPages, FailDirtyRequestsForZeroPages.
  // A page supplied from an uncommitted aux page is a real Clean zero page in pagerfs (no marker);
  // the marker cases, on dirty zero ranges, follow below.
  it('writes to supplied zero pages trap like any Clean page; OP_DIRTY lets them through', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(4);
    expect(supplyZero(tp, vmo, 0, 2)).toBe(2);
    tp.supply(vmo, 2, 2);
    const w = tp.write(vmo, 1, 2, 0x99); // one zero page and one non-zero page
    tp.expectRequest('DIRTY', vmo, 1, 2);
    await w.expectBlocked();
    tp.dirty(vmo, 1, 2);
    await w.expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, false]]);
    expect(allBytes(await readNow(tp, vmo, 0, 1), 0)).toBe(true);
    expect(allBytes(await readNow(tp, vmo, 1, 2), 0x99)).toBe(true);
  });

  // Fuchsia: FailDirtyRequestsForZeroPages
  it('a failed DIRTY request on zero pages fails the write with the status and dirties nothing', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(2);
    supplyZero(tp, vmo, 0, 2);
    expect(modified(tp, vmo, true)).toBe(false);
    const w = tp.write(vmo, 0, 2, 0x99);
    tp.expectRequest('DIRTY', vmo, 0, 2);
    tp.fail(vmo, 0, 2, ZxStatus.ERR_NO_SPACE);
    await w.expectFailed(ZxStatus.ERR_NO_SPACE);
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(vmo.counters().dirtyPages).toBe(0);
    expect(allBytes(await readNow(tp, vmo, 0, 2), 0)).toBe(true);
    expect(modified(tp, vmo)).toBe(false);
  });

  // Fuchsia: FailDirtyRequestsForZeroPages, on the model's zero marker (a dirty zero range, which has
  // no frame): here "commits nothing" can fail.
  it.each(ZERO_MARKER_SOURCES)('a failed DIRTY for a zero-marker page ($source) fails the writer and commits nothing', async ({ source }) => {
    const tp = new TestPager();
    const vmo = await vmoWithZeroMarker(tp, source);
    const usedFrames = tp.system.arena.usedFrames;
    expect(modified(tp, vmo, true)).toBe(true); // the grow or the zeroing itself; reset here
    const w = new Blocked(vmo.write(new Uint8Array([0xaa]), PAGE_SIZE));
    tp.expectRequest('DIRTY', vmo, 1, 1);
    await w.expectBlocked();
    expect(vmo.counters()).toMatchObject({ residentPages: 1, dirtyZeroPages: 1 }); // nothing committed while pending
    tp.fail(vmo, 1, 1, ZxStatus.ERR_NO_SPACE);
    await w.expectFailed(ZxStatus.ERR_NO_SPACE);
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ residentPages: 1, dirtyPages: 0, dirtyZeroPages: 1 });
    expect(vmo.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(1);
    expect(tp.system.arena.usedFrames).toBe(usedFrames);
    expect(tp.pager.queryDirtyRanges(vmo, 0, 2 * PAGE_SIZE)).toEqual({
      ranges: [{ offset: PAGE_SIZE, length: PAGE_SIZE, isZero: true }], available: 1,
    });
    expect(allBytes(await readNow(tp, vmo, 1, 1), 0)).toBe(true);
    expect(isPattern(await readNow(tp, vmo, 0, 1), keyOf(vmo), 0)).toBe(true);
    expect(modified(tp, vmo)).toBe(false);
    // Failing left nothing behind: the next write to the marker asks again.
    const w2 = new Blocked(vmo.write(new Uint8Array([0xbb]), PAGE_SIZE));
    tp.expectRequest('DIRTY', vmo, 1, 1);
    await w2.expectBlocked();
    tp.dirty(vmo, 1, 1);
    await w2.expectDone();
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false]]);
  });

  // Fuchsia: DirtyRequestsForZeroPages, on the model's zero marker
  it.each(ZERO_MARKER_SOURCES)('a write to a zero-marker page ($source) traps; OP_DIRTY commits it Dirty with the written bytes and zeros elsewhere', async ({ source }) => {
    const tp = new TestPager();
    const vmo = await vmoWithZeroMarker(tp, source);
    const usedFrames = tp.system.arena.usedFrames;
    const w = new Blocked(vmo.write(new Uint8Array([0xaa, 0xbb]), PAGE_SIZE + 100));
    tp.expectRequest('DIRTY', vmo, 1, 1);
    await w.expectBlocked();
    expect(vmo.counters()).toMatchObject({ residentPages: 1, dirtyZeroPages: 1 });
    tp.dirty(vmo, 1, 1);
    await w.expectDone();
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ residentPages: 2, dirtyPages: 1, dirtyZeroPages: 0 });
    expect(vmo.attributedPagesInRange(PAGE_SIZE, PAGE_SIZE)).toBe(1);
    expect(tp.system.arena.usedFrames).toBe(usedFrames + 1);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false]]);
    const buf = await readNow(tp, vmo, 1, 1);
    for (let i = 0; i < PAGE_SIZE; i++) {
      const want = i === 100 ? 0xaa : i === 101 ? 0xbb : 0;
      if (buf[i] !== want) expect.fail(`page 1 byte ${i}: ${buf[i]} != ${want}`);
    }
    expect(isPattern(await readNow(tp, vmo, 0, 1), keyOf(vmo), 0)).toBe(true);
    // The page is Dirty now: a second write needs no request.
    await tp.write(vmo, 1, 1, 0xcc).expectDone();
    tp.expectNoRequest();
    expect(allBytes(await readNow(tp, vmo, 1, 1), 0xcc)).toBe(true);
  });

  // Fuchsia: DirtyZeroAndNonZeroPages, through one write spanning zero markers and clean pages
  it('one write over zero-marker and clean pages raises one DIRTY; FAIL commits nothing, OP_DIRTY commits every page', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(3, true);
    const key = keyOf(vmo);
    tp.supply(vmo, 0, 3);
    await vmo.zeroRange(PAGE_SIZE, PAGE_SIZE); // page 1: a marker from OP_ZERO
    vmo.resize(4 * PAGE_SIZE); // page 3: a marker from growing
    tp.expectNoRequest();
    const markers: Array<[number, number, boolean]> = [[1, 1, true], [3, 1, true]];
    expect(tp.dirtyRanges(vmo)).toEqual(markers);
    expect(vmo.counters()).toMatchObject({ residentPages: 2, dirtyPages: 0, dirtyZeroPages: 2 });
    const usedFrames = tp.system.arena.usedFrames;
    const half = PAGE_SIZE / 2;
    const data = new Uint8Array(3 * PAGE_SIZE).fill(0x77); // bytes [half, 3 pages + half): pages 0..3

    const failed = new Blocked(vmo.write(data, half));
    tp.expectRequest('DIRTY', vmo, 0, 4);
    await failed.expectBlocked();
    tp.fail(vmo, 0, 4, ZxStatus.ERR_IO);
    await failed.expectFailed(ZxStatus.ERR_IO);
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ residentPages: 2, dirtyPages: 0, dirtyZeroPages: 2 });
    expect(tp.system.arena.usedFrames).toBe(usedFrames);
    expect(tp.dirtyRanges(vmo)).toEqual(markers);
    expect(isPattern(await readNow(tp, vmo, 0, 1), key, 0)).toBe(true);
    expect(isPattern(await readNow(tp, vmo, 2, 1), key, 2)).toBe(true);
    expect(allBytes(await readNow(tp, vmo, 1, 1), 0)).toBe(true);
    expect(allBytes(await readNow(tp, vmo, 3, 1), 0)).toBe(true);

    const w = new Blocked(vmo.write(data, half));
    tp.expectRequest('DIRTY', vmo, 0, 4);
    await w.expectBlocked();
    tp.dirty(vmo, 0, 4);
    await w.expectDone();
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ residentPages: 4, dirtyPages: 4, dirtyZeroPages: 0 });
    expect(tp.system.arena.usedFrames).toBe(usedFrames + 2);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 4, false]]);
    const page0 = await readNow(tp, vmo, 0, 1);
    expect(isPattern(page0.subarray(0, half), key, 0)).toBe(true);
    expect(allBytes(page0.subarray(half), 0x77)).toBe(true);
    expect(allBytes(await readNow(tp, vmo, 1, 2), 0x77)).toBe(true);
    const page3 = await readNow(tp, vmo, 3, 1);
    expect(allBytes(page3.subarray(0, half), 0x77)).toBe(true);
    expect(allBytes(page3.subarray(half), 0)).toBe(true);
  });

  // Fuchsia: DirtyZeroAndNonZeroPages as written there: the pager dirties the mix without any write
  it('OP_DIRTY with no write over zero markers and clean pages commits them all Dirty, contents unchanged', async () => {
    const tp = new TestPager();
    const n = 10;
    const vmo = tp.createTrapVmo(n);
    const key = keyOf(vmo);
    const markers = new Set([0, 3, 4, 7, 9]); // never supplied: OP_ZERO makes them markers without a READ
    for (let p = 0; p < n; p++) if (!markers.has(p)) tp.supply(vmo, p, 1);
    for (const p of markers) await vmo.zeroRange(p * PAGE_SIZE, PAGE_SIZE);
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ residentPages: n - markers.size, dirtyPages: 0, dirtyZeroPages: markers.size });
    tp.dirty(vmo, 0, n);
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ residentPages: n, dirtyPages: n, dirtyZeroPages: 0 });
    expect(vmo.attributedPagesInRange(0, n * PAGE_SIZE)).toBe(n);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, n, false]]);
    for (let p = 0; p < n; p++) {
      const buf = await readNow(tp, vmo, p, 1);
      expect(markers.has(p) ? allBytes(buf, 0) : isPattern(buf, key, p), `page ${p}`).toBe(true);
    }
  });

  // Fuchsia: DirtyRequestsForZeroRanges
  it('one DIRTY request spans a clean page and a zero range but stops at a missing page, which needs READ first', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(2, true);
    tp.supply(vmo, 0, 1); // page 1 stays missing
    vmo.resize(4 * PAGE_SIZE); // pages 2..3 are a dirty zero range
    expect(tp.dirtyRanges(vmo)).toEqual([[2, 2, true]]);
    const w = tp.write(vmo, 0, 4, 0x42);
    tp.expectRequest('DIRTY', vmo, 0, 1);
    tp.dirty(vmo, 0, 1);
    await w.expectBlocked();
    tp.expectRequest('READ', vmo, 1, 1);
    tp.supply(vmo, 1, 1);
    await w.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 1, 3);
    tp.dirty(vmo, 1, 3);
    await w.expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 4, false]]);
    expect(allBytes(await readNow(tp, vmo, 0, 4), 0x42)).toBe(true);
  });

  // Fuchsia: CommitExtendedTail (TRAP_DIRTY half; the no-trap half is below)
  it('commit over a grown tail raises READ for the original page and DIRTY for the tail page; the tail stays dirty', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1, true);
    vmo.resize(2 * PAGE_SIZE);
    const c = tp.commit(vmo, 0, 2);
    tp.expectRequest('READ', vmo, 0, 1);
    tp.supply(vmo, 0, 1);
    await c.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 1, 1);
    tp.dirty(vmo, 1, 1);
    await c.expectDone();
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ residentPages: 2, dirtyPages: 1, dirtyZeroPages: 0 });
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false]]);
    expect(allBytes(await readNow(tp, vmo, 1, 1), 0)).toBe(true);
  });
});

describe.each(TRAP_MODES)('dirty tracking ($mode)', ({ trap }) => {
  // Fuchsia: DirtyRequestsOnVmoWrite
  it('writes to pages 0,2,4,6,8,3 and 11..15 raise one DIRTY per write; dirty ranges merge into maximal runs', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 20, trap);
    tp.supply(vmo, 0, 20);
    for (const p of [0, 2, 4, 6, 8, 3]) {
      const w = new Blocked(vmo.write(new Uint8Array([0x77]), p * PAGE_SIZE));
      if (trap) {
        tp.expectRequest('DIRTY', vmo, p, 1);
        tp.dirty(vmo, p, 1);
      }
      await w.expectDone();
    }
    await writeDirty(tp, vmo, 11, 5, trap, 0);
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false], [2, 3, false], [6, 1, false], [8, 1, false], [11, 5, false]]);
    const all = await readNow(tp, vmo, 0, 20);
    for (let p = 0; p < 20; p++) {
      const page = all.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
      if (p >= 11 && p < 16) expect(allBytes(page, 0)).toBe(true);
      else if ([0, 2, 3, 4, 6, 8].includes(p)) expect(page[0]).toBe(0x77);
      else expect(isPattern(page, keyOf(vmo), p)).toBe(true);
    }
  });

  // Fuchsia: NoDirtyRequestsOnRead
  it('reads raise no DIRTY request and leave nothing dirty or modified', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 3, trap);
    const r = tp.read(vmo, 0, 3);
    tp.expectRequest('READ', vmo, 0, 3);
    tp.supply(vmo, 0, 3);
    expect(isPattern(await r.expectDone(), keyOf(vmo), 0)).toBe(true);
    expect(isPattern(await readNow(tp, vmo, 0, 3), keyOf(vmo), 0)).toBe(true);
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(vmo.counters().dirtyPages).toBe(0);
    expect(modified(tp, vmo)).toBe(false);
  });

  // Fuchsia: DirtyRequestsOnWriteAfterRead
  it('a read then a write of a missing page raises READ, then DIRTY only with TRAP_DIRTY', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 1, trap);
    const r = tp.read(vmo, 0, 1);
    tp.expectRequest('READ', vmo, 0, 1);
    tp.supply(vmo, 0, 1);
    await r.expectDone();
    tp.expectNoRequest();
    await writeDirty(tp, vmo, 0, 1, trap, 0xdd);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    expect(allBytes(await readNow(tp, vmo, 0, 1), 0xdd)).toBe(true);
  });

  // Fuchsia: DirtyRequestsOnWriteAfterRead (a write alone to a missing page)
  it('a write to a missing page faults it in with READ first, then (with TRAP_DIRTY) DIRTY', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap);
    const w = tp.write(vmo, 0, 2, 0xee);
    tp.expectRequest('READ', vmo, 0, 2);
    await w.expectBlocked();
    tp.supply(vmo, 0, 2);
    if (trap) {
      await w.expectBlocked();
      tp.expectRequest('DIRTY', vmo, 0, 2);
      tp.dirty(vmo, 0, 2);
    }
    await w.expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 2, false]]);
    expect(allBytes(await readNow(tp, vmo, 0, 2), 0xee)).toBe(true);
  });

  // Fuchsia: NoDirtyRequestsOnCommit, NoDirtyOnCommit
  it('COMMIT raises READ only; committed pages are neither dirty nor modified', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 3, trap);
    const c = new Blocked(vmo.opRange(VmoOp.COMMIT, 0, 3 * PAGE_SIZE));
    tp.expectRequest('READ', vmo, 0, 3);
    tp.supply(vmo, 0, 3);
    await c.expectDone();
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ residentPages: 3, dirtyPages: 0 });
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(modified(tp, vmo)).toBe(false);
  });

  // Fuchsia: CommitExtendedTail
  it('commit over a grown tail commits the tail page as a dirty page', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 1, trap, true);
    tp.supply(vmo, 0, 1);
    vmo.resize(3 * PAGE_SIZE);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, true]]);
    const c = tp.commit(vmo, 0, 3);
    if (trap) {
      tp.expectRequest('DIRTY', vmo, 1, 2);
      tp.dirty(vmo, 1, 2);
    }
    await c.expectDone();
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ residentPages: 3, dirtyPages: 2, dirtyZeroPages: 0 });
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, false]]);
  });

  // Fuchsia: SimpleWriteback
  it('BEGIN keeps the range reported dirty, END cleans it, and the next write dirties (traps) again', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap);
    tp.supply(vmo, 0, 2);
    await writeDirty(tp, vmo, 0, 1, trap, 0x10);
    tp.writebackBegin(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    expect(vmo.counters().dirtyPages).toBe(1);
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(vmo.counters()).toMatchObject({ dirtyPages: 0, residentPages: 2 });
    expect(allBytes(await readNow(tp, vmo, 0, 1), 0x10)).toBe(true);
    await writeDirty(tp, vmo, 0, 1, trap, 0x20);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
  });

  // Fuchsia: WritebackCombined
  it('one BEGIN/END over fragmented dirty pages and zero ranges cleans them all; the zero ranges become gaps', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 4, trap, true);
    tp.supply(vmo, 0, 4);
    await writeDirty(tp, vmo, 0, 1, trap, 0x01);
    await writeDirty(tp, vmo, 2, 1, trap, 0x02);
    await vmo.zeroRange(PAGE_SIZE, PAGE_SIZE);
    vmo.resize(6 * PAGE_SIZE);
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false], [1, 1, true], [2, 1, false], [4, 2, true]]);
    tp.writebackBegin(vmo, 0, 6);
    tp.writebackEnd(vmo, 0, 6);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(vmo.counters()).toMatchObject({ dirtyPages: 0, dirtyZeroPages: 0 });
    const r = tp.read(vmo, 4, 2);
    tp.expectRequest('READ', vmo, 4, 2);
    tp.supply(vmo, 4, 2);
    expect(isPattern(await r.expectDone(), keyOf(vmo), 4)).toBe(true);
    const r1 = tp.read(vmo, 1, 1);
    tp.expectRequest('READ', vmo, 1, 1);
    tp.supply(vmo, 1, 1);
    await r1.expectDone();
  });

  // Fuchsia: WritebackOutOfOrder, WritebackCombinedEnd, WritebackCombinedBegin
  it.each([
    { order: 'out of order', begins: [[0, 1], [1, 1], [2, 1]], ends: [[2, 1], [0, 1], [1, 1]] },
    { order: 'combined END', begins: [[1, 1], [0, 1], [2, 1]], ends: [[0, 3]] },
    { order: 'combined BEGIN', begins: [[0, 3]], ends: [[1, 1], [0, 1], [2, 1]] },
  ])('BEGIN/END $order cleans exactly what each END covers', async ({ begins, ends }) => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 3, trap);
    tp.supply(vmo, 0, 3);
    await writeDirty(tp, vmo, 0, 3, trap);
    for (const [p, n] of begins) tp.writebackBegin(vmo, p, n);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 3, false]]);
    const left = new Set([0, 1, 2]);
    for (const [p, n] of ends) {
      tp.writebackEnd(vmo, p, n);
      for (let i = p; i < p + n; i++) left.delete(i);
      expect(tp.dirtyRanges(vmo)).toEqual(runsOf(left));
    }
    expect(vmo.counters().dirtyPages).toBe(0);
    tp.expectNoRequest();
  });

  // Fuchsia: ResizeWritebackRepeated
  it('redundant BEGINs and END without BEGIN change nothing; END of a stale writeback keeps a re-dirtied page dirty', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap, true);
    tp.supply(vmo, 0, 2);
    await writeDirty(tp, vmo, 0, 1, trap, 0x01);
    vmo.resize(4 * PAGE_SIZE);
    const expected = [[0, 1, false], [2, 2, true]];
    expect(tp.dirtyRanges(vmo)).toEqual(expected);
    tp.writebackEnd(vmo, 0, 4); // END without BEGIN
    expect(tp.dirtyRanges(vmo)).toEqual(expected);
    tp.writebackBegin(vmo, 0, 4);
    tp.writebackBegin(vmo, 0, 4);
    tp.writebackBegin(vmo, 2, 2, true);
    expect(tp.dirtyRanges(vmo)).toEqual(expected);
    await writeDirty(tp, vmo, 0, 1, trap, 0x02); // AwaitingClean traps again
    tp.writebackEnd(vmo, 0, 4);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    expect(allBytes(await readNow(tp, vmo, 0, 1), 0x02)).toBe(true);
    // The written-back tail is now a gap: the pager supplies it.
    const r = tp.read(vmo, 2, 2);
    tp.expectRequest('READ', vmo, 2, 2);
    tp.supply(vmo, 2, 2);
    await r.expectDone();
  });

  // Fuchsia: ResizeWritebackDirtyAfterQuery
  it('a page written after the query but before an IS_ZERO writeback of its range stays dirty', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 1, trap, true);
    tp.supply(vmo, 0, 1);
    vmo.resize(3 * PAGE_SIZE);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 2, true]]);
    const w = tp.write(vmo, 1, 1, 0x31);
    if (trap) {
      tp.expectRequest('DIRTY', vmo, 1, 1); // a zero range needs DIRTY, never READ
      tp.dirty(vmo, 1, 1);
    }
    await w.expectDone();
    tp.expectNoRequest();
    tp.writebackBegin(vmo, 1, 2, true);
    tp.writebackEnd(vmo, 1, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false]]);
    expect(allBytes(await readNow(tp, vmo, 1, 1), 0x31)).toBe(true);
  });

  // Fuchsia: OpZero
  it('OP_ZERO needs no READ: pages are freed and reported as a dirty zero range', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 3, trap);
    tp.supply(vmo, 0, 1); // pages 1..2 missing
    expect(modified(tp, vmo, true)).toBe(false);
    await new Blocked(vmo.opRange(VmoOp.ZERO, 0, 3 * PAGE_SIZE)).expectDone();
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ residentPages: 0, dirtyPages: 0, dirtyZeroPages: 3 });
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 3, true]]);
    expect(allBytes(await readNow(tp, vmo, 0, 3), 0)).toBe(true);
    expect(modified(tp, vmo)).toBe(true);
  });

  // Fuchsia: OpZeroPartialPage
  it('a partial-page zero is a write: READ, then DIRTY with TRAP_DIRTY', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap);
    const z = new Blocked(vmo.zeroRange(PAGE_SIZE + 100, 200));
    tp.expectRequest('READ', vmo, 1, 1);
    tp.supply(vmo, 1, 1);
    if (trap) {
      await z.expectBlocked();
      tp.expectRequest('DIRTY', vmo, 1, 1);
      tp.dirty(vmo, 1, 1);
    }
    await z.expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false]]);
    const buf = await readNow(tp, vmo, 1, 1);
    for (let i = 0; i < PAGE_SIZE; i++) {
      const want = i >= 100 && i < 300 ? 0 : patternByte(keyOf(vmo), 1, i);
      if (buf[i] !== want) expect.fail(`byte ${i}: ${buf[i]} != ${want}`);
    }
  });

  // Fuchsia: OpZeroTail, OpZeroExpandsTail (OpZeroWithMarkers: pagerfs has no zero markers)
  it('zeroing an already-zero tail is a no-op; zeroing the page before it extends the tail without requests', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap, true);
    tp.supply(vmo, 0, 2);
    vmo.resize(4 * PAGE_SIZE);
    await vmo.zeroRange(2 * PAGE_SIZE, 2 * PAGE_SIZE);
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[2, 2, true]]);
    expect(vmo.counters().residentPages).toBe(2);
    await vmo.zeroRange(PAGE_SIZE, PAGE_SIZE);
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 3, true]]);
    expect(vmo.counters()).toMatchObject({ residentPages: 1, dirtyZeroPages: 3 });
    expect(isPattern(await readNow(tp, vmo, 0, 1), keyOf(vmo), 0)).toBe(true);
  });

  // Fuchsia: OpZeroDecommit
  it('zeroing the whole VMO frees every page, dirty or clean: dirty {0, n, IS_ZERO}', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 4, trap);
    tp.supply(vmo, 0, 4);
    await writeDirty(tp, vmo, 1, 2, trap);
    const used = tp.system.arena.usedFrames;
    await vmo.zeroRange(0, 4 * PAGE_SIZE);
    tp.expectNoRequest();
    expect(tp.system.arena.usedFrames).toBe(used - 4);
    expect(vmo.counters()).toMatchObject({ residentPages: 0, dirtyPages: 0, dirtyZeroPages: 4 });
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 4, true]]);
  });

  // Fuchsia: OpZeroWriteback
  it('OP_ZERO during an IS_ZERO writeback makes its END a no-op', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap);
    tp.supply(vmo, 0, 2);
    await vmo.zeroRange(0, 2 * PAGE_SIZE);
    tp.writebackBegin(vmo, 0, 2, true);
    await vmo.zeroRange(0, 2 * PAGE_SIZE);
    tp.writebackEnd(vmo, 0, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 2, true]]);
    expect(allBytes(await readNow(tp, vmo, 0, 2), 0)).toBe(true);
    tp.writebackBegin(vmo, 0, 2, true);
    tp.writebackEnd(vmo, 0, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    tp.expectNoRequest();
  });

  // Fuchsia: OpZeroPinned
  it('OP_ZERO over a pinned page: only that page needs DIRTY; the rest become zero ranges', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 3, trap);
    tp.supply(vmo, 0, 3);
    await pin(vmo, 1, 1, false).expectDone();
    const z = new Blocked(vmo.zeroRange(0, 3 * PAGE_SIZE));
    if (trap) {
      tp.expectRequest('DIRTY', vmo, 1, 1);
      await z.expectBlocked();
      tp.dirty(vmo, 1, 1);
    }
    await z.expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, true], [1, 1, false], [2, 1, true]]);
    expect(vmo.counters()).toMatchObject({ residentPages: 1, pinnedPages: 1, dirtyPages: 1 });
    expect(allBytes(await readNow(tp, vmo, 0, 3), 0)).toBe(true);
    vmo.unpin(PAGE_SIZE, PAGE_SIZE);
  });

  // Fuchsia: OpZeroUnblocksReadRequest, DelayedReadZeroRange
  it('OP_ZERO on a page whose READ is pending wakes the reader with zeros; a late supply is ignored', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap);
    const r = tp.read(vmo, 0, 2);
    tp.expectRequest('READ', vmo, 0, 2);
    await r.expectBlocked();
    await vmo.zeroRange(0, 2 * PAGE_SIZE);
    expect(allBytes(await r.expectDone(), 0)).toBe(true);
    tp.expectNoRequest();
    expect(tp.supply(vmo, 0, 2)).toBe(0);
    expect(allBytes(await readNow(tp, vmo, 0, 2), 0)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 2, true]]);
  });

  // Fuchsia: PinForRead
  it('pin for read raises READ only; the page is pinned but neither dirty nor modified', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap);
    const p = pin(vmo, 0, 1, false);
    tp.expectRequest('READ', vmo, 0, 1);
    tp.supply(vmo, 0, 1);
    await p.expectDone();
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ pinnedPages: 1, dirtyPages: 0 });
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(modified(tp, vmo)).toBe(false);
    vmo.unpin(0, PAGE_SIZE);
    expect(vmo.counters().pinnedPages).toBe(0);
  });

  // Fuchsia: PinForWrite
  it('pin for write raises READ, then DIRTY with TRAP_DIRTY; the page is dirty and the VMO modified', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap);
    const p = pin(vmo, 0, 1, true);
    tp.expectRequest('READ', vmo, 0, 1);
    tp.supply(vmo, 0, 1);
    if (trap) {
      await p.expectBlocked();
      tp.expectRequest('DIRTY', vmo, 0, 1);
      tp.dirty(vmo, 0, 1);
    }
    await p.expectDone();
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ pinnedPages: 1, dirtyPages: 1 });
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    expect(modified(tp, vmo)).toBe(true);
    vmo.unpin(0, PAGE_SIZE);
  });

  // Fuchsia: PinnedWriteback
  it('a pinned dirty page cannot be cleaned: BEGIN/END change nothing until it is unpinned', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 1, trap);
    tp.supply(vmo, 0, 1);
    await writeDirty(tp, vmo, 0, 1, trap);
    await pin(vmo, 0, 1, false).expectDone();
    tp.writebackBegin(vmo, 0, 1);
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    expect(vmo.counters().dirtyPages).toBe(1);
    vmo.unpin(0, PAGE_SIZE);
    tp.writebackBegin(vmo, 0, 1);
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    tp.expectNoRequest();
  });

  // Fuchsia: ReadPinAwaitingClean
  it('a read-pin taken during writeback does not stop END from cleaning', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 1, trap);
    tp.supply(vmo, 0, 1);
    await writeDirty(tp, vmo, 0, 1, trap);
    tp.writebackBegin(vmo, 0, 1);
    await pin(vmo, 0, 1, false).expectDone();
    tp.expectNoRequest();
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(vmo.counters()).toMatchObject({ dirtyPages: 0, pinnedPages: 1 });
    vmo.unpin(0, PAGE_SIZE);
  });

  // Fuchsia: WritePinAwaitingClean
  it('a write-pin during writeback re-dirties the page (trapping with TRAP_DIRTY); END does not clean it; after unpin a new writeback does', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 1, trap);
    tp.supply(vmo, 0, 1);
    await writeDirty(tp, vmo, 0, 1, trap);
    tp.writebackBegin(vmo, 0, 1);
    const p = pin(vmo, 0, 1, true);
    if (trap) {
      tp.expectRequest('DIRTY', vmo, 0, 1);
      await p.expectBlocked();
      tp.dirty(vmo, 0, 1);
    }
    await p.expectDone();
    tp.expectNoRequest();
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    vmo.unpin(0, PAGE_SIZE);
    tp.writebackBegin(vmo, 0, 1);
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
  });

  // SEMANTICS.md "Dirty tracking": only Clean pages can be evicted; AwaitingClean ones neither,
  // and once written back (Clean) they are evictable again.
  it('Dirty and AwaitingClean pages are never evicted; after WRITEBACK_END they are', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 3, trap);
    tp.supply(vmo, 0, 3);
    await writeDirty(tp, vmo, 0, 2, trap, 0x3c);
    tp.writebackBegin(vmo, 1, 1); // page 0 Dirty, page 1 AwaitingClean, page 2 Clean
    tp.system.reclaim(64, EvictionLevel.OutOfMemory);
    expect(vmo.counters()).toMatchObject({ residentPages: 2, dirtyPages: 2, evictedPages: 1 });
    expect(allBytes(await readNow(tp, vmo, 0, 2), 0x3c)).toBe(true);
    tp.writebackEnd(vmo, 1, 1);
    tp.system.reclaim(64, EvictionLevel.OutOfMemory);
    expect(vmo.counters()).toMatchObject({ residentPages: 1, dirtyPages: 1, evictedPages: 2 });
    const r = tp.read(vmo, 1, 1);
    tp.expectRequest('READ', vmo, 1, 1); // the evicted page comes back from the pager
    tp.supply(vmo, 1, 1);
    await r.expectDone();
  });

  // Fuchsia: ChildAttributedCounts
  it("a clone reads the parent's dirty page, attributed to the parent, even after the parent handle is dropped", async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap);
    tp.supply(vmo, 0, 2);
    await writeDirty(tp, vmo, 0, 1, trap, 0x5c);
    const child = vmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 2 * PAGE_SIZE);
    expect(allBytes(await readNow(tp, child, 0, 1), 0x5c)).toBe(true);
    expect(vmo.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(2);
    expect(child.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(0);
    vmo.close();
    tp.expectNoRequest(); // the child keeps the VMO alive: no COMPLETE yet
    expect(allBytes(await readNow(tp, child, 0, 1), 0x5c)).toBe(true);
    expect(isPattern(await readNow(tp, child, 1, 1), keyOf(vmo), 1)).toBe(true);
    expect(child.attributedPagesInRange(0, 2 * PAGE_SIZE)).toBe(0);
  });
});

describe('without TRAP_DIRTY', () => {
  // Fuchsia: SimpleDirtyNoTrap, DirtyNoTrapRandomOffsets
  it('writes at scattered offsets never block or raise requests; pages are dirty until written back', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(32);
    tp.supply(vmo, 0, 32);
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const touched = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const off = rand(32 * PAGE_SIZE - 64);
      const len = 1 + rand(64);
      await new Blocked(vmo.write(new Uint8Array(len).fill(0xa5), off)).expectDone();
      for (let p = Math.floor(off / PAGE_SIZE); p <= Math.floor((off + len - 1) / PAGE_SIZE); p++) touched.add(p);
    }
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual(runsOf(touched));
    expect(vmo.counters().dirtyPages).toBe(touched.size);
    expectStatus(() => tp.dirty(vmo, 0, 1), ZxStatus.ERR_NOT_SUPPORTED);
    tp.writebackBegin(vmo, 0, 32);
    tp.writebackEnd(vmo, 0, 32);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(vmo.counters().dirtyPages).toBe(0);
  });
});

describe('writes during writeback (TRAP_DIRTY)', () => {
  // Fuchsia: DirtyDuringWriteback (END arrives while the DIRTY request is unanswered)
  it('END while a DIRTY request from a write after BEGIN is pending cleans the page; the writer stays blocked until OP_DIRTY', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1);
    tp.supply(vmo, 0, 1);
    await writeDirty(tp, vmo, 0, 1, true, 0x01);
    tp.writebackBegin(vmo, 0, 1);
    const w = tp.write(vmo, 0, 1, 0x02);
    tp.expectRequest('DIRTY', vmo, 0, 1);
    await w.expectBlocked();
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    await w.expectBlocked();
    tp.expectNoRequest();
    tp.dirty(vmo, 0, 1);
    await w.expectDone();
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    expect(allBytes(await readNow(tp, vmo, 0, 1), 0x02)).toBe(true);
  });

  // Fuchsia: DirtyDuringWriteback (OP_DIRTY answered before END)
  it('a write after BEGIN traps again; once OP_DIRTY answers it, END does not clean the page', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1);
    tp.supply(vmo, 0, 1);
    await writeDirty(tp, vmo, 0, 1, true, 0x01);
    tp.writebackBegin(vmo, 0, 1);
    await writeDirty(tp, vmo, 0, 1, true, 0x02);
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    expect(vmo.counters().dirtyPages).toBe(1);
  });

  // Fuchsia: WritebackWithMapping (through vmo.write instead of a mapping)
  it('failing the DIRTY request of a write during writeback fails the writer; the page stays AwaitingClean and END cleans it', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1);
    tp.supply(vmo, 0, 1);
    await writeDirty(tp, vmo, 0, 1, true, 0x01);
    tp.writebackBegin(vmo, 0, 1);
    const w = tp.write(vmo, 0, 1, 0x02);
    tp.expectRequest('DIRTY', vmo, 0, 1);
    tp.fail(vmo, 0, 1, ZxStatus.ERR_IO);
    await w.expectFailed(ZxStatus.ERR_IO);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    expect(allBytes(await readNow(tp, vmo, 0, 1), 0x01)).toBe(true);
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    tp.expectNoRequest();
  });

  // SEMANTICS.md opRange(FAIL): all five allowed statuses reach a writer blocked on DIRTY unchanged
  it.each(ALLOWED_FAIL_STATUSES.map((status) => ({ status, name: statusName(status) })))(
    'failing a DIRTY request with $name fails the writer with it and leaves the page clean',
    async ({ status }) => {
      const tp = new TestPager();
      const vmo = tp.createTrapVmo(1);
      tp.supply(vmo, 0, 1);
      const w = tp.write(vmo, 0, 1);
      tp.expectRequest('DIRTY', vmo, 0, 1);
      tp.fail(vmo, 0, 1, status);
      await w.expectFailed(status);
      expect(tp.dirtyRanges(vmo)).toEqual([]);
      expect(isPattern(await readNow(tp, vmo, 0, 1), keyOf(vmo), 0)).toBe(true);
      // Failing leaves nothing behind: the next write asks again.
      const w2 = tp.write(vmo, 0, 1);
      tp.expectRequest('DIRTY', vmo, 0, 1);
      tp.dirty(vmo, 0, 1);
      await w2.expectDone();
    },
  );

  // Fuchsia: OpZeroTrapDirty
  it('whole-page OP_ZERO of supplied pages needs no DIRTY request', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(3);
    tp.supply(vmo, 0, 3);
    await new Blocked(vmo.zeroRange(0, 2 * PAGE_SIZE)).expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 2, true]]);
    expect(vmo.counters().residentPages).toBe(1);
  });

  // Fuchsia: DelayedDirtyNotFound, DelayedDirtyZeroRange
  it('if the zero range behind a pending DIRTY is written back first, OP_DIRTY is NOT_FOUND and the write re-asks READ then DIRTY', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1, true);
    tp.supply(vmo, 0, 1);
    vmo.resize(2 * PAGE_SIZE);
    const w = tp.write(vmo, 1, 1, 0x61);
    tp.expectRequest('DIRTY', vmo, 1, 1);
    await w.expectBlocked();
    tp.writebackBegin(vmo, 1, 1, true);
    tp.writebackEnd(vmo, 1, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expectStatus(() => tp.dirty(vmo, 1, 1), ZxStatus.ERR_NOT_FOUND);
    await w.expectBlocked();
    tp.expectRequest('READ', vmo, 1, 1);
    tp.supply(vmo, 1, 1);
    await w.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 1, 1);
    tp.dirty(vmo, 1, 1);
    await w.expectDone();
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false]]);
    expect(allBytes(await readNow(tp, vmo, 1, 1), 0x61)).toBe(true);
  });

  // Fuchsia: DelayedPinAwaitingClean, FailedPinAwaitingClean
  it.each([
    { answer: 'OP_DIRTY', dirtyAfter: true },
    { answer: 'FAIL', dirtyAfter: false },
  ])('END while a write-pin DIRTY is pending cleans the page; $answer then leaves it dirty=$dirtyAfter', async ({ answer, dirtyAfter }) => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1);
    tp.supply(vmo, 0, 1);
    await writeDirty(tp, vmo, 0, 1, true);
    tp.writebackBegin(vmo, 0, 1);
    expect(modified(tp, vmo, true)).toBe(true);
    const p = pin(vmo, 0, 1, true);
    tp.expectRequest('DIRTY', vmo, 0, 1);
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    await p.expectBlocked();
    if (answer === 'OP_DIRTY') {
      tp.dirty(vmo, 0, 1);
      await p.expectDone();
      expect(vmo.counters().pinnedPages).toBe(1);
      vmo.unpin(0, PAGE_SIZE);
    } else {
      tp.fail(vmo, 0, 1, ZxStatus.ERR_IO);
      await p.expectFailed(ZxStatus.ERR_IO);
      expect(vmo.counters().pinnedPages).toBe(0);
    }
    expect(tp.dirtyRanges(vmo)).toEqual(dirtyAfter ? [[0, 1, false]] : []);
    expect(modified(tp, vmo)).toBe(dirtyAfter);
    tp.expectNoRequest();
  });

  // Fuchsia: PinForWriteUnpopulated
  it('pin-for-write over (present, missing) raises DIRTY(0,1), READ(1,1), DIRTY(1,1) in that order', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(2);
    tp.supply(vmo, 0, 1);
    const p = pin(vmo, 0, 2, true);
    tp.expectRequest('DIRTY', vmo, 0, 1);
    tp.expectNoRequest();
    tp.dirty(vmo, 0, 1);
    await p.expectBlocked();
    tp.expectRequest('READ', vmo, 1, 1);
    tp.supply(vmo, 1, 1);
    await p.expectBlocked();
    tp.expectRequest('DIRTY', vmo, 1, 1);
    tp.dirty(vmo, 1, 1);
    await p.expectDone();
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ pinnedPages: 2, dirtyPages: 2 });
    vmo.unpin(0, 2 * PAGE_SIZE);
  });

  // Fuchsia: DirtyAfterPin, PinAfterDirty
  it('a write after a write-pin, and a write-pin after a write, raise no extra DIRTY request', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(2);
    tp.supply(vmo, 0, 2);
    // DirtyAfterPin
    const p = pin(vmo, 0, 1, true);
    tp.expectRequest('DIRTY', vmo, 0, 1);
    tp.dirty(vmo, 0, 1);
    await p.expectDone();
    await tp.write(vmo, 0, 1).expectDone();
    tp.expectNoRequest();
    // PinAfterDirty
    await writeDirty(tp, vmo, 1, 1, true);
    await pin(vmo, 1, 1, true).expectDone();
    tp.expectNoRequest();
    expect(vmo.counters()).toMatchObject({ pinnedPages: 2, dirtyPages: 2, faults: 2 });
    vmo.unpin(0, 2 * PAGE_SIZE);
  });
});

describe('statuses of the dirty/writeback pager ops and queries', () => {
  // Fuchsia: InvalidPagerOpRange (DIRTY)
  it('opRange(DIRTY): NOT_SUPPORTED without TRAP_DIRTY, INVALID_ARGS for unaligned or data != 0, OUT_OF_RANGE past the end', () => {
    const tp = new TestPager();
    const plain = tp.createVmo(2);
    tp.supply(plain, 0, 2);
    expectStatus(() => tp.dirty(plain, 0, 1), ZxStatus.ERR_NOT_SUPPORTED);
    const vmo = tp.createTrapVmo(2);
    tp.supply(vmo, 0, 2);
    expectStatus(() => tp.pager.opRange(PagerOp.DIRTY, vmo, 100, PAGE_SIZE), ZxStatus.ERR_INVALID_ARGS);
    expectStatus(() => tp.pager.opRange(PagerOp.DIRTY, vmo, 0, 100), ZxStatus.ERR_INVALID_ARGS);
    expectStatus(() => tp.pager.opRange(PagerOp.DIRTY, vmo, 0, PAGE_SIZE, 1), ZxStatus.ERR_INVALID_ARGS);
    expectStatus(() => tp.dirty(vmo, 1, 2), ZxStatus.ERR_OUT_OF_RANGE);
    expectStatus(() => tp.dirty(vmo, 3, 1), ZxStatus.ERR_OUT_OF_RANGE);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(tp.dirtyRanges(plain)).toEqual([]);
    tp.expectNoRequest();
  });

  // Fuchsia: InvalidPagerOpRange (DIRTY over unsupplied pages)
  it('opRange(DIRTY) over a range with a never-supplied page is NOT_FOUND and dirties nothing', () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(3);
    tp.supply(vmo, 0, 1);
    tp.supply(vmo, 2, 1);
    expectStatus(() => tp.dirty(vmo, 0, 3), ZxStatus.ERR_NOT_FOUND);
    expectStatus(() => tp.dirty(vmo, 1, 1), ZxStatus.ERR_NOT_FOUND);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(vmo.counters().dirtyPages).toBe(0);
    tp.dirty(vmo, 2, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([[2, 1, false]]);
  });

  // Fuchsia: InvalidPagerOpRange, InvalidQuery (foreign VMOs)
  it('pager ops and queries on an anonymous VMO or another pager\'s VMO are INVALID_ARGS', () => {
    const tp = new TestPager();
    const other = new TestPager();
    const foreign = other.createTrapVmo(1);
    other.supply(foreign, 0, 1);
    const anon = tp.system.createVmo(PAGE_SIZE);
    for (const v of [foreign, anon]) {
      expectStatus(() => tp.pager.opRange(PagerOp.DIRTY, v, 0, PAGE_SIZE), ZxStatus.ERR_INVALID_ARGS);
      expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_BEGIN, v, 0, PAGE_SIZE), ZxStatus.ERR_INVALID_ARGS);
      expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_END, v, 0, PAGE_SIZE), ZxStatus.ERR_INVALID_ARGS);
      expectStatus(() => tp.pager.queryDirtyRanges(v, 0, PAGE_SIZE), ZxStatus.ERR_INVALID_ARGS);
      expectStatus(() => tp.pager.queryVmoStats(v, false), ZxStatus.ERR_INVALID_ARGS);
    }
    expect(other.dirtyRanges(foreign)).toEqual([]);
  });

  // Fuchsia: InvalidPagerOpRange (WRITEBACK_BEGIN / END)
  it('WRITEBACK_BEGIN/END: INVALID_ARGS for bad flags/data or unaligned ranges, OUT_OF_RANGE past the end; a failed op changes nothing', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    tp.supply(vmo, 0, 2);
    await writeDirty(tp, vmo, 0, 2, false);
    expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, 0, PAGE_SIZE, 2), ZxStatus.ERR_INVALID_ARGS);
    expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, 0, PAGE_SIZE, WRITEBACK_IS_ZERO | 2), ZxStatus.ERR_INVALID_ARGS);
    expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, 1, PAGE_SIZE), ZxStatus.ERR_INVALID_ARGS);
    expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, 0, 2 * PAGE_SIZE - 1), ZxStatus.ERR_INVALID_ARGS);
    expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, PAGE_SIZE, 2 * PAGE_SIZE), ZxStatus.ERR_OUT_OF_RANGE);
    // The BEGINs above failed, so this END has nothing AwaitingClean to clean.
    tp.writebackEnd(vmo, 0, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 2, false]]);
    tp.writebackBegin(vmo, 0, 2);
    expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_END, vmo, 0, PAGE_SIZE, 1), ZxStatus.ERR_INVALID_ARGS);
    expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_END, vmo, 0, PAGE_SIZE + 1), ZxStatus.ERR_INVALID_ARGS);
    expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_END, vmo, 2 * PAGE_SIZE, PAGE_SIZE), ZxStatus.ERR_OUT_OF_RANGE);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 2, false]]);
    expect(vmo.counters().dirtyPages).toBe(2);
    tp.writebackEnd(vmo, 0, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
  });

  // Fuchsia: InvalidQuery, QueryEarlyTermination
  it('queryDirtyRanges rounds unaligned ranges out to pages, is OUT_OF_RANGE past the end, and honours maxRanges with available', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(8);
    tp.supply(vmo, 0, 8);
    for (const p of [1, 3, 4, 6]) await writeDirty(tp, vmo, p, 1, false);
    const all = tp.pager.queryDirtyRanges(vmo, 0, 8 * PAGE_SIZE);
    expect(all).toEqual({
      ranges: [
        { offset: PAGE_SIZE, length: PAGE_SIZE, isZero: false },
        { offset: 3 * PAGE_SIZE, length: 2 * PAGE_SIZE, isZero: false },
        { offset: 6 * PAGE_SIZE, length: PAGE_SIZE, isZero: false },
      ],
      available: 3,
    });
    // Unaligned: [3*PS + 100, 3*PS + 110) rounds out to page 3 only.
    expect(tp.pager.queryDirtyRanges(vmo, 3 * PAGE_SIZE + 100, 10)).toEqual({
      ranges: [{ offset: 3 * PAGE_SIZE, length: PAGE_SIZE, isZero: false }], available: 1,
    });
    expect(tp.pager.queryDirtyRanges(vmo, PAGE_SIZE - 1, 2)).toEqual({
      ranges: [{ offset: PAGE_SIZE, length: PAGE_SIZE, isZero: false }], available: 1,
    });
    expectStatus(() => tp.pager.queryDirtyRanges(vmo, 0, 8 * PAGE_SIZE + 1), ZxStatus.ERR_OUT_OF_RANGE);
    expectStatus(() => tp.pager.queryDirtyRanges(vmo, 9 * PAGE_SIZE, 0), ZxStatus.ERR_OUT_OF_RANGE);
    // Early termination: no room → none returned, all counted; room for one of three.
    expect(tp.pager.queryDirtyRanges(vmo, 0, 8 * PAGE_SIZE, 0)).toEqual({ ranges: [], available: 3 });
    const first = tp.pager.queryDirtyRanges(vmo, 0, 8 * PAGE_SIZE, 1);
    expect(first).toEqual({ ranges: [all.ranges[0]], available: 3 });
    // Resume after the last one returned.
    const from = first.ranges[0].offset + first.ranges[0].length;
    expect(tp.pager.queryDirtyRanges(vmo, from, 8 * PAGE_SIZE - from, 1)).toEqual({ ranges: [all.ranges[1]], available: 2 });
  });

  // Fuchsia: ModifiedOnVmoWrite, ModifiedNoReset, NotModifiedOnVmoRead, NotModifiedOnFailedDirtyRequest
  it('queryVmoStats: a read or a failed DIRTY leaves modified clear; a write sets it; no-reset keeps it; reset clears it', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(2);
    tp.supply(vmo, 0, 2);
    expect(modified(tp, vmo)).toBe(false);
    await readNow(tp, vmo, 0, 2);
    expect(modified(tp, vmo)).toBe(false);
    const w = tp.write(vmo, 0, 1);
    tp.expectRequest('DIRTY', vmo, 0, 1);
    tp.fail(vmo, 0, 1, ZxStatus.ERR_NO_SPACE);
    await w.expectFailed(ZxStatus.ERR_NO_SPACE);
    expect(modified(tp, vmo)).toBe(false);
    await writeDirty(tp, vmo, 1, 1, true);
    expect(modified(tp, vmo)).toBe(true);
    expect(modified(tp, vmo)).toBe(true); // without reset the flag stays
    expect(modified(tp, vmo, true)).toBe(true);
    expect(modified(tp, vmo)).toBe(false);
    tp.writebackBegin(vmo, 1, 1);
    tp.writebackEnd(vmo, 1, 1);
    expect(modified(tp, vmo)).toBe(false); // writeback is not a modification
  });
});
