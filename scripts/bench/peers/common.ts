/**
 * What the fs suite's Node peers share: loading fuse-native, the mount options (mirroring pagerfs's:
 * use_ino, default_permissions, fsname/subtype, and direct_io — or big_writes in kernel-cache mode,
 * as `pagerfs --kernel-cache`), and the lifecycle of a peer process.
 *
 * A peer runs as its own process (never inside the bench's event loop): `node <peer>.js <source>
 * <mountpoint> [--kernel-cache]`. It mounts, prints `ready` on stdout, serves until SIGTERM/SIGINT,
 * then unmounts and exits 0.
 */
import { createRequire } from 'node:module';

type FuseClass = typeof import('fuse-native');

/** The peer's command line, parsed. */
export interface PeerArgs {
  source: string;
  mountpoint: string;
  /** No direct_io: the kernel page cache sits in front (big_writes, as pagerfs --kernel-cache). */
  kernelCache: boolean;
}

export function parsePeerArgs(name: string): PeerArgs {
  const args = process.argv.slice(2);
  const kernelCache = args.includes('--kernel-cache');
  const pos = args.filter((a) => !a.startsWith('--'));
  if (pos.length !== 2) {
    process.stderr.write(`usage: node ${name}.js <source> <mountpoint> [--kernel-cache]\n`);
    process.exit(2);
  }
  return { source: pos[0], mountpoint: pos[1], kernelCache };
}

/** Mounts `ops` on the mountpoint with pagerfs's options; prints `ready`; unmounts on a signal. */
export function servePeer(name: string, args: PeerArgs, ops: Record<string, unknown>): void {
  const Fuse = createRequire(import.meta.url)('fuse-native') as FuseClass;
  const extra = ['use_ino', 'default_permissions', `fsname=${name}`, `subtype=${name}`, ...(args.kernelCache ? ['big_writes'] : ['direct_io'])];
  class PeerFuse extends Fuse {
    override _fuseOptions(): string {
      const base = super._fuseOptions();
      return base === '' ? `-o${extra.join(',')}` : `${base},${extra.join(',')}`;
    }
  }
  const fuse = new PeerFuse(args.mountpoint, ops, { force: false, mkdir: false, timeout: false });
  fuse.mount((err) => {
    if (err) {
      process.stderr.write(`${name}: mount failed: ${err.message}\n`);
      process.exit(4);
    }
    process.stdout.write('ready\n');
  });
  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    fuse.unmount(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** The stat object fuse-native wants, from a Node Stats (or the same shape). */
export interface StatLike {
  mode: number; uid: number; gid: number; size: number; dev: number; nlink: number; ino: number; rdev: number;
  blksize: number; blocks: number; atime: Date; mtime: Date; ctime: Date;
}

export function toFuseStat(st: StatLike): StatLike {
  return {
    mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, dev: st.dev, nlink: st.nlink, ino: st.ino, rdev: st.rdev,
    blksize: st.blksize, blocks: st.blocks, atime: st.atime, mtime: st.mtime, ctime: st.ctime,
  };
}
