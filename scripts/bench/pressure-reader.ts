/**
 * One reader of the pressure suite, run as a worker thread (see pressure-load.ts): random aligned
 * 4 KiB reads over the whole working set, each page checked against `fillPage`, until the stop
 * flag is set. Synchronous reads are fine here: the mount is served by a daemon in another process,
 * and a worker blocking in read(2) holds only its own thread (the main thread keeps sampling).
 * Counts go to shared memory, so the sampler reads them exact and at once, with no messages.
 */
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { COUNTER, STOP_INDEX, type ReaderConfig } from './pressure-load.js';
import { PAGE_BYTES, fillPage } from './pressure-data.js';
import { Rng } from './stats.js';

/** Past this many failed reads the reader gives up (the mount is gone or broken; the count says so). */
const MAX_ERRORS = 100;

function run(cfg: ReaderConfig): void {
  const counters = new Int32Array(cfg.counters);
  const base = cfg.slot;
  const fds = cfg.files.map((f) => fs.openSync(f, 'r'));
  const got = Buffer.alloc(PAGE_BYTES);
  const want = Buffer.alloc(PAGE_BYTES);
  const pagesPerFile = cfg.fileBytes / PAGE_BYTES;
  const totalPages = pagesPerFile * cfg.files.length;
  const rng = new Rng(cfg.seed);
  let errors = 0;
  try {
    while (Atomics.load(counters, STOP_INDEX) === 0 && errors < MAX_ERRORS) {
      const global = rng.int(totalPages);
      const fileNo = Math.floor(global / pagesPerFile);
      const pageNo = global % pagesPerFile;
      let n: number;
      try {
        n = fs.readSync(fds[fileNo], got, 0, PAGE_BYTES, pageNo * PAGE_BYTES);
      } catch (err) {
        errors++;
        Atomics.add(counters, base + COUNTER.errors, 1);
        // The first error is worth a line in the report; the rest are counted.
        if (errors === 1) parentPort?.postMessage({ error: `${cfg.files[fileNo]} page ${pageNo}: ${(err as Error).message}` });
        continue;
      }
      fillPage(want, fileNo, pageNo);
      if (n !== PAGE_BYTES || !got.equals(want)) {
        // Say what came instead: a page's first two words name the file and page it belongs to.
        if (Atomics.add(counters, base + COUNTER.mismatches, 1) === 0) {
          parentPort?.postMessage({ error: `${cfg.files[fileNo]} page ${pageNo}: ${n} bytes read, ` +
            `content of file ${got.readUInt32LE(0)} page ${got.readUInt32LE(4)}${n === PAGE_BYTES ? ' or corrupt' : ''}` });
        }
      }
      Atomics.add(counters, base + COUNTER.reads, 1);
    }
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}

run(workerData as ReaderConfig);
