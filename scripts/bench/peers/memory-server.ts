/**
 * The Node ceiling of the fs suite: a fuse-native server answering from memory. At start it loads
 * the whole source tree into memory (1 MiB chunks per file; untimed, before `ready`), then serves
 * reads by copying from those chunks into the kernel's buffer — no disk, no pager, the least work a
 * fuse-native read can do. Writes, creates, truncates and unlinks change only the memory copy.
 *
 * Usage: node memory-server.js <source> <mountpoint> [--kernel-cache]   (see peers/common.ts)
 */
import fs from 'node:fs';
import path from 'node:path';
import { parsePeerArgs, servePeer, type StatLike } from './common.js';

type Cb = (err: number, value?: unknown) => void;

const CHUNK = 1024 * 1024;
const ENOENT = -2;
const EEXIST = -17;
const ENOTDIR = -20;
const EISDIR = -21;
const EBADF = -9;
const ENOTEMPTY = -39;

interface Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  atime: Date;
  mtime: Date;
  ctime: Date;
  size: number;
  /** Files: chunk i holds bytes [i × CHUNK, i × CHUNK + chunk.length); only the last may be short. */
  chunks: Buffer[];
  /** Directories: entry names. */
  names: Set<string> | null;
}

const args = parsePeerArgs('memory-server');
const nodes = new Map<string, Inode>();
const handles = new Map<number, Inode>();
let nextIno = 1;
let nextFd = 1;

function makeInode(st: { mode: number; uid: number; gid: number; atime: Date; mtime: Date; ctime: Date }, dir: boolean): Inode {
  return { ino: nextIno++, mode: st.mode, uid: st.uid, gid: st.gid, atime: st.atime, mtime: st.mtime, ctime: st.ctime, size: 0, chunks: [],
    names: dir ? new Set() : null };
}

/** Loads `rel` (a path under the source, '/' for its root) and everything below it. */
function load(rel: string): void {
  const abs = path.join(args.source, rel);
  const st = fs.lstatSync(abs);
  const node = makeInode(st, st.isDirectory());
  nodes.set(rel, node);
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(abs)) {
      node.names!.add(name);
      load(rel === '/' ? `/${name}` : `${rel}/${name}`);
    }
  } else if (st.isFile()) {
    const fd = fs.openSync(abs, 'r');
    try {
      for (let off = 0; off < st.size; off += CHUNK) {
        const chunk = Buffer.allocUnsafe(Math.min(CHUNK, st.size - off));
        let got = 0;
        while (got < chunk.length) {
          const n = fs.readSync(fd, chunk, got, chunk.length - got, off + got);
          if (n === 0) throw new Error(`${abs} shrank while loading`);
          got += n;
        }
        node.chunks.push(chunk);
      }
      node.size = st.size;
    } finally {
      fs.closeSync(fd);
    }
  }
}

function statOf(n: Inode): StatLike {
  return { mode: n.mode, uid: n.uid, gid: n.gid, size: n.size, dev: 0, nlink: n.names !== null ? 2 : 1, ino: n.ino, rdev: 0,
    blksize: 4096, blocks: Math.ceil(n.size / 512), atime: n.atime, mtime: n.mtime, ctime: n.ctime };
}

function parentOf(p: string): Inode | undefined {
  return nodes.get(path.posix.dirname(p));
}

/** Makes the file `size` bytes long (new bytes are zero). */
function resize(n: Inode, size: number): void {
  const need = Math.ceil(size / CHUNK);
  if (n.chunks.length > need) n.chunks.length = need;
  for (let i = 0; i < need; i++) {
    const want = Math.min(CHUNK, size - i * CHUNK);
    const have = n.chunks[i];
    if (have === undefined) {
      n.chunks[i] = Buffer.alloc(want);
    } else if (have.length !== want) {
      const next = Buffer.alloc(want);
      have.copy(next, 0, 0, Math.min(want, have.length));
      n.chunks[i] = next;
    }
  }
  n.size = size;
}

function copyOut(n: Inode, buf: Buffer, len: number, pos: number): number {
  const end = Math.min(n.size, pos + len);
  let off = pos;
  while (off < end) {
    const chunk = n.chunks[Math.floor(off / CHUNK)];
    const inChunk = off % CHUNK;
    const k = Math.min(end - off, chunk.length - inChunk);
    chunk.copy(buf, off - pos, inChunk, inChunk + k);
    off += k;
  }
  return Math.max(0, end - pos);
}

function copyIn(n: Inode, buf: Buffer, len: number, pos: number): number {
  if (pos + len > n.size) resize(n, pos + len);
  let off = pos;
  while (off < pos + len) {
    const chunk = n.chunks[Math.floor(off / CHUNK)];
    const inChunk = off % CHUNK;
    const k = Math.min(pos + len - off, chunk.length - inChunk);
    buf.copy(chunk, inChunk, off - pos, off - pos + k);
    off += k;
  }
  n.mtime = new Date();
  return len;
}

function openHandle(n: Inode): number {
  const fd = nextFd++;
  handles.set(fd, n);
  return fd;
}

const ops: Record<string, unknown> = {
  init: (cb: Cb) => cb(0),
  getattr: (p: string, cb: Cb) => {
    const n = nodes.get(p);
    return n === undefined ? cb(ENOENT) : cb(0, statOf(n));
  },
  fgetattr: (_p: string, fd: number, cb: Cb) => {
    const n = handles.get(fd);
    return n === undefined ? cb(EBADF) : cb(0, statOf(n));
  },
  readdir: (p: string, cb: Cb) => {
    const n = nodes.get(p);
    if (n === undefined) return cb(ENOENT);
    if (n.names === null) return cb(ENOTDIR);
    return cb(0, [...n.names]);
  },
  open: (p: string, flags: number, cb: Cb) => {
    const n = nodes.get(p);
    if (n === undefined) return cb(ENOENT);
    if (n.names !== null) return cb(EISDIR);
    if ((flags & fs.constants.O_TRUNC) !== 0) resize(n, 0);
    return cb(0, openHandle(n));
  },
  create: (p: string, mode: number, cb: Cb) => {
    const parent = parentOf(p);
    if (parent?.names == null) return cb(ENOENT);
    let n = nodes.get(p);
    if (n === undefined) {
      const now = new Date();
      n = makeInode({ mode: fs.constants.S_IFREG | (mode & 0o7777), uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, atime: now, mtime: now, ctime: now }, false);
      nodes.set(p, n);
      parent.names.add(path.posix.basename(p));
    } else {
      resize(n, 0);
    }
    return cb(0, openHandle(n));
  },
  read: (_p: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
    const n = handles.get(fd);
    return cb(n === undefined ? EBADF : copyOut(n, buf, len, pos));
  },
  write: (_p: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
    const n = handles.get(fd);
    return cb(n === undefined ? EBADF : copyIn(n, buf, len, pos));
  },
  flush: (_p: string, _fd: number, cb: Cb) => cb(0),
  fsync: (_p: string, _datasync: boolean, _fd: number, cb: Cb) => cb(0),
  release: (_p: string, fd: number, cb: Cb) => {
    handles.delete(fd);
    cb(0);
  },
  truncate: (p: string, size: number, cb: Cb) => {
    const n = nodes.get(p);
    if (n === undefined) return cb(ENOENT);
    resize(n, size);
    return cb(0);
  },
  ftruncate: (_p: string, fd: number, size: number, cb: Cb) => {
    const n = handles.get(fd);
    if (n === undefined) return cb(EBADF);
    resize(n, size);
    return cb(0);
  },
  unlink: (p: string, cb: Cb) => {
    const n = nodes.get(p);
    if (n === undefined) return cb(ENOENT);
    if (n.names !== null) return cb(EISDIR);
    nodes.delete(p);
    parentOf(p)?.names?.delete(path.posix.basename(p));
    return cb(0);
  },
  mkdir: (p: string, mode: number, cb: Cb) => {
    const parent = parentOf(p);
    if (parent?.names == null) return cb(ENOENT);
    if (nodes.has(p)) return cb(EEXIST);
    const now = new Date();
    nodes.set(p, makeInode({ mode: fs.constants.S_IFDIR | (mode & 0o7777), uid: 0, gid: 0, atime: now, mtime: now, ctime: now }, true));
    parent.names.add(path.posix.basename(p));
    return cb(0);
  },
  rmdir: (p: string, cb: Cb) => {
    const n = nodes.get(p);
    if (n === undefined) return cb(ENOENT);
    if (n.names === null) return cb(ENOTDIR);
    if (n.names.size > 0) return cb(ENOTEMPTY);
    nodes.delete(p);
    parentOf(p)?.names?.delete(path.posix.basename(p));
    return cb(0);
  },
  utimens: (_p: string, _atime: unknown, _mtime: unknown, cb: Cb) => cb(0),
  chmod: (_p: string, _mode: number, cb: Cb) => cb(0),
  statfs: (_p: string, cb: Cb) => cb(0, {
    bsize: 4096, frsize: 4096, blocks: 1 << 24, bfree: 1 << 23, bavail: 1 << 23, files: 1 << 20, ffree: 1 << 19, favail: 1 << 19,
    fsid: 0, flag: 0, namemax: 255,
  }),
};

load('/');
servePeer('memory-server', args, ops);
