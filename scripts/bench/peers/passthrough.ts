/**
 * The Node peer of the fs suite: a minimal fuse-native passthrough. Every operation maps to one
 * Node fs call on the source directory (callback API, no extra copies: reads and writes go straight
 * between the kernel's buffer and the backing fd). Errors go back as Node's negative errno.
 *
 * Usage: node passthrough.js <source> <mountpoint> [--kernel-cache]   (see peers/common.ts)
 */
import fs from 'node:fs';
import path from 'node:path';
import { parsePeerArgs, servePeer, toFuseStat } from './common.js';

type Cb = (err: number, value?: unknown) => void;
type NodeErr = NodeJS.ErrnoException | null;

const args = parsePeerArgs('passthrough');
const root = path.resolve(args.source);
const full = (p: string): string => path.join(root, p);
const done = (cb: Cb) => (err: NodeErr): void => cb(err ? err.errno ?? -5 : 0);

const ops: Record<string, unknown> = {
  init: (cb: Cb) => cb(0),
  getattr: (p: string, cb: Cb) => fs.lstat(full(p), (err, st) => (err ? cb(err.errno ?? -5) : cb(0, toFuseStat(st)))),
  fgetattr: (_p: string, fd: number, cb: Cb) => fs.fstat(fd, (err, st) => (err ? cb(err.errno ?? -5) : cb(0, toFuseStat(st)))),
  readdir: (p: string, cb: Cb) => fs.readdir(full(p), (err, names) => (err ? cb(err.errno ?? -5) : cb(0, names))),
  open: (p: string, flags: number, cb: Cb) => fs.open(full(p), flags, (err, fd) => (err ? cb(err.errno ?? -5) : cb(0, fd))),
  create: (p: string, mode: number, cb: Cb) => fs.open(full(p), fs.constants.O_CREAT | fs.constants.O_RDWR | fs.constants.O_TRUNC, mode,
    (err, fd) => (err ? cb(err.errno ?? -5) : cb(0, fd))),
  read: (_p: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) =>
    fs.read(fd, buf, 0, len, pos, (err, n) => cb(err ? err.errno ?? -5 : n)),
  write: (_p: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) =>
    fs.write(fd, buf, 0, len, pos, (err, n) => cb(err ? err.errno ?? -5 : n)),
  flush: (_p: string, _fd: number, cb: Cb) => cb(0),
  fsync: (_p: string, datasync: boolean, fd: number, cb: Cb) => (datasync ? fs.fdatasync(fd, done(cb)) : fs.fsync(fd, done(cb))),
  release: (_p: string, fd: number, cb: Cb) => fs.close(fd, done(cb)),
  truncate: (p: string, size: number, cb: Cb) => fs.truncate(full(p), size, done(cb)),
  ftruncate: (_p: string, fd: number, size: number, cb: Cb) => fs.ftruncate(fd, size, done(cb)),
  unlink: (p: string, cb: Cb) => fs.unlink(full(p), done(cb)),
  rename: (src: string, dest: string, cb: Cb) => fs.rename(full(src), full(dest), done(cb)),
  mkdir: (p: string, mode: number, cb: Cb) => fs.mkdir(full(p), { mode }, done(cb)),
  rmdir: (p: string, cb: Cb) => fs.rmdir(full(p), done(cb)),
  chmod: (p: string, mode: number, cb: Cb) => fs.chmod(full(p), mode, done(cb)),
  utimens: (p: string, atime: unknown, mtime: unknown, cb: Cb) => {
    const t = (v: unknown): Date => (v instanceof Date ? v : typeof v === 'number' ? new Date(v) : new Date());
    fs.utimes(full(p), t(atime), t(mtime), done(cb));
  },
  statfs: (p: string, cb: Cb) => fs.statfs(full(p), (err, s) => (err ? cb(err.errno ?? -5) : cb(0, {
    bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.ffree,
    fsid: 0, flag: 0, namemax: 255,
  }))),
};

servePeer('passthrough', args, ops);
