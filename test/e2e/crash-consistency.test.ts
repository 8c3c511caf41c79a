/**
 * Crash consistency: a writer process appends known records through the mount and fsyncs them in a
 * loop, printing each record it saw fsync succeed for; the daemon is SIGKILLed mid-write. After
 * `mount --force` on the same mountpoint the mount works again and every fsync'ed byte is in the
 * backing file and reads back through the new mount.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isMounted, sleep, startMount, useMountHooks, waitFor } from '../fs/harness.js';
import { mulberry32 } from '../src/eviction-helpers.js';
import { contentBlock } from './helpers.js';

useMountHooks();

/** Record i: "REC<i, 8 digits>\n" then SHAKE-128 content of tag "rec<seed>", size 100..20099 bytes. */
function recordSize(i: number): number {
  return 100 + ((i * 7919) % 20_000);
}

function record(seed: number, i: number): Buffer {
  const size = recordSize(i);
  const out = Buffer.alloc(size);
  out.write(`REC${String(i).padStart(8, '0')}\n`);
  for (let off = 12, b = 0; off < size; off += 4096, b++) contentBlock(`rec${seed}:${i}`, b).copy(out, off, 0, Math.min(4096, size - off));
  return out;
}

const WRITER = `
import hashlib, os, sys
path, seed, max_records = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def record(i):
    size = 100 + (i * 7919) % 20000
    body = bytearray(f"REC{i:08d}\\n".encode())
    b = 0
    while len(body) < size:
        body += hashlib.shake_128(f"rec{seed}:{i}:{b}".encode()).digest(4096)
        b += 1
    return bytes(body[:size])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
off = 0
i = 0
try:
    while i < max_records:
        r = record(i)
        n = os.pwrite(fd, r, off)
        if n != len(r):
            raise OSError(0, f"short write {n} of {len(r)}")
        off += n
        # fsync after 1 to 4 records
        if (i * 2654435761 + seed) % 4 == 0 or i % 4 == 3:
            os.fsync(fd)
            sys.stdout.write(f"synced {i} {off}\\n")
            sys.stdout.flush()
        i += 1
    sys.stdout.write("done\\n")
except OSError as e:
    sys.stdout.write(f"error {e.errno} {e.strerror} at record {i}\\n")
sys.stdout.flush()
`;

/** What the expected file looks like up to the end of record `last`. */
function expectedPrefix(seed: number, last: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i <= last; i++) parts.push(record(seed, i));
  return Buffer.concat(parts);
}

/** Where two buffers first differ (within the shorter), or -1. */
function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

describe('SIGKILL of the daemon while a writer appends and fsyncs records', () => {
  // Several seeds: the kill lands at a different point of the write/fsync/writeback cycle each time.
  it.each([1, 2, 3, 4])('seed %i: after mount --force every fsync\'ed record is in the backing file and reads back through the new mount', async (seed) => {
    const rand = mulberry32(seed);
    // A small budget, so pressure writeback runs alongside fsync; a long delay, so only fsync,
    // pressure and close write back.
    const m = await startMount({ budget: '256KiB', args: ['--writeback-delay', '60s'] });
    const file = m.p('log.bin');
    const writer = spawn('python3', ['-c', WRITER, file, String(seed), '1000000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    writer.stdout.on('data', (d: Buffer) => { out += d.toString('utf8'); });
    writer.stderr.on('data', (d: Buffer) => { err += d.toString('utf8'); });
    const writerExit = new Promise<number | null>((resolve) => writer.on('close', (code) => resolve(code)));
    let writerDone = false;
    void writerExit.then(() => { writerDone = true; });
    try {
      // Let it run for a while (a seed-dependent number of fsyncs), then kill at a random moment.
      const wantSyncs = 100 + Math.floor(rand() * 300);
      await waitFor(() => (out.match(/^synced /gm) ?? []).length >= wantSyncs || writerDone, 60_000, 5,
        () => `${wantSyncs} fsyncs: the writer made ${(out.match(/^synced /gm) ?? []).length}; stderr ${err}`);
      expect(writerDone, `the writer ended before the kill: ${out.slice(-200)} ${err}`).toBe(false);
      await sleep(Math.floor(rand() * 20));
      m.child.kill('SIGKILL');
      expect(await m.waitExit(10_000)).toBe(true);
      expect(m.exitSignal).toBe('SIGKILL');
      // The writer is cut off (ENOTCONN or similar), it does not hang.
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([writerExit, new Promise<'hung'>((r) => { timer = setTimeout(() => r('hung'), 20_000); })]);
      clearTimeout(timer);
      if (code === 'hung') writer.kill('SIGKILL');
      expect(code, `the writer hung after the daemon was killed; stdout tail ${out.slice(-200)}`).toBe(0);
      expect(out, 'the writer was stopped mid-run by an error').toMatch(/^error /m);
      expect(out).not.toMatch(/^done$/m);
    } finally {
      if (!writerDone) writer.kill('SIGKILL');
    }

    const synced = [...out.matchAll(/^synced (\d+) (\d+)$/gm)].map((x) => ({ i: Number(x[1]), end: Number(x[2]) }));
    const last = synced[synced.length - 1];
    const want = expectedPrefix(seed, last.i);
    expect(want.length).toBe(last.end);
    const lastLine = out.trimEnd().split('\n').pop();
    const what = `seed ${seed}: ${synced.length} fsyncs, last fsync'ed record ${last.i} ending at byte ${last.end}; writer's last line "${lastLine}"`;
    process.stdout.write(`crash: ${what}\n`);

    // The backing file holds every fsync'ed byte already, before any remount.
    const back = await fsp.readFile(m.b('log.bin'));
    expect(back.length, `backing file size (${what})`).toBeGreaterThanOrEqual(last.end);
    expect(firstDiff(back.subarray(0, last.end), want), `first differing byte in the backing file (${what})`).toBe(-1);

    // mount --force clears the stale mount and serves again.
    expect(await isMounted(m.mnt)).toBe(true);
    const again = await startMount({ budget: '256KiB', backing: m.backing, mountpoint: m.mnt, args: ['--force', '--writeback-delay', '60s'] });
    const through = await fsp.readFile(again.p('log.bin'));
    expect(through.length, `size through the new mount (${what})`).toBe(back.length);
    expect(firstDiff(through.subarray(0, last.end), want), `first differing byte through the new mount (${what})`).toBe(-1);
    // The new mount takes writes and fsyncs too.
    const fh = await fsp.open(again.p('after.txt'), 'w');
    await fh.write('after the crash');
    await fh.sync();
    await fh.close();
    expect(await fsp.readFile(again.b('after.txt'), 'utf8')).toBe('after the crash');
    const res = await again.unmount();
    expect(res.code, res.stderr).toBe(0);
    expect(again.exitCode).toBe(0);
    expect((await fsp.readFile(m.b('log.bin'))).subarray(0, last.end).equals(want)).toBe(true);
  }, 120_000);
});
