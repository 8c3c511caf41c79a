/**
 * A half-open range of page indices [start, end). Byte ranges from callers are converted into a
 * PageRange once, at the API edge; inside src/ ranges are pages.
 */
import { assert } from './assert.js';

export class PageRange {
  readonly start: number;
  readonly end: number;

  /** Preconditions: integers, 0 <= start <= end. */
  constructor(start: number, end: number) {
    assert(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end,
      () => `bad PageRange [${start}, ${end})`);
    this.start = start;
    this.end = end;
  }

  static ofLength(start: number, countPages: number): PageRange {
    return new PageRange(start, start + countPages);
  }

  get length(): number {
    return this.end - this.start;
  }

  get isEmpty(): boolean {
    return this.end === this.start;
  }

  contains(pageIndex: number): boolean {
    return pageIndex >= this.start && pageIndex < this.end;
  }

  overlaps(other: PageRange): boolean {
    return this.start < other.end && other.start < this.end;
  }

  isSupersetOf(other: PageRange): boolean {
    return other.start >= this.start && other.end <= this.end;
  }

  /** The common part; disjoint ranges give an empty range at this range's start. */
  intersect(other: PageRange): PageRange {
    const start = Math.max(this.start, other.start);
    const end = Math.min(this.end, other.end);
    return start < end ? new PageRange(start, end) : new PageRange(this.start, this.start);
  }

  toString(): string {
    return `[${this.start}, ${this.end})`;
  }
}
