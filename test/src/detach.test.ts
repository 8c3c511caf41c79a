/**
 * PAGER-TESTS.md section 3: detach / close / teardown of pager VMOs (SEMANTICS.md "Detach, close,
 * teardown"). Fuchsia threads become concurrent async operations tracked by `Blocked`.
 */
import { describe, expect, it } from 'vitest';
import { ChildOptions, EvictionLevel, PAGE_SIZE, PagerOp, VmoOp, ZxStatus } from '../../src/index.js';
import { expectZxRejects } from './clone-helpers.js';
import {
  TRAP_MODES, allBytes, drain, expectStatus, makeVmo, modified, readNow, supplyZero, writeDirty,
} from './dirty-helpers.js';
import { TestPager, isPattern, keyOf, settle } from './userpager.js';

describe('COMPLETE packets', () => {
  // Fuchsia: DetachPageCompleteTest
  it('detach sends exactly one COMPLETE for the key, and it is the last packet', () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    tp.pager.detachVmo(vmo);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    tp.expectNoRequest();
    tp.pager.detachVmo(vmo); // idempotent: no second COMPLETE
    tp.expectNoRequest();
    vmo.close();
    tp.expectNoRequest();
  });

  // Fuchsia: ClosePageCompleteTest
  it('dropping the last handle of a pager VMO sends COMPLETE', () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    tp.supply(vmo, 0, 1);
    tp.expectNoRequest();
    vmo.close();
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    tp.expectNoRequest();
  });

  // Fuchsia: ClosePageCompleteTest (the VMO outlives its handle while a clone refers to it)
  it('COMPLETE waits until the last clone of a pager VMO is gone', () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    const child = vmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 2 * PAGE_SIZE);
    vmo.close();
    tp.expectNoRequest();
    child.close();
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    tp.expectNoRequest();
  });
});

describe('a destroyed pager VMO leaves nothing behind', () => {
  // Found through a mount: every file ever opened stayed in its pager's set of VMOs (25,000 files
  // read kept ~30 MiB of heap); the pager now forgets a VMO when it is destroyed.
  it('its pager forgets it, and closing the pager later is still safe', () => {
    const tp = new TestPager();
    const tracked = (): number => (tp.pager as unknown as { vmos: Set<unknown> }).vmos.size;
    const live = tp.createVmo(1);
    for (let i = 0; i < 100; i++) {
      const vmo = tp.createVmo(2);
      tp.supply(vmo, 0, 2);
      vmo.close();
      tp.expectRequest('COMPLETE', vmo, 0, 0);
    }
    expect(tracked()).toBe(1);
    tp.pager.close();
    expect(live.isDestroyed).toBe(false);
  });
});

describe('detach decommits clean pages', () => {
  // Fuchsia: DecommitOnDetachTest, DecommitCleanOnDetach
  it('detach frees every clean page; reads through the VMO then fail BAD_STATE without a request', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(3);
    expect(tp.supply(vmo, 0, 3)).toBe(3);
    const used = tp.system.arena.usedFrames;
    expect(vmo.counters().residentPages).toBe(3);
    tp.pager.detachVmo(vmo);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    expect(vmo.counters().residentPages).toBe(0);
    expect(vmo.attributedPagesInRange(0, 3 * PAGE_SIZE)).toBe(0);
    expect(tp.system.arena.usedFrames).toBe(used - 3);
    for (let p = 0; p < 3; p++) await tp.read(vmo, p, 1).expectFailed(ZxStatus.ERR_BAD_STATE);
    await tp.commit(vmo, 0, 3).expectFailed(ZxStatus.ERR_BAD_STATE);
    tp.expectNoRequest();
  });

  // Fuchsia: DecommitOnDetachTest (clone half)
  it('after detach a clone reading an unforked page fails BAD_STATE; a page it forked stays readable', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(3);
    tp.supply(vmo, 0, 3);
    const child = vmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 3 * PAGE_SIZE);
    await tp.write(child, 1, 1, 0x5a).expectDone(); // child forks page 1
    tp.pager.detachVmo(vmo);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    expect(vmo.counters().residentPages).toBe(0);
    await tp.read(child, 0, 1).expectFailed(ZxStatus.ERR_BAD_STATE);
    await tp.read(child, 2, 1).expectFailed(ZxStatus.ERR_BAD_STATE);
    await tp.write(child, 2, 1).expectFailed(ZxStatus.ERR_BAD_STATE);
    const forked = await tp.read(child, 1, 1).expectDone();
    expect(allBytes(forked, 0x5a)).toBe(true);
    tp.expectNoRequest();
  });
});

describe('detach and pager close fail blocked readers', () => {
  // Fuchsia: DetachNonMappingAccess
  it('a reader of two pages, page 0 supplied, fails BAD_STATE on detach; no further READ', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    const r = tp.read(vmo, 0, 2);
    tp.expectRequest('READ', vmo, 0, 2);
    tp.supply(vmo, 0, 1);
    await r.expectBlocked();
    tp.expectNoRequest(); // page 1 is still covered by the first request
    tp.pager.detachVmo(vmo);
    await r.expectFailed(ZxStatus.ERR_BAD_STATE);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    tp.expectNoRequest();
    await tp.read(vmo, 1, 1).expectFailed(ZxStatus.ERR_BAD_STATE);
    tp.expectNoRequest();
  });

  // Fuchsia: ReadDetachInterruptLateTest, ReadDetachInterruptEarlyTest,
  //          ReadCloseInterruptLateTest, ReadCloseInterruptEarlyTest
  it.each([
    { how: 'detach', late: true },
    { how: 'detach', late: false },
    { how: 'pager close', late: true },
    { how: 'pager close', late: false },
  ])('$how while a reader is blocked (packet read: $late) fails the reader with BAD_STATE', async ({ how, late }) => {
    const tp = new TestPager();
    const vmo = tp.createVmo(1);
    const r = tp.read(vmo, 0, 1);
    await r.expectBlocked();
    if (late) tp.expectRequest('READ', vmo, 0, 1);
    if (how === 'detach') tp.pager.detachVmo(vmo);
    else tp.pager.close();
    await r.expectFailed(ZxStatus.ERR_BAD_STATE);
    const packets = drain(tp);
    // An unread READ may still be delivered (the pager may ignore it); nothing else but one COMPLETE on detach.
    const reads = packets.filter((p) => p.command === 'READ');
    const completes = packets.filter((p) => p.command === 'COMPLETE');
    expect(reads.length).toBeLessThanOrEqual(late ? 0 : 1);
    for (const p of reads) expect(p).toMatchObject({ key: keyOf(vmo), offset: 0, length: PAGE_SIZE });
    expect(completes.length).toBe(how === 'detach' ? 1 : 0);
    if (how === 'detach') expect(packets[packets.length - 1]).toMatchObject({ command: 'COMPLETE', key: keyOf(vmo) });
    expect(packets.length).toBe(reads.length + completes.length);
  });

  // Fuchsia: ClosePagerTest
  it('closing the pager fails blocked readers and later faults (BAD_STATE), sends nothing, keeps supplied pages readable', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(3);
    tp.supply(vmo, 0, 1);
    const r = tp.read(vmo, 1, 1);
    tp.expectRequest('READ', vmo, 1, 1);
    tp.pager.close();
    await r.expectFailed(ZxStatus.ERR_BAD_STATE);
    const page0 = await readNow(tp, vmo, 0, 1);
    expect(isPattern(page0, keyOf(vmo), 0)).toBe(true);
    await tp.read(vmo, 2, 1).expectFailed(ZxStatus.ERR_BAD_STATE);
    await tp.read(vmo, 1, 1).expectFailed(ZxStatus.ERR_BAD_STATE);
    tp.expectNoRequest();
    vmo.close(); // not even COMPLETE after the pager is closed
    tp.expectNoRequest();
  });

  it('after a pager close its supplied pages are never evicted (nothing could supply them again)', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(4);
    tp.supply(vmo, 0, 4);
    tp.pager.close();
    expect(tp.system.reclaim(16, EvictionLevel.IncludeNewest)).toBe(0); // before: all 4 went, and reads failed BAD_STATE
    expect(isPattern(await readNow(tp, vmo, 0, 4), keyOf(vmo), 0)).toBe(true);
    tp.expectNoRequest();
  });

  // Fuchsia: DetachClosePagerTest
  it('detach followed by pager close is safe: one COMPLETE, then nothing; reads fail BAD_STATE', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    tp.supply(vmo, 0, 1);
    tp.pager.detachVmo(vmo);
    tp.pager.close();
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    tp.expectNoRequest();
    await tp.read(vmo, 0, 1).expectFailed(ZxStatus.ERR_BAD_STATE);
    vmo.close();
    tp.expectNoRequest();
    tp.system.debugValidate();
  });

  // Fuchsia: ClosePortTest
  it('with the port closed, supply still works and the reader stays blocked until detach fails it', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    const r = tp.read(vmo, 0, 2);
    await r.expectBlocked();
    tp.port.close();
    expect(tp.supply(vmo, 0, 1)).toBe(1);
    await r.expectBlocked(); // still waiting for page 1
    tp.pager.detachVmo(vmo);
    await r.expectFailed(ZxStatus.ERR_BAD_STATE);
    expectStatus(() => tp.port.tryRead(), ZxStatus.ERR_BAD_STATE);
  });

  // Fuchsia: ClosePortTest (the supply answers the reader)
  it('with the port closed, supplying every page the reader needs completes the read', async () => {
    const tp = new TestPager();
    const vmo = tp.createVmo(2);
    const r = tp.read(vmo, 0, 2);
    await r.expectBlocked();
    tp.port.close();
    tp.supply(vmo, 0, 2);
    const buf = await r.expectDone();
    expect(isPattern(buf, keyOf(vmo), 0)).toBe(true);
  });
});

describe.each(TRAP_MODES)('dirty pages survive detach ($mode)', ({ trap }) => {
  // Fuchsia: WritebackDirtyPagesAfterDetach
  it('a dirty page stays committed, dirty and readable after detach; WRITEBACK_BEGIN/END clean it', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap);
    tp.supply(vmo, 0, 2);
    await writeDirty(tp, vmo, 0, 1, trap, 0x11);
    tp.pager.detachVmo(vmo);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    expect(vmo.counters()).toMatchObject({ residentPages: 1, dirtyPages: 1 });
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    expect(allBytes(await readNow(tp, vmo, 0, 1), 0x11)).toBe(true);
    await tp.read(vmo, 1, 1).expectFailed(ZxStatus.ERR_BAD_STATE); // the clean page was decommitted
    expectStatus(() => tp.supply(vmo, 1, 1), ZxStatus.ERR_BAD_STATE);
    tp.writebackBegin(vmo, 0, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]); // AwaitingClean is still reported
    tp.writebackEnd(vmo, 0, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(vmo.counters().dirtyPages).toBe(0);
    tp.expectNoRequest();
  });

  // Fuchsia: WritebackResizedRangeAfterDetach
  it('a grown zero tail and a dirty page survive detach and can be written back', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 2, trap, true);
    tp.supply(vmo, 0, 2);
    await writeDirty(tp, vmo, 1, 1, trap, 0x22);
    vmo.resize(4 * PAGE_SIZE);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false], [2, 2, true]]);
    tp.pager.detachVmo(vmo);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false], [2, 2, true]]);
    const tail = await readNow(tp, vmo, 2, 2);
    expect(allBytes(tail, 0)).toBe(true);
    expect(allBytes(await readNow(tp, vmo, 1, 1), 0x22)).toBe(true);
    tp.writebackBegin(vmo, 2, 2, true);
    tp.writebackEnd(vmo, 2, 2);
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false]]);
    tp.writebackBegin(vmo, 1, 1);
    tp.writebackEnd(vmo, 1, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(vmo.counters()).toMatchObject({ dirtyPages: 0, dirtyZeroPages: 0 });
    tp.expectNoRequest();
  });

  it('after a pager close a write to a Dirty zero range proceeds without a request, as after detach', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 1, trap, true);
    tp.supply(vmo, 0, 1);
    vmo.resize(3 * PAGE_SIZE); // pages 1-2: a Dirty zero run
    tp.pager.close();
    await tp.write(vmo, 1, 1, 0x21).expectDone(); // before, with TRAP_DIRTY: a DIRTY packet after the close, and the writer hung
    tp.expectNoRequest();
    expect(allBytes(await readNow(tp, vmo, 1, 1), 0x21)).toBe(true);
  });

  // Fuchsia: NoDirtyRequestsAfterDetach, WritebackResizedRangeAfterDetach (zero ranges: a Dirty zero
  // range takes writes after detach, an AwaitingClean one does not)
  it('after detach a write to a Dirty zero range proceeds without a request; one to an AwaitingClean zero range fails BAD_STATE', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 1, trap, true);
    tp.supply(vmo, 0, 1);
    vmo.resize(3 * PAGE_SIZE);
    tp.writebackBegin(vmo, 2, 1, true); // page 1 Dirty zero, page 2 AwaitingClean zero
    tp.pager.detachVmo(vmo);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    await tp.write(vmo, 1, 1, 0x12).expectDone();
    await tp.write(vmo, 2, 1, 0x13).expectFailed(ZxStatus.ERR_BAD_STATE);
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([[1, 1, false], [2, 1, true]]);
    expect(allBytes(await readNow(tp, vmo, 1, 1), 0x12)).toBe(true);
    expect(allBytes(await readNow(tp, vmo, 2, 1), 0)).toBe(true);
  });

  // Fuchsia: NoDirtyRequestsAfterDetach
  it('after detach a write to a Clean or AwaitingClean page fails BAD_STATE without a DIRTY request; a Dirty page takes writes until END', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 3, trap);
    tp.supply(vmo, 0, 3);
    await writeDirty(tp, vmo, 0, 2, trap, 0x33); // pages 0 and 1 dirty
    tp.writebackBegin(vmo, 1, 1); // page 1 AwaitingClean; page 2 Clean
    tp.pager.detachVmo(vmo);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    expect(vmo.counters().residentPages).toBe(2);
    await tp.write(vmo, 2, 1).expectFailed(ZxStatus.ERR_BAD_STATE);
    await tp.write(vmo, 1, 1, 0x44).expectFailed(ZxStatus.ERR_BAD_STATE);
    tp.expectNoRequest();
    expect(allBytes(await readNow(tp, vmo, 1, 1), 0x33)).toBe(true); // the failed write changed nothing
    await tp.write(vmo, 0, 1, 0x55).expectDone();
    tp.expectNoRequest();
    expect(allBytes(await readNow(tp, vmo, 0, 1), 0x55)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 2, false]]);
    tp.writebackEnd(vmo, 0, 3); // cleans only the AwaitingClean page 1
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 1, false]]);
    tp.writebackBegin(vmo, 0, 1);
    tp.writebackEnd(vmo, 0, 1);
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    tp.expectNoRequest();
  });

  // SEMANTICS: OP_ZERO is a write of zeros, and after detach a write to a Dirty page proceeds.
  it('after detach, OP_ZERO over whole Dirty pages zeroes them; over a Clean page it fails BAD_STATE and changes nothing', async () => {
    const tp = new TestPager();
    const vmo = makeVmo(tp, 3, trap, true);
    tp.supply(vmo, 0, 3);
    await writeDirty(tp, vmo, 0, 2, trap, 0x33); // pages 0 and 1 Dirty, page 2 Clean
    vmo.resize(4 * PAGE_SIZE); // page 3: a Dirty zero run
    tp.pager.detachVmo(vmo);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    await expectZxRejects(vmo.opRange(VmoOp.ZERO, 0, 3 * PAGE_SIZE), ZxStatus.ERR_BAD_STATE);
    expect(allBytes(await readNow(tp, vmo, 0, 2), 0x33)).toBe(true);
    await vmo.opRange(VmoOp.ZERO, 0, 2 * PAGE_SIZE); // before: BAD_STATE, though a write there proceeds
    await vmo.opRange(VmoOp.ZERO, 3 * PAGE_SIZE, PAGE_SIZE);
    tp.expectNoRequest();
    expect(allBytes(await readNow(tp, vmo, 0, 2), 0)).toBe(true);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 2, false], [3, 1, true]]);
  });
});

describe('DIRTY requests and detach', () => {
  // Fuchsia: DetachWithPendingDirtyRequest
  it('a writer blocked on DIRTY fails BAD_STATE on detach, and nothing is left dirty or modified', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(2);
    tp.supply(vmo, 0, 2);
    expect(modified(tp, vmo, true)).toBe(false);
    const w = tp.write(vmo, 0, 2, 0x66);
    tp.expectRequest('DIRTY', vmo, 0, 2);
    await w.expectBlocked();
    tp.pager.detachVmo(vmo);
    await w.expectFailed(ZxStatus.ERR_BAD_STATE);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([]);
    expect(vmo.counters()).toMatchObject({ residentPages: 0, dirtyPages: 0 });
    expect(modified(tp, vmo)).toBe(false);
  });

  // Fuchsia: ResolveDirtyRequestAfterDetach
  it('after detach, OP_DIRTY and OP_FAIL for the pending DIRTY request both fail BAD_STATE', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(1);
    tp.supply(vmo, 0, 1);
    const w = tp.write(vmo, 0, 1);
    tp.expectRequest('DIRTY', vmo, 0, 1);
    tp.pager.detachVmo(vmo);
    await w.expectFailed(ZxStatus.ERR_BAD_STATE);
    expectStatus(() => tp.dirty(vmo, 0, 1), ZxStatus.ERR_BAD_STATE);
    expectStatus(() => tp.fail(vmo, 0, 1, ZxStatus.ERR_IO), ZxStatus.ERR_BAD_STATE);
    // WRITEBACK_* keep working (nothing to do here).
    tp.writebackBegin(vmo, 0, 1);
    tp.writebackEnd(vmo, 0, 1);
    tp.expectRequest('COMPLETE', vmo, 0, 0);
    tp.expectNoRequest();
    expect(tp.dirtyRanges(vmo)).toEqual([]);
  });

  // SEMANTICS.md statuses: DIRTY over a detached VMO is BAD_STATE even on an already-dirty page;
  // queryDirtyRanges and queryVmoStats keep working.
  it('after detach, queries keep working while DIRTY, FAIL and supply are BAD_STATE', async () => {
    const tp = new TestPager();
    const vmo = tp.createTrapVmo(2);
    tp.supply(vmo, 0, 2);
    await writeDirty(tp, vmo, 1, 1, true, 0x77);
    tp.pager.detachVmo(vmo);
    expectStatus(() => tp.dirty(vmo, 1, 1), ZxStatus.ERR_BAD_STATE);
    expectStatus(() => tp.fail(vmo, 0, 2, ZxStatus.ERR_IO), ZxStatus.ERR_BAD_STATE);
    expectStatus(() => tp.supply(vmo, 0, 1), ZxStatus.ERR_BAD_STATE);
    expect(tp.pager.queryDirtyRanges(vmo, 0, 2 * PAGE_SIZE)).toEqual({
      ranges: [{ offset: PAGE_SIZE, length: PAGE_SIZE, isZero: false }], available: 1,
    });
    expect(modified(tp, vmo, true)).toBe(true);
    expect(modified(tp, vmo)).toBe(false);
    expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, 0, PAGE_SIZE, 2), ZxStatus.ERR_INVALID_ARGS);
    expectStatus(() => tp.pager.opRange(PagerOp.WRITEBACK_END, vmo, 0, 3 * PAGE_SIZE), ZxStatus.ERR_OUT_OF_RANGE);
  });
});

describe('teardown', () => {
  // Fuchsia: SuccessiveVmoTest
  it('64 create/fault/supply/close cycles on one pager each end in one COMPLETE and leak no frames', async () => {
    const tp = new TestPager();
    const baseline = tp.system.arena.usedFrames;
    for (let i = 0; i < 64; i++) {
      const vmo = tp.createVmo(2);
      const r = tp.read(vmo, 0, 2);
      tp.expectRequest('READ', vmo, 0, 2);
      tp.supply(vmo, 0, 2);
      expect(isPattern(await r.expectDone(), keyOf(vmo), 0)).toBe(true);
      vmo.close();
      tp.expectRequest('COMPLETE', vmo, 0, 0);
      tp.expectNoRequest();
      expect(tp.system.arena.usedFrames).toBe(baseline);
    }
    tp.system.debugValidate();
  });

  // Fuchsia: ZeroHandlesRace, RacyPortDequeue
  it('closing VMOs with requests outstanding (read or unread) never hangs a waiter and ends each key with one COMPLETE', async () => {
    const tp = new TestPager();
    const baseline = tp.system.arena.usedFrames;
    const vmos = [];
    const readers = [];
    for (let i = 0; i < 16; i++) {
      const vmo = tp.createVmo(4);
      supplyZero(tp, vmo, 3, 1);
      vmos.push(vmo);
      readers.push(tp.read(vmo, 0, 2));
    }
    // Dequeue half the READ packets, then drop every VMO.
    for (let i = 0; i < 8; i++) tp.expectRequest('READ', vmos[i], 0, 2);
    for (const vmo of vmos) vmo.close();
    await settle();
    for (const r of readers) expect(r.state).toBe('failed');
    const packets = drain(tp);
    for (const vmo of vmos) {
      const mine = packets.filter((p) => p.key === keyOf(vmo));
      const completes = mine.filter((p) => p.command === 'COMPLETE');
      expect(completes.length).toBe(1);
      expect(mine[mine.length - 1].command).toBe('COMPLETE');
    }
    expect(tp.system.arena.usedFrames).toBe(baseline);
    tp.system.debugValidate();
  });
});
