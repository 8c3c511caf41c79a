/**
 * DirectoryPager.fallocate with the patched binding's fallocate(2) (Fuse.fallocate), on real files:
 * growing and reserving, punching and zeroing ranges whose pages are dirty, clean, evicted or
 * partial, the modes it refuses, and a fill that read the old bytes before a punch.
 */
import { createRequire } from 'node:module';
import { statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_VMO_SIZE_BYTES } from '../../src/index.js';
import type { BackingFallocate } from '../../pager/index.js';
import { PAGE_SIZE, cleanupEnvs, holdBackingReads, makeEnv, pattern, readVmo, tick, type Env } from './helpers.js';

afterEach(cleanupEnvs);

const Fuse = createRequire(import.meta.url)('fuse-native') as { fallocate?: BackingFallocate; PAGERFS_PATCH_LEVEL?: number };
const KEEP_SIZE = 0x01;
const PUNCH_HOLE = 0x02;
const COLLAPSE_RANGE = 0x08;
const ZERO_RANGE = 0x10;

function nativeFallocate(): BackingFallocate {
  if (typeof Fuse.fallocate !== 'function') {
    throw new Error(`fuse-native has no fallocate (patch level ${Fuse.PAGERFS_PATCH_LEVEL}): run scripts/setup.sh`);
  }
  return Fuse.fallocate;
}

function env(budgetPages = 1024): Env {
  return makeEnv({ budgetPages, fallocate: nativeFallocate(), writebackDelayMs: 60_000 });
}

/** Bytes the backing file system has allocated for the file. */
function allocated(e: Env, rel: string): number {
  return statSync(path.join(e.dir, rel)).blocks * 512;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return String((err as NodeJS.ErrnoException).code);
  }
}

describe('DirectoryPager.fallocate', () => {
  it('mode 0 past the end grows the file: zeros through the VMO, the size and the blocks in the backing file', async () => {
    const e = env();
    const data = pattern(10_000, 1);
    e.put('a.bin', data);
    const f = await e.dp.open('a.bin');
    const size = 5 * PAGE_SIZE + 100;
    await e.dp.fallocate(f, 0, 0, size);
    expect(f.vmo.contentSizeBytes).toBe(size);
    expect(statSync(path.join(e.dir, 'a.bin')).size).toBe(size);
    expect(allocated(e, 'a.bin')).toBeGreaterThanOrEqual(size);
    const want = Buffer.concat([data, Buffer.alloc(size - data.length)]);
    expect((await readVmo(f.vmo, 0, size)).equals(want)).toBe(true);
    // A write into the reserved part, then writeback: the backing file has both.
    await f.vmo.write(Buffer.from('tail'), size - 4);
    want.write('tail', size - 4);
    await e.dp.writeback(f, true);
    expect(e.backing('a.bin').equals(want)).toBe(true);
    // Inside the file, mode 0 changes nothing but the allocation.
    await e.dp.fallocate(f, 0, 100, 1000);
    expect(f.vmo.contentSizeBytes).toBe(size);
    expect((await readVmo(f.vmo, 0, size)).equals(want)).toBe(true);
  });

  it('KEEP_SIZE reserves blocks past the end and leaves the size alone', async () => {
    const e = env();
    e.put('k.bin', pattern(3000, 2));
    const f = await e.dp.open('k.bin');
    const before = allocated(e, 'k.bin');
    await e.dp.fallocate(f, KEEP_SIZE, 0, 64 * PAGE_SIZE);
    expect(f.vmo.contentSizeBytes).toBe(3000);
    expect(statSync(path.join(e.dir, 'k.bin')).size).toBe(3000);
    expect(allocated(e, 'k.bin')).toBeGreaterThanOrEqual(before + 60 * PAGE_SIZE);
    expect((await readVmo(f.vmo, 0, 3000)).equals(pattern(3000, 2))).toBe(true);
  });

  it('PUNCH_HOLE zeroes the range whatever state its pages are in (dirty, clean, evicted, partial) and leaves a hole behind', async () => {
    const e = env();
    const PAGES = 16;
    const data = pattern(PAGES * PAGE_SIZE, 3);
    e.put('p.bin', data);
    const f = await e.dp.open('p.bin');
    await readVmo(f.vmo, 0, 6 * PAGE_SIZE); // pages 0-5 resident and clean (readahead may add more)
    await e.dp.hint(f, 'evict');
    await readVmo(f.vmo, 0, 4 * PAGE_SIZE); // 0-3 clean again; the rest evicted
    const want = Buffer.from(data);
    for (const [at, text] of [[4 * PAGE_SIZE + 7, 'dirty4'], [9 * PAGE_SIZE + 9, 'dirty9'], [12 * PAGE_SIZE + 3000, 'after']] as const) {
      await f.vmo.write(Buffer.from(text), at);
      want.write(text, at);
    }
    // From inside page 3 (clean, resident) to inside page 12 (dirty): pages 4-11 whole.
    const start = 3 * PAGE_SIZE + 100;
    const end = 12 * PAGE_SIZE + 50;
    await e.dp.fallocate(f, PUNCH_HOLE | KEEP_SIZE, start, end - start);
    want.fill(0, start, end);
    expect(f.vmo.contentSizeBytes).toBe(data.length);
    expect((await readVmo(f.vmo, 0, data.length)).equals(want), 'through the VMO after the punch').toBe(true);
    await e.dp.writeback(f, true);
    expect(e.backing('p.bin').equals(want), 'backing file after writeback').toBe(true);
    // Writeback left the whole pages a hole (it knows they are zero there): 8 of 16 pages allocated.
    expect(allocated(e, 'p.bin')).toBeLessThanOrEqual(8 * PAGE_SIZE);
    await e.dp.hint(f, 'evict');
    expect((await readVmo(f.vmo, 0, data.length)).equals(want), 'read again from the backing file').toBe(true);
  });

  it('ZERO_RANGE across the end zeroes to the end and grows the file; with KEEP_SIZE it stops at the end', async () => {
    const e = env();
    const data = pattern(3 * PAGE_SIZE + 500, 4);
    e.put('z.bin', data);
    const f = await e.dp.open('z.bin');
    await readVmo(f.vmo, 0, data.length);
    await e.dp.fallocate(f, ZERO_RANGE | KEEP_SIZE, 2 * PAGE_SIZE + 10, 10 * PAGE_SIZE);
    const kept = Buffer.from(data);
    kept.fill(0, 2 * PAGE_SIZE + 10);
    expect(f.vmo.contentSizeBytes).toBe(data.length);
    expect((await readVmo(f.vmo, 0, data.length)).equals(kept)).toBe(true);
    await e.dp.fallocate(f, ZERO_RANGE, PAGE_SIZE, 6 * PAGE_SIZE);
    const grown = Buffer.concat([kept, Buffer.alloc(7 * PAGE_SIZE - kept.length)]);
    grown.fill(0, PAGE_SIZE);
    expect(f.vmo.contentSizeBytes).toBe(7 * PAGE_SIZE);
    expect((await readVmo(f.vmo, 0, grown.length)).equals(grown)).toBe(true);
    await e.dp.writeback(f, true);
    expect(e.backing('z.bin').equals(grown)).toBe(true);
  });

  it('refuses what it cannot do, changing nothing: other modes and no native fallocate (EOPNOTSUPP), bad ranges (EINVAL), read-only files (EROFS)', async () => {
    const e = env();
    const data = pattern(4 * PAGE_SIZE, 5);
    e.put('r.bin', data);
    const f = await e.dp.open('r.bin');
    expect(await codeOf(e.dp.fallocate(f, COLLAPSE_RANGE, 0, PAGE_SIZE))).toBe('EOPNOTSUPP');
    expect(await codeOf(e.dp.fallocate(f, PUNCH_HOLE, 0, PAGE_SIZE))).toBe('EOPNOTSUPP'); // punch needs KEEP_SIZE
    expect(await codeOf(e.dp.fallocate(f, 0, -1, PAGE_SIZE))).toBe('EINVAL');
    expect(await codeOf(e.dp.fallocate(f, 0, 0, 0))).toBe('EINVAL');
    expect(await codeOf(e.dp.fallocate(f, 0, PAGE_SIZE, MAX_VMO_SIZE_BYTES))).toBe('EFBIG');
    expect(f.vmo.contentSizeBytes).toBe(data.length);
    expect(e.backing('r.bin').equals(data)).toBe(true);

    const bare = makeEnv(); // no BackingFallocate: Node alone cannot fallocate
    bare.put('n.bin', data);
    const g = await bare.dp.open('n.bin');
    expect(await codeOf(bare.dp.fallocate(g, 0, 0, 8 * PAGE_SIZE))).toBe('EOPNOTSUPP');
    expect(g.vmo.contentSizeBytes).toBe(data.length);

    const ro = makeEnv({ readOnly: true, fallocate: nativeFallocate() });
    ro.put('ro.bin', data);
    const h = await ro.dp.open('ro.bin');
    expect(await codeOf(ro.dp.fallocate(h, 0, 0, 8 * PAGE_SIZE))).toBe('EROFS');
    expect(statSync(path.join(ro.dir, 'ro.bin')).size).toBe(data.length);
  });

  it('a fill that read the old bytes before a punch is supplied before the punch changes anything: the page reads zeros after', async () => {
    const e = env();
    const data = pattern(8 * PAGE_SIZE, 6);
    e.put('race.bin', data);
    const f = await e.dp.open('race.bin');
    // Backing reads complete, then wait for the test: a fill holding bytes from before the punch.
    const hold = holdBackingReads(f, 'after');
    const reading = readVmo(f.vmo, 2 * PAGE_SIZE, PAGE_SIZE);
    await hold.held;
    let punched = false;
    const punch = e.dp.fallocate(f, PUNCH_HOLE | KEEP_SIZE, 2 * PAGE_SIZE + 100, 100).then(() => { punched = true; });
    try {
      await tick(50);
      expect(punched, 'the punch waits for the fill that is reading').toBe(false);
      expect(e.backing('race.bin').equals(data), 'the backing file is untouched while the fill holds its bytes').toBe(true);
    } finally {
      hold.release(); // also when an expectation failed: the pager's shutdown waits for the fill
    }
    expect((await reading).equals(data.subarray(2 * PAGE_SIZE, 3 * PAGE_SIZE))).toBe(true); // read before the punch
    await punch;
    const want = Buffer.from(data);
    want.fill(0, 2 * PAGE_SIZE + 100, 2 * PAGE_SIZE + 200);
    expect((await readVmo(f.vmo, 0, data.length)).equals(want), 'the VMO after the punch').toBe(true);
    await e.dp.writeback(f, true);
    await e.dp.hint(f, 'evict');
    expect((await readVmo(f.vmo, 0, data.length)).equals(want), 'read again from the backing file').toBe(true);
  });
});
