/**
 * Fast reads (binding level 17): reads of resident pages answered on libfuse's threads, without
 * the JS thread. What can be seen from outside: the stats' fastReads counters, and that every byte
 * read is the file's, across writes, truncates, outside changes, evictions and, in the torture
 * test, all of them racing readers in several threads.
 */
import { promises as fsp } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { randomData, sha256, sleep, startMount, useMountHooks, type Mount } from './harness.js';

useMountHooks();

const MiB = 1024 * 1024;
const PAGE = 4096;

interface FastCounters { enabled: boolean; reads: number; bytes: number; fallbacks: number }

async function fast(m: Mount): Promise<FastCounters> {
  const s = await m.stats();
  return { enabled: s.fastReadsEnabled as boolean, reads: s.fastReads as number, bytes: s.fastReadBytes as number, fallbacks: s.fastReadFallbacks as number };
}

/** Reads [0, bytes) of an open file in `chunk`-sized reads, one after another. */
async function readAll(fh: fsp.FileHandle, bytes: number, chunk = 128 * 1024): Promise<Buffer> {
  const out = Buffer.alloc(bytes);
  for (let pos = 0; pos < bytes; pos += chunk) {
    const { bytesRead } = await fh.read(out, pos, Math.min(chunk, bytes - pos), pos);
    expect(bytesRead).toBe(Math.min(chunk, bytes - pos));
  }
  return out;
}

describe('fast reads', () => {
  it('answer warm reads on the FUSE threads with the right bytes; --no-fast-read sends every read to the daemon', async () => {
    const data = randomData(2 * MiB);
    const m = await startMount({ budget: '16MiB', files: { 'f.bin': data } });
    const fh = await fsp.open(m.p('f.bin'), 'r');
    try {
      expect(sha256(await readAll(fh, data.length))).toBe(sha256(data)); // cold: faults, readahead
      const before = await fast(m);
      expect(before.enabled).toBe(true);
      expect(sha256(await readAll(fh, data.length, PAGE))).toBe(sha256(data));
      const after = await fast(m);
      const reads = data.length / PAGE;
      // Every page is resident and the file's end is not read: only the readahead marker's reads may go to JS.
      expect(after.reads - before.reads, `fast reads of ${reads}`).toBeGreaterThanOrEqual(reads - 16);
      expect(after.bytes - before.bytes).toBeGreaterThanOrEqual((reads - 16) * PAGE);
    } finally {
      await fh.close();
    }
    const off = await startMount({ budget: '16MiB', files: { 'f.bin': data }, args: ['--no-fast-read'] });
    expect(sha256(await fsp.readFile(off.p('f.bin')))).toBe(sha256(data));
    expect(sha256(await fsp.readFile(off.p('f.bin')))).toBe(sha256(data));
    expect(await fast(off)).toEqual({ enabled: false, reads: 0, bytes: 0, fallbacks: 0 });
  });

  it('answer a read that straddles the end with the bytes up to it; a read at the end still goes to the daemon', async () => {
    const small = randomData(5000); // two pages, the second partly used
    const m = await startMount({ budget: '16MiB', files: { 's.bin': small } });
    const fh = await fsp.open(m.p('s.bin'), 'r');
    try {
      const buf = Buffer.alloc(128 * 1024);
      expect((await fh.read(buf, 0, buf.length, 0)).bytesRead).toBe(small.length); // cold: the pager reads it
      const before = await fast(m);
      // As `cat` reads: 128 KiB at 0 (cut at the end: 5000 bytes), then at the end (0: EOF).
      buf.fill(0xee);
      expect((await fh.read(buf, 0, buf.length, 0)).bytesRead).toBe(small.length);
      expect(buf.subarray(0, small.length).equals(small)).toBe(true);
      expect(buf[small.length], 'nothing written past the end').toBe(0xee);
      expect((await fh.read(buf, 0, 100, 4990)).bytesRead).toBe(10);
      expect(buf.subarray(0, 10).equals(small.subarray(4990))).toBe(true);
      const mid = await fast(m);
      expect(mid.reads - before.reads, 'both straddling reads answered on the FUSE threads').toBe(2);
      expect(mid.bytes - before.bytes).toBe(small.length + 10);
      expect((await fh.read(buf, 0, buf.length, small.length)).bytesRead).toBe(0);
      const after = await fast(m);
      expect(after.reads, 'a read at the end is the daemon\'s (a file grown behind pagerfs)').toBe(mid.reads);
      expect(after.fallbacks).toBe(mid.fallbacks + 1);
    } finally {
      await fh.close();
    }
  });

  it('read what a write through the mount, a truncate and an outside change left, through handles open across them', async () => {
    const data = randomData(MiB);
    const m = await startMount({ budget: '16MiB', files: { 'f.bin': data }, args: ['--attr-timeout', '0'] });
    const reader = await fsp.open(m.p('f.bin'), 'r');
    const writer = await fsp.open(m.p('f.bin'), 'r+');
    let before: FastCounters;
    let content: Buffer;
    try {
      await readAll(reader, data.length);
      // A write into resident pages (the middle of a page, across a page boundary).
      const patch = Buffer.alloc(6000, 0xab);
      await writer.write(patch, 0, patch.length, 3 * PAGE + 100);
      patch.copy(data, 3 * PAGE + 100);
      before = await fast(m);
      expect(sha256(await readAll(reader, data.length, PAGE))).toBe(sha256(data));
      expect((await fast(m)).reads - before.reads, 'dirty resident pages are read fast too').toBeGreaterThan(200);
      // Shrink: the end moves; the tail of the new last page reads as the file's and no further.
      await writer.truncate(10 * PAGE + 123);
      expect((await readAll(reader, 10 * PAGE + 123, PAGE)).equals(data.subarray(0, 10 * PAGE + 123))).toBe(true);
      expect((await reader.read(Buffer.alloc(PAGE), 0, PAGE, 10 * PAGE + 123)).bytesRead, 'at the new end').toBe(0);
      // Grow: zeros past the old end, in the old last page too.
      await writer.truncate(20 * PAGE);
      content = Buffer.concat([data.subarray(0, 10 * PAGE + 123), Buffer.alloc(10 * PAGE - 123)]);
      expect((await readAll(reader, 20 * PAGE, PAGE)).equals(content)).toBe(true);
      // A write that grows the file, read through the other handle.
      const tail = randomData(3 * PAGE);
      await writer.write(tail, 0, tail.length, 20 * PAGE);
      content = Buffer.concat([content, tail]);
      expect((await readAll(reader, 23 * PAGE, PAGE)).equals(content)).toBe(true);
    } finally {
      await writer.close();
    }
    await reader.close();
    // An outside change (of a file not written through the mount: one that was keeps its content
    // until its last close): the handle open before it keeps its VMO (close-to-open), a new open
    // sees the change.
    const first = randomData(MiB);
    await fsp.writeFile(m.b('g.bin'), first);
    const old = await fsp.open(m.p('g.bin'), 'r');
    await readAll(old, first.length);
    const fresh = randomData(2 * MiB);
    await fsp.writeFile(m.b('g.bin'), fresh);
    const again = await fsp.open(m.p('g.bin'), 'r');
    try {
      expect(sha256(await readAll(again, fresh.length))).toBe(sha256(fresh));
      before = await fast(m);
      expect(sha256(await readAll(again, fresh.length, PAGE))).toBe(sha256(fresh));
      expect((await fast(m)).reads - before.reads).toBeGreaterThan(400);
      expect(sha256(await readAll(old, first.length, PAGE)), 'the old handle, before its end').toBe(sha256(first));
      // The old handle reads at its VMO's end: it moves to the changed file, and reads it from then on.
      expect((await old.read(Buffer.alloc(PAGE), 0, PAGE, first.length)).bytesRead).toBe(PAGE);
      expect(sha256(await readAll(old, fresh.length, PAGE))).toBe(sha256(fresh));
    } finally {
      await again.close();
      await old.close();
    }
  });

  it('read the right bytes after an eviction, and again fast once the pages are back', async () => {
    const data = randomData(12 * MiB);
    const m = await startMount({ budget: '16MiB', files: { 'f.bin': data } });
    const fh = await fsp.open(m.p('f.bin'), 'r');
    try {
      await readAll(fh, data.length);
      expect(sha256(await readAll(fh, data.length))).toBe(sha256(data));
      await fsp.writeFile(m.p('.pagerfs/budget'), '1MiB'); // evicts most of the file at once
      const evicted = (await m.stats()).evictedPages;
      expect(evicted).toBeGreaterThan(2000);
      expect(sha256(await readAll(fh, data.length, 64 * 1024))).toBe(sha256(data)); // refaults through 1 MiB
      await fsp.writeFile(m.p('.pagerfs/budget'), '16MiB');
      await readAll(fh, data.length);
      const before = await fast(m);
      expect(sha256(await readAll(fh, data.length))).toBe(sha256(data));
      expect((await fast(m)).reads - before.reads).toBeGreaterThan(40);
    } finally {
      await fh.close();
    }
  });

  it('keep readahead going: a sequential reader through a cold file faults only where it catches up', async () => {
    const data = randomData(24 * MiB);
    const m = await startMount({ budget: '64MiB', files: { 'f.bin': data } });
    expect(sha256(await fsp.readFile(m.p('f.bin')))).toBe(sha256(data));
    const s = await m.stats();
    // Without the marker's reads reaching the daemon, every window would end in a fault (24 MiB / 4 MiB windows).
    expect(s.asyncReadaheads as number, 'windows read ahead in the background').toBeGreaterThanOrEqual(3);
    expect(s.readaheadHitPages).toBeGreaterThan(0);
    expect(s.fastReads as number).toBeGreaterThan(0);
  });
});

/** Page `page` at version `version`: (page, version) in its first 8 bytes, then bytes derived from both. */
function pageImage(page: number, version: number): Buffer {
  const b = Buffer.alloc(PAGE);
  b.writeUInt32LE(page, 0);
  b.writeUInt32LE(version, 4);
  for (let i = 8; i < PAGE; i++) b[i] = (i * 7 + page * 13 + version * 101) & 0xff;
  return b;
}

/**
 * A reader thread: random reads of 1 or 4 pages with fs.readSync until `stop` is set; each page
 * must be whole (its bytes those of the version its header names), the page it should be, and no
 * older than the version the writer had been told was written when the read began.
 */
const READER = `
const { workerData, parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { file, pages, hot, seed, acked, stop } = workerData;
const PAGE = 4096;
let a = seed >>> 0;
const rand = () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const fd = fs.openSync(file, 'r');
const buf = Buffer.alloc(4 * PAGE);
let reads = 0, bad = [];
while (Atomics.load(stop, 0) === 0 && bad.length < 5) {
  const count = rand() < 0.25 ? 4 : 1;
  // Mostly the writer's hot pages, where a copy racing a write or an eviction is likeliest.
  const span = rand() < 0.8 ? hot : pages;
  const first = Math.floor(rand() * (span - count + 1));
  const floor = [];
  for (let k = 0; k < count; k++) floor.push(Atomics.load(acked, first + k));
  const n = fs.readSync(fd, buf, 0, count * PAGE, first * PAGE);
  reads++;
  if (n !== count * PAGE) { bad.push('short read ' + n + ' at page ' + first); continue; }
  for (let k = 0; k < count; k++) {
    const o = k * PAGE, page = first + k;
    const p = buf.readUInt32LE(o), v = buf.readUInt32LE(o + 4);
    if (p !== page) { bad.push('page ' + page + ' holds page ' + p + ' v' + v); break; }
    if (v < floor[k]) { bad.push('page ' + page + ' is v' + v + ', older than v' + floor[k] + ' written before the read'); break; }
    for (let i = 8; i < PAGE; i++) {
      if (buf[o + i] !== ((i * 7 + page * 13 + v * 101) & 0xff)) { bad.push('page ' + page + ' v' + v + ' torn at byte ' + i); break; }
    }
  }
}
fs.closeSync(fd);
parentPort.postMessage({ reads, bad });
`;

describe('fast reads under concurrent writes and evictions', () => {
  it('never return a torn, misplaced or stale page', async () => {
    const seed = Number(process.env.PAGERFS_TORTURE_SEED ?? Date.now() % 1_000_000);
    const pages = 2048; // 8 MiB
    const HOT_PAGES = 16;
    const initial = Buffer.concat(Array.from({ length: pages }, (_, p) => pageImage(p, 0)));
    const m = await startMount({ budget: '16MiB', files: { 'f.bin': initial } });
    try {
      await fsp.readFile(m.p('f.bin')); // resident: most reads can be fast from the start
      const before = await fast(m);
      const acked = new Int32Array(new SharedArrayBuffer(pages * 4));
      const stop = new Int32Array(new SharedArrayBuffer(4));
      const workers = Array.from({ length: 3 }, (_, i) => new Worker(READER, {
        eval: true, workerData: { file: m.p('f.bin'), pages, hot: HOT_PAGES, seed: seed * 7 + i, acked, stop },
      }));
      const results = workers.map((w) => new Promise<{ reads: number; bad: string[] }>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }));
      // The writer rewrites random pages with new versions; the budget swings between a third of
      // the file and all of it, so pages are evicted (dirty ones written back first) and fault again.
      let x = seed >>> 0;
      const rand = (): number => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x / 4294967296; };
      const versions = new Uint32Array(pages);
      const writer = await fsp.open(m.p('f.bin'), 'r+');
      const deadline = Date.now() + 4000;
      let writes = 0;
      let swings = 0;
      try {
        while (Date.now() < deadline) {
          for (let k = 0; k < 20; k++) {
            const p = Math.floor(rand() * (rand() < 0.8 ? HOT_PAGES : pages));
            const v = ++versions[p];
            await writer.write(pageImage(p, v), 0, PAGE, p * PAGE);
            Atomics.store(acked, p, v);
            writes++;
          }
          if (writes % 200 === 0) {
            await fsp.writeFile(m.p('.pagerfs/budget'), swings++ % 2 === 0 ? '3MiB' : '16MiB');
          }
          await sleep(1);
        }
      } finally {
        Atomics.store(stop, 0, 1);
        await writer.close();
      }
      const done = await Promise.all(results);
      const bad = done.flatMap((r) => r.bad);
      const reads = done.reduce((n, r) => n + r.reads, 0);
      const after = await fast(m);
      const s = await m.stats();
      expect(bad, `seed ${seed}: ${reads} reads, ${writes} writes, ${swings} budget swings`).toEqual([]);
      expect(after.reads - before.reads, `seed ${seed}: fast reads during the run (of ${reads})`).toBeGreaterThan(0);
      expect(swings, `seed ${seed}`).toBeGreaterThan(2);
      expect(s.evictedPages, `seed ${seed}: evictions`).toBeGreaterThan(0);
      // Every byte the writer wrote is there afterwards.
      const final = await fsp.readFile(m.p('f.bin'));
      for (let p = 0; p < pages; p++) {
        if (!final.subarray(p * PAGE, (p + 1) * PAGE).equals(pageImage(p, versions[p]))) {
          throw new Error(`seed ${seed}: page ${p} is not version ${versions[p]} at the end`);
        }
      }
    } catch (err) {
      process.stderr.write(`fast-read torture failed with PAGERFS_TORTURE_SEED=${seed}\n`);
      throw err;
    }
  }, 60_000);
});
