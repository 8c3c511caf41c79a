/**
 * The verified pager mounted for real (issue #9): `pagerfs seal`, then `mount --pager verified`
 * serves the sealed directory read-only and fails exactly the pages whose bytes no longer match.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { flipByte } from '../pager/helpers.js';
import { ALL_EROFS, PAGE, changeCodes, codeOf, isMounted, readToEnd, run, runCli, startMount, tempDir, useMountHooks, waitFor } from './harness.js';

useMountHooks();

const MiB = 1024 * 1024;

/** A directory with a 10 MiB file, small files and a nested one, sealed. Returns its path and contents. */
async function sealedDir(): Promise<{ dir: string; big: Buffer }> {
  const dir = await tempDir('pagerfs-sealed-');
  const big = randomBytes(10 * MiB);
  await fsp.writeFile(path.join(dir, 'big.bin'), big);
  await fsp.writeFile(path.join(dir, 'small.txt'), 'hello, sealed world\n');
  await fsp.writeFile(path.join(dir, 'empty'), '');
  await fsp.mkdir(path.join(dir, 'sub'));
  await fsp.writeFile(path.join(dir, 'sub/odd.bin'), randomBytes(3 * PAGE + 17));
  const res = await runCli(['seal', dir]);
  expect(res.code, res.stderr).toBe(0);
  expect(res.stdout).toMatch(/^Sealed ".*": 4 files, /);
  return { dir, big };
}

/** Reads each page of `file` on its own; returns the page indices that fail and the bytes of the rest. */
async function readPageByPage(file: string, size: number): Promise<{ failed: number[]; data: Buffer }> {
  const fh = await fsp.open(file, 'r');
  const data = Buffer.alloc(size);
  const failed: number[] = [];
  try {
    for (let p = 0; p * PAGE < size; p++) {
      try {
        const { bytesRead } = await fh.read(data, p * PAGE, Math.min(PAGE, size - p * PAGE), p * PAGE);
        expect(bytesRead).toBe(Math.min(PAGE, size - p * PAGE));
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('EIO');
        failed.push(p);
      }
    }
  } finally {
    await fh.close();
  }
  return { failed, data };
}

describe('the verified pager', () => {
  it('serves a sealed directory byte for byte, hides the sidecar, and checks every page it supplies', async () => {
    const { dir, big } = await sealedDir();
    const m = await startMount({ backing: dir, budget: '4MiB', args: ['--pager', 'verified'] });
    expect((await fsp.readdir(m.p())).sort()).toEqual(['.pagerfs', 'big.bin', 'empty', 'small.txt', 'sub']);
    expect(await codeOf(fsp.stat(m.p('.pagerfs-verity')))).toBe('ENOENT');
    expect(await codeOf(fsp.readdir(m.p('.pagerfs-verity')))).toBe('ENOENT');
    expect((await readToEnd(m.p('big.bin'))).equals(big)).toBe(true);
    expect(await fsp.readFile(m.p('small.txt'), 'utf8')).toBe('hello, sealed world\n');
    expect((await readToEnd(m.p('empty'))).length).toBe(0);
    expect((await readToEnd(m.p('sub/odd.bin'))).equals(await fsp.readFile(path.join(dir, 'sub/odd.bin')))).toBe(true);
    const stats = await m.stats();
    expect(stats.integrityFailures).toBe(0);
    // Every page supplied was checked (readahead pages too); 10 MiB under a 4 MiB budget evicted.
    expect(stats.verifiedPages).toBe(stats.suppliedPages);
    expect(stats.suppliedPages).toBeGreaterThanOrEqual(2560 + 1 + 4);
    expect(stats.evictedPages).toBeGreaterThan(0);
  });

  it('finds two flipped bytes in a 10 MiB file and fails exactly the pages they touch, while the rest reads right', async () => {
    const { dir, big } = await sealedDir();
    const flips = [100 * PAGE + 5, 1800 * PAGE + PAGE - 1];
    for (const at of flips) await flipByte(path.join(dir, 'big.bin'), at);
    const m = await startMount({ backing: dir, budget: '4MiB', logLevel: 'error', args: ['--pager', 'verified'] });
    const { failed, data } = await readPageByPage(m.p('big.bin'), big.length);
    expect(failed).toEqual([100, 1800]);
    for (let p = 0; p < big.length / PAGE; p++) {
      if (failed.includes(p)) continue;
      if (!data.subarray(p * PAGE, (p + 1) * PAGE).equals(big.subarray(p * PAGE, (p + 1) * PAGE))) throw new Error(`page ${p} differs`);
    }
    // A sequential reader (readahead on) gets every byte up to the first bad page, then EIO.
    expect(await codeOf(readToEnd(m.p('big.bin')))).toBe('EIO');
    const res = await run('dd', [`if=${m.p('big.bin')}`, 'of=/dev/null', 'bs=64k']);
    expect(res.stderr).toMatch(/Input\/output error/);
    expect(res.stderr).toMatch(/^6\+1 records in/m); // 409,600 bytes = 6 blocks of 64 KiB + the part of the 7th before page 100
    // The log names the path and the offset of each bad page.
    await waitFor(() => m.stderr.includes(`"offset":${1800 * PAGE}`), 10_000, 50, 'the log line of page 1800');
    expect(m.stderr).toMatch(new RegExp(`"path":"big.bin","page":100,"offset":${100 * PAGE}`));
    expect(m.stderr).toMatch(new RegExp(`"path":"big.bin","page":1800,"offset":${1800 * PAGE}`));
    expect(m.stderr).toMatch(/page failed verification/);
    const stats = await m.stats();
    expect(stats.integrityFailures).toBeGreaterThanOrEqual(2);
    expect(stats.failuresByStatus).toHaveProperty('ERR_IO_DATA_INTEGRITY');
    // Other files are unaffected.
    expect(await fsp.readFile(m.p('small.txt'), 'utf8')).toBe('hello, sealed world\n');
  });

  it('`seal --check` lists exactly the corrupted pages without mounting, and exits 1; a clean seal exits 0', async () => {
    const { dir } = await sealedDir();
    const clean = await runCli(['seal', '--check', dir]);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/all intact/);
    await flipByte(path.join(dir, 'big.bin'), 2000 * PAGE + 123);
    await flipByte(path.join(dir, 'sub/odd.bin'), 3 * PAGE + 16);
    const res = await runCli(['seal', '--check', dir]);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`big.bin: page 2000 (bytes ${2000 * PAGE}-${2001 * PAGE}) corrupted`);
    expect(res.stdout).toContain(`sub/odd.bin: page 3 (bytes ${3 * PAGE}-${3 * PAGE + 17}) corrupted`);
    expect(res.stdout.match(/corrupted$/gm)).toHaveLength(2);
  });

  it('a file changed after sealing, a damaged tree and a file added later get EIO at open, with the reason logged; other files serve', async () => {
    const { dir } = await sealedDir();
    await fsp.appendFile(path.join(dir, 'small.txt'), 'one more line\n');
    await fsp.writeFile(path.join(dir, 'added.txt'), 'not in the seal\n');
    const trees = path.join(dir, '.pagerfs-verity/trees');
    const odd = (await fsp.readdir(trees)).map((n) => path.join(trees, n));
    // Damage the tree of sub/odd.bin: the only tree of 4 leaves + root = 5 hashes.
    const sizes = await Promise.all(odd.map(async (f) => (await fsp.stat(f)).size));
    const oddTree = odd[sizes.indexOf(5 * 32)];
    expect(oddTree).toBeDefined();
    await flipByte(oddTree, 40);
    const m = await startMount({ backing: dir, logLevel: 'warn', args: ['--pager', 'verified'] });
    expect(await codeOf(fsp.readFile(m.p('small.txt')))).toBe('EIO');
    expect(await codeOf(fsp.readFile(m.p('sub/odd.bin')))).toBe('EIO');
    expect(await codeOf(fsp.readFile(m.p('added.txt')))).toBe('EIO');
    expect((await readToEnd(m.p('big.bin'))).length).toBe(10 * MiB);
    expect(m.stderr).toMatch(/changed since sealing \(size 20 -> 34\)/);
    expect(m.stderr).toMatch(/hash tree of \\"sub\/odd.bin\\" is damaged/);
    expect(m.stderr).toMatch(/\\"added.txt\\" is not sealed/);
  });

  it('nothing changes through the mount: writes, creates, mkdir, unlink, rename, chmod, truncate and setfattr are EROFS; hints still work', async () => {
    const { dir, big } = await sealedDir();
    const m = await startMount({ backing: dir, args: ['--pager', 'verified'] });
    expect(await changeCodes(m, 'small.txt')).toEqual(ALL_EROFS);
    const setx = await run('setfattr', ['-n', 'user.colour', '-v', 'red', m.p('small.txt')]);
    expect(setx.code).not.toBe(0);
    expect(setx.stderr).toMatch(/Read-only file system/);
    const touch = await run('setfattr', ['-n', 'user.pagerfs.hint', '-v', 'commit', m.p('big.bin')]);
    expect(touch.code, touch.stderr).toBe(0);
    const stats = await m.stats();
    expect(stats.files.find((f) => f.path === 'big.bin')?.residentBytes).toBeGreaterThan(0);
    expect((await fsp.readFile(path.join(dir, 'big.bin'))).equals(big)).toBe(true);
    expect((await fsp.readdir(dir)).sort()).toEqual(['.pagerfs-verity', 'big.bin', 'empty', 'small.txt', 'sub']);
  });

  it('an unsealed directory or a damaged manifest refuses the mount with one line; nothing is mounted', async () => {
    const plain = await tempDir('pagerfs-plain-');
    await fsp.writeFile(path.join(plain, 'a.txt'), 'a');
    const mnt = await tempDir('pagerfs-mnt-');
    const res = await runCli(['mount', '--pager', 'verified', plain, mnt], { timeoutMs: 20_000 });
    expect(res.code).toBe(4);
    expect(res.stderr).toMatch(/^pagerfs: Cannot mount: .* is not sealed: run `pagerfs seal /);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(await isMounted(mnt)).toBe(false);
    const { dir } = await sealedDir();
    await fsp.writeFile(path.join(dir, '.pagerfs-verity/manifest.json'), '{ not json');
    const res2 = await runCli(['mount', '--pager', 'verified', dir, mnt], { timeoutMs: 20_000 });
    expect(res2.code).toBe(4);
    expect(res2.stderr).toMatch(/manifest/i);
    expect(res2.stderr.trim().split('\n')).toHaveLength(1);
    expect(await isMounted(mnt)).toBe(false);
  });

  it('`seal` bad input: a missing directory, a file, and --check of an unsealed directory get one clear line (exit 3)', async () => {
    const dir = await tempDir('pagerfs-plain-');
    await fsp.writeFile(path.join(dir, 'f'), 'x');
    for (const [args, message] of [
      [['seal', path.join(dir, 'nope')], /directory does not exist/],
      [['seal', path.join(dir, 'f')], /not a directory/],
      [['seal', '--check', dir], /not sealed/],
    ] as Array<[string[], RegExp]>) {
      const res = await runCli(args);
      expect(res.code, res.stderr).toBe(3);
      expect(res.stderr).toMatch(message);
      expect(res.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(await fsp.readdir(dir)).toEqual(['f']);
  });
});
