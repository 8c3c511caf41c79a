/**
 * fallocate(2) through a real mount (the patched binding's fallocate op), each step run the same
 * way with util-linux `fallocate` (and Python's posix_fallocate) on a plain directory, the
 * reference, and through the mount: bytes and sizes must match after every step, and the backing
 * files must equal the reference after unmount, holes included. Then what it refuses (collapse and
 * insert: EOPNOTSUPP), a full backing store (ENOSPC, the file unchanged), and punches while other
 * processes read and write the file.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mountTmpfs, useTmpfsCleanup } from '../e2e/helpers.js';
import { PAGE, python, randomData, readToEnd, run, startMount, tempDir, useMountHooks, waitFor } from './harness.js';

useTmpfsCleanup();
useMountHooks();

const KiB = 1024;

/** Runs `fallocate ARGS` (util-linux) in `dir`; its exit code and stderr. */
async function fallocate(dir: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const r = await run('fallocate', args, { cwd: dir });
  return { code: r.code, stderr: r.stderr.trim() };
}

describe('fallocate through the mount', () => {
  it('every mode Linux passes to FUSE gives the bytes and sizes a plain directory gives, and leaves the same holes', async () => {
    const ref = await tempDir('pagerfs-fallocate-ref-');
    const m = await startMount({ budget: '1MiB', args: ['--writeback-delay', '200ms'] });
    const seed = randomData(300 * KiB + 123);
    const digits = Buffer.alloc(2 * 1024 * KiB, 0x37);
    digits.fill(0, 256 * KiB, 768 * KiB); // zero runs for `fallocate -d` to dig out
    for (const dir of [ref, m.mnt]) {
      await fsp.writeFile(path.join(dir, 'f'), seed);
      await fsp.writeFile(path.join(dir, 'g'), digits);
    }
    const steps: string[][] = [
      ['-l', '1M', 'new'], // a new file of 1 MiB
      ['-n', '-o', '100000', '-l', '50000', 'f'], // --keep-size inside the file
      ['-n', '-o', '0', '-l', '4M', 'f'], // --keep-size past the end
      ['-p', '-o', '5000', '-l', '100000', 'f'], // punch, unaligned at both ends
      ['-p', '-o', `${8 * PAGE}`, '-l', `${16 * PAGE}`, 'f'], // punch whole pages
      ['-z', '-o', '200000', '-l', '200000', 'f'], // zero range across the end: grows
      ['-z', '-n', '-o', '10', '-l', '20', 'f'], // zero a few bytes in the first page
      ['-l', '2000', 'f'], // inside the file: nothing changes
      ['-p', '-o', '500000', '-l', '100000', 'f'], // punch past the end: nothing changes
      ['-d', 'g'], // dig holes where the file is zero
    ];
    for (const step of steps) {
      const want = await fallocate(ref, step);
      const got = await fallocate(m.mnt, step);
      const what = `fallocate ${step.join(' ')}`;
      expect(want.code, `${what} on the reference: ${want.stderr}`).toBe(0);
      expect(got.code, `${what} through the mount: ${got.stderr}`).toBe(0);
      const file = step[step.length - 1]!;
      const refBytes = await fsp.readFile(path.join(ref, file));
      const mntBytes = await readToEnd(m.p(file));
      expect(mntBytes.length, `${what}: size`).toBe(refBytes.length);
      expect(mntBytes.equals(refBytes), `${what}: bytes`).toBe(true);
      expect((await fsp.stat(m.p(file))).size, `${what}: stat size`).toBe(refBytes.length);
    }
    // posix_fallocate(3) (glibc calls fallocate(2) mode 0): grows a file.
    const py = 'import os, sys\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\nos.posix_fallocate(fd, 4096, 123456)\nprint(os.fstat(fd).st_size)\nos.close(fd)';
    for (const dir of [ref, m.mnt]) {
      const r = await python(py, [path.join(dir, 'h')]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(String(4096 + 123456));
    }
    expect((await m.unmount()).code).toBe(0);
    for (const file of ['new', 'f', 'g', 'h']) {
      const back = await fsp.readFile(m.b(file));
      expect(back.equals(await fsp.readFile(path.join(ref, file))), `backing ${file} after unmount`).toBe(true);
      // Holes stay holes: what the backing file system allocates is what the reference has (a
      // written-back page of zeros would add 4 KiB; one page of slack per end of a partial punch).
      const [b, r] = [await fsp.stat(m.b(file)), await fsp.stat(path.join(ref, file))];
      expect(b.blocks * 512, `allocated bytes of backing ${file} (reference ${r.blocks * 512})`).toBeLessThanOrEqual(r.blocks * 512 + 2 * PAGE);
      expect(b.blocks * 512, `allocated bytes of backing ${file} (reference ${r.blocks * 512})`).toBeGreaterThanOrEqual(r.blocks * 512 - 2 * PAGE);
    }
  }, 60_000);

  it('collapse and insert are refused with EOPNOTSUPP and change nothing', async () => {
    const m = await startMount({ budget: '1MiB' });
    const data = randomData(64 * KiB);
    await fsp.writeFile(m.p('c'), data);
    for (const flag of ['-c', '-i']) {
      const r = await fallocate(m.mnt, [flag, '-o', '0', '-l', `${4 * PAGE}`, 'c']);
      expect(r.code, `fallocate ${flag}`).not.toBe(0);
      expect(r.stderr).toMatch(/Operation not supported/);
    }
    expect((await readToEnd(m.p('c'))).equals(data)).toBe(true);
    expect((await m.unmount()).code).toBe(0);
    expect((await fsp.readFile(m.b('c'))).equals(data)).toBe(true);
  });

  it('a full backing store answers ENOSPC and the file keeps its size and bytes', async () => {
    const backing = await mountTmpfs('8m');
    const m = await startMount({ backing, budget: '1MiB' });
    const data = randomData(100 * KiB);
    await fsp.writeFile(m.p('full'), data);
    const r = await fallocate(m.mnt, ['-l', '64M', 'full']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/No space left on device/);
    expect((await fsp.stat(m.p('full'))).size).toBe(data.length);
    expect((await readToEnd(m.p('full'))).equals(data)).toBe(true);
    // Still usable: a reservation that fits works.
    expect((await fallocate(m.mnt, ['-l', '1M', 'full'])).code).toBe(0);
    expect((await fsp.stat(m.p('full'))).size).toBe(1024 * KiB);
    expect((await m.unmount()).code).toBe(0);
    const back = await fsp.readFile(path.join(backing, 'full'));
    expect(back.subarray(0, data.length).equals(data)).toBe(true);
    expect(back.length).toBe(1024 * KiB);
  });

  it('punches while other processes read and rewrite the file: every read succeeds, and the file ends with the writes and the holes', async () => {
    const m = await startMount({ budget: '256KiB', args: ['--writeback-delay', '50ms'] });
    const SIZE = 2 * 1024 * KiB;
    const data = randomData(SIZE);
    await fsp.writeFile(m.p('busy'), data);
    // Two readers stream the file (every read must succeed) while the first half is rewritten and
    // punches go through the second half, each a fallocate process of its own.
    // Each reader says it has started (a marker file) and streams pass after pass until told to stop
    // once the punches are done: the punches run while both read.
    const reader = `
import os, sys
open(sys.argv[2], 'w').close()
passes = 0
while passes == 0 or not os.path.exists(sys.argv[3]):
    fd = os.open(sys.argv[1], os.O_RDONLY)
    off = 0
    while True:
        b = os.pread(fd, 65536, off)
        if not b: break
        off += len(b)
    os.close(fd)
    assert off == ${SIZE}, off
    passes += 1
print(passes)`;
    const marks = await tempDir('pagerfs-fallocate-marks-');
    const stop = path.join(marks, 'stop');
    const readers = [0, 1].map((i) => python(reader, [m.p('busy'), path.join(marks, `started${i}`), stop], { timeoutMs: 120_000 }));
    for (const i of [0, 1]) await waitFor(() => fsp.access(path.join(marks, `started${i}`)).then(() => true), 30_000, 20, `reader ${i} started`);
    const rewrite = randomData(SIZE / 2);
    const punches: Array<[number, number]> = [];
    for (let i = 0; i < 24; i++) {
      const off = SIZE / 2 + ((i * 37 * KiB + 1234) % (SIZE / 2 - 64 * KiB));
      const len = 1000 + ((i * 7919) % (48 * KiB));
      punches.push([off, len]);
      const r = await fallocate(m.mnt, ['-p', '-o', String(off), '-l', String(len), 'busy']);
      expect(r.code, r.stderr).toBe(0);
      const fh = await fsp.open(m.p('busy'), 'r+');
      try {
        await fh.write(rewrite.subarray(i * 8 * KiB, (i + 1) * 8 * KiB), 0, 8 * KiB, i * 8 * KiB);
      } finally {
        await fh.close();
      }
    }
    await fsp.writeFile(stop, '');
    for (const r of await Promise.all(readers)) {
      expect(r.timedOut).toBe(false);
      expect(r.code, r.stderr).toBe(0);
      expect(Number(r.stdout.trim()), 'full passes read').toBeGreaterThanOrEqual(1);
    }
    const want = Buffer.from(data);
    rewrite.copy(want, 0, 0, 24 * 8 * KiB);
    for (const [off, len] of punches) want.fill(0, off, off + len);
    expect((await readToEnd(m.p('busy'))).equals(want), 'through the mount').toBe(true);
    expect((await m.unmount()).code).toBe(0);
    expect((await fsp.readFile(m.b('busy'))).equals(want), 'backing file after unmount').toBe(true);
  }, 120_000);
});
