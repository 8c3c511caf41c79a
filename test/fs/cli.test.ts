/**
 * The pagerfs command line: every bad input of `mount` gets one clear line on stderr, a non-zero exit
 * and no mount; `--help` of each command lists every flag; `stats` (table and --json); `unmount`
 * writes back dirty data before the daemon exits.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PAGE, ROOT, codeOf, isMounted, randomData, run, runCli, startMount, tempDir, useMountHooks, type RunResult } from './harness.js';
import { parseMountOptions, type RawMountOptions } from '../../fs/config.js';

useMountHooks();

/** Mountpoints a bad-input test might (wrongly) have mounted: cleared after each test. */
const maybeMounted: string[] = [];
afterEach(async () => {
  for (const mnt of maybeMounted.splice(0)) {
    if (await isMounted(mnt)) await run('fusermount', ['-uz', mnt]);
  }
});

interface Fixture {
  backing: string;
  mnt: string;
}

async function fixture(): Promise<Fixture> {
  const backing = await tempDir('pagerfs-backing-');
  await fsp.writeFile(path.join(backing, 'f'), 'x');
  const mnt = await tempDir('pagerfs-mnt-');
  return { backing, mnt };
}

/** Runs `pagerfs mount` expecting it to refuse; returns its result after the common checks. */
async function refuses(args: string[], mountpoint: string, expect_: { exit?: number; mention: RegExp }): Promise<RunResult> {
  maybeMounted.push(mountpoint);
  const entriesBefore = await fsp.readdir(mountpoint).catch(() => null);
  const res = await runCli(['mount', ...args], { timeoutMs: 15_000 });
  const what = `pagerfs mount ${args.join(' ')}\nexit ${res.code}${res.timedOut ? ' (timed out: it mounted?)' : ''}\nstderr: ${res.stderr}`;
  expect(res.timedOut, what).toBe(false);
  expect(res.code, what).not.toBe(0);
  if (expect_.exit !== undefined) expect(res.code, what).toBe(expect_.exit);
  const lines = res.stderr.trimEnd().split('\n');
  expect(lines, what).toHaveLength(1);
  expect(lines[0], what).toMatch(/^pagerfs: \S/);
  expect(lines[0], what).toMatch(expect_.mention);
  expect(res.stdout, what).toBe('');
  expect(await isMounted(mountpoint), what).toBe(false);
  expect(await fsp.readdir(mountpoint).catch(() => null), what).toEqual(entriesBefore);
  return res;
}

describe('mount refuses bad input with one line on stderr, a non-zero exit and nothing mounted', () => {
  it.each([['lots'], ['12XB'], ['-5'], [''], ['1..5M'], ['64 MiB x']])('unparsable --memory-budget %j', async (size) => {
    const { backing, mnt } = await fixture();
    await refuses([backing, mnt, '--memory-budget', size], mnt, { exit: 2, mention: /--memory-budget/ });
  });

  it.each([['0'], ['4096'], ['32k'], ['65535']])('--memory-budget %s is below the minimum of 16 pages', async (size) => {
    const { backing, mnt } = await fixture();
    const res = await refuses([backing, mnt, '--memory-budget', size], mnt, { exit: 2, mention: /--memory-budget/ });
    expect(res.stderr).toMatch(/minimum/);
    expect(res.stderr).toMatch(/16 pages|65536/);
  });

  it('a budget of exactly 16 pages (64KiB) is accepted and serves files', async () => {
    const m = await startMount({ budget: '64KiB', files: { 'f.bin': randomData(20 * PAGE) } });
    expect((await m.stats()).budgetBytes).toBe(16 * PAGE);
    expect((await fsp.readFile(m.p('f.bin'))).equals(await fsp.readFile(m.b('f.bin')))).toBe(true);
  });

  it('a missing backing directory', async () => {
    const { mnt } = await fixture();
    const missing = path.join(await tempDir(), 'no-such-dir');
    await refuses([missing, mnt], mnt, { mention: /does not exist/ });
  });

  it('a backing path that is not a directory', async () => {
    const { backing, mnt } = await fixture();
    await refuses([path.join(backing, 'f'), mnt], mnt, { mention: /not a directory/ });
  });

  it('a mountpoint that is not empty', async () => {
    const { backing, mnt } = await fixture();
    await fsp.writeFile(path.join(mnt, 'occupied'), 'x');
    await refuses([backing, mnt], mnt, { mention: /not empty/ });
  });

  it('a mountpoint that does not exist, or is a file', async () => {
    const { backing } = await fixture();
    const parent = await tempDir();
    await refuses([backing, path.join(parent, 'nope')], parent, { mention: /does not exist/ });
    await fsp.writeFile(path.join(parent, 'file'), 'x');
    await refuses([backing, path.join(parent, 'file')], parent, { mention: /not a directory/ });
  });

  it('a backing directory inside the mountpoint', async () => {
    const mnt = await tempDir('pagerfs-mnt-');
    const backing = path.join(mnt, 'inner');
    await fsp.mkdir(backing);
    await refuses([backing, mnt], mnt, { mention: /inside/ });
  });

  it('a --log-file that is a directory (it printed a stack trace)', async () => {
    const { backing, mnt } = await fixture();
    const dir = await tempDir('pagerfs-logdir-');
    await refuses([backing, mnt, '--log-file', dir], mnt, { exit: 3, mention: /log/ });
  });

  it('one inside the other through a symlink, or a mountpoint named ..x inside the backing directory', async () => {
    const { backing } = await fixture();
    const inner = path.join(backing, 'inner');
    await fsp.mkdir(inner);
    const link = path.join(await tempDir('pagerfs-links-'), 'to-inner');
    await fsp.symlink(inner, link);
    await refuses([backing, link], inner, { mention: /inside/ }); // was mounted: the daemon then lstat'ed through itself
    const dotted = path.join(backing, '..mnt');
    await fsp.mkdir(dotted);
    await refuses([backing, dotted], dotted, { mention: /inside/ });
  });

  it('a mountpoint inside the backing directory (and the same directory for both)', async () => {
    const { backing } = await fixture();
    const mnt = path.join(backing, 'sub', 'mnt');
    await fsp.mkdir(mnt, { recursive: true });
    await refuses([backing, mnt], mnt, { mention: /inside/ });
    const same = await tempDir();
    await refuses([same, same], same, { mention: /inside/ });
  });

  it.each([['noequals'], ['x=NOPE'], ['x:9-1=IO'], ['x:abc=IO'], ['=IO'], ['x=IO;count=-1'], ['x=IO;p=2'], ['x=delay:soon']])(
    'a bad --inject-fault rule %j', async (rule) => {
      const { backing, mnt } = await fixture();
      await refuses([backing, mnt, '--inject-fault', 'good.bin=IO', '--inject-fault', rule], mnt, { exit: 2, mention: /--inject-fault/ });
    });

  it.each([['loud'], ['INFO '], ['']])('a bad --log-level %j', async (level) => {
    const { backing, mnt } = await fixture();
    await refuses([backing, mnt, '--log-level', level], mnt, { exit: 2, mention: /--log-level/ });
  });

  it.each([
    ['--readahead', 'big'], ['--writeback-delay', 'soon'], ['--request-timeout', '0'], ['--request-timeout', 'never'],
    ['--attr-timeout', 'soon'], ['--attr-timeout', '2h'], ['--metrics-listen', 'localhost:99999'], ['--metrics-listen', 'nowhere'],
    ['--metrics-listen', '::1'], ['--metrics-listen', '[::1]'],
    ['--heap', 'tiny'], ['--heap', ''],
  ])('a bad %s %j', async (flag, value) => {
    const { backing, mnt } = await fixture();
    await refuses([backing, mnt, flag, value], mnt, { exit: 2, mention: new RegExp(flag) });
  });
});

describe('--heap', () => {
  it('auto is small up to a 256 MiB budget and fast above it; small and fast are taken as given', () => {
    const heapOf = (raw: RawMountOptions): string => parseMountOptions('/b', '/m', raw).heap;
    expect(heapOf({})).toBe('small'); // the default budget, 256MiB
    expect(heapOf({ memoryBudget: '16MiB' })).toBe('small');
    expect(heapOf({ memoryBudget: '256MiB', heap: 'auto' })).toBe('small');
    expect(heapOf({ memoryBudget: '257MiB' })).toBe('fast');
    expect(heapOf({ memoryBudget: '2GiB', heap: 'small' })).toBe('small');
    expect(heapOf({ memoryBudget: '16MiB', heap: 'fast' })).toBe('fast');
  });
});

describe('--huge-pages', () => {
  it('is off unless given', () => {
    expect(parseMountOptions('/b', '/m', {}).hugePages).toBe(false);
    expect(parseMountOptions('/b', '/m', { hugePages: true }).hugePages).toBe(true);
  });
});

describe('--spin-wait', () => {
  it('is off unless given, in ns; more than a second or not a duration is refused', () => {
    expect(parseMountOptions('/b', '/m', {}).spinWaitNs).toBe(0);
    expect(parseMountOptions('/b', '/m', { spinWait: '0' }).spinWaitNs).toBe(0);
    expect(parseMountOptions('/b', '/m', { spinWait: '50us' }).spinWaitNs).toBe(50_000);
    expect(parseMountOptions('/b', '/m', { spinWait: '1.5ms' }).spinWaitNs).toBe(1_500_000);
    expect(() => parseMountOptions('/b', '/m', { spinWait: '2s' })).toThrow('Invalid --spin-wait "2s": at most 1s');
    expect(() => parseMountOptions('/b', '/m', { spinWait: 'spin' })).toThrow('Invalid --spin-wait "spin": "spin" is not a duration');
  });
});

describe('--help', () => {
  /** The flags each command declares in fs/cli.ts (`.option('--x ...'` and `new Option('--x ...'`). */
  async function declaredFlags(): Promise<Record<string, string[]>> {
    const src = await fsp.readFile(path.join(ROOT, 'fs/cli.ts'), 'utf8');
    const out: Record<string, string[]> = {};
    const parts = src.split(/program\.command\('/).slice(1);
    for (const part of parts) {
      const name = part.slice(0, part.indexOf("'"));
      out[name] = [...part.matchAll(/(?:\.option\(|new Option\()'(--[a-z-]+)/g)].map((mm) => mm[1]);
    }
    return out;
  }

  it('of each command lists every flag it declares', async () => {
    const declared = await declaredFlags();
    // The source scan must find at least what the issue names.
    expect(declared.mount).toEqual(expect.arrayContaining(['--memory-budget', '--readahead', '--writeback-delay', '--request-timeout',
      '--attr-timeout', '--inject-fault', '--log-level', '--log-file', '--trace', '--metrics-listen', '--force', '--allow-other', '--kernel-cache', '--heap', '--huge-pages']));
    expect(declared.unmount).toEqual(expect.arrayContaining(['--timeout']));
    expect(declared.stats).toEqual(expect.arrayContaining(['--json', '--watch']));
    for (const [command, flags] of Object.entries(declared)) {
      const res = await runCli([command, '--help']);
      expect(res.code, command).toBe(0);
      for (const flag of flags) expect(res.stdout, `${command} --help lists ${flag}`).toMatch(new RegExp(`(^|\\s)${flag}(\\s|$)`, 'm'));
    }
  });

  it('of the program lists every command', async () => {
    const res = await runCli(['--help']);
    expect(res.code).toBe(0);
    for (const command of ['mount', 'unmount', 'stats', 'demo']) expect(res.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
  });
});

describe('stats', () => {
  it('prints a table with the budget, counters and busiest files, and --json prints the stats document', async () => {
    const m = await startMount({ budget: '2MiB', files: { 'hot/file.bin': randomData(40 * PAGE) } });
    await fsp.readFile(m.p('hot/file.bin'));
    const table = await runCli(['stats', m.mnt]);
    expect(table.stderr).toBe('');
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^budget 2MiB\s+resident 160KiB/m);
    expect(table.stdout).toMatch(/page requests \d+/);
    expect(table.stdout).toMatch(/evicted pages \d+/);
    expect(table.stdout).toMatch(/160KiB\s+0B\s+\d+\s+0\s+hot\/file\.bin/);
    const json = await runCli(['stats', m.mnt, '--json']);
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as { budgetBytes: number; residentBytes: number; files: Array<{ path: string }> };
    expect(doc.budgetBytes).toBe(2 * 1024 * 1024);
    expect(doc.residentBytes).toBe(40 * PAGE);
    expect(doc.files.map((f) => f.path)).toContain('hot/file.bin');
  });

  it('--json prints the whole document even when it grew since its size was last reported', async () => {
    const m = await startMount({ budget: '1MiB', files: { 'one.bin': randomData(PAGE), 'two-with-a-long-name.bin': randomData(PAGE) } });
    await fsp.readFile(m.p('one.bin'));
    await fsp.stat(m.p('.pagerfs/stats')); // the kernel caches this size for about a second
    await fsp.readFile(m.p('two-with-a-long-name.bin')); // one more files[] entry: the document grows
    const res = await runCli(['stats', m.mnt, '--json']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect((JSON.parse(res.stdout) as { files: Array<{ path: string }> }).files.map((f) => f.path).sort())
      .toEqual(['one.bin', 'two-with-a-long-name.bin']);
  });

  it('--json succeeds every time while the counters are changing under heavy reads', async () => {
    const m = await startMount({ budget: '1MiB', files: { 'a.bin': randomData(4 * 1024 * 1024) } });
    const reader = spawn('sh', ['-c', 'while :; do cat "$1" > /dev/null || exit 1; done', 'sh', m.p('a.bin')], { stdio: 'ignore', detached: true });
    const failures: string[] = [];
    const runs = 40;
    try {
      for (let i = 0; i < runs; i++) {
        const res = await runCli(['stats', m.mnt, '--json']);
        let ok = res.code === 0;
        try { JSON.parse(res.stdout); } catch { ok = false; }
        if (!ok) failures.push(`exit ${res.code}: ${res.stderr.split('\n')[0]}`);
      }
    } finally {
      // Its own process group: end the loop and the cat it is running.
      const exited = new Promise((r) => reader.once('exit', r));
      try { process.kill(-reader.pid!, 'SIGKILL'); } catch { reader.kill('SIGKILL'); }
      await exited;
    }
    expect(failures, `${failures.length} of ${runs} runs failed`).toEqual([]);
  }, 150_000);

  it('of a directory that is not a pagerfs mount fails with one line and a non-zero exit', async () => {
    const dir = await tempDir();
    const res = await runCli(['stats', dir]);
    expect(res.code).not.toBe(0);
    expect(res.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/^pagerfs: .*not a pagerfs mount/);
  });
});

describe('unmount', () => {
  it('refuses a mount with files open (exit 1, still mounted, nothing lost); --lazy writes back dirty data, detaches it and the daemon exits', async () => {
    const m = await startMount({ budget: '1MiB', args: ['--writeback-delay', '60s'], files: { 'f.bin': randomData(8 * PAGE) } });
    const data = randomData(5 * PAGE + 3);
    // A writer that keeps its handle open: its data is dirty in pagerfs, not yet in the backing file.
    const fh = await fsp.open(m.p('f.bin'), 'r+');
    await fh.write(data, 0, data.length, PAGE);
    expect((await m.stats()).dirtyBytes).toBeGreaterThan(0);
    expect((await fsp.readFile(m.b('f.bin'))).subarray(PAGE, PAGE + data.length).equals(data)).toBe(false);
    const busy = await runCli(['unmount', m.mnt]);
    expect(busy.code).toBe(1);
    expect(busy.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(busy.stderr).toMatch(/^pagerfs: Cannot unmount .*files are open through it .*--lazy/);
    expect(await isMounted(m.mnt)).toBe(true);
    expect(m.running).toBe(true);
    // The refused request changed nothing: the handle still writes and reads through the mount.
    await fh.write(Buffer.from('still here'), 0, 10, 0);
    const back = Buffer.alloc(10);
    await fh.read(back, 0, 10, 0);
    expect(back.toString()).toBe('still here');
    const res = await m.unmount(['--timeout', '20s', '--lazy']);
    expect(await codeOf(fh.write(Buffer.from('x'), 0, 1, 0))).toBe('ENOTCONN');
    await fh.close().catch(() => undefined);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(m.running).toBe(false);
    expect(m.exitCode).toBe(0);
    expect(await isMounted(m.mnt)).toBe(false);
    const backing = await fsp.readFile(m.b('f.bin'));
    expect(backing.subarray(PAGE, PAGE + data.length).equals(data)).toBe(true);
    expect(backing.subarray(0, 10).toString()).toBe('still here');
  });

  it('with no file open unmounts without --lazy', async () => {
    const m = await startMount({ files: { 'f.txt': 'abc' } });
    expect((await fsp.readFile(m.p('f.txt'), 'utf8'))).toBe('abc');
    const res = await m.unmount();
    expect(res.code, res.stderr).toBe(0);
    expect(await isMounted(m.mnt)).toBe(false);
    expect(m.exitCode).toBe(0);
  });

  it('of another filesystem refuses (exit 3) and leaves it mounted; a bad --timeout is a usage error (exit 2)', async () => {
    const dir = await tempDir('pagerfs-other-');
    expect((await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir])).code).toBe(0);
    try {
      const res = await runCli(['unmount', dir]);
      // Before, the failed control-file write read as a dead daemon and the mount was detached.
      expect(res.code, res.stderr).toBe(3);
      expect(res.stderr).toMatch(/^pagerfs: .*tmpfs mount, not pagerfs/);
      expect(await isMounted(dir)).toBe(true);
      const bad = await runCli(['unmount', dir, '--timeout', 'abc']);
      expect(bad.code, bad.stderr).toBe(2);
      expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1); // was a stack trace, exit 4
    } finally {
      await run('umount', ['-l', dir]);
    }
  });

  it('works through a mountpoint path with a symlink in it, and the daemon stays mounted (it unmounted itself after 1 s)', async () => {
    const real = await tempDir('pagerfs-real-');
    const mnt = path.join(real, 'mnt');
    await fsp.mkdir(mnt);
    const link = path.join(await tempDir('pagerfs-links-'), 'via');
    await fsp.symlink(real, link);
    const m = await startMount({ mountpoint: path.join(link, 'mnt'), files: { 'f.txt': 'through a link' } });
    await new Promise((r) => setTimeout(r, 2500)); // the watcher looks every second
    expect(m.running, m.stderr).toBe(true);
    expect(await fsp.readFile(path.join(mnt, 'f.txt'), 'utf8')).toBe('through a link');
    const res = await runCli(['unmount', path.join(link, 'mnt')]);
    expect(res.code, res.stderr).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
  });

  it('works on a mountpoint whose name has $ and a backquote in it (fuse-native unmounted through a shell)', async () => {
    const parent = await tempDir('pagerfs-odd-');
    const mnt = path.join(parent, 'mnt $HOME `true`');
    await fsp.mkdir(mnt);
    const m = await startMount({ mountpoint: mnt, files: { 'f.txt': 'odd' } });
    expect(await fsp.readFile(path.join(mnt, 'f.txt'), 'utf8')).toBe('odd');
    const res = await runCli(['unmount', mnt, '--timeout', '10s']);
    expect(res.code, res.stderr).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
    expect(await m.waitExit(10_000)).toBe(true);
    expect(m.exitCode, m.stderr).toBe(0);
  });

  it('of a directory where nothing is mounted fails with one line and a non-zero exit', async () => {
    const dir = await tempDir();
    const res = await runCli(['unmount', dir]);
    expect(res.code).not.toBe(0);
    expect(res.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/^pagerfs: .*nothing is mounted/);
  });
});
