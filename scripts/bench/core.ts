/**
 * Suite `core`: the VM core's hot paths, against the bare JavaScript that bounds them.
 *
 *  1. Resident read: 128 KiB of resident pager pages read through VmObject.readStep (the synchronous
 *     path the FUSE layer takes) and through the async VmObject.read, against one Buffer.copy of the
 *     same 128 KiB (a view over the same 32 frames) into the same destination. Loops calibrated to
 *     ~20 ms per sample; many short side-by-side rounds.
 *     Goal (issue): readStep ≥ 0.8× Buffer.copy.
 *  2. Fault round trip: one-page reads (vmo.read, 4 KiB) of pages never supplied, each a full
 *     fault → READ packet → in-process pager (MemoryPager: pattern into a reused aux VMO, supplyPages)
 *     → wake → copy. Reported per page, next to a bare async ping-pong between two loops that copies
 *     4 KiB per message (the least an async request/answer costs in Node) and to a resident one-page
 *     readStep. 2048 faults per sample, a fresh VMO each sample, no eviction (budget 64 MiB).
 *  3. Metadata per resident page: FrameTable.BYTES_PER_FRAME, the page list's own estimate, and the
 *     measured growth of heap / array buffers / RSS per page for a pager VMO made fully resident with
 *     256 Ki and 1 Mi frames (1 GiB and 4 GiB budgets), each in a child process (metadata-child.ts).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PAGE_SIZE, VmSystem } from '../../src/index.js';
import {
  calibrate, forceGc, goalAtLeast, metText, rateRatio, rounds, type GoalResult, type Suite, type SuiteContext,
} from './harness.js';
import { MemoryPager } from './mem-pager.js';
import { elapsedNs, fmtBytes, fmtNs, fmtNum, fmtRate, fmtRatio, fmtSpread, nowNs, type Table } from './stats.js';

const MiB = 1024 * 1024;
const READ_BYTES = 128 * 1024;
/** Micro-benchmarks: many short samples, so bursts of load on a shared machine fall out of the median. */
const SAMPLE_MS = 20;
const MICRO_WARMUP = 2;
const MICRO_RUNS = 15;
const WARMUP = 2;
const RUNS = 7;
const FAULT_PAGES = 2048;
const METADATA_SIZES = [256 * 1024, 1024 * 1024];

/** Two async loops exchanging one message per request, the server copying 4 KiB into the reply. */
class PingPong {
  private serverWake: (() => void) | null = null;
  private queue: Array<{ page: number; dst: Buffer; done: () => void }> = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(private readonly pattern: Buffer) {
    this.loop = this.serve();
  }

  request(page: number, dst: Buffer): Promise<void> {
    return new Promise<void>((resolve) => {
      this.queue.push({ page, dst, done: resolve });
      const w = this.serverWake;
      this.serverWake = null;
      w?.();
    });
  }

  private async serve(): Promise<void> {
    while (!this.stopped) {
      if (this.queue.length === 0) await new Promise<void>((r) => { this.serverWake = r; });
      for (let m = this.queue.shift(); m !== undefined; m = this.queue.shift()) {
        this.pattern.copy(m.dst, 0, 0, PAGE_SIZE);
        m.dst.writeUInt32LE(m.page, 0);
        m.done();
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.serverWake?.();
    await this.loop;
  }
}

async function residentRead(ctx: SuiteContext, tables: Table[], goals: GoalResult[], raw: Record<string, unknown>): Promise<void> {
  const system = new VmSystem({ budgetBytes: 64 * MiB });
  const mp = new MemoryPager(system);
  const vmo = mp.createVmo(READ_BYTES);
  mp.fill(vmo);
  if (vmo.counters().residentPages !== READ_BYTES / PAGE_SIZE) throw new Error('resident-read VMO not fully resident');
  // The baseline copies the very same bytes: a view over the VMO's frames (32 consecutive frames of
  // one arena chunk, as one supply of a fresh arena hands them out) into the same destination, so
  // both sides touch the same memory and only the per-read work differs.
  const first = vmo.pages.lookup(0);
  const pages = READ_BYTES / PAGE_SIZE;
  for (let p = 0; p < pages; p++) {
    if (vmo.pages.lookup(p) !== first + p || !system.arena.sameChunk(first, first + p)) throw new Error('resident-read frames are not contiguous');
  }
  const src = system.arena.framesView(first, pages);
  const dst = Buffer.alloc(READ_BYTES);

  const copyLoop = (iters: number): void => { for (let i = 0; i < iters; i++) src.copy(dst, 0, 0, READ_BYTES); };
  const stepLoop = (iters: number): void => {
    for (let i = 0; i < iters; i++) if (vmo.readStep(dst, 0, 0, READ_BYTES) !== READ_BYTES) throw new Error('short readStep');
  };
  const asyncLoop = async (iters: number): Promise<void> => { for (let i = 0; i < iters; i++) await vmo.read(dst, 0, READ_BYTES); };

  ctx.progress('resident read: calibrating');
  const itCopy = await calibrate(copyLoop, SAMPLE_MS);
  const itStep = await calibrate(stepLoop, SAMPLE_MS);
  const itAsync = await calibrate(asyncLoop, SAMPLE_MS);
  const timed = (iters: number, fn: (n: number) => Promise<void> | void) => async () => {
    const t0 = nowNs();
    await fn(iters);
    return { ns: elapsedNs(t0), units: iters * READ_BYTES };
  };
  const [copy, step, asyncRead] = await rounds(ctx, [
    { name: 'Buffer.copy (baseline)', sample: timed(itCopy, copyLoop) },
    { name: 'vmo.readStep (sync)', sample: timed(itStep, stepLoop) },
    { name: 'vmo.read (async)', sample: timed(itAsync, asyncLoop) },
  ], { warmup: MICRO_WARMUP, runs: MICRO_RUNS, label: 'resident read 128 KiB' });
  if (!dst.equals(src)) throw new Error('resident read returned wrong bytes');
  await mp.stop();

  const rStep = rateRatio(step, copy);
  const rAsync = rateRatio(asyncRead, copy);
  const gStep = goalAtLeast('resident 128 KiB read: readStep / Buffer.copy', rStep, 0.8, 'core issue');
  const gAsync = goalAtLeast('resident 128 KiB read: vmo.read (async) / Buffer.copy', rAsync, 0.8, 'core issue (async path)');
  goals.push(gStep, gAsync);
  tables.push({
    title: `Resident read of ${fmtBytes(READ_BYTES)} (32 pages), ~${SAMPLE_MS} ms samples, median of ${MICRO_RUNS}`,
    columns: ['path', 'throughput', 'spread', 'per read', '× Buffer.copy', 'goal', ''],
    rows: [
      [copy.name, fmtRate(copy.medianRate), fmtSpread(copy.spread), fmtNs(copy.medianNsPerUnit * READ_BYTES), '1.00×', '', ''],
      [step.name, fmtRate(step.medianRate), fmtSpread(step.spread), fmtNs(step.medianNsPerUnit * READ_BYTES), fmtRatio(rStep), gStep.goal, metText(gStep)],
      [asyncRead.name, fmtRate(asyncRead.medianRate), fmtSpread(asyncRead.spread), fmtNs(asyncRead.medianNsPerUnit * READ_BYTES),
        fmtRatio(rAsync), gAsync.goal, metText(gAsync)],
    ],
    notes: ['baseline: one Buffer.copy from a view over the same 32 frames into the same destination Buffer',
      'ratio = median over rounds of the two throughputs measured in the same round'],
  });
  raw.residentRead = { copy, step, asyncRead, ratioStep: rStep, ratioAsync: rAsync, iters: { itCopy, itStep, itAsync } };
}

async function faultRoundTrip(ctx: SuiteContext, tables: Table[], raw: Record<string, unknown>): Promise<void> {
  const system = new VmSystem({ budgetBytes: 64 * MiB });
  const mp = new MemoryPager(system);
  mp.start();
  const buf = Buffer.alloc(PAGE_SIZE);
  const pattern = Buffer.alloc(PAGE_SIZE, 0xa5);
  const pp = new PingPong(pattern);
  const resident = mp.createVmo(FAULT_PAGES * PAGE_SIZE);
  mp.fill(resident);
  const hitLoop = (iters: number): void => {
    for (let i = 0; i < iters; i++) {
      for (let p = 0; p < FAULT_PAGES; p++) resident.readStep(buf, 0, p * PAGE_SIZE, PAGE_SIZE);
    }
  };
  const itHit = await calibrate(hitLoop, SAMPLE_MS);
  let bad = 0;

  const [ping, fault, hit] = await rounds(ctx, [
    {
      name: 'async ping-pong + 4 KiB copy (baseline)',
      sample: async () => {
        const t0 = nowNs();
        for (let p = 0; p < FAULT_PAGES; p++) await pp.request(p, buf);
        return { ns: elapsedNs(t0), units: FAULT_PAGES };
      },
    },
    {
      name: 'fault → packet → supply → wake (vmo.read)',
      sample: async () => {
        const vmo = mp.createVmo(FAULT_PAGES * PAGE_SIZE);
        const key = mp.keyOf(vmo);
        const packets0 = mp.readPackets;
        const t0 = nowNs();
        for (let p = 0; p < FAULT_PAGES; p++) await vmo.read(buf, p * PAGE_SIZE, PAGE_SIZE);
        const ns = elapsedNs(t0);
        if (!mp.checkPage(buf, FAULT_PAGES - 1, key)) bad++;
        const c = vmo.counters();
        const packets = mp.readPackets - packets0;
        vmo.close();
        return { ns, units: FAULT_PAGES, extra: { faults: c.faults, packets } };
      },
    },
    {
      name: 'resident one-page readStep',
      sample: () => {
        const t0 = nowNs();
        hitLoop(itHit);
        return { ns: elapsedNs(t0), units: itHit * FAULT_PAGES };
      },
    },
  ], { warmup: WARMUP, runs: RUNS, label: 'fault round trip' });
  await pp.stop();
  await mp.stop();
  if (bad > 0) throw new Error(`fault round trip read wrong bytes in ${bad} samples`);
  const faults = fault.extras.map((e) => e.faults);
  const packets = fault.extras.map((e) => e.packets);
  const costRatioPing = 1 / rateRatio(fault, ping);
  const costRatioHit = 1 / rateRatio(fault, hit);
  tables.push({
    title: `Single-page fault round trip, ${FAULT_PAGES} faults per sample, median of ${RUNS}`,
    columns: ['path', 'per page', 'pages/s', 'spread', 'fault cost ×'],
    rows: [
      [ping.name, fmtNs(ping.medianNsPerUnit), fmtNum(Math.round(ping.medianRate)), fmtSpread(ping.spread), fmtRatio(costRatioPing)],
      [hit.name, fmtNs(hit.medianNsPerUnit), fmtNum(Math.round(hit.medianRate)), fmtSpread(hit.spread), fmtRatio(costRatioHit)],
      [fault.name, fmtNs(fault.medianNsPerUnit), fmtNum(Math.round(fault.medianRate)), fmtSpread(fault.spread), '1.00×'],
    ],
    notes: [
      '"fault cost ×" = time of one fault round trip / time of the row\'s operation (paired per round)',
      `faults per sample: ${[...new Set(faults)].join(', ')}; READ packets per sample: ${[...new Set(packets)].join(', ')} (expect ${FAULT_PAGES})`,
    ],
  });
  raw.faultRoundTrip = { ping, fault, hit, costRatioPing, costRatioHit };
}

interface ChildReport {
  pages: number;
  resident: number;
  capacityFrames: number;
  frameTableCapacity: number;
  bytesPerFrame: number;
  pageListEstimate: number;
  pageListNodes: number;
  fillNsPerPage: number;
  firstTouchNsPerPage: number;
  delta: { rss: number; heapUsed: number; arrayBuffers: number; external: number };
  perPage: { rss: number; heapUsed: number; arrayBuffers: number; pageListMeasured: number; frameTable: number };
}

function runChild(pages: number): Promise<ChildReport> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const child = spawn(process.execPath, ['--expose-gc', path.join(here, 'metadata-child.js'), String(pages)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => { out += d; });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`metadata child for ${pages} pages exited with ${code}`));
      try {
        const [report, probe] = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
        resolve({ ...(report as unknown as ChildReport), firstTouchNsPerPage: probe.firstTouchNsPerPage as number });
      } catch (err) {
        reject(new Error(`metadata child printed no JSON: ${out.slice(0, 200)} (${(err as Error).message})`));
      }
    });
  });
}

async function metadata(ctx: SuiteContext, tables: Table[], raw: Record<string, unknown>): Promise<void> {
  const reports: ChildReport[] = [];
  const skipped: string[] = [];
  for (const pages of METADATA_SIZES) {
    const need = pages * PAGE_SIZE * 1.25 + 512 * MiB;
    if (os.freemem() < need) {
      skipped.push(`${fmtNum(pages)} frames skipped: ${fmtBytes(os.freemem())} free, need ~${fmtBytes(need)}`);
      continue;
    }
    ctx.progress(`metadata: ${fmtNum(pages)} resident frames (${fmtBytes(pages * PAGE_SIZE)}) in a child process`);
    reports.push(await runChild(pages));
  }
  const col = (f: (r: ChildReport) => string): string[] => reports.map(f);
  const b = (n: number): string => `${n.toFixed(1)} B`;
  tables.push({
    title: 'Metadata per resident page (one pager VMO made fully resident; GC forced before and after)',
    columns: ['', ...reports.map((r) => `${fmtNum(r.pages)} frames (${fmtBytes(r.pages * PAGE_SIZE)})`)],
    rows: [
      ['FrameTable.BYTES_PER_FRAME', ...col((r) => b(r.bytesPerFrame))],
      ['page list, debugBytesPerResidentPage()', ...col((r) => b(r.pageListEstimate))],
      ['core total (frame table + page list est.)', ...col((r) => `${b(r.bytesPerFrame + r.pageListEstimate)} (${((r.bytesPerFrame + r.pageListEstimate) / PAGE_SIZE * 100).toFixed(2)}% of a page)`)],
      ['measured: page list (heap + buffers − data − frame table)', ...col((r) => b(r.perPage.pageListMeasured))],
      ['measured: heapUsed growth / page', ...col((r) => b(r.perPage.heapUsed))],
      ['measured: arrayBuffers growth / page (incl. 4096 B data)', ...col((r) => b(r.perPage.arrayBuffers))],
      ['measured: RSS growth / page (incl. 4096 B data)', ...col((r) => b(r.perPage.rss))],
      ['measured: RSS growth − 4096 B data', ...col((r) => b(r.perPage.rss - PAGE_SIZE))],
      ['fill (256-page zero supplies) / page', ...col((r) => fmtNs(r.fillNsPerPage))],
      ['first touch of fresh memory (4 MiB chunks, zero fill) / page', ...col((r) => fmtNs(r.firstTouchNsPerPage))],
      ['fill / first touch', ...col((r) => fmtRatio(r.fillNsPerPage / r.firstTouchNsPerPage))],
    ],
    notes: [
      ...skipped,
      'frames are allocated in 4 MiB chunks on first use, so a budget costs only what is resident;',
      'RSS growth also counts allocator and V8 heap slack, so it is an upper bound on what the core itself adds.',
    ],
  });
  raw.metadata = reports;
}

export const coreSuite: Suite = {
  name: 'core',
  title: 'core: VM core hot paths',
  summary: 'resident read vs Buffer.copy, fault round trip per page, metadata bytes per resident page',
  async run(ctx) {
    const tables: Table[] = [];
    const goals: GoalResult[] = [];
    const raw: Record<string, unknown> = {};
    await residentRead(ctx, tables, goals, raw);
    forceGc();
    await faultRoundTrip(ctx, tables, raw);
    forceGc();
    await metadata(ctx, tables, raw);
    return {
      about: [
        `Side-by-side rounds, variant order rotated each round, warm-up rounds discarded, medians reported: resident read ${MICRO_WARMUP} + ${MICRO_RUNS} rounds of ~${SAMPLE_MS} ms, fault round trip ${WARMUP} + ${RUNS}.`,
        'The VM core runs with validate off (as in production).',
      ],
      tables, goals, raw,
    };
  },
};
