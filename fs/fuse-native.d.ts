/** The small part of fuse-native 2.2.6 that pagerfs uses (the package ships no types). */
declare module 'fuse-native' {
  interface FuseOptions {
    force?: boolean;
    mkdir?: boolean;
    timeout?: number | false;
    allowOther?: boolean;
    debug?: boolean;
    displayFolder?: boolean;
    /**
     * Patched binding (levels 5 and 7): the backing directory. getxattr is answered on the FUSE
     * thread by lgetxattr(root + path), except names starting with skipXattrPrefix and paths under
     * /skipTopName (those reach the op). getattr of a name whose inode is not served (servedInode)
     * and is not under a hidden top-level name is answered there too; other getattr, open and
     * readdir ops get the backing lstat or entries as an extra argument.
     */
    backingPassthrough?: { root: string; skipTopName: string; skipXattrPrefix: string; hiddenNames?: readonly string[] };
  }
  class Fuse {
    constructor(mnt: string, ops: Record<string, unknown>, opts?: FuseOptions);
    readonly mnt: string;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    _fuseOptions(): string;
    /**
     * Patched binding (level 17), after mount(): reads of handle fh whose pages the read mapping
     * (header, entries, accessed, accessedGroups: src/read-mapping.ts) shows resident are answered on the FUSE
     * thread; unregister returns once no such read uses the arrays; chunks are the arena's.
     */
    fastReadRegister?(fh: number, header: Int32Array, entries: Int32Array, accessed: Uint8Array, accessedGroups: Uint8Array): void;
    fastReadUnregister?(fh: number): void;
    fastReadAddChunk?(index: number, chunk: Buffer): void;
    /** Patched binding (level 17): reads answered on the FUSE threads, their bytes, and reads of registered handles sent to ops.read. */
    fastReadStats?(): { reads: number; bytes: number; fallbacks: number };
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    /** The patched binding's (level 4) preadv2(RWF_NOWAIT): bytes read, or -errno (-EAGAIN: not cached). */
    static preadCached?: (fd: number, buffers: Buffer[], position: number) => number;
    /** Patched binding (level 7): the filesystem serves inode (dev, ino) itself (delta 1) or no longer (-1). */
    static servedInode?: (dev: number, ino: number, delta: 1 | -1) => void;
    /** Patched binding (level 8): anonymous memory of its own, 2 MiB aligned, advised for huge pages when `huge`. */
    static frameMemory?: (bytes: number, huge: boolean) => { memory: Buffer; hugePages: boolean };
    /** Patched binding (level 14): _exit(2) with code (no atexit handlers, no stdio flush). */
    static exitNow?: (code: number) => never;
    /** Patched binding (level 16): how long a FUSE thread spins for the JS thread's answer, ns (0: never). */
    static setSpinWait?: (ns: number) => void;
    /** Patched binding (level 16): answers caught while spinning, and spins that slept, since load. */
    static spinStats?: () => { hits: number; misses: number };
    /** Patched binding (level 10): fallocate(2) on a file descriptor, on libuv's pool; cb(null) or a Node-style error. */
    static fallocate?: (fd: number, mode: number, offset: number, length: number, cb: (err: Error | null) => void) => void;
    /** The patched binding's (level 6) SHA-256 page check on libuv's pool: cb(0, bad page indices) or cb(-errno). */
    static sha256BadPages?: (views: Buffer[], leaves: Buffer, pages: number, cb: (res: number, bad?: number[]) => void) => void;
  }
  export = Fuse;
}
