/**
 * The content of the `synthetic` pager (issue #9): files of deterministic pseudo-random bytes of any
 * size, computed on demand, with no backing disk. Eviction tests read them back and check every
 * byte with syntheticMismatch, so an evicted page that came back wrong is caught.
 *
 * The content, exactly (reimplement it from this and you get the same bytes):
 *
 *   All arithmetic is on unsigned 32-bit integers, modulo 2^32; `*` is Math.imul, `^` is xor,
 *   `>>>` is a logical right shift.
 *
 *     fmix32(h):  h ^= h >>> 16;  h = h * 0x85EBCA6B;
 *                 h ^= h >>> 13;  h = h * 0xC2B2AE35;
 *                 h ^= h >>> 16;  return h            (MurmurHash3's finaliser, a bijection)
 *
 *   File `fileIndex` of seed `seed` is a sequence of 32-bit words stored little-endian: byte b of the
 *   file is byte (b mod 4) of word w = floor(b / 4), counting from the least significant byte.
 *   Split the word index into lo = w mod 2^32 and hi = floor(w / 2^32). Then
 *
 *     k1   = fmix32(seed ^ 0x243F6A88)
 *     k2   = fmix32((k1 ^ fileIndex) + 0x85A308D3)
 *     keyA = fmix32((k2 ^ hi) + 0x13198A2E)
 *     keyB = fmix32(keyA + 0x03707344)
 *     word(w) = fmix32(fmix32(lo ^ keyA) + keyB)
 *
 *   (The four constants are the first words of pi's fraction, only to keep the keys away from 0.)
 *
 * Properties: the content depends on nothing but (seed, fileIndex, offset), so a file has no size of
 * its own: any prefix of the infinite sequence is a valid file. Within each 16 GiB block (the 2^32
 * words sharing one hi) every word is distinct, as word() is a bijection of lo, so no two pages of a
 * file up to 16 GiB are equal, and pages of a bigger file repeat only by chance. This is NOT
 * cryptographic: anyone who reads a few words can predict the rest; it is for tests, never secrets.
 *
 * Speed: one aligned 4 KiB page is 1024 words of two fmix32 each, written through an Int32Array
 * view (about 4 us on the project's machine, some 1 GB/s). The view over each ArrayBuffer is made once and cached, so the aligned
 * path allocates nothing per call; unaligned offsets, unaligned output and big-endian hosts take a
 * byte-by-byte path that gives the same bytes.
 */

const WORD_BYTES = 4;
/** 2^32: word indices split into lo (below this) and hi (above). */
const TWO_POW_32 = 0x1_0000_0000;

const M1 = 0x85ebca6b | 0;
const M2 = 0xc2b2ae35 | 0;
const SEED_SALT = 0x243f6a88;
const FILE_SALT = 0x85a308d3 | 0;
const HI_SALT = 0x13198a2e;
const KEY_B_SALT = 0x03707344;

/** True on a little-endian host, where an Int32Array's element is the word's little-endian bytes. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** MurmurHash3's 32-bit finaliser, on int32 values (the bits are those of the uint32 definition). */
function fmix32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, M1);
  h ^= h >>> 13;
  h = Math.imul(h, M2);
  h ^= h >>> 16;
  return h;
}

// The keys of the last (seed, fileIndex, hi) seen. Module-level scratch is safe here: every function
// of this module runs to completion (none awaits), so no other call can interleave.
let cachedSeed = -1;
let cachedFile = -1;
let cachedHi = -1;
let keyA = 0;
let keyB = 0;

/** Sets keyA and keyB for (seed, fileIndex, hi). */
function setKeys(seed: number, fileIndex: number, hi: number): void {
  if (seed === cachedSeed && fileIndex === cachedFile && hi === cachedHi) return;
  const k1 = fmix32(seed ^ SEED_SALT);
  const k2 = fmix32(((k1 ^ fileIndex) + FILE_SALT) | 0);
  keyA = fmix32(((k2 ^ hi) + HI_SALT) | 0);
  keyB = fmix32((keyA + KEY_B_SALT) | 0);
  cachedSeed = seed;
  cachedFile = fileIndex;
  cachedHi = hi;
}

/** Word `w` of the current keys' block (lo is w mod 2^32), as an int32. */
function wordAt(lo: number): number {
  return fmix32((fmix32(lo ^ keyA) + keyB) | 0);
}

/** One Int32Array over the whole of each output ArrayBuffer seen, so the aligned path need not make a view per call. */
const wordViews = new WeakMap<ArrayBufferLike, Int32Array>();
let lastBuffer: ArrayBufferLike | undefined;
let lastView: Int32Array | undefined;

/** An Int32Array over `buffer` from byte 0 that reaches at least word `endWord` (exclusive). */
function wordViewOf(buffer: ArrayBufferLike, endWord: number): Int32Array {
  if (buffer === lastBuffer && lastView !== undefined && lastView.length >= endWord) return lastView;
  let view = wordViews.get(buffer);
  // A resizable buffer may have grown (or shrunk) since the view was made: make a new one then.
  if (view === undefined || view.length < endWord) {
    view = new Int32Array(buffer, 0, Math.floor(buffer.byteLength / WORD_BYTES));
    wordViews.set(buffer, view);
  }
  lastBuffer = buffer;
  lastView = view;
  return view;
}

function checkUint32(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= TWO_POW_32) {
    throw new RangeError(`${what} must be an integer in [0, 2^32), not ${value}`);
  }
}

/**
 * Writes bytes [offsetBytes, offsetBytes + length) of synthetic file `fileIndex` of `seed` into
 * out[outOffset, outOffset + length). The content is defined in this module's header.
 *
 * Any offset and length work, aligned or not; offsetBytes + length must stay a safe integer (2^53 - 1:
 * far past 64 GiB). A zero length writes nothing. Whole words at a 4-byte-aligned output position
 * (a page frame, say) go through an Int32Array and allocate nothing; other bytes are written one by one.
 * Throws RangeError for a seed or fileIndex outside [0, 2^32), a negative or non-integer offset or
 * length, or a range outside `out`.
 */
export function syntheticFill(
  seed: number,
  fileIndex: number,
  offsetBytes: number,
  out: Buffer | Uint8Array,
  outOffset = 0,
  length: number = out.length - outOffset,
): void {
  checkUint32('seed', seed);
  checkUint32('fileIndex', fileIndex);
  if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || !Number.isSafeInteger(offsetBytes + length)) {
    throw new RangeError(`offsetBytes ${offsetBytes} (+ length ${length}) must be a non-negative safe integer`);
  }
  if (!Number.isInteger(outOffset) || !Number.isInteger(length) || outOffset < 0 || length < 0 || outOffset + length > out.length) {
    throw new RangeError(`out range [${outOffset}, ${outOffset + length}) lies outside the buffer of ${out.length} bytes`);
  }
  let pos = offsetBytes;
  let at = outOffset;
  const end = outOffset + length;

  // Head: bytes up to the first word boundary of the file (at most 3).
  while (at < end && pos % WORD_BYTES !== 0) {
    out[at++] = byteAt(seed, fileIndex, pos++);
  }

  // Middle: whole words, one 16 GiB block (one hi) at a time.
  while (end - at >= WORD_BYTES) {
    const w = pos / WORD_BYTES;
    const hi = Math.floor(w / TWO_POW_32);
    const lo = w - hi * TWO_POW_32;
    const countWords = Math.min(Math.floor((end - at) / WORD_BYTES), TWO_POW_32 - lo);
    setKeys(seed, fileIndex, hi);
    const absoluteByte = out.byteOffset + at;
    if (LITTLE_ENDIAN && absoluteByte % WORD_BYTES === 0) {
      const first = absoluteByte / WORD_BYTES;
      fillWords(wordViewOf(out.buffer, first + countWords), first, countWords, lo, keyA, keyB);
    } else {
      let x = lo | 0;
      for (let i = 0; i < countWords; i++) {
        const v = wordAt(x);
        const o = at + i * WORD_BYTES;
        out[o] = v & 0xff;
        out[o + 1] = (v >>> 8) & 0xff;
        out[o + 2] = (v >>> 16) & 0xff;
        out[o + 3] = v >>> 24;
        x = (x + 1) | 0;
      }
    }
    at += countWords * WORD_BYTES;
    pos += countWords * WORD_BYTES;
  }

  // Tail: the bytes of a last partial word.
  while (at < end) {
    out[at++] = byteAt(seed, fileIndex, pos++);
  }
}

/**
 * The hot loop: words lo, lo + 1, ... (count of them, none crossing a 16 GiB block) into
 * view[first, first + count). word() is written out with the keys as arguments: calling fmix32 on
 * the module's key variables measured about 1.3 times slower (5.0 against 3.8 us a page).
 */
function fillWords(view: Int32Array, first: number, count: number, lo: number, a: number, b: number): void {
  const last = first + count;
  let x = lo | 0;
  for (let i = first; i < last; i++) {
    let h = x ^ a;
    h ^= h >>> 16; h = Math.imul(h, M1); h ^= h >>> 13; h = Math.imul(h, M2); h ^= h >>> 16;
    h = (h + b) | 0;
    h ^= h >>> 16; h = Math.imul(h, M1); h ^= h >>> 13; h = Math.imul(h, M2); h ^= h >>> 16;
    view[i] = h;
    x = (x + 1) | 0;
  }
}

/** Byte `pos` of the file (any position; sets the keys). */
function byteAt(seed: number, fileIndex: number, pos: number): number {
  const w = Math.floor(pos / WORD_BYTES);
  const hi = Math.floor(w / TWO_POW_32);
  setKeys(seed, fileIndex, hi);
  const v = wordAt((w - hi * TWO_POW_32) | 0);
  return (v >>> ((pos - w * WORD_BYTES) * 8)) & 0xff;
}

/** Bytes compared per syntheticFill by syntheticMismatch. */
const CHECK_CHUNK_BYTES = 64 * 1024;
/** Expected bytes for syntheticMismatch; shared, which is safe as the function never awaits. */
let checkScratch: Buffer | undefined;

/**
 * The index in `data` of the first byte that differs from bytes [offsetBytes, offsetBytes +
 * data.length) of synthetic file `fileIndex` of `seed`, or -1 when every byte matches (and for
 * empty data). For tests and users checking what they read back. Throws as syntheticFill does.
 */
export function syntheticMismatch(seed: number, fileIndex: number, offsetBytes: number, data: Uint8Array): number {
  checkUint32('seed', seed);
  checkUint32('fileIndex', fileIndex);
  if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0) throw new RangeError(`offsetBytes must be a non-negative safe integer, not ${offsetBytes}`);
  checkScratch ??= Buffer.alloc(CHECK_CHUNK_BYTES);
  const expected = checkScratch;
  const actual = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  for (let done = 0; done < actual.length; done += CHECK_CHUNK_BYTES) {
    const n = Math.min(CHECK_CHUNK_BYTES, actual.length - done);
    syntheticFill(seed, fileIndex, offsetBytes + done, expected, 0, n);
    if (expected.compare(actual, done, done + n, 0, n) === 0) continue;
    for (let i = 0; i < n; i++) {
      if (expected[i] !== actual[done + i]) return done + i;
    }
  }
  return -1;
}
