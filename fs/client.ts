/**
 * The user side's view of a running pagerfs, through the mount only: which pagerfs mount a path lies
 * in, the stats document, the budget control file, and the user.pagerfs.* extended attributes.
 *
 * Node has no xattr calls, so attributes go through Debian's getfattr/setfattr (package attr, which
 * scripts/setup.sh installs) as child processes; their stderr carries strerror text, which
 * `xattrError` turns back into an errno code.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, EXIT } from './config.js';
import { CONTROL_DIR, type StatsDocument } from './control.js';
import { XATTR_HINT, XATTR_MAP, XATTR_RESIDENCY } from './xattr.js';

const exec = promisify(execFile);

/** Exit code of an operation the filesystem refused (EBUSY, ENOMEM, EIO, ...). */
export const EXIT_REFUSED = 1;

/** Reads a file through one handle until read returns 0 (control files report size 0). */
export async function readToEnd(file: string): Promise<Buffer> {
  const fh = await fsp.open(file, 'r');
  try {
    const parts: Buffer[] = [];
    let pos = 0;
    for (;;) {
      const buf = Buffer.alloc(64 * 1024);
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      parts.push(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return Buffer.concat(parts);
  } finally {
    await fh.close();
  }
}

/** Undoes the octal escapes of /proc/self/mounts (\040 for a space, ...). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The mountpoints of every pagerfs mount (fstype fuse.pagerfs) this process can see. */
export async function pagerfsMountpoints(): Promise<string[]> {
  const text = await fsp.readFile('/proc/self/mounts', 'utf8');
  return text.split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f.length >= 3 && f[2] === 'fuse.pagerfs')
    .map((f) => unescapeMountField(f[1]));
}

function isUnder(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent === '/' ? '/' : `${parent}/`);
}

/** A path resolved to the pagerfs mount it lies in. */
export interface Located {
  /** As the user wrote it. */
  given: string;
  /** Absolute, symlinks resolved. */
  real: string;
  mountpoint: string;
  /** Relative to the mountpoint ('' for the mountpoint itself). */
  rel: string;
}

/**
 * Resolves `given` (symlinks too) and finds the pagerfs mount it lies in: the deepest fuse.pagerfs
 * mountpoint above it, whose daemon must answer a read of `.pagerfs/stats`. Paths in pagerfs's
 * control directory are refused. Throws ConfigError (exit 3) naming the problem; `verb` starts the
 * message ("Cannot touch").
 */
export async function locate(given: string, verb: string): Promise<Located> {
  const abs = path.resolve(given);
  let real: string;
  try {
    real = await fsp.realpath(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file or directory'
      : code === 'ENOTCONN' ? 'the pagerfs daemon of this mount is not answering (Transport endpoint is not connected)'
        : `cannot be resolved (${code})`;
    throw new ConfigError(`${verb} "${given}": ${why}`, EXIT.BAD_PATH);
  }
  const mountpoint = (await pagerfsMountpoints())
    .filter((m) => isUnder(real, m))
    .sort((a, b) => b.length - a.length)[0];
  if (mountpoint === undefined) {
    throw new ConfigError(`${verb} "${given}": not inside a pagerfs mount`, EXIT.BAD_PATH);
  }
  const rel = path.relative(mountpoint, real);
  if (rel === CONTROL_DIR || rel.startsWith(`${CONTROL_DIR}/`)) {
    throw new ConfigError(`${verb} "${given}": it is in pagerfs's control directory ${CONTROL_DIR}/, which holds no file pages`, EXIT.BAD_PATH);
  }
  try {
    await readToEnd(path.join(mountpoint, CONTROL_DIR, 'stats'));
  } catch (err) {
    throw new ConfigError(`${verb} "${given}": the pagerfs mount at "${mountpoint}" does not answer (${(err as NodeJS.ErrnoException).code})`, EXIT.BAD_PATH);
  }
  return { given, real, mountpoint, rel };
}

/** The stats document of the mount at `mountpoint`. */
export async function readStats(mountpoint: string): Promise<StatsDocument> {
  let text: string;
  try {
    text = (await readToEnd(path.join(mountpoint, CONTROL_DIR, 'stats'))).toString('utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read the stats of "${mountpoint}": not a pagerfs mount, or its daemon is gone (${(err as NodeJS.ErrnoException).code})`, EXIT.BAD_PATH);
  }
  return JSON.parse(text) as StatsDocument;
}

/** The budget in force, in bytes (.pagerfs/budget). */
export async function readBudget(mountpoint: string): Promise<number> {
  const text = (await readToEnd(path.join(mountpoint, CONTROL_DIR, 'budget'))).toString('utf8');
  const bytes = Number(text.trim());
  if (!Number.isSafeInteger(bytes)) throw new Error(`.pagerfs/budget holds "${text.trim()}", not a number of bytes`);
  return bytes;
}

/** Writes a budget (bytes) to .pagerfs/budget; the write itself answers (EBUSY, EINVAL). */
export async function writeBudget(mountpoint: string, bytes: number): Promise<void> {
  const fh = await fsp.open(path.join(mountpoint, CONTROL_DIR, 'budget'), 'w');
  try {
    await fh.write(`${bytes}\n`);
  } finally {
    await fh.close();
  }
}

// ---- extended attributes through getfattr / setfattr ----

/** strerror texts (glibc) of the errors attribute calls on pagerfs can give, to codes. */
const STRERROR: Array<[RegExp, string]> = [
  [/Cannot allocate memory/i, 'ENOMEM'],
  [/Invalid argument/i, 'EINVAL'],
  [/No such attribute|No data available/i, 'ENODATA'],
  [/No such file or directory/i, 'ENOENT'],
  [/Device or resource busy/i, 'EBUSY'],
  [/No space left on device/i, 'ENOSPC'],
  [/Input\/output error/i, 'EIO'],
  [/Connection timed out|Timer expired/i, 'ETIMEDOUT'],
  [/Operation not supported/i, 'EOPNOTSUPP'],
  [/Permission denied/i, 'EACCES'],
  [/Operation not permitted/i, 'EPERM'],
  [/Read-only file system/i, 'EROFS'],
  [/Transport endpoint is not connected/i, 'ENOTCONN'],
  [/Software caused connection abort/i, 'ECONNABORTED'],
  [/Is a directory/i, 'EISDIR'],
  [/Numerical result out of range/i, 'ERANGE'],
];

/** An attribute call that failed: `code` is the errno name, `detail` the tool's own words. */
export class XattrError extends Error {
  constructor(readonly code: string, readonly detail: string) {
    super(`${detail} (${code})`);
    this.name = 'XattrError';
  }
}

function xattrError(err: unknown): XattrError {
  const e = err as NodeJS.ErrnoException & { stderr?: string };
  if (e.code === 'ENOENT' && e.stderr === undefined) {
    return new XattrError('EOPNOTSUPP', 'getfattr/setfattr are not installed (Debian package attr; run `npm run setup`)');
  }
  const text = `${e.stderr ?? ''}`.trim();
  const hit = STRERROR.find(([re]) => re.test(text));
  // "setfattr: /m/f: Cannot allocate memory" → "Cannot allocate memory"
  const detail = text.split('\n').pop()?.replace(/^.*:\s+/, '') || String(err);
  return new XattrError(hit?.[1] ?? 'EIO', detail);
}

/** The raw value of attribute `name` of `file`. */
export async function getXattr(file: string, name: string): Promise<string> {
  try {
    const { stdout } = await exec('getfattr', ['--absolute-names', '--only-values', '-n', name, '--', file], { encoding: 'utf8', maxBuffer: 1 << 20 });
    return stdout;
  } catch (err) {
    throw xattrError(err);
  }
}

export async function setXattr(file: string, name: string, value: string): Promise<void> {
  try {
    await exec('setfattr', ['-n', name, '-v', value, '--', file]);
  } catch (err) {
    throw xattrError(err);
  }
}

/** user.pagerfs.residency, in pages. */
export interface Residency {
  pages: number;
  resident: number;
  dirty: number;
  locked: number;
  pinned: number;
}

export async function getResidency(file: string): Promise<Residency> {
  return JSON.parse(await getXattr(file, XATTR_RESIDENCY)) as Residency;
}

/** user.pagerfs.map: runs of page states (decode with decodeMap, draw with residencyStrip). */
export function getMap(file: string): Promise<string> {
  return getXattr(file, XATTR_MAP);
}

export type Hint = 'dont_need' | 'always_need' | 'normal' | 'commit' | 'evict';

export function setHint(file: string, hint: Hint): Promise<void> {
  return setXattr(file, XATTR_HINT, hint);
}
