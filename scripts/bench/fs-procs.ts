/**
 * Child processes of the fs suite: FUSE daemons (pagerfs, the Node peers, bindfs, rclone) started
 * in their own process groups and stopped in order, and the I/O drivers (dd, fio, cat, ls) timed
 * from spawn to exit. Nothing here reads or writes a mount from the bench's own event loop beyond
 * readiness probes and control files of daemons that run in other processes.
 *
 * Clean-up contract: every daemon and driver is registered until it exits. `Reaper.install()` hooks
 * SIGINT/SIGTERM (stop every daemon — they unmount — then clear leftover mounts, remove the temp
 * directory, exit 130) and `exit` (the synchronous last resort: SIGKILL, `fusermount -uz`, rm).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const CLK_TCK = 100;

/** Mountpoints listed in /proc/self/mounts. */
export function mountedPaths(): Set<string> {
  const text = fs.readFileSync('/proc/self/mounts', 'utf8');
  return new Set(text.split('\n').filter((l) => l !== '').map((l) => l.split(' ')[1].replace(/\\040/g, ' ')));
}

export function isMounted(mountpoint: string): boolean {
  return mountedPaths().has(mountpoint);
}

/** A memory field of /proc/PID/status (VmRSS, VmHWM, ...) of a live process, in bytes; null when it is gone. */
function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

/** Peak resident set (VmHWM) of a live process, in bytes; null when it is gone. */
export function peakRssBytes(pid: number): number | null {
  return procStatusBytes(pid, 'VmHWM');
}

/** Resident set now (VmRSS) of a live process, in bytes; null when it is gone. */
export function rssBytes(pid: number): number | null {
  return procStatusBytes(pid, 'VmRSS');
}

/** Why this process cannot mount FUSE filesystems (the suites that mount skip), or null when it can. */
export function cannotMount(): string | null {
  return process.getuid?.() !== 0 || !fs.existsSync('/dev/fuse') ? 'skipped: mounting needs root and /dev/fuse' : null;
}

/** What a pagerfs mount of the bench needs; the daemon is the built CLI (dist/fs/cli.js). */
export interface PagerfsMountOptions {
  name: string;
  repoRoot: string;
  backingDir: string;
  mountpoint: string;
  budgetBytes: number;
  logFile: string;
  /** Flags for node itself, before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** What goes before the mountpoint (default [backingDir]; e.g. `--pager synthetic --pager-option …`). */
  source?: string[];
}

/** The daemon spec of `pagerfs mount BACKING MOUNTPOINT --memory-budget N` (warnings only in its log). */
export function pagerfsSpec(o: PagerfsMountOptions): DaemonSpec {
  const cli = path.join(o.repoRoot, 'dist', 'fs', 'cli.js');
  if (!fs.existsSync(cli)) throw new Error(`${cli} missing: build first (npx tsc -p tsconfig.json)`);
  return {
    name: o.name,
    command: process.execPath,
    args: [...(o.nodeArgs ?? []), cli, 'mount', ...(o.source ?? [o.backingDir]), o.mountpoint, '--memory-budget', `${o.budgetBytes}`, '--log-level', 'warn'],
    mountpoint: o.mountpoint,
    logFile: o.logFile,
  };
}

/** CPU time of a live process (all threads), user and system, in ms, and its minor page faults; NaNs when it is gone. */
export function procCounters(pid: number): { user: number; sys: number; minflt: number } {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm) ": state is field 3, minflt 10, utime 14, stime 15 (proc(5)).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: (Number(f[11]) * 1000) / CLK_TCK, sys: (Number(f[12]) * 1000) / CLK_TCK, minflt: Number(f[7]) };
  } catch {
    return { user: NaN, sys: NaN, minflt: NaN };
  }
}

export interface Daemon {
  name: string;
  mountpoint: string;
  proc: ChildProcess;
  pid: number;
  logFile: string;
  /** Resolves with the exit code (or the signal name) when the process has exited. */
  exited: Promise<number | string>;
  hasExited: boolean;
  /** VmHWM just before it was asked to stop (bytes). */
  peakRss: number | null;
}

export interface DaemonSpec {
  name: string;
  command: string;
  args: string[];
  mountpoint: string;
  logFile: string;
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A deadline for a race against a process's exit: unref'd, so once the process has exited the
 * timer no longer keeps the bench alive (a plain 60 s sleep held every run open that long at its end).
 */
function deadline(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function logTail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-12).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Clears a FUSE mount whose daemon is gone or stuck. */
export function forceUnmountSync(mountpoint: string): void {
  if (!isMounted(mountpoint)) return;
  const r = spawnSync('fusermount', ['-uz', mountpoint], { stdio: 'ignore' });
  if (r.status !== 0 && isMounted(mountpoint)) spawnSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
}

/** A driver killed because it ran past the reaper's driver timeout. */
export class DriverTimeout extends Error {
  constructor(readonly command: string, readonly timeoutMs: number) {
    super(`${command} did not finish within ${timeoutMs / 1000} s (killed)`);
    this.name = 'DriverTimeout';
  }
}

export class Reaper {
  /** A driver running longer than this is killed and its promise rejects with DriverTimeout. */
  driverTimeoutMs = 600_000;
  /** Set once an interrupt began the clean-up: nothing new starts after it. */
  private stopping = false;
  private readonly daemons = new Set<Daemon>();
  private readonly drivers = new Set<ChildProcess>();
  private readonly tempDirs = new Set<string>();
  private onSignal: ((sig: NodeJS.Signals) => void) | null = null;
  private readonly onExit = (): void => this.reapSync();

  constructor(private readonly note: (msg: string) => void) {}

  install(): void {
    this.onSignal = (sig) => {
      if (this.stopping) return;
      this.stopping = true;
      this.note(`${sig}: stopping every daemon, unmounting, removing temporary files`);
      void this.reapAll(10_000).finally(() => process.exit(130));
    };
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    process.on('exit', this.onExit);
  }

  uninstall(): void {
    if (this.onSignal !== null) {
      process.off('SIGINT', this.onSignal);
      process.off('SIGTERM', this.onSignal);
    }
    process.off('exit', this.onExit);
  }

  addTempDir(dir: string): void {
    this.tempDirs.add(dir);
  }

  /** Starts a daemon in its own process group and waits until its mount answers a readdir. */
  async startDaemon(spec: DaemonSpec): Promise<Daemon> {
    if (this.stopping) throw new Error('interrupted');
    const log = fs.openSync(spec.logFile, 'a');
    const proc = spawn(spec.command, spec.args, { detached: true, stdio: ['ignore', log, log], env: spec.env ?? process.env });
    fs.closeSync(log);
    if (proc.pid === undefined) throw new Error(`${spec.name}: could not start ${spec.command}`);
    const d: Daemon = {
      name: spec.name, mountpoint: spec.mountpoint, proc, pid: proc.pid, logFile: spec.logFile, hasExited: false, peakRss: null,
      exited: new Promise((resolve) => proc.once('exit', (code, signal) => {
        d.hasExited = true;
        this.daemons.delete(d);
        resolve(code ?? signal ?? 'unknown');
      })),
    };
    proc.once('error', () => undefined);
    this.daemons.add(d);
    const deadline = Date.now() + (spec.readyTimeoutMs ?? 120_000);
    for (;;) {
      if (d.hasExited) throw new Error(`${spec.name} exited before its mount was ready (${await d.exited}); log ${spec.logFile}:\n${logTail(spec.logFile)}`);
      if (isMounted(spec.mountpoint)) {
        try {
          await fsp.readdir(spec.mountpoint);
          return d;
        } catch {
          // not answering yet
        }
      }
      if (Date.now() > deadline) {
        await this.stopDaemon(d, 2000);
        throw new Error(`${spec.name}: mount not ready after ${spec.readyTimeoutMs ?? 120_000} ms; log ${spec.logFile}:\n${logTail(spec.logFile)}`);
      }
      await sleep(25);
    }
  }

  /**
   * Records the daemon's VmHWM, sends SIGTERM (every daemon here unmounts on it) and waits; past
   * `timeoutMs` it is killed and its mount cleared. Returns the peak RSS in bytes.
   */
  async stopDaemon(d: Daemon, timeoutMs = 60_000): Promise<number | null> {
    if (!d.hasExited) {
      d.peakRss = peakRssBytes(d.pid) ?? d.peakRss;
      try {
        process.kill(d.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const timedOut = await Promise.race([d.exited.then(() => false), deadline(timeoutMs).then(() => true)]);
      if (timedOut) {
        this.note(`${d.name} did not exit ${timeoutMs} ms after SIGTERM: killing it`);
        try {
          process.kill(-d.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
        await Promise.race([d.exited, deadline(2000)]);
      }
    }
    forceUnmountSync(d.mountpoint);
    return d.peakRss;
  }

  /** Runs a driver to completion; times it from spawn to exit. Non-zero exit throws with stderr. */
  runDriver(command: string, args: string[], opts: { cwd?: string; stdoutNull?: boolean; stdin?: string } = {}): Promise<{ ns: number; stdout: string; stderr: string }> {
    if (this.stopping) return Promise.reject(new Error('interrupted'));
    return new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const proc = spawn(command, args, { cwd: opts.cwd, stdio: [opts.stdin !== undefined ? 'pipe' : 'ignore', opts.stdoutNull ? 'ignore' : 'pipe', 'pipe'] });
      this.drivers.add(proc);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      proc.stdout?.on('data', (b: Buffer) => out.push(b));
      proc.stderr?.on('data', (b: Buffer) => err.push(b));
      if (opts.stdin !== undefined) proc.stdin?.end(opts.stdin);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        proc.kill('SIGKILL');
      }, this.driverTimeoutMs);
      proc.once('error', (e) => {
        clearTimeout(timer);
        this.drivers.delete(proc);
        reject(new Error(`${command}: ${e.message}`));
      });
      proc.once('close', (code, signal) => {
        const ns = Number(process.hrtime.bigint() - t0);
        clearTimeout(timer);
        this.drivers.delete(proc);
        if (timedOut) {
          reject(new DriverTimeout(`${command} ${args.join(' ')}`, this.driverTimeoutMs));
          return;
        }
        const stdout = Buffer.concat(out).toString('utf8');
        const stderr = Buffer.concat(err).toString('utf8');
        if (code !== 0) reject(new Error(`${command} ${args.join(' ')} failed (${code ?? signal}):\n${stderr.slice(-2000)}`));
        else resolve({ ns, stdout, stderr });
      });
    });
  }

  /** Stops every daemon (in parallel), clears leftover mounts, removes the temp directories. */
  async reapAll(timeoutMs: number): Promise<void> {
    for (const p of this.drivers) p.kill('SIGKILL');
    await Promise.all([...this.daemons].map((d) => this.stopDaemon(d, timeoutMs)));
    this.removeTemp();
  }

  private removeTemp(): void {
    const mounts = mountedPaths();
    for (const dir of this.tempDirs) {
      for (const m of mounts) if (m === dir || m.startsWith(`${dir}/`)) forceUnmountSync(m);
      try {
        fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch (err) {
        process.stderr.write(`pagerfs bench: could not remove ${dir}: ${(err as Error).message}\n`);
      }
    }
  }

  /** Last resort at process exit: kill what is left, clear its mounts, remove temp directories. */
  reapSync(): void {
    for (const p of this.drivers) p.kill('SIGKILL');
    for (const d of this.daemons) {
      try {
        process.kill(-d.pid, 'SIGKILL');
      } catch {
        // gone
      }
      forceUnmountSync(d.mountpoint);
    }
    this.daemons.clear();
    this.removeTemp();
  }
}

/** A temporary directory and the Reaper that owns every daemon and driver a suite starts. */
export interface Sandbox {
  tmp: string;
  reaper: Reaper;
  /** Stops every daemon (they unmount), clears leftover mounts, removes the directory. */
  close(): Promise<void>;
}

/**
 * Makes a temporary directory (`prefix` + random) and a Reaper with its signal and exit hooks
 * installed, so an interrupted suite still unmounts and removes its data.
 */
export function openSandbox(prefix: string, note: (msg: string) => void): Sandbox {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const reaper = new Reaper(note);
  reaper.addTempDir(tmp);
  reaper.install();
  return {
    tmp,
    reaper,
    close: async () => {
      note('unmounting everything, removing the data set');
      await reaper.reapAll(30_000);
      reaper.uninstall();
    },
  };
}
