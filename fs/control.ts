/**
 * Control files under <mountpoint>/.pagerfs/: how people and tools talk to a running pagerfs.
 *
 *   stats   read-only JSON: budget, residency, pager counters, and the same per file
 *   faults  read: the fault rules in force, one a line; write: replaces the whole set (all or nothing,
 *           a bad line is EINVAL and changes nothing; an empty write clears the set)
 *   budget  read: the memory budget in bytes; write a size (bytes, 64MiB, 1G): applied at once,
 *           shrinking reclaims and writes back as needed; EBUSY (old budget kept) when it would
 *           leave fewer than MIN_BUDGET_PAGES beside the pinned and locked pages, EINVAL for a bad
 *           size or one below the minimum
 *   unmount write anything: the daemon writes back every dirty page, unmounts and exits (how
 *           `pagerfs unmount` reaches the daemon through the mount itself)
 * The name `.pagerfs` at the backing root is reserved: a backing entry of that name is hidden.
 */
import { PAGE_SIZE, ZxStatus, isZxError } from '../src/index.js';
import type { PagerService } from '../pager/index.js';
import { parseFaultRules, parseSize } from '../pager/index.js';
import { toErrno } from './errno.js';
import { NO_FAST_READS, type FastReadStats } from './fast-read.js';
import { spinWaitStats, type SpinWaitStats } from './spin-wait.js';

export const CONTROL_DIR = '.pagerfs';

export interface ControlFile {
  readonly name: string;
  readonly writable: boolean;
  /** The file's content now. */
  read(): Buffer;
  /** Checks text that is about to be written; throws an Error naming the problem. */
  validate?(text: string): void;
  /** Applies the complete written text (called when the writer closes or flushes). */
  apply?(text: string): void;
  /**
   * Applies each write at once, answering the write itself (errors reach the writer as errno). It
   * may resolve to an action for after that writer's close (once its FLUSH is answered).
   */
  applyNow?(text: string): Promise<void | (() => void)>;
}

export interface StatsDocument {
  budgetBytes: number;
  pressureLevel: string;
  secondsInPressureLevels: Record<string, number>;
  lockedBytes: number;
  /**
   * The budget rule (VmSystem.smallestBudgetPages / lockablePages): the smallest budget a shrink may
   * go to now, and the most bytes that may be locked under this budget whatever --max-locked allows
   * (negative when pinned pages alone leave less than the reads' minimum).
   */
  smallestBudgetBytes: number;
  lockableBytes: number;
  residentBytes: number;
  dirtyBytes: number;
  pinnedBytes: number;
  freeBytes: number;
  /** Bytes of the arena's reserved memory asked to be transparent huge pages (0 without --huge-pages, or with THP off). */
  hugePageBytes: number;
  pageRequests: number;
  readRequests: number;
  dirtyRequests: number;
  suppliedPages: number;
  failedRequests: number;
  failuresByStatus: Record<string, number>;
  /** Reads that gave up waiting for the pager (ETIMEDOUT), and page jobs whose answer never came in time. */
  timedOutRequests: number;
  abandonedJobs: number;
  /** Times the pager's port loop let the event loop turn after answering back to back for 20 ms. */
  loopYields: number;
  /** Verified pager: pages checked against their hash tree, and pages that failed (EIO). */
  verifiedPages: number;
  integrityFailures: number;
  injectedFaults: number;
  evictedPages: number;
  reclaimRounds: number;
  writebackBytes: number;
  writebackPages: number;
  writebackErrors: number;
  readaheadPages: number;
  readaheadHitPages: number;
  readaheadWastePages: number;
  /** Windows read ahead in the background because a reader reached the last one (no fault). */
  asyncReadaheads: number;
  backingReadBytes: number;
  /** Backing reads served from the OS page cache without the thread pool (small reads). */
  cachedBackingReads: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** FUSE threads' spin-wait (`--spin-wait`): the setting in ns (-1: no patched binding), answers caught spinning, spins that slept. */
  fuseSpin: SpinWaitStats;
  /** The most closed files the pager keeps with their pages (past it the least recently closed is let go); null: no cap. */
  idleFileCap: number | null;
  /**
   * Reads answered by the binding on libfuse's threads (fast reads, fs/fast-read.ts), and their
   * bytes; none of the counters above sees them. Fallbacks: reads of handles registered for fast
   * reads that went to the JS thread (a page not resident, at the end of the file, racing a change).
   */
  fastReadsEnabled: boolean;
  fastReads: number;
  fastReadBytes: number;
  fastReadFallbacks: number;
  files: Array<{ path: string; size: number; residentBytes: number; dirtyBytes: number; faults: number; evictedPages: number; opens: number }>;
}

export function statsDocument(dp: PagerService, fastReads: () => FastReadStats = () => NO_FAST_READS): StatsDocument {
  const fast = fastReads();
  const sys = dp.system;
  const s = sys.stats();
  const m = dp.metrics;
  let pinned = 0;
  const files = dp.files().filter((f) => !f.completed).map((f) => {
    const c = f.vmo.counters();
    pinned += c.pinnedPages;
    return {
      path: f.relPath,
      size: f.vmo.contentSizeBytes,
      residentBytes: c.residentPages * PAGE_SIZE,
      dirtyBytes: c.dirtyPages * PAGE_SIZE,
      faults: c.faults,
      evictedPages: c.evictedPages,
      opens: f.opens,
    };
  });
  // Ties in code-unit order, not localeCompare: the document is the same whatever the daemon's locale.
  files.sort((a, b) => b.residentBytes - a.residentBytes || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    budgetBytes: s.budgetBytes,
    pressureLevel: s.pressureLevel,
    secondsInPressureLevels: s.secondsInPressureLevels,
    lockedBytes: s.lockedPages * PAGE_SIZE,
    smallestBudgetBytes: sys.smallestBudgetPages() * PAGE_SIZE,
    lockableBytes: sys.lockablePages() * PAGE_SIZE,
    residentBytes: s.residentBytes,
    dirtyBytes: s.queues.pagerDirty * PAGE_SIZE,
    pinnedBytes: pinned * PAGE_SIZE,
    freeBytes: s.arena.freeFrames * PAGE_SIZE,
    hugePageBytes: s.arena.hugePageBytes,
    pageRequests: m.readRequests + m.dirtyRequests,
    readRequests: m.readRequests,
    dirtyRequests: m.dirtyRequests,
    suppliedPages: m.suppliedPages,
    failedRequests: m.failedRequests,
    failuresByStatus: { ...m.failuresByStatus },
    timedOutRequests: s.timedOutWaits,
    abandonedJobs: m.abandonedJobs,
    loopYields: m.loopYields,
    verifiedPages: m.verifiedPages,
    integrityFailures: m.integrityFailures,
    injectedFaults: m.injectedFaults,
    evictedPages: s.evictor.evictedPages,
    reclaimRounds: s.evictor.reclaimRounds,
    writebackBytes: m.writebackBytes,
    writebackPages: m.writebackPages,
    writebackErrors: m.writebackErrors,
    readaheadPages: m.readaheadPages,
    readaheadHitPages: m.readaheadHitPages,
    readaheadWastePages: m.readaheadWastePages,
    asyncReadaheads: m.asyncReadaheads,
    backingReadBytes: m.backingReadBytes,
    cachedBackingReads: m.cachedBackingReads,
    latencyP50Ms: m.latency.quantile(0.5),
    latencyP99Ms: m.latency.quantile(0.99),
    fuseSpin: spinWaitStats(),
    idleFileCap: dp.idleFileCap?.() ?? null,
    fastReadsEnabled: fast.enabled,
    fastReads: fast.reads,
    fastReadBytes: fast.bytes,
    fastReadFallbacks: fast.fallbacks,
    files,
  };
}

export interface ControlHooks {
  /** A write to .pagerfs/unmount asks the daemon to write back, unmount and exit. */
  onUnmountRequest?: () => void;
}

/** What the control files ask of the filesystem serving them. */
interface ControlSite {
  /** Files open through the mount now (control files not counted). */
  openFiles(): number;
  /** The mount's fast-read counters. */
  fastReads?(): FastReadStats;
}

export function controlFiles(dp: PagerService, hooks: ControlHooks, site: ControlSite): Map<string, ControlFile> {
  const files: ControlFile[] = [
    {
      name: 'stats',
      writable: false,
      read: () => Buffer.from(`${JSON.stringify(statsDocument(dp, site.fastReads), null, 2)}\n`),
    },
    {
      name: 'faults',
      writable: true,
      read: () => Buffer.from(dp.faults.toText()),
      validate: (text) => { parseFaultRules(text); },
      apply: (text) => dp.faults.replace(parseFaultRules(text)),
    },
    {
      name: 'budget',
      writable: true,
      read: () => Buffer.from(`${dp.system.budgetBytes}\n`),
      applyNow: async (text) => {
        let bytes: number;
        try {
          bytes = parseSize(text.trim());
        } catch (err) {
          throw Object.assign(new Error((err as Error).message), { code: 'EINVAL', errno: -22 });
        }
        try {
          await dp.setBudget(bytes);
        } catch (err) {
          if (isZxError(err, ZxStatus.ERR_BAD_STATE)) throw Object.assign(new Error((err as Error).message), { code: 'EBUSY', errno: -16 });
          throw err;
        }
      },
    },
    {
      name: 'unmount',
      writable: true,
      read: () => Buffer.alloc(0),
      // A write asks for a clean unmount. With files open through the mount it is refused (EBUSY),
      // as umount(8) refuses a busy mount, unless the text is `lazy`: then those files' later calls
      // fail with ENOTCONN, as with umount -l. Every dirty page is written back before the write
      // returns: if that fails (a full backing store: ENOSPC), the write fails with its errno and
      // nothing is unmounted, the data still dirty and readable for another try. Then the unmount
      // follows the writer's close, not the write: begun at once, it raced the close, whose FLUSH
      // then met a connection already gone (close failed with ECONNABORTED, and `pagerfs unmount`
      // took the daemon for dead). (An open for writing that writes nothing asks for nothing.)
      applyNow: async (text) => {
        const open = site.openFiles();
        if (text.trim() !== 'lazy' && open > 0) {
          throw Object.assign(new Error(`${open} file${open === 1 ? ' is' : 's are'} open through the mount`), { code: 'EBUSY', errno: -16 });
        }
        try {
          await dp.writebackAll(true);
        } catch (err) {
          throw Object.assign(new Error(`writing back before the unmount failed: ${(err as Error).message}`), { errno: toErrno(err) });
        }
        return hooks.onUnmountRequest;
      },
    },
  ];
  return new Map(files.map((f) => [f.name, f]));
}
