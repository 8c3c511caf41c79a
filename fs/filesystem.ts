/**
 * The FUSE filesystem: fuse-native operations over a PagerService (the directory pager, the
 * verified pager, or a pager module's declared files).
 *
 * Names and attributes come from the service's FileTree; changes to names, modes, owners and times
 * act on its backing directory, and are EROFS on a read-only tree (verified, module files). File
 * contents go through one pager VMO per backing inode (hard links and every open handle share it).
 * Handlers are thin and symmetrical: resolve the path or handle, call one method below, map any
 * error through toErrno (fs/errno.ts, the only place errno is produced), and reply once.
 *
 * Read path: with fast reads on (fs/fast-read.ts), a read of resident pages is answered by the
 * binding on libfuse's thread and never arrives here; what it cannot answer comes to read(), which
 * answers resident pages synchronously from the VMO into the kernel's buffer (no promise, no
 * allocation); only a fault goes async. A read or write that fails after some bytes were done
 * returns the short count; the next call gets the errno.
 */
import fs, { constants as fsc, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Logger } from 'pino';
import { identityOf, type FileStat, type FileTree, type FileTreeSpace, type PagerService, type ServedFile } from '../pager/index.js';
import { MAX_MAPPED_PAGES, MAX_VMO_SIZE_BYTES, type ReadMapping } from '../src/index.js';
import { fileStatOf, modeOfDirentType, type BindingDir, type BindingLstat, type ExactFileStat } from './backing-stat.js';
import { caller, type Caller } from './caller.js';
import { CONTROL_DIR, controlFiles, type ControlFile, type ControlHooks } from './control.js';
import { ERRNO, isExpectedError, toErrno } from './errno.js';
import { NO_FAST_READS, type FastReadBinding, type FastReadStats } from './fast-read.js';
import {
  XATTR_HINT, XATTR_MAP, XATTR_PREFIX, XATTR_RESIDENCY, backingGetXattrCb, backingListXattr,
  backingRemoveXattr, backingSetXattr, encodeMap, errnoError, parseHint, residencyJson,
} from './xattr.js';

type Cb<T = void> = T extends void ? (err: number) => void : (err: number, value?: T) => void;

/** An open handle: a file's VMO, or a control file's snapshot. */
interface Handle {
  file: ServedFile | null;
  /**
   * Files this handle moved away from (revalidate) while a read or write of it was waiting on their
   * pages (`waiting`): let go once none is (releaseMovedFrom), or at the handle's close.
   */
  movedFrom?: ServedFile[];
  /** Reads and writes of this handle waiting for the pager now (their slow paths). */
  waiting?: number;
  control: ControlFile | null;
  /** Control files: content as of open (readers) or text written so far (writers). */
  buffer: Buffer;
  writing: boolean;
  dirtyControl: boolean;
  /** A write to this control-file handle was refused: nothing it holds is applied. */
  refused: boolean;
  /** Something was written through this handle (control files). */
  written: boolean;
  /** What an accepted control-file write asked for after this handle's close (the unmount). */
  afterClose?: () => void;
  /**
   * Opened with O_APPEND: every write goes to the end of the file as pagerfs knows it, not to the
   * offset the kernel computed from an attribute cache that may be stale (see write).
   */
  append?: boolean;
}

export interface FilesystemOptions {
  pager: PagerService;
  logger: Logger;
  hooks?: ControlHooks;
  /**
   * create, mkdir, mknod and symlink act as the caller (fuse_get_context(), captured at the start of
   * the handler): the new backing file is given the caller's uid and gid (the group of a setgid
   * parent directory instead, as the kernel does). For `--allow-other` mounts by a root daemon (only
   * root may give files away). Default false: new files belong to the daemon's user.
   */
  createAsCaller?: boolean;
}

/** Access-mode bits of open flags (Node's constants lack O_ACCMODE). */
const O_ACCMODE = 3;
/** The binding's lstat as a stat, when it made one that succeeded (else the caller lstats itself). */
function knownStat(backing: BindingLstat | undefined): ExactFileStat | undefined {
  return backing !== undefined && 'dev' in backing ? fileStatOf(backing) : undefined;
}

const S_IFDIR = fsc.S_IFDIR;
const S_IFREG = fsc.S_IFREG;
const S_ISGID = 0o2000;
/**
 * Inode numbers of the control directory and its files (st_ino and readdir's d_ino, use_ino): from
 * the top of the 53-bit range down, far from any backing filesystem's numbers in practice.
 */
const CONTROL_INO_TOP = 2 ** 53 - 1;

type MknodFn = (path: string, mode: number, dev: number, cb: (err: Error | null) => void) => void;
let nativeMknod: MknodFn | null | undefined;

/**
 * mknod(2) through the patched fuse-native (native/README.md: Node has no mknod). Loaded lazily, so
 * that importing this module loads no native binding; ENOSYS without the patch.
 */
function mknodNative(file: string, mode: number, dev: number): Promise<void> {
  if (nativeMknod === undefined) {
    const Fuse = createRequire(import.meta.url)('fuse-native') as { mknod?: MknodFn };
    nativeMknod = typeof Fuse.mknod === 'function' ? Fuse.mknod : null;
  }
  const fn = nativeMknod;
  if (fn === null) return Promise.reject(errnoError('ENOSYS', 'mknod needs the patched fuse-native (scripts/setup.sh)'));
  return new Promise((resolve, reject) => fn(file, mode, dev, (err) => (err === null ? resolve() : reject(err))));
}

/**
 * A stat's times as precise as it has them, for the patched binding (native/README.md, "stat
 * times"): ns as BigInts from the binding's lstat (exact); a Node Stats' fractional milliseconds
 * (fstat of an open file: within a quarter of a µs); else its Dates (pager modules' own times).
 * Never Dates where more is known: they round to the millisecond, .9996 s to the next second.
 */
function timesOf(st: FileStat): { atime: bigint | number | Date; mtime: bigint | number | Date; ctime: bigint | number | Date } {
  const exact = st as Partial<ExactFileStat>;
  if (exact.atimeNs !== undefined && exact.mtimeNs !== undefined && exact.ctimeNs !== undefined) {
    return { atime: exact.atimeNs, mtime: exact.mtimeNs, ctime: exact.ctimeNs };
  }
  const atimeMs = (st as { atimeMs?: number }).atimeMs;
  if (typeof atimeMs === 'number' && typeof st.mtimeMs === 'number' && typeof st.ctimeMs === 'number') {
    return { atime: atimeMs, mtime: st.mtimeMs, ctime: st.ctimeMs };
  }
  return { atime: st.atime, mtime: st.mtime, ctime: st.ctime };
}

/**
 * st_blocks (512-byte units): the backing file's, so du and cp's sparse heuristic see its holes.
 * A served file's dirty pages may not be allocated there yet: at least 8 per dirty page (a lower
 * bound: dirty pages over allocated blocks are not counted twice). Without a backing lstat (pager
 * modules' files) the size in whole 4 KiB blocks.
 */
function blocksOf(st: FileStat, size: number, file: ServedFile | undefined): number {
  const backing = (st as { blocks?: number }).blocks;
  const blocks = typeof backing === 'number' ? backing : Math.ceil(size / 4096) * 8;
  return file === undefined ? blocks : Math.max(blocks, file.vmo.counters().dirtyPages * 8);
}

export class PagerFilesystem {
  private readonly dp: PagerService;
  private readonly tree: FileTree;
  private readonly log: Logger;
  private readonly handles = new Map<number, Handle>();
  /** See refuseChanges: set once, when the daemon starts stopping. */
  private stopping = false;
  /** Writes (and fallocates) accepted and not yet answered; refuseChanges waits for them (writesDrained). */
  private writesInFlight = 0;
  private writesDrained: Array<() => void> = [];
  /**
   * Per file, the end of the furthest write acknowledged through the mount, lowered by truncates:
   * a write that fails and undoes its extension of the file never cuts below it (write's settle),
   * so a write another process got acknowledged in that extension stays.
   */
  private readonly writtenEnd = new WeakMap<ServedFile, number>();
  /** Per file with writes under way, how many: settle leaves the size alone while others run. */
  private readonly writing = new Map<ServedFile, number>();
  /**
   * Per file, the extension a failed write left while others were under way: the size it made
   * (`from`) and the size to go back to (`to`), applied when the last of them ends if the size is
   * still `from` (never below an acknowledged write).
   */
  private readonly undoExtension = new Map<ServedFile, { from: number; to: number }>();
  /**
   * Writes that grew their file and wait for the pager, by file. The file's size already covers
   * each one (set before the wait, so that concurrent appends land apart), but its bytes are not
   * all there yet: reads stop where such a write has got (readableEnd), as Linux moves i_size only
   * as a write's bytes land. (They read that stretch as zeros the file never held: a `tail -f` of a
   * log appended under memory pressure printed NUL bytes.)
   */
  private readonly growing = new Map<ServedFile, Set<{ oldSize: number; pos: number; done: number }>>();
  private nextHandle = 1;
  private readonly control: Map<string, ControlFile>;
  private readonly startTime = new Date();
  private readonly createAsCaller: boolean;
  private readonly euid = process.geteuid?.() ?? 0;
  private readonly egid = process.getegid?.() ?? 0;
  /** st_ino of the control directory's files, by name. */
  private readonly controlIno: Map<string, number>;
  /**
   * Fast reads (fs/fast-read.ts): the mounted binding while they are on, else null. Every open
   * handle of a file is registered with its file's read mapping, and `fastHandles` holds the
   * mapping each registered handle was given (a handle registered is one the binding may answer).
   */
  private fast: FastReadBinding | null = null;
  private fastStatsOf: FastReadBinding | null = null;
  private readonly fastHandles = new Map<number, ReadMapping>();
  private stopChunkFeed: (() => void) | null = null;

  constructor(options: FilesystemOptions) {
    this.dp = options.pager;
    this.tree = options.pager.tree;
    this.log = options.logger;
    this.control = controlFiles(this.dp, options.hooks ?? {}, { openFiles: () => this.openFileCount(), fastReads: () => this.fastReadStats() });
    this.createAsCaller = options.createAsCaller ?? false;
    this.controlIno = new Map([...this.control.keys()].map((name, i) => [name, CONTROL_INO_TOP - 1 - i]));
  }

  /** The fuse-native operations object. */
  operations(): Record<string, unknown> {
    const ops: Record<string, unknown> = {};
    for (const name of ['init', 'getattr', 'fgetattr', 'readdir', 'open', 'create', 'read', 'write', 'flush', 'fsync',
      'release', 'truncate', 'ftruncate', 'fallocate', 'unlink', 'rename', 'mkdir', 'mknod', 'rmdir', 'symlink', 'readlink', 'link',
      'chmod', 'chown', 'utimens', 'statfs', 'access', 'opendir', 'releasedir', 'fsyncdir',
      'getxattr', 'setxattr', 'listxattr', 'removexattr'] as const) {
      const fn = (this as unknown as Record<string, unknown>)[name];
      if (typeof fn === 'function') ops[name] = fn.bind(this);
    }
    return ops;
  }

  /** Replies with an error, logging unexpected ones with their stack. */
  private fail(op: string, p: string, err: unknown, cb: (errno: number) => void): void {
    const errno = toErrno(err);
    if (!isExpectedError(err)) this.log.error({ op, path: p, err }, 'unexpected error in a filesystem operation');
    else this.log.debug({ op, path: p, errno, err: (err as Error).message }, 'operation failed');
    cb(errno);
  }

  private rel(p: string): string {
    return p.replace(/^\/+/, '');
  }

  /**
   * The backing path of a name, for operations passed through to the backing directory. Callers
   * that change anything check tree.readOnly first; a tree without a backing directory is read-only.
   */
  private backing(p: string): string {
    const full = this.tree.backingPathOf(this.rel(p));
    if (full === null) throw errnoError('EROFS', 'this pager has no backing directory');
    return full;
  }


  /** The control file named by path, null for the control dir itself, undefined when not control. */
  private controlAt(p: string): ControlFile | null | undefined {
    const rel = this.rel(p);
    if (rel === CONTROL_DIR) return null;
    if (!rel.startsWith(`${CONTROL_DIR}/`)) return undefined;
    const f = this.control.get(rel.slice(CONTROL_DIR.length + 1));
    if (f === undefined) throw Object.assign(new Error('no such control file'), { errno: -ERRNO.ENOENT });
    return f;
  }

  private controlStat(file: ControlFile | null): Record<string, unknown> {
    const now = new Date();
    const isDir = file === null;
    return {
      mode: isDir ? S_IFDIR | 0o555 : S_IFREG | (file.writable ? 0o644 : 0o444),
      ino: isDir ? CONTROL_INO_TOP : this.controlIno.get(file.name) ?? 0,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      // Size 0, as procfs reports: the content is made at open, so readers read to EOF.
      size: 0,
      nlink: isDir ? 2 : 1,
      atime: now, mtime: now, ctime: this.startTime,
      blksize: 4096, blocks: 0,
    };
  }

  /** A backing lstat as the mount shows it: the VMO's size when pagerfs serves that inode. */
  private attrsOf(st: FileStat): Record<string, unknown> {
    return this.statOf(st, st.isFile() ? this.dp.fileByIdentity(identityOf(st)) : undefined);
  }

  private statOf(st: FileStat, file: ServedFile | undefined): Record<string, unknown> {
    const size = file !== undefined ? file.vmo.contentSizeBytes : st.size;
    return {
      mode: st.mode, uid: st.uid, gid: st.gid, size, dev: st.dev, nlink: st.nlink, ino: st.ino, rdev: st.rdev,
      blksize: 4096, blocks: blocksOf(st, size, file), ...timesOf(st),
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Operations.

  init(cb: Cb): void {
    cb(0);
  }

  /**
   * `backing`: the lstat of the backing path the binding already made on its FUSE thread (mounts
   * with backingPassthrough), else undefined and the tree lstats on the pool. Names the tree hides
   * are ENOENT either way.
   */
  getattr(p: string, cb: Cb<unknown>, backing?: BindingLstat): void {
    try {
      const c = this.controlAt(p);
      if (c !== undefined) return cb(0, this.controlStat(c));
      if (backing !== undefined) {
        if (this.tree.isHidden?.(p) === true) return cb(-ERRNO.ENOENT);
        if (!('dev' in backing)) return cb(backing.errno);
        const st = fileStatOf(backing);
        return cb(0, this.attrsOf(st));
      }
    } catch (err) {
      return this.fail('getattr', p, err, cb);
    }
    this.tree.lstat(this.rel(p)).then(
      (st) => cb(0, this.attrsOf(st)),
      (err: unknown) => this.fail('getattr', p, err, cb),
    );
  }

  fgetattr(p: string, fd: number, cb: Cb<unknown>): void {
    const h = this.handles.get(fd);
    if (h?.file != null) {
      const stat = (file: ServedFile): void => {
        this.dp.statFile(file).then((st) => cb(0, this.statOf(st, file)), (err: unknown) => this.fail('fgetattr', p, err, cb));
      };
      const file = h.file;
      const moving = this.followChange(fd, h, file); // the file may have changed behind the pager
      if (moving === null) return stat(file);
      moving.then(() => stat(h.file ?? file), (err: unknown) => this.fail('fgetattr', p, err, cb));
      return;
    }
    this.getattr(p, cb);
  }

  /** Regular files open through the mount now (handles of control files not counted). */
  private openFileCount(): number {
    let n = 0;
    for (const h of this.handles.values()) if (h.file !== null) n++;
    return n;
  }

  /**
   * Asks the pager whether `from`, which handle `fd` reads, changed behind it (revalidate): null
   * when there is nothing to check, else whether the handle moved to the file's current VMO. It
   * moves only if it is still open and still reads `from` (else the extra open is dropped). `from`
   * is let go at once unless a read or write of the handle waits on its pages (then movedFrom):
   * a `tail -f` of a file appended outside moves every --attr-timeout, and each file kept until
   * the close held a backing descriptor.
   */
  private followChange(fd: number, h: Handle, from: ServedFile): Promise<boolean> | null {
    const revalidating = this.dp.revalidate(from);
    if (revalidating === null) return null;
    return revalidating.then(async (next) => {
      if (next === null) return false;
      if (this.handles.get(fd) !== h || h.file !== from) {
        await this.dp.release(next);
        return false;
      }
      h.file = next;
      this.mapHandle(fd); // (replaces the registration with the old file's mapping)
      (h.movedFrom ??= []).push(from);
      if ((h.waiting ?? 0) === 0) this.releaseMovedFrom(h);
      return true;
    });
  }

  /** A read or write of the handle starts waiting for the pager. */
  private waitStarted(h: Handle): void {
    h.waiting = (h.waiting ?? 0) + 1;
  }

  /** ... and ends; the last one lets go of the files the handle moved away from meanwhile. */
  private waitEnded(h: Handle): void {
    h.waiting = (h.waiting ?? 1) - 1;
    if (h.waiting === 0 && h.movedFrom !== undefined) this.releaseMovedFrom(h);
  }

  private releaseMovedFrom(h: Handle): void {
    const files = h.movedFrom ?? [];
    h.movedFrom = undefined;
    for (const f of files) {
      this.dp.release(f).catch((err: unknown) => this.log.warn({ path: f.relPath, err: (err as Error).message }, 'could not let go of a file a handle moved away from'));
    }
  }

  /**
   * Names with their attributes: libfuse2 takes d_ino (use_ino) and d_type from them, so readdir
   * shows the backing inode numbers and file types (without, d_ino is 0xffffffff and d_type
   * DT_UNKNOWN, and tools stat every entry through the mount instead). With `backing` (the
   * binding read the directory on its FUSE thread) they come from the directory's own entries;
   * without, from one lstat per entry, where an entry gone meanwhile is left out and any other
   * lstat failure gives the names alone. Every listing has `.` and `..`, as a plain directory's
   * (the binding's read includes the backing directory's own); `..` of the root is the root.
   */
  readdir(p: string, cb: (err: number, names?: string[], stats?: unknown[]) => void, backing?: BindingDir): void {
    if (this.rel(p) === CONTROL_DIR) {
      const files = [...this.control.values()];
      this.tree.lstat('').then((root) => {
        cb(0, ['.', '..', ...files.map((f) => f.name)], [this.controlStat(null), this.attrsOf(root), ...files.map((f) => this.controlStat(f))]);
      }, (err: unknown) => this.fail('readdir', p, err, cb));
      return;
    }
    const dir = this.rel(p);
    const atRoot = dir === '';
    if (backing !== undefined) {
      if (this.tree.isHidden?.(dir) === true) return cb(-ERRNO.ENOENT);
      if (!('names' in backing)) return cb(backing.errno);
      return this.readdirFromBinding(dir, backing, cb);
    }
    void (async () => {
      const names = await this.tree.readdir(dir);
      const up = path.posix.dirname(dir);
      const parent = atRoot || up === '.' ? '' : up;
      names.unshift('.', '..');
      const stats = await Promise.all(names.map((n, i) => this.tree.lstat(i === 0 ? dir : i === 1 ? parent : atRoot ? n : `${dir}/${n}`)
        .catch((err: unknown) => err as Error)));
      const outNames: string[] = [];
      const outStats: unknown[] = [];
      let complete = true;
      names.forEach((n, i) => {
        const st = stats[i]!;
        if (st instanceof Error) {
          if ((st as NodeJS.ErrnoException).code !== 'ENOENT') {
            complete = false;
            outNames.push(n);
          }
          return;
        }
        outNames.push(n);
        outStats.push(this.attrsOf(st));
      });
      if (atRoot) {
        outNames.push(CONTROL_DIR);
        outStats.push(this.controlStat(null));
      }
      if (!complete) {
        // fuse-native passes attributes only when there is one per name.
        cb(0, outNames, []);
        return;
      }
      cb(0, outNames, outStats);
    })().catch((err: unknown) => this.fail('readdir', p, err, cb));
  }

  opendir(_p: string, _flags: number, cb: Cb<number>): void {
    cb(0, 0);
  }

  releasedir(_p: string, _fd: number, cb: Cb): void {
    cb(0);
  }

  fsyncdir(_p: string, _datasync: boolean, _fd: number, cb: Cb): void {
    cb(0);
  }

  private addHandle(h: Handle): number {
    const fd = this.nextHandle++;
    this.handles.set(fd, h);
    return fd;
  }

  // ---------------------------------------------------------------------------------------------
  // Fast reads (fs/fast-read.ts).

  /**
   * Turns fast reads on with the mounted binding: it hears of every chunk of the arena (those made
   * before too), and every handle of a file open now or later is registered with its read mapping.
   */
  enableFastReads(binding: FastReadBinding): void {
    if (this.fast !== null) return;
    this.fast = binding;
    this.fastStatsOf = binding;
    this.stopChunkFeed = this.dp.system.arena.onChunk((index, chunk) => binding.fastReadAddChunk(index, chunk));
    for (const fd of this.handles.keys()) this.mapHandle(fd);
  }

  /** Turns fast reads off: every handle is unregistered (reads go to read() again). Before the VMOs go away at unmount. */
  disableFastReads(): void {
    const fast = this.fast;
    if (fast === null) return;
    for (const fd of this.fastHandles.keys()) fast.fastReadUnregister(fd);
    this.fastHandles.clear();
    this.stopChunkFeed?.();
    this.stopChunkFeed = null;
    this.fast = null;
  }

  /** The binding's fast-read counters (zeros when fast reads were never on). */
  fastReadStats(): FastReadStats {
    const b = this.fastStatsOf;
    if (b === null) return NO_FAST_READS;
    return { enabled: this.fast !== null, ...b.fastReadStats() };
  }

  /**
   * Registers handle `fd` with its file's read mapping (attaching one, or a larger one when the
   * file outgrew it: the handles still on the old one move along). Control files, handles without
   * a file and files whose VMO is gone are not registered: their reads stay read()'s.
   */
  private mapHandle(fd: number): void {
    const fast = this.fast;
    const h = this.handles.get(fd);
    if (fast === null || h === undefined || h.control !== null || h.file === null) return;
    const file = h.file;
    const before = file.vmo.readMapping;
    let m: ReadMapping;
    try {
      m = this.dp.mapForReading(file);
    } catch (err) {
      this.log.debug({ path: file.relPath, err: (err as Error).message }, 'no fast reads for this handle');
      this.unmapHandle(fd);
      return;
    }
    this.syncFastReadBlock(file); // (a mapping new to this file starts unblocked)
    fast.fastReadRegister(fd, m.header, m.entries, m.accessed, m.accessedGroups);
    this.fastHandles.set(fd, m);
    if (before === null || before === m) return;
    for (const [other, om] of this.fastHandles) {
      if (om === before && this.handles.get(other)?.file === file) {
        fast.fastReadRegister(other, m.header, m.entries, m.accessed, m.accessedGroups);
        this.fastHandles.set(other, m);
      }
    }
  }

  /** Reads of `fd` go to read() again; once this returns, the binding no longer uses its mapping. */
  private unmapHandle(fd: number): void {
    if (this.fastHandles.delete(fd)) this.fast?.fastReadUnregister(fd);
  }

  /**
   * A read came to read() for a registered handle: if its mapping no longer serves the file (the
   * VMO's was replaced) or is too small for it now (the file grew), register it anew. Cheap.
   */
  private checkMapping(fd: number, file: ServedFile): void {
    const m = this.fastHandles.get(fd);
    if (m === undefined) return;
    if (m.retired || (m.capacityPages < file.vmo.sizePages && m.capacityPages < MAX_MAPPED_PAGES)) this.mapHandle(fd);
  }

  /** Fast reads of the file stop while a write that grew it has not got there (readableEnd), and resume after. */
  private syncFastReadBlock(file: ServedFile): void {
    file.vmo.readMapping?.setBlocked(this.growing.has(file));
  }

  /**
   * `backing`: as for getattr, the backing lstat the binding made (undefined: none). The callback's
   * third argument asks the patched binding (level 10) for direct_io on the handle.
   */
  open(p: string, flags: number, cb: (err: number, fd?: number, directIo?: boolean) => void, backing?: BindingLstat): void {
    const writing = (flags & O_ACCMODE) !== fsc.O_RDONLY;
    let c: ControlFile | null | undefined;
    try {
      c = this.controlAt(p);
    } catch (err) {
      return this.fail('open', p, err, cb);
    }
    if (c === null) return cb(-ERRNO.EISDIR);
    if (c !== undefined) {
      if (writing && !c.writable) return cb(-ERRNO.EACCES);
      const buffer = writing ? Buffer.alloc(0) : c.read();
      // Opening a control file for writing means replacing its content, even with nothing (`: > faults`).
      // Always direct_io: a control file's size says nothing of its content, and with --kernel-cache
      // the kernel would read it by that size (stats read as empty) and cache it.
      return cb(0, this.addHandle({ file: null, control: c, buffer, writing, dirtyControl: writing, refused: false, written: false }), true);
    }
    if (writing && this.tree.readOnly) return cb(-ERRNO.EROFS);
    const backingStat = backing === undefined ? undefined : 'dev' in backing ? fileStatOf(backing) : null;
    this.dp.open(this.rel(p), backingStat).then((file) => {
      if (writing && !file.writable) {
        void this.dp.release(file);
        return cb(-ERRNO.EACCES);
      }
      if (writing) this.dp.mayResize(file); // before any write through this handle
      const fd = this.addHandle({
        file, control: null, buffer: Buffer.alloc(0), writing, dirtyControl: false, refused: false, written: false,
        append: (flags & fsc.O_APPEND) !== 0,
      });
      this.mapHandle(fd);
      cb(0, fd);
    }, (err: unknown) => this.fail('open', p, err, cb));
  }

  /**
   * readdir from the entries the binding read on its FUSE thread: d_ino and d_type are all that
   * libfuse2 takes from the attributes, so no lstat is needed, except for an entry whose type the
   * backing filesystem leaves unknown (DT_UNKNOWN).
   */
  private readdirFromBinding(dir: string, entries: Extract<BindingDir, { errno: 0 }>, cb: (err: number, names?: string[], stats?: unknown[]) => void): void {
    const atRoot = dir === '';
    const names: string[] = [];
    const stats: Array<Record<string, unknown>> = [];
    const unknown: number[] = [];
    for (let i = 0; i < entries.names.length; i++) {
      const name = entries.names[i]!;
      if (atRoot && (name === CONTROL_DIR || this.tree.isHidden?.(name) === true)) continue;
      if (entries.types[i] === 0) unknown.push(names.length);
      names.push(name);
      stats.push({ ino: entries.inos[i]!, mode: modeOfDirentType(entries.types[i]!), atime: 0, mtime: 0, ctime: 0 });
    }
    if (atRoot) {
      names.push(CONTROL_DIR);
      stats.push(this.controlStat(null));
    }
    if (unknown.length === 0) return cb(0, names, stats);
    Promise.all(unknown.map(async (k) => {
      const st = await this.tree.lstat(atRoot ? names[k]! : `${dir}/${names[k]!}`).catch(() => null);
      if (st !== null) stats[k]!.mode = st.mode;
    })).then(() => cb(0, names, stats), (err: unknown) => this.fail('readdir', dir, err, cb));
  }

  /** The caller to create files as (captured first thing in a handler), or null: as the daemon. */
  private creator(): Caller | null {
    if (!this.createAsCaller) return null;
    const who = caller();
    return who !== null && (who.uid !== this.euid || who.gid !== this.egid) ? who : null;
  }

  /**
   * Gives what create / mkdir / mknod / symlink just made at `full` its final owner and mode.
   * Owner: `who`'s uid and gid (`who` null: the daemon's, as made), except that the group of a
   * setgid parent directory stays, as the kernel does. Mode: exactly `mode` (null for a symlink),
   * which the kernel already masked with the caller's umask; the daemon's own umask narrowed it at
   * creation, so it is set again. chmod comes after chown (chown clears set-id bits). A directory
   * keeps the S_ISGID it inherited from a setgid parent. On failure the new entry is removed.
   */
  private async settleNew(full: string, kind: 'file' | 'dir' | 'node' | 'symlink', mode: number | null, who: Caller | null, fh?: FileHandle): Promise<void> {
    try {
      // A file just created through `fh` is settled from an fstat and its parent's stat made on this
      // thread: the open has just brought both inodes into memory, so neither can wait on I/O (as
      // the pager's fstat after an open). What the open already got right is not set again: a file
      // created 0644 under umask 022 needs no fchmod (tar, cp: one trip to the pool fewer a file).
      const made = fh !== undefined ? fs.fstatSync(fh.fd) : null;
      const parentSetgid = who !== null || kind === 'dir'
        ? ((fh !== undefined ? fs.statSync(path.posix.dirname(full)) : await fsp.stat(path.posix.dirname(full))).mode & S_ISGID) !== 0
        : false;
      if (who !== null) {
        const gid = parentSetgid ? -1 : who.gid;
        if (fh === undefined) await fsp.lchown(full, who.uid, gid);
        else if (made!.uid !== who.uid || (gid !== -1 && made!.gid !== gid)) await fh.chown(who.uid, gid);
      }
      if (mode !== null) {
        const want = (mode & 0o7777) | (kind === 'dir' && parentSetgid ? S_ISGID : 0);
        if (fh === undefined) await fsp.chmod(full, want);
        // A chown clears set-user/group-ID bits, so after one the mode is set whatever the fstat said.
        else if ((made!.mode & 0o7777) !== want || (want & 0o6000) !== 0) await fh.chmod(want);
      }
    } catch (err) {
      await (kind === 'dir' ? fsp.rmdir(full) : fsp.unlink(full)).catch(() => undefined);
      throw err;
    }
  }

  /** `flags`: the open flags (patched binding, level 10; upstream passes none): O_APPEND matters. */
  create(p: string, mode: number, cb: Cb<number>, flags = 0): void {
    const who = this.creator();
    if (this.controlAtSafe(p) !== undefined || this.rel(p) === CONTROL_DIR) return cb(-ERRNO.EACCES);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    void (async () => {
      const full = this.backing(p);
      // O_EXCL: owner and mode are set only on a file made here. The kernel asks create for a name
      // it found missing; if it appeared in the backing directory meanwhile, open that one as it is.
      let fh: FileHandle | null = null;
      try {
        fh = await fsp.open(full, fsc.O_CREAT | fsc.O_EXCL | fsc.O_RDWR | fsc.O_NOFOLLOW, mode & 0o7777);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let file: ServedFile | undefined;
      if (fh !== null) {
        try {
          await this.settleNew(full, 'file', mode, who, fh);
        } catch (err) {
          await fh.close();
          throw err;
        }
        // The pager keeps the descriptor just made (two trips to the thread pool fewer a file:
        // tar and cp create thousands), else it is closed and the file opened as any other.
        if (this.dp.openCreated !== undefined) file = await this.dp.openCreated(this.rel(p), fh);
        else await fh.close();
      }
      file ??= await this.dp.open(this.rel(p));
      this.dp.mayResize(file);
      const fd = this.addHandle({ file, control: null, buffer: Buffer.alloc(0), writing: true, dirtyControl: false, refused: false, written: false,
        append: (flags & fsc.O_APPEND) !== 0 });
      this.mapHandle(fd);
      cb(0, fd);
    })().catch((err: unknown) => this.fail('create', p, err, cb));
  }

  private controlAtSafe(p: string): ControlFile | null | undefined {
    try {
      return this.controlAt(p);
    } catch {
      return null;
    }
  }

  read(p: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void): void {
    const h = this.handles.get(fd);
    if (h === undefined) return cb(-ERRNO.EBADF);
    if (h.control !== null) {
      if (pos >= h.buffer.length) return cb(0);
      return cb(h.buffer.copy(buf, 0, pos, Math.min(h.buffer.length, pos + len)));
    }
    const file = h.file!;
    const vmo = file.vmo;
    const size = this.readableEnd(file);
    if (len === 0) return cb(0);
    if (pos >= size && size < vmo.contentSizeBytes) return cb(0); // a growing write has not got there yet
    if (pos >= size) {
      // At the end: the file may have grown behind the pager (tail -f); its pager says.
      const moving = this.followChange(fd, h, file);
      if (moving === null) return cb(0);
      moving.then((moved) => (moved ? this.read(p, fd, buf, len, pos, cb) : cb(0)), (err: unknown) => this.fail('read', p, err, cb));
      return;
    }
    const n = Math.min(len, size - pos);
    let done: number;
    try {
      done = vmo.readStep(buf, 0, pos, n);
    } catch (err) {
      return this.fail('read', p, err, cb);
    }
    if (done === n) {
      this.dp.noteRead(file, pos, n);
      if (this.fast !== null) this.checkMapping(fd, file);
      return cb(n);
    }
    this.readSlow(p, h, file, buf, pos, n, done, cb);
  }

  private readSlow(p: string, h: Handle, file: ServedFile, buf: Buffer, pos: number, n: number, doneSoFar: number, cb0: (n: number) => void): void {
    const vmo = file.vmo;
    this.waitStarted(h);
    const cb = (n: number): void => {
      this.waitEnded(h);
      cb0(n);
    };
    void (async () => {
      let done = doneSoFar;
      try {
        while (done < n) {
          await vmo.system.waitFor(vmo.takeWait());
          // The file may have shrunk while we waited: read no further than its end now.
          const limit = Math.min(n, Math.max(0, this.readableEnd(file) - pos));
          if (done >= limit) break;
          done += vmo.readStep(buf, done, pos + done, limit - done);
        }
        this.dp.noteRead(file, pos, done);
        cb(done);
      } catch (err) {
        if (done > 0) cb(done);
        else this.fail('read', p, err, cb);
      }
    })();
  }

  /** Where reads of `file` stop: its size, or less while a write that grew it has not got there. */
  private readableEnd(file: ServedFile): number {
    const size = file.vmo.contentSizeBytes;
    const growing = this.growing.get(file);
    if (growing === undefined) return size;
    let end = size;
    for (const w of growing) end = Math.min(end, Math.max(w.oldSize, w.done > 0 ? w.pos + w.done : 0));
    return end;
  }

  /**
   * The daemon is stopping: from now on writes and truncates are refused with ENOTCONN, as they
   * will be once the mount is gone, because a change accepted after the last writeback would be
   * discarded when the VMOs are detached. Resolves when the writes already accepted have finished.
   */
  refuseChanges(): Promise<void> {
    this.stopping = true;
    if (this.writesInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.writesDrained.push(resolve));
  }

  write(p: string, fd: number, buf: Buffer, len: number, pos0: number, cb0: (n: number) => void): void {
    const h = this.handles.get(fd);
    if (h === undefined) return cb0(-ERRNO.EBADF);
    if (h.control !== null) return this.writeControl(h, buf, len, pos0, cb0);
    if (this.stopping) return cb0(-ERRNO.ENOTCONN);
    this.writesInFlight++;
    const file = h.file!;
    this.writing.set(file, (this.writing.get(file) ?? 0) + 1);
    const cb = (n: number): void => {
      const others = this.writing.get(file)! - 1;
      if (others === 0) {
        this.writing.delete(file);
        if (this.undoExtension.size > 0) this.undoDeferred(p, file);
      } else {
        this.writing.set(file, others);
      }
      this.changeEnded();
      cb0(n);
    };
    let pos = pos0;
    const vmo = file.vmo;
    // O_APPEND: the kernel computed `pos` from its cached size, which misses a change made in the
    // backing directory within --attr-timeout (it overwrote an outside append). The VMO's size is
    // the file's end; extending it below, before any wait, keeps concurrent appends apart.
    if (h.append === true) pos = vmo.contentSizeBytes;
    // As Linux's generic_write_checks: EFBIG at or past the largest file size, a short write up to it.
    if (pos >= MAX_VMO_SIZE_BYTES) {
      this.log.debug({ path: p, pos }, 'write past the largest file size');
      return cb(-ERRNO.EFBIG);
    }
    len = Math.min(len, MAX_VMO_SIZE_BYTES - pos);
    const oldSize = vmo.contentSizeBytes;
    const grows = pos + len > oldSize;
    // A write that fails, wholly or in part, must not leave the file longer than what it wrote:
    // undo our extension, unless another writer moved the size meanwhile, another write of the
    // file is under way (it may be writing into the extension: cutting it would look like a
    // truncate to it), or an acknowledged write lies in it (writtenEnd).
    const settle = (done: number): void => {
      if (done > 0) this.wrote(file, pos + done);
      const keep = Math.max(done > 0 ? Math.max(oldSize, pos + done) : oldSize, this.writtenEnd.get(file) ?? 0);
      if (!grows || done >= len || vmo.contentSizeBytes !== pos + len || keep >= pos + len) return;
      if (this.writing.get(file) === 1) this.shrinkBack(p, file, keep);
      else this.undoExtension.set(file, { from: pos + len, to: keep });
    };
    let done = 0;
    // One bracket of the read mapping from the resize to the block below (or to a failed write's
    // undo): a fast reader never sees the file grown without the bytes that grew it.
    const mapping = vmo.readMapping;
    mapping?.begin();
    try {
      if (grows) vmo.resize(pos + len);
      done = vmo.writeStep(buf, 0, pos, len);
    } catch (err) {
      try {
        settle(done);
      } finally {
        mapping?.end(); // even if the undo throws: an open bracket would fault this file's fast reads for good
      }
      return this.fail('write', p, err, cb);
    }
    if (done === len) {
      mapping?.end();
      this.wrote(file, pos + len);
      return cb(len);
    }
    this.waitStarted(h);
    const growth = grows ? { oldSize, pos, done } : undefined;
    if (growth !== undefined) {
      let set = this.growing.get(file);
      if (set === undefined) this.growing.set(file, set = new Set());
      set.add(growth);
      this.syncFastReadBlock(file);
    }
    mapping?.end();
    void (async () => {
      try {
        while (done < len) {
          await vmo.system.waitFor(vmo.takeWait());
          // A truncate may have cut the file below this write's end while it waited: the write
          // then counts as made before the truncate (as if it had run first, the way Linux orders
          // the two): its bytes up to the new end land, the rest is what the truncate cut away.
          const end = Math.min(len, Math.max(0, vmo.contentSizeBytes - pos));
          if (done < end) done += vmo.writeStep(buf, done, pos + done, end - done);
          if (growth !== undefined) growth.done = done;
          if (end < len && done >= end) done = len;
        }
        this.wrote(file, Math.min(pos + done, vmo.contentSizeBytes));
        cb(done);
      } catch (err) {
        settle(done);
        if (done > 0) cb(done);
        else this.fail('write', p, err, cb);
      } finally {
        if (growth !== undefined) {
          const set = this.growing.get(file)!;
          set.delete(growth);
          if (set.size === 0) {
            this.growing.delete(file);
            this.syncFastReadBlock(file);
          }
        }
        this.waitEnded(h);
      }
    })();
  }

  /** A write or fallocate counted in writesInFlight was answered; the last one wakes refuseChanges. */
  private changeEnded(): void {
    if (--this.writesInFlight === 0) for (const w of this.writesDrained.splice(0)) w();
  }

  /** The last write of the file ended: apply a failed write's extension undo it deferred. */
  private undoDeferred(p: string, file: ServedFile): void {
    const undo = this.undoExtension.get(file);
    if (undo === undefined) return;
    this.undoExtension.delete(file);
    if (file.vmo.contentSizeBytes === undo.from) this.shrinkBack(p, file, Math.max(undo.to, this.writtenEnd.get(file) ?? 0));
  }

  private shrinkBack(p: string, file: ServedFile, size: number): void {
    if (size >= file.vmo.contentSizeBytes) return;
    try {
      file.vmo.resize(size);
    } catch (err) {
      this.log.warn({ path: p, err: (err as Error).message }, 'could not undo a failed write\'s extension');
    }
  }

  private wrote(file: ServedFile, end: number): void {
    if (end > (this.writtenEnd.get(file) ?? 0)) this.writtenEnd.set(file, end);
  }

  /** The file was truncated to `size`: acknowledged writes past it are gone. */
  private truncatedTo(file: ServedFile, size: number): void {
    if ((this.writtenEnd.get(file) ?? 0) > size) this.writtenEnd.set(file, size);
  }

  /**
   * Applies what a writer handle holds, once (unless a write was refused). Returns 0 or -errno
   * (EINVAL unless the refusal names its errno).
   */
  private applyControl(h: Handle): number {
    if (!h.writing || !h.dirtyControl || h.refused || h.control!.apply === undefined) return 0;
    h.dirtyControl = false;
    const text = h.buffer.toString('utf8');
    try {
      h.control!.apply?.(text);
    } catch (err) {
      this.log.warn({ file: h.control!.name, err: (err as Error).message }, 'control file write not applied');
      return (err as { errno?: number }).errno ?? -ERRNO.EINVAL;
    }
    this.log.info({ file: h.control!.name, text }, 'control file applied');
    return 0;
  }

  private writeControl(h: Handle, buf: Buffer, len: number, pos: number, cb: (n: number) => void): void {
    const c = h.control!;
    if (!c.writable) return cb(-ERRNO.EACCES);
    const end = pos + len;
    const next = Buffer.alloc(Math.max(h.buffer.length, end));
    h.buffer.copy(next);
    buf.copy(next, pos, 0, len);
    if (c.applyNow !== undefined) {
      const text = next.toString('utf8');
      c.applyNow(text).then((afterClose) => {
        h.buffer = next;
        h.written = true;
        if (afterClose !== undefined) h.afterClose = afterClose;
        this.log.info({ file: c.name, text: text.trim() }, 'control file applied');
        cb(len);
      }, (err: unknown) => {
        h.refused = true;
        this.log.warn({ file: c.name, text: text.trim(), err: (err as Error).message }, 'refused a control file write');
        cb(toErrno(err));
      });
      return;
    }
    try {
      c.validate?.(next.toString('utf8'));
    } catch (err) {
      this.log.warn({ file: c.name, err: (err as Error).message }, 'refused a control file write');
      h.refused = true;
      return cb((err as { errno?: number }).errno ?? -ERRNO.EINVAL); // EINVAL unless the refusal names its errno
    }
    h.buffer = next;
    h.dirtyControl = true;
    h.written = true;
    cb(len);
  }

  flush(p: string, fd: number, cb: Cb): void {
    const h = this.handles.get(fd);
    if (h === undefined) return cb(-ERRNO.EBADF);
    if (h.control !== null) {
      // Written text applies at close (flush), so a reader right after sees it. A handle closed with
      // nothing written applies only at release: shells dup2 and close a redirected fd before
      // writing, and that first close must not clear the rules for an instant.
      const res = h.written ? this.applyControl(h) : 0;
      cb(res);
      this.runAfterClose(h);
      return;
    }
    if (!h.writing) return cb(0);
    this.dp.writeback(h.file!).then(() => cb(0), (err: unknown) => this.fail('flush', p, err, cb));
  }

  fsync(p: string, _datasync: boolean, fd: number, cb: Cb): void {
    const h = this.handles.get(fd);
    if (h === undefined) return cb(-ERRNO.EBADF);
    if (h.control !== null) return cb(0);
    this.dp.writeback(h.file!, true).then(() => cb(0), (err: unknown) => this.fail('fsync', p, err, cb));
  }

  release(p: string, fd: number, cb: Cb): void {
    const h = this.handles.get(fd);
    this.unmapHandle(fd);
    this.handles.delete(fd);
    if (h?.control != null) {
      this.applyControl(h); // `: > faults` (opened for writing, nothing written) clears here
      cb(0);
      this.runAfterClose(h); // (no FLUSH came first)
      return;
    }
    if (h?.file == null) return cb(0);
    const files = h.movedFrom === undefined ? [h.file] : [h.file, ...h.movedFrom];
    Promise.all(files.map((f) => this.dp.release(f))).then(() => cb(0), (err: unknown) => this.fail('release', p, err, cb));
  }

  /** Runs, once and after the answer already given, what a control-file write asked for after close. */
  private runAfterClose(h: Handle): void {
    const after = h.afterClose;
    if (after === undefined) return;
    h.afterClose = undefined;
    setImmediate(after);
  }

  truncate(p: string, size: number, cb: Cb): void {
    const c = this.controlAtSafe(p);
    if (c !== undefined) {
      if (c === null || !c.writable) return cb(-ERRNO.EACCES);
      return cb(0); // O_TRUNC on a control file: the writer's handle starts empty anyway
    }
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    if (this.stopping) return cb(-ERRNO.ENOTCONN);
    void (async () => {
      let file: ServedFile | undefined;
      try {
        file = await this.dp.open(this.rel(p));
        await this.dp.truncate(file, size);
        this.truncatedTo(file, size);
        cb(0);
      } catch (err) {
        this.fail('truncate', p, err, cb);
      } finally {
        if (file !== undefined) await this.dp.release(file);
      }
    })();
  }

  ftruncate(p: string, fd: number, size: number, cb: Cb): void {
    const h = this.handles.get(fd);
    if (h === undefined) return cb(-ERRNO.EBADF);
    if (h.control !== null) return cb(0);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    if (this.stopping) return cb(-ERRNO.ENOTCONN);
    const file = h.file!;
    this.dp.truncate(file, size).then(() => {
      this.truncatedTo(file, size);
      cb(0);
    }, (err: unknown) => this.fail('ftruncate', p, err, cb));
  }

  /** fallocate(2) of an open file (mode as fallocate's; see DirectoryPager.fallocate). */
  fallocate(p: string, fd: number, mode: number, offset: number, length: number, cb: Cb): void {
    const h = this.handles.get(fd);
    if (h === undefined) return cb(-ERRNO.EBADF);
    if (h.control !== null) return cb(-ERRNO.EOPNOTSUPP);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    if (this.stopping) return cb(-ERRNO.ENOTCONN);
    // A change like a write: stopping waits for it before the last writeback.
    this.writesInFlight++;
    this.dp.fallocate(h.file!, mode, offset, length).then(
      () => { this.changeEnded(); cb(0); },
      (err: unknown) => { this.changeEnded(); this.fail('fallocate', p, err, cb); },
    );
  }

  unlink(p: string, cb: Cb): void {
    if (this.controlAtSafe(p) !== undefined) return cb(-ERRNO.EACCES);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    const full = this.backing(p);
    void (async () => {
      try {
        const st = await fsp.lstat(full);
        await fsp.unlink(full);
        if (st.isFile() && st.nlink <= 1) await this.dp.unlinked(identityOf(st));
        else if (st.isFile()) await this.metadataChanged(st); // the other names' inode
        cb(0);
      } catch (err) {
        this.fail('unlink', p, err, cb);
      }
    })();
  }

  rename(src: string, dest: string, cb: Cb): void {
    if (this.controlAtSafe(src) !== undefined || this.controlAtSafe(dest) !== undefined) return cb(-ERRNO.EACCES);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    const from = this.backing(src);
    const to = this.backing(dest);
    void (async () => {
      try {
        const replaced = await fsp.lstat(to).catch(() => null);
        await this.changingMetadata(from, () => fsp.rename(from, to));
        if (replaced !== null && replaced.isFile() && replaced.nlink <= 1) {
          const fromSt = await fsp.lstat(to);
          if (identityOf(fromSt) !== identityOf(replaced)) {
            await this.dp.unlinked(identityOf(replaced));
          }
        }
        this.dp.renamed(this.rel(src), this.rel(dest));
        cb(0);
      } catch (err) {
        this.fail('rename', src, err, cb);
      }
    })();
  }

  /**
   * Runs `op`, a change of the backing inode at `full` that moves its ctime and not its content
   * (chmod, chown, times, link, rename, an extended attribute), and tells the pager, so that the
   * next open does not take it for a change made outside and the handles open now keep sharing
   * the file's VMO with it (see DirectoryPager.metadataChanged).
   */
  private async changingMetadata<T>(full: string, op: () => Promise<T>, known?: FileStat): Promise<T> {
    const before = known ?? await fsp.lstat(full).catch(() => null);
    const res = await op();
    if (before !== null && before.isFile()) await this.metadataChanged(before);
    return res;
  }

  private async metadataChanged(before: FileStat): Promise<void> {
    await this.dp.metadataChanged(before).catch((err: unknown) =>
      this.log.debug({ err: (err as Error).message }, 'could not restamp a file after a metadata change'));
  }

  mkdir(p: string, mode: number, cb: Cb): void {
    const who = this.creator();
    if (this.rel(p) === CONTROL_DIR) return cb(-ERRNO.EEXIST);
    if (this.controlAtSafe(p) !== undefined) return cb(-ERRNO.EACCES);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    void (async () => {
      const full = this.backing(p);
      await fsp.mkdir(full, { mode: mode & 0o7777 });
      await this.settleNew(full, 'dir', mode, who);
    })().then(() => cb(0), (err: unknown) => this.fail('mkdir', p, err, cb));
  }

  /**
   * FIFOs, sockets, character and block devices (and regular files, though libfuse asks create for
   * those): mknod(2) through the patched fuse-native, then owner and mode as for create. `dev` is
   * the device number as the kernel sends it (32 bits, st_rdev's encoding).
   */
  mknod(p: string, mode: number, dev: number, cb: Cb): void {
    const who = this.creator();
    if (this.rel(p) === CONTROL_DIR) return cb(-ERRNO.EEXIST);
    if (this.controlAtSafe(p) !== undefined) return cb(-ERRNO.EACCES);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    void (async () => {
      const full = this.backing(p);
      await mknodNative(full, mode, dev);
      await this.settleNew(full, 'node', mode, who);
    })().then(() => cb(0), (err: unknown) => this.fail('mknod', p, err, cb));
  }

  rmdir(p: string, cb: Cb): void {
    if (this.controlAtSafe(p) !== undefined) return cb(-ERRNO.EACCES);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    fsp.rmdir(this.backing(p)).then(() => cb(0), (err: unknown) => this.fail('rmdir', p, err, cb));
  }

  symlink(target: string, p: string, cb: Cb): void {
    const who = this.creator();
    if (this.controlAtSafe(p) !== undefined) return cb(-ERRNO.EEXIST);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    // The link's text is stored as given; the kernel resolves it, never pagerfs.
    void (async () => {
      const full = this.backing(p);
      await fsp.symlink(target, full);
      await this.settleNew(full, 'symlink', null, who);
    })().then(() => cb(0), (err: unknown) => this.fail('symlink', p, err, cb));
  }

  readlink(p: string, cb: Cb<string>): void {
    this.tree.readlink(this.rel(p)).then((t) => cb(0, t), (err: unknown) => this.fail('readlink', p, err, cb));
  }

  link(src: string, dest: string, cb: Cb): void {
    if (this.controlAtSafe(src) !== undefined || this.controlAtSafe(dest) !== undefined) return cb(-ERRNO.EACCES);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    const from = this.backing(src);
    this.changingMetadata(from, () => fsp.link(from, this.backing(dest))).then(() => cb(0), (err: unknown) => this.fail('link', dest, err, cb));
  }

  /** `backing`: the binding's lstat of the backing file (level 15), made before this call. */
  chmod(p: string, mode: number, cb: Cb, backing?: BindingLstat): void {
    if (this.controlAtSafe(p) !== undefined) return cb(-ERRNO.EACCES);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    const full = this.backing(p);
    this.changingMetadata(full, () => fsp.chmod(full, mode & 0o7777), knownStat(backing))
      .then(() => cb(0), (err: unknown) => this.fail('chmod', p, err, cb));
  }

  /** `backing`: as for chmod. */
  chown(p: string, uid: number, gid: number, cb: Cb, backing?: BindingLstat): void {
    if (this.controlAtSafe(p) !== undefined) return cb(-ERRNO.EACCES);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    const full = this.backing(p);
    this.changingMetadata(full, () => fsp.lchown(full, uid, gid), knownStat(backing))
      .then(() => cb(0), (err: unknown) => this.fail('chown', p, err, cb));
  }

  /**
   * utimensat(2) on the backing file (lutimes: a symlink's own times). The patched fuse-native
   * (native/README.md) passes each time as a BigInt of nanoseconds since the epoch, or 'now' /
   * 'omit' (UTIME_NOW / UTIME_OMIT, for one time alone as `touch -a` / `touch -m` ask). Node cannot
   * omit a time or say "now": 'omit' re-sets the value lstat reads, 'now' is Date.now() (ms).
   * Precision: Node's lutimes takes seconds as a double and libuv truncates them to microseconds,
   * so the backing file gets each time to the microsecond (floored), exact while the double holds
   * the second with < 0.5 µs error (until 2106); nanoseconds below that are lost, also those of an
   * omitted time. The file's dirty pages are written back first, so that a later writeback does
   * not move the mtime. Unpatched fuse-native (numbers: ms, atime twice) is still accepted.
   * `backing`: as for chmod; it gives the times an omitted one keeps, without a trip to the pool.
   */
  utimens(p: string, atime: bigint | 'now' | 'omit' | number, mtime: bigint | 'now' | 'omit' | number, cb: Cb, backing?: BindingLstat): void {
    if (this.controlAtSafe(p) !== undefined) return cb(-ERRNO.EACCES);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    const target = this.backing(p);
    const done = (): void => cb(0);
    const failed = (err: unknown): void => this.fail('utimens', p, err, cb);
    if (typeof atime === 'number' || typeof mtime === 'number') {
      this.changingMetadata(target, () => fsp.lutimes(target, Number(atime) / 1000, Number(mtime) / 1000), knownStat(backing)).then(done, failed);
      return;
    }
    const now = BigInt(Date.now()) * 1_000_000n;
    // Seconds for lutimes such that libuv's truncation lands on floor(ns / 1000) µs: half a µs of
    // margin above (below, for times before 1970, where libuv truncates toward zero) absorbs the
    // double's rounding. Negative numbers are passed as strings: Node turns them into "now".
    const seconds = (ns: bigint): number | string => {
      const us = ns / 1000n - (ns % 1000n < 0n ? 1n : 0n);
      const sec = us / 1_000_000n - (us % 1_000_000n < 0n ? 1n : 0n);
      const frac = Number(us - sec * 1_000_000n) * 1000;
      const s = Number(sec) + (frac + (sec < 0n ? -500 : 500)) / 1e9;
      return s < 0 ? String(s) : s;
    };
    const known = knownStat(backing);
    (async () => {
      let current: { atimeNs: bigint; mtimeNs: bigint; dev: number | bigint; ino: number | bigint; isFile(): boolean } =
        known ?? await fsp.lstat(target, { bigint: true });
      // The stamp changingMetadata compares is the binding's, even across the writeback below: a file
      // with dirty pages is pagerfs's own until its last close, whose stamp no open compares, so a
      // stale stamp only skips a restamp that did not matter.
      // Dirty pages written back later would move the backing mtime past the time set here (cp -p,
      // tar and rsync set times after writing): write them back first, as NFS does before setattr.
      const file = current.isFile() ? this.dp.fileByIdentity(identityOf(current)) : undefined;
      if (file !== undefined) {
        await this.dp.writeback(file);
        // The writeback moved the mtime (its writes do not touch the atime): read it again if it stays.
        if (mtime === 'omit') current = await fsp.lstat(target, { bigint: true });
      }
      if (atime === 'omit' && mtime === 'omit') return;
      const pick = (t: bigint | 'now' | 'omit', cur: bigint): bigint => (t === 'omit' ? cur : t === 'now' ? now : t);
      const set = { atime: seconds(pick(atime, current.atimeNs)), mtime: seconds(pick(mtime, current.mtimeNs)) };
      await this.changingMetadata(target, () => fsp.lutimes(target, set.atime, set.mtime), known);
    })().then(done, failed);
  }

  statfs(p: string, cb: Cb<unknown>): void {
    this.tree.statfs().then((s) => cb(0, statfsReply(s)), (err: unknown) => this.fail('statfs', p, err, cb));
  }

  access(p: string, mode: number, cb: Cb): void {
    const c = this.controlAtSafe(p);
    if (c !== undefined) return cb((mode & fsc.W_OK) !== 0 && (c === null || !c.writable) ? -ERRNO.EACCES : 0);
    if ((mode & fsc.W_OK) !== 0 && this.tree.readOnly) return cb(-ERRNO.EROFS);
    this.tree.access(this.rel(p), mode).then(() => cb(0), (err: unknown) => this.fail('access', p, err, cb));
  }

  // ---------------------------------------------------------------------------------------------
  // Extended attributes (fs/xattr.ts): user.pagerfs.* are pagerfs's controls, the rest pass through.

  /** The lstat of a regular file for pagerfs's attributes, or ENODATA for anything else. */
  private async regularFile(p: string): Promise<FileStat> {
    const st = await this.tree.lstat(this.rel(p));
    if (!st.isFile()) throw errnoError('ENODATA', 'pagerfs attributes exist on regular files only');
    return st;
  }

  getxattr(p: string, name: string, _position: number, cb: (err: number, value?: Buffer) => void): void {
    if (this.controlAtSafe(p) !== undefined) return cb(-ERRNO.ENODATA);
    if (!name.startsWith(XATTR_PREFIX)) {
      // The backing file's own attribute, straight through (the common case, and hot under `ls -l`).
      const full = this.tree.backingPathOf(this.rel(p));
      if (full === null) return cb(-ERRNO.ENODATA);
      return backingGetXattrCb(full, name, (errno, value) => {
        if (errno === 0) return cb(0, value);
        if (errno !== -ERRNO.ENODATA) this.log.debug({ op: 'getxattr', path: p, name, errno }, 'operation failed');
        cb(errno);
      });
    }
    // Measured without opening the file (residencyAt): a walk over a tree must not empty it.
    const work = async (): Promise<Buffer> => {
      if (name === XATTR_RESIDENCY) return Buffer.from(residencyJson(await this.dp.residencyAt(this.rel(p), await this.regularFile(p))));
      if (name === XATTR_MAP) {
        const r = await this.dp.residencyAt(this.rel(p), await this.regularFile(p));
        return Buffer.from(encodeMap(r.runs, r.pages));
      }
      throw errnoError('ENODATA', `no pagerfs attribute "${name}"`);
    };
    work().then((v) => cb(0, v), (err: unknown) => this.fail('getxattr', p, err, cb));
  }

  setxattr(p: string, name: string, value: Buffer, _position: number, _flags: number, cb: Cb): void {
    if (this.controlAtSafe(p) !== undefined) return cb(-ERRNO.EACCES);
    const work = async (): Promise<void> => {
      if (name === XATTR_HINT) {
        const hint = parseHint(value.toString('utf8'));
        const resident = await this.dp.hintAt(this.rel(p), await this.regularFile(p), hint);
        this.log.info({ path: this.rel(p), hint, residentPages: resident }, 'hint applied');
        return;
      }
      if (name.startsWith(XATTR_PREFIX)) throw errnoError('EINVAL', `pagerfs attribute "${name}" cannot be set`);
      if (this.tree.readOnly) throw errnoError('EROFS', 'read-only file system');
      const full = this.backing(p);
      await this.changingMetadata(full, () => backingSetXattr(full, name, value));
    };
    work().then(() => cb(0), (err: unknown) => this.fail('setxattr', p, err, cb));
  }

  /**
   * The backing file's names only. pagerfs's user.pagerfs.* are read and set by name, never listed
   * (as other filesystems' virtual attributes): copiers (rsync -X, cp -a, tar --xattrs) copy and
   * remove what is listed. A backing file's own user.pagerfs.* names are left out too: through the
   * mount those names are pagerfs's, so they could be neither read nor removed.
   */
  listxattr(p: string, cb: (err: number, list?: string[]) => void): void {
    if (this.controlAtSafe(p) !== undefined) return cb(0, []);
    const full = this.tree.backingPathOf(this.rel(p));
    if (full === null) return cb(0, []);
    backingListXattr(full).then(
      (names) => cb(0, names.filter((n) => !n.startsWith(XATTR_PREFIX))),
      (err: unknown) => this.fail('listxattr', p, err, cb),
    );
  }

  /** user.pagerfs.* names are ENODATA, as for any name listxattr does not list; nothing changes. */
  removexattr(p: string, name: string, cb: Cb): void {
    if (this.controlAtSafe(p) !== undefined) return cb(-ERRNO.EACCES);
    if (name.startsWith(XATTR_PREFIX)) return cb(-ERRNO.ENODATA);
    if (this.tree.readOnly) return cb(-ERRNO.EROFS);
    const full = this.backing(p);
    this.changingMetadata(full, () => backingRemoveXattr(full, name)).then(() => cb(0), (err: unknown) => this.fail('removexattr', p, err, cb));
  }

  /** Open handles (for shutdown reports). */
  get openHandles(): number {
    return this.handles.size;
  }
}

/** The largest count fuse-native's statfs carries (it packs every field into a Uint32Array). */
const STATFS_MAX = 0xffff_ffff;

/**
 * What statfs answers for a tree's space. Counts past 2^32 − 1 would wrap in the binding (a module's
 * files of 32 TiB showed in `df` as a few GiB), so the fragment size (the unit of the block counts)
 * doubles until the blocks fit, and the file counts are capped.
 */
export function statfsReply(s: FileTreeSpace): Record<string, number> {
  let frsize = s.bsize;
  let { blocks, bfree, bavail } = s;
  while (blocks > STATFS_MAX) {
    frsize *= 2;
    blocks = Math.ceil(blocks / 2);
    bfree = Math.floor(bfree / 2);
    bavail = Math.floor(bavail / 2);
  }
  const files = Math.min(s.files, STATFS_MAX);
  const ffree = Math.min(s.ffree, STATFS_MAX);
  return { bsize: s.bsize, frsize, blocks, bfree, bavail, files, ffree, favail: ffree, fsid: 0, flag: 0, namemax: 255 };
}
