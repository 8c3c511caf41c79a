/**
 * `--huge-pages`: the arena's memory from the patched binding (level 8), 2 MiB aligned and advised
 * for transparent huge pages (fs/frame-memory.ts). What a person would check: the kernel's own
 * account of the daemon's memory (/proc/PID/smaps: a VMA flagged `hg` whose resident bytes are huge
 * pages), and the stats document. Needs the system's transparent huge pages in `madvise` or
 * `always` mode; with `never` the tests fail and say so.
 */
import { readFileSync, promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { hugePageFrameMemory, hugePagesTakeEffect, transparentHugePageMode } from '../../fs/frame-memory.js';
import { randomData, sha256, startMount, tempDir, useMountHooks } from './harness.js';

useMountHooks();

const MiB = 1024 * 1024;

interface Vma { start: bigint; bytes: number; hugeAdvised: boolean; anonHugeBytes: number; rssBytes: number }

/** The VMAs of a process, from /proc/PID/smaps: size, VM_HUGEPAGE (`hg`), AnonHugePages, Rss. */
function vmas(pid: number | 'self'): Vma[] {
  const out: Vma[] = [];
  let cur: Vma | null = null;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (head !== null) {
      cur = { start: BigInt(`0x${head[1]}`), bytes: Number(BigInt(`0x${head[2]}`) - BigInt(`0x${head[1]}`)), hugeAdvised: false, anonHugeBytes: 0, rssBytes: 0 };
      out.push(cur);
      continue;
    }
    if (cur === null) continue;
    const kb = /^(AnonHugePages|Rss):\s+(\d+) kB/.exec(line);
    if (kb !== null) {
      if (kb[1] === 'Rss') cur.rssBytes = Number(kb[2]) * 1024;
      else cur.anonHugeBytes = Number(kb[2]) * 1024;
    }
    if (line.startsWith('VmFlags:')) cur.hugeAdvised = / hg( |$)/.test(line);
  }
  return out;
}

function requireThp(): string {
  const mode = transparentHugePageMode();
  if (!hugePagesTakeEffect(mode)) {
    throw new Error(`these tests need transparent huge pages in madvise or always mode; /sys/kernel/mm/transparent_hugepage/enabled says ${mode}`);
  }
  return mode;
}

describe('frame memory from the binding', () => {
  it('is 2 MiB aligned and, once touched, made of huge pages; 4 KiB pages when not asked', () => {
    requireThp();
    const Fuse = createRequire(import.meta.url)('fuse-native') as typeof import('fuse-native');
    expect(Fuse.frameMemory, 'the patched binding exports frameMemory (level 8)').toBeTypeOf('function');
    const huge = Fuse.frameMemory!(10 * MiB, true);
    const plain = Fuse.frameMemory!(10 * MiB, false);
    expect(huge.hugePages).toBe(true);
    expect(plain.hugePages).toBe(false);
    expect(huge.memory.length).toBe(10 * MiB);
    huge.memory.fill(0xa5);
    plain.memory.fill(0x5a);
    expect(huge.memory[10 * MiB - 1]).toBe(0xa5);
    // The advised VMA is exactly the region (the binding trimmed the over-mapping), starts on a
    // 2 MiB boundary, and every byte of it is a huge page: an unaligned start would leave 4 KiB
    // pages at both ends.
    const advised = vmas('self').filter((v) => v.hugeAdvised && v.bytes === 10 * MiB);
    expect(advised.length, 'one VMA of 10 MiB flagged hg').toBeGreaterThanOrEqual(1);
    expect(advised.some((v) => v.start % BigInt(2 * MiB) === 0n && v.anonHugeBytes === 10 * MiB),
      `huge VMAs: ${JSON.stringify(advised, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v))}`).toBe(true);
  });

  it('is reported as huge pages only where the system mode lets the advice act', () => {
    const fake = (bytes: number, huge: boolean): { memory: Buffer; hugePages: boolean } => ({ memory: Buffer.alloc(bytes), hugePages: huge });
    expect(hugePageFrameMemory(fake, 'madvise')(4 * MiB).hugePages).toBe(true);
    expect(hugePageFrameMemory(fake, 'always')(4 * MiB).hugePages).toBe(true);
    expect(hugePageFrameMemory(fake, 'never')(4 * MiB).hugePages).toBe(false);
    expect(hugePageFrameMemory(fake, 'unsupported')(4 * MiB).hugePages).toBe(false);
  });

  it('reads the system mode from the bracketed word, and says unsupported without the file', async () => {
    const dir = await tempDir();
    await fsp.writeFile(`${dir}/enabled`, 'always [madvise] never\n');
    expect(transparentHugePageMode(`${dir}/enabled`)).toBe('madvise');
    expect(transparentHugePageMode(`${dir}/missing`)).toBe('unsupported');
  });
});

describe('pagerfs mount --huge-pages', () => {
  it('holds file pages in huge pages, reads the right bytes, and says so in its stats', async () => {
    requireThp();
    const data = randomData(12 * MiB);
    const m = await startMount({ budget: '16MiB', args: ['--huge-pages'], files: { 'big.bin': data } });
    const got = await fsp.readFile(m.p('big.bin'));
    expect(sha256(got)).toBe(sha256(data));
    const s = await m.stats();
    expect(s.hugePageBytes, 'the whole 16 MiB region was advised').toBe(16 * MiB);
    // Budget 16 MiB = one region; 12 MiB of it resident (minus what readahead and eviction left).
    const advised = vmas(m.pid).filter((v) => v.hugeAdvised);
    const hugeResident = advised.reduce((a, v) => a + v.anonHugeBytes, 0);
    expect(hugeResident, `huge-page bytes in the daemon's hg VMAs (resident ${s.residentBytes})`).toBeGreaterThanOrEqual(8 * MiB);
    expect(hugeResident).toBeLessThanOrEqual(16 * MiB);
  });

  it('without the flag: 4 KiB pages, no advised memory, hugePageBytes 0', async () => {
    const data = randomData(12 * MiB);
    const m = await startMount({ budget: '16MiB', files: { 'big.bin': data } });
    expect(sha256(await fsp.readFile(m.p('big.bin')))).toBe(sha256(data));
    expect((await m.stats()).hugePageBytes).toBe(0);
    const advised = vmas(m.pid).filter((v) => v.hugeAdvised);
    expect(advised.reduce((a, v) => a + v.anonHugeBytes, 0), 'huge pages in the daemon\'s hg VMAs').toBe(0);
    // The arena's region (16 MiB here) is not advised at all; with the flag it is (test above).
    expect(advised.filter((v) => v.bytes >= 16 * MiB).map((v) => `${v.start.toString(16)} ${v.bytes}`), 'advised regions the arena\'s size').toEqual([]);
  });
});
