/**
 * ModulePager: the host of a pager module that declares its files (pager/module.ts).
 *
 * It turns the module's declarations into a read-only tree (directories implied by the paths), gives
 * each file a pager VMO at its first open (shared by every handle, kept as a cache after the last
 * close), and hands each READ job, after the fault rules, to the module's `read`. Everything a
 * reader relies on stays the host's job: a module that throws fails that request with ERR_IO (the
 * PortServer logs the stack) and the mount keeps serving; one that never answers holds only its own
 * readers, who end with ERR_TIMED_OUT, while its slot is given back after the answer timeout.
 *
 * Files that change: when `files` is a function it is asked again at every lookup and listing. A
 * file whose size or mtime changed is a new file (new identity, new VMO at its next open); handles
 * open on the old one keep reading it until they close. A declaration list that fails validation
 * after mounting is logged and the last good one stays.
 */
import { constants as fsc } from 'node:fs';
import {
  MAX_VMO_SIZE_BYTES, PAGE_SIZE, ZxError, ZxStatus,
  type VmObjectPaged,
} from '../src/index.js';
import {
  PagerModuleError, firstLine, type FileDeclaration, type PagerDefinition, type ReadRequest,
} from './module.js';
import type { PageJob } from './port-server.js';
import {
  PagerService, ServedFile, fsError, missingRuns,
  type FileStat, type FileTree, type FileTreeSpace, type PagerServiceOptions,
} from './service.js';

/** One name of the declared tree. */
interface TreeEntry {
  /** Normalised path ('' for the root). */
  readonly path: string;
  readonly ino: number;
  /** The declaration of a file; undefined for a directory. */
  readonly decl: FileDeclaration | undefined;
  /** Names inside a directory. */
  readonly children: Set<string>;
}

/** A validated declaration list, indexed by normalised path ('' is the root). */
interface TreeSnapshot {
  readonly entries: Map<string, TreeEntry>;
  readonly totalBytes: number;
}

/** A declared file with its VMO. */
export class DeclaredFile extends ServedFile {
  constructor(key: number, relPath: string, identity: string, vmo: VmObjectPaged, readonly decl: FileDeclaration, readonly ino: number) {
    super(key, relPath, identity, vmo, false);
  }
}

/** Normalises a declared path ('a//b/' → 'a/b'), or throws naming what is wrong with it. */
function normalisePath(p: unknown): string {
  if (typeof p !== 'string') throw new PagerModuleError(`a declared file has a path of type ${typeof p}, not a string`);
  const parts = p.split('/').filter((s) => s !== '');
  if (parts.length === 0) throw new PagerModuleError(`declared path "${p}" names the root, not a file`);
  for (const s of parts) {
    if (s === '.' || s === '..' || s.includes('\0')) throw new PagerModuleError(`declared path "${p}" has a "${s}" segment`);
    if (Buffer.byteLength(s) > 255) throw new PagerModuleError(`declared path "${p}" has a name longer than 255 bytes`);
  }
  if (parts[0] === '.pagerfs') throw new PagerModuleError(`declared path "${p}" is inside .pagerfs, pagerfs's control directory`);
  return parts.join('/');
}

export interface ModulePagerOptions extends PagerServiceOptions {
  definition: PagerDefinition;
  /** The module's name, for logs. */
  name: string;
}

export class ModulePager extends PagerService<DeclaredFile> {
  readonly tree: FileTree;
  readonly name: string;
  private readonly definition: PagerDefinition;
  private snapshot: TreeSnapshot;
  /** Inode numbers by path, for the mount's life: a name keeps its number while it exists. */
  private readonly inos = new Map<string, number>([['', 1]]);
  private readonly mountTime = new Date();
  private readonly uid = process.geteuid?.() ?? 0;
  private readonly gid = process.getegid?.() ?? 0;

  /** Throws PagerModuleError when the module's first declaration list is invalid. */
  constructor(options: ModulePagerOptions) {
    super(options);
    this.definition = options.definition;
    this.name = options.name;
    this.snapshot = this.buildSnapshot(this.declarations());
    this.tree = new DeclaredTree(this);
  }

  private declarations(): readonly FileDeclaration[] {
    const files = this.definition.files;
    let list: readonly FileDeclaration[];
    try {
      list = typeof files === 'function' ? files() : files;
    } catch (err) {
      this.log.debug({ err }, 'the pager module\'s files() threw');
      throw new PagerModuleError(`the ${this.name} pager's files() threw: ${firstLine(err)}`);
    }
    if (!Array.isArray(list)) throw new PagerModuleError(`the ${this.name} pager's files is not a list`);
    return list;
  }

  private buildSnapshot(list: readonly FileDeclaration[]): TreeSnapshot {
    const entries = new Map<string, TreeEntry>([['', { path: '', ino: 1, decl: undefined, children: new Set() }]]);
    let totalBytes = 0;
    for (const decl of list) {
      const rel = normalisePath(decl?.path);
      const size = decl.sizeBytes;
      if (!Number.isSafeInteger(size) || size < 0 || size > MAX_VMO_SIZE_BYTES) {
        throw new PagerModuleError(`declared file "${rel}" has a bad size ${String(size)} (bytes, 0 … ${MAX_VMO_SIZE_BYTES})`);
      }
      if (decl.mode !== undefined && (!Number.isInteger(decl.mode) || decl.mode < 0 || decl.mode > 0o7777)) {
        throw new PagerModuleError(`declared file "${rel}" has a bad mode ${String(decl.mode)} (permission bits, 0 … 0o7777)`);
      }
      if (decl.mtime !== undefined && !(decl.mtime instanceof Date && Number.isFinite(decl.mtime.getTime()))) {
        throw new PagerModuleError(`declared file "${rel}" has a bad mtime (a valid Date)`);
      }
      if (entries.has(rel)) throw new PagerModuleError(`declared path "${rel}" appears twice (or is also a directory)`);
      // Directories are implied by the paths; a file may not stand where a directory is needed.
      const parts = rel.split('/');
      for (let i = 1; i <= parts.length; i++) {
        const dir = parts.slice(0, i - 1).join('/');
        const here = parts.slice(0, i).join('/');
        const parent = entries.get(dir)!;
        if (parent.decl !== undefined) throw new PagerModuleError(`declared path "${rel}" lies under the file "${dir}"`);
        parent.children.add(parts[i - 1]);
        if (i < parts.length && !entries.has(here)) entries.set(here, { path: here, ino: this.inoOf(here), decl: undefined, children: new Set() });
      }
      entries.set(rel, { path: rel, ino: this.inoOf(rel), decl: { ...decl, path: rel }, children: new Set() });
      totalBytes += size;
    }
    return { entries, totalBytes };
  }

  private inoOf(rel: string): number {
    let ino = this.inos.get(rel);
    if (ino === undefined) {
      ino = this.inos.size + 1;
      this.inos.set(rel, ino);
    }
    return ino;
  }

  /** The declared tree now: asks a changing module again, and retires files that changed. */
  currentTree(): TreeSnapshot {
    if (typeof this.definition.files !== 'function') return this.snapshot;
    try {
      this.snapshot = this.buildSnapshot(this.declarations());
    } catch (err) {
      this.log.error({ pager: this.name, err: (err as Error).message }, 'the pager declared a bad file list; keeping the last good one');
      return this.snapshot;
    }
    for (const f of this.files()) {
      if (f.retired) continue;
      const e = this.snapshot.entries.get(f.relPath);
      if (e?.decl === undefined || this.identityOf(e) !== f.identity) this.retire(f);
    }
    return this.snapshot;
  }

  /** A file's identity: a change of size or mtime makes it a new file with a new VMO. */
  private identityOf(e: TreeEntry): string {
    return `module:${e.ino}:${e.decl!.sizeBytes}:${e.decl!.mtime?.getTime() ?? 0}`;
  }

  entryAt(relPath: string): TreeEntry {
    const rel = relPath.replace(/^\/+|\/+$/g, '');
    const e = this.currentTree().entries.get(rel);
    if (e === undefined) throw fsError('ENOENT', 2, `no file "${rel}" in the ${this.name} pager's tree`);
    return e;
  }

  statOfEntry(e: TreeEntry): FileStat {
    const isFile = e.decl !== undefined;
    const time = e.decl?.mtime ?? this.mountTime;
    return {
      mode: isFile ? fsc.S_IFREG | (e.decl!.mode ?? 0o444) : fsc.S_IFDIR | 0o555,
      uid: this.uid, gid: this.gid, size: isFile ? e.decl!.sizeBytes : 4096, dev: 0, ino: e.ino,
      nlink: isFile ? 1 : 2 + this.subdirectories(e),
      rdev: 0, atime: time, mtime: time, ctime: time, mtimeMs: time.getTime(), ctimeMs: time.getTime(),
      isFile: () => isFile, isDirectory: () => !isFile,
    } as FileStat;
  }

  /** Directories directly inside `dir` (a directory's link count is 2 + this). */
  private subdirectories(dir: TreeEntry): number {
    let n = 0;
    for (const name of dir.children) {
      if (this.snapshot.entries.get(dir.path === '' ? name : `${dir.path}/${name}`)?.decl === undefined) n++;
    }
    return n;
  }

  totalBytes(): number {
    return this.snapshot.totalBytes;
  }

  // ---------------------------------------------------------------------------------------------
  // PagerService.

  async open(relPath: string): Promise<DeclaredFile> {
    if (this.shuttingDown) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the pager is shutting down');
    const e = this.entryAt(relPath);
    if (e.decl === undefined) throw fsError('EISDIR', 21, `"${relPath}" is a directory`);
    const identity = this.identityOf(e);
    const existing = this.fileByIdentity(identity);
    if (existing !== undefined) {
      existing.opens++;
      return existing;
    }
    const key = this.nextKey++;
    const vmo = this.pager.createVmo(0, this.port, key, e.decl.sizeBytes);
    vmo.name = e.decl.path.split('/').pop() ?? e.decl.path;
    const file = new DeclaredFile(key, e.decl.path, identity, vmo, e.decl, e.ino);
    file.opens = 1;
    this.register(file);
    return file;
  }

  async statFile(file: DeclaredFile): Promise<FileStat> {
    return this.statOfEntry({ path: file.relPath, ino: file.ino, decl: file.decl, children: new Set() });
  }

  /** Module files never hold dirty pages (writes are refused): nothing to write. */
  async writeback(_file: DeclaredFile, _sync?: boolean): Promise<void> {}

  async truncate(file: DeclaredFile, _sizeBytes: number): Promise<void> {
    throw fsError('EROFS', 30, `"${file.relPath}" is served by the ${this.name} pager, read-only`);
  }

  protected async answerRead(file: DeclaredFile, job: PageJob): Promise<void> {
    const vmo = file.vmo;
    const length = Math.min(job.offset + job.length, vmo.sizeBytes) - job.offset;
    if (length <= 0) return; // shrank under the request: the kernel retried its waiters
    const reqEnd = (job.offset + length) / PAGE_SIZE;
    // Pages being read ahead now: wait for them, then ask only for what is still missing.
    const waiting = this.afterInFlight(file, job.offset / PAGE_SIZE, reqEnd);
    const missing = waiting === null ? null : await waiting;
    if (missing !== null) {
      for (const [s0, e0] of missing) await this.askModule(file, s0 * PAGE_SIZE, (e0 - s0) * PAGE_SIZE, false);
      return;
    }
    // Readahead: plan the window after the request now, ask for it once the request is answered.
    // With readahead off no window is ever planned, so no marker is armed and noteRead never fires.
    const aheadEnd = this.definition.readahead === false ? reqEnd : this.planReadahead(file, job.offset / PAGE_SIZE, reqEnd);
    await this.askModule(file, job.offset, length, false);
    if (aheadEnd > reqEnd) this.readAhead(file, reqEnd, aheadEnd);
  }

  /**
   * Calls the module's `read` for [offsetBytes, +lengthBytes) and settles when it does, or as soon
   * as every page of the range has been answered through the request (supply, supplyWith, fail),
   * whichever comes first: a module that answers and then keeps its promise pending (awaiting a log
   * write, a connection that never returns) must not hold a job slot, and with it every other
   * file's reads, until the request timeout. What its promise does later is only logged.
   */
  private askModule(file: DeclaredFile, offsetBytes: number, lengthBytes: number, prefetch: boolean): Promise<void> {
    let answered!: () => void;
    const allAnswered = new Promise<void>((r) => { answered = r; });
    const pending = new Uint8Array(Math.ceil(lengthBytes / PAGE_SIZE)).fill(1);
    let left = pending.length;
    const first = offsetBytes / PAGE_SIZE;
    const mark = (at: number, length: number): void => {
      if (left === 0) return;
      const from = Math.max(first, Math.floor(at / PAGE_SIZE));
      const to = Math.min(first + pending.length, Math.ceil((at + length) / PAGE_SIZE));
      for (let p = from; p < to; p++) {
        if (pending[p - first] === 1) {
          pending[p - first] = 0;
          if (--left === 0) answered();
        }
      }
    };
    const result = this.definition.read(this.request(file, offsetBytes, lengthBytes, prefetch, mark));
    if (result === undefined || typeof (result as Promise<void>)?.then !== 'function') {
      if (left > 0 && !prefetch) this.noteUnanswered(file, offsetBytes, lengthBytes, pending);
      return Promise.resolve();
    }
    const settled = Promise.resolve(result);
    if (left === 0) {
      this.lateOutcome(file, offsetBytes, lengthBytes, settled);
      return Promise.resolve();
    }
    return Promise.race([settled.then(() => true), allAnswered.then(() => false)]).then((moduleSettled) => {
      if (!moduleSettled) this.lateOutcome(file, offsetBytes, lengthBytes, settled);
      else if (left > 0 && !prefetch) this.noteUnanswered(file, offsetBytes, lengthBytes, pending);
    });
  }

  /**
   * The module's read returned (or settled) with pages of its request neither supplied nor failed:
   * their readers wait until --request-timeout unless it answers later. Said once a request, so the
   * module's author sees why a read hangs (the overtime warning comes only halfway to the timeout).
   */
  private noteUnanswered(file: DeclaredFile, offsetBytes: number, lengthBytes: number, pending: Uint8Array): void {
    if (file.completed) return;
    const start = offsetBytes / PAGE_SIZE;
    let pages = 0;
    let first = -1;
    // Pages not answered through the request and not present (a module may use the raw syscalls).
    for (const [a, b] of missingRuns(file.vmo, start, Math.min(start + pending.length, file.vmo.sizePages))) {
      for (let p = a; p < b; p++) {
        if (pending[p - start] === 0) continue;
        pages++;
        if (first < 0) first = p;
      }
    }
    if (pages === 0) return;
    this.log.warn({ path: file.relPath, offset: offsetBytes, length: lengthBytes, unansweredPages: pages, firstUnanswered: first * PAGE_SIZE },
      'the pager module\'s read returned without answering every page of its request: their readers wait until --request-timeout unless it answers them later');
  }

  /** A module's read promise that outlives its answer: a later rejection is logged, never unhandled. */
  private lateOutcome(file: DeclaredFile, offsetBytes: number, lengthBytes: number, settled: Promise<void>): void {
    settled.catch((err: unknown) => this.log.warn({ path: file.relPath, offset: offsetBytes, length: lengthBytes, err },
      'the pager module\'s read failed after answering every page of its request'));
  }

  /** Asks the module for pages [start, end) that nobody waits on (prefetch); errors only logged. */
  protected override readAhead(file: DeclaredFile, start: number, end: number): void {
    this.inFlight(file, start, end, () => this.askModule(file, start * PAGE_SIZE, (end - start) * PAGE_SIZE, true)).then(
      () => { this.metrics.readaheadPages += end - start; },
      (err: unknown) => this.log.debug({ path: file.relPath, offset: start * PAGE_SIZE, err }, 'readahead request failed in the pager module'),
    );
  }

  /** The request the module sees; `answered` is told of each range it supplied or failed through it. */
  private request(file: DeclaredFile, offsetBytes: number, lengthBytes: number, prefetch: boolean,
    answered: (at: number, length: number) => void): ReadRequest {
    const vmo = file.vmo;
    return {
      path: file.relPath,
      key: file.key,
      offsetBytes,
      lengthBytes,
      sizeBytes: vmo.contentSizeBytes,
      prefetch,
      vmo,
      pager: this.pager,
      supply: (at, data) => {
        this.supplyBytes(file, at, data);
        answered(at, data.length);
      },
      supplyWith: (at, length, fill) => {
        const done = this.supplyFilled(file, at, length, fill).then(() => answered(at, length));
        // A module that does not await supplyWith (or drops its promise) must not bring the daemon
        // down with an unhandled rejection: the failure is logged here, and the module still sees
        // it if it awaits. Those pages stay unanswered (the module may answer them otherwise).
        done.catch((err: unknown) => this.log.warn({ path: file.relPath, offset: at, length, err },
          'a supplyWith of the pager module failed: those pages were not supplied'));
        return done;
      },
      fail: (status, at = offsetBytes, length = lengthBytes) => {
        if (typeof status !== 'number') {
          throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `fail(status): the status must be a ZxStatus such as api.ZxStatus.ERR_IO, not ${kindOf(status)}`);
        }
        this.failRange(file, at, length, status);
        answered(at, length);
      },
    };
  }

  /** No writes reach module files (open for writing is EROFS); a DIRTY request is refused. */
  protected async answerDirty(file: DeclaredFile, job: PageJob): Promise<void> {
    this.failRange(file, job.offset, job.length, ZxStatus.ERR_BAD_STATE);
  }

  /**
   * The module's close(). Its failure is the module's, logged as such: it loses nothing (module
   * files take no writes), so it does not make the unmount, or the daemon's exit, a failure (it used
   * to be logged as "unmount failed" after "pagerfs unmounted", and the daemon exited 1).
   */
  protected override async afterShutdown(): Promise<void> {
    try {
      await this.definition.close?.();
    } catch (err) {
      this.log.error({ err }, 'the pager module\'s close() failed');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Supplying for the module.

  private checkSupplyRange(file: DeclaredFile, offsetBytes: number, lengthBytes: number): void {
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || offsetBytes % PAGE_SIZE !== 0) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `supply at offset ${String(offsetBytes)}: the offset must be a page-aligned byte offset (a multiple of ${PAGE_SIZE})`);
    }
    if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 0) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `supply of ${String(lengthBytes)} bytes at offset ${offsetBytes}: the length must be a whole number of bytes`);
    }
    if (offsetBytes + lengthBytes > file.vmo.sizeBytes) {
      throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE, `supply of [${offsetBytes}, ${offsetBytes + lengthBytes}) runs past "${file.relPath}" (${file.vmo.sizeBytes} bytes of pages)`);
    }
  }

  private supplyBytes(file: DeclaredFile, offsetBytes: number, data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `supply(offset, data) at offset ${String(offsetBytes)}: data must be a Buffer or Uint8Array, not ${kindOf(data)}`);
    }
    this.checkSupplyRange(file, offsetBytes, data.length);
    const length = Math.ceil(data.length / PAGE_SIZE) * PAGE_SIZE;
    if (length === 0) return;
    // Synchronous from allocation to supply: the aux frames are never held across an await.
    const aux = this.system.createVmo(length);
    try {
      let pos = 0;
      for (const view of aux.mapPages(0, length, { zeroFill: false })) {
        const n = Math.max(0, Math.min(view.length, data.length - pos));
        if (n > 0) view.set(data.subarray(pos, pos + n));
        if (n < view.length) view.fill(0, n);
        pos += view.length;
      }
      this.supply(file, offsetBytes / PAGE_SIZE, length / PAGE_SIZE, aux);
    } finally {
      aux.close();
    }
  }

  private supplyFilled(file: DeclaredFile, offsetBytes: number, lengthBytes: number, fill: (pages: Buffer[]) => void | Promise<void>): Promise<void> {
    this.checkSupplyRange(file, offsetBytes, lengthBytes);
    if (lengthBytes % PAGE_SIZE !== 0) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `supplyWith length ${lengthBytes} must be page-aligned`);
    }
    if (lengthBytes === 0) return Promise.resolve();
    // The frames are held while the module fills them (maybe across awaits): a budget change waits.
    return this.whileFilling(async () => {
      const aux = this.system.createVmo(lengthBytes);
      try {
        await fill(aux.mapPages(0, lengthBytes, { zeroFill: true }));
        this.supply(file, offsetBytes / PAGE_SIZE, lengthBytes / PAGE_SIZE, aux);
      } finally {
        aux.close();
      }
    });
  }
}

/** What a value is, for an error message ("a string", "null", "an ArrayBuffer"). */
function kindOf(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value !== 'object') return `a ${typeof value}`;
  const name = (value as object).constructor?.name ?? 'Object';
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
}

/** The declared files as the mount shows them. */
class DeclaredTree implements FileTree {
  readonly readOnly = true;

  constructor(private readonly mp: ModulePager) {}

  async lstat(relPath: string): Promise<FileStat> {
    return this.mp.statOfEntry(this.mp.entryAt(relPath));
  }

  async readdir(relPath: string): Promise<string[]> {
    const e = this.mp.entryAt(relPath);
    if (e.decl !== undefined) throw fsError('ENOTDIR', 20, `"${relPath}" is a file`);
    return [...e.children];
  }

  async readlink(relPath: string): Promise<string> {
    this.mp.entryAt(relPath);
    throw fsError('EINVAL', 22, `"${relPath}" is not a symbolic link`);
  }

  async access(relPath: string, mode: number): Promise<void> {
    const e = this.mp.entryAt(relPath);
    if ((mode & fsc.W_OK) !== 0) throw fsError('EROFS', 30, 'read-only file system');
    if ((mode & fsc.X_OK) !== 0 && e.decl !== undefined && ((e.decl.mode ?? 0o444) & 0o111) === 0) {
      throw fsError('EACCES', 13, `"${relPath}" is not executable`);
    }
  }

  async statfs(): Promise<FileTreeSpace> {
    const blocks = Math.ceil(this.mp.totalBytes() / PAGE_SIZE);
    return { bsize: PAGE_SIZE, blocks, bfree: 0, bavail: 0, files: this.mp.currentTree().entries.size, ffree: 0 };
  }

  backingPathOf(): null {
    return null;
  }

  backingRoot(): null {
    return null;
  }
}
