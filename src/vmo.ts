/**
 * VMOs: anonymous, pager-backed, copy-on-write clones, and slices.
 *
 * Every operation here is synchronous and runs to completion: no await falls between looking at a
 * page and changing it, which is what a lock is in a single-threaded kernel. An operation that needs
 * the pager stops at the first page it cannot proceed past, records a PageWaiter (`takeWait()`), and
 * returns its progress; the async wrappers (`read`, `write`, `commitRange`, …) wait on it outside the
 * core and retry from there (Zircon's SHOULD_WAIT loop).
 *
 * Kinds (VmObjectPaged.kind):
 *   anonymous  pages appear zero-filled on first touch; never evicted (no source to refetch from).
 *   pager      pages come from a pager through page requests; dirty-tracked; clean ones evictable.
 *   clone      SNAPSHOT_AT_LEAST_ON_WRITE child of a pager VMO (or of such a clone): reads go
 *              through to the parent chain (faulting the root), the first write forks a private copy.
 * Slices (VmSlice) are windows onto another VMO; they own no pages.
 *
 * Ownership: a VmObjectPaged owns its PageList, ZeroRanges and PageSource, and is the only writer of
 * FrameTable owner/pageIndex/dirty/pinCount for frames it holds. PageQueues owns queue placement and
 * is told of every state change through `requeue`.
 */
import { assert } from './assert.js';
import { DirtyState, FrameFlag, FrameState, NO_FRAME } from './arena.js';
import {
  MAX_NAME_BYTES, MAX_VMO_PAGES, MAX_VMO_SIZE_BYTES, PAGE_SIZE, isPageAligned, pageOf, pagesCeil,
} from './constants.js';
import { PageList } from './page-list.js';
import { Queue } from './page-queues.js';
import { PageSource, PageWaiter, type RequestKind } from './page-request.js';
import { PagerCommand } from './port.js';
import { MAX_MAPPED_PAGES, MappingSlot, ReadMapping, mappingCapacityFor } from './read-mapping.js';
import { ZxError, ZxStatus } from './status.js';
import type { VmSystem } from './vm-system.js';
import { ChildOptions, PageResidency, VmoOp, type ResidencyRun, type VmoCounters } from './vmo-types.js';
import { ZeroRanges } from './zero-ranges.js';

/** The promise a read that needed no page request returns (settled; shared, never rejected). */
const SETTLED: Promise<void> = Promise.resolve();

export type VmoKind = 'anonymous' | 'pager' | 'clone' | 'slice';

/** Told when a VMO gains its first child and loses its last (Zircon's VmObjectChildObserver). */
export interface ChildObserver {
  onOneChild(): void;
  onZeroChildren(): void;
}

/** Results of resolving a page for reading (frame numbers are >= 0). */
const RESOLVE_ZERO = -2;
const RESOLVE_MISSING = -3;
const RESOLVE_BAD_STATE = -4;

function checkRange(sizeBytes: number, offsetBytes: number, lengthBytes: number): void {
  if (!Number.isSafeInteger(offsetBytes) || !Number.isSafeInteger(lengthBytes) || offsetBytes < 0 || lengthBytes < 0) {
    throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `bad range offset=${offsetBytes} length=${lengthBytes}`);
  }
  if (offsetBytes + lengthBytes > sizeBytes) {
    throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE,
      `range [${offsetBytes}, ${offsetBytes + lengthBytes}) runs past the VMO size ${sizeBytes}`);
  }
}

/** The caller's buffer must hold the bytes asked for (Zircon checks user buffers the same way). */
function checkBuffer(buf: Uint8Array, bufOffset: number, lengthBytes: number): void {
  if (bufOffset < 0 || bufOffset + lengthBytes > buf.length) {
    throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `buffer of ${buf.length} bytes cannot hold ${lengthBytes} bytes at ${bufOffset}`);
  }
}

function truncateName(name: string): string {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length <= MAX_NAME_BYTES) return name;
  let cut = MAX_NAME_BYTES;
  while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--; // never split a UTF-8 sequence
  return bytes.subarray(0, cut).toString('utf8');
}

/** What every VMO, paged or slice, offers its clients. Byte offsets; see each method's contract. */
export abstract class VmObject {
  readonly id: number;
  private nameValue = '';
  private userIdValue: number | undefined;
  /** Children that keep this VMO alive (clones and slices). */
  readonly children = new Set<VmObject>();
  private observer: ChildObserver | undefined;
  /** False once the owner dropped its handle; the VMO lives on while children need it. */
  protected handleOpen = true;
  protected destroyed = false;
  /** The waiter recorded by the last step that stopped short; see takeWait(). */
  protected pendingWait: PageWaiter | null = null;

  constructor(readonly system: VmSystem, readonly kind: VmoKind) {
    this.id = system.registerVmo(this);
  }

  abstract get sizeBytes(): number;
  get sizePages(): number {
    return this.sizeBytes / PAGE_SIZE;
  }

  get name(): string {
    return this.nameValue;
  }
  /** Sets the name, truncated to MAX_NAME_BYTES UTF-8 bytes without splitting a character. */
  set name(value: string) {
    this.nameValue = truncateName(value);
  }

  get userId(): number | undefined {
    return this.userIdValue;
  }
  /** Sets the user id; it can be set once (a second call is a bug: it throws). */
  setUserId(id: number): void {
    assert(this.userIdValue === undefined, `VMO ${this.id}: user id set twice`);
    this.userIdValue = id;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  setChildObserver(observer: ChildObserver | undefined): void {
    this.observer = observer;
  }

  /** @internal */
  addChild(child: VmObject): void {
    this.children.add(child);
    if (this.children.size === 1) this.observer?.onOneChild();
  }

  /** @internal */
  removeChild(child: VmObject): void {
    this.children.delete(child);
    if (this.children.size === 0) {
      this.observer?.onZeroChildren();
      if (!this.handleOpen) this.destroy();
    }
  }

  /** The waiter the last short step recorded; valid until the next operation on this VMO. */
  takeWait(): PageWaiter {
    const w = this.pendingWait;
    assert(w !== null, () => `VMO ${this.id}: takeWait with no wait recorded`);
    this.pendingWait = null;
    return w;
  }

  /**
   * Reads what it can without waiting: copies `lengthBytes` at `offsetBytes` into dst[dstOffset..]
   * page by page, in order, and returns the bytes copied. Fewer than asked means it stopped at a page
   * the pager must provide; takeWait() then gives the waiter. Allocation-free when every page is
   * resident. Throws OUT_OF_RANGE past the end, BAD_STATE on a detached or closed source.
   */
  abstract readStep(dst: Uint8Array, dstOffset: number, offsetBytes: number, lengthBytes: number): number;
  /** Like readStep, for writes: copies src[srcOffset..] in; returns bytes written. */
  abstract writeStep(src: Uint8Array, srcOffset: number, offsetBytes: number, lengthBytes: number): number;
  /**
   * Makes pages [startPage, endPage) resident (and Dirty when `forWrite` on a pager VMO) in order;
   * returns how many from startPage are ready. Commit clips the range to the current size.
   */
  abstract commitStep(startPage: number, endPage: number, forWrite: boolean, keepZeroRuns?: boolean): number;
  abstract createChild(options: number, offsetBytes: number, sizeBytes: number): VmObject;
  abstract opRange(op: VmoOp, offsetBytes: number, lengthBytes: number): Promise<void>;
  abstract resize(sizeBytes: number): void;
  abstract decommitRange(offsetBytes: number, lengthBytes: number): void;
  abstract commitRangePinned(offsetBytes: number, lengthBytes: number, forWrite?: boolean): Promise<void>;
  abstract unpin(offsetBytes: number, lengthBytes: number): void;
  abstract zeroRange(offsetBytes: number, lengthBytes: number): Promise<void>;
  /** Pages committed in [offset, offset + length) that this VMO itself holds. */
  abstract attributedPagesInRange(offsetBytes: number, lengthBytes: number): number;
  protected abstract destroy(): void;

  /** Reads `lengthBytes` (default: dst.length) at `offsetBytes` into dst, waiting for the pager. */
  read(dst: Uint8Array, offsetBytes: number, lengthBytes = dst.length): Promise<void> {
    // Not an async function: a read of resident pages returns one shared settled promise instead
    // of making a new one (the resident path must not allocate per read).
    let done: number;
    try {
      done = this.readStep(dst, 0, offsetBytes, lengthBytes);
    } catch (err) {
      return Promise.reject(err);
    }
    return done === lengthBytes ? SETTLED : this.readRest(dst, offsetBytes, lengthBytes, done);
  }

  private async readRest(dst: Uint8Array, offsetBytes: number, lengthBytes: number, doneSoFar: number): Promise<void> {
    let done = doneSoFar;
    while (done < lengthBytes) {
      await this.system.waitFor(this.takeWait());
      done += this.readStep(dst, done, offsetBytes + done, lengthBytes - done);
    }
  }

  /** Writes all of src at `offsetBytes`, waiting for the pager where pages are missing or trapped. */
  async write(src: Uint8Array, offsetBytes: number, lengthBytes = src.length): Promise<void> {
    let done = this.writeStep(src, 0, offsetBytes, lengthBytes);
    while (done < lengthBytes) {
      await this.system.waitFor(this.takeWait());
      done += this.writeStep(src, done, offsetBytes + done, lengthBytes - done);
    }
  }

  /**
   * Commits [offset, offset + length), rounded out to pages: anonymous pages are allocated zeroed,
   * pager pages are faulted in through the pager. Statuses: OUT_OF_RANGE past the end, the pager's
   * FAIL status, BAD_STATE when detached, NO_MEMORY.
   */
  async commitRange(offsetBytes: number, lengthBytes: number): Promise<void> {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    const start = pageOf(offsetBytes);
    const end = pagesCeil(offsetBytes + lengthBytes);
    await this.commitPages(start, end, false);
  }

  /** @internal Runs commitStep to completion. */
  async commitPages(start: number, end: number, forWrite: boolean, keepZeroRuns = false): Promise<void> {
    let done = this.commitStep(start, end, forWrite, keepZeroRuns);
    while (start + done < Math.min(end, this.sizePages)) {
      await this.system.waitFor(this.takeWait());
      done += this.commitStep(start + done, end, forWrite, keepZeroRuns);
    }
  }

  /** Drops the owner's handle. The VMO is destroyed now, or when its last child goes. */
  close(): void {
    if (!this.handleOpen) return;
    this.handleOpen = false;
    if (this.children.size === 0) this.destroy();
  }
}

export interface PagedVmoParams {
  kind: 'anonymous' | 'pager' | 'clone';
  sizeBytes: number;
  resizable: boolean;
  trapDirty?: boolean;
  source?: { port: import('./port.js').Port; key: number; pager: import('./pager.js').Pager };
  parent?: VmObjectPaged;
  parentOffsetPages?: number;
}

export class VmObjectPaged extends VmObject {
  private sizePagesValue: number;
  private contentSize: number;
  readonly resizable: boolean;
  readonly trapDirty: boolean;
  /** Resident pages. */
  readonly pages = new PageList();
  /** Dirty zero runs (pager VMOs only; empty otherwise). */
  readonly zeroRuns = new ZeroRanges();
  /** Pager binding (pager VMOs only). */
  readonly source: PageSource | null;
  readonly pager: import('./pager.js').Pager | null;
  /** COW parent (clones only), the child's page 0 in parent pages, and how far the parent shows through. */
  readonly parent: VmObjectPaged | null;
  readonly parentOffsetPages: number;
  private parentLimitPages: number;
  /**
   * Clones only: a shrink to an unaligned size whose last page was still the parent's leaves that
   * page's bytes from tailZeroFrom on reading as zero (SEMANTICS: the tail reads zero) until the
   * clone forks it, and the fork copies them as zeros. -1: no such page. Cleared when the page is
   * forked or cut away; a second shrink within the same page keeps the lower mark.
   */
  private tailZeroPage = -1;
  private tailZeroFrom = PAGE_SIZE;
  private modified = false;
  private evicted = 0;
  private faultCount = 0;
  private dirtyCount = 0;
  private pinnedCount = 0;
  /** Pages of this VMO protected by ALWAYS_NEED. */
  private lockedCount = 0;
  /** Scratch for resolve(): where a MISSING page must be faulted. Sync-only, read immediately. */
  private faultRoot: VmObjectPaged | null = null;
  private faultPage = 0;
  /** Scratch for resolve(): a frame found up the chain reads as zero from this byte on (tail marks). */
  private resolvedZeroFrom = PAGE_SIZE;
  /**
   * Pager VMOs only: the page table a reader off the JS thread walks (src/read-mapping.ts), or null.
   * While attached it mirrors `pages` exactly below its capacity (installFrame maps, releasePage
   * unmaps) and its size is contentSize; every change of pages, resident bytes or size is bracketed.
   */
  private mapping: ReadMapping | null = null;

  constructor(system: VmSystem, params: PagedVmoParams) {
    super(system, params.kind);
    if (!Number.isSafeInteger(params.sizeBytes) || params.sizeBytes < 0 || params.sizeBytes > MAX_VMO_SIZE_BYTES) {
      throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE, `VMO size ${params.sizeBytes} exceeds the maximum ${MAX_VMO_SIZE_BYTES}`);
    }
    this.sizePagesValue = pagesCeil(params.sizeBytes);
    this.contentSize = params.sizeBytes;
    this.resizable = params.resizable;
    this.trapDirty = params.trapDirty ?? false;
    this.parent = params.parent ?? null;
    this.parentOffsetPages = params.parentOffsetPages ?? 0;
    this.parentLimitPages = this.parent === null
      ? 0
      : Math.max(0, Math.min(this.sizePagesValue, this.parent.sizePages - this.parentOffsetPages));
    if (params.source !== undefined) {
      this.pager = params.source.pager;
      this.source = new PageSource(params.source.port, params.source.key,
        (kind, page) => this.isResolved(kind, page), system);
    } else {
      this.pager = null;
      this.source = null;
    }
  }

  get sizeBytes(): number {
    return this.sizePagesValue * PAGE_SIZE;
  }

  override get sizePages(): number {
    return this.sizePagesValue;
  }

  /** The exact byte size given at creation or by the last resize (for pagerfs: the file's size). */
  get contentSizeBytes(): number {
    return this.contentSize;
  }

  get isPagerBacked(): boolean {
    return this.kind === 'pager';
  }

  /** The pager VMO at the root of this VMO's chain, or null for anonymous VMOs. */
  get pagerRoot(): VmObjectPaged | null {
    let v: VmObjectPaged | null = this;
    while (v !== null && v.kind === 'clone') v = v.parent;
    return v !== null && v.kind === 'pager' ? v : null;
  }

  counters(): VmoCounters {
    return {
      residentPages: this.pages.size,
      dirtyPages: this.dirtyCount,
      pinnedPages: this.pinnedCount,
      evictedPages: this.evicted,
      faults: this.faultCount,
      dirtyZeroPages: this.zeroRuns.pageCount,
      lockedPages: this.lockedCount,
    };
  }

  /** Zircon's evicted_paged_count. */
  get evictedPagedCount(): number {
    return this.evicted;
  }

  /** The read mapping attached now (attachReadMapping), or null. */
  get readMapping(): ReadMapping | null {
    return this.mapping;
  }

  /**
   * Attaches a read mapping (src/read-mapping.ts) to this pager VMO and returns it: the one
   * attached now if its capacity covers the VMO's size, else a new one with room to grow, filled
   * from the page list, whose blocks and read-notify window carry over; the old one is retired
   * (every read of it faults) and its users should move to the new one. Costs O(resident pages) when
   * it makes one. Statuses: NOT_SUPPORTED unless pager-backed, BAD_STATE once destroyed.
   */
  attachReadMapping(): ReadMapping {
    if (this.kind !== 'pager') throw new ZxError(ZxStatus.ERR_NOT_SUPPORTED, 'only pager VMOs have read mappings');
    if (this.destroyed) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the VMO was destroyed');
    const old = this.mapping;
    // Kept while it covers the size (or is as large as a mapping gets).
    if (old !== null && (old.capacityPages >= this.sizePagesValue || old.capacityPages === MAX_MAPPED_PAGES)) return old;
    const m = new ReadMapping(mappingCapacityFor(this.sizePagesValue));
    m.begin();
    this.pages.forEachInRange(0, Math.min(this.sizePagesValue, m.capacityPages), (p, frame) => m.map(p, frame));
    m.setSizeBytes(this.contentSize);
    if (old !== null) {
      m.setReadNotify(old.header[MappingSlot.NotifyPage], old.header[MappingSlot.NotifyBefore]);
      m.setBlocked(old.blocked);
    }
    m.end();
    if (old !== null) this.detachReadMapping();
    this.mapping = m;
    this.system.readMappingAttached(m);
    return m;
  }

  /** Retires the read mapping, if any: every read of it faults from now on, and nothing updates it. */
  detachReadMapping(): void {
    const m = this.mapping;
    if (m === null) return;
    this.mapping = null;
    m.retire();
    this.system.readMappingDetached(m);
  }

  /** @internal Pager-side: reads and optionally resets the modified flag. */
  takeModified(reset: boolean): boolean {
    const m = this.modified;
    if (reset) this.modified = false;
    return m;
  }

  /** @internal Is page p covered by an outstanding READ or DIRTY request (an operation in flight)? */
  isUnderRequest(pageIndex: number): boolean {
    const s = this.source;
    if (s === null || s.outstandingCount === 0) return false;
    return s.covering(PagerCommand.Read, pageIndex) !== undefined || s.covering(PagerCommand.Dirty, pageIndex) !== undefined;
  }

  private get detachedOrClosed(): boolean {
    const s = this.source;
    return s !== null && (s.detached || this.pager!.isClosed);
  }

  // ---------------------------------------------------------------------------------------------
  // Frame bookkeeping. Every change of a held frame's state ends in requeue().

  /** Puts a held frame on the queue its state calls for (see page-queues.ts). */
  private requeue(frame: number): void {
    const f = this.system.arena.frames;
    const q = this.system.queues;
    let target: number;
    if (f.pinCount[frame] > 0) target = Queue.Wired;
    else if (this.kind !== 'pager') target = Queue.Anonymous;
    else if (f.dirty[frame] === DirtyState.Dirty || f.dirty[frame] === DirtyState.AwaitingClean) target = Queue.PagerDirty;
    else if ((f.flags[frame] & FrameFlag.AlwaysNeed) !== 0) target = Queue.AlwaysNeed;
    else {
      const cur = f.queue[frame];
      if (cur === Queue.DontNeed || q.isReclaimQueue(cur)) return; // keeps its age
      q.placeNewest(frame);
      return;
    }
    if (f.queue[frame] !== target) q.moveTo(frame, target);
  }

  /** Inserts an Allocated frame at `pageIndex` with `dirty` state. Pair of the arena's hand-out check. */
  private installFrame(pageIndex: number, frame: number, dirty: DirtyState): void {
    const f = this.system.arena.frames;
    assert(f.state[frame] === FrameState.Allocated, () => `install: frame ${frame} state ${f.state[frame]}`);
    f.state[frame] = FrameState.InObject;
    f.owner[frame] = this.id;
    f.pageIndex[frame] = pageIndex;
    f.dirty[frame] = dirty;
    f.flags[frame] = 0;
    this.pages.insert(pageIndex, frame);
    // Mapped last: the frame's bytes are complete (a reader may copy them from now on).
    this.mapping?.map(pageIndex, frame);
    if (dirty === DirtyState.Dirty || dirty === DirtyState.AwaitingClean) this.dirtyCount++;
    this.requeue(frame);
  }

  /** Removes the frame at `pageIndex` from this VMO and frees it. Precondition: present, unpinned. */
  private releasePage(pageIndex: number): void {
    const m = this.mapping;
    if (m !== null) {
      // Unmapped inside a bracket before the frame can be reused: a reader copying it now faults.
      m.begin();
      m.unmap(pageIndex);
      m.end();
    }
    const frame = this.pages.remove(pageIndex);
    assert(frame !== NO_FRAME, () => `release: page ${pageIndex} not present`);
    const f = this.system.arena.frames;
    assert(f.owner[frame] === this.id && f.pinCount[frame] === 0, () => `release: frame ${frame} not ours or pinned`);
    if (f.dirty[frame] === DirtyState.Dirty || f.dirty[frame] === DirtyState.AwaitingClean) this.dirtyCount--;
    if ((f.flags[frame] & FrameFlag.AlwaysNeed) !== 0) {
      this.system.lockedPages--;
      this.lockedCount--;
    }
    this.system.queues.remove(frame);
    f.state[frame] = FrameState.Allocated;
    f.owner[frame] = 0;
    f.dirty[frame] = DirtyState.Untracked;
    f.flags[frame] = 0;
    this.system.arena.freeFrame(frame);
  }

  private setDirty(frame: number, state: DirtyState): void {
    const f = this.system.arena.frames;
    const was = f.dirty[frame];
    if (was === state) return;
    const wasDirty = was === DirtyState.Dirty || was === DirtyState.AwaitingClean;
    const isDirty = state === DirtyState.Dirty || state === DirtyState.AwaitingClean;
    if (wasDirty && !isDirty) this.dirtyCount--;
    if (!wasDirty && isDirty) this.dirtyCount++;
    f.dirty[frame] = state;
    this.requeue(frame);
  }

  /**
   * `count` frames, not zeroed, in ascending order, so that consecutive pages get consecutive
   * frames where the free list allows: eviction frees oldest first, so the list hands frames out in
   * descending order, and every page would be a view, an iovec and a copy of its own (a cold re-read
   * in a pager whose memory was warm ran 0.53x fs.read, 0.70x sorted). All or none: NO_MEMORY.
   */
  private allocFramesAscending(count: number): Int32Array {
    const frames = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const frame = this.system.allocFrame();
      if (frame === NO_FRAME) {
        for (let k = 0; k < i; k++) this.system.arena.freeFrame(frames[k]);
        throw new ZxError(ZxStatus.ERR_NO_MEMORY, 'no free frame within the memory budget');
      }
      frames[i] = frame;
    }
    return frames.sort(); // a typed array sorts numerically, natively
  }

  /** Allocates a zeroed frame (evicting if needed) or throws NO_MEMORY. */
  private allocZeroFrame(): number {
    const frame = this.system.allocFrame();
    if (frame === NO_FRAME) throw new ZxError(ZxStatus.ERR_NO_MEMORY, 'no free frame within the memory budget');
    this.system.arena.fill(frame, 0, PAGE_SIZE, 0);
    return frame;
  }

  /** Does page p satisfy a request of `kind`? Past the end counts as satisfied (nothing to wait for). */
  private isResolved(kind: RequestKind, pageIndex: number): boolean {
    if (pageIndex >= this.sizePagesValue) return true;
    const frame = this.pages.lookup(pageIndex);
    if (kind === PagerCommand.Read) return frame !== NO_FRAME || this.zeroRuns.stateAt(pageIndex) !== DirtyState.Untracked;
    if (frame === NO_FRAME) return this.zeroRuns.stateAt(pageIndex) === DirtyState.Untracked; // gone: retry as READ
    return this.system.arena.frames.dirty[frame] === DirtyState.Dirty;
  }

  // ---------------------------------------------------------------------------------------------
  // Lookup through the clone chain.

  /**
   * Resolves page p for reading: a frame number, RESOLVE_ZERO, RESOLVE_BAD_STATE, or RESOLVE_MISSING
   * with faultRoot/faultPage naming the pager VMO page to fault. Allocation-free.
   */
  private resolve(pageIndex: number, skipSelf: boolean): number {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    let v: VmObjectPaged = this;
    let p = pageIndex;
    let first = true;
    this.resolvedZeroFrom = PAGE_SIZE;
    for (;;) {
      if (!(first && skipSelf)) {
        const frame = v.pages.lookup(p);
        if (frame !== NO_FRAME) return frame;
      }
      first = false;
      if (v.kind === 'anonymous') return RESOLVE_ZERO;
      if (v.kind === 'pager') {
        if (v.zeroRuns.stateAt(p) !== DirtyState.Untracked) return RESOLVE_ZERO;
        if (v.detachedOrClosed) return RESOLVE_BAD_STATE;
        this.faultRoot = v;
        this.faultPage = p;
        return RESOLVE_MISSING;
      }
      if (p >= v.parentLimitPages) return RESOLVE_ZERO;
      if (p === v.tailZeroPage && v.tailZeroFrom < this.resolvedZeroFrom) this.resolvedZeroFrom = v.tailZeroFrom;
      p += v.parentOffsetPages;
      v = v.parent!;
    }
  }

  /** Records the wait for a MISSING page at resolve()'s faultRoot/faultPage; run bounded by `runPages`. */
  private faultRead(firstPage: number, endPage: number): void {
    const root = this.faultRoot!;
    const rootFirst = this.faultPage;
    // Extend the run while our pages map to consecutive missing root pages.
    let run = 1;
    const runMax = root.system.requestPagesMax();
    for (let p = firstPage + 1; p < endPage && run < runMax; p++) {
      const r = this.resolve(p, false);
      if (r !== RESOLVE_MISSING || this.faultRoot !== root || this.faultPage !== rootFirst + run) break;
      run++;
    }
    root.faultCount++;
    this.pendingWait = root.source!.waitFor(PagerCommand.Read, rootFirst, rootFirst + run);
  }

  // ---------------------------------------------------------------------------------------------
  // Read, write, commit.

  readStep(dst: Uint8Array, dstOffset: number, offsetBytes: number, lengthBytes: number): number {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    checkBuffer(dst, dstOffset, lengthBytes);
    if (lengthBytes === 0) return 0;
    const arena = this.system.arena;
    const flags = arena.frames.flags;
    const endByte = offsetBytes + lengthBytes;
    const run = arena.copyRun;
    run.start(dst, false);
    let pos = offsetBytes;
    while (pos < endByte) {
      const page = Math.floor(pos / PAGE_SIZE);
      const inPage = pos - page * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, endByte - pos);
      // Fast path: the page is our own (every resident page of a pager or anonymous VMO).
      const own = this.pages.lookup(page);
      const r = own !== NO_FRAME ? own : this.resolve(page, false);
      if (r >= 0) {
        if ((flags[r] & FrameFlag.Accessed) === 0) this.system.markAccessed(r);
        // A parent's page past a shrink's mark reads as zero there (resolve() set the mark).
        const shown = own !== NO_FRAME ? n : Math.max(0, Math.min(n, this.resolvedZeroFrom - inPage));
        if (shown > 0) run.add(r, inPage, dstOffset + (pos - offsetBytes), shown);
        if (shown < n) {
          run.flush();
          dst.fill(0, dstOffset + (pos - offsetBytes) + shown, dstOffset + (pos - offsetBytes) + n);
        }
        pos += n;
        continue;
      }
      run.flush();
      if (r === RESOLVE_ZERO) {
        dst.fill(0, dstOffset + (pos - offsetBytes), dstOffset + (pos - offsetBytes) + n);
      } else if (r === RESOLVE_MISSING) {
        this.faultRead(page, pagesCeil(endByte));
        return pos - offsetBytes;
      } else {
        throw new ZxError(ZxStatus.ERR_BAD_STATE, `page ${page} is not available: the pager detached or closed`);
      }
      pos += n;
    }
    run.flush();
    return lengthBytes;
  }

  writeStep(src: Uint8Array, srcOffset: number, offsetBytes: number, lengthBytes: number): number {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    checkBuffer(src, srcOffset, lengthBytes);
    if (lengthBytes === 0) return 0;
    const arena = this.system.arena;
    const endByte = offsetBytes + lengthBytes;
    const endPage = pagesCeil(endByte);
    const run = arena.copyRun;
    const m = this.mapping;
    m?.begin(); // resident bytes change
    run.start(src, true);
    let pos = offsetBytes;
    try {
      while (pos < endByte) {
        const page = Math.floor(pos / PAGE_SIZE);
        const inPage = pos - page * PAGE_SIZE;
        const n = Math.min(PAGE_SIZE - inPage, endByte - pos);
        // Pages made writable but not yet copied stay put meanwhile: they are Dirty (or anonymous),
        // and neither is ever evicted by the allocations a later page may make.
        const frame = this.writablePage(page, endPage);
        if (frame === NO_FRAME) return pos - offsetBytes;
        if ((arena.frames.flags[frame] & FrameFlag.Accessed) === 0) this.system.markAccessed(frame);
        this.modified = true;
        run.add(frame, inPage, srcOffset + (pos - offsetBytes), n);
        pos += n;
      }
    } finally {
      run.flush();
      m?.end();
    }
    return lengthBytes;
  }

  /**
   * Makes page p writable now and returns its frame, or records a wait and returns NO_FRAME.
   * Pager pages: missing → READ; Clean/AwaitingClean or zero-run with TRAP_DIRTY → DIRTY (run up to
   * `endPage`); otherwise the page becomes Dirty at once. Clones fork on first write.
   */
  private writablePage(page: number, endPage: number): number {
    const f = this.system.arena.frames;
    let frame = this.pages.lookup(page);
    if (this.kind === 'anonymous') {
      if (frame === NO_FRAME) {
        frame = this.allocZeroFrame();
        this.installFrame(page, frame, DirtyState.Untracked);
      }
      return frame;
    }
    if (this.kind === 'clone') {
      if (frame !== NO_FRAME) return frame;
      // Allocate before looking: the allocation may evict the very page we would copy.
      const fresh = this.allocZeroFrame();
      const r = this.resolve(page, true);
      if (r === RESOLVE_MISSING) {
        this.system.arena.freeFrame(fresh);
        this.faultRead(page, endPage);
        return NO_FRAME;
      }
      if (r === RESOLVE_BAD_STATE) {
        this.system.arena.freeFrame(fresh);
        throw new ZxError(ZxStatus.ERR_BAD_STATE, `page ${page} is not available: the pager detached or closed`);
      }
      if (r >= 0) {
        this.system.arena.copyFrame(r, fresh);
        const zeroFrom = this.resolvedZeroFrom;
        if (zeroFrom < PAGE_SIZE) this.system.arena.fill(fresh, zeroFrom, PAGE_SIZE - zeroFrom, 0);
      }
      if (page === this.tailZeroPage) this.tailZeroPage = -1;
      this.installFrame(page, fresh, DirtyState.Untracked);
      return fresh;
    }
    // Pager VMO.
    const source = this.source!;
    if (frame !== NO_FRAME) {
      const state = f.dirty[frame];
      if (state === DirtyState.Dirty) return frame;
      if (this.detachedOrClosed) {
        throw new ZxError(ZxStatus.ERR_BAD_STATE, `page ${page} cannot be written: the pager detached or closed`);
      }
      if (!this.trapDirty) {
        this.setDirty(frame, DirtyState.Dirty);
        return frame;
      }
      this.faultDirty(page, endPage);
      return NO_FRAME;
    }
    const zeroState = this.zeroRuns.stateAt(page);
    if (zeroState !== DirtyState.Untracked) {
      if (this.detachedOrClosed && zeroState !== DirtyState.Dirty) {
        throw new ZxError(ZxStatus.ERR_BAD_STATE, `page ${page} cannot be written: the pager detached or closed`);
      }
      if (this.trapDirty && !this.detachedOrClosed) { // no packets after a detach or a close
        this.faultDirty(page, endPage);
        return NO_FRAME;
      }
      const fresh = this.allocZeroFrame();
      this.zeroRuns.clear(page, page + 1);
      this.installFrame(page, fresh, DirtyState.Dirty);
      return fresh;
    }
    if (this.detachedOrClosed) {
      throw new ZxError(ZxStatus.ERR_BAD_STATE, `page ${page} is not available: the pager detached or closed`);
    }
    this.faultRoot = this;
    this.faultPage = page;
    this.faultRead(page, endPage);
    return NO_FRAME;
  }

  /** Is page p one a trapping write must ask the pager about (Clean, AwaitingClean, or zero run)? */
  private needsDirtyRequest(p: number): boolean {
    const frame = this.pages.lookup(p);
    if (frame !== NO_FRAME) return this.system.arena.frames.dirty[frame] !== DirtyState.Dirty;
    return this.zeroRuns.stateAt(p) !== DirtyState.Untracked;
  }

  private faultDirty(first: number, endPage: number): void {
    let end = first + 1;
    while (end < endPage && this.needsDirtyRequest(end)) end++;
    this.faultCount++;
    this.pendingWait = this.source!.waitFor(PagerCommand.Dirty, first, end);
  }

  /**
   * `keepZeroRuns` (the PREFETCH and ALWAYS_NEED hints): a dirty zero run counts as present, as it
   * does for a read, instead of being committed as real pages the way COMMIT does.
   */
  commitStep(startPage: number, endPage: number, forWrite: boolean, keepZeroRuns = false): number {
    const end = Math.min(endPage, this.sizePagesValue); // a shrink clips a commit instead of failing it
    for (let p = startPage; p < end; p++) {
      if (this.kind === 'anonymous' || (forWrite && this.kind === 'clone')) {
        if (this.writablePage(p, end) === NO_FRAME) return p - startPage;
        continue;
      }
      if (this.kind === 'pager') {
        const frame = this.pages.lookup(p);
        const zero = frame === NO_FRAME && this.zeroRuns.stateAt(p) !== DirtyState.Untracked;
        if (frame !== NO_FRAME && !forWrite) continue;
        if (zero && keepZeroRuns && !forWrite) continue;
        if (frame === NO_FRAME || zero || forWrite) {
          // Zero-run pages are committed as real pages (CommitExtendedTail): a write-like commit.
          if (frame === NO_FRAME && !zero) {
            if (this.detachedOrClosed) throw new ZxError(ZxStatus.ERR_BAD_STATE, `page ${p}: the pager detached or closed`);
            this.faultRoot = this;
            this.faultPage = p;
            this.faultRead(p, end);
            return p - startPage;
          }
          if (this.writablePage(p, end) === NO_FRAME) return p - startPage;
        }
        continue;
      }
      // Clone, commit for read: make the page present somewhere in the chain (no fork).
      const r = this.resolve(p, false);
      if (r === RESOLVE_MISSING) {
        this.faultRead(p, end);
        return p - startPage;
      }
      if (r === RESOLVE_BAD_STATE) throw new ZxError(ZxStatus.ERR_BAD_STATE, `page ${p}: the pager detached or closed`);
    }
    return Math.max(0, end - startPage);
  }

  /** Pins every page of [start, end) if all are ready now; returns false (nothing pinned) if not. */
  private tryPinAll(start: number, end: number, forWrite: boolean): boolean {
    const f = this.system.arena.frames;
    for (let p = start; p < end; p++) {
      let frame = this.pages.lookup(p);
      if (frame === NO_FRAME && this.kind === 'clone') {
        // A clone pins its own copy: fork the page (a pin must name a frame the clone owns).
        frame = this.writablePage(p, end);
        if (frame === NO_FRAME) { this.pendingWait?.cancel(); this.pendingWait = null; return false; }
      }
      if (frame === NO_FRAME) return false;
      if (forWrite && this.kind === 'pager' && f.dirty[frame] !== DirtyState.Dirty) return false;
    }
    for (let p = start; p < end; p++) {
      const frame = this.pages.lookup(p);
      if (f.pinCount[frame] === 0) this.pinnedCount++;
      assert(f.pinCount[frame] < 0xffff, () => `pin count overflow on frame ${frame}`);
      f.pinCount[frame]++;
      this.requeue(frame);
    }
    if (forWrite) this.modified = true;
    return true;
  }

  async commitRangePinned(offsetBytes: number, lengthBytes: number, forWrite = false): Promise<void> {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    if (!isPageAligned(offsetBytes) || !isPageAligned(lengthBytes)) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, 'pin range must be page-aligned');
    }
    const start = offsetBytes / PAGE_SIZE;
    const end = start + lengthBytes / PAGE_SIZE;
    if (end - start > this.system.arena.limitFrames) {
      throw new ZxError(ZxStatus.ERR_NO_MEMORY, `cannot pin ${end - start} pages within a budget of ${this.system.arena.limitFrames}`);
    }
    // Pages made ready early may be evicted while later ones are faulted in: then go round again.
    // Each round either waits (progress is the pager's) or pins; two rounds in a row that neither
    // wait nor pin mean commitStep and tryPinAll disagree, which is a bug, not a reason to spin.
    for (let idleRounds = 0; ; idleRounds++) {
      assert(idleRounds < 2, () => `pin of [${start}, ${end}) on VMO ${this.id}: commit says ready but pinning finds pages not ready`);
      let done = this.commitStep(start, end, forWrite);
      while (start + done < end) {
        await this.system.waitFor(this.takeWait());
        idleRounds = -1;
        if (end > this.sizePagesValue) throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE, 'pin range cut by a resize');
        done += this.commitStep(start + done, end, forWrite);
      }
      if (end > this.sizePagesValue) throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE, 'pin range cut by a resize');
      if (this.tryPinAll(start, end, forWrite)) return;
    }
  }

  /** Unpins pages pinned by commitRangePinned. Unpinning a page that is not pinned is a bug: throws. */
  unpin(offsetBytes: number, lengthBytes: number): void {
    const start = pageOf(offsetBytes);
    const end = pagesCeil(offsetBytes + lengthBytes);
    const f = this.system.arena.frames;
    for (let p = start; p < end; p++) {
      const frame = this.pages.lookup(p);
      assert(frame !== NO_FRAME && f.pinCount[frame] > 0, () => `unpin of page ${p} of VMO ${this.id}, which is not pinned`);
    }
    for (let p = start; p < end; p++) {
      const frame = this.pages.lookup(p);
      f.pinCount[frame]--;
      if (f.pinCount[frame] === 0) this.pinnedCount--;
      this.requeue(frame);
    }
  }

  decommitRange(offsetBytes: number, lengthBytes: number): void {
    if (this.kind !== 'anonymous') {
      throw new ZxError(ZxStatus.ERR_NOT_SUPPORTED, 'decommit works only on anonymous VMOs: these pages come back only from their source');
    }
    if (!isPageAligned(offsetBytes) || !isPageAligned(lengthBytes)) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, 'decommit range must be page-aligned');
    }
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    const start = offsetBytes / PAGE_SIZE;
    const end = start + lengthBytes / PAGE_SIZE;
    const f = this.system.arena.frames;
    let pinned = false;
    this.pages.forEachInRange(start, end, (_p, frame) => { if (f.pinCount[frame] > 0) pinned = true; });
    if (pinned) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'decommit range holds pinned pages');
    const victims: number[] = [];
    this.pages.forEachInRange(start, end, (p) => { victims.push(p); });
    for (const p of victims) this.releasePage(p);
  }

  /**
   * Zeroes [offset, offset + length). Whole pages of a pager VMO need no pager round trip: their
   * frames are freed and the run becomes a dirty zero run (a reader waiting on READ there is woken
   * with zeros); pinned pages and partial pages are written with zeros like any write.
   */
  async zeroRange(offsetBytes: number, lengthBytes: number): Promise<void> {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    if (lengthBytes === 0) return;
    const end = offsetBytes + lengthBytes;
    const firstWhole = pagesCeil(offsetBytes);
    const lastWhole = pageOf(end);
    const zeros = this.system.zeroPage;
    if (firstWhole >= lastWhole) {
      // No whole page inside: one partial page, or the ends of two neighbouring pages.
      const split = Math.min(end, firstWhole * PAGE_SIZE);
      await this.write(zeros, offsetBytes, split - offsetBytes);
      if (end > split) await this.write(zeros, split, end - split);
      return;
    }
    if (offsetBytes < firstWhole * PAGE_SIZE) await this.write(zeros, offsetBytes, firstWhole * PAGE_SIZE - offsetBytes);
    await this.zeroWholePages(firstWhole, lastWhole);
    if (end > lastWhole * PAGE_SIZE) await this.write(zeros, lastWhole * PAGE_SIZE, end - lastWhole * PAGE_SIZE);
  }

  private async zeroWholePages(start: number, end: number): Promise<void> {
    if (end > this.sizePagesValue) throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE, 'zero range cut by a resize');
    const f = this.system.arena.frames;
    const pinned: number[] = [];
    if (this.kind === 'anonymous') {
      const victims: number[] = [];
      this.pages.forEachInRange(start, end, (p, frame) => { (f.pinCount[frame] > 0 ? pinned : victims).push(p); });
      for (const p of victims) this.releasePage(p);
    } else if (this.kind === 'clone') {
      // The parent must stay visible elsewhere: give the clone its own zero pages here.
      for (let p = start; p < end; p++) {
        let frame = this.pages.lookup(p);
        if (frame === NO_FRAME) {
          frame = this.allocZeroFrame();
          this.installFrame(p, frame, DirtyState.Untracked);
        } else {
          this.system.arena.fill(frame, 0, PAGE_SIZE, 0);
        }
      }
      this.modified = true;
      return;
    } else {
      if (this.detachedOrClosed) {
        // Zeroing is a write: after detach only Dirty pages (and Dirty zero runs) take one. All or nothing.
        for (let p = start; p < end; p++) {
          const frame = this.pages.lookup(p);
          const state = frame !== NO_FRAME ? f.dirty[frame] : this.zeroRuns.stateAt(p);
          if (state !== DirtyState.Dirty) {
            throw new ZxError(ZxStatus.ERR_BAD_STATE, `page ${p} cannot be zeroed: the pager detached or closed`);
          }
        }
        this.mapping?.begin();
        try {
          this.pages.forEachInRange(start, end, (_p, frame) => { this.system.arena.fill(frame, 0, PAGE_SIZE, 0); });
        } finally {
          this.mapping?.end();
        }
        this.modified = true;
        return;
      }
      const victims: number[] = [];
      this.pages.forEachInRange(start, end, (p, frame) => { (f.pinCount[frame] > 0 ? pinned : victims).push(p); });
      this.mapping?.begin(); // one bracket for the whole run, not one per page
      try {
        for (const p of victims) this.releasePage(p);
      } finally {
        this.mapping?.end();
      }
      let runStart = start;
      for (const p of [...pinned, end]) {
        this.zeroRuns.set(runStart, p, DirtyState.Dirty);
        runStart = p + 1;
      }
      this.modified = true;
      this.source!.resolved(PagerCommand.Read, start, end);
    }
    for (const p of pinned) await this.write(this.system.zeroPage, p * PAGE_SIZE, PAGE_SIZE);
  }

  attributedPagesInRange(offsetBytes: number, lengthBytes: number): number {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    return this.pages.countInRange(pageOf(offsetBytes), pagesCeil(offsetBytes + lengthBytes));
  }

  /** Calls fn for each committed page in the range (no faults): page index and frame number. */
  lookup(offsetBytes: number, lengthBytes: number, fn: (pageIndex: number, frame: number) => void): void {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    this.pages.forEachInRange(pageOf(offsetBytes), pagesCeil(offsetBytes + lengthBytes), fn);
  }

  // ---------------------------------------------------------------------------------------------
  // Resize.

  /**
   * Sets the size to `sizeBytes` (content size exact, VMO size rounded up to pages). Growing a pager
   * VMO adds a dirty zero run; shrinking frees pages past the end (Dirty ones are discarded) and
   * retries waiters there. The bytes after the new content size in its last page read as zero; the
   * page's dirty state is not changed by that (the pager truncates its store to the same size).
   * Statuses: UNAVAILABLE (not resizable), OUT_OF_RANGE (too large), BAD_STATE (would drop pins).
   */
  resize(sizeBytes: number): void {
    if (!this.resizable) throw new ZxError(ZxStatus.ERR_UNAVAILABLE, 'VMO is not resizable');
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0 || sizeBytes > MAX_VMO_SIZE_BYTES) {
      throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE, `size ${sizeBytes} exceeds the maximum ${MAX_VMO_SIZE_BYTES}`);
    }
    const m = this.mapping;
    m?.begin(); // pages, the last page's tail and the readable end change together
    try {
      this.resizeMapped(sizeBytes);
    } finally {
      m?.end();
    }
  }

  /** resize's body, inside the mapping's bracket. */
  private resizeMapped(sizeBytes: number): void {
    const newPages = pagesCeil(sizeBytes);
    const oldPages = this.sizePagesValue;
    const f = this.system.arena.frames;
    if (newPages < oldPages) {
      let pinned = false;
      this.pages.forEachInRange(newPages, oldPages, (_p, frame) => { if (f.pinCount[frame] > 0) pinned = true; });
      if (pinned) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'shrink would discard pinned pages');
      const victims: number[] = [];
      this.pages.forEachInRange(newPages, oldPages, (p) => { victims.push(p); });
      for (const p of victims) this.releasePage(p);
      this.zeroRuns.clear(newPages, oldPages);
      this.sizePagesValue = newPages;
      // What a clone cut away of its own window onto the parent never shows through again.
      this.parentLimitPages = Math.min(this.parentLimitPages, newPages);
      // Only COW clones see through to us; an eager snapshot holds its own copy.
      for (const child of this.children) if (child instanceof VmObjectPaged && child.parent === this) child.parentShrank(this, newPages);
      this.source?.truncated(newPages);
    } else if (newPages > oldPages) {
      this.sizePagesValue = newPages;
      if (this.kind === 'pager') this.zeroRuns.set(oldPages, newPages, DirtyState.Dirty);
    }
    // Zero the tail of the last page past the content size: in our frame, or as a mark on the
    // parent's page a clone still sees (the mark is dropped once its page is cut away).
    if (this.tailZeroPage >= newPages) this.tailZeroPage = -1;
    const tail = sizeBytes % PAGE_SIZE;
    if (tail !== 0) {
      const frame = this.pages.lookup(newPages - 1);
      if (frame !== NO_FRAME) {
        this.system.arena.fill(frame, tail, PAGE_SIZE - tail, 0);
      } else if (this.kind === 'clone' && newPages - 1 < this.parentLimitPages) {
        if (this.tailZeroPage !== newPages - 1) {
          this.tailZeroPage = newPages - 1;
          this.tailZeroFrom = tail;
        } else {
          this.tailZeroFrom = Math.min(this.tailZeroFrom, tail);
        }
      }
    }
    this.contentSize = sizeBytes;
    this.mapping?.setSizeBytes(sizeBytes);
    this.modified = true;
  }

  /** The parent shrank to `parentPages`: what of it this clone could see is cut for good. */
  private parentShrank(parent: VmObjectPaged, parentPages: number): void {
    assert(this.parent === parent, 'parentShrank from a stranger');
    this.parentLimitPages = Math.min(this.parentLimitPages, Math.max(0, parentPages - this.parentOffsetPages));
  }

  // ---------------------------------------------------------------------------------------------
  // Hints and ops.

  async opRange(op: VmoOp, offsetBytes: number, lengthBytes: number): Promise<void> {
    switch (op) {
      case VmoOp.COMMIT:
        return this.commitRange(offsetBytes, lengthBytes);
      case VmoOp.DECOMMIT:
        return this.decommitRange(offsetBytes, lengthBytes);
      case VmoOp.ZERO:
        return this.zeroRange(offsetBytes, lengthBytes);
      case VmoOp.PREFETCH:
      case VmoOp.ALWAYS_NEED:
      case VmoOp.DONT_NEED:
      case VmoOp.RELEASE_ALWAYS_NEED:
      case VmoOp.EVICT:
        return this.hint(op, offsetBytes, lengthBytes);
      default:
        throw new ZxError(ZxStatus.ERR_NOT_SUPPORTED, `unknown VMO op ${op as number}`);
    }
  }

  /**
   * Eviction hints (offsets rounded out to pages). On a clone they reach the root's pages the clone
   * has not forked. Trivially OK on anonymous VMOs.
   */
  private async hint(op: VmoOp, offsetBytes: number, lengthBytes: number): Promise<void> {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    if (this.pagerRoot === null) return;
    const start = pageOf(offsetBytes);
    const end = pagesCeil(offsetBytes + lengthBytes);
    // Hints fault pages in for reading: a zero run is present already (committing it would dirty
    // real zero pages, and with TRAP_DIRTY ask the pager to).
    if (op === VmoOp.PREFETCH) return this.commitPages(start, end, false, true);
    if (op === VmoOp.ALWAYS_NEED) {
      await this.commitPages(start, end, false, true);
      this.forEachRootPage(start, end, (root, frame) => root.setAlwaysNeed(frame, true));
      return;
    }
    if (op === VmoOp.RELEASE_ALWAYS_NEED) {
      this.forEachRootPage(start, end, (root, frame) => root.setAlwaysNeed(frame, false));
      return;
    }
    if (op === VmoOp.EVICT) {
      const frames: number[] = [];
      this.forEachRootPage(start, end, (_root, frame) => frames.push(frame));
      for (const frame of frames) this.system.evictor.evictPage(frame, false);
      return;
    }
    // DONT_NEED: first candidates for reclaim; the protection of ALWAYS_NEED stays (it is sticky).
    this.forEachRootPage(start, end, (root, frame) => root.moveToDontNeed(frame));
  }

  /**
   * The residency of pages [offset, offset + length) (rounded out) as maximal runs of one state,
   * in order: absent, clean, dirty, locked, pinned. Costs the range's length in pages.
   */
  residencyRuns(offsetBytes: number, lengthBytes: number): ResidencyRun[] {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    const f = this.system.arena.frames;
    const runs: ResidencyRun[] = [];
    const end = pagesCeil(offsetBytes + lengthBytes);
    for (let p = pageOf(offsetBytes); p < end; p++) {
      const frame = this.pages.lookup(p);
      let state: PageResidency;
      if (frame === NO_FRAME) {
        state = this.zeroRuns.stateAt(p) !== DirtyState.Untracked ? PageResidency.Dirty : PageResidency.Absent;
      } else if (f.pinCount[frame] > 0) state = PageResidency.Pinned;
      else if (f.dirty[frame] === DirtyState.Dirty || f.dirty[frame] === DirtyState.AwaitingClean) state = PageResidency.Dirty;
      else if ((f.flags[frame] & FrameFlag.AlwaysNeed) !== 0) state = PageResidency.Locked;
      else state = PageResidency.Clean;
      const last = runs[runs.length - 1];
      if (last !== undefined && last.state === state && last.endPage === p) last.endPage = p + 1;
      else runs.push({ startPage: p, endPage: p + 1, state });
    }
    return runs;
  }

  /** Calls fn for pages of [start, end) resolved to a frame held by the pager root (not forked). */
  private forEachRootPage(start: number, end: number, fn: (root: VmObjectPaged, frame: number) => void): void {
    const f = this.system.arena.frames;
    for (let p = start; p < end; p++) {
      const r = this.resolve(p, false);
      if (r < 0) continue;
      const owner = this.system.vmoById(f.owner[r]);
      if (owner.kind === 'pager') fn(owner, r);
    }
  }

  private setAlwaysNeed(frame: number, on: boolean): void {
    const f = this.system.arena.frames;
    const was = (f.flags[frame] & FrameFlag.AlwaysNeed) !== 0;
    if (was !== on) {
      this.system.lockedPages += on ? 1 : -1;
      this.lockedCount += on ? 1 : -1;
    }
    if (on) f.flags[frame] |= FrameFlag.AlwaysNeed;
    else f.flags[frame] &= ~FrameFlag.AlwaysNeed;
    if (!on && f.queue[frame] === Queue.AlwaysNeed) {
      this.system.queues.placeNewest(frame);
      return;
    }
    this.requeue(frame);
  }

  private moveToDontNeed(frame: number): void {
    const f = this.system.arena.frames;
    const q = f.queue[frame];
    if (q === Queue.AlwaysNeed || q === Queue.DontNeed || q === Queue.Anonymous || q === Queue.Wired || q === Queue.PagerDirty) {
      // Dirty and pinned pages are not moved by hints; always-need ones go to the front of reclaim
      // but keep their protection (the evictor skips them).
      if (q !== Queue.AlwaysNeed) return;
    }
    f.flags[frame] &= ~FrameFlag.Accessed;
    this.mapping?.clearAccessed(f.pageIndex[frame]); // a reader's mark from before the hint is forgotten too
    this.system.queues.moveTo(frame, Queue.DontNeed);
  }

  // ---------------------------------------------------------------------------------------------
  // Children.

  createChild(options: number, offsetBytes: number, sizeBytes: number): VmObject {
    const known = ChildOptions.SNAPSHOT | ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE | ChildOptions.SLICE | ChildOptions.RESIZABLE;
    if ((options & ~known) !== 0) throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `unknown child options ${options}`);
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || !isPageAligned(offsetBytes)) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `child offset ${offsetBytes} must be page-aligned`);
    }
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0 || offsetBytes + sizeBytes > MAX_VMO_SIZE_BYTES) {
      throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE, `child range [${offsetBytes}, +${sizeBytes}) overflows`);
    }
    const resizable = (options & ChildOptions.RESIZABLE) !== 0;
    const kindBits = options & ~ChildOptions.RESIZABLE;
    if (kindBits === ChildOptions.SLICE) {
      if (this.resizable) throw new ZxError(ZxStatus.ERR_NOT_SUPPORTED, 'cannot slice a resizable VMO');
      if (resizable) throw new ZxError(ZxStatus.ERR_INVALID_ARGS, 'a slice cannot be resizable');
      return new VmSlice(this.system, this, offsetBytes / PAGE_SIZE, pagesCeil(sizeBytes));
    }
    if (kindBits !== ChildOptions.SNAPSHOT && kindBits !== ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `child options ${options} name no single kind of child`);
    }
    const pagerBacked = this.pagerRoot !== null;
    if (pagerBacked && kindBits === ChildOptions.SNAPSHOT) {
      throw new ZxError(ZxStatus.ERR_NOT_SUPPORTED, 'SNAPSHOT of a pager-backed VMO is not supported; use SNAPSHOT_AT_LEAST_ON_WRITE');
    }
    const offsetPages = offsetBytes / PAGE_SIZE;
    const sizePages = pagesCeil(sizeBytes);
    if (this.pinnedCount > 0) {
      let pinned = false;
      const f = this.system.arena.frames;
      this.pages.forEachInRange(offsetPages, Math.min(offsetPages + sizePages, this.sizePagesValue),
        (_p, frame) => { if (f.pinCount[frame] > 0) pinned = true; });
      if (pinned) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'cannot clone a range holding pinned pages');
    }
    if (!pagerBacked) {
      // Anonymous parent: a true snapshot, taken eagerly (a copy of every committed page now).
      const child = new VmObjectPaged(this.system, { kind: 'anonymous', sizeBytes, resizable });
      const limit = Math.min(sizePages, Math.max(0, this.sizePagesValue - offsetPages));
      const copies: Array<[number, number]> = [];
      this.pages.forEachInRange(offsetPages, offsetPages + limit, (p, frame) => { copies.push([p - offsetPages, frame]); });
      try {
        for (const [p, frame] of copies) {
          const fresh = child.allocZeroFrame();
          this.system.arena.copyFrame(frame, fresh);
          child.installFrame(p, fresh, DirtyState.Untracked);
        }
      } catch (err) {
        child.close();
        throw err;
      }
      this.addChild(child);
      child.snapshotParent = this;
      return child;
    }
    const child = new VmObjectPaged(this.system, {
      kind: 'clone', sizeBytes, resizable, parent: this, parentOffsetPages: offsetPages,
    });
    this.addChild(child);
    return child;
  }

  /** For eager snapshots of anonymous VMOs: the parent to detach from on destroy. */
  private snapshotParent: VmObjectPaged | null = null;

  /** Is this VMO a child (COW clone, or eager snapshot of an anonymous VMO)? */
  get isChild(): boolean {
    return this.parent !== null || this.snapshotParent !== null;
  }

  // ---------------------------------------------------------------------------------------------
  // Pager-facing internals (called by Pager after it validated the call).

  /**
   * @internal Installs frames from `frames` (one per page from startPage; NO_FRAME = zero page).
   * The page holding the content size gets zeros past it, as resize gives a resident one: a supply
   * read before a shrink must not bring old bytes back there (they would show after a grow).
   */
  supplyFrames(startPage: number, frames: number[]): number {
    const f = this.system.arena.frames;
    const tail = this.contentSize % PAGE_SIZE;
    const tailPage = tail === 0 ? -1 : Math.floor(this.contentSize / PAGE_SIZE);
    let added = 0;
    for (let i = 0; i < frames.length; i++) {
      const p = startPage + i;
      const frame = frames[i];
      if (this.pages.lookup(p) !== NO_FRAME || this.zeroRuns.stateAt(p) !== DirtyState.Untracked) {
        // First supply wins; a zero run is the VMO's own content. Give the frame back.
        f.state[frame] = FrameState.Allocated;
        this.system.arena.freeFrame(frame);
        continue;
      }
      if (p === tailPage) this.system.arena.fill(frame, tail, PAGE_SIZE - tail, 0);
      this.installFrame(p, frame, DirtyState.Clean);
      added++;
    }
    if (frames.length > 0) this.source!.resolved(PagerCommand.Read, startPage, startPage + frames.length);
    return added;
  }

  /** @internal Removes the frames of [start, end) for a supply: NO_FRAME where none was committed. */
  takeFrames(start: number, end: number): number[] {
    assert(this.kind === 'anonymous', 'takeFrames from a non-anonymous VMO');
    const f = this.system.arena.frames;
    const out: number[] = [];
    for (let p = start; p < end; p++) {
      const frame = this.pages.remove(p);
      if (frame === NO_FRAME) { out.push(NO_FRAME); continue; }
      assert(f.pinCount[frame] === 0, 'takeFrames of a pinned page');
      this.system.queues.remove(frame);
      f.state[frame] = FrameState.Allocated;
      f.owner[frame] = 0;
      out.push(frame);
    }
    return out;
  }

  /**
   * Commits [offset, offset + length) of an anonymous VMO and returns views straight onto its frames,
   * adjacent frames merged into one view (a pager reads backing bytes into them with readv, with no
   * intermediate buffer). With `zeroFill: false` newly committed frames hold stale bytes: the caller
   * must overwrite every byte before the pages are supplied or read. Aliasing contract: the views are valid until the pages leave this VMO
   * (supplyPages takes them, decommit, close); after that the bytes belong to someone else.
   * Statuses: NOT_SUPPORTED unless anonymous; INVALID_ARGS unaligned; OUT_OF_RANGE; NO_MEMORY.
   */
  mapPages(offsetBytes: number, lengthBytes: number, options: { zeroFill?: boolean } = {}): Buffer[] {
    if (this.kind !== 'anonymous') throw new ZxError(ZxStatus.ERR_NOT_SUPPORTED, 'only anonymous VMOs can be mapped for filling');
    if (!isPageAligned(offsetBytes) || !isPageAligned(lengthBytes)) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, 'map range must be page-aligned');
    }
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    const start = offsetBytes / PAGE_SIZE;
    const end = start + lengthBytes / PAGE_SIZE;
    if (options.zeroFill === false) {
      // The caller fills every byte before anyone can see these pages (it supplies them or zeroes
      // what it did not fill): skipping the zero fill saves writing each frame twice.
      const missing: number[] = [];
      for (let p = start; p < end; p++) if (this.pages.lookup(p) === NO_FRAME) missing.push(p);
      const frames = this.allocFramesAscending(missing.length);
      for (let i = 0; i < missing.length; i++) this.installFrame(missing[i], frames[i], DirtyState.Untracked);
    } else {
      for (let p = start; p < end; p++) if (this.writablePage(p, end) === NO_FRAME) assert(false, 'anonymous page cannot wait');
    }
    const arena = this.system.arena;
    const views: Buffer[] = [];
    let runFirst = -1;
    let runLen = 0;
    for (let p = start; p <= end; p++) {
      const frame = p < end ? this.pages.lookup(p) : NO_FRAME;
      if (runFirst >= 0 && frame === runFirst + runLen && arena.sameChunk(runFirst, frame)) {
        runLen++;
        continue;
      }
      if (runFirst >= 0) views.push(arena.framesView(runFirst, runLen));
      runFirst = frame;
      runLen = 1;
    }
    return views;
  }

  /** @internal Pages of [start, end) pinned? */
  hasPinnedIn(start: number, end: number): boolean {
    if (this.pinnedCount === 0) return false;
    const f = this.system.arena.frames;
    let pinned = false;
    this.pages.forEachInRange(start, end, (_p, frame) => { if (f.pinCount[frame] > 0) pinned = true; });
    return pinned;
  }

  /** @internal opRange(DIRTY): all pages must be present or zero-run (else NOT_FOUND). */
  markDirtyRange(start: number, end: number): void {
    for (let p = start; p < end; p++) {
      if (this.pages.lookup(p) === NO_FRAME && this.zeroRuns.stateAt(p) === DirtyState.Untracked) {
        throw new ZxError(ZxStatus.ERR_NOT_FOUND, `page ${p} was never supplied`);
      }
    }
    // The present pages turn Dirty first: the allocation below may evict, and must not take them
    // (without a request in flight nothing else protects them). Put back if it fails.
    const f = this.system.arena.frames;
    const zeroPages: number[] = [];
    const present: number[] = [];
    const before: DirtyState[] = [];
    for (let p = start; p < end; p++) {
      const frame = this.pages.lookup(p);
      if (frame === NO_FRAME) {
        zeroPages.push(p);
      } else {
        present.push(frame);
        before.push(f.dirty[frame]);
        this.setDirty(frame, DirtyState.Dirty);
      }
    }
    let frames: Int32Array;
    try {
      if (zeroPages.length > this.system.arena.freeFrames + this.system.queues.reclaimablePages) {
        throw new ZxError(ZxStatus.ERR_NO_MEMORY, 'not enough frames to commit the zero pages being dirtied');
      }
      frames = this.allocFramesAscending(zeroPages.length); // consecutive, for the writes to come
    } catch (err) {
      for (let i = 0; i < present.length; i++) this.setDirty(present[i], before[i]);
      throw err;
    }
    this.system.arena.zeroFrames(frames);
    // The zero runs lose these pages run by run (each clear renormalizes the run list).
    for (let i = 0; i < zeroPages.length;) {
      let j = i + 1;
      while (j < zeroPages.length && zeroPages[j] === zeroPages[j - 1] + 1) j++;
      this.zeroRuns.clear(zeroPages[i], zeroPages[j - 1] + 1);
      i = j;
    }
    for (let i = 0; i < zeroPages.length; i++) this.installFrame(zeroPages[i], frames[i], DirtyState.Dirty);
    this.source!.resolved(PagerCommand.Dirty, start, end);
  }

  /** @internal WRITEBACK_BEGIN. */
  writebackBegin(start: number, end: number, zeroOnly: boolean): void {
    const f = this.system.arena.frames;
    if (!zeroOnly) {
      this.pages.forEachInRange(start, end, (_p, frame) => {
        if (f.dirty[frame] === DirtyState.Dirty && f.pinCount[frame] === 0) this.setDirty(frame, DirtyState.AwaitingClean);
      });
    }
    this.zeroRuns.transition(start, end, DirtyState.Dirty, DirtyState.AwaitingClean);
  }

  /** @internal WRITEBACK_END: AwaitingClean pages become Clean; AwaitingClean zero runs become gaps. */
  writebackEnd(start: number, end: number): void {
    const f = this.system.arena.frames;
    this.pages.forEachInRange(start, end, (_p, frame) => {
      if (f.dirty[frame] === DirtyState.AwaitingClean) {
        this.setDirty(frame, DirtyState.Clean);
        if (f.pinCount[frame] === 0 && f.queue[frame] !== Queue.AlwaysNeed) this.system.queues.placeNewest(frame);
      }
    });
    const gapsBefore = this.zeroRuns.pageCount;
    this.zeroRuns.clearState(start, end, DirtyState.AwaitingClean);
    this.source!.resolved(PagerCommand.Dirty, start, end);
    // Zero runs that became gaps are pages a READ now needs again: a READ request already read by
    // the pager and answered around them would never cover them (a fault there would join it and
    // wait for nothing). End such requests; their waiters fault again and ask anew.
    if (this.zeroRuns.pageCount !== gapsBefore) this.source!.unresolved(PagerCommand.Read, start, end);
  }

  /** @internal Dirty runs of [start, end), merged, in order. */
  dirtyRuns(start: number, end: number): Array<{ start: number; end: number; isZero: boolean }> {
    const f = this.system.arena.frames;
    const runs: Array<{ start: number; end: number; isZero: boolean }> = [];
    const push = (s: number, e: number, isZero: boolean): void => {
      const last = runs[runs.length - 1];
      if (last !== undefined && last.end === s && last.isZero === isZero) last.end = e;
      else runs.push({ start: s, end: e, isZero });
    };
    const zero = this.zeroRuns.overlapping(start, end);
    let zi = 0;
    this.pages.forEachInRange(start, end, (p, frame) => {
      while (zi < zero.length && zero[zi].start < p) {
        push(zero[zi].start, Math.min(zero[zi].end, p), true);
        if (zero[zi].end > p) { zero[zi] = { ...zero[zi], start: p + 1 }; break; }
        zi++;
      }
      const d = f.dirty[frame];
      if (d === DirtyState.Dirty || d === DirtyState.AwaitingClean) push(p, p + 1, false);
    });
    for (; zi < zero.length; zi++) if (zero[zi].start < zero[zi].end) push(zero[zi].start, zero[zi].end, true);
    return runs;
  }

  /** @internal Detach: clean pages are decommitted; waiters fail; COMPLETE is queued. */
  detachFromPager(): void {
    const source = this.source!;
    if (source.detached) return;
    source.detached = true;
    source.failAll('the pager detached the VMO');
    this.dropCleanPages();
    if (!this.pager!.isClosed) source.sendComplete();
  }

  /** @internal Pager closed: waiters fail; no packets. Pages stay readable. */
  pagerClosed(): void {
    this.source!.failAll('the pager was closed');
  }

  private dropCleanPages(): void {
    const f = this.system.arena.frames;
    const victims: number[] = [];
    this.pages.forEachInRange(0, this.sizePagesValue, (p, frame) => {
      if (f.dirty[frame] === DirtyState.Clean && f.pinCount[frame] === 0) victims.push(p);
    });
    this.mapping?.begin();
    try {
      for (const p of victims) this.releasePage(p);
    } finally {
      this.mapping?.end();
    }
  }

  /**
   * @internal The evictor's half of eviction: `frame` at `pageIndex` leaves this VMO. The evictor
   * decided it may go (clean, unpinned, pager-backed); this re-checks, as a pair assertion.
   */
  evictFrame(frame: number): void {
    const f = this.system.arena.frames;
    assert(this.kind === 'pager' && f.owner[frame] === this.id, () => `evict: frame ${frame} is not held by pager VMO ${this.id}`);
    assert(f.dirty[frame] === DirtyState.Clean && f.pinCount[frame] === 0, () => `evict: frame ${frame} is dirty or pinned`);
    const p = f.pageIndex[frame];
    this.releasePage(p);
    this.evicted++;
    this.source!.resolved(PagerCommand.Dirty, p, p + 1);
  }

  protected destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.source !== null) {
      this.source.failAll('the VMO was destroyed');
      if (!this.source.detached && !this.pager!.isClosed) this.source.sendComplete();
      this.source.detached = true;
      this.pager!.vmoDestroyed(this);
    }
    const f = this.system.arena.frames;
    const all: number[] = [];
    this.pages.forEachInRange(0, this.sizePagesValue, (p, frame) => {
      f.pinCount[frame] = 0; // a destroyed VMO's pins die with it
      all.push(p);
    });
    this.pinnedCount = 0;
    this.mapping?.begin();
    try {
      for (const p of all) this.releasePage(p);
    } finally {
      this.mapping?.end();
    }
    this.detachReadMapping();
    this.system.unregisterVmo(this);
    if (this.parent !== null) this.parent.removeChild(this);
    if (this.snapshotParent !== null) this.snapshotParent.removeChild(this);
  }

  /** A one-line description for logs and tests. */
  dump(): string {
    const c = this.counters();
    return `vmo#${this.id} ${this.kind}${this.name ? ` "${this.name}"` : ''} size=${this.sizeBytes} ` +
      `resident=${c.residentPages} dirty=${c.dirtyPages} pinned=${c.pinnedPages} evicted=${c.evictedPages} ` +
      `zeroRuns=${this.zeroRuns.all().map((r) => `[${r.start},${r.end})${r.state === DirtyState.Dirty ? 'D' : 'A'}`).join('')}` +
      `${this.source ? ` outstanding=${this.source.outstandingCount}${this.source.detached ? ' detached' : ''}` : ''}`;
  }

  /** Always-need pages counted by the last debugValidate (VmSystem sums them). */
  debugLocked = 0;

  /** Debug: every held frame names this VMO and its slot; counts agree with a walk. */
  debugValidate(): void {
    const f = this.system.arena.frames;
    let dirty = 0;
    let pinned = 0;
    let locked = 0;
    this.pages.forEachInRange(0, Math.max(this.sizePagesValue, 1), (p, frame) => {
      assert(f.state[frame] === FrameState.InObject && f.owner[frame] === this.id && f.pageIndex[frame] === p,
        () => `vmo#${this.id}: frame ${frame} at page ${p} has owner ${f.owner[frame]} page ${f.pageIndex[frame]}`);
      if (f.dirty[frame] === DirtyState.Dirty || f.dirty[frame] === DirtyState.AwaitingClean) dirty++;
      if (f.pinCount[frame] > 0) pinned++;
      if ((f.flags[frame] & FrameFlag.AlwaysNeed) !== 0) locked++;
      assert(p < this.sizePagesValue, `vmo#${this.id}: page ${p} past the end`);
    });
    assert(dirty === this.dirtyCount, `vmo#${this.id}: dirty count ${this.dirtyCount} != ${dirty}`);
    assert(locked === this.lockedCount, `vmo#${this.id}: locked count ${this.lockedCount} != ${locked}`);
    this.debugLocked = locked;
    assert(pinned === this.pinnedCount, `vmo#${this.id}: pinned count ${this.pinnedCount} != ${pinned}`);
  }
}

/** A window onto another VMO: every operation is the parent's, shifted by the slice's offset. */
export class VmSlice extends VmObject {
  constructor(system: VmSystem, readonly target: VmObjectPaged, readonly offsetPages: number, private readonly slicePages: number) {
    super(system, 'slice');
    target.addChild(this);
  }

  get sizeBytes(): number {
    return this.slicePages * PAGE_SIZE;
  }

  private get base(): number {
    return this.offsetPages * PAGE_SIZE;
  }

  /** Bytes of [offset, offset+len) that fall inside the target (the rest reads as zero). */
  private inTarget(offsetBytes: number, lengthBytes: number): number {
    return Math.max(0, Math.min(lengthBytes, this.target.sizeBytes - (this.base + offsetBytes)));
  }

  readStep(dst: Uint8Array, dstOffset: number, offsetBytes: number, lengthBytes: number): number {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    const inside = this.inTarget(offsetBytes, lengthBytes);
    if (inside > 0) {
      const n = this.target.readStep(dst, dstOffset, this.base + offsetBytes, inside);
      if (n < inside) {
        this.pendingWait = this.target.takeWait();
        return n;
      }
    }
    dst.fill(0, dstOffset + inside, dstOffset + lengthBytes);
    return lengthBytes;
  }

  writeStep(src: Uint8Array, srcOffset: number, offsetBytes: number, lengthBytes: number): number {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    const inside = this.inTarget(offsetBytes, lengthBytes);
    if (inside < lengthBytes) throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE, 'write through a slice past its parent\'s end');
    const n = this.target.writeStep(src, srcOffset, this.base + offsetBytes, lengthBytes);
    if (n < lengthBytes) this.pendingWait = this.target.takeWait();
    return n;
  }

  commitStep(startPage: number, endPage: number, forWrite: boolean, keepZeroRuns = false): number {
    const end = Math.min(endPage, this.slicePages, Math.max(0, this.target.sizePages - this.offsetPages));
    if (startPage >= end) return Math.max(0, Math.min(endPage, this.slicePages) - startPage);
    const n = this.target.commitStep(this.offsetPages + startPage, this.offsetPages + end, forWrite, keepZeroRuns);
    if (startPage + n < end) {
      this.pendingWait = this.target.takeWait();
      return n;
    }
    return Math.min(endPage, this.slicePages) - startPage;
  }

  createChild(options: number, offsetBytes: number, sizeBytes: number): VmObject {
    if (!isPageAligned(offsetBytes)) throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `child offset ${offsetBytes} must be page-aligned`);
    return this.target.createChild(options, this.base + offsetBytes, sizeBytes);
  }

  async opRange(op: VmoOp, offsetBytes: number, lengthBytes: number): Promise<void> {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    return this.target.opRange(op, this.base + offsetBytes, this.inTarget(offsetBytes, lengthBytes));
  }

  resize(): void {
    throw new ZxError(ZxStatus.ERR_UNAVAILABLE, 'a slice is not resizable');
  }

  decommitRange(offsetBytes: number, lengthBytes: number): void {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    this.target.decommitRange(this.base + offsetBytes, lengthBytes);
  }

  async commitRangePinned(offsetBytes: number, lengthBytes: number, forWrite = false): Promise<void> {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    return this.target.commitRangePinned(this.base + offsetBytes, lengthBytes, forWrite);
  }

  unpin(offsetBytes: number, lengthBytes: number): void {
    this.target.unpin(this.base + offsetBytes, lengthBytes);
  }

  async zeroRange(offsetBytes: number, lengthBytes: number): Promise<void> {
    checkRange(this.sizeBytes, offsetBytes, lengthBytes);
    return this.target.zeroRange(this.base + offsetBytes, lengthBytes);
  }

  attributedPagesInRange(): number {
    return 0; // a slice holds no pages of its own; they are attributed to its parent
  }

  protected destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.system.unregisterVmo(this);
    this.target.removeChild(this);
  }
}

export { MAX_VMO_PAGES };
