/**
 * The FUSE threads' spin-wait (binding level 16, native/README.md): a FUSE thread that has handed
 * an operation to the JS thread spins up to this long for the answer before sleeping, so that a
 * fast answer does not pay for waking the thread. Process-wide, as the binding's setting and its
 * counters are: the daemon serves one mount.
 */
export interface SpinWaitBinding {
  setSpinWait?: (ns: number) => void;
  spinStats?: () => { hits: number; misses: number };
}

export interface SpinWaitStats {
  /** The spin-wait in nanoseconds (0: FUSE threads sleep at once), or -1 without the patched binding. */
  spinWaitNs: number;
  /** Answers a spinning FUSE thread caught, and spins that ran out and slept. */
  hits: number;
  misses: number;
}

let binding: SpinWaitBinding | null = null;
let spinWaitNs = -1;

/** Sets the spin-wait (a whole number of ns below 2^32), when the binding has it. */
export function setSpinWait(fuse: SpinWaitBinding, ns: number): void {
  if (fuse.setSpinWait === undefined || fuse.spinStats === undefined) return;
  fuse.setSpinWait(ns);
  binding = fuse;
  spinWaitNs = ns;
}

export function spinWaitStats(): SpinWaitStats {
  const s = binding?.spinStats?.() ?? { hits: 0, misses: 0 };
  return { spinWaitNs, hits: s.hits, misses: s.misses };
}
