/**
 * The pressure suite's load: N readers (worker threads running pressure-reader.js) over the working
 * set on the mount, with their counters in one SharedArrayBuffer the sampler reads without waiting
 * on them. Threads, not child processes, so that a sample's counts are exact at the moment it is
 * taken; the daemon serving the mount is a separate process either way.
 */
import { Worker } from 'node:worker_threads';

/**
 * Layout of the shared Int32Array: the stop flag at STOP_INDEX, then per reader three counters at
 * these offsets from its slot.
 */
export const STOP_INDEX = 0;
export const COUNTER = { reads: 0, mismatches: 1, errors: 2 } as const;
const PER_READER = 3;

export interface ReaderConfig {
  /** The working set's files as seen through the mount, in file-number order. */
  files: string[];
  fileBytes: number;
  seed: number;
  counters: SharedArrayBuffer;
  /** Index of this reader's first counter. */
  slot: number;
}

export interface ReadTotals {
  /** 4 KiB reads completed (checked or not). */
  reads: number;
  mismatches: number;
  errors: number;
}

export class ReaderPool {
  private readonly counters: Int32Array;
  private readonly workers: Worker[] = [];
  private readonly exits: Array<Promise<void>> = [];
  /** First error or mismatch each reader reported, and any worker crash. */
  readonly problems: string[] = [];

  constructor(private readonly readers: number) {
    this.counters = new Int32Array(new SharedArrayBuffer(4 * (1 + readers * PER_READER)));
  }

  /** Starts the readers; each has its own seed, so they do not read in step. */
  start(files: string[], fileBytes: number): void {
    const script = new URL('./pressure-reader.js', import.meta.url);
    for (let r = 0; r < this.readers; r++) {
      const cfg: ReaderConfig = { files, fileBytes, seed: 0x5eed + r, counters: this.counters.buffer as SharedArrayBuffer, slot: 1 + r * PER_READER };
      const w = new Worker(script, { workerData: cfg });
      w.on('message', (m: { error?: string }) => {
        if (m.error !== undefined) this.problems.push(`reader ${r}: ${m.error}`);
      });
      this.exits.push(new Promise((resolve) => {
        w.once('error', (err) => this.problems.push(`reader ${r} crashed: ${err.message}`));
        w.once('exit', () => resolve());
      }));
      this.workers.push(w);
    }
  }

  totals(): ReadTotals {
    const t: ReadTotals = { reads: 0, mismatches: 0, errors: 0 };
    for (let r = 0; r < this.readers; r++) {
      const base = 1 + r * PER_READER;
      t.reads += Atomics.load(this.counters, base + COUNTER.reads);
      t.mismatches += Atomics.load(this.counters, base + COUNTER.mismatches);
      t.errors += Atomics.load(this.counters, base + COUNTER.errors);
    }
    return t;
  }

  /** Asks every reader to stop after its current read; terminates the ones still blocked after `timeoutMs`. */
  async stop(timeoutMs = 5000): Promise<void> {
    Atomics.store(this.counters, STOP_INDEX, 1);
    const all = Promise.all(this.exits);
    const late = await Promise.race([all.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref())]);
    if (late) {
      this.problems.push(`readers still blocked ${timeoutMs} ms after the stop: terminated`);
      await Promise.all(this.workers.map((w) => w.terminate()));
    }
  }
}
