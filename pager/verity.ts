/**
 * Verity: a per-file SHA-256 hash tree, as Fuchsia's blobfs Merkle trees and Linux's fs-verity, for
 * the `verified` pager. `pagerfs seal <dir>` hashes every regular file of a directory into a sidecar
 * the directory keeps; the verified pager then checks each 4 KiB page against its file's tree before
 * supplying it, and fails a page whose bytes differ with ERR_IO_DATA_INTEGRITY (the reader gets EIO
 * for that range alone). `pagerfs seal --check <dir>` lists the damage without mounting.
 *
 * The tree of a file of S bytes and P = ceil(S / 4096) pages (hashes are 32-byte SHA-256 digests;
 * no salt, the same bytes always give the same tree):
 *  - level 0 (leaves): P hashes; leaf i = SHA-256 of page i, the last page zero-padded to 4096 bytes.
 *  - level k+1: ceil(n_k / 128) hashes; hash j = SHA-256 of the 4096-byte block holding level-k
 *    hashes [128j, 128j + 128) back to back, zero-padded when fewer than 128 remain.
 *  - the levels stop at the first level of one hash: that hash is the root. A one-page file's root
 *    is its only leaf. An empty file has no levels, and its root is SHA-256 of no bytes
 *    (e3b0c442…b855, EMPTY_ROOT_HASH).
 * The root does not bind the size (a page's zero padding looks like zero bytes), so the manifest
 * keeps the size beside it and every user of a tree compares sizes first.
 *
 * The sidecar, `<dir>/.pagerfs-verity/` (VERITY_DIR, hidden from a mounted view):
 *  - `manifest.json`: `{ format: "pagerfs-verity", version: 1, pageSizeBytes: 4096,
 *    hashAlgorithm: "sha256", hashesPerBlock: 128, sealedAt: ISO time, files: [{ path, sizeBytes,
 *    rootHash, mtimeMs }], skipped: [{ path, reason }] }`. `path` is relative to `dir`, '/'-separated;
 *    rootHash is 64 lowercase hex digits; mtimeMs is the file's mtime when sealed (information only:
 *    the bytes decide). Files are sorted by path.
 *  - `trees/<hex SHA-256 of the UTF-8 path>.tree`: every level of that file's tree, leaves first,
 *    each level's hashes back to back with no padding between levels, the root last: 32 * (sum of
 *    the level counts) bytes (0 bytes for an empty file). The name is derived, never read from the
 *    manifest, so a manifest cannot point outside the sidecar.
 * Damage: a manifest that is missing from an existing sidecar, does not parse, or has another format,
 * version, page size or hash is damaged as a whole (VerityError 'damaged'); a tree file that is
 * missing, has the wrong length, or whose levels do not hash up to the manifest's root is damaged
 * for its file alone.
 *
 * Sealing writes the whole new sidecar aside in `.pagerfs-verity.new-<id>/` (trees first, the
 * manifest last through a temp file and rename), then moves the old sidecar to
 * `.pagerfs-verity.old-<id>/`, renames the new one into place and deletes the old: an interrupted
 * seal leaves the old seal whole, or (between the two renames) no `.pagerfs-verity` at all, which
 * reads as "not sealed". The next seal deletes stray `.pagerfs-verity.new-*` / `.old-*` directories.
 * Tree files are not fsynced one by one (a crash may leave one short, which reads as damaged); the
 * manifest and the root directory are.
 *
 * Costs: a tree is 32 bytes per 4 KiB page (0.8%: 8 MiB for a 1 GiB file), read whole into memory
 * by openTree, which rehashes its upper levels (size / 128 bytes hashed). The stored upper levels
 * let a later reader check one leaf block through its path to the root instead, without a format
 * change.
 */
import { randomBytes, hash as sha256Hash } from 'node:crypto';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PAGE_SIZE } from '../src/index.js';

/** The sidecar directory at the root of a sealed directory. */
export const VERITY_DIR = '.pagerfs-verity';
/** The manifest inside VERITY_DIR. */
export const MANIFEST_FILE = 'manifest.json';
/** The tree files' directory inside VERITY_DIR. */
export const TREES_DIR = 'trees';
export const VERITY_FORMAT = 'pagerfs-verity';
export const VERITY_VERSION = 1;
/** SHA-256 digest size. */
export const HASH_BYTES = 32;
/** Hashes in one 4 KiB block of a level: 128. */
export const HASHES_PER_BLOCK = PAGE_SIZE / HASH_BYTES;
/** The root of an empty file: SHA-256 of no bytes. */
export const EMPTY_ROOT_HASH = sha256Hash('sha256', new Uint8Array(0), 'hex');

/** pagerfs's control directory (fs/control.ts CONTROL_DIR): a backing entry of that name is never served. */
const CONTROL_NAME = '.pagerfs';
/** Pages read per I/O when sealing or checking: 1 MiB, few system calls and a small buffer. */
const IO_CHUNK_PAGES = 256;
/** onProgress is called after each file and at least every this many bytes within a big one. */
const PROGRESS_EVERY_BYTES = 64 * 1024 * 1024;

if (!Number.isInteger(HASHES_PER_BLOCK) || HASHES_PER_BLOCK < 2) throw new Error('PAGE_SIZE must hold at least two SHA-256 hashes');

export type VerityErrorCode =
  /** The directory has no seal, or the path is not in it. */
  | 'not-sealed'
  /** The manifest (for the whole directory) or a tree file (for one file) does not hold up. */
  | 'damaged'
  /** A file changed while it was being sealed. */
  | 'changed'
  /** A read or write failed (the cause is in `cause`). */
  | 'io';

/**
 * A failure of verity's own: the message is one line, names the path and says what to do; `detail`
 * is the bare reason of a 'damaged' error (like "its tree file is missing"), for reports.
 */
export class VerityError extends Error {
  readonly detail?: string;

  constructor(readonly code: VerityErrorCode, message: string, options: { cause?: unknown; detail?: string } = {}) {
    super(message, { cause: options.cause });
    this.name = 'VerityError';
    this.detail = options.detail;
  }
}

export function isVerityError(err: unknown): err is VerityError {
  return err instanceof VerityError;
}

/** Why the walk left an entry out of the seal. */
export type SkipReason = 'symlink' | 'special' | 'reserved';

export interface SkippedEntry {
  /** Relative to the sealed directory, '/'-separated. */
  readonly path: string;
  /** symlink: not followed, not sealed; special: fifo, socket or device; reserved: `.pagerfs` at the root. */
  readonly reason: SkipReason;
}

/** One sealed file as the manifest records it. */
export interface SealedFile {
  /** Relative to the sealed directory, '/'-separated, no leading '/'. */
  readonly path: string;
  readonly sizeBytes: number;
  /** 64 lowercase hex digits. */
  readonly rootHash: string;
  /** The file's mtime when sealed (ms since the epoch). Information only. */
  readonly mtimeMs: number;
}

interface ManifestDocument {
  format: typeof VERITY_FORMAT;
  version: typeof VERITY_VERSION;
  pageSizeBytes: number;
  hashAlgorithm: 'sha256';
  hashesPerBlock: number;
  sealedAt: string;
  files: SealedFile[];
  skipped: SkippedEntry[];
}

// --- Tree geometry -------------------------------------------------------------------------------

/** Pages of a file of `sizeBytes`: ceil(sizeBytes / 4096). */
export function pageCountOf(sizeBytes: number): number {
  return Math.ceil(sizeBytes / PAGE_SIZE);
}

/** Hash counts of the levels, leaves first, for a file of `pageCount` pages: [] for none, [1] for one. */
export function treeLevelCounts(pageCount: number): number[] {
  const counts: number[] = [];
  if (pageCount === 0) return counts;
  let n = pageCount;
  counts.push(n);
  while (n > 1) {
    n = Math.ceil(n / HASHES_PER_BLOCK);
    counts.push(n);
  }
  return counts;
}

/** Bytes of the tree file of a file of `sizeBytes`. */
export function treeSizeBytes(sizeBytes: number): number {
  return treeLevelCounts(pageCountOf(sizeBytes)).reduce((a, b) => a + b, 0) * HASH_BYTES;
}

/** Byte range [start, end) of page `pageIndex` in a file of `sizeBytes` (end < start + 4096 for the last page). */
export function pageByteRange(sizeBytes: number, pageIndex: number): { start: number; end: number } {
  const start = pageIndex * PAGE_SIZE;
  return { start, end: Math.min(sizeBytes, start + PAGE_SIZE) };
}

/** Writes SHA-256 of `block` zero-padded to PAGE_SIZE into out[outOffset, +32). `padded` is PAGE_SIZE bytes of scratch. */
function hashBlockInto(block: Uint8Array, padded: Buffer, out: Buffer, outOffset: number): void {
  let input = block;
  if (block.length < PAGE_SIZE) {
    padded.set(block, 0);
    padded.fill(0, block.length);
    input = padded;
  }
  sha256Hash('sha256', input, 'buffer').copy(out, outOffset);
}

/**
 * Walks the blocks of `tree` (laid out as in a tree file) that hash into levels 1..: for level k+1,
 * each PAGE_SIZE block of level k with the offset of the hash it makes. Level by level, so a hash
 * written for level k+1 is there before level k+1's blocks are visited. Stops when `visit` says so.
 */
function eachUpperHash(tree: Buffer, counts: readonly number[], visit: (level: number, block: Buffer, hashOffset: number) => boolean): void {
  let levelStart = 0;
  for (let k = 0; k + 1 < counts.length; k++) {
    const nextStart = levelStart + counts[k] * HASH_BYTES;
    for (let j = 0; j < counts[k + 1]; j++) {
      const from = levelStart + j * PAGE_SIZE;
      if (!visit(k + 1, tree.subarray(from, Math.min(from + PAGE_SIZE, nextStart)), nextStart + j * HASH_BYTES)) return;
    }
    levelStart = nextStart;
  }
}

/** Fills levels 1.. of `tree` from its level 0, in place. */
function hashUpperLevels(tree: Buffer, counts: readonly number[], padded: Buffer): void {
  eachUpperHash(tree, counts, (_level, block, at) => {
    hashBlockInto(block, padded, tree, at);
    return true;
  });
}

/** The first level (1..) whose stored hashes differ from the hashes of the level below, or -1. */
function firstBadUpperLevel(tree: Buffer, counts: readonly number[]): number {
  const padded = Buffer.alloc(PAGE_SIZE);
  const digest = Buffer.alloc(HASH_BYTES);
  let bad = -1;
  eachUpperHash(tree, counts, (level, block, at) => {
    hashBlockInto(block, padded, digest, 0);
    if (sameHash(digest, 0, tree, at)) return true;
    bad = level;
    return false;
  });
  return bad;
}

function sameHash(a: Uint8Array, aOffset: number, b: Uint8Array, bOffset: number): boolean {
  for (let i = 0; i < HASH_BYTES; i++) if (a[aOffset + i] !== b[bOffset + i]) return false;
  return true;
}

/** The root of a tree buffer: its last hash, or EMPTY_ROOT_HASH for an empty file. */
function rootOf(tree: Buffer): string {
  return tree.length === 0 ? EMPTY_ROOT_HASH : tree.toString('hex', tree.length - HASH_BYTES);
}

// --- One file's tree ------------------------------------------------------------------------------

/**
 * The checked hash tree of one sealed file, in memory: answers whether bytes read from the file are
 * the sealed ones. Immutable once made; verifyPage is synchronous and shares only a scratch buffer
 * that no call keeps across an await, so any number of requests may use one tree.
 */
export class VerityTree {
  readonly pageCount: number;
  /** Bytes of the last page (1..4096), 0 for an empty file. */
  private readonly lastPageBytes: number;
  /** The leaf hashes (level 0 of `tree`), 32 bytes a page. */
  private readonly leaves: Buffer;
  /** The last page zero-padded, made on first use: its tail stays zero as only its head is ever written. */
  private lastPageScratch: Buffer | undefined;

  /** Use SealedDirectory#openTree; `tree` must already be checked against `rootHash`. */
  constructor(readonly path: string, readonly sizeBytes: number, readonly rootHash: string, tree: Buffer) {
    this.pageCount = pageCountOf(sizeBytes);
    this.lastPageBytes = sizeBytes - Math.max(0, this.pageCount - 1) * PAGE_SIZE;
    this.leaves = tree.subarray(0, this.pageCount * HASH_BYTES);
    if (tree.length !== treeSizeBytes(sizeBytes)) throw new Error(`VerityTree: tree of ${tree.length} bytes for ${sizeBytes} bytes`);
  }

  /** Bytes of page `pageIndex` in the file: 4096, or fewer for the last page. Throws RangeError past the end. */
  pageLengthBytes(pageIndex: number): number {
    this.checkPageIndex(pageIndex);
    return pageIndex === this.pageCount - 1 ? this.lastPageBytes : PAGE_SIZE;
  }

  /**
   * Whether `bytes` are page `pageIndex` as sealed. `bytes` holds the file's bytes of that page:
   * 4096 of them, or for the last page either its pageLengthBytes() bytes or a whole 4096-byte frame
   * whose tail past the end of file is zero (a frame with a non-zero tail does not match). Any other
   * length does not match (a short read from a file that shrank). One SHA-256 of 4 KiB per call; it
   * allocates only the digest. Throws RangeError for a page index outside [0, pageCount).
   */
  verifyPage(pageIndex: number, bytes: Uint8Array): boolean {
    this.checkPageIndex(pageIndex);
    return this.matches(pageIndex, bytes);
  }

  /**
   * Checks `countPages` pages from `firstPage` and returns the indices (in the file, ascending) of
   * those that do not match: [] when all do. `data` is either one buffer per page, or one contiguous
   * buffer holding page firstPage + j at bytes [4096 j, 4096 (j + 1)) (the last one may be cut short
   * by the buffer's end). countPages defaults to the pages `data` holds. Each page follows
   * verifyPage's rules. Throws RangeError when the pages run past the file or past `data`.
   */
  verifyPages(firstPage: number, data: Uint8Array | readonly Uint8Array[], countPages?: number): number[] {
    const held = data instanceof Uint8Array ? Math.ceil(data.length / PAGE_SIZE) : data.length;
    const count = countPages ?? held;
    if (!Number.isInteger(count) || count < 0 || count > held) {
      throw new RangeError(`verifyPages: ${count} pages asked, the data holds ${held}`);
    }
    if (count === 0) return [];
    this.checkPageIndex(firstPage);
    this.checkPageIndex(firstPage + count - 1);
    const bad: number[] = [];
    for (let j = 0; j < count; j++) {
      const bytes = data instanceof Uint8Array
        ? data.subarray(j * PAGE_SIZE, Math.min(data.length, (j + 1) * PAGE_SIZE))
        : data[j];
      if (!this.matches(firstPage + j, bytes)) bad.push(firstPage + j);
    }
    return bad;
  }

  /**
   * The leaf hashes of pages [firstPage, firstPage + countPages), 32 bytes each, as a view of the
   * tree (valid while the tree lives; do not write to it). For hashing pages elsewhere (a worker):
   * a page matches when SHA-256 of its 4096 bytes, the last page's zero tail included, is its leaf.
   */
  leafHashes(firstPage: number, countPages: number): Buffer {
    if (countPages === 0) return this.leaves.subarray(0, 0);
    this.checkPageIndex(firstPage);
    this.checkPageIndex(firstPage + countPages - 1);
    return this.leaves.subarray(firstPage * HASH_BYTES, (firstPage + countPages) * HASH_BYTES);
  }

  private matches(pageIndex: number, bytes: Uint8Array): boolean {
    const isLast = pageIndex === this.pageCount - 1;
    let input: Uint8Array;
    if (bytes.length === PAGE_SIZE) {
      // A full page, or a whole frame for the last page: its tail must be zero, which the hash checks.
      input = bytes;
    } else if (isLast && bytes.length === this.lastPageBytes) {
      this.lastPageScratch ??= Buffer.alloc(PAGE_SIZE);
      this.lastPageScratch.set(bytes, 0);
      input = this.lastPageScratch;
    } else {
      return false;
    }
    return sameHash(sha256Hash('sha256', input, 'buffer'), 0, this.leaves, pageIndex * HASH_BYTES);
  }

  private checkPageIndex(pageIndex: number): void {
    if (!Number.isInteger(pageIndex) || pageIndex < 0 || pageIndex >= this.pageCount) {
      throw new RangeError(`page ${pageIndex} is outside "${this.path}" (${this.pageCount} pages)`);
    }
  }
}

// --- Paths ----------------------------------------------------------------------------------------

/** The sidecar directory of `dir`. */
export function sidecarDir(dir: string): string {
  return path.join(path.resolve(dir), VERITY_DIR);
}

/** The tree file of `relPath` ('/'-separated, relative to `dir`). */
export function treeFilePath(dir: string, relPath: string): string {
  return path.join(sidecarDir(dir), TREES_DIR, `${sha256Hash('sha256', relPath, 'hex')}.tree`);
}

/**
 * Whether a path relative to the root of a sealed directory is verity's own (the sidecar, anything in
 * it, or a sealing's temp sidecar): a mounted view hides these.
 */
export function isSidecarPath(relPath: string): boolean {
  const first = relPath.replace(/^\/+/, '').split('/')[0];
  return first === VERITY_DIR || TEMP_SIDECAR.test(first);
}

/** The names sealDirectory gives its temp sidecars: `.pagerfs-verity.new-<pid>-<8 hex>` and `.old-`. */
const TEMP_SIDECAR = /^\.pagerfs-verity\.(?:new|old)-\d+-[0-9a-f]{8}$/;

/** `relPath` as the manifest spells it: '/'-separated, no leading '/', normalised. */
function manifestPath(relPath: string): string {
  return path.posix.normalize(relPath.replace(/^\/+/, ''));
}

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? String(err);
}

// --- Walking a directory --------------------------------------------------------------------------

/** The regular files under `root` (relative, '/'-separated, sorted) and what was left out. */
async function walk(root: string): Promise<{ files: string[]; skipped: SkippedEntry[] }> {
  const files: string[] = [];
  const skipped: SkippedEntry[] = [];
  const visit = async (relDir: string): Promise<void> => {
    let entries;
    try {
      entries = await fsp.readdir(path.join(root, relDir), { withFileTypes: true });
    } catch (err) {
      throw new VerityError('io', `Cannot list "${path.join(root, relDir)}" (${errnoOf(err)})`, { cause: err });
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const rel = relDir === '' ? e.name : `${relDir}/${e.name}`;
      if (relDir === '' && isSidecarPath(e.name)) continue;
      if (relDir === '' && e.name === CONTROL_NAME) skipped.push({ path: rel, reason: 'reserved' });
      else if (e.isSymbolicLink()) skipped.push({ path: rel, reason: 'symlink' });
      else if (e.isDirectory()) await visit(rel);
      else if (e.isFile()) files.push(rel);
      else skipped.push({ path: rel, reason: 'special' });
    }
  };
  await visit('');
  return { files, skipped };
}

/** Reads up to `length` bytes at `position` into buf[0, length); fewer only at end of file. */
async function readFully(fh: FileHandle, buf: Buffer, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

// --- Sealing --------------------------------------------------------------------------------------

export interface SealProgress {
  /** The file being sealed (relative). */
  readonly path: string;
  readonly filesDone: number;
  readonly filesTotal: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export interface SealOptions {
  /** Called after each file, and every 64 MiB within a big one. */
  onProgress?: (progress: SealProgress) => void;
}

export interface SealSummary {
  /** The sealed directory, absolute. */
  readonly dir: string;
  /** Where the trees and manifest are: `<dir>/.pagerfs-verity`. */
  readonly sidecarDir: string;
  readonly files: number;
  readonly bytes: number;
  readonly pages: number;
  /** Bytes of all tree files together. */
  readonly treeBytes: number;
  /** Entries not sealed: symlinks (not followed), special files, `.pagerfs` at the root. */
  readonly skipped: readonly SkippedEntry[];
  readonly elapsedMs: number;
}

/** Scratch buffers one sealing owns (never shared with another call). */
interface SealScratch {
  chunk: Buffer;
  padded: Buffer;
}

/**
 * Hashes one file into its tree. The file must keep its size and mtime while it is read: if it does
 * not, throws VerityError 'changed'; a failed read throws VerityError 'io'.
 */
async function sealFile(root: string, rel: string, scratch: SealScratch, onBytes: (bytes: number) => void): Promise<{ sealed: SealedFile; tree: Buffer }> {
  const full = path.join(root, rel);
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(full, 'r');
    const before = await fh.stat();
    const sizeBytes = before.size;
    const pageCount = pageCountOf(sizeBytes);
    const counts = treeLevelCounts(pageCount);
    const tree = Buffer.alloc(treeSizeBytes(sizeBytes));
    for (let first = 0; first < pageCount; first += IO_CHUNK_PAGES) {
      const position = first * PAGE_SIZE;
      const want = Math.min(IO_CHUNK_PAGES * PAGE_SIZE, sizeBytes - position);
      const got = await readFully(fh, scratch.chunk, want, position);
      if (got < want) throw new VerityError('changed', `"${rel}" shrank while it was being sealed: seal again`);
      for (let off = 0, page = first; off < got; off += PAGE_SIZE, page++) {
        hashBlockInto(scratch.chunk.subarray(off, Math.min(got, off + PAGE_SIZE)), scratch.padded, tree, page * HASH_BYTES);
      }
      onBytes(got);
    }
    const after = await fh.stat();
    if (after.size !== sizeBytes || after.mtimeMs !== before.mtimeMs) {
      throw new VerityError('changed', `"${rel}" changed while it was being sealed: seal again`);
    }
    hashUpperLevels(tree, counts, scratch.padded);
    return { sealed: { path: rel, sizeBytes, rootHash: rootOf(tree), mtimeMs: before.mtimeMs }, tree };
  } catch (err) {
    if (isVerityError(err)) throw err;
    throw new VerityError('io', `Cannot read "${full}" (${errnoOf(err)})`, { cause: err });
  } finally {
    await fh?.close();
  }
}

/** fsyncs a directory (its entries), ignoring filesystems that refuse. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch {
    // Some filesystems do not fsync directories; the rename is still atomic.
  } finally {
    await fh?.close();
  }
}

/** Deletes stray temp sidecars an interrupted seal left at the root. */
async function removeStraySidecars(root: string): Promise<void> {
  for (const e of await fsp.readdir(root, { withFileTypes: true })) {
    if (e.isDirectory() && TEMP_SIDECAR.test(e.name)) await fsp.rm(path.join(root, e.name), { recursive: true, force: true });
  }
}

/**
 * Seals `dir`: hashes every regular file under it (symlinks are not followed and not sealed; special
 * files, `.pagerfs` at the root and the sidecar itself are left out; all recorded in `skipped`) and
 * replaces its sidecar whole with the new trees and manifest (see the module header for the order).
 * Files are read once each, one at a time; memory is one 1 MiB buffer plus the biggest file's tree.
 * Throws VerityError 'changed' when a file changes while it is read, 'io' when a file or directory
 * cannot be read or the sidecar cannot be written; the old seal then stays as it was.
 */
export async function sealDirectory(dir: string, opts: SealOptions = {}): Promise<SealSummary> {
  const startedMs = performance.now();
  const root = path.resolve(dir);
  const target = sidecarDir(root);
  try {
    await removeStraySidecars(root);
  } catch (err) {
    throw new VerityError('io', `Cannot seal "${root}": cannot list or clean it (${errnoOf(err)})`, { cause: err });
  }
  const { files, skipped } = await walk(root);
  const sizes = await Promise.all(files.map(async (rel) => {
    try {
      return (await fsp.stat(path.join(root, rel))).size;
    } catch (err) {
      throw new VerityError('io', `Cannot read "${path.join(root, rel)}" (${errnoOf(err)})`, { cause: err });
    }
  }));
  const bytesTotal = sizes.reduce((a, b) => a + b, 0);

  const id = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const fresh = path.join(root, `${VERITY_DIR}.new-${id}`);
  const retired = path.join(root, `${VERITY_DIR}.old-${id}`);
  const scratch: SealScratch = { chunk: Buffer.alloc(IO_CHUNK_PAGES * PAGE_SIZE), padded: Buffer.alloc(PAGE_SIZE) };
  const sealed: SealedFile[] = [];
  let bytesDone = 0;
  let bytesReported = 0;
  let pages = 0;
  let treeBytes = 0;
  try {
    await mkdirOrIo(path.join(fresh, TREES_DIR));
    for (let i = 0; i < files.length; i++) {
      const rel = files[i];
      const { sealed: entry, tree } = await sealFile(root, rel, scratch, (n) => {
        bytesDone += n;
        if (bytesDone - bytesReported < PROGRESS_EVERY_BYTES) return;
        bytesReported = bytesDone;
        opts.onProgress?.({ path: rel, filesDone: i, filesTotal: files.length, bytesDone, bytesTotal });
      });
      await writeOrIo(path.join(fresh, TREES_DIR, `${sha256Hash('sha256', rel, 'hex')}.tree`), tree);
      sealed.push(entry);
      pages += pageCountOf(entry.sizeBytes);
      treeBytes += tree.length;
      opts.onProgress?.({ path: rel, filesDone: i + 1, filesTotal: files.length, bytesDone, bytesTotal });
    }
    const manifest: ManifestDocument = {
      format: VERITY_FORMAT,
      version: VERITY_VERSION,
      pageSizeBytes: PAGE_SIZE,
      hashAlgorithm: 'sha256',
      hashesPerBlock: HASHES_PER_BLOCK,
      sealedAt: new Date().toISOString(),
      files: sealed,
      skipped,
    };
    await writeManifest(fresh, manifest);
    await swapIn(root, fresh, target, retired);
  } catch (err) {
    await fsp.rm(fresh, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  await fsp.rm(retired, { recursive: true, force: true }).catch(() => undefined);
  return {
    dir: root, sidecarDir: target, files: sealed.length, bytes: bytesDone, pages, treeBytes, skipped,
    elapsedMs: performance.now() - startedMs,
  };
}

async function mkdirOrIo(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new VerityError('io', `Cannot create "${dir}" (${errnoOf(err)})`, { cause: err });
  }
}

async function writeOrIo(file: string, data: Uint8Array): Promise<void> {
  try {
    await fsp.writeFile(file, data);
  } catch (err) {
    throw new VerityError('io', `Cannot write "${file}" (${errnoOf(err)})`, { cause: err });
  }
}

/** Writes the manifest into `sidecar` through a temp file, fsynced, then renamed. */
async function writeManifest(sidecar: string, manifest: ManifestDocument): Promise<void> {
  const final = path.join(sidecar, MANIFEST_FILE);
  const temp = `${final}.tmp`;
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(temp, 'w');
    await fh.writeFile(`${JSON.stringify(manifest, null, 1)}\n`);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(temp, final);
  } catch (err) {
    throw new VerityError('io', `Cannot write "${final}" (${errnoOf(err)})`, { cause: err });
  } finally {
    await fh?.close();
  }
}

/** Moves the current sidecar (if any) to `retired` and `fresh` into its place. */
async function swapIn(root: string, fresh: string, target: string, retired: string): Promise<void> {
  await syncDir(fresh);
  try {
    await fsp.rename(target, retired);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw new VerityError('io', `Cannot replace "${target}" (${errnoOf(err)})`, { cause: err });
  }
  try {
    await fsp.rename(fresh, target);
  } catch (err) {
    // Put the old seal back rather than leave none.
    await fsp.rename(retired, target).catch(() => undefined);
    throw new VerityError('io', `Cannot move the new seal into "${target}" (${errnoOf(err)})`, { cause: err });
  }
  await syncDir(root);
}

// --- Loading a seal -------------------------------------------------------------------------------

/** Checks a parsed manifest's shape; returns the reason it is damaged, or undefined. */
function manifestProblem(doc: unknown): string | undefined {
  if (typeof doc !== 'object' || doc === null) return 'not a JSON object';
  const m = doc as Record<string, unknown>;
  if (m.format !== VERITY_FORMAT) return `format is ${JSON.stringify(m.format)}, not "${VERITY_FORMAT}"`;
  if (m.version !== VERITY_VERSION) return `format version ${JSON.stringify(m.version)}, this pagerfs reads version ${VERITY_VERSION}`;
  if (m.pageSizeBytes !== PAGE_SIZE) return `page size ${JSON.stringify(m.pageSizeBytes)}, this pagerfs uses ${PAGE_SIZE}`;
  if (m.hashAlgorithm !== 'sha256' || m.hashesPerBlock !== HASHES_PER_BLOCK) return 'hash is not sha256 with 128 hashes a block';
  if (typeof m.sealedAt !== 'string') return 'no sealedAt time';
  if (!Array.isArray(m.files)) return 'no files list';
  if (!Array.isArray(m.skipped)) return 'no skipped list';
  const seen = new Set<string>();
  for (const f of m.files as unknown[]) {
    if (typeof f !== 'object' || f === null) return 'a files entry is not an object';
    const e = f as Record<string, unknown>;
    const p = e.path;
    if (typeof p !== 'string' || p === '' || manifestPath(p) !== p || p === '.' || p.startsWith('../') || p === '..') {
      return `file path ${JSON.stringify(p)} is not a relative path`;
    }
    if (seen.has(p)) return `file "${p}" is listed twice`;
    seen.add(p);
    if (!Number.isSafeInteger(e.sizeBytes) || (e.sizeBytes as number) < 0) return `file "${p}" has no valid sizeBytes`;
    if (typeof e.rootHash !== 'string' || !/^[0-9a-f]{64}$/.test(e.rootHash)) return `file "${p}" has no valid rootHash`;
    if (typeof e.mtimeMs !== 'number' || !Number.isFinite(e.mtimeMs)) return `file "${p}" has no valid mtimeMs`;
  }
  for (const s of m.skipped as unknown[]) {
    const e = s as Record<string, unknown> | null;
    if (e === null || typeof e !== 'object' || typeof e.path !== 'string' || !['symlink', 'special', 'reserved'].includes(e.reason as string)) {
      return 'a skipped entry is not { path, reason }';
    }
  }
  return undefined;
}

/**
 * Reads `dir`'s seal. Throws VerityError 'not-sealed' when `dir` has no `.pagerfs-verity`, 'damaged'
 * when the sidecar has no manifest or the manifest does not parse or has another format, version,
 * page size or hash, and 'io' when it cannot be read. Reads the manifest only: trees are checked
 * one by one by openTree.
 */
export async function loadSeal(dir: string): Promise<SealedDirectory> {
  const root = path.resolve(dir);
  const sidecar = sidecarDir(root);
  const manifestFile = path.join(sidecar, MANIFEST_FILE);
  let text: string;
  try {
    text = await readRegularFile(manifestFile);
  } catch (err) {
    if (isVerityError(err)) {
      const detail = `${MANIFEST_FILE} is not a regular file`;
      throw new VerityError('damaged', `The seal of "${root}" is damaged (${detail}): run \`pagerfs seal ${root}\` again`, { detail });
    }
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const hasSidecar = await fsp.lstat(sidecar).then((st) => st.isDirectory(), () => false);
      if (!hasSidecar) throw new VerityError('not-sealed', `"${root}" is not sealed: run \`pagerfs seal ${root}\``, { cause: err });
      const detail = `${VERITY_DIR}/${MANIFEST_FILE} is missing`;
      throw new VerityError('damaged', `The seal of "${root}" is damaged (${detail}): run \`pagerfs seal ${root}\` again`, { cause: err, detail });
    }
    throw new VerityError('io', `Cannot read "${manifestFile}" (${code})`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    const detail = `${MANIFEST_FILE} is not JSON`;
    throw new VerityError('damaged', `The seal of "${root}" is damaged (${detail}): run \`pagerfs seal ${root}\` again`, { cause: err, detail });
  }
  const problem = manifestProblem(doc);
  if (problem !== undefined) {
    const detail = `${MANIFEST_FILE}: ${problem}`;
    throw new VerityError('damaged', `The seal of "${root}" is damaged (${detail}): run \`pagerfs seal ${root}\` again`, { detail });
  }
  return new SealedDirectory(root, doc as ManifestDocument);
}

/**
 * A regular file's text. Opened with O_NONBLOCK: a FIFO in its place would block open(2), and a
 * thread of libuv's pool, until a writer came; anything but a regular file throws a VerityError.
 */
async function readRegularFile(file: string): Promise<string> {
  const fh = await fsp.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) throw new VerityError('damaged', `"${file}" is not a regular file`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** A directory's seal as its manifest states it; trees are loaded (and checked) per file. */
export class SealedDirectory {
  /** The sealed directory, absolute. */
  readonly dir: string;
  /** When it was sealed (ISO 8601). */
  readonly sealedAt: string;
  /** Sealed files by relative path, in path order. */
  readonly files: ReadonlyMap<string, SealedFile>;
  /** What the seal left out. */
  readonly skipped: readonly SkippedEntry[];

  constructor(dir: string, manifest: ManifestDocument) {
    this.dir = dir;
    this.sealedAt = manifest.sealedAt;
    this.files = new Map(manifest.files.map((f) => [f.path, f]));
    this.skipped = manifest.skipped;
  }

  /** The manifest entry of `relPath` ('/'-separated; a leading '/' is ignored), or undefined. */
  entry(relPath: string): SealedFile | undefined {
    return this.files.get(manifestPath(relPath));
  }

  /**
   * Loads `relPath`'s tree and checks it against the manifest's root: the file's length, each upper
   * level against the level below, and the top against rootHash (costs hashing size / 128 bytes).
   * Throws VerityError 'not-sealed' when the path is not in the seal, 'damaged' when the tree file
   * is missing, has the wrong length or does not hash up to the root, and 'io' when it cannot be read.
   */
  async openTree(relPath: string): Promise<VerityTree> {
    const entry = this.entry(relPath);
    if (entry === undefined) {
      throw new VerityError('not-sealed', `"${relPath}" is not sealed in "${this.dir}": run \`pagerfs seal ${this.dir}\` again`);
    }
    const file = treeFilePath(this.dir, entry.path);
    const damaged = (why: string): VerityError =>
      new VerityError('damaged', `The hash tree of "${entry.path}" is damaged (${why}): run \`pagerfs seal ${this.dir}\` again`, { detail: why });
    const expected = treeSizeBytes(entry.sizeBytes);
    let tree: Buffer;
    let fh: FileHandle | undefined;
    try {
      // O_NONBLOCK: a FIFO (or device) put where the tree file was must not block the open, and with
      // it a thread of libuv's pool and the reader, forever; only a regular file of the right size is read.
      fh = await fsp.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
      const st = await fh.stat();
      if (!st.isFile()) throw damaged('its tree file is not a regular file');
      if (st.size !== expected) throw damaged(`its tree file holds ${st.size} bytes, ${expected} expected for ${entry.sizeBytes} bytes`);
      tree = Buffer.alloc(expected);
      let got = 0;
      while (got < expected) {
        const { bytesRead } = await fh.read(tree, got, expected - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got !== expected) throw damaged(`its tree file holds ${got} bytes, ${expected} expected for ${entry.sizeBytes} bytes`);
    } catch (err) {
      if (isVerityError(err)) throw err;
      if (errnoOf(err) === 'ENOENT') throw damaged('its tree file is missing');
      throw new VerityError('io', `Cannot read "${file}" (${errnoOf(err)})`, { cause: err });
    } finally {
      await fh?.close().catch(() => undefined);
    }
    const badLevel = firstBadUpperLevel(tree, treeLevelCounts(pageCountOf(entry.sizeBytes)));
    if (badLevel >= 0) throw damaged(`its levels ${badLevel - 1} and ${badLevel} disagree`);
    if (rootOf(tree) !== entry.rootHash) throw damaged('it does not hash up to the root in the manifest');
    return new VerityTree(entry.path, entry.sizeBytes, entry.rootHash, tree);
  }
}

// --- Checking without mounting --------------------------------------------------------------------

/** The state of one sealed file now. */
export type FileCheck =
  | { readonly path: string; readonly status: 'ok'; readonly sizeBytes: number; /** mtime differs from the seal's, bytes do not. */ readonly touched: boolean }
  | { readonly path: string; readonly status: 'missing'; readonly sealedSizeBytes: number; /** What is there instead, if anything. */ readonly now?: string }
  | { readonly path: string; readonly status: 'changed'; readonly sealedSizeBytes: number; readonly sizeBytes: number }
  | { readonly path: string; readonly status: 'damaged'; readonly reason: string }
  | { readonly path: string; readonly status: 'unreadable'; readonly code: string }
  | { readonly path: string; readonly status: 'corrupted'; readonly sizeBytes: number; /** Ascending. */ readonly badPages: readonly number[] };

export interface CheckReport {
  /** The checked directory, absolute. */
  readonly dir: string;
  readonly sealedAt: string;
  /** One entry per sealed file, in path order. */
  readonly files: readonly FileCheck[];
  /** Regular files present now that the seal does not hold (a file added since sealing). */
  readonly unsealed: readonly string[];
  readonly pagesChecked: number;
  readonly bytesChecked: number;
  /** Every sealed file is ok and nothing is unsealed. */
  readonly clean: boolean;
}

/**
 * Checks a sealed directory against its seal without mounting it: every sealed file's size, tree and
 * every page (each file is read whole, 1 MiB at a time), and which regular files are present but
 * not sealed. Throws VerityError 'not-sealed' or 'damaged' (manifest) as loadSeal does, and 'io' when
 * the directory cannot be listed; a file's own trouble goes into its FileCheck.
 */
export async function checkDirectory(dir: string): Promise<CheckReport> {
  const seal = await loadSeal(dir);
  const root = seal.dir;
  const present = await walk(root);
  const chunk = Buffer.alloc(IO_CHUNK_PAGES * PAGE_SIZE);
  const files: FileCheck[] = [];
  let pagesChecked = 0;
  let bytesChecked = 0;
  for (const entry of seal.files.values()) {
    const result = await checkFile(seal, entry, chunk);
    files.push(result.check);
    pagesChecked += result.pages;
    bytesChecked += result.bytes;
  }
  const unsealed = present.files.filter((rel) => !seal.files.has(rel));
  return {
    dir: root, sealedAt: seal.sealedAt, files, unsealed, pagesChecked, bytesChecked,
    clean: unsealed.length === 0 && files.every((f) => f.status === 'ok'),
  };
}

async function checkFile(seal: SealedDirectory, entry: SealedFile, chunk: Buffer): Promise<{ check: FileCheck; pages: number; bytes: number }> {
  const rel = entry.path;
  const full = path.join(seal.dir, rel);
  const st = await fsp.lstat(full).catch((err: unknown) => errnoOf(err));
  if (typeof st === 'string') {
    if (st === 'ENOENT' || st === 'ENOTDIR') return { check: { path: rel, status: 'missing', sealedSizeBytes: entry.sizeBytes }, pages: 0, bytes: 0 };
    return { check: { path: rel, status: 'unreadable', code: st }, pages: 0, bytes: 0 };
  }
  if (!st.isFile()) {
    const now = st.isSymbolicLink() ? 'a symlink' : st.isDirectory() ? 'a directory' : 'a special file';
    return { check: { path: rel, status: 'missing', sealedSizeBytes: entry.sizeBytes, now }, pages: 0, bytes: 0 };
  }
  if (st.size !== entry.sizeBytes) {
    return { check: { path: rel, status: 'changed', sealedSizeBytes: entry.sizeBytes, sizeBytes: st.size }, pages: 0, bytes: 0 };
  }
  let tree: VerityTree;
  try {
    tree = await seal.openTree(rel);
  } catch (err) {
    if (isVerityError(err) && err.code === 'damaged') {
      return { check: { path: rel, status: 'damaged', reason: err.detail ?? err.message }, pages: 0, bytes: 0 };
    }
    if (isVerityError(err) && err.code === 'io') return { check: { path: rel, status: 'unreadable', code: errnoOf(err.cause) }, pages: 0, bytes: 0 };
    throw err;
  }
  const badPages: number[] = [];
  let bytes = 0;
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(full, 'r');
    for (let first = 0; first < tree.pageCount; first += IO_CHUNK_PAGES) {
      const position = first * PAGE_SIZE;
      const want = Math.min(IO_CHUNK_PAGES * PAGE_SIZE, entry.sizeBytes - position);
      const got = await readFully(fh, chunk, want, position);
      if (got < want) {
        // Shrank while being checked.
        return { check: { path: rel, status: 'changed', sealedSizeBytes: entry.sizeBytes, sizeBytes: position + got }, pages: Math.ceil(bytes / PAGE_SIZE), bytes };
      }
      for (const p of tree.verifyPages(first, chunk.subarray(0, got))) badPages.push(p);
      bytes += got;
    }
  } catch (err) {
    return { check: { path: rel, status: 'unreadable', code: errnoOf(err) }, pages: 0, bytes };
  } finally {
    await fh?.close();
  }
  const pages = tree.pageCount;
  if (badPages.length > 0) return { check: { path: rel, status: 'corrupted', sizeBytes: entry.sizeBytes, badPages }, pages, bytes };
  return { check: { path: rel, status: 'ok', sizeBytes: entry.sizeBytes, touched: st.mtimeMs !== entry.mtimeMs }, pages, bytes };
}
