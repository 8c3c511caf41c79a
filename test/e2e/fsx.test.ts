/**
 * Random-operation consistency through a real mount, in the spirit of fsx: a seeded sequence of
 * writes at random offsets and lengths, reads compared byte for byte, truncates smaller and
 * larger, fsyncs, and close/reopen, on several files through pagerfs, mirrored on a reference
 * copy in a plain directory. The budget is 4 MiB while the files grow to several MiB each, so
 * eviction, readahead and writeback interleave with everything. After unmount the backing files
 * must equal the reference. The seed is printed on failure (PAGERFS_SEED=<n> replays one).
 */
import { promises as fsp, type promises } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startMount, tempDir, useMountHooks } from '../fs/harness.js';
import { mulberry32 as rng } from '../src/eviction-helpers.js';

useMountHooks();

type FileHandle = promises.FileHandle;

const FILES = 4;
const OPS = Number(process.env.PAGERFS_FSX_OPS ?? 20_000);
const MAX_FILE = 6 * 1024 * 1024;
const MAX_IO = 192 * 1024;

interface Pair { name: string; mnt: FileHandle; ref: FileHandle; size: number }

describe('fsx-style random operations through the mount', () => {
  const seed = Number(process.env.PAGERFS_SEED ?? Date.now() % 1_000_000);

  it(`${OPS} seeded random operations on ${FILES} files under a 4 MiB budget match a plain directory (seed ${seed})`, async () => {
    const m = await startMount({ budget: '4MiB', args: ['--writeback-delay', '200ms'] });
    const refDir = await tempDir('pagerfs-fsx-ref-');
    const rand = rng(seed);
    const int = (n: number): number => Math.floor(rand() * n);
    // Write data comes from a seeded pool, so a replayed seed writes the same bytes.
    const pool = Buffer.allocUnsafe(2 * MAX_IO);
    for (let i = 0; i < pool.length; i++) pool[i] = int(256);
    const pairs: Pair[] = [];
    const open = async (name: string, create: boolean): Promise<Pair> => {
      const flags = create ? 'w+' : 'r+';
      return { name, mnt: await fsp.open(m.p(name), flags), ref: await fsp.open(path.join(refDir, name), flags), size: 0 };
    };
    for (let i = 0; i < FILES; i++) pairs.push(await open(`f${i}.bin`, true));
    const counts: Record<string, number> = {};
    let op = 0;
    const fail = (what: string): never => {
      throw new Error(`seed ${seed}, op ${op}: ${what}`);
    };
    try {
      for (op = 0; op < OPS; op++) {
        const f = pairs[int(FILES)];
        const kind = rand();
        if (kind < 0.35) {
          counts.write = (counts.write ?? 0) + 1;
          const len = 1 + int(MAX_IO);
          const off = int(Math.min(MAX_FILE - len, f.size + 64 * 1024));
          const from = int(pool.length - len);
          const data = pool.subarray(from, from + len);
          const a = await f.mnt.write(data, 0, len, off);
          const b = await f.ref.write(data, 0, len, off);
          if (a.bytesWritten !== len || b.bytesWritten !== len) fail(`short write ${a.bytesWritten}/${b.bytesWritten} of ${len}`);
          f.size = Math.max(f.size, off + len);
        } else if (kind < 0.75) {
          counts.read = (counts.read ?? 0) + 1;
          const len = 1 + int(MAX_IO);
          const off = int(f.size + 8192);
          const x = Buffer.alloc(len);
          const y = Buffer.alloc(len);
          const a = await f.mnt.read(x, 0, len, off);
          const b = await f.ref.read(y, 0, len, off);
          if (a.bytesRead !== b.bytesRead) fail(`${f.name}: read at ${off}+${len} gave ${a.bytesRead} bytes, reference ${b.bytesRead}`);
          if (!x.subarray(0, a.bytesRead).equals(y.subarray(0, b.bytesRead))) {
            let i = 0;
            while (x[i] === y[i]) i++;
            fail(`${f.name}: read at ${off}+${len} differs at byte ${off + i} (size ${f.size})`);
          }
        } else if (kind < 0.85) {
          counts.truncate = (counts.truncate ?? 0) + 1;
          const size = rand() < 0.5 ? int(f.size + 1) : Math.min(MAX_FILE, f.size + int(512 * 1024));
          await f.mnt.truncate(size);
          await f.ref.truncate(size);
          f.size = size;
        } else if (kind < 0.92) {
          counts.fsync = (counts.fsync ?? 0) + 1;
          await f.mnt.sync();
        } else if (kind < 0.98) {
          counts.reopen = (counts.reopen ?? 0) + 1;
          await f.mnt.close();
          await f.ref.close();
          const again = await open(f.name, false);
          again.size = f.size;
          pairs[pairs.indexOf(f)] = again;
        } else {
          counts.stat = (counts.stat ?? 0) + 1;
          const st = await fsp.stat(m.p(f.name));
          if (st.size !== f.size) fail(`${f.name}: stat size ${st.size}, expected ${f.size}`);
        }
      }
      const stats = await m.stats();
      expect(stats.residentBytes).toBeLessThanOrEqual(stats.budgetBytes);
      expect(stats.evictedPages, 'the budget was small enough to evict').toBeGreaterThan(0);
      expect(stats.writebackBytes).toBeGreaterThan(0);
    } finally {
      for (const p of pairs) {
        await p.mnt.close().catch(() => undefined);
        await p.ref.close().catch(() => undefined);
      }
    }
    const res = await m.unmount();
    expect(res.code, res.stderr).toBe(0);
    expect(m.exitCode).toBe(0);
    for (let i = 0; i < FILES; i++) {
      const back = await fsp.readFile(path.join(m.backing, `f${i}.bin`));
      const ref = await fsp.readFile(path.join(refDir, `f${i}.bin`));
      expect(back.length, `seed ${seed}: f${i}.bin size`).toBe(ref.length);
      expect(back.equals(ref), `seed ${seed}: f${i}.bin contents after unmount`).toBe(true);
    }
    process.stdout.write(`fsx seed ${seed}: ${JSON.stringify(counts)}\n`);
  }, 600_000);
});
