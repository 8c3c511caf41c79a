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
     * Patched binding (level 5): the backing directory. getxattr is answered on the FUSE thread by
     * lgetxattr(root + path), except names starting with skipXattrPrefix and paths under
     * /skipTopName (those reach the op); getattr ops get the lstat of root + path as a third argument.
     */
backingPassthrough?: { root: string; skipTopName: string; skipXattrPrefix: string };
  }
  class Fuse {
    constructor(mnt: string, ops: Record<string, unknown>, opts?: FuseOptions);
    readonly mnt: string;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    _fuseOptions(): string;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    /** The patched binding's (level 4) preadv2(RWF_NOWAIT): bytes read, or -errno (-EAGAIN: not cached). */
    static preadCached?: (fd: number, buffers: Buffer[], position: number) => number;
    /** The patched binding's (level 6) SHA-256 page check on libuv's pool: cb(0, bad page indices) or cb(-errno). */
    static sha256BadPages?: (views: Buffer[], leaves: Buffer, pages: number, cb: (res: number, bad?: number[]) => void) => void;
  }
  export = Fuse;
}
