/**
 * Statistics and formatting for the benchmarks: medians, paired ratios, a seeded PRNG, and the
 * number / table formatting shared by the console and Markdown reports. No I/O here.
 */

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** The q-quantile (0..1) by nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** Relative spread of samples: (max - min) / median, for the "±" column. */
export function spread(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const m = median(values);
  return m === 0 ? 0 : (Math.max(...values) - Math.min(...values)) / Math.abs(m);
}

/** Median of per-round ratios a[i] / b[i] (samples taken side by side in the same round). */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  const r: number[] = [];
  for (let i = 0; i < n; i++) r.push(a[i] / b[i]);
  return median(r);
}

/** Nanoseconds now (monotonic). */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** Nanoseconds since `start`, as a number. */
export function elapsedNs(start: bigint): number {
  return Number(process.hrtime.bigint() - start);
}

/** Seeded PRNG (mulberry32): deterministic across runs and machines. */
export class Rng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** Fills a buffer with pseudo-random bytes. */
  fill(buf: Uint8Array): void {
    const words = Math.floor(buf.length / 4);
    const view = new Uint32Array(buf.buffer, buf.byteOffset, words);
    if (buf.byteOffset % 4 === 0) {
      for (let i = 0; i < words; i++) view[i] = this.u32();
    } else {
      for (let i = 0; i < words * 4; i++) buf[i] = this.u32() & 0xff;
    }
    for (let i = words * 4; i < buf.length; i++) buf[i] = this.u32() & 0xff;
  }

  /** A seeded permutation of [0, n) (Fisher–Yates). */
  permutation(n: number): Uint32Array {
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = out[i];
      out[i] = out[j];
      out[j] = t;
    }
    return out;
  }
}

// ------------------------------------------------------------------------------------------------
// Formatting.

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** 131072 -> "128 KiB". */
export function fmtBytes(bytes: number): string {
  if (Math.abs(bytes) >= GiB) return `${trim(bytes / GiB)} GiB`;
  if (Math.abs(bytes) >= MiB) return `${trim(bytes / MiB)} MiB`;
  if (Math.abs(bytes) >= KiB) return `${trim(bytes / KiB)} KiB`;
  return `${trim(bytes)} B`;
}

function trim(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2);
}

/** Bytes per second -> "1.23 GB/s" (decimal units, as throughput usually is). */
export function fmtRate(bytesPerSec: number): string {
  if (!Number.isFinite(bytesPerSec)) return 'n/a';
  if (bytesPerSec >= 1e9) return `${(bytesPerSec / 1e9).toFixed(2)} GB/s`;
  if (bytesPerSec >= 1e6) return `${(bytesPerSec / 1e6).toFixed(1)} MB/s`;
  return `${(bytesPerSec / 1e3).toFixed(1)} kB/s`;
}

/** Operations per second -> "123 k/s". */
export function fmtOps(perSec: number): string {
  if (!Number.isFinite(perSec)) return 'n/a';
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(2)} M/s`;
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)} k/s`;
  return `${perSec.toFixed(0)} /s`;
}

/** Nanoseconds -> "1.23 µs" / "456 ns" / "7.8 ms". */
export function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return 'n/a';
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`;
  return `${ns.toFixed(0)} ns`;
}

/** A ratio -> "0.87×". */
export function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return 'n/a';
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

/** A relative spread -> "±3%". */
export function fmtSpread(s: number): string {
  return `±${(s * 50).toFixed(0)}%`;
}

export function fmtNum(n: number, digits = 2): string {
  if (!Number.isFinite(n)) return 'n/a';
  return Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(digits);
}

// ------------------------------------------------------------------------------------------------
// Tables.

export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  /** Lines printed under the table. */
  notes?: string[];
}

const isNumericCell = (s: string): boolean => /^[-+±≥≤]?\s?[\d.,]+/.test(s) || s === 'n/a';

/** Plain-text table for the terminal: columns padded, numbers right-aligned. */
export function renderText(t: Table): string {
  const widths = t.columns.map((c, i) => Math.max(c.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[], header: boolean): string => cells
    .map((c, i) => (i > 0 && !header && isNumericCell(c) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
    .join('  ')
    .trimEnd();
  const out = [t.title, `  ${line(t.columns, true)}`, `  ${widths.map((w) => '-'.repeat(w)).join('  ')}`];
  for (const r of t.rows) out.push(`  ${line(r, false)}`);
  for (const n of t.notes ?? []) out.push(`  ${n}`);
  return out.join('\n');
}

/** GitHub-flavoured Markdown table. */
export function renderMarkdown(t: Table): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const out = [`### ${t.title}`, '', `| ${t.columns.map(esc).join(' | ')} |`,
    `| ${t.columns.map((_c, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`];
  for (const r of t.rows) out.push(`| ${r.map(esc).join(' | ')} |`);
  if ((t.notes ?? []).length > 0) {
    out.push('');
    for (const n of t.notes ?? []) out.push(`- ${n}`);
  }
  return out.join('\n');
}
