/**
 * Starting a pager module: checks its options, calls its factory with the kernel and the library,
 * and gives back a running-ready PagerService (a ModulePager around a files declaration, or the
 * service the module built itself). Every failure is a PagerModuleError with one line to print.
 */
import type { Logger } from 'pino';
import type { VmSystem } from '../src/index.js';
import {
  PagerModuleError, firstLine, isPagerDefinition, parsePagerOptions, serviceOptions,
  type LoadedPagerModule, type PagerModuleContext, type ServiceSettings,
} from './module.js';
import { ModulePager } from './module-pager.js';
import { PagerService } from './service.js';

export interface StartPagerOptions {
  system: VmSystem;
  log: Logger;
  /** Raw `--pager-option key=value` items. */
  pagerOptions: readonly string[];
  /** The source directory (absolute) for modules with `source: 'directory'`. */
  source: string | undefined;
  service: ServiceSettings;
}

/** Builds the module's PagerService (not started). Throws PagerModuleError. */
export async function createPagerService(loaded: LoadedPagerModule, o: StartPagerOptions): Promise<PagerService> {
  const { name, module } = loaded;
  const options = parsePagerOptions(name, module, o.pagerOptions);
  const context: PagerModuleContext = {
    api: await import('./api.js'),
    system: o.system,
    options,
    source: o.source,
    log: o.log.child({ pager: name }),
    service: o.service,
  };
  let made: unknown;
  // A create() whose promise nothing can settle any more (no timer, no I/O left) would let the
  // process end quietly with status 0 and nothing mounted: when the event loop runs dry, fail.
  let stalled: (() => void) | undefined;
  const never = new Promise<never>((_, reject) => {
    stalled = () => reject(new PagerModuleError(`the ${name} pager failed to start: its create() returned a promise that never settles (nothing left to wait for)`));
  });
  process.once('beforeExit', stalled!);
  try {
    made = await Promise.race([module.create(context), never]);
  } catch (err) {
    if (err instanceof PagerModuleError) throw err;
    o.log.debug({ err, pager: name }, 'the pager module threw while starting');
    throw new PagerModuleError(`the ${name} pager failed to start: ${firstLine(err)}`);
  } finally {
    process.off('beforeExit', stalled!);
  }
  if (made instanceof PagerService) return made;
  if (!isPagerDefinition(made)) {
    throw new PagerModuleError(`the ${name} pager's create() returned neither a files declaration ({ files, read }) nor a PagerService`);
  }
  return new ModulePager({ ...serviceOptions(context), definition: made, name });
}
