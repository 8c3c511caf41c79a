/**
 * pagerfs as a library (`import { … } from 'pagerfs'`): the VM core's syscall-like surface (src/)
 * and the pager layer (pager/), with no FUSE: importing it loads no native binding, so user-pager
 * semantics can be explored in a plain Node script or a test. `pagerfs/core` is src/ alone.
 */
export * from '../src/index.js';
export * from './index.js';
export {
  PagerModuleError, BUILTIN_PAGERS, loadPagerModule, checkModuleShape, parsePagerOptions, isPagerDefinition, serviceOptions,
  type PagerModule, type PagerModuleContext, type PagerDefinition, type FileDeclaration, type ReadRequest,
  type ServiceSettings, type LoadedPagerModule,
} from './module.js';
export { ModulePager, DeclaredFile, type ModulePagerOptions } from './module-pager.js';
export { createPagerService, type StartPagerOptions } from './module-host.js';
export { syntheticFill, syntheticMismatch } from './synthetic-content.js';
export { VerifiedPager, type VerifiedPagerOptions } from './verified-pager.js';
export type { NativePageCheck } from './page-hasher.js';
export {
  VERITY_DIR, VerityError, VerityTree, SealedDirectory, isVerityError, sealDirectory, loadSeal, checkDirectory,
  type SealSummary, type CheckReport, type FileCheck,
} from './verity.js';
