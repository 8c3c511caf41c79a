/**
 * A VMO's page list: a sparse map from page index to frame number.
 *
 * Pages are grouped in nodes of NODE_PAGES entries (an Int32Array each, NO_FRAME where empty), kept
 * in a Map by node index; a node is dropped when its last page goes. Lookups cost one Map probe
 * (the last node used is cached, so a sequential read probes once per NODE_PAGES pages); range
 * walks cost in proportion to the nodes they touch, using a sorted key list rebuilt on demand
 * when the range is larger than the number of nodes.
 *
 * Memory: a dense node costs NODE_PAGES * 4 bytes of entries plus its Map slot and typed-array
 * header; debugBytesPerResidentPage() reports it (the benchmark prints it).
 */
import { assert } from './assert.js';
import { NO_FRAME } from './arena.js';

const NODE_SHIFT = 6;
/** 64 pages per node: dense lists cost ~6 bytes per page, sparse ones never more than one node per page. */
export const NODE_PAGES = 1 << NODE_SHIFT;
const NODE_MASK = NODE_PAGES - 1;
/** Slot NODE_PAGES of each node holds its count of present entries. */
const COUNT_SLOT = NODE_PAGES;

export class PageList {
  private readonly nodes = new Map<number, Int32Array>();
  /** Node indices in ascending order, or null when a node was added or removed since the last sort. */
  private sortedKeys: number[] | null = [];
  /** The last node used and its index (-1: none). Invariant: cachedNode is nodes.get(cachedIndex). */
  private cachedIndex = -1;
  private cachedNode: Int32Array | null = null;
  private pages = 0;
  /** One empty node kept for the next insert (all entries NO_FRAME). */
  private spareNode: Int32Array | null = null;

  /** Pages present. */
  get size(): number {
    return this.pages;
  }

  /** The frame at `pageIndex`, or NO_FRAME. Allocation-free. */
  lookup(pageIndex: number): number {
    const node = this.nodeAt(Math.floor(pageIndex / NODE_PAGES));
    return node === null ? NO_FRAME : node[pageIndex & NODE_MASK];
  }

  /** The node at `nodeIndex` or null, through the one-node cache (sequential walks probe the Map once per node). */
  private nodeAt(nodeIndex: number): Int32Array | null {
    if (this.cachedIndex === nodeIndex) return this.cachedNode;
    const node = this.nodes.get(nodeIndex);
    if (node === undefined) return null;
    this.cachedIndex = nodeIndex;
    this.cachedNode = node;
    return node;
  }

  /** Inserts a frame. Precondition: the slot is empty. */
  insert(pageIndex: number, frame: number): void {
    assert(frame >= 0, () => `PageList.insert of NO_FRAME at ${pageIndex}`);
    const nodeIndex = Math.floor(pageIndex / NODE_PAGES);
    let node = this.nodeAt(nodeIndex);
    if (node === null) {
      // Reuse the last emptied node: an aux VMO filled and emptied by every supply would otherwise
      // allocate a node per supply.
      node = this.spareNode ?? new Int32Array(NODE_PAGES + 1).fill(NO_FRAME);
      this.spareNode = null;
      node[COUNT_SLOT] = 0;
      this.nodes.set(nodeIndex, node);
      this.sortedKeys = null;
      this.cachedIndex = nodeIndex;
      this.cachedNode = node;
    }
    const slot = pageIndex & NODE_MASK;
    assert(node[slot] === NO_FRAME, () => `PageList.insert: page ${pageIndex} already holds frame ${node![slot]}`);
    node[slot] = frame;
    node[COUNT_SLOT]++;
    this.pages++;
  }

  /** Removes and returns the frame at `pageIndex` (NO_FRAME when empty). */
  remove(pageIndex: number): number {
    const nodeIndex = Math.floor(pageIndex / NODE_PAGES);
    const node = this.nodeAt(nodeIndex);
    if (node === null) return NO_FRAME;
    const slot = pageIndex & NODE_MASK;
    const frame = node[slot];
    if (frame === NO_FRAME) return NO_FRAME;
    node[slot] = NO_FRAME;
    this.pages--;
    if (--node[COUNT_SLOT] === 0) {
      this.nodes.delete(nodeIndex);
      this.spareNode = node; // all entries are NO_FRAME again
      this.sortedKeys = null;
      if (this.cachedIndex === nodeIndex) {
        this.cachedIndex = -1;
        this.cachedNode = null;
      }
    }
    return frame;
  }

  private keys(): number[] {
    if (this.sortedKeys === null) this.sortedKeys = [...this.nodes.keys()].sort((a, b) => a - b);
    return this.sortedKeys;
  }

  /**
   * Calls fn(pageIndex, frame) for every present page in [start, end), in ascending order.
   * fn may remove the page it is given (or any page before it); it must not insert.
   */
  forEachInRange(start: number, end: number, fn: (pageIndex: number, frame: number) => void): void {
    if (start >= end || this.pages === 0) return;
    const firstNode = Math.floor(start / NODE_PAGES);
    const lastNode = Math.floor((end - 1) / NODE_PAGES);
    const visit = (nodeIndex: number, node: Int32Array): void => {
      const base = nodeIndex * NODE_PAGES;
      const from = Math.max(start, base) - base;
      const to = Math.min(end, base + NODE_PAGES) - base;
      for (let s = from; s < to; s++) {
        const frame = node[s];
        if (frame !== NO_FRAME) fn(base + s, frame);
      }
    };
    if (lastNode - firstNode + 1 <= this.nodes.size) {
      for (let n = firstNode; n <= lastNode; n++) {
        const node = this.nodes.get(n);
        if (node !== undefined) visit(n, node);
      }
      return;
    }
    const keys = this.keys();
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid] < firstNode) lo = mid + 1;
      else hi = mid;
    }
    // Iterate a snapshot: fn may delete nodes, which resets sortedKeys but not this array.
    for (let i = lo; i < keys.length && keys[i] <= lastNode; i++) {
      const node = this.nodes.get(keys[i]);
      if (node !== undefined) visit(keys[i], node);
    }
  }

  /** Pages present in [start, end). */
  countInRange(start: number, end: number): number {
    let n = 0;
    this.forEachInRange(start, end, () => { n++; });
    return n;
  }

  /** Debug: approximate bytes of list memory per present page. */
  debugBytesPerResidentPage(): number {
    if (this.pages === 0) return 0;
    // Int32Array of 65 entries (260 B) + typed-array and ArrayBuffer headers (~160 B) + Map slot (~40 B).
    const perNode = (NODE_PAGES + 1) * 4 + 200;
    return (this.nodes.size * perNode) / this.pages;
  }

  get nodeCount(): number {
    return this.nodes.size;
  }
}
