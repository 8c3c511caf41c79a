/**
 * Small backing reads from the OS page cache without the thread pool: the patched binding's
 * Fuse.preadCached (preadv2 with RWF_NOWAIT) on its own, and the DirectoryPager that uses it for
 * reads of up to 64 KiB (DirectoryPagerOptions.readCached), with the thread pool as the fallback.
 * The backing directory is on the machine's disk file system (os.tmpdir()), which supports it.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { VmSystem, VmoOp } from '../../src/index.js';
import { DirectoryPager } from '../../pager/index.js';
import { PAGE_SIZE, cleanupEnvs, makeEnv, pattern, readVmo } from './helpers.js';

afterEach(cleanupEnvs);

type PreadCached = (fd: number, buffers: Buffer[], position: number) => number;
const Fuse = createRequire(import.meta.url)('fuse-native') as { preadCached?: PreadCached; PAGERFS_PATCH_LEVEL?: number };

function preadCached(): PreadCached {
  if (typeof Fuse.preadCached !== 'function') {
    throw new Error(`fuse-native has no preadCached (patch level ${Fuse.PAGERFS_PATCH_LEVEL}): run scripts/setup.sh`);
  }
  return Fuse.preadCached;
}

/** What preadCached answers for the first byte of `file` (its first page is cached: just written). */
function noWaitAnswer(file: string): number {
  const fd = openSync(file, 'r');
  try {
    return preadCached()(fd, [Buffer.alloc(1)], 0);
  } finally {
    closeSync(fd);
  }
}

/** These tests need a backing file system with non-blocking buffered reads (ext4, xfs, btrfs; not tmpfs). */
function requireNoWaitReads(dir: string): void {
  const probe = path.join(dir, '.probe');
  writeFileSync(probe, 'x');
  const n = noWaitAnswer(probe);
  unlinkSync(probe);
  if (n === -EOPNOTSUPP) {
    throw new Error(`cannot run here: ${dir} is on a file system without RWF_NOWAIT reads (statfs type 0x${statfsSync(dir).type.toString(16)}); ` +
      'point TMPDIR at a disk file system');
  }
}

/** Drops the file's clean pages from the OS page cache (POSIX_FADV_DONTNEED; Node has no fadvise). */
function dropFromPageCache(file: string): void {
  execFileSync('python3', ['-c', 'import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\nos.fsync(fd)\nos.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)', file]);
}

const EAGAIN = 11;
const EBADF = 9;
const EINVAL = 22;
const EOPNOTSUPP = 95;

describe('Fuse.preadCached (preadv2 with RWF_NOWAIT)', () => {
  it('reads cached bytes into several buffers, 0 at the end, -errno for a bad fd or buffer list', () => {
    const env = makeEnv();
    requireNoWaitReads(env.dir);
    const data = pattern(5 * PAGE_SIZE, 3);
    env.put('c.bin', data);
    const fd = openSync(path.join(env.dir, 'c.bin'), 'r');
    try {
      readSync(fd, Buffer.alloc(data.length), 0, data.length, 0); // in the page cache now
      const a = Buffer.alloc(PAGE_SIZE);
      const b = Buffer.alloc(2 * PAGE_SIZE);
      expect(preadCached()(fd, [a, b], PAGE_SIZE + 10)).toBe(3 * PAGE_SIZE);
      expect(Buffer.concat([a, b]).equals(data.subarray(PAGE_SIZE + 10, 4 * PAGE_SIZE + 10))).toBe(true);
      expect(preadCached()(fd, [a], data.length - 100)).toBe(100);
      expect(preadCached()(fd, [a], data.length)).toBe(0);
      expect(preadCached()(9999, [a], 0)).toBe(-EBADF);
      expect(preadCached()(fd, [], 0)).toBe(-EINVAL);
      expect(preadCached()(fd, Array.from({ length: 65 }, () => a), 0)).toBe(-EINVAL);
    } finally {
      closeSync(fd);
    }
  });

  it('answers -EAGAIN instead of waiting for the disk when the range is not cached', () => {
    const env = makeEnv();
    requireNoWaitReads(env.dir);
    env.put('cold.bin', pattern(64 * PAGE_SIZE, 4));
    const file = path.join(env.dir, 'cold.bin');
    dropFromPageCache(file);
    const fd = openSync(file, 'r');
    try {
      expect(preadCached()(fd, [Buffer.alloc(PAGE_SIZE)], 40 * PAGE_SIZE)).toBe(-EAGAIN);
    } finally {
      closeSync(fd);
    }
  });
});

describe('DirectoryPager with readCached', () => {
  it('serves single-page faults of a cached file without the thread pool, every byte right', async () => {
    const env = makeEnv({ budgetPages: 1024, readaheadMaxBytes: 0, readCached: preadCached() });
    requireNoWaitReads(env.dir);
    const data = pattern(256 * PAGE_SIZE, 5);
    env.put('r.bin', data);
    env.backing('r.bin'); // read once: in the page cache
    const f = await env.dp.open('r.bin');
    const pages = [7, 200, 3, 255, 128, 64, 1, 0];
    for (const p of pages) {
      expect((await readVmo(f.vmo, p * PAGE_SIZE, PAGE_SIZE)).equals(data.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE))).toBe(true);
    }
    const m = env.dp.metrics;
    expect(m.backingReads).toBe(pages.length);
    expect(m.cachedBackingReads).toBe(pages.length);
    expect(m.backingReadBytes).toBe(pages.length * PAGE_SIZE);
  });

  it('answers small cached faults with one reused aux VMO, which shutdown closes', async () => {
    const env = makeEnv({ budgetPages: 1024, readaheadMaxBytes: 0, readCached: preadCached() });
    requireNoWaitReads(env.dir);
    const data = pattern(64 * PAGE_SIZE, 9);
    env.put('a.bin', data);
    env.backing('a.bin');
    const f = await env.dp.open('a.bin');
    // VMO ids are handed out in order: the ids between two probes count the VMOs made meanwhile.
    const probe = (): number => { const v = env.system.createVmo(PAGE_SIZE); v.close(); return v.id; };
    const before = probe();
    for (const p of [5, 40, 2, 63, 17, 30, 9, 51]) {
      expect((await readVmo(f.vmo, p * PAGE_SIZE, PAGE_SIZE)).equals(data.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE))).toBe(true);
    }
    expect(env.dp.metrics.cachedBackingReads).toBe(8);
    expect(probe() - before - 1, 'VMOs made for 8 small cold reads').toBe(1);
    expect(env.dp.metrics.latency.quantile(0.5)).toBeGreaterThan(0);
    await env.dp.shutdown();
    // Only the file's own VMO (detached, empty) outlives the shutdown: the aux VMO went with it.
    expect(env.system.liveVmos().filter((v) => v.kind !== 'pager').map((v) => v.id)).toEqual([]);
    expect(env.system.arena.usedFrames).toBe(0);
  });

  it('reads pages dropped from the page cache through the thread pool instead, and large reads always', async () => {
    const env = makeEnv({ budgetPages: 1024, readaheadMaxBytes: 0, readCached: preadCached() });
    requireNoWaitReads(env.dir);
    const data = pattern(300 * PAGE_SIZE, 6);
    env.put('d.bin', data);
    dropFromPageCache(path.join(env.dir, 'd.bin'));
    const f = await env.dp.open('d.bin');
    expect((await readVmo(f.vmo, 50 * PAGE_SIZE, PAGE_SIZE)).equals(data.subarray(50 * PAGE_SIZE, 51 * PAGE_SIZE))).toBe(true);
    const m = env.dp.metrics;
    expect(m.backingReads).toBe(1);
    // The first RWF_NOWAIT read (the synchronous small-read path) misses and sets the kernel's
    // readahead going; the general path then reads the page on the pool, or from the cache if the
    // readahead has already landed: one backing read either way.
    const cachedBefore = m.cachedBackingReads;
    expect(cachedBefore).toBeLessThanOrEqual(1);
    // 64 pages (256 KiB) in one request: above the 64 KiB limit, read on the pool.
    expect((await readVmo(f.vmo, 100 * PAGE_SIZE, 64 * PAGE_SIZE)).equals(data.subarray(100 * PAGE_SIZE, 164 * PAGE_SIZE))).toBe(true);
    expect(m.cachedBackingReads).toBe(cachedBefore);
    expect((await readVmo(f.vmo, 0, data.length)).equals(data)).toBe(true);
  });
});

describe('DirectoryPager with readCached on a file system without non-blocking reads', () => {
  it('on EOPNOTSUPP it stops trying after the first read and reads on the thread pool, every byte right', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pagerfs-cached-'));
    const system = new VmSystem({ budgetBytes: 1024 * PAGE_SIZE });
    let calls = 0;
    // The answer of a file system without RWF_NOWAIT, whatever this machine's tmpfs does.
    const unsupported: PreadCached = () => { calls++; return -EOPNOTSUPP; };
    const dp = new DirectoryPager({ system, backingDir: dir, readaheadMaxBytes: 0, readCached: unsupported });
    dp.start();
    try {
      const data = pattern(64 * PAGE_SIZE, 8);
      writeFileSync(path.join(dir, 'u.bin'), data);
      const f = await dp.open('u.bin');
      for (const p of [5, 0, 63, 31]) {
        expect((await readVmo(f.vmo, p * PAGE_SIZE, PAGE_SIZE)).equals(data.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE))).toBe(true);
      }
      expect(dp.metrics.backingReads).toBe(4);
      expect(dp.metrics.cachedBackingReads).toBe(0);
      expect(calls).toBe(1); // asked once, then never again
    } finally {
      await dp.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads tmpfs files right with whatever non-blocking answer this kernel gives', async () => {
    const dir = mkdtempSync('/dev/shm/pagerfs-cached-');
    const system = new VmSystem({ budgetBytes: 1024 * PAGE_SIZE });
    let calls = 0;
    const counted: PreadCached = (fd, buffers, position) => { calls++; return preadCached()(fd, buffers, position); };
    const dp = new DirectoryPager({ system, backingDir: dir, readaheadMaxBytes: 0, readCached: counted });
    dp.start();
    try {
      const data = pattern(64 * PAGE_SIZE, 7);
      writeFileSync(path.join(dir, 't.bin'), data);
      const probe = noWaitAnswer(path.join(dir, 't.bin'));
      const f = await dp.open('t.bin');
      for (const p of [5, 0, 63, 31]) {
        expect((await readVmo(f.vmo, p * PAGE_SIZE, PAGE_SIZE)).equals(data.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE))).toBe(true);
      }
      expect(dp.metrics.backingReads).toBe(4);
      // What this kernel's tmpfs answers decides which path ran; both must read right.
      if (probe === -EOPNOTSUPP) {
        expect(dp.metrics.cachedBackingReads).toBe(0);
        expect(calls).toBe(1); // asked once, then never again
      } else {
        expect(dp.metrics.cachedBackingReads).toBe(4);
      }
    } finally {
      await dp.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the port loop and the event loop', () => {
  it('faults answered at once, chained in microtasks, still let timers run (the loop yields)', async () => {
    const env = makeEnv({ budgetPages: 256, readaheadMaxBytes: 0, readCached: preadCached() });
    requireNoWaitReads(env.dir);
    env.put('hot.bin', pattern(PAGE_SIZE, 9));
    const f = await env.dp.open('hot.bin');
    // A reader that evicts its page and reads it again, forever: each fault is answered before the
    // handler returns (a small cached read), so the chain never leaves the microtask queue unless
    // the port loop lets the event loop turn. Before, a timer never fired while it ran.
    const MAX = 100_000;
    let rounds = 0;
    const buf = Buffer.alloc(PAGE_SIZE);
    const chain = (async () => {
      while (rounds < MAX) {
        await f.vmo.read(buf, 0);
        await f.vmo.opRange(VmoOp.EVICT, 0, PAGE_SIZE);
        rounds++;
      }
    })();
    const atTimer = await new Promise<number>((r) => setTimeout(() => r(rounds), 5));
    rounds = MAX; // stop the chain
    await chain;
    expect(atTimer, 'rounds done when a 5 ms timer fired').toBeLessThan(MAX);
    expect(env.dp.metrics.loopYields).toBeGreaterThan(0);
    expect(buf.equals(pattern(PAGE_SIZE, 9))).toBe(true);
  });
});
