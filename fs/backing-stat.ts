/**
 * What the patched binding reads of the backing directory on its own FUSE thread before it wakes
 * the JS thread (native/README.md, level 5): the lstat of a getattr, the entries of a readdir. It
 * saves each lookup a trip to libuv's pool, and each readdir an lstat per entry.
 */
import { constants as fsc } from 'node:fs';
import type { FileStat } from '../pager/index.js';

/** What fuse-native hands a getattr op as its third argument (undefined: no lstat was done). */
export type BindingLstat =
  | { errno: 0; dev: number; ino: number; mode: number; nlink: number; uid: number; gid: number; rdev: number;
      size: number; blksize: number; blocks: number; atimeSec: number; atimeNsec: number; mtimeSec: number;
      mtimeNsec: number; ctimeSec: number; ctimeNsec: number }
  | { errno: number };

/** Dates as Node's Stats makes them (milliseconds, rounded), so both paths show the same times. */
function dateOf(sec: number, nsec: number): Date {
  return new Date(Math.round(sec * 1e3 + nsec / 1e6));
}

/**
 * A FileStat that also carries the lstat's times exactly (ns since the epoch), which the mount
 * shows: its Dates are milliseconds, rounded, and .9996 s became the next second. And st_blocks,
 * which the mount shows too (du, cp's sparse heuristic).
 */
export type ExactFileStat = FileStat & { atimeNs: bigint; mtimeNs: bigint; ctimeNs: bigint; blocks: number };

/** sec and nsec as the binding hands them (doubles, exact: |sec| < 2^53, nsec < 1e9) → ns. */
function nsOf(sec: number, nsec: number): bigint {
  return BigInt(sec) * 1_000_000_000n + BigInt(nsec);
}

/** A FileStat over the binding's numbers. */
export function fileStatOf(b: Extract<BindingLstat, { errno: 0 }>): ExactFileStat {
  const mode = b.mode;
  return {
    atimeNs: nsOf(b.atimeSec, b.atimeNsec), mtimeNs: nsOf(b.mtimeSec, b.mtimeNsec), ctimeNs: nsOf(b.ctimeSec, b.ctimeNsec), blocks: b.blocks,
    mode, uid: b.uid, gid: b.gid, size: b.size, dev: b.dev, ino: b.ino, nlink: b.nlink, rdev: b.rdev,
    atime: dateOf(b.atimeSec, b.atimeNsec), mtime: dateOf(b.mtimeSec, b.mtimeNsec), ctime: dateOf(b.ctimeSec, b.ctimeNsec),
    // As Node computes Stats.mtimeMs (sec * 1e3 + nsec / 1e6): the same double for the same time.
    mtimeMs: b.mtimeSec * 1e3 + b.mtimeNsec / 1e6, ctimeMs: b.ctimeSec * 1e3 + b.ctimeNsec / 1e6,
    isFile: () => (mode & fsc.S_IFMT) === fsc.S_IFREG,
    isDirectory: () => (mode & fsc.S_IFMT) === fsc.S_IFDIR,
  };
}

/** What fuse-native hands a readdir op as its third argument (undefined: the directory was not read). */
export type BindingDir =
  | { errno: 0; names: string[]; inos: Float64Array; types: Uint8Array }
  | { errno: number };

/** d_type → the S_IFMT bits of a mode (DTTOIF); DT_UNKNOWN (0) gives 0. */
export function modeOfDirentType(type: number): number {
  return type << 12;
}
