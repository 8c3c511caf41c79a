/**
 * Faults through a real mount: injected page-request failures reach only the readers of the failing
 * file or range (as EIO) while concurrent readers elsewhere succeed; a backing file removed while
 * pagerfs holds it open keeps serving; a backing file truncated behind pagerfs's back gives a handle
 * opened before EIO for the missing part (never zeros, never a hang), a new open the new size, and
 * the daemon keeps serving; and a full backing
 * store (a small tmpfs) surfaces as ENOSPC without losing the data that was accepted.
 *
 * I/O that could hang runs in Python child processes with a timeout, so a hang is reported as such.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { codeOf, isMounted, python, readToEnd, run, runCli, startMount, useMountHooks, type Mount } from '../fs/harness.js';
import { KiB, MiB, PY_CONTENT, content, mountTmpfs, useTmpfsCleanup } from './helpers.js';

useTmpfsCleanup();
useMountHooks();

const CHUNK = 64 * KiB;

/**
 * Reads files through the mount in aligned CHUNK-sized preads, `passes` times, and reports one
 * outcome per chunk and pass: "ok", "short:<n>", "mismatch@<byte>" or the errno name.
 */
const CHUNK_READER = `${PY_CONTENT}
import errno, json, os, sys
mnt, plan = sys.argv[1], json.loads(sys.argv[2])
out = {}
for name in plan["files"]:
    res = []
    size = plan["size"]
    for p in range(plan["passes"]):
        fd = os.open(os.path.join(mnt, name), os.O_RDONLY)
        try:
            for off in range(0, size, ${CHUNK}):
                n = min(${CHUNK}, size - off)
                try:
                    got = os.pread(fd, n, off)
                except OSError as e:
                    res.append(errno.errorcode.get(e.errno, str(e.errno)))
                    continue
                want = expected(plan.get("tag", name), off, n)
                if got == want:
                    res.append("ok")
                elif len(got) != n:
                    res.append("short:%d" % len(got))
                else:
                    i = next(k for k in range(n) if got[k] != want[k])
                    res.append("mismatch@%d%s" % (off + i, " (zeros)" if got[i:] == bytes(n - i) else ""))
        finally:
            os.close(fd)
    out[name] = res
print(json.dumps(out))
`;

type Outcomes = Record<string, string[]>;

/** Single preads [offset, length] of one file through one handle: "ok", "short:<n>", "mismatch" or the errno name. */
const PREADS = `${PY_CONTENT}
import errno, json, os, sys
mnt, name, reads = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
fd = os.open(os.path.join(mnt, name), os.O_RDONLY)
out = []
for off, n in reads:
    try:
        got = os.pread(fd, n, off)
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
        continue
    out.append("ok" if got == expected(name, off, n) else ("short:%d" % len(got) if len(got) != n else "mismatch"))
os.close(fd)
print(json.dumps(out))
`;

async function preads(m: Mount, name: string, reads: Array<[number, number]>): Promise<string[]> {
  const res = await python(PREADS, [m.mnt, name, JSON.stringify(reads)], { timeoutMs: 60_000 });
  expect(res.timedOut, `preads of ${name} hung`).toBe(false);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as string[];
}

async function readChunks(m: Mount, files: string[], size: number, passes = 1, timeoutMs = 120_000): Promise<Outcomes> {
  const res = await python(CHUNK_READER, [m.mnt, JSON.stringify({ files, size, passes })], { timeoutMs });
  expect(res.timedOut, `reader of ${files.join(', ')} hung (killed after ${timeoutMs} ms)`).toBe(false);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as Outcomes;
}

/** The outcomes expected for `passes` passes over `size` bytes when chunks overlapping [from, to) fail with `errno`. */
function expectedOutcomes(size: number, passes: number, fail?: { from: number; to: number; errno: string }): string[] {
  const one: string[] = [];
  for (let off = 0; off < size; off += CHUNK) {
    const end = Math.min(size, off + CHUNK);
    one.push(fail !== undefined && off < fail.to && end > fail.from ? fail.errno : 'ok');
  }
  return Array.from({ length: passes }, () => one).flat();
}

/** Runs of equal outcomes, "ok×16, EIO×16, ..." — readable in a failure message. */
function runs(outcomes: string[]): string {
  const parts: string[] = [];
  for (let i = 0; i < outcomes.length;) {
    let j = i;
    while (j < outcomes.length && outcomes[j] === outcomes[i]) j++;
    parts.push(`${outcomes[i]}×${j - i}`);
    i = j;
  }
  return parts.join(', ');
}

describe('injected page-request failures', () => {
  const SIZE = 4 * MiB;

  it('--inject-fault fails only the readers of the faulty file and range with EIO; concurrent readers elsewhere read every byte', async () => {
    const files: Record<string, Buffer> = {};
    for (const name of ['bad.bin', 'part.bin', 'good1.bin', 'good2.bin']) files[name] = content(name, SIZE);
    // A 1 MiB budget: each pass re-faults pages the previous pass had (4 MiB files), so the
    // failing and the succeeding page requests really interleave.
    const m = await startMount({
      budget: '1MiB', files,
      args: ['--inject-fault', 'bad.bin=IO', '--inject-fault', 'part.bin:1MiB-2MiB=IO'],
    });
    const before = await m.stats();
    const passes = 3;
    const [a, b, c, d, e] = await Promise.all([
      readChunks(m, ['bad.bin'], SIZE, passes),
      readChunks(m, ['part.bin'], SIZE, passes),
      readChunks(m, ['good1.bin', 'good2.bin'], SIZE, passes),
      readChunks(m, ['part.bin'], SIZE, passes),
      readChunks(m, ['good2.bin', 'good1.bin'], SIZE, passes),
    ]);
    expect(runs(a['bad.bin'])).toBe(runs(expectedOutcomes(SIZE, passes, { from: 0, to: SIZE, errno: 'EIO' })));
    for (const out of [b, d]) {
      expect(runs(out['part.bin'])).toBe(runs(expectedOutcomes(SIZE, passes, { from: 1 * MiB, to: 2 * MiB, errno: 'EIO' })));
    }
    for (const out of [c, e]) {
      expect(runs(out['good1.bin'])).toBe(runs(expectedOutcomes(SIZE, passes)));
      expect(runs(out['good2.bin'])).toBe(runs(expectedOutcomes(SIZE, passes)));
    }
    const after = await m.stats();
    expect(after.failedRequests).toBeGreaterThan(before.failedRequests);
    expect(after.injectedFaults as number).toBeGreaterThan(before.injectedFaults as number);
    expect(after.evictedPages, 'the budget was small enough that passes re-faulted pages').toBeGreaterThan(0);
    expect(after.residentBytes).toBeLessThanOrEqual(after.budgetBytes);
  });

  it('a rule written to .pagerfs/faults fails its range for every reader of matching files, other files keep reading; cleared, the same range reads correctly', async () => {
    const files: Record<string, Buffer> = {};
    for (const name of ['x/a.bin', 'x/b.bin', 'y/c.bin']) files[name] = content(name, SIZE);
    const m = await startMount({ budget: '1MiB', files });
    // Untouched before the rule: everything reads.
    expect(runs((await readChunks(m, ['x/a.bin'], SIZE))['x/a.bin'])).toBe(runs(expectedOutcomes(SIZE, 1)));
    await fsp.writeFile(m.p('.pagerfs/faults'), 'x/*.bin:2MiB-3MiB=IO_DATA_INTEGRITY\n');
    const passes = 2;
    const [ab, c, a2] = await Promise.all([
      readChunks(m, ['x/a.bin', 'x/b.bin'], SIZE, passes),
      readChunks(m, ['y/c.bin'], SIZE, passes),
      readChunks(m, ['x/a.bin'], SIZE, passes),
    ]);
    const failing = runs(expectedOutcomes(SIZE, passes, { from: 2 * MiB, to: 3 * MiB, errno: 'EIO' }));
    expect(runs(ab['x/a.bin'])).toBe(failing);
    expect(runs(ab['x/b.bin'])).toBe(failing);
    expect(runs(a2['x/a.bin'])).toBe(failing);
    expect(runs(c['y/c.bin'])).toBe(runs(expectedOutcomes(SIZE, passes)));
    // A failed request leaves nothing behind: with the rule cleared the range reads correctly.
    await fsp.writeFile(m.p('.pagerfs/faults'), '');
    const cleared = await readChunks(m, ['x/a.bin', 'x/b.bin'], SIZE);
    expect(runs(cleared['x/a.bin'])).toBe(runs(expectedOutcomes(SIZE, 1)));
    expect(runs(cleared['x/b.bin'])).toBe(runs(expectedOutcomes(SIZE, 1)));
  });
});

describe('injected write failures', () => {
  it('an injected NO_SPACE past the end of a file fails that write with ENOSPC and leaves the file as it was', async () => {
    const SIZE = 1 * MiB;
    const data = content('w.bin', SIZE);
    const m = await startMount({ budget: '4MiB', files: { 'w.bin': data }, args: ['--writeback-delay', '60s', '--inject-fault', 'w.bin:2MiB-3MiB=NO_SPACE'] });
    const fh = await fsp.open(m.p('w.bin'), 'r+');
    try {
      // Below the faulty range: fine, and grows the file to 1.5 MiB.
      const ok = content('w-ok', 512 * KiB);
      expect((await fh.write(ok, 0, ok.length, SIZE)).bytesWritten).toBe(ok.length);
      // A write wholly inside the faulty range (past the end): ENOSPC, nothing written.
      const bad = content('w-bad', 64 * KiB);
      expect(await codeOf(fh.write(bad, 0, bad.length, 2 * MiB + 128 * KiB))).toBe('ENOSPC');
      const expected = Buffer.concat([data, ok]);
      expect((await fh.stat()).size, 'size after the failed write (fstat)').toBe(expected.length);
      const through = await readToEnd(m.p('w.bin'));
      expect(through.length, 'bytes readable after the failed write').toBe(expected.length);
      expect(through.equals(expected)).toBe(true);
    } finally {
      await fh.close().catch(() => undefined);
    }
  });
});

describe('backing files changed behind pagerfs', () => {
  it('a backing file removed while pagerfs has it open keeps serving every byte through the open handle, refaulting after eviction', async () => {
    const SIZE = 8 * MiB;
    const data = content('gone.bin', SIZE);
    const m = await startMount({ budget: '1MiB', files: { 'gone.bin': data, 'other.bin': 'still here' } });
    const fh = await fsp.open(m.p('gone.bin'), 'r');
    try {
      const head = Buffer.alloc(256 * KiB);
      expect((await fh.read(head, 0, head.length, 0)).bytesRead).toBe(head.length);
      expect(head.equals(data.subarray(0, head.length))).toBe(true);
      await fsp.unlink(m.b('gone.bin'));
      const before = await m.stats();
      for (let pass = 0; pass < 2; pass++) {
        const buf = Buffer.alloc(SIZE);
        let pos = 0;
        while (pos < SIZE) {
          const { bytesRead } = await fh.read(buf, pos, Math.min(256 * KiB, SIZE - pos), pos);
          if (bytesRead === 0) break;
          pos += bytesRead;
        }
        expect(pos, `pass ${pass}: bytes read after the backing file was removed`).toBe(SIZE);
        expect(buf.equals(data), `pass ${pass}: contents after the backing file was removed`).toBe(true);
      }
      const after = await m.stats();
      // The 8 MiB did not fit in the 1 MiB budget: pages were evicted and faulted in again from the held fd.
      expect(after.evictedPages).toBeGreaterThan(before.evictedPages);
      expect(after.suppliedPages - before.suppliedPages).toBeGreaterThanOrEqual(2 * (SIZE - MiB) / 4096);
      expect(after.failedRequests).toBe(before.failedRequests);
    } finally {
      await fh.close();
    }
    // The name is gone; the daemon serves the rest as before.
    expect(await codeOf(fsp.open(m.p('gone.bin'), 'r'))).toBe('ENOENT');
    expect(await fsp.readFile(m.p('other.bin'), 'utf8')).toBe('still here');
  });

  it('a backing file truncated behind pagerfs: a handle opened before gets EIO for the missing part (whole surviving pages read right, no zeros, no hang); a new open sees the new size', async () => {
    const SIZE = 4 * MiB;
    const KEEP = 1 * MiB + 1000; // the page at 1 MiB survives only in part: it must fail too
    const data = content('shrink.bin', SIZE);
    const m = await startMount({ budget: '1MiB', files: { 'shrink.bin': data, 'other.bin': content('other.bin', SIZE) } });
    // pagerfs opens the file (its VMO learns the 4 MiB size) before it shrinks; nothing is read yet.
    const fh = await fsp.open(m.p('shrink.bin'), 'r');
    /** One read through the handle opened before the truncation: "ok", "short:<n>" or the errno name. */
    const readOld = async (off: number, n: number): Promise<string> => {
      const buf = Buffer.alloc(n);
      try {
        const { bytesRead } = await fh.read(buf, 0, n, off);
        if (bytesRead !== n) return `short:${bytesRead}`;
        return buf.equals(data.subarray(off, off + n)) ? 'ok' : 'mismatch';
      } catch (err) {
        return (err as NodeJS.ErrnoException).code ?? String(err);
      }
    };
    try {
      await fsp.truncate(m.b('shrink.bin'), KEEP);
      const before = await m.stats();
      // Single reads into the missing part (no sequential pattern, so no readahead): EIO each,
      // including the page at 1 MiB of which only 1000 bytes survive. A read below 1 MiB is right.
      const single: string[] = [];
      for (const [off, n] of [[1 * MiB, 4096], [1 * MiB + 4096, 4096], [2 * MiB, 4096], [SIZE - 4096, 4096], [4096, 4096]]) single.push(await readOld(off, n));
      expect(single).toEqual(['EIO', 'EIO', 'EIO', 'EIO', 'ok']);
      // Sequential reads (readahead active), twice: every chunk below 1 MiB is right, every chunk
      // from 1 MiB on is EIO, in every pass.
      const seq: string[] = [];
      for (let pass = 0; pass < 2; pass++) {
        for (let off = 0; off < SIZE; off += CHUNK) seq.push(await readOld(off, Math.min(CHUNK, SIZE - off)));
      }
      expect(runs(seq)).toBe(runs(expectedOutcomes(SIZE, 2, { from: 1 * MiB, to: SIZE, errno: 'EIO' })));
      const after = await m.stats();
      expect(after.failedRequests).toBeGreaterThan(before.failedRequests);
      expect(m.running).toBe(true);
      // A new open (close-to-open) sees the file as it is now: KEEP bytes, all right, then its end.
      expect(await preads(m, 'shrink.bin', [[4096, 4096], [1 * MiB, 4096], [2 * MiB, 4096]])).toEqual(['ok', 'short:1000', 'short:0']);
      expect(runs((await readChunks(m, ['shrink.bin'], KEEP, 2))['shrink.bin'])).toBe(runs(expectedOutcomes(KEEP, 2)));
    } finally {
      await fh.close();
    }
    // The daemon keeps serving: another file reads completely, stats answer.
    expect(runs((await readChunks(m, ['other.bin'], SIZE))['other.bin'])).toBe(runs(expectedOutcomes(SIZE, 1)));
    expect((await m.stats()).residentBytes).toBeLessThanOrEqual(MiB);
    expect(m.running).toBe(true);
  });
});

/**
 * Writes `size` bytes of content(tag) to `file` in `piece`-sized writes, stops at the first error,
 * then fsyncs and closes; reports every call's outcome.
 */
const WRITER = `
import errno, hashlib, json, os, sys
file, tag, size, piece = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def block(i):
    return hashlib.shake_128(f"{tag}:{i}".encode()).digest(4096)
data = b"".join(block(i) for i in range((size + 4095) // 4096))[:size]
out = {"writes": [], "accepted": 0, "writeError": None, "fsync": "ok", "close": "ok"}
def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))
fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
pos = 0
while pos < size:
    try:
        n = os.pwrite(fd, data[pos:pos + piece], pos)
    except OSError as e:
        out["writeError"] = name(e)
        break
    out["writes"].append(n)
    pos += n
out["accepted"] = pos
try:
    os.fsync(fd)
except OSError as e:
    out["fsync"] = name(e)
try:
    os.close(fd)
except OSError as e:
    out["close"] = name(e)
print(json.dumps(out))
`;

/** Opens `file`, fsyncs, closes; prints the outcome of each ("ok" or the errno name). */
const FSYNC = `
import errno, json, os, sys
out = {}
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.fsync(fd)
    out["fsync"] = "ok"
except OSError as e:
    out["fsync"] = errno.errorcode.get(e.errno, str(e.errno))
try:
    os.close(fd)
    out["close"] = "ok"
except OSError as e:
    out["close"] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
`;

async function fsyncThrough(file: string): Promise<{ fsync: string; close: string }> {
  const res = await python(FSYNC, [file], { timeoutMs: 60_000 });
  expect(res.timedOut, `fsync of ${file} hung`).toBe(false);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as { fsync: string; close: string };
}

/** Creates `file` and writes to it until its filesystem is full (ENOSPC); returns the bytes written. */
async function fillUp(file: string): Promise<number> {
  const fh = await fsp.open(file, 'w');
  const buf = Buffer.alloc(64 * KiB, 0x5a);
  let total = 0;
  try {
    for (;;) {
      const { bytesWritten } = await fh.write(buf, 0, buf.length);
      if (bytesWritten === 0) break;
      total += bytesWritten;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
  return total;
}

describe('a full backing store (8 MiB tmpfs)', () => {
  // A sparse file larger than the free space: its holes need no room until written, and a write
  // needs room for its own pages only. (The room check once counted the whole extension a truncate
  // made as promised: every write to such a file was ENOSPC.)
  it('a budget shrink the daemon refuses because dirty pages cannot be written back says so (not "locked or pinned")', async () => {
    const backing = await mountTmpfs('8m');
    // A file with a hole inside its allocated prefix (the room check does not see such holes), and
    // a store filled to the last block: writes into the hole stay dirty, writeback meets ENOSPC.
    await fsp.writeFile(path.join(backing, 'holed.bin'), Buffer.alloc(MiB, 2));
    const punched = await run('fallocate', ['-p', '-o', String(256 * KiB), '-l', String(512 * KiB), path.join(backing, 'holed.bin')]);
    expect(punched.code, punched.stderr).toBe(0);
    const m = await startMount({ backing, budget: '4MiB', args: ['--writeback-delay', '60s'] });
    await run('dd', ['if=/dev/zero', `of=${path.join(backing, 'filler.bin')}`, 'bs=64k'], { timeoutMs: 30_000 }); // until ENOSPC
    const fh = await fsp.open(m.p('holed.bin'), 'r+');
    try {
      await fh.write(Buffer.alloc(256 * KiB, 3), 0, 256 * KiB, 256 * KiB);
      const res = await runCli(['budget', m.mnt, '64KiB'], { timeoutMs: 60_000 });
      const what = `exit ${res.code}\nstdout ${res.stdout}\nstderr ${res.stderr}`;
      expect(res.code, what).toBe(1);
      // Before: "0B of locked or pinned pages alone exceed it (unlock some first)".
      expect(res.stderr, what).toMatch(/^pagerfs: Cannot set the budget .* to 64KiB: the daemon could not free enough \(locked 0B, pinned 0B, dirty \S+ not yet written back\) \(EBUSY\); the budget stays 4MiB\n$/);
      expect(res.stderr, what).not.toMatch(/dirty 0B/);
      await fsp.rm(path.join(backing, 'filler.bin'));
    } finally {
      await fh.close().catch(() => undefined);
    }
  });

  it('writes into a sparse file larger than the free space succeed while their pages fit', async () => {
    const backing = await mountTmpfs('8m');
    await fsp.writeFile(path.join(backing, 'filler.bin'), Buffer.alloc(6 * MiB, 1));
    const m = await startMount({ backing, budget: '1MiB' });
    const res = await python(`
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, 8 << 20)
out = []
for off in (0, 3 << 20, 6 << 20):
    try: out.append(os.pwrite(fd, b"x" * 4096, off))
    except OSError as e: out.append(e.strerror)
try: os.fsync(fd); out.append("fsync ok")
except OSError as e: out.append(e.strerror)
os.close(fd)
print(out)`, [m.p('sparse.bin')]);
    expect(res.stderr).toBe('');
    expect(res.stdout.trim()).toBe("[4096, 4096, 4096, 'fsync ok']");
    const back = await fsp.readFile(path.join(backing, 'sparse.bin'));
    expect(back.length).toBe(8 * MiB);
    for (const off of [0, 3 * MiB, 6 * MiB]) expect(back.subarray(off, off + 4096).every((b) => b === 0x78), `at ${off}`).toBe(true);
  });

  it('writing more than fits fails with ENOSPC without hanging; the accepted bytes read back, and after space is freed fsync writes them to the backing file', async () => {
    const backing = await mountTmpfs('8m');
    await fsp.writeFile(path.join(backing, 'filler.bin'), Buffer.alloc(3 * MiB, 1));
    const sfs = await fsp.statfs(backing);
    const freeBefore = sfs.bavail * sfs.bsize;
    // A 4 MiB budget: pressure writeback (dirty > half the budget) runs into the full store too.
    const m = await startMount({ backing, budget: '4MiB', args: ['--writeback-delay', '60s'] });
    const WANT = 12 * MiB;
    const res = await python(WRITER, [m.p('big.bin'), 'big.bin', String(WANT), String(256 * KiB)], { timeoutMs: 120_000 });
    expect(res.timedOut, 'the writer hung (killed after 120 s)').toBe(false);
    expect(res.code, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout) as { writes: number[]; accepted: number; writeError: string | null; fsync: string; close: string };
    const report = `writeError ${out.writeError}, fsync ${out.fsync}, close ${out.close}, accepted ${out.accepted} of ${WANT} with ${freeBefore} free in the store`;
    process.stdout.write(`full backing store: ${report}; writes ${JSON.stringify(out.writes)}\n`);
    // Which calls reported it: write() (the pager refuses to dirty pages the store has no room for).
    expect(out.writeError, report).toBe('ENOSPC');
    expect(out.accepted, report).toBeLessThan(WANT);
    expect(out.accepted, report).toBeGreaterThan(0);
    // The pager dirties no more than it measures room for (statfs, less what other writes were
    // promised); that measure is made while writeback runs, so it may let a little more through.
    // Either way the outcome is exact: what fits is written back (fsync and close ok), what does
    // not is ENOSPC at fsync and close too, the data kept dirty (and written once space is freed).
    if (out.accepted <= freeBefore) {
      expect(out.fsync, report).toBe('ok');
      expect(out.close, report).toBe('ok');
    } else {
      expect(out.fsync, report).toBe('ENOSPC');
      expect(out.close, report).toBe('ENOSPC');
    }
    // Every accepted byte reads back through the mount, written back or still dirty, and nothing more:
    // the write that failed must not have changed the file.
    const want = content('big.bin', out.accepted);
    const through = await readToEnd(m.p('big.bin'));
    expect(through.subarray(0, out.accepted).equals(want), `accepted bytes through the mount (${report})`).toBe(true);
    expect.soft(through.length, `size through the mount after the failed write (${report})`).toBe(out.accepted);
    expect.soft((await fsp.stat(m.p('big.bin'))).size, `stat size through the mount (${report})`).toBe(out.accepted);
    // Free space in the backing store behind pagerfs; an fsync now succeeds and the data is there.
    await fsp.rm(path.join(backing, 'filler.bin'));
    expect(await fsyncThrough(m.p('big.bin'))).toEqual({ fsync: 'ok', close: 'ok' });
    const back = await fsp.readFile(path.join(backing, 'big.bin'));
    expect(back.subarray(0, out.accepted).equals(want), `backing file after the fsync (${report})`).toBe(true);
    expect.soft(back.length, `backing file size after the fsync (${report})`).toBe(out.accepted);
    expect((await m.stats()).dirtyBytes).toBe(0);
    expect((await m.unmount()).code).toBe(0);
  }, 180_000);

  it('pagerfs unmount with dirty data a full store cannot take refuses (exit 1), keeps the mount and the data; after space is freed it unmounts with everything written', async () => {
    const backing = await mountTmpfs('8m');
    const m = await startMount({ backing, budget: '16MiB', args: ['--writeback-delay', '60s'] });
    const SIZE = 3 * MiB;
    const data = content('kept.bin', SIZE);
    const fh = await fsp.open(m.p('kept.bin'), 'w'); // kept open: its close would write back
    expect((await fh.write(data, 0, SIZE, 0)).bytesWritten).toBe(SIZE);
    await fillUp(path.join(backing, 'filler.bin')); // behind pagerfs's back: no room left for the dirty data
    const res = await runCli(['unmount', '--lazy', m.mnt]);
    // Before, the writeback failure was only logged: the mount went, the data with it, exit 0.
    expect(res.code, res.stderr).toBe(1);
    expect(res.stderr).toMatch(/ENOSPC/);
    expect(await isMounted(m.mnt)).toBe(true);
    expect(m.running).toBe(true);
    expect((await readToEnd(m.p('kept.bin'))).equals(data)).toBe(true);
    await fsp.rm(path.join(backing, 'filler.bin'));
    const again = await runCli(['unmount', '--lazy', m.mnt]);
    expect(again.code, again.stderr).toBe(0);
    expect(await m.waitExit(20_000)).toBe(true);
    expect(m.exitCode).toBe(0);
    await fh.close().catch(() => undefined);
    expect((await fsp.readFile(path.join(backing, 'kept.bin'))).equals(data)).toBe(true);
  }, 120_000);

  it('dirty data whose writeback meets a full store stays dirty and readable: fsync and close report ENOSPC, and once space is freed fsync writes it all', async () => {
    const backing = await mountTmpfs('8m');
    const m = await startMount({ backing, budget: '16MiB', args: ['--writeback-delay', '60s'] });
    const SIZE = 3 * MiB;
    const data = content('data.bin', SIZE);
    const fh = await fsp.open(m.p('data.bin'), 'w');
    let closed = false;
    try {
      expect((await fh.write(data, 0, SIZE, 0)).bytesWritten).toBe(SIZE);
      // Precondition: the data lives only in pagerfs (dirty); the backing file is still empty.
      expect((await m.stats()).dirtyBytes).toBeGreaterThanOrEqual(SIZE);
      expect((await fsp.stat(path.join(backing, 'data.bin'))).size).toBe(0);
      // Fill the store behind pagerfs's back, leaving less room than the dirty data needs.
      const filled = await fillUp(path.join(backing, 'filler.bin'));
      expect(filled).toBeGreaterThan(4 * MiB);

      // fsync through another handle: ENOSPC, no hang.
      const failed = await fsyncThrough(m.p('data.bin'));
      expect(failed.fsync).toBe('ENOSPC');
      // The close of that handle flushes the same dirty data: ENOSPC again, or ok — nothing else.
      expect(['ok', 'ENOSPC']).toContain(failed.close);
      // Not lost: still dirty, and every byte reads back through the mount.
      const st = await m.stats();
      expect(st.dirtyBytes, 'dirty bytes after the failed writeback').toBeGreaterThanOrEqual(SIZE);
      expect((st.writebackErrors as number)).toBeGreaterThan(0);
      expect((await readToEnd(m.p('data.bin'))).equals(data)).toBe(true);
      // close(2) of the writer's handle: the flush meets the full store too.
      closed = true;
      expect(await codeOf(fh.close())).toBe('ENOSPC');
      expect((await readToEnd(m.p('data.bin'))).equals(data)).toBe(true);

      // Free space behind pagerfs: fsync now succeeds and the backing file holds the data.
      await fsp.rm(path.join(backing, 'filler.bin'));
      expect(await fsyncThrough(m.p('data.bin'))).toEqual({ fsync: 'ok', close: 'ok' });
      expect((await fsp.readFile(path.join(backing, 'data.bin'))).equals(data)).toBe(true);
      expect((await m.stats()).dirtyBytes).toBe(0);
    } finally {
      if (!closed) await fh.close().catch(() => undefined);
    }
    expect((await m.unmount()).code).toBe(0);
    expect((await fsp.readFile(path.join(backing, 'data.bin'))).equals(data)).toBe(true);
  }, 120_000);
});
