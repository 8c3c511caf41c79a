/**
 * Suite `pager`: reading a real file through the directory pager's VMOs, against reading the same
 * file with fs.read into a Buffer (the limit: what Node gets from the file without pagerfs).
 *
 * Set-up: a 256 MiB file of seeded bytes in os.tmpdir(), written once. Nothing is dropped from the
 * OS page cache: it was just written, so both sides read it from the page cache (this measures the
 * pager's overhead, not the disk). The pager side reads as the FUSE layer does (readStep, then wait
 * for the pager on a missing page) from a DirectoryPager (default readahead 2 MiB, concurrency 4)
 * with a 512 MiB budget, larger than the file, so nothing is evicted.
 *
 *  - sequential: 128 KiB reads over the whole file; the limit is fs.read(fd, buf, 0, 128 KiB, pos).
 *  - random: 4 KiB reads at seeded, distinct, page-aligned offsets (the same offsets both sides).
 *  - cold: a new DirectoryPager and VMO every run, so every page comes from the backing file
 *    (set-up and shutdown untimed), on one VmSystem whose arena an earlier run touched (the goal);
 *    also with a fresh VmSystem per run, which adds the first touch of the process's memory.
 *  - warm: one pager whose VMO holds the whole file (read once before the runs); vmo.read (async)
 *    is also shown for sequential.
 * Goals (issue): cold sequential ≥ 0.7× the limit; warm ≥ 2× the limit (sequential and random).
 * Every run checks the bytes it read against the file (untimed).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { PAGE_SIZE, VmSystem, type VmObjectPaged } from '../../src/index.js';
import { DirectoryPager, type PagedFile } from '../../pager/directory-pager.js';
import { hugePageFrameMemory, transparentHugePageMode } from '../../fs/frame-memory.js';
import {
  forceGc, fuseRead, goalAtLeast, medianExtra, metText, rateRatio, rounds, type GoalResult, type Measured, type Sample, type Suite,
  type SuiteContext, type Variant,
} from './harness.js';
import { elapsedNs, fmtBytes, fmtNs, fmtRate, fmtRatio, fmtSpread, nowNs, Rng, type Table } from './stats.js';

const MiB = 1024 * 1024;
const FILE_BYTES = 256 * MiB;
const BUDGET_BYTES = 512 * MiB;
const SEQ_READ = 128 * 1024;
const RAND_READ = 4 * 1024;
const COLD_RANDOM_READS = 16384;
const WARM_RANDOM_READS = 65536;
const FILE_NAME = 'bench.dat';
const WARMUP = 1;
const RUNS = 5;

function fsRead(fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, 0, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** Reads exactly `len` bytes (fs.read may return short). */
async function fsReadFull(fd: number, buf: Buffer, len: number, pos: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const n = done === 0 ? await fsRead(fd, buf, len, pos) : await new Promise<number>((resolve, reject) => {
      fs.read(fd, buf, done, len - done, pos + done, (err, k) => (err ? reject(err) : resolve(k)));
    });
    if (n === 0) throw new Error(`unexpected end of file at ${pos + done}`);
    done += n;
  }
}

/** Writes the seeded test file. */
function writeFile(file: string): void {
  const rng = new Rng(0xf11e);
  const chunk = Buffer.alloc(8 * MiB);
  const fd = fs.openSync(file, 'w');
  try {
    for (let off = 0; off < FILE_BYTES; off += chunk.length) {
      rng.fill(chunk);
      fs.writeSync(fd, chunk, 0, chunk.length, off);
    }
  } finally {
    fs.closeSync(fd);
  }
}

interface Pagered {
  system: VmSystem;
  dp: DirectoryPager;
  file: PagedFile;
  vmo: VmObjectPaged;
}

/** A VmSystem whose arena is advised for transparent huge pages (`pagerfs mount --huge-pages`), via the patched binding. */
function hugePageSystem(): VmSystem {
  const Fuse = createRequire(import.meta.url)('fuse-native') as typeof import('fuse-native');
  if (Fuse.frameMemory === undefined) throw new Error('fuse-native lacks frameMemory: run scripts/setup.sh to build the patched binding');
  return new VmSystem({ budgetBytes: BUDGET_BYTES, frameMemory: hugePageFrameMemory(Fuse.frameMemory) });
}

/** A DirectoryPager serving `dir`, on a fresh VmSystem unless one is given. */
async function openPager(dir: string, reuse?: VmSystem): Promise<Pagered> {
  const system = reuse ?? new VmSystem({ budgetBytes: BUDGET_BYTES });
  const dp = new DirectoryPager({ system, backingDir: dir });
  dp.start();
  const file = await dp.open(FILE_NAME);
  return { system, dp, file, vmo: file.vmo };
}

async function closePager(p: Pagered): Promise<void> {
  await p.dp.shutdown();
}

/** Untimed check: `count` seeded random 4 KiB ranges read through the VMO match the file. */
function verify(vmo: VmObjectPaged, fd: number, seed: number, count: number, what: string): void {
  const rng = new Rng(seed);
  const a = Buffer.alloc(PAGE_SIZE);
  const b = Buffer.alloc(PAGE_SIZE);
  for (let i = 0; i < count; i++) {
    const pos = rng.int(FILE_BYTES / PAGE_SIZE) * PAGE_SIZE;
    // Only resident pages: a readStep that stops short would raise a page request nobody waits for.
    if (vmo.pages.lookup(pos / PAGE_SIZE) < 0) continue;
    if (vmo.readStep(a, 0, pos, PAGE_SIZE) !== PAGE_SIZE) throw new Error(`${what}: resident page at ${pos} did not read`);
    fs.readSync(fd, b, 0, PAGE_SIZE, pos);
    if (!a.equals(b)) throw new Error(`${what}: bytes at ${pos} differ from the file`);
  }
}

async function seqPass(read: (buf: Buffer, pos: number) => Promise<void> | number | Promise<number>, buf: Buffer): Promise<Sample> {
  const t0 = nowNs();
  for (let pos = 0; pos < FILE_BYTES; pos += SEQ_READ) {
    const r = read(buf, pos);
    if (typeof r !== 'number') await r;
  }
  return { ns: elapsedNs(t0), units: FILE_BYTES };
}

async function randPass(read: (buf: Buffer, pos: number) => Promise<void> | number | Promise<number>, buf: Buffer, offsets: Float64Array): Promise<Sample> {
  const t0 = nowNs();
  for (let i = 0; i < offsets.length; i++) {
    const r = read(buf, offsets[i]);
    if (typeof r !== 'number') await r;
  }
  return { ns: elapsedNs(t0), units: offsets.length * RAND_READ };
}

/**
 * Reads as fs/filesystem.ts does: readStep, wait for the pager on a miss, and report the read
 * (readahead follows it). Like FUSE, which delivers each read as its own callback, every read
 * starts on a new turn of the event loop (setImmediate), so I/O that completed meanwhile (the
 * pager's background reads) is handled between reads, as it is in the daemon.
 */
function fuseReader(p: Pagered, len: number): (buf: Buffer, pos: number) => Promise<number> {
  const note = (pos: number, n: number): void => p.dp.noteRead(p.file, pos, n);
  return (buf, pos) => new Promise<void>((r) => setImmediate(r)).then(() => fuseRead(p.vmo, buf, pos, len, note));
}

function ratioRow(m: Measured, base: Measured, unit: number, goal?: GoalResult): string[] {
  const r = m === base ? 1 : rateRatio(m, base);
  return [m.name, fmtRate(m.medianRate), fmtSpread(m.spread), fmtNs(m.medianNsPerUnit * unit), fmtRatio(r),
    goal?.goal ?? '', goal !== undefined ? metText(goal) : ''];
}

async function runAll(ctx: SuiteContext, dir: string, tables: Table[], goals: GoalResult[], raw: Record<string, unknown>): Promise<void> {
  const filePath = path.join(dir, FILE_NAME);
  ctx.progress(`writing ${fmtBytes(FILE_BYTES)} seeded test file in ${dir}`);
  writeFile(filePath);
  const fd = fs.openSync(filePath, 'r');
  try {
    const seqBuf = Buffer.alloc(SEQ_READ);
    const randBuf = Buffer.alloc(RAND_READ);
    const perm = new Rng(0x0ff5e7).permutation(FILE_BYTES / PAGE_SIZE);
    const coldOffsets = Float64Array.from(perm.subarray(0, COLD_RANDOM_READS), (p) => p * PAGE_SIZE);
    const warmOffsets = Float64Array.from(perm.subarray(0, WARM_RANDOM_READS), (p) => p * PAGE_SIZE);
    const limitSeq: Variant = { name: 'fs.read 128 KiB (limit)', sample: () => seqPass((b, pos) => fsReadFull(fd, b, SEQ_READ, pos), seqBuf) };
    const tableCols = ['reader', 'throughput', 'spread', 'per read', '× limit', 'goal', ''];
    const notes = ['both sides read the file from the OS page cache (it was just written; nothing is dropped)',
      'ratio = median over rounds of the two throughputs measured in the same round'];

    // Cold sequential: a new DirectoryPager and VMO every run, so every page comes from the backing
    // file. The goal row keeps one VmSystem across runs (the previous pager shut down, its pages
    // freed): the arena models physical memory, which a kernel has mapped before any pager runs. The
    // fresh-VmSystem row adds what a new process pays to touch its memory for the first time
    // (Linux zero-fills each page on first write), shown beside it, not hidden.
    let reused: VmSystem | null = new VmSystem({ budgetBytes: BUDGET_BYTES });
    const coldSample = (reuse: () => VmSystem | undefined) => async (round: number): Promise<Sample> => {
      const p = await openPager(dir, reuse());
      const s = await seqPass(fuseReader(p, SEQ_READ), seqBuf);
      const c = p.vmo.counters();
      verify(p.vmo, fd, round, 256, 'cold sequential');
      const m = p.dp.metrics;
      await closePager(p);
      return {
        ...s,
        extra: { faults: c.faults, backingReads: m.backingReads, backingReadBytes: m.backingReadBytes, readRequests: m.readRequests,
          readaheadPages: m.readaheadPages, readaheadWastePages: m.readaheadWastePages, suppliedPages: m.suppliedPages },
      };
    };
    const [lim1, coldSeq, coldSeqReused] = await rounds(ctx, [limitSeq,
      { name: 'pager VMO, cold, fresh VmSystem', sample: coldSample(() => undefined) },
      { name: 'pager VMO, cold (FUSE read path)', sample: coldSample(() => reused ?? undefined) },
    ], { warmup: WARMUP, runs: RUNS, label: 'sequential cold', between: forceGc });
    reused = null;
    const gCold = goalAtLeast('cold sequential 128 KiB reads / fs.read', rateRatio(coldSeqReused, lim1), 0.7, 'pager issue');
    goals.push(gCold);
    tables.push({
      title: `Sequential 128 KiB reads of ${fmtBytes(FILE_BYTES)}, cold (fresh pager each run), median of ${RUNS}`,
      columns: tableCols,
      rows: [ratioRow(lim1, lim1, SEQ_READ), ratioRow(coldSeqReused, lim1, SEQ_READ, gCold), ratioRow(coldSeq, lim1, SEQ_READ)],
      notes: [...notes,
        `per cold run (median): ${medianExtra(coldSeqReused, 'faults')} faults, ${medianExtra(coldSeqReused, 'readRequests')} READ requests, ` +
        `${medianExtra(coldSeqReused, 'backingReads')} backing reads of ${fmtBytes(medianExtra(coldSeqReused, 'backingReadBytes'))} ` +
        `(${fmtRatio(medianExtra(coldSeqReused, 'backingReadBytes') / FILE_BYTES)} the file), ${medianExtra(coldSeqReused, 'suppliedPages')} pages supplied, ` +
        `${medianExtra(coldSeqReused, 'readaheadWastePages')} readahead pages counted as waste`,
        'goal row: a new pager and VMO each run on one VmSystem, whose arena (the model\'s physical memory) an earlier run touched',
        '"fresh VmSystem": the same plus a new arena each run, so the process touches every frame for the first time (informational: a new daemon pays this once per frame)'],
    });
    raw.coldSequential = { limit: lim1, pager: coldSeq, pagerReusedArena: coldSeqReused };

    // Cold random.
    const limitRand = (offsets: Float64Array): Variant => ({
      name: `fs.read 4 KiB × ${offsets.length} (limit)`,
      sample: () => randPass((b, pos) => fsReadFull(fd, b, RAND_READ, pos), randBuf, offsets),
    });
    const [lim2, coldRand] = await rounds(ctx, [limitRand(coldOffsets), {
      name: 'pager VMO, cold (FUSE read path)',
      sample: async (round) => {
        const p = await openPager(dir);
        const s = await randPass(fuseReader(p, RAND_READ), randBuf, coldOffsets);
        const c = p.vmo.counters();
        verify(p.vmo, fd, 1000 + round, 4096, 'cold random');
        await closePager(p);
        return { ...s, extra: { faults: c.faults } };
      },
    }], { warmup: WARMUP, runs: RUNS, label: 'random cold', between: forceGc });
    const rColdRand = rateRatio(coldRand, lim2);
    tables.push({
      title: `Random 4 KiB reads (${COLD_RANDOM_READS} distinct seeded pages), cold, median of ${RUNS}`,
      columns: tableCols,
      rows: [ratioRow(lim2, lim2, RAND_READ), ratioRow(coldRand, lim2, RAND_READ)],
      notes: [...notes, `faults per cold run: ${coldRand.extras[0].faults} (every read faults; no goal in the issue)`],
    });
    raw.coldRandom = { limit: lim2, pager: coldRand, ratio: rColdRand };

    // Warm: one pager, the whole file resident.
    forceGc();
    ctx.progress('warm: reading the file once into a pager VMO');
    const warm = await openPager(dir);
    // The same, on an arena of transparent huge pages (opt-in in the daemon): informational row.
    const warmHuge = await openPager(dir, hugePageSystem());
    try {
      for (const w of [warm, warmHuge]) {
        await seqPass(fuseReader(w, SEQ_READ), seqBuf);
        if (w.vmo.counters().residentPages !== FILE_BYTES / PAGE_SIZE) {
          throw new Error(`warm VMO holds ${w.vmo.counters().residentPages} pages, expected ${FILE_BYTES / PAGE_SIZE}`);
        }
        verify(w.vmo, fd, 77, 1024, 'warm');
      }
      const faultsBefore = warm.vmo.counters().faults;
      const [lim3, warmSeq, warmSeqAsync, warmSeqHuge] = await rounds(ctx, [limitSeq,
        { name: 'pager VMO, warm (FUSE read path)', sample: () => seqPass(fuseReader(warm, SEQ_READ), seqBuf) },
        { name: 'pager VMO, warm (vmo.read, async)', sample: () => seqPass((b, pos) => warm.vmo.read(b, pos, SEQ_READ), seqBuf) },
        { name: 'pager VMO, warm, huge-page arena (FUSE read path)', sample: () => seqPass(fuseReader(warmHuge, SEQ_READ), seqBuf) },
      ], { warmup: WARMUP, runs: RUNS, label: 'sequential warm' });
      const gWarmSeq = goalAtLeast('warm sequential 128 KiB reads / fs.read', rateRatio(warmSeq, lim3), 2, 'pager issue');
      const gWarmSeqAsync = goalAtLeast('warm sequential 128 KiB reads, vmo.read (async) / fs.read', rateRatio(warmSeqAsync, lim3), 2, 'pager issue (async path)');
      goals.push(gWarmSeq, gWarmSeqAsync);
      tables.push({
        title: `Sequential 128 KiB reads of ${fmtBytes(FILE_BYTES)}, warm (all resident), median of ${RUNS}`,
        columns: tableCols,
        rows: [ratioRow(lim3, lim3, SEQ_READ), ratioRow(warmSeq, lim3, SEQ_READ, gWarmSeq), ratioRow(warmSeqAsync, lim3, SEQ_READ, gWarmSeqAsync),
          ratioRow(warmSeqHuge, lim3, SEQ_READ)],
        notes: [...notes, `huge-page arena: \`pagerfs mount --huge-pages\` (off by default), informational; the system's transparent huge pages: ${transparentHugePageMode()}, ` +
          `${fmtBytes(warmHuge.system.stats().arena.hugePageBytes)} of the arena advised`],
      });
      raw.warmSequential = { limit: lim3, pager: warmSeq, pagerAsync: warmSeqAsync, pagerHugePages: warmSeqHuge };

      const [lim4, warmRand] = await rounds(ctx, [limitRand(warmOffsets),
        { name: 'pager VMO, warm (FUSE read path)', sample: () => randPass(fuseReader(warm, RAND_READ), randBuf, warmOffsets) },
      ], { warmup: WARMUP, runs: RUNS, label: 'random warm' });
      const gWarmRand = goalAtLeast('warm random 4 KiB reads / fs.read', rateRatio(warmRand, lim4), 2, 'pager issue');
      goals.push(gWarmRand);
      tables.push({
        title: `Random 4 KiB reads (${WARM_RANDOM_READS} distinct seeded pages), warm, median of ${RUNS}`,
        columns: tableCols,
        rows: [ratioRow(lim4, lim4, RAND_READ), ratioRow(warmRand, lim4, RAND_READ, gWarmRand)],
        notes,
      });
      raw.warmRandom = { limit: lim4, pager: warmRand };
      const extraFaults = warm.vmo.counters().faults - faultsBefore;
      if (extraFaults !== 0) throw new Error(`warm runs faulted ${extraFaults} times: pages were evicted`);
      verify(warm.vmo, fd, 78, 1024, 'warm (after runs)');
      verify(warmHuge.vmo, fd, 79, 1024, 'warm, huge-page arena (after runs)');
    } finally {
      await closePager(warm);
      await closePager(warmHuge);
    }
  } finally {
    fs.closeSync(fd);
  }
}

export const pagerSuite: Suite = {
  name: 'pager',
  title: 'pager: reading a file through DirectoryPager VMOs vs fs.read',
  summary: 'sequential and random reads through pager VMOs, cold and warm, against fs.read of the same file',
  async run(ctx) {
    const tables: Table[] = [];
    const goals: GoalResult[] = [];
    const raw: Record<string, unknown> = {};
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagerfs-bench-'));
    const cleanup = (): void => { fs.rmSync(dir, { recursive: true, force: true }); };
    const onSignal = (): void => { cleanup(); process.exit(130); };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    process.once('exit', cleanup); // also when a crash skips the finally below
    try {
      await runAll(ctx, dir, tables, goals, raw);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('exit', cleanup);
      cleanup();
    }
    return {
      about: [
        `Side-by-side rounds: ${WARMUP} warm-up + ${RUNS} measured, variant order rotated each round; medians reported.`,
        `File: ${fmtBytes(FILE_BYTES)} of seeded bytes in os.tmpdir(), read from the OS page cache by both sides (nothing dropped).`,
        `Pager: DirectoryPager defaults (readahead ≤ 2 MiB, 4 jobs at once), budget ${fmtBytes(BUDGET_BYTES)} (> file: no eviction).`,
        'Limit: fs.read (callback API, one read in flight) into a Buffer, the same sizes and offsets.',
      ],
      tables, goals, raw,
    };
  },
};
