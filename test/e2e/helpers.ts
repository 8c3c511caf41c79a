/**
 * Helpers shared by the e2e pressure, fault and crash tests: deterministic file content that both
 * Node and Python can regenerate (SHAKE-128 of "<tag>:<block>", 4 KiB per block), a sampler of the
 * daemon's stats and RSS, and a small tmpfs that is always unmounted.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { afterEach } from 'vitest';
import { cleanupMounts, run, sleep, tempDir, type Mount, type Stats } from '../fs/harness.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const BLOCK = 4096;

/** Block `i` of the content named `tag`: SHAKE-128("<tag>:<i>"), 4096 bytes. */
export function contentBlock(tag: string, i: number): Buffer {
  return createHash('shake128', { outputLength: BLOCK }).update(`${tag}:${i}`).digest();
}

/** The first `size` bytes of the content named `tag`. */
export function content(tag: string, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i * BLOCK < size; i++) contentBlock(tag, i).copy(out, i * BLOCK, 0, Math.min(BLOCK, size - i * BLOCK));
  return out;
}

/** The same generator in Python, for reader processes. */
export const PY_CONTENT = `
import hashlib
BLOCK = 4096
def expected(tag, off, n):
    out = bytearray()
    b = off // BLOCK
    skip = off - b * BLOCK
    while len(out) < skip + n:
        out += hashlib.shake_128(f"{tag}:{b}".encode()).digest(BLOCK)
        b += 1
    return bytes(out[skip:skip + n])
`;

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** VmRSS of a process in bytes (from /proc/<pid>/status), or null if it is gone. */
export async function vmRssBytes(pid: number): Promise<number | null> {
  try {
    const text = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(text);
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

export interface Sample {
  t: number;
  rss: number | null;
  stats: Stats | null;
  error?: string;
}

/**
 * Samples `.pagerfs/stats` and the daemon's VmRSS every `intervalMs` until stopped. A stats read
 * that fails is recorded (not thrown): the caller decides what that means.
 */
export class Sampler {
  readonly samples: Sample[] = [];
  private stopped = false;
  private loop: Promise<void> | null = null;

  constructor(private readonly m: Mount, private readonly intervalMs = 50) {}

  start(): this {
    const t0 = Date.now();
    this.loop = (async () => {
      while (!this.stopped) {
        const next = Date.now() + this.intervalMs;
        const rss = await vmRssBytes(this.m.pid);
        let stats: Stats | null = null;
        let error: string | undefined;
        try {
          stats = await this.m.stats();
        } catch (err) {
          error = (err as NodeJS.ErrnoException).code ?? String(err);
        }
        this.samples.push({ t: Date.now() - t0, rss, stats, ...(error === undefined ? {} : { error }) });
        const wait = next - Date.now();
        if (wait > 0) await sleep(wait);
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  get statsSamples(): Stats[] {
    return this.samples.flatMap((s) => (s.stats === null ? [] : [s.stats]));
  }

  get maxRss(): number {
    return Math.max(0, ...this.samples.map((s) => s.rss ?? 0));
  }

  get rssSamples(): number {
    return this.samples.filter((s) => s.rss !== null).length;
  }
}

/** tmpfs mounts made by `mountTmpfs`, unmounted by `cleanupTmpfs` (call it from afterEach/afterAll). */
const tmpfsMounts: string[] = [];

/** Mounts a tmpfs of `size` (e.g. '8m') on a fresh directory and returns it. */
export async function mountTmpfs(size: string): Promise<string> {
  const dir = await tempDir('pagerfs-tmpfs-');
  const res = await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { timeoutMs: 10_000 });
  if (res.code !== 0) throw new Error(`mount -t tmpfs failed: ${res.stderr}`);
  tmpfsMounts.push(dir);
  return dir;
}

/**
 * For a test file that mounts tmpfs backing stores: after each test, the FUSE mounts on a tmpfs go
 * first (whatever order the hooks run in), then the tmpfs mounts themselves.
 */
export function useTmpfsCleanup(): void {
  afterEach(async () => {
    const dirs = [...tmpfsMounts];
    await cleanupMounts((m) => dirs.some((d) => m.backing.startsWith(d)));
    await cleanupTmpfs();
  });
}

/** Unmounts every tmpfs `mountTmpfs` made (lazily if busy). Call after the FUSE mounts on top are gone. */
export async function cleanupTmpfs(): Promise<void> {
  for (const dir of tmpfsMounts.splice(0).reverse()) {
    const res = await run('umount', [dir], { timeoutMs: 10_000 });
    if (res.code !== 0) await run('umount', ['-l', dir], { timeoutMs: 10_000 });
  }
}

export function fmtMiB(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}
