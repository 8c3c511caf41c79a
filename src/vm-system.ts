/**
 * VmSystem: the kernel instance. It owns the physical page arena (the memory budget), the page
 * queues, the evictor and the table of live VMOs, and it is where allocation meets reclaim.
 *
 * Allocation rule: when free frames (limit - used) are at or below the low watermark, the evictor
 * first reclaims up to the high watermark from old generations; if the arena is still full, it
 * reclaims one frame at the out-of-memory level. Only then does allocation fail (NO_MEMORY). Resident
 * frames never exceed the limit in force.
 */
import { assert } from './assert.js';
import { FrameFlag, NO_FRAME, PhysicalPageArena, type ArenaCounters, type FrameMemorySource } from './arena.js';
import { PAGE_SIZE } from './constants.js';
import { EvictionLevel, Evictor, type EvictorCounters } from './evictor.js';
import { PageQueues, Queue, RECLAIM_GENERATIONS, type PageQueueCounts } from './page-queues.js';
import type { PageWaiter } from './page-request.js';
import { Pager } from './pager.js';
import { Port } from './port.js';
import type { ReadMapping } from './read-mapping.js';
import { ZxError, ZxStatus } from './status.js';
import { VmObjectPaged, type VmObject } from './vmo.js';

export interface VmSystemOptions {
  /** The memory budget in bytes (rounded down to pages; at least MIN_BUDGET_PAGES pages). */
  budgetBytes: number;
  /** Reclaim starts when free frames fall to this (default budget/64). */
  lowWatermarkFrames?: number;
  /** Reclaim stops when free frames reach this (default max(low + 1, budget/32)). */
  highWatermarkFrames?: number;
  /** Most pages one page request asks for (default 1024). */
  maxRequestPages?: number;
  /** A fault waiting longer than this fails with TIMED_OUT (default 300 000 ms, Zircon's 300 s). */
  requestTimeoutMs?: number;
  /** A fault waiting longer than this is reported through onRequestOvertime (default 20 000 ms). */
  requestOvertimeMs?: number;
  /** Told once per waiter that is overtime. */
  onRequestOvertime?: (waiter: PageWaiter, waitedMs: number) => void;
  /** Run the full consistency walk after operations that call validate() (tests switch it on). */
  validate?: boolean;
  /**
   * Pressure thresholds: the level rises to WARNING, CRITICAL, OUT_OF_MEMORY when available frames
   * (free plus reclaimable clean pages) fall to these fractions of the budget (default 0.25, 0.10, 0.02).
   */
  pressureThresholds?: PressureThresholds;
  /** Where the arena's memory comes from (default: Node's allocator; see FrameMemorySource). */
  frameMemory?: FrameMemorySource;
}

export interface PressureThresholds {
  warning: number;
  critical: number;
  outOfMemory: number;
}

/** Memory pressure levels, as Zircon's memory watchdog names them. */
export enum PressureLevel {
  NORMAL = 0,
  WARNING = 1,
  CRITICAL = 2,
  OUT_OF_MEMORY = 3,
}

export const PRESSURE_LEVEL_NAMES = ['NORMAL', 'WARNING', 'CRITICAL', 'OUT_OF_MEMORY'] as const;

export const DEFAULT_PRESSURE_THRESHOLDS: PressureThresholds = { warning: 0.25, critical: 0.10, outOfMemory: 0.02 };

/** Checks thresholds: fractions with outOfMemory < critical < warning < 1. Throws INVALID_ARGS. */
export function checkPressureThresholds(t: PressureThresholds): PressureThresholds {
  const ok = [t.warning, t.critical, t.outOfMemory].every((x) => Number.isFinite(x) && x >= 0 && x < 1) &&
    t.outOfMemory < t.critical && t.critical < t.warning;
  if (!ok) {
    throw new ZxError(ZxStatus.ERR_INVALID_ARGS,
      `pressure thresholds must be fractions of the budget with OUT_OF_MEMORY < CRITICAL < WARNING < 1 (got ${t.warning}, ${t.critical}, ${t.outOfMemory})`);
  }
  return t;
}

/**
 * Below this a budget cannot hold one request's worth of pages plus a writer's. It is also the
 * working set a shrink must leave beside the pages that stay resident whatever happens (pinned and
 * locked): see smallestBudgetPages.
 */
export const MIN_BUDGET_PAGES = 16;

export interface ResolvedVmSystemOptions {
  lowWatermarkFrames: number;
  highWatermarkFrames: number;
  maxRequestPages: number;
  requestTimeoutMs: number;
  requestOvertimeMs: number;
  validate: boolean;
  pressureThresholds: PressureThresholds;
}

export interface VmSystemStats {
  budgetBytes: number;
  arena: ArenaCounters;
  queues: PageQueueCounts;
  evictor: EvictorCounters;
  residentBytes: number;
  vmoCount: number;
  lockedPages: number;
  pressureLevel: (typeof PRESSURE_LEVEL_NAMES)[number];
  secondsInPressureLevels: Record<(typeof PRESSURE_LEVEL_NAMES)[number], number>;
  /** Waits that gave up with TIMED_OUT (the pager did not answer within requestTimeoutMs). */
  timedOutWaits: number;
}

interface PendingWait {
  waiter: PageWaiter;
  startMs: number;
  reject: (err: ZxError) => void;
  overtimeReported: boolean;
}

export class VmSystem {
  readonly arena: PhysicalPageArena;
  readonly queues: PageQueues;
  readonly evictor: Evictor;
  /**
   * The options in force. The watermarks and maxRequestPages follow the budget (budgetLimits)
   * unless the constructor's options fixed them; setBudget updates them in place. Page sources
   * ask requestPagesMax() at each request, which also bounds requests by what pinned and locked
   * pages leave.
   */
  readonly options: ResolvedVmSystemOptions;
  private readonly givenOptions: VmSystemOptions;
  /** One page of zeros, shared read-only (zeroRange writes from it). */
  readonly zeroPage = new Uint8Array(PAGE_SIZE);
  private readonly overtimeHook: VmSystemOptions['onRequestOvertime'];
  /** Live VMOs by id; frame owners name VMOs by these ids. */
  private readonly vmos = new Map<number, VmObject>();
  private nextVmoId = 1;
  /** Aging steps taken because reclaim found only active pages (for stats). */
  agedOnDemand = 0;
  /** Pages protected by ALWAYS_NEED now (maintained by VmObjectPaged). */
  lockedPages = 0;
  /** The pressure level in force, when it began, and the time spent in each level before it. */
  private level = PressureLevel.NORMAL;
  private levelSinceMs = 0;
  private readonly msInLevel = [0, 0, 0, 0];
  private readonly levelListeners = new Set<(level: PressureLevel, previous: PressureLevel) => void>();
  private agingTimer: ReturnType<typeof setInterval> | null = null;
  /** Faults waiting on the pager, for the liveness sweep. */
  private readonly pendingWaits = new Set<PendingWait>();
  private sweepTimer: ReturnType<typeof setInterval> | null = null;
  /** Waits ended by the request timeout; only sweepWaits bumps it. */
  private timedOutWaits = 0;
  /** Told (synchronously) when an allocation had to reach the out-of-memory level or failed. */
  private readonly pressureListeners = new Set<(failed: boolean) => void>();
  /**
   * Read mappings attached now (VmObjectPaged.attachReadMapping): their readers' accessed bits are
   * harvested into the frames (harvestMappedAccess) before every reclaim round and every harvest.
   */
  private readonly readMappings = new Set<ReadMapping>();
  /** harvestMappedAccess's callback, made once (the harvest runs on the allocation path). */
  private readonly markMappedAccessed = (_pageIndex: number, frame: number): void => {
    if ((this.arena.frames.flags[frame] & FrameFlag.Accessed) === 0) this.markAccessed(frame);
  };

  constructor(options: VmSystemOptions) {
    const frames = Math.floor(options.budgetBytes / PAGE_SIZE);
    if (!Number.isFinite(frames) || frames < MIN_BUDGET_PAGES) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS,
        `memory budget ${options.budgetBytes} bytes is below the minimum of ${MIN_BUDGET_PAGES} pages (${MIN_BUDGET_PAGES * PAGE_SIZE} bytes)`);
    }
    this.arena = new PhysicalPageArena(frames, options.frameMemory);
    this.queues = new PageQueues(this.arena);
    this.evictor = new Evictor(this, RECLAIM_GENERATIONS);
    this.givenOptions = options;
    this.options = {
      ...VmSystem.budgetLimits(frames, options),
      requestTimeoutMs: options.requestTimeoutMs ?? 300_000,
      requestOvertimeMs: options.requestOvertimeMs ?? 20_000,
      validate: options.validate ?? false,
      pressureThresholds: checkPressureThresholds(options.pressureThresholds ?? DEFAULT_PRESSURE_THRESHOLDS),
    };
    this.levelSinceMs = performance.now();
    assert(this.options.highWatermarkFrames > this.options.lowWatermarkFrames, 'high watermark must exceed the low one');
    this.overtimeHook = options.onRequestOvertime;
  }

  /**
   * The limits that follow from a budget of `frames` pages, where the options do not fix them: the
   * evictor's watermarks and the largest page request. A request's pages cannot be evicted until it
   * is answered, so one request must leave most of the budget reclaimable: at most a quarter of it
   * (and at most 1024 pages, 4 MiB). Recomputed by setBudget.
   */
  private static budgetLimits(frames: number, given: VmSystemOptions): Pick<ResolvedVmSystemOptions, 'lowWatermarkFrames' | 'highWatermarkFrames' | 'maxRequestPages'> {
    const low = given.lowWatermarkFrames ?? Math.floor(frames / 64);
    return {
      lowWatermarkFrames: low,
      highWatermarkFrames: given.highWatermarkFrames ?? Math.max(low + 1, Math.floor(frames / 32)),
      maxRequestPages: given.maxRequestPages ?? Math.min(1024, Math.max(4, Math.floor(frames / 4))),
    };
  }

  /** Frames an allocation could get now: free ones plus clean pages the evictor may take (O(1)). */
  get availableFrames(): number {
    return this.arena.freeFrames + this.queues.reclaimablePages;
  }

  /**
   * Clean pages the evictor may take without overriding ALWAYS_NEED: the reclaim queues, less the
   * locked pages parked in DONT_NEED. Walks the DONT_NEED queue.
   */
  reclaimableUnlockedPages(): number {
    let lockedInDontNeed = 0;
    const f = this.arena.frames;
    for (let fr = this.queues.oldest(Queue.DontNeed); fr !== NO_FRAME; fr = this.queues.nextNewer(fr)) {
      if ((f.flags[fr] & FrameFlag.AlwaysNeed) !== 0) lockedInDontNeed++;
    }
    return this.queues.reclaimablePages - lockedInDontNeed;
  }

  /** Pages pinned now (exact, O(1)). */
  get pinnedPages(): number {
    return this.queues.countOf(Queue.Wired);
  }

  /**
   * The smallest budget, in pages, a shrink may go to now: pinned and locked pages plus
   * MIN_BUDGET_PAGES for faults to read into. Pinned pages never go and locked ones only when no
   * other frame is left, and a fill needs free or reclaimable frames to start: a budget they filled
   * failed every read of an absent page with NO_SPACE until an unlock. A page both pinned and
   * locked counts twice (errs toward refusing). O(1).
   */
  smallestBudgetPages(): number {
    return this.pinnedPages + this.lockedPages + MIN_BUDGET_PAGES;
  }

  /**
   * The same rule from the lock side: the most pages that may be locked under the budget in force,
   * leaving MIN_BUDGET_PAGES beside the pinned pages (whatever share a caller allows on top). May be
   * negative when pinned pages alone leave less. O(1).
   */
  lockablePages(): number {
    return this.budgetPages - this.pinnedPages - MIN_BUDGET_PAGES;
  }

  /**
   * The most pages one page request may ask for now: options.maxRequestPages (a quarter of the
   * budget unless fixed), scaled down by the share of the budget pinned and locked pages hold (at
   * least 1; with nothing held, exactly the option). A request's pages cannot be evicted until it
   * is answered; sized for the whole budget while a lock held most of it, requests ran allocation
   * into the out-of-memory level, which takes locked pages (128 KiB reads at the smallest budget a
   * 1 MiB lock allows evicted 16 of its 256 pages). Page sources ask at each request. O(1).
   */
  requestPagesMax(): number {
    const limit = this.arena.limitFrames;
    const unheld = Math.max(0, limit - this.pinnedPages - this.lockedPages);
    return Math.max(1, Math.floor(this.options.maxRequestPages * unheld / limit));
  }

  /** The budget in pages. */
  get budgetPages(): number {
    return this.arena.limitFrames;
  }

  /**
   * Pages that are Dirty or AwaitingClean and not pinned, in all pager VMOs (exact, O(1)): the
   * ones writeback can clean. Pinned pages, dirty or not, are in pinnedPages.
   */
  get dirtyPages(): number {
    return this.queues.countOf(Queue.PagerDirty);
  }

  get budgetBytes(): number {
    return this.arena.limitFrames * PAGE_SIZE;
  }

  // ---------------------------------------------------------------------------------------------
  // Objects.

  /** Creates an anonymous VMO of `sizeBytes` (rounded up to pages). */
  createVmo(sizeBytes: number, options: { resizable?: boolean; name?: string } = {}): VmObjectPaged {
    const vmo = new VmObjectPaged(this, { kind: 'anonymous', sizeBytes, resizable: options.resizable ?? false });
    if (options.name !== undefined) vmo.name = options.name;
    return vmo;
  }

  createPager(): Pager {
    return new Pager(this);
  }

  createPort(): Port {
    return new Port();
  }

  /** @internal */
  registerVmo(vmo: VmObject): number {
    const id = this.nextVmoId++;
    this.vmos.set(id, vmo);
    return id;
  }

  /** @internal */
  unregisterVmo(vmo: VmObject): void {
    this.vmos.delete(vmo.id);
  }

  /** The paged VMO with this id. Precondition: live (a frame's owner always is). */
  vmoById(id: number): VmObjectPaged {
    const vmo = this.vmos.get(id);
    assert(vmo instanceof VmObjectPaged, () => `no paged VMO with id ${id}`);
    return vmo;
  }

  /** Live VMOs (a snapshot: safe to create or destroy VMOs while iterating it). */
  liveVmos(): VmObject[] {
    return [...this.vmos.values()];
  }

  // ---------------------------------------------------------------------------------------------
  // Frames.

  /** Takes a frame, reclaiming first when free frames are low. NO_FRAME when nothing can be freed. */
  allocFrame(): number {
    const o = this.options;
    if (this.arena.freeFrames <= o.lowWatermarkFrames) {
      this.evictor.reclaim(o.highWatermarkFrames, 0, EvictionLevel.OnlyOldest);
      // Nothing old enough to take: age once (the newest generations become older) and try again,
      // as Zircon ages early when the inactive queues run dry, rather than reaching into active pages.
      if (this.arena.freeFrames <= o.lowWatermarkFrames && this.queues.reclaimablePages > 0) {
        this.queues.age();
        this.agedOnDemand++;
        this.evictor.reclaim(o.highWatermarkFrames, 0, EvictionLevel.OnlyOldest);
      }
      // At CRITICAL the evictor may take from the active generations too, to keep the watermark.
      if (this.arena.freeFrames <= o.lowWatermarkFrames && this.updatePressure() >= PressureLevel.CRITICAL) {
        this.evictor.reclaim(o.highWatermarkFrames, 0, EvictionLevel.IncludeNewest);
      }
    }
    let frame = this.arena.allocFrame();
    if (frame === NO_FRAME) {
      this.evictor.reclaim(0, 1, EvictionLevel.OutOfMemory, true);
      frame = this.arena.allocFrame();
      for (const l of this.pressureListeners) l(frame === NO_FRAME);
    }
    if (this.arena.freeFrames <= o.highWatermarkFrames) this.updatePressure();
    return frame;
  }

  /**
   * The pressure level now, from available frames (free plus clean pages the evictor may take)
   * against the thresholds: it says how much of the budget is held by what cannot be reclaimed
   * (dirty, pinned, locked, anonymous pages). Recomputed here and on allocation; listeners hear
   * each change once.
   */
  updatePressure(): PressureLevel {
    const t = this.options.pressureThresholds;
    const available = this.availableFrames / this.arena.limitFrames;
    const next = available <= t.outOfMemory ? PressureLevel.OUT_OF_MEMORY
      : available <= t.critical ? PressureLevel.CRITICAL
        : available <= t.warning ? PressureLevel.WARNING : PressureLevel.NORMAL;
    if (next !== this.level) {
      const now = performance.now();
      this.msInLevel[this.level] += now - this.levelSinceMs;
      const previous = this.level;
      this.level = next;
      this.levelSinceMs = now;
      for (const l of this.levelListeners) l(next, previous);
    }
    return next;
  }

  get pressureLevel(): PressureLevel {
    return this.updatePressure();
  }

  /** Seconds spent in each level since start, by level name (the current one counted up to now). */
  secondsInPressureLevels(): Record<(typeof PRESSURE_LEVEL_NAMES)[number], number> {
    this.updatePressure();
    const ms = [...this.msInLevel];
    ms[this.level] += performance.now() - this.levelSinceMs;
    return {
      NORMAL: ms[0] / 1000, WARNING: ms[1] / 1000, CRITICAL: ms[2] / 1000, OUT_OF_MEMORY: ms[3] / 1000,
    };
  }

  /** Subscribes to pressure level changes; returns an unsubscribe function. */
  onPressureLevel(listener: (level: PressureLevel, previous: PressureLevel) => void): () => void {
    this.levelListeners.add(listener);
    return () => this.levelListeners.delete(listener);
  }

  /**
   * Subscribes to memory pressure: the listener runs synchronously when an allocation found nothing
   * reclaimable among old pages (`failed` = the allocation failed outright). A pager uses it to start
   * writing back dirty pages; it must not allocate frames from inside the callback. Returns an
   * unsubscribe function.
   */
  onMemoryPressure(listener: (failed: boolean) => void): () => void {
    this.pressureListeners.add(listener);
    return () => this.pressureListeners.delete(listener);
  }

  /** Marks a frame accessed (cheap); a page in DONT_NEED moves back to the newest generation. */
  markAccessed(frame: number): void {
    const f = this.arena.frames;
    f.flags[frame] |= FrameFlag.Accessed;
    if (f.queue[frame] === Queue.DontNeed) {
      // Out of DONT_NEED: back to the protected queue if always-need, else the newest generation.
      if ((f.flags[frame] & FrameFlag.AlwaysNeed) !== 0) this.queues.moveTo(frame, Queue.AlwaysNeed);
      else this.queues.placeNewest(frame);
    }
  }

  /** @internal A VMO attached a read mapping. */
  readMappingAttached(mapping: ReadMapping): void {
    this.readMappings.add(mapping);
  }

  /** @internal ... and detached it. */
  readMappingDetached(mapping: ReadMapping): void {
    this.readMappings.delete(mapping);
  }

  /**
   * Moves the accessed marks readers set in read mappings (pages they served off the JS thread)
   * into the frames' Accessed flags, as a kernel harvests PTE accessed bits, so that such pages get
   * their second chance. Skips mappings no reader marked. Returns the pages marked. Cost: per
   * marked mapping its groups (capacity / 1024) and 256 reads per marked group (ReadMapping.harvest).
   */
  harvestMappedAccess(): number {
    let n = 0;
    for (const m of this.readMappings) n += m.harvest(this.markMappedAccessed);
    return n;
  }

  /**
   * Changes the budget (bytes, rounded down to pages). Growing takes effect at once, whatever is
   * held. Shrinking reclaims clean pages of every generation down to the new limit, but never
   * always-need (locked) pages. The old budget stays, with nothing evicted, and:
   *  - INVALID_ARGS: below MIN_BUDGET_PAGES pages, or not a number;
   *  - BAD_STATE: a shrink below smallestBudgetPages() (pinned and locked pages would leave faults
   *    fewer than MIN_BUDGET_PAGES frames), or below what cannot be reclaimed now (dirty, pinned,
   *    locked, anonymous pages); the message says how much is held.
   * Dirty pages must be written back by the pager first (the pager layer does that before calling).
   * Memory already in chunks is kept (frames never move).
   */
  setBudget(budgetBytes: number): void {
    const frames = Math.floor(budgetBytes / PAGE_SIZE);
    if (!Number.isFinite(frames) || frames < MIN_BUDGET_PAGES) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `memory budget ${budgetBytes} is below the minimum of ${MIN_BUDGET_PAGES} pages`);
    }
    const smallest = this.smallestBudgetPages();
    if (frames < this.arena.limitFrames && frames < smallest) {
      throw new ZxError(ZxStatus.ERR_BAD_STATE,
        `cannot shrink the budget to ${frames} pages: ${this.pinnedPages} pinned and ${this.lockedPages} locked pages stay, ` +
        `and faults need ${MIN_BUDGET_PAGES} more to read into (smallest budget now: ${smallest} pages)`);
    }
    const used = this.arena.usedFrames;
    // Refuse before evicting anything when what cannot be reclaimed already exceeds the new budget.
    const unreclaimable = used - this.reclaimableUnlockedPages();
    if (unreclaimable > frames) {
      throw new ZxError(ZxStatus.ERR_BAD_STATE,
        `cannot shrink the budget to ${frames} pages: ${unreclaimable} pages are dirty, pinned, locked or anonymous`);
    }
    if (used > frames) {
      this.evictor.reclaim(0, used - frames, EvictionLevel.IncludeNewest, true);
      if (this.arena.usedFrames > frames) {
        throw new ZxError(ZxStatus.ERR_BAD_STATE,
          `cannot shrink the budget to ${frames} pages: ${this.arena.usedFrames} pages are dirty, pinned, locked or anonymous`);
      }
    }
    this.arena.setLimit(frames);
    Object.assign(this.options, VmSystem.budgetLimits(frames, this.givenOptions));
    this.updatePressure();
  }

  /**
   * A shrink to `budgetBytes` is about to be tried: page requests raised from now on are sized for
   * that budget (a request's pages stay until it is answered, so one sized for the old budget could
   * not be supplied within the new one). setBudget (with the current budget, if the shrink is given
   * up) settles the limits again.
   */
  sizeRequestsFor(budgetBytes: number): void {
    const frames = Math.max(MIN_BUDGET_PAGES, Math.floor(budgetBytes / PAGE_SIZE));
    this.options.maxRequestPages = Math.min(this.options.maxRequestPages, VmSystem.budgetLimits(frames, this.givenOptions).maxRequestPages);
  }

  /** One aging step of the page queues (Zircon: every 5 s). */
  agePages(): void {
    this.queues.age();
  }

  /**
   * Ages the page queues every `periodMs` (Zircon's 5 s) on an unref'd timer, harvesting accessed
   * bits first so recently used pages stay young. Idempotent; stopAging() ends it.
   */
  startAging(periodMs = 5000): void {
    if (this.agingTimer !== null) return;
    this.agingTimer = setInterval(() => {
      this.harvestAccessedBits();
      this.queues.age();
    }, periodMs);
    this.agingTimer.unref();
  }

  stopAging(): void {
    if (this.agingTimer !== null) clearInterval(this.agingTimer);
    this.agingTimer = null;
  }

  /** Moves accessed pages (read mappings' marks included) to the newest generation. Walks every reclaimable page. */
  harvestAccessedBits(): number {
    this.harvestMappedAccess();
    return this.queues.harvestAccessedBits();
  }

  /** Runs the evictor for `frames` frames at `level` now (the vmtouch "evict" path and tests). */
  reclaim(frames: number, level: EvictionLevel = EvictionLevel.OnlyOldest): number {
    return this.evictor.reclaim(0, frames, level, true);
  }

  /**
   * Scans anonymous VMOs for pages that are all zero; with `reclaim`, frees them (they read as zero
   * without a frame afterwards). Returns the zero pages found. Walks every anonymous page.
   */
  scanForZeroPages(reclaim: boolean): number {
    let found = 0;
    for (const vmo of this.liveVmos()) {
      if (!(vmo instanceof VmObjectPaged) || vmo.kind !== 'anonymous' || vmo.isDestroyed) continue;
      const zeros: number[] = [];
      vmo.lookup(0, vmo.sizeBytes, (p, frame) => {
        if (this.arena.frames.pinCount[frame] === 0 && this.arena.isZeroFrame(frame)) zeros.push(p);
      });
      found += zeros.length;
      if (reclaim) for (const p of zeros) vmo.decommitRange(p * PAGE_SIZE, PAGE_SIZE);
    }
    return found;
  }

  // ---------------------------------------------------------------------------------------------
  // Waiting (outside the core: this is the one place a fault's promise is awaited).

  /**
   * Waits for a page waiter with the liveness policy: overtime is reported once after
   * requestOvertimeMs; after requestTimeoutMs the waiter gives up with TIMED_OUT. One sweep timer
   * serves every pending wait (no timer per fault); it runs only while waits are pending.
   */
  waitFor(waiter: PageWaiter): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const entry: PendingWait = { waiter, startMs: performance.now(), reject, overtimeReported: false };
      this.pendingWaits.add(entry);
      this.ensureSweep();
      waiter.promise.then(() => {
        this.pendingWaits.delete(entry);
        resolve();
      }, (err: unknown) => {
        this.pendingWaits.delete(entry);
        reject(err);
      });
    });
  }

  private ensureSweep(): void {
    if (this.sweepTimer !== null) return;
    const o = this.options;
    // Often enough that a timeout fires within a quarter of its length; at most once a second.
    const period = Math.max(5, Math.min(1000, o.requestTimeoutMs / 4, o.requestOvertimeMs / 4));
    this.sweepTimer = setInterval(() => this.sweepWaits(), period);
  }

  private sweepWaits(): void {
    const o = this.options;
    const now = performance.now();
    for (const entry of this.pendingWaits) {
      const waited = now - entry.startMs;
      if (waited >= o.requestTimeoutMs) {
        this.pendingWaits.delete(entry);
        this.timedOutWaits++;
        entry.waiter.cancel();
        entry.reject(new ZxError(ZxStatus.ERR_TIMED_OUT,
          `page request for page ${entry.waiter.pageIndex} unanswered after ${o.requestTimeoutMs} ms`));
      } else if (!entry.overtimeReported && waited >= o.requestOvertimeMs && o.requestOvertimeMs < o.requestTimeoutMs) {
        entry.overtimeReported = true;
        this.overtimeHook?.(entry.waiter, waited);
      }
    }
    if (this.pendingWaits.size === 0 && this.sweepTimer !== null) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Stats and validation.

  stats(): VmSystemStats {
    return {
      budgetBytes: this.budgetBytes,
      arena: this.arena.counters(),
      queues: this.queues.counts(),
      evictor: { ...this.evictor.counters, evictedByGeneration: [...this.evictor.counters.evictedByGeneration] },
      residentBytes: this.arena.usedFrames * PAGE_SIZE,
      vmoCount: this.vmos.size,
      lockedPages: this.lockedPages,
      pressureLevel: PRESSURE_LEVEL_NAMES[this.pressureLevel],
      secondsInPressureLevels: this.secondsInPressureLevels(),
      timedOutWaits: this.timedOutWaits,
    };
  }


  /**
   * The full consistency walk: arena free list, queue lists and counts, every VMO's frames, and the
   * sum of resident pages. O(frames + VMOs). Runs only when options.validate is set.
   */
  validate(): void {
    if (!this.options.validate) return;
    this.debugValidate();
  }

  debugValidate(): void {
    this.arena.debugValidate();
    this.queues.debugValidate();
    let resident = 0;
    let locked = 0;
    for (const vmo of this.vmos.values()) {
      if (vmo instanceof VmObjectPaged) {
        vmo.debugValidate();
        resident += vmo.pages.size;
        locked += vmo.debugLocked;
      }
    }
    assert(locked === this.lockedPages, `${locked} always-need pages found but ${this.lockedPages} counted`);
    assert(resident === this.arena.usedFrames, `VMOs hold ${resident} frames but the arena has ${this.arena.usedFrames} in use`);
    const limitOk = this.arena.usedFrames <= this.arena.limitFrames;
    assert(limitOk, `resident frames ${this.arena.usedFrames} exceed the budget of ${this.arena.limitFrames}`);
  }
}
