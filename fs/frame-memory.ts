/**
 * The memory the daemon's page arena is made of when `--huge-pages` asks for transparent huge
 * pages (off by default). The patched binding maps it 2 MiB aligned and advises huge pages
 * (madvise(MADV_HUGEPAGE)), so a first touch faults 2 MiB at once and copies out of frames miss
 * the TLB less. Measured on these VMs: 128 KiB copies out of a 256 MiB region 15-16 GB/s against
 * 13-14; a first touch 0.3-0.6 µs per 4 KiB against ~1.1, but 2.5-4.8 µs when the huge page comes
 * from memory the VM had handed back to its host (free page reporting works on 2 MiB blocks). Through
 * a mount neither side won: warm reads equal, a fresh daemon's cold read 380-680 ms of CPU
 * against a steady ~490 for 320 MiB. Hence opt-in. RSS grows in 2 MiB steps (the arena hands
 * out frames lowest first, so at most one partly used huge page per region).
 */
import { readFileSync } from 'node:fs';
import type { FrameMemorySource } from '../src/index.js';

/** Fuse.frameMemory of the patched binding (level 8). */
export type FrameMemoryBinding = (bytes: number, huge: boolean) => { memory: Buffer; hugePages: boolean };

/** The system's transparent huge page mode: 'always', 'madvise', 'never', or 'unsupported'. */
export function transparentHugePageMode(file = '/sys/kernel/mm/transparent_hugepage/enabled'): string {
  try {
    return /\[(\w+)\]/.exec(readFileSync(file, 'utf8'))?.[1] ?? 'unsupported';
  } catch {
    return 'unsupported';
  }
}

/** Whether MADV_HUGEPAGE can take effect under the system's mode ('never' and no THP ignore it). */
export function hugePagesTakeEffect(mode: string): boolean {
  return mode === 'always' || mode === 'madvise';
}

/**
 * A frame memory source that maps through the binding and asks for huge pages. It reports huge
 * pages only where the advice can take effect: with the system's mode 'never' (or no THP at all)
 * the advice is accepted and ignored, and the arena is made of 4 KiB pages.
 */
export function hugePageFrameMemory(binding: FrameMemoryBinding, mode = transparentHugePageMode()): FrameMemorySource {
  const effective = hugePagesTakeEffect(mode);
  return (bytes) => {
    const { memory, hugePages } = binding(bytes, true);
    return { memory, hugePages: hugePages && effective };
  };
}
