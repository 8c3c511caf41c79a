/**
 * Anonymous VMOs and the generic VMO surface (SEMANTICS.md "Units and ranges", "Commit, decommit,
 * zero, pin", "Clones and slices"; Zircon's vmo_unittest / core vmo tests where named).
 */
import { describe, expect, it } from 'vitest';
import {
  ChildOptions, InternalError, MAX_VMO_SIZE_BYTES, VmSystem, ZxStatus, type ChildObserver,
} from '../../src/index.js';
import { TestPager, isPattern, keyOf } from './userpager.js';
import { P, cow, expectZx, expectZxRejects, filled, isFilled, readSync } from './clone-helpers.js';

function newSystem(): VmSystem {
  return new VmSystem({ budgetBytes: 64 * P, validate: true });
}

describe('anonymous VMOs and the VMO surface', () => {
  it('an anonymous VMO reads as zeros without committing; a write commits exactly the pages touched', async () => {
    const sys = newSystem();
    const vmo = sys.createVmo(4 * P);
    expect(isFilled(readSync(vmo, 0, 4 * P), 0)).toBe(true);
    expect(vmo.counters().residentPages).toBe(0);
    expect(sys.arena.usedFrames).toBe(0);
    await vmo.write(new Uint8Array([7]), 2 * P + 5);
    expect(vmo.counters().residentPages).toBe(1);
    expect(vmo.attributedPagesInRange(0, 4 * P)).toBe(1);
    const page = readSync(vmo, 2 * P, P);
    expect(page[5]).toBe(7);
    page[5] = 0;
    expect(isFilled(page, 0)).toBe(true);
    sys.debugValidate();
  });

  it('the size rounds up to whole pages', () => {
    const sys = newSystem();
    expect(sys.createVmo(1).sizeBytes).toBe(P);
    expect(sys.createVmo(P + 1).sizeBytes).toBe(2 * P);
    expect(sys.createVmo(0).sizeBytes).toBe(0);
    expectZx(() => sys.createVmo(MAX_VMO_SIZE_BYTES + 1), ZxStatus.ERR_OUT_OF_RANGE);
  });

  it('reads and writes at unaligned offsets and across page boundaries round-trip byte-exactly', async () => {
    const sys = newSystem();
    const vmo = sys.createVmo(3 * P);
    const data = new Uint8Array(P + 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 1) & 0xff;
    await vmo.write(data, P - 7);
    expect(vmo.attributedPagesInRange(0, 3 * P)).toBe(3);
    const back = new Uint8Array(data.length);
    await vmo.read(back, P - 7);
    expect(back).toEqual(data);
    // Neighbouring bytes are untouched zeros.
    const around = readSync(vmo, P - 8, data.length + 2);
    expect(around[0]).toBe(0);
    expect(around[around.length - 1]).toBe(0);
    // A read into the middle of a destination buffer with an explicit length.
    const dst = new Uint8Array(10).fill(0xee);
    await vmo.read(dst, P - 7, 3);
    expect(Array.from(dst.subarray(0, 4))).toEqual([data[0], data[1], data[2], 0xee]);
  });

  it('zero-length reads, writes, commits and zeroes succeed and do nothing, even at the end or on a pager VMO', async () => {
    const sys = newSystem();
    const vmo = sys.createVmo(2 * P);
    await vmo.read(new Uint8Array(0), 0);
    await vmo.read(new Uint8Array(0), 2 * P);
    await vmo.write(new Uint8Array(0), 2 * P);
    await vmo.commitRange(P, 0);
    await vmo.zeroRange(2 * P, 0);
    expect(vmo.counters().residentPages).toBe(0);
    const tp = new TestPager();
    const pvmo = tp.createVmo(1);
    await pvmo.read(new Uint8Array(0), 0);
    await pvmo.write(new Uint8Array(0), P);
    tp.expectNoRequest();
    expect(tp.pager.queryVmoStats(pvmo, false).modified).toBe(false);
  });

  it('reads, writes, commits and zeroes past the end are OUT_OF_RANGE', async () => {
    const sys = newSystem();
    const vmo = sys.createVmo(2 * P);
    await expectZxRejects(vmo.read(new Uint8Array(2), 2 * P - 1), ZxStatus.ERR_OUT_OF_RANGE);
    await expectZxRejects(vmo.read(new Uint8Array(1), 2 * P), ZxStatus.ERR_OUT_OF_RANGE);
    await expectZxRejects(vmo.write(new Uint8Array(2), 2 * P - 1), ZxStatus.ERR_OUT_OF_RANGE);
    await expectZxRejects(vmo.write(new Uint8Array(1), 3 * P), ZxStatus.ERR_OUT_OF_RANGE);
    await expectZxRejects(vmo.commitRange(P, 2 * P), ZxStatus.ERR_OUT_OF_RANGE);
    await expectZxRejects(vmo.zeroRange(P, P + 1), ZxStatus.ERR_OUT_OF_RANGE);
    expect(vmo.counters().residentPages).toBe(0);
  });

  it('a name is kept up to 31 UTF-8 bytes and truncated there without splitting a character', () => {
    const sys = newSystem();
    const vmo = sys.createVmo(P);
    vmo.name = 'a'.repeat(31);
    expect(vmo.name).toBe('a'.repeat(31));
    vmo.name = 'b'.repeat(40);
    expect(vmo.name).toBe('b'.repeat(31));
    vmo.name = `${'a'.repeat(29)}é`; // 31 bytes exactly
    expect(vmo.name).toBe(`${'a'.repeat(29)}é`);
    vmo.name = `${'a'.repeat(30)}é`; // 32 bytes: the 2-byte é would be split
    expect(vmo.name).toBe('a'.repeat(30));
    vmo.name = `${'a'.repeat(29)}€`; // 3-byte €
    expect(vmo.name).toBe('a'.repeat(29));
    vmo.name = `${'a'.repeat(28)}😀x`; // 4-byte emoji ends at byte 32
    expect(vmo.name).toBe('a'.repeat(28));
    expect(Buffer.byteLength(sys.createVmo(P, { name: '名'.repeat(20) }).name, 'utf8')).toBe(30);
  });

  it('setUserId sets the id once; a second call is a bug and throws InternalError', () => {
    const sys = newSystem();
    const vmo = sys.createVmo(P);
    expect(vmo.userId).toBeUndefined();
    vmo.setUserId(42);
    expect(vmo.userId).toBe(42);
    expect(() => vmo.setUserId(43)).toThrow(InternalError);
    expect(vmo.userId).toBe(42);
  });

  it('the child observer fires on zero→one and one→zero children only', () => {
    const sys = newSystem();
    const vmo = sys.createVmo(2 * P);
    const events: string[] = [];
    const observer: ChildObserver = {
      onOneChild: () => events.push('one'),
      onZeroChildren: () => events.push('zero'),
    };
    vmo.setChildObserver(observer);
    const s1 = vmo.createChild(ChildOptions.SLICE, 0, P);
    expect(events).toEqual(['one']);
    const s2 = vmo.createChild(ChildOptions.SNAPSHOT, 0, P);
    expect(events).toEqual(['one']);
    s1.close();
    expect(events).toEqual(['one']);
    s2.close();
    expect(events).toEqual(['one', 'zero']);
    const s3 = vmo.createChild(ChildOptions.SLICE, P, P);
    expect(events).toEqual(['one', 'zero', 'one']);
    s3.close();
    expect(events).toEqual(['one', 'zero', 'one', 'zero']);
    // A COW clone of a pager VMO counts the same way.
    const tp = new TestPager();
    const pvmo = tp.createVmo(1);
    const pe: string[] = [];
    pvmo.setChildObserver({ onOneChild: () => pe.push('one'), onZeroChildren: () => pe.push('zero') });
    const c = cow(pvmo, 0, 1);
    expect(pe).toEqual(['one']);
    c.close();
    expect(pe).toEqual(['one', 'zero']);
  });

  it('attributedPagesInRange counts the pages a VMO itself holds, rounding the range out to pages', async () => {
    const sys = newSystem();
    const vmo = sys.createVmo(4 * P);
    await vmo.write(new Uint8Array([1]), 0);
    await vmo.write(new Uint8Array([1]), 2 * P);
    expect(vmo.attributedPagesInRange(0, 4 * P)).toBe(2);
    expect(vmo.attributedPagesInRange(P, P)).toBe(0);
    expect(vmo.attributedPagesInRange(P, 2 * P)).toBe(1);
    expect(vmo.attributedPagesInRange(P - 1, 2)).toBe(1); // rounds out to pages 0 and 1
    expect(vmo.attributedPagesInRange(0, 0)).toBe(0);
    expectZx(() => vmo.attributedPagesInRange(0, 5 * P), ZxStatus.ERR_OUT_OF_RANGE);
    const slice = vmo.createChild(ChildOptions.SLICE, 0, 4 * P);
    expect(slice.attributedPagesInRange(0, 4 * P)).toBe(0);
    const tp = new TestPager();
    const pvmo = tp.createVmo(2);
    tp.supply(pvmo, 0, 2);
    const clone = cow(pvmo, 0, 2);
    await clone.write(new Uint8Array([9]), P);
    expect(clone.attributedPagesInRange(0, 2 * P)).toBe(1);
    expect(pvmo.attributedPagesInRange(0, 2 * P)).toBe(2);
  });

  it('commitRangePinned pins and counts pages once; unpin undoes one pin; unpinning an unpinned page throws InternalError', async () => {
    const sys = newSystem();
    const vmo = sys.createVmo(4 * P);
    await vmo.commitRangePinned(0, 2 * P);
    expect(vmo.counters().pinnedPages).toBe(2);
    expect(vmo.counters().residentPages).toBe(2);
    await vmo.commitRangePinned(0, P);
    expect(vmo.counters().pinnedPages).toBe(2);
    vmo.unpin(0, 2 * P);
    expect(vmo.counters().pinnedPages).toBe(1); // page 0 is still pinned once
    vmo.unpin(0, P);
    expect(vmo.counters().pinnedPages).toBe(0);
    expect(() => vmo.unpin(0, P)).toThrow(InternalError);
    expect(() => vmo.unpin(3 * P, P)).toThrow(InternalError); // never committed
    expect(vmo.counters().pinnedPages).toBe(0);
    await expectZxRejects(vmo.commitRangePinned(1, P), ZxStatus.ERR_INVALID_ARGS);
    await expectZxRejects(vmo.commitRangePinned(3 * P, 2 * P), ZxStatus.ERR_OUT_OF_RANGE);
    expect(vmo.counters().pinnedPages).toBe(0);
    sys.debugValidate();
  });

  it('decommitRange frees anonymous pages (they read zero), needs alignment, refuses pinned pages and pager VMOs', async () => {
    const sys = newSystem();
    const vmo = sys.createVmo(3 * P);
    await vmo.write(filled(3 * P, 0x5a), 0);
    const used = sys.arena.usedFrames;
    vmo.decommitRange(P, P);
    expect(vmo.attributedPagesInRange(0, 3 * P)).toBe(2);
    expect(sys.arena.usedFrames).toBe(used - 1);
    expect(isFilled(readSync(vmo, P, P), 0)).toBe(true);
    expect(isFilled(readSync(vmo, 0, P), 0x5a)).toBe(true);
    expectZx(() => vmo.decommitRange(1, P), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => vmo.decommitRange(0, 100), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => vmo.decommitRange(2 * P, 2 * P), ZxStatus.ERR_OUT_OF_RANGE);
    await vmo.commitRangePinned(0, P);
    expectZx(() => vmo.decommitRange(0, P), ZxStatus.ERR_BAD_STATE);
    expect(vmo.attributedPagesInRange(0, P)).toBe(1);
    // Through a slice of an anonymous VMO it works; through a slice of a pager VMO it is NOT_SUPPORTED.
    const slice = vmo.createChild(ChildOptions.SLICE, 2 * P, P);
    slice.decommitRange(0, P);
    expect(vmo.attributedPagesInRange(2 * P, P)).toBe(0);
    const tp = new TestPager();
    const pvmo = tp.createVmo(1);
    tp.supply(pvmo, 0, 1);
    expectZx(() => pvmo.createChild(ChildOptions.SLICE, 0, P).decommitRange(0, P), ZxStatus.ERR_NOT_SUPPORTED);
    expect(pvmo.attributedPagesInRange(0, P)).toBe(1);
  });

  it('zeroRange on an anonymous VMO zeroes exactly the range and frees the whole pages in it', async () => {
    const sys = newSystem();
    const vmo = sys.createVmo(3 * P);
    await vmo.write(filled(3 * P, 0x77), 0);
    await vmo.zeroRange(100, 2 * P);
    const all = readSync(vmo, 0, 3 * P);
    expect(isFilled(all.subarray(0, 100), 0x77)).toBe(true);
    expect(isFilled(all.subarray(100, 100 + 2 * P), 0)).toBe(true);
    expect(isFilled(all.subarray(100 + 2 * P), 0x77)).toBe(true);
    expect(vmo.attributedPagesInRange(0, 3 * P)).toBe(2); // page 1 freed
  });

  it('a slice is a window: writes and reads through it reach the parent and vice versa', async () => {
    const sys = newSystem();
    const parent = sys.createVmo(4 * P);
    const slice = parent.createChild(ChildOptions.SLICE, P, 2 * P);
    expect(slice.sizeBytes).toBe(2 * P);
    expect(slice.kind).toBe('slice');
    await slice.write(new Uint8Array([1, 2, 3]), 10);
    expect(Array.from(readSync(parent, P + 10, 3))).toEqual([1, 2, 3]);
    await parent.write(new Uint8Array([4, 5]), 2 * P + 5);
    expect(Array.from(readSync(slice, P + 5, 2))).toEqual([4, 5]);
    await slice.zeroRange(10, 2);
    expect(Array.from(readSync(parent, P + 10, 3))).toEqual([0, 0, 3]);
    await expectZxRejects(slice.read(new Uint8Array(1), 2 * P), ZxStatus.ERR_OUT_OF_RANGE);
    expect(slice.attributedPagesInRange(0, 2 * P)).toBe(0);
    expect(parent.attributedPagesInRange(0, 4 * P)).toBe(2);
  });

  it('a slice of a resizable VMO is NOT_SUPPORTED; a resizable slice is INVALID_ARGS', () => {
    const sys = newSystem();
    const resizable = sys.createVmo(2 * P, { resizable: true });
    expectZx(() => resizable.createChild(ChildOptions.SLICE, 0, P), ZxStatus.ERR_NOT_SUPPORTED);
    const fixed = sys.createVmo(2 * P);
    expectZx(() => fixed.createChild(ChildOptions.SLICE | ChildOptions.RESIZABLE, 0, P), ZxStatus.ERR_INVALID_ARGS);
    expect(resizable.children.size).toBe(0);
    expect(fixed.children.size).toBe(0);
    const tp = new TestPager();
    const pvmo = tp.createVmo(1, 2 /* VmoOptions.RESIZABLE */);
    expectZx(() => pvmo.createChild(ChildOptions.SLICE, 0, P), ZxStatus.ERR_NOT_SUPPORTED);
  });

  it('a slice may run past its parent\'s end; reads there are zero', async () => {
    const sys = newSystem();
    const parent = sys.createVmo(3 * P);
    await parent.write(filled(3 * P, 0x42), 0);
    const slice = parent.createChild(ChildOptions.SLICE, 2 * P, 3 * P);
    const buf = readSync(slice, 0, 3 * P);
    expect(isFilled(buf.subarray(0, P), 0x42)).toBe(true);
    expect(isFilled(buf.subarray(P), 0)).toBe(true);
    const beyond = parent.createChild(ChildOptions.SLICE, 5 * P, P);
    expect(isFilled(readSync(beyond, 0, P), 0)).toBe(true);
    // A pager VMO's slice past its end reads zero there too, raising a request only for the inside.
    const tp = new TestPager();
    const pvmo = tp.createVmo(1);
    const ps = pvmo.createChild(ChildOptions.SLICE, 0, 2 * P);
    const r = tp.read(ps, 0, 2);
    tp.expectRequest('READ', pvmo, 0, 1);
    tp.supply(pvmo, 0, 1);
    const got = await r.expectDone();
    expect(isPattern(got.subarray(0, P), keyOf(pvmo), 0)).toBe(true);
    expect(isFilled(got.subarray(P), 0)).toBe(true);
    tp.expectNoRequest();
  });

  it('createChild: unaligned offset INVALID_ARGS, overflow OUT_OF_RANGE, COW child over pinned pages BAD_STATE', async () => {
    const sys = newSystem();
    const anon = sys.createVmo(2 * P);
    expectZx(() => anon.createChild(ChildOptions.SLICE, 100, P), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => anon.createChild(ChildOptions.SNAPSHOT, 1, P), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => anon.createChild(ChildOptions.SNAPSHOT, P, MAX_VMO_SIZE_BYTES), ZxStatus.ERR_OUT_OF_RANGE);
    expectZx(() => anon.createChild(ChildOptions.SLICE, P, Number.MAX_SAFE_INTEGER), ZxStatus.ERR_OUT_OF_RANGE);
    const tp = new TestPager();
    const pvmo = tp.createVmo(2);
    expectZx(() => pvmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, P + 1, P), ZxStatus.ERR_INVALID_ARGS);
    expectZx(() => pvmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, P, MAX_VMO_SIZE_BYTES), ZxStatus.ERR_OUT_OF_RANGE);
    tp.supply(pvmo, 0, 2);
    await pvmo.commitRangePinned(P, P);
    expectZx(() => pvmo.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 2 * P), ZxStatus.ERR_BAD_STATE);
    expect(pvmo.children.size).toBe(0);
    // A slice needs no copy-on-write and is allowed.
    const slice = pvmo.createChild(ChildOptions.SLICE, 0, 2 * P);
    slice.close();
    pvmo.unpin(P, P);
    const clone = cow(pvmo, 0, 2);
    expect(isPattern(readSync(clone, 0, 2 * P), keyOf(pvmo), 0)).toBe(true);
    await anon.commitRangePinned(0, P);
    expectZx(() => anon.createChild(ChildOptions.SNAPSHOT, 0, 2 * P), ZxStatus.ERR_BAD_STATE);
    tp.expectNoRequest();
  });
});

describe('buffers and partial-page zeroing', () => {
  it('zeroRange across the ends of two neighbouring pages zeroes every byte of the range', async () => {
    // Regression: the partial write used a one-page zero buffer for up to two pages' worth of bytes.
    const { VmSystem } = await import('../../src/index.js');
    const sys = new VmSystem({ budgetBytes: 64 * 4096, validate: true });
    const vmo = sys.createVmo(3 * 4096);
    await vmo.write(new Uint8Array(3 * 4096).fill(0xee), 0);
    await vmo.zeroRange(100, 8000); // [100, 8100): no whole page inside
    const out = new Uint8Array(3 * 4096);
    await vmo.read(out, 0);
    expect(out.subarray(0, 100).every((b) => b === 0xee)).toBe(true);
    expect(out.subarray(100, 8100).every((b) => b === 0)).toBe(true);
    expect(out.subarray(8100).every((b) => b === 0xee)).toBe(true);
  });

  it('a read or write longer than the caller\'s buffer is INVALID_ARGS and touches nothing', async () => {
    const { VmSystem, ZxStatus, isZxError } = await import('../../src/index.js');
    const sys = new VmSystem({ budgetBytes: 64 * 4096, validate: true });
    const vmo = sys.createVmo(2 * 4096);
    expect(() => vmo.writeStep(new Uint8Array(10), 0, 0, 20)).toThrow();
    try { vmo.readStep(new Uint8Array(10), 5, 0, 10); expect.fail('no error'); } catch (err) { expect(isZxError(err, ZxStatus.ERR_INVALID_ARGS)).toBe(true); }
    expect(vmo.counters().residentPages).toBe(0);
  });
});
