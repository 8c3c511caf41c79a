/** Page geometry. Every page-granular quantity in src/ is derived from these two. */
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

/**
 * The largest VMO, in pages. Page indices are stored in a Uint32Array per frame, so a VMO holds
 * fewer than 2^32 pages (16 TiB), far past any budget or disk this models.
 */
export const MAX_VMO_PAGES = 0xffff_ffff;
export const MAX_VMO_SIZE_BYTES = MAX_VMO_PAGES * PAGE_SIZE;

/** A VMO's name holds at most this many UTF-8 bytes (Zircon: ZX_MAX_NAME_LEN 32 with its NUL). */
export const MAX_NAME_BYTES = 31;

export function isPageAligned(bytes: number): boolean {
  return bytes % PAGE_SIZE === 0;
}

/** Rounds a byte count up to whole pages, returning pages. */
export function pagesCeil(bytes: number): number {
  return Math.ceil(bytes / PAGE_SIZE);
}

/** Page index holding byte `bytes`. */
export function pageOf(bytes: number): number {
  return Math.floor(bytes / PAGE_SIZE);
}

export function roundUpToPage(bytes: number): number {
  return pagesCeil(bytes) * PAGE_SIZE;
}

export function roundDownToPage(bytes: number): number {
  return pageOf(bytes) * PAGE_SIZE;
}
