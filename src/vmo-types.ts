/** Option bits, operation codes and result shapes shared by VMOs and the pager. Values are Zircon's. */

/** createPagerVmo options (ZX_VMO_RESIZABLE, ZX_VMO_TRAP_DIRTY). */
export const VmoOptions = {
  RESIZABLE: 1 << 1,
  TRAP_DIRTY: 1 << 3,
} as const;

/** createChild options (ZX_VMO_CHILD_*). */
export const ChildOptions = {
  SNAPSHOT: 1 << 0,
  RESIZABLE: 1 << 2,
  SLICE: 1 << 3,
  SNAPSHOT_AT_LEAST_ON_WRITE: 1 << 4,
} as const;

/** vmo.opRange ops (ZX_VMO_OP_*), plus pagerfs's own extension. */
export enum VmoOp {
  COMMIT = 1,
  DECOMMIT = 2,
  ZERO = 10,
  DONT_NEED = 12,
  ALWAYS_NEED = 13,
  PREFETCH = 14,
  /**
   * pagerfs extension, not in Zircon: lifts ALWAYS_NEED protection from the range (Zircon's
   * ALWAYS_NEED is sticky; `pagerfs unlock` needs a way back). Offsets rounded out like the hints.
   */
  RELEASE_ALWAYS_NEED = 0x1000,
  /**
   * pagerfs extension, not in Zircon: reclaims the range's clean, unpinned, unlocked pages now (the
   * vmtouch "evict" verb). Dirty pages stay (the pager writes them back first). Offsets rounded out.
   */
  EVICT = 0x1001,
}

/** Residency of one page, as `residencyRuns` reports it. */
export enum PageResidency {
  /** Not resident: the next access asks the pager. */
  Absent = 0,
  Clean = 1,
  /** Dirty or AwaitingClean, or a dirty zero run. */
  Dirty = 2,
  /** Protected by ALWAYS_NEED (clean). */
  Locked = 3,
  Pinned = 4,
}

export interface ResidencyRun {
  startPage: number;
  endPage: number;
  state: PageResidency;
}

/** pager.opRange ops (ZX_PAGER_OP_*). */
export enum PagerOp {
  FAIL = 1,
  DIRTY = 2,
  WRITEBACK_BEGIN = 3,
  WRITEBACK_END = 4,
}

/** WRITEBACK_BEGIN flag: the range is being written back as zeros (ZX_VMO_DIRTY_RANGE_IS_ZERO). */
export const WRITEBACK_IS_ZERO = 1;

/** One run of dirty pages as queryDirtyRanges reports it: bytes, page-aligned. */
export interface DirtyRange {
  offset: number;
  length: number;
  /** The run reads as zeros and has no pages (a grown tail or a zeroed range). */
  isZero: boolean;
}

export interface DirtyRangesResult {
  /** The runs that fit, in order. */
  ranges: DirtyRange[];
  /** How many runs the queried range holds in all. */
  available: number;
}

export interface VmoStats {
  /** Written, zeroed or resized since the last reset. */
  modified: boolean;
}

/** Per-VMO counters, exact at every return. */
export interface VmoCounters {
  residentPages: number;
  dirtyPages: number;
  pinnedPages: number;
  /** Pages taken away by the evictor since creation (Zircon: evicted_paged_count). */
  evictedPages: number;
  /** Faults that had to wait for the pager (READ or DIRTY). */
  faults: number;
  /** Zero-run pages (no frame) that still need writeback. */
  dirtyZeroPages: number;
  /** Pages protected by ALWAYS_NEED. */
  lockedPages: number;
}
