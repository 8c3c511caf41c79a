/**
 * Suite `pagers` (issue #9): cold sequential reads through each pager module, side by side in one
 * run: the directory pager (backing files), the verified pager (the same directory, sealed: every
 * 4 KiB page checked against its SHA-256 hash tree before it is supplied), the synthetic pager (the
 * same bytes computed on demand, no disk), and direct reads of the backing files (the limit).
 *
 * Data set: `files` files of `fileBytes` each, written by the bench into a temporary directory with
 * syntheticFill (so all three pagers serve the very same bytes: backing file i is synthetic file i
 * of SEED), flushed with sync, then sealed with `pagerfs seal` (timed, reported). The backing files
 * and their hash trees stay in the OS page cache: "cold" means cold for the pager, and the suite
 * measures the pagers' work, not the disk.
 *
 * Every sample mounts pagerfs afresh (a child daemon, mounting untimed) with a budget smaller than
 * the data set (so reading evicts), reads every file once with `dd bs=1M` (one child process per
 * file, timed spawn to exit, summed), reads .pagerfs/stats and the daemon's CPU time from /proc,
 * and unmounts. Direct: the same dd of the backing files. Rounds: one warm-up round (its samples
 * also check the bytes, untimed: sha256sum of every file through the mount against the backing
 * files for directory and verified, syntheticMismatch for synthetic), then `runs` measured rounds,
 * pager order rotated per round; medians, ratios as medians of per-round ratios.
 *
 * Goal (issue #9): verified / directory ≥ 0.7× (verification costs at most 30% of the directory
 * pager's cold throughput). Flags: --quick (a smaller data set), --profile (every daemon under
 * `node --cpu-prof`; the JS thread's time during the timed reads is summarized per pager).
 */
import { hash } from 'node:crypto';
import fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { readStats } from '../../fs/client.js';
import type { StatsDocument } from '../../fs/control.js';
import { syntheticFill, syntheticMismatch } from '../../pager/synthetic-content.js';
import { seqRead, type Timed } from './fs-drivers.js';
import { cannotMount, openSandbox, procCounters, type Reaper } from './fs-procs.js';
import { pagerfsDaemon, type DaemonEnv } from './fs.js';
import {
  goalAtLeast, medianExtra, rateRatio, repoRoot, rounds, type GoalResult, type Measured, type Sample, type Suite, type SuiteContext, type Variant,
} from './harness.js';
import { profilesOf, summarizeProfiles, type Window } from './profile.js';
import { elapsedNs, fmtBytes, fmtNum, fmtRate, fmtRatio, fmtSpread, median, nowNs, type Table } from './stats.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const PAGE = 4 * KiB;
/** Content seed of the synthetic pager, and of the backing files (the same bytes). */
const SEED = 9;
/** The goal: verified / directory at least this (issue #9: verification costs at most 30%). */
const GOAL = 0.7;

interface Scale {
  name: 'full' | 'quick';
  files: number;
  fileBytes: number;
  budgetBytes: number;
  warmup: number;
  runs: number;
}

const FULL: Scale = { name: 'full', files: 4, fileBytes: 128 * MiB, budgetBytes: 64 * MiB, warmup: 1, runs: 5 };
const QUICK: Scale = { name: 'quick', files: 4, fileBytes: 32 * MiB, budgetBytes: 64 * MiB, warmup: 1, runs: 3 };

type PagerId = 'directory' | 'verified' | 'synthetic' | 'direct';

interface Env extends DaemonEnv {
  ctx: SuiteContext;
  reaper: Reaper;
  scale: Scale;
  names: string[];
  /** sha256 (hex) of each backing file, by name. */
  backingHashes: Map<string, string>;
  /** The timed reads of the measured rounds, per pager (monotonic µs), to cut the CPU profiles. */
  windows: Map<PagerId, Window[]>;
  notes: string[];
}

interface PagerDef {
  id: PagerId;
  label: string;
  /** What goes before the mountpoint on the `mount` command line; null: no mount (direct reads). */
  source: string[] | null;
}

function pagerDefs(env: Env): PagerDef[] {
  const { scale } = env;
  return [
    { id: 'directory', label: 'directory pager', source: [env.data.dir] },
    { id: 'verified', label: 'verified pager', source: ['--pager', 'verified', env.data.dir] },
    { id: 'synthetic', label: 'synthetic pager', source: ['--pager', 'synthetic', '--pager-option', `files=${scale.files}`,
      '--pager-option', `size=${scale.fileBytes}`, '--pager-option', `seed=${SEED}`] },
    { id: 'direct', label: 'direct read (limit)', source: null },
  ];
}

/** Backing file i: synthetic file i of SEED, so every pager serves the same bytes. Flushed to disk. */
function writeDataSet(env: Env): void {
  const chunk = Buffer.alloc(16 * MiB);
  fs.mkdirSync(env.data.dir, { recursive: true });
  env.names.forEach((name, i) => {
    env.ctx.progress(`writing the data set: ${name} (${i + 1}/${env.names.length}, ${fmtBytes(env.scale.fileBytes)})`);
    const fd = fs.openSync(path.join(env.data.dir, name), 'w');
    try {
      for (let off = 0; off < env.scale.fileBytes; off += chunk.length) {
        const n = Math.min(chunk.length, env.scale.fileBytes - off);
        syntheticFill(SEED, i, off, chunk, 0, n);
        fs.writeSync(fd, chunk, 0, n, off);
      }
    } finally {
      fs.closeSync(fd);
    }
  });
  env.ctx.progress('writing the data set: sync (flushing it to disk)');
  spawnSync('sync', [], { stdio: 'ignore' });
}

async function sha256Of(env: Env, root: string): Promise<Map<string, string>> {
  const r = await env.reaper.runDriver('sha256sum', env.names, { cwd: root });
  return new Map(r.stdout.trim().split('\n').map((l) => {
    const [sum, name] = l.split(/\s+\*?/);
    return [name, sum];
  }));
}

/** Every file once with dd bs=1M, one child process per file; the time is the sum. */
async function readAll(env: Env, root: string): Promise<Timed> {
  let ns = 0;
  let units = 0;
  for (const name of env.names) {
    const t = await seqRead(env.reaper, path.join(root, name), MiB, env.scale.fileBytes);
    ns += t.ns;
    units += t.units;
  }
  return { ns, units };
}

/** Untimed: the bytes served under `root` are the expected ones; a failure is a note. */
async function checkBytes(env: Env, p: PagerDef, root: string): Promise<void> {
  env.ctx.progress(`${p.label}: checking the bytes it serves`);
  const bad: string[] = [];
  if (p.id === 'synthetic') {
    const buf = Buffer.alloc(MiB);
    for (const [i, name] of env.names.entries()) {
      const fh = await fsp.open(path.join(root, name), 'r');
      try {
        for (let off = 0; off < env.scale.fileBytes;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, off);
          if (bytesRead === 0) {
            bad.push(`${name}: ends at ${off}`);
            break;
          }
          const at = syntheticMismatch(SEED, i, off, buf.subarray(0, bytesRead));
          if (at >= 0) {
            bad.push(`${name}: first wrong byte at ${off + at}`);
            break;
          }
          off += bytesRead;
        }
      } finally {
        await fh.close();
      }
    }
  } else {
    const sums = await sha256Of(env, root);
    for (const name of env.names) if (sums.get(name) !== env.backingHashes.get(name)) bad.push(`${name}: sha256 differs from the backing file`);
  }
  env.notes.push(bad.length === 0
    ? `${p.label}: bytes checked (${p.id === 'synthetic' ? 'syntheticMismatch' : 'sha256 against the backing files'}): all ${env.names.length} files match`
    : `${p.label}: CONTENT CHECK FAILED: ${bad.join('; ')}`);
}

const STAT_KEYS = ['suppliedPages', 'verifiedPages', 'integrityFailures', 'evictedPages', 'readRequests', 'readaheadPages', 'backingReadBytes'] as const;

function statDeltas(s0: StatsDocument, s1: StatsDocument): Record<string, number> {
  return Object.fromEntries(STAT_KEYS.map((k) => [k, s1[k] - s0[k]]));
}

/** One sample of pager `p`: mount afresh, read every file (timed), counters, (round 0: check bytes), unmount. */
async function sample(env: Env, p: PagerDef, round: number): Promise<Sample> {
  const measured = round >= env.scale.warmup;
  const timedRead = async (root: string): Promise<Timed> => {
    const w0 = Number(nowNs() / 1000n);
    const t = await readAll(env, root);
    if (measured) env.windows.set(p.id, [...(env.windows.get(p.id) ?? []), [w0, Number(nowNs() / 1000n)]]);
    return t;
  };
  if (p.source === null) {
    const t = await timedRead(env.data.dir);
    return { ns: t.ns, units: t.units };
  }
  const mnt = path.join(env.tmp, 'mnt', p.id);
  const d = await env.reaper.startDaemon(pagerfsDaemon(env, p.id, mnt, env.scale.budgetBytes, p.source));
  let extra: Record<string, number> = {};
  let t: Timed;
  try {
    const s0 = await readStats(mnt);
    const cpu0 = procCounters(d.pid);
    t = await timedRead(mnt);
    const cpu1 = procCounters(d.pid);
    const s1 = await readStats(mnt);
    const cpuMs = cpu1.user + cpu1.sys - cpu0.user - cpu0.sys;
    extra = { ...statDeltas(s0, s1), cpuMsPerMiB: (cpuMs * MiB) / t.units, sysShare: (cpu1.sys - cpu0.sys) / cpuMs };
    if (round === 0) await checkBytes(env, p, mnt);
  } finally {
    const rss = await env.reaper.stopDaemon(d);
    if (rss !== null) extra.peakRss = rss;
  }
  return { ns: t.ns, units: t.units, extra };
}

/** SHA-256 of 4 KiB pages on this thread (crypto.hash, as pager/verity.ts does): the ceiling of verifying on one thread. */
function hashRate(): number {
  const buf = Buffer.alloc(16 * MiB, 0xa5);
  const rates: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = nowNs();
    for (let off = 0; off < buf.length; off += PAGE) hash('sha256', buf.subarray(off, off + PAGE), 'buffer');
    rates.push((buf.length * 1e9) / elapsedNs(t0));
  }
  return median(rates);
}

function profileTable(env: Env, defs: PagerDef[], tables: Table[], raw: Record<string, unknown>): void {
  if (env.profileDir === null || !fs.existsSync(env.profileDir)) return;
  const rows: string[][] = [];
  const summaries: Record<string, unknown> = {};
  for (const p of defs) {
    const files = profilesOf(path.join(env.profileDir, p.id));
    const windows = env.windows.get(p.id) ?? [];
    if (files.length === 0 || windows.length === 0) continue;
    const sum = summarizeProfiles(files, env.repoRoot, 8, windows);
    summaries[p.id] = sum;
    const wallMs = windows.reduce((acc, [a, b]) => acc + (b - a) / 1000, 0);
    rows.push([p.label, `${((100 * sum.busyMs) / wallMs).toFixed(0)}%`,
      sum.byArea.slice(0, 5).map((e) => `${e.name} ${(e.share * 100).toFixed(0)}%`).join('; '),
      sum.top.slice(0, 6).map((e) => `${e.name} ${(e.share * 100).toFixed(0)}%`).join('; ')]);
  }
  tables.push({
    title: 'Where each daemon\'s JS thread spends the timed reads (node --cpu-prof, self time, share of the busy samples)',
    columns: ['pager', 'JS busy / wall', 'by area', 'top functions'],
    rows,
    notes: ['libfuse\'s worker threads and libuv\'s thread pool (readv of the backing files) are native and not in these profiles',
      `profiles: ${path.relative(process.cwd(), env.profileDir)}`],
  });
  raw.profiles = summaries;
}

export const pagersSuite: Suite = {
  name: 'pagers',
  title: 'pagers: cold sequential reads through the directory, verified and synthetic pagers',
  summary: 'cold sequential read through the directory, verified (hash-checked) and synthetic pagers vs direct reads (flags: --quick, --profile)',
  async run(ctx) {
    const tables: Table[] = [];
    const goals: GoalResult[] = [];
    const raw: Record<string, unknown> = {};
    const skip = cannotMount();
    if (skip !== null) return { about: [skip], tables, goals, raw };
    const scale = ctx.flags?.has('--quick') === true ? QUICK : FULL;
    const root = repoRoot();
    const cli = path.join(root, 'dist', 'fs', 'cli.js');
    if (!fs.existsSync(cli)) throw new Error('dist/fs/cli.js missing: build first (bash scripts/setup.sh)');
    const { tmp, reaper, close } = openSandbox('pagerfs-bench-pagers-', (msg) => ctx.progress(msg));
    reaper.driverTimeoutMs = 300_000;
    const started = new Date().toISOString().replace(/[:.]/g, '-');
    const env: Env = {
      ctx, reaper, scale, tmp, repoRoot: root, data: { dir: path.join(tmp, 'backing') },
      profileDir: ctx.flags?.has('--profile') === true ? path.join(root, 'bench-results', `profiles-${started}-pagers`) : null,
      names: Array.from({ length: scale.files }, (_x, i) => `synthetic-${i}.bin`),
      backingHashes: new Map(), windows: new Map(), notes: [],
    };
    const defs = pagerDefs(env);
    let measured: Measured[] = [];
    let sealMs = NaN;
    try {
      for (const d of ['logs', ...defs.map((p) => path.join('mnt', p.id))]) fs.mkdirSync(path.join(tmp, d), { recursive: true });
      writeDataSet(env);
      ctx.progress('sealing the data set (pagerfs seal)');
      const seal = await reaper.runDriver(process.execPath, [cli, 'seal', env.data.dir]);
      sealMs = seal.ns / 1e6;
      ctx.progress('sha256 of the backing files');
      env.backingHashes = await sha256Of(env, env.data.dir);
      const variants: Variant[] = defs.map((p) => ({ name: p.id, sample: (round) => sample(env, p, round) }));
      measured = await rounds(ctx, variants, { warmup: scale.warmup, runs: scale.runs, label: 'cold sequential reads' });
    } finally {
      await close();
    }
    ctx.progress('SHA-256 of 4 KiB pages on one thread (reference)');
    const hashBytesPerSec = hashRate();

    const by = (id: PagerId): Measured => measured[defs.findIndex((p) => p.id === id)];
    const dir = by('directory');
    const direct = by('direct');
    const totalBytes = scale.files * scale.fileBytes;
    const pagesRead = totalBytes / PAGE;
    const mounted = defs.filter((p) => p.source !== null);
    const cell = (m: Measured, key: string, fmt: (x: number) => string): string => {
      const v = medianExtra(m, key);
      return Number.isFinite(v) ? fmt(v) : 'n/a';
    };
    tables.push({
      title: `Cold sequential read of ${scale.files} × ${fmtBytes(scale.fileBytes)} (dd bs=1M, a fresh mount per sample, budget ${fmtBytes(scale.budgetBytes)}), median of ${scale.runs} rounds`,
      columns: ['', 'throughput', 'spread', '/ directory', '/ direct read', 'daemon CPU / MiB', 'sys share', 'peak RSS'],
      rows: defs.map((p) => {
        const m = by(p.id);
        return [p.label, fmtRate(m.medianRate), fmtSpread(m.spread), fmtRatio(rateRatio(m, dir)), fmtRatio(rateRatio(m, direct)),
          p.source === null ? '–' : cell(m, 'cpuMsPerMiB', (x) => `${x.toFixed(2)} ms`),
          p.source === null ? '–' : cell(m, 'sysShare', (x) => `${(x * 100).toFixed(0)}%`),
          p.source === null ? '–' : cell(m, 'peakRss', fmtBytes)];
      }),
      notes: ['ratios: medians of the per-round ratios; daemon CPU: user + system time of every thread of the daemon during the timed reads (/proc)',
        `SHA-256 of 4 KiB pages on one thread here (crypto.hash, reference): ${fmtRate(hashBytesPerSec)} ` +
          `(${((PAGE * 1e6) / hashBytesPerSec).toFixed(2)} µs a page, ${((MiB * 1e3) / hashBytesPerSec).toFixed(2)} ms a MiB)`],
    });
    const ver = by('verified');
    const verifiedAll = ver.extras.map((e) => e.verifiedPages);
    const failuresAll = ver.extras.map((e) => e.integrityFailures);
    const allEqual = (xs: number[], to: (i: number) => number): string => (xs.every((x, i) => x === to(i)) ? 'equal in every round' : 'NOT equal in every round');
    tables.push({
      title: `Pager counters per cold read of ${fmtBytes(totalBytes)} = ${fmtNum(pagesRead)} pages (.pagerfs/stats deltas over the timed read, medians)`,
      columns: ['', 'supplied pages', 'verifiedPages', 'integrityFailures', 'evicted pages', 'READ requests', 'readahead pages', 'backing bytes read'],
      rows: mounted.map((p) => {
        const m = by(p.id);
        const n = (key: string): string => cell(m, key, (x) => fmtNum(x));
        return [p.label, n('suppliedPages'), n('verifiedPages'), n('integrityFailures'), n('evictedPages'), n('readRequests'), n('readaheadPages'),
          cell(m, 'backingReadBytes', fmtBytes)];
      }),
      notes: [`verified pager: verifiedPages per round ${verifiedAll.map((v) => fmtNum(v)).join(', ')}; against the ${fmtNum(pagesRead)} pages read: ` +
        `${allEqual(verifiedAll, () => pagesRead)}; against its supplied pages: ${allEqual(verifiedAll, (i) => ver.extras[i].suppliedPages)}; ` +
        `integrityFailures per round ${failuresAll.join(', ')}: ${failuresAll.every((f) => f === 0) ? '0 in every round' : 'NOT 0'}`,
      'supplied pages above the pages read: pages supplied twice (backing bytes read shows the same), readahead pages evicted before their reader came'],
    });
    profileTable(env, defs, tables, raw);

    goals.push(goalAtLeast('cold sequential 1 MiB: verified / directory', rateRatio(ver, dir), GOAL, 'issue #9'));
    raw.scale = scale;
    raw.sealMs = sealMs;
    raw.sha256PageBytesPerSec = hashBytesPerSec;
    raw.measured = measured;
    raw.notes = env.notes;
    return {
      about: [
        `Data set (${scale.name}): ${scale.files} files of ${fmtBytes(scale.fileBytes)} in a temporary directory, the bytes of synthetic files 0…${scale.files - 1} ` +
          `of seed ${SEED} (so every pager serves the same bytes), kept in the OS page cache (cold means cold for the pager, not the disk); ` +
          `sealed with \`pagerfs seal\` in ${(sealMs / 1000).toFixed(2)} s (${fmtRate((totalBytes * 1e3) / sealMs)}).`,
        `Every sample: a fresh pagerfs daemon (mounting untimed), budget ${fmtBytes(scale.budgetBytes)} (below the data set, so reading evicts), ` +
          'dd bs=1M of every file (one child process per file, timed spawn to exit, summed), .pagerfs/stats and daemon CPU around it, then unmount. ' +
          'Direct: the same dd of the backing files.',
        `Rounds: ${scale.warmup} warm-up (its samples also check the bytes, untimed) + ${scale.runs} measured, pager order rotated per round.`,
        ...(scale.name === 'quick' ? ['--quick: a sample is short enough that a fresh daemon\'s start-up (JIT warm-up) weighs on it; judge the goal by the full run.'] : []),
        ...env.notes,
      ],
      tables, goals, raw,
    };
  },
};
