/**
 * Fast reads (binding level 17, native/README.md): reads of resident pages answered on libfuse's
 * threads, in C, without a trip to the JS thread. The filesystem registers each open handle of a
 * file with the file's read mapping (src/read-mapping.ts) and tells the binding where the page
 * arena's chunks live; the binding copies the frames under the mapping's seqlock and hands
 * anything else (a page not resident, a read starting at the end, a blocked file, a read reaching the
 * readahead marker, a race with a change) to PagerFilesystem.read as before.
 *
 * What fast reads do not count: the JS read path's own counters never see them (noteRead is told
 * only of reads that reach the readahead marker, which is all it acts on); the stats count them
 * as fastReads / fastReadBytes, and their pages' accessed marks reach the evictor through the
 * mapping.
 */

/** The part of a mounted fuse-native (patched, level 17) that fast reads use. */
export interface FastReadBinding {
  fastReadRegister(fh: number, header: Int32Array, entries: Int32Array, accessed: Uint8Array, accessedGroups: Uint8Array): void;
  fastReadUnregister(fh: number): void;
  fastReadAddChunk(index: number, chunk: Buffer): void;
  fastReadStats(): { reads: number; bytes: number; fallbacks: number };
}

export interface FastReadStats {
  /** Fast reads are on for this mount (off: `--no-fast-read`, or a binding without them). */
  enabled: boolean;
  /** Reads answered on the FUSE threads, and their bytes. */
  reads: number;
  bytes: number;
  /** Reads of registered handles handed to the JS thread (not resident, at the end, racing a change, ...). */
  fallbacks: number;
}

export const NO_FAST_READS: FastReadStats = { enabled: false, reads: 0, bytes: 0, fallbacks: 0 };

/** Does this mounted fuse-native instance offer fast reads? */
export function hasFastReads(fuse: object): fuse is FastReadBinding {
  const f = fuse as Partial<FastReadBinding>;
  return typeof f.fastReadRegister === 'function' && typeof f.fastReadUnregister === 'function' &&
    typeof f.fastReadAddChunk === 'function' && typeof f.fastReadStats === 'function';
}
