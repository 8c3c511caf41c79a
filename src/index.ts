/** pagerfs's VM core: the public, syscall-like surface. Importing it needs no FUSE and does no I/O. */
export { ZxStatus, ZxError, statusName, parseStatusName, isZxError } from './status.js';
export { InternalError } from './assert.js';
export { PAGE_SIZE, PAGE_SHIFT, MAX_VMO_SIZE_BYTES } from './constants.js';
export { PageRange } from './page-range.js';
export {
  VmSystem, MIN_BUDGET_PAGES, PressureLevel, PRESSURE_LEVEL_NAMES, DEFAULT_PRESSURE_THRESHOLDS, checkPressureThresholds,
  type VmSystemOptions, type VmSystemStats, type PressureThresholds,
} from './vm-system.js';
export { nodeFrameMemory, type FrameMemorySource } from './arena.js';
export { Pager, ALLOWED_FAIL_STATUSES } from './pager.js';
export {
  Port, type PortPacket, type PageRequestPacket, type ReadPacket, type DirtyPacket, type CompletePacket, type PagerCommandName,
} from './port.js';
export { VmObject, VmObjectPaged, VmSlice, type VmoKind, type ChildObserver } from './vmo.js';
export {
  VmoOptions, ChildOptions, VmoOp, PagerOp, WRITEBACK_IS_ZERO, PageResidency, type ResidencyRun,
  type DirtyRange, type DirtyRangesResult, type VmoStats, type VmoCounters,
} from './vmo-types.js';
export { EvictionLevel } from './evictor.js';
export { PageWaiter } from './page-request.js';
export {
  ReadMapping, MappingSlot, MappingBlock, MAPPING_HEADER_SLOTS, MAX_MAPPED_PAGES, ACCESSED_GROUP_SHIFT, mappingCapacityFor,
} from './read-mapping.js';
