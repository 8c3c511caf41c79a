/**
 * Pager modules mounted for real (issue #9): a pager written for the test, the host's handling of
 * pagers that fail, throw or never answer, the synthetic pager, and every bad --pager input.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { syntheticMismatch } from '../../pager/synthetic-content.js';
import { ALL_EROFS, PAGE, ROOT, changeCodes, codeOf, isMounted, python, readToEnd, runCli, startMount, tempDir, useMountHooks, waitFor } from './harness.js';
import { MAX_VMO_SIZE_BYTES } from '../../src/index.js';
// The test pager's own page text function: what it serves is what we expect.
// @ts-expect-error a plain .mjs module without types
import { pageText } from './pagers/page-text.mjs';

useMountHooks();

const PAGERS = path.join(ROOT, 'test/fs/pagers');
const pagerPath = (name: string): string => path.join(PAGERS, name);

interface LoggedRequest { path: string; key: number; offset: number; length: number }

describe('a pager written for the test (page-text.mjs)', () => {
  it('mounts, lists its declared files, and every page reads "page N"', async () => {
    const log = path.join(await tempDir(), 'requests.jsonl');
    const m = await startMount({
      noBacking: true,
      args: ['--pager', pagerPath('page-text.mjs'), '--pager-option', 'files=3', '--pager-option', 'pages=40', '--pager-option', `log=${log}`],
    });
    expect((await fsp.readdir(m.p())).sort()).toEqual(['.pagerfs', 'doc-0.txt', 'doc-1.txt', 'doc-2.txt']);
    const st = await fsp.stat(m.p('doc-1.txt'));
    expect(st.size).toBe(40 * PAGE);
    expect(st.isFile()).toBe(true);
    for (const name of ['doc-0.txt', 'doc-2.txt']) {
      const data = await readToEnd(m.p(name));
      expect(data.length).toBe(40 * PAGE);
      for (let n = 0; n < 40; n++) expect(data.subarray(n * PAGE, (n + 1) * PAGE).toString('latin1')).toBe(pageText(n));
    }
    // Packets: READ requests only for the files read, page-aligned, inside the file, one key per file.
    const requests = (await fsp.readFile(log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as LoggedRequest);
    expect(requests.length).toBeGreaterThan(0);
    expect(new Set(requests.map((r) => r.path))).toEqual(new Set(['doc-0.txt', 'doc-2.txt']));
    const keyOf = new Map<string, number>();
    for (const r of requests) {
      expect(r.offset % PAGE).toBe(0);
      expect(r.length % PAGE).toBe(0);
      expect(r.length).toBeGreaterThan(0);
      expect(r.offset + r.length).toBeLessThanOrEqual(40 * PAGE);
      if (!keyOf.has(r.path)) keyOf.set(r.path, r.key);
      expect(r.key).toBe(keyOf.get(r.path));
    }
    expect(keyOf.get('doc-0.txt')).not.toBe(keyOf.get('doc-2.txt'));
    // Every page read was asked for exactly once (nothing was evicted under a 4 MiB budget).
    for (const name of ['doc-0.txt', 'doc-2.txt']) {
      const pages = requests.filter((r) => r.path === name).flatMap((r) => Array.from({ length: r.length / PAGE }, (_, i) => r.offset / PAGE + i));
      expect(pages.sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    }
    const stats = await m.stats();
    expect(stats.suppliedPages).toBe(80);
    expect(stats.files.map((f) => f.path).sort()).toEqual(['doc-0.txt', 'doc-2.txt']);
  });

  it('is read-only: writes, creates, mkdir, unlink, rename, chmod, truncate and symlink get EROFS, and nothing changes', async () => {
    const m = await startMount({ noBacking: true, args: ['--pager', pagerPath('page-text.mjs')] });
    expect(await changeCodes(m, 'doc-0.txt')).toEqual(ALL_EROFS);
    expect((await fsp.readdir(m.p())).sort()).toEqual(['.pagerfs', 'doc-0.txt', 'doc-1.txt']);
    expect((await readToEnd(m.p('doc-1.txt'))).subarray(0, PAGE).toString('latin1')).toBe(pageText(0));
    expect(await codeOf(fsp.readFile(m.p('missing.txt')))).toBe('ENOENT');
  });
});

describe('a pager whose files change (listed.mjs)', () => {
  const expected = (name: string, size: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (i + name.length) % 251));

  it('shows files as the module lists them, a changed size as a new file, and keeps an open handle on the old one', async () => {
    const dir = await tempDir();
    const list = path.join(dir, 'list.json');
    await fsp.writeFile(list, JSON.stringify([{ path: 'a.bin', sizeBytes: 5000 }, { path: 'deep/b.bin', sizeBytes: 10 }]));
    const m = await startMount({ noBacking: true, args: ['--pager', pagerPath('listed.mjs'), '--pager-option', `list=${list}`] });
    expect((await fsp.readdir(m.p())).sort()).toEqual(['.pagerfs', 'a.bin', 'deep']);
    expect((await fsp.stat(m.p('deep'))).isDirectory()).toBe(true);
    expect((await fsp.stat(m.p('deep'))).nlink).toBe(2);
    expect((await fsp.stat(m.p())).nlink).toBe(3); // . and .., plus deep
    expect((await fsp.stat(m.p('a.bin'))).mode & 0o777).toBe(0o444);
    expect((await readToEnd(m.p('deep/b.bin'))).equals(expected('deep/b.bin', 10))).toBe(true);
    const old = await fsp.open(m.p('a.bin'), 'r');
    try {
      const before = Buffer.alloc(5000);
      expect((await old.read(before, 0, 5000, 0)).bytesRead).toBe(5000);
      expect(before.equals(expected('a.bin', 5000))).toBe(true);
      await fsp.writeFile(list, JSON.stringify([{ path: 'a.bin', sizeBytes: 9000 }, { path: 'c.bin', sizeBytes: 1 }]));
      expect((await fsp.readdir(m.p())).sort()).toEqual(['.pagerfs', 'a.bin', 'c.bin']);
      expect(await codeOf(fsp.stat(m.p('deep/b.bin')))).toBe('ENOENT');
      expect((await fsp.stat(m.p('a.bin'))).size).toBe(9000);
      expect((await readToEnd(m.p('a.bin'))).equals(expected('a.bin', 9000))).toBe(true);
      // The handle opened before the change still reads the file it opened.
      const again = Buffer.alloc(6000);
      expect((await old.read(again, 0, 6000, 0)).bytesRead).toBe(5000);
    } finally {
      await old.close();
    }
    // A bad list later is logged and the last good one stays.
    await fsp.writeFile(list, JSON.stringify([{ path: '../escape', sizeBytes: 1 }]));
    expect((await fsp.readdir(m.p())).sort()).toEqual(['.pagerfs', 'a.bin', 'c.bin']);
    expect(m.stderr).toMatch(/declared a bad file list; keeping the last good one/);
  });

  it('a bad first list refuses the mount with one line', async () => {
    const dir = await tempDir();
    const list = path.join(dir, 'list.json');
    await fsp.writeFile(list, JSON.stringify([{ path: 'a.bin', sizeBytes: -1 }]));
    const mnt = await tempDir('pagerfs-mnt-');
    const res = await runCli(['mount', '--pager', pagerPath('listed.mjs'), '--pager-option', `list=${list}`, mnt], { timeoutMs: 20_000 });
    expect(res.code).toBe(4);
    expect(res.stderr).toMatch(/^pagerfs: Cannot mount: .*declared file "a.bin" has a bad size -1/);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(await isMounted(mnt)).toBe(false);
  });
});

describe('the host answers for a pager that fails, throws or never answers (misbehaving.mjs)', () => {
  it('failing with each allowed status reaches the reader as its errno; a forbidden status as EIO', async () => {
    const m = await startMount({ noBacking: true, args: ['--pager', pagerPath('misbehaving.mjs')] });
    const expected: Record<string, string> = {
      IO: 'EIO', IO_DATA_INTEGRITY: 'EIO', BAD_STATE: 'EIO', NO_SPACE: 'ENOSPC', BUFFER_TOO_SMALL: 'ERANGE',
    };
    for (const [status, errno] of Object.entries(expected)) {
      expect(await codeOf(readToEnd(m.p(`fail-${status}.bin`))), status).toBe(errno);
    }
    expect(await codeOf(readToEnd(m.p('bad-status.bin')))).toBe('EIO');
    expect((await readToEnd(m.p('ok.txt'))).equals(Buffer.alloc(4 * PAGE, 'k'))).toBe(true);
    const stats = await m.stats();
    expect(stats.failedRequests).toBeGreaterThanOrEqual(5);
    expect(m.running).toBe(true);
  });

  it('a pager that throws gives EIO (logged with its stack) and the mount keeps serving', async () => {
    const m = await startMount({ noBacking: true, logLevel: 'error', args: ['--pager', pagerPath('misbehaving.mjs')] });
    expect(await codeOf(readToEnd(m.p('throws.bin')))).toBe('EIO');
    expect(await codeOf(readToEnd(m.p('throws.bin')))).toBe('EIO');
    expect((await readToEnd(m.p('ok.txt'))).equals(Buffer.alloc(4 * PAGE, 'k'))).toBe(true);
    expect(m.stderr).toMatch(/this pager throws on purpose/);
    expect(m.stderr).toMatch(/misbehaving\.mjs:\d+/); // the stack names the module's line
  });

  it('a pager that never answers gives ETIMEDOUT after --request-timeout while other files keep reading, and is counted', async () => {
    const m = await startMount({
      // 8 s: the other file's read must end first even on a loaded machine (it once took over
      // 1.2 s in a full run).
      noBacking: true, args: ['--pager', pagerPath('misbehaving.mjs'), '--request-timeout', '8s'],
    });
    const before = (await m.stats()).pageRequests;
    const started = Date.now();
    const hung = codeOf(readToEnd(m.p('silent.bin')));
    // Once that read's request has reached the pager, another file reads.
    await waitFor(async () => (await m.stats()).pageRequests > before, 10_000, 20, 'the silent file\'s page request');
    let settled = false;
    void hung.then(() => { settled = true; });
    expect((await readToEnd(m.p('ok.txt'))).equals(Buffer.alloc(4 * PAGE, 'k'))).toBe(true);
    expect(settled).toBe(false);
    expect(await hung).toBe('ETIMEDOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(8000);
    expect((await m.stats()).timedOutRequests).toBeGreaterThanOrEqual(1);
    // The job is given up by a sweep that runs every min(1 s, timeout / 4): up to a second after the
    // reader's own timeout, so it may not be counted yet when the read fails.
    await waitFor(async () => ((await m.stats()).abandonedJobs as number) >= 1, 5_000, 50, 'the silent job counted as abandoned');
    // The slot the silent job held was given back: a file read after the timeout still works.
    expect((await readToEnd(m.p('ok.txt'))).length).toBe(4 * PAGE);
  });

  it('a pager that answers every page but never settles its promise holds no slot: other files read at once', async () => {
    // Four such requests, one a file, used to hold the four job slots until --request-timeout, and
    // every other file's first read waited that long.
    const m = await startMount({ noBacking: true, args: ['--pager', pagerPath('misbehaving.mjs'), '--request-timeout', '20s'] });
    for (let n = 0; n < 4; n++) {
      expect((await readToEnd(m.p(`answers-then-hangs-${n}.bin`))).equals(Buffer.alloc(4 * PAGE, 'a'))).toBe(true);
    }
    const started = Date.now();
    expect((await readToEnd(m.p('ok.txt'))).equals(Buffer.alloc(4 * PAGE, 'k'))).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await m.stats()).abandonedJobs).toBe(0);
  });

  it('a supplyWith left unawaited whose fill throws is logged, its reader times out, and the daemon keeps serving', async () => {
    // It used to be an unhandled rejection: the daemon died and left the mount disconnected.
    const m = await startMount({ noBacking: true, args: ['--pager', pagerPath('misbehaving.mjs'), '--request-timeout', '3s'] });
    expect(await codeOf(readToEnd(m.p('unawaited-fill.bin')))).toBe('ETIMEDOUT');
    expect(m.running).toBe(true);
    expect((await readToEnd(m.p('ok.txt'))).equals(Buffer.alloc(4 * PAGE, 'k'))).toBe(true);
    expect(m.stderr).toMatch(/a supplyWith of the pager module failed/);
    expect(m.stderr).toMatch(/this fill throws on purpose/);
  });
});

describe('the synthetic pager', () => {
  it('serves a file 4x the budget; every byte equals syntheticFill, and pages were evicted and faulted again', async () => {
    const m = await startMount({
      noBacking: true, budget: '4MiB',
      args: ['--pager', 'synthetic', '--pager-option', 'files=2', '--pager-option', 'size=16MiB', '--pager-option', 'seed=7'],
    });
    expect((await fsp.readdir(m.p())).sort()).toEqual(['.pagerfs', 'synthetic-0.bin', 'synthetic-1.bin']);
    expect((await fsp.stat(m.p('synthetic-1.bin'))).size).toBe(16 * 1024 * 1024);
    for (let pass = 0; pass < 2; pass++) {
      const data = await readToEnd(m.p('synthetic-1.bin'));
      expect(data.length).toBe(16 * 1024 * 1024);
      expect(syntheticMismatch(7, 1, 0, data)).toBe(-1);
    }
    const other = await readToEnd(m.p('synthetic-0.bin'));
    expect(syntheticMismatch(7, 0, 0, other)).toBe(-1);
    expect(syntheticMismatch(7, 1, 0, other)).not.toBe(-1); // files differ
    const stats = await m.stats();
    expect(stats.evictedPages).toBeGreaterThan(4096);
    expect(stats.residentBytes).toBeLessThanOrEqual(stats.budgetBytes);
    expect(stats.suppliedPages).toBeGreaterThanOrEqual(3 * 4096); // the second pass faulted again
  });

  it('serves 64 GiB files with no disk: reads far into them are right', async () => {
    const m = await startMount({
      noBacking: true, budget: '8MiB', args: ['--pager', 'synthetic', '--pager-option', 'size=64GiB', '--pager-option', 'seed=3'],
    });
    const size = 64 * 1024 ** 3;
    expect((await fsp.stat(m.p('synthetic-0.bin'))).size).toBe(size);
    const fh = await fsp.open(m.p('synthetic-0.bin'), 'r');
    try {
      for (const at of [0, 5 * 1024 ** 3 + 12345, size - 3 * PAGE - 7]) {
        const buf = Buffer.alloc(3 * PAGE);
        const { bytesRead } = await fh.read(buf, 0, buf.length, at);
        expect(bytesRead).toBe(Math.min(buf.length, size - at));
        expect(syntheticMismatch(3, 0, at, buf.subarray(0, bytesRead))).toBe(-1);
      }
    } finally {
      await fh.close();
    }
  });
});

describe('statfs of a module tree past 2^32 blocks', () => {
  it('df shows the declared total of 2 files of 16 TiB, not a count wrapped at 32 bits', async () => {
    const m = await startMount({ noBacking: true, args: ['--pager', 'synthetic', '--pager-option', 'files=2', '--pager-option', `size=${MAX_VMO_SIZE_BYTES}`] });
    const res = await python('import os, sys; s = os.statvfs(sys.argv[1]); print(s.f_frsize * s.f_blocks)', [m.p()]);
    expect(res.code, res.stderr).toBe(0);
    expect(Number(res.stdout.trim())).toBe(2 * MAX_VMO_SIZE_BYTES);
  });
});

describe('bad --pager input gets one clear line and mounts nothing', () => {
  const cases: Array<{ name: string; args: (mnt: string, dir: string) => string[]; code: number; message: RegExp }> = [
    { name: 'an unknown built-in name', args: (mnt) => ['--pager', 'nosuch', mnt], code: 2, message: /unknown pager "nosuch": built-in pagers are directory, synthetic, verified/ },
    { name: 'a module path that does not exist', args: (mnt) => ['--pager', './nowhere/pager.mjs', mnt], code: 3, message: /pager module "\.\/nowhere\/pager\.mjs" not found/ },
    { name: 'a module that throws while loading', args: (mnt) => ['--pager', pagerPath('throws-on-load.mjs'), mnt], code: 2, message: /failed to load: broken on purpose at load \(at \/.*throws-on-load\.mjs:\d+:\d+\)/ },
    { name: 'a module of the wrong shape', args: (mnt) => ['--pager', pagerPath('not-a-pager.mjs'), mnt], code: 2, message: /create\(context\) is missing or not a function/ },
    { name: 'a factory that throws', args: (mnt) => ['--pager', pagerPath('create-throws.mjs'), mnt], code: 4, message: /the create-throws\.mjs pager failed to start: no source of pages today/ },
    // The three below used to be: no line number; exit 0 with nothing said; a stack trace.
    { name: 'a module with a syntax error (its line named)', args: (mnt) => ['--pager', pagerPath('syntax-error.mjs'), mnt], code: 2, message: /failed to load: missing \) after argument list \(at \/.*syntax-error\.mjs:5\)/ },
    { name: 'a factory whose promise never settles', args: (mnt) => ['--pager', pagerPath('create-never-settles.mjs'), mnt], code: 4, message: /the create-never-settles\.mjs pager failed to start: its create\(\) returned a promise that never settles/ },
    { name: 'a files() that throws at mount', args: (mnt) => ['--pager', pagerPath('files-throws.mjs'), mnt], code: 4, message: /the files-throws\.mjs pager's files\(\) threw: cannot list on purpose/ },
    { name: 'an option without =', args: (mnt) => ['--pager', 'synthetic', '--pager-option', 'files', mnt], code: 2, message: /Invalid --pager-option "files": expected key=value/ },
    { name: 'an option the pager does not take', args: (mnt) => ['--pager', 'synthetic', '--pager-option', 'colour=red', mnt], code: 2, message: /the synthetic pager takes files, size, seed/ },
    { name: 'an option given twice', args: (mnt) => ['--pager', 'synthetic', '--pager-option', 'seed=1', '--pager-option', 'seed=2', mnt], code: 2, message: /seed given twice/ },
    { name: 'a bad synthetic size', args: (mnt) => ['--pager', 'synthetic', '--pager-option', 'size=lots', mnt], code: 2, message: /Invalid --pager-option size=lots/ },
    { name: 'a bad synthetic file count', args: (mnt) => ['--pager', 'synthetic', '--pager-option', 'files=-1', mnt], code: 2, message: /Invalid --pager-option files=-1/ },
    { name: 'options for a pager that takes none', args: (mnt, dir) => ['--pager-option', 'x=1', dir, mnt], code: 2, message: /the directory pager takes no options/ },
    { name: 'a source directory for a pager that takes none', args: (mnt, dir) => ['--pager', 'synthetic', dir, mnt], code: 2, message: /the synthetic pager takes no source directory/ },
    { name: 'no source directory for the directory pager', args: (mnt) => ['--pager', 'directory', mnt], code: 2, message: /the directory pager serves a directory/ },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const mnt = await tempDir('pagerfs-mnt-');
      const dir = await tempDir('pagerfs-backing-');
      const res = await runCli(['mount', ...c.args(mnt, dir)], { timeoutMs: 20_000 });
      expect(res.code, res.stderr).toBe(c.code);
      expect(res.stderr).toMatch(c.message);
      expect(res.stderr.trim().split('\n')).toHaveLength(1);
      expect(res.stderr).toMatch(/^pagerfs: /);
      expect(await isMounted(mnt)).toBe(false);
    });
  }
});
