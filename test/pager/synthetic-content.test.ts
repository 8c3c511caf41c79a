import { describe, expect, it } from 'vitest';
import { syntheticFill, syntheticMismatch } from '../../pager/synthetic-content.js';

const PAGE = 4096;
const KiB = 1024;
const GiB = 1024 ** 3;

/**
 * The content written straight from the module's TSDoc, with BigInt for the word index, so the fast
 * path is checked against the definition rather than against itself.
 */
function referenceByte(seed: number, fileIndex: number, byte: bigint): number {
  const u = (x: number): number => x >>> 0;
  const fmix32 = (x: number): number => {
    let h = u(x);
    h = u(h ^ (h >>> 16));
    h = u(Math.imul(h, 0x85ebca6b));
    h = u(h ^ (h >>> 13));
    h = u(Math.imul(h, 0xc2b2ae35));
    h = u(h ^ (h >>> 16));
    return h;
  };
  const w = byte / 4n;
  const lo = Number(w % 2n ** 32n);
  const hi = Number(w / 2n ** 32n);
  const k1 = fmix32(u(seed ^ 0x243f6a88));
  const k2 = fmix32(u(u(k1 ^ fileIndex) + 0x85a308d3));
  const keyA = fmix32(u(u(k2 ^ hi) + 0x13198a2e));
  const keyB = fmix32(u(keyA + 0x03707344));
  const word = fmix32(u(fmix32(u(lo ^ keyA)) + keyB));
  return (word >>> (Number(byte % 4n) * 8)) & 0xff;
}

function fill(seed: number, fileIndex: number, offsetBytes: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  syntheticFill(seed, fileIndex, offsetBytes, out);
  return out;
}

function expectMatchesReference(seed: number, fileIndex: number, offsetBytes: number, bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i++) {
    const want = referenceByte(seed, fileIndex, BigInt(offsetBytes) + BigInt(i));
    if (bytes[i] !== want) expect.fail(`byte ${offsetBytes + i}: ${bytes[i]} != ${want}`);
  }
}

describe('syntheticFill', () => {
  it('gives the same bytes for the same (seed, file, offset) every time', () => {
    const a = fill(7, 3, 5 * PAGE, 2 * PAGE);
    const b = fill(7, 3, 5 * PAGE, 2 * PAGE);
    expect(a.equals(b)).toBe(true);
  });

  it.each([
    ['offset 0', 0],
    ['page 1', PAGE],
    ['an unaligned offset', 12_345],
    ['beyond 4 GiB', 4 * GiB + 8 * PAGE + 3],
    ['across the 16 GiB word block boundary', 16 * GiB - 6],
    ['near 64 GiB', 64 * GiB - PAGE],
    ['at 2^45 bytes', 2 ** 45],
  ])('writes the documented content at %s', (_name, offsetBytes) => {
    for (const [seed, fileIndex] of [[0, 0], [1, 0], [0, 1], [0xffff_ffff, 0xffff_ffff]]) {
      expectMatchesReference(seed, fileIndex, offsetBytes, fill(seed, fileIndex, offsetBytes, 64));
    }
  });

  it('fills a whole aligned page like the byte path does', () => {
    // Aligned output: the Int32Array path. Output at an odd byte: the byte path.
    const aligned = fill(42, 9, 123 * PAGE, PAGE);
    const odd = Buffer.alloc(PAGE + 1);
    syntheticFill(42, 9, 123 * PAGE, odd, 1, PAGE);
    expect(odd.subarray(1).equals(aligned)).toBe(true);
    expectMatchesReference(42, 9, 123 * PAGE, aligned);
  });

  it('gives different content for different seeds, files and pages', () => {
    const base = fill(1, 1, 0, PAGE);
    expect(fill(2, 1, 0, PAGE).equals(base)).toBe(false);
    expect(fill(1, 2, 0, PAGE).equals(base)).toBe(false);
    expect(fill(1, 1, PAGE, PAGE).equals(base)).toBe(false);
    // 16 GiB apart: only hi differs.
    expect(fill(1, 1, 16 * GiB, PAGE).equals(base)).toBe(false);
    // Not a shifted copy of another file either: no 64-byte run of file 2 appears in file 1's first 64 KiB.
    const other = fill(1, 2, 0, 64);
    expect(fill(1, 1, 0, 64 * KiB).indexOf(other)).toBe(-1);
  });

  it('has no two equal words within a file stretch (word is a bijection of its index)', () => {
    const bytes = fill(5, 5, 0, 64 * KiB);
    const words = new Set<number>();
    for (let i = 0; i < bytes.length; i += 4) words.add(bytes.readUInt32LE(i));
    expect(words.size).toBe(bytes.length / 4);
  });

  it('an unaligned read equals the same slice of an aligned read', () => {
    const startBytes = 3 * PAGE;
    const whole = fill(11, 4, startBytes, 3 * PAGE);
    for (const [from, length] of [[0, 1], [1, 1], [3, 5], [1, 4095], [4093, 7], [2, 3 * PAGE - 5], [PAGE - 1, PAGE + 2], [5, 0]]) {
      const part = fill(11, 4, startBytes + from, length);
      expect(part.equals(whole.subarray(from, from + length)), `[${from}, +${length})`).toBe(true);
    }
  });

  it('writes only inside [outOffset, outOffset + length) of a view into a bigger buffer', () => {
    const backing = Buffer.alloc(3 * PAGE, 0xaa);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + PAGE, PAGE);
    syntheticFill(3, 3, 8 * GiB + 1, view, 10, 100);
    expect(backing.subarray(0, PAGE + 10).every((b) => b === 0xaa)).toBe(true);
    expect(backing.subarray(PAGE + 110).every((b) => b === 0xaa)).toBe(true);
    expect(Buffer.from(view.subarray(10, 110)).equals(fill(3, 3, 8 * GiB + 1, 100))).toBe(true);
  });

  it('works on an Int32-aligned view at a non-zero byte offset of its buffer', () => {
    const ab = new ArrayBuffer(4 * PAGE);
    const frame = new Uint8Array(ab, 2 * PAGE, PAGE);
    syntheticFill(8, 1, 64 * GiB - PAGE, frame);
    expect(Buffer.from(frame).equals(fill(8, 1, 64 * GiB - PAGE, PAGE))).toBe(true);
    expect(new Uint8Array(ab, 0, 2 * PAGE).every((b) => b === 0)).toBe(true);
  });

  it.each([
    ['a negative seed', () => syntheticFill(-1, 0, 0, Buffer.alloc(4))],
    ['a seed of 2^32', () => syntheticFill(2 ** 32, 0, 0, Buffer.alloc(4))],
    ['a fractional file index', () => syntheticFill(0, 0.5, 0, Buffer.alloc(4))],
    ['a negative offset', () => syntheticFill(0, 0, -4, Buffer.alloc(4))],
    ['an unsafe offset', () => syntheticFill(0, 0, 2 ** 53, Buffer.alloc(4))],
    ['a range past the buffer', () => syntheticFill(0, 0, 0, Buffer.alloc(4), 2, 3)],
    ['a negative length', () => syntheticFill(0, 0, 0, Buffer.alloc(4), 0, -1)],
  ])('throws RangeError for %s', (_name, call) => {
    expect(call).toThrow(RangeError);
  });
});

describe('syntheticMismatch', () => {
  it('returns -1 for bytes that match, aligned or not, empty too', () => {
    expect(syntheticMismatch(9, 2, 0, fill(9, 2, 0, 200 * KiB))).toBe(-1);
    expect(syntheticMismatch(9, 2, 5 * GiB + 7, fill(9, 2, 5 * GiB + 7, 3 * PAGE + 1))).toBe(-1);
    expect(syntheticMismatch(9, 2, 17, new Uint8Array(0))).toBe(-1);
  });

  it.each([0, 1, PAGE - 1, PAGE, 70_000, 200 * KiB - 1])('finds a byte flipped at index %d', (index) => {
    const data = fill(9, 2, 12_345, 200 * KiB);
    data[index] ^= 0x10;
    expect(syntheticMismatch(9, 2, 12_345, data)).toBe(index);
  });

  it('reports the first of several differing bytes, in a view at an offset', () => {
    const backing = fill(1, 1, 0, 100 * KiB);
    backing[80 * KiB] ^= 1;
    backing[90 * KiB] ^= 1;
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 10 * KiB, 90 * KiB);
    expect(syntheticMismatch(1, 1, 10 * KiB, view)).toBe(70 * KiB);
  });

  it('sees data of another file or offset as different from byte 0 or so', () => {
    const data = fill(1, 1, 0, PAGE);
    // The chance that a byte of another file matches is 1/256, so the first mismatch comes early.
    for (const at of [syntheticMismatch(1, 2, 0, data), syntheticMismatch(1, 1, 4, data)]) {
      expect(at).toBeGreaterThanOrEqual(0); // -1: no difference found
      expect(at).toBeLessThan(16);
    }
  });
});
