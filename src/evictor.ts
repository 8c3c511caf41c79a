/**
 * The evictor: frees frames by taking clean, unpinned pages away from pager VMOs, oldest first.
 *
 * Order: the DONT_NEED queue, then the reclaim generations from oldest to newest, leaving the
 * ACTIVE_GENERATIONS newest alone unless the level is IncludeNewest or OutOfMemory; always-need
 * pages only at OutOfMemory. A page met with its Accessed bit set gets a second chance: it moves to the newest
 * generation instead. `evictPage` is the single place that decides a page may go.
 *
 * Targets follow Zircon's evictor: a round frees max(freeTarget - free, minFrames); what a round
 * could not free of its minimum is carried to the next round (`carriedMinFrames`).
 */
import { assert } from './assert.js';
import { DirtyState, FrameFlag, FrameState, NO_FRAME } from './arena.js';
import { ACTIVE_GENERATIONS, Queue } from './page-queues.js';
import type { VmSystem } from './vm-system.js';

export enum EvictionLevel {
  /** Only DONT_NEED and inactive generations; ALWAYS_NEED respected. */
  OnlyOldest = 0,
  /** Every generation, the active ones included; ALWAYS_NEED still respected (budget shrinks). */
  IncludeNewest = 1,
  /** Everything clean and unpinned, the active generations and always-need pages included. */
  OutOfMemory = 2,
}

export interface EvictorCounters {
  /** Pages evicted since start. */
  evictedPages: number;
  /** Reclaim rounds run. */
  reclaimRounds: number;
  /** Pages evicted by age of the generation they came from (index 0 newest); DONT_NEED apart. */
  evictedByGeneration: number[];
  evictedFromDontNeed: number;
  /** Accessed pages given a second chance instead of being evicted. */
  secondChances: number;
  /** Always-need pages taken at the out-of-memory level. */
  alwaysNeedOverrides: number;
}

export class Evictor {
  readonly counters: EvictorCounters;
  /** Minimum frames still owed from earlier rounds that fell short. */
  carriedMinFrames = 0;

  constructor(private readonly system: VmSystem, generations: number) {
    this.counters = {
      evictedPages: 0,
      reclaimRounds: 0,
      evictedByGeneration: new Array<number>(generations).fill(0),
      evictedFromDontNeed: 0,
      secondChances: 0,
      alwaysNeedOverrides: 0,
    };
  }

  /**
   * Decides whether `frame` may be evicted and, if so, evicts it. The only place that decides.
   * May go: held by a pager VMO whose pager is open, Clean, unpinned, not part of an outstanding
   * page request, and not always-need unless `override`.
   */
  evictPage(frame: number, override: boolean): boolean {
    const f = this.system.arena.frames;
    if (f.state[frame] !== FrameState.InObject) return false;
    if (f.dirty[frame] !== DirtyState.Clean || f.pinCount[frame] !== 0) return false;
    if ((f.flags[frame] & FrameFlag.AlwaysNeed) !== 0 && !override) return false;
    const vmo = this.system.vmoById(f.owner[frame]);
    // A closed pager supplies nothing again: its pages stay (SEMANTICS: they stay readable).
    if (vmo.kind !== 'pager' || vmo.pager!.isClosed) return false;
    // A page of a request still outstanding is in flight: evicting it would leave the request
    // waiting for a page the pager already supplied (it would never supply it again).
    if (vmo.isUnderRequest(f.pageIndex[frame])) return false;
    if ((f.flags[frame] & FrameFlag.AlwaysNeed) !== 0) this.counters.alwaysNeedOverrides++;
    vmo.evictFrame(frame);
    this.counters.evictedPages++;
    return true;
  }

  /**
   * One round: frees up to max(freeTarget - free, minFrames + carried) frames at `level`
   * (`oneShot`: without the carried minimum, and carrying nothing forward).
   * Returns the frames freed. Cost: the pages it looks at (bounded by what it frees plus skips).
   */
  reclaim(freeTargetFrames: number, minFrames: number, level: EvictionLevel, oneShot = false): number {
    const arena = this.system.arena;
    // A one-shot (external) target neither pays nor adds to the carried minimum.
    const minimum = minFrames + (oneShot ? 0 : this.carriedMinFrames);
    const want = Math.max(freeTargetFrames - arena.freeFrames, minimum);
    if (want <= 0) return 0;
    this.counters.reclaimRounds++;
    // Pages served by readers off the JS thread carry their accessed marks in read mappings.
    this.system.harvestMappedAccess();
    const q = this.system.queues;
    const f = arena.frames;
    let freed = 0;
    const override = level === EvictionLevel.OutOfMemory;
    const includeNewest = level >= EvictionLevel.IncludeNewest;

    // DONT_NEED first; an always-need page found there goes back to its protected queue.
    for (let fr = q.oldest(Queue.DontNeed); fr !== NO_FRAME && freed < want;) {
      const next = q.nextNewer(fr);
      if ((f.flags[fr] & FrameFlag.AlwaysNeed) !== 0 && !override) q.moveTo(fr, Queue.AlwaysNeed);
      else if (this.evictPage(fr, override)) { freed++; this.counters.evictedFromDontNeed++; }
      fr = next;
    }
    const queues = q.reclaimQueuesOldestFirst();
    const usable = includeNewest ? queues.length : queues.length - ACTIVE_GENERATIONS;
    for (let i = 0; i < usable && freed < want; i++) {
      const queue = queues[i];
      const age = q.ageOf(queue);
      const newest = q.newestReclaimQueue;
      for (let fr = q.oldest(queue); fr !== NO_FRAME && freed < want;) {
        const next = q.nextNewer(fr);
        if ((f.flags[fr] & FrameFlag.Accessed) !== 0 && queue !== newest) {
          f.flags[fr] &= ~FrameFlag.Accessed;
          q.moveTo(fr, newest);
          this.counters.secondChances++;
        } else if (this.evictPage(fr, override)) {
          freed++;
          this.counters.evictedByGeneration[age]++;
        }
        fr = next;
      }
    }
    if (override && freed < want) {
      for (let fr = q.oldest(Queue.AlwaysNeed); fr !== NO_FRAME && freed < want;) {
        const next = q.nextNewer(fr);
        if (this.evictPage(fr, true)) freed++;
        fr = next;
      }
    }
    if (!oneShot) this.carriedMinFrames = Math.max(0, minimum - freed);
    assert(freed >= 0, 'negative eviction count');
    return freed;
  }
}
