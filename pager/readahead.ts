/**
 * Readahead for one file: a sequential reader's window grows (doubling from its request size up to
 * the maximum); a random access shrinks it to nothing. The pager reads [request, request + window)
 * and supplies the extra pages unasked (supplying unrequested pages is allowed prefetch).
 *
 * Hit / waste accounting: when the next request starts past the previous readahead range, that
 * whole range was consumed without a fault (hits); when it starts inside it, the pages from there
 * on were evicted before use or never reached (waste).
 */
export class ReadaheadState {
  /** Page after the last range this file supplied (request plus readahead). */
  private nextExpected = -1;
  private windowPages = 0;
  private lastReadahead: { start: number; end: number } | null = null;

  /**
   * Plans the readahead for a request of pages [start, end): returns the end of the range to read
   * (>= end), at most `maxPages` beyond it and never past `limitPage`.
   */
  plan(start: number, end: number, maxPages: number, limitPage: number, account: (hits: number, waste: number) => void): number {
    const ra = this.lastReadahead;
    if (ra !== null) {
      if (start >= ra.end) account(ra.end - ra.start, 0);
      else if (start >= ra.start) account(start - ra.start, ra.end - start);
      this.lastReadahead = null;
    }
    const sequential = start === 0 || start === this.nextExpected || (ra !== null && start >= ra.start && start <= ra.end);
    if (sequential && maxPages > 0) {
      this.windowPages = Math.min(maxPages, this.windowPages === 0 ? Math.max(end - start, 8) : this.windowPages * 2);
    } else {
      this.windowPages = 0;
    }
    const raEnd = Math.max(end, Math.min(limitPage, end + this.windowPages));
    if (raEnd > end) this.lastReadahead = { start: end, end: raEnd };
    this.nextExpected = raEnd;
    return raEnd;
  }

  get window(): number {
    return this.windowPages;
  }
}
