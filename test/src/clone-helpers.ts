/**
 * Small helpers for resize/clones/statuses/vmo-basics tests (in addition to userpager.ts).
 */
import { expect } from 'vitest';
import {
  ChildOptions, PAGE_SIZE, ZxError, statusName,
  type VmObject, type VmObjectPaged, type ZxStatus,
} from '../../src/index.js';
import type { TestPager } from './userpager.js';

export const P = PAGE_SIZE;

function describeErr(err: unknown): string {
  if (err instanceof ZxError) return statusName(err.status);
  return err === undefined ? 'no error' : String(err);
}

/** Asserts fn throws a ZxError with exactly `status`. */
export function expectZx(fn: () => unknown, status: ZxStatus): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(describeErr(err), `expected ${statusName(status)}`).toBe(statusName(status));
}

/** Asserts the promise rejects with a ZxError with exactly `status`. */
export async function expectZxRejects(p: Promise<unknown>, status: ZxStatus): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(describeErr(err), `expected ${statusName(status)}`).toBe(statusName(status));
}

/** Reads now, asserting that nothing had to wait for the pager. */
export function readSync(vmo: VmObject, offsetBytes: number, lengthBytes: number): Uint8Array {
  const buf = new Uint8Array(lengthBytes);
  const n = vmo.readStep(buf, 0, offsetBytes, lengthBytes);
  expect(n, `read of [${offsetBytes}, +${lengthBytes}) had to wait for the pager`).toBe(lengthBytes);
  return buf;
}

/** True when every byte of buf is `byte`. */
export function isFilled(buf: Uint8Array, byte: number): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== byte) return false;
  return true;
}

export function filled(bytes: number, byte: number): Uint8Array {
  return new Uint8Array(bytes).fill(byte);
}

/** The modified flag, reset as it is read (Fuchsia's VerifyModified). */
export function modified(tp: TestPager, vmo: VmObject): boolean {
  return tp.pager.queryVmoStats(vmo, true).modified;
}

/** A SNAPSHOT_AT_LEAST_ON_WRITE child in pages. */
export function cow(vmo: VmObject, offsetPages: number, sizePages: number, resizable = false): VmObjectPaged {
  const opts = ChildOptions.SNAPSHOT_AT_LEAST_ON_WRITE | (resizable ? ChildOptions.RESIZABLE : 0);
  return vmo.createChild(opts, offsetPages * P, sizePages * P) as VmObjectPaged;
}

/** Supplies [page, page + count) of `vmo` as zero pages (an uncommitted aux VMO). */
export function supplyZero(tp: TestPager, vmo: VmObject, page: number, count: number): number {
  const aux = tp.system.createVmo(count * P);
  const n = tp.pager.supplyPages(vmo, page * P, count * P, aux, 0);
  aux.close();
  return n;
}
