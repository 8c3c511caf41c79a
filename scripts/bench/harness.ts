/**
 * Shared machinery of the benchmark suites: the result types, progress on stderr, forced GC, the
 * side-by-side round runner (every variant measured once per round, in rotating order, warm-up rounds
 * discarded, medians over the measured rounds), loop calibration, goal checks, and the FUSE layer's
 * read path (readStep first, wait only when a page is missing) that the suites drive.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { VmObject } from '../../src/index.js';
import { elapsedNs, median, nowNs, pairedRatio, spread, type Table } from './stats.js';

export interface GoalResult {
  /** What is measured, e.g. "readStep / Buffer.copy". */
  name: string;
  /** The goal as printed, e.g. "≥ 0.8×". */
  goal: string;
  measured: number;
  /** The measured value as printed. */
  display: string;
  met: boolean;
  /** Where the goal comes from. */
  source?: string;
}

export interface SuiteResult {
  suite: string;
  title: string;
  /** How the suite measures, printed above its tables. */
  about: string[];
  tables: Table[];
  goals: GoalResult[];
  /** Raw numbers (every sample) for the JSON file. */
  raw: Record<string, unknown>;
  durationMs: number;
  /** Load averages when the suite ended. */
  loadavgAfter?: number[];
}

export interface SuiteContext {
  /** Progress line on stderr, prefixed with the suite name. */
  progress(msg: string): void;
  /** Flags from the command line (e.g. `--quick`); suites ignore the ones they do not know. */
  flags?: ReadonlySet<string>;
}

export interface Suite {
  name: string;
  title: string;
  /** One line for the suite list. */
  summary: string;
  run(ctx: SuiteContext): Promise<Omit<SuiteResult, 'suite' | 'title' | 'durationMs'>>;
}

/** The repository root, seen from the built suites (dist/scripts/bench/*.js). */
export function repoRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

// ------------------------------------------------------------------------------------------------
// Progress.

let progressOpenLine = false;

/** Writes a progress line to stderr (overwriting the previous one on a terminal). */
export function progress(suite: string, msg: string): void {
  const text = `[bench ${suite}] ${msg}`;
  if (process.stderr.isTTY) {
    const cols = process.stderr.columns ?? 120;
    process.stderr.write(`\r\x1b[2K${text.slice(0, cols - 1)}`);
    progressOpenLine = true;
  } else {
    process.stderr.write(`${text}\n`);
  }
}

/** Ends an overwritten progress line before ordinary output. */
export function endProgress(): void {
  if (progressOpenLine) process.stderr.write('\r\x1b[2K');
  progressOpenLine = false;
}

// ------------------------------------------------------------------------------------------------
// GC.

let gcFn: (() => void) | null | undefined;

/** Runs a full GC (exposed at run time, so `node script.js` needs no --expose-gc). */
export function forceGc(): void {
  if (gcFn === undefined) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (typeof g === 'function') {
      gcFn = g;
    } else {
      try {
        v8.setFlagsFromString('--expose-gc');
        gcFn = vm.runInNewContext('gc') as () => void;
      } catch {
        gcFn = null;
      }
    }
  }
  gcFn?.();
}

// ------------------------------------------------------------------------------------------------
// Side-by-side rounds.

/** One measured sample: `units` of work (bytes, pages, reads) done in `ns` nanoseconds. */
export interface Sample {
  ns: number;
  units: number;
  /** Extra per-sample numbers (fault counts, …), kept in the JSON. */
  extra?: Record<string, number>;
}

export interface Variant {
  name: string;
  /** Takes one sample: untimed set-up inside is fine, the variant times its own critical section. */
  sample(round: number): Promise<Sample> | Sample;
}

export interface Measured {
  name: string;
  /** Units per second, one per measured round. */
  rates: number[];
  /** Nanoseconds per unit, one per measured round. */
  nsPerUnit: number[];
  medianRate: number;
  medianNsPerUnit: number;
  spread: number;
  extras: Array<Record<string, number>>;
}

export interface RoundsOptions {
  warmup: number;
  runs: number;
  /** Progress label. */
  label: string;
  /** Called between samples (untimed), e.g. to force a GC. */
  between?: () => void;
}

/**
 * Runs `warmup + runs` rounds; each round takes one sample of every variant, in an order rotated
 * each round so no variant always runs first. Warm-up rounds are discarded.
 */
export async function rounds(ctx: SuiteContext, variants: Variant[], opts: RoundsOptions): Promise<Measured[]> {
  const out: Measured[] = variants.map((v) => ({
    name: v.name, rates: [], nsPerUnit: [], medianRate: NaN, medianNsPerUnit: NaN, spread: 0, extras: [],
  }));
  const total = opts.warmup + opts.runs;
  for (let round = 0; round < total; round++) {
    const measured = round >= opts.warmup;
    ctx.progress(`${opts.label}: ${measured ? `run ${round - opts.warmup + 1}/${opts.runs}` : `warm-up ${round + 1}/${opts.warmup}`}`);
    for (let k = 0; k < variants.length; k++) {
      const i = (k + round) % variants.length;
      opts.between?.();
      const s = await variants[i].sample(round);
      if (!measured) continue;
      out[i].rates.push((s.units * 1e9) / s.ns);
      out[i].nsPerUnit.push(s.ns / s.units);
      out[i].extras.push(s.extra ?? {});
    }
  }
  for (const m of out) {
    m.medianRate = median(m.rates);
    m.medianNsPerUnit = median(m.nsPerUnit);
    m.spread = spread(m.rates);
  }
  return out;
}

/** Median of per-round rate ratios a / b (both measured in the same rounds). */
export function rateRatio(a: Measured, b: Measured): number {
  return pairedRatio(a.rates, b.rates);
}

/** Median of an extra field over the measured rounds. */
export function medianExtra(m: Measured, key: string): number {
  return median(m.extras.map((e) => e[key] ?? NaN).filter((x) => Number.isFinite(x)));
}

/**
 * How many iterations of `fn` take about `targetMs` (at least `min`): doubles the count until one
 * call takes at least half the target, then scales by the fastest of three timings at that count
 * (a slow first call — JIT, first touch, a preempted slice — must not shrink the loop). Warms `fn` up.
 */
export async function calibrate(fn: (iters: number) => Promise<void> | void, targetMs: number, min = 1): Promise<number> {
  let iters = min;
  for (;;) {
    const t0 = nowNs();
    await fn(iters);
    const ms = elapsedNs(t0) / 1e6;
    if (ms >= targetMs / 2 || iters >= 1 << 26) break;
    iters *= 2;
  }
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = nowNs();
    await fn(iters);
    best = Math.min(best, elapsedNs(t0) / 1e6);
  }
  return Math.max(min, Math.round((iters * targetMs) / Math.max(best, 1e-3)));
}

// ------------------------------------------------------------------------------------------------
// Goals.

export function goalAtLeast(name: string, measured: number, min: number, source?: string): GoalResult {
  return { name, goal: `≥ ${min}×`, measured, display: `${measured.toFixed(2)}×`, met: measured >= min, source };
}

export function goalAtMost(name: string, measured: number, max: number, source?: string): GoalResult {
  return { name, goal: `≤ ${max}×`, measured, display: `${measured.toFixed(2)}×`, met: measured <= max, source };
}

export function metText(g: GoalResult): string {
  return g.met ? 'met' : 'NOT met';
}

// ------------------------------------------------------------------------------------------------
// The FUSE layer's read path.

/**
 * Reads as fs/filesystem.ts does: readStep first (synchronous when every page is resident), and
 * only when it stops short, wait for the page and continue. Returns the byte count, synchronously
 * when nothing had to wait.
 */
export function fuseRead(vmo: VmObject, buf: Uint8Array, pos: number, n: number, noteRead?: (pos: number, n: number) => void): number | Promise<number> {
  const done = vmo.readStep(buf, 0, pos, n);
  if (done === n) {
    noteRead?.(pos, n);
    return n;
  }
  return fuseReadSlow(vmo, buf, pos, n, done, noteRead);
}

async function fuseReadSlow(vmo: VmObject, buf: Uint8Array, pos: number, n: number, doneSoFar: number, noteRead?: (pos: number, n: number) => void): Promise<number> {
  let done = doneSoFar;
  while (done < n) {
    await vmo.system.waitFor(vmo.takeWait());
    done += vmo.readStep(buf, done, pos + done, n - done);
  }
  noteRead?.(pos, done);
  return done;
}
