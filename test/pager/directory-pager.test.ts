import { afterEach, describe, expect, it, vi } from 'vitest';
import { promises as fsp, linkSync, mkdirSync, readdirSync, readlinkSync, renameSync, statSync, symlinkSync, truncateSync, unlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { ZxError, ZxStatus } from '../../src/index.js';
import { DirectoryPager, statusForIoError, type PagedFile, type PageJob } from '../../pager/index.js';
import {
  PAGE_SIZE, cleanupEnvs, deferred, errnoError, expectZx, holdBackingReads, makeEnv, memoryLogger, pattern, readVmo, rejectionStatus, tick, type Env,
} from './helpers.js';

afterEach(cleanupEnvs);

const MiB = 1024 * 1024;

/** A DirectoryPager whose next answerRead throws, before returning (sync) or from its promise (async). */
class ThrowingPager extends DirectoryPager {
  throwNext: 'sync' | 'async' | null = null;

  protected override answerRead(file: PagedFile, job: PageJob): Promise<void> | void {
    const how = this.throwNext;
    this.throwNext = null;
    if (how === 'sync') throw new Error('answerRead broke before returning');
    if (how === 'async') return Promise.reject(new Error('answerRead broke in its promise'));
    return super.answerRead(file, job);
  }
}

describe('a pager handler that throws', () => {
  it.each(['sync', 'async'] as const)('(%s) fails only its request with ERR_IO; the next read of the page works', async (how) => {
    const env = makeEnv({ budgetPages: 256, readaheadMaxBytes: 0, noStart: true });
    const dp = new ThrowingPager({ system: env.system, backingDir: env.dir });
    dp.start();
    try {
      const data = pattern(8 * PAGE_SIZE, 3);
      env.put('t.bin', data);
      const f = await dp.open('t.bin');
      dp.throwNext = how;
      await expectZx(f.vmo.read(Buffer.alloc(PAGE_SIZE), 2 * PAGE_SIZE), ZxStatus.ERR_IO);
      expect(dp.metrics.failuresByStatus.ERR_IO).toBe(1);
      expect((await readVmo(f.vmo, 2 * PAGE_SIZE, PAGE_SIZE)).equals(data.subarray(2 * PAGE_SIZE, 3 * PAGE_SIZE))).toBe(true);
      expect((await readVmo(f.vmo, 0, data.length)).equals(data)).toBe(true);
    } finally {
      await dp.shutdown();
    }
  });
});

describe('reading through pager VMOs', () => {
  it.each([
    ['empty', 0],
    ['one byte', 1],
    ['one byte short of a page', PAGE_SIZE - 1],
    ['exactly one page', PAGE_SIZE],
    ['one byte past a page', PAGE_SIZE + 1],
    ['several MiB', 3 * MiB + 123],
  ])('a %s file reads back byte for byte', async (_name, size) => {
    const env = makeEnv({ budgetPages: 2048, validate: size < MiB });
    const data = pattern(size, size + 7);
    env.put('f.bin', data);
    const f = await env.dp.open('f.bin');
    expect(f.vmo.contentSizeBytes).toBe(size);
    expect(f.vmo.sizeBytes).toBe(Math.ceil(size / PAGE_SIZE) * PAGE_SIZE);
    // Whole file in one call, then again in odd chunks that straddle page boundaries.
    expect((await readVmo(f.vmo, 0, size)).equals(data)).toBe(true);
    expect((await readVmo(f.vmo, 0, size, 5000)).equals(data)).toBe(true);
    env.checkBudget();
  });

  it('the tail of the last page past the end of the file reads as zeros', async () => {
    const env = makeEnv();
    env.put('f.bin', pattern(PAGE_SIZE + 10).fill(0xff));
    const f = await env.dp.open('f.bin');
    const page = await readVmo(f.vmo, PAGE_SIZE, PAGE_SIZE);
    expect(page.subarray(0, 10).every((b) => b === 0xff)).toBe(true);
    expect(page.subarray(10).every((b) => b === 0)).toBe(true);
  });

  it('a file larger than the budget reads back in chunks, evicting as it goes, within the budget', async () => {
    const env = makeEnv({ budgetPages: 256, validate: true });
    const data = pattern(5 * MiB + 77, 3);
    env.put('big.bin', data);
    const f = await env.dp.open('big.bin');
    const out = await readVmo(f.vmo, 0, data.length, 96 * 1024 + 5, () => env.checkBudget());
    expect(out.equals(data)).toBe(true);
    expect(f.vmo.evictedPagedCount).toBeGreaterThan(0);
    // Evicted pages come back from the file again.
    expect((await readVmo(f.vmo, 0, 64 * 1024)).equals(data.subarray(0, 64 * 1024))).toBe(true);
    env.checkBudget();
  });

  it('a single read call spanning more than the whole budget completes with the right bytes', async () => {
    const env = makeEnv({ budgetPages: 256 });
    const data = pattern(3 * MiB, 4);
    env.put('big.bin', data);
    const f = await env.dp.open('big.bin');
    const out = Buffer.alloc(data.length);
    await f.vmo.read(out, 0);
    expect(out.equals(data)).toBe(true);
    env.checkBudget();
  });

  it('concurrent readers of one range cause one backing read', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const data = pattern(256 * 1024, 5);
    env.put('f.bin', data);
    const f = await env.dp.open('f.bin');
    const readsBefore = env.dp.metrics.backingReads;
    const requestsBefore = env.dp.metrics.readRequests;
    const outs = await Promise.all(Array.from({ length: 8 }, () => readVmo(f.vmo, 16 * 1024, 64 * 1024)));
    for (const o of outs) expect(o.equals(data.subarray(16 * 1024, 80 * 1024))).toBe(true);
    expect(env.dp.metrics.backingReads - readsBefore).toBe(1);
    expect(env.dp.metrics.readRequests - requestsBefore).toBe(1);
  });

  it('many concurrent readers over several files all read correct bytes under a 64-page budget', async () => {
    const env = makeEnv({ budgetPages: 64, validate: true });
    const files = [0, 1, 2, 3].map((i) => ({ name: `d${i % 2}/f${i}.bin`, data: pattern(300 * 1024 + i * 4321, 100 + i) }));
    for (const x of files) env.put(x.name, x.data);
    const opened = await Promise.all(files.map((x) => env.dp.open(x.name)));
    let overs = 0;
    const sampler = setInterval(() => { if (env.system.arena.usedFrames > env.system.arena.limitFrames) overs++; }, 1);
    try {
      await Promise.all(Array.from({ length: 16 }, async (_, r) => {
        const i = r % files.length;
        const { data } = files[i];
        const chunk = 7000 + r * 613;
        // Readers start at different places and wrap around, so they overlap and contend.
        const start = ((r * 37) % 50) * 4096 % data.length;
        for (let done = 0; done < data.length; done += chunk) {
          const off = (start + done) % data.length;
          const n = Math.min(chunk, data.length - off);
          const out = Buffer.alloc(n);
          await opened[i].vmo.read(out, off);
          expect(out.equals(data.subarray(off, off + n))).toBe(true);
          env.checkBudget();
        }
      }));
    } finally {
      clearInterval(sampler);
    }
    expect(overs).toBe(0);
    env.checkBudget();
    expect(env.dp.metrics.failedRequests).toBe(0);
  });

  it('reading past the end of the VMO is OUT_OF_RANGE and asks the pager nothing', async () => {
    const env = makeEnv();
    env.put('f.bin', pattern(100));
    const f = await env.dp.open('f.bin');
    const before = env.dp.metrics.readRequests;
    await expectZx(f.vmo.read(Buffer.alloc(10), PAGE_SIZE), ZxStatus.ERR_OUT_OF_RANGE);
    await tick();
    expect(env.dp.metrics.readRequests).toBe(before);
  });
});

describe('backing files changed behind the pager', () => {
  it('a backing file removed while open keeps serving its bytes (the pager holds an fd)', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const data = pattern(64 * 1024, 9);
    env.put('gone.bin', data);
    const f = await env.dp.open('gone.bin');
    expect((await readVmo(f.vmo, 0, PAGE_SIZE)).equals(data.subarray(0, PAGE_SIZE))).toBe(true);
    unlinkSync(path.join(env.dir, 'gone.bin'));
    expect((await readVmo(f.vmo, 0, data.length, 3000)).equals(data)).toBe(true);
    expect(env.dp.metrics.failedRequests).toBe(0);
  });

  it('a backing file truncated behind pagerfs fails reads of the missing part with IO_DATA_INTEGRITY; earlier pages still read', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const data = pattern(6 * PAGE_SIZE, 10);
    env.put('shrunk.bin', data);
    const f = await env.dp.open('shrunk.bin');
    expect((await readVmo(f.vmo, 0, PAGE_SIZE)).equals(data.subarray(0, PAGE_SIZE))).toBe(true);
    truncateSync(path.join(env.dir, 'shrunk.bin'), 2 * PAGE_SIZE + 100);
    // Page 1 is whole in the backing file: it reads.
    expect((await readVmo(f.vmo, PAGE_SIZE, PAGE_SIZE)).equals(data.subarray(PAGE_SIZE, 2 * PAGE_SIZE))).toBe(true);
    // Page 2 is partly there, pages 3.. are gone: never invented zeros.
    await expectZx(f.vmo.read(Buffer.alloc(10), 2 * PAGE_SIZE + 200), ZxStatus.ERR_IO_DATA_INTEGRITY);
    await expectZx(f.vmo.read(Buffer.alloc(PAGE_SIZE), 4 * PAGE_SIZE), ZxStatus.ERR_IO_DATA_INTEGRITY);
    // A read spanning good and missing pages fails too.
    await expectZx(f.vmo.read(Buffer.alloc(3 * PAGE_SIZE), PAGE_SIZE), ZxStatus.ERR_IO_DATA_INTEGRITY);
    // The pages read before are still there.
    expect((await readVmo(f.vmo, 0, 2 * PAGE_SIZE)).equals(data.subarray(0, 2 * PAGE_SIZE))).toBe(true);
    expect(env.dp.metrics.failuresByStatus.ERR_IO_DATA_INTEGRITY).toBeGreaterThanOrEqual(2);
  });

  it('a request that straddles the new end supplies the whole pages that arrived and fails the rest', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const data = pattern(8 * PAGE_SIZE, 11);
    env.put('s.bin', data);
    const f = await env.dp.open('s.bin');
    truncateSync(path.join(env.dir, 's.bin'), 3 * PAGE_SIZE);
    // One request for pages 0..7: pages 0..2 arrive, 3..7 do not.
    await expectZx(f.vmo.read(Buffer.alloc(8 * PAGE_SIZE), 0), ZxStatus.ERR_IO_DATA_INTEGRITY);
    const readsBefore = env.dp.metrics.backingReads;
    expect((await readVmo(f.vmo, 0, 3 * PAGE_SIZE)).equals(data.subarray(0, 3 * PAGE_SIZE))).toBe(true);
    expect(env.dp.metrics.backingReads).toBe(readsBefore); // they were supplied by the failed request
  });

  it('a backing read error fails only its own requests; other ranges and files still read', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const a = pattern(16 * PAGE_SIZE, 12);
    const b = pattern(4 * PAGE_SIZE, 13);
    env.put('a.bin', a);
    env.put('b.bin', b);
    const fa = await env.dp.open('a.bin');
    const fb = await env.dp.open('b.bin');
    // The disk fails reads of pages 4..7 of a.bin (EIO), then of pages 8.. with ESTALE.
    const orig = fa.fh.readv.bind(fa.fh);
    fa.fh.readv = (async (bufs: NodeJS.ArrayBufferView[], position?: number | null) => {
      const pos = position ?? 0;
      if (pos >= 4 * PAGE_SIZE && pos < 8 * PAGE_SIZE) throw errnoError('EIO', 5);
      if (pos >= 8 * PAGE_SIZE) throw errnoError('ESTALE', 116);
      return orig(bufs, position ?? undefined);
    }) as typeof fa.fh.readv;
    await expectZx(f4(fa.vmo), ZxStatus.ERR_IO);
    await expectZx(fa.vmo.read(Buffer.alloc(1), 9 * PAGE_SIZE), ZxStatus.ERR_BAD_STATE);
    expect((await readVmo(fa.vmo, 0, 4 * PAGE_SIZE)).equals(a.subarray(0, 4 * PAGE_SIZE))).toBe(true);
    expect((await readVmo(fb.vmo, 0, b.length)).equals(b)).toBe(true);
    expect(env.dp.metrics.failuresByStatus.ERR_IO).toBe(1);
    expect(env.dp.metrics.failuresByStatus.ERR_BAD_STATE).toBe(1);
    // The disk recovers: the failed range is asked for again and reads.
    fa.fh.readv = orig as typeof fa.fh.readv;
    expect((await readVmo(fa.vmo, 0, a.length)).equals(a)).toBe(true);

    function f4(vmo: typeof fa.vmo): Promise<void> {
      return vmo.read(Buffer.alloc(PAGE_SIZE), 5 * PAGE_SIZE);
    }
  });

  it('statusForIoError maps fs errors to the statuses a pager may fail with', () => {
    expect(statusForIoError(errnoError('ENOSPC', 28))).toBe(ZxStatus.ERR_NO_SPACE);
    expect(statusForIoError(errnoError('EDQUOT', 122))).toBe(ZxStatus.ERR_NO_SPACE);
    expect(statusForIoError(errnoError('ENOENT', 2))).toBe(ZxStatus.ERR_BAD_STATE);
    expect(statusForIoError(errnoError('EBADF', 9))).toBe(ZxStatus.ERR_BAD_STATE);
    expect(statusForIoError(errnoError('ESTALE', 116))).toBe(ZxStatus.ERR_BAD_STATE);
    expect(statusForIoError(errnoError('EIO', 5))).toBe(ZxStatus.ERR_IO);
    expect(statusForIoError(new Error('no code'))).toBe(ZxStatus.ERR_IO);
    expect(statusForIoError(undefined)).toBe(ZxStatus.ERR_IO);
  });
});

describe('opening files', () => {
  it('a backing file larger than a VMO can be is EFBIG, and its descriptor is closed again', async () => {
    const env = makeEnv();
    // A sparse file of 17 TiB: past ext4's limit, so on a small tmpfs (which allows it).
    const dir = path.join(env.dir, 'big');
    mkdirSync(dir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    try {
      env.put('big/huge.bin', Buffer.alloc(0));
      truncateSync(path.join(dir, 'huge.bin'), 17 * 2 ** 40);
      const fds = (): number => readdirSync('/proc/self/fd').length;
      const before = fds();
      for (let i = 0; i < 3; i++) {
        await expect(env.dp.open('big/huge.bin')).rejects.toMatchObject({ code: 'EFBIG' });
      }
      expect(fds()).toBe(before);
      expect(env.dp.files()).toHaveLength(0);
    } finally {
      execFileSync('umount', ['-l', dir]);
    }
  });

  it('hard links share one VMO: opening either name gives the same PagedFile', async () => {
    const env = makeEnv();
    const data = pattern(3 * PAGE_SIZE, 14);
    env.put('one.bin', data);
    linkSync(path.join(env.dir, 'one.bin'), path.join(env.dir, 'two.bin'));
    const a = await env.dp.open('one.bin');
    const b = await env.dp.open('two.bin');
    expect(b).toBe(a);
    expect(b.vmo).toBe(a.vmo);
    expect(a.opens).toBe(2);
    expect(env.dp.files()).toHaveLength(1);
    await a.vmo.write(Buffer.from('shared'), 100);
    const viaB = await readVmo(b.vmo, 100, 6);
    expect(viaB.toString()).toBe('shared');
  });

  it('opening the same path twice gives the same PagedFile; a leading slash names the same file', async () => {
    const env = makeEnv();
    env.put('d/x.bin', pattern(10));
    const a = await env.dp.open('d/x.bin');
    const b = await env.dp.open('/d/x.bin');
    expect(b).toBe(a);
    expect(a.relPath).toBe('d/x.bin');
    expect(env.dp.fileByKey(a.key)).toBe(a);
  });

  it('a path reopened after its file was replaced behind pagerfs opens the new file, not the served VMO', async () => {
    const env = makeEnv();
    env.put('r.bin', pattern(3 * PAGE_SIZE, 1));
    const old = await env.dp.open('r.bin');
    expect((await readVmo(old.vmo, 0, PAGE_SIZE)).equals(pattern(3 * PAGE_SIZE, 1).subarray(0, PAGE_SIZE))).toBe(true);
    await env.dp.release(old);
    // Another file renamed over the name: same path, another inode.
    env.put('other.bin', pattern(2 * PAGE_SIZE, 2));
    renameSync(path.join(env.dir, 'other.bin'), path.join(env.dir, 'r.bin'));
    const fresh = await env.dp.open('r.bin');
    expect(fresh).not.toBe(old);
    expect(fresh.vmo.contentSizeBytes).toBe(2 * PAGE_SIZE);
    expect((await readVmo(fresh.vmo, 0, 2 * PAGE_SIZE)).equals(pattern(2 * PAGE_SIZE, 2))).toBe(true);
    // And a name that is now a directory fails as before.
    await env.dp.release(fresh);
    unlinkSync(path.join(env.dir, 'r.bin'));
    mkdirSync(path.join(env.dir, 'r.bin'));
    await expect(env.dp.open('r.bin')).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('renamed() updates relPath of a renamed file and of files under a renamed directory', async () => {
    const env = makeEnv();
    env.put('dir/a.bin', pattern(10, 1));
    env.put('dir/sub/b.bin', pattern(10, 2));
    env.put('dirx/c.bin', pattern(10, 3));
    env.put('top.bin', pattern(10, 4));
    const a = await env.dp.open('dir/a.bin');
    const b = await env.dp.open('dir/sub/b.bin');
    const c = await env.dp.open('dirx/c.bin');
    const t = await env.dp.open('top.bin');
    renameSync(path.join(env.dir, 'dir'), path.join(env.dir, 'moved'));
    env.dp.renamed('/dir', 'moved');
    expect(a.relPath).toBe('moved/a.bin');
    expect(b.relPath).toBe('moved/sub/b.bin');
    expect(c.relPath).toBe('dirx/c.bin'); // only a prefix of the name, not of the path: untouched
    renameSync(path.join(env.dir, 'top.bin'), path.join(env.dir, 'moved', 'top2.bin'));
    env.dp.renamed('top.bin', 'moved/top2.bin');
    expect(t.relPath).toBe('moved/top2.bin');
    // Opening the new name finds the same file.
    expect(await env.dp.open('moved/sub/b.bin')).toBe(b);
  });

  it('a missing file fails open with ENOENT', async () => {
    const env = makeEnv();
    await expect(env.dp.open('nope.bin')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a directory, a FIFO, a symlink and a path leaving the backing directory cannot be opened', async () => {
    const env = makeEnv();
    mkdirSync(path.join(env.dir, 'sub'));
    env.put('real.bin', pattern(10));
    symlinkSync('real.bin', path.join(env.dir, 'link.bin'));
    execFileSync('mkfifo', [path.join(env.dir, 'fifo')]);
    await expect(env.dp.open('sub')).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(env.dp.open('fifo')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(env.dp.open('link.bin')).rejects.toMatchObject({ code: 'ELOOP' });
    expect(env.dp.backingPath('a/./b')).toBe(path.join(env.dp.root, 'a', 'b'));
  });

  it('no relative path reaches outside the backing directory', async () => {
    const env = makeEnv();
    env.put('secret.bin', pattern(10, 99));
    env.put('inner/own.bin', pattern(10, 98));
    const inner = new DirectoryPager({ system: env.system, backingDir: path.join(env.dir, 'inner') });
    inner.start();
    try {
      for (const p of ['../secret.bin', '/../secret.bin', 'x/../../secret.bin', '../inner/../secret.bin']) {
        let resolved = '';
        try { resolved = inner.backingPath(p); } catch (err) { expect((err as ZxError).status).toBe(ZxStatus.ERR_INVALID_ARGS); continue; }
        expect(resolved.startsWith(inner.root + path.sep), p).toBe(true);
        const err = await inner.open(p).then(() => undefined, (e: unknown) => e);
        expect(err, p).toBeDefined(); // never the file outside
      }
      expect((await readVmo((await inner.open('own.bin')).vmo, 0, 10)).equals(pattern(10, 98))).toBe(true);
    } finally {
      await inner.shutdown();
    }
  });

  it('releasing the last open of a linked file keeps its VMO as a cache; of an unlinked file discards it', async () => {
    const env = makeEnv({ writebackDelayMs: 60_000 });
    env.put('keep.bin', pattern(PAGE_SIZE, 1));
    env.put('gone.bin', pattern(PAGE_SIZE, 2));
    const keep = await env.dp.open('keep.bin');
    await env.dp.open('keep.bin');
    await env.dp.release(keep);
    await env.dp.release(keep);
    expect(keep.opens).toBe(0);
    expect(await env.dp.open('keep.bin')).toBe(keep);
    const gone = await env.dp.open('gone.bin');
    await gone.vmo.write(Buffer.from('dirty'), 0);
    unlinkSync(path.join(env.dir, 'gone.bin'));
    gone.retired = true;
    await env.dp.release(gone);
    await vi.waitFor(() => expect(gone.completed).toBe(true));
    expect(env.dp.files()).toEqual([keep]);
  });

  describe('a backing file changed behind pagerfs (close-to-open)', () => {
    /** Rewrites the backing file in place (same inode) once the clock has moved on a millisecond. */
    async function rewrite(env: ReturnType<typeof makeEnv>, rel: string, data: Buffer): Promise<void> {
      const before = statSync(path.join(env.dir, rel));
      await new Promise((r) => setTimeout(r, 5));
      env.put(rel, data);
      const after = statSync(path.join(env.dir, rel));
      expect(after.ino).toBe(before.ino);
      expect(after.ctimeMs).toBeGreaterThan(before.ctimeMs);
    }

    /** A pager with a file opened for writing through it (mayResize, as the FUSE layer does) and `text` written at 0. */
    async function writtenThroughMount(name: string, text: string): Promise<{ env: ReturnType<typeof makeEnv>; f: PagedFile }> {
      const env = makeEnv({ budgetPages: 256, writebackDelayMs: 60_000 });
      env.put(name, pattern(2 * PAGE_SIZE, 6));
      const f = await env.dp.open(name);
      env.dp.mayResize(f);
      await f.vmo.write(Buffer.from(text), 0);
      return { env, f };
    }

    it('an open after the change gets a new VMO with the new bytes; a handle open across it keeps its view', async () => {
      const env = makeEnv({ budgetPages: 256 });
      const v1 = pattern(3 * PAGE_SIZE + 10, 1);
      env.put('log.txt', v1);
      const old = await env.dp.open('log.txt');
      expect((await readVmo(old.vmo, 0, v1.length)).equals(v1)).toBe(true);
      // Grown (an append), and the first page rewritten, directly in the backing directory.
      const v2 = Buffer.concat([pattern(PAGE_SIZE, 9), v1.subarray(PAGE_SIZE), pattern(5 * PAGE_SIZE, 2)]);
      await rewrite(env, 'log.txt', v2);
      const fresh = await env.dp.open('log.txt');
      expect(fresh).not.toBe(old);
      expect(fresh.vmo.sizeBytes).toBeGreaterThanOrEqual(v2.length);
      expect((await readVmo(fresh.vmo, 0, v2.length)).equals(v2)).toBe(true);
      // The handle opened before the change still sees the file as it was at its open.
      expect(old.retired).toBe(true);
      expect((await readVmo(old.vmo, 0, PAGE_SIZE)).equals(v1.subarray(0, PAGE_SIZE))).toBe(true);
      expect(env.dp.fileByIdentity(fresh.identity)).toBe(fresh);
      await env.dp.release(old);
      await vi.waitFor(() => expect(old.completed).toBe(true));
      // Unchanged since: opens keep finding the same VMO (the cache survives).
      await env.dp.release(fresh);
      expect(await env.dp.open('log.txt')).toBe(fresh);
      expect(env.dp.files()).toEqual([fresh]);
    });

    it('the open that finds the change may come with the caller\'s lstat (the mount\'s path)', async () => {
      const env = makeEnv({ budgetPages: 256 });
      env.put('a.bin', pattern(2 * PAGE_SIZE, 4));
      const old = await env.dp.open('a.bin');
      await env.dp.release(old);
      const v2 = pattern(2 * PAGE_SIZE, 5);
      await rewrite(env, 'a.bin', v2);
      const fresh = await env.dp.open('a.bin', statSync(path.join(env.dir, 'a.bin')));
      expect(fresh).not.toBe(old);
      expect((await readVmo(fresh.vmo, 0, v2.length)).equals(v2)).toBe(true);
      await vi.waitFor(() => expect(old.completed).toBe(true));
    });

    it('a file changed through the mount stays pagerfs\'s own: its VMO is kept, and its unwritten bytes too', async () => {
      const { env, f } = await writtenThroughMount('w.bin', 'through the mount');
      await rewrite(env, 'w.bin', pattern(2 * PAGE_SIZE, 7));
      expect(await env.dp.open('w.bin')).toBe(f);
      expect((await readVmo(f.vmo, 0, 17)).toString()).toBe('through the mount');
      expect(f.retired).toBe(false);
    });

    it('a file written through the mount is let go at its last close once written back: a later outside change shows', async () => {
      const { env, f } = await writtenThroughMount('w.bin', 'through the mount');
      await env.dp.writeback(f);
      await env.dp.release(f);
      expect(f.changedThroughMount).toBe(false);
      expect(env.backing('w.bin').subarray(0, 17).toString()).toBe('through the mount');
      // Unchanged outside: the same VMO (the cache survives the let-go).
      expect(await env.dp.open('w.bin')).toBe(f);
      await env.dp.release(f);
      const v2 = pattern(3 * PAGE_SIZE, 8);
      await rewrite(env, 'w.bin', v2);
      const fresh = await env.dp.open('w.bin');
      expect(fresh).not.toBe(f);
      expect((await readVmo(fresh.vmo, 0, v2.length)).equals(v2)).toBe(true);
    });

    it('revalidate: nothing to check within revalidateMs or when unchanged; after an outside change, the current VMO for the handle', async () => {
      const env = makeEnv({ budgetPages: 256, revalidateMs: 300 });
      env.put('r.log', Buffer.from('one\n'));
      const f = await env.dp.open('r.log');
      expect(env.dp.revalidate(f)).toBeNull(); // just checked at open
      await new Promise((r) => setTimeout(r, 350));
      expect(await env.dp.revalidate(f)).toBeNull(); // checked, unchanged
      expect(env.dp.revalidate(f)).toBeNull(); // and that check counts for another 300 ms
      await rewrite(env, 'r.log', Buffer.from('one\ntwo\n'));
      await new Promise((r) => setTimeout(r, 350));
      const next = await env.dp.revalidate(f);
      expect(next).not.toBeNull();
      expect(next).not.toBe(f);
      expect(next!.opens).toBe(1);
      expect((await readVmo(next!.vmo, 0, 8)).toString()).toBe('one\ntwo\n');
      expect(f.retired).toBe(true);
      // A second handle of the old VMO moves to the same current one.
      f.opens++;
      expect(await env.dp.revalidate(f)).toBe(next);
      expect(next!.opens).toBe(2);
      // A file changed through the mount is never moved.
      env.dp.mayResize(next!);
      await new Promise((r) => setTimeout(r, 350));
      expect(env.dp.revalidate(next!)).toBeNull();
    });

    it('a file closed with dirty pages stays pagerfs\'s own: an outside change does not take its data away', async () => {
      const { env, f } = await writtenThroughMount('d.bin', 'not yet written back');
      await env.dp.release(f);
      expect(f.changedThroughMount).toBe(true);
      await rewrite(env, 'd.bin', pattern(2 * PAGE_SIZE, 7));
      expect(await env.dp.open('d.bin')).toBe(f);
      expect((await readVmo(f.vmo, 0, 20)).toString()).toBe('not yet written back');
    });
  });

  it('keeps at most maxIdleFiles closed files with a VMO, least recently released let go first; a dirty one stays', async () => {
    const env = makeEnv({ budgetPages: 256, maxIdleFiles: 3, writebackDelayMs: 60_000 });
    for (let i = 0; i < 6; i++) env.put(`i${i}.bin`, pattern(2 * PAGE_SIZE, 20 + i));
    const dirty = await env.dp.open('i0.bin');
    env.dp.mayResize(dirty);
    await dirty.vmo.write(Buffer.from('unwritten'), 0);
    await env.dp.release(dirty); // idle, but dirty: never let go while dirty
    const files: PagedFile[] = [];
    for (let i = 1; i < 6; i++) {
      const f = await env.dp.open(`i${i}.bin`);
      expect((await readVmo(f.vmo, 0, 2 * PAGE_SIZE)).equals(pattern(2 * PAGE_SIZE, 20 + i))).toBe(true);
      await env.dp.release(f);
      files.push(f);
    }
    // Six idle files, three allowed: i1, i2 and i3 (the oldest clean ones) went; i0 stayed (dirty).
    await vi.waitFor(() => expect(env.dp.files().map((f) => f.relPath).sort()).toEqual(['i0.bin', 'i4.bin', 'i5.bin']));
    expect(files.slice(0, 3).every((f) => f.completed)).toBe(true);
    // A file let go opens again with a new VMO and reads right; the dirty one kept its bytes.
    const again = await env.dp.open('i1.bin');
    expect(again).not.toBe(files[0]);
    expect((await readVmo(again.vmo, 0, 2 * PAGE_SIZE)).equals(pattern(2 * PAGE_SIZE, 21))).toBe(true);
    expect((await readVmo(dirty.vmo, 0, 9)).toString()).toBe('unwritten');
  });

  it('residencyAt and the hints that act on resident pages measure a file with no VMO as all absent, making none and letting no other go (a residency walk over more files than the idle cap emptied what it measured)', async () => {
    const env = makeEnv({ budgetPages: 256, maxIdleFiles: 3 });
    for (let i = 0; i < 6; i++) env.put(`r${i}.bin`, pattern(2 * PAGE_SIZE + 100, 40 + i));
    const cached: PagedFile[] = [];
    for (let i = 0; i < 3; i++) {
      const f = await env.dp.open(`r${i}.bin`);
      await readVmo(f.vmo, 0, 2 * PAGE_SIZE + 100);
      await env.dp.release(f);
      cached.push(f);
    }
    const lstat = (rel: string): ReturnType<typeof env.dp.tree.lstat> => env.dp.tree.lstat(rel);
    const live = (): string[] => env.dp.files().map((f) => f.relPath).sort();
    expect(live()).toEqual(['r0.bin', 'r1.bin', 'r2.bin']);
    for (let i = 3; i < 6; i++) {
      const r = await env.dp.residencyAt(`r${i}.bin`, await lstat(`r${i}.bin`));
      expect(r).toEqual({ pages: 3, resident: 0, dirty: 0, locked: 0, pinned: 0, absent: 3, runs: [{ startPage: 0, endPage: 3, state: 0 }] });
      for (const hint of ['evict', 'dont_need', 'normal'] as const) expect(await env.dp.hintAt(`r${i}.bin`, await lstat(`r${i}.bin`), hint)).toBe(0);
    }
    expect(live(), 'no VMO made, none let go').toEqual(['r0.bin', 'r1.bin', 'r2.bin']);
    for (const f of cached) {
      expect((await env.dp.residencyAt(f.relPath, await lstat(f.relPath))).resident, f.relPath).toBe(3);
      expect(f.completed).toBe(false);
    }
    // A backing file changed behind pagerfs: its VMO's pages are not the file's content any more.
    await fsp.writeFile(path.join(env.dir, 'r1.bin'), pattern(PAGE_SIZE, 99));
    expect(await env.dp.residencyAt('r1.bin', await lstat('r1.bin'))).toMatchObject({ pages: 1, resident: 0, absent: 1 });
    // Evict acts on a live VMO; commit must fault in, so it opens (and the idle cap lets the oldest go).
    expect(await env.dp.hintAt('r2.bin', await lstat('r2.bin'), 'evict')).toBe(0);
    expect(cached[2].vmo.counters().residentPages).toBe(0);
    expect(await env.dp.hintAt('r4.bin', await lstat('r4.bin'), 'commit')).toBe(3);
    await vi.waitFor(() => expect(live()).toEqual(['r1.bin', 'r2.bin', 'r4.bin']));
  });

  it('an idle file whose backing file is deleted outside is let go, so the deleted file\'s space is freed; an open one is kept', async () => {
    const env = makeEnv({ budgetPages: 256, unlinkedSweepMs: 20 });
    env.put('gone.bin', pattern(4 * PAGE_SIZE, 30));
    env.put('held.bin', pattern(4 * PAGE_SIZE, 31));
    const gone = await env.dp.open('gone.bin');
    await readVmo(gone.vmo, 0, 4 * PAGE_SIZE);
    await env.dp.release(gone); // idle: its VMO and descriptor are kept as a cache
    const held = await env.dp.open('held.bin');
    const deletedFds = (): number => readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith(env.dir) && readlinkSync(`/proc/self/fd/${fd}`).endsWith('(deleted)');
      } catch {
        return false;
      }
    }).length;
    unlinkSync(path.join(env.dir, 'gone.bin'));
    unlinkSync(path.join(env.dir, 'held.bin'));
    // Before, the idle file held its deleted inode open until the idle cap or the unmount.
    await vi.waitFor(() => expect(gone.completed).toBe(true), { timeout: 5000 });
    expect(deletedFds(), 'only the open file still holds a deleted inode').toBe(1);
    expect((await readVmo(held.vmo, 0, 4 * PAGE_SIZE)).equals(pattern(4 * PAGE_SIZE, 31))).toBe(true);
    expect(held.completed).toBe(false);
  });

  it('open after shutdown is BAD_STATE', async () => {
    const env = makeEnv();
    env.put('f.bin', pattern(10));
    await env.dp.shutdown();
    const err = await env.dp.open('f.bin').catch((e: unknown) => e);
    expect((err as ZxError).status).toBe(ZxStatus.ERR_BAD_STATE);
  });
});

describe('writing, writeback and truncate', () => {
  /**
   * Reads 50 bytes of page 2 of a 3-page file while a truncate to 2 pages + 100 bytes runs, the
   * fill's backing read held `when` (before it reads, or after); the read must get its bytes.
   */
  async function readAcrossTruncate(when: 'before' | 'after'): Promise<{ env: Env; f: PagedFile; data: Buffer }> {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const data = pattern(3 * PAGE_SIZE, 20);
    env.put('t.bin', data);
    const f = await env.dp.open('t.bin');
    const hold = holdBackingReads(f, when);
    const reading = readVmo(f.vmo, 2 * PAGE_SIZE, 50);
    await hold.held;
    try {
      await env.dp.truncate(f, 2 * PAGE_SIZE + 100);
    } finally {
      hold.release();
    }
    expect((await reading).equals(data.subarray(2 * PAGE_SIZE, 2 * PAGE_SIZE + 50)), `read held ${when} its backing read`).toBe(true);
    return { env, f, data };
  }

  it('a page read before a truncate and supplied after it shows zeros past the new end, also once the file grows again', async () => {
    const { env, f, data } = await readAcrossTruncate('after');
    await env.dp.truncate(f, 5 * PAGE_SIZE);
    const want = Buffer.alloc(5 * PAGE_SIZE);
    data.copy(want, 0, 0, 2 * PAGE_SIZE + 100);
    expect((await readVmo(f.vmo, 0, want.length)).equals(want), 'the old bytes past the cut stay gone').toBe(true);
  });

  it('a read whose backing read starts after a truncate cut its page short gets the bytes that remain, not EIO', async () => {
    await readAcrossTruncate('before'); // the fill measured a whole page 2: it failed with IO_DATA_INTEGRITY
  });

  it('writeback records the size it gave the backing file, not one a write set while it truncated (reads then failed EIO)', async () => {
    const env = makeEnv({ writebackDelayMs: 60_000 });
    env.put('w.bin', Buffer.alloc(0));
    const f = await env.dp.open('w.bin');
    env.dp.mayResize(f);
    f.vmo.resize(4 * PAGE_SIZE); // a write extends the file first, as the FUSE write does
    await f.vmo.write(pattern(PAGE_SIZE, 22), 0);
    // The backing truncate waits for the test; another write grows the VMO meanwhile.
    const truncate = f.fh.truncate.bind(f.fh);
    const hold = deferred();
    const held = deferred();
    f.fh.truncate = (async (len?: number) => {
      held.resolve();
      await hold.promise;
      return truncate(len);
    }) as typeof f.fh.truncate;
    const writeback = env.dp.writeback(f);
    await held.promise;
    f.vmo.resize(8 * PAGE_SIZE);
    hold.resolve();
    await writeback;
    f.fh.truncate = truncate;
    expect(f.backingSize, 'what the backing file holds').toBe(statSync(path.join(env.dir, 'w.bin')).size);
    expect(f.backingSize).toBe(4 * PAGE_SIZE);
  });

  it('a DIRTY request that arrives after a truncate cut the file below it is dropped quietly (the handler threw before)', async () => {
    const { logger, lines } = memoryLogger();
    const env = makeEnv({ logger });
    env.put('d.bin', pattern(10 * PAGE_SIZE, 23));
    const f = await env.dp.open('d.bin');
    await readVmo(f.vmo, 0, 10 * PAGE_SIZE);
    env.dp.mayResize(f);
    // A write past the end (the file grows first, as the FUSE write does): the DIRTY answer checks
    // the backing store's room first (a statfs), and the truncate lands while it is under way.
    f.vmo.resize(13 * PAGE_SIZE);
    // The handler's statfs (the real one) is held until the truncate has landed.
    const realStatfs = fsp.statfs.bind(fsp);
    const inStatfs = deferred();
    const hold = deferred();
    let statfsDone: Promise<unknown> = Promise.resolve();
    const spy = vi.spyOn(fsp, 'statfs').mockImplementation(((p: string) => {
      inStatfs.resolve();
      statfsDone = hold.promise.then(() => realStatfs(p));
      return statfsDone;
    }) as typeof fsp.statfs);
    try {
      const write = f.vmo.write(Buffer.from('late'), 12 * PAGE_SIZE).then(() => 'written', (e: { status: ZxStatus }) => e.status);
      await inStatfs.promise; // the pager is answering the DIRTY request
      f.vmo.resize(PAGE_SIZE);
      hold.resolve();
      expect(await write, 'the writer of the cut page').toBe(ZxStatus.ERR_OUT_OF_RANGE);
      await statfsDone;
      await tick(5); // the handler's continuation after its statfs
    } finally {
      spy.mockRestore();
    }
    expect(lines().filter((l) => (l.level as number) >= 50).map((l) => l.msg), 'error lines').toEqual([]);
    expect(f.vmo.contentSizeBytes).toBe(PAGE_SIZE);
  });

  it('a truncate of a read-only backing file is EROFS and changes nothing', async () => {
    const env = makeEnv({ readOnly: true });
    const data = pattern(3 * PAGE_SIZE, 18);
    env.put('ro.bin', data);
    const f = await env.dp.open('ro.bin');
    for (const size of [0, 10 * PAGE_SIZE]) {
      await expect(env.dp.truncate(f, size)).rejects.toMatchObject({ code: 'EROFS' });
      expect(f.vmo.contentSizeBytes).toBe(data.length);
      expect(f.changedThroughMount).toBe(false);
    }
    expect((await readVmo(f.vmo, 0, data.length)).equals(data)).toBe(true);
  });

  it('a file grown by truncate has nothing left to write back: its last close hands it back, and an outside change then shows', async () => {
    const env = makeEnv({ writebackDelayMs: 60_000 });
    env.put('g.bin', pattern(PAGE_SIZE + 10, 19));
    const f = await env.dp.open('g.bin');
    await env.dp.truncate(f, 64 * PAGE_SIZE); // truncate(2) by path: no flush follows
    expect(statSync(path.join(env.dir, 'g.bin')).size).toBe(64 * PAGE_SIZE);
    expect(f.vmo.counters().dirtyZeroPages, 'the grown pages are zero in the backing file already').toBe(0);
    await env.dp.release(f);
    expect(f.changedThroughMount, 'handed back at the last close').toBe(false);
    await tick(5);
    env.put('g.bin', Buffer.from('rewritten outside'));
    const g = await env.dp.open('g.bin');
    expect(g).not.toBe(f);
    expect((await readVmo(g.vmo, 0, 17)).toString()).toBe('rewritten outside');
  });

  it('writeback then re-read equals what was written, through the VMO and in the backing file', async () => {
    const env = makeEnv({ validate: true });
    const data = pattern(10 * PAGE_SIZE + 300, 15);
    env.put('w.bin', data);
    const f = await env.dp.open('w.bin');
    const expected = Buffer.from(data);
    const writes: Array<[number, Buffer]> = [
      [0, Buffer.from('head')],
      [PAGE_SIZE - 3, pattern(PAGE_SIZE + 6, 16)], // straddles two page boundaries
      [7 * PAGE_SIZE + 1, pattern(2 * PAGE_SIZE, 17)],
      [data.length - 5, Buffer.from('tail!')],
    ];
    for (const [off, buf] of writes) {
      await f.vmo.write(buf, off);
      buf.copy(expected, off);
    }
    await env.dp.writeback(f, true);
    expect(env.backing('w.bin').equals(expected)).toBe(true);
    expect((await readVmo(f.vmo, 0, expected.length)).equals(expected)).toBe(true);
    expect(env.dp.pager.queryDirtyRanges(f.vmo, 0, f.vmo.sizeBytes).ranges).toEqual([]);
    // A fresh pager over the same directory sees the written bytes.
    const { VmSystem } = await import('../../src/index.js');
    const system2 = new VmSystem({ budgetBytes: 64 * PAGE_SIZE });
    const dp2 = new DirectoryPager({ system: system2, backingDir: env.dir });
    dp2.start();
    try {
      const f2 = await dp2.open('w.bin');
      expect((await readVmo(f2.vmo, 0, expected.length)).equals(expected)).toBe(true);
    } finally {
      await dp2.shutdown();
    }
  });

  it('writing past the end after growing the VMO extends the backing file at writeback', async () => {
    const env = makeEnv();
    const data = pattern(10000, 18);
    env.put('g.bin', data);
    const f = await env.dp.open('g.bin');
    const newSize = 10000 + 3 * PAGE_SIZE;
    f.vmo.resize(newSize);
    await f.vmo.write(Buffer.from('tail'), newSize - 4);
    await env.dp.writeback(f, true);
    const back = env.backing('g.bin');
    expect(back.length).toBe(newSize);
    expect(back.subarray(0, 10000).equals(data)).toBe(true);
    expect(back.subarray(10000, newSize - 4).every((x) => x === 0)).toBe(true);
    expect(back.subarray(newSize - 4).toString()).toBe('tail');
  });

  it('truncate down then up reads zeros in the gap and leaves the backing file at the new size', async () => {
    const env = makeEnv({ validate: true });
    const data = pattern(5 * PAGE_SIZE, 19);
    env.put('t.bin', data);
    const f = await env.dp.open('t.bin');
    expect((await readVmo(f.vmo, 0, data.length)).equals(data)).toBe(true);
    await env.dp.truncate(f, 6000);
    expect(statSync(path.join(env.dir, 't.bin')).size).toBe(6000);
    await env.dp.truncate(f, 20000);
    expect(statSync(path.join(env.dir, 't.bin')).size).toBe(20000);
    expect(f.vmo.contentSizeBytes).toBe(20000);
    const out = await readVmo(f.vmo, 0, 20000);
    expect(out.subarray(0, 6000).equals(data.subarray(0, 6000))).toBe(true);
    expect(out.subarray(6000).every((x) => x === 0)).toBe(true);
    await env.dp.writeback(f, true);
    const back = env.backing('t.bin');
    expect(back.length).toBe(20000);
    expect(back.equals(out)).toBe(true);
  });

  it('truncate drops dirty pages past the new end without writing them', async () => {
    const env = makeEnv();
    const data = pattern(4 * PAGE_SIZE, 20);
    env.put('d.bin', data);
    const f = await env.dp.open('d.bin');
    await f.vmo.write(Buffer.alloc(PAGE_SIZE, 0xaa), 3 * PAGE_SIZE);
    await env.dp.truncate(f, 2 * PAGE_SIZE);
    await env.dp.writeback(f, true);
    expect(env.backing('d.bin').equals(data.subarray(0, 2 * PAGE_SIZE))).toBe(true);
  });

  it('a second shutdown call resolves only once the first one\'s writeback is done', async () => {
    const env = makeEnv({ budgetPages: 256, writebackDelayMs: 60_000 });
    env.put('s.bin', pattern(8 * PAGE_SIZE, 40));
    const f = await env.dp.open('s.bin');
    const data = pattern(8 * PAGE_SIZE, 41);
    await f.vmo.write(data, 0);
    const first = env.dp.shutdown();
    await env.dp.shutdown(); // returned at once before, with the data still unwritten
    expect(env.backing('s.bin').equals(data)).toBe(true);
    await first;
  });

  it('shutdown with dirty pages in several files writes them all back', async () => {
    const env = makeEnv({ budgetPages: 256 });
    const names = ['x.bin', 'sub/y.bin', 'z.bin'];
    const expected = new Map<string, Buffer>();
    for (const [i, n] of names.entries()) {
      const d = pattern(20 * PAGE_SIZE + i, 30 + i);
      env.put(n, d);
      expected.set(n, Buffer.from(d));
    }
    for (const [i, n] of names.entries()) {
      const f = await env.dp.open(n);
      const exp = expected.get(n)!;
      for (let p = i; p < 20; p += 3) {
        const buf = pattern(PAGE_SIZE + 17, 1000 * i + p);
        const off = p * PAGE_SIZE + 5;
        const n2 = Math.min(buf.length, exp.length - off);
        await f.vmo.write(buf.subarray(0, n2), off);
        buf.copy(exp, off, 0, n2);
      }
    }
    // z.bin also grows.
    const z = await env.dp.open('z.bin');
    const grown = z.vmo.contentSizeBytes + 2 * PAGE_SIZE + 1;
    z.vmo.resize(grown);
    await z.vmo.write(Buffer.from('!'), grown - 1);
    const zExp = Buffer.concat([expected.get('z.bin')!, Buffer.alloc(2 * PAGE_SIZE + 1)]);
    zExp[grown - 1] = '!'.charCodeAt(0);
    expected.set('z.bin', zExp);
    await env.dp.shutdown();
    for (const [n, exp] of expected) expect(env.backing(n).equals(exp), n).toBe(true);
    expect(env.dp.files()).toHaveLength(0);
  });

  it('a write blocked behind a slow read completes after the read is supplied', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const data = pattern(4 * PAGE_SIZE, 21);
    env.put('f.bin', data);
    const f = await env.dp.open('f.bin');
    const gate = deferred();
    const orig = f.fh.readv.bind(f.fh);
    f.fh.readv = (async (bufs: NodeJS.ArrayBufferView[], position?: number | null) => {
      await gate.promise;
      return orig(bufs, position ?? undefined);
    }) as typeof f.fh.readv;
    let done = false;
    const w = f.vmo.write(Buffer.from('abc'), PAGE_SIZE + 1).then(() => { done = true; });
    await tick(20);
    expect(done).toBe(false);
    gate.resolve();
    await w;
    const exp = Buffer.from(data);
    exp.write('abc', PAGE_SIZE + 1);
    expect((await readVmo(f.vmo, 0, data.length)).equals(exp)).toBe(true);
  });

  it('a read-only backing file reads, refuses writes with BAD_STATE, and writeback has nothing to do', async () => {
    const env = makeEnv();
    const data = pattern(2 * PAGE_SIZE, 22);
    env.put('ro.bin', data);
    const f = await env.dp.open('ro.bin');
    // Running as root, chmod cannot make a file unopenable for writing: mark this open read-only instead.
    (f as { writable: boolean }).writable = false;
    expect((await readVmo(f.vmo, 0, data.length)).equals(data)).toBe(true);
    expect(await rejectionStatus(f.vmo.write(Buffer.from('x'), 0))).toBe('ERR_BAD_STATE');
    expect((await readVmo(f.vmo, 0, data.length)).equals(data)).toBe(true);
    await env.dp.writeback(f);
    expect(env.backing('ro.bin').equals(data)).toBe(true);
  });

  it('dirty pages are never evicted: writes survive reading a file larger than the budget', async () => {
    const env = makeEnv({ budgetPages: 64, validate: true });
    const small = pattern(8 * PAGE_SIZE, 23);
    const big = pattern(200 * PAGE_SIZE, 24);
    env.put('small.bin', small);
    env.put('big.bin', big);
    const s = await env.dp.open('small.bin');
    const b = await env.dp.open('big.bin');
    await s.vmo.write(Buffer.alloc(8 * PAGE_SIZE, 0x5a), 0);
    expect((await readVmo(b.vmo, 0, big.length, 32 * 1024, () => env.checkBudget())).equals(big)).toBe(true);
    expect((await readVmo(s.vmo, 0, small.length)).every((x) => x === 0x5a)).toBe(true);
    // Pressure may have written them back meanwhile; either way the backing file ends up with them.
    await env.dp.writeback(s, true);
    expect(env.backing('small.bin').every((x) => x === 0x5a)).toBe(true);
  });

  it('reads still complete when dirty pages fill most of the budget (writeback under pressure makes room)', async () => {
    const env = makeEnv({ budgetPages: 64, writebackDelayMs: 60_000 });
    const dirty = pattern(56 * PAGE_SIZE, 25);
    const big = pattern(100 * PAGE_SIZE, 26);
    env.put('dirty.bin', Buffer.alloc(dirty.length));
    env.put('big.bin', big);
    const d = await env.dp.open('dirty.bin');
    const b = await env.dp.open('big.bin');
    await d.vmo.write(dirty, 0);
    expect((await readVmo(b.vmo, 0, big.length, 16 * 1024, () => env.checkBudget())).equals(big)).toBe(true);
    // Whatever was written back under pressure, the data is intact.
    expect((await readVmo(d.vmo, 0, dirty.length)).equals(dirty)).toBe(true);
    await env.dp.writeback(d, true);
    expect(env.backing('dirty.bin').equals(dirty)).toBe(true);
  });
});
