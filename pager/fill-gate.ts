/**
 * A gate for fills (reads of backing bytes that end in a supply): a change that must not meet a
 * fill half way (a budget shrink, whose frames fills hold; a punch, whose old bytes a fill may have
 * read) holds new fills back and waits for the ones under way. One such gate serves the pager
 * service (budget changes) and one each file (fallocate).
 */
export class FillGate {
  /** While a change runs, new fills wait on this. Invariant: one change at a time. */
  private closed: Promise<void> | null = null;
  /** Fills under way (past the gate), and who waits for that count to reach zero. */
  private active = 0;
  private idle: Array<() => void> = [];

  /** No change holds fills back now (a fill that cannot wait, being synchronous, checks this). */
  get open(): boolean {
    return this.closed === null;
  }

  /** Runs `fill` once no change holds fills back; it counts as under way until it settles. */
  async run<T>(fill: () => Promise<T>): Promise<T> {
    while (this.closed !== null) await this.closed;
    this.active++;
    try {
      return await fill();
    } finally {
      if (--this.active === 0) for (const w of this.idle.splice(0)) w();
    }
  }

  /**
   * Runs `change` with new fills held back, after the fills under way have settled, or after
   * `maxWaitMs` if they have not (a fill that hangs must not hold the change, and every fill,
   * forever). Changes run one at a time.
   */
  async hold<T>(change: () => Promise<T>, maxWaitMs = Number.POSITIVE_INFINITY): Promise<T> {
    while (this.closed !== null) await this.closed;
    let open!: () => void;
    this.closed = new Promise<void>((r) => { open = r; });
    try {
      const deadline = performance.now() + maxWaitMs;
      while (this.active > 0 && performance.now() < deadline) {
        await new Promise<void>((r) => {
          const timer = Number.isFinite(maxWaitMs) ? setTimeout(r, Math.max(1, deadline - performance.now())) : undefined;
          this.idle.push(() => { clearTimeout(timer); r(); });
        });
      }
      return await change();
    } finally {
      this.closed = null;
      open();
    }
  }
}
