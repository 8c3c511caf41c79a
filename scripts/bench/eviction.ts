/**
 * Suite `eviction`: what reclaim costs and how faulting behaves once the budget is full. Pages come
 * from an in-process pager (MemoryPager: pattern pages from memory, no disk), so only the VM core's
 * work is measured.
 *
 *  1. Reclaim cost per page vs budget (16 MiB … 1 GiB): a pager VMO filled by bulk supplyPages up to
 *     just under the low watermark (no reclaim during the fill), aged 3 steps so every page is in an
 *     inactive generation, then `system.reclaim(half the pages, OnlyOldest)` is timed; evicted pages
 *     are supplied again (untimed) before the next round. One VmSystem per budget, all measured in
 *     the same rounds. Goal (issue): largest / smallest cost per page ≤ 1.5.
 *  2. Fault throughput vs working set: budget 64 MiB, pager VMO 1×, 2× and 8× the budget, 4 KiB
 *     reads through the FUSE read path (readStep, then wait for the pager), seeded-random or sequential
 *     (a cursor that wraps). Steady state: the budget is pre-filled and one warm-up round runs first.
 *     Reported: reads/s, faults and evictions per read, and throughput relative to the 1× case.
 *  3. Fault cost per page vs budget: the same random reads at a 2× working set under budgets of
 *     16 MiB … 1 GiB; cost per read and per fault, and largest / smallest per-fault cost.
 */
import { EvictionLevel, PAGE_SIZE, VmSystem, type VmObjectPaged } from '../../src/index.js';
import {
  forceGc, fuseRead, goalAtMost, medianExtra, metText, rounds, type GoalResult, type Measured, type Suite, type SuiteContext,
} from './harness.js';
import { MemoryPager } from './mem-pager.js';
import { elapsedNs, fmtBytes, fmtNs, fmtNum, fmtOps, fmtRatio, fmtSpread, median, nowNs, pairedRatio, Rng, type Table } from './stats.js';

const MiB = 1024 * 1024;
const BUDGETS = [16 * MiB, 64 * MiB, 256 * MiB, 1024 * MiB];
const THROUGHPUT_BUDGET = 64 * MiB;
const WORKING_SETS = [1, 2, 8];
const READS_PER_SAMPLE = 16384;
const WARMUP = 1;
const RUNS = 5;
const AGE_STEPS = 3;
/** Reclaim samples are short: more of them, each evicting at least this many pages. */
const RECLAIM_RUNS = 9;
const MIN_EVICTED_PER_SAMPLE = 65536;
const BUDGET_RUNS = 7;

/** Pages a fill may reach without tripping the low watermark (room for the pager's aux pages). */
function fillablePages(system: VmSystem): number {
  return system.arena.limitFrames - system.options.lowWatermarkFrames - 2 * 256;
}

/** Supplies every missing page of [0, end) (untimed refill), in runs. */
function refill(mp: MemoryPager, vmo: VmObjectPaged, end: number): void {
  let p = 0;
  while (p < end) {
    while (p < end && vmo.pages.lookup(p) >= 0) p++;
    const start = p;
    while (p < end && vmo.pages.lookup(p) < 0) p++;
    if (p > start) mp.fill(vmo, start, p);
  }
}

async function reclaimCost(ctx: SuiteContext, tables: Table[], goals: GoalResult[], raw: Record<string, unknown>): Promise<void> {
  const setups = BUDGETS.map((budget) => {
    const system = new VmSystem({ budgetBytes: budget });
    const mp = new MemoryPager(system, 0xe71c7);
    const fill = fillablePages(system);
    const vmo = mp.createVmo(fill * PAGE_SIZE);
    return { budget, system, mp, vmo, fill, evict: Math.floor(fill / 2) };
  });
  ctx.progress('reclaim: filling budgets');
  for (const s of setups) refill(s.mp, s.vmo, s.fill);
  const measured = await rounds(ctx, setups.map((s) => ({
    name: fmtBytes(s.budget),
    sample: () => {
      // Small budgets repeat the refill → age → reclaim cycle so every sample evicts about as many
      // pages (only the reclaim calls are timed).
      let ns = 0;
      let freedTotal = 0;
      while (freedTotal < MIN_EVICTED_PER_SAMPLE) {
        refill(s.mp, s.vmo, s.fill);
        if (s.vmo.counters().residentPages !== s.fill) throw new Error(`reclaim ${fmtBytes(s.budget)}: refill incomplete`);
        for (let i = 0; i < AGE_STEPS; i++) s.system.agePages();
        const t0 = nowNs();
        const freed = s.system.reclaim(s.evict, EvictionLevel.OnlyOldest);
        ns += elapsedNs(t0);
        if (freed !== s.evict) throw new Error(`reclaim ${fmtBytes(s.budget)}: freed ${freed} of ${s.evict}`);
        freedTotal += freed;
      }
      return { ns, units: freedTotal, extra: { cycles: Math.round(freedTotal / s.evict) } };
    },
  })), { warmup: WARMUP, runs: RECLAIM_RUNS, label: 'reclaim cost per page', between: forceGc });
  for (const s of setups) await s.mp.stop();

  // Flatness from paired ratios: each budget's cost relative to the smallest budget's in the same
  // round (median over rounds), so a burst of load on the machine cancels out of the ratio.
  const smallest = measured[0];
  const rel = measured.map((m) => 1 / pairedRatio(m.rates, smallest.rates));
  const flat = Math.max(...rel) / Math.min(...rel);
  const costs = measured.map((m) => m.medianNsPerUnit);
  const unpaired = Math.max(...costs) / Math.min(...costs);
  const g = goalAtMost('reclaim cost per page, largest / smallest over budgets 16 MiB…1 GiB', flat, 1.5, 'eviction issue');
  goals.push(g);
  tables.push({
    title: `Reclaim cost per evicted page (system.reclaim of half a full budget, OnlyOldest), median of ${RECLAIM_RUNS}`,
    columns: ['budget', 'evicted per call × calls', 'per page', 'pages/s', 'spread', `cost × ${smallest.name}`],
    rows: measured.map((m, i) => [m.name, `${fmtNum(setups[i].evict)} × ${medianExtra(m, 'cycles')}`,
      fmtNs(m.medianNsPerUnit), fmtOps(m.medianRate), fmtSpread(m.spread), fmtRatio(rel[i])]),
    notes: [`largest / smallest cost per page: ${fmtRatio(flat)} (goal ${g.goal}: ${metText(g)})`,
      `"cost × ${smallest.name}" = median over rounds of the cost ratio measured in the same round; the goal is on these`,
      `(from the per-budget medians alone, unpaired: ${fmtRatio(unpaired)})`],
  });
  raw.reclaimCost = { measured, budgets: BUDGETS, evictPerCall: setups.map((s) => s.evict), relativeCost: rel, flatness: flat, unpairedFlatness: unpaired };
}

interface ReaderSetup {
  name: string;
  system: VmSystem;
  mp: MemoryPager;
  vmo: VmObjectPaged;
  key: number;
  pages: number;
  random: boolean;
  rng: Rng;
  cursor: number;
}

function makeReader(name: string, budget: number, workingSet: number, random: boolean, seed: number): ReaderSetup {
  const system = new VmSystem({ budgetBytes: budget });
  const mp = new MemoryPager(system, seed);
  const pages = Math.floor(budget / PAGE_SIZE) * workingSet;
  const vmo = mp.createVmo(pages * PAGE_SIZE);
  mp.start();
  // Steady state from the start: the budget is full of pages of this VMO.
  mp.fill(vmo, 0, Math.min(pages, fillablePages(system)));
  return { name, system, mp, vmo, key: mp.keyOf(vmo), pages, random, rng: new Rng(seed), cursor: 0 };
}

const readBuf = Buffer.alloc(PAGE_SIZE);

async function readerSample(s: ReaderSetup): Promise<{ ns: number; units: number; extra: Record<string, number> }> {
  const offsets = new Float64Array(READS_PER_SAMPLE);
  for (let i = 0; i < READS_PER_SAMPLE; i++) {
    let page: number;
    if (s.random) page = s.rng.int(s.pages);
    else { page = s.cursor; s.cursor = (s.cursor + 1) % s.pages; }
    offsets[i] = page * PAGE_SIZE;
  }
  const faults0 = s.vmo.counters().faults;
  const evicted0 = s.system.evictor.counters.evictedPages;
  const t0 = nowNs();
  for (let i = 0; i < READS_PER_SAMPLE; i++) {
    const r = fuseRead(s.vmo, readBuf, offsets[i], PAGE_SIZE);
    if (typeof r !== 'number') await r;
  }
  const ns = elapsedNs(t0);
  const last = offsets[READS_PER_SAMPLE - 1] / PAGE_SIZE;
  if (!s.mp.checkPage(readBuf, last, s.key)) throw new Error(`${s.name}: page ${last} read wrong bytes`);
  const faults = s.vmo.counters().faults - faults0;
  const evicted = s.system.evictor.counters.evictedPages - evicted0;
  return {
    ns, units: READS_PER_SAMPLE,
    extra: { faultsPerRead: faults / READS_PER_SAMPLE, evictedPerRead: evicted / READS_PER_SAMPLE, nsPerFault: faults > 0 ? ns / faults : NaN },
  };
}

async function faultThroughput(ctx: SuiteContext, tables: Table[], raw: Record<string, unknown>): Promise<void> {
  const setups: ReaderSetup[] = [];
  ctx.progress('fault throughput: filling budgets');
  // All hits: a working set of half the budget, pre-filled, so no read faults (the hit cost).
  setups.push(makeReader('random ½× (all resident)', THROUGHPUT_BUDGET, 0.5, true, 0x1000));
  for (const random of [true, false]) {
    for (const ws of WORKING_SETS) {
      setups.push(makeReader(`${random ? 'random' : 'sequential'} ${ws}×`, THROUGHPUT_BUDGET, ws, random, 0x1000 + ws * 2 + (random ? 1 : 0)));
    }
  }
  const measured = await rounds(ctx, setups.map((s) => ({ name: s.name, sample: () => readerSample(s) })),
    { warmup: WARMUP, runs: RUNS, label: `fault throughput, ${fmtBytes(THROUGHPUT_BUDGET)} budget` });
  for (const s of setups) await s.mp.stop();
  const base = (i: number): Measured => measured[i === 0 ? 0 : setups[i].random ? 1 : 1 + WORKING_SETS.length];
  const hitNs = measured[0].medianNsPerUnit;
  // Per fault: the sample's time less its hits at the all-resident cost, over its faults.
  const perFault = (m: Measured): number => {
    const f = medianExtra(m, 'faultsPerRead');
    return f > 0 ? (m.medianNsPerUnit - (1 - f) * hitNs) / f : NaN;
  };
  tables.push({
    title: `Fault throughput, 4 KiB reads, budget ${fmtBytes(THROUGHPUT_BUDGET)}, ${fmtNum(READS_PER_SAMPLE)} reads per sample, median of ${RUNS}`,
    columns: ['pattern, working set', 'reads/s', 'spread', 'per read', 'faults/read', 'evicted/read', 'per fault', '× 1× same pattern', '× all resident'],
    rows: measured.map((m, i) => [m.name, fmtOps(m.medianRate), fmtSpread(m.spread), fmtNs(m.medianNsPerUnit),
      medianExtra(m, 'faultsPerRead').toFixed(3), medianExtra(m, 'evictedPerRead').toFixed(3), i === 0 ? '—' : fmtNs(perFault(m)),
      fmtRatio(pairedRatio(m.rates, base(i).rates)), fmtRatio(pairedRatio(m.rates, measured[0].rates))]),
    notes: ['"per fault" = (time per read − hit share × all-resident time per read) / faults per read',
      'sequential reads are one page each: every fault asks for one page (no readahead in this pager)',
      'a sequential scan of a working set ≥ the budget misses on every read (LRU order; at most budget − low watermark stays resident)'],
  });
  raw.faultThroughput = measured;
}

async function faultCostVsBudget(ctx: SuiteContext, tables: Table[], raw: Record<string, unknown>): Promise<void> {
  ctx.progress('fault cost vs budget: filling budgets');
  const setups = BUDGETS.map((b, i) => makeReader(fmtBytes(b), b, 2, true, 0x2000 + i));
  const measured = await rounds(ctx, setups.map((s) => ({ name: s.name, sample: () => readerSample(s) })),
    { warmup: WARMUP, runs: BUDGET_RUNS, label: 'fault cost vs budget (random, 2× working set)' });
  for (const s of setups) await s.mp.stop();
  const perFault = measured.map((m) => medianExtra(m, 'nsPerFault'));
  const relRead = measured.map((m) => 1 / pairedRatio(m.rates, measured[0].rates));
  const ratio = Math.max(...relRead) / Math.min(...relRead);
  tables.push({
    title: `Fault cost vs budget, random 4 KiB reads, working set 2× the budget, median of ${BUDGET_RUNS}`,
    columns: ['budget', 'reads/s', 'spread', 'per read', 'faults/read', 'per fault', `per-read cost × ${measured[0].name}`],
    rows: measured.map((m) => [m.name, fmtOps(m.medianRate), fmtSpread(m.spread), fmtNs(m.medianNsPerUnit),
      medianExtra(m, 'faultsPerRead').toFixed(3), fmtNs(medianExtra(m, 'nsPerFault')), fmtRatio(1 / pairedRatio(m.rates, measured[0].rates))]),
    notes: ['"per fault" = sample time / faults in it (the ~49% hits included: a slight overestimate)',
      `largest / smallest per-read cost (paired, at ~51% faults): ${fmtRatio(ratio)} (informational; the goal is on reclaim cost per page)`],
  });
  raw.faultCostVsBudget = { measured, perFault, relativePerReadCost: relRead, flatness: ratio, perFaultMedian: median(perFault) };
}

export const evictionSuite: Suite = {
  name: 'eviction',
  title: 'eviction: reclaim cost and faulting under a full budget',
  summary: 'reclaim cost per page vs budget (16 MiB..1 GiB), fault throughput at 1×/2×/8× working sets',
  async run(ctx) {
    const tables: Table[] = [];
    const goals: GoalResult[] = [];
    const raw: Record<string, unknown> = {};
    await reclaimCost(ctx, tables, goals, raw);
    forceGc();
    await faultThroughput(ctx, tables, raw);
    forceGc();
    await faultCostVsBudget(ctx, tables, raw);
    forceGc();
    return {
      about: [
        `Side-by-side rounds, variant order rotated each round, ${WARMUP} warm-up round discarded, medians reported (reclaim ${RECLAIM_RUNS}, throughput ${RUNS}, fault cost vs budget ${BUDGET_RUNS} rounds).`,
        'Pager: in-process, pattern pages from memory (no disk), one aux VMO reused for every supply.',
        'Default watermarks (low = budget/64, high = budget/32); reclaim during faults is the allocator\'s own.',
      ],
      tables, goals, raw,
    };
  },
};
