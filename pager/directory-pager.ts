/**
 * The directory pager: the default user pager. It serves the regular files of a backing directory
 * as pager VMOs (one per backing inode, shared by every path and handle that names it), answers
 * their page requests from the files, and writes dirty pages back.
 *
 * Rules it follows (after gVisor's fill / writeback / truncate):
 *  - Fill: the required range is the request; the optional range is readahead after it. Bytes are
 *    read with readv straight into the frames of an aux VMO, then moved with supplyPages. The tail of
 *    the page holding the end of the file is zero. A short read where the VMO expects bytes (the
 *    backing file shrank behind pagerfs's back) supplies the whole pages that arrived and fails the
 *    rest with ERR_IO_DATA_INTEGRITY: the reader gets EIO there, never invented zeros.
 *  - Dirty: with TRAP_DIRTY every first write to a clean page asks us; we say yes (opRange DIRTY)
 *    unless the backing filesystem has no room for those pages (ERR_NO_SPACE) or a fault rule says no.
 *  - Writeback: query the dirty runs, WRITEBACK_BEGIN each, copy its bytes out and write them, and
 *    WRITEBACK_END only once the write succeeded; a page written meanwhile stays Dirty. Zero runs are
 *    written as zeros only where the backing file is not already zero there. Finally the backing file
 *    is cut or extended to the VMO's content size.
 *  - Truncate: resize the VMO first (pages past the end are dropped without writeback), then the
 *    backing file.
 * One mutex per file orders writeback and truncate; reads never take it.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  PAGE_SIZE, PRESSURE_LEVEL_NAMES, PageResidency, PagerOp, PressureLevel, VmoOp, VmoOptions, WRITEBACK_IS_ZERO, ZxError,
  ZxStatus, isZxError, statusName,
  type Pager, type Port, type ResidencyRun, type VmObjectPaged, type VmSystem,
} from '../src/index.js';
import { FaultInjector } from './faults.js';
import { silentLogger } from './log.js';
import { PagerMetrics } from './metrics.js';
import { PortServer, type PageJob, type PageJobHandler } from './port-server.js';
import { ReadaheadState } from './readahead.js';

export interface DirectoryPagerOptions {
  system: VmSystem;
  /** The backing directory (absolute or relative to the cwd). */
  backingDir: string;
  logger?: Logger;
  /** Largest readahead window in bytes (default 2 MiB; 0 turns readahead off). */
  readaheadMaxBytes?: number;
  /** Page jobs answered at once (default 4, the libuv thread pool's size). */
  concurrency?: number;
  /** Dirty data older than this is written back (default 5000 ms). */
  writebackDelayMs?: number;
  faults?: FaultInjector;
  /** Log one debug line per page request and its answer. */
  trace?: boolean;
  /** Most of the budget that ALWAYS_NEED (lock) may hold, as a fraction (default 0.5). */
  maxLockedShare?: number;
  /**
   * Resolve backing paths relative to the process's working directory, which the constructor sets
   * to the backing root (process.chdir): backingPath() then returns `a/b` instead of `/root/a/b`,
   * so a path of PATH_MAX - 1 bytes below the root still fits in a system call (Node has no
   * openat). Changes the whole process: one such pager per process (the mount daemon), and nothing
   * else may chdir while it runs (backingPath() checks and fails with ERR_BAD_STATE). Default false.
   */
  chdirToRoot?: boolean;
}

/** The vmtouch-style hints a file can be given (xattr user.pagerfs.hint and the CLI verbs). */
export const FILE_HINTS = ['dont_need', 'always_need', 'normal', 'commit', 'evict'] as const;
export type FileHint = (typeof FILE_HINTS)[number];

/** One file's residency, in pages. */
export interface FileResidency {
  pages: number;
  resident: number;
  dirty: number;
  locked: number;
  pinned: number;
  runs: ResidencyRun[];
}

/** Readahead may hold at most this share of the budget at once (1/8). */
const READAHEAD_BUDGET_SHARE = 8;
/** A budget shrink blocked only by dirty or in-flight pages is retried this often, 10 ms apart. */
const SET_BUDGET_ATTEMPTS = 100;
/** Most pages read and supplied at once: big enough for few syscalls, small enough to wake readers early. */
const FILL_CHUNK_PAGES = 256;
/** Zeros written per I/O when writing back a zero run. */
const ZERO_CHUNK = 128 * 1024;

/** Zeroes every byte of the views from byte `from` on (the part a short read did not fill). */
function zeroFrom(views: Buffer[], from: number): void {
  let skip = from;
  for (const v of views) {
    if (skip >= v.length) { skip -= v.length; continue; }
    v.fill(0, skip);
    skip = 0;
  }
}

/** Page runs of [start, end) that the VMO does not hold now. */
function missingRuns(vmo: VmObjectPaged, start: number, end: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  let next = start;
  if (end <= start) return runs;
  vmo.lookup(start * PAGE_SIZE, (end - start) * PAGE_SIZE, (p) => {
    if (p > next) runs.push([next, p]);
    next = p + 1;
  });
  if (next < end) runs.push([next, end]);
  return runs;
}

/** The first page of [start, end) the VMO holds, or `end`. */
function firstPresent(vmo: VmObjectPaged, start: number, end: number): number {
  let first = end;
  if (end <= start) return first;
  vmo.lookup(start * PAGE_SIZE, (end - start) * PAGE_SIZE, (p) => { if (p < first) first = p; });
  return first;
}

/** Pages one job is reading now; later jobs wait on `done` instead of reading them again. */
interface InFlightRange {
  start: number;
  end: number;
  done: Promise<void>;
}

/** One backing file and its VMO. */
export class PagedFile {
  /** Path relative to the backing root, '/'-separated, no leading slash; updated on rename. */
  relPath: string;
  /** Open handles through the filesystem (plus internal users). */
  opens = 0;
  /** The last name was removed: dirty pages are discarded at the last close. */
  unlinked = false;
  /** When the oldest not-yet-written-back dirty data appeared (performance.now()), or null. */
  dirtySince: number | null = null;
  readonly readahead = new ReadaheadState();
  /** Page ranges jobs are reading from the backing file now. */
  readonly inFlight: InFlightRange[] = [];
  /**
   * The backing file's size as pagerfs last saw or set it. Reads expect bytes up to
   * min(this, VMO content size); the VMO may grow past it before writeback extends the file.
   */
  backingSize = 0;
  /** Page runs known to be zero in the backing file (we extended it with ftruncate). */
  knownZero: Array<{ start: number; end: number }> = [];
  private lock: Promise<void> = Promise.resolve();
  /** Set when the VMO's COMPLETE arrived; the file is gone from the pager's tables. */
  completed = false;

  constructor(
    readonly key: number,
    relPath: string,
    readonly identity: string,
    readonly vmo: VmObjectPaged,
    readonly fh: FileHandle,
    readonly writable: boolean,
  ) {
    this.relPath = relPath;
  }

  /** Runs `fn` after every earlier locked operation on this file (writeback, truncate). */
  withLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.then(() => undefined, () => undefined);
    return run;
  }
}

/** Maps a Node fs error to the status a pager may fail a request with. */
export function statusForIoError(err: unknown): ZxStatus {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return ZxStatus.ERR_NO_SPACE;
    case 'EBADF':
    case 'ESTALE':
    case 'ENOENT':
      return ZxStatus.ERR_BAD_STATE;
    default:
      return ZxStatus.ERR_IO;
  }
}

export class DirectoryPager implements PageJobHandler {
  readonly system: VmSystem;
  readonly pager: Pager;
  readonly port: Port;
  readonly root: string;
  readonly metrics = new PagerMetrics();
  readonly faults: FaultInjector;
  readonly log: Logger;
  private readonly readaheadMaxPages: number;
  private readonly writebackDelayMs: number;
  private readonly server: PortServer;
  private readonly byKey = new Map<number, PagedFile>();
  private readonly byIdentity = new Map<string, PagedFile>();
  private nextKey = 1;
  private flushTimer: ReturnType<typeof setInterval> | null = null;
  private pressureWriteback: Promise<void> | null = null;
  private unsubscribePressure: (() => void) | null = null;
  private spaceCache: { at: number; freeBytes: number } | null = null;
  /**
   * Files whose content may run past their backing file's end (grown by writes, not yet written
   * back): the room check sums only these, not every file the pager knows. Pruned as it goes.
   */
  private readonly growing = new Set<PagedFile>();
  /** While a budget change runs, fills wait on this (they hold aux frames while reading). */
  private fillGate: Promise<void> | null = null;
  /** Fills reading into aux frames now, and who waits for that count to reach zero. */
  private activeFills = 0;
  private fillsIdle: Array<() => void> = [];
  private shuttingDown = false;
  private readonly maxLockedShare: number;
  /** Pages of locks being placed now (always_need in progress), counted against the locked share. */
  private lockReserved = 0;
  private unsubscribeLevel: (() => void) | null = null;
  /** chdirToRoot: the working directory as process.cwd() reports it right after the chdir. */
  private readonly cwdRoot: string | null = null;

  constructor(options: DirectoryPagerOptions) {
    this.system = options.system;
    this.root = path.resolve(options.backingDir);
    if (options.chdirToRoot === true) {
      process.chdir(this.root);
      this.cwdRoot = process.cwd();
    }
    this.log = options.logger ?? silentLogger();
    this.faults = options.faults ?? new FaultInjector();
    this.readaheadMaxPages = Math.floor((options.readaheadMaxBytes ?? 2 * 1024 * 1024) / PAGE_SIZE);
    this.writebackDelayMs = options.writebackDelayMs ?? 5000;
    this.maxLockedShare = options.maxLockedShare ?? 0.5;
    this.pager = this.system.createPager();
    this.port = this.system.createPort();
    this.server = new PortServer(this.port, this, options.concurrency ?? 4, this.metrics, this.log,
      (key) => this.byKey.get(key)?.relPath ?? `#${key}`, options.trace ?? false);
  }

  /** Starts answering requests and the aging writeback. */
  start(): void {
    this.server.start();
    const period = Math.max(50, Math.min(1000, this.writebackDelayMs / 2));
    this.flushTimer = setInterval(() => { void this.flushAged(); }, period);
    this.flushTimer.unref();
    this.unsubscribePressure = this.system.onMemoryPressure(() => this.startPressureWriteback());
    // Each pressure level change is logged once; from WARNING on, dirty pages are written back
    // early so that what the budget holds becomes reclaimable again.
    this.unsubscribeLevel = this.system.onPressureLevel((level, previous) => {
      this.log.info({ level: PRESSURE_LEVEL_NAMES[level], previous: PRESSURE_LEVEL_NAMES[previous],
        availablePages: this.system.availableFrames, budgetPages: this.system.budgetPages }, 'memory pressure level changed');
      if (level >= PressureLevel.WARNING) this.startPressureWriteback();
    });
    this.system.startAging();
  }

  /** Files with a VMO now. */
  files(): PagedFile[] {
    return [...this.byKey.values()];
  }

  fileByKey(key: number): PagedFile | undefined {
    return this.byKey.get(key);
  }

  /** The file with backing identity "dev:ino", if it has a VMO now. */
  fileByIdentity(identity: string): PagedFile | undefined {
    const f = this.byIdentity.get(identity);
    return f !== undefined && !f.completed ? f : undefined;
  }

  /**
   * The backing inode lost its last name. Its dirty pages will never be written back; the VMO goes
   * at once if no handle is open, else at the last release.
   */
  async unlinked(identity: string): Promise<void> {
    const f = this.fileByIdentity(identity);
    if (f === undefined) return;
    f.unlinked = true;
    this.byIdentity.delete(identity);
    if (f.opens === 0) this.forget(f);
  }

  /**
   * Resolves a path relative to the backing root; nothing it returns lies outside the root.
   * Normalising against '/' first clamps any '..' at the root, as a path walk from '/' would.
   * Preconditions: `relPath` uses '/' separators; a leading '/' is allowed.
   * With chdirToRoot the result is relative to the working directory (the root): `a/b`, or `.` for
   * the root itself; no `./` prefix, so that PATH_MAX - 1 bytes below the root still fit.
   */
  backingPath(relPath: string): string {
    const norm = path.posix.normalize(`/${relPath}`);
    const full = path.join(this.root, norm);
    if (full !== this.root && !full.startsWith(this.root + path.sep)) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `path "${relPath}" leaves the backing directory`);
    }
    if (this.cwdRoot === null) return full;
    if (process.cwd() !== this.cwdRoot) {
      throw new ZxError(ZxStatus.ERR_BAD_STATE, `the working directory moved away from the backing root (now "${process.cwd()}")`);
    }
    return norm === '/' ? '.' : norm.slice(1);
  }

  /**
   * Opens (or finds) the VMO of the regular file at `relPath`. Hard links share one VMO. Node fs
   * errors (ENOENT, EACCES, …) are thrown as they are, for the caller to hand on as errno.
   */
  async open(relPath: string): Promise<PagedFile> {
    if (this.shuttingDown) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the pager is shutting down');
    const full = this.backingPath(relPath);
    let fh: FileHandle;
    let writable = true;
    try {
      fh = await fsp.open(full, fsc.O_RDWR | fsc.O_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') throw err;
      fh = await fsp.open(full, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      writable = false;
    }
    let st;
    try {
      st = await fh.stat();
    } catch (err) {
      await fh.close();
      throw err;
    }
    if (!st.isFile()) {
      await fh.close();
      throw Object.assign(new Error(`"${relPath}" is not a regular file`), { code: 'EINVAL', errno: -22 });
    }
    const identity = `${st.dev}:${st.ino}`;
    const existing = this.byIdentity.get(identity);
    if (existing !== undefined && !existing.completed) {
      await fh.close();
      existing.opens++;
      return existing;
    }
    const key = this.nextKey++;
    const vmo = this.pager.createVmo(VmoOptions.RESIZABLE | VmoOptions.TRAP_DIRTY, this.port, key, st.size);
    vmo.name = path.posix.basename(relPath);
    const file = new PagedFile(key, relPath.replace(/^\/+/, ''), identity, vmo, fh, writable);
    file.opens = 1;
    file.backingSize = st.size;
    this.byKey.set(key, file);
    this.byIdentity.set(identity, file);
    return file;
  }

  /**
   * Drops one open of the file. At the last close of an unlinked file its pages are discarded and
   * the VMO detached; a linked file keeps its VMO (a cache) and its dirty data is written back by age.
   */
  async release(file: PagedFile): Promise<void> {
    file.opens--;
    if (file.opens > 0 || file.completed) return;
    if (file.unlinked) this.forget(file);
  }

  /** Paths under `from` now live under `to` (a rename of a file or directory). */
  renamed(from: string, to: string): void {
    const a = from.replace(/^\/+/, '');
    const b = to.replace(/^\/+/, '');
    for (const f of this.byKey.values()) {
      if (f.relPath === a) f.relPath = b;
      else if (f.relPath.startsWith(`${a}/`)) f.relPath = b + f.relPath.slice(a.length);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Answering requests.

  async handle(job: PageJob): Promise<void> {
    const file = this.byKey.get(job.key);
    if (file === undefined) {
      this.log.warn({ key: job.key }, 'request for an unknown key; ignored');
      return;
    }
    for (const part of await this.applyFaults(file, job)) {
      if (job.command === 'READ') await this.fill(file, part);
      else await this.dirty(file, part);
    }
  }

  failJob(job: PageJob, _err: unknown): void {
    const file = this.byKey.get(job.key);
    if (file !== undefined) this.failRange(file, job.offset, job.length, ZxStatus.ERR_IO);
  }

  complete(key: number): void {
    const file = this.byKey.get(key);
    if (file === undefined) return;
    file.completed = true;
    this.byKey.delete(key);
    if (this.byIdentity.get(file.identity) === file) this.byIdentity.delete(file.identity);
    void file.fh.close().catch(() => undefined);
  }

  /** Fails [offset, +length) of the file, tolerating a VMO that was detached or shrank meanwhile. */
  private failRange(file: PagedFile, offset: number, length: number, status: ZxStatus): void {
    const end = Math.min(offset + length, file.vmo.sizeBytes);
    if (end <= offset) return;
    try {
      this.pager.opRange(PagerOp.FAIL, file.vmo, offset, end - offset, status);
      this.metrics.countFailure(statusName(status));
    } catch (err) {
      if (!isZxError(err, ZxStatus.ERR_BAD_STATE)) throw err;
    }
  }

  /**
   * Applies the fault rules to a job: waits out a delay rule; fails the pages a failing rule covers
   * (a rule with a byte range fails only the pages of the job that range touches); returns the parts
   * of the job still to be answered normally.
   */
  private async applyFaults(file: PagedFile, job: PageJob): Promise<PageJob[]> {
    const action = this.faults.match(file.relPath, job.offset, job.length);
    if (action === undefined) return [job];
    this.metrics.injectedFaults++;
    if (action.delayMs > 0) await new Promise((r) => setTimeout(r, action.delayMs));
    if (action.status === undefined) return [job];
    const end = job.offset + job.length;
    const range = action.rule.range;
    const failStart = range === undefined ? job.offset : Math.max(job.offset, Math.floor(range.start / PAGE_SIZE) * PAGE_SIZE);
    const failEnd = range === undefined ? end : Math.min(end, Math.ceil(range.end / PAGE_SIZE) * PAGE_SIZE);
    this.log.info({ path: file.relPath, offset: failStart, length: failEnd - failStart, status: statusName(action.status), rule: action.rule.text },
      'injected fault');
    this.failRange(file, failStart, failEnd - failStart, action.status);
    const rest: PageJob[] = [];
    if (failStart > job.offset) rest.push({ ...job, length: failStart - job.offset });
    if (failEnd < end) rest.push({ ...job, offset: failEnd, length: end - failEnd });
    return rest;
  }

  private async fill(file: PagedFile, job: PageJob): Promise<void> {
    const vmo = file.vmo;
    const startPage = job.offset / PAGE_SIZE;
    let reqEnd = Math.min((job.offset + job.length) / PAGE_SIZE, vmo.sizePages);
    if (reqEnd <= startPage) return; // the VMO shrank under the request; the kernel retried its waiters
    // Another job may be reading some of these pages now (typically as readahead): wait for it
    // rather than read them twice, then read only what is still missing.
    const busy = file.inFlight.filter((r) => r.start < reqEnd && startPage < r.end);
    if (busy.length > 0) {
      await Promise.allSettled(busy.map((r) => r.done));
      for (const [s0, e0] of missingRuns(vmo, startPage, Math.min(reqEnd, vmo.sizePages))) {
        await this.fillRange(file, s0, e0, e0);
      }
      return;
    }
    const contentPages = Math.ceil(vmo.contentSizeBytes / PAGE_SIZE);
    let endPage = file.readahead.plan(startPage, reqEnd, this.readaheadPagesAllowed(), Math.min(contentPages, vmo.sizePages),
      (hits, waste) => { this.metrics.readaheadHitPages += hits; this.metrics.readaheadWastePages += waste; });
    if (endPage > reqEnd) {
      // Read ahead only over pages nobody has: stop at the first resident page, the first page
      // another job is reading, and the first page a fault rule would fail (its readers must meet it).
      endPage = Math.min(endPage, firstPresent(vmo, reqEnd, endPage));
      for (const r of file.inFlight) if (r.end > reqEnd && r.start < endPage) endPage = Math.max(reqEnd, Math.min(endPage, r.start));
      const bad = this.faults.firstFailingByte(file.relPath, reqEnd * PAGE_SIZE, (endPage - reqEnd) * PAGE_SIZE);
      if (bad !== undefined) endPage = Math.max(reqEnd, Math.floor(bad / PAGE_SIZE));
    }
    reqEnd = Math.min(reqEnd, endPage);
    await this.fillRange(file, startPage, reqEnd, endPage);
    if (endPage > reqEnd) this.metrics.readaheadPages += endPage - reqEnd;
  }

  /**
   * Reads and supplies [startPage, endPage), of which [startPage, reqEnd) is required (failures there
   * are answered with FAIL) and the rest optional readahead. Registered as in flight meanwhile, so a
   * job needing these pages waits for this one instead of reading them again.
   */
  private async fillRange(file: PagedFile, startPage: number, reqEnd: number, endPage: number): Promise<void> {
    let finish!: () => void;
    const entry: InFlightRange = { start: startPage, end: endPage, done: new Promise<void>((r) => { finish = r; }) };
    file.inFlight.push(entry);
    try {
      // Fill in chunks no larger than memory allows: a request may be larger than the whole budget,
      // and readers wake as each chunk is supplied (the kernel accepts partial supplies).
      let pos = startPage;
      while (pos < endPage) {
        const inRequired = pos < reqEnd;
        let room = this.system.availableFrames;
        if (room === 0 && inRequired) {
          await this.writebackForPressure();
          room = this.system.availableFrames;
        }
        if (room === 0) {
          if (!inRequired) return; // readahead is optional: stop quietly
          this.log.warn({ path: file.relPath, offset: pos * PAGE_SIZE }, 'memory budget full of dirty or pinned pages; failing the read');
          this.failRange(file, pos * PAGE_SIZE, (reqEnd - pos) * PAGE_SIZE, ZxStatus.ERR_NO_SPACE);
          return;
        }
        const count = Math.min(endPage - pos, FILL_CHUNK_PAGES, room);
        if ((await this.fillChunk(file, pos, count, reqEnd)) === 'stop') return;
        pos += count;
      }
    } finally {
      file.inFlight.splice(file.inFlight.indexOf(entry), 1);
      finish();
    }
  }

  /**
   * Reads pages [pos, pos + count) into an aux VMO and supplies them. Failures of the required part
   * (pages below reqEnd) are answered with FAIL; returns 'stop' when the job is answered for good.
   */
  private async fillChunk(file: PagedFile, pos: number, count: number, reqEnd: number): Promise<'next' | 'stop'> {
    while (this.fillGate !== null) await this.fillGate; // a budget change is under way
    this.activeFills++;
    try {
      return await this.fillChunkNow(file, pos, count, reqEnd);
    } finally {
      if (--this.activeFills === 0) for (const w of this.fillsIdle.splice(0)) w();
    }
  }

  private async fillChunkNow(file: PagedFile, pos: number, count: number, reqEnd: number): Promise<'next' | 'stop'> {
    const vmo = file.vmo;
    const offset = pos * PAGE_SIZE;
    const failRequired = (status: ZxStatus): 'stop' => {
      if (pos < reqEnd) this.failRange(file, offset, (reqEnd - pos) * PAGE_SIZE, status);
      return 'stop';
    };
    const aux = this.system.createVmo(count * PAGE_SIZE);
    try {
      // Frames are not zeroed first: the read overwrites them and zeroTail clears the rest.
      const views = aux.mapPages(0, count * PAGE_SIZE, { zeroFill: false });
      const knownBytes = Math.min(vmo.contentSizeBytes, file.backingSize);
      const expected = Math.max(0, Math.min(count * PAGE_SIZE, knownBytes - offset));
      const got = await this.readInto(file, views, offset, expected);
      zeroFrom(views, got);
      if (got < expected) {
        // The backing file is shorter than pagerfs knew (changed behind its back): supply only the
        // whole pages that arrived, never zeros in place of missing bytes; fail the required rest.
        const goodPages = Math.floor(got / PAGE_SIZE);
        this.log.warn({ path: file.relPath, offset, expected, got },
          'backing file shorter than expected (changed behind pagerfs); failing the missing pages');
        if (goodPages > 0) this.supply(file, pos, goodPages, aux);
        const failFrom = pos + goodPages;
        if (failFrom < reqEnd) this.failRange(file, failFrom * PAGE_SIZE, (reqEnd - failFrom) * PAGE_SIZE, ZxStatus.ERR_IO_DATA_INTEGRITY);
        return 'stop';
      }
      this.supply(file, pos, count, aux);
      return 'next';
    } catch (err) {
      if (isZxError(err, ZxStatus.ERR_NO_MEMORY)) {
        this.log.warn({ path: file.relPath, offset }, 'no frame for a read within the memory budget');
        return failRequired(ZxStatus.ERR_NO_SPACE);
      }
      if (err instanceof ZxError) {
        this.log.warn({ path: file.relPath, offset, err: err.message }, 'cannot answer a read');
        return failRequired(ZxStatus.ERR_IO);
      }
      this.log.warn({ path: file.relPath, offset, err: (err as Error).message }, 'backing read failed');
      return failRequired(statusForIoError(err));
    } finally {
      aux.close();
    }
  }

  /** Readahead pages this request may add now: the window cap, a share of the budget, and what is free. */
  private readaheadPagesAllowed(): number {
    if (this.readaheadMaxPages === 0) return 0;
    // Readahead may displace only pages that are reclaimable; never dirty, pinned or locked ones.
    return Math.max(0, Math.min(this.readaheadMaxPages, Math.floor(this.system.budgetPages / READAHEAD_BUDGET_SHARE),
      this.system.availableFrames));
  }

  /** Reads up to `expected` bytes at `position` into the views; returns bytes read (short at EOF). */
  private async readInto(file: PagedFile, views: Buffer[], position: number, expected: number): Promise<number> {
    let got = 0;
    let vi = 0;
    let vo = 0;
    while (got < expected) {
      // Views past `expected` stay zero (they were allocated zeroed): trim the list to what we need.
      const iov: Buffer[] = [];
      let want = expected - got;
      for (let i = vi, o = vo; i < views.length && want > 0; i++, o = 0) {
        const v = views[i].subarray(o, o + Math.min(views[i].length - o, want));
        iov.push(v);
        want -= v.length;
      }
      const { bytesRead } = await file.fh.readv(iov, position + got);
      this.metrics.backingReads++;
      this.metrics.backingReadBytes += bytesRead;
      if (bytesRead === 0) break;
      got += bytesRead;
      let adv = bytesRead;
      while (adv > 0 && vi < views.length) {
        const left = views[vi].length - vo;
        if (adv >= left) { adv -= left; vi++; vo = 0; } else { vo += adv; adv = 0; }
      }
    }
    return got;
  }

  private supply(file: PagedFile, startPage: number, count: number, aux: VmObjectPaged): void {
    try {
      const added = this.pager.supplyPages(file.vmo, startPage * PAGE_SIZE, count * PAGE_SIZE, aux, 0);
      this.metrics.suppliedPages += added;
    } catch (err) {
      if (isZxError(err, ZxStatus.ERR_BAD_STATE)) return; // detached meanwhile: nobody is waiting
      if (isZxError(err, ZxStatus.ERR_OUT_OF_RANGE)) {
        // The VMO shrank while we read: supply what still fits.
        const fits = Math.max(0, file.vmo.sizePages - startPage);
        if (fits > 0 && fits < count) this.supply(file, startPage, fits, aux);
        return;
      }
      throw err;
    }
  }

  private async dirty(file: PagedFile, job: PageJob): Promise<void> {
    const end = Math.min(job.offset + job.length, file.vmo.sizeBytes);
    if (end <= job.offset) return;
    if (!file.writable) {
      this.failRange(file, job.offset, end - job.offset, ZxStatus.ERR_BAD_STATE);
      return;
    }
    // Only bytes past the backing file's end take new space; overwriting existing bytes does not.
    if (file.vmo.contentSizeBytes > file.backingSize) this.growing.add(file);
    if (!(await this.hasRoomFor(Math.max(0, end - Math.max(job.offset, file.backingSize))))) {
      this.log.warn({ path: file.relPath, offset: job.offset, length: job.length }, 'backing filesystem is full; refusing to dirty pages');
      this.failRange(file, job.offset, end - job.offset, ZxStatus.ERR_NO_SPACE);
      return;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        this.pager.opRange(PagerOp.DIRTY, file.vmo, job.offset, Math.min(end, file.vmo.sizeBytes) - job.offset);
        file.dirtySince ??= performance.now();
        break;
      } catch (err) {
        // NOT_FOUND: a page was evicted or written back as a gap before we answered; the writer retries
        // with a READ. BAD_STATE: detached. OUT_OF_RANGE: shrank. None leaves anyone waiting.
        if (isZxError(err, ZxStatus.ERR_NOT_FOUND) || isZxError(err, ZxStatus.ERR_BAD_STATE) || isZxError(err, ZxStatus.ERR_OUT_OF_RANGE)) return;
        if (!isZxError(err, ZxStatus.ERR_NO_MEMORY)) throw err;
        // Dirtying zero pages needs frames and dirty pages fill the budget: write back, then retry once.
        if (attempt === 0) {
          await this.writebackForPressure();
          continue;
        }
        this.log.warn({ path: file.relPath, offset: job.offset }, 'memory budget full of dirty or pinned pages; refusing the write');
        this.failRange(file, job.offset, end - job.offset, ZxStatus.ERR_NO_SPACE);
        return;
      }
    }
    // Keep dirty data below half the budget: start writing back early, as Linux's dirty ratio does,
    // so writers rarely meet a budget full of dirty pages.
    if (this.system.dirtyPages * 2 > this.system.budgetPages) this.startPressureWriteback();
  }

  /** Is there room in the backing filesystem for `bytes` more? statfs at most once a second. */
  /**
   * Is there room in the backing filesystem for `bytes` more, beyond what files already promised
   * (their content past the backing file's end, not yet written back)? statfs at most once a second.
   */
  private async hasRoomFor(bytes: number): Promise<boolean> {
    if (bytes === 0) return true;
    const now = performance.now();
    if (this.spaceCache === null || now - this.spaceCache.at > 1000) {
      const s = await fsp.statfs(this.backingPath(''));
      this.spaceCache = { at: now, freeBytes: s.bavail * s.bsize };
    }
    let promised = 0;
    for (const f of this.growing) {
      const ahead = f.completed ? 0 : f.vmo.contentSizeBytes - f.backingSize;
      if (ahead > 0) promised += ahead;
      else this.growing.delete(f);
    }
    if (this.spaceCache.freeBytes - promised < bytes) {
      this.spaceCache = null; // look again next time: space may have been freed
      return false;
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Budget, hints and residency (the vmtouch-style controls).

  /**
   * Changes the memory budget while serving. Growing takes effect at once; shrinking reclaims clean
   * pages down to the new budget, writing dirty pages back first when they stand in the way. Throws
   * BAD_STATE (and keeps the old budget) when pinned or locked pages alone exceed the new budget.
   */
  async setBudget(bytes: number): Promise<void> {
    const frames = Math.floor(bytes / PAGE_SIZE);
    // Pinned and locked pages stay whatever we do: when they alone exceed the budget, refuse at
    // once, with nothing written back or evicted.
    const held = this.system.pinnedPages + this.system.lockedPages;
    if (held > frames) {
      throw new ZxError(ZxStatus.ERR_BAD_STATE,
        `cannot shrink the budget to ${frames} pages: ${held} pages are pinned or locked`);
    }
    // Anything else in the way is dirty (write it back) or in flight: fills hold aux frames while
    // they read. Hold new fills back and let running ones finish, then shrink; retry briefly.
    let open!: () => void;
    this.fillGate = new Promise<void>((r) => { open = r; });
    try {
      while (this.activeFills > 0) await new Promise<void>((r) => this.fillsIdle.push(r));
      for (let attempt = 0; ; attempt++) {
        try {
          this.system.setBudget(bytes);
          break;
        } catch (err) {
          if (!isZxError(err, ZxStatus.ERR_BAD_STATE) || attempt >= SET_BUDGET_ATTEMPTS) throw err;
          if (attempt === 0) await this.writebackAll().catch(() => undefined);
          else await new Promise((r) => setTimeout(r, 10));
        }
      }
    } finally {
      this.fillGate = null;
      open();
    }
    this.log.info({ budgetBytes: this.system.budgetBytes }, 'memory budget changed');
  }

  /**
   * Applies a hint to the whole file: dont_need (first to go), always_need (lock: fault in and keep;
   * refused with NO_MEMORY beyond the locked share of the budget), normal (unlock, pagerfs's
   * RELEASE_ALWAYS_NEED), commit (touch: fault in through the pager), evict (write back, then reclaim
   * the file's clean unlocked pages now). Returns the pages the file has resident afterwards.
   */
  async hint(file: PagedFile, hint: FileHint): Promise<number> {
    const vmo = file.vmo;
    const size = vmo.sizeBytes;
    switch (hint) {
      case 'dont_need':
        await vmo.opRange(VmoOp.DONT_NEED, 0, size);
        break;
      case 'always_need': {
        // Locks being placed right now count too (reserved), so concurrent locks cannot overshoot.
        const others = this.system.lockedPages - vmo.counters().lockedPages + this.lockReserved;
        const limit = Math.floor(this.system.budgetPages * this.maxLockedShare);
        if (others + vmo.sizePages > limit) {
          throw new ZxError(ZxStatus.ERR_NO_MEMORY,
            `locking ${vmo.sizePages} pages would hold ${others + vmo.sizePages} locked pages, above ${Math.round(this.maxLockedShare * 100)}% of the budget (${limit} pages)`);
        }
        this.lockReserved += vmo.sizePages;
        try {
          await vmo.opRange(VmoOp.ALWAYS_NEED, 0, size);
        } finally {
          this.lockReserved -= vmo.sizePages;
        }
        break;
      }
      case 'normal':
        await vmo.opRange(VmoOp.RELEASE_ALWAYS_NEED, 0, size);
        break;
      case 'commit':
        await vmo.opRange(VmoOp.COMMIT, 0, size);
        break;
      case 'evict':
        await this.writeback(file);
        await vmo.opRange(VmoOp.EVICT, 0, size);
        break;
    }
    return vmo.counters().residentPages;
  }

  /** The file's residency now: page counts by state and the runs (for strips). */
  residency(file: PagedFile): FileResidency {
    const vmo = file.vmo;
    const runs = vmo.residencyRuns(0, vmo.sizeBytes);
    // `resident` counts frames (as the stats do); a dirty zero run holds no frame but is dirty.
    const out: FileResidency = { pages: vmo.sizePages, resident: vmo.counters().residentPages, dirty: 0, locked: 0, pinned: 0, runs };
    for (const r of runs) {
      const n = r.endPage - r.startPage;
      if (r.state === PageResidency.Dirty) out.dirty += n;
      if (r.state === PageResidency.Locked) out.locked += n;
      if (r.state === PageResidency.Pinned) out.pinned += n;
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // Writeback and truncate.

  /**
   * Writes back every dirty page of the file, then sets the backing file's size to the VMO's content
   * size; with `sync`, fdatasync too. Throws the backing write error (pages stay dirty).
   */
  writeback(file: PagedFile, sync = false): Promise<void> {
    return file.withLock(() => this.writebackLocked(file, sync));
  }

  private async writebackLocked(file: PagedFile, sync: boolean): Promise<void> {
    if (file.completed) return;
    const vmo = file.vmo;
    const ranges = this.pager.queryDirtyRanges(vmo, 0, vmo.sizeBytes).ranges;
    if (ranges.length > 0 && !file.writable) {
      throw Object.assign(new Error(`"${file.relPath}" is read-only in the backing directory`), { code: 'EROFS', errno: -30 });
    }
    file.dirtySince = null;
    // Writeback changes what the store has free: the next room check must look again.
    this.spaceCache = null;
    let backingSize = (await file.fh.stat()).size;
    try {
      for (const r of ranges) {
        if (r.offset >= vmo.sizeBytes) break; // shrank meanwhile
        const length = Math.min(r.length, vmo.sizeBytes - r.offset);
        this.pager.opRange(PagerOp.WRITEBACK_BEGIN, vmo, r.offset, length, r.isZero ? WRITEBACK_IS_ZERO : 0);
        const end = Math.min(r.offset + length, vmo.contentSizeBytes);
        if (end > r.offset) {
          if (r.isZero) {
            await this.writeZeros(file, r.offset, end, backingSize);
          } else {
            // The pages are resident (Dirty/AwaitingClean are never evicted): this copy cannot wait.
            const buf = Buffer.allocUnsafe(end - r.offset);
            const n = vmo.readStep(buf, 0, r.offset, end - r.offset);
            if (n !== buf.length) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'dirty pages were not resident during writeback');
            await this.writeAll(file.fh, buf, r.offset);
            this.forgetKnownZero(file, r.offset / PAGE_SIZE, Math.ceil(end / PAGE_SIZE));
            backingSize = Math.max(backingSize, end);
          }
          this.metrics.writebackBytes += end - r.offset;
        }
        const now = Math.min(r.offset + length, vmo.sizeBytes) - r.offset;
        if (now > 0) this.pager.opRange(PagerOp.WRITEBACK_END, vmo, r.offset, now);
        this.metrics.writebackPages += length / PAGE_SIZE;
      }
      if (backingSize !== vmo.contentSizeBytes) await file.fh.truncate(vmo.contentSizeBytes);
      file.backingSize = vmo.contentSizeBytes;
      if (sync) await file.fh.datasync();
    } catch (err) {
      this.metrics.writebackErrors++;
      file.dirtySince ??= performance.now();
      this.log.warn({ path: file.relPath, err: (err as Error).message }, 'writeback failed; the data stays dirty');
      throw err;
    }
  }

  private async writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
      if (bytesWritten === 0) throw Object.assign(new Error('backing write made no progress'), { code: 'EIO', errno: -5 });
      done += bytesWritten;
    }
  }

  /** Writes zeros over [start, end) except where the backing file is past its end or known zero. */
  private async writeZeros(file: PagedFile, start: number, end: number, backingSize: number): Promise<void> {
    const stop = Math.min(end, backingSize);
    let pos = start;
    const zeros = Buffer.alloc(Math.min(ZERO_CHUNK, Math.max(0, stop - start)));
    while (pos < stop) {
      const page = Math.floor(pos / PAGE_SIZE);
      const kz = file.knownZero.find((r) => page >= r.start && page < r.end);
      if (kz !== undefined) {
        pos = Math.max(pos + 1, kz.end * PAGE_SIZE);
        continue;
      }
      const n = Math.min(zeros.length, stop - pos);
      await this.writeAll(file.fh, zeros.subarray(0, n), pos);
      pos += n;
    }
  }

  private forgetKnownZero(file: PagedFile, start: number, end: number): void {
    const out: Array<{ start: number; end: number }> = [];
    for (const r of file.knownZero) {
      if (r.end <= start || r.start >= end) { out.push(r); continue; }
      if (r.start < start) out.push({ start: r.start, end: start });
      if (r.end > end) out.push({ start: end, end: r.end });
    }
    file.knownZero = out;
  }

  /** Sets the file's size: the VMO first (pages past the end dropped unwritten), then the backing file. */
  truncate(file: PagedFile, sizeBytes: number): Promise<void> {
    return file.withLock(async () => {
      const oldSize = file.vmo.contentSizeBytes;
      file.vmo.resize(sizeBytes);
      if (!file.writable) throw Object.assign(new Error('read-only backing file'), { code: 'EROFS', errno: -30 });
      await file.fh.truncate(sizeBytes);
      file.backingSize = sizeBytes;
      if (sizeBytes > oldSize) {
        file.knownZero.push({ start: Math.ceil(oldSize / PAGE_SIZE), end: Math.ceil(sizeBytes / PAGE_SIZE) });
      } else {
        this.forgetKnownZero(file, Math.ceil(sizeBytes / PAGE_SIZE), Number.MAX_SAFE_INTEGER);
      }
    });
  }

  /** Writes back every file with dirty data. Errors are logged and the first is rethrown at the end. */
  async writebackAll(sync = false): Promise<void> {
    let first: unknown;
    for (const file of this.files()) {
      if (file.completed) continue;
      try {
        await this.writeback(file, sync);
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  /** Writes back files whose dirty data is older than the writeback delay. */
  private async flushAged(): Promise<void> {
    const now = performance.now();
    for (const file of this.files()) {
      if (file.dirtySince !== null && now - file.dirtySince >= this.writebackDelayMs) {
        await this.writeback(file).catch(() => undefined);
      }
    }
  }

  /** Called from inside an allocation (the pressure listener): start on the next microtask. */
  private startPressureWriteback(): void {
    if (this.pressureWriteback === null) queueMicrotask(() => { void this.writebackForPressure(); });
  }

  /** Memory is short and dirty pages fill it: write back, oldest dirty first. One run at a time. */
  private writebackForPressure(): Promise<void> {
    this.pressureWriteback ??= (async () => {
      const files = this.files().filter((f) => f.dirtySince !== null)
        .sort((a, b) => (a.dirtySince ?? 0) - (b.dirtySince ?? 0));
      for (const f of files) await this.writeback(f).catch(() => undefined);
    })().finally(() => { this.pressureWriteback = null; });
    return this.pressureWriteback;
  }

  /** Detaches the file's VMO and drops it; its dirty pages are discarded (the file is unlinked). */
  private forget(file: PagedFile): void {
    if (file.completed) return;
    try {
      this.pager.detachVmo(file.vmo);
    } catch {
      // already gone
    }
    file.vmo.close();
  }

  /**
   * Shuts down: writes back every dirty page (fsync'ed), detaches every VMO, closes the port and the
   * pager. Requests still outstanding then fail with BAD_STATE; none hang.
   */
  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    if (this.flushTimer !== null) clearInterval(this.flushTimer);
    this.unsubscribePressure?.();
    this.unsubscribeLevel?.();
    this.system.stopAging();
    let writebackError: unknown;
    try {
      await this.writebackAll(true);
    } catch (err) {
      writebackError = err;
      this.log.error({ err: (err as Error).message }, 'writeback at shutdown failed; some data was not written');
    }
    for (const file of this.files()) {
      if (file.completed) continue;
      try { this.pager.detachVmo(file.vmo); } catch { /* already detached */ }
    }
    // Let the COMPLETE packets drain so every backing handle is closed.
    await new Promise((r) => setImmediate(r));
    this.port.close();
    this.pager.close();
    await this.server.stopped();
    for (const file of [...this.byKey.values()]) this.complete(file.key);
    if (writebackError !== undefined) throw writebackError;
  }
}
