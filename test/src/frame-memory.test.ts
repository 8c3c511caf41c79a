/**
 * The arena's memory source (VmSystemOptions.frameMemory): the arena asks it for one region per
 * growth (every chunk the limit allows then), keeps its frames in exactly that memory, zeroes what it
 * hands to anonymous VMOs whatever the memory held, and counts the bytes a source asked to be huge pages.
 */
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE, VmSystem, type FrameMemorySource } from '../../src/index.js';

const MiB = 1024 * 1024;

/** A source that hands out garbage-filled buffers and remembers them. */
function recordingSource(hugePages: boolean): { source: FrameMemorySource; regions: Buffer[] } {
  const regions: Buffer[] = [];
  const source: FrameMemorySource = (bytes) => {
    const memory = Buffer.alloc(bytes, 0xee);
    regions.push(memory);
    return { memory, hugePages };
  };
  return { source, regions };
}

describe('frame memory source', () => {
  it('backs every frame: one region for the whole limit, written bytes land in it, fresh pages read zero', async () => {
    const { source, regions } = recordingSource(false);
    const sys = new VmSystem({ budgetBytes: 8 * MiB, frameMemory: source, validate: true });
    const vmo = sys.createVmo(64 * PAGE_SIZE);
    const marker = Buffer.from('pagerfs frame memory marker');
    await vmo.write(marker, 5 * PAGE_SIZE + 100);
    expect(regions.map((r) => r.length), 'one region covering the 8 MiB limit').toEqual([8 * MiB]);
    expect(regions[0].indexOf(marker), 'the written bytes are in the source\'s memory').toBeGreaterThanOrEqual(0);
    // The page around the marker, and a page never written, read back as written / zero: the
    // arena zero-fills frames it commits, so a source's garbage never shows.
    const page = Buffer.alloc(PAGE_SIZE);
    await vmo.read(page, 5 * PAGE_SIZE);
    expect(page.subarray(100, 100 + marker.length).equals(marker)).toBe(true);
    expect(page.subarray(0, 100).every((b) => b === 0) && page.subarray(100 + marker.length).every((b) => b === 0)).toBe(true);
    await vmo.write(Buffer.from([1]), 9 * PAGE_SIZE);
    await vmo.read(page, 9 * PAGE_SIZE);
    expect(page[0]).toBe(1);
    expect(page.subarray(1).every((b) => b === 0)).toBe(true);
    expect(sys.stats().arena.hugePageBytes).toBe(0);
  });

  it('is asked again when a raised budget needs more, and counts huge-page regions', async () => {
    const { source, regions } = recordingSource(true);
    const sys = new VmSystem({ budgetBytes: 4 * MiB, frameMemory: source });
    const vmo = sys.createVmo(8 * MiB);
    await vmo.write(Buffer.alloc(3 * MiB, 1), 0);
    expect(regions.map((r) => r.length)).toEqual([4 * MiB]);
    sys.setBudget(12 * MiB);
    await vmo.write(Buffer.alloc(5 * MiB, 2), 3 * MiB);
    expect(regions.map((r) => r.length), 'the second region covers the 8 MiB the raised limit added').toEqual([4 * MiB, 8 * MiB]);
    expect(sys.stats().arena.hugePageBytes).toBe(12 * MiB);
    const check = Buffer.alloc(MiB);
    await vmo.read(check, 7 * MiB);
    expect(check.every((b) => b === 2)).toBe(true);
  });

  it('a source that gives too little memory is refused loudly', async () => {
    const short: FrameMemorySource = (bytes) => ({ memory: Buffer.alloc(bytes - PAGE_SIZE), hugePages: false });
    const sys = new VmSystem({ budgetBytes: 4 * MiB, frameMemory: short });
    await expect(sys.createVmo(PAGE_SIZE).write(Buffer.from([1]), 0)).rejects.toThrow(/frame memory source gave/);
  });
});
