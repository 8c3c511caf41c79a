/**
 * `npm run demo` / `pagerfs demo`: mounts a sample backing directory under an 8 MiB budget and
 * shows the pager at work: page requests as they happen, reads of files larger than the budget
 * (evictions), an injected failure reaching `cat`, a write written back, the stats, a clean unmount.
 *
 * The daemon runs as a child process (as a user would run it), with --trace; its page-request
 * log lines are condensed here. Everything the demo claims it also checks, and it exits non-zero
 * when a check fails.
 */
import { spawn, execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StatsDocument } from './control.js';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cli.js');
const BUDGET = '8MiB';
const MiB = 1024 * 1024;

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string): string => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);

function say(text = ''): void {
  process.stdout.write(`${text}\n`);
}

function step(n: number, title: string): void {
  say();
  say(bold(`── ${n}. ${title}`));
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`demo check failed: ${what}`);
  say(`   ✓ ${what}`);
}

/** Deterministic sample bytes (so the demo can verify every byte it reads). */
function sampleBytes(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  return out;
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

interface TraceLine { command: string; path: string; offset: number; length: number; latencyMs: number }

class Daemon {
  readonly trace: TraceLine[] = [];
  private readonly child: ChildProcess;
  private exitCode: number | null = null;
  private readonly exited: Promise<number>;
  stderrTail = '';

  constructor(backing: string, mnt: string) {
    this.child = spawn(process.execPath, [CLI, 'mount', backing, mnt, '--memory-budget', BUDGET, '--trace', '--writeback-delay', '60s'],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    let partial = '';
    this.child.stderr!.on('data', (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        this.stderrTail = (this.stderrTail + line + '\n').slice(-4000);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          if (rec.msg === 'page request answered') this.trace.push(rec as unknown as TraceLine);
        } catch { /* not JSON: keep only in the tail */ }
      }
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => { this.exitCode = code ?? -1; resolve(this.exitCode); }));
  }

  async waitReady(mnt: string): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if (this.exitCode !== null) throw new Error(`the daemon exited (${this.exitCode}):\n${this.stderrTail}`);
      try {
        readFileSync(path.join(mnt, '.pagerfs', 'stats'));
        return;
      } catch { await new Promise((r) => setTimeout(r, 50)); }
    }
    throw new Error(`the mount did not come up:\n${this.stderrTail}`);
  }

  /** Trace lines since `from`, condensed: the first few, then a count. */
  showTrace(from: number, max = 6): number {
    const lines = this.trace.slice(from);
    for (const t of lines.slice(0, max)) {
      say(dim(`   page request ${t.command.padEnd(5)} ${t.path.padEnd(16)} [${(t.offset / 1024).toFixed(0).padStart(6)} KiB, +${(t.length / 1024).toFixed(0).padStart(4)} KiB)  answered in ${t.latencyMs.toFixed(2)} ms`));
    }
    if (lines.length > max) say(dim(`   … and ${lines.length - max} more page requests`));
    return this.trace.length;
  }

  wait(): Promise<number> {
    return this.exited;
  }

  kill(): void {
    if (this.exitCode === null) this.child.kill('SIGKILL');
  }
}

function stats(mnt: string): StatsDocument {
  return JSON.parse(readFileSync(path.join(mnt, '.pagerfs', 'stats'), 'utf8')) as StatsDocument;
}

function run(cmd: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export async function runDemo(): Promise<void> {
  const started = performance.now();
  const root = mkdtempSync(path.join(tmpdir(), 'pagerfs-demo-'));
  const backing = path.join(root, 'backing');
  const mnt = path.join(root, 'mnt');
  mkdirSync(path.join(backing, 'photos'), { recursive: true });
  mkdirSync(mnt);
  const big = sampleBytes(24 * MiB, 7);
  writeFileSync(path.join(backing, 'big.bin'), big);
  writeFileSync(path.join(backing, 'notes.txt'), 'pagerfs keeps file pages in pager-backed VMOs.\nA read of a missing page asks the pager.\n');
  for (let i = 0; i < 3; i++) writeFileSync(path.join(backing, 'photos', `cat${i}.jpg`), sampleBytes(300 * 1024, 100 + i));

  say(bold('pagerfs demo'));
  say(`backing directory ${backing} (24 MiB big.bin, notes.txt, photos/), mounted on ${mnt} with a ${BUDGET} budget`);
  const daemon = new Daemon(backing, mnt);
  let cleanExit = false;
  try {
    await daemon.waitReady(mnt);
    let seen = daemon.trace.length;

    step(1, 'Reading a small file: one page request, answered from the backing file');
    const notes = execFileSync('cat', [path.join(mnt, 'notes.txt')], { encoding: 'utf8' });
    process.stdout.write(notes.replace(/^/gm, '   | '));
    await new Promise((r) => setTimeout(r, 100));
    seen = daemon.showTrace(seen);
    check(notes === readFileSync(path.join(backing, 'notes.txt'), 'utf8'), 'cat through pagerfs equals the backing file');

    step(2, 'Reading 24 MiB through an 8 MiB budget: faults, readahead, eviction');
    const s0 = stats(mnt);
    const t0 = performance.now();
    const through = execFileSync('cat', [path.join(mnt, 'big.bin')], { maxBuffer: 64 * MiB });
    const ms = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
    seen = daemon.showTrace(seen);
    const s1 = stats(mnt);
    say(`   read ${(through.length / MiB).toFixed(0)} MiB in ${ms.toFixed(0)} ms: ${s1.readRequests - s0.readRequests} READ requests, ` +
      `${s1.suppliedPages - s0.suppliedPages} pages supplied (${s1.readaheadPages - s0.readaheadPages} by readahead), ` +
      `${s1.evictedPages - s0.evictedPages} pages evicted`);
    check(sha256(through) === sha256(big), 'every byte equals the backing file (sha256)');
    check(s1.evictedPages > s0.evictedPages, 'pages were evicted to stay within the budget');
    check(s1.residentBytes <= s1.budgetBytes, `resident ${(s1.residentBytes / MiB).toFixed(1)} MiB <= budget ${(s1.budgetBytes / MiB).toFixed(0)} MiB`);

    step(3, 'Reading the start again: those pages were evicted, so they fault in again');
    execFileSync('dd', [`if=${path.join(mnt, 'big.bin')}`, 'of=/dev/null', 'bs=128k', 'count=8', 'status=none']);
    await new Promise((r) => setTimeout(r, 100));
    seen = daemon.showTrace(seen, 3);
    const s2 = stats(mnt);
    check(s2.readRequests > s1.readRequests, `the first MiB was requested from the pager again (${s2.readRequests - s1.readRequests} requests)`);

    step(4, 'An injected failure: the pager fails requests for photos/cat1.jpg with ERR_IO');
    writeFileSync(path.join(mnt, '.pagerfs', 'faults'), 'photos/cat1.jpg=IO\n');
    say(`   .pagerfs/faults now holds: ${readFileSync(path.join(mnt, '.pagerfs', 'faults'), 'utf8').trim()}`);
    const bad = run('cat', [path.join(mnt, 'photos', 'cat1.jpg')]);
    say(`   $ cat photos/cat1.jpg > /dev/null   →   ${bad.stderr.trim()}`);
    check(bad.status !== 0 && /Input\/output error/.test(bad.stderr), 'cat reports "Input/output error"');
    const good = run('cmp', [path.join(mnt, 'photos', 'cat0.jpg'), path.join(backing, 'photos', 'cat0.jpg')]);
    check(good.status === 0, 'photos/cat0.jpg, without a rule, still reads correctly');
    writeFileSync(path.join(mnt, '.pagerfs', 'faults'), '');
    check(run('cmp', [path.join(mnt, 'photos', 'cat1.jpg'), path.join(backing, 'photos', 'cat1.jpg')]).status === 0,
      'with the rule cleared, photos/cat1.jpg reads correctly');
    seen = daemon.trace.length;

    step(5, 'Writing: DIRTY requests, dirty pages, then writeback on fsync');
    const text = `written through pagerfs at ${new Date().toISOString()}\n`;
    const target = path.join(mnt, 'hello.txt');
    execFileSync('python3', ['-c', 'import sys,os\nfd=os.open(sys.argv[1],os.O_CREAT|os.O_WRONLY|os.O_TRUNC,0o644)\nos.write(fd,sys.argv[2].encode())\nprint(sys.argv[3]); sys.stdout.flush()\nimport time; time.sleep(0.2)\nos.fsync(fd); os.close(fd)',
      target, text, 'x'], { encoding: 'utf8' });
    await new Promise((r) => setTimeout(r, 100));
    seen = daemon.showTrace(seen, 4);
    const back = readFileSync(path.join(backing, 'hello.txt'), 'utf8');
    say(`   backing/hello.txt: ${back.trim()}`);
    check(back === text, 'the backing file holds what was written, after fsync');
    const s3 = stats(mnt);
    check(s3.writebackBytes > s2.writebackBytes && s3.dirtyRequests > 0, `written back ${s3.writebackBytes - s2.writebackBytes} bytes after ${s3.dirtyRequests} DIRTY requests`);

    step(6, 'The stats (pagerfs stats)');
    const table = run(process.execPath, [CLI, 'stats', mnt]);
    process.stdout.write(table.stdout.replace(/^/gm, '   '));

    step(7, 'Unmounting (pagerfs unmount): write back, unmount, daemon exits');
    const u = run(process.execPath, [CLI, 'unmount', mnt]);
    const code = await daemon.wait();
    check(u.status === 0 && code === 0, 'pagerfs unmount succeeded and the daemon exited with status 0');
    cleanExit = true;
    say();
    say(bold(`demo finished in ${((performance.now() - started) / 1000).toFixed(1)} s`));
  } finally {
    if (!cleanExit) {
      daemon.kill();
      spawnSync('fusermount', ['-uz', mnt]);
      process.stderr.write(`daemon log tail:\n${daemon.stderrTail}\n`);
    }
    rmSync(root, { recursive: true, force: true });
  }
}
