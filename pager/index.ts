/** The user pager service: answering page requests from a backing directory or a pager module. */
export {
  PagerService, ServedFile, FILE_HINTS, identityOf, fsError,
  type PagerServiceOptions, type FileHint, type FileResidency, type BackingRoot, type FileStat, type FileTree, type FileTreeSpace,
} from './service.js';
export { DirectoryPager, PagedFile, statusForIoError, type BackingFallocate, type CachedRead, type DirectoryPagerOptions, type ServedInodeNotice } from './directory-pager.js';
export { FaultInjector, parseFaultRule, parseFaultRules, globToRegExp, type FaultRule, type FaultAction } from './faults.js';
export { PagerMetrics, LatencyWindow } from './metrics.js';
export { PortServer, coalesce, type PageJob, type PageJobHandler } from './port-server.js';
export { ReadaheadState } from './readahead.js';
export { parseSize, parseDuration, formatSize } from './sizes.js';
export { createLogger, silentLogger, type Logger, type LogOptions } from './log.js';
