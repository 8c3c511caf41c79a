/**
 * Suite `pressure`: pagerfs while its memory budget changes under load. A working set twice the
 * largest budget (8 files, 128 MiB, built in a temporary directory with every page checkable) is
 * read by 4 readers doing random aligned 4 KiB reads through a mounted pagerfs (a child daemon,
 * default direct_io mode, so every read reaches the pager's VMOs). After a warm-up that fills the
 * first budget, the budget steps 64 → 16 → 64 MiB through `.pagerfs/budget`, each step for a fixed
 * time. Every ~200 ms the suite samples `.pagerfs/stats`, the daemon's VmRSS and the readers'
 * shared counters.
 *
 * Per step it prints hit rate, page requests/s, evictions/s, throughput, daemon RSS, the largest
 * resident size against the budget in force, and counts what must be zero: samples with resident
 * bytes over the budget, pages whose bytes were wrong, failed reads. It draws the samples as an SVG
 * under bench-results/ (pressure-<stamp>.svg and pressure-latest.svg).
 *
 * Hit rate: a read is one aligned page, so pages read = reads; a page the pager supplied is one some
 * read found missing (random reads get no readahead; the readahead pages are counted and shown), so
 * hit rate = 1 − supplied pages / pages read. For uniform random reads it should match the share of
 * the working set that is resident, which the table shows next to it.
 *
 * Flag: --quick (3 s steps instead of 8 s).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readStats, writeBudget } from '../../fs/client.js';
import { cannotMount, openSandbox, pagerfsSpec, rssBytes, sleep, type Daemon, type Reaper } from './fs-procs.js';
import { repoRoot, type GoalResult, type Suite } from './harness.js';
import { PAGE_BYTES, buildWorkingSet, type WorkingSet } from './pressure-data.js';
import { ReaderPool } from './pressure-load.js';
import { LEVEL_NAMES, pressureSvg, type ChartPhase, type ChartPoint } from './pressure-svg.js';
import { fmtBytes, fmtOps, fmtRate, type Table } from './stats.js';

const MiB = 1024 * 1024;
const READERS = 4;
const FILE_COUNT = 8;
const SAMPLE_MS = 200;
/** A grown budget counts as refilled at this share (the evictor keeps a few free frames). */
const REFILL_SHARE = 0.9;

interface Plan {
  name: 'full' | 'quick';
  /** The budget of each measured step, in order; the warm-up runs at the first. */
  stepBudgetsBytes: number[];
  stepMs: number;
  /** The warm-up ends when resident bytes reach this share of the budget, or after warmupMaxMs. */
  warmupFill: number;
  warmupMaxMs: number;
}

const FULL: Plan = { name: 'full', stepBudgetsBytes: [64 * MiB, 16 * MiB, 64 * MiB], stepMs: 8000, warmupFill: 0.9, warmupMaxMs: 10_000 };
const QUICK: Plan = { ...FULL, name: 'quick', stepMs: 3000, warmupMaxMs: 5000 };

interface PhaseDef {
  name: string;
  budgetBytes: number;
  warmup: boolean;
}

/** One sample: the daemon's counters, its RSS and the readers' counters at `tMs`. */
interface Sample {
  /** Since the readers started. */
  tMs: number;
  /** Index into the phases (0 is the warm-up). */
  phase: number;
  budgetBytes: number;
  residentBytes: number;
  level: number;
  pageRequests: number;
  suppliedPages: number;
  evictedPages: number;
  readaheadPages: number;
  rssBytes: number | null;
  reads: number;
  mismatches: number;
  errors: number;
}

interface StepSummary {
  name: string;
  budgetBytes: number;
  seconds: number;
  reads: number;
  hitRate: number;
  /** Over the second half of the step, after the cache has settled at the new budget. */
  hitRateLate: number;
  /** Mean resident bytes / working set: the hit rate uniform random reads should see. */
  residentShare: number;
  requestsPerS: number;
  evictionsPerS: number;
  readaheadPages: number;
  bytesPerS: number;
  maxResidentBytes: number;
  /** Samples with residentBytes > budgetBytes (the daemon's own, same snapshot). */
  overBudget: number;
  /** Samples whose budget is not the one this step wrote. */
  budgetNotApplied: number;
  levels: string[];
  rssMaxBytes: number | null;
  rssEndBytes: number | null;
  /** How long the write to .pagerfs/budget took (shrinking reclaims before it returns). */
  budgetWriteMs: number | null;
  /** Pages evicted between the samples just before and just after the budget write. */
  evictedAtWritePages: number | null;
  /** After a growing write: seconds until resident bytes reached REFILL_SHARE of the budget (null: never, or no growth). */
  refillS: number | null;
  mismatches: number;
  errors: number;
  samples: number;
}

function phases(plan: Plan): PhaseDef[] {
  return [
    { name: 'warm-up', budgetBytes: plan.stepBudgetsBytes[0], warmup: true },
    ...plan.stepBudgetsBytes.map((b, i) => ({ name: `step ${i + 1}`, budgetBytes: b, warmup: false })),
  ];
}

/** Runs the phases under load, sampling every SAMPLE_MS; returns every sample and each budget write's time. */
async function drive(mnt: string, daemon: Daemon, pool: ReaderPool, defs: PhaseDef[], plan: Plan, progress: (m: string) => void):
Promise<{ samples: Sample[]; writeMs: Array<number | null> }> {
  const samples: Sample[] = [];
  const writeMs: Array<number | null> = defs.map(() => null);
  const t0 = performance.now();
  const take = async (phase: number): Promise<Sample> => {
    const st = await readStats(mnt);
    const r = pool.totals();
    const s: Sample = {
      tMs: performance.now() - t0, phase, budgetBytes: st.budgetBytes, residentBytes: st.residentBytes,
      level: Math.max(0, LEVEL_NAMES.indexOf(st.pressureLevel as (typeof LEVEL_NAMES)[number])),
      pageRequests: st.pageRequests, suppliedPages: st.suppliedPages, evictedPages: st.evictedPages, readaheadPages: st.readaheadPages,
      rssBytes: rssBytes(daemon.pid), reads: r.reads, mismatches: r.mismatches, errors: r.errors,
    };
    samples.push(s);
    return s;
  };
  await take(0);
  for (let i = 0; i < defs.length; i++) {
    const d = defs[i];
    if (i > 0 && d.budgetBytes !== defs[i - 1].budgetBytes) {
      const w0 = performance.now();
      await writeBudget(mnt, d.budgetBytes);
      writeMs[i] = performance.now() - w0;
      // At once: the picture then steps where the write did, and right after a shrink is where
      // resident bytes over the new budget would show.
      await take(i);
    }
    const start = performance.now();
    for (let k = 1; ; k++) {
      await sleep(Math.max(0, start + k * SAMPLE_MS - performance.now()));
      const s = await take(i);
      const elapsed = performance.now() - start;
      progress(`${d.name} (budget ${fmtBytes(d.budgetBytes)}): ${(elapsed / 1000).toFixed(1)} s, resident ${fmtBytes(s.residentBytes)}, ${s.reads.toLocaleString('en-US')} reads`);
      const done = d.warmup ? s.residentBytes >= plan.warmupFill * d.budgetBytes || elapsed >= plan.warmupMaxMs : elapsed >= plan.stepMs;
      if (done) break;
    }
  }
  return { samples, writeMs };
}

function summarize(samples: Sample[], defs: PhaseDef[], writeMs: Array<number | null>, ws: WorkingSet): StepSummary[] {
  return defs.map((d, i) => {
    const own = samples.filter((s) => s.phase === i);
    // The step runs from the previous step's last sample (just before the budget write) to its own last.
    const first = samples[samples.indexOf(own[0]) - 1] ?? own[0];
    const last = own[own.length - 1];
    const midT = (first.tMs + last.tMs) / 2;
    const mid = [first, ...own].reduce((a, b) => (Math.abs(b.tMs - midT) < Math.abs(a.tMs - midT) ? b : a));
    const seconds = (last.tMs - first.tMs) / 1000;
    const hit = (a: Sample, b: Sample): number => 1 - (b.suppliedPages - a.suppliedPages) / (b.reads - a.reads);
    const rss = own.map((s) => s.rssBytes).filter((v): v is number => v !== null);
    // With a budget write, own[0] is the sample taken the moment the write returned.
    const wrote = writeMs[i] !== null;
    const grew = wrote && d.budgetBytes > defs[i - 1].budgetBytes;
    const refilled = grew ? own.find((s) => s.residentBytes >= REFILL_SHARE * d.budgetBytes) : undefined;
    return {
      name: d.name,
      budgetBytes: d.budgetBytes,
      seconds,
      reads: last.reads - first.reads,
      hitRate: hit(first, last),
      hitRateLate: hit(mid, last),
      residentShare: own.reduce((a, s) => a + s.residentBytes, 0) / own.length / ws.totalBytes,
      requestsPerS: (last.pageRequests - first.pageRequests) / seconds,
      evictionsPerS: (last.evictedPages - first.evictedPages) / seconds,
      readaheadPages: last.readaheadPages - first.readaheadPages,
      bytesPerS: ((last.reads - first.reads) * PAGE_BYTES) / seconds,
      maxResidentBytes: Math.max(...own.map((s) => s.residentBytes)),
      overBudget: own.filter((s) => s.residentBytes > s.budgetBytes).length,
      budgetNotApplied: own.filter((s) => s.budgetBytes !== d.budgetBytes).length,
      levels: LEVEL_NAMES.filter((_n, l) => own.some((s) => s.level === l)),
      rssMaxBytes: rss.length > 0 ? Math.max(...rss) : null,
      rssEndBytes: last.rssBytes,
      budgetWriteMs: writeMs[i],
      evictedAtWritePages: wrote ? own[0].evictedPages - first.evictedPages : null,
      refillS: refilled === undefined ? null : (refilled.tMs - first.tMs) / 1000,
      mismatches: last.mismatches - first.mismatches,
      errors: last.errors - first.errors,
      samples: own.length,
    };
  });
}

const pct = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : 'n/a');
const mb = (b: number | null): string => (b === null ? 'n/a' : fmtBytes(b));
const refillText = `${Math.round(REFILL_SHARE * 100)}% full`;

function tables(steps: StepSummary[], ws: WorkingSet): Table[] {
  return [
    {
      title: `Per step: ${READERS} readers, random 4 KiB reads over a ${fmtBytes(ws.totalBytes)} working set`,
      columns: ['step', 'budget', 'time', 'throughput', 'reads/s', 'hit rate', 'hit rate, 2nd half', 'resident / working set', 'page requests/s', 'evictions/s'],
      rows: steps.map((s) => [s.name, fmtBytes(s.budgetBytes), `${s.seconds.toFixed(1)} s`, fmtRate(s.bytesPerS), fmtOps(s.reads / s.seconds),
        pct(s.hitRate), pct(s.hitRateLate), pct(s.residentShare), fmtOps(s.requestsPerS), fmtOps(s.evictionsPerS)]),
      notes: ['hit rate = 1 − supplied pages / pages read (every read is one aligned page; a supplied page is one a read found missing); ' +
        `readahead pages supplied: ${steps.map((s) => s.readaheadPages).join(' / ')}`,
      'uniform random reads should hit at the resident share of the working set; "2nd half": after the cache has settled at the new budget',
      'a step runs from the sample before its budget write to its last sample, so the write (and the shrink it does) counts in the step'],
    },
    {
      title: 'Per step: memory and correctness',
      columns: ['step', 'budget', 'max resident', 'samples over budget', 'pressure levels', 'daemon RSS max', 'RSS at end', 'budget write',
        'evicted by it', `${refillText} after`, 'bad pages', 'read errors'],
      rows: steps.map((s) => [s.name, fmtBytes(s.budgetBytes), `${fmtBytes(s.maxResidentBytes)} (${pct(s.maxResidentBytes / s.budgetBytes)})`,
        `${s.overBudget} of ${s.samples}`, s.levels.join(', '), mb(s.rssMaxBytes), mb(s.rssEndBytes),
        s.budgetWriteMs === null ? '–' : `${s.budgetWriteMs.toFixed(0)} ms`, s.evictedAtWritePages === null ? '–' : fmtBytes(s.evictedAtWritePages * PAGE_BYTES),
        s.refillS === null ? '–' : `${s.refillS.toFixed(1)} s`, String(s.mismatches), String(s.errors)]),
      notes: ['resident and budget come from the same .pagerfs/stats snapshot; RSS is the daemon\'s VmRSS (/proc/PID/status) at each sample',
        '"evicted by it": pages evicted between the samples just before and just after the budget write (a shrink reclaims before the write returns)',
        'bad pages: reads whose 4 KiB differed from the page the data set has at that file and offset'],
    },
  ];
}

function chart(samples: Sample[], steps: StepSummary[], defs: PhaseDef[], ws: WorkingSet): string {
  const points: ChartPoint[] = samples.map((s, i) => {
    const prev = samples[i - 1] ?? s;
    const dt = (s.tMs - prev.tMs) / 1000;
    // The sample right after a budget write ends an interval of a few ms: a rate over it is noise
    // (a shrink's bulk eviction would read as a million pages/s), so it gets no rate; the phase
    // note says what the write did.
    const rated = dt * 1000 >= SAMPLE_MS / 2;
    return {
      tS: s.tMs / 1000, residentBytes: s.residentBytes, budgetBytes: s.budgetBytes, rssBytes: s.rssBytes, level: s.level,
      requestsPerS: rated ? (s.pageRequests - prev.pageRequests) / dt : null,
      evictionsPerS: rated ? (s.evictedPages - prev.evictedPages) / dt : null,
    };
  });
  const phaseList: ChartPhase[] = defs.map((d, i) => {
    const own = samples.filter((s) => s.phase === i);
    const startS = (samples[samples.indexOf(own[0]) - 1] ?? own[0]).tMs / 1000;
    const s = steps[i];
    return {
      startS, endS: own[own.length - 1].tMs / 1000, muted: d.warmup,
      label: d.warmup ? 'warm-up' : `budget ${fmtBytes(d.budgetBytes)}`,
      detail: d.warmup ? 'not in the tables' : `hit ${pct(s.hitRate)} · ${fmtOps(s.requestsPerS).replace('/s', '')} req/s · ${fmtRate(s.bytesPerS)}`,
      note: s.budgetWriteMs === null ? []
        : s.refillS === null && s.evictedAtWritePages !== null && s.evictedAtWritePages > 0
          ? [`shrink: ${fmtBytes(s.evictedAtWritePages * PAGE_BYTES)} evicted`, `in the write (${s.budgetWriteMs.toFixed(0)} ms)`]
          : [`grow: write ${s.budgetWriteMs.toFixed(0)} ms`, s.refillS === null ? `never ${refillText}` : `${refillText} after ${s.refillS.toFixed(1)} s`],
    };
  });
  const over = steps.reduce((a, s) => a + s.overBudget, 0);
  // A flat level band looks like a broken chart unless it says why.
  const flat = samples.every((s) => s.level === 0) ? ' · level NORMAL throughout: every resident page is clean, so all of it is reclaimable' : '';
  return pressureSvg({
    title: `pagerfs under a changing budget: ${steps.slice(1).map((s) => fmtBytes(s.budgetBytes)).join(' → ')}`,
    subtitle: `${READERS} readers, random 4 KiB reads over ${FILE_COUNT} files, ${fmtBytes(ws.totalBytes)} in all · sampled every ${SAMPLE_MS} ms · ` +
      `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · ${os.cpus().length} CPUs · node ${process.version}`,
    points,
    phases: phaseList,
    footnote: `hit = 1 − supplied pages / pages read · resident ≤ budget at ${samples.length - over} of ${samples.length} samples${flat}`,
  });
}

function zeroGoal(name: string, count: number): GoalResult {
  return { name, goal: '= 0', measured: count, display: String(count), met: count === 0, source: 'pressure issue' };
}

/** Mounts, loads, steps the budget; always stops the readers and the daemon. */
async function measure(reaper: Reaper, tmp: string, plan: Plan, progress: (m: string) => void):
Promise<{ ws: WorkingSet; samples: Sample[]; writeMs: Array<number | null>; problems: string[]; peakRssBytes: number | null }> {
  const largest = Math.max(...plan.stepBudgetsBytes);
  progress(`building the working set: ${FILE_COUNT} files, ${fmtBytes(2 * largest)}`);
  const ws = buildWorkingSet(tmp, FILE_COUNT, (2 * largest) / FILE_COUNT);
  const mnt = path.join(tmp, 'mnt');
  fs.mkdirSync(mnt);
  progress('mounting pagerfs');
  const daemon = await reaper.startDaemon(pagerfsSpec({
    name: 'pagerfs (pressure)', repoRoot: repoRoot(), backingDir: ws.dir, mountpoint: mnt, budgetBytes: plan.stepBudgetsBytes[0], logFile: path.join(tmp, 'pagerfs.log'),
  }));
  const pool = new ReaderPool(READERS);
  let driven: Awaited<ReturnType<typeof drive>>;
  let peakRssBytes: number | null;
  try {
    pool.start(ws.files.map((f) => path.join(mnt, path.relative(ws.dir, f))), ws.fileBytes);
    driven = await drive(mnt, daemon, pool, phases(plan), plan, progress);
  } finally {
    await pool.stop();
    peakRssBytes = await reaper.stopDaemon(daemon);
  }
  return { ws, ...driven, problems: pool.problems, peakRssBytes };
}

export const pressureSuite: Suite = {
  name: 'pressure',
  title: 'pressure: 4 readers while the budget steps 64 → 16 → 64 MiB',
  summary: 'random reads of a working set twice the budget while the budget shrinks and grows; per-step table and an SVG (flag: --quick)',
  async run(ctx) {
    const plan = ctx.flags?.has('--quick') === true ? QUICK : FULL;
    const skip = cannotMount();
    if (skip !== null) return { about: [skip], tables: [], goals: [], raw: {} };
    const { tmp, reaper, close } = openSandbox('pagerfs-bench-pressure-', (m) => ctx.progress(m));
    let run: Awaited<ReturnType<typeof measure>>;
    try {
      run = await measure(reaper, tmp, plan, (m) => ctx.progress(m));
    } finally {
      await close();
    }
    const { ws, samples, writeMs, problems } = run;
    const defs = phases(plan);
    const steps = summarize(samples, defs, writeMs, ws);
    const measured = steps.filter((_s, i) => !defs[i].warmup);

    const dir = path.join(repoRoot(), 'bench-results');
    fs.mkdirSync(dir, { recursive: true });
    const svg = chart(samples, steps, defs, ws);
    const svgFile = path.join(dir, `pressure-${new Date().toISOString().replace(/[:.]/g, '-')}.svg`);
    fs.writeFileSync(svgFile, svg);
    fs.writeFileSync(path.join(dir, 'pressure-latest.svg'), svg);

    const total = (f: (s: StepSummary) => number): number => steps.reduce((a, s) => a + f(s), 0);
    const notApplied = total((s) => s.budgetNotApplied);
    const rssAt = measured.map((s) => `${mb(s.rssEndBytes)} at the end of ${s.name} (${fmtBytes(s.budgetBytes)})`).join(', ');
    return {
      about: [
        `${plan.name === 'quick' ? 'Quick run: ' : ''}${fmtBytes(ws.totalBytes)} in ${FILE_COUNT} files (every page checkable), mounted by a pagerfs daemon (direct_io); ` +
          `${READERS} reader threads do random aligned 4 KiB reads and check every page; after a warm-up that fills ${Math.round(plan.warmupFill * 100)}% of the first budget ` +
          `(at most ${plan.warmupMaxMs / 1000} s), the budget steps ${plan.stepBudgetsBytes.map(fmtBytes).join(' → ')} through .pagerfs/budget, ` +
          `${plan.stepMs / 1000} s each; .pagerfs/stats, VmRSS and the readers' counters sampled every ${SAMPLE_MS} ms (${samples.length} samples).`,
        `Daemon RSS: ${rssAt}; peak (VmHWM) ${mb(run.peakRssBytes)}.`,
        `Picture: ${path.relative(process.cwd(), svgFile)} (and bench-results/pressure-latest.svg).`,
        ...(notApplied > 0 ? [`${notApplied} samples showed a budget other than the one the step wrote`] : []),
        ...problems,
      ],
      tables: tables(steps, ws),
      goals: [
        zeroGoal('samples with resident bytes over the budget in force', total((s) => s.overBudget)),
        zeroGoal('pages read with the wrong bytes', total((s) => s.mismatches)),
        zeroGoal('failed reads', total((s) => s.errors)),
      ],
      raw: { plan, readers: READERS, sampleMs: SAMPLE_MS, workingSetBytes: ws.totalBytes, steps, samples, problems, peakRssBytes: run.peakRssBytes },
    };
  },
};
