/**
 * The physical page arena: every resident page of every VMO is a frame of this arena, and its
 * frame limit *is* the memory budget.
 *
 * Frames never move. Memory comes in fixed chunks of CHUNK_FRAMES frames, added when an
 * allocation finds no free frame below the limit; a budget change only moves the limit (and may add
 * chunks later), so a view of a frame stays valid for as long as the frame is held. Chunks are cut
 * from regions: one allocation reserves the memory for every chunk the limit allows at that moment
 * (untouched, it costs no RSS), because V8 counts each new buffer as external memory and runs a
 * full GC every few tens of MiB of it (measured: 4 mark-compacts during a 256 MiB cold read with a
 * buffer per chunk, 1 with one region).
 *
 * Frame states (FrameState), the only transitions:
 *   Free --allocFrame--> Allocated --(a VMO inserts it)--> InObject --(the VMO removes it)--> Allocated
 *   Allocated --freeFrame--> Free
 * A frame is InObject exactly while one VMO's page list holds it; `owner` and `pageIndex` name that
 * slot and are meaningful only then.
 *
 * Per-frame metadata lives in typed arrays indexed by frame number (see FrameTable). Each array
 * names the one module that writes it.
 */
import { assert } from './assert.js';
import { PAGE_SHIFT, PAGE_SIZE } from './constants.js';

/** A frame number that names no frame. */
export const NO_FRAME = -1;
/** An owner id that names no VMO (VMO ids start at 1). */
export const NO_OWNER = 0;

/** Frames per chunk of arena memory: 1024 frames = 4 MiB, few chunks for large budgets, small slack. */
export const CHUNK_SHIFT = 10;
export const CHUNK_FRAMES = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK_FRAMES - 1;
/** Most chunks one region reserves: 256 = 1 GiB (a Buffer holds at most 4 GiB). */
const REGION_MAX_CHUNKS = 256;

export const enum FrameState {
  Free = 0,
  Allocated = 1,
  InObject = 2,
}

/**
 * Dirty state of a frame in a pager-backed VMO; anonymous pages are Untracked.
 *   Clean --write (after DIRTY ack, if trapping)--> Dirty --WRITEBACK_BEGIN--> AwaitingClean
 *   AwaitingClean --WRITEBACK_END--> Clean;  AwaitingClean --write--> Dirty (END then leaves it Dirty)
 */
export const enum DirtyState {
  Untracked = 0,
  Clean = 1,
  Dirty = 2,
  AwaitingClean = 3,
}

/** Bits of `FrameTable.flags`. */
export const enum FrameFlag {
  /** Read or written since the page queues last looked; cleared by harvest and by the evictor. */
  Accessed = 1,
  /** Protected from reclaim by an ALWAYS_NEED hint (sticky, see SEMANTICS.md). */
  AlwaysNeed = 2,
}

/** Largest value each Uint8 field holds; checked at load so an enum never outgrows its array. */
const MAX_DIRTY_STATE = DirtyState.AwaitingClean;
const MAX_FRAME_STATE = FrameState.InObject;
assert(MAX_DIRTY_STATE < 256 && MAX_FRAME_STATE < 256, 'frame enums must fit a Uint8Array');

/**
 * Per-frame metadata, struct-of-arrays. Capacity grows with the arena; arrays are replaced (copied)
 * on growth, so no module keeps a reference to an array across an allocation.
 */
export class FrameTable {
  /** FrameState. Written by the arena (Free/Allocated) and VmObjectPaged (InObject). */
  state = new Uint8Array(0);
  /** Owning VMO id while InObject, else NO_OWNER. Written by VmObjectPaged. */
  owner = new Uint32Array(0);
  /** Page index within the owner while InObject. Written by VmObjectPaged. */
  pageIndex = new Uint32Array(0);
  /** DirtyState. Written by VmObjectPaged. */
  dirty = new Uint8Array(0);
  /** FrameFlag bits. Written by VmObjectPaged (Accessed, AlwaysNeed) and PageQueues (clears Accessed). */
  flags = new Uint8Array(0);
  /** Pin count; a pinned frame is never evicted, decommitted or moved. Written by VmObjectPaged. */
  pinCount = new Uint16Array(0);
  /** PageQueue the frame is on; Queue.None while free. Written only by PageQueues. */
  queue = new Uint8Array(0);
  /** Intrusive doubly linked queue links (NO_FRAME ends a list). Written only by PageQueues. */
  prev = new Int32Array(0);
  next = new Int32Array(0);
  /** Free-list link while Free. Written only by the arena. */
  nextFree = new Int32Array(0);

  get capacity(): number {
    return this.state.length;
  }

  /** Bytes of metadata per frame, for the benchmark's report. */
  static readonly BYTES_PER_FRAME = 1 + 4 + 4 + 1 + 1 + 2 + 1 + 4 + 4 + 4;

  grow(capacity: number): void {
    const grown = <T extends Uint8Array | Uint16Array | Uint32Array | Int32Array>(old: T, make: (n: number) => T): T => {
      const next = make(capacity);
      next.set(old);
      return next;
    };
    this.state = grown(this.state, (n) => new Uint8Array(n));
    this.owner = grown(this.owner, (n) => new Uint32Array(n));
    this.pageIndex = grown(this.pageIndex, (n) => new Uint32Array(n));
    this.dirty = grown(this.dirty, (n) => new Uint8Array(n));
    this.flags = grown(this.flags, (n) => new Uint8Array(n));
    this.pinCount = grown(this.pinCount, (n) => new Uint16Array(n));
    this.queue = grown(this.queue, (n) => new Uint8Array(n));
    this.prev = grown(this.prev, (n) => new Int32Array(n));
    this.next = grown(this.next, (n) => new Int32Array(n));
    this.nextFree = grown(this.nextFree, (n) => new Int32Array(n));
  }
}

/**
 * Where the arena's memory comes from: `bytes` of memory of its own (not a shared pool's), whose
 * contents need not be zero; the arena keeps it for its lifetime and never moves it. The core does
 * no system calls, so an embedder that can (the daemon: memory advised for transparent huge pages)
 * hands a source in; `hugePages` says whether it asked the system for huge pages.
 */
export type FrameMemorySource = (bytes: number) => { memory: Buffer; hugePages: boolean };

/** The default source: Node's allocator (memory of its own; untouched pages cost no RSS). */
export const nodeFrameMemory: FrameMemorySource = (bytes) => ({ memory: Buffer.allocUnsafeSlow(bytes), hugePages: false });

export interface ArenaCounters {
  /** The budget in frames: the most frames that may be allocated at once. */
  limitFrames: number;
  /** Frames backed by memory (whole chunks); may exceed the limit after a shrink. */
  capacityFrames: number;
  /** Frames allocated now (<= limitFrames, except transiently after a shrink until reclaim). */
  usedFrames: number;
  /** Frames that may still be allocated: max(0, limit - used). */
  freeFrames: number;
  /** Highest usedFrames seen. */
  peakUsedFrames: number;
  /** Bytes of reserved memory its source asked the system to back with huge pages. */
  hugePageBytes: number;
}

export class PhysicalPageArena {
  readonly frames = new FrameTable();
  /** The copy coalescer of readStep / writeStep (see FrameCopyRun). */
  readonly copyRun: FrameCopyRun = new FrameCopyRun(this);
  /** Chunk c holds frames [c * CHUNK_FRAMES, (c + 1) * CHUNK_FRAMES). Never reallocated. */
  private readonly chunks: Buffer[] = [];
  /** The region chunks are being cut from, and the bytes of it already cut (see the header). */
  private region: Buffer | null = null;
  private regionCut = 0;
  /** Head of the free list (frames below capacity not allocated), or NO_FRAME. */
  private freeHead = NO_FRAME;
  private freeCount = 0;
  private limit: number;
  private used = 0;
  private peakUsed = 0;
  /** Bytes of regions whose source asked for huge pages (see FrameMemorySource). */
  private hugePageBytes = 0;
  /** Told of every chunk as it is added (onChunk): readers of frames off the JS thread need its memory. */
  private readonly chunkListeners = new Set<(index: number, chunk: Buffer) => void>();

  /** Preconditions: limitFrames is a positive integer. */
  constructor(limitFrames: number, private readonly memorySource: FrameMemorySource = nodeFrameMemory) {
    assert(Number.isInteger(limitFrames) && limitFrames > 0, `bad arena limit ${limitFrames}`);
    this.limit = limitFrames;
  }

  get limitFrames(): number {
    return this.limit;
  }

  get usedFrames(): number {
    return this.used;
  }

  /** Frames that may be allocated before the limit is reached. */
  get freeFrames(): number {
    return Math.max(0, this.limit - this.used);
  }

  get capacityFrames(): number {
    return this.chunks.length * CHUNK_FRAMES;
  }

  counters(): ArenaCounters {
    return {
      limitFrames: this.limit,
      capacityFrames: this.capacityFrames,
      usedFrames: this.used,
      freeFrames: this.freeFrames,
      peakUsedFrames: this.peakUsed,
      hugePageBytes: this.hugePageBytes,
    };
  }

  /**
   * Moves the limit. Lowering it below usedFrames is allowed: allocation fails until enough frames
   * are freed, and the caller (VmSystem) reclaims. Memory already in chunks is kept.
   */
  setLimit(limitFrames: number): void {
    assert(Number.isInteger(limitFrames) && limitFrames > 0, `bad arena limit ${limitFrames}`);
    this.limit = limitFrames;
  }

  /**
   * Calls `listener(index, chunk)` for every chunk there is now, then for each one added, at once:
   * chunk `index` holds frames [index * CHUNK_FRAMES, (index + 1) * CHUNK_FRAMES) at PAGE_SIZE each,
   * and never moves or goes away while the arena lives. Returns an unsubscribe function.
   */
  onChunk(listener: (index: number, chunk: Buffer) => void): () => void {
    this.chunkListeners.add(listener);
    for (let i = 0; i < this.chunks.length; i++) listener(i, this.chunks[i]);
    return () => { this.chunkListeners.delete(listener); };
  }

  /**
   * Takes one frame (Free → Allocated), or returns NO_FRAME when the limit is reached.
   * The frame's bytes are unspecified; callers zero or fill it.
   */
  allocFrame(): number {
    if (this.used >= this.limit) return NO_FRAME;
    if (this.freeHead === NO_FRAME) this.addChunk();
    const frame = this.freeHead;
    const f = this.frames;
    assert(f.state[frame] === FrameState.Free, () => `allocFrame: frame ${frame} is not free`);
    this.freeHead = f.nextFree[frame];
    this.freeCount--;
    f.state[frame] = FrameState.Allocated;
    f.owner[frame] = NO_OWNER;
    f.dirty[frame] = DirtyState.Untracked;
    f.flags[frame] = 0;
    this.used++;
    if (this.used > this.peakUsed) this.peakUsed = this.used;
    return frame;
  }

  /** Returns an Allocated frame to the free list. Preconditions: Allocated, unpinned, on no queue. */
  freeFrame(frame: number): void {
    const f = this.frames;
    assert(f.state[frame] === FrameState.Allocated, () => `freeFrame: frame ${frame} state ${f.state[frame]}`);
    assert(f.pinCount[frame] === 0 && f.queue[frame] === 0, () => `freeFrame: frame ${frame} pinned or queued`);
    f.state[frame] = FrameState.Free;
    f.nextFree[frame] = this.freeHead;
    this.freeHead = frame;
    this.freeCount++;
    this.used--;
  }

  private addChunk(): void {
    const base = this.capacityFrames;
    const chunkBytes = CHUNK_FRAMES * PAGE_SIZE;
    if (this.region === null || this.regionCut === this.region.length) {
      // Reserve every chunk the limit allows now (at least this one); untouched, it costs no RSS.
      // Not a SharedArrayBuffer: V8 copies out of shared memory at half the speed (measured 20 vs
      // 40 GB/s), and copying out of frames is the resident read path.
      const chunks = Math.min(REGION_MAX_CHUNKS, Math.max(1, Math.ceil((this.limit - base) / CHUNK_FRAMES)));
      const regionBytes = chunks * chunkBytes;
      const { memory, hugePages } = this.memorySource(regionBytes);
      assert(memory.length >= regionBytes, () => `frame memory source gave ${memory.length} bytes for ${regionBytes}`);
      this.region = memory.subarray(0, regionBytes);
      this.regionCut = 0;
      if (hugePages) this.hugePageBytes += regionBytes;
    }
    const chunk = this.region.subarray(this.regionCut, this.regionCut + chunkBytes);
    this.chunks.push(chunk);
    this.regionCut += chunkBytes;
    // Before any of its frames is handed out, so a reader never meets a frame of an unknown chunk.
    for (const l of this.chunkListeners) l(this.chunks.length - 1, chunk);
    if (this.frames.capacity < base + CHUNK_FRAMES) {
      this.frames.grow(Math.max(base + CHUNK_FRAMES, this.frames.capacity * 2));
    }
    for (let i = CHUNK_FRAMES - 1; i >= 0; i--) {
      const frame = base + i;
      this.frames.state[frame] = FrameState.Free;
      this.frames.nextFree[frame] = this.freeHead;
      this.freeHead = frame;
    }
    this.freeCount += CHUNK_FRAMES;
  }

  /** Copies `length` bytes at `inPage` of `frame` into `dst[dstOffset...]`. No allocation. */
  copyOut(frame: number, inPage: number, dst: Uint8Array, dstOffset: number, length: number): void {
    const start = ((frame & CHUNK_MASK) << PAGE_SHIFT) + inPage;
    this.chunks[frame >>> CHUNK_SHIFT].copy(dst, dstOffset, start, start + length);
  }

  /** Copies `length` bytes of `src[srcOffset...]` into `frame` at `inPage` (and the frames after it in its chunk). One view of src. */
  copyIn(frame: number, inPage: number, src: Uint8Array, srcOffset: number, length: number): void {
    const start = ((frame & CHUNK_MASK) << PAGE_SHIFT) + inPage;
    this.chunks[frame >>> CHUNK_SHIFT].set(src.subarray(srcOffset, srcOffset + length), start);
  }

  /**
   * Zeroes whole frames: one fill per run of consecutive frames of one chunk (a fill call costs more
   * than zeroing a page; allocFramesAscending hands out runs).
   */
  zeroFrames(frames: ArrayLike<number>): void {
    let i = 0;
    while (i < frames.length) {
      let j = i + 1;
      while (j < frames.length && frames[j] === frames[j - 1] + 1 && this.sameChunk(frames[i], frames[j])) j++;
      this.framesView(frames[i], j - i).fill(0);
      i = j;
    }
  }

  fill(frame: number, inPage: number, length: number, value: number): void {
    const start = ((frame & CHUNK_MASK) << PAGE_SHIFT) + inPage;
    this.chunks[frame >>> CHUNK_SHIFT].fill(value, start, start + length);
  }

  copyFrame(fromFrame: number, toFrame: number): void {
    const start = (fromFrame & CHUNK_MASK) << PAGE_SHIFT;
    this.chunks[fromFrame >>> CHUNK_SHIFT].copy(this.chunks[toFrame >>> CHUNK_SHIFT],
      (toFrame & CHUNK_MASK) << PAGE_SHIFT, start, start + PAGE_SIZE);
  }

  isZeroFrame(frame: number): boolean {
    const chunk = this.chunks[frame >>> CHUNK_SHIFT];
    const start = (frame & CHUNK_MASK) << PAGE_SHIFT;
    // Read as 32-bit words: a page of 1024 words is checked without a per-byte loop.
    const words = new Uint32Array(chunk.buffer, chunk.byteOffset + start, PAGE_SIZE / 4);
    for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
    return true;
  }

  /**
   * A view straight onto a frame's memory. Aliasing contract: valid only while the frame is held
   * by whoever asked; after the frame is freed (eviction, decommit) the bytes belong to another page.
   */
  frameView(frame: number): Buffer {
    const start = (frame & CHUNK_MASK) << PAGE_SHIFT;
    return this.chunks[frame >>> CHUNK_SHIFT].subarray(start, start + PAGE_SIZE);
  }

  /** Are two frames in one chunk (so a single view can span them)? */
  sameChunk(a: number, b: number): boolean {
    return a >>> CHUNK_SHIFT === b >>> CHUNK_SHIFT;
  }

  /** A view over `count` consecutive frames of one chunk. Same aliasing contract as frameView. */
  framesView(firstFrame: number, count: number): Buffer {
    assert(count > 0 && this.sameChunk(firstFrame, firstFrame + count - 1), 'framesView spans chunks');
    const start = (firstFrame & CHUNK_MASK) << PAGE_SHIFT;
    return this.chunks[firstFrame >>> CHUNK_SHIFT].subarray(start, start + count * PAGE_SIZE);
  }

  /** Debug: walks the free list and checks it against the counters. Costs O(capacity). */
  debugValidate(): void {
    let n = 0;
    for (let fr = this.freeHead; fr !== NO_FRAME; fr = this.frames.nextFree[fr]) {
      assert(this.frames.state[fr] === FrameState.Free, `free list holds non-free frame ${fr}`);
      n++;
    }
    assert(n === this.freeCount, `free list length ${n} != ${this.freeCount}`);
    assert(this.freeCount + this.used === this.capacityFrames,
      `free ${this.freeCount} + used ${this.used} != capacity ${this.capacityFrames}`);
  }
}

/**
 * Coalesces the page-sized copies of one read or write between frames and a buffer: pages whose
 * frames are consecutive in one chunk become one copy (frames of one supply usually are, so a
 * resident 128 KiB read is typically a single copy). One per arena, reused: a step starts it, adds
 * each page, and flushes before returning; steps are synchronous and never nested.
 */
export class FrameCopyRun {
  private buf: Uint8Array = new Uint8Array(0);
  private intoFrames = false;
  private frame = NO_FRAME;
  private nextFrame = NO_FRAME;
  private inPage = 0;
  private bufOffset = 0;
  private bytes = 0;

  constructor(private readonly arena: PhysicalPageArena) {}

  /** Starts a step: copies go from the frames into `buf` (reads), or from `buf` into them (writes). */
  start(buf: Uint8Array, intoFrames: boolean): void {
    assert(this.bytes === 0, 'FrameCopyRun: a step started inside another');
    this.buf = buf;
    this.intoFrames = intoFrames;
    this.bytes = 0;
    this.nextFrame = NO_FRAME;
  }

  /** `length` bytes at `inPage` of `frame` go to or come from `buf[bufOffset...]`. */
  add(frame: number, inPage: number, bufOffset: number, length: number): void {
    if (frame === this.nextFrame && inPage === 0 && this.arena.sameChunk(this.frame, frame)) {
      this.bytes += length;
      this.nextFrame = frame + 1;
      return;
    }
    this.flush();
    this.frame = frame;
    this.nextFrame = frame + 1;
    this.inPage = inPage;
    this.bufOffset = bufOffset;
    this.bytes = length;
  }

  /** Copies what was added so far; the next add starts a new run. */
  flush(): void {
    if (this.bytes > 0) {
      if (this.intoFrames) this.arena.copyIn(this.frame, this.inPage, this.buf, this.bufOffset, this.bytes);
      else this.arena.copyOut(this.frame, this.inPage, this.buf, this.bufOffset, this.bytes);
    }
    this.bytes = 0;
    this.nextFrame = NO_FRAME;
  }
}
