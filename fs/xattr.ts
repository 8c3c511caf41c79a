/**
 * Extended attributes: pagerfs's own `user.pagerfs.*` controls, and pass-through of every other
 * attribute to the backing file.
 *
 *   user.pagerfs.residency  (get) JSON: {"pages","resident","dirty","locked","pinned","absent"} in
 *                           pages ("dirty" and "locked" overlap: a locked page written to is both)
 *   user.pagerfs.map        (get) the page states as runs, "<state><count>" joined by ',', with
 *                           states '.' absent, 'c' clean, 'd' dirty, 'l' locked, 'p' pinned; long
 *                           maps are folded into at most MAP_BUCKETS buckets ("bucket=<pages>;" first)
 *   user.pagerfs.hint       (set) dont_need | always_need | normal | commit | evict
 * An unknown user.pagerfs.* name is ENODATA (get) or EINVAL (set); an unknown hint is EINVAL; both
 * change nothing. None is listed and removing one is ENODATA: copiers copy and remove what is
 * listed. A mount over a backing directory rarely sees a pass-through get here: the binding answers
 * those on its FUSE threads (fs/mount.ts backingPassthrough, native/README.md level 5); this path
 * serves trees without backingRoot() and paths too long for the binding. Node has no xattr
 * calls, so pass-through uses the patched fuse-native's Fuse.lgetxattrRaw / lsetxattr / llistxattr /
 * lremovexattr (native/README.md: the system calls on libuv's thread pool; errors as -errno for get,
 * Node-style for the others). Without them (an unpatched binding) it falls back to spawning Debian's
 * getfattr/setfattr (attr, which scripts/setup.sh installs): correct, but a process per call. Either
 * way a final symlink is not followed (the link's own attributes).
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { PageResidency, type ResidencyRun } from '../src/index.js';
import { FILE_HINTS, type FileHint, type FileResidency } from '../pager/index.js';
import { ERRNO, toErrno } from './errno.js';

const exec = promisify(execFile);

export const XATTR_PREFIX = 'user.pagerfs.';
export const XATTR_RESIDENCY = 'user.pagerfs.residency';
export const XATTR_MAP = 'user.pagerfs.map';
export const XATTR_HINT = 'user.pagerfs.hint';
/** A folded map has at most this many buckets (keeps the value far below the 64 KiB xattr limit). */
export const MAP_BUCKETS = 4096;

const STATE_CHARS: Record<PageResidency, string> = {
  [PageResidency.Absent]: '.', [PageResidency.Clean]: 'c', [PageResidency.Dirty]: 'd',
  [PageResidency.Locked]: 'l', [PageResidency.Pinned]: 'p',
};

/** Errors carrying an errno for the FUSE edge. */
export function errnoError(code: keyof typeof ERRNO, message: string): Error {
  return Object.assign(new Error(message), { code, errno: -ERRNO[code] });
}

export function parseHint(value: string): FileHint {
  const v = value.replace(/\0+$/, '').trim().toLowerCase();
  if (!(FILE_HINTS as readonly string[]).includes(v)) {
    throw errnoError('EINVAL', `unknown pagerfs hint "${v}" (use ${FILE_HINTS.join(', ')})`);
  }
  return v as FileHint;
}

export function residencyJson(r: FileResidency): string {
  return JSON.stringify({ pages: r.pages, resident: r.resident, dirty: r.dirty, locked: r.locked, pinned: r.pinned, absent: r.absent });
}

/** Encodes runs as "c12,.100,d3"; folds into buckets when there would be too many runs. */
export function encodeMap(runs: ResidencyRun[], pages: number): string {
  if (runs.length <= MAP_BUCKETS) return runs.map((r) => `${STATE_CHARS[r.state]}${r.endPage - r.startPage}`).join(',');
  // Fold: each bucket shows its most notable state (pinned > locked > dirty > clean > absent).
  const bucket = Math.ceil(pages / MAP_BUCKETS);
  const rank = [0, 1, 2, 3, 4];
  const states: PageResidency[] = new Array<PageResidency>(Math.ceil(pages / bucket)).fill(PageResidency.Absent);
  for (const r of runs) {
    for (let b = Math.floor(r.startPage / bucket); b * bucket < r.endPage; b++) {
      if (rank[r.state] > rank[states[b]]) states[b] = r.state;
    }
  }
  const out: string[] = [];
  let i = 0;
  while (i < states.length) {
    let j = i;
    while (j < states.length && states[j] === states[i]) j++;
    out.push(`${STATE_CHARS[states[i]]}${j - i}`);
    i = j;
  }
  return `bucket=${bucket};${out.join(',')}`;
}

/** Decodes a map into one character per bucket of `width` (for strips): the reader's side. */
export function decodeMap(value: string): Array<{ state: string; pages: number }> {
  let bucket = 1;
  let body = value;
  const m = /^bucket=(\d+);(.*)$/.exec(value);
  if (m !== null) { bucket = Number(m[1]); body = m[2]; }
  if (body === '') return [];
  return body.split(',').map((part) => ({ state: part[0], pages: Number(part.slice(1)) * bucket }));
}

// ---- pass-through to the backing file ----

type NodeCb<T = void> = (err: Error | null, value?: T) => void;
interface NativeXattr {
  /** lgetxattr with cb(res, value): res 0 or -errno, no Error object (a missing attribute is the usual answer). */
  lgetxattrRaw(path: string, name: string, cb: (res: number, value?: Buffer) => void): void;
  lsetxattr(path: string, name: string, value: Buffer, flags: number, cb: NodeCb): void;
  llistxattr(path: string, cb: NodeCb<string[]>): void;
  lremovexattr(path: string, name: string, cb: NodeCb): void;
}
let nativeXattr: NativeXattr | null | undefined;

/**
 * The patched fuse-native's xattr helpers, or null (unpatched binding: fall back to getfattr/setfattr).
 * Loaded lazily, so that importing this module loads no native binding. The CLI's attribute calls
 * (fs/client.ts) use them too.
 */
export function native(): NativeXattr | null {
  if (nativeXattr === undefined) {
    let Fuse: Partial<NativeXattr> | null = null;
    try {
      Fuse = createRequire(import.meta.url)('fuse-native') as Partial<NativeXattr>;
    } catch {
      Fuse = null;
    }
    nativeXattr = Fuse !== null && typeof Fuse.lgetxattrRaw === 'function' && typeof Fuse.lsetxattr === 'function' &&
      typeof Fuse.llistxattr === 'function' && typeof Fuse.lremovexattr === 'function' ? Fuse as NativeXattr : null;
  }
  return nativeXattr;
}

function call<T>(fn: (cb: NodeCb<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err === null ? resolve(value as T) : reject(err))));
}

/**
 * The backing file's attribute `name`: cb(0, value) or cb(-errno). A callback, not a promise: this is
 * the getxattr hot path (`ls -l` asks two missing attributes of every file).
 */
export function backingGetXattrCb(file: string, name: string, cb: (errno: number, value?: Buffer) => void): void {
  const n = native();
  if (n === null) {
    execGetXattr(file, name).then((v) => cb(0, v), (err: unknown) => cb(toErrno(err)));
    return;
  }
  n.lgetxattrRaw(file, name, cb);
}

export async function backingSetXattr(file: string, name: string, value: Buffer): Promise<void> {
  const n = native();
  if (n !== null) return call((cb) => n.lsetxattr(file, name, value, 0, cb));
  return execSetXattr(file, name, value);
}

export async function backingListXattr(file: string): Promise<string[]> {
  const n = native();
  if (n !== null) return call<string[]>((cb) => n.llistxattr(file, cb));
  return execListXattr(file);
}

export async function backingRemoveXattr(file: string, name: string): Promise<void> {
  const n = native();
  if (n !== null) return call((cb) => n.lremovexattr(file, name, cb));
  return execRemoveXattr(file, name);
}

// ---- fallback: getfattr / setfattr from Debian's attr ----

function fsError(err: unknown): Error {
  const text = `${(err as { stderr?: string }).stderr ?? ''}`;
  if (/No such attribute|No data available/i.test(text)) return errnoError('ENODATA', 'no such attribute');
  if (/Operation not supported/i.test(text)) return errnoError('EOPNOTSUPP', 'extended attributes not supported');
  if (/No such file/i.test(text)) return errnoError('ENOENT', 'no such file');
  if (/Permission denied/i.test(text)) return errnoError('EACCES', 'permission denied');
  if (/Numerical result out of range|too large/i.test(text)) return errnoError('ERANGE', 'attribute too large');
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return errnoError('EOPNOTSUPP', 'getfattr/setfattr not installed');
  return errnoError('EIO', text.trim() || String(err));
}

async function execGetXattr(file: string, name: string): Promise<Buffer> {
  let stdout: string;
  try {
    ({ stdout } = await exec('getfattr', ['-h', '-e', 'hex', '-n', name, '--', file]));
  } catch (err) {
    throw fsError(err);
  }
  const line = stdout.split('\n').find((l) => l.startsWith(`${name}=`));
  if (line === undefined) throw errnoError('ENODATA', 'no such attribute');
  const value = line.slice(name.length + 1);
  return value.startsWith('0x') ? Buffer.from(value.slice(2), 'hex') : Buffer.alloc(0);
}

async function execSetXattr(file: string, name: string, value: Buffer): Promise<void> {
  try {
    await exec('setfattr', ['-h', '-n', name, '-v', `0x${value.toString('hex')}`, '--', file]);
  } catch (err) {
    throw fsError(err);
  }
}

async function execListXattr(file: string): Promise<string[]> {
  try {
    const { stdout } = await exec('getfattr', ['-h', '-m', '-', '--absolute-names', '--', file]);
    return stdout.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  } catch (err) {
    throw fsError(err);
  }
}

async function execRemoveXattr(file: string, name: string): Promise<void> {
  try {
    await exec('setfattr', ['-h', '-x', name, '--', file]);
  } catch (err) {
    throw fsError(err);
  }
}
