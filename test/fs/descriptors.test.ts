/**
 * File descriptors: pagerfs keeps a closed file's VMO as a cache, and each holds its backing file
 * open. Reading more files than the daemon may have descriptors (RLIMIT_NOFILE) used to end in
 * EMFILE for every later open, and even for the unmount (fusermount could not be spawned). Here
 * the daemon runs under `prlimit --nofile=256`: it keeps at most half that many idle files.
 */
import { promises as fsp } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { run, startMount, useMountHooks } from './harness.js';

useMountHooks();

describe('more files than the daemon has descriptors', () => {
  it('1,000 files read through a daemon limited to 256 descriptors: every byte right, descriptors stay under the limit, unmount works', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 1000; i++) files[`d${i % 10}/f${i}`] = `file ${i}\n`.repeat(1 + (i % 7));
    const m = await startMount({ files, wrap: ['prlimit', '--nofile=256:256'] });
    const limits = await fsp.readFile(`/proc/${m.pid}/limits`, 'utf8');
    expect(limits).toMatch(/^Max open files\s+256\s+256/m);
    const fds = async (): Promise<number> => (await fsp.readdir(`/proc/${m.pid}/fd`)).length;
    const baseline = await fds();
    // Sampled all through the passes, not only between them.
    let peakFds = baseline;
    let samples = 0;
    let reading = true;
    const sampler = (async () => {
      while (reading) {
        peakFds = Math.max(peakFds, await fds());
        samples++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      for (let pass = 0; pass < 2; pass++) {
        const res = await run('sh', ['-c', 'find . -path ./.pagerfs -prune -o -type f -print0 | sort -z | xargs -0 cat | sha256sum'], { cwd: m.mnt });
        expect(res.code, res.stderr).toBe(0);
        expect(res.stderr).toBe('');
        const want = await run('sh', ['-c', 'find . -type f -print0 | sort -z | xargs -0 cat | sha256sum'], { cwd: m.backing });
        expect(res.stdout).toBe(want.stdout);
      }
    } finally {
      reading = false;
      await sampler;
    }
    expect(samples).toBeGreaterThan(10);
    // The design bound: idle files keep at most half the limit (128) open, plus the few being read.
    expect(peakFds - baseline, `descriptors held by the daemon (baseline ${baseline})`).toBeLessThanOrEqual(128 + 8);
    expect(peakFds - baseline, 'the passes did keep idle files open').toBeGreaterThan(64);
    const stats = await m.stats();
    expect(stats.files.length, 'files kept with a VMO').toBeLessThanOrEqual(128 + 4);
    const u = await m.unmount();
    expect(u.code, u.stderr).toBe(0);
    expect(m.exitCode).toBe(0);
  });
});
