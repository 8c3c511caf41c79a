/** Shared fixtures for the user pager tests: a temp backing directory, a VmSystem and a started DirectoryPager. */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import path from 'node:path';
import { expect } from 'vitest';
import { PAGE_SIZE, VmSystem, ZxStatus, isZxError, statusName, type VmObject } from '../../src/index.js';
import { DirectoryPager, type DirectoryPagerOptions, type PagedFile } from '../../pager/index.js';

export { PAGE_SIZE };

export interface Env {
  dir: string;
  system: VmSystem;
  dp: DirectoryPager;
  /** Writes `data` to `rel` under the backing directory (creating parent directories). */
  put(rel: string, data: Uint8Array): void;
  /** The backing file's bytes now. */
  backing(rel: string): Buffer;
  /** Asserts the budget invariant now (and that it never was exceeded). */
  checkBudget(): void;
}

export interface EnvOptions extends Partial<Omit<DirectoryPagerOptions, 'system' | 'backingDir'>> {
  budgetPages?: number;
  validate?: boolean;
  requestTimeoutMs?: number;
  maxRequestPages?: number;
  /** Do not call start(). */
  noStart?: boolean;
}

const live: Array<{ dir: string; dp: DirectoryPager }> = [];

export function makeEnv(options: EnvOptions = {}): Env {
  const { budgetPages = 1024, validate = false, requestTimeoutMs = 20_000, maxRequestPages, noStart, ...pagerOptions } = options;
  const dir = mkdtempSync(path.join(tmpdir(), 'pagerfs-pager-'));
  const system = new VmSystem({ budgetBytes: budgetPages * PAGE_SIZE, validate, requestTimeoutMs, maxRequestPages });
  const dp = new DirectoryPager({ system, backingDir: dir, ...pagerOptions });
  if (noStart !== true) dp.start();
  live.push({ dir, dp });
  return {
    dir,
    system,
    dp,
    put(rel, data) {
      const full = path.join(dir, rel);
      mkdirSync(path.dirname(full), { recursive: true });
      writeFileSync(full, data);
    },
    backing(rel) {
      return readFileSync(path.join(dir, rel));
    },
    checkBudget() {
      expect(system.arena.usedFrames).toBeLessThanOrEqual(system.arena.limitFrames);
      expect(system.arena.counters().peakUsedFrames).toBeLessThanOrEqual(system.arena.limitFrames);
    },
  };
}

/** For afterEach: shuts down every pager made since the last call and removes the temp directories. */
export async function cleanupEnvs(): Promise<void> {
  const all = live.splice(0);
  for (const { dir, dp } of all) {
    try {
      await dp.shutdown();
    } catch {
      // a test may have left a failing writeback behind; the directory goes anyway
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Deterministic, position-dependent bytes (different per seed, never periodic at page size). */
export function pattern(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = (x >>> 16) ^ (i >> 12);
  }
  return b;
}

/** Reads [offset, offset + length) through the VMO in chunks of `chunk` bytes (after each: `each()`). */
export async function readVmo(vmo: VmObject, offset: number, length: number, chunk = length, each?: () => void): Promise<Buffer> {
  const out = Buffer.alloc(length);
  for (let o = 0; o < length; o += chunk) {
    const n = Math.min(chunk, length - o);
    await vmo.read(out.subarray(o, o + n), offset + o);
    each?.();
  }
  return out;
}

/** The ZxStatus a promise rejected with (fails the test if it resolved or threw something else). */
export async function rejectionStatus(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isZxError(err)) return statusName(err.status);
    throw err;
  }
  throw new Error('expected the operation to fail, but it succeeded');
}

export async function expectZx(p: Promise<unknown>, status: ZxStatus): Promise<void> {
  expect(await rejectionStatus(p)).toBe(statusName(status));
}

/** Lets queued packets, timers of 0 ms and I/O callbacks run. */
export function tick(ms = 0): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A promise with its resolve function outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

/**
 * Makes the file's backing reads wait for the test, `when` 'before' they read (the fill has
 * measured what it expects) or 'after' (the bytes are read, not yet supplied): `held` resolves
 * once a read waits there; `release()` lets it and every later one go.
 */
export function holdBackingReads(file: PagedFile, when: 'before' | 'after'): { held: Promise<void>; release: () => void } {
  const hold = deferred();
  const held = deferred();
  const readv = file.fh.readv.bind(file.fh);
  file.fh.readv = (async (...args: Parameters<typeof readv>) => {
    if (when === 'after') {
      const r = await readv(...args);
      held.resolve();
      await hold.promise;
      return r;
    }
    held.resolve();
    await hold.promise;
    return readv(...args);
  }) as typeof readv;
  return { held: held.promise, release: () => hold.resolve() };
}

/** A debug-level pino logger that keeps every line it writes. */
export function memoryLogger(): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { chunks.push(chunk.toString('utf8')); done(); } });
  return {
    logger: pino({ level: 'debug' }, sink),
    lines: () => chunks.join('').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** An errno-style error like Node's fs raises. */
export function errnoError(code: string, errno: number): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected by the test`), { code, errno: -errno });
}

/** Flips one byte of a file in place (xor 0x40): corruption behind a seal or a pager's back. */
export async function flipByte(file: string, offsetBytes: number): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offsetBytes);
    b[0] ^= 0x40;
    await fh.write(b, 0, 1, offsetBytes);
  } finally {
    await fh.close();
  }
}
