/**
 * PagerService: what every pager that pagerfs mounts has in common, whatever its files come from.
 *
 * A service owns one kernel pager and one port, a PortServer that hands it page jobs with bounded
 * concurrency, the table of files it has given VMOs (by port key), its counters and fault rules,
 * and the vmtouch-style controls (budget, hints, residency). Subclasses say where files and bytes
 * come from: the directory pager (pager/directory-pager.ts) from a backing directory, the module
 * pager (pager/module-pager.ts) from a pager module's declared files.
 *
 * Request lifecycle (the kernel side is in src/page-request.ts):
 *  1. A reader faults; the kernel queues a READ (or DIRTY) packet {key, offset, length}.
 *  2. PortServer reads it, coalesces it with packets queued behind it, and calls handle(job).
 *  3. handle() applies the fault rules (delay, fail some pages), then answerRead / answerDirty. An
 *     answer that needs no wait (a small read the page cache holds, a DIRTY with room known) is
 *     given before handle() returns; the job then takes no slot and no promise.
 *  4. The answer is supplyPages, opRange(DIRTY) or opRange(FAIL, status); a throw fails the job's
 *     range with ERR_IO (PortServer logs it): no reader is left waiting by a bug.
 *  5. COMPLETE is the last packet of a key: the file leaves the table (onComplete).
 * State: `byKey` holds every file whose VMO is not yet COMPLETE; a file is in it from open() until
 * its COMPLETE packet, and `completed` is set exactly when it leaves.
 */
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import {
  MIN_BUDGET_PAGES, PRESSURE_LEVEL_NAMES, PageResidency, PagerOp, PressureLevel, VmoOp, ZxError, ZxStatus, isZxError, statusName, PAGE_SIZE,
  type Pager, type Port, type ReadMapping, type ResidencyRun, type VmObjectPaged, type VmSystem,
} from '../src/index.js';
import { FaultInjector } from './faults.js';
import { FillGate } from './fill-gate.js';
import { silentLogger } from './log.js';
import { PagerMetrics } from './metrics.js';
import { PortServer, type PageJob, type PageJobHandler } from './port-server.js';
import { ReadaheadState } from './readahead.js';

export interface PagerServiceOptions {
  system: VmSystem;
  logger?: Logger;
  /** READ jobs answered at once (default 4, the libuv thread pool's size; DIRTY jobs read nothing and take no slot). */
  concurrency?: number;
  /** Dirty data older than this is written back (default 5000 ms). */
  writebackDelayMs?: number;
  faults?: FaultInjector;
  /** Log one debug line per page request and its answer. */
  trace?: boolean;
  /** Most of the budget that ALWAYS_NEED (lock) may hold, as a fraction (default 0.5). */
  maxLockedShare?: number;
  /** Largest readahead window in bytes (default 2 MiB; 0 turns readahead off). */
  readaheadMaxBytes?: number;
  /**
   * A job whose answer has not settled after this many ms gives its concurrency slot back (logged
   * and counted as `abandonedJobs`), so a pager that never answers cannot stall other files. The
   * reader's own wait ends with ERR_TIMED_OUT by the VM system's request timeout. Default: never.
   */
  answerTimeoutMs?: number;
}

/** The vmtouch-style hints a file can be given (xattr user.pagerfs.hint and the CLI verbs). */
export const FILE_HINTS = ['dont_need', 'always_need', 'normal', 'commit', 'evict'] as const;
export type FileHint = (typeof FILE_HINTS)[number];

/**
 * A file's pages by state. `dirty` and `locked` overlap (a locked page written to is both): `locked`
 * counts every page ALWAYS_NEED protects, as the stats' lockedBytes do. `absent`: pages the next
 * access must ask the pager for. The runs give each page its most notable state, for strips.
 */
export interface FileResidency {
  pages: number;
  resident: number;
  dirty: number;
  locked: number;
  pinned: number;
  absent: number;
  runs: ResidencyRun[];
}

/** The residency of a file of `sizeBytes` with no page resident (no live VMO). */
export function absentResidency(sizeBytes: number): FileResidency {
  const pages = Math.ceil(sizeBytes / PAGE_SIZE);
  return {
    pages, resident: 0, dirty: 0, locked: 0, pinned: 0, absent: pages,
    runs: pages === 0 ? [] : [{ startPage: 0, endPage: pages, state: PageResidency.Absent }],
  };
}

/** The attributes the filesystem shows for a name (node's Stats has them all). */
export type FileStat = Pick<Stats, 'mode' | 'uid' | 'gid' | 'size' | 'dev' | 'ino' | 'nlink' | 'rdev' | 'atime' | 'mtime' | 'ctime' |
  'mtimeMs' | 'ctimeMs' | 'isFile' | 'isDirectory'>;

/** What statfs reports. */
export interface FileTreeSpace {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
}

/**
 * The namespace a service serves: names, their attributes and listings. Paths are relative to the
 * root, '/'-separated, without a leading slash ('' is the root). Errors are Node-style errors with
 * `code` and negative `errno` (ENOENT, ENOTDIR, …), which the FUSE edge maps to errno.
 */
export interface FileTree {
  /** No name, mode, owner, time or content may change through the mount (EROFS). */
  readonly readOnly: boolean;
  lstat(relPath: string): Promise<FileStat>;
  /** The names in a directory (without '.' and '..'), hidden names left out. */
  readdir(relPath: string): Promise<string[]>;
  readlink(relPath: string): Promise<string>;
  access(relPath: string, mode: number): Promise<void>;
  statfs(): Promise<FileTreeSpace>;
  /**
   * The backing path of a name, for operations passed through to a backing directory (metadata
   * changes, other extended attributes); null when there is no backing directory.
   */
  backingPathOf(relPath: string): string | null;
  /**
   * The backing directory when every name the tree shows is that directory's own name at the same
   * relative path (backingPathOf is then dir + '/' + name), else null; with the top-level names the
   * tree hides. Lets the FUSE edge read the backing directory's metadata where it is asked, without
   * a trip to the pager. Optional: a tree without it is asked for everything. A tree that has it
   * also answers isHidden.
   */
  backingRoot?(): BackingRoot | null;
  /** Whether a name (relative, or with leading '/') is one the tree does not show. */
  isHidden?(relPath: string): boolean;
}

/** What FileTree.backingRoot describes. */
export interface BackingRoot {
  /** Absolute path of the backing directory. */
  readonly dir: string;
  /** Top-level names of the backing directory the tree does not show. */
  readonly hiddenNames: readonly string[];
}

/** "dev:ino": one key per backing inode, so that every name and handle of it share one VMO. */
export function identityOf(st: { dev: number | bigint; ino: number | bigint }): string {
  return `${Number(st.dev)}:${Number(st.ino)}`;
}

/** A Node-style error the FUSE edge turns into errno. */
export function fsError(code: string, errno: number, message: string): Error {
  return Object.assign(new Error(message), { code, errno: -errno });
}

/** Pages a fill is reading for a file now; a job needing them waits on `done` instead of reading them again. */
export interface InFlightRange {
  readonly start: number;
  readonly end: number;
  readonly done: Promise<void>;
}

/** Page runs of [start, end) that the VMO does not hold now. */
export function missingRuns(vmo: VmObjectPaged, start: number, end: number): Array<[number, number]> {
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

/** One served file and its VMO. Subclasses add where its bytes come from. */
export class ServedFile {
  /** Path relative to the root, '/'-separated, no leading slash; updated on rename. */
  relPath: string;
  /** Open handles through the filesystem (plus internal users). */
  opens = 0;
  /**
   * Its identity no longer leads here (the last name was removed, or the backing file changed behind
   * pagerfs's back): later opens make a new VMO; this one is detached at its last close, and its
   * dirty pages are discarded.
   */
  retired = false;
  /** When the oldest not-yet-written-back dirty data appeared (performance.now()), or null. */
  dirtySince: number | null = null;
  /** Set when the VMO's COMPLETE arrived; the file is gone from the service's tables. */
  completed = false;
  /** Page ranges being filled now (requests and readahead); registered by PagerService.inFlight. */
  readonly inFlight: InFlightRange[] = [];
  /** This file's readahead window and marker; planned by PagerService (planReadahead, noteRead). */
  readonly readahead = new ReadaheadState();

  constructor(
    readonly key: number,
    relPath: string,
    readonly identity: string,
    readonly vmo: VmObjectPaged,
    readonly writable: boolean,
  ) {
    this.relPath = relPath;
  }
}

/** Readahead may hold at most this share of the budget at once (1/8). */
const READAHEAD_BUDGET_SHARE = 8;
/**
 * Windows read in the background may grow to this many times --readahead: a fill of one window took
 * longer than a streaming reader needs to consume one (one fault per window measured; with 2x, half
 * as many, and verified reads ~25% faster), so the background read must run further ahead.
 */
const ASYNC_WINDOW_FACTOR = 2;

/** The first page of [start, end) the VMO holds, or `end`. */
export function firstPresent(vmo: VmObjectPaged, start: number, end: number): number {
  let first = end;
  if (end <= start) return first;
  vmo.lookup(start * PAGE_SIZE, (end - start) * PAGE_SIZE, (p) => { if (p < first) first = p; });
  return first;
}

/**
 * Waits in a row in which a request that needs frames saw no progress at all (waitForRoom: nothing
 * written back or supplied) before it fails with NO_SPACE: waits grow to 50 ms, so ~3 s, longer
 * than a budget shrink holds fills back (SHRINK_FILL_WAIT_MS; with 10, ~0.25 s, readers failed
 * while the budget swung). While anything progresses the request keeps waiting, however long (its
 * --request-timeout bounds it).
 */
export const NO_MEMORY_ATTEMPTS = 64;

/** A budget shrink blocked only by dirty or in-flight pages is retried this often, 10 ms apart. */
const SET_BUDGET_ATTEMPTS = 100;
/**
 * How long a budget shrink waits for fills under way before it tries anyway (a backing read that
 * hangs, or a pager module that never answers, must not hold the budget, and every fill, forever).
 */
const SHRINK_FILL_WAIT_MS = 2000;

export abstract class PagerService<F extends ServedFile = ServedFile> implements PageJobHandler {
  readonly system: VmSystem;
  readonly pager: Pager;
  readonly port: Port;
  readonly metrics = new PagerMetrics();
  readonly faults: FaultInjector;
  readonly log: Logger;
  /** Files with a VMO not yet COMPLETE, by port key. */
  protected readonly byKey = new Map<number, F>();
  /** The same files by identity, while they have a name: every name and handle share one VMO. */
  private readonly byIdentity = new Map<string, F>();
  protected nextKey = 1;
  protected shuttingDown = false;
  private readonly server: PortServer;
  /** Tracing: failures per key not yet claimed by the job whose range they fall in (for its `answer`); else null. */
  private readonly traceFailures: Map<number, Array<{ offset: number; end: number; status: string }>> | null;
  private readonly writebackDelayMs: number;
  private flushTimer: ReturnType<typeof setInterval> | null = null;
  private pressureWriteback: Promise<void> | null = null;
  /** The aging writeback pass is running (flushAged): the timer skips a turn instead of piling up. */
  private flushingAged = false;
  /** The one shutdown run (shutdown). */
  private shutdownRun: Promise<void> | null = null;
  private unsubscribePressure: (() => void) | null = null;
  private unsubscribeLevel: (() => void) | null = null;
  /** Fills hold aux frames while they read: a budget shrink holds new ones back and waits for these. */
  private readonly fills = new FillGate();
  /** Budget changes run one at a time, each after the one before. */
  private budgetChanges: Promise<void> = Promise.resolve();
  private readonly maxLockedShare: number;
  private readonly readaheadMaxPages: number;
  /** Pages of locks being placed now (always_need in progress), counted against the locked share. */
  private lockReserved = 0;
  /** The lock under way of each file being locked (a second lock of it waits for that one). */
  private readonly locking = new Map<F, Promise<void>>();

  /** The namespace this service serves. */
  abstract readonly tree: FileTree;

  constructor(options: PagerServiceOptions) {
    this.system = options.system;
    this.log = options.logger ?? silentLogger();
    this.faults = options.faults ?? new FaultInjector();
    this.writebackDelayMs = options.writebackDelayMs ?? 5000;
    this.maxLockedShare = options.maxLockedShare ?? 0.5;
    this.readaheadMaxPages = Math.floor((options.readaheadMaxBytes ?? 2 * 1024 * 1024) / PAGE_SIZE);
    this.traceFailures = options.trace === true ? new Map() : null;
    this.pager = this.system.createPager();
    this.port = this.system.createPort();
    this.server = new PortServer(this.port, this, options.concurrency ?? 4, this.metrics, this.log,
      (key) => this.byKey.get(key)?.relPath ?? `#${key}`, options.trace ?? false, options.answerTimeoutMs);
  }

  // ---------------------------------------------------------------------------------------------
  // What a subclass provides.

  /**
   * Opens (or finds) the VMO of the regular file at `relPath`; Node-style errors for the FUSE edge.
   * `backingStat`: the backing path's lstat made just now by the caller (the FUSE edge gets it from
   * the binding), or null when that lstat failed; a service may use it instead of its own.
   */
  abstract open(relPath: string, backingStat?: FileStat | null): Promise<F>;
  /**
   * Like open, for a file the caller has just created and holds open read-write in `fh`: the
   * service keeps that descriptor (no second open). Optional; undefined: close it and use open.
   */
  openCreated?(relPath: string, fh: FileHandle): Promise<F>;
  /**
   * The file at `relPath` (lstat'ed as `st` just now, a regular file) if it has a live VMO whose
   * pages are that file's content now, else undefined; synchronous and changes nothing: no VMO is
   * made, no idle file let go, no order changed. Lets residency and the hints that only act on
   * resident pages measure a tree without emptying it. Optional; a service without it (module
   * pagers, which never let a VMO go) is measured by opening the file (residencyAt, hintAt).
   */
  liveFileAt?(relPath: string, st: FileStat): F | undefined;
  /**
   * The most closed files kept with their VMO (and pages) now; past it the least recently closed
   * is let go. Optional: a service that never lets a VMO go has no such cap.
   */
  idleFileCap?(): number;
  /** Attributes of an open file (fstat). */
  abstract statFile(file: F): Promise<FileStat>;
  /** Writes back every dirty page of the file (fdatasync with `sync`); throws the backing error. */
  abstract writeback(file: F, sync?: boolean): Promise<void>;
  /** Sets the file's size. */
  abstract truncate(file: F, sizeBytes: number): Promise<void>;
  /** fallocate(2) of an open file (mode as fallocate's). Default: EOPNOTSUPP, no space to reserve. */
  fallocate(_file: F, _mode: number, _offset: number, _length: number): Promise<void> {
    return Promise.reject(fsError('EOPNOTSUPP', 95, 'this pager does not support fallocate'));
  }
  /**
   * Answers a READ job (after the fault rules): supply or fail every page of it. Returns nothing
   * when it answered before returning, else the promise of the answer (see PageJobHandler.handle).
   */
  protected abstract answerRead(file: F, job: PageJob): Promise<void> | void;
  /** Answers a DIRTY job (after the fault rules): opRange(DIRTY) or fail every page of it. Returns as answerRead. */
  protected abstract answerDirty(file: F, job: PageJob): Promise<void> | void;
  /** The file left the table (its COMPLETE arrived): release what it holds. */
  protected onComplete(_file: F): void {}
  /**
   * Reads pages [start, end) of the file in the background (asynchronous readahead, from noteRead):
   * nobody waits on them, and a failure only means they fault later. Default: nothing.
   */
  protected readAhead(_file: F, _start: number, _end: number): void {}

  // ---------------------------------------------------------------------------------------------
  // Lifecycle.

  /** Starts answering requests, the aging writeback and the pressure listeners. */
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

  /** Ends the injected delays now being waited out (fault rules' delay:), at shutdown. */
  private readonly delays = new Set<() => void>();

  /**
   * Shuts down: writes back every dirty page (fsync'ed), detaches every VMO, closes the port and the
   * pager. Requests still outstanding then fail with BAD_STATE; none hang. Rethrows the first
   * writeback error after everything is closed. A second call gets the first call's promise (its
   * writeback too).
   */
  shutdown(): Promise<void> {
    this.shutdownRun ??= this.shutdownNow();
    return this.shutdownRun;
  }

  private async shutdownNow(): Promise<void> {
    try {
      await this.stopServing();
    } finally {
      await this.afterShutdown();
    }
  }

  /** What a subclass lets go of once the service has stopped (also after a failed writeback). */
  protected async afterShutdown(): Promise<void> {}

  private async stopServing(): Promise<void> {
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
    // Let the COMPLETE packets drain so every file lets go of what it holds.
    await new Promise((r) => setImmediate(r));
    this.port.close();
    this.pager.close();
    // Injected delays end now: jobs waiting them out would hold the shutdown up for their length.
    for (const end of [...this.delays]) end();
    await this.server.stopped();
    for (const file of [...this.byKey.values()]) this.complete(file.key);
    if (writebackError !== undefined) throw writebackError;
  }

  /** Files with a VMO now. */
  files(): F[] {
    return [...this.byKey.values()];
  }

  fileByKey(key: number): F | undefined {
    return this.byKey.get(key);
  }

  /** The file with this identity (backing "dev:ino"), if it has a VMO now. */
  fileByIdentity(identity: string): F | undefined {
    const f = this.byIdentity.get(identity);
    return f !== undefined && !f.completed ? f : undefined;
  }

  /** Enters a new file into the tables (its VMO is created, its first open counted). */
  protected register(file: F): void {
    this.byKey.set(file.key, file);
    this.byIdentity.set(file.identity, file);
  }

  /**
   * The file's size may from now on differ from its backing file's (it was opened for writing, or is
   * being truncated): called before the change can happen. The directory pager tells the binding,
   * so that getattr of its names asks the pager. Default: nothing.
   */
  mayResize(_file: F): void {}

  /** The file lost its last name: later opens of the identity make a new VMO. */
  protected unregisterIdentity(file: F): void {
    if (this.byIdentity.get(file.identity) === file) this.byIdentity.delete(file.identity);
  }

  /** Drops one open of the file. At the last close of a retired file its VMO is detached. */
  async release(file: F): Promise<void> {
    file.opens--;
    if (file.opens > 0 || file.completed) return;
    if (file.retired) this.forget(file);
  }

  /**
   * For a handle of `file` (a read at the end of its VMO, an fstat): the file's VMO the handle should
   * move to because the file changed behind the pager (opened once more for the handle; the caller
   * releases `file` when the handle closes), or null to stay; null at once (no promise) when
   * there is nothing to check. Default: null (a pager whose files change only through it).
   */
  revalidate(_file: F): Promise<F | null> | null {
    return null;
  }

  /**
   * pagerfs changed the metadata of the backing inode lstat'ed as `before` (chmod, chown, times, a
   * link, rename or unlink of another name, an extended attribute): its ctime moved, and nothing
   * else. Default: nothing (a pager that does not compare its files' stamps).
   */
  metadataChanged(_before: FileStat): Promise<void> {
    return Promise.resolve();
  }

  /** The backing inode lost its last name: its file is retired (see retire). */
  async unlinked(identity: string): Promise<void> {
    const f = this.fileByIdentity(identity);
    if (f !== undefined) this.retire(f);
  }

  /**
   * Later opens of the file's identity make a new VMO. Its dirty pages will never be written back;
   * the VMO goes at once if no handle is open, else at the last release.
   */
  protected retire(file: F): void {
    file.retired = true;
    this.unregisterIdentity(file);
    if (file.opens === 0) this.forget(file);
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

  /** Detaches the file's VMO and drops it; its dirty pages are discarded. */
  protected forget(file: F): void {
    if (file.completed) return;
    try {
      this.pager.detachVmo(file.vmo);
    } catch {
      // already gone
    }
    file.vmo.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Answering requests (PageJobHandler).

  handle(job: PageJob): Promise<void> | void {
    const file = this.byKey.get(job.key);
    if (file === undefined) {
      this.log.warn({ key: job.key }, 'request for an unknown key; ignored');
      return;
    }
    if (!this.faults.empty) return this.handleWithFaults(file, job);
    // No fault rules (the usual case): the job as it is, answered at once where the pager can.
    const answer = job.command === 'READ' ? this.answerRead(file, job) : this.answerDirty(file, job);
    if (answer === undefined) {
      this.noteAnswer(file, job);
      return;
    }
    return answer.then(() => this.noteAnswer(file, job));
  }

  private async handleWithFaults(file: F, job: PageJob): Promise<void> {
    for (const part of await this.applyFaults(file, job)) {
      if (job.command === 'READ') await this.answerRead(file, part);
      else await this.answerDirty(file, part);
    }
    this.noteAnswer(file, job);
  }

  /** For the trace: how the job was answered. */
  private noteAnswer(file: F, job: PageJob): void {
    if (this.traceFailures !== null) job.answer = this.describeAnswer(file, job);
  }

  /** For the trace: how many of the job's pages the VMO holds now, and the failure status if any. */
  private describeAnswer(file: F, job: PageJob): string {
    const end = Math.min(job.offset + job.length, file.vmo.sizeBytes);
    let held = 0;
    if (end > job.offset) file.vmo.lookup(job.offset, end - job.offset, () => { held++; });
    const total = Math.max(0, end - job.offset) / PAGE_SIZE;
    // The failures this job's range met (jobs of one key may overlap in time, not in range).
    const all = this.traceFailures?.get(job.key) ?? [];
    const mine = all.filter((f) => f.offset < end && job.offset < f.end);
    if (mine.length > 0) this.traceFailures!.set(job.key, all.filter((f) => !mine.includes(f)));
    const failed = mine.length === 0 ? undefined : [...new Set(mine.map((f) => f.status))].join(',');
    const verb = job.command === 'READ' ? 'resident' : 'present (dirty if allowed)';
    return `${held}/${total} pages ${verb}${failed === undefined ? '' : `; failed ${failed}`}`;
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
    this.traceFailures?.delete(key);
    this.unregisterIdentity(file);
    this.onComplete(file);
  }

  /**
   * Supplies pages [startPage, +count) of the file from `aux` (from its page `auxPage`), counted,
   * tolerating a VMO that was detached (nobody waits) or shrank (what still fits) meanwhile.
   */
  protected supply(file: F, startPage: number, count: number, aux: VmObjectPaged, auxPage = 0): void {
    try {
      this.metrics.suppliedPages += this.pager.supplyPages(file.vmo, startPage * PAGE_SIZE, count * PAGE_SIZE, aux, auxPage * PAGE_SIZE);
    } catch (err) {
      if (isZxError(err, ZxStatus.ERR_BAD_STATE)) return; // detached meanwhile: nobody is waiting
      if (isZxError(err, ZxStatus.ERR_OUT_OF_RANGE)) {
        const fits = Math.max(0, file.vmo.sizePages - startPage);
        if (fits > 0 && fits < count) this.supply(file, startPage, fits, aux, auxPage);
        return;
      }
      throw err;
    }
  }

  /** Fails [offset, +length) of the file, tolerating a VMO that was detached or shrank meanwhile. */
  protected failRange(file: F, offset: number, length: number, status: ZxStatus): void {
    const end = Math.min(offset + length, file.vmo.sizeBytes);
    if (end <= offset) return;
    try {
      this.pager.opRange(PagerOp.FAIL, file.vmo, offset, end - offset, status);
      this.metrics.countFailure(statusName(status));
      if (this.traceFailures !== null) {
        const list = this.traceFailures.get(file.key) ?? [];
        // Bounded: failures no job claimed (readahead, a detached file) must not pile up.
        if (list.length >= 64) list.shift();
        list.push({ offset, end, status: statusName(status) });
        this.traceFailures.set(file.key, list);
      }
    } catch (err) {
      if (!isZxError(err, ZxStatus.ERR_BAD_STATE)) throw err;
    }
  }

  /**
   * Applies the fault rules to a job: waits out a delay rule; fails the pages a failing rule covers
   * (a rule with a byte range fails only the pages of the job that range touches); returns the parts
   * of the job still to be answered normally.
   */
  private async applyFaults(file: F, job: PageJob): Promise<PageJob[]> {
    const action = this.faults.match(file.relPath, job.offset, job.length);
    if (action === undefined) return [job];
    this.metrics.injectedFaults++;
    if (action.delayMs > 0) {
      await new Promise<void>((resolve) => {
        const end = (): void => {
          clearTimeout(timer);
          this.delays.delete(end);
          resolve();
        };
        const timer = setTimeout(end, action.delayMs);
        this.delays.add(end);
      });
      // Cut short by shutdown: the VMOs are detached, so the requests have failed already.
      if (this.shuttingDown) return [];
    }
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

  /** A fill that holds its aux frames only within one synchronous step may run now (no budget change waits). */
  protected get fillsOpen(): boolean {
    return this.fills.open;
  }

  /**
   * Runs `fill` while holding aux frames, after any budget change under way: a shrink waits for the
   * fills in progress and holds new ones back, so frames held outside VMOs never block it.
   */
  protected whileFilling<T>(fill: () => Promise<T>): Promise<T> {
    return this.fills.run(fill);
  }

  // ---------------------------------------------------------------------------------------------
  // Readahead policy (each file keeps its own ReadaheadState, pager/readahead.ts; this decides how far).

  /** Counts readahead hits and waste into the metrics (ReadaheadState's account callback). */
  protected readonly countReadahead = (hits: number, waste: number): void => {
    this.metrics.readaheadHitPages += hits;
    this.metrics.readaheadWastePages += waste;
  };

  /**
   * Readahead pages a request may add now: the window cap, a share of the budget, and the pages it
   * may displace. Those are free frames and clean pages of any generation (a stream's own pages,
   * just read, are still in the active generations: counting only the reclaim queues turned
   * readahead off exactly when a reader streamed through a full budget); never dirty, pinned or
   * locked ones. Readahead pages are the newest, so whatever they displace is older.
   */
  protected readaheadPagesAllowed(windowFactor = 1): number {
    if (this.readaheadMaxPages === 0) return 0;
    const s = this.system;
    const displaceable = s.budgetPages - s.dirtyPages - s.pinnedPages - s.lockedPages;
    return Math.max(0, Math.min(windowFactor * this.readaheadMaxPages, Math.floor(s.budgetPages / READAHEAD_BUDGET_SHARE), displaceable));
  }

  /**
   * Where readahead over [from, end) must stop: at the first resident page, the first page a fill
   * is reading now, and the first page a fault rule would fail (its readers must meet the rule, not
   * find the page read ahead).
   */
  protected trimReadahead(file: F, from: number, end: number): number {
    let stop = Math.min(end, firstPresent(file.vmo, from, end));
    for (const r of file.inFlight) if (r.end > from && r.start < stop) stop = Math.max(from, Math.min(stop, r.start));
    const bad = this.faults.firstFailingByte(file.relPath, from * PAGE_SIZE, (stop - from) * PAGE_SIZE);
    if (bad !== undefined) stop = Math.max(from, Math.floor(bad / PAGE_SIZE));
    return stop;
  }

  /** Runs `fill` with [start, end) registered as in flight for the file, so jobs wait instead of re-reading. */
  protected async inFlight<T>(file: F, start: number, end: number, fill: () => Promise<T>): Promise<T> {
    let finish!: () => void;
    const entry: InFlightRange = { start, end, done: new Promise<void>((r) => { finish = r; }) };
    file.inFlight.push(entry);
    try {
      return await fill();
    } finally {
      file.inFlight.splice(file.inFlight.indexOf(entry), 1);
      finish();
    }
  }

  /**
   * If fills in flight cover any of [start, end): waits for them, then returns the runs still
   * missing (maybe none). Returns null, at once, when nothing in flight overlaps.
   */
  protected afterInFlight(file: F, start: number, end: number): Promise<Array<[number, number]>> | null {
    // null at once (no promise, no turn of the microtask queue) in the usual case: nothing in flight.
    if (file.inFlight.length === 0) return null;
    const busy = file.inFlight.filter((r) => r.start < end && start < r.end);
    if (busy.length === 0) return null;
    return Promise.allSettled(busy.map((r) => r.done)).then(() => missingRuns(file.vmo, start, Math.min(end, file.vmo.sizePages)));
  }

  /**
   * Where a fill for a request of pages [startPage, reqEnd) should end: the request plus the
   * readahead window the file's ReadaheadState plans for it, trimmed (>= reqEnd).
   */
  protected planReadahead(file: F, startPage: number, reqEnd: number): number {
    const planned = file.readahead.plan(startPage, reqEnd, this.readaheadPagesAllowed(), this.readaheadLimit(file), this.countReadahead);
    this.publishReadNotify(file);
    return planned > reqEnd ? this.trimReadahead(file, reqEnd, planned) : reqEnd;
  }

  /**
   * The file's read mapping (src/read-mapping.ts) for a reader off the JS thread, attached if need
   * be (a larger one once the file outgrew it), with the readahead marker published in it. Such a
   * reader's reads are not seen by noteRead, except those the mapping sends here (the marker's).
   */
  mapForReading(file: F): ReadMapping {
    const m = file.vmo.attachReadMapping();
    this.publishReadNotify(file);
    return m;
  }

  /** Tells the file's read mapping, if any, which reads must reach noteRead (the armed marker's). */
  private publishReadNotify(file: F): void {
    const m = file.vmo.readMapping;
    if (m !== null) m.setReadNotify(file.readahead.markerPageNow, file.readahead.nextExpectedPage);
  }

  /**
   * The filesystem read [offsetBytes, +lengthBytes) of the file (after any fault was answered): the
   * access stream readahead follows. A read that enters the last window starts the next one
   * (readAhead). Called on the resident read path: two comparisons unless the marker fires.
   */
  noteRead(file: F, offsetBytes: number, lengthBytes: number): void {
    const next = file.readahead.noteRead(Math.floor(offsetBytes / PAGE_SIZE), Math.ceil((offsetBytes + lengthBytes) / PAGE_SIZE));
    if (next < 0) return;
    if (file.completed || this.shuttingDown) {
      this.publishReadNotify(file); // the marker fired: no read needs to come here for it any more
      return;
    }
    const planned = file.readahead.planAhead(next, this.readaheadPagesAllowed(ASYNC_WINDOW_FACTOR), this.readaheadLimit(file), this.countReadahead);
    this.publishReadNotify(file);
    const end = planned > next ? this.trimReadahead(file, next, planned) : next;
    if (end <= next) return;
    this.metrics.asyncReadaheads++;
    this.readAhead(file, next, end);
  }

  /** The page readahead stops at: the end of the file's content. */
  private readaheadLimit(file: F): number {
    return Math.min(Math.ceil(file.vmo.contentSizeBytes / PAGE_SIZE), file.vmo.sizePages);
  }

  // ---------------------------------------------------------------------------------------------
  // Writeback scheduling (the writing itself is the subclass's writeback()).

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
    if (this.flushingAged) return; // a slow store: the last pass is still writing
    this.flushingAged = true;
    try {
      const now = performance.now();
      for (const file of this.files()) {
        if (file.dirtySince !== null && now - file.dirtySince >= this.writebackDelayMs) {
          await this.writeback(file).catch(() => undefined);
        }
      }
    } finally {
      this.flushingAged = false;
    }
  }

  /** Called from inside an allocation (the pressure listener): start on the next microtask. */
  protected startPressureWriteback(): void {
    if (this.pressureWriteback === null) queueMicrotask(() => { void this.writebackForPressure(); });
  }

  /**
   * A request found no free frame: writes dirty pages back (they become reclaimable), waits a
   * little, and returns the stall count to try again with: 0 when something was written back or
   * supplied meanwhile (progress: concurrent requests may take the frames first, and this one tries
   * again), `stalls + 1` when nothing moved, NO_MEMORY_ATTEMPTS - 1 (the last try) once that
   * happened NO_MEMORY_ATTEMPTS - 1 times in a row, or at once when pinned and locked pages fill
   * the budget (waiting cannot help).
   */
  protected async waitForRoom(stalls: number): Promise<number> {
    if (stalls >= NO_MEMORY_ATTEMPTS - 1) return NO_MEMORY_ATTEMPTS - 1;
    if (this.system.pinnedPages + this.system.lockedPages >= this.system.budgetPages) return NO_MEMORY_ATTEMPTS - 1;
    const written = this.metrics.writebackPages;
    const supplied = this.metrics.suppliedPages;
    await this.writebackForPressure();
    await new Promise((r) => setTimeout(r, Math.min(50, 2 ** stalls)));
    // Progress: pages were written back (reclaimable now) or other requests got frames (and will
    // finish, letting their pages go). Frames merely counted available may be held by requests
    // still open, which no eviction may take.
    const moved = this.metrics.writebackPages > written || this.metrics.suppliedPages > supplied;
    return moved ? 0 : stalls + 1;
  }

  /** Memory is short and dirty pages fill it: write back, oldest dirty first. One run at a time. */
  protected writebackForPressure(): Promise<void> {
    this.pressureWriteback ??= (async () => {
      const files = this.files().filter((f) => f.dirtySince !== null)
        .sort((a, b) => (a.dirtySince ?? 0) - (b.dirtySince ?? 0));
      for (const f of files) await this.writeback(f).catch(() => undefined);
    })().finally(() => { this.pressureWriteback = null; });
    return this.pressureWriteback;
  }

  // ---------------------------------------------------------------------------------------------
  // Budget, hints and residency (the vmtouch-style controls).

  /**
   * Changes the memory budget while serving. Changes run one at a time, in the order asked.
   * Growing takes effect at once; shrinking holds new fills back, lets those under way finish (for
   * up to SHRINK_FILL_WAIT_MS), then reclaims clean pages down to the new budget, writing dirty
   * pages back first when they stand in the way. Throws BAD_STATE at once (and keeps the old budget,
   * nothing written back or evicted) when the new budget would leave fewer than MIN_BUDGET_PAGES
   * beside pinned and locked pages and the pages of locks being placed (VmSystem.smallestBudgetPages).
   */
  setBudget(bytes: number): Promise<void> {
    const change = this.budgetChanges.then(() => this.setBudgetNow(bytes));
    this.budgetChanges = change.catch(() => undefined);
    return change;
  }

  private async setBudgetNow(bytes: number): Promise<void> {
    const frames = Math.floor(bytes / PAGE_SIZE);
    if (frames >= this.system.budgetPages) {
      this.system.setBudget(bytes); // growing: nothing is in the way
      this.log.info({ budgetBytes: this.system.budgetBytes }, 'memory budget changed');
      return;
    }
    // Pinned and locked pages stay whatever we do (and so will those of locks being placed): when
    // they would leave faults fewer than MIN_BUDGET_PAGES frames, refuse at once, with nothing
    // written back or evicted (a budget they filled failed every read of an absent page).
    const smallest = this.system.smallestBudgetPages() + this.lockReserved;
    if (frames < smallest) {
      throw new ZxError(ZxStatus.ERR_BAD_STATE,
        `cannot shrink the budget to ${frames} pages: ${smallest - MIN_BUDGET_PAGES} pages are pinned or locked, and faults need ` +
        `${MIN_BUDGET_PAGES} more to read into (smallest budget now: ${smallest} pages)`);
    }
    // Anything else in the way is dirty (write it back) or in flight: fills hold aux frames while
    // they read. Hold new fills back and let running ones finish (for a while), then shrink; retry
    // briefly. Requests raised meanwhile are sized for the new budget already.
    this.system.sizeRequestsFor(bytes);
    try {
      await this.fills.hold(async () => {
        for (let attempt = 0; ; attempt++) {
          try {
            this.system.setBudget(bytes);
            return;
          } catch (err) {
            if (!isZxError(err, ZxStatus.ERR_BAD_STATE) || attempt >= SET_BUDGET_ATTEMPTS) throw err;
            if (attempt === 0) await this.writebackAll().catch(() => undefined);
            else await new Promise((r) => setTimeout(r, 10));
          }
        }
      }, SHRINK_FILL_WAIT_MS);
    } catch (err) {
      this.system.setBudget(this.system.budgetBytes); // given up: the current budget's limits again
      throw err;
    }
    this.log.info({ budgetBytes: this.system.budgetBytes }, 'memory budget changed');
  }

  /**
   * Applies a hint to the whole file: dont_need (first to go), always_need (lock: fault in and keep;
   * refused with NO_MEMORY beyond the locked share of the budget, or when pinned and locked pages
   * would leave fewer than MIN_BUDGET_PAGES of the budget for faults to read into: the rule
   * setBudget keeps from the other side), normal (unlock, pagerfs's
   * RELEASE_ALWAYS_NEED), commit (touch: fault in through the pager), evict (write back, then reclaim
   * the file's clean unlocked pages now). Returns the pages the file has resident afterwards.
   */
  async hint(file: F, hint: FileHint): Promise<number> {
    const vmo = file.vmo;
    const size = vmo.sizeBytes;
    switch (hint) {
      case 'dont_need':
        await vmo.opRange(VmoOp.DONT_NEED, 0, size);
        break;
      case 'always_need': {
        // A lock of this file already under way: the same lock (reserving it twice could refuse it).
        const underway = this.locking.get(file);
        if (underway !== undefined) {
          await underway;
          break;
        }
        // Locks being placed right now count too (reserved), so concurrent locks cannot overshoot.
        const others = this.system.lockedPages - vmo.counters().lockedPages + this.lockReserved;
        const wanted = others + vmo.sizePages;
        const limit = Math.floor(this.system.budgetPages * this.maxLockedShare);
        if (wanted > limit) {
          throw new ZxError(ZxStatus.ERR_NO_MEMORY,
            `locking ${vmo.sizePages} pages would hold ${wanted} locked pages, above ${Math.round(this.maxLockedShare * 100)}% of the budget (${limit} pages)`);
        }
        // Whatever the share (--max-locked 100%), faults keep MIN_BUDGET_PAGES frames to read into.
        const workingLimit = this.system.lockablePages();
        if (wanted > workingLimit) {
          throw new ZxError(ZxStatus.ERR_NO_MEMORY,
            `locking ${vmo.sizePages} pages would hold ${wanted} locked pages, leaving fewer than ${MIN_BUDGET_PAGES} pages of the budget ` +
            `(${this.system.budgetPages} pages, ${this.system.pinnedPages} pinned) for faults to read into: at most ${Math.max(0, workingLimit)} may be locked`);
        }
        this.lockReserved += vmo.sizePages;
        const locking = vmo.opRange(VmoOp.ALWAYS_NEED, 0, size);
        this.locking.set(file, locking);
        try {
          await locking;
        } finally {
          this.lockReserved -= vmo.sizePages;
          this.locking.delete(file);
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

  /**
   * The residency of the regular file at `relPath` (lstat'ed as `st` just now), measured without
   * changing what is resident: a file with no live VMO (never opened, or let go) is all absent at
   * its size, and none is made for it. (Opening it made a VMO and let go of the least recently
   * closed idle file's: `pagerfs residency` over a tree larger than the idle-file cap reported 0
   * for files that were resident, and emptied them as it went.) Without liveFileAt: opens the file.
   */
  async residencyAt(relPath: string, st: FileStat): Promise<FileResidency> {
    if (this.liveFileAt === undefined) return this.whileOpen(relPath, async (f) => this.residency(f));
    const file = this.liveFileAt(relPath, st);
    return file === undefined ? absentResidency(st.size) : this.residency(file);
  }

  /**
   * hint() for the regular file at `relPath` (lstat'ed as `st` just now). The hints that only act
   * on resident pages (evict, dont_need, normal) do nothing to a file with no live VMO and make
   * none (returning 0 resident pages); commit and always_need open it, as they must fault it in.
   * Without liveFileAt: every hint opens the file.
   */
  async hintAt(relPath: string, st: FileStat, hint: FileHint): Promise<number> {
    if (this.liveFileAt !== undefined && (hint === 'evict' || hint === 'dont_need' || hint === 'normal')) {
      const file = this.liveFileAt(relPath, st);
      return file === undefined ? 0 : this.hint(file, hint);
    }
    return this.whileOpen(relPath, (f) => this.hint(f, hint));
  }

  /** Runs `fn` with the file at `relPath` open (counted), released after. */
  private async whileOpen<T>(relPath: string, fn: (file: F) => Promise<T>): Promise<T> {
    const file = await this.open(relPath);
    try {
      return await fn(file);
    } finally {
      await this.release(file);
    }
  }

  /** The file's residency now: page counts by state and the runs (for strips). */
  residency(file: F): FileResidency {
    const vmo = file.vmo;
    const runs = vmo.residencyRuns(0, vmo.sizeBytes);
    // `resident` counts frames (as the stats do); a dirty zero run holds no frame but is dirty.
    const counters = vmo.counters();
    const out: FileResidency = { pages: vmo.sizePages, resident: counters.residentPages, dirty: 0, locked: counters.lockedPages, pinned: 0, absent: 0, runs };
    for (const r of runs) {
      const n = r.endPage - r.startPage;
      if (r.state === PageResidency.Dirty) out.dirty += n;
      if (r.state === PageResidency.Pinned) out.pinned += n;
      if (r.state === PageResidency.Absent) out.absent += n;
    }
    return out;
  }
}
