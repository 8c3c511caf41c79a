/**
 * SHA-256 page checks (pager/page-hasher.ts): the patched binding's Fuse.sha256BadPages, which
 * hashes on libuv's thread pool straight from the caller's buffers, against node:crypto page by
 * page; and PageHasher with it and without it (worker threads), which must agree on every answer.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { PageHasher, type NativePageCheck } from '../../pager/page-hasher.js';
import { silentLogger } from '../../pager/log.js';

const PAGE = 4096;
const Fuse = createRequire(import.meta.url)('fuse-native') as { sha256BadPages?: NativePageCheck; PAGERFS_PATCH_LEVEL?: number };

function nativeCheck(): NativePageCheck {
  if (typeof Fuse.sha256BadPages !== 'function') {
    throw new Error(`fuse-native has no sha256BadPages (patch level ${Fuse.PAGERFS_PATCH_LEVEL}): run scripts/setup.sh`);
  }
  return Fuse.sha256BadPages;
}

/** `pages` random pages and their leaves (SHA-256 of each page, 32 bytes each). */
function sealed(pages: number): { data: Buffer; leaves: Buffer } {
  const data = randomBytes(pages * PAGE);
  const leaves = Buffer.alloc(pages * 32);
  for (let p = 0; p < pages; p++) createHash('sha256').update(data.subarray(p * PAGE, (p + 1) * PAGE)).digest().copy(leaves, p * 32);
  return { data, leaves };
}

/** Splits `data` into views of the given page counts (whole pages, in order). */
function split(data: Buffer, counts: number[]): Buffer[] {
  const views: Buffer[] = [];
  let at = 0;
  for (const n of counts) {
    views.push(data.subarray(at, at + n * PAGE));
    at += n * PAGE;
  }
  return views;
}

function check(native: NativePageCheck, views: Buffer[], leaves: Buffer, pages: number): Promise<{ res: number; bad?: number[] }> {
  return new Promise((resolve) => native(views, leaves, pages, (res, bad) => resolve({ res, bad })));
}

describe('Fuse.sha256BadPages (patched binding, level 6)', () => {
  it('names exactly the pages whose bytes changed, across views of any page count', async () => {
    const { data, leaves } = sealed(256);
    expect(await check(nativeCheck(), [data], leaves, 256)).toEqual({ res: 0, bad: [] });
    for (const p of [0, 17, 18, 255]) data[p * PAGE + ((p * 131) % PAGE)] ^= 0x40;
    expect(await check(nativeCheck(), [data], leaves, 256)).toEqual({ res: 0, bad: [0, 17, 18, 255] });
    expect(await check(nativeCheck(), split(data, [3, 1, 14, 1, 237]), leaves, 256)).toEqual({ res: 0, bad: [0, 17, 18, 255] });
  });

  it('checks only the first `pages` pages, and counts pages no view holds as bad', async () => {
    const { data, leaves } = sealed(8);
    data[7 * PAGE] ^= 1;
    expect(await check(nativeCheck(), [data], leaves, 7)).toEqual({ res: 0, bad: [] });
    // Views holding 5 pages, 8 asked: the 3 not held cannot be vouched for.
    expect(await check(nativeCheck(), [data.subarray(0, 5 * PAGE)], leaves, 8)).toEqual({ res: 0, bad: [5, 6, 7] });
    // A view's partial last page is not a page.
    expect(await check(nativeCheck(), [data.subarray(0, PAGE + 100)], leaves, 2)).toEqual({ res: 0, bad: [1] });
  });

  it('refuses bad arguments with a TypeError, before any work is queued', () => {
    const { data, leaves } = sealed(2);
    const cb = (): void => undefined;
    expect(() => nativeCheck()(['not a buffer' as unknown as Buffer], leaves, 2, cb)).toThrow(TypeError);
    expect(() => nativeCheck()([data], leaves.subarray(0, 32), 2, cb)).toThrow(/leaves/);
    expect(() => nativeCheck()(Array.from({ length: 1025 }, () => data), leaves, 2, cb)).toThrow(/1024/);
  });
});

describe('PageHasher', () => {
  it('gives the same answers with the binding (thread pool) and without it (worker threads)', async () => {
    const pooled = new PageHasher(silentLogger(), nativeCheck());
    const workers = new PageHasher(silentLogger());
    try {
      for (let round = 0; round < 6; round++) {
        const pages = [1, 7, 64, 256, 200, 33][round];
        const { data, leaves } = sealed(pages);
        const flipped = [...new Set(Array.from({ length: round }, (_, i) => (i * 37 + round) % pages))].sort((a, b) => a - b);
        for (const p of flipped) data[p * PAGE + 9] ^= 0xff;
        const views = split(data, pages > 3 ? [1, 2, pages - 3] : [pages]);
        const [a, b] = await Promise.all([pooled.badPages(views, leaves, pages), workers.badPages(views, leaves, pages)]);
        expect(a, `round ${round}`).toEqual(flipped);
        expect(b, `round ${round}`).toEqual(flipped);
      }
    } finally {
      await pooled.close();
      await workers.close();
    }
  });
});
