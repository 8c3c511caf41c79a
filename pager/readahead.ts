/**
 * Readahead for one file: a sequential reader's window grows (doubling from its request size up to
 * the maximum); a random access shrinks it to nothing. The pager reads [request, request + window)
 * and supplies the extra pages unasked (supplying unrequested pages is allowed prefetch).
 *
 * Asynchronous readahead (as Linux's PG_readahead): each window carries a marker, its first page.
 * The filesystem reports every read (noteRead); a read that enters the last window starts the next
 * one in the background, so a steady sequential reader finds its pages resident instead of faulting
 * at the end of every window. A marker fires once; a fault plans (and arms) a window anew.
 *
 * Hit / waste accounting: when the next request starts past the previous readahead range, that
 * whole range was consumed without a fault (hits); when it starts inside it, the pages from there
 * on were evicted before use or never reached (waste). A window whose marker a read reached counts
 * as hit when the next window starts.
 *
 * Reads answered off the JS thread (a read mapping's reader, src/read-mapping.ts) do not call
 * noteRead; the service publishes the marker in the mapping's read-notify window after every change
 * here (PagerService.publishReadNotify), so that exactly the reads that would fire reach it.
 */
export class ReadaheadState {
  /** Page after the last range this file supplied (request plus readahead). */
  private nextExpected = -1;
  private windowPages = 0;
  private lastReadahead: { start: number; end: number } | null = null;
  /** A read at or past this page (and before nextExpected) starts the next window; -1: none armed. */
  private markerPage = -1;

  /**
   * Plans the readahead for a request of pages [start, end): returns the end of the range to read
   * (>= end), at most `maxPages` beyond it and never past `limitPage`. Arms the marker.
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
    return this.extend(end, limitPage);
  }

  /**
   * A read of pages [firstPage, endPage) found them resident. Returns the page the next window
   * starts at when this read reached the armed marker (the caller then reads ahead from there with
   * planAhead), else -1. Cheap: two comparisons on the resident read path.
   */
  noteRead(firstPage: number, endPage: number): number {
    if (this.markerPage < 0 || endPage <= this.markerPage || firstPage >= this.nextExpected) return -1;
    this.markerPage = -1;
    return this.nextExpected;
  }

  /**
   * Plans the window that starts at `start` (from noteRead) with nothing required: returns its end
   * (> start when there is anything to read) and arms the next marker.
   */
  planAhead(start: number, maxPages: number, limitPage: number, account: (hits: number, waste: number) => void): number {
    if (start !== this.nextExpected || this.windowPages === 0) return start;
    // The reader entered the last window without a fault: count it as hit.
    const ra = this.lastReadahead;
    if (ra !== null) account(ra.end - ra.start, 0);
    this.lastReadahead = null;
    this.windowPages = Math.min(maxPages, this.windowPages * 2);
    return this.extend(start, limitPage);
  }

  private extend(end: number, limitPage: number): number {
    const raEnd = Math.max(end, Math.min(limitPage, end + this.windowPages));
    if (raEnd > end) this.lastReadahead = { start: end, end: raEnd };
    this.nextExpected = raEnd;
    this.markerPage = raEnd > end ? end : -1;
    return raEnd;
  }

  get window(): number {
    return this.windowPages;
  }

  /**
   * The armed marker (-1: none) and the page before which a read reaching it counts (nextExpected):
   * what a reader that does not call noteRead (pagerfs's fast reads, off the JS thread) must leave
   * to the JS thread, so that noteRead still sees every read that would fire.
   */
  get markerPageNow(): number {
    return this.markerPage;
  }

  get nextExpectedPage(): number {
    return this.nextExpected;
  }
}
