/**
 * Suite `fs`: pagerfs as a mounted filesystem, side by side with the systems a user could pick
 * instead, on a data set the bench builds in a temporary directory.
 *
 * Systems (one column each):
 *  - direct: the backing directory read without FUSE (the limit; from the OS page cache);
 *  - Node passthrough (peers/passthrough.ts) and Node memory server (peers/memory-server.ts): the
 *    Node peer and the Node ceiling, fuse-native 2.2.6 like pagerfs, mounted with pagerfs's options
 *    (direct_io by default; `--peers-kernel-cache` mounts them as `pagerfs --kernel-cache` would be);
 *  - bindfs (C passthrough, Debian's, default options) and rclone mount (`--vfs-cache-mode full`,
 *    cache size = the budget, Debian's): installed with apt-get when missing;
 *  - pagerfs cold (a fresh mount for every sample: every page comes through the pager, into arena
 *    memory touched for the first time), pagerfs cold in one daemon (emptied before every sample,
 *    so the pages come through the pager into memory it touched before: the cost a long-running
 *    daemon pays), and pagerfs warm (one mount, everything read once in the warm-up round and
 *    resident since: the budget holds the data set and the written file).
 * Every daemon is its own process; every measured operation is a child process (dd, fio, xargs cat,
 * ls), timed from spawn to exit (fio: its own runtime). Rounds: one warm-up round (the rows that
 * read every file, on the systems with a cache to fill: rclone and pagerfs warm; then every system's
 * bytes are compared with the backing files), then `runs` measured rounds, system order rotated per
 * round; medians, and ratios as the median of per-round ratios. A sample running past
 * `sampleTimeoutS` is killed and shown as an upper bound ("< x"), and not run again. Daemon CPU time
 * and minor faults come from /proc around each sample. Peak RSS: VmHWM of each daemon just before it
 * is stopped.
 * Then a budget sweep: pagerfs alone under budgets from 16 MiB up, reading a working set larger
 * than every budget (the large file and the 1 MiB files) sequentially, then random 4 KiB reads of
 * the large file; evictions from .pagerfs/stats.
 *
 * Flags: --quick (a smaller data set: about 4 minutes instead of about 11 on 2 cores), --profile (pagerfs and the Node peers run
 * with `node --cpu-prof`; their profiles are summarized and kept under bench-results/),
 * --peers-kernel-cache (see above).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readStats } from '../../fs/client.js';
import { MIN_BUDGET_PAGES, PAGE_SIZE } from '../../src/index.js';
import { buildDataSet, type DataSet, type DataSetShape } from './fs-data.js';
import { compareFiles, haveCommand, listTree, randRead, readFiles, seqRead, writeFsync, type Timed } from './fs-drivers.js';
import { DriverTimeout, cannotMount, openSandbox, pagerfsSpec, procCounters, type Daemon, type DaemonSpec, type Reaper } from './fs-procs.js';
import { repoRoot, type GoalResult, type Suite, type SuiteContext } from './harness.js';
import { profilesOf, summarizeProfiles, type Window } from './profile.js';
import { fmtBytes, fmtOps, fmtRate, fmtRatio, median, type Table } from './stats.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
/** Allowed RSS above the budget (issue goal). */
const RSS_SLACK = 64 * MiB;

interface Scale {
  name: 'full' | 'quick';
  shape: DataSetShape;
  writeMiB: number;
  /** Main-table budget: holds the whole data set plus the written file, so "warm" stays resident. */
  budgetBytes: number;
  warmupRounds: number;
  runs: number;
  randRuntimeS: number;
  sweepBudgets: number[];
  sweepPasses: number;
  /** A sample (one child process) running longer is killed; the row then shows an upper bound for that system. */
  sampleTimeoutS: number;
}

const FULL: Scale = {
  name: 'full',
  shape: { bigBytes: GiB, mediumCount: 256, mediumBytes: MiB, smallCount: 10_000, smallDirs: 100, smallBytes: 4 * KiB },
  writeMiB: 256,
  budgetBytes: 2 * GiB,
  warmupRounds: 1,
  runs: 3,
  randRuntimeS: 1,
  sweepBudgets: [16 * MiB, 64 * MiB, 256 * MiB, GiB],
  sweepPasses: 1,
  sampleTimeoutS: 30,
};

const QUICK: Scale = {
  name: 'quick',
  shape: { bigBytes: 256 * MiB, mediumCount: 64, mediumBytes: MiB, smallCount: 2000, smallDirs: 20, smallBytes: 4 * KiB },
  writeMiB: 64,
  budgetBytes: 512 * MiB,
  warmupRounds: 1,
  runs: 3,
  randRuntimeS: 1,
  sweepBudgets: [16 * MiB, 64 * MiB, 256 * MiB],
  sweepPasses: 1,
  sampleTimeoutS: 10,
};

type SystemId = 'direct' | 'passthrough' | 'memory' | 'bindfs' | 'rclone' | 'pagerfs-cold' | 'pagerfs-evicted' | 'pagerfs-warm';

interface Env {
  ctx: SuiteContext;
  reaper: Reaper;
  tmp: string;
  data: DataSet;
  scale: Scale;
  repoRoot: string;
  /** Where CPU profiles go (--profile), else null. */
  profileDir: string | null;
  peersKernelCache: boolean;
  /** Measured samples' time windows per "system/row" (monotonic µs), to cut the CPU profiles by row. */
  windows: Map<string, Window[]>;
}

/** One column of the table: a way to reach the data set. */
class System {
  unavailable: string | null = null;
  daemon: Daemon | null = null;
  /** Holds a cache the warm-up round fills (rclone's VFS cache, pagerfs warm's VMOs); the others skip it. */
  needsWarmup = false;
  /** Largest VmHWM over this system's daemons (bytes). */
  peakRss: number | null = null;
  /** Every daemon's VmHWM (cold pagerfs mounts one per sample). */
  readonly rssSamples: number[] = [];
  readonly root: string;

  constructor(
    readonly id: SystemId,
    readonly label: string,
    private readonly env: Env,
    private readonly spec: (() => DaemonSpec) | null,
    /** A fresh daemon for every sample. */
    readonly cold = false,
    /**
     * One daemon, emptied before every sample: the budget drops to its minimum and back through
     * .pagerfs/budget, which evicts every clean page but keeps the arena's memory (cold reads into
     * memory the daemon already touched, as in a daemon that has run a while).
     */
    readonly evictFirst = false,
  ) {
    this.root = spec === null ? env.data.dir : path.join(env.tmp, 'mnt', id);
    if (spec !== null) fs.mkdirSync(this.root, { recursive: true });
  }

  get pid(): number | null {
    return this.daemon !== null && !this.daemon.hasExited ? this.daemon.pid : null;
  }

  async start(): Promise<void> {
    if (this.spec !== null && !this.cold && this.unavailable === null) this.daemon = await this.env.reaper.startDaemon(this.spec());
  }

  /** The directory to work in; a cold system mounts afresh. */
  async acquire(): Promise<string> {
    if (this.cold) this.daemon = await this.env.reaper.startDaemon(this.spec!());
    if (this.spec !== null && this.daemon?.hasExited !== false) throw new Error(`${this.label}: the daemon is not running`);
    if (this.evictFirst) {
      const budget = path.join(this.root, '.pagerfs', 'budget');
      fs.writeFileSync(budget, `${MIN_BUDGET_PAGES * PAGE_SIZE}`);
      fs.writeFileSync(budget, `${this.env.scale.budgetBytes}`);
    }
    return this.root;
  }

  async release(): Promise<void> {
    if (this.cold && this.daemon !== null) await this.stopDaemon();
  }

  async stop(): Promise<void> {
    if (this.daemon !== null) await this.stopDaemon();
  }

  private async stopDaemon(): Promise<void> {
    const d = this.daemon!;
    this.daemon = null;
    const rss = await this.env.reaper.stopDaemon(d);
    if (rss !== null) {
      this.rssSamples.push(rss);
      this.peakRss = Math.max(this.peakRss ?? 0, rss);
    }
  }
}

/** What pagerfsDaemon needs of a suite's environment (the pagers suite passes its own). */
export type DaemonEnv = Pick<Env, 'tmp' | 'repoRoot' | 'profileDir'> & { data: Pick<DataSet, 'dir'> };

/** Node flags for a daemon: --cpu-prof under --profile (Node 20 refuses it in NODE_OPTIONS, so it goes on the command line). */
function nodeFlags(env: Pick<Env, 'profileDir'>, tag: string): string[] {
  if (env.profileDir === null) return [];
  const dir = path.join(env.profileDir, tag);
  fs.mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/** `source`: what goes before the mountpoint (default the backing directory; e.g. `--pager synthetic --pager-option …`). */
export function pagerfsDaemon(env: DaemonEnv, tag: string, mountpoint: string, budgetBytes: number, source?: string[]): DaemonSpec {
  return pagerfsSpec({
    name: `pagerfs (${tag})`, repoRoot: env.repoRoot, backingDir: env.data.dir, mountpoint, budgetBytes,
    logFile: path.join(env.tmp, 'logs', `${tag}.log`), nodeArgs: nodeFlags(env, tag), source,
  });
}

function makeSystems(env: Env, have: { bindfs: boolean; rclone: boolean }): System[] {
  const mnt = (id: string): string => path.join(env.tmp, 'mnt', id);
  const log = (id: string): string => path.join(env.tmp, 'logs', `${id}.log`);
  const peer = (id: SystemId, script: string) => (): DaemonSpec => ({
    name: id,
    command: process.execPath,
    args: [...nodeFlags(env, id), path.join(env.repoRoot, 'dist', 'scripts', 'bench', 'peers', script), env.data.dir, mnt(id), ...(env.peersKernelCache ? ['--kernel-cache'] : [])],
    mountpoint: mnt(id),
    logFile: log(id),
  });
  const budgetM = `${env.scale.budgetBytes / MiB}M`;
  const systems = [
    new System('direct', 'direct (limit)', env, null),
    new System('passthrough', 'Node passthru', env, peer('passthrough', 'passthrough.js')),
    new System('memory', 'Node memory', env, peer('memory', 'memory-server.js')),
    new System('bindfs', 'bindfs', env, () => ({
      name: 'bindfs', command: 'bindfs', args: ['-f', env.data.dir, mnt('bindfs')], mountpoint: mnt('bindfs'), logFile: log('bindfs'),
    })),
    new System('rclone', 'rclone', env, () => ({
      name: 'rclone',
      command: 'rclone',
      args: ['mount', env.data.dir, mnt('rclone'), '--vfs-cache-mode', 'full', '--vfs-cache-max-size', budgetM,
        '--cache-dir', path.join(env.tmp, 'rclone-cache'), '--config', path.join(env.tmp, 'rclone.conf'), '--log-level', 'ERROR'],
      mountpoint: mnt('rclone'),
      logFile: log('rclone'),
    })),
    new System('pagerfs-cold', 'pagerfs cold', env, () => pagerfsDaemon(env, 'pagerfs-cold', mnt('pagerfs-cold'), env.scale.budgetBytes), true),
    new System('pagerfs-evicted', 'pagerfs cold, one daemon', env,
      () => pagerfsDaemon(env, 'pagerfs-evicted', mnt('pagerfs-evicted'), env.scale.budgetBytes), false, true),
    new System('pagerfs-warm', 'pagerfs warm', env, () => pagerfsDaemon(env, 'pagerfs-warm', mnt('pagerfs-warm'), env.scale.budgetBytes)),
  ];
  systems[4].needsWarmup = true;
  systems[6].needsWarmup = true; // one daemon's arena memory touched once before its cold samples
  systems[7].needsWarmup = true;
  if (!have.bindfs) systems[3].unavailable = 'bindfs is not installed and apt-get could not install it';
  if (!have.rclone) systems[4].unavailable = 'rclone is not installed and apt-get could not install it';
  return systems;
}

// ------------------------------------------------------------------------------------------------
// Rows.

interface Row {
  id: string;
  label: string;
  /** For goal names. */
  short: string;
  /** Run in the warm-up round (the rows that read every file once; the others need no warming). */
  warmup: boolean;
  /** How a rate is printed. */
  format: (perSec: number) => string;
  /** Daemon CPU is reported per this many units, named `cpuPer`. */
  cpuUnits: number;
  cpuPer: string;
  /** Units one sample does (known up front, for the bound a timed-out sample gives); NaN when time-based. */
  units: number;
  run(env: Env, sys: System, root: string): Promise<Timed>;
}

function rows(env: Env, useFio: boolean): Row[] {
  const { data, scale } = env;
  const big = (root: string): string => path.join(root, data.bigName);
  const ops = (what: string) => (n: number): string => `${fmtOps(n).replace('/s', '')} ${what}/s`;
  return [
    { id: 'seq128k', short: 'sequential 128 KiB', warmup: false, label: `sequential read ${fmtBytes(data.shape.bigBytes)}, 128 KiB blocks`, format: fmtRate, cpuUnits: MiB, cpuPer: 'MiB', units: data.shape.bigBytes,
      run: (e, _s, root) => seqRead(e.reaper, big(root), 128 * KiB, data.shape.bigBytes) },
    { id: 'seq1m', short: 'sequential 1 MiB', warmup: true, label: `sequential read ${fmtBytes(data.shape.bigBytes)}, 1 MiB blocks`, format: fmtRate, cpuUnits: MiB, cpuPer: 'MiB', units: data.shape.bigBytes,
      run: (e, _s, root) => seqRead(e.reaper, big(root), MiB, data.shape.bigBytes) },
    { id: 'rand1', short: 'random 4 KiB ×1', warmup: false, label: 'random 4 KiB reads, 1 reader', format: ops('reads'), cpuUnits: 1, cpuPer: 'read', units: NaN,
      run: (e, _s, root) => randRead(e.reaper, big(root), 1, scale.randRuntimeS, useFio) },
    { id: 'rand4', short: 'random 4 KiB ×4', warmup: false, label: 'random 4 KiB reads, 4 readers', format: ops('reads'), cpuUnits: 1, cpuPer: 'read', units: NaN,
      run: (e, _s, root) => randRead(e.reaper, big(root), 4, scale.randRuntimeS, useFio) },
    { id: 'small', short: 'small files', warmup: true, label: `read all ${data.shape.smallCount.toLocaleString('en-US')} files of 4 KiB`, format: ops('files'), cpuUnits: 1, cpuPer: 'file', units: data.shape.smallCount,
      run: (e, _s, root) => readFiles(e.reaper, root, data.smallList, data.shape.smallCount) },
    { id: 'medium', short: '1 MiB files', warmup: true, label: `read all ${data.shape.mediumCount} files of 1 MiB`, format: fmtRate, cpuUnits: MiB, cpuPer: 'MiB', units: data.shape.mediumCount * data.shape.mediumBytes,
      run: async (e, _s, root) => {
        const t = await readFiles(e.reaper, root, data.mediumList, data.shape.mediumCount);
        return { ns: t.ns, units: data.shape.mediumCount * data.shape.mediumBytes };
      } },
    { id: 'ls', short: 'ls -lR', warmup: false, label: `ls -lR of the tree (${data.entries.toLocaleString('en-US')} entries)`, format: ops('entries'), cpuUnits: 1, cpuPer: 'entry', units: data.entries,
      run: (e, _s, root) => listTree(e.reaper, root, data.entries) },
    { id: 'write', short: 'write + fsync', warmup: false, label: `sequential write ${scale.writeMiB} MiB + fsync`, format: fmtRate, cpuUnits: MiB, cpuPer: 'MiB', units: scale.writeMiB * MiB,
      run: async (e, s, root) => {
        const t = await writeFsync(e.reaper, path.join(root, `write-${s.id}.bin`), scale.writeMiB);
        if (s.id === 'rclone') await waitForUpload(path.join(data.dir, `write-${s.id}.bin`), scale.writeMiB * MiB);
        return t;
      } },
  ];
}

/** rclone uploads a closed file to the backing directory after --vfs-write-back: wait (untimed) so it does not compete later. */
async function waitForUpload(file: string, bytes: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      if (fs.statSync(file).size === bytes) return;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ------------------------------------------------------------------------------------------------
// Tools.

function ensureTools(ctx: SuiteContext, logFile: string): { bindfs: boolean; rclone: boolean; fio: boolean; notes: string[] } {
  const notes: string[] = [];
  const missing = ['bindfs', 'rclone', 'fio'].filter((c) => !haveCommand(c));
  if (missing.length > 0) {
    if (process.getuid?.() !== 0) {
      notes.push(`not root: could not install ${missing.join(', ')}`);
    } else {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      const install = (): boolean => spawnSync('sh', ['-c', `apt-get install -y --no-install-recommends ${missing.join(' ')} >>${logFile} 2>&1`],
        { stdio: 'ignore', env }).status === 0;
      ctx.progress(`installing Debian's ${missing.join(', ')} with apt-get (log ${logFile})`);
      if (!install()) {
        ctx.progress('apt-get update, then installing again');
        spawnSync('sh', ['-c', `apt-get update >>${logFile} 2>&1`], { stdio: 'ignore', env });
        if (!install()) notes.push(`apt-get install ${missing.join(' ')} failed (log ${logFile})`);
      }
      notes.push(`installed with apt-get: ${missing.filter((c) => haveCommand(c)).join(', ') || 'none'}`);
    }
  }
  return { bindfs: haveCommand('bindfs'), rclone: haveCommand('rclone'), fio: haveCommand('fio'), notes };
}

// ------------------------------------------------------------------------------------------------
// The run.

interface Cell {
  /** Rate per measured round (NaN where the sample failed). */
  values: number[];
  /** Daemon CPU ms per unit, per measured round. */
  cpuMsPerUnit: number[];
  /** Share of that CPU time spent in the kernel (system time), per measured round. */
  sysShare: number[];
  /** Daemon minor page faults per unit, per measured round. */
  minfltPerUnit: number[];
  /** Wall time of each measured sample, ms (set-up and checks excluded). */
  sampleMs: number[];
  errors: string[];
  /** A sample ran past the timeout: values hold the upper bound units / timeout, and later rounds skip it. */
  timedOut: boolean;
}

function pairedRatio(a: number[], b: number[]): number {
  const r: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (Number.isFinite(a[i]) && Number.isFinite(b[i]) && b[i] > 0) r.push(a[i] / b[i]);
  return median(r);
}

function finiteMedian(xs: number[]): number {
  return median(xs.filter((x) => Number.isFinite(x)));
}

function rotate<T>(xs: T[], k: number): T[] {
  const n = xs.length;
  return xs.map((_x, i) => xs[(i + k) % n]);
}

function goal(name: string, measured: number, goalText: string, met: boolean, display?: string): GoalResult {
  return { name, goal: goalText, measured, display: display ?? fmtRatio(measured), met: Number.isFinite(measured) && met, source: 'fs issue' };
}

async function mainTable(env: Env, systems: System[], rowDefs: Row[], tables: Table[], raw: Record<string, unknown>, notes: string[]): Promise<Map<string, Map<SystemId, Cell>>> {
  const { ctx, scale } = env;
  const cells = new Map<string, Map<SystemId, Cell>>();
  for (const r of rowDefs) cells.set(r.id, new Map(systems.map((s) => [s.id, { values: [], cpuMsPerUnit: [], sysShare: [], minfltPerUnit: [], sampleMs: [], errors: [], timedOut: false }])));
  const live = systems.filter((s) => s.unavailable === null);
  for (const s of live) {
    ctx.progress(`mounting ${s.label}`);
    try {
      await s.start();
    } catch (err) {
      s.unavailable = `did not mount: ${(err as Error).message.split('\n')[0]}`;
      notes.push(`${s.label} ${s.unavailable}`);
    }
  }
  /** "system: message" → the samples that failed with it (reported once each). */
  const failures = new Map<string, string[]>();
  const total = scale.warmupRounds + scale.runs;
  for (let round = 0; round < total; round++) {
    const measured = round >= scale.warmupRounds;
    const roundName = measured ? `run ${round - scale.warmupRounds + 1}/${scale.runs}` : `warm-up ${round + 1}/${scale.warmupRounds}`;
    for (const row of rowDefs) {
      if (!measured && !row.warmup) continue;
      const order = rotate(systems.filter((s) => s.unavailable === null && (measured || s.needsWarmup)), round);
      for (const s of order) {
        ctx.progress(`${roundName} · ${row.label} · ${s.label}`);
        const cell = cells.get(row.id)!.get(s.id)!;
        let value = NaN;
        let cpu = NaN;
        let sys = NaN;
        let minflt = NaN;
        const bound = (row.units * 1e9) / (scale.sampleTimeoutS * 1e9);
        if (cell.timedOut) {
          if (measured) {
            cell.values.push(bound);
            cell.cpuMsPerUnit.push(NaN);
            cell.sysShare.push(NaN);
            cell.minfltPerUnit.push(NaN);
            cell.sampleMs.push(NaN);
          }
          continue;
        }
        try {
          const root = await s.acquire();
          const pid = s.pid;
          const cpu0 = pid === null ? null : procCounters(pid);
          const w0 = Number(process.hrtime.bigint() / 1000n);
          let t: Timed;
          try {
            t = await row.run(env, s, root);
          } finally {
            if (measured) {
              const key = `${s.id}/${row.id}`;
              const w1 = Number(process.hrtime.bigint() / 1000n);
              env.windows.set(key, [...(env.windows.get(key) ?? []), [w0, w1]]);
              cell.sampleMs.push((w1 - w0) / 1000);
            }
            if (pid !== null && cpu0 !== null) {
              const cpu1 = procCounters(pid);
              cpu = cpu1.user + cpu1.sys - cpu0.user - cpu0.sys;
              sys = (cpu1.sys - cpu0.sys) / cpu;
              minflt = cpu1.minflt - cpu0.minflt;
            }
            await s.release();
          }
          value = (t.units * 1e9) / t.ns;
          cpu = (cpu / t.units) * row.cpuUnits;
          minflt = (minflt / t.units) * row.cpuUnits;
        } catch (err) {
          const msg = (err as Error).message.split('\n').slice(0, 3).join(' | ');
          cell.errors.push(msg);
          await s.release().catch(() => undefined);
          cpu = NaN;
          sys = NaN;
          minflt = NaN;
          if (err instanceof DriverTimeout) {
            cell.timedOut = true;
            value = bound;
            notes.push(`${row.label}, ${s.label}: TIMED OUT after ${scale.sampleTimeoutS} s (shown as the upper bound "< ${row.format(bound)}"; not run again)`);
          } else {
            const key = `${s.label}: ${msg}`;
            failures.set(key, [...(failures.get(key) ?? []), `${roundName} ${row.short}`]);
          }
        }
        if (measured) {
          cell.values.push(value);
          cell.cpuMsPerUnit.push(cpu);
          cell.sysShare.push(sys);
          cell.minfltPerUnit.push(minflt);
        }
      }
    }
    if (!measured && round === scale.warmupRounds - 1) await verify(env, systems, notes);
  }
  for (const [key, where] of failures) notes.push(`FAILED ${where.length}× (${where.slice(0, 3).join(', ')}${where.length > 3 ? ', …' : ''}): ${key}`);
  // pagerfs warm must have stayed resident.
  const warm = systems.find((s) => s.id === 'pagerfs-warm')!;
  if (warm.pid !== null) {
    try {
      const st = await readStats(warm.root);
      raw.pagerfsWarmStats = { ...st, files: st.files.length };
      notes.push(`pagerfs warm at the end: ${fmtBytes(st.residentBytes)} resident of a ${fmtBytes(st.budgetBytes)} budget, ${st.evictedPages} pages evicted, ` +
        `${st.pageRequests} page requests, read latency p50 ${st.latencyP50Ms.toFixed(2)} ms / p99 ${st.latencyP99Ms.toFixed(2)} ms`);
    } catch (err) {
      notes.push(`pagerfs warm: stats unreadable (${(err as Error).message})`);
    }
  }
  for (const s of systems) {
    ctx.progress(`unmounting ${s.label}`);
    await s.stop();
  }
  return cells;
}

/** Untimed: every system's bytes equal the backing files (large file, first/last 1 MiB and 4 KiB files). */
async function verify(env: Env, systems: System[], notes: string[]): Promise<void> {
  const { data } = env;
  const names = [data.bigName, data.mediumNames[0], data.mediumNames[data.mediumNames.length - 1], data.smallNames[0],
    data.smallNames[Math.floor(data.smallNames.length / 2)], data.smallNames[data.smallNames.length - 1]];
  for (const s of systems) {
    if (s.unavailable !== null || s.id === 'direct') continue;
    env.ctx.progress(`checking the bytes ${s.label} serves against the backing files`);
    try {
      const root = await s.acquire();
      try {
        for (const n of names) await compareFiles(env.reaper, path.join(data.dir, n), path.join(root, n));
      } finally {
        await s.release();
      }
    } catch (err) {
      notes.push(`${s.label}: CONTENT CHECK FAILED: ${(err as Error).message.split('\n').slice(0, 2).join(' | ')}`);
    }
  }
}

interface SweepPoint {
  budgetBytes: number;
  seqRates: number[];
  seqEvictions: number[];
  seqRequests: number[];
  randIops: number;
  randEvictions: number;
  peakRss: number | null;
}

async function sweep(env: Env, useFio: boolean, notes: string[]): Promise<SweepPoint[]> {
  const { ctx, data, scale, reaper } = env;
  const mnt = path.join(env.tmp, 'mnt', 'pagerfs-sweep');
  fs.mkdirSync(mnt, { recursive: true });
  const wsBytes = data.shape.bigBytes + data.shape.mediumCount * data.shape.mediumBytes;
  const out: SweepPoint[] = [];
  for (const budget of scale.sweepBudgets) {
    const p: SweepPoint = { budgetBytes: budget, seqRates: [], seqEvictions: [], seqRequests: [], randIops: NaN, randEvictions: NaN, peakRss: null };
    out.push(p);
    let d: Daemon | null = null;
    try {
      ctx.progress(`budget sweep: mounting pagerfs with a ${fmtBytes(budget)} budget`);
      d = await reaper.startDaemon(pagerfsDaemon(env, `pagerfs-sweep-${budget / MiB}MiB`, mnt, budget));
      for (let pass = 0; pass <= scale.sweepPasses; pass++) {
        ctx.progress(`budget sweep ${fmtBytes(budget)}: ${pass === 0 ? 'first pass (not measured)' : `pass ${pass}/${scale.sweepPasses}`} over ${fmtBytes(wsBytes)}`);
        const s0 = await readStats(mnt);
        const a = await seqRead(reaper, path.join(mnt, data.bigName), MiB, data.shape.bigBytes);
        const b = await readFiles(reaper, mnt, data.mediumList, data.shape.mediumCount);
        const s1 = await readStats(mnt);
        if (pass === 0) continue;
        p.seqRates.push((wsBytes * 1e9) / (a.ns + b.ns));
        p.seqEvictions.push(s1.evictedPages - s0.evictedPages);
        p.seqRequests.push(s1.readRequests - s0.readRequests);
      }
      ctx.progress(`budget sweep ${fmtBytes(budget)}: random 4 KiB reads of ${data.bigName}`);
      const s0 = await readStats(mnt);
      const r = await randRead(reaper, path.join(mnt, data.bigName), 1, scale.randRuntimeS, useFio);
      const s1 = await readStats(mnt);
      p.randIops = (r.units * 1e9) / r.ns;
      p.randEvictions = s1.evictedPages - s0.evictedPages;
    } catch (err) {
      notes.push(`budget sweep ${fmtBytes(budget)}: FAILED: ${(err as Error).message.split('\n').slice(0, 3).join(' | ')}`);
    } finally {
      if (d !== null) p.peakRss = await reaper.stopDaemon(d);
    }
  }
  return out;
}

function profileTables(env: Env, rowDefs: Row[], tables: Table[], raw: Record<string, unknown>): void {
  if (env.profileDir === null || !fs.existsSync(env.profileDir)) return;
  const groups: Array<[SystemId, string]> = [['pagerfs-warm', 'pagerfs warm'], ['pagerfs-cold', 'pagerfs cold'], ['pagerfs-evicted', 'pagerfs cold, one daemon'],
    ['passthrough', 'Node passthrough'],
    ['memory', 'Node memory server']];
  const summaries: Record<string, unknown> = {};
  const busyRows: string[][] = rowDefs.map((r) => [r.label]);
  const topRows: string[][] = [];
  for (const [id, label] of groups) {
    const dir = path.join(env.profileDir, id);
    const files = profilesOf(dir);
    summaries[id] = {};
    rowDefs.forEach((r, i) => {
      const windows = env.windows.get(`${id}/${r.id}`) ?? [];
      if (files.length === 0 || windows.length === 0) {
        busyRows[i].push('n/a');
        return;
      }
      const sum = summarizeProfiles(files, env.repoRoot, 4, windows);
      (summaries[id] as Record<string, unknown>)[r.id] = sum;
      const wallMs = windows.reduce((acc, [a, b]) => acc + (b - a) / 1000, 0);
      busyRows[i].push(`${((100 * sum.busyMs) / wallMs).toFixed(0)}%`);
      if (id === 'pagerfs-warm' || id === 'pagerfs-cold' || id === 'pagerfs-evicted') {
        topRows.push([`${label}: ${r.short}`, sum.top.slice(0, 4).map((e) => `${e.name} ${(e.share * 100).toFixed(0)}%`).join('; ')]);
      }
    });
  }
  tables.push({
    title: 'JS thread busy during the measured samples (share of wall time, from the CPU profiles)',
    columns: ['', ...groups.map(([, label]) => label)],
    rows: busyRows,
    notes: ['libfuse\'s worker threads are native and not in these profiles; the rest of the daemon CPU (table above) is theirs and the kernel\'s'],
  });
  tables.push({
    title: 'Where pagerfs\'s JS thread spends its time, per row (self time, share of the busy samples)',
    columns: ['daemon: row', 'top functions'],
    rows: topRows,
    notes: ['"(program)": V8/native work outside JS functions; "(garbage collector)": GC; node: internals are Node\'s own JS (fs promises, child_process, nextTick)',
      `profiles: ${path.relative(process.cwd(), env.profileDir)}`],
  });
  raw.profiles = summaries;
}

export const fsSuite: Suite = {
  name: 'fs',
  title: 'fs: pagerfs mounted, against direct reads, Node peers, bindfs and rclone',
  summary: 'a mounted pagerfs vs the backing dir, Node passthrough/memory peers, bindfs, rclone; budget sweep (flags: --quick, --profile)',
  async run(ctx) {
    const tables: Table[] = [];
    const goals: GoalResult[] = [];
    const raw: Record<string, unknown> = {};
    const notes: string[] = [];
    const flags = ctx.flags ?? new Set<string>();
    const scale = flags.has('--quick') ? QUICK : FULL;
    const skip = cannotMount();
    if (skip !== null) return { about: [skip], tables, goals, raw };
    const root = repoRoot();
    const { tmp, reaper, close } = openSandbox('pagerfs-bench-fs-', (msg) => ctx.progress(msg));
    const started = new Date().toISOString().replace(/[:.]/g, '-');
    const profileDir = flags.has('--profile') ? path.join(root, 'bench-results', `profiles-${started}`) : null;
    let useFio = false;
    let sweepPoints: SweepPoint[] = [];
    let cells = new Map<string, Map<SystemId, Cell>>();
    let systems: System[] = [];
    let rowDefs: Row[] = [];
    let env: Env | null = null;
    try {
      fs.mkdirSync(path.join(tmp, 'logs'));
      fs.writeFileSync(path.join(tmp, 'rclone.conf'), '');
      const tools = ensureTools(ctx, path.join(os.tmpdir(), 'pagerfs-bench-apt.log'));
      notes.push(...tools.notes);
      useFio = tools.fio;
      if (!useFio) notes.push('fio unavailable: random reads by a python3 stand-in (os.pread in forked readers)');
      const data = buildDataSet(tmp, scale.shape, (m) => ctx.progress(m));
      env = { ctx, reaper, tmp, data, scale, repoRoot: root, profileDir, peersKernelCache: flags.has('--peers-kernel-cache'), windows: new Map() };
      systems = makeSystems(env, tools);
      for (const s of systems) if (s.unavailable !== null) notes.push(`${s.label}: n/a (${s.unavailable})`);
      rowDefs = rows(env, useFio);
      reaper.driverTimeoutMs = scale.sampleTimeoutS * 1000;
      cells = await mainTable(env, systems, rowDefs, tables, raw, notes);
      sweepPoints = await sweep(env, useFio, notes);
    } finally {
      await close();
    }
    if (env === null) throw new Error('unreachable');
    const data = env.data;

    // ---- tables
    const cols = ['', ...systems.map((s) => s.label)];
    const cellOf = (rowId: string, id: SystemId): Cell => cells.get(rowId)!.get(id)!;
    const valueRows = rowDefs.map((r) => [r.label, ...systems.map((s) => {
      const c = cellOf(r.id, s.id);
      const m = finiteMedian(c.values);
      return s.unavailable !== null || !Number.isFinite(m) ? 'n/a' : `${c.timedOut ? '< ' : ''}${r.format(m)}`;
    })]);
    valueRows.push(['daemon peak RSS (VmHWM)', ...systems.map((s) => (s.peakRss === null ? '–' : fmtBytes(s.peakRss)))]);
    tables.push({
      title: `Median of ${scale.runs} runs (${scale.name} data set: ${fmtBytes(data.totalBytes)}; pagerfs budget and rclone cache ${fmtBytes(scale.budgetBytes)})`,
      columns: cols,
      rows: valueRows,
      notes: [`Node peers mounted with ${env.peersKernelCache ? 'big_writes, no direct_io (like pagerfs --kernel-cache)' : 'direct_io (like pagerfs\'s default)'}; ` +
        'bindfs with its defaults (no direct_io, kernel page cache in front, single-threaded); rclone warm (its cache holds the data after the warm-up round)',
      `random reads: ${useFio ? 'fio psync, --invalidate=0' : 'python3 stand-in'}, ${scale.randRuntimeS} s per sample`],
    });
    const ratioOf = (rowId: string, a: SystemId, b: SystemId): number => pairedRatio(cellOf(rowId, a).values, cellOf(rowId, b).values);
    tables.push({
      title: 'Ratio to the limit (direct reads of the backing directory), median of per-round ratios',
      columns: cols,
      rows: rowDefs.map((r) => [r.label, ...systems.map((s) => (s.unavailable !== null ? 'n/a'
        : `${cellOf(r.id, s.id).timedOut ? '< ' : ''}${fmtRatio(ratioOf(r.id, s.id, 'direct'))}`))]),
    });
    const daemons = systems.filter((s) => s.id !== 'direct');
    tables.push({
      title: 'Daemon CPU per unit of work: CPU time (user + system, all threads), its system-time share, minor page faults (from /proc; medians)',
      columns: ['', ...daemons.map((s) => s.label)],
      rows: rowDefs.map((r) => [`${r.label} (per ${r.cpuPer})`, ...daemons.map((s) => {
        const m = finiteMedian(cellOf(r.id, s.id).cpuMsPerUnit);
        const sys = finiteMedian(cellOf(r.id, s.id).sysShare);
        const flt = finiteMedian(cellOf(r.id, s.id).minfltPerUnit);
        return Number.isFinite(m) ? `${(m * 1000).toFixed(m * 1000 >= 100 ? 0 : 1)} µs ${Number.isFinite(sys) ? (sys * 100).toFixed(0) : '?'}% ${flt >= 10 ? flt.toFixed(0) : flt.toFixed(1)}` : 'n/a';
      })]),
    });
    const wsBytes = data.shape.bigBytes + data.shape.mediumCount * data.shape.mediumBytes;
    tables.push({
      title: `Budget sweep: pagerfs reading a ${fmtBytes(wsBytes)} working set (${data.bigName} + the 1 MiB files), larger than every budget`,
      columns: ['budget', 'sequential', 'evicted / pass', 'READ requests / pass', 'random 4 KiB', 'evicted (random)', 'peak RSS', 'RSS − budget'],
      rows: sweepPoints.map((p) => [fmtBytes(p.budgetBytes), Number.isFinite(finiteMedian(p.seqRates)) ? fmtRate(finiteMedian(p.seqRates)) : 'n/a',
        p.seqEvictions.length > 0 ? fmtBytes(finiteMedian(p.seqEvictions) * 4096) : 'n/a', p.seqRequests.length > 0 ? String(finiteMedian(p.seqRequests)) : 'n/a',
        Number.isFinite(p.randIops) ? `${fmtOps(p.randIops).replace('/s', '')} reads/s` : 'n/a', Number.isFinite(p.randEvictions) ? fmtBytes(p.randEvictions * 4096) : 'n/a',
        p.peakRss === null ? 'n/a' : fmtBytes(p.peakRss), p.peakRss === null ? 'n/a' : fmtBytes(p.peakRss - p.budgetBytes)]),
      notes: [`sequential: dd (1 MiB blocks) of ${data.bigName}, then cat of the 1 MiB files; median of ${scale.sweepPasses} pass(es) after a first pass; ` +
        `random: ${scale.randRuntimeS} s, 1 reader, after the passes`],
    });
    profileTables(env, rowDefs, tables, raw);

    // ---- goals
    const has = (id: SystemId): boolean => systems.find((s) => s.id === id)!.unavailable === null;
    const g = (name: string, rowId: string, a: SystemId, b: SystemId, min: number, strict = false): void => {
      const r = has(a) && has(b) ? ratioOf(rowId, a, b) : NaN;
      // A timed-out sample gives an upper bound of that system's rate: a bound for `a` never meets a goal.
      const boundA = cellOf(rowId, a).timedOut;
      const boundB = cellOf(rowId, b).timedOut;
      const display = `${boundA ? '< ' : boundB ? '> ' : ''}${fmtRatio(r)}`;
      goals.push(goal(name, r, `${strict ? '>' : '≥'} ${min.toFixed(1)}×`, !boundA && (strict ? r > min : r >= min), display));
    };
    for (const [rowId, what] of [['seq128k', '128 KiB'], ['seq1m', '1 MiB']]) {
      g(`warm sequential ${what} / Node memory server`, rowId, 'pagerfs-warm', 'memory', 1.0);
      g(`warm sequential ${what} / bindfs`, rowId, 'pagerfs-warm', 'bindfs', 0.6);
      g(`cold sequential ${what} / Node passthrough`, rowId, 'pagerfs-cold', 'passthrough', 1.1);
    }
    for (const [rowId, what] of [['rand1', '1 reader'], ['rand4', '4 readers']]) {
      g(`cold random 4 KiB, ${what} / Node passthrough`, rowId, 'pagerfs-cold', 'passthrough', 1.2);
      g(`warm random 4 KiB, ${what} / Node passthrough`, rowId, 'pagerfs-warm', 'passthrough', 1.2);
    }
    for (const [rowId, what] of [['small', 'small files'], ['ls', 'ls -lR']]) {
      g(`cold ${what} / Node passthrough`, rowId, 'pagerfs-cold', 'passthrough', 1.0);
      g(`warm ${what} / Node passthrough`, rowId, 'pagerfs-warm', 'passthrough', 1.0);
    }
    for (const r of rowDefs) g(`warm ${r.short} / rclone (warm)`, r.id, 'pagerfs-warm', 'rclone', 1.0, true);
    const warm = systems.find((s) => s.id === 'pagerfs-warm')!;
    const cold = systems.find((s) => s.id === 'pagerfs-cold')!;
    const rclone = systems.find((s) => s.id === 'rclone')!;
    const rssRatio = warm.peakRss !== null && rclone.peakRss !== null ? rclone.peakRss / warm.peakRss : NaN;
    goals.push(goal('peak RSS: rclone / pagerfs warm (lower RSS is ahead)', rssRatio, '> 1.0×', rssRatio > 1));
    const rssGoal = (name: string, rss: number | null, budget: number): void => {
      const over = rss === null ? NaN : rss - budget;
      goals.push(goal(name, over, `≤ budget + ${fmtBytes(RSS_SLACK)}`, over <= RSS_SLACK,
        rss === null ? 'n/a' : `${fmtBytes(rss)} (budget ${fmtBytes(budget)}, ${over >= 0 ? '+' : '−'}${fmtBytes(Math.abs(over))})`));
    };
    rssGoal('peak RSS, pagerfs warm', warm.peakRss, scale.budgetBytes);
    rssGoal('peak RSS, pagerfs cold (largest of its mounts)', cold.peakRss, scale.budgetBytes);
    const worst = sweepPoints.filter((p) => p.peakRss !== null).sort((a, b) => (b.peakRss! - b.budgetBytes) - (a.peakRss! - a.budgetBytes))[0];
    if (worst !== undefined) rssGoal(`peak RSS, budget sweep (worst: ${fmtBytes(worst.budgetBytes)})`, worst.peakRss, worst.budgetBytes);

    raw.scale = scale;
    raw.dataSet = { dir: '(temporary)', shape: data.shape, entries: data.entries, totalBytes: data.totalBytes };
    raw.cells = Object.fromEntries([...cells.entries()].map(([k, v]) => [k, Object.fromEntries(v.entries())]));
    raw.peakRss = Object.fromEntries(systems.map((s) => [s.id, { peak: s.peakRss, samples: s.rssSamples }]));
    raw.sweep = sweepPoints;
    raw.notes = notes;
    return {
      about: [
        `Data set (${scale.name}), built in a temporary directory: ${fmtBytes(data.shape.bigBytes)} file, ${data.shape.mediumCount} × 1 MiB, ` +
          `${data.shape.smallCount.toLocaleString('en-US')} × 4 KiB in ${data.shape.smallDirs} folders; the backing files stay in the OS page cache.`,
        `Rounds: ${scale.warmupRounds} warm-up (the rows that read every file — ${rowDefs.filter((r) => r.warmup).map((r) => r.short).join(', ')} — on the systems with a cache to fill: ` +
          `${systems.filter((s) => s.needsWarmup).map((s) => s.label).join(', ')}; then every system's bytes are checked with cmp) + ${scale.runs} measured, ` +
          'system order rotated per round. Every operation is a child process (dd, fio, xargs cat, ls -lR), timed spawn to exit (fio: its runtime).',
        'pagerfs cold: a fresh mount for every sample (mounting untimed; the goals use this column); pagerfs cold, one daemon: one mount read in the warm-up, ' +
          'emptied before every sample (budget to its minimum and back: every page comes through the pager again, into memory the daemon has touched before); ' +
          'pagerfs warm: one mount whose budget holds the data set, read in the warm-up.',
        ...notes,
      ],
      tables, goals, raw,
    };
  },
};
