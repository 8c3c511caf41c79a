/**
 * Pager modules: how anyone plugs a pager of their own into pagerfs.
 *
 * A module is an ES module whose default export (or export named `pager`) is a PagerModule: a
 * description, the options it accepts, and a factory. `pagerfs mount --pager <name|path>` loads it,
 * checks its shape and options, and calls `create` with the kernel and the library. The factory
 * returns either
 *  - a PagerDefinition: the files it serves (paths, sizes, modes; a fixed list, or a function asked
 *    again at every lookup so the set can change) and a `read` answer for their page requests; the
 *    host wraps it in a ModulePager (pager/module-pager.ts), which runs the port loop, the fault
 *    rules, the timeouts and the counters; or
 *  - a complete PagerService (pager/service.ts), for pagers that serve a whole backing tree with its
 *    metadata: the built-in `directory` (the default: `pagerfs mount <backing> <mnt>` is
 *    `--pager directory`) and `verified` modules do this.
 * Built-in modules live in pager/modules/; the mount path loads even the default one through here.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import type * as Library from './api.js';
import type { Pager, VmObjectPaged, VmSystem, ZxStatus } from '../src/index.js';
import type { BackingFallocate, CachedRead, ServedInodeNotice } from './directory-pager.js';
import type { FaultInjector } from './faults.js';
import type { NativePageCheck } from './page-hasher.js';
import type { PagerService, PagerServiceOptions } from './service.js';

/** What a module's default export must be. */
export interface PagerModule {
  /** One line: what the pager serves (shown by `pagerfs mount --help` and in errors). */
  readonly description: string;
  /** The `--pager-option` names it accepts, each with its meaning; any other name is refused. */
  readonly options?: Readonly<Record<string, string>>;
  /**
   * 'directory': the module serves a directory given as the mount's source argument
   * (`pagerfs mount --pager verified <dir> <mnt>`). Default 'none': `pagerfs mount --pager x <mnt>`.
   */
  readonly source?: 'directory' | 'none';
  /** Builds the pager. A throw (or a rejected promise) aborts the mount with its message. */
  create(context: PagerModuleContext): PagerDefinition | PagerService | Promise<PagerDefinition | PagerService>;
}

/** What a module's factory receives. */
export interface PagerModuleContext {
  /** The library (what `import … from 'pagerfs'` gives): statuses, constants, VmSystem types. */
  readonly api: typeof Library;
  /** The kernel the mount runs: its budget, arena, evictor. */
  readonly system: VmSystem;
  /** `--pager-option key=value` pairs, checked against PagerModule.options. */
  readonly options: Readonly<Record<string, string>>;
  /** The source directory (absolute) for `source: 'directory'` modules, else undefined. */
  readonly source: string | undefined;
  readonly log: Logger;
  /** What a module that returns a full PagerService passes on to it (mount flags). */
  readonly service: ServiceSettings;
}

/** The mount's settings for a pager service (from the CLI flags). */
export interface ServiceSettings {
  readonly faults: FaultInjector;
  readonly trace: boolean;
  readonly writebackDelayMs: number;
  readonly maxLockedShare: number;
  readonly readaheadMaxBytes: number;
  readonly answerTimeoutMs: number | undefined;
  /** The mount daemon works from the source directory (long paths); false in tests and libraries. */
  readonly chdirToRoot: boolean;
  /** Small backing reads from the page cache without the thread pool (the mount: the patched binding's). */
  readonly readCached?: CachedRead;
  /** SHA-256 checks of pages on the thread pool, without a copy (the mount: the patched binding's). */
  readonly pageCheck?: NativePageCheck;
  /** Told which backing inodes the pager serves (the mount: the patched binding's Fuse.servedInode). */
  readonly servedInodes?: ServedInodeNotice;
  /** fallocate(2) on backing files (the mount: the patched binding's Fuse.fallocate). */
  readonly fallocate?: BackingFallocate;
  /** How old a backing file's last check may get before a handle checks it again (the mount: --attr-timeout). */
  readonly revalidateMs?: number;
}

/** The PagerService options the mount's settings give (what a module passes on to a service it builds). */
export function serviceOptions(ctx: PagerModuleContext): PagerServiceOptions {
  const s = ctx.service;
  return {
    system: ctx.system,
    logger: ctx.log,
    faults: s.faults,
    trace: s.trace,
    writebackDelayMs: s.writebackDelayMs,
    maxLockedShare: s.maxLockedShare,
    answerTimeoutMs: s.answerTimeoutMs,
    readaheadMaxBytes: s.readaheadMaxBytes,
  };
}

/** One file a module serves. */
export interface FileDeclaration {
  /** Relative, '/'-separated ('logs/a.bin'); its directories exist implicitly. */
  readonly path: string;
  /** Content size in bytes; the file's pages are ceil(sizeBytes / 4096). */
  readonly sizeBytes: number;
  /** Permission bits (default 0o444). Module files are read-only whatever the mode says. */
  readonly mode?: number;
  /** Modification time (default: when the mount started). */
  readonly mtime?: Date;
}

/**
 * A READ page request, as a module answers it. Every page of [offsetBytes, offsetBytes +
 * lengthBytes) must be supplied or failed; pages left unanswered keep their readers waiting until
 * the mount's request timeout (ETIMEDOUT). `supply` and `fail` may be called several times, for
 * parts of the range, and beyond it (supplying more is readahead).
 */
export interface ReadRequest {
  readonly path: string;
  /** The file's port key (stable while its VMO lives). */
  readonly key: number;
  /** Page-aligned byte range the kernel asks for. */
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  /** The file's content size in bytes (bytes past it in the last page must be zero). */
  readonly sizeBytes: number;
  /**
   * True when nobody waits on these pages: the host reads ahead of a sequential reader (see
   * PagerDefinition.readahead). Supply what you can; a failure here is not reported to anyone, the
   * pages simply fault later.
   */
  readonly prefetch: boolean;
  /** The pager VMO and the kernel pager, for modules that want the raw syscalls. */
  readonly vmo: VmObjectPaged;
  readonly pager: Pager;
  /**
   * Supplies `data` at `offsetBytes` (page-aligned; the last page is zero-padded). Pages already
   * present are kept. Throws ZxError: OUT_OF_RANGE past the VMO, NO_MEMORY when the budget holds
   * only unreclaimable pages.
   */
  supply(offsetBytes: number, data: Uint8Array): void;
  /**
   * Supplies [offsetBytes, +lengthBytes) (page-aligned) by letting `fill` write the bytes straight
   * into the new frames: `pages` are views of them in order (adjacent frames merged), covering the
   * range exactly, initially zero. No intermediate buffer. If `fill` throws (or the frames cannot be
   * had) the promise rejects and nothing is supplied; the failure is also logged, so a promise left
   * unawaited never goes unhandled.
   */
  supplyWith(offsetBytes: number, lengthBytes: number, fill: (pages: Buffer[]) => void | Promise<void>): Promise<void>;
  /** Fails [offsetBytes, +lengthBytes) (default: the whole request) with an allowed status. */
  fail(status: ZxStatus, offsetBytes?: number, lengthBytes?: number): void;
}

/** What a files-declaring module's factory returns. */
export interface PagerDefinition {
  /** The files served: a fixed list, or a function asked again at every lookup and listing. */
  readonly files: readonly FileDeclaration[] | (() => readonly FileDeclaration[]);
  /**
   * Answers one READ request. A throw fails the request's range with ERR_IO (logged with its stack).
   * The request is done when the promise settles or when every page of it has been answered through
   * `supply`, `supplyWith` or `fail`, whichever comes first: a promise still pending after that holds
   * nothing (a later rejection is only logged).
   */
  read(request: ReadRequest): void | Promise<void>;
  /**
   * Let the host read ahead for sequential readers (default true): after a fault it asks `read` for
   * the window after the request too, and while the reader keeps going, for the next window before
   * the reader gets there (requests with `prefetch` set), up to --readahead bytes.
   */
  readonly readahead?: boolean;
  /** Called once at unmount, after every VMO is detached. */
  close?(): void | Promise<void>;
}

/**
 * A module that cannot be loaded or used: the message is one line, for the CLI to print. `kind`
 * says whose mistake it is: 'usage' (a bad --pager or --pager-option, a module of the wrong shape),
 * 'missing' (no module file at that path), 'failed' (the pager could not start).
 */
export class PagerModuleError extends Error {
  override readonly name = 'PagerModuleError';

  constructor(message: string, readonly kind: 'usage' | 'missing' | 'failed' = 'failed') {
    super(message);
  }
}

/** The first line of an error's message (a module's stack and details go to the log, not the one-line error). */
export function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}

/** The modules pagerfs ships, by name. */
export const BUILTIN_PAGERS = ['directory', 'synthetic', 'verified'] as const;

/** A loaded module and where it came from. */
export interface LoadedPagerModule {
  readonly name: string;
  readonly module: PagerModule;
}

/**
 * Loads a pager module: a built-in name, or a path to an ES module file (.js/.mjs), relative to the
 * working directory. Throws PagerModuleError (one line) when it is missing, throws while loading, or
 * does not have the PagerModule shape.
 */
export async function loadPagerModule(spec: string): Promise<LoadedPagerModule> {
  if (spec.trim() === '') throw new PagerModuleError('--pager needs a name (directory, synthetic, verified) or a module path', 'usage');
  const builtin = (BUILTIN_PAGERS as readonly string[]).includes(spec);
  let url: string;
  if (builtin) {
    url = new URL(`./modules/${spec}.js`, import.meta.url).href;
  } else {
    const looksLikePath = spec.includes('/') || spec.includes('\\') || /\.[cm]?js$/.test(spec);
    if (!looksLikePath) {
      throw new PagerModuleError(`unknown pager "${spec}": built-in pagers are ${BUILTIN_PAGERS.join(', ')}; a module of your own is given by its path (./my-pager.mjs)`, 'usage');
    }
    const full = path.resolve(spec);
    try {
      await access(full);
    } catch {
      throw new PagerModuleError(`pager module "${spec}" not found (looked for ${full})`, 'missing');
    }
    url = pathToFileURL(full).href;
  }
  let ns: Record<string, unknown>;
  try {
    ns = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    const where = builtin ? undefined : await loadErrorLocation(err, url, fileURLToPath(url));
    throw new PagerModuleError(`pager module "${spec}" failed to load: ${firstLine(err)}${where === undefined ? '' : ` (at ${where})`}`, 'usage');
  }
  const candidate = ns.default ?? ns.pager;
  return { name: builtin ? spec : path.basename(spec), module: checkModuleShape(spec, candidate) };
}

/**
 * Where in the module file a load error arose ("/path/pager.mjs:12:5"), for the one-line error: the
 * first frame of its stack inside the file, or for a SyntaxError (whose stack from import() names no
 * line of the module) the line `node --check` reports. Undefined when neither says.
 */
async function loadErrorLocation(err: unknown, url: string, file: string): Promise<string | undefined> {
  const stack = String((err as Error)?.stack ?? '');
  for (const line of stack.split('\n').slice(1)) {
    const at = line.indexOf(url);
    if (at >= 0) return file + line.slice(at + url.length).replace(/\)$/, '').trim();
  }
  if (!(err instanceof SyntaxError)) return undefined;
  const { execFile } = await import('node:child_process');
  const checked = await new Promise<string>((resolve) => {
    execFile(process.execPath, ['--check', file], { timeout: 10_000 }, (_e, _out, stderr) => resolve(String(stderr)));
  });
  const first = checked.split('\n')[0] ?? '';
  return /:\d+$/.test(first) && (first.startsWith(file) || first.startsWith(url)) ? first.replace(url, file) : undefined;
}

/** The value as a PagerModule, or PagerModuleError naming what is wrong. */
export function checkModuleShape(spec: string, value: unknown): PagerModule {
  const where = `pager module "${spec}"`;
  if (value === undefined) throw new PagerModuleError(`${where} has no default export (nor an export named "pager")`, 'usage');
  if (typeof value !== 'object' || value === null) throw new PagerModuleError(`${where}: its export is a ${typeof value}, not a pager module object`, 'usage');
  const m = value as Record<string, unknown>;
  if (typeof m.create !== 'function') throw new PagerModuleError(`${where}: create(context) is missing or not a function`, 'usage');
  if (typeof m.description !== 'string') throw new PagerModuleError(`${where}: description must be a string`, 'usage');
  if (m.source !== undefined && m.source !== 'directory' && m.source !== 'none') {
    throw new PagerModuleError(`${where}: source must be "directory" or "none"`, 'usage');
  }
  if (m.options !== undefined) {
    if (typeof m.options !== 'object' || m.options === null || Object.values(m.options).some((v) => typeof v !== 'string')) {
      throw new PagerModuleError(`${where}: options must map each option name to its description (a string)`, 'usage');
    }
  }
  return value as PagerModule;
}

/**
 * Parses `--pager-option key=value` items against the module's declared options. Throws
 * PagerModuleError for a missing '=', an empty key, a repeated key or a name the module does not take.
 */
export function parsePagerOptions(name: string, module: PagerModule, items: readonly string[]): Record<string, string> {
  const accepted = module.options ?? {};
  const known = Object.keys(accepted);
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new PagerModuleError(`Invalid --pager-option "${item}": expected key=value`, 'usage');
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1);
    if (!Object.hasOwn(accepted, key)) {
      throw new PagerModuleError(known.length === 0
        ? `Invalid --pager-option "${item}": the ${name} pager takes no options`
        : `Invalid --pager-option "${item}": the ${name} pager takes ${known.join(', ')}`, 'usage');
    }
    if (Object.hasOwn(out, key)) throw new PagerModuleError(`Invalid --pager-option "${item}": ${key} given twice`, 'usage');
    out[key] = value;
  }
  return out;
}

/** Whether a factory's result is a complete service rather than a files declaration. */
export function isPagerDefinition(value: unknown): value is PagerDefinition {
  if (typeof value !== 'object' || value === null) return false;
  const d = value as Record<string, unknown>;
  return typeof d.read === 'function' && (Array.isArray(d.files) || typeof d.files === 'function');
}
