/**
 * The user side of the eviction experiments, on real mounts: `pagerfs budget` (print, set, refused
 * shrinks), the vmtouch-style verbs touch / evict / lock / unlock / residency (summaries, progress on
 * a terminal only), `mount --max-locked`, the user.pagerfs.* attributes they use, delay faults, and
 * every bad input refused with one line and nothing changed.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  PAGE, codeOf, python, randomData, run, runCli, sha256, sleep, startMount, tempDir, useMountHooks,
  type Mount, type RunResult, type Stats,
} from './harness.js';
import { Tmux } from './tmux.js';

useMountHooks();

const KiB = 1024;
const MiB = 1024 * 1024;

function describeRun(args: string[], res: RunResult): string {
  return `pagerfs ${args.join(' ')}\nexit ${res.code}${res.timedOut ? ' (timed out)' : ''}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`;
}

/** Runs the CLI expecting success. */
async function ok(args: string[]): Promise<RunResult> {
  const res = await runCli(args, { timeoutMs: 120_000 });
  expect(res.code, describeRun(args, res)).toBe(0);
  return res;
}

/** Runs the CLI expecting one clear line on stderr, nothing on stdout and exit `exit`. */
async function refused(args: string[], exit: number, mention: RegExp): Promise<RunResult> {
  const res = await runCli(args, { timeoutMs: 60_000 });
  const what = describeRun(args, res);
  expect(res.code, what).toBe(exit);
  const lines = res.stderr.trimEnd().split('\n');
  expect(lines, what).toHaveLength(1);
  expect(lines[0], what).toMatch(/^pagerfs: \S/);
  expect(lines[0], what).toMatch(mention);
  expect(res.stdout, what).toBe('');
  return res;
}

/** The "Label: value" lines of a verb's summary. */
function summary(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of stdout.matchAll(/^\s*([A-Z][A-Za-z ]+): (.*)$/gm)) out[m[1]] = m[2];
  return out;
}

/** "resident/total" of a summary's Resident Pages line. */
function residentPages(s: Record<string, string>): [number, number] {
  const m = /^(\d+)\/(\d+)\s/.exec(s['Resident Pages'] ?? '');
  if (m === null) throw new Error(`no Resident Pages in ${JSON.stringify(s)}`);
  return [Number(m[1]), Number(m[2])];
}

function leadingNumber(text: string | undefined): number {
  const m = /^(\d+)/.exec(text ?? '');
  if (m === null) throw new Error(`no number at the start of ${JSON.stringify(text)}`);
  return Number(m[1]);
}

interface XResidency { pages: number; resident: number; dirty: number; locked: number; pinned: number; absent: number }

async function getfattr(file: string, name: string): Promise<string> {
  const res = await run('getfattr', ['--absolute-names', '--only-values', '-n', name, '--', file]);
  if (res.code !== 0) throw new Error(`getfattr ${name} ${file}: ${res.stderr}`);
  return res.stdout;
}

async function xResidency(file: string): Promise<XResidency> {
  return JSON.parse(await getfattr(file, 'user.pagerfs.residency')) as XResidency;
}

/** Pages by state letter in a user.pagerfs.map value (decoded here, independently of fs/xattr.ts). */
async function mapCounts(file: string): Promise<Record<string, number>> {
  const value = await getfattr(file, 'user.pagerfs.map');
  let bucket = 1;
  let body = value;
  const m = /^bucket=(\d+);(.*)$/.exec(value);
  if (m !== null) { bucket = Number(m[1]); body = m[2]; }
  const out: Record<string, number> = { '.': 0, c: 0, d: 0, l: 0, p: 0 };
  for (const part of body === '' ? [] : body.split(',')) out[part[0]] += Number(part.slice(1)) * bucket;
  return out;
}

function fileStats(s: Stats, rel: string): Stats['files'][number] | undefined {
  return s.files.find((f) => f.path === rel);
}

async function readThrough(file: string): Promise<Buffer> {
  return fsp.readFile(file);
}

/** A writer (python) holding `file` open with pages [first, end) written and not yet flushed. */
async function holdWriter(file: string, first: number, end: number): Promise<{ release: () => Promise<void> }> {
  const script = [
    'import os, sys',
    'fd = os.open(sys.argv[1], os.O_RDWR)',
    'first, end = int(sys.argv[2]), int(sys.argv[3])',
    'os.pwrite(fd, bytes([0x5a]) * ((end - first) * 4096), first * 4096)',
    'print("ready", flush=True)',
    'sys.stdin.read()',
    'os.close(fd)',
  ].join('\n');
  const child = spawn('python3', ['-c', script, file, String(first), String(end)], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
    child.on('exit', (code) => reject(new Error(`writer exited early (${code})`)));
  });
  return {
    release: () => new Promise<void>((resolve) => { child.on('exit', () => resolve()); child.stdin.end(); }),
  };
}

/** A python reader streaming `file` `passes` times; one sha256 line per pass. */
function streamReader(file: string, passes: number): { hashes: string[]; firstPass: Promise<void>; done: Promise<number | null> } {
  const script = [
    'import hashlib, sys',
    'for _ in range(int(sys.argv[2])):',
    '    h = hashlib.sha256()',
    '    with open(sys.argv[1], "rb", buffering=0) as f:',
    '        while True:',
    '            b = f.read(1 << 17)',
    '            if not b: break',
    '            h.update(b)',
    '    print(h.hexdigest(), flush=True)',
  ].join('\n');
  const child = spawn('python3', ['-c', script, file, String(passes)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const hashes: string[] = [];
  let buf = '';
  let first!: () => void;
  const firstPass = new Promise<void>((r) => { first = r; });
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      hashes.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      first();
    }
  });
  const done = new Promise<number | null>((r) => child.on('exit', (code) => { first(); r(code); }));
  return { hashes, firstPass, done };
}

// ---------------------------------------------------------------------------------------------------

describe('pagerfs budget', () => {
  it('prints the budget in force, and sets a new one that .pagerfs/budget and the stats then show', async () => {
    const m = await startMount({ budget: '4MiB' });
    expect((await ok(['budget', m.mnt])).stdout).toBe('4MiB (4194304 bytes)\n');
    const set = await ok(['budget', m.mnt, '6MiB']);
    expect(set.stdout).toMatch(/^budget 4MiB -> 6MiB \(6291456 bytes\)/);
    expect((await fsp.readFile(m.p('.pagerfs/budget'), 'utf8')).trim()).toBe(String(6 * MiB));
    expect((await m.stats()).budgetBytes).toBe(6 * MiB);
    // Any path inside the mount names it.
    await fsp.mkdir(m.b('sub'));
    expect((await ok(['budget', m.p('sub')])).stdout).toBe('6MiB (6291456 bytes)\n');
  });

  it('shrinking it while 4 readers stream files several times its size: every byte correct, resident at or under the new budget once the command returns and after, evictions counted', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 4; i++) files[`stream${i}.bin`] = randomData(16 * MiB);
    const m = await startMount({ budget: '8MiB', files });
    const readers = Object.keys(files).map((name) => ({ name, ...streamReader(m.p(name), 3) }));
    await Promise.all(readers.map((r) => r.firstPass));
    const before = await m.stats();
    const shrink = await ok(['budget', m.mnt, '2MiB']);
    expect(shrink.stdout).toMatch(/^budget 8MiB -> 2MiB \(2097152 bytes\)/);
    // Reclaim happens as part of the write: resident is under the new budget once the command returns.
    expect((await m.stats()).residentBytes).toBeLessThanOrEqual(2 * MiB);
    // ... and stays there while the readers go on.
    const samples: number[] = [];
    let finished = false;
    const sampler = (async () => {
      while (!finished) {
        const s = await m.stats();
        samples.push(s.residentBytes);
        expect(s.budgetBytes).toBe(2 * MiB);
        await sleep(25);
      }
    })();
    const codes = await Promise.all(readers.map((r) => r.done));
    finished = true;
    await sampler;
    expect(codes).toEqual([0, 0, 0, 0]);
    for (const r of readers) {
      expect(r.hashes, r.name).toHaveLength(3);
      for (const h of r.hashes) expect(h, r.name).toBe(sha256(files[r.name]));
    }
    expect(samples.length).toBeGreaterThan(0);
    expect(Math.max(...samples)).toBeLessThanOrEqual(2 * MiB);
    const after = await m.stats();
    expect(after.residentBytes).toBeLessThanOrEqual(2 * MiB);
    // Streaming 16 MiB files through 2 MiB evicts; the shrink itself evicted what was over it.
    expect(after.evictedPages - before.evictedPages).toBeGreaterThanOrEqual(2 * (16 * MiB / PAGE - 512));
    for (const name of Object.keys(files)) expect(fileStats(after, name)!.evictedPages, name).toBeGreaterThan(0);
  });

  it('a shrink below the locked pages is refused with one line and a non-zero exit, and changes nothing', async () => {
    const m = await startMount({ budget: '4MiB', files: { 'hot.bin': randomData(MiB), 'warm.bin': randomData(MiB) } });
    await ok(['lock', m.p('hot.bin')]);
    await readThrough(m.p('warm.bin'));
    const before = await m.stats();
    const warmBefore = await xResidency(m.p('warm.bin'));
    expect(before.lockedBytes).toBe(MiB);
    expect(warmBefore.resident).toBe(256);
    await refused(['budget', m.mnt, '512KiB'], 1, /Cannot set the budget .* to 512KiB: 1MiB of locked .*EBUSY.*budget stays 4MiB/);
    const after = await m.stats();
    expect(after.budgetBytes).toBe(4 * MiB);
    expect(after.lockedBytes).toBe(MiB);
    expect(after.evictedPages).toBe(before.evictedPages);
    expect(await xResidency(m.p('warm.bin'))).toEqual(warmBefore);
    expect(await xResidency(m.p('hot.bin'))).toMatchObject({ resident: 256, locked: 256 });
    // The daemon refuses it too when asked directly (EBUSY), and keeps the budget and the locks.
    expect(await codeOf(fsp.writeFile(m.p('.pagerfs/budget'), '512KiB\n'))).toBe('EBUSY');
    const direct = await m.stats();
    expect(direct.budgetBytes).toBe(4 * MiB);
    expect(direct.lockedBytes).toBe(MiB);
    // A server bug once reclaimed the clean pages of every generation before finding the locked
    // pages alone exceed the new budget: refused, but the other files' pages were gone.
    expect(await xResidency(m.p('warm.bin')), 'the other file after the direct refusal').toEqual(warmBefore);
  });

  it('a shrink to exactly the locked pages is refused, naming the smallest budget accepted; that one is accepted and other files read on (before: accepted, then every read of another file failed ENOSPC)', async () => {
    const cold = randomData(512 * KiB);
    const m = await startMount({ budget: '4MiB', files: { 'hot.bin': randomData(MiB), 'cold.bin': cold } });
    await ok(['lock', m.p('hot.bin')]);
    // 1MiB locked + 64KiB (MIN_BUDGET_PAGES) for reads = 1088KiB.
    const line = /Cannot set the budget .* to 1MiB: 1MiB of locked and 0B of pinned pages stay resident, and reads need 64KiB \(16 pages\) beside them: the smallest budget accepted now is 1088KiB \(unlock some first\) \(EBUSY\); the budget stays 4MiB/;
    await refused(['budget', m.mnt, '1MiB'], 1, line);
    await refused(['budget', m.mnt, '1084KiB'], 1, /smallest budget accepted now is 1088KiB/);
    expect((await m.stats()).budgetBytes).toBe(4 * MiB);
    // The daemon keeps the rule when asked directly.
    expect(await codeOf(fsp.writeFile(m.p('.pagerfs/budget'), '1MiB\n'))).toBe('EBUSY');
    expect((await m.stats()).budgetBytes).toBe(4 * MiB);
    expect((await ok(['budget', m.mnt, '1088KiB'])).stdout).toMatch(/^budget 4MiB -> 1\.1MiB \(1114112 bytes\)/);
    expect(sha256(await readThrough(m.p('cold.bin')))).toBe(sha256(cold));
    const after = await m.stats();
    expect(after.budgetBytes).toBe(1088 * KiB);
    expect(after.failedRequests).toBe(0);
    expect(after.residentBytes).toBeLessThanOrEqual(1088 * KiB);
    // Reads sized to what the lock leaves: they took 64KiB of the locked pages before.
    expect(after.lockedBytes).toBe(MiB);
    expect(await xResidency(m.p('hot.bin'))).toMatchObject({ resident: 256, locked: 256 });
  });

  it.each([['lots'], ['12XB'], ['-5'], [''], ['1..5M'], ['64 MiB x'], ['4k'], ['65535']])('a bad size %j is refused with one line (exit 2) and the budget stays', async (size) => {
    const m = await startMount({ budget: '4MiB' });
    await refused(['budget', m.mnt, size], 2, /Invalid budget/);
    expect((await m.stats()).budgetBytes).toBe(4 * MiB);
  });

  it('a path outside any pagerfs mount is refused with one line (exit 3)', async () => {
    const m = await startMount({ budget: '4MiB' });
    await refused(['budget', m.backing], 3, /not inside a pagerfs mount/);
    await refused(['budget', m.backing, '8MiB'], 3, /not inside a pagerfs mount/);
    await refused(['budget', path.join(m.mnt, 'no-such-dir'), '8MiB'], 3, /no such file or directory/);
    expect((await m.stats()).budgetBytes).toBe(4 * MiB);
  });
});

describe('pagerfs touch and evict', () => {
  it('touch faults every page in; touching more than the budget evicts older pages, and the summary says how many', async () => {
    const m = await startMount({ budget: '2MiB', files: { 'dir/a.bin': randomData(1536 * KiB), 'dir/sub/b.bin': randomData(1536 * KiB) } });
    const one = summary((await ok(['touch', m.p('dir/a.bin')])).stdout);
    expect(one.Files).toBe('1');
    expect(residentPages(one)).toEqual([384, 384]);
    expect(one['Resident Pages']).toMatch(/100%/);
    expect(leadingNumber(one['Evicted Pages'])).toBe(0);
    expect(one.Elapsed).toMatch(/^\d+\.\d+ seconds$/);
    expect((await xResidency(m.p('dir/a.bin'))).resident).toBe(384);

    const before = await m.stats();
    const both = summary((await ok(['touch', m.p('dir')])).stdout);
    const after = await m.stats();
    expect(both.Files).toBe('2');
    expect(both.Directories).toBe('2');
    const [resident, total] = residentPages(both);
    expect(total).toBe(768);
    expect(resident).toBeLessThanOrEqual(512);
    const evicted = leadingNumber(both['Evicted Pages']);
    expect(evicted).toBe(after.evictedPages - before.evictedPages);
    expect(evicted).toBeGreaterThan(0);
    expect(both['Evicted Pages']).toMatch(/older pages made room within the 2MiB budget/);
    // The newest file is whole; the older one lost pages.
    expect((await xResidency(m.p('dir/sub/b.bin'))).resident).toBe(384);
    expect((await xResidency(m.p('dir/a.bin'))).resident).toBeLessThan(384);
  });

  it('evict frees a file\'s pages and a later read faults it in again (supplied pages rise by its pages)', async () => {
    const data = randomData(MiB + 5 * KiB);
    const pages = Math.ceil(data.length / PAGE);
    const m = await startMount({ budget: '4MiB', files: { 'f.bin': data } });
    expect(sha256(await readThrough(m.p('f.bin')))).toBe(sha256(data));
    expect((await xResidency(m.p('f.bin'))).resident).toBe(pages);
    const s = summary((await ok(['evict', m.p('f.bin')])).stdout);
    expect(leadingNumber(s['Evicted Pages'])).toBe(pages);
    expect(s['Evicted Pages']).toMatch(/freed$/);
    expect(residentPages(s)).toEqual([0, pages]);
    expect(await xResidency(m.p('f.bin'))).toMatchObject({ resident: 0 });
    expect(fileStats(await m.stats(), 'f.bin')!.residentBytes).toBe(0);

    const before = await m.stats();
    expect(sha256(await readThrough(m.p('f.bin')))).toBe(sha256(data));
    const after = await m.stats();
    const supplied = after.suppliedPages - before.suppliedPages;
    expect(supplied).toBeGreaterThanOrEqual(pages);
    expect(supplied).toBeLessThanOrEqual(Math.ceil(pages * 1.1));
    expect(after.pageRequests).toBeGreaterThan(before.pageRequests);
    expect(fileStats(after, 'f.bin')!.faults).toBeGreaterThan(fileStats(before, 'f.bin')!.faults);
    expect((await xResidency(m.p('f.bin'))).resident).toBe(pages);
  });

  it('evict writes dirty pages back first, then frees them', async () => {
    const data = randomData(64 * PAGE);
    const m = await startMount({ budget: '4MiB', args: ['--writeback-delay', '60s'], files: { 'w.bin': data } });
    await readThrough(m.p('w.bin'));
    const writer = await holdWriter(m.p('w.bin'), 8, 16);
    try {
      expect(await xResidency(m.p('w.bin'))).toMatchObject({ resident: 64, dirty: 8 });
      const s = summary((await ok(['evict', m.p('w.bin')])).stdout);
      expect(leadingNumber(s['Evicted Pages'])).toBe(64);
      expect(await xResidency(m.p('w.bin'))).toMatchObject({ resident: 0, dirty: 0 });
      const backing = await fsp.readFile(m.b('w.bin'));
      expect(backing.subarray(8 * PAGE, 16 * PAGE).every((b) => b === 0x5a)).toBe(true);
      expect(sha256(backing.subarray(0, 8 * PAGE))).toBe(sha256(data.subarray(0, 8 * PAGE)));
    } finally {
      await writer.release();
    }
  });
});

describe('pagerfs lock and unlock', () => {
  it('locked pages survive a run that evicts everything else; unlock makes them evictable again', async () => {
    const m = await startMount({
      budget: '4MiB',
      files: { 'hot.bin': randomData(MiB), 'a.bin': randomData(6 * MiB), 'b.bin': randomData(6 * MiB), 'c.bin': randomData(6 * MiB) },
    });
    const s = summary((await ok(['lock', m.p('hot.bin')])).stdout);
    expect(leadingNumber(s['Locked Pages'])).toBe(256);
    expect(s['Locked Pages']).toMatch(/mount: 1MiB of the 4MiB budget locked/);
    expect(residentPages(s)).toEqual([256, 256]);
    const before = await m.stats();
    for (const f of ['a.bin', 'b.bin', 'c.bin']) {
      const res = await run('dd', [`if=${m.p(f)}`, 'of=/dev/null', 'bs=128k']);
      expect(res.code, res.stderr).toBe(0);
    }
    const after = await m.stats();
    expect(after.evictedPages - before.evictedPages).toBeGreaterThan(3 * 6 * 256 - 1024);
    expect(await xResidency(m.p('hot.bin'))).toMatchObject({ pages: 256, resident: 256, locked: 256 });
    expect(fileStats(after, 'hot.bin')!.evictedPages).toBe(0);
    expect(after.lockedBytes).toBe(MiB);
    for (const f of ['a.bin', 'b.bin']) expect((await xResidency(m.p(f))).resident, f).toBe(0);

    const u = summary((await ok(['unlock', m.p('hot.bin')])).stdout);
    expect(leadingNumber(u['Unlocked Pages'])).toBe(256);
    expect((await m.stats()).lockedBytes).toBe(0);
    for (const f of ['a.bin', 'b.bin']) await run('dd', [`if=${m.p(f)}`, 'of=/dev/null', 'bs=128k']);
    expect((await xResidency(m.p('hot.bin'))).resident).toBeLessThan(256);
    expect(fileStats(await m.stats(), 'hot.bin')!.evictedPages).toBeGreaterThan(0);
  });

  // Server bug: a COMMIT (touch) raises page requests of up to maxRequestPages (1024) pages whatever
  // the budget; supplied pages of an outstanding request cannot be evicted, so with a 4 MiB budget
  // (1024 pages) allocation fails, VmSystem.allocFrame falls back to EvictionLevel.OutOfMemory, and
  // that level takes ALWAYS_NEED pages.
  it('locked pages survive touching a file larger than the budget', async () => {
    const m = await startMount({ budget: '4MiB', files: { 'hot.bin': randomData(100 * KiB), 'big.bin': randomData(8 * MiB) } });
    await ok(['lock', m.p('hot.bin')]);
    await ok(['touch', m.p('big.bin')]);
    expect(await xResidency(m.p('hot.bin'))).toMatchObject({ resident: 25, locked: 25 });
  });

  it('locking beyond the share of the budget is refused (ENOMEM) with one clear line, and the run leaves nothing locked', async () => {
    const m = await startMount({ budget: '4MiB', files: { 'd/a.bin': randomData(MiB), 'd/b.bin': randomData(1536 * KiB), 'big.bin': randomData(2560 * KiB) } });
    // The locked pages that made the refusal (a.bin's 1 MiB), not what is left after the undo (before: "0B of 4MiB locked now").
    await refused(['lock', m.p('d')], 1, /Cannot lock ".*b\.bin" \(384 .*share of the budget \(1MiB of 4MiB locked when it was refused; see mount --max-locked\).*ENOMEM.*1 file locked before it was unlocked again/);
    expect((await m.stats()).lockedBytes).toBe(0);
    expect((await xResidency(m.p('d/a.bin'))).locked).toBe(0);
    expect((await xResidency(m.p('d/b.bin'))).locked).toBe(0);
    // One file alone over the share: refused before anything is faulted in.
    await refused(['lock', m.p('big.bin'), m.p('d/a.bin')], 1, /Cannot lock ".*big\.bin" \(640 .*ENOMEM.*nothing was locked/);
    expect((await xResidency(m.p('big.bin'))).resident).toBe(0);
    expect((await m.stats()).lockedBytes).toBe(0);
  });

  it('a refused lock run leaves a file an earlier run locked locked, even when every locked page is dirty', async () => {
    const m = await startMount({ budget: '4MiB', args: ['--writeback-delay', '60s'], files: { 'early.bin': randomData(64 * PAGE), 'big.bin': randomData(2560 * KiB) } });
    await ok(['lock', m.p('early.bin')]);
    // Every page written over by a process that keeps the file open: dirty, and still locked. (Not
    // from this process: each child it spawns closes its inherited copy of the descriptor at exec,
    // and that close's FLUSH writes the pages back.)
    const writer = await holdWriter(m.p('early.bin'), 0, 64);
    try {
      const res = await xResidency(m.p('early.bin'));
      expect(res.dirty).toBe(64);
      expect(res.locked, 'a dirty locked page is locked too').toBe(64);
      // Before: the run saw no clean locked page, took the lock for its own, and lifted it on the refusal.
      await refused(['lock', m.p('early.bin'), m.p('big.bin')], 1, /Cannot lock ".*big\.bin".*ENOMEM.*nothing was locked/);
      expect((await xResidency(m.p('early.bin'))).locked).toBe(64);
      expect((await m.stats()).lockedBytes).toBe(64 * PAGE);
    } finally {
      await writer.release();
    }
  });

  it('mount --max-locked lets locked pages hold a larger share of the budget', async () => {
    const m = await startMount({ budget: '4MiB', args: ['--max-locked', '75%'], files: { 'big.bin': randomData(2560 * KiB) } });
    const s = summary((await ok(['lock', m.p('big.bin')])).stdout);
    expect(leadingNumber(s['Locked Pages'])).toBe(640);
    expect((await m.stats()).lockedBytes).toBe(2560 * KiB);
    const f = await startMount({ budget: '4MiB', args: ['--max-locked', '0.25'], files: { 'one.bin': randomData(MiB + PAGE) } });
    await refused(['lock', f.p('one.bin')], 1, /ENOMEM/);
  });

  it('a lock that would leave reads fewer than 16 pages of the budget is refused with one line, even with --max-locked 100%', async () => {
    const m = await startMount({ budget: '1MiB', args: ['--max-locked', '100%'], files: { 'all.bin': randomData(MiB), 'most.bin': randomData(960 * KiB) } });
    await refused(['lock', m.p('all.bin')], 1,
      /Cannot lock ".*all\.bin" \(256 .*must leave 64KiB \(16 pages\) of the budget for reads \(at most 960KiB can be locked\).*ENOMEM.*nothing was locked/);
    expect((await m.stats()).lockedBytes).toBe(0);
    expect((await xResidency(m.p('all.bin'))).resident).toBe(0);
    await ok(['lock', m.p('most.bin')]);
    expect((await m.stats()).lockedBytes).toBe(960 * KiB);
    const res = await run('dd', [`if=${m.p('all.bin')}`, 'of=/dev/null', 'bs=128k']);
    expect(res.code, res.stderr).toBe(0);
  });

  it.each([['0'], ['1.5'], ['150%'], ['half'], ['-0.5'], ['']])('mount --max-locked %j is refused with one line and nothing is mounted', async (value) => {
    const backing = await tempDir('pagerfs-backing-');
    const mnt = await tempDir('pagerfs-mnt-');
    const res = await runCli(['mount', backing, mnt, '--max-locked', value], { timeoutMs: 15_000 });
    expect(res.timedOut).toBe(false);
    expect(res.code).toBe(2);
    expect(res.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/^pagerfs: Invalid --max-locked/);
    expect((await fsp.readFile('/proc/self/mounts', 'utf8')).includes(` ${mnt} `)).toBe(false);
  });
});

describe('pagerfs residency', () => {
  it('agrees with .pagerfs/stats, and the xattrs (residency and map) agree with both', async () => {
    const m = await startMount({
      budget: '4MiB',
      args: ['--readahead', '0', '--writeback-delay', '60s'],
      files: { 'r/full.bin': randomData(64 * PAGE), 'r/half.bin': randomData(128 * PAGE), 'r/dirty.bin': randomData(32 * PAGE), 'r/locked.bin': randomData(16 * PAGE), 'r/cold.bin': randomData(8 * PAGE) },
    });
    await readThrough(m.p('r/full.bin'));
    const fh = await fsp.open(m.p('r/half.bin'), 'r');
    await fh.read(Buffer.alloc(64 * PAGE), 0, 64 * PAGE, 0);
    await fh.close();
    await readThrough(m.p('r/dirty.bin'));
    await ok(['lock', m.p('r/locked.bin')]);
    const writer = await holdWriter(m.p('r/dirty.bin'), 4, 12);
    try {
      const res = await ok(['residency', m.p('r')]);
      const stats = await m.stats();
      const rows = [...res.stdout.matchAll(/^\s*(\d+)\s+(\d+)\s+([\d.]+%)\s+(\d+)\s+(\d+)\s+(\S+)$/gm)];
      expect(rows.map((r) => path.basename(r[6]))).toEqual(['cold.bin', 'dirty.bin', 'full.bin', 'half.bin', 'locked.bin']);
      const expected: Record<string, Partial<XResidency>> = {
        'cold.bin': { pages: 8, resident: 0, dirty: 0, locked: 0 },
        'dirty.bin': { pages: 32, resident: 32, dirty: 8, locked: 0 },
        'full.bin': { pages: 64, resident: 64, dirty: 0, locked: 0 },
        'half.bin': { pages: 128, resident: 64, dirty: 0, locked: 0 },
        'locked.bin': { pages: 16, resident: 16, dirty: 0, locked: 16 },
      };
      let lockedSum = 0;
      for (const r of rows) {
        const rel = path.relative(m.mnt, r[6]);
        const name = path.basename(rel);
        const cli = { resident: Number(r[1]), pages: Number(r[2]), dirty: Number(r[4]), locked: Number(r[5]) };
        const x = await xResidency(m.p(rel));
        const map = await mapCounts(m.p(rel));
        const st = fileStats(stats, rel);
        expect(cli, name).toMatchObject(expected[name]);
        expect(x, name).toMatchObject(cli);
        expect((st?.residentBytes ?? 0) / PAGE, name).toBe(cli.resident);
        expect((st?.dirtyBytes ?? 0) / PAGE, name).toBe(cli.dirty);
        expect(map.c + map.d + map.l + map.p, name).toBe(x.resident);
        expect(map['.'] + map.c + map.d + map.l + map.p, name).toBe(x.pages);
        expect(map.d, name).toBe(x.dirty);
        expect(map.l, name).toBe(x.locked); // no locked page is dirty here
        expect(map['.'], name).toBe(x.absent);
        lockedSum += x.locked;
      }
      expect(lockedSum * PAGE).toBe(stats.lockedBytes);
      const s = summary(res.stdout);
      expect(s.Files).toBe('5');
      expect(residentPages(s)).toEqual([176, 248]);
      expect(leadingNumber(s['Dirty Pages'])).toBe(8);
      expect(leadingNumber(s['Locked Pages'])).toBe(16);
      expect(s.Elapsed).toMatch(/seconds$/);

      // -v: one strip per file, 64 characters at most off a terminal, states told apart.
      const v = (await ok(['residency', '-v', m.p('r')])).stdout;
      const strips = new Map<string, string>();
      for (const mm of v.matchAll(/^(\S+)\n\[([^\]]*)\] (\d+)\/(\d+)/gm)) strips.set(path.basename(mm[1]), mm[2]);
      expect(v).toMatch(/^legend: O\/o resident {2}D\/d dirty {2}L\/l locked/m);
      expect(strips.get('full.bin')).toBe('O'.repeat(64));
      expect(strips.get('half.bin')).toBe('O'.repeat(32) + ' '.repeat(32));
      expect(strips.get('locked.bin')).toBe('L'.repeat(16));
      expect(strips.get('cold.bin')).toBe(' '.repeat(8));
      expect(strips.get('dirty.bin')).toBe('OOOO' + 'D'.repeat(8) + 'O'.repeat(20));
      expect(summary(v).Files).toBe('5');
    } finally {
      await writer.release();
    }
  });

  // A daemon keeps at most 64 closed files with their VMO at a 1 MiB budget (a quarter of its pages,
  // at least 64): a tree of 80 one-page files is larger than that cap.
  function capTree(): Record<string, Buffer> {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 80; i++) files[`t/f${String(i).padStart(2, '0')}.bin`] = randomData(PAGE);
    return files;
  }
  const livePaths = (s: Stats): string[] => s.files.map((f) => f.path).sort();

  it('over a tree with more files than the idle-file cap, residency reports the touched files resident and lets no page or VMO go (it reported 0 for them, having let them go)', async () => {
    const m = await startMount({ budget: '1MiB', files: capTree() });
    const hot = ['t/f77.bin', 't/f78.bin', 't/f79.bin']; // last in the walk: measured after 77 other files
    await ok(['touch', ...hot.map((r) => m.p(r))]);
    const before = await m.stats();
    expect(livePaths(before)).toEqual(hot);
    for (const args of [['residency', m.p('t')], ['residency', '-v', m.p('t')]]) {
      const res = await ok(args);
      const s = summary(res.stdout);
      expect(s.Files, args.join(' ')).toBe('80');
      expect(residentPages(s), args.join(' ')).toEqual([3, 80]);
      if (args[1] !== '-v') {
        const rows = [...res.stdout.matchAll(/^\s*(\d+)\s+(\d+)\s+([\d.]+%)\s+(\d+)\s+(\d+)\s+(\S+)$/gm)];
        expect(rows).toHaveLength(80);
        for (const r of rows) expect(Number(r[1]), r[6]).toBe(hot.includes(path.relative(m.mnt, r[6])) ? 1 : 0);
      }
      const after = await m.stats();
      expect(after.residentBytes, 'the walk kept every page it measured').toBe(before.residentBytes);
      expect(livePaths(after), 'and made no VMO').toEqual(hot);
    }
    for (const r of hot) expect(await xResidency(m.p(r))).toMatchObject({ pages: 1, resident: 1 });
    expect(await xResidency(m.p('t/f00.bin'))).toEqual({ pages: 1, resident: 0, dirty: 0, locked: 0, pinned: 0, absent: 1 });
    // evict and unlock of files with no VMO do nothing and make none either.
    const e = summary((await ok(['evict', m.p('t/f00.bin'), m.p('t/f01.bin')])).stdout);
    expect(leadingNumber(e['Evicted Pages'])).toBe(0);
    await ok(['unlock', m.p('t')]);
    const last = await m.stats();
    expect(livePaths(last)).toEqual(hot);
    expect(last.residentBytes).toBe(before.residentBytes);
  });

  it('touch over more files than the idle-file cap says which files were let go after their touch', async () => {
    const m = await startMount({ budget: '1MiB', files: capTree() });
    expect((await m.stats() as Stats & { idleFileCap: number | null }).idleFileCap).toBe(64);
    const s = summary((await ok(['touch', m.p('t')])).stdout);
    expect(residentPages(s)).toEqual([64, 80]);
    expect(s['Let Go']).toMatch(/^16 files \(64KiB\) after their touch: the daemon keeps the pages of at most 64 closed files, the least recently closed let go first .*: \S*t\/f00\.bin, \S*t\/f01\.bin, \S*t\/f02\.bin, …$/);
    expect(livePaths(await m.stats())).toHaveLength(64);
    // Within the cap, nothing is let go and the summary says nothing of it.
    const f = summary((await ok(['touch', m.p('t/f00.bin'), m.p('t/f01.bin')])).stdout);
    expect(f['Let Go']).toBeUndefined();
    expect(residentPages(f)).toEqual([2, 2]);
  });

  it('on a terminal, strips fit its width, and a run longer than a second shows progress before the summary', async () => {
    const slow: Record<string, Buffer> = {};
    for (let i = 0; i < 6; i++) slow[`slow/s${i}.bin`] = randomData(4 * PAGE);
    const m = await startMount({ budget: '4MiB', args: ['--inject-fault', 'slow/*.bin=delay:400ms'], files: { ...slow, 'wide.bin': randomData(512 * PAGE) } });
    const t = await Tmux.start(100, 30);
    try {
      await t.type(`node dist/fs/cli.js touch ${m.p('slow')}; echo TOUCH-$((1+1))`);
      const during = await t.waitFor(/touch \d\/6 files/);
      expect(during.join('\n')).toMatch(/touch \d\/6 files +\d+\/24 pages/);
      const end = await t.waitFor(/^TOUCH-2$/m, 30_000);
      const text = end.join('\n');
      expect(text).toMatch(/Files: 6/);
      expect(text).not.toMatch(/touch \d\/6 files/); // the progress line was erased
      await t.type('clear');
      await t.type(`node dist/fs/cli.js residency -v ${m.p('wide.bin')}; echo RES-$((1+1))`);
      const rows = await t.waitFor(/^RES-2$/m);
      const strip = rows.find((r) => r.startsWith('['));
      expect(strip).toBeDefined();
      expect(strip!.trimEnd().length).toBeLessThanOrEqual(100);
      expect(strip!.indexOf(']')).toBeGreaterThan(64);
    } finally {
      await t.close();
    }
    // Off a terminal the same slow run prints no progress and no escape codes.
    const res = await ok(['evict', m.p('slow')]);
    const again = await runCli(['touch', m.p('slow')], { timeoutMs: 60_000 });
    expect(again.code).toBe(0);
    for (const out of [res.stdout, again.stdout]) {
      expect(out).not.toMatch(/\x1b|\r/);
      expect(out).not.toMatch(/files +\d+\/\d+ pages/);
    }
  });
});

describe('delay faults', () => {
  it('a delay rule makes a read take at least the delay, and a read of a file without a rule completes while the delayed one still waits', async () => {
    const m = await startMount({ budget: '4MiB', args: ['--inject-fault', 'slow.bin=delay:3s'], files: { 'slow.bin': randomData(8 * PAGE), 'fast.bin': randomData(8 * PAGE) } });
    const script = [
      'import json, sys, threading, time',
      'res = {}',
      'def rd(name):',
      '    t0 = time.monotonic()',
      '    with open(sys.argv[1] + "/" + name, "rb", buffering=0) as f:',
      '        while f.read(1 << 17): pass',
      '    res[name] = [t0, time.monotonic()]',
      'a = threading.Thread(target=rd, args=("slow.bin",)); a.start()',
      'time.sleep(0.03)',
      'b = threading.Thread(target=rd, args=("fast.bin",)); b.start()',
      'a.join(); b.join()',
      'print(json.dumps(res))',
    ].join('\n');
    const res = await python(script, [m.mnt]);
    expect(res.code, res.stderr).toBe(0);
    const t = JSON.parse(res.stdout) as Record<string, [number, number]>;
    expect(t['slow.bin'][1] - t['slow.bin'][0]).toBeGreaterThanOrEqual(3);
    expect(t['fast.bin'][0]).toBeGreaterThan(t['slow.bin'][0]);
    expect(t['fast.bin'][1]).toBeLessThan(t['slow.bin'][1]);
  });
});

describe('bad input to the verbs gets one clear line and changes nothing', () => {
  const verbs = [['touch'], ['evict'], ['lock'], ['unlock'], ['residency']];

  it.each(verbs)('%s: a path outside any pagerfs mount, even next to good ones', async (verb) => {
    const m = await startMount({ budget: '4MiB', files: { 'in.bin': randomData(16 * PAGE), 'locked.bin': randomData(4 * PAGE) } });
    await ok(['lock', m.p('locked.bin')]);
    await readThrough(m.p('in.bin'));
    const before = await m.stats();
    const resBefore = await xResidency(m.p('in.bin'));
    await refused([verb, m.p('in.bin'), m.p('locked.bin'), m.b('in.bin')], 3, /not inside a pagerfs mount/);
    await refused([verb, m.p('in.bin'), '/definitely/not/here'], 3, /no such file or directory/);
    await refused([verb, m.p('.pagerfs/stats')], 3, /control directory/);
    await refused([verb, m.p('.pagerfs')], 3, /control directory/);
    const after = await m.stats();
    for (const k of ['pageRequests', 'suppliedPages', 'evictedPages', 'lockedBytes', 'residentBytes'] as const) expect(after[k], k).toBe(before[k]);
    expect(await xResidency(m.p('in.bin'))).toEqual(resBefore);
  });

  it.each(verbs)('%s: no paths, or an unknown option, is a usage error (exit 2)', async (verb) => {
    for (const args of [[verb], [verb, '--no-such-flag', '/tmp']]) {
      const res = await runCli(args);
      expect(res.code, describeRun(args, res)).toBe(2);
      expect(res.stderr).toMatch(/^error: /m);
    }
  });

  it('a filesystem mounted inside the mount is skipped by a walk (with a warning) and refused as an operand; it gets no xattr', async () => {
    const m = await startMount({ budget: '4MiB', files: { 'f.bin': randomData(8 * PAGE) } });
    const nested = m.p('nested');
    await fsp.mkdir(nested);
    const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', nested]);
    expect(mounted.code, `mount tmpfs inside the pagerfs mount: ${mounted.stderr}`).toBe(0);
    try {
      await fsp.writeFile(path.join(nested, 'other.bin'), randomData(2 * PAGE));
      for (const verb of ['touch', 'evict', 'lock', 'unlock', 'residency']) {
        const res = await ok([verb, m.p('')]);
        expect(res.stderr, verb).toMatch(/skipping directory ".*nested": another filesystem is mounted there/);
        await refused([verb, path.join(nested, 'other.bin')], 3, /another filesystem, mounted inside the pagerfs mount/);
        await refused([verb, nested], 3, /another filesystem/);
      }
      // Before: the walk set user.pagerfs.hint on the tmpfs file, a real attribute there.
      const attrs = await run('getfattr', ['--absolute-names', '-d', '-m', '-', path.join(nested, 'other.bin')]);
      expect(attrs.code, attrs.stderr).toBe(0);
      expect(attrs.stdout).not.toMatch(/pagerfs/);
    } finally {
      const res = await run('umount', [nested]);
      if (res.code !== 0) await run('umount', ['-l', nested]);
    }
  });

  it('a special file inside a mount is refused (not a regular file or a directory)', async () => {
    const m = await startMount({ budget: '4MiB' });
    expect((await run('mkfifo', [m.b('fifo')])).code).toBe(0);
    await refused(['touch', m.p('fifo')], 3, /not a regular file or a directory/);
  });

  it('an unknown hint written to user.pagerfs.hint is EINVAL and changes nothing', async () => {
    const m = await startMount({ budget: '4MiB', files: { 'f.bin': randomData(16 * PAGE) } });
    const before = await xResidency(m.p('f.bin'));
    const res = await run('setfattr', ['-n', 'user.pagerfs.hint', '-v', 'lock_forever', m.p('f.bin')]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/Invalid argument/);
    expect(await xResidency(m.p('f.bin'))).toEqual(before);
    expect((await m.stats()).lockedBytes).toBe(0);
  });
});
