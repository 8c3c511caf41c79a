/**
 * Helpers for supply-fail.test.ts and batching.test.ts (on top of userpager.ts, which stays as is).
 */
import { afterEach, expect } from 'vitest';
import {
  PAGE_SIZE, isZxError, type VmObject, type VmObjectPaged, type ZxStatus,
} from '../../src/index.js';
import { Blocked, TestPager, isPattern, keyOf, patternPage, type TestPagerOptions } from './userpager.js';

/**
 * Returns a TestPager factory for this file; every pager made through it is closed after each test,
 * so waiters a test leaves blocked fail (BAD_STATE, caught by their Blocked) and drop their timers.
 */
export function usePagers(): (options?: TestPagerOptions) => TestPager {
  const made: TestPager[] = [];
  afterEach(() => {
    for (const t of made.splice(0)) t.pager.close();
  });
  return (options = {}) => {
    const t = new TestPager(options);
    made.push(t);
    return t;
  };
}

/** An anonymous VMO of `pages` pages; page i filled with fills[i] (undefined = left uncommitted). */
export function auxFilled(t: TestPager, pages: number, fills: Array<number | undefined>): VmObjectPaged {
  const aux = t.system.createVmo(pages * PAGE_SIZE);
  fills.forEach((fill, i) => {
    if (fill === undefined) return;
    const n = aux.writeStep(new Uint8Array(PAGE_SIZE).fill(fill), 0, i * PAGE_SIZE, PAGE_SIZE);
    expect(n).toBe(PAGE_SIZE);
  });
  return aux;
}

/** An anonymous VMO whose pages [auxPage, auxPage + count) hold the pattern of `vmo`'s pages [page, +count). */
export function auxWithPattern(t: TestPager, vmo: VmObject, auxPages: number, auxPage: number, page: number, count: number): VmObjectPaged {
  const aux = t.system.createVmo(auxPages * PAGE_SIZE);
  for (let i = 0; i < count; i++) {
    const n = aux.writeStep(patternPage(keyOf(vmo), page + i), 0, (auxPage + i) * PAGE_SIZE, PAGE_SIZE);
    expect(n).toBe(PAGE_SIZE);
  }
  return aux;
}

/** Supplies pages [page, page + count) of `vmo`, each filled with the byte `fill`; returns pages added. */
export function supplyFill(t: TestPager, vmo: VmObject, page: number, count: number, fill: number): number {
  const aux = auxFilled(t, count, new Array<number>(count).fill(fill));
  const added = t.pager.supplyPages(vmo, page * PAGE_SIZE, count * PAGE_SIZE, aux, 0);
  aux.close();
  return added;
}

/**
 * Reads pages [page, page + count) without waiting; the read must complete now (every page resident
 * or zero), else the assertion fails (and the probe may have raised a request: read only what must be there).
 */
export function readNow(vmo: VmObject, page: number, count: number): Uint8Array {
  const buf = new Uint8Array(count * PAGE_SIZE);
  const n = vmo.readStep(buf, 0, page * PAGE_SIZE, count * PAGE_SIZE);
  expect(n, `readNow(${page}, ${count}) stopped at byte ${n}`).toBe(count * PAGE_SIZE);
  return buf;
}

export function isFill(buf: Uint8Array, byte: number): boolean {
  return buf.every((b) => b === byte);
}

/** Asserts pages [page, page + count) of `vmo` now read as its pattern (no fault). */
export function expectPatternNow(vmo: VmObject, page: number, count: number): void {
  expect(isPattern(readNow(vmo, page, count), keyOf(vmo), page), `pattern of pages [${page}, +${count})`).toBe(true);
}

/** Asserts fn throws a ZxError with `status` synchronously. */
export function expectZx(fn: () => unknown, status: ZxStatus): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected a ZxError, nothing was thrown').toBeDefined();
  expect(isZxError(thrown, status), `expected status ${status}, got ${String(thrown)}`).toBe(true);
}

/** A read of pages [page, page + count) into `buf` (caller-owned, so progress is visible while blocked). */
export function readInto(vmo: VmObject, buf: Uint8Array, page: number): Blocked<Uint8Array> {
  return new Blocked(vmo.read(buf, page * PAGE_SIZE).then(() => buf));
}

/** Number of whole leading pages of `buf` (starting at `firstPage`) that hold the VMO's pattern. */
export function patternPagesPrefix(buf: Uint8Array, vmo: VmObject, firstPage: number): number {
  const pages = buf.length / PAGE_SIZE;
  for (let i = 0; i < pages; i++) {
    if (!isPattern(buf.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), keyOf(vmo), firstPage + i)) return i;
  }
  return pages;
}
