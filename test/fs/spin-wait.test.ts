/**
 * `--spin-wait`: a FUSE thread that handed a request to the JS thread spins for the answer before it
 * sleeps (binding level 16). What can be seen from outside: the binding's counters in the stats
 * document (answers caught spinning, spins that slept), and that the bytes are still right.
 */
import { promises as fsp } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { randomData, sha256, startMount, useMountHooks } from './harness.js';

useMountHooks();

const MiB = 1024 * 1024;
const READ = 4096;

/** Reads `file` in 4 KiB reads, one at a time: each is a FUSE request that waits alone. */
async function readSerially(file: string, bytes: number): Promise<Buffer> {
  const out = Buffer.alloc(bytes);
  const fh = await fsp.open(file, 'r');
  try {
    for (let pos = 0; pos < bytes; pos += READ) {
      const { bytesRead } = await fh.read(out, pos, READ, pos);
      expect(bytesRead).toBe(READ);
    }
  } finally {
    await fh.close();
  }
  return out;
}

describe('pagerfs mount --spin-wait', () => {
  it('catches answers while spinning when set, and counts them in the stats', async () => {
    const data = randomData(2 * MiB);
    // --no-fast-read: resident reads must reach the JS thread (fast reads never wait for it, so never spin).
    const m = await startMount({ budget: '16MiB', args: ['--spin-wait', '2ms', '--no-fast-read'], files: { 'f.bin': data } });
    await fsp.readFile(m.p('f.bin')); // resident: the reads below are answered without the backing file
    const before = (await m.stats()).fuseSpin;
    expect(before.spinWaitNs).toBe(2_000_000);
    const got = await readSerially(m.p('f.bin'), data.length);
    expect(sha256(got)).toBe(sha256(data));
    const after = (await m.stats()).fuseSpin;
    const reads = data.length / READ;
    // A resident read is answered in tens of µs; 2 ms leaves room for a busy machine. Each read spun
    // (it waited alone), so hits + misses grew by at least the reads.
    expect(after.hits + after.misses - before.hits - before.misses, 'spins during the serial reads').toBeGreaterThanOrEqual(reads);
    expect(after.hits - before.hits, `answers caught spinning (of ${reads} reads)`).toBeGreaterThanOrEqual(reads / 2);
  });

  it('never spins with 0', async () => {
    const data = randomData(MiB);
    const m = await startMount({ budget: '16MiB', args: ['--spin-wait', '0'], files: { 'f.bin': data } });
    expect(sha256(await readSerially(m.p('f.bin'), data.length))).toBe(sha256(data));
    expect((await m.stats()).fuseSpin).toEqual({ spinWaitNs: 0, hits: 0, misses: 0 });
  });
});
