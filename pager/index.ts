/** The user pager service: answering page requests from a backing directory. */
export {
  DirectoryPager, PagedFile, statusForIoError, FILE_HINTS,
  type DirectoryPagerOptions, type FileHint, type FileResidency,
} from './directory-pager.js';
export { FaultInjector, parseFaultRule, parseFaultRules, globToRegExp, type FaultRule, type FaultAction } from './faults.js';
export { PagerMetrics, LatencyWindow } from './metrics.js';
export { PortServer, coalesce, type PageJob, type PageJobHandler } from './port-server.js';
export { ReadaheadState } from './readahead.js';
export { parseSize, parseDuration, formatSize } from './sizes.js';
export { createLogger, silentLogger, type Logger, type LogOptions } from './log.js';
