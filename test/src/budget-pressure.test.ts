/**
 * The memory budget under pressure: random workloads over files several times the budget (checked
 * after every step), a 100k-read thrash, allocation when everything is pinned, the watermarks, the
 * zero-page scan, and setBudget.
 *
 * Random tests print their seed in the test name; rerun one with PAGERFS_SEED=<seed>.
 */
import { describe, expect, it } from 'vitest';
import {
  MIN_BUDGET_PAGES, PAGE_SIZE, VmSystem, VmoOp, ZxStatus, isZxError, type VmObjectPaged,
} from '../../src/index.js';
import { EvictionLevel } from '../../src/evictor.js';
import { TestPager, isPattern, keyOf } from './userpager.js';
import {
  AutoPager, Content, DirtyState, FrameFlag, NO_FRAME, RESIZABLE, Rng, TRAP, bytesEqual, cachedPattern,
  checkBudget, frameOf, readBytes, watchAllocations, type StoreFile,
  commit, expectZx,
} from './eviction-helpers.js';

/** Supplies `vmo`'s requests as they come until `done` settles (however the requests are sized). */
async function serve(tp: TestPager, vmo: VmObjectPaged, done: Promise<unknown>): Promise<void> {
  let settled = false;
  const watched = done.finally(() => { settled = true; });
  while (!settled) {
    const p = tp.next();
    if (p === null) { await new Promise((res) => setImmediate(res)); continue; }
    tp.supply(vmo, p.offset / PAGE_SIZE, p.length / PAGE_SIZE);
  }
  await watched;
}

function resident(vmo: VmObjectPaged): number[] {
  const out: number[] = [];
  vmo.lookup(0, vmo.sizeBytes, (p) => { out.push(p); });
  return out;
}

// -------------------------------------------------------------------------------------------------
// Random workloads.

interface WFile {
  f: StoreFile;
  /** What the VMO must read as. */
  model: Content;
  resizable: boolean;
  /** Pages written since their last writeback: must stay resident and dirty. */
  dirty: Set<number>;
}
interface Pin { file: WFile; page: number; count: number }

const BUDGET_PAGES = 64;
const MAX_PINNED = 12;
const MAX_DIRTY = 10;

async function randomWorkload(seed: number, steps: number): Promise<void> {
  const rng = new Rng(seed);
  const system = new VmSystem({
    budgetBytes: BUDGET_PAGES * PAGE_SIZE, validate: true, maxRequestPages: 8, requestTimeoutMs: 15_000,
  });
  const violations = watchAllocations(system);
  const ap = new AutoPager(system);
  ap.start();
  const log: string[] = [];
  const ctx = (): string => `seed=${seed} step log (last 8): ${log.slice(-8).join(' | ')}`;
  try {
    const files: WFile[] = [];
    for (let i = 0; i < 5; i++) {
      const pages = rng.int(40, 80);
      const resizable = i % 2 === 1;
      const f = ap.createFile(pages, (i % 2 === 0 ? TRAP : 0) | (resizable ? RESIZABLE : 0));
      files.push({ f, model: new Content(f.key, pages), resizable, dirty: new Set() });
    }
    const totalPages = files.reduce((n, w) => n + w.f.vmo.sizePages, 0);
    expect(totalPages).toBeGreaterThan(3 * BUDGET_PAGES);
    // A little anonymous memory that is never evictable.
    const anon = system.createVmo(4 * PAGE_SIZE);
    await anon.write(new Uint8Array(4 * PAGE_SIZE).fill(0x11), 0);

    const pins: Pin[] = [];
    /** Pages with ALWAYS_NEED applied and still protected: "key:page". */
    let alwaysNeed = new Set<string>();
    const pinnedTotal = (): number => pins.reduce((n, p) => n + p.count, 0);
    const dirtyTotal = (): number => files.reduce((n, w) => n + w.dirty.size, 0);
    const byKey = new Map(files.map((w) => [w.f.key, w]));

    const writebackAll = (): void => {
      for (const w of files) {
        ap.writeback(w.f);
        // Pinned dirty pages cannot be cleaned: they stay dirty.
        const still = new Set<number>();
        for (const p of w.dirty) {
          const fr = frameOf(w.f.vmo, p);
          if (fr !== NO_FRAME && system.arena.frames.dirty[fr] !== DirtyState.Clean) still.add(p);
        }
        w.dirty = still;
      }
    };

    const checkRead = async (w: WFile, off: number, len: number): Promise<void> => {
      const got = await readBytes(w.f.vmo, off, len);
      const want = w.model.bytes(off, len);
      if (!bytesEqual(got, want)) {
        let i = 0;
        while (got[i] === want[i]) i++;
        expect.fail(`file ${w.f.key} read [${off}, +${len}) differs at byte ${off + i} (page ${Math.floor((off + i) / PAGE_SIZE)}): ` +
          `got ${got[i]} want ${want[i]}; ${ctx()}`);
      }
    };

    const randomRange = (w: WFile, maxPages: number): [number, number] => {
      const size = w.f.vmo.sizeBytes;
      const off = rng.int(0, size);
      const len = rng.int(1, Math.min(maxPages * PAGE_SIZE, size - off) + 1);
      return [off, len];
    };

    const checkInvariants = (anBefore: string[], overridesBefore: number, where: string): void => {
      expect(violations(), `budget exceeded during a step; ${ctx()}`).toEqual([]);
      expect(system.arena.usedFrames, `used > limit after ${where}; ${ctx()}`).toBeLessThanOrEqual(system.arena.limitFrames);
      system.debugValidate();
      const fr = system.arena.frames;
      for (const pin of pins) {
        for (let p = pin.page; p < pin.page + pin.count; p++) {
          const frame = frameOf(pin.file.f.vmo, p);
          expect(frame, `pinned page ${pin.file.f.key}:${p} gone; ${ctx()}`).not.toBe(NO_FRAME);
          expect(fr.pinCount[frame]).toBeGreaterThan(0);
        }
      }
      for (const w of files) {
        for (const p of w.dirty) {
          const frame = frameOf(w.f.vmo, p);
          expect(frame, `dirty page ${w.f.key}:${p} gone; ${ctx()}`).not.toBe(NO_FRAME);
          expect([DirtyState.Dirty, DirtyState.AwaitingClean]).toContain(fr.dirty[frame]);
        }
      }
      // Always-need pages leave only through the OOM level's override (each one counted).
      const protectedNow = (id: string): boolean => {
        const [key, page] = id.split(':').map(Number);
        const vmo = byKey.get(key)!.f.vmo;
        if (page >= vmo.sizePages) return false;
        const frame = frameOf(vmo, page);
        return frame !== NO_FRAME && (fr.flags[frame] & FrameFlag.AlwaysNeed) !== 0;
      };
      const lost = anBefore.filter((id) => alwaysNeed.has(id) && !protectedNow(id) &&
        Number(id.split(':')[1]) < byKey.get(Number(id.split(':')[0]))!.f.vmo.sizePages).length;
      const overrides = system.evictor.counters.alwaysNeedOverrides - overridesBefore;
      expect(lost, `${lost} always-need pages evicted with only ${overrides} OOM overrides; ${ctx()}`).toBeLessThanOrEqual(overrides);
      alwaysNeed = new Set([...alwaysNeed].filter(protectedNow));
      expect(ap.errors, ctx()).toEqual([]);
    };

    for (let step = 0; step < steps; step++) {
      const anBefore = [...alwaysNeed].filter((id) => {
        const [key, page] = id.split(':').map(Number);
        const w = byKey.get(key)!;
        return page < w.f.vmo.sizePages && frameOf(w.f.vmo, page) !== NO_FRAME;
      });
      const overridesBefore = system.evictor.counters.alwaysNeedOverrides;
      const w = rng.pick(files);
      const vmo = w.f.vmo;
      const roll = rng.int(0, 100);
      let what: string;
      if (roll < 33) {
        const [off, len] = randomRange(w, 12);
        what = `read ${w.f.key} [${off},+${len})`;
        log.push(what);
        await checkRead(w, off, len);
      } else if (roll < 41) {
        const reads = Array.from({ length: rng.int(2, 5) }, () => {
          const ww = rng.pick(files);
          const [off, len] = randomRange(ww, 6);
          return { ww, off, len };
        });
        what = `concurrent ${reads.map((r) => `${r.ww.f.key}[${r.off},+${r.len})`).join(',')}`;
        log.push(what);
        await Promise.all(reads.map((r) => checkRead(r.ww, r.off, r.len)));
      } else if (roll < 51) {
        const [off, len] = randomRange(w, 2);
        const pagesTouched = Math.floor((off + len - 1) / PAGE_SIZE) - Math.floor(off / PAGE_SIZE) + 1;
        if (dirtyTotal() + pagesTouched > MAX_DIRTY) writebackAll();
        const data = new Uint8Array(len).map(() => rng.int(0, 256));
        what = `write ${w.f.key} [${off},+${len})`;
        log.push(what);
        await vmo.write(data, off);
        w.model.write(off, data);
        for (let p = Math.floor(off / PAGE_SIZE); p < Math.ceil((off + len) / PAGE_SIZE); p++) w.dirty.add(p);
      } else if (roll < 56) {
        what = 'writeback';
        log.push(what);
        writebackAll();
      } else if (roll < 70) {
        const [off, len] = randomRange(w, 6);
        const op = rng.pick([VmoOp.DONT_NEED, VmoOp.ALWAYS_NEED, VmoOp.RELEASE_ALWAYS_NEED, VmoOp.PREFETCH]);
        what = `hint ${VmoOp[op]} ${w.f.key} [${off},+${len})`;
        log.push(what);
        const first = Math.floor(off / PAGE_SIZE);
        const end = Math.ceil((off + len) / PAGE_SIZE);
        if (op === VmoOp.RELEASE_ALWAYS_NEED) for (let p = first; p < end; p++) alwaysNeed.delete(`${w.f.key}:${p}`);
        await vmo.opRange(op, off, len);
        if (op === VmoOp.ALWAYS_NEED) {
          for (let p = first; p < end; p++) {
            const frame = frameOf(vmo, p);
            if (frame !== NO_FRAME && (system.arena.frames.flags[frame] & FrameFlag.AlwaysNeed) !== 0) alwaysNeed.add(`${w.f.key}:${p}`);
          }
        }
      } else if (roll < 76) {
        const count = rng.int(1, 5);
        const page = rng.int(0, Math.max(1, vmo.sizePages - count + 1));
        what = `pin ${w.f.key} (${page},${count})`;
        log.push(what);
        if (pinnedTotal() + count <= MAX_PINNED && page + count <= vmo.sizePages) {
          await vmo.commitRangePinned(page * PAGE_SIZE, count * PAGE_SIZE);
          pins.push({ file: w, page, count });
        }
      } else if (roll < 82) {
        what = 'unpin';
        log.push(what);
        if (pins.length > 0) {
          const i = rng.int(0, pins.length);
          const pin = pins[i];
          pins.splice(i, 1);
          pin.file.f.vmo.unpin(pin.page * PAGE_SIZE, pin.count * PAGE_SIZE);
        }
      } else if (roll < 87) {
        const rw = files.filter((x) => x.resizable);
        const r = rng.pick(rw);
        const newPages = rng.int(10, 90);
        const oldPages = r.f.vmo.sizePages;
        what = `resize ${r.f.key} ${oldPages}->${newPages}`;
        log.push(what);
        const cutsPin = pins.some((p) => p.file === r && p.page + p.count > newPages);
        if (newPages < oldPages && cutsPin) {
          await expectZx(() => r.f.vmo.resize(newPages * PAGE_SIZE), ZxStatus.ERR_BAD_STATE);
          expect(r.f.vmo.sizePages).toBe(oldPages);
        } else {
          r.f.vmo.resize(newPages * PAGE_SIZE);
          if (newPages < oldPages) {
            r.model.truncate(newPages);
            r.f.store.truncate(newPages); // the pager truncates its backing file
            r.dirty = new Set([...r.dirty].filter((p) => p < newPages));
          }
        }
      } else if (roll < 92) {
        what = 'age';
        log.push(what);
        system.agePages();
        if (rng.chance(0.5)) system.harvestAccessedBits();
      } else if (roll < 96) {
        const level = rng.chance(0.3) ? EvictionLevel.OutOfMemory : EvictionLevel.OnlyOldest;
        const n = rng.int(1, 24);
        what = `reclaim ${n} ${EvictionLevel[level]}`;
        log.push(what);
        system.reclaim(n, level);
      } else {
        const pages = rng.int(48, 97);
        what = `setBudget ${pages}`;
        log.push(what);
        const before = system.arena.limitFrames;
        try {
          system.setBudget(pages * PAGE_SIZE);
          expect(system.arena.limitFrames).toBe(pages);
        } catch (err) {
          expect(isZxError(err, ZxStatus.ERR_BAD_STATE), String(err)).toBe(true);
          expect(system.arena.limitFrames).toBe(before);
        }
      }
      checkInvariants(anBefore, overridesBefore, what);
    }

    // Everything reads back right, then again after evicting all that can be evicted.
    for (const w of files) await checkRead(w, 0, w.f.vmo.sizeBytes);
    for (const pin of pins) pin.file.f.vmo.unpin(pin.page * PAGE_SIZE, pin.count * PAGE_SIZE);
    pins.length = 0;
    writebackAll();
    for (const w of files) w.dirty.clear();
    system.reclaim(1 << 20, EvictionLevel.OutOfMemory);
    expect(system.arena.usedFrames).toBe(4); // only the anonymous pages are left
    for (const w of files) await checkRead(w, 0, w.f.vmo.sizeBytes);
    checkBudget(system);
    expect(violations()).toEqual([]);
    expect(ap.errors).toEqual([]);
    expect(system.evictor.counters.evictedPages).toBeGreaterThan(0);
    if (process.env.PAGERFS_STATS) console.log(seed, JSON.stringify({ ap: ap.stats, ev: system.evictor.counters, log: log.map((l) => l.split(' ')[0]).reduce((m: Record<string, number>, k) => { m[k] = (m[k] ?? 0) + 1; return m; }, {}) }));
  } finally {
    await ap.stop();
  }
}

const envSeed = process.env.PAGERFS_SEED === undefined ? undefined : Number(process.env.PAGERFS_SEED);
const SEEDS = envSeed !== undefined ? [envSeed] : [0x5eed1, 0xbee5, 20240611];

describe('budget invariant under random workloads', () => {
  for (const seed of SEEDS) {
    it(`never holds more frames than the budget, data stays right (seed=${seed})`, async () => {
      await randomWorkload(seed, 400);
    });
  }
});

// -------------------------------------------------------------------------------------------------
describe('thrash', () => {
  it('working set 4x the budget, 100k one-page reads by 4 readers: correct data, budget held', async () => {
    const BUDGET = 16;
    const system = new VmSystem({ budgetBytes: BUDGET * PAGE_SIZE, validate: false, maxRequestPages: 1, requestTimeoutMs: 20_000 });
    const violations = watchAllocations(system);
    // validate: false keeps 100k reads fast; the walk runs every 1000 reads and every allocation is watched.
    const ap = new AutoPager(system);
    ap.start();
    try {
      const f = ap.createFile(4 * BUDGET);
      const rng = new Rng(0x7a5);
      const READS = 100_000;
      const READERS = 4;
      let done = 0;
      let bad = 0;
      let overBudget = 0;
      const reader = async (id: number): Promise<void> => {
        const buf = new Uint8Array(PAGE_SIZE);
        for (let i = 0; i < READS / READERS; i++) {
          const page = rng.int(0, 4 * BUDGET);
          await f.vmo.read(buf, page * PAGE_SIZE, PAGE_SIZE);
          if (!bytesEqual(buf, cachedPattern(f.key, page))) bad++;
          if (system.arena.usedFrames > system.arena.limitFrames) overBudget++;
          done++;
          if (id === 0 && i % 1000 === 999) {
            system.debugValidate();
            system.agePages();
            if (i % 2000 === 1999) system.harvestAccessedBits();
          }
        }
      };
      await Promise.all(Array.from({ length: READERS }, (_, id) => reader(id)));
      expect(done).toBe(READS);
      expect(bad).toBe(0);
      expect(overBudget).toBe(0);
      expect(violations()).toEqual([]);
      expect(ap.errors).toEqual([]);
      expect(system.arena.counters().peakUsedFrames).toBeLessThanOrEqual(BUDGET);
      // It really thrashed: most reads missed, and every miss beyond the budget evicted a page.
      expect(ap.stats.readPackets).toBeGreaterThan(READS / 2);
      expect(system.evictor.counters.evictedPages).toBeGreaterThanOrEqual(ap.stats.suppliedPages - BUDGET);
      checkBudget(system);
    } finally {
      await ap.stop();
    }
  });
});

// -------------------------------------------------------------------------------------------------
describe('allocation under pressure', () => {
  it('everything pinned: allocation fails with NO_MEMORY; unpinning makes room again', async () => {
    const tp = new TestPager({ budgetBytes: 16 * PAGE_SIZE });
    const vmo = tp.createVmo(16);
    const pin = vmo.commitRangePinned(0, 16 * PAGE_SIZE);
    tp.expectRequest('READ', vmo, 0, 16);
    tp.supply(vmo, 0, 16);
    await pin;
    expect(tp.system.arena.freeFrames).toBe(0);
    const anon = tp.system.createVmo(PAGE_SIZE);
    await expectZx(anon.write(new Uint8Array(1), 0), ZxStatus.ERR_NO_MEMORY);
    await expectZx(anon.commitRange(0, PAGE_SIZE), ZxStatus.ERR_NO_MEMORY);
    // The pager cannot supply either: its aux pages need frames, and a zero-page supply too.
    const other = tp.createVmo(2);
    const r = tp.read(other, 0, 1);
    tp.expectRequest('READ', other, 0, 1);
    await expectZx(() => tp.supply(other, 0, 1), ZxStatus.ERR_NO_MEMORY);
    const emptyAux = tp.system.createVmo(PAGE_SIZE);
    await expectZx(() => tp.pager.supplyPages(other, 0, PAGE_SIZE, emptyAux, 0), ZxStatus.ERR_NO_MEMORY);
    await r.expectBlocked();
    // Pinning more than the budget fails at once.
    const big = tp.createVmo(20);
    await expectZx(big.commitRangePinned(0, 17 * PAGE_SIZE), ZxStatus.ERR_NO_MEMORY);
    tp.expectNoRequest();
    expect(vmo.counters().pinnedPages).toBe(16);
    checkBudget(tp.system);
    // Unpin half: those pages are evictable now.
    vmo.unpin(0, 8 * PAGE_SIZE);
    tp.supply(other, 0, 1);
    const buf = await r.expectDone();
    expect(isPattern(buf, 2, 0)).toBe(true);
    await anon.write(new Uint8Array(1).fill(1), 0);
    expect(tp.system.arena.usedFrames).toBeLessThanOrEqual(16);
    expect(resident(vmo).filter((p) => p >= 8)).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    checkBudget(tp.system);
  });

  it('failed allocations leave no eviction debt: the next allocation evicts only what it needs', async () => {
    const tp = new TestPager({ budgetBytes: 16 * PAGE_SIZE });
    const vmo = tp.createVmo(16);
    const pin = vmo.commitRangePinned(0, 16 * PAGE_SIZE);
    tp.expectRequest('READ', vmo, 0, 16);
    tp.supply(vmo, 0, 16);
    await pin;
    const anon = tp.system.createVmo(PAGE_SIZE);
    for (let i = 0; i < 10; i++) await expectZx(anon.write(new Uint8Array(1), 0), ZxStatus.ERR_NO_MEMORY);
    vmo.unpin(0, 16 * PAGE_SIZE);
    const before = tp.system.evictor.counters.evictedPages;
    await anon.write(new Uint8Array(1), 0); // needs one frame; the high watermark is 1 frame
    const evicted = tp.system.evictor.counters.evictedPages - before;
    expect(evicted, `one allocation evicted ${evicted} pages (carried minimum ${tp.system.evictor.carriedMinFrames})`).toBe(1);
    expect(resident(vmo)).toHaveLength(15);
  });

  it('dirty and pinned pages together filling the budget: NO_MEMORY, nothing of theirs evicted', async () => {
    const tp = new TestPager({ budgetBytes: 16 * PAGE_SIZE });
    const vmo = tp.createVmo(16);
    await commit(tp, vmo, 0, 16);
    await vmo.write(new Uint8Array(8 * PAGE_SIZE).fill(0x42), 0);
    await vmo.commitRangePinned(8 * PAGE_SIZE, 8 * PAGE_SIZE);
    const anon = tp.system.createVmo(PAGE_SIZE);
    await expectZx(anon.write(new Uint8Array(1), 0), ZxStatus.ERR_NO_MEMORY);
    expect(resident(vmo)).toHaveLength(16);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 8, false]]);
    expect((await readBytes(vmo, 0, 8 * PAGE_SIZE)).every((b) => b === 0x42)).toBe(true);
    checkBudget(tp.system);
  });

  // The pager may dirty a range no request asked about; without a request the pages it dirties had
  // no in-flight protection from the evictor.
  it('OP_DIRTY without a request, committing zero pages, never evicts the clean pages it is dirtying', async () => {
    const tp = new TestPager({ budgetBytes: 16 * PAGE_SIZE, lowWatermarkFrames: 0, highWatermarkFrames: 1 });
    const vmo = tp.createVmo(8, TRAP | RESIZABLE);
    tp.supply(vmo, 4, 4);
    tp.system.agePages(); // pages 4-7: the oldest in the system
    const other = tp.createVmo(12);
    tp.supply(other, 0, 12);
    expect(tp.system.arena.freeFrames).toBe(0);
    vmo.resize(12 * PAGE_SIZE); // pages 8-11: a dirty zero run
    tp.dirty(vmo, 4, 8); // before: evicted pages 4-7 for the zero pages' frames; 4-7 were then not dirty
    expect(tp.dirtyRanges(vmo)).toEqual([[4, 8, false]]);
    expect(resident(vmo)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(resident(other)).toHaveLength(8);
    await tp.write(vmo, 4, 8, 0x5a).expectDone();
    tp.expectNoRequest();
    checkBudget(tp.system);
  });

  it('OP_DIRTY that cannot find frames outside its own range fails NO_MEMORY and leaves the range as it was', async () => {
    const tp = new TestPager({ budgetBytes: 16 * PAGE_SIZE, lowWatermarkFrames: 0, highWatermarkFrames: 1 });
    const vmo = tp.createVmo(8, TRAP | RESIZABLE);
    tp.supply(vmo, 0, 8);
    const other = tp.createVmo(8);
    const pin = other.commitRangePinned(0, 8 * PAGE_SIZE);
    tp.expectRequest('READ', other, 0, 8);
    tp.supply(other, 0, 8);
    await pin;
    vmo.resize(12 * PAGE_SIZE);
    // Pages 0-3 would have to be evicted to hold 8-11: refused, nothing dirtied or evicted.
    await expectZx(() => tp.dirty(vmo, 0, 12), ZxStatus.ERR_NO_MEMORY);
    expect(tp.dirtyRanges(vmo)).toEqual([[8, 4, true]]);
    expect(resident(vmo)).toHaveLength(8);
    checkBudget(tp.system);
  });

  it('below the low watermark an allocation reclaims old pages up to the high watermark', async () => {
    const tp = new TestPager({ budgetBytes: 128 * PAGE_SIZE, lowWatermarkFrames: 4, highWatermarkFrames: 10 });
    const vmo = tp.createVmo(124);
    await commit(tp, vmo, 0, 124);
    for (let i = 0; i < 3; i++) tp.system.agePages();
    expect(tp.system.arena.freeFrames).toBe(4);
    expect(tp.system.evictor.counters.evictedPages).toBe(0);
    const anon = tp.system.createVmo(PAGE_SIZE);
    await anon.write(new Uint8Array(1), 0);
    expect(tp.system.evictor.counters.evictedPages).toBe(6);
    expect(tp.system.arena.freeFrames).toBe(9);
    expect(resident(vmo).slice(0, 2)).toEqual([6, 7]); // the oldest (first supplied) went first
    checkBudget(tp.system);
  });

  it('with only active pages, reclaim at the low watermark ages the queues once and takes the oldest page', async () => {
    // Zircon ages early when the inactive queues run dry; pagerfs does the same in allocation rather
    // than jumping to the out-of-memory level, which would ignore age altogether.
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE, lowWatermarkFrames: 2, highWatermarkFrames: 4 });
    const vmo = tp.createVmo(62);
    await commit(tp, vmo, 0, 62);
    expect(tp.system.evictor.counters.evictedPages).toBe(0);
    const agedBefore = tp.system.agedOnDemand;
    const anon = tp.system.createVmo(3 * PAGE_SIZE);
    await anon.write(new Uint8Array(3 * PAGE_SIZE).fill(1), 0);
    expect(tp.system.agedOnDemand).toBeGreaterThan(agedBefore);
    const evicted = tp.system.evictor.counters.evictedPages;
    expect(evicted).toBeGreaterThan(0);
    // Pages were committed in order, so the oldest (lowest) pages went first.
    expect(resident(vmo)).toEqual(Array.from({ length: 62 - evicted }, (_, i) => evicted + i));
    expect(tp.system.arena.usedFrames).toBeLessThanOrEqual(64);
    checkBudget(tp.system);
  });
});

// -------------------------------------------------------------------------------------------------
describe('zero-page scan', () => {
  it('finds and frees exactly the zero pages of anonymous VMOs', async () => {
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE });
    const a = tp.system.createVmo(8 * PAGE_SIZE);
    await a.commitRange(0, 8 * PAGE_SIZE); // 8 zero pages
    await a.write(new Uint8Array(10).fill(1), PAGE_SIZE + 5); // page 1 non-zero
    await a.write(new Uint8Array(1).fill(3), 4 * PAGE_SIZE - 1); // page 3: last byte only
    await a.write(new Uint8Array(PAGE_SIZE).fill(9), 5 * PAGE_SIZE);
    await a.write(new Uint8Array(PAGE_SIZE), 5 * PAGE_SIZE); // page 5: written, then zero again
    await a.commitRangePinned(6 * PAGE_SIZE, PAGE_SIZE); // page 6: zero but pinned
    const b = tp.system.createVmo(4 * PAGE_SIZE);
    await b.write(new Uint8Array(1).fill(7), 0);
    await b.commitRange(2 * PAGE_SIZE, PAGE_SIZE); // page 2 zero
    // A pager page of zeros (supplied from an uncommitted aux page) is not anonymous: untouched.
    const vmo = tp.createVmo(1);
    const aux = tp.system.createVmo(PAGE_SIZE);
    tp.pager.supplyPages(vmo, 0, PAGE_SIZE, aux, 0);
    aux.close();

    const used = tp.system.arena.usedFrames;
    expect(used).toBe(8 + 2 + 1);
    expect(tp.system.scanForZeroPages(false)).toBe(5 + 1); // a: 0, 2, 4, 5, 7; b: 2
    expect(tp.system.arena.usedFrames).toBe(used);
    expect(tp.system.scanForZeroPages(true)).toBe(6);
    expect(tp.system.arena.usedFrames).toBe(used - 6);
    expect(resident(a)).toEqual([1, 3, 6]);
    expect(resident(b)).toEqual([0]);
    expect(resident(vmo)).toEqual([0]);
    // Contents unchanged; the freed pages read as zeros without taking a frame.
    const bytes = await readBytes(a, 0, 8 * PAGE_SIZE);
    const want = new Uint8Array(8 * PAGE_SIZE);
    want.fill(1, PAGE_SIZE + 5, PAGE_SIZE + 15);
    want[4 * PAGE_SIZE - 1] = 3;
    expect(bytesEqual(bytes, want)).toBe(true);
    expect((await readBytes(b, 0, 4 * PAGE_SIZE))[0]).toBe(7);
    expect(tp.system.arena.usedFrames).toBe(used - 6);
    expect(tp.system.scanForZeroPages(true)).toBe(0);
    checkBudget(tp.system);
  });
});

// -------------------------------------------------------------------------------------------------
describe('setBudget', () => {
  it('shrinking evicts clean pages down to the new budget; reads keep working within it', async () => {
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE, maxRequestPages: 4 });
    const vmo = tp.createVmo(48);
    for (let p = 0; p < 48; p += 4) await commit(tp, vmo, p, 4);
    await vmo.opRange(VmoOp.ALWAYS_NEED, 0, 4 * PAGE_SIZE); // even always-need pages may go if needed
    tp.system.setBudget(32 * PAGE_SIZE);
    expect(tp.system.arena.limitFrames).toBe(32);
    expect(tp.system.budgetBytes).toBe(32 * PAGE_SIZE);
    expect(tp.system.arena.usedFrames).toBeLessThanOrEqual(32);
    expect(tp.system.evictor.carriedMinFrames).toBe(0);
    checkBudget(tp.system);
    // Shrink again, to the smallest budget the 4 locked pages allow (4 + MIN_BUDGET_PAGES).
    tp.system.setBudget(20 * PAGE_SIZE);
    expect(tp.system.arena.usedFrames).toBeLessThanOrEqual(20);
    checkBudget(tp.system);
    // Read all 48 pages through the 20-page budget (requests are at most 4 pages here).
    const r = tp.read(vmo, 0, 48);
    while (r.state === 'pending') {
      const p = tp.next();
      if (p === null) { await new Promise((res) => setImmediate(res)); continue; }
      expect(p.command).toBe('READ');
      tp.supply(vmo, p.offset / PAGE_SIZE, p.length / PAGE_SIZE);
      expect(tp.system.arena.usedFrames).toBeLessThanOrEqual(20);
    }
    const buf = await r.expectDone();
    expect(isPattern(buf, 1, 0)).toBe(true);
    checkBudget(tp.system);
  });

  it('refuses (BAD_STATE, old budget kept) when dirty pages alone exceed the new budget', async () => {
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE });
    const vmo = tp.createVmo(40);
    await commit(tp, vmo, 0, 40);
    await vmo.write(new Uint8Array(20 * PAGE_SIZE).fill(5), 0);
    await expectZx(() => tp.system.setBudget(16 * PAGE_SIZE), ZxStatus.ERR_BAD_STATE);
    expect(tp.system.arena.limitFrames).toBe(64);
    expect(tp.dirtyRanges(vmo)).toEqual([[0, 20, false]]);
    expect(resident(vmo).slice(0, 20)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect((await readBytes(vmo, 0, 20 * PAGE_SIZE)).every((b) => b === 5)).toBe(true);
    checkBudget(tp.system);
    // Once written back, the same shrink succeeds.
    tp.writebackBegin(vmo, 0, 20);
    tp.writebackEnd(vmo, 0, 20);
    tp.system.setBudget(16 * PAGE_SIZE);
    expect(tp.system.arena.limitFrames).toBe(16);
    checkBudget(tp.system);
  });

  it('refuses (BAD_STATE, old budget kept) when pinned pages alone exceed the new budget', async () => {
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE });
    const vmo = tp.createVmo(24);
    const pin = vmo.commitRangePinned(0, 20 * PAGE_SIZE);
    tp.expectRequest('READ', vmo, 0, 20);
    tp.supply(vmo, 0, 20);
    await pin;
    const anon = tp.system.createVmo(2 * PAGE_SIZE);
    await anon.write(new Uint8Array(2 * PAGE_SIZE).fill(1), 0);
    await expectZx(() => tp.system.setBudget(20 * PAGE_SIZE), ZxStatus.ERR_BAD_STATE); // 20 pinned + 2 anonymous
    expect(tp.system.arena.limitFrames).toBe(64);
    expect(vmo.counters().pinnedPages).toBe(20);
    // Allocation still works against the old budget.
    await anon.write(new Uint8Array(1), 0);
    checkBudget(tp.system);
    vmo.unpin(0, 20 * PAGE_SIZE);
    tp.system.setBudget(20 * PAGE_SIZE);
    expect(tp.system.arena.usedFrames).toBeLessThanOrEqual(20);
    checkBudget(tp.system);
  });

  it('refuses (BAD_STATE, old budget kept, nothing evicted) a shrink that leaves fewer than MIN_BUDGET_PAGES beside the pinned and locked pages (one to exactly them was accepted)', async () => {
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE, maxRequestPages: 4 });
    const cold = tp.createVmo(32);
    for (let p = 0; p < 8; p += 4) await commit(tp, cold, p, 4);
    const pinnedVmo = tp.createVmo(4);
    const pin = pinnedVmo.commitRangePinned(0, 4 * PAGE_SIZE);
    tp.expectRequest('READ', pinnedVmo, 0, 4);
    tp.supply(pinnedVmo, 0, 4);
    await pin;
    const locked = tp.createVmo(24);
    await serve(tp, locked, locked.commitRange(0, 24 * PAGE_SIZE));
    await locked.opRange(VmoOp.ALWAYS_NEED, 0, 20 * PAGE_SIZE);
    const sys = tp.system;
    expect(sys.lockedPages).toBe(20);
    expect(sys.pinnedPages).toBe(4);
    expect(sys.smallestBudgetPages()).toBe(20 + 4 + MIN_BUDGET_PAGES);
    const evicted = sys.evictor.counters.evictedPages;
    for (const pages of [24, 39]) {
      let message = '';
      try {
        sys.setBudget(pages * PAGE_SIZE);
      } catch (err) {
        expect(isZxError(err, ZxStatus.ERR_BAD_STATE), String(err)).toBe(true);
        message = (err as Error).message;
      }
      expect(message, `a shrink to ${pages} pages`).toMatch(/4 pinned and 20 locked pages stay.*smallest budget now: 40 pages/);
      expect(sys.budgetPages).toBe(64);
      expect(sys.evictor.counters.evictedPages).toBe(evicted);
    }
    // The smallest budget itself is accepted, and a read of absent pages goes on within it.
    sys.setBudget(40 * PAGE_SIZE);
    expect(sys.budgetPages).toBe(40);
    const r = tp.read(cold, 0, 32);
    while (r.state === 'pending') {
      const p = tp.next();
      if (p === null) { await new Promise((res) => setImmediate(res)); continue; }
      tp.supply(cold, p.offset / PAGE_SIZE, p.length / PAGE_SIZE);
      expect(sys.arena.usedFrames).toBeLessThanOrEqual(40);
    }
    expect(isPattern(await r.expectDone(), keyOf(cold), 0)).toBe(true);
    expect(sys.lockedPages).toBe(20);
    checkBudget(sys);
    // Growing is never refused for what is held, even from below the smallest budget (pins come and go).
    const more = tp.createVmo(12);
    await serve(tp, more, more.commitRangePinned(0, 12 * PAGE_SIZE));
    expect(sys.smallestBudgetPages()).toBe(20 + 16 + MIN_BUDGET_PAGES);
    sys.setBudget(48 * PAGE_SIZE);
    expect(sys.budgetPages).toBe(48);
  });

  it('growing takes effect at once; below the minimum is INVALID_ARGS', async () => {
    const tp = new TestPager({ budgetBytes: 16 * PAGE_SIZE });
    const vmo = tp.createVmo(16);
    const pin = vmo.commitRangePinned(0, 16 * PAGE_SIZE);
    tp.expectRequest('READ', vmo, 0, 16);
    tp.supply(vmo, 0, 16);
    await pin;
    const anon = tp.system.createVmo(8 * PAGE_SIZE);
    await expectZx(anon.write(new Uint8Array(1), 0), ZxStatus.ERR_NO_MEMORY);
    tp.system.setBudget(24 * PAGE_SIZE);
    expect(tp.system.arena.limitFrames).toBe(24);
    expect(tp.system.arena.freeFrames).toBe(8);
    await anon.write(new Uint8Array(8 * PAGE_SIZE).fill(2), 0);
    expect(tp.system.arena.usedFrames).toBe(24);
    await expectZx(() => tp.system.setBudget(15 * PAGE_SIZE), ZxStatus.ERR_INVALID_ARGS);
    await expectZx(() => tp.system.setBudget(Number.NaN), ZxStatus.ERR_INVALID_ARGS);
    expect(tp.system.arena.limitFrames).toBe(24);
    expect(tp.system.evictor.counters.evictedPages).toBe(0);
    checkBudget(tp.system);
  });
});

/**
 * Commits 200 pages of a fresh pager VMO, supplying each request as it comes and calling `each`
 * with its length in pages after the supply; returns the largest request and how many came.
 */
async function commitThrough(system: VmSystem, each?: (pages: number) => void): Promise<{ largest: number; requests: number }> {
  const pager = system.createPager();
  const port = system.createPort();
  const vmo = pager.createVmo(0, port, 1, 200 * PAGE_SIZE);
  const committing = vmo.commitRange(0, 200 * PAGE_SIZE);
  let largest = 0;
  let requests = 0;
  for (;;) {
    const p = await Promise.race([port.wait(), committing.then(() => null)]);
    if (p === null) break;
    requests++;
    largest = Math.max(largest, p.length / PAGE_SIZE);
    const aux = system.createVmo(p.length);
    pager.supplyPages(vmo, p.offset, p.length, aux, 0);
    aux.close();
    each?.(p.length / PAGE_SIZE);
  }
  await committing;
  return { largest, requests };
}

// -------------------------------------------------------------------------------------------------
describe('limits that follow the budget', () => {
  it('after a shrink, requests and watermarks are the new budget\'s, as on a system made with it (it hung or thrashed)', async () => {
    const made = new VmSystem({ budgetBytes: 64 * PAGE_SIZE });
    const shrunk = new VmSystem({ budgetBytes: 16384 * PAGE_SIZE });
    shrunk.setBudget(64 * PAGE_SIZE);
    expect(shrunk.options.lowWatermarkFrames).toBe(made.options.lowWatermarkFrames);
    expect(shrunk.options.highWatermarkFrames).toBe(made.options.highWatermarkFrames);
    expect(shrunk.options.maxRequestPages).toBe(made.options.maxRequestPages);
    // A request larger than the budget cannot be supplied (its pages are not evictable until it is
    // answered): before, the shrunk system asked for 1024 pages at once and the commit failed.
    expect((await commitThrough(shrunk)).largest).toBe(16);
    // Pages supplied one at a time all stay resident within the budget (before: the stale low
    // watermark, 256 frames, reclaimed at every allocation and left 2 of 40).
    const pager = shrunk.createPager();
    const port = shrunk.createPort();
    const vmo = pager.createVmo(0, port, 2, 40 * PAGE_SIZE);
    const aux = shrunk.createVmo(PAGE_SIZE);
    for (let p = 0; p < 40; p++) {
      aux.writeStep(new Uint8Array(PAGE_SIZE).fill(p), 0, 0, PAGE_SIZE);
      pager.supplyPages(vmo, p * PAGE_SIZE, PAGE_SIZE, aux, 0);
    }
    expect(vmo.counters().residentPages).toBe(40);
    // And back up: the limits grow with the budget too.
    shrunk.setBudget(16384 * PAGE_SIZE);
    expect(shrunk.options.maxRequestPages).toBe(1024);
  });

  it('options given at creation stay fixed across budget changes', () => {
    const system = new VmSystem({ budgetBytes: 1024 * PAGE_SIZE, maxRequestPages: 8, lowWatermarkFrames: 3, highWatermarkFrames: 9 });
    system.setBudget(64 * PAGE_SIZE);
    expect([system.options.maxRequestPages, system.options.lowWatermarkFrames, system.options.highWatermarkFrames]).toEqual([8, 3, 9]);
  });
});

describe('request size under a small budget', () => {
  it('by default a page request asks for at most a quarter of the budget, so its in-flight pages never fill it', async () => {
    // A request's pages cannot be evicted until it is answered; a commit larger than the budget must
    // therefore come in requests that leave room to evict (regression: touch under a 4 MiB budget
    // reached the out-of-memory level and took locked pages).
    const system = new VmSystem({ budgetBytes: 64 * PAGE_SIZE, validate: true });
    const { requests } = await commitThrough(system, (pages) => {
      expect(pages).toBeLessThanOrEqual(16);
      expect(system.arena.usedFrames).toBeLessThanOrEqual(64);
    });
    expect(requests).toBeGreaterThanOrEqual(200 / 16);
    expect(system.evictor.counters.alwaysNeedOverrides).toBe(0);
  });

  it('the largest page request shrinks with the share of the budget pinned and locked pages hold (it stayed a quarter of the whole budget)', async () => {
    const tp = new TestPager({ budgetBytes: 64 * PAGE_SIZE, validate: true, maxRequestPages: 16 });
    const hot = tp.createVmo(40);
    await commit(tp, hot, 0, 16);
    await commit(tp, hot, 16, 16);
    await commit(tp, hot, 32, 8);
    await hot.opRange(VmoOp.ALWAYS_NEED, 0, 40 * PAGE_SIZE);
    expect(tp.system.lockedPages).toBe(40);
    expect(tp.system.requestPagesMax()).toBe(6); // 16 × (64 - 40) / 64
    const { largest } = await commitThrough(tp.system, (pages) => {
      expect(pages).toBeLessThanOrEqual(6);
    });
    expect(largest).toBe(6);
    expect(tp.system.evictor.counters.alwaysNeedOverrides).toBe(0);
    expect(hot.counters().residentPages).toBe(40);
    // Unlocked, the whole budget's quarter again.
    await hot.opRange(VmoOp.RELEASE_ALWAYS_NEED, 0, 40 * PAGE_SIZE);
    expect(tp.system.requestPagesMax()).toBe(16);
  });
});
