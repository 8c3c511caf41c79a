/**
 * The pager kernel object and its syscalls: the surface a user pager (pager/) talks to.
 *
 * Each method validates exactly as SEMANTICS.md's table says, in this order: the VMO belongs to this
 * pager (INVALID_ARGS), the op is known (NOT_SUPPORTED), alignment (INVALID_ARGS), range
 * (OUT_OF_RANGE), state (BAD_STATE). Closing the pager fails every blocked fault with BAD_STATE and
 * sends no packet, not even COMPLETE.
 */
import { NO_FRAME } from './arena.js';
import { PAGE_SIZE, isPageAligned, pageOf, pagesCeil } from './constants.js';
import type { Port } from './port.js';
import { ZxError, ZxStatus, statusName } from './status.js';
import type { VmSystem } from './vm-system.js';
import { VmObjectPaged, type VmObject } from './vmo.js';
import {
  PagerOp, VmoOptions, WRITEBACK_IS_ZERO, type DirtyRangesResult, type VmoStats,
} from './vmo-types.js';

/** The statuses a pager may fail a request with; any other is INVALID_ARGS (as Zircon refuses NO_MEMORY). */
export const ALLOWED_FAIL_STATUSES: readonly ZxStatus[] = [
  ZxStatus.ERR_IO,
  ZxStatus.ERR_IO_DATA_INTEGRITY,
  ZxStatus.ERR_BAD_STATE,
  ZxStatus.ERR_NO_SPACE,
  ZxStatus.ERR_BUFFER_TOO_SMALL,
];

export class Pager {
  private closedFlag = false;
  /** Pager VMOs created by this pager and not yet destroyed. */
  private readonly vmos = new Set<VmObjectPaged>();

  constructor(readonly system: VmSystem) {}

  get isClosed(): boolean {
    return this.closedFlag;
  }

  /**
   * Creates a pager-backed VMO of `sizeBytes` (rounded up to pages) whose page requests arrive on
   * `port` with `key`. Options: VmoOptions.RESIZABLE | VmoOptions.TRAP_DIRTY; any other bit is
   * INVALID_ARGS; a size above the maximum OUT_OF_RANGE; a closed pager BAD_STATE.
   */
  createVmo(options: number, port: Port, key: number, sizeBytes: number): VmObjectPaged {
    const known = VmoOptions.RESIZABLE | VmoOptions.TRAP_DIRTY;
    if ((options & ~known) !== 0) throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `unknown pager VMO options ${options}`);
    if (this.closedFlag) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the pager is closed');
    if (port.closed) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the port is closed');
    const vmo = new VmObjectPaged(this.system, {
      kind: 'pager',
      sizeBytes,
      resizable: (options & VmoOptions.RESIZABLE) !== 0,
      trapDirty: (options & VmoOptions.TRAP_DIRTY) !== 0,
      source: { port, key, pager: this },
    });
    this.vmos.add(vmo);
    return vmo;
  }

  /** @internal A VMO of this pager was destroyed: forget it (close() has nothing left to tell it). */
  vmoDestroyed(vmo: VmObjectPaged): void {
    this.vmos.delete(vmo);
  }

  /** The VMO as one of ours, or INVALID_ARGS. */
  private own(vmo: VmObject): VmObjectPaged {
    if (!(vmo instanceof VmObjectPaged) || vmo.pager !== this || vmo.kind !== 'pager') {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `VMO ${vmo.id} was not created by this pager`);
    }
    return vmo;
  }

  /** Aligned page range inside the VMO, or INVALID_ARGS / OUT_OF_RANGE. */
  private pageRange(vmo: VmObjectPaged, offsetBytes: number, lengthBytes: number): [number, number] {
    if (!Number.isSafeInteger(offsetBytes) || !Number.isSafeInteger(lengthBytes) || offsetBytes < 0 || lengthBytes < 0 ||
      !isPageAligned(offsetBytes) || !isPageAligned(lengthBytes)) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `range offset=${offsetBytes} length=${lengthBytes} must be page-aligned`);
    }
    if (offsetBytes + lengthBytes > vmo.sizeBytes) {
      throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE, `range [${offsetBytes}, ${offsetBytes + lengthBytes}) runs past the VMO size ${vmo.sizeBytes}`);
    }
    return [offsetBytes / PAGE_SIZE, (offsetBytes + lengthBytes) / PAGE_SIZE];
  }

  /**
   * Detaches the VMO: no new requests; blocked faults fail with BAD_STATE; clean pages are decommitted;
   * dirty pages stay until written back; one COMPLETE packet follows. Idempotent.
   */
  detachVmo(vmo: VmObject): void {
    this.own(vmo).detachFromPager();
  }

  /**
   * Moves the pages of aux[auxOffset, +length) into vmo[offset, +length). Present pages (and zero
   * runs) in `vmo` are kept and the corresponding aux pages freed; uncommitted aux pages supply zero
   * pages. Returns the pages newly installed. Statuses per SEMANTICS.md ("supplyPages").
   */
  supplyPages(vmo: VmObject, offsetBytes: number, lengthBytes: number, aux: VmObject, auxOffsetBytes: number): number {
    const target = this.own(vmo);
    if (!isPageAligned(auxOffsetBytes) || auxOffsetBytes < 0 || !Number.isSafeInteger(auxOffsetBytes)) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `aux offset ${auxOffsetBytes} must be page-aligned`);
    }
    const [start, end] = this.pageRange(target, offsetBytes, lengthBytes);
    if (!(aux instanceof VmObjectPaged) || aux.kind === 'pager') {
      if (aux instanceof VmObjectPaged || aux.kind === 'pager') {
        throw new ZxError(ZxStatus.ERR_NOT_SUPPORTED, 'the aux VMO must be anonymous, not pager-backed');
      }
      throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the aux VMO must be a plain anonymous VMO, not a slice');
    }
    if (aux.isChild || aux.children.size > 0) {
      throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the aux VMO must be a plain anonymous VMO without clones');
    }
    if (auxOffsetBytes + lengthBytes > aux.sizeBytes) {
      throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE, `aux range runs past the aux VMO size ${aux.sizeBytes}`);
    }
    if (target.source!.detached || this.closedFlag) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the VMO is detached');
    const auxStart = auxOffsetBytes / PAGE_SIZE;
    const count = end - start;
    if (aux.hasPinnedIn(auxStart, auxStart + count)) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'aux range holds pinned pages');
    if (count === 0) return 0;
    const frames = aux.takeFrames(auxStart, auxStart + count);
    // Uncommitted aux pages supply zero pages: allocate them now, giving everything back on failure.
    for (let i = 0; i < frames.length; i++) {
      if (frames[i] !== NO_FRAME) continue;
      const frame = this.system.allocFrame();
      if (frame === NO_FRAME) {
        for (let k = 0; k < i; k++) if (frames[k] !== NO_FRAME) this.system.arena.freeFrame(frames[k]);
        for (let k = i + 1; k < frames.length; k++) if (frames[k] !== NO_FRAME) this.system.arena.freeFrame(frames[k]);
        throw new ZxError(ZxStatus.ERR_NO_MEMORY, 'no frame for a zero page within the memory budget');
      }
      this.system.arena.fill(frame, 0, PAGE_SIZE, 0);
      frames[i] = frame;
    }
    const added = target.supplyFrames(start, frames);
    this.system.validate();
    return added;
  }

  /**
   * Pager ops on a range (page-aligned bytes):
   *  FAIL (data = status): fails overlapping requests; status must be in ALLOWED_FAIL_STATUSES.
   *  DIRTY (data 0): marks present pages Dirty, committing zero-run pages; NOT_FOUND over unsupplied
   *    pages; NOT_SUPPORTED without TRAP_DIRTY.
   *  WRITEBACK_BEGIN (data 0 or WRITEBACK_IS_ZERO), WRITEBACK_END (data 0): see SEMANTICS.md; these two
   *    work after detach.
   */
  opRange(op: PagerOp, vmo: VmObject, offsetBytes: number, lengthBytes: number, data = 0): void {
    const target = this.own(vmo);
    if (op !== PagerOp.FAIL && op !== PagerOp.DIRTY && op !== PagerOp.WRITEBACK_BEGIN && op !== PagerOp.WRITEBACK_END) {
      throw new ZxError(ZxStatus.ERR_NOT_SUPPORTED, `unknown pager op ${op as number}`);
    }
    const [start, end] = this.pageRange(target, offsetBytes, lengthBytes);
    const source = target.source!;
    switch (op) {
      case PagerOp.FAIL: {
        if (!ALLOWED_FAIL_STATUSES.includes(data)) {
          throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `a pager may not fail a request with status ${typeof data === 'number' ? statusName(data) : String(data)}`
            + ` (allowed: ${ALLOWED_FAIL_STATUSES.map(statusName).join(', ')})`);
        }
        if (source.detached || this.closedFlag) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the VMO is detached');
        source.fail(start, end, data as ZxStatus);
        break;
      }
      case PagerOp.DIRTY: {
        if (data !== 0) throw new ZxError(ZxStatus.ERR_INVALID_ARGS, 'DIRTY takes no data');
        if (!target.trapDirty) throw new ZxError(ZxStatus.ERR_NOT_SUPPORTED, 'DIRTY needs a VMO created with TRAP_DIRTY');
        if (source.detached || this.closedFlag) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'the VMO is detached');
        target.markDirtyRange(start, end);
        break;
      }
      case PagerOp.WRITEBACK_BEGIN: {
        if (data !== 0 && data !== WRITEBACK_IS_ZERO) throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `bad WRITEBACK_BEGIN flags ${data}`);
        target.writebackBegin(start, end, data === WRITEBACK_IS_ZERO);
        break;
      }
      case PagerOp.WRITEBACK_END: {
        if (data !== 0) throw new ZxError(ZxStatus.ERR_INVALID_ARGS, 'WRITEBACK_END takes no data');
        target.writebackEnd(start, end);
        break;
      }
    }
    this.system.validate();
  }

  /**
   * The dirty runs (Dirty and AwaitingClean pages, and dirty zero runs) in [offset, offset + length),
   * rounded out to pages; at most `maxRanges` returned, `available` counts all. OUT_OF_RANGE past
   * the end. Works after detach.
   */
  queryDirtyRanges(vmo: VmObject, offsetBytes: number, lengthBytes: number, maxRanges = Number.MAX_SAFE_INTEGER): DirtyRangesResult {
    const target = this.own(vmo);
    if (!Number.isSafeInteger(offsetBytes) || !Number.isSafeInteger(lengthBytes) || offsetBytes < 0 || lengthBytes < 0) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, 'bad dirty-range query');
    }
    // The room for results (Zircon's buffer size): a count, never negative or fractional.
    if (!Number.isSafeInteger(maxRanges) || maxRanges < 0) {
      throw new ZxError(ZxStatus.ERR_INVALID_ARGS, `bad dirty-range query: maxRanges ${maxRanges} is not a count`);
    }
    if (offsetBytes + lengthBytes > target.sizeBytes) {
      throw new ZxError(ZxStatus.ERR_OUT_OF_RANGE, `query [${offsetBytes}, ${offsetBytes + lengthBytes}) runs past the VMO size ${target.sizeBytes}`);
    }
    const runs = target.dirtyRuns(pageOf(offsetBytes), pagesCeil(offsetBytes + lengthBytes));
    return {
      ranges: runs.slice(0, maxRanges).map((r) => ({
        offset: r.start * PAGE_SIZE, length: (r.end - r.start) * PAGE_SIZE, isZero: r.isZero,
      })),
      available: runs.length,
    };
  }

  /** Whether the VMO was modified since the last reset (`reset` clears the flag after reading). */
  queryVmoStats(vmo: VmObject, reset = false): VmoStats {
    return { modified: this.own(vmo).takeModified(reset) };
  }

  /**
   * Closes the pager: its VMOs' blocked faults fail with BAD_STATE, later faults too; no packet is
   * sent, not even COMPLETE. Pages already supplied stay readable. Idempotent.
   */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    for (const vmo of this.vmos) if (!vmo.isDestroyed) vmo.pagerClosed();
  }
}
