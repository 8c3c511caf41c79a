/** The pager's counters: exact, cheap to bump, read by stats files and the metrics endpoint. */

/** Request latencies in a ring of the most recent samples (enough for a stable p99). */
const LATENCY_SAMPLES = 4096;

export class LatencyWindow {
  private readonly samples = new Float64Array(LATENCY_SAMPLES);
  private count = 0;

  record(ms: number): void {
    this.samples[this.count % LATENCY_SAMPLES] = ms;
    this.count++;
  }

  /** The q-quantile (0..1) of the retained samples, in ms; 0 when none. */
  quantile(q: number): number {
    const n = Math.min(this.count, LATENCY_SAMPLES);
    if (n === 0) return 0;
    const sorted = Array.from(this.samples.subarray(0, n)).sort((a, b) => a - b);
    return sorted[Math.min(n - 1, Math.floor(q * n))];
  }
}

export class PagerMetrics {
  readRequests = 0;
  dirtyRequests = 0;
  completePackets = 0;
  suppliedPages = 0;
  backingReadBytes = 0;
  backingReads = 0;
  /** Backing reads served from the OS page cache on the pager's thread (DirectoryPagerOptions.readCached). */
  cachedBackingReads = 0;
  failedRequests = 0;
  /** Failures by ZxStatus name. */
  readonly failuresByStatus: Record<string, number> = {};
  injectedFaults = 0;
  readaheadPages = 0;
  readaheadHitPages = 0;
  readaheadWastePages = 0;
  /** Windows read ahead in the background because a reader reached the marker of the last one. */
  asyncReadaheads = 0;
  writebackPages = 0;
  writebackBytes = 0;
  writebackErrors = 0;
  /** Pages checked against a hash tree before supply (verified pager), and those that failed. */
  verifiedPages = 0;
  integrityFailures = 0;
  /** Jobs whose answer did not come within the answer timeout (their slot was given back). */
  abandonedJobs = 0;
  /** Times the port loop let the event loop turn after answering packets back to back for a while. */
  loopYields = 0;
  readonly latency = new LatencyWindow();

  countFailure(statusName: string): void {
    this.failedRequests++;
    this.failuresByStatus[statusName] = (this.failuresByStatus[statusName] ?? 0) + 1;
  }

  snapshot(): Record<string, number | Record<string, number>> {
    return {
      readRequests: this.readRequests,
      dirtyRequests: this.dirtyRequests,
      completePackets: this.completePackets,
      suppliedPages: this.suppliedPages,
      backingReadBytes: this.backingReadBytes,
      backingReads: this.backingReads,
      cachedBackingReads: this.cachedBackingReads,
      failedRequests: this.failedRequests,
      failuresByStatus: { ...this.failuresByStatus },
      injectedFaults: this.injectedFaults,
      readaheadPages: this.readaheadPages,
      readaheadHitPages: this.readaheadHitPages,
      readaheadWastePages: this.readaheadWastePages,
      asyncReadaheads: this.asyncReadaheads,
      writebackPages: this.writebackPages,
      writebackBytes: this.writebackBytes,
      writebackErrors: this.writebackErrors,
      abandonedJobs: this.abandonedJobs,
      loopYields: this.loopYields,
      verifiedPages: this.verifiedPages,
      integrityFailures: this.integrityFailures,
      latencyP50Ms: this.latency.quantile(0.5),
      latencyP99Ms: this.latency.quantile(0.99),
    };
  }
}
