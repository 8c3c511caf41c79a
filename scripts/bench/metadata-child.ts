/**
 * Child process of the core suite's metadata measurement (run on its own so the memory it takes —
 * up to 4 GiB of frames — and its RSS baseline belong to nobody else).
 *
 * Usage: node --expose-gc dist/scripts/bench/metadata-child.js <pages>
 * Makes one pager VMO of <pages> pages fully resident under a budget of exactly <pages> frames
 * (watermarks 0/1 so no reclaim runs), supplying zero pages in 256-page supplyPages calls, and prints
 * one JSON line: the memory growth (heap, array buffers, RSS) between before the VmSystem existed and
 * after the fill, with GC forced on both sides, plus the core's own per-page figures.
 */
import { FrameTable } from '../../src/arena.js';
import { PAGE_SIZE, VmSystem } from '../../src/index.js';
import { forceGc } from './harness.js';
import { elapsedNs, nowNs } from './stats.js';

const SUPPLY_PAGES = 256;
/** Fresh 4 MiB chunks touched for the first-touch baseline (64 MiB). */
const FIRST_TOUCH_CHUNKS = 16;

function main(): void {
  const pages = Number(process.argv[2]);
  if (!Number.isInteger(pages) || pages < 1024) throw new Error(`bad page count ${process.argv[2]}`);
  forceGc();
  forceGc();
  const before = process.memoryUsage();
  const system = new VmSystem({ budgetBytes: pages * PAGE_SIZE, lowWatermarkFrames: 0, highWatermarkFrames: 1 });
  const pager = system.createPager();
  const port = system.createPort();
  const vmo = pager.createVmo(0, port, 1, pages * PAGE_SIZE);
  const aux = system.createVmo(SUPPLY_PAGES * PAGE_SIZE);
  const t0 = nowNs();
  for (let p = 0; p < pages; p += SUPPLY_PAGES) {
    const n = Math.min(SUPPLY_PAGES, pages - p);
    // Uncommitted aux pages supply zero pages: the kernel allocates and zero-fills each frame.
    pager.supplyPages(vmo, p * PAGE_SIZE, n * PAGE_SIZE, aux, 0);
  }
  const fillNs = elapsedNs(t0);
  forceGc();
  forceGc();
  const after = process.memoryUsage();
  const resident = vmo.counters().residentPages;
  const capacity = system.arena.capacityFrames;
  const frameTableCapacity = system.arena.frames.capacity;
  const dataBytes = capacity * PAGE_SIZE;
  const frameTableBytes = frameTableCapacity * FrameTable.BYTES_PER_FRAME;
  const d = {
    rss: after.rss - before.rss,
    heapUsed: after.heapUsed - before.heapUsed,
    arrayBuffers: after.arrayBuffers - before.arrayBuffers,
    external: after.external - before.external,
  };
  process.stdout.write(`${JSON.stringify({
    pages,
    resident,
    capacityFrames: capacity,
    frameTableCapacity,
    bytesPerFrame: FrameTable.BYTES_PER_FRAME,
    pageListEstimate: vmo.pages.debugBytesPerResidentPage(),
    pageListNodes: vmo.pages.nodeCount,
    fillNsPerPage: fillNs / resident,
    delta: d,
    perPage: {
      rss: d.rss / resident,
      heapUsed: d.heapUsed / resident,
      arrayBuffers: d.arrayBuffers / resident,
      // What is neither page data nor the frame table: page-list nodes (their backing stores are
      // array buffers, their objects heap) and everything else the fill left behind.
      pageListMeasured: (d.heapUsed + d.arrayBuffers - dataBytes - frameTableBytes) / resident,
      frameTable: frameTableBytes / resident,
    },
  })}\n`);
  // Baseline for the fill cost: first touch of the same kind of fresh memory (4 MiB chunks, zero
  // fill), which on a VM can dominate; measured after the deltas so it does not count in them.
  const probe: Buffer[] = [];
  const t1 = nowNs();
  for (let i = 0; i < FIRST_TOUCH_CHUNKS; i++) probe.push(Buffer.allocUnsafeSlow(4 * 1024 * 1024).fill(0));
  const firstTouchNsPerPage = elapsedNs(t1) / (FIRST_TOUCH_CHUNKS * 1024);
  process.stdout.write(`${JSON.stringify({ firstTouchNsPerPage, probe: probe.length })}\n`);
  // Keep everything alive until measured.
  if (vmo.counters().residentPages !== resident || port.closed) throw new Error('unreachable');
}

main();
