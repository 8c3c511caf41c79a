/**
 * Read mappings (src/read-mapping.ts): the page table a reader off the JS thread walks. The reader
 * here (`MappedReader`) follows the binding's seqlock protocol step by step (native/README.md,
 * level 17), split in two halves so that a change can land in the middle of its copy.
 */
import { describe, expect, it } from 'vitest';
import {
  ACCESSED_GROUP_SHIFT, EvictionLevel, MappingSlot, PAGE_SIZE, PagerOp, VmoOp, VmoOptions, type ReadMapping, type VmObjectPaged, type VmSystem,
} from '../../src/index.js';
import { TestPager, isPattern, keyOf, patternPage } from './userpager.js';
import { usePagers } from './supply-helpers.js';

/** A reader that does what the binding's fast read does, in two steps: start (checks) and finish (copy, recheck). */
class MappedReader {
  private seq = 0;
  private frames: number[] = [];
  constructor(private readonly system: VmSystem, private readonly m: ReadMapping) {}

  /** The checks before the copy; false: the reader faults (hands the read to the JS thread). */
  start(offsetBytes: number, lengthBytes: number): boolean {
    const h = this.m.header;
    this.seq = Atomics.load(h, MappingSlot.Seq);
    if ((this.seq & 1) !== 0 || h[MappingSlot.Blocked] !== 0) return false;
    const end = offsetBytes + lengthBytes;
    if (end > this.m.sizeBytes) return false;
    const first = Math.floor(offsetBytes / PAGE_SIZE);
    const stop = Math.ceil(end / PAGE_SIZE);
    if (stop > this.m.capacityPages) return false;
    const notify = h[MappingSlot.NotifyPage];
    if (notify >= 0 && stop > notify && first < h[MappingSlot.NotifyBefore]) return false;
    this.frames = [];
    for (let p = first; p < stop; p++) {
      const e = this.m.entries[p];
      if (e <= 0) return false;
      this.frames.push(e - 1);
    }
    return true;
  }

  /** The copy, the accessed marks and the recheck: the bytes, or null when the copy must be thrown away. */
  finish(offsetBytes: number, lengthBytes: number): Uint8Array | null {
    const out = new Uint8Array(lengthBytes);
    const first = Math.floor(offsetBytes / PAGE_SIZE);
    let done = 0;
    let pos = offsetBytes;
    for (const frame of this.frames) {
      const inPage = pos % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, offsetBytes + lengthBytes - pos);
      out.set(this.system.arena.frameView(frame).subarray(inPage, inPage + n), done);
      done += n;
      pos += n;
    }
    for (let i = 0; i < this.frames.length; i++) {
      this.m.accessed[first + i] = 1;
      this.m.accessedGroups[(first + i) >> ACCESSED_GROUP_SHIFT] = 1;
    }
    this.m.header[MappingSlot.AccessedAny] = 1;
    return Atomics.load(this.m.header, MappingSlot.Seq) === this.seq ? out : null;
  }

  read(offsetBytes: number, lengthBytes: number): Uint8Array | null {
    return this.start(offsetBytes, lengthBytes) ? this.finish(offsetBytes, lengthBytes) : null;
  }
}

/** The mapping mirrors the VMO exactly: entry p is page p's frame, the size is the content size, seq even. */
function expectMirrors(vmo: VmObjectPaged, m: ReadMapping): void {
  expect(m.changing).toBe(false);
  expect(m.seq % 2, 'seq is even at rest').toBe(0);
  expect(m.sizeBytes).toBe(vmo.contentSizeBytes);
  for (let p = 0; p < m.capacityPages; p++) {
    const frame = p < vmo.sizePages ? vmo.pages.lookup(p) : -1;
    expect(m.frameAt(p), `entry of page ${p}`).toBe(frame);
  }
}

/** Runs `change` and checks that it moved seq (a reader copying meanwhile faults) and left it even. */
function expectSeqMoves(m: ReadMapping, change: () => void): void {
  const before = m.seq;
  change();
  expect(m.seq, 'seq moved').not.toBe(before);
  expect(m.seq % 2).toBe(0);
}

describe('read mappings', () => {
  const makePager = usePagers();

  it('mirror the page list through supply, writes, eviction, resize and detach, with seq even at rest', () => {
    const t = makePager();
    const vmo = t.createVmo(16, VmoOptions.RESIZABLE);
    vmo.resize(16 * PAGE_SIZE - 100); // an unaligned end
    const m = vmo.attachReadMapping();
    expect(m.capacityPages).toBeGreaterThanOrEqual(16);
    expectMirrors(vmo, m);
    t.supply(vmo, 0, 8);
    expectMirrors(vmo, m);
    const reader = new MappedReader(t.system, m);
    const got = reader.read(PAGE_SIZE, 3 * PAGE_SIZE);
    expect(got !== null && isPattern(got, keyOf(vmo), 1)).toBe(true);
    expect(reader.read(8 * PAGE_SIZE, PAGE_SIZE), 'page 8 is not resident').toBeNull();
    // A write dirties pages in place; a write into a dirty zero run (past a grow) installs new frames.
    expectSeqMoves(m, () => expect(vmo.writeStep(new Uint8Array(PAGE_SIZE).fill(7), 0, 2 * PAGE_SIZE, PAGE_SIZE)).toBe(PAGE_SIZE));
    expectMirrors(vmo, m);
    expect(reader.read(2 * PAGE_SIZE, PAGE_SIZE)!.every((b) => b === 7)).toBe(true);
    // Eviction (the EVICT hint goes through the evictor): page 5 leaves, and its entry with it.
    expectSeqMoves(m, () => { void vmo.opRange(VmoOp.EVICT, 5 * PAGE_SIZE, PAGE_SIZE); });
    expectMirrors(vmo, m);
    expect(reader.read(5 * PAGE_SIZE, 10)).toBeNull();
    // Shrink: pages past the end go, the new last page's tail is zeroed, the readable end moves.
    expectSeqMoves(m, () => vmo.resize(3 * PAGE_SIZE + 10));
    expectMirrors(vmo, m);
    expect(reader.read(3 * PAGE_SIZE, 11), 'past the new end').toBeNull();
    expect(reader.read(3 * PAGE_SIZE, 10)).toEqual(patternPage(keyOf(vmo), 3).subarray(0, 10));
    // Grow: a dirty zero run, nothing mapped there; the old last page reads zeros past the old end.
    expectSeqMoves(m, () => vmo.resize(12 * PAGE_SIZE));
    expectMirrors(vmo, m);
    expect(reader.read(3 * PAGE_SIZE + 10, 20)).toEqual(new Uint8Array(20));
    expect(reader.read(6 * PAGE_SIZE, 1)).toBeNull();
    expect(vmo.writeStep(new Uint8Array(PAGE_SIZE).fill(9), 0, 6 * PAGE_SIZE, PAGE_SIZE)).toBe(PAGE_SIZE);
    expectMirrors(vmo, m);
    expect(reader.read(6 * PAGE_SIZE, PAGE_SIZE)!.every((b) => b === 9)).toBe(true);
    // Zeroing whole pages frees their frames (a dirty zero run).
    expectSeqMoves(m, () => { void vmo.zeroRange(0, 2 * PAGE_SIZE); });
    expectMirrors(vmo, m);
    // Detach: clean pages are dropped; dirty ones stay, readable as through readStep.
    t.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, 6 * PAGE_SIZE, PAGE_SIZE);
    t.pager.opRange(PagerOp.WRITEBACK_END, vmo, 6 * PAGE_SIZE, PAGE_SIZE);
    expectSeqMoves(m, () => t.pager.detachVmo(vmo));
    expectMirrors(vmo, m);
    expect(m.debugMappedPages()).toBe(vmo.pages.size);
    // Destroyed: retired, every read faults.
    vmo.close();
    expect(m.retired).toBe(true);
    expect(reader.read(2 * PAGE_SIZE, 1)).toBeNull();
  });

  it('make a reader throw away a copy from a frame that was released, reused and refilled meanwhile', () => {
    const t = makePager();
    const a = t.createVmo(4);
    const b = t.createVmo(4);
    t.supply(a, 0, 1);
    const m = a.attachReadMapping();
    const frame = m.frameAt(0);
    const reader = new MappedReader(t.system, m);
    expect(reader.start(0, PAGE_SIZE)).toBe(true);
    // Meanwhile: page 0 is evicted, and its frame (the arena hands the last freed one first) refilled for b.
    expect(t.system.evictor.evictPage(frame, false)).toBe(true);
    t.supply(b, 0, 1);
    expect(b.pages.lookup(0), 'the frame was reused').toBe(frame);
    expect(reader.finish(0, PAGE_SIZE), 'the copy holds b\'s bytes: thrown away').toBeNull();
    expect(reader.read(0, PAGE_SIZE), 'and the next read faults').toBeNull();
  });

  it('make a reader copying across a write, a shrink, a zeroing or a detach fault; a supply need not', async () => {
    const t = makePager();
    const vmo = t.createVmo(8, VmoOptions.RESIZABLE);
    t.supply(vmo, 0, 4);
    const m = vmo.attachReadMapping();
    const reader = new MappedReader(t.system, m);
    // A supply only maps fresh frames (their bytes complete before the entry): a copy around it stands.
    expect(reader.start(0, PAGE_SIZE)).toBe(true);
    t.supply(vmo, 5, 2);
    expect(reader.finish(0, PAGE_SIZE)).not.toBeNull();
    expectMirrors(vmo, m);
    expect(isPattern(reader.read(5 * PAGE_SIZE, 2 * PAGE_SIZE)!, keyOf(vmo), 5)).toBe(true);
    const changes: Array<[string, () => unknown]> = [
      ['write', () => { vmo.writeStep(new Uint8Array(10).fill(1), 0, 5, 10); }],
      ['shrink', () => vmo.resize(3 * PAGE_SIZE + 1)],
      ['grow', () => vmo.resize(8 * PAGE_SIZE)],
      ['zero', () => vmo.zeroRange(0, 10)],
    ];
    for (const [name, change] of changes) {
      expect(reader.start(0, 2 * PAGE_SIZE), name).toBe(true);
      await change();
      expect(reader.finish(0, 2 * PAGE_SIZE), name).toBeNull();
      expectMirrors(vmo, m);
    }
    expect(reader.start(0, PAGE_SIZE)).toBe(true);
    t.pager.detachVmo(vmo);
    expect(reader.finish(0, PAGE_SIZE)).toBeNull();
  });

  it('are replaced by a larger one when the file outgrew them: carried over, and the old one retired', () => {
    const t = makePager();
    const vmo = t.createVmo(4, VmoOptions.RESIZABLE);
    const m = vmo.attachReadMapping();
    expect(vmo.attachReadMapping(), 'kept while it covers the size').toBe(m);
    m.setBlocked(true);
    m.setReadNotify(2, 9);
    vmo.resize((m.capacityPages + 10) * PAGE_SIZE);
    t.supply(vmo, m.capacityPages + 5, 2);
    const bigger = vmo.attachReadMapping();
    expect(bigger).not.toBe(m);
    expect(m.retired).toBe(true);
    expect(bigger.blocked).toBe(true);
    expect([bigger.header[MappingSlot.NotifyPage], bigger.header[MappingSlot.NotifyBefore]]).toEqual([2, 9]);
    expectMirrors(vmo, bigger);
  });

  it('give pages readers marked accessed their second chance in the evictor, and the harvest clears the marks', () => {
    const t = new TestPager();
    const vmo = t.createVmo(8);
    t.supply(vmo, 0, 8);
    const m = vmo.attachReadMapping();
    for (let i = 0; i < 8; i++) t.system.agePages(); // every page in the oldest generations, Accessed clear
    t.system.harvestAccessedBits();
    // A reader served pages 1 and 6 (only through the mapping: no readStep sets their frames' flag).
    const reader = new MappedReader(t.system, m);
    expect(reader.read(PAGE_SIZE, 10)).not.toBeNull();
    expect(reader.read(6 * PAGE_SIZE, PAGE_SIZE)).not.toBeNull();
    const chances = t.system.evictor.counters.secondChances;
    expect(t.system.reclaim(8, EvictionLevel.OnlyOldest)).toBe(6);
    expect(t.system.evictor.counters.secondChances - chances).toBe(2);
    expect([...Array(8).keys()].filter((p) => vmo.pages.lookup(p) >= 0)).toEqual([1, 6]);
    expect(m.accessed[1] + m.accessed[6], 'harvested').toBe(0);
    expect(m.header[MappingSlot.AccessedAny]).toBe(0);
    expectMirrors(vmo, m);
    // Without marks the same pages go at the next reclaim.
    for (let i = 0; i < 8; i++) t.system.agePages();
    expect(t.system.reclaim(8, EvictionLevel.OnlyOldest)).toBe(2);
    t.pager.close();
  });

  it('harvest marks by group: a page far into a large file keeps its second chance', () => {
    const t = new TestPager({ budgetBytes: 64 << 20 });
    const pages = 5 << ACCESSED_GROUP_SHIFT;
    const vmo = t.createVmo(pages);
    const far = 4 * (1 << ACCESSED_GROUP_SHIFT) + 7;
    t.supply(vmo, far - 1, 3);
    const m = vmo.attachReadMapping();
    expect(m.accessedGroups.length).toBeGreaterThanOrEqual(5);
    for (let i = 0; i < 8; i++) t.system.agePages();
    expect(new MappedReader(t.system, m).read(far * PAGE_SIZE, 1)).not.toBeNull();
    expect(m.accessedGroups[4]).toBe(1);
    expect(t.system.reclaim(3, EvictionLevel.OnlyOldest)).toBe(2);
    expect(vmo.pages.lookup(far)).toBeGreaterThanOrEqual(0);
    expect(m.accessedGroups[4] + m.accessed[far]).toBe(0);
    t.pager.close();
  });

  it('forget a reader\'s mark when DONT_NEED comes after it', async () => {
    const t = makePager();
    const vmo = t.createVmo(2);
    t.supply(vmo, 0, 2);
    const m = vmo.attachReadMapping();
    expect(new MappedReader(t.system, m).read(0, 2 * PAGE_SIZE)).not.toBeNull();
    await vmo.opRange(VmoOp.DONT_NEED, 0, 2 * PAGE_SIZE);
    expect(t.system.reclaim(2, EvictionLevel.OnlyOldest)).toBe(2);
  });
});
