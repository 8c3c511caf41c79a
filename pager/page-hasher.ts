/**
 * PageHasher: checks pages against expected SHA-256 hashes off the thread that answers FUSE and
 * page requests (hashing costs about 0.7-1 ms per MiB here).
 *  - With a NativePageCheck (the mount passes the patched binding's, which hashes on libuv's thread
 *    pool straight from the frames): every check goes there; no copy, no worker thread.
 *  - Without one (a library user, no binding): on a worker thread, from a copy of the pages in a
 *    staging buffer in shared memory (a copy costs ~1/40 of the hashing; arena frames stay in
 *    ordinary memory, which V8 copies twice as fast on the resident read path).
 *
 * State: `staging` holds the shared buffers not in use (at most MAX_STAGING exist); a check that
 * finds none free, or is larger than one, hashes on the calling thread. Requests are answered in
 * the order sent. If the worker cannot run (it failed to start or died), every later check runs on
 * the calling thread: slower, never wrong.
 */
import { hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';

/** Bytes of one staging buffer: a fill chunk's worth (256 pages). */
const STAGING_BYTES = 1024 * 1024;
/** Staging buffers at most: checks in flight at once (fills run 4 jobs x 2 chunks at the most). */
const MAX_STAGING = 8;
/**
 * Hashing workers: two, so the two chunks of a readahead window are hashed at once. Measured on 2
 * cores: during a cold verified read both the main thread and one worker sat idle ~75% of the
 * time (the pipeline waited on hash latency, not on CPU).
 */
const WORKERS = 2;

/**
 * Hashes the first `pages` whole 4 KiB pages held by `views` (in order, at most 1024 views) and
 * calls back with res 0 and the 0-based indices of the pages whose SHA-256 is not their 32-byte leaf
 * in `leaves`, or with res < 0 (-errno) when it could not check. It reads the views' memory
 * asynchronously: they must not change until the callback.
 */
export type NativePageCheck = (views: Buffer[], leaves: Buffer, pages: number, cb: (res: number, bad?: number[]) => void) => void;

/** Views a NativePageCheck takes at most in one call. */
const NATIVE_MAX_VIEWS = 1024;

interface Pending {
  resolve: (bad: number[]) => void;
  staging: Buffer;
  leaves: Buffer;
  pages: number;
}

/**
 * The page indices (0-based) among `pages` whose SHA-256 differs from its 32-byte leaf. Kept free of
 * imports and outer names: its source is also the worker's (WORKER_SOURCE).
 */
function badPagesHere(views: Uint8Array[], leaves: Uint8Array, pages: number, sha256: (page: Uint8Array) => string): number[] {
  const PAGE = 4096;
  // Digests as latin1 ('binary') strings, compared in place against the leaves as one string: no Buffer per
  // page (measured 1.29 vs 1.05 GB/s for 4 KiB pages with Buffer digests).
  // (A Buffer posted to a worker arrives as a plain Uint8Array: view it as a Buffer again.)
  const expected = Buffer.from(leaves.buffer, leaves.byteOffset, pages * 32).toString('latin1');
  const bad: number[] = [];
  let page = 0;
  for (const view of views) {
    for (let at = 0; at + PAGE <= view.length && page < pages; at += PAGE, page++) {
      if (!expected.startsWith(sha256(view.subarray(at, at + PAGE)), page * 32)) bad.push(page);
    }
  }
  return bad;
}

const sha256 = (page: Uint8Array): string => hash('sha256', page, 'binary');
const PAGE_BYTES = 4096;

/** The worker's code: CommonJS and self-contained, so there is no file to find next to this one. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { hash } = require('node:crypto');
const sha256 = (page) => hash('sha256', page, 'binary');
const badPagesHere = ${badPagesHere.toString()};
parentPort.on('message', ({ id, views, leaves, pages }) => parentPort.postMessage({ id, bad: badPagesHere(views, leaves, pages, sha256) }));
`;

export class PageHasher {
  /** Started workers, with the checks each has in flight. */
  private readonly workers: Array<{ worker: Worker; busy: number }> = [];
  /** A worker failed (or close was called): check on this thread from now on. */
  private broken = false;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly staging: Buffer[] = [];
  private stagingMade = 0;

  constructor(private readonly log: Logger, private readonly native: NativePageCheck | null = null) {}

  /**
   * Which of the first `pages` pages held by `views` (whole 4 KiB frames, in order) do not hash to
   * their leaf in `leaves` (32 bytes a page)? Returns 0-based indices, ascending.
   * Preconditions: views cover at least `pages` pages; leaves holds 32 × pages bytes; the frames do
   * not change until the promise settles.
   */
  badPages(views: Buffer[], leaves: Buffer, pages: number): Promise<number[]> {
    const native = this.native;
    if (native !== null && views.length <= NATIVE_MAX_VIEWS) {
      return new Promise<number[]>((resolve) => native(views, leaves, pages, (res, bad) => {
        // A check that could not run is done here instead: slower, never skipped.
        resolve(res === 0 && bad !== undefined ? bad : badPagesHere(views, leaves, pages, sha256));
      }));
    }
    const worker = pages * PAGE_BYTES <= STAGING_BYTES ? this.pickWorker() : null;
    const staging = worker === null ? undefined : this.takeStaging();
    if (worker === null || staging === undefined) return Promise.resolve(badPagesHere(views, leaves, pages, sha256));
    let at = 0;
    for (const v of views) {
      if (at >= pages * PAGE_BYTES) break;
      at += v.copy(staging, at, 0, Math.min(v.length, pages * PAGE_BYTES - at));
    }
    const id = this.nextId++;
    // leaves is a view of the tree's own buffer: copy the slice, so no large buffer is cloned.
    const ownLeaves = Buffer.from(leaves);
    return new Promise<number[]>((resolve) => {
      this.pending.set(id, { resolve, staging, leaves: ownLeaves, pages });
      if (worker.busy++ === 0) worker.worker.ref();
      worker.worker.postMessage({ id, views: [staging.subarray(0, pages * PAGE_BYTES)], leaves: ownLeaves, pages });
    });
  }

  private takeStaging(): Buffer | undefined {
    const free = this.staging.pop();
    if (free !== undefined || this.stagingMade >= MAX_STAGING) return free;
    this.stagingMade++;
    return Buffer.from(new SharedArrayBuffer(STAGING_BYTES));
  }

  /** Stops the workers; checks still pending are finished on this thread. */
  async close(): Promise<void> {
    this.broken = true;
    const all = this.workers.splice(0);
    await Promise.all(all.map((w) => w.worker.terminate()));
    this.failOver();
  }

  /** The least busy worker, starting one while fewer than WORKERS run; null when hashing here. */
  private pickWorker(): { worker: Worker; busy: number } | null {
    if (this.broken) return null;
    let best = this.workers[0];
    for (const w of this.workers) if (w.busy < best.busy) best = w;
    if (best !== undefined && (best.busy === 0 || this.workers.length >= WORKERS)) return best;
    try {
      const entry = { worker: new Worker(WORKER_SOURCE, { eval: true }), busy: 0 };
      entry.worker.on('message', ({ id, bad }: { id: number; bad: number[] }) => {
        const p = this.pending.get(id);
        if (p === undefined) return;
        this.pending.delete(id);
        if (--entry.busy === 0) entry.worker.unref();
        this.staging.push(p.staging);
        p.resolve(bad);
      });
      entry.worker.on('error', (err) => {
        this.log.error({ err }, 'page hashing worker failed; hashing on the main thread from now on');
        void this.close();
      });
      entry.worker.unref();
      this.workers.push(entry);
      return entry;
    } catch (err) {
      this.log.warn({ err }, 'cannot start a page hashing worker; hashing on the main thread');
      this.broken = true;
      return null;
    }
  }

  /** Answers every pending check here (the worker is gone). */
  private failOver(): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.resolve(badPagesHere([p.staging], p.leaves, p.pages, sha256));
    }
  }
}
