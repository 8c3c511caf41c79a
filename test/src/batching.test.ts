/**
 * PAGER-TESTS.md section 2 (batching / coalescing / early wake). Fuchsia test names are cited per
 * test. Threads become concurrent async operations; mapping accesses become one-page reads.
 */
import { describe, expect, it } from 'vitest';
import { ChildOptions, PAGE_SIZE, VmoOp } from '../../src/index.js';
import { Blocked, isPattern, keyOf, patternPage, settle } from './userpager.js';
import { expectPatternNow, isFill, patternPagesPrefix, readInto, readNow, usePagers } from './supply-helpers.js';

const make = usePagers();

/** A small deterministic PRNG (mulberry32) for the random layouts. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs of indices in [0, n) for which `missing` holds, in order: [start, count]. */
function runs(n: number, missing: (p: number) => boolean): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let p = 0; p < n;) {
    if (!missing(p)) { p++; continue; }
    let q = p;
    while (q < n && missing(q)) q++;
    out.push([p, q - p]);
    p = q;
  }
  return out;
}

describe('batching and coalescing', () => {
  // Fuchsia: SequentialMultipageTest
  it('a 32-page read raises one READ (0,32); 32 one-page reads raise 32 one-page requests', async () => {
    const t = make();
    const vmo = t.createVmo(32);
    const r = t.read(vmo, 0, 32);
    t.expectRequest('READ', vmo, 0, 32);
    t.expectNoRequest();
    t.supply(vmo, 0, 32);
    expect(isPattern(await r.expectDone(), keyOf(vmo), 0)).toBe(true);

    // Batching follows the operation, not the pages (Fuchsia does this half through a mapping).
    const v2 = t.createVmo(32);
    for (let i = 0; i < 32; i++) {
      const ri = t.read(v2, i, 1);
      t.expectRequest('READ', v2, i, 1);
      t.expectNoRequest();
      t.supply(v2, i, 1);
      expect(isPattern(await ri.expectDone(), keyOf(v2), i)).toBe(true);
    }
    t.expectNoRequest();
  });

  // Fuchsia: ConcurrentMultipageAccessTest
  it('concurrent reads of pages 0 and 1 raise two requests; one supply (0,2) wakes both', async () => {
    const t = make();
    const vmo = t.createVmo(4);
    const r0 = t.read(vmo, 0, 1);
    const r1 = t.read(vmo, 1, 1);
    t.expectRequest('READ', vmo, 0, 1);
    t.expectRequest('READ', vmo, 1, 1);
    t.expectNoRequest();
    await r0.expectBlocked();
    await r1.expectBlocked();
    t.supply(vmo, 0, 2);
    expect(isPattern(await r0.expectDone(), keyOf(vmo), 0)).toBe(true);
    expect(isPattern(await r1.expectDone(), keyOf(vmo), 1)).toBe(true);
    t.expectNoRequest();
  });

  // Fuchsia: ConcurrentOverlappingAccessTest
  it('32 concurrent reads of one page raise exactly one request; one supply wakes them all', async () => {
    const t = make();
    const vmo = t.createVmo(2);
    const readers = Array.from({ length: 32 }, () => t.read(vmo, 0, 1));
    t.expectRequest('READ', vmo, 0, 1);
    t.expectNoRequest();
    for (const r of readers) await r.expectBlocked();
    t.supply(vmo, 0, 1);
    for (const r of readers) expect(isPattern(await r.expectDone(), keyOf(vmo), 0)).toBe(true);
    t.expectNoRequest();
  });

  // Fuchsia: BulkSingleSupplyTest
  it('8 concurrent reads of 8 pages raise 8 requests; one supply of all 8 wakes all', async () => {
    const t = make();
    const vmo = t.createVmo(8);
    const readers = Array.from({ length: 8 }, (_, i) => t.read(vmo, i, 1));
    for (let i = 0; i < 8; i++) t.expectRequest('READ', vmo, i, 1);
    t.expectNoRequest();
    t.supply(vmo, 0, 8);
    for (let i = 0; i < 8; i++) expect(isPattern(await readers[i].expectDone(), keyOf(vmo), i)).toBe(true);
    t.expectNoRequest();
  });

  // Fuchsia: SimpleCommitTest
  it('committing 555 pages raises one request (0,555)', async () => {
    const t = make();
    const vmo = t.createVmo(555);
    const c = t.commit(vmo, 0, 555);
    t.expectRequest('READ', vmo, 0, 555);
    t.expectNoRequest();
    t.supply(vmo, 0, 555);
    await c.expectDone();
    t.expectNoRequest();
    expect(vmo.counters().residentPages).toBe(555);
  });

  // Fuchsia: SplitCommitTest, PresentPageSplitsRange
  it('a present page in the middle splits a commit into (0,2) then (3,2), lower part first', async () => {
    const t = make();
    const vmo = t.createVmo(5);
    t.supply(vmo, 2, 1);
    const c = t.commit(vmo, 0, 5);
    t.expectRequest('READ', vmo, 0, 2);
    t.expectNoRequest();
    t.supply(vmo, 0, 2);
    await c.expectBlocked();
    t.expectRequest('READ', vmo, 3, 2);
    t.expectNoRequest();
    t.supply(vmo, 3, 2);
    await c.expectDone();
    t.expectNoRequest();
  });

  // Fuchsia: OverlapCommitTest
  it('an overlapping commit requests only the uncovered pieces, the lower one first, the upper one later', async () => {
    const t = make();
    const vmo = t.createVmo(8);
    const a = t.commit(vmo, 2, 4);
    t.expectRequest('READ', vmo, 2, 4);
    const b = t.commit(vmo, 0, 8);
    t.expectRequest('READ', vmo, 0, 2); // stops where the outstanding (2,4) begins
    t.expectNoRequest();
    t.supply(vmo, 0, 2);
    await b.expectBlocked();
    t.expectNoRequest(); // b now waits on page 2, covered by a's request
    t.supply(vmo, 2, 4);
    await a.expectDone();
    await b.expectBlocked();
    t.expectRequest('READ', vmo, 6, 2);
    t.expectNoRequest();
    t.supply(vmo, 6, 2);
    await b.expectDone();
    t.expectNoRequest();
  });

  // Fuchsia: OverlapCommitSupplyTest
  it('commits of 7 and 5 overlapping pages answered in supplies of 3 all complete', async () => {
    const t = make();
    const vmo = t.createVmo(9);
    const a = t.commit(vmo, 0, 7);
    const b = t.commit(vmo, 4, 5);
    t.expectRequest('READ', vmo, 0, 7);
    t.expectNoRequest();
    for (const first of [0, 3]) {
      t.supply(vmo, first, 3);
      await a.expectBlocked();
      await b.expectBlocked();
      t.expectNoRequest();
    }
    t.supply(vmo, 6, 3);
    await a.expectDone();
    await b.expectDone();
    t.expectNoRequest();
    expectPatternNow(vmo, 0, 9);
  });

  // Fuchsia: CloneCommitSingleBatch
  it('a commit through a clone at an offset raises one request for the whole run, in the root\'s pages', async () => {
    const t = make();
    const root = t.createVmo(8);
    const clone = root.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 2 * PAGE_SIZE, 4 * PAGE_SIZE);
    const c = t.commit(clone, 0, 4);
    t.expectRequest('READ', root, 2, 4);
    t.expectNoRequest();
    t.supply(root, 2, 4);
    await c.expectDone();
    expect(isPattern(readNow(clone, 0, 4), keyOf(root), 2)).toBe(true);
    expect(root.attributedPagesInRange(0, 8 * PAGE_SIZE)).toBe(4);
    expect(clone.attributedPagesInRange(0, 4 * PAGE_SIZE)).toBe(0);
    t.expectNoRequest();
  });

  // Fuchsia: CloneSplitCommitTest, CloneCommitTwoBatches/MultipleBatches/RandomBatches,
  // PageRequestBatchingChecksAncestorPages
  it('a commit through a clone chain requests one run per gap, skipping pages present anywhere in the chain', async () => {
    const t = make();
    const n = 32;
    for (const seed of [1, 2, 3, 4]) {
      const rand = rng(seed);
      const root = t.createVmo(n);
      const mid = root.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, n * PAGE_SIZE);
      const inRoot = new Set<number>();
      const inMid = new Set<number>();
      for (let p = 0; p < n; p++) {
        const x = rand();
        if (x < 0.25) inRoot.add(p);
        else if (x < 0.4) inMid.add(p);
      }
      if (seed === 1) { inRoot.clear(); inMid.clear(); inRoot.add(2); inMid.add(5); } // (0,2) (3,2) (6,26)
      for (const p of inRoot) t.supply(root, p, 1);
      // A whole-page zero gives `mid` a private page of its own without asking the root's pager.
      for (const p of inMid) await mid.zeroRange(p * PAGE_SIZE, PAGE_SIZE);
      t.expectNoRequest();
      const leaf = mid.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, n * PAGE_SIZE);
      const c = t.commit(leaf, 0, n);
      const expected = runs(n, (p) => !inRoot.has(p) && !inMid.has(p));
      if (seed === 1) expect(expected).toEqual([[0, 2], [3, 2], [6, 26]]);
      for (const [page, count] of expected) {
        await c.expectBlocked();
        t.expectRequest('READ', root, page, count);
        t.expectNoRequest();
        t.supply(root, page, count);
      }
      await c.expectDone();
      t.expectNoRequest();
      const all = readNow(leaf, 0, n);
      for (let p = 0; p < n; p++) {
        const page = all.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
        if (inMid.has(p)) expect(isFill(page, 0), `page ${p} zero (seed ${seed})`).toBe(true);
        else expect(isPattern(page, keyOf(root), p), `page ${p} pattern (seed ${seed})`).toBe(true);
      }
      expect(leaf.attributedPagesInRange(0, n * PAGE_SIZE)).toBe(0);
    }
  });

  // Fuchsia: DetachNonMappingAccess (its batching half)
  it('a read striding two pages raises one request (0,2)', async () => {
    const t = make();
    const vmo = t.createVmo(4);
    const buf = new Uint8Array(PAGE_SIZE);
    const r = new Blocked(vmo.read(buf, PAGE_SIZE / 2));
    t.expectRequest('READ', vmo, 0, 2);
    t.expectNoRequest();
    t.supply(vmo, 0, 2);
    await r.expectDone();
    const expected = new Uint8Array(2 * PAGE_SIZE);
    expected.set(patternPage(keyOf(vmo), 0), 0);
    expected.set(patternPage(keyOf(vmo), 1), PAGE_SIZE);
    expect(Buffer.compare(buf, expected.subarray(PAGE_SIZE / 2, PAGE_SIZE / 2 + PAGE_SIZE))).toBe(0);
  });

  // Fuchsia: ManyRequestTest
  it('257 outstanding requests on one port are all delivered in order and answerable', async () => {
    const t = make();
    const n = 257;
    const vmo = t.createVmo(n);
    const readers = Array.from({ length: n }, (_, i) => t.read(vmo, i, 1));
    for (let i = 0; i < n; i++) t.expectRequest('READ', vmo, i, 1);
    t.expectNoRequest();
    for (let i = n - 1; i >= 0; i--) t.supply(vmo, i, 1);
    for (let i = 0; i < n; i++) expect(isPattern(await readers[i].expectDone(), keyOf(vmo), i)).toBe(true);
    t.expectNoRequest();
  });

  // Fuchsia: MultipleConcurrentVmoTest
  it('8 VMOs with pending requests share one port; keys tell them apart', async () => {
    const t = make();
    const vmos = Array.from({ length: 8 }, () => t.createVmo(4));
    expect(new Set(vmos.map(keyOf)).size).toBe(8);
    const readers = vmos.map((v) => t.read(v, 3, 1));
    for (const v of vmos) t.expectRequest('READ', v, 3, 1);
    t.expectNoRequest();
    for (let i = 7; i >= 0; i--) {
      t.supply(vmos[i], 3, 1);
      expect(isPattern(await readers[i].expectDone(), keyOf(vmos[i]), 3)).toBe(true);
      for (let k = 0; k < i; k++) await readers[k].expectBlocked();
    }
    t.expectNoRequest();
  });

  // Fuchsia: Prefetch
  it('PREFETCH on the root, a slice and a clone raises READ requests, not for pages the clone holds itself', async () => {
    const t = make();
    const root = t.createVmo(8);
    const p1 = new Blocked(root.opRange(VmoOp.PREFETCH, 0, 2 * PAGE_SIZE));
    t.expectRequest('READ', root, 0, 2);
    t.expectNoRequest();
    t.supply(root, 0, 2);
    await p1.expectDone();

    const slice = root.createChild(ChildOptions.SLICE, 4 * PAGE_SIZE, 2 * PAGE_SIZE);
    const p2 = new Blocked(slice.opRange(VmoOp.PREFETCH, 0, 2 * PAGE_SIZE));
    t.expectRequest('READ', root, 4, 2);
    t.expectNoRequest();
    t.supply(root, 4, 2);
    await p2.expectDone();

    const clone = root.createChild(ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE, 0, 8 * PAGE_SIZE);
    await clone.zeroRange(6 * PAGE_SIZE, PAGE_SIZE); // the clone's own page 6; the root never had it
    t.expectNoRequest();
    const p3 = new Blocked(clone.opRange(VmoOp.PREFETCH, 2 * PAGE_SIZE, 6 * PAGE_SIZE));
    t.expectRequest('READ', root, 2, 2);
    t.expectNoRequest();
    t.supply(root, 2, 2);
    await p3.expectBlocked();
    t.expectRequest('READ', root, 7, 1);
    t.expectNoRequest();
    t.supply(root, 7, 1);
    await p3.expectDone();
    t.expectNoRequest();
    expect(root.attributedPagesInRange(6 * PAGE_SIZE, PAGE_SIZE)).toBe(0);
    expect(root.attributedPagesInRange(0, 8 * PAGE_SIZE)).toBe(7);
  });
});

describe('early wake', () => {
  // Fuchsia: EarlyWakeOnSupply
  it('a 128-page read raises one request and copies each partial supply before the rest arrives', async () => {
    const t = make();
    const vmo = t.createVmo(128);
    const buf = new Uint8Array(128 * PAGE_SIZE);
    const r = readInto(vmo, buf, 0);
    t.expectRequest('READ', vmo, 0, 128);
    for (let i = 0; i < 8; i++) {
      await r.expectBlocked();
      expect(patternPagesPrefix(buf, vmo, 0)).toBe(i * 16);
      t.supply(vmo, i * 16, 16);
      await settle();
      expect(patternPagesPrefix(buf, vmo, 0)).toBe((i + 1) * 16);
      t.expectNoRequest();
    }
    await r.expectDone();
    expect(isPattern(buf, keyOf(vmo), 0)).toBe(true);
  });

  // Fuchsia: EarlyWakeNonLinearSupply
  it('supplies 16-32, 48-64, then 0-16 make data up to page 32 visible without extra requests', async () => {
    const t = make();
    const vmo = t.createVmo(64);
    const buf = new Uint8Array(64 * PAGE_SIZE);
    const r = readInto(vmo, buf, 0);
    t.expectRequest('READ', vmo, 0, 64);
    t.supply(vmo, 16, 16);
    t.supply(vmo, 48, 16);
    await r.expectBlocked();
    expect(patternPagesPrefix(buf, vmo, 0)).toBe(0);
    t.supply(vmo, 0, 16);
    await r.expectBlocked();
    expect(patternPagesPrefix(buf, vmo, 0)).toBe(32);
    t.expectNoRequest();
    t.supply(vmo, 32, 16);
    await r.expectDone();
    expect(isPattern(buf, keyOf(vmo), 0)).toBe(true);
    t.expectNoRequest();
  });

  // Fuchsia: EarlyWakeOverlappingRequests
  it('overlapping reads {0-92},{16-42},{0-32},{48-64},{82-128} raise one request (0,92); the tail is asked later', async () => {
    const t = make();
    const vmo = t.createVmo(128);
    const spans: Array<[number, number]> = [[0, 92], [16, 42], [0, 32], [48, 64], [82, 128]];
    const readers = spans.map(([s, e]) => t.read(vmo, s, e - s));
    t.expectRequest('READ', vmo, 0, 92);
    t.expectNoRequest();
    for (const r of readers) await r.expectBlocked();
    t.supply(vmo, 0, 92);
    for (let i = 0; i < 4; i++) expect(isPattern(await readers[i].expectDone(), keyOf(vmo), spans[i][0])).toBe(true);
    await readers[4].expectBlocked();
    t.expectRequest('READ', vmo, 92, 36);
    t.expectNoRequest();
    t.supply(vmo, 92, 36);
    expect(isPattern(await readers[4].expectDone(), keyOf(vmo), 82)).toBe(true);
    t.expectNoRequest();
  });
});

describe('DIRTY request batching', () => {
  // Fuchsia: DirtyRequestsOverlap (pager-writeback)
  it('overlapping writers get DIRTY requests only for pages not already requested', async () => {
    const t = make();
    const vmo = t.createTrapVmo(8);
    t.supply(vmo, 0, 8);
    const a = t.write(vmo, 2, 4, 0xa1);
    t.expectRequest('DIRTY', vmo, 2, 4);
    const b = t.write(vmo, 0, 8, 0xb2);
    t.expectRequest('DIRTY', vmo, 0, 2);
    const c = t.write(vmo, 3, 2, 0xc3); // entirely covered: waits, no request
    t.expectNoRequest();
    t.dirty(vmo, 0, 2);
    await b.expectBlocked();
    t.expectNoRequest(); // b waits on page 2, covered by a's request
    t.dirty(vmo, 2, 4);
    await a.expectDone();
    await c.expectDone();
    await b.expectBlocked();
    t.expectRequest('DIRTY', vmo, 6, 2);
    t.expectNoRequest();
    t.dirty(vmo, 6, 2);
    await b.expectDone();
    t.expectNoRequest();
    expect(t.dirtyRanges(vmo)).toEqual([[0, 8, false]]);
  });

  // Fuchsia: DirtyRequestsRandomOffsets (pager-writeback)
  it('a write over a random mix of empty, clean and dirty pages batches READ per empty run and DIRTY per clean run', async () => {
    const t = make();
    const n = 40;
    for (const seed of [11, 12, 13]) {
      const rand = rng(seed);
      const state: Array<'E' | 'C' | 'D'> = Array.from({ length: n }, () => (['E', 'C', 'D'] as const)[Math.floor(rand() * 3)]);
      const vmo = t.createTrapVmo(n);
      for (let p = 0; p < n; p++) {
        if (state[p] !== 'E') t.supply(vmo, p, 1);
        if (state[p] === 'D') t.dirty(vmo, p, 1);
      }
      t.expectNoRequest();
      // The model: the writer stops at its first page that is not Dirty. An empty run is read in
      // (becoming Clean); a clean run, up to the next empty or dirty page, is asked to be dirtied.
      const expected: Array<['READ' | 'DIRTY', number, number]> = [];
      const model = [...state];
      for (let p = 0; p < n;) {
        if (model[p] === 'D') { p++; continue; }
        const kind = model[p];
        let q = p;
        while (q < n && model[q] === kind) q++;
        expected.push([kind === 'E' ? 'READ' : 'DIRTY', p, q - p]);
        for (let k = p; k < q; k++) model[k] = kind === 'E' ? 'C' : 'D';
      }
      const w = t.write(vmo, 0, n, 0x77);
      for (const [cmd, page, count] of expected) {
        await w.expectBlocked();
        t.expectRequest(cmd, vmo, page, count);
        t.expectNoRequest();
        if (cmd === 'READ') t.supply(vmo, page, count);
        else t.dirty(vmo, page, count);
      }
      await w.expectDone();
      t.expectNoRequest();
      expect(t.dirtyRanges(vmo), `seed ${seed}: ${state.join('')}`).toEqual([[0, n, false]]);
      expect(isFill(readNow(vmo, 0, n), 0x77)).toBe(true);
    }
  });
});

