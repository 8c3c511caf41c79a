/**
 * `--metrics-listen`: the stats counters in Prometheus text format, served over HTTP (loopback by
 * default). prom-client does the exposition format (names, HELP/TYPE lines, escaping); the values
 * come from the same document as `.pagerfs/stats`, collected when scraped.
 */
import http from 'node:http';
import type { Logger } from 'pino';
import { Gauge, Registry } from 'prom-client';
import type { PagerService } from '../pager/index.js';
import { statsDocument, type StatsDocument } from './control.js';
import type { FastReadStats } from './fast-read.js';

type NumericKey = { [K in keyof StatsDocument]: StatsDocument[K] extends number ? K : never }[keyof StatsDocument];

/** Metric name suffix, help text and source field of each exported counter. */
const GAUGES: Array<[string, string, NumericKey]> = [
  ['budget_bytes', 'Memory budget: most bytes of file pages resident at once', 'budgetBytes'],
  ['resident_bytes', 'Bytes of file pages resident now', 'residentBytes'],
  ['dirty_bytes', 'Bytes of dirty pages not yet written back', 'dirtyBytes'],
  ['pinned_bytes', 'Bytes of pinned pages', 'pinnedBytes'],
  ['locked_bytes', 'Bytes of pages locked by ALWAYS_NEED', 'lockedBytes'],
  ['huge_page_bytes', 'Bytes of the page arena backed by transparent huge pages (as advised)', 'hugePageBytes'],
  ['page_requests_total', 'Page requests received by the pager (READ and DIRTY)', 'pageRequests'],
  ['supplied_pages_total', 'Pages supplied by the pager', 'suppliedPages'],
  ['failed_requests_total', 'Page requests failed by the pager', 'failedRequests'],
  ['evicted_pages_total', 'Pages evicted to stay within the budget', 'evictedPages'],
  ['writeback_bytes_total', 'Bytes written back to the backing directory', 'writebackBytes'],
  ['readahead_hit_pages_total', 'Readahead pages used without a fault', 'readaheadHitPages'],
  ['backing_read_bytes_total', 'Bytes read from the backing directory', 'backingReadBytes'],
  ['fast_reads_total', 'Reads answered on the FUSE threads without the JavaScript thread (fast reads)', 'fastReads'],
  ['fast_read_bytes_total', 'Bytes of fast reads', 'fastReadBytes'],
  ['request_latency_p50_ms', 'Median page request latency (ms, recent requests)', 'latencyP50Ms'],
  ['request_latency_p99_ms', '99th percentile page request latency (ms, recent requests)', 'latencyP99Ms'],
];

const LEVELS = ['NORMAL', 'WARNING', 'CRITICAL', 'OUT_OF_MEMORY'];

export interface MetricsServer {
  readonly url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(dp: PagerService, listen: { host: string; port: number }, log: Logger,
  fastReads?: () => FastReadStats): Promise<MetricsServer> {
  const registry = new Registry();
  let doc: StatsDocument | null = null;
  const current = (): StatsDocument => (doc ??= statsDocument(dp, fastReads));
  for (const [name, help, key] of GAUGES) {
    registry.registerMetric(new Gauge({
      name: `pagerfs_${name}`, help, registers: [],
      collect() { this.set(current()[key]); },
    }));
  }
  registry.registerMetric(new Gauge({
    name: 'pagerfs_pressure_level', help: 'Memory pressure level: 0 NORMAL, 1 WARNING, 2 CRITICAL, 3 OUT_OF_MEMORY', registers: [],
    collect() { this.set(LEVELS.indexOf(current().pressureLevel)); },
  }));
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('pagerfs serves /metrics\n');
      return;
    }
    doc = null; // one document per scrape
    registry.metrics().then((text) => {
      res.writeHead(200, { 'content-type': registry.contentType }).end(text);
    }, (err: unknown) => {
      log.error({ err }, 'metrics collection failed');
      res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const url = `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}/metrics`;
  log.info({ url }, 'serving metrics');
  return {
    url,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
