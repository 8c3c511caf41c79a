/**
 * A read mapping of a pager VMO: the page table a concurrent reader outside the JS thread walks,
 * as an MMU walks the tables a kernel keeps for it. The reader (pagerfs's binding, on libfuse's
 * threads) copies resident pages straight out of the arena's frames, sets accessed bits, and
 * "faults" (hands the read to the JS thread) on anything it cannot answer: a page not mapped, a
 * range starting at or past the readable end (one straddling it is cut there), a blocked mapping, a range that reaches the read-notify window, or
 * a mapping changed while it copied.
 *
 * The core keeps the mapping exact: VmObjectPaged maps a page when it installs a frame, unmaps it
 * when it releases one, and brackets every change a reader could see (pages leaving, bytes of
 * resident frames changing, the size moving) in begin()/end().
 *
 * Seqlock protocol (the reader's side is `pagerfs_fast_read` in the binding, native/):
 *   writer (JS thread, only):  begin: seq += 1 (odd) ... change pages, bytes, size ... end: seq += 1 (even)
 *   reader (any thread):       s = load-acquire(seq); odd → fault; check header and entries; copy
 *                              frames; set accessed bytes; fence(acquire); seq != s → fault
 * Brackets nest (depth): one JS operation moves seq by two, whatever it touches. A frame a reader
 * copied from may be released, reallocated and refilled during its copy; the release was
 * bracketed, so the reader's second load sees seq moved and throws the copy away.
 * Invariant: seq is even whenever the JS thread is not inside a bracket (depth 0).
 * Not bracketed, by design: mapping a fresh frame (entry 0 → frame + 1). Its bytes are complete
 * before the entry is stored (supply fills, zeroes and tail-fills first), a reader that saw 0
 * simply faulted, and bracketing supplies would fault every reader of a file being read ahead.
 * Ordering: the reader's loads of an entry and then of the frame it names are ordered by their
 * address dependency; the writer's stores are ordered as x86-64's TSO orders them, and begin()
 * reloads seq after the increment so that on a weaker CPU (arm64: release then acquire) the stores
 * that follow cannot move above it.
 */
import { assert } from './assert.js';

/** Int32 slots of `header`. The layout is the binding's too (native/README.md, level 17). */
export const enum MappingSlot {
  /** Seqlock counter: odd while the JS thread changes what a reader could see. */
  Seq = 0,
  /** The readable end in bytes (the VMO's content size), as two unsigned 32-bit halves. */
  SizeLow = 1,
  SizeHigh = 2,
  /** Nonzero: every read faults (MappingBlock bits). */
  Blocked = 3,
  /** A read of pages [first, end) with end > NotifyPage and first < NotifyBefore faults; -1: none. */
  NotifyPage = 4,
  NotifyBefore = 5,
  /** Set (to 1) by a reader that set any accessed byte; cleared by the harvest before it scans. */
  AccessedAny = 6,
}

/** Int32s in a header: one 64-byte cache line. */
export const MAPPING_HEADER_SLOTS = 16;

/** Bits of the Blocked slot. */
export const enum MappingBlock {
  /** The mapping's user blocks reads (pagerfs: a write that grew the file has not got there). */
  User = 1,
  /** The mapping no longer follows its VMO (replaced by a larger one, or the VMO was destroyed). */
  Retired = 2,
}

/** Pages per byte of `accessedGroups`: 1024 (4 MiB of file), so a harvest of a huge file reads little. */
export const ACCESSED_GROUP_SHIFT = 10;

/**
 * Most pages one mapping covers: pages past it are never mapped (their reads fault), so a huge
 * file costs at most 5 B × 2^22 = 20 MiB of tables (untouched, they cost no RSS).
 */
export const MAX_MAPPED_PAGES = 1 << 22;

/**
 * A reader's page table of one pager VMO. Created by VmObjectPaged.attachReadMapping; every field a
 * reader sees is written only by that VMO (and block/setReadNotify by the mapping's user), on the
 * JS thread. The typed arrays live in ArrayBuffers of their own, which never move: a reader may
 * hold pointers to them for as long as it holds the mapping.
 */
export class ReadMapping {
  /** See MappingSlot. */
  readonly header: Int32Array;
  /** Per page: frame + 1 while the page is resident, 0 otherwise (0 keeps a fresh table untouched). */
  readonly entries: Int32Array;
  /**
   * Per page: set to 1 by a reader that served it (a PTE's accessed bit); harvested into the frame's
   * FrameFlag.Accessed and cleared by VmSystem.harvestMappedAccess. Its length is capacityPages
   * rounded up to 4, so the harvest can skip untouched pages four at a time.
   */
  readonly accessed: Uint8Array;
  private readonly accessedWords: Uint32Array;
  /**
   * Per group of 2^ACCESSED_GROUP_SHIFT pages: set to 1 by a reader that marked a page of it, cleared
   * by the harvest before it scans the group. Marks are best effort, as the AccessedAny slot: a
   * reader's mark racing the harvest may be lost (the page then ages as if only the JS thread had
   * read it), never a byte of any read.
   */
  readonly accessedGroups: Uint8Array;
  /** Pages [0, capacityPages) may be mapped; fixed for the mapping's life. */
  readonly capacityPages: number;
  /** Open begin() brackets. */
  private depth = 0;

  /** Preconditions: 0 <= capacityPages <= MAX_MAPPED_PAGES. */
  constructor(capacityPages: number) {
    assert(Number.isInteger(capacityPages) && capacityPages >= 0 && capacityPages <= MAX_MAPPED_PAGES,
      `bad read mapping capacity ${capacityPages}`);
    this.capacityPages = capacityPages;
    this.header = new Int32Array(new ArrayBuffer(MAPPING_HEADER_SLOTS * 4));
    this.entries = new Int32Array(new ArrayBuffer(Math.max(1, capacityPages) * 4));
    const accessedBytes = Math.max(4, Math.ceil(capacityPages / 4) * 4);
    const accessedBuffer = new ArrayBuffer(accessedBytes);
    this.accessed = new Uint8Array(accessedBuffer);
    this.accessedWords = new Uint32Array(accessedBuffer);
    this.accessedGroups = new Uint8Array(new ArrayBuffer(Math.max(1, Math.ceil(capacityPages / (1 << ACCESSED_GROUP_SHIFT)))));
    this.header[MappingSlot.NotifyPage] = -1;
    this.header[MappingSlot.NotifyBefore] = -1;
  }

  /** The seqlock counter now (even at rest). */
  get seq(): number {
    return Atomics.load(this.header, MappingSlot.Seq);
  }

  /** Is the JS thread inside a bracket? */
  get changing(): boolean {
    return this.depth > 0;
  }

  /** Opens a bracket: readers copying now will fault. Pair with end() (try/finally). */
  begin(): void {
    if (this.depth++ > 0) return;
    Atomics.add(this.header, MappingSlot.Seq, 1);
    Atomics.load(this.header, MappingSlot.Seq); // orders the stores that follow after the increment (see header)
  }

  /** Closes a bracket; the outermost makes seq even again. */
  end(): void {
    assert(this.depth > 0, 'ReadMapping.end without begin');
    if (--this.depth === 0) Atomics.add(this.header, MappingSlot.Seq, 1);
  }

  /** Page `pageIndex` is held by `frame` (no bracket needed: see the header). Pages past capacity are ignored. */
  map(pageIndex: number, frame: number): void {
    if (pageIndex < this.capacityPages) this.entries[pageIndex] = frame + 1;
  }

  /** Page `pageIndex` is no longer resident. Precondition: inside a bracket. */
  unmap(pageIndex: number): void {
    if (pageIndex >= this.capacityPages) return;
    assert(this.depth > 0, () => `unmap of page ${pageIndex} outside a bracket`);
    this.entries[pageIndex] = 0;
    this.accessed[pageIndex] = 0; // the next frame of this page starts unaccessed
  }

  /** Forgets a reader's accessed mark on `pageIndex` (a DONT_NEED hint outranks an earlier read). */
  clearAccessed(pageIndex: number): void {
    if (pageIndex < this.capacityPages) this.accessed[pageIndex] = 0;
  }

  /** The frame mapped at `pageIndex`, or -1. */
  frameAt(pageIndex: number): number {
    return pageIndex < this.capacityPages ? this.entries[pageIndex] - 1 : -1;
  }

  /** Sets the readable end. Precondition: inside a bracket (a shrink must not be seen half done). */
  setSizeBytes(sizeBytes: number): void {
    assert(this.depth > 0, 'setSizeBytes outside a bracket');
    this.header[MappingSlot.SizeLow] = sizeBytes % 0x1_0000_0000;
    this.header[MappingSlot.SizeHigh] = Math.floor(sizeBytes / 0x1_0000_0000);
  }

  /** The readable end in bytes. */
  get sizeBytes(): number {
    return (this.header[MappingSlot.SizeLow] >>> 0) + (this.header[MappingSlot.SizeHigh] >>> 0) * 0x1_0000_0000;
  }

  /**
   * While set, every read faults (the user's reason: pagerfs sets it while a write that grew the
   * file has not got there). A single store a reader sees before or after its copy: set it inside
   * the bracket of the change it guards.
   */
  setBlocked(on: boolean): void {
    if (on) this.header[MappingSlot.Blocked] |= MappingBlock.User;
    else this.header[MappingSlot.Blocked] &= ~MappingBlock.User;
  }

  get blocked(): boolean {
    return (this.header[MappingSlot.Blocked] & MappingBlock.User) !== 0;
  }

  /** @internal The mapping stops following its VMO: every read faults from now on. */
  retire(): void {
    this.begin();
    this.header[MappingSlot.Blocked] |= MappingBlock.Retired;
    this.end();
  }

  get retired(): boolean {
    return (this.header[MappingSlot.Blocked] & MappingBlock.Retired) !== 0;
  }

  /**
   * A read reaching page `notifyPage` (and starting before `notifyBefore`) must reach the JS thread
   * (-1: none): "notify the core's user when a read gets there". Bracketed: the two slots change together.
   */
  setReadNotify(notifyPage: number, notifyBefore: number): void {
    const h = this.header;
    if (h[MappingSlot.NotifyPage] === notifyPage && h[MappingSlot.NotifyBefore] === notifyBefore) return;
    this.begin();
    h[MappingSlot.NotifyPage] = notifyPage;
    h[MappingSlot.NotifyBefore] = notifyBefore;
    this.end();
  }

  /**
   * Calls `fn(pageIndex, frame)` for each page a reader marked accessed since the last harvest, and
   * clears the marks. Skips at once when no reader set any; then reads the groups and, in each
   * marked group, its pages four at a time. Cost: capacityPages / 1024 + 256 per marked group.
   */
  harvest(fn: (pageIndex: number, frame: number) => void): number {
    const h = this.header;
    if (Atomics.load(h, MappingSlot.AccessedAny) === 0) return 0;
    // Cleared first, each flag before what it summarizes: a reader marking meanwhile sets it again.
    Atomics.store(h, MappingSlot.AccessedAny, 0);
    const groups = this.accessedGroups;
    const words = this.accessedWords;
    const bytes = this.accessed;
    const wordsPerGroup = (1 << ACCESSED_GROUP_SHIFT) / 4;
    let found = 0;
    for (let g = 0; g < groups.length; g++) {
      if (groups[g] === 0) continue;
      groups[g] = 0;
      const wordEnd = Math.min(words.length, (g + 1) * wordsPerGroup);
      for (let w = g * wordsPerGroup; w < wordEnd; w++) {
        if (words[w] === 0) continue;
        const end = Math.min(w * 4 + 4, this.capacityPages);
        for (let p = w * 4; p < end; p++) {
          if (bytes[p] === 0) continue;
          const frame = this.entries[p] - 1;
          if (frame >= 0) {
            fn(p, frame);
            found++;
          }
        }
        words[w] = 0; // a mark landing between the reads above and this clear is lost (best effort)
      }
    }
    return found;
  }

  /** Debug: pages mapped now. O(capacity). */
  debugMappedPages(): number {
    let n = 0;
    for (let p = 0; p < this.capacityPages; p++) if (this.entries[p] !== 0) n++;
    return n;
  }
}

/** The capacity a mapping of a VMO of `sizePages` gets: room to grow by a quarter, capped. */
export function mappingCapacityFor(sizePages: number): number {
  return Math.min(MAX_MAPPED_PAGES, sizePages + Math.max(16, sizePages >>> 2));
}

