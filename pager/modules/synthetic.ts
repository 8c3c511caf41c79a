/**
 * The `synthetic` pager module: files of deterministic pseudo-random bytes of any size, with no
 * backing disk, for eviction tests far beyond disk and memory:
 *
 *   pagerfs mount --pager synthetic <mnt> --pager-option files=4 --pager-option size=64GiB --pager-option seed=7
 *
 * serves synthetic-0.bin … synthetic-3.bin, 64 GiB each. File i holds syntheticFill(seed, i, …)
 * (pager/synthetic-content.ts, exported from the library), so a reader can check every byte. Pages
 * are computed straight into the frames that are then supplied (supplyWith): no copy.
 */
import type { FileDeclaration, PagerModule } from '../module.js';
import { PagerModuleError } from '../module.js';
import { parseSize } from '../sizes.js';
import { syntheticFill } from '../synthetic-content.js';

/** The largest file count: each file is one VMO, and a listing of more is no longer useful. */
const MAX_FILES = 4096;

function intOption(name: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < 0 || n > max) {
    throw new PagerModuleError(`Invalid --pager-option ${name}=${text}: expected a whole number from 0 to ${max}`, 'usage');
  }
  return n;
}

/** The name of synthetic file `index` (what the mount shows). */
export function syntheticFileName(index: number): string {
  return `synthetic-${index}.bin`;
}

const synthetic: PagerModule = {
  description: 'files of deterministic pseudo-random bytes of any size (syntheticFill), with no backing disk',
  options: {
    files: `how many files (default 1, at most ${MAX_FILES}), named synthetic-0.bin, synthetic-1.bin, …`,
    size: 'the size of each file: bytes or a size like 64GiB (default 1GiB)',
    seed: 'the content seed, a whole number below 2^32 (default 0)',
  },
  create(ctx) {
    const count = intOption('files', ctx.options.files, 1, MAX_FILES);
    const seed = intOption('seed', ctx.options.seed, 0, 2 ** 32 - 1);
    let sizeBytes = 1024 ** 3;
    if (ctx.options.size !== undefined) {
      try {
        sizeBytes = parseSize(ctx.options.size);
      } catch (err) {
        throw new PagerModuleError(`Invalid --pager-option size=${ctx.options.size}: ${(err as Error).message}`, 'usage');
      }
    }
    if (sizeBytes > ctx.api.MAX_VMO_SIZE_BYTES) {
      throw new PagerModuleError(`Invalid --pager-option size=${ctx.options.size}: above the largest VMO (${ctx.api.MAX_VMO_SIZE_BYTES} bytes)`, 'usage');
    }
    const files: FileDeclaration[] = [];
    for (let i = 0; i < count; i++) files.push({ path: syntheticFileName(i), sizeBytes, mode: 0o444, mtime: new Date(0) });
    const indexOf = new Map(files.map((f, i) => [f.path, i]));
    ctx.log.info({ files: count, sizeBytes, seed }, 'synthetic pager ready');
    return {
      files,
      async read(req) {
        const fileIndex = indexOf.get(req.path)!;
        // Bytes past the content size in the last page stay zero (the frames start zeroed).
        const contentEnd = Math.min(req.offsetBytes + req.lengthBytes, req.sizeBytes);
        await req.supplyWith(req.offsetBytes, req.lengthBytes, (pages) => {
          let pos = req.offsetBytes;
          for (const view of pages) {
            const n = Math.max(0, Math.min(view.length, contentEnd - pos));
            if (n > 0) syntheticFill(seed, fileIndex, pos, view, 0, n);
            pos += view.length;
          }
        });
      },
    };
  },
};

export default synthetic;
