/**
 * Shared helper for the real-FUSE-mount tests of pagerfs.
 *
 * The daemon always runs as a child process (`node dist/fs/cli.js mount ...`): a mount served by the
 * test process itself would deadlock as soon as the test's own fs calls waited on the event loop
 * that answers them. Readiness is a successful read of `<mnt>/.pagerfs/stats` (a read, not a stat:
 * the kernel caches attributes). Every mount started through `startMount` is unmounted (via
 * `pagerfs unmount`, then `fusermount -uz` for anything left) by the hooks `useMountHooks()`
 * installs, and the daemon's stderr is printed when a test fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach } from 'vitest';
import { readToEnd } from '../../fs/client.js';

export const PAGE = 4096;
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'dist/fs/cli.js');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Killed by us because it ran past `timeoutMs`. */
  timedOut: boolean;
}

export interface RunOptions {
  /** Kill the process (SIGKILL) after this long; default 30 s. */
  timeoutMs?: number;
  input?: string | Buffer;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command to completion and collects its output (never throws on a non-zero exit). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs ?? 30_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs the pagerfs CLI (`node dist/fs/cli.js ...`). */
export function runCli(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], opts);
}

/** Runs a python3 script (passed on stdin) with arguments. */
export function python(script: string, args: string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  return run('python3', ['-c', script, ...args], opts);
}

/**
 * Runs python: `setup`, then `body` while counting the voluntary context switches of the daemon's
 * main thread (`pid`). That thread sleeps in epoll between requests, so each request that reaches
 * it costs at least one: the count tells whether the JS thread answered. `args` is sys.argv[2:] in
 * the script; `body` leaves its result text in `out`. Throws with python's stderr if it fails.
 */
export async function daemonThreadSwitches(pid: number, setup: string[], body: string[], args: string[]): Promise<{ switches: number; out: string }> {
  const script = [
    'import errno, os, sys',
    'pid, args = sys.argv[1], sys.argv[2:]',
    'def switches():',
    '    for line in open(f"/proc/{pid}/task/{pid}/status"):',
    '        if line.startswith("voluntary_ctxt_switches:"): return int(line.split()[1])',
    ...setup,
    'before = switches()',
    ...body,
    'print(switches() - before, out)',
  ].join('\n');
  const res = await python(script, [String(pid), ...args], { timeoutMs: 60_000 });
  if (res.code !== 0) throw new Error(`python failed (${res.code}): ${res.stderr}`);
  const [n, ...rest] = res.stdout.trim().split(' ');
  return { switches: Number(n), out: rest.join(' ') };
}

/** Is `mountpoint` listed in /proc/self/mounts (its directory's symlinks resolved, as the kernel lists it)? */
export async function isMounted(mountpoint: string): Promise<boolean> {
  const mounts = await fsp.readFile('/proc/self/mounts', 'utf8');
  const abs = path.resolve(mountpoint);
  const dir = await fsp.realpath(path.dirname(abs)).catch(() => path.dirname(abs));
  const want = path.join(dir, path.basename(abs)).replace(/ /g, '\\040');
  return mounts.split('\n').some((l) => l.split(' ')[1] === want);
}

const tempDirs: string[] = [];

/** A fresh directory under os.tmpdir(), removed after the file's tests (unless something is mounted on it). */
export async function tempDir(prefix = 'pagerfs-test-'): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Deterministic-enough random content of `size` bytes (no zero pages by accident). */
export function randomData(size: number): Buffer {
  return randomBytes(size);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `fn` until it returns a truthy value (returned); throws if `timeoutMs` passes first, so
 * that a wait whose result a test does not look at is still a check. `what` names the condition.
 */
export async function waitFor<T>(fn: () => Promise<T> | T, timeoutMs = 10_000, intervalMs = 50,
  what: string | (() => string) = fn.toString()): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let v: T | undefined;
    let failure: unknown;
    try {
      v = await fn();
    } catch (err) {
      v = undefined;
      failure = err;
    }
    if (v) return v;
    if (Date.now() > deadline) {
      const why = failure === undefined ? '' : ` (last attempt threw: ${String(failure)})`;
      throw new Error(`waited ${timeoutMs} ms in vain for: ${typeof what === 'string' ? what : what()}${why}`);
    }
    await sleep(intervalMs);
  }
}

export interface StatsFile {
  path: string;
  size: number;
  residentBytes: number;
  dirtyBytes: number;
  faults: number;
  evictedPages: number;
  opens?: number;
}

export interface Stats {
  budgetBytes: number;
  residentBytes: number;
  dirtyBytes: number;
  pinnedBytes: number;
  pageRequests: number;
  suppliedPages: number;
  failedRequests: number;
  evictedPages: number;
  writebackBytes: number;
  readaheadHitPages: number;
  fuseSpin: { spinWaitNs: number; hits: number; misses: number };
  files: StatsFile[];
  [key: string]: unknown;
}

export interface MountOptions {
  /** --memory-budget (default 4MiB). */
  budget?: string;
  /** Extra CLI flags. */
  args?: string[];
  /** Use this backing directory instead of a fresh one. */
  backing?: string;
  /** Use this mountpoint instead of a fresh one. */
  mountpoint?: string;
  /** --log-level (default warn). */
  logLevel?: string;
  /** Files to create in the backing directory before mounting: relative path → content. */
  files?: Record<string, Uint8Array | string>;
  /** How long to wait for the mount to answer (default 20 s). */
  readyTimeoutMs?: number;
  /** Mount with no source directory (`mount --pager X <mnt>`, for pagers that serve none). */
  noBacking?: boolean;
  /** A command that runs the daemon (`['prlimit', '--nofile=256']`): the daemon is its last argument list. */
  wrap?: string[];
}

export class Mount {
  readonly stderrChunks: string[] = [];
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;
  /** Set once cleaned up. */
  done = false;

  constructor(readonly backing: string, readonly mnt: string, readonly child: ChildProcess) {
    child.stderr?.on('data', (d: Buffer) => this.stderrChunks.push(d.toString('utf8')));
    child.stdout?.on('data', (d: Buffer) => this.stderrChunks.push(d.toString('utf8')));
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
      this.exitCode = code;
      this.exitSignal = signal;
      resolve();
    }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get stderr(): string {
    return this.stderrChunks.join('');
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null;
  }

  /** Path through the mount. */
  p(rel = ''): string {
    return path.join(this.mnt, rel);
  }

  /** Path in the backing directory. */
  b(rel = ''): string {
    return path.join(this.backing, rel);
  }

  /**
   * The stats document. Read to EOF through one handle (not fs.readFile, which stops at the size
   * getattr reported: see the stats test that checks readFile on its own).
   */
  async stats(): Promise<Stats> {
    return JSON.parse((await readToEnd(this.p('.pagerfs/stats'))).toString('utf8')) as Stats;
  }

  /** Waits for the daemon to exit (up to `timeoutMs`); true if it did. */
  async waitExit(timeoutMs = 20_000): Promise<boolean> {
    if (!this.running) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => { timer = setTimeout(() => r(false), timeoutMs); });
    const ok = await Promise.race([this.exited.then(() => true as const), timeout]);
    clearTimeout(timer);
    return ok;
  }

  /** `pagerfs unmount <mnt>` and wait for the daemon to exit. Returns the CLI's result. */
  async unmount(extra: string[] = []): Promise<RunResult> {
    const res = await runCli(['unmount', this.mnt, ...extra], { timeoutMs: 30_000 });
    await this.waitExit(20_000);
    return res;
  }

  /** Unmounts by any means and removes nothing but the mount itself. Idempotent. */
  async cleanup(): Promise<void> {
    if (this.done) return;
    this.done = true;
    if (this.running && (await isMounted(this.mnt))) {
      await runCli(['unmount', this.mnt, '--timeout', '20s', '--lazy'], { timeoutMs: 25_000 }).catch(() => undefined);
    }
    if (!(await this.waitExit(this.running ? 20_000 : 0))) {
      this.child.kill('SIGKILL');
      await this.waitExit(5_000);
    }
    if (await isMounted(this.mnt)) {
      await run('fusermount', ['-uz', this.mnt], { timeoutMs: 10_000 }).catch(() => undefined);
      if (await isMounted(this.mnt)) await run('umount', ['-l', this.mnt], { timeoutMs: 10_000 }).catch(() => undefined);
    }
  }
}

const mounts: Mount[] = [];
let testStartLen = new Map<Mount, number>();

/** Spawns the daemon and waits until `<mnt>/.pagerfs/stats` can be read. */
export async function startMount(opts: MountOptions = {}): Promise<Mount> {
  const backing = opts.noBacking === true ? '' : opts.backing ?? await tempDir('pagerfs-backing-');
  const mnt = opts.mountpoint ?? await tempDir('pagerfs-mnt-');
  for (const [rel, content] of Object.entries(opts.files ?? {})) {
    await fsp.mkdir(path.dirname(path.join(backing, rel)), { recursive: true });
    await fsp.writeFile(path.join(backing, rel), content);
  }
  const args = [CLI, 'mount', ...(opts.noBacking === true ? [] : [backing]), mnt, '--memory-budget', opts.budget ?? '4MiB', '--log-level', opts.logLevel ?? 'warn', ...(opts.args ?? [])];
  const [cmd, ...pre] = [...(opts.wrap ?? []), process.execPath];
  const child = spawn(cmd, [...pre, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const m = new Mount(backing, mnt, child);
  mounts.push(m);
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (!m.running) {
      throw new Error(`pagerfs mount exited (code ${m.exitCode}, signal ${m.exitSignal}) before it was ready:\n${m.stderr}`);
    }
    if (await isMounted(mnt)) {
      try {
        await fsp.readFile(path.join(mnt, '.pagerfs/stats'), 'utf8');
        return m;
      } catch {
        // not ready yet
      }
    }
    if (Date.now() > deadline) throw new Error(`pagerfs mount did not become ready in time:\n${m.stderr}`);
    await sleep(25);
  }
}

/** Unmounts every mount still up (used by the hooks). */
export async function cleanupMounts(only?: (m: Mount) => boolean): Promise<void> {
  // Newest first: a later mount may sit on the mountpoint of an earlier, dead one (mount --force).
  for (const m of [...mounts].reverse()) {
    if (only && !only(m)) continue;
    await m.cleanup();
    mounts.splice(mounts.indexOf(m), 1);
  }
}

async function removeTempDirs(): Promise<void> {
  for (const dir of tempDirs.splice(0)) {
    // Never remove through a live mount: anything still mounted under it stays.
    const mounts = await fsp.readFile('/proc/self/mounts', 'utf8');
    if (mounts.split('\n').some((l) => (l.split(' ')[1] ?? '').startsWith(dir))) continue;
    await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Installs the hooks every FUSE test file uses: print the stderr of daemons touched by a failed
 * test, unmount mounts the test started itself (mounts started in beforeAll live until afterAll),
 * and at the end unmount everything and remove temp directories.
 */
export function useMountHooks(): void {
  const perFile = new Set<Mount>();
  beforeEach(() => {
    testStartLen = new Map(mounts.map((m) => [m, m.stderr.length]));
    for (const m of mounts) perFile.add(m);
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') {
      for (const m of mounts) {
        const from = testStartLen.get(m) ?? 0;
        const text = m.stderr.slice(from);
        process.stderr.write(`\n----- pagerfs daemon stderr (${m.mnt}, pid ${m.pid}, exit ${m.exitCode ?? m.exitSignal ?? 'running'}) -----\n` +
          `${text === '' ? '(empty)\n' : text}----- end -----\n`);
      }
    }
    await cleanupMounts((m) => !perFile.has(m));
  });
  afterAll(async () => {
    await cleanupMounts();
    await removeTempDirs();
  });
}

/** Reads a file through one handle until read returns 0, whatever its reported size. */
export { readToEnd } from '../../fs/client.js';

/** The error code of a failing async call, or 'OK'. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

/**
 * Every way of changing a read-only mount through `file` (an existing regular file) fails with
 * EROFS: open for writing, create, mkdir, unlink, rename, chmod, truncate, symlink. Returns the codes
 * by operation, for one toEqual.
 */
export async function changeCodes(m: Mount, file: string): Promise<Record<string, string>> {
  return {
    openForWrite: await codeOf(fsp.open(m.p(file), 'r+')),
    create: await codeOf(fsp.writeFile(m.p('new.txt'), 'x')),
    mkdir: await codeOf(fsp.mkdir(m.p('dir'))),
    unlink: await codeOf(fsp.unlink(m.p(file))),
    rename: await codeOf(fsp.rename(m.p(file), m.p('moved.txt'))),
    chmod: await codeOf(fsp.chmod(m.p(file), 0o600)),
    truncate: await codeOf(fsp.truncate(m.p(file), 0)),
    symlink: await codeOf(fsp.symlink(file, m.p('link'))),
  };
}

/** What changeCodes gives on a read-only mount. */
export const ALL_EROFS = {
  openForWrite: 'EROFS', create: 'EROFS', mkdir: 'EROFS', unlink: 'EROFS', rename: 'EROFS', chmod: 'EROFS', truncate: 'EROFS', symlink: 'EROFS',
};
