/**
 * Mount configuration: parsed once from the command line into a MountConfig, validated before
 * anything is mounted. Messages name the action, quote the value, then say what is wrong.
 */
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { MIN_BUDGET_PAGES, PAGE_SIZE, checkPressureThresholds, type PressureThresholds } from '../src/index.js';
import { parseDuration, parseFaultRule, parseSize, type FaultRule } from '../pager/index.js';

export interface MountConfig {
  /** The source directory (absolute), for pagers that serve one (directory, verified); else undefined. */
  backing: string | undefined;
  /** The pager module: a built-in name or a module path (`--pager`, default directory). */
  pager: string;
  /** `--pager-option key=value` items, checked against the module's options at mount. */
  pagerOptions: string[];
  mountpoint: string;
  budgetBytes: number;
  readaheadBytes: number;
  writebackDelayMs: number;
  requestTimeoutMs: number;
  /**
   * How long the kernel may trust file attributes it got (FUSE attr_timeout), ms. Other names of a
   * hard-linked file may show an old link count and ctime for this long after link/unlink/rename.
   */
  attrTimeoutMs: number;
  faults: FaultRule[];
  logLevel: string;
  logFile?: string;
  trace: boolean;
  metricsListen?: { host: string; port: number };
  force: boolean;
  allowOther: boolean;
  /** Let the kernel cache file pages (shared mmap works; pagerfs sees fewer reads). */
  kernelCache: boolean;
  /** Most of the budget locked (always_need) pages may hold, a fraction in (0, 1]. */
  maxLockedShare?: number;
  /** Pressure level thresholds (shares of the budget). */
  pressureThresholds?: PressureThresholds;
  /** How the daemon sizes V8's heap (`--heap`, auto resolved from the budget); see fs/cli.ts applyHeapMode. */
  heap: HeapMode;
  /** Back the arena with transparent huge pages (`--huge-pages`; off by default); see fs/frame-memory.ts. */
  hugePages: boolean;
  /** How long a FUSE thread spins for the JS thread's answer, ns (`--spin-wait`; 0, the default: never); see fs/spin-wait.ts. */
  spinWaitNs: number;
  /** Answer reads of resident pages on libfuse's threads (default; `--no-fast-read` turns it off); see fs/fast-read.ts. */
  fastRead: boolean;
}

/** small: keep V8's heap small (less RSS, cold reads ~10% slower); fast: V8's defaults. */
export type HeapMode = 'small' | 'fast';
/** `--heap auto` picks small up to this budget: above it the ~30 MiB the small heap saves is under ~6% of the budget. */
export const SMALL_HEAP_MAX_BUDGET = 256 * 1024 * 1024;

/** Exit codes of the CLI. REFUSED: the filesystem refused the operation (EBUSY, ENOMEM, EIO, ...). */
export const EXIT = { OK: 0, REFUSED: 1, USAGE: 2, BAD_PATH: 3, MOUNT_FAILED: 4 } as const;

export class ConfigError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT.USAGE) {
    super(message);
    this.name = 'ConfigError';
  }
}

export const DEFAULTS = {
  budget: '256MiB',
  readahead: '2MiB',
  writebackDelay: '5s',
  requestTimeout: '300s',
  attrTimeout: '1s',
  logLevel: 'info',
  maxLocked: '0.5',
  pressureThresholds: '25%,10%,2%',
  heap: 'auto',
  spinWait: '0',
};

export interface RawMountOptions {
  memoryBudget?: string;
  readahead?: string;
  writebackDelay?: string;
  requestTimeout?: string;
  attrTimeout?: string;
  injectFault?: string[];
  logLevel?: string;
  logFile?: string;
  trace?: boolean;
  metricsListen?: string;
  force?: boolean;
  allowOther?: boolean;
  kernelCache?: boolean;
  maxLocked?: string;
  pressureThresholds?: string;
  pager?: string;
  pagerOption?: string[];
  heap?: string;
  hugePages?: boolean;
  spinWait?: string;
  /** commander's `--no-fast-read`: false when given. */
  fastRead?: boolean;
}

/** A share: "0.5", "1", or a percentage "50%"; must lie in (0, 1]. */
function parseShare(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(%?)\s*$/.exec(text);
  if (m === null) throw new Error('use a fraction of the budget like 0.5, or a percentage like 50%');
  const v = Number(m[1]) / (m[2] === '%' ? 100 : 1);
  if (!(v > 0 && v <= 1)) throw new Error('must be above 0 and at most 1 (100%)');
  return v;
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function parseOr<T>(what: string, text: string, parse: (t: string) => T): T {
  try {
    return parse(text);
  } catch (err) {
    throw new ConfigError(`Invalid ${what} "${text}": ${(err as Error).message}`);
  }
}

/** Parses flags into a MountConfig (no filesystem access). Throws ConfigError. */
export function parseMountOptions(backing: string | undefined, mountpoint: string, raw: RawMountOptions): MountConfig {
  const budgetBytes = parseOr('--memory-budget', raw.memoryBudget ?? DEFAULTS.budget, parseSize);
  const minBytes = MIN_BUDGET_PAGES * PAGE_SIZE;
  if (budgetBytes < minBytes) {
    throw new ConfigError(`Invalid --memory-budget "${raw.memoryBudget}": below the minimum of ${minBytes} bytes (${MIN_BUDGET_PAGES} pages)`);
  }
  const readaheadBytes = parseOr('--readahead', raw.readahead ?? DEFAULTS.readahead, parseSize);
  const writebackDelayMs = parseOr('--writeback-delay', raw.writebackDelay ?? DEFAULTS.writebackDelay, parseDuration);
  const requestTimeoutMs = parseOr('--request-timeout', raw.requestTimeout ?? DEFAULTS.requestTimeout, parseDuration);
  if (requestTimeoutMs <= 0) throw new ConfigError(`Invalid --request-timeout "${raw.requestTimeout}": must be above zero`);
  const attrTimeoutMs = parseOr('--attr-timeout', raw.attrTimeout ?? DEFAULTS.attrTimeout, parseDuration);
  if (attrTimeoutMs > 3_600_000) throw new ConfigError(`Invalid --attr-timeout "${raw.attrTimeout}": at most 1h`);
  const faults = (raw.injectFault ?? []).map((r) => parseOr('--inject-fault', r, parseFaultRule));
  const maxLockedShare = parseOr('--max-locked', raw.maxLocked ?? DEFAULTS.maxLocked, parseShare);
  const pressureThresholds = parseOr('--pressure-thresholds', raw.pressureThresholds ?? DEFAULTS.pressureThresholds, parseThresholds);
  const logLevel = raw.logLevel ?? DEFAULTS.logLevel;
  if (!LEVELS.includes(logLevel)) throw new ConfigError(`Invalid --log-level "${logLevel}": use one of ${LEVELS.join(', ')}`);
  const heapText = raw.heap ?? DEFAULTS.heap;
  if (heapText !== 'auto' && heapText !== 'small' && heapText !== 'fast') {
    throw new ConfigError(`Invalid --heap "${heapText}": use auto, small or fast`);
  }
  const spinWaitMs = parseOr('--spin-wait', raw.spinWait ?? DEFAULTS.spinWait, parseDuration);
  if (spinWaitMs > 1000) throw new ConfigError(`Invalid --spin-wait "${raw.spinWait}": at most 1s`);
  const heap: HeapMode = heapText === 'auto' ? (budgetBytes <= SMALL_HEAP_MAX_BUDGET ? 'small' : 'fast') : heapText;
  let metricsListen: MountConfig['metricsListen'];
  if (raw.metricsListen !== undefined) {
    // PORT, HOST:PORT (a name or IPv4 address) or [IPv6]:PORT; a bare IPv6 address is refused
    // (in '::1' the last group would read as a port).
    const text = raw.metricsListen;
    const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]*):(\d{1,5})$/.exec(text) ?? /^()(\d{1,5})$/.exec(text);
    const port = m === null ? NaN : Number(m[2]);
    if (m === null || port < 1 || port > 65535) {
      throw new ConfigError(`Invalid --metrics-listen "${text}": use HOST:PORT, [IPv6]:PORT or PORT, like 127.0.0.1:9464 or [::1]:9464`);
    }
    metricsListen = { host: m[1] || '127.0.0.1', port };
  }
  return {
    backing: backing === undefined ? undefined : canonicalPath(backing),
    pager: raw.pager ?? 'directory',
    pagerOptions: raw.pagerOption ?? [],
    mountpoint: canonicalPath(mountpoint),
    budgetBytes,
    readaheadBytes,
    writebackDelayMs,
    requestTimeoutMs,
    attrTimeoutMs,
    faults,
    logLevel,
    logFile: raw.logFile,
    trace: raw.trace ?? false,
    metricsListen,
    force: raw.force ?? false,
    allowOther: raw.allowOther ?? false,
    kernelCache: raw.kernelCache ?? false,
    maxLockedShare,
    pressureThresholds,
    heap,
    hugePages: raw.hugePages ?? false,
    spinWaitNs: Math.round(spinWaitMs * 1e6),
    fastRead: raw.fastRead ?? true,
  };
}

/** "25%,10%,2%" or "0.25,0.1,0.02": WARNING, CRITICAL, OUT_OF_MEMORY as shares of the budget. */
function parseThresholds(text: string): PressureThresholds {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length !== 3) throw new Error('give three shares of the budget, WARNING,CRITICAL,OUT_OF_MEMORY, like 25%,10%,2%');
  const [warning, critical, outOfMemory] = parts.map((p) => {
    const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(p);
    if (m === null) throw new Error(`"${p}" is not a share (use 0.25 or 25%)`);
    return Number(m[1]) / (m[2] === '%' ? 100 : 1);
  });
  try {
    return checkPressureThresholds({ warning, critical, outOfMemory });
  } catch (err) {
    throw new Error((err as Error).message.replace(/^ERR_INVALID_ARGS: /, ''));
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel)); // '..mnt' is inside
}

/**
 * The absolute path with every symlink resolved, as /proc/self/mounts will show the mount (a
 * mountpoint under a symlink, /var/run for /run, was never found mounted: the daemon took that
 * for an outside unmount and stopped). A path that cannot be resolved itself (a stale FUSE mount
 * answers ENOTCONN, a missing one ENOENT) is resolved through its parent; failing that, as given.
 */
export function canonicalPath(p: string): string {
  const abs = path.resolve(p);
  try {
    return fs.realpathSync(abs);
  } catch {
    try {
      return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
    } catch {
      return abs;
    }
  }
}

/**
 * Checks the paths before mounting: the backing directory exists and is a directory; the mountpoint
 * is an empty directory (a stale pagerfs mount there is cleared only with --force, by the caller);
 * neither lies inside the other. Returns 'stale' when the mountpoint is a dead FUSE mount.
 */
export async function checkPaths(config: MountConfig): Promise<'ok' | 'stale'> {
  const { backing, mountpoint } = config;
  if (backing !== undefined) {
    const st = await fsp.stat(backing).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError(`Cannot mount "${backing}": backing path ${err.code === 'ENOENT' ? 'does not exist' : `cannot be read (${err.code})`}`, EXIT.BAD_PATH);
    });
    if (!st.isDirectory()) throw new ConfigError(`Cannot mount "${backing}": backing path is not a directory`, EXIT.BAD_PATH);
    if (isInside(mountpoint, backing) || isInside(backing, mountpoint)) {
      throw new ConfigError(`Cannot mount "${backing}" on "${mountpoint}": one lies inside the other`, EXIT.BAD_PATH);
    }
  }
  let mst;
  try {
    mst = await fsp.stat(mountpoint);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') return 'stale';
    throw new ConfigError(`Cannot mount on "${mountpoint}": mountpoint ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`, EXIT.BAD_PATH);
  }
  if (!mst.isDirectory()) throw new ConfigError(`Cannot mount on "${mountpoint}": mountpoint is not a directory`, EXIT.BAD_PATH);
  // stat may be answered from the kernel's attribute cache for a second after a daemon died:
  // readdir reaches the (dead) server, so ENOTCONN here also means a stale mount.
  let entries: string[];
  try {
    entries = await fsp.readdir(mountpoint);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN' || code === 'ECONNABORTED') return 'stale';
    throw new ConfigError(`Cannot mount on "${mountpoint}": mountpoint cannot be listed (${code})`, EXIT.BAD_PATH);
  }
  if (entries.length > 0) throw new ConfigError(`Cannot mount on "${mountpoint}": mountpoint is not empty`, EXIT.BAD_PATH);
  const parent = await fsp.stat(path.dirname(mountpoint));
  if (parent.dev !== mst.dev && mountpoint !== '/') {
    throw new ConfigError(`Cannot mount on "${mountpoint}": something is already mounted there`, EXIT.BAD_PATH);
  }
  return 'ok';
}
