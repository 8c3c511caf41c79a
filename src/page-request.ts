/**
 * Page requests: how a pager VMO asks its pager for pages, and how faulting operations wait.
 *
 * Lifecycle of one request (READ; DIRTY is the same with "made Dirty" for "present"):
 *  1. An operation needs page p of a pager VMO and finds it missing. If an outstanding READ request
 *     already covers p, the operation waits on it (no new packet). Otherwise the source raises a new
 *     request for the run [p, q) of missing pages not covered by any request (q bounded by the
 *     operation's end, the next present or covered page, and requestPagesMax()), and queues it on
 *     the port.
 *  2. The operation waits on *page p only* (a PageWaiter), then retries from p. So a reader that
 *     needs many pages copies each as it arrives (Zircon's early wake), and later pages it needs
 *     join whatever request covers them then.
 *  3. The pager reads the packet (the request's range is frozen from then on) and answers:
 *     supplyPages / opRange(DIRTY) resolve pages; a request whose pages are all resolved is done and
 *     leaves the source (withdrawn from the port if it was never read).
 *  4. opRange(FAIL, range, status) ends every request overlapping the range: waiters on a page in
 *     the range fail with the status; the other waiters of those requests retry (and may raise a new
 *     request). Nothing is left behind: a later fault raises a fresh request.
 *  5. Detach and pager close end every request, failing all waiters with BAD_STATE; detach then
 *     queues one COMPLETE packet, the last for the key. A shrink retries the waiters of pages past
 *     the new end, so their operations re-check the size (reads fail OUT_OF_RANGE, commits clip).
 *
 * The source only tracks requests and waiters; what "resolved" means is asked of the VMO.
 */
import { assert } from './assert.js';
import { PagerCommand, type Port, type PortEntry } from './port.js';
import { ZxError, ZxStatus } from './status.js';

export type RequestKind = PagerCommand.Read | PagerCommand.Dirty;

/** One operation blocked on one page. */
export class PageWaiter {
  readonly promise: Promise<void>;
  private resolveFn!: () => void;
  private rejectFn!: (err: ZxError) => void;
  settled = false;

  constructor(readonly request: PageRequest, readonly pageIndex: number) {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    // A waiter nobody awaits (an operation abandoned after a short step) must not crash the process
    // with an unhandled rejection when its request later fails; whoever awaits still sees it.
    this.promise.catch(() => undefined);
  }

  /** Wake the operation to retry its lookup. */
  retry(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveFn();
  }

  fail(status: ZxStatus, why: string): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectFn(new ZxError(status, why));
  }

  /**
   * The operation gave up waiting (timeout): forget this waiter without settling it twice. If no
   * one else waits on its request, the request is given up too, so that the next fault on those
   * pages asks the pager again instead of waiting on an answer that did not come.
   */
  cancel(): void {
    this.settled = true;
    this.request.removeWaiter(this);
    if (this.request.waiters.length === 0) this.request.source.abandon(this.request);
  }
}

export class PageRequest {
  readonly entry: PortEntry;
  readonly waiters: PageWaiter[] = [];
  /** Milliseconds timestamp (performance.now()) when raised, for overtime reports. */
  readonly raisedAt = performance.now();
  delivered = false;
  overtimeReported = false;

  constructor(readonly source: PageSource, readonly kind: RequestKind, startPage: number, endPage: number) {
    this.entry = {
      pending: true,
      key: source.key,
      command: kind,
      startPage,
      endPage,
      onDelivered: () => { this.delivered = true; },
    };
  }

  get startPage(): number {
    return this.entry.startPage;
  }

  get endPage(): number {
    return this.entry.endPage;
  }

  covers(pageIndex: number): boolean {
    return pageIndex >= this.entry.startPage && pageIndex < this.entry.endPage;
  }

  removeWaiter(waiter: PageWaiter): void {
    const i = this.waiters.indexOf(waiter);
    if (i >= 0) this.waiters.splice(i, 1);
  }
}

/** Asked of the VMO: is page p resolved for this kind of request (present / Dirty)? */
export type ResolvedProbe = (kind: RequestKind, pageIndex: number) => boolean;

/**
 * The page source of one pager VMO: its binding to a pager, port and key, and its outstanding
 * requests. Owned by the VMO; the Pager reaches it through the VMO.
 */
export class PageSource {
  /** Outstanding requests of each kind, sorted by start page, pairwise disjoint within a kind. */
  private readonly outstanding: [PageRequest[], PageRequest[]] = [[], []];
  detached = false;
  completeSent = false;
  /** Requests raised, by kind, since creation. */
  readonly raised = [0, 0];

  constructor(
    readonly port: Port,
    readonly key: number,
    private readonly isResolved: ResolvedProbe,
    /** The system's live limits: the largest request follows the budget and what it holds (VmSystem.requestPagesMax). */
    private readonly limits: { requestPagesMax(): number },
  ) {}

  private list(kind: RequestKind): PageRequest[] {
    return this.outstanding[kind === PagerCommand.Read ? 0 : 1];
  }

  /** The outstanding request of `kind` covering the page, if any. */
  covering(kind: RequestKind, pageIndex: number): PageRequest | undefined {
    const list = this.list(kind);
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid].endPage <= pageIndex) lo = mid + 1;
      else hi = mid;
    }
    return lo < list.length && list[lo].startPage <= pageIndex ? list[lo] : undefined;
  }

  /** First page in [from, to) covered by an outstanding request of `kind`, or `to`. */
  nextCovered(kind: RequestKind, from: number, to: number): number {
    for (const r of this.list(kind)) {
      if (r.endPage <= from) continue;
      return Math.min(Math.max(r.startPage, from), to);
    }
    return to;
  }

  get outstandingCount(): number {
    return this.outstanding[0].length + this.outstanding[1].length;
  }

  allOutstanding(): PageRequest[] {
    return [...this.outstanding[0], ...this.outstanding[1]];
  }

  /**
   * Makes the operation wait for page `first`, raising a request for [first, runEnd) unless one
   * already covers `first`. Preconditions: not detached; `first` unresolved; runEnd > first.
   */
  waitFor(kind: RequestKind, first: number, runEnd: number): PageWaiter {
    assert(!this.detached, 'waitFor on a detached source');
    let request = this.covering(kind, first);
    if (request === undefined) {
      const end = Math.min(runEnd, first + this.limits.requestPagesMax(), this.nextCovered(kind, first, runEnd));
      assert(end > first, () => `empty request run at ${first}`);
      request = new PageRequest(this, kind, first, end);
      const list = this.list(kind);
      let i = 0;
      while (i < list.length && list[i].startPage < first) i++;
      list.splice(i, 0, request);
      this.raised[kind === PagerCommand.Read ? 0 : 1]++;
      this.port.queue(request.entry);
    }
    const waiter = new PageWaiter(request, first);
    request.waiters.push(waiter);
    return waiter;
  }

  /**
   * Pages [start, end) may have become resolved for `kind`: wakes the waiters of resolved pages and
   * retires requests whose every page is resolved. Cost: the overlapping requests' lengths.
   */
  resolved(kind: RequestKind, start: number, end: number): void {
    const list = this.list(kind);
    for (let i = 0; i < list.length; i++) {
      const r = list[i];
      if (r.endPage <= start) continue;
      if (r.startPage >= end) break;
      for (const w of r.waiters) if (w.pageIndex >= start && w.pageIndex < end && this.isResolved(kind, w.pageIndex)) w.retry();
      let done = true;
      for (let p = r.startPage; p < r.endPage; p++) {
        if (!this.isResolved(kind, p)) { done = false; break; }
      }
      if (done) {
        this.retire(r);
        i--;
      } else if (r.waiters.some((w) => w.settled)) {
        for (let k = r.waiters.length - 1; k >= 0; k--) if (r.waiters[k].settled) r.waiters.splice(k, 1);
      }
    }
  }

  /**
   * Pages [start, end) stopped being resolved for `kind` (a zero run became a gap): every request
   * overlapping them that the pager has already read is ended (its waiters retry and fault anew);
   * one not yet read stays, and the pager will answer it as it reads it.
   */
  unresolved(kind: RequestKind, start: number, end: number): void {
    for (const r of [...this.list(kind)]) {
      if (r.endPage <= start || r.startPage >= end || !r.delivered) continue;
      this.retire(r);
    }
  }

  /** A request whose last waiter gave up (PageWaiter.cancel): ended, if it is still outstanding. */
  abandon(request: PageRequest): void {
    if (this.list(request.kind).includes(request)) this.retire(request);
  }

  /** Ends a request: withdrawn from the port if unread; remaining waiters retry. */
  private retire(request: PageRequest): void {
    const list = this.list(request.kind);
    const i = list.indexOf(request);
    assert(i >= 0, 'retire of a request that is not outstanding');
    list.splice(i, 1);
    request.entry.pending = false;
    for (const w of request.waiters) w.retry();
    request.waiters.length = 0;
  }

  /**
   * FAIL: ends every request of either kind overlapping [start, end). Waiters on pages inside the
   * range fail with `status`; the others retry.
   */
  fail(start: number, end: number, status: ZxStatus): void {
    for (const kind of [PagerCommand.Read, PagerCommand.Dirty] as const) {
      for (const r of [...this.list(kind)]) {
        if (r.endPage <= start || r.startPage >= end) continue;
        for (const w of r.waiters) {
          if (w.pageIndex >= start && w.pageIndex < end) w.fail(status, `page request failed by the pager at page ${w.pageIndex}`);
        }
        this.retire(r);
      }
    }
  }

  /** Detach or pager close: every waiter fails with BAD_STATE; nothing stays queued. */
  failAll(why: string): void {
    for (const kind of [PagerCommand.Read, PagerCommand.Dirty] as const) {
      for (const r of [...this.list(kind)]) {
        for (const w of r.waiters) w.fail(ZxStatus.ERR_BAD_STATE, why);
        this.retire(r);
      }
    }
  }

  /** The VMO shrank to `endPage` pages: waiters past it retry; requests wholly past it end. */
  truncated(endPage: number): void {
    for (const kind of [PagerCommand.Read, PagerCommand.Dirty] as const) {
      for (const r of [...this.list(kind)]) {
        if (r.endPage <= endPage) continue;
        if (r.startPage >= endPage) {
          this.retire(r);
          continue;
        }
        for (const w of r.waiters) if (w.pageIndex >= endPage) w.retry();
        if (!r.delivered) r.entry.endPage = endPage;
      }
    }
    // A straddling request may now be complete below the new end.
    this.resolved(PagerCommand.Read, 0, endPage);
    this.resolved(PagerCommand.Dirty, 0, endPage);
  }

  /** Queues the COMPLETE packet, once. */
  sendComplete(): void {
    if (this.completeSent) return;
    this.completeSent = true;
    this.port.queue({ pending: true, key: this.key, command: PagerCommand.Complete, startPage: 0, endPage: 0 });
  }
}
