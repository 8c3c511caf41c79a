/**
 * Every FUSE operation pagerfs implements, through a real mount, compared with the backing directory:
 * getattr, readdir, open, create, read, write, flush, fsync, release, truncate/ftruncate, unlink,
 * rename, mkdir, rmdir, symlink, readlink, link, chmod, chown, utimens, statfs, access.
 */
import { constants as fsc, promises as fsp, type Stats as FsStats } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PAGE, codeOf, python, randomData, run, startMount, tempDir, useMountHooks, waitFor, type Mount } from './harness.js';

useMountHooks();

let m: Mount;

beforeAll(async () => {
  // A long writeback delay: data reaches the backing file only through flush, fsync or unmount.
  m = await startMount({ budget: '4MiB', args: ['--writeback-delay', '60s'] });
});

/** Makes a fresh directory (in the backing directory) for one test and returns its name. */
let seq = 0;
async function scratch(files: Record<string, Uint8Array | string> = {}): Promise<string> {
  const dir = `t${++seq}`;
  await fsp.mkdir(m.b(dir));
  for (const [rel, data] of Object.entries(files)) {
    await fsp.mkdir(path.dirname(m.b(`${dir}/${rel}`)), { recursive: true });
    await fsp.writeFile(m.b(`${dir}/${rel}`), data);
  }
  return dir;
}

function sameAttrs(viaMount: FsStats, backing: FsStats): void {
  expect({
    mode: viaMount.mode, uid: viaMount.uid, gid: viaMount.gid, size: viaMount.size, nlink: viaMount.nlink, ino: viaMount.ino,
  }).toEqual({
    mode: backing.mode, uid: backing.uid, gid: backing.gid, size: backing.size, nlink: backing.nlink, ino: backing.ino,
  });
  // The patched binding carries times in nanoseconds: Node derives the same mtimeMs from both.
  expect(viaMount.mtimeMs).toBe(backing.mtimeMs);
}

describe('getattr', () => {
  it('reports the backing file, directory and symlink attributes (mode, owner, size, nlink, inode, mtime)', async () => {
    const d = await scratch({ 'f.bin': randomData(3 * PAGE + 5), 'sub/g.txt': 'g' });
    await fsp.chmod(m.b(`${d}/f.bin`), 0o600);
    await fsp.chown(m.b(`${d}/sub/g.txt`), 1234, 4321);
    await fsp.symlink('f.bin', m.b(`${d}/link`));
    for (const rel of ['f.bin', 'sub', 'sub/g.txt', 'link']) {
      sameAttrs(await fsp.lstat(m.p(`${d}/${rel}`)), await fsp.lstat(m.b(`${d}/${rel}`)));
    }
    expect((await fsp.lstat(m.p(`${d}/link`))).isSymbolicLink()).toBe(true);
    expect((await fsp.stat(m.p(`${d}/link`))).size).toBe(3 * PAGE + 5);
  });

  it('answers ENOENT for a name the backing directory lacks, and ENOTDIR through a file', async () => {
    const d = await scratch({ 'f': 'x' });
    expect(await codeOf(fsp.lstat(m.p(`${d}/missing`)))).toBe('ENOENT');
    expect(await codeOf(fsp.lstat(m.p(`${d}/f/below`)))).toBe('ENOTDIR');
  });

  it('reports the size of data written but not yet written back', async () => {
    const d = await scratch({ 'grow': 'abc' });
    const fh = await fsp.open(m.p(`${d}/grow`), 'r+');
    try {
      await fh.write(Buffer.alloc(10_000, 7), 0, 10_000, 20_000);
      expect((await fh.stat()).size).toBe(30_000);
      expect((await fsp.stat(m.p(`${d}/grow`))).size).toBe(30_000);
    } finally {
      await fh.close();
    }
    expect((await fsp.stat(m.b(`${d}/grow`))).size).toBe(30_000);
  });
});

describe('st_blocks', () => {
  it('is the backing file\'s: du through the mount matches the backing file, cp --sparse=auto keeps a copy sparse', async () => {
    // It was computed from the size: a sparse file showed fully allocated in du and cp made a fully
    // allocated copy of it (cp's sparse heuristic compares st_blocks with the size).
    const d = await scratch({ small: 'hello\n', 'full.bin': randomData(3 * PAGE + 5) });
    expect((await run('truncate', ['-s', '256M', m.b(`${d}/sparse-backing`)])).code).toBe(0);
    // Truncated through the mount: pagerfs serves the file, and its own handler answers getattr.
    expect((await run('truncate', ['-s', '256M', m.p(`${d}/sparse-mount`)])).code).toBe(0);
    const du = async (file: string): Promise<string> => {
      const res = await run('du', ['-k', '--', file]);
      expect(res.code, res.stderr).toBe(0);
      return res.stdout.split('\t')[0]!;
    };
    for (const rel of ['small', 'full.bin', 'sparse-backing', 'sparse-mount']) {
      expect({ rel, blocks: (await fsp.stat(m.p(`${d}/${rel}`))).blocks }).toEqual({ rel, blocks: (await fsp.stat(m.b(`${d}/${rel}`))).blocks });
      expect({ rel, du: await du(m.p(`${d}/${rel}`)) }).toEqual({ rel, du: await du(m.b(`${d}/${rel}`)) });
    }
    expect((await fsp.stat(m.p(`${d}/small`))).blocks).toBeGreaterThanOrEqual(8); // a 4 KiB block, as the backing file has
    const out = await tempDir('pagerfs-sparse-copy-');
    for (const rel of ['sparse-backing', 'sparse-mount']) {
      const cp = await run('cp', ['--sparse=auto', m.p(`${d}/${rel}`), path.join(out, rel)]);
      expect(cp.code, cp.stderr).toBe(0);
      const copy = await fsp.stat(path.join(out, rel));
      expect({ rel, size: copy.size, blocks: copy.blocks }).toEqual({ rel, size: 2 ** 28, blocks: 0 });
    }
  });

  it('counts the pages written through the mount and not yet written back, not the holes past them', async () => {
    const d = await scratch();
    const fh = await fsp.open(m.p(`${d}/dirty.bin`), 'w');
    try {
      await fh.write(randomData(256 * PAGE), 0, 256 * PAGE, 0);
      await fh.truncate(2 ** 30);
      // The mount's 60 s writeback delay keeps the pages in the VMO until the close.
      expect((await fsp.stat(m.b(`${d}/dirty.bin`))).blocks).toBe(0);
      let shown = -1;
      await waitFor(async () => (shown = (await fsp.stat(m.p(`${d}/dirty.bin`))).blocks) === 256 * 8, 10_000, 50,
        () => `st_blocks of 256 pages in 512-byte units, not the size's (last seen ${shown})`);
    } finally {
      await fh.close();
    }
    await waitFor(async () => (await fsp.stat(m.b(`${d}/dirty.bin`))).blocks >= 256 * 8, 10_000, 50, 'the close wrote them back');
    await waitFor(async () => (await fsp.stat(m.p(`${d}/dirty.bin`))).blocks === (await fsp.stat(m.b(`${d}/dirty.bin`))).blocks,
      10_000, 50, 'the mount shows the backing file\'s blocks again');
  });
});

describe('readdir', () => {
  it('lists the backing directory (plus .pagerfs at the root only)', async () => {
    const d = await scratch({ 'a': '1', 'b': '2', 'c/d': '3', '.hidden': '4' });
    await fsp.symlink('a', m.b(`${d}/l`));
    expect((await fsp.readdir(m.p(d))).sort()).toEqual((await fsp.readdir(m.b(d))).sort());
    expect((await fsp.readdir(m.p(`${d}/c`))).sort()).toEqual(['d']);
    const root = (await fsp.readdir(m.p())).sort();
    expect(root).toEqual([...(await fsp.readdir(m.b())), '.pagerfs'].sort());
    const typed = await fsp.readdir(m.p(d), { withFileTypes: true });
    const kinds = Object.fromEntries(typed.map((e) => [e.name, e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'link' : e.isFile() ? 'file' : '?']));
    expect(kinds).toEqual({ 'a': 'file', 'b': 'file', 'c': 'dir', '.hidden': 'file', 'l': 'link' });
  });

  it('lists . and .. as a plain directory does (ls -a, ls -f), in the binding\'s path, .pagerfs and a tree without a backing directory', async () => {
    // Without them `ls -a` of an empty directory printed nothing and `ls -f | wc -l` was 2 short.
    const d = await scratch({ 'a': '1', 'sub/b': '2' });
    await fsp.mkdir(m.b(`${d}/empty`));
    const lsLines = async (args: string[], dir: string): Promise<string[]> => {
      const res = await run('ls', [...args, dir]);
      expect(res.code, res.stderr).toBe(0);
      return res.stdout.split('\n').filter((l) => l !== '').sort();
    };
    for (const rel of [d, `${d}/empty`, `${d}/sub`]) {
      // -i: d_ino of . and .. are the backing directory's own (use_ino), as listed there.
      expect(await lsLines(['-1fai'], m.p(rel)), rel).toEqual(await lsLines(['-1fai'], m.b(rel)));
    }
    expect(await lsLines(['-1a'], m.p(`${d}/empty`))).toEqual(['.', '..']);
    expect(await lsLines(['-1f'], m.p())).toEqual([...await lsLines(['-1f'], m.b()), '.pagerfs'].sort());
    expect(await lsLines(['-1a'], m.p('.pagerfs'))).toEqual(['.', '..', 'budget', 'faults', 'stats', 'unmount']);
    const control = await python([
      'import os, sys',
      'print(len([n for n in os.listdir(sys.argv[1])]), os.stat(sys.argv[1]).st_nlink)',
    ].join('\n'), [m.p('.pagerfs')]);
    expect(control.stdout.trim()).toBe('4 2');

    // A pager module's tree has no backing directory: pagerfs lists it itself.
    const synthetic = await startMount({ noBacking: true, args: ['--pager', 'synthetic', '--pager-option', 'files=2', '--pager-option', 'size=1MiB'] });
    const names = await lsLines(['-1a'], synthetic.p());
    expect(names.slice(0, 3)).toEqual(['.', '..', '.pagerfs']);
    expect(names.length).toBe(5);
  });

  it('fails with ENOTDIR on a file and ENOENT on a missing directory', async () => {
    const d = await scratch({ 'f': 'x' });
    expect(await codeOf(fsp.readdir(m.p(`${d}/f`)))).toBe('ENOTDIR');
    expect(await codeOf(fsp.readdir(m.p(`${d}/nope`)))).toBe('ENOENT');
  });

  it('sees entries added to and removed from the backing directory behind its back', async () => {
    const d = await scratch({ 'a': '1' });
    expect(await fsp.readdir(m.p(d))).toEqual(['a']);
    await fsp.writeFile(m.b(`${d}/new`), 'n');
    await fsp.unlink(m.b(`${d}/a`));
    expect((await fsp.readdir(m.p(d))).sort()).toEqual(['new']);
  });
});

describe('open, read, create, write', () => {
  it('open + read give the backing bytes', async () => {
    const data = randomData(5 * PAGE + 123);
    const d = await scratch({ f: data });
    const fh = await fsp.open(m.p(`${d}/f`), 'r');
    try {
      const buf = Buffer.alloc(200);
      const { bytesRead } = await fh.read(buf, 0, 200, PAGE - 100);
      expect(bytesRead).toBe(200);
      expect(buf.equals(data.subarray(PAGE - 100, PAGE + 100))).toBe(true);
      // Past the end: 0 bytes.
      expect((await fh.read(Buffer.alloc(10), 0, 10, data.length + 5)).bytesRead).toBe(0);
    } finally {
      await fh.close();
    }
    expect((await fsp.readFile(m.p(`${d}/f`))).equals(data)).toBe(true);
  });

  it('a name replaced behind pagerfs\'s back opens the new file, not the one served before', async () => {
    // A reopen trusts the file it served under a name only while the name's lstat (made by the
    // binding on its FUSE thread) shows the same inode.
    const d = await scratch({ 'f': 'old contents\n', 'other': 'new contents, longer\n' });
    expect(await fsp.readFile(m.p(`${d}/f`), 'utf8')).toBe('old contents\n');
    await fsp.rename(m.b(`${d}/other`), m.b(`${d}/f`));
    // Past the attribute timeout (1 s), so the kernel looks the name up again.
    await new Promise((r) => setTimeout(r, 1200));
    expect(await fsp.readFile(m.p(`${d}/f`), 'utf8')).toBe('new contents, longer\n');
    expect((await fsp.stat(m.p(`${d}/f`))).ino).toBe((await fsp.stat(m.b(`${d}/f`))).ino);
  });

  it('open fails like the backing directory: ENOENT, EISDIR for writing a directory, EEXIST with O_EXCL', async () => {
    const d = await scratch({ f: 'x', 'sub/x': 'y' });
    expect(await codeOf(fsp.open(m.p(`${d}/nope`), 'r'))).toBe('ENOENT');
    expect(await codeOf(fsp.open(m.p(`${d}/sub`), 'r+'))).toBe('EISDIR');
    expect(await codeOf(fsp.open(m.p(`${d}/f`), 'wx'))).toBe('EEXIST');
  });

  it('create makes the backing file with the requested mode (after umask) and it is empty', async () => {
    const d = await scratch();
    const fh = await fsp.open(m.p(`${d}/new`), fsc.O_CREAT | fsc.O_EXCL | fsc.O_RDWR, 0o640);
    try {
      const st = await fsp.lstat(m.b(`${d}/new`));
      expect(st.isFile()).toBe(true);
      expect(st.mode & 0o7777).toBe(0o640 & ~process.umask());
      expect(st.size).toBe(0);
      sameAttrs(await fsp.lstat(m.p(`${d}/new`)), st);
    } finally {
      await fh.close();
    }
  });

  it('writes at scattered offsets (across page boundaries) land in the backing file after close', async () => {
    const initial = randomData(3 * PAGE);
    const d = await scratch({ f: initial });
    const expected = Buffer.from(initial);
    const fh = await fsp.open(m.p(`${d}/f`), 'r+');
    const pieces: Array<[number, Buffer]> = [[0, randomData(1)], [PAGE - 3, randomData(7)], [2 * PAGE + 100, randomData(PAGE)], [5 * PAGE + 1, randomData(10)]];
    try {
      for (const [pos, buf] of pieces) {
        expect((await fh.write(buf, 0, buf.length, pos)).bytesWritten).toBe(buf.length);
      }
    } finally {
      await fh.close();
    }
    const want = Buffer.alloc(5 * PAGE + 11);
    expected.copy(want);
    for (const [pos, buf] of pieces) buf.copy(want, pos);
    expect((await fsp.readFile(m.b(`${d}/f`))).equals(want)).toBe(true);
    expect((await fsp.readFile(m.p(`${d}/f`))).equals(want)).toBe(true);
  });

  it('O_APPEND writes go to the end and O_TRUNC empties the file', async () => {
    const d = await scratch({ f: 'hello' });
    await fsp.appendFile(m.p(`${d}/f`), ' world');
    expect(await fsp.readFile(m.b(`${d}/f`), 'utf8')).toBe('hello world');
    await fsp.writeFile(m.p(`${d}/f`), 'new');
    expect(await fsp.readFile(m.b(`${d}/f`), 'utf8')).toBe('new');
    expect(await fsp.readFile(m.p(`${d}/f`), 'utf8')).toBe('new');
  });
});

describe('flush, fsync, release', () => {
  it('fsync writes the dirty pages to the backing file while the file stays open', async () => {
    const d = await scratch({ f: randomData(4 * PAGE) });
    const fh = await fsp.open(m.p(`${d}/f`), 'r+');
    try {
      const data = randomData(2 * PAGE + 10);
      await fh.write(data, 0, data.length, PAGE + 5);
      const before = (await m.stats()).files.find((f) => f.path === `${d}/f`);
      expect(before?.dirtyBytes ?? 0).toBeGreaterThan(0);
      await fh.sync();
      const back = await fsp.readFile(m.b(`${d}/f`));
      expect(back.subarray(PAGE + 5, PAGE + 5 + data.length).equals(data)).toBe(true);
      const after = (await m.stats()).files.find((f) => f.path === `${d}/f`);
      expect(after?.dirtyBytes).toBe(0);
      const more = randomData(100);
      await fh.write(more, 0, 100, 0);
      await fh.datasync();
      expect((await fsp.readFile(m.b(`${d}/f`))).subarray(0, 100).equals(more)).toBe(true);
    } finally {
      await fh.close();
    }
  });

  it('close (flush) writes the data back without fsync', async () => {
    const d = await scratch({ f: 'old contents' });
    const fh = await fsp.open(m.p(`${d}/f`), 'r+');
    const data = randomData(3 * PAGE + 1);
    await fh.write(data, 0, data.length, 0);
    await fh.close();
    expect((await fsp.readFile(m.b(`${d}/f`))).equals(data)).toBe(true);
  });

  it('release of the last handle leaves the file with no opens and its data in the backing file', async () => {
    const d = await scratch({ f: 'x' });
    const a = await fsp.open(m.p(`${d}/f`), 'r+');
    const b = await fsp.open(m.p(`${d}/f`), 'r');
    const entry = async () => (await m.stats()).files.find((f) => f.path === `${d}/f`);
    expect((await entry())?.opens).toBe(2);
    await a.write('yz', 1);
    await a.close();
    // The kernel sends RELEASE after close(2) returns: wait for it.
    expect(await waitFor(async () => (await entry())?.opens === 1)).toBe(true);
    await b.close();
    expect(await waitFor(async () => ((await entry())?.opens ?? 0) === 0)).toBe(true);
    expect(await fsp.readFile(m.b(`${d}/f`), 'utf8')).toBe('xyz');
  });
});

describe('truncate', () => {
  it('truncate by path shrinks and extends the backing file', async () => {
    const data = randomData(3 * PAGE + 77);
    const d = await scratch({ f: data });
    await fsp.truncate(m.p(`${d}/f`), PAGE + 1);
    expect((await fsp.stat(m.b(`${d}/f`))).size).toBe(PAGE + 1);
    expect((await fsp.stat(m.p(`${d}/f`))).size).toBe(PAGE + 1);
    expect((await fsp.readFile(m.p(`${d}/f`))).equals(data.subarray(0, PAGE + 1))).toBe(true);
    await fsp.truncate(m.p(`${d}/f`), 5 * PAGE);
    const want = Buffer.alloc(5 * PAGE);
    data.copy(want, 0, 0, PAGE + 1);
    expect((await fsp.readFile(m.b(`${d}/f`))).equals(want)).toBe(true);
    expect((await fsp.readFile(m.p(`${d}/f`))).equals(want)).toBe(true);
    await fsp.truncate(m.p(`${d}/f`), 0);
    expect((await fsp.stat(m.b(`${d}/f`))).size).toBe(0);
    expect((await fsp.readFile(m.p(`${d}/f`))).length).toBe(0);
  });

  it('ftruncate through an open handle changes the size seen by the handle, the path and the backing file', async () => {
    const data = randomData(2 * PAGE);
    const d = await scratch({ f: data });
    const fh = await fsp.open(m.p(`${d}/f`), 'r+');
    try {
      await fh.truncate(100);
      expect((await fh.stat()).size).toBe(100);
      expect((await fsp.stat(m.b(`${d}/f`))).size).toBe(100);
      await fh.truncate(3 * PAGE);
      const buf = Buffer.alloc(3 * PAGE);
      expect((await fh.read(buf, 0, buf.length, 0)).bytesRead).toBe(3 * PAGE);
      expect(buf.subarray(0, 100).equals(data.subarray(0, 100))).toBe(true);
      expect(buf.subarray(100).equals(Buffer.alloc(3 * PAGE - 100))).toBe(true);
    } finally {
      await fh.close();
    }
    expect((await fsp.stat(m.b(`${d}/f`))).size).toBe(3 * PAGE);
  });

  it('truncate of a missing file is ENOENT and of a directory EISDIR', async () => {
    const d = await scratch({ 'sub/x': 'y' });
    expect(await codeOf(fsp.truncate(m.p(`${d}/nope`), 0))).toBe('ENOENT');
    expect(await codeOf(fsp.truncate(m.p(`${d}/sub`), 0))).toBe('EISDIR');
  });
});

describe('unlink, rename', () => {
  it('unlink removes the backing file; a missing name is ENOENT; a directory is EISDIR', async () => {
    const d = await scratch({ f: 'x', 'sub/y': 'y' });
    await fsp.unlink(m.p(`${d}/f`));
    expect(await codeOf(fsp.lstat(m.b(`${d}/f`)))).toBe('ENOENT');
    expect(await codeOf(fsp.lstat(m.p(`${d}/f`)))).toBe('ENOENT');
    expect(await codeOf(fsp.unlink(m.p(`${d}/f`)))).toBe('ENOENT');
    expect(await codeOf(fsp.unlink(m.p(`${d}/sub`)))).toBe('EISDIR');
  });

  it('unlink of a symlink removes the link, not its target', async () => {
    const d = await scratch({ target: 'T' });
    await fsp.symlink('target', m.b(`${d}/l`));
    await fsp.unlink(m.p(`${d}/l`));
    expect(await codeOf(fsp.lstat(m.b(`${d}/l`)))).toBe('ENOENT');
    expect(await fsp.readFile(m.b(`${d}/target`), 'utf8')).toBe('T');
  });

  it('rename moves files and directories in the backing directory, across directories and over an existing file', async () => {
    const a = randomData(PAGE + 1);
    const b = randomData(10);
    const d = await scratch({ a, b, 'dir/inner': 'i', 'other/.keep': '' });
    // Read `a` through the mount first so it has a VMO when renamed.
    expect((await fsp.readFile(m.p(`${d}/a`))).equals(a)).toBe(true);
    await fsp.rename(m.p(`${d}/a`), m.p(`${d}/other/a2`));
    expect(await codeOf(fsp.lstat(m.b(`${d}/a`)))).toBe('ENOENT');
    expect((await fsp.readFile(m.b(`${d}/other/a2`))).equals(a)).toBe(true);
    expect((await fsp.readFile(m.p(`${d}/other/a2`))).equals(a)).toBe(true);
    // Over an existing file: the target's old contents are gone.
    await fsp.rename(m.p(`${d}/other/a2`), m.p(`${d}/b`));
    expect((await fsp.readFile(m.b(`${d}/b`))).equals(a)).toBe(true);
    expect((await fsp.readFile(m.p(`${d}/b`))).equals(a)).toBe(true);
    // A directory, with its children.
    await fsp.rename(m.p(`${d}/dir`), m.p(`${d}/other/dir2`));
    expect(await fsp.readFile(m.b(`${d}/other/dir2/inner`), 'utf8')).toBe('i');
    expect(await fsp.readFile(m.p(`${d}/other/dir2/inner`), 'utf8')).toBe('i');
    expect((await fsp.readdir(m.p(d))).sort()).toEqual((await fsp.readdir(m.b(d))).sort());
  });

  it('rename fails like the backing directory: ENOENT for a missing source, ENOTEMPTY onto a non-empty directory', async () => {
    const d = await scratch({ 'x/1': '1', 'y/2': '2' });
    expect(await codeOf(fsp.rename(m.p(`${d}/nope`), m.p(`${d}/z`)))).toBe('ENOENT');
    expect(await codeOf(fsp.rename(m.p(`${d}/x`), m.p(`${d}/y`)))).toBe('ENOTEMPTY');
  });

  it('writes through a handle after a rename go to the file under its new name', async () => {
    const d = await scratch({ f: 'abc' });
    const fh = await fsp.open(m.p(`${d}/f`), 'r+');
    try {
      await fsp.rename(m.p(`${d}/f`), m.p(`${d}/g`));
      await fh.write('XYZ', 0);
      await fh.sync();
      expect(await fsp.readFile(m.b(`${d}/g`), 'utf8')).toBe('XYZ');
      const st = (await m.stats()).files.find((f) => f.path.startsWith(`${d}/`));
      expect(st?.path).toBe(`${d}/g`);
    } finally {
      await fh.close();
    }
    expect(await codeOf(fsp.lstat(m.b(`${d}/f`)))).toBe('ENOENT');
  });
});

describe('mkdir, rmdir', () => {
  it('mkdir creates the backing directory with the requested mode; EEXIST when it exists', async () => {
    const d = await scratch();
    await fsp.mkdir(m.p(`${d}/new`), { mode: 0o750 });
    const st = await fsp.stat(m.b(`${d}/new`));
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o750 & ~process.umask());
    sameAttrs(await fsp.stat(m.p(`${d}/new`)), st);
    expect(await codeOf(fsp.mkdir(m.p(`${d}/new`)))).toBe('EEXIST');
    await fsp.mkdir(m.p(`${d}/new/a/b`), { recursive: true });
    expect((await fsp.stat(m.b(`${d}/new/a/b`))).isDirectory()).toBe(true);
  });

  it('rmdir removes an empty backing directory; ENOTEMPTY, ENOTDIR and ENOENT otherwise', async () => {
    const d = await scratch({ 'full/x': 'x', f: 'f' });
    await fsp.mkdir(m.b(`${d}/empty`));
    await fsp.rmdir(m.p(`${d}/empty`));
    expect(await codeOf(fsp.stat(m.b(`${d}/empty`)))).toBe('ENOENT');
    expect(await codeOf(fsp.rmdir(m.p(`${d}/full`)))).toBe('ENOTEMPTY');
    expect(await codeOf(fsp.rmdir(m.p(`${d}/f`)))).toBe('ENOTDIR');
    expect(await codeOf(fsp.rmdir(m.p(`${d}/empty`)))).toBe('ENOENT');
    expect((await fsp.stat(m.b(`${d}/full`))).isDirectory()).toBe(true);
  });
});

describe('symlink, readlink, link', () => {
  it('symlink stores the link text as given in the backing directory; readlink returns it', async () => {
    const d = await scratch({ target: 'T' });
    for (const [name, text] of [['rel', 'target'], ['abs', '/etc/hostname'], ['dangling', 'no/such/thing'], ['up', '../../x']] as const) {
      await fsp.symlink(text, m.p(`${d}/${name}`));
      const st = await fsp.lstat(m.b(`${d}/${name}`));
      expect(st.isSymbolicLink()).toBe(true);
      expect(await fsp.readlink(m.b(`${d}/${name}`))).toBe(text);
      expect(await fsp.readlink(m.p(`${d}/${name}`))).toBe(text);
      expect((await fsp.lstat(m.p(`${d}/${name}`))).isSymbolicLink()).toBe(true);
    }
    expect(await fsp.readFile(m.p(`${d}/rel`), 'utf8')).toBe('T');
    expect(await codeOf(fsp.symlink('x', m.p(`${d}/rel`)))).toBe('EEXIST');
    expect(await codeOf(fsp.readlink(m.p(`${d}/target`)))).toBe('EINVAL');
  });

  it('link makes a second name for the same backing inode; both names share contents immediately', async () => {
    const data = randomData(2 * PAGE);
    const d = await scratch({ a: data });
    await fsp.link(m.p(`${d}/a`), m.p(`${d}/b`));
    const sa = await fsp.stat(m.b(`${d}/a`));
    const sb = await fsp.stat(m.b(`${d}/b`));
    expect(sb.ino).toBe(sa.ino);
    expect(sa.nlink).toBe(2);
    expect((await fsp.stat(m.p(`${d}/b`))).nlink).toBe(2);
    const fh = await fsp.open(m.p(`${d}/a`), 'r+');
    try {
      await fh.write('LINKED', 10);
      // Not yet written back: the other name must still see it (one VMO per inode).
      const viaB = await fsp.readFile(m.p(`${d}/b`));
      expect(viaB.subarray(10, 16).toString()).toBe('LINKED');
    } finally {
      await fh.close();
    }
    expect((await fsp.readFile(m.b(`${d}/b`))).subarray(10, 16).toString()).toBe('LINKED');
    await fsp.unlink(m.p(`${d}/a`));
    expect((await fsp.stat(m.b(`${d}/b`))).nlink).toBe(1);
    expect((await fsp.readFile(m.p(`${d}/b`))).subarray(10, 16).toString()).toBe('LINKED');
    expect(await codeOf(fsp.link(m.p(`${d}/b`), m.p(`${d}/b`)))).toBe('EEXIST');
  });

  it('with the default --attr-timeout (1 s), every name of a hard-linked file shows the new link count once it expires', async () => {
    // libfuse2 gives each name its own kernel inode and cannot invalidate the others' cached
    // attributes, so right after a link the names may show the old count (README "POSIX").
    const d = await scratch({ x: 'x' });
    expect((await fsp.lstat(m.p(`${d}/x`))).nlink).toBe(1);
    await fsp.link(m.p(`${d}/x`), m.p(`${d}/y`));
    await fsp.link(m.p(`${d}/y`), m.p(`${d}/z`));
    await new Promise((r) => setTimeout(r, 1200));
    for (const n of ['x', 'y', 'z']) expect((await fsp.lstat(m.p(`${d}/${n}`))).nlink, n).toBe(3);
    await fsp.unlink(m.p(`${d}/z`));
    await new Promise((r) => setTimeout(r, 1200));
    for (const n of ['x', 'y']) expect((await fsp.lstat(m.p(`${d}/${n}`))).nlink, n).toBe(2);
  });
});

describe('chmod, chown, utimens', () => {
  it('chmod sets the backing mode of files and directories, including setuid/sticky bits', async () => {
    const d = await scratch({ f: 'x', 'sub/y': 'y' });
    for (const [rel, mode] of [['f', 0o600], ['f', 0o4755], ['sub', 0o1777], ['sub', 0o700]] as const) {
      await fsp.chmod(m.p(`${d}/${rel}`), mode);
      expect((await fsp.stat(m.b(`${d}/${rel}`))).mode & 0o7777).toBe(mode);
      expect((await fsp.stat(m.p(`${d}/${rel}`))).mode & 0o7777).toBe(mode);
    }
  });

  it('chown sets the backing owner; lchown of a symlink changes the link, not its target', async () => {
    const d = await scratch({ f: 'x' });
    await fsp.symlink('f', m.b(`${d}/l`));
    await fsp.chown(m.p(`${d}/f`), 1234, 5678);
    let st = await fsp.stat(m.b(`${d}/f`));
    expect([st.uid, st.gid]).toEqual([1234, 5678]);
    st = await fsp.stat(m.p(`${d}/f`));
    expect([st.uid, st.gid]).toEqual([1234, 5678]);
    await fsp.lchown(m.p(`${d}/l`), 4242, 4343);
    const link = await fsp.lstat(m.b(`${d}/l`));
    expect([link.uid, link.gid]).toEqual([4242, 4343]);
    st = await fsp.stat(m.b(`${d}/f`));
    expect([st.uid, st.gid]).toEqual([1234, 5678]);
  });

  it('utimes with equal access and modification times sets both in the backing file', async () => {
    const d = await scratch({ f: 'x' });
    const t = new Date('2001-02-03T04:05:06.789Z');
    await fsp.utimes(m.p(`${d}/f`), t, t);
    const st = await fsp.stat(m.b(`${d}/f`));
    expect(st.mtimeMs).toBe(t.getTime());
    expect(st.atimeMs).toBe(t.getTime());
    expect((await fsp.stat(m.p(`${d}/f`))).mtimeMs).toBe(t.getTime());
  });

  it('utimes with different access and modification times sets each in the backing file', async () => {
    const d = await scratch({ f: 'x' });
    const atime = new Date('2001-02-03T04:05:06.000Z');
    const mtime = new Date('2010-11-12T13:14:15.000Z');
    await fsp.utimes(m.p(`${d}/f`), atime, mtime);
    const st = await fsp.stat(m.b(`${d}/f`));
    expect({ atime: st.atimeMs, mtime: st.mtimeMs }).toEqual({ atime: atime.getTime(), mtime: mtime.getTime() });
  });
});

describe('statfs, access', () => {
  it('statfs reports the backing filesystem', async () => {
    const viaMount = await fsp.statfs(m.p());
    const backing = await fsp.statfs(m.b());
    expect(viaMount.bsize).toBe(backing.bsize);
    expect(viaMount.blocks).toBe(backing.blocks);
    expect(viaMount.files).toBe(backing.files);
    // Free space moves as other things run; it must be close.
    expect(Math.abs(viaMount.bfree - backing.bfree)).toBeLessThan(backing.blocks / 100 + 1);
    expect(Math.abs(viaMount.bavail - backing.bavail)).toBeLessThan(backing.blocks / 100 + 1);
  });

  it('access answers as the backing directory does for F_OK, R_OK, W_OK and X_OK', async () => {
    const d = await scratch({ plain: 'x', exec: '#!/bin/sh\n' });
    await fsp.chmod(m.b(`${d}/plain`), 0o644);
    await fsp.chmod(m.b(`${d}/exec`), 0o755);
    for (const rel of ['plain', 'exec', 'missing']) {
      for (const mode of [fsc.F_OK, fsc.R_OK, fsc.W_OK, fsc.X_OK, fsc.R_OK | fsc.W_OK | fsc.X_OK]) {
        const viaMount = await codeOf(fsp.access(m.p(`${d}/${rel}`), mode));
        const backing = await codeOf(fsp.access(m.b(`${d}/${rel}`), mode));
        expect(`${rel} ${mode}: ${viaMount}`).toBe(`${rel} ${mode}: ${backing}`);
      }
    }
  });
});

describe('nothing outside the backing directory is reachable through pagerfs', () => {
  // The mountpoint sits one level deeper than the backing directory, so a relative link that climbs
  // out of the backing directory names a different (missing) place when the kernel resolves it
  // from the mountpoint; only a pagerfs that followed links itself would reach the secret.
  let e: Mount;
  let outside: string;
  let outsideName: string;
  beforeAll(async () => {
    outside = await tempDir('pagerfs-outside-');
    outsideName = path.basename(outside);
    await fsp.writeFile(path.join(outside, 'secret.txt'), 'SECRET');
    const mnt = path.join(await tempDir('pagerfs-deep-'), 'mnt');
    await fsp.mkdir(mnt);
    e = await startMount({ budget: '1MiB', mountpoint: mnt, files: { 'sub/inside.txt': 'inside' } });
    await fsp.symlink(`../${outsideName}/secret.txt`, e.b('esc-rel'));
    await fsp.symlink(`../../${outsideName}/secret.txt`, e.b('sub/esc-rel2'));
    await fsp.symlink(`../${outsideName}`, e.b('esc-dir'));
    await fsp.symlink(`../${outsideName}/created.txt`, e.b('esc-create'));
    // Sanity: followed from the backing directory, these links do reach the secret.
    expect(await fsp.readFile(e.b('esc-rel'), 'utf8')).toBe('SECRET');
  });

  it('symlinks that climb out are reported as symlinks with their text, and never followed by pagerfs', async () => {
    for (const [rel, text] of [['esc-rel', `../${outsideName}/secret.txt`], ['sub/esc-rel2', `../../${outsideName}/secret.txt`], ['esc-dir', `../${outsideName}`]]) {
      expect((await fsp.lstat(e.p(rel))).isSymbolicLink(), rel).toBe(true);
      expect(await fsp.readlink(e.p(rel)), rel).toBe(text);
    }
    expect(await codeOf(fsp.readFile(e.p('esc-rel'), 'utf8'))).toBe('ENOENT');
    expect(await codeOf(fsp.readFile(e.p('sub/esc-rel2'), 'utf8'))).toBe('ENOENT');
    expect(await codeOf(fsp.readdir(e.p('esc-dir')))).toBe('ENOENT');
    expect(await codeOf(fsp.readFile(e.p('esc-dir/secret.txt')))).toBe('ENOENT');
  });

  it('open with O_NOFOLLOW of a symlink fails with ELOOP instead of opening its target', async () => {
    const res = await python(`
import os, sys
try:
    os.open(sys.argv[1], os.O_RDONLY | os.O_NOFOLLOW); print('opened')
except OSError as e:
    print(e.strerror)
`, [e.p('esc-rel')]);
    expect(res.stdout.trim()).toMatch(/Too many levels of symbolic links|Symbolic link loop/);
  });

  it('creating through a symlink that points out of the backing directory creates nothing outside it', async () => {
    expect(await codeOf(fsp.writeFile(e.p('esc-create'), 'x'))).toBe('ENOENT');
    expect(await codeOf(fsp.lstat(path.join(outside, 'created.txt')))).toBe('ENOENT');
    expect(await codeOf(fsp.truncate(e.p('esc-rel'), 0))).toBe('ENOENT');
    expect(await fsp.readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('SECRET');
  });

  it('".." in a path through the mount never lands in the backing directory\'s parent', async () => {
    expect(await codeOf(fsp.readFile(e.p(`sub/../../${outsideName}/secret.txt`)))).toBe('ENOENT');
    expect(await codeOf(fsp.readFile(e.p(`../${outsideName}/secret.txt`)))).toBe('ENOENT');
    expect(await fsp.readFile(e.p('sub/../sub/inside.txt'), 'utf8')).toBe('inside');
    expect(await python(`import os,sys; print(sorted(os.listdir(sys.argv[1])))`, [e.p('sub/..')]).then((r) => r.stdout.trim()))
      .toBe(`[${['.pagerfs', 'esc-create', 'esc-dir', 'esc-rel', 'sub'].map((n) => `'${n}'`).join(', ')}]`);
  });

  it('a symlink created through the mount with an escaping target is stored as a link, not resolved', async () => {
    await fsp.symlink(`../${outsideName}/secret.txt`, e.p('made-link'));
    expect((await fsp.lstat(e.b('made-link'))).isSymbolicLink()).toBe(true);
    expect(await fsp.readlink(e.b('made-link'))).toBe(`../${outsideName}/secret.txt`);
    expect(await codeOf(fsp.readFile(e.p('made-link')))).toBe('ENOENT');
    await fsp.unlink(e.p('made-link'));
  });

  it('hard links and renames between the outside and the mount fail with EXDEV', async () => {
    expect(await codeOf(fsp.link(path.join(outside, 'secret.txt'), e.p('stolen')))).toBe('EXDEV');
    expect(await codeOf(fsp.rename(path.join(outside, 'secret.txt'), e.p('stolen')))).toBe('EXDEV');
    expect(await codeOf(fsp.link(e.p('sub/inside.txt'), path.join(outside, 'leak')))).toBe('EXDEV');
    expect(await codeOf(fsp.lstat(e.b('stolen')))).toBe('ENOENT');
  });

  it('pagerfs never reads the file outside while every escape is tried (its access time stays put)', async () => {
    // relatime: a read of a file whose access time is older than its modification time moves it.
    const secret = path.join(outside, 'secret.txt');
    const old = new Date('2000-01-01T00:00:00Z');
    await fsp.utimes(secret, old, new Date());
    const attempts = [
      fsp.readFile(e.p('esc-rel')), fsp.readFile(e.p('sub/esc-rel2')), fsp.readFile(e.p('esc-dir/secret.txt')),
      fsp.readFile(e.p(`sub/../../${outsideName}/secret.txt`)), fsp.truncate(e.p('esc-rel'), 0),
      fsp.open(e.p('esc-rel'), 'r').then((h) => h.close()), fsp.copyFile(e.p('esc-rel'), path.join(outside, 'copy')),
    ];
    for (const code of await Promise.all(attempts.map((p) => codeOf(p)))) expect(code).toBe('ENOENT');
    expect((await fsp.stat(secret)).atime.getTime()).toBe(old.getTime());
    // Sanity: a read from the backing directory does move it, so the check above can fail.
    expect(await fsp.readFile(e.b('esc-rel'), 'utf8')).toBe('SECRET');
    expect((await fsp.stat(secret)).atime.getTime()).toBeGreaterThan(old.getTime());
    expect((await e.stats()).files.filter((f) => /esc-|secret/.test(f.path))).toEqual([]);
  });
});
