/**
 * The user side's view of a running pagerfs, through the mount only: which pagerfs mount a path lies
 * in, the stats document, the budget control file, and the user.pagerfs.* extended attributes.
 *
 * Node has no xattr calls: attributes go through the patched fuse-native's lgetxattr / lsetxattr
 * (one system call each, on libuv's pool), else through Debian's getfattr/setfattr (package attr,
 * which scripts/setup.sh installs) as child processes, whose stderr carries strerror text that
 * `xattrError` turns back into an errno code. A process per file made `pagerfs residency` of
 * 25,000 files take 37 s.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { getSystemErrorName, promisify } from 'node:util';
import { parseDuration } from '../pager/index.js';
import { ConfigError, EXIT } from './config.js';
import { CONTROL_DIR, type StatsDocument } from './control.js';
import { XATTR_HINT, XATTR_MAP, XATTR_RESIDENCY, native as nativeXattr } from './xattr.js';

const exec = promisify(execFile);


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

/** Every mount this process can see, in /proc/self/mounts order (later ones on top). */
async function mounts(): Promise<Array<{ mountpoint: string; type: string }>> {
  const text = await fsp.readFile('/proc/self/mounts', 'utf8');
  return text.split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f.length >= 3)
    .map((f) => ({ mountpoint: unescapeMountField(f[1]), type: f[2] }));
}

/** The filesystem type mounted at `mountpoint` (an absolute, canonical path), or null: the topmost one. */
export async function mountTypeAt(mountpoint: string): Promise<string | null> {
  return (await mounts()).filter((m) => m.mountpoint === mountpoint).pop()?.type ?? null;
}

/** The mountpoints of every pagerfs mount (fstype fuse.pagerfs) this process can see. */
export async function pagerfsMountpoints(): Promise<string[]> {
  return (await mounts()).filter((m) => m.type === 'fuse.pagerfs').map((m) => m.mountpoint);
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
  /** The mount's device number: a directory with another one is a filesystem mounted inside it. */
  mountDev: number;
}

/**
 * Resolves `given` (symlinks too) and finds the pagerfs mount it lies in: the deepest fuse.pagerfs
 * mountpoint above it, whose daemon must answer a read of `.pagerfs/stats`. Paths in pagerfs's
 * control directory are refused. Throws ConfigError (exit 3) naming the problem; `verb` starts the
 * message ("Cannot touch").
 */
export async function locate(given: string, verb: string): Promise<Located> {
  const abs = path.resolve(given);
  // Resolving a path inside a mount whose daemon does not answer would block for good: ask the
  // mount the path lies in as written first, within the answer timeout.
  const mountpoints = await pagerfsMountpoints();
  const written = deepestMount(mountpoints, abs);
  if (written !== undefined) await ensureAnswers(written, `${verb} "${given}"`);
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
  const mountpoint = deepestMount(mountpoints, real);
  if (mountpoint === undefined) {
    throw new ConfigError(`${verb} "${given}": not inside a pagerfs mount`, EXIT.BAD_PATH);
  }
  const rel = path.relative(mountpoint, real);
  if (rel === CONTROL_DIR || rel.startsWith(`${CONTROL_DIR}/`)) {
    throw new ConfigError(`${verb} "${given}": it is in pagerfs's control directory ${CONTROL_DIR}/, which holds no file pages`, EXIT.BAD_PATH);
  }
  await ensureAnswers(mountpoint, `${verb} "${given}"`);
  // A filesystem mounted inside the pagerfs mount is not pagerfs: a hint there would be a real xattr.
  const [mountDev, ownDev] = await Promise.all([fsp.stat(mountpoint), fsp.stat(real)].map((st) => st.then((s) => s.dev, () => -1)));
  if (ownDev !== -1 && ownDev !== mountDev) {
    throw new ConfigError(`${verb} "${given}": it is on another filesystem, mounted inside the pagerfs mount at "${mountpoint}"`, EXIT.BAD_PATH);
  }
  return { given, real, mountpoint, rel, mountDev };
}

function deepestMount(mountpoints: string[], p: string): string | undefined {
  return mountpoints.filter((m) => isUnder(p, m)).sort((a, b) => b.length - a.length)[0];
}

/**
 * How long the CLI waits for a daemon to answer a read of its stats before giving up:
 * PAGERFS_ANSWER_TIMEOUT (a duration), default 10 s.
 */
export function answerTimeoutMs(): number {
  const text = process.env.PAGERFS_ANSWER_TIMEOUT;
  if (text === undefined || text === '') return 10_000;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    throw new ConfigError(`Invalid PAGERFS_ANSWER_TIMEOUT "${text}": ${(err as Error).message}`);
  }
  if (ms <= 0) throw new ConfigError(`Invalid PAGERFS_ANSWER_TIMEOUT "${text}": must be above zero`);
  return ms;
}

/** What reading a mount's stats gave: its text, the errno code of a failure, or no answer in time. */
export type StatsAnswer = { text: string } | { code: string } | { timedOutMs: number };

/**
 * Reads `<mountpoint>/.pagerfs/stats` in a child process (cat), killed if the daemon has not answered
 * within answerTimeoutMs(). Not in this process: a FUSE request the daemon never answers (SIGSTOPped,
 * or hung) blocks the thread that made it for good. On libuv's pool, Node joins that thread at exit,
 * so the CLI could neither give up nor quit (top's q, Ctrl-C); on the main thread (a sync call) not
 * even SIGTERM ends it. A child blocked so dies of SIGKILL (the request not yet read is dropped), and
 * this process exits whatever becomes of it.
 */
export function readStatsAnswer(mountpoint: string): Promise<StatsAnswer> {
  const timeoutMs = answerTimeoutMs();
  const file = path.join(mountpoint, CONTROL_DIR, 'stats');
  return new Promise((resolve) => {
    execFile('cat', ['--', file], { encoding: 'utf8', maxBuffer: 1 << 30, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err === null) { resolve({ text: stdout }); return; }
      const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null };
      if (e.killed === true && e.signal === 'SIGKILL') { resolve({ timedOutMs: timeoutMs }); return; }
      resolve({ code: STRERROR.find(([re]) => re.test(stderr))?.[1] ?? (e.code !== undefined && typeof e.code === 'string' ? e.code : 'EIO') });
    });
  });
}

/** The words for a daemon that did not answer within the timeout. */
export function noAnswerText(mountpoint: string, timedOutMs: number): string {
  return `the pagerfs daemon of "${mountpoint}" has not answered for ${timedOutMs / 1000}s: it is stopped (SIGSTOP; kill -CONT resumes it) or hung ` +
    '(kill it, then `pagerfs unmount` clears the mount)';
}

/** Mounts whose daemon answered in this process: asked once. */
const answered = new Set<string>();

/** Throws ConfigError (exit 3) unless the daemon of `mountpoint` answers a read of its stats in time. */
async function ensureAnswers(mountpoint: string, what: string): Promise<void> {
  if (answered.has(mountpoint)) return;
  const res = await readStatsAnswer(mountpoint);
  if ('timedOutMs' in res) throw new ConfigError(`${what}: ${noAnswerText(mountpoint, res.timedOutMs)}`, EXIT.BAD_PATH);
  if ('code' in res) throw new ConfigError(`${what}: the pagerfs mount at "${mountpoint}" does not answer (${res.code})`, EXIT.BAD_PATH);
  answered.add(mountpoint);
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

/** strerror texts (glibc) of the errors attribute calls on pagerfs can give, and their codes. */
const STRERROR: Array<[RegExp, string, string]> = [
  [/Cannot allocate memory/i, 'ENOMEM', 'Cannot allocate memory'],
  [/Invalid argument/i, 'EINVAL', 'Invalid argument'],
  [/No such attribute|No data available/i, 'ENODATA', 'No data available'],
  [/No such file or directory/i, 'ENOENT', 'No such file or directory'],
  [/Device or resource busy/i, 'EBUSY', 'Device or resource busy'],
  [/No space left on device/i, 'ENOSPC', 'No space left on device'],
  [/Input\/output error/i, 'EIO', 'Input/output error'],
  [/Connection timed out|Timer expired/i, 'ETIMEDOUT', 'Connection timed out'],
  [/Operation not supported/i, 'EOPNOTSUPP', 'Operation not supported'],
  [/Permission denied/i, 'EACCES', 'Permission denied'],
  [/Operation not permitted/i, 'EPERM', 'Operation not permitted'],
  [/Read-only file system/i, 'EROFS', 'Read-only file system'],
  [/Transport endpoint is not connected/i, 'ENOTCONN', 'Transport endpoint is not connected'],
  [/Software caused connection abort/i, 'ECONNABORTED', 'Software caused connection abort'],
  [/Is a directory/i, 'EISDIR', 'Is a directory'],
  [/Numerical result out of range/i, 'ERANGE', 'Numerical result out of range'],
];

/** A native call's failure (an errno name, or a negative errno) as the tools would have said it. */
function nativeError(code: string, fallback: string): XattrError {
  return new XattrError(code, STRERROR.find(([, c]) => c === code)?.[2] ?? fallback);
}

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

/**
 * The raw value of attribute `name` of `file`. The native calls do not follow a final symbolic
 * link; the verbs' targets are regular files already resolved (collectTargets).
 */
export async function getXattr(file: string, name: string): Promise<string> {
  const n = nativeXattr();
  if (n !== null) {
    return new Promise((resolve, reject) => n.lgetxattrRaw(file, name, (res, value) => {
      if (res < 0) reject(nativeError(getSystemErrorName(res), `errno ${-res}`));
      else resolve((value ?? Buffer.alloc(0)).toString('utf8'));
    }));
  }
  try {
    const { stdout } = await exec('getfattr', ['--absolute-names', '--only-values', '-n', name, '--', file], { encoding: 'utf8', maxBuffer: 1 << 20 });
    return stdout;
  } catch (err) {
    throw xattrError(err);
  }
}

export async function setXattr(file: string, name: string, value: string): Promise<void> {
  const n = nativeXattr();
  if (n !== null) {
    return new Promise((resolve, reject) => n.lsetxattr(file, name, Buffer.from(value, 'utf8'), 0, (err) => {
      if (err === null) resolve();
      else reject(nativeError((err as NodeJS.ErrnoException).code ?? 'EIO', err.message));
    }));
  }
  try {
    await exec('setfattr', ['-n', name, '-v', value, '--', file]);
  } catch (err) {
    throw xattrError(err);
  }
}

/** user.pagerfs.residency, in pages (see fs/xattr.ts: dirty and locked overlap). */
export interface Residency {
  pages: number;
  resident: number;
  dirty: number;
  locked: number;
  pinned: number;
  absent: number;
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
