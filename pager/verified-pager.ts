/**
 * The verified pager: a DirectoryPager over a sealed directory (pagerfs seal, pager/verity.ts) that
 * serves it read-only and checks every page against the file's SHA-256 hash tree before supplying
 * it, as Fuchsia's blobfs does with its Merkle trees (and Linux fs-verity).
 *
 * Rules:
 *  - Open: a file gets a VMO only if the seal has it, its tree loads and hashes up to the manifest's
 *    root, and its size is the sealed size; otherwise the open fails with EIO and the log says why
 *    (not sealed, tree damaged, changed since sealing).
 *  - Fill: pages are read straight into aux frames as the directory pager does, then hashed; a page
 *    whose hash is not its leaf is never supplied: the reader of that page gets EIO
 *    (ERR_IO_DATA_INTEGRITY), the other pages of the same read are supplied, and the log names the
 *    path and offset. Readahead pages that fail are just not supplied (their reader meets the
 *    failure when it asks). Verification is per page, so only the pages touched by a bad byte fail.
 *  - Nothing can be written through the mount (EROFS), and the sidecar `.pagerfs-verity` is hidden.
 */
import { PAGE_SIZE } from '../src/index.js';
import { DirectoryPager, type DirectoryPagerOptions, type PagedFile } from './directory-pager.js';
import { PageHasher, type NativePageCheck } from './page-hasher.js';
import { fsError } from './service.js';
import { VERITY_DIR, isVerityError, type SealedDirectory, type VerityTree } from './verity.js';

export interface VerifiedPagerOptions extends Omit<DirectoryPagerOptions, 'readOnly' | 'hiddenNames' | 'backingDir'> {
  /**
   * Hashes pages without copying them or a worker thread (the mount passes the patched binding's
   * SHA-256 on libuv's pool). Default: PageHasher's worker threads.
   */
  pageCheck?: NativePageCheck;
}

export class VerifiedPager extends DirectoryPager {
  /** Hash trees of the files with a VMO, by port key; dropped at COMPLETE. */
  private readonly trees = new Map<number, VerityTree>();
  /** Hashes filled pages off the dispatch thread (PageHasher: the binding's pool, else a worker). */
  private readonly hasher: PageHasher;

  constructor(options: VerifiedPagerOptions, readonly seal: SealedDirectory) {
    super({ ...options, backingDir: seal.dir, readOnly: true, hiddenNames: [VERITY_DIR] });
    this.hasher = new PageHasher(this.log, options.pageCheck ?? null);
  }

  protected override async afterShutdown(): Promise<void> {
    try {
      await this.hasher.close();
    } finally {
      await super.afterShutdown();
    }
  }

  protected override async opened(file: PagedFile): Promise<void> {
    let tree: VerityTree;
    try {
      tree = await this.seal.openTree(file.relPath);
    } catch (err) {
      if (!isVerityError(err)) throw err;
      this.log.warn({ path: file.relPath, reason: err.code, err: err.message }, 'refusing to serve a file that cannot be verified');
      throw fsError('EIO', 5, err.message);
    }
    const size = file.vmo.contentSizeBytes;
    if (size !== tree.sizeBytes) {
      const why = `"${file.relPath}" changed since sealing (size ${tree.sizeBytes} -> ${size}): run \`pagerfs seal --check ${this.seal.dir}\``;
      this.log.warn({ path: file.relPath, sealedBytes: tree.sizeBytes, sizeBytes: size, err: why }, 'refusing to serve a file that changed since sealing');
      throw fsError('EIO', 5, why);
    }
    this.trees.set(file.key, tree);
  }

  protected override onComplete(file: PagedFile): void {
    this.trees.delete(file.key);
    super.onComplete(file);
  }

  protected override verifiesPages(): boolean {
    return true;
  }

  protected override async checkPages(file: PagedFile, pos: number, count: number, views: Buffer[]): Promise<number[]> {
    const tree = this.trees.get(file.key);
    if (tree === undefined) return Array.from({ length: count }, (_, i) => i); // cannot happen: opened() set it
    // The frames are whole pages whose bytes past the end of file are zero: exactly what the leaves hash.
    const bad = await this.hasher.badPages(views, tree.leafHashes(pos, count), count);
    this.metrics.verifiedPages += count;
    for (const b of bad) {
      this.metrics.integrityFailures++;
      this.log.error({ path: file.relPath, page: pos + b, offset: (pos + b) * PAGE_SIZE, length: PAGE_SIZE },
        'page failed verification: its bytes do not match the sealed hash tree');
    }
    return bad;
  }
}
