/**
 * Page queues: every frame held by a VMO is on exactly one queue; free frames are on none.
 *
 * Reclaimable pager-backed pages age through RECLAIM_GENERATIONS LRU generations. An access only
 * sets the frame's Accessed bit (cheap on the read path); harvestAccessedBits(), and the evictor as
 * it meets a page, move accessed pages to the newest generation. An aging step makes every
 * generation one older (O(1) unless all generations are in use, when the oldest merges into the
 * next). The queue a page is on is a function of its state, kept by the VMO calling `place`:
 *
 *   anonymous or clone-private page        -> Anonymous   (never reclaimed)
 *   pinned (pinCount > 0)                  -> Wired       (never reclaimed)
 *   pager page Dirty or AwaitingClean      -> PagerDirty  (never reclaimed; access does not move it)
 *   pager page Clean with AlwaysNeed        -> AlwaysNeed  (reclaimed only at the OOM level)
 *   pager page Clean after DONT_NEED        -> DontNeed    (reclaimed first)
 *   other clean pager page                 -> a reclaim generation
 *
 * Counts per queue are exact at every return (no lazily repaired counters).
 */
import { assert } from './assert.js';
import { FrameFlag, NO_FRAME, type PhysicalPageArena } from './arena.js';

/** Zircon uses 8 reclaim queues; we keep its number so aging behaves as its tests expect. */
export const RECLAIM_GENERATIONS = 8;
/** The newest generations count as active: only the out-of-memory level reclaims from them. */
export const ACTIVE_GENERATIONS = 2;
assert(ACTIVE_GENERATIONS < RECLAIM_GENERATIONS, 'active generations must leave some inactive ones');

export const enum Queue {
  None = 0,
  Anonymous = 1,
  Wired = 2,
  PagerDirty = 3,
  AlwaysNeed = 4,
  DontNeed = 5,
  /** Reclaim slots occupy [ReclaimBase, ReclaimBase + RECLAIM_GENERATIONS). */
  ReclaimBase = 6,
}
const QUEUE_COUNT = Queue.ReclaimBase + RECLAIM_GENERATIONS;
assert(QUEUE_COUNT < 256, 'queue ids must fit the Uint8Array FrameTable.queue');

export interface PageQueueCounts {
  anonymous: number;
  wired: number;
  pagerDirty: number;
  alwaysNeed: number;
  dontNeed: number;
  /** Reclaimable pages per generation, newest first. */
  reclaim: number[];
}

export class PageQueues {
  private readonly head = new Int32Array(QUEUE_COUNT).fill(NO_FRAME);
  private readonly tail = new Int32Array(QUEUE_COUNT).fill(NO_FRAME);
  private readonly count = new Int32Array(QUEUE_COUNT);
  /**
   * The newest generation number, ever increasing: generation g lives in slot g % RECLAIM_GENERATIONS,
   * and the oldest live generation is mruGen - RECLAIM_GENERATIONS + 1 (every slot is always in use).
   */
  private mruGen = RECLAIM_GENERATIONS - 1;
  /** Aging steps taken (for stats). */
  agingSteps = 0;

  constructor(private readonly arena: PhysicalPageArena) {}

  private slotOf(generation: number): number {
    return Queue.ReclaimBase + (generation % RECLAIM_GENERATIONS);
  }

  get newestReclaimQueue(): number {
    return this.slotOf(this.mruGen);
  }

  /** Pushes the frame at the newest end (tail) of `queue`. Precondition: on no queue. */
  private push(frame: number, queue: number): void {
    const f = this.arena.frames;
    assert(f.queue[frame] === Queue.None, () => `frame ${frame} already on queue ${f.queue[frame]}`);
    f.queue[frame] = queue;
    f.next[frame] = NO_FRAME;
    f.prev[frame] = this.tail[queue];
    if (this.tail[queue] === NO_FRAME) this.head[queue] = frame;
    else f.next[this.tail[queue]] = frame;
    this.tail[queue] = frame;
    this.count[queue]++;
  }

  /** Removes the frame from whatever queue it is on (no-op when on none). */
  remove(frame: number): void {
    const f = this.arena.frames;
    const queue = f.queue[frame];
    if (queue === Queue.None) return;
    const p = f.prev[frame];
    const n = f.next[frame];
    if (p === NO_FRAME) this.head[queue] = n;
    else f.next[p] = n;
    if (n === NO_FRAME) this.tail[queue] = p;
    else f.prev[n] = p;
    f.queue[frame] = Queue.None;
    this.count[queue]--;
  }

  /** Moves the frame to the newest end of `queue`. */
  moveTo(frame: number, queue: number): void {
    this.remove(frame);
    this.push(frame, queue);
  }

  /** Puts a freshly inserted clean pager page on the newest generation (or another queue). */
  placeNewest(frame: number): void {
    this.moveTo(frame, this.newestReclaimQueue);
  }

  queueOf(frame: number): number {
    return this.arena.frames.queue[frame];
  }

  isReclaimQueue(queue: number): boolean {
    return queue >= Queue.ReclaimBase;
  }

  /** Age of a reclaim queue: 0 for the newest generation. */
  ageOf(queue: number): number {
    assert(this.isReclaimQueue(queue), `queue ${queue} is not a reclaim queue`);
    const slot = queue - Queue.ReclaimBase;
    const mruSlot = this.mruGen % RECLAIM_GENERATIONS;
    return (mruSlot - slot + RECLAIM_GENERATIONS) % RECLAIM_GENERATIONS;
  }

  /** Oldest frame of a queue, or NO_FRAME. */
  oldest(queue: number): number {
    return this.head[queue];
  }

  nextNewer(frame: number): number {
    return this.arena.frames.next[frame];
  }

  countOf(queue: number): number {
    return this.count[queue];
  }

  /** Reclaim queues from oldest to newest; the last ACTIVE_GENERATIONS are the active ones. */
  reclaimQueuesOldestFirst(): number[] {
    const out: number[] = [];
    for (let g = this.mruGen - RECLAIM_GENERATIONS + 1; g <= this.mruGen; g++) out.push(this.slotOf(g));
    return out;
  }

  /**
   * One aging step: a new, empty newest generation. When every slot is in use the oldest generation
   * merges into the next-oldest first, so no page is ever lost or skipped.
   */
  age(): void {
    const oldestSlot = this.slotOf(this.mruGen + 1);
    const mergeInto = this.slotOf(this.mruGen + 2);
    // Move the oldest slot's pages (oldest first) to the *front* of the next-oldest slot, keeping order.
    const f = this.arena.frames;
    for (let fr = this.tail[oldestSlot]; fr !== NO_FRAME;) {
      const p = f.prev[fr];
      this.remove(fr);
      this.pushOldest(fr, mergeInto);
      fr = p;
    }
    this.mruGen++;
    this.agingSteps++;
  }

  private pushOldest(frame: number, queue: number): void {
    const f = this.arena.frames;
    f.queue[frame] = queue;
    f.prev[frame] = NO_FRAME;
    f.next[frame] = this.head[queue];
    if (this.head[queue] === NO_FRAME) this.tail[queue] = frame;
    else f.prev[this.head[queue]] = frame;
    this.head[queue] = frame;
    this.count[queue]++;
  }

  /**
   * Moves every accessed page on a reclaim or DONT_NEED queue to the newest generation and clears
   * its Accessed bit. Walks every reclaimable page: O(resident pager pages).
   */
  harvestAccessedBits(): number {
    const f = this.arena.frames;
    const newest = this.newestReclaimQueue;
    let moved = 0;
    const queues = [Queue.DontNeed as number, ...this.reclaimQueuesOldestFirst()];
    for (const q of queues) {
      if (q === newest) continue;
      for (let fr = this.head[q]; fr !== NO_FRAME;) {
        const n = f.next[fr];
        if ((f.flags[fr] & FrameFlag.Accessed) !== 0) {
          f.flags[fr] &= ~FrameFlag.Accessed;
          this.moveTo(fr, newest);
          moved++;
        }
        fr = n;
      }
    }
    for (let fr = this.head[newest]; fr !== NO_FRAME; fr = f.next[fr]) f.flags[fr] &= ~FrameFlag.Accessed;
    return moved;
  }

  counts(): PageQueueCounts {
    return {
      anonymous: this.count[Queue.Anonymous],
      wired: this.count[Queue.Wired],
      pagerDirty: this.count[Queue.PagerDirty],
      alwaysNeed: this.count[Queue.AlwaysNeed],
      dontNeed: this.count[Queue.DontNeed],
      reclaim: this.reclaimQueuesOldestFirst().reverse().map((q) => this.count[q]),
    };
  }

  /** Pages on any queue the evictor may take from (DontNeed and every generation). */
  get reclaimablePages(): number {
    let n = this.count[Queue.DontNeed];
    for (let i = 0; i < RECLAIM_GENERATIONS; i++) n += this.count[Queue.ReclaimBase + i];
    return n;
  }

  /** Debug: every list is well linked and its length equals its count. O(queued frames). */
  debugValidate(): void {
    const f = this.arena.frames;
    for (let q = 1; q < QUEUE_COUNT; q++) {
      let n = 0;
      let prev = NO_FRAME;
      for (let fr = this.head[q]; fr !== NO_FRAME; fr = f.next[fr]) {
        assert(f.queue[fr] === q, `frame ${fr} linked on queue ${q} but says ${f.queue[fr]}`);
        assert(f.prev[fr] === prev, `frame ${fr} has a bad prev link`);
        prev = fr;
        n++;
      }
      assert(this.tail[q] === prev, `queue ${q} tail mismatch`);
      assert(n === this.count[q], `queue ${q} holds ${n} frames but counts ${this.count[q]}`);
    }
  }
}
