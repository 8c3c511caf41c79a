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
import fs, { constants as fsc, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  MAX_VMO_SIZE_BYTES, PAGE_SIZE, PagerOp, VmoOptions, WRITEBACK_IS_ZERO, ZxError, ZxStatus, isZxError,
  type VmObjectPaged, type VmoCounters,
} from '../src/index.js';
import { FillGate } from './fill-gate.js';
import type { PageJob } from './port-server.js';
import {
  NO_MEMORY_ATTEMPTS, PagerService, ServedFile, fsError, identityOf, missingRuns,
  type BackingRoot, type FileStat, type FileTree, type FileTreeSpace, type PagerServiceOptions,
} from './service.js';

export interface DirectoryPagerOptions extends PagerServiceOptions {
  /** The backing directory (absolute or relative to the cwd). */
  backingDir: string;
  /**
   * Resolve backing paths relative to the process's working directory, which the constructor sets
   * to the backing root (process.chdir): backingPath() then returns `a/b` instead of `/root/a/b`,
   * so a path of PATH_MAX - 1 bytes below the root still fits in a system call (Node has no
   * openat). Changes the whole process: one such pager per process (the mount daemon), and nothing
   * else may chdir while it runs (backingPath() checks and fails with ERR_BAD_STATE). Default false.
   */
  chdirToRoot?: boolean;
  /**
   * Serve the directory read-only: backing files are opened O_RDONLY and every change through the
   * mount is EROFS (the verified pager). Default false.
   */
  readOnly?: boolean;
  /** Names at the backing root that the mount does not show (besides `.pagerfs`). */
  hiddenNames?: string[];
  /**
   * Reads small backing ranges that the OS page cache holds on this thread, without the thread
   * pool (see CachedRead). The mount passes the patched binding's preadv2(RWF_NOWAIT); without it
   * every backing read goes through the thread pool.
   */
  readCached?: CachedRead;
  /** See ServedInodeNotice. Default: none. */
  servedInodes?: ServedInodeNotice;
  /**
   * fallocate(2) on a backing file descriptor (see BackingFallocate). The mount passes the patched
   * binding's; without it fallocate through the mount is EOPNOTSUPP (Node has no fallocate).
   */
  fallocate?: BackingFallocate;
  /**
   * How old a file's backing stamp may get before a read at the end of its VMO, or an fstat of a
   * handle, checks the backing file again (see revalidate); the mount passes --attr-timeout.
   * Default 1000 ms.
   */
  revalidateMs?: number;
  /**
   * Most files kept with a VMO (and an open backing descriptor) once no handle has them open: past
   * it the least recently released one that holds nothing pagerfs must keep is let go. Default:
   * half the process's open-file limit (RLIMIT_NOFILE), at least 64. The budget lowers it further
   * (see idleFileCap): an idle file costs ~3-8 KiB of the daemon's heap besides its pages.
   */
  maxIdleFiles?: number;
  /**
   * How often idle files are checked for a backing file deleted behind pagerfs (see
   * sweepUnlinkedIdle). Default 5000 ms.
   */
  unlinkedSweepMs?: number;
}

/**
 * Reads what the page cache holds of `fd` at `position` into `views` without ever waiting for I/O,
 * synchronously: returns the bytes read (0 at end of file; fewer than asked when only part is
 * cached), or -errno: -EAGAIN where a read would wait for the disk, -EOPNOTSUPP where the file
 * system cannot tell. Any negative answer sends the read to the thread pool, which reports errors.
 */
export type CachedRead = (fd: number, views: Buffer[], position: number) => number;

/** fallocate(2) on `fd` (mode as fallocate's); cb(null) or a Node-style error (code, errno). */
export type BackingFallocate = (fd: number, mode: number, offset: number, length: number, cb: (err: Error | null) => void) => void;

/** fallocate(2) mode bits (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
/** The fallocate modes pagerfs serves; collapse, insert and unshare are EOPNOTSUPP. */
const FALLOCATE_MODES: ReadonlySet<number> = new Set([
  0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
]);

/**
 * Told when the size of a backing inode becomes the pager's to say (delta 1: it has a VMO that was
 * opened for writing or truncated, so its size may run ahead of or behind the backing file's) and
 * when that ends (-1: the VMO is gone, or the inode lost its last name). Every other attribute of
 * a served file, and every attribute of the rest, is the backing lstat's. The mount passes the
 * patched binding's Fuse.servedInode, which then answers getattr of every other backing name itself.
 */
export type ServedInodeNotice = (dev: number, ino: number, delta: 1 | -1) => void;

/**
 * Largest read tried with CachedRead: a 4 KiB random read costs a syscall instead of two thread
 * wake-ups (cold random reads through a mount: +20%); large reads stay on the pool, where they
 * overlap with the work of this thread.
 */
const CACHED_READ_MAX_BYTES = 64 * 1024;
const EOPNOTSUPP = 95;

/** Most pages read and supplied at once: big enough for few syscalls, small enough to wake readers early. */
const FILL_CHUNK_PAGES = 256;
/** Chunks of one fill under way at once: one being read while the one before is checked and supplied. */
const FILL_PIPELINE_DEPTH = 2;
/** Bytes copied out of dirty pages and written per I/O at writeback: bounded memory, few syscalls. */
const WRITEBACK_PIECE_BYTES = 1024 * 1024;
/** Zeros written per I/O when writing back a zero run. */
const ZERO_CHUNK = 128 * 1024;

/**
 * Bytes a read of `count` pages at `offset` should get from the backing file: up to the end of what
 * both the VMO and the backing file hold (the rest of the pages is zero).
 */
function expectedBytes(file: PagedFile, offset: number, count: number): number {
  return Math.max(0, Math.min(count * PAGE_SIZE, Math.min(file.vmo.contentSizeBytes, file.backingSize) - offset));
}

/** The views cut down to their first `bytes` bytes (readCached reads exactly what is asked). */
function trimViews(views: Buffer[], bytes: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0, left = bytes; i < views.length && left > 0; i++) {
    const v = views[i].length <= left ? views[i] : views[i].subarray(0, left);
    out.push(v);
    left -= v.length;
  }
  return out;
}

/** Zeroes every byte of the views from byte `from` on (the part a short read did not fill). */
function zeroFrom(views: Buffer[], from: number): void {
  let skip = from;
  for (const v of views) {
    if (skip >= v.length) { skip -= v.length; continue; }
    v.fill(0, skip);
    skip = 0;
  }
}

/** The longest of the dirty runs that hold data (not zero runs), in bytes. */
function largestRun(ranges: ReadonlyArray<{ length: number; isZero: boolean }>): number {
  let most = 0;
  for (const r of ranges) if (!r.isZero && r.length > most) most = r.length;
  return most;
}

/** The bytes a backing file's blocks hold, as a prefix: its size, or less where it ends in a hole. */
function allocatedBytes(st: { size: number; blocks: number }): number {
  return Math.min(st.size, st.blocks * 512);
}

/** One backing file and its VMO. */
export class PagedFile extends ServedFile {
  /**
   * The backing file's size as pagerfs last saw or set it. Reads expect bytes up to
   * min(this, VMO content size); the VMO may grow past it before writeback extends the file.
   */
  backingSize = 0;
  /**
   * How far the backing file is taken to hold allocated blocks (for the room check of writes):
   * its allocated bytes when opened, then the end of the data written back. A zero writeback only
   * extends the file's size (a hole, no blocks): pages written there later need room like any past
   * the end. Holes below this are not seen (a write into one may meet ENOSPC only at writeback).
   */
  allocatedEnd = 0;
  /** Page runs known to be zero in the backing file (we extended it with ftruncate). */
  knownZero: Array<{ start: number; end: number }> = [];
  /** Bytes reached the backing file (written or truncated) since its last fdatasync. */
  unsynced = false;
  /** servedInodes was told this file's size may part from the backing file's (and not yet the end). */
  servedNoticed = false;
  /**
   * Opened for writing or truncated through the mount (mayResize): from then on the VMO, not the
   * backing file, is the file's content, and a change of the backing file does not retire it, until
   * the last close finds everything written back (release).
   */
  changedThroughMount = false;
  /** The backing file's size, mtime and ctime when the VMO was made (see stampOf). */
  backingStamp = '';
  /** When backingStamp was last found to match the backing file (performance.now()). */
  stampCheckedAt = 0;

  /** The backing file is known to be `st` now: its stamp, checked this instant. */
  stampFrom(st: FileStat): void {
    this.backingStamp = stampOf(st);
    this.stampCheckedAt = performance.now();
  }
  private lock: Promise<void> = Promise.resolve();
  /**
   * Fills of this file: a fallocate that zeroes a range holds new ones back and waits for those
   * reading now, so no page read from the backing file before the change is supplied after it.
   */
  readonly fills = new FillGate();

  constructor(key: number, relPath: string, identity: string, vmo: VmObjectPaged, readonly fh: FileHandle, writable: boolean) {
    super(key, relPath, identity, vmo, writable);
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

export class DirectoryPager extends PagerService<PagedFile> {
  readonly root: string;
  readonly tree: FileTree;
  private readonly readOnly: boolean;
  /** The small-read fast path, or null; set to null for good when the file system cannot do it. */
  private readCached: CachedRead | null;
  /** Told of each inode whose VMO's size may part from its backing file's (PagedFile.servedNoticed). */
  private readonly servedInodes: ServedInodeNotice | null;
  /** See DirectoryPagerOptions.revalidateMs. */
  private readonly revalidateMs: number;
  /**
   * Files no handle has open, least recently released first. Their VMOs stay as a cache of their
   * pages, and each holds its backing descriptor: at most maxIdleFiles of them (trimIdle).
   */
  private readonly idle = new Set<PagedFile>();
  private readonly maxIdleFiles: number;
  /**
   * The file last opened at each path: a hint only, checked against the path's identity before use
   * (a rename or a replacement behind pagerfs's back makes it miss, never wrong).
   */
  private readonly openedAt = new Map<string, PagedFile>();
  /**
   * The store's free bytes by the last statfs (at most a second old, see hasRoomFor) and
   * `spentBytes` when that statfs was asked for. Free now is taken as freeBytes − (spentBytes −
   * spentAt): what was spent while the statfs ran is subtracted even if it saw it, so the estimate
   * errs low, never high. (Taking the measure as it was let 6.4 MB into 5.2 MB free: writeback had
   * moved bytes out of `promised` after the statfs counted them free.) A refusal is made only on
   * a fresh measure, so erring low costs a statfs, not a false ENOSPC.
   */
  private spaceCache: { at: number; freeBytes: number; spentAt: number } | null = null;
  /**
   * Bytes pagerfs has made the store allocate since it started, counted as they move out of
   * `promised`: written back past a file's allocated end, or fallocated. Only grows.
   */
  private spentBytes = 0;
  /**
   * Files whose content may run past their backing file's end (grown by writes, not yet written
   * back): the room check sums only these, not every file the pager knows. Pruned as it goes.
   */
  private readonly growing = new Set<PagedFile>();
  /**
   * fillCachedNow's aux VMO, made once: that path runs start to end without yielding, so one is
   * enough, and it is empty between uses (in-process, a cold random 4 KiB read went from 13.2-14.6
   * to 11.1-13.4 us with it).
   */
  private smallReadAux: VmObjectPaged | null = null;
  /** chdirToRoot: the working directory as process.cwd() reports it right after the chdir. */
  private readonly cwdRoot: string | null = null;
  /** See DirectoryPagerOptions.fallocate; null: fallocate is EOPNOTSUPP. */
  private readonly fallocateBacking: BackingFallocate | null;
  private readonly unlinkedSweepMs: number;
  private unlinkedSweep: ReturnType<typeof setInterval> | null = null;

  constructor(options: DirectoryPagerOptions) {
    super(options);
    this.root = path.resolve(options.backingDir);
    if (options.chdirToRoot === true) {
      process.chdir(this.root);
      this.cwdRoot = process.cwd();
    }
    this.readOnly = options.readOnly ?? false;
    this.readCached = options.readCached ?? null;
    this.servedInodes = options.servedInodes ?? null;
    this.fallocateBacking = options.fallocate ?? null;
    this.unlinkedSweepMs = options.unlinkedSweepMs ?? 5000;
    this.revalidateMs = options.revalidateMs ?? 1000;
    this.maxIdleFiles = options.maxIdleFiles ?? defaultMaxIdleFiles();
    this.tree = new BackingTree(this, options.hiddenNames ?? [], this.readOnly);
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
   * open(2) of a backing file. Out of descriptors (EMFILE, ENFILE: the process or the system limit),
   * lets go of half the idle files and tries once more.
   */
  private async openBacking(full: string, flags: number): Promise<FileHandle> {
    try {
      return await fsp.open(full, flags);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'EMFILE' && code !== 'ENFILE') || this.idle.size === 0) throw err;
      const closes = this.trimIdle(Math.ceil(this.idle.size / 2));
      this.log.warn({ code, released: closes.length }, 'out of file descriptors: let go of idle files');
      await Promise.all(closes);
      return fsp.open(full, flags);
    }
  }

  /**
   * Opens (or finds) the VMO of the regular file at `relPath`. Hard links share one VMO. Node fs
   * errors (ENOENT, EACCES, …) are thrown as they are, for the caller to hand on as errno.
   */
  async open(relPath: string, backingStat?: FileStat | null): Promise<PagedFile> {
    if (this.shuttingDown) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the pager is shutting down');
    const full = this.backingPath(relPath);
    const rel = relPath.replace(/^\/+/, '');
    // A file opened here before and still served: one lstat shows the path still names it, where
    // opening the path again only to find the same inode took three trips to the thread pool. The
    // caller's lstat, made just now, serves as well (a mount's: no trip to the pool at all).
    const known = this.openedAt.get(rel);
    if (known !== undefined) {
      const st = backingStat !== undefined ? backingStat : await lstatPath(full).catch(() => null);
      if (st !== null && st.isFile() && identityOf(st) === known.identity && this.fileByIdentity(known.identity) === known &&
        !this.changedBehind(known, st)) {
        return this.reopened(known);
      }
      this.openedAt.delete(rel);
    }
    return this.remember(rel, await this.openPath(rel, full));
  }

  /**
   * See PagerService.liveFileAt: the file with the identity `st` names, unless its backing file
   * changed behind pagerfs (the next open retires that VMO and reads the new bytes, so none of its
   * pages is this file's content). Reads no disk; touches neither the idle order nor openedAt.
   */
  override liveFileAt(_relPath: string, st: FileStat): PagedFile | undefined {
    const file = this.fileByIdentity(identityOf(st));
    if (file === undefined || file.retired) return undefined;
    return file.changedThroughMount || stampOf(st) === file.backingStamp ? file : undefined;
  }

  /** See PagerService.openCreated: the new file's VMO over the descriptor its creator opened. */
  override async openCreated(relPath: string, fh: FileHandle): Promise<PagedFile> {
    if (this.shuttingDown) {
      await fh.close();
      throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the pager is shutting down');
    }
    const rel = relPath.replace(/^\/+/, '');
    return this.remember(rel, await this.openPath(rel, this.backingPath(relPath), fh));
  }

  /** The path a file was opened by, so that its next open there needs one lstat at most. */
  private remember(rel: string, file: PagedFile): PagedFile {
    if (this.openedAt.size > 2 * this.byKey.size + 1024) this.openedAt.clear(); // stale aliases: start over
    this.openedAt.set(rel, file);
    return file;
  }

  /** One more open of a file that has a VMO: it is no longer idle. */
  private reopened(file: PagedFile): PagedFile {
    file.opens++;
    this.idle.delete(file);
    return file;
  }

  /** The VMO's size may now part from the backing file's: the binding must ask us for its attributes. */
  override mayResize(file: PagedFile): void {
    file.changedThroughMount = true;
    if (this.servedInodes !== null && !file.servedNoticed && !file.completed) this.noticeServed(file, 1);
  }

  /**
   * The last close of a file changed through the mount hands it back to its backing file once
   * everything reached it (no dirty page, the sizes equal): the backing stamp is taken then, so a
   * later change made outside shows at the next open again. The flush before this release wrote it
   * back; a file still dirty (a failed writeback) stays pagerfs's own.
   */
  override async release(file: PagedFile): Promise<void> {
    await super.release(file);
    if (file.opens === 0 && !file.retired && !file.completed) {
      this.idle.delete(file); // to the most recent end
      this.idle.add(file);
      const cap = this.idleFileCap();
      if (this.idle.size > cap) this.trimIdle(this.idle.size - cap);
    }
    if (!this.canLetGo(file)) return;
    await file.withLock(async () => {
      if (!this.canLetGo(file)) return;
      const st = await file.fh.stat();
      // Reopened or written meanwhile (the checks again, after the await), or sizes apart: keep it.
      if (!this.canLetGo(file) || st.size !== file.vmo.contentSizeBytes) return;
      file.stampFrom(st);
      file.backingSize = st.size;
      file.allocatedEnd = allocatedBytes(st);
      file.changedThroughMount = false;
      if (file.servedNoticed) this.noticeServed(file, -1);
    }).catch((err: unknown) => this.log.debug({ path: file.relPath, err: (err as Error).message }, 'could not stat the backing file at the last close'));
  }

  private canLetGo(file: PagedFile): boolean {
    return file.changedThroughMount && file.opens === 0 && !file.retired && !file.completed && !this.shuttingDown &&
      file.backingSize === file.vmo.contentSizeBytes && unwrittenPages(file.vmo.counters()) === 0;
  }

  /**
   * Close-to-open consistency, as over NFS, for a file pagerfs has only read: an open that finds its
   * backing file's size, mtime or ctime changed since the VMO was made (someone wrote it directly
   * in the backing directory) retires that VMO, so the open gets a new one and reads the new bytes.
   * Handles open now keep the old view until they close. A file changed through the mount is
   * pagerfs's own (its VMO is what the backing file is becoming) until its last close lets it go.
   * Returns whether `file` was retired.
   */
  private changedBehind(file: PagedFile, st: FileStat): boolean {
    if (file.changedThroughMount) return false;
    if (stampOf(st) === file.backingStamp) {
      file.stampCheckedAt = performance.now();
      return false;
    }
    this.log.debug({ path: file.relPath, was: file.backingStamp, now: stampOf(st) }, 'backing file changed behind pagerfs: new VMO for new opens');
    this.retire(file);
    return true;
  }

  /**
   * pagerfs's own metadata change moved the backing ctime (see PagerService.metadataChanged): a VMO
   * that matched the file just before takes its new stamp, so the next open shares it with the
   * handles open now. (Retired instead, as for a change made outside, a reader open before a chmod
   * kept reading the old VMO and never saw what a writer opened after it wrote through the mount.)
   * A file whose size moved meanwhile is left to the next open's check.
   */
  override async metadataChanged(before: FileStat): Promise<void> {
    const file = this.fileByIdentity(identityOf(before));
    if (file === undefined || file.retired || file.completed || stampOf(before) !== file.backingStamp) return;
    const st = await file.fh.stat();
    if (file.retired || file.completed || stampOf(before) !== file.backingStamp) return;
    if (identityOf(st) !== file.identity || st.size !== before.size) return;
    file.stampFrom(st);
  }

  /**
   * How many idle files to keep: maxIdleFiles (descriptors), and no more than a quarter of the
   * budget's pages (at least 64), so that their metadata stays small beside the budget: 1,024
   * files for 16 MiB (measured ~7.5 KiB of RSS each with their heap slack), 10,000 (the fd bound
   * here) from 160 MiB up.
   */
  override idleFileCap(): number {
    return Math.min(this.maxIdleFiles, Math.max(64, this.system.budgetPages >> 2));
  }

  /**
   * Lets go of up to `count` idle files, least recently released first, that hold nothing pagerfs
   * must keep (dirty, pinned or locked pages, fills in flight): their VMOs are detached and their
   * backing descriptors closed now. Returns the closes, for a caller that needs the descriptors.
   */
  private trimIdle(count: number): Promise<void>[] {
    const closes: Promise<void>[] = [];
    for (const f of this.idle) {
      if (closes.length >= count) break;
      if (this.mayLetGoIdle(f)) closes.push(this.letGoIdle(f));
    }
    return closes;
  }

  /**
   * Whether idle `f` holds nothing pagerfs must keep (dirty, pinned or locked pages, fills in
   * flight). One that is not idle any more (reopened, retired, completed) leaves the idle set here.
   */
  private mayLetGoIdle(f: PagedFile): boolean {
    if (f.opens > 0 || f.retired || f.completed) {
      this.idle.delete(f);
      return false;
    }
    if (f.inFlight.length > 0) return false;
    const c = f.vmo.counters();
    return unwrittenPages(c) + c.pinnedPages + c.lockedPages === 0;
  }

  /** Detaches idle `f`'s VMO and closes its backing descriptor now (onComplete closes it too, later: harmless). */
  private letGoIdle(f: PagedFile): Promise<void> {
    this.idle.delete(f);
    this.retire(f);
    return f.fh.close().catch(() => undefined);
  }

  /**
   * A handle of a file pagerfs only reads follows its backing file between opens too, as over NFS
   * once the attribute cache expires: when the handle reads at the end of its VMO or is fstat'ed,
   * and the file's stamp is older than revalidateMs, the backing file is checked through the
   * handle's own descriptor (the same inode, whatever its name is now). If it changed, the file's
   * current VMO is returned, opened once more for the handle, which moves to it (the caller
   * releases the old one when the handle closes). `tail -f` of a log written directly in the
   * backing directory then sees the new lines. Returns null when nothing changed or the file is pagerfs's own.
   */
  override revalidate(file: PagedFile): Promise<PagedFile | null> | null {
    if (file.changedThroughMount || file.completed || this.shuttingDown) return null;
    if (!file.retired && performance.now() - file.stampCheckedAt < this.revalidateMs) return null;
    return this.revalidateNow(file);
  }

  private async revalidateNow(file: PagedFile): Promise<PagedFile | null> {
    let st: FileStat;
    try {
      st = await file.fh.stat();
    } catch {
      return null;
    }
    if (file.changedThroughMount || file.completed) return null;
    if (!file.retired && !this.changedBehind(file, st)) return null;
    const current = this.fileByIdentity(file.identity);
    if (current !== undefined && current !== file && !this.changedBehind(current, st)) return this.reopened(current);
    const next = await this.open(file.relPath).catch(() => null);
    if (next === null) return null;
    if (next.identity !== file.identity) { // the name leads elsewhere now: stay with the old view
      await this.release(next);
      return null;
    }
    return next;
  }

  protected override unregisterIdentity(file: PagedFile): void {
    super.unregisterIdentity(file);
    if (file.servedNoticed) this.noticeServed(file, -1);
  }

  /** Tells servedInodes about the file's inode (its identity is "dev:ino"); servedNoticed follows. */
  private noticeServed(file: PagedFile, delta: 1 | -1): void {
    const [dev, ino] = file.identity.split(':').map(Number);
    this.servedInodes!(dev, ino, delta);
    file.servedNoticed = delta === 1;
  }

  /**
   * Opens the file at `rel` (no leading slash; `full` is its backing path) and finds or makes its
   * VMO. `opened`: a read-write descriptor of the file already open (openCreated), kept instead.
   */
  private async openPath(rel: string, full: string, opened?: FileHandle): Promise<PagedFile> {
    let fh: FileHandle;
    let writable = !this.readOnly;
    if (opened !== undefined) {
      fh = opened;
    } else {
      try {
        fh = await this.openBacking(full, (writable ? fsc.O_RDWR : fsc.O_RDONLY) | fsc.O_NOFOLLOW);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (!writable || (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM')) throw err;
        fh = await this.openBacking(full, fsc.O_RDONLY | fsc.O_NOFOLLOW);
        writable = false;
      }
    }
    let st;
    try {
      // fstat of the descriptor just opened, on this thread: the open has just brought the inode
      // (or, over NFS, fresh attributes) into memory, so it cannot wait on I/O; ~1 us against
      // ~20 us for fh.stat()'s round trip through the thread pool.
      st = fs.fstatSync(fh.fd);
    } catch (err) {
      await fh.close();
      throw err;
    }
    if (!st.isFile()) {
      await fh.close();
      throw Object.assign(new Error(`"${rel}" is not a regular file`), { code: 'EINVAL', errno: -22 });
    }
    const identity = identityOf(st);
    const existing = this.fileByIdentity(identity);
    if (existing !== undefined && !this.changedBehind(existing, st)) {
      // Counted open before the await: meanwhile an idle trim or a retire could let it go.
      const file = this.reopened(existing);
      await fh.close().catch(() => undefined);
      return file;
    }
    const key = this.nextKey++;
    let vmo: VmObjectPaged;
    try {
      vmo = this.pager.createVmo(VmoOptions.RESIZABLE | VmoOptions.TRAP_DIRTY, this.port, key, st.size);
    } catch (err) {
      await fh.close(); // too large for a VMO, or the pager closed: the descriptor must not stay behind
      if (isZxError(err, ZxStatus.ERR_OUT_OF_RANGE)) throw fsError('EFBIG', 27, `"${rel}" is larger than a VMO can be (${st.size} bytes)`);
      throw err;
    }
    vmo.name = path.posix.basename(rel);
    const file = new PagedFile(key, rel, identity, vmo, fh, writable);
    file.backingSize = st.size;
    file.allocatedEnd = allocatedBytes(st);
    file.stampFrom(st);
    try {
      await this.opened(file);
    } catch (err) {
      this.pager.detachVmo(vmo);
      vmo.close();
      await fh.close();
      throw err;
    }
    // Another open of the same inode may have registered it meanwhile (opened() awaits in the
    // verified pager): one VMO per inode, so take that one.
    const raced = this.fileByIdentity(identity);
    if (raced !== undefined && !raced.retired && !raced.completed) {
      this.pager.detachVmo(vmo);
      vmo.close();
      const other = this.reopened(raced);
      await fh.close().catch(() => undefined);
      return other;
    }
    file.opens = 1;
    this.register(file);
    return file;
  }

  // ---------------------------------------------------------------------------------------------
  // Answering requests.

  /** A new file's VMO was created; a subclass may refuse it (the error reaches open's caller). */
  protected async opened(_file: PagedFile): Promise<void> {}

  protected override onComplete(file: PagedFile): void {
    this.idle.delete(file);
    if (this.openedAt.get(file.relPath) === file) this.openedAt.delete(file.relPath);
    void file.fh.close().catch(() => undefined);
  }

  override start(): void {
    super.start();
    this.unlinkedSweep = setInterval(() => this.sweepUnlinkedIdle(), this.unlinkedSweepMs);
    this.unlinkedSweep.unref();
  }

  protected override async afterShutdown(): Promise<void> {
    if (this.unlinkedSweep !== null) clearInterval(this.unlinkedSweep);
    this.smallReadAux?.close();
    this.smallReadAux = null;
  }

  /**
   * Lets go of idle files whose backing file lost its last name behind pagerfs (an rm, or a rename
   * over it, in the backing directory): the descriptor an idle file keeps would hold the deleted
   * file's space until the idle cap or the unmount reached it (a 300 MB file deleted outside stayed
   * allocated). Files with unwritten, pinned or locked pages or fills in flight stay. One fstat per
   * idle file on this thread (~1 us: the inode is in memory).
   */
  private sweepUnlinkedIdle(): void {
    for (const f of [...this.idle]) {
      if (!this.mayLetGoIdle(f)) continue;
      let nlink: number;
      try {
        nlink = fs.fstatSync(f.fh.fd).nlink;
      } catch {
        continue;
      }
      if (nlink === 0) void this.letGoIdle(f);
    }
  }

  statFile(file: PagedFile): Promise<FileStat> {
    return file.fh.stat();
  }

  /** Answered before it returns when fillCachedNow can (the small cold read): no promise at all. */
  protected answerRead(file: PagedFile, job: PageJob): Promise<void> | void {
    const vmo = file.vmo;
    const startPage = job.offset / PAGE_SIZE;
    const reqEnd = Math.min((job.offset + job.length) / PAGE_SIZE, vmo.sizePages);
    if (reqEnd <= startPage) return; // the VMO shrank under the request; the kernel retried its waiters
    // Another job may be reading some of these pages now (typically as readahead): wait for it
    // rather than read them twice, then read only what is still missing.
    const waiting = this.afterInFlight(file, startPage, reqEnd);
    if (waiting !== null) {
      return waiting.then(async (missing) => {
        for (const [s0, e0] of missing) await this.fillRange(file, s0, e0, e0);
      });
    }
    const endPage = this.planReadahead(file, startPage, reqEnd);
    const counted = (): void => { if (endPage > reqEnd) this.metrics.readaheadPages += endPage - reqEnd; };
    if (this.fillCachedNow(file, startPage, endPage)) return counted();
    return this.fillRange(file, startPage, reqEnd, endPage).then(counted);
  }

  /**
   * The common small cold read, answered in one synchronous step: pages [startPage, endPage) (at
   * most CACHED_READ_MAX_BYTES) read with readCached into an aux VMO and supplied, with no promise,
   * no in-flight entry (nothing can run in between) and no trip to the pool. Returns false, having
   * changed nothing, whenever the general path is needed: no readCached, pages to check
   * (verifiesPages), a budget change waiting, too few free frames, or bytes not all in the cache.
   */
  private fillCachedNow(file: PagedFile, startPage: number, endPage: number): boolean {
    const count = endPage - startPage;
    if (this.readCached === null || this.verifiesPages() || !this.fillsOpen || !file.fills.open ||
      count * PAGE_SIZE > CACHED_READ_MAX_BYTES || this.system.availableFrames < count) return false;
    const offset = startPage * PAGE_SIZE;
    const expected = expectedBytes(file, offset, count);
    if (expected === 0) return false;
    const aux = (this.smallReadAux ??= this.system.createVmo(CACHED_READ_MAX_BYTES));
    try {
      const views = aux.mapPages(0, count * PAGE_SIZE, { zeroFill: false });
      const got = this.readCachedInto(file, trimViews(views, expected), offset, expected);
      if (got !== expected) return false; // not all cached, or the file got shorter: the general path says how
      this.metrics.backingReads++;
      this.metrics.backingReadBytes += got;
      zeroFrom(views, got);
      this.supply(file, startPage, count, aux, 0);
      return true;
    } catch (err) {
      if (err instanceof ZxError) return false; // no frames after all, or the VMO changed: the general path answers
      throw err;
    } finally {
      if (aux.pages.size > 0) aux.decommitRange(0, aux.sizeBytes); // what a supply did not take
    }
  }

  /** Whether filled pages are checked before they are supplied (checkPages); the verified pager's are. */
  protected verifiesPages(): boolean {
    return false;
  }

  protected override readAhead(file: PagedFile, start: number, end: number): void {
    this.fillRange(file, start, start, end).then(
      () => { this.metrics.readaheadPages += end - start; },
      (err: unknown) => this.log.debug({ path: file.relPath, err: (err as Error).message }, 'asynchronous readahead failed'),
    );
  }

  /**
   * Reads and supplies [startPage, endPage), of which [startPage, reqEnd) is required (failures there
   * are answered with FAIL) and the rest optional readahead. Registered as in flight meanwhile, so a
   * job needing these pages waits for this one instead of reading them again.
   */
  private fillRange(file: PagedFile, startPage: number, reqEnd: number, endPage: number): Promise<void> {
    // A budget change waits for whole fills, not chunks: pages a request has been supplied cannot
    // be evicted until all of it is, so holding its later chunks back would strand them.
    return this.inFlight(file, startPage, endPage, () => this.whileFilling(() => this.fillRangeNow(file, startPage, reqEnd, endPage)));
  }

  private async fillRangeNow(file: PagedFile, startPage: number, reqEnd: number, endPage: number, attempt = 0): Promise<void> {
    // Fill in chunks no larger than memory allows: a request may be larger than the whole budget,
    // and readers wake as each chunk is supplied (the kernel accepts partial supplies). Up to
    // FILL_PIPELINE_DEPTH chunks are under way at once, so the next chunk's read overlaps this
    // one's check and supply. A chunk that stops the job stops it after the chunks already started.
    const mayRetry = attempt < NO_MEMORY_ATTEMPTS - 1; // the last try fails what finds no frame
    let pos = startPage;
    let shortAt = -1; // the first required page found no frame (other writers hold them dirty)
    const shortOfMemory = (at: number): void => { if (shortAt < 0 || at < shortAt) shortAt = at; };
    const started: Array<Promise<'next' | 'stop'>> = [];
    while (pos < endPage) {
      if (started.length >= FILL_PIPELINE_DEPTH && (await started.shift()!) === 'stop') break;
      const inRequired = pos < reqEnd;
      let room = this.system.availableFrames;
      if (room === 0 && inRequired) {
        await Promise.all(started); // their frames become the VMO's, reclaimable
        await this.writebackForPressure();
        room = this.system.availableFrames;
      }
      if (room === 0) {
        if (!inRequired) break; // readahead is optional: stop quietly
        if (mayRetry) {
          shortOfMemory(pos);
          break;
        }
        this.log.warn({ path: file.relPath, offset: pos * PAGE_SIZE }, 'memory budget full of dirty or pinned pages; failing the read');
        this.failRange(file, pos * PAGE_SIZE, (reqEnd - pos) * PAGE_SIZE, ZxStatus.ERR_NO_SPACE);
        break;
      }
      const count = Math.min(endPage - pos, FILL_CHUNK_PAGES, room);
      const at = pos;
      const chunk = this.fillChunk(file, at, count, reqEnd, mayRetry).then((r) => {
        if (r !== 'no-memory') return r;
        shortOfMemory(at);
        return 'stop';
      });
      chunk.catch(() => undefined); // awaited below; a rejection meanwhile must not count as unhandled
      started.push(chunk);
      pos += count;
    }
    await Promise.all(started);
    if (shortAt >= 0) {
      // Frames ran out under other writers, whose dirty pages fill the budget: wait for room and
      // fill what the request still misses (the last try fails it with NO_SPACE).
      const next = await this.waitForRoom(attempt);
      const end = Math.min(reqEnd, file.vmo.sizePages);
      for (const [s, e] of missingRuns(file.vmo, shortAt, end)) await this.fillRangeNow(file, s, e, e, next);
    }
  }

  /**
   * Reads pages [pos, pos + count) into an aux VMO and supplies them. Failures of the required part
   * (pages below reqEnd) are answered with FAIL; returns 'stop' when the job is answered for good.
   */
  private fillChunk(file: PagedFile, pos: number, count: number, reqEnd: number, retryNoMemory: boolean): Promise<'next' | 'stop' | 'no-memory'> {
    return file.fills.run(() => this.fillChunkNow(file, pos, count, reqEnd, retryNoMemory));
  }

  /** `retryNoMemory`: with no frame for a required page, return 'no-memory' (the caller retries) instead of failing it. */
  private async fillChunkNow(file: PagedFile, pos: number, count: number, reqEnd: number, retryNoMemory: boolean): Promise<'next' | 'stop' | 'no-memory'> {
    const offset = pos * PAGE_SIZE;
    const failRequired = (status: ZxStatus): 'stop' => {
      if (pos < reqEnd) this.failRange(file, offset, (reqEnd - pos) * PAGE_SIZE, status);
      return 'stop';
    };
    const aux = this.system.createVmo(count * PAGE_SIZE);
    try {
      // Frames are not zeroed first: the read overwrites them and zeroTail clears the rest.
      const views = aux.mapPages(0, count * PAGE_SIZE, { zeroFill: false });
      let expected = expectedBytes(file, offset, count);
      const got = await this.readInto(file, views, offset, expected);
      zeroFrom(views, got);
      // A truncate while the read was under way may have made the file shorter: what counts as
      // missing is measured against its size now (pages past the new end are not supplied anyway).
      if (got < expected) expected = Math.min(expected, expectedBytes(file, offset, count));
      let goodPages = count;
      if (got < expected) {
        // The backing file is shorter than pagerfs knew (changed behind its back): supply only the
        // whole pages that arrived, never zeros in place of missing bytes; fail the required rest.
        goodPages = Math.floor(got / PAGE_SIZE);
        this.log.warn({ path: file.relPath, offset, expected, got },
          'backing file shorter than expected (changed behind pagerfs); failing the missing pages');
      }
      // Pages that fail their check are never supplied: their required part fails with
      // IO_DATA_INTEGRITY, and the good runs between them are supplied.
      const checked = goodPages > 0 ? this.checkPages(file, pos, goodPages, views) : [];
      const bad = Array.isArray(checked) ? checked : await checked;
      let from = 0;
      for (const b of [...bad, goodPages]) {
        if (b > from) this.supply(file, pos + from, b - from, aux, from);
        if (b < goodPages && pos + b < reqEnd) this.failRange(file, (pos + b) * PAGE_SIZE, PAGE_SIZE, ZxStatus.ERR_IO_DATA_INTEGRITY);
        from = b + 1;
      }
      if (goodPages < count) {
        const failFrom = pos + goodPages;
        if (failFrom < reqEnd) this.failRange(file, failFrom * PAGE_SIZE, (reqEnd - failFrom) * PAGE_SIZE, ZxStatus.ERR_IO_DATA_INTEGRITY);
        return 'stop';
      }
      return 'next';
    } catch (err) {
      if (isZxError(err, ZxStatus.ERR_NO_MEMORY)) {
        if (pos >= reqEnd) return 'stop'; // readahead only: dropped, nobody waits for it
        if (retryNoMemory) return 'no-memory';
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

  /** A small read served by readCached (counted), or null: read on the thread pool instead. */
  private readCachedInto(file: PagedFile, iov: Buffer[], position: number, bytes: number): number | null {
    if (this.readCached === null || bytes > CACHED_READ_MAX_BYTES) return null;
    const n = this.readCached(file.fh.fd, iov, position);
    if (n >= 0) {
      this.metrics.cachedBackingReads++;
      return n;
    }
    if (n === -EOPNOTSUPP) {
      // The backing file system cannot read without blocking (tmpfs before Linux 6.6, ...): it
      // will answer every later call the same way.
      this.readCached = null;
      this.log.debug({ path: file.relPath }, 'the backing file system has no non-blocking reads; reading on the thread pool');
    }
    return null; // EAGAIN (not cached) or an error, which the thread pool's read reports
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
      const bytesRead = this.readCachedInto(file, iov, position + got, expected - got) ?? (await file.fh.readv(iov, position + got)).bytesRead;
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

  /**
   * Checks pages [pos, pos + count) just read into `views` (whole frames; bytes past the end of the
   * file are zero) before they are supplied; returns the indices (0-based, ascending, below
   * `count`) of pages that must not be supplied. The directory pager trusts its backing files:
   * none. The verified pager checks each page against its hash tree.
   */
  protected checkPages(_file: PagedFile, _pos: number, _count: number, _views: Buffer[]): Promise<number[]> | number[] {
    return [];
  }

  /** Answered before it returns unless a statfs is due (a second old, or before a refusal) or the budget is full of dirty pages. */
  protected answerDirty(file: PagedFile, job: PageJob): Promise<void> | void {
    const end = Math.min(job.offset + job.length, file.vmo.sizeBytes);
    if (end <= job.offset) return;
    if (!file.writable) {
      this.failRange(file, job.offset, end - job.offset, ZxStatus.ERR_BAD_STATE);
      return;
    }
    // Only bytes past the backing file's end take new space; overwriting existing bytes does not.
    if (file.vmo.contentSizeBytes > file.allocatedEnd) this.growing.add(file);
    const room = this.hasRoomFor(Math.max(0, end - Math.max(job.offset, file.allocatedEnd)));
    if (room === true) return this.dirtyWithRoom(file, job, end, 0);
    if (room === false) return this.refuseNoSpace(file, job, end);
    return room.then((ok) => (ok ? this.dirtyWithRoom(file, job, end, 0) : this.refuseNoSpace(file, job, end)));
  }

  private refuseNoSpace(file: PagedFile, job: PageJob, end: number): void {
    this.log.warn({ path: file.relPath, offset: job.offset, length: job.length }, 'backing filesystem is full; refusing to dirty pages');
    this.failRange(file, job.offset, end - job.offset, ZxStatus.ERR_NO_SPACE);
  }

  /**
   * opRange(DIRTY) for the job. When dirtying zero pages finds no frame, waits for room (see
   * waitForRoom) and tries again; `stalls` counts the waits in a row that saw no progress.
   */
  private dirtyWithRoom(file: PagedFile, job: PageJob, end: number, stalls: number): Promise<void> | void {
    // A truncate may have cut the file below the job since it came: its writers were retried then.
    const stop = Math.min(end, file.vmo.sizeBytes);
    if (stop <= job.offset) return;
    try {
      this.markDirty(file, job.offset, stop);
    } catch (err) {
      // BAD_STATE: detached. OUT_OF_RANGE: shrank. Neither leaves anyone waiting.
      if (isZxError(err, ZxStatus.ERR_BAD_STATE) || isZxError(err, ZxStatus.ERR_OUT_OF_RANGE)) return;
      if (!isZxError(err, ZxStatus.ERR_NO_MEMORY)) throw err;
      return this.waitForRoom(stalls).then((next) => {
        if (next < NO_MEMORY_ATTEMPTS - 1) return this.dirtyWithRoom(file, job, end, next);
        this.log.warn({ path: file.relPath, offset: job.offset }, 'memory budget full of dirty or pinned pages; refusing the write');
        this.failRange(file, job.offset, end - job.offset, ZxStatus.ERR_NO_SPACE);
      });
    }
    // Keep dirty data below half the budget: start writing back early, as Linux's dirty ratio does,
    // so writers rarely meet a budget full of dirty pages.
    if (this.system.dirtyPages * 2 > this.system.budgetPages) this.startPressureWriteback();
  }

  /**
   * opRange(DIRTY) over [offset, end). NOT_FOUND means some page there is neither present nor a zero
   * run any more: writeback turned a dirty zero run into a gap before we answered (the kernel already
   * resolved those pages, their writer retries with a READ). The other pages of the request still
   * wait for this answer, so they are dirtied one by one, skipping the gaps. NO_MEMORY (no frame for
   * a zero page) is thrown after the pages that could be dirtied were.
   */
  private markDirty(file: PagedFile, offset: number, end: number): void {
    // Set first: pages dirtied before a NO_MEMORY below must age, and pressure writeback find them.
    file.dirtySince ??= performance.now();
    try {
      this.pager.opRange(PagerOp.DIRTY, file.vmo, offset, end - offset);
      return;
    } catch (err) {
      if (!isZxError(err, ZxStatus.ERR_NOT_FOUND) && !isZxError(err, ZxStatus.ERR_NO_MEMORY)) throw err;
    }
    // Page by page. Without frames for its zero pages the request still dirties its present pages
    // now: kept clean while it waits, they would be held from eviction (awaiting this answer) and
    // could not be written back either, and a budget full of such pages waits for itself.
    let noMemory: unknown = null;
    for (let at = offset; at < end; at += PAGE_SIZE) {
      try {
        this.pager.opRange(PagerOp.DIRTY, file.vmo, at, PAGE_SIZE);
      } catch (err) {
        if (isZxError(err, ZxStatus.ERR_NO_MEMORY)) noMemory = err;
        else if (!isZxError(err, ZxStatus.ERR_NOT_FOUND)) throw err;
      }
    }
    if (noMemory !== null) throw noMemory;
  }

  /**
   * Is there room in the backing filesystem for `bytes` more, beyond what files already promised
   * (their content past the backing file's end, not yet written back)? statfs at most once a
   * second, and again before saying no: the estimate between two errs low (spaceCache).
   */
  private hasRoomFor(bytes: number): boolean | Promise<boolean> {
    if (bytes === 0) return true;
    if (this.spaceCache === null || performance.now() - this.spaceCache.at > 1000) {
      return this.measureSpace().then(() => this.roomLeftFor(bytes));
    }
    if (this.roomLeftFor(bytes)) return true;
    return this.measureSpace().then(() => this.roomLeftFor(bytes));
  }

  private async measureSpace(): Promise<void> {
    const spentAt = this.spentBytes;
    const s = await fsp.statfs(this.backingPath(''));
    this.spaceCache = { at: performance.now(), freeBytes: s.bavail * s.bsize, spentAt };
  }

  /**
   * Bytes of the file's dirty data at or past its allocated end, which writeback will need new
   * blocks for. Zero runs need none (they stay holes), nor does a size set by truncate.
   */
  private unwrittenPastAllocated(f: PagedFile): number {
    const size = f.vmo.contentSizeBytes;
    if (size <= f.allocatedEnd) return 0;
    const from = Math.floor(f.allocatedEnd / PAGE_SIZE) * PAGE_SIZE;
    let bytes = 0;
    for (const r of this.pager.queryDirtyRanges(f.vmo, from, f.vmo.sizeBytes - from).ranges) if (!r.isZero) bytes += r.length;
    return bytes;
  }

  /** hasRoomFor against the free space estimated from the last statfs. */
  private roomLeftFor(bytes: number): boolean {
    const space = this.spaceCache!;
    const free = space.freeBytes - (this.spentBytes - space.spentAt);
    // Everything past the allocated ends bounds the promise from above: when even that fits, the
    // dirty ranges need not be walked (a walk per write made writing a file quadratic: 30% of the
    // daemon's time in a 64 MiB dd). Near a full store, or past a large sparse extension, walk.
    let bound = 0;
    for (const f of this.growing) {
      const past = f.completed ? 0 : f.vmo.contentSizeBytes - f.allocatedEnd;
      if (past > 0) bound += past;
      else this.growing.delete(f);
    }
    if (free - bound >= bytes) return true;
    let promised = 0;
    for (const f of this.growing) {
      const ahead = f.completed ? 0 : this.unwrittenPastAllocated(f);
      if (ahead > 0) promised += ahead;
      else this.growing.delete(f);
    }
    return free - promised >= bytes;
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
    // Nothing to write, the size already right, nothing unsynced: leave the backing file alone
    // (unmount asks this of every file it ever opened; a stat and an fdatasync each added up).
    if (ranges.length === 0 && file.backingSize === vmo.contentSizeBytes && !(sync && file.unsynced)) {
      file.dirtySince = null; // its dirty pages went (truncated away): nothing ages any more
      return;
    }
    if (ranges.length > 0) file.unsynced = true;
    file.dirtySince = null;
    let backingSize = (await file.fh.stat()).size;
    let buf: Buffer | undefined;
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
            // Copied out and written a piece at a time: a run of dirty pages may be as large as the
            // budget, and one buffer for all of it would double the daemon's memory. The pages are
            // resident (Dirty/AwaitingClean are never evicted), so each copy is immediate; a write
            // landing between pieces makes its page Dirty again, to be written next time.
            // No larger than the largest run: a flush of a small file (tar, cp -r: thousands) took
            // a 1 MiB buffer each, and that external memory made V8 collect its old space every ~20 ms.
            buf ??= Buffer.allocUnsafe(Math.min(WRITEBACK_PIECE_BYTES, largestRun(ranges)));
            for (let at = r.offset; at < end; at += WRITEBACK_PIECE_BYTES) {
              const piece = Math.min(WRITEBACK_PIECE_BYTES, end - at);
              const n = vmo.readStep(buf, 0, at, piece);
              if (n !== piece) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'dirty pages were not resident during writeback');
              await this.writeAll(file.fh, buf.subarray(0, piece), at);
            }
            this.forgetKnownZero(file, r.offset / PAGE_SIZE, Math.ceil(end / PAGE_SIZE));
            backingSize = Math.max(backingSize, end);
            // Bytes past the allocated end leave `promised` for the store's used space.
            this.spentBytes += Math.max(0, end - Math.max(r.offset, file.allocatedEnd));
            // Before END makes these pages clean, hence evictable: a fill of one evicted before this
            // writeback finished read only up to the old size, and supplied zeros for data just
            // written here (a later partial write then kept the zeros: bytes lost).
            file.backingSize = Math.max(file.backingSize, end);
            file.allocatedEnd = Math.max(file.allocatedEnd, end);
          }
          this.metrics.writebackBytes += end - r.offset;
        }
        const now = Math.min(r.offset + length, vmo.sizeBytes) - r.offset;
        if (now > 0) this.pager.opRange(PagerOp.WRITEBACK_END, vmo, r.offset, now);
        this.metrics.writebackPages += length / PAGE_SIZE;
      }
      // The size given to the backing file is the one recorded: a write may move the VMO's size
      // while the truncate is under way (and a failed one move it back).
      const size = vmo.contentSizeBytes;
      if (backingSize !== size) {
        file.unsynced = true;
        await file.fh.truncate(size);
      }
      file.backingSize = size;
      if (sync) {
        await file.fh.datasync();
        file.unsynced = false;
      }
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

  /**
   * Sets the file's size. Growing, the backing file first (it may refuse: EFBIG, EIO), then the
   * VMO, whose new zero pages the backing file already has (grownWithZeros). Shrinking, the VMO
   * first (pages past the end dropped unwritten, reads there end), then the backing file; if that
   * fails, the file is due for writeback, which sets the size again. A read-only backing file is
   * EROFS with nothing changed.
   */
  truncate(file: PagedFile, sizeBytes: number): Promise<void> {
    if (!file.writable) return Promise.reject(fsError('EROFS', 30, 'read-only backing file'));
    // Before the backing file grows: past 2^53 Node's truncate threw a RangeError (EIO), and a
    // backing filesystem with larger files (XFS) would have grown where the VMO cannot follow.
    if (sizeBytes > MAX_VMO_SIZE_BYTES) return Promise.reject(fsError('EFBIG', 27, `size past the largest file size (${MAX_VMO_SIZE_BYTES})`));
    this.mayResize(file);
    return file.withLock(async () => {
      if (sizeBytes > file.vmo.contentSizeBytes) {
        await file.fh.truncate(sizeBytes);
        file.unsynced = true;
        file.backingSize = sizeBytes;
        this.grownWithZeros(file, sizeBytes); // unless a write grew it past that meanwhile
        return;
      }
      file.vmo.resize(sizeBytes);
      file.unsynced = true;
      file.allocatedEnd = Math.min(file.allocatedEnd, sizeBytes);
      this.forgetKnownZero(file, Math.ceil(sizeBytes / PAGE_SIZE), Number.MAX_SAFE_INTEGER);
      try {
        await file.fh.truncate(sizeBytes);
      } catch (err) {
        file.dirtySince ??= performance.now();
        throw err;
      }
      file.backingSize = sizeBytes;
    });
  }

  /**
   * The backing file was just made `sizeBytes` long with zeros past the VMO's end (ftruncate,
   * fallocate): the VMO grows to match, and its new pages, which a VMO grows as a dirty zero run,
   * are marked written at once (WRITEBACK_BEGIN IS_ZERO + END): nothing is left to write back, so
   * the file's last close can hand it back to its backing file. Under the file's lock.
   */
  private grownWithZeros(file: PagedFile, sizeBytes: number): void {
    const oldSize = file.vmo.contentSizeBytes;
    if (sizeBytes <= oldSize) return;
    file.vmo.resize(sizeBytes);
    const start = Math.ceil(oldSize / PAGE_SIZE);
    const end = Math.ceil(sizeBytes / PAGE_SIZE);
    file.knownZero.push({ start, end });
    this.zerosWritten(file, start, end);
  }

  /** The backing file reads zeros over pages [start, end): the VMO's dirty zero runs there are written. */
  private zerosWritten(file: PagedFile, start: number, end: number): void {
    const stop = Math.min(end, file.vmo.sizePages);
    if (stop <= start) return;
    this.pager.opRange(PagerOp.WRITEBACK_BEGIN, file.vmo, start * PAGE_SIZE, (stop - start) * PAGE_SIZE, WRITEBACK_IS_ZERO);
    this.pager.opRange(PagerOp.WRITEBACK_END, file.vmo, start * PAGE_SIZE, (stop - start) * PAGE_SIZE);
  }

  /**
   * fallocate(2) through the mount (mode as fallocate's), the backing file first, then the VMO to
   * match, under the file's lock:
   *  - 0 and KEEP_SIZE reserve the backing blocks; without KEEP_SIZE a range past the end grows
   *    the file, the VMO as a truncate would grow it (zeros).
   *  - PUNCH_HOLE|KEEP_SIZE and ZERO_RANGE[|KEEP_SIZE] make the range (within the size) read as
   *    zeros: the backing file is punched or zeroed, then the VMO's whole pages there become zero
   *    (a zero run already written: the hole stays a hole) and its resident partial pages get
   *    zeros written; partial pages not resident read the backing file's new zeros. Fills of
   *    the file are held back meanwhile (PagedFile.fills), so none supplies bytes read before the change.
   * Other modes, and a pager without BackingFallocate, are EOPNOTSUPP; the backing file system's
   * own refusal (EOPNOTSUPP, ENOSPC, ...) is the caller's, with the VMO unchanged.
   */
  override fallocate(file: PagedFile, mode: number, offset: number, length: number): Promise<void> {
    const native = this.fallocateBacking;
    if (!FALLOCATE_MODES.has(mode) || native === null) {
      return Promise.reject(fsError('EOPNOTSUPP', 95, native === null ? 'fallocate needs the patched fuse-native binding' : `fallocate mode 0x${mode.toString(16)} is not supported`));
    }
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) {
      return Promise.reject(fsError('EINVAL', 22, `fallocate of ${length} bytes at ${offset}`));
    }
    if (offset + length > MAX_VMO_SIZE_BYTES) return Promise.reject(fsError('EFBIG', 27, `fallocate past the largest file size (${MAX_VMO_SIZE_BYTES})`));
    if (!file.writable) return Promise.reject(fsError('EROFS', 30, 'read-only backing file'));
    const keepSize = (mode & FALLOC_FL_KEEP_SIZE) !== 0;
    const zeroes = (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) !== 0;
    this.mayResize(file);
    const change = (): Promise<void> => file.withLock(async () => {
      await new Promise<void>((resolve, reject) => native(file.fh.fd, mode, offset, length, (err) => (err === null ? resolve() : reject(err))));
      file.unsynced = true;
      // Blocks allocated (at most `length`) leave the store's free space; a punch frees some,
      // which the next statfs sees (the estimate errs low meanwhile).
      if (!zeroes) this.spentBytes += length;
      if (zeroes) await this.zeroChanged(file, offset, Math.min(offset + length, file.vmo.contentSizeBytes));
      else if (offset <= file.allocatedEnd) file.allocatedEnd = Math.max(file.allocatedEnd, offset + length); // allocated now
      if (!keepSize) {
        this.grownWithZeros(file, offset + length);
        file.backingSize = Math.max(file.backingSize, offset + length);
      }
    });
    // The file's fills held back around a zeroing change (not under the file's lock: a fill short
    // of memory may write this file back, which takes the lock).
    return zeroes ? file.fills.hold(change) : change();
  }

  /**
   * The VMO after [start, stop) of its backing file became zeros (fallocate, under the file's lock,
   * fills held): whole pages become a zero run, written already (the backing file has the zeros);
   * resident partial pages are dirtied and zeroed there. Nothing here waits for a page request
   * but the DIRTY of a pinned page (resident: answered without the lock or a frame).
   */
  private async zeroChanged(file: PagedFile, start: number, stop: number): Promise<void> {
    if (stop <= start) return;
    const vmo = file.vmo;
    const firstWhole = Math.ceil(start / PAGE_SIZE);
    const lastWhole = Math.floor(stop / PAGE_SIZE);
    if (firstWhole < lastWhole) {
      await vmo.zeroRange(firstWhole * PAGE_SIZE, (lastWhole - firstWhole) * PAGE_SIZE);
      this.forgetKnownZero(file, firstWhole, lastWhole);
      file.knownZero.push({ start: firstWhole, end: lastWhole });
      this.zerosWritten(file, firstWhole, lastWhole); // pinned pages got zeros as data: still dirty
      if (unwrittenPages(vmo.counters()) > 0) file.dirtySince ??= performance.now();
    }
    const edges: Array<[number, number]> = firstWhole > lastWhole
      ? [[start, stop]]
      : [[start, firstWhole * PAGE_SIZE], [lastWhole * PAGE_SIZE, stop]];
    for (const [a, b] of edges) {
      if (b <= a) continue;
      const pageStart = Math.floor(a / PAGE_SIZE) * PAGE_SIZE;
      if (vmo.attributedPagesInRange(pageStart, PAGE_SIZE) === 0) continue; // not resident: the backing file's zeros
      this.markDirty(file, pageStart, pageStart + PAGE_SIZE);
      if (vmo.writeStep(this.system.zeroPage, 0, a, b - a) !== b - a) {
        throw new ZxError(ZxStatus.ERR_BAD_STATE, 'a dirtied page did not take the zeros');
      }
      file.dirtySince ??= performance.now();
    }
  }
}

/** Pages not written back yet, from a VMO's counters (O(1)): dirty frames and dirty zero runs. */
function unwrittenPages(c: VmoCounters): number {
  return c.dirtyPages + c.dirtyZeroPages;
}

/** Half the process's soft open-file limit (from /proc/self/limits), at least 64; 4096 if it cannot be read. */
function defaultMaxIdleFiles(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m === null || m[1] === 'unlimited') return 4096;
    return Math.max(64, Math.floor(Number(m[1]) / 2));
  } catch {
    return 4096;
  }
}

/**
 * What close-to-open checks of a backing file: size, mtime and ctime, to the fraction of a
 * millisecond (whole milliseconds were not enough: two writes 5 ms apart can get ctimes within
 * one, the kernel stamping from a clock that advances a tick at a time).
 */
function stampOf(st: FileStat): string {
  return `${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/**
 * The lstat of `p` through Node's callback lstat, not fs.promises': every lookup, readdir entry and
 * reopen comes here, and the promise API costs ~3× the JS time per call (measured: 8.5-10 µs
 * against 2.4-3.6 µs each).
 */
function lstatPath(p: string): Promise<FileStat> {
  return new Promise((resolve, reject) => fs.lstat(p, (err, st) => (err === null ? resolve(st) : reject(err))));
}

/**
 * The backing directory as the mount shows it: its names and attributes, less the hidden names at
 * the root (`.pagerfs`, pagerfs's control directory, and any the pager adds).
 */
class BackingTree implements FileTree {
  private readonly hidden: Set<string>;

  constructor(private readonly dp: DirectoryPager, hiddenNames: string[], readonly readOnly: boolean) {
    this.hidden = new Set(['.pagerfs', ...hiddenNames]);
  }

  /** The backing path, or ENOENT for a hidden name (and anything below it). */
  backingPathOf(relPath: string): string {
    const rel = relPath.replace(/^\/+/, '');
    if (this.isHidden(rel)) throw fsError('ENOENT', 2, `"${rel}" is hidden`);
    return this.dp.backingPath(rel);
  }

  /** A name below a hidden top-level name (`.pagerfs` itself is the mount's, so not hidden here). */
  isHidden(relPath: string): boolean {
    const top = relPath.replace(/^\/+/, '').split('/', 1)[0];
    return top !== '.pagerfs' && this.hidden.has(top);
  }

  /** Every name the mount shows maps 1:1; hidden ones are refused by isHidden. */
  backingRoot(): BackingRoot {
    return { dir: this.dp.root, hiddenNames: [...this.hidden].filter((n) => n !== '.pagerfs') };
  }

  // async: a hidden name's ENOENT (thrown by backingPathOf) must reach the caller as a rejection.
  async lstat(relPath: string): Promise<FileStat> {
    return lstatPath(this.backingPathOf(relPath));
  }

  async readdir(relPath: string): Promise<string[]> {
    const names = await fsp.readdir(this.backingPathOf(relPath));
    return relPath.replace(/^\/+/, '') === '' ? names.filter((n) => !this.hidden.has(n)) : names;
  }

  async readlink(relPath: string): Promise<string> {
    return fsp.readlink(this.backingPathOf(relPath));
  }

  async access(relPath: string, mode: number): Promise<void> {
    return fsp.access(this.backingPathOf(relPath), mode);
  }

  async statfs(): Promise<FileTreeSpace> {
    const s = await fsp.statfs(this.dp.backingPath(''));
    return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree };
  }
}
