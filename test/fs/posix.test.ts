/**
 * POSIX fidelity through a real pagerfs mount, each step run the same way on a plain directory (the
 * reference) and through the mount, and the results compared:
 *  - special files: mkfifo, mknod (char and block devices, as root), unix sockets (mknod op);
 *  - modes: exactly the caller's (the kernel applies the caller's umask; the daemon's own umask,
 *    077 here on purpose, must not matter), setgid directories as the kernel handles them;
 *  - long paths: a 4095-byte path (16 names of 255 bytes) for create/write/read/stat/rename/unlink;
 *  - inode numbers: st_ino and readdir's d_ino are the backing file's, across rename and link;
 *  - hard links: right after link, unlink and rename every other name shows the new link count and
 *    ctime (mounted with --attr-timeout 0, the exact setting; the default's lag is tested below);
 *  - --allow-other: files another user creates are that user's; writes that user may not make are
 *    refused, as on the reference.
 * Runs as root (mknod of devices, setpriv to uid 65534).
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, isMounted, python, run, sleep, startMount, tempDir, useMountHooks, waitFor, type Mount, type RunResult } from './harness.js';

useMountHooks();

const NOBODY = 65534;

let m: Mount;
let refRoot: string;

beforeAll(async () => {
  // The daemon starts with umask 077: what it creates must not depend on it.
  const backing = await tempDir('pagerfs-posix-backing-');
  const mountpoint = await tempDir('pagerfs-posix-mnt-');
  refRoot = await tempDir('pagerfs-posix-ref-');
  // Traversable by uid 65534 (mkdtemp makes 0700).
  for (const d of [backing, mountpoint, refRoot]) await fsp.chmod(d, 0o755);
  const old = process.umask(0o077);
  try {
    m = await startMount({ backing, mountpoint, args: ['--allow-other', '--attr-timeout', '0'] });
  } finally {
    process.umask(old);
  }
});

/** A fresh directory in the reference tree and one in the mount (made in the backing directory). */
let seq = 0;
async function pair(mode = 0o755): Promise<{ ref: string; mnt: string; back: string }> {
  const name = `t${++seq}`;
  const ref = path.join(refRoot, name);
  await fsp.mkdir(ref);
  await fsp.mkdir(m.b(name));
  await fsp.chmod(ref, mode);
  await fsp.chmod(m.b(name), mode);
  return { ref, mnt: m.p(name), back: m.b(name) };
}

async function sh(script: string, cwd: string, asNobody = false): Promise<RunResult> {
  const argv = asNobody
    ? ['setpriv', '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', 'sh', '-c', script]
    : ['sh', '-c', script];
  return run(argv[0]!, argv.slice(1), { cwd });
}

async function ok(script: string, cwd: string, asNobody = false): Promise<string> {
  const res = await sh(script, cwd, asNobody);
  expect(res.code, `${script} in ${cwd}: ${res.stderr}`).toBe(0);
  return res.stdout;
}

/** `stat` of the given names: type, mode, owner, device numbers, link count (no inode, no times). */
async function describeNames(dir: string, names: string[]): Promise<string> {
  return ok(`stat -c '%n %F %a %u:%g %t:%T %h' ${names.join(' ')}`, dir);
}

describe('special files (mknod)', () => {
  it('mkfifo, mknod c/b and a bound unix socket give what a plain directory gives', async () => {
    const d = await pair();
    const script = `umask 022; mkfifo fifo && mkfifo -m 0640 fifo2 && mknod null c 1 3 && mknod -m 0600 loop b 7 0 &&
      mknod big c 511 1048575 &&
      python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')"`;
    for (const dir of [d.ref, d.mnt]) await ok(script, dir);
    const names = ['fifo', 'fifo2', 'null', 'loop', 'big', 'sock'];
    const want = await describeNames(d.ref, names);
    expect(want).toContain('fifo fifo 644 0:0 0:0 1');
    expect(want).toContain('null character special file 644 0:0 1:3 1');
    expect(want).toContain('big character special file 644 0:0 1ff:fffff 1');
    expect(await describeNames(d.mnt, names)).toBe(want);
    expect(await describeNames(d.back, names)).toBe(want);
  });

  it('a FIFO made through the mount carries data between a writer and a reader', async () => {
    const d = await pair();
    await ok('mkfifo p', d.mnt);
    expect(await ok('(echo through-the-fifo > p &) ; cat p', d.mnt)).toBe('through-the-fifo\n');
  });

  it('the mount is nodev: a device node made through it does not open there, and the same node opens in the backing directory', async () => {
    const mounts = await fsp.readFile('/proc/self/mounts', 'utf8');
    const line = mounts.split('\n').find((l) => l.split(' ')[1] === m.mnt);
    expect(line, `${m.mnt} in /proc/self/mounts`).toBeDefined();
    expect(line!.split(' ')[3].split(',')).toContain('nodev');
    const d = await pair();
    await ok('mknod zero c 1 5', d.mnt);
    const through = await sh('head -c 4 zero > /dev/null', d.mnt);
    expect(through.code).not.toBe(0);
    expect(through.stderr).toMatch(/Permission denied/);
    // The backing directory's file system has device nodes enabled: /dev/zero's numbers read zeros.
    expect((await ok('head -c 4 zero | od -An -tx1', d.back)).trim()).toBe('00 00 00 00');
  });

  it('mknod fails as on a plain directory: EEXIST for a taken name, EPERM for a device as another user', async () => {
    const d = await pair(0o777);
    const script = 'touch f; mkfifo f 2>&1 | sed "s/.*: //"; mknod dev c 1 3 2>&1 | sed "s/.*: //"; ls';
    const ref = await ok(script, d.ref, true);
    expect(ref).toContain('File exists');
    expect(ref).toContain('Operation not permitted');
    expect(await ok(script, d.mnt, true)).toBe(ref);
  });
});

describe('modes: the caller\'s umask, never the daemon\'s', () => {
  it('the daemon runs with umask 077', async () => {
    const status = await fsp.readFile(`/proc/${m.pid}/status`, 'utf8');
    expect(status).toMatch(/^Umask:\s+0077$/m);
  });

  for (const umask of ['077', '0', '022', '027']) {
    it(`umask ${umask}: touch, mkdir, mkfifo, ln -s, mknod give the reference's modes`, async () => {
      const d = await pair();
      const script = `umask ${umask}; touch f; mkdir d; mkfifo p; ln -s f l; mknod c c 1 3; mkdir -p a/b/c`;
      for (const dir of [d.ref, d.mnt]) await ok(script, dir);
      const names = ['f', 'd', 'p', 'l', 'c', 'a', 'a/b', 'a/b/c'];
      const want = await describeNames(d.ref, names);
      expect(await describeNames(d.mnt, names)).toBe(want);
      expect(await describeNames(d.back, names)).toBe(want);
    });
  }

  it('explicit modes with set-id and sticky bits (open, mkdir, mknod with umask 0)', async () => {
    const d = await pair();
    const script = `import os
os.umask(0)
os.close(os.open('x', os.O_CREAT | os.O_WRONLY, 0o6755))
os.close(os.open('y', os.O_CREAT | os.O_WRONLY, 0o1604))
os.mkdir('sticky', 0o1777)
os.mkdir('open', 0o777)
os.mknod('fifo', 0o010666)
os.mkfifo('setgid-fifo', 0o2751)
`;
    for (const dir of [d.ref, d.mnt]) {
      const res = await python(script, [], { cwd: dir });
      expect(res.code, res.stderr).toBe(0);
    }
    const names = ['x', 'y', 'sticky', 'open', 'fifo', 'setgid-fifo'];
    const want = await describeNames(d.ref, names);
    expect(want).toContain('x regular empty file 6755');
    expect(await describeNames(d.mnt, names)).toBe(want);
    expect(await describeNames(d.back, names)).toBe(want);
  });

  it('in a setgid directory new entries take its group, and new directories its setgid bit', async () => {
    const d = await pair();
    for (const dir of [d.ref, d.back]) {
      await fsp.mkdir(path.join(dir, 'g'));
      await fsp.chown(path.join(dir, 'g'), 0, 100);
      await fsp.chmod(path.join(dir, 'g'), 0o2777);
    }
    const script = 'umask 022; touch f; mkdir d; mkfifo p; ln -s f l; mkdir -m 0700 private';
    for (const dir of [d.ref, d.mnt]) {
      await ok(script, path.join(dir, 'g'));
      // Another user too (--allow-other: created as the caller, group from the directory).
      await ok('umask 022; mkdir nd && touch nf', path.join(dir, 'g'), true);
    }
    const names = ['f', 'd', 'p', 'l', 'private', 'nd', 'nf'];
    const want = await describeNames(path.join(d.ref, 'g'), names);
    expect(want).toContain('d directory 2755 0:100');
    expect(want).toContain(`nf regular empty file 644 ${NOBODY}:100`);
    expect(await describeNames(path.join(d.mnt, 'g'), names)).toBe(want);
    expect(await describeNames(path.join(d.back, 'g'), names)).toBe(want);
  });
});

/**
 * Removes a tree from the roots of the reference and backing directories: `rm -rf` walks with
 * openat; Node's fs.rm (the harness's clean-up) cannot remove paths longer than PATH_MAX.
 */
async function removeDeep(name: string): Promise<void> {
  for (const dir of [refRoot, m.backing]) await ok(`rm -rf -- ${name}`, dir);
}

describe('long paths', () => {
  /**
   * Run at the root of the mount (the path counts from there) and of the reference directory: 15
   * nested directories and a file, each name 255 bytes, a 4095-byte path (PATH_MAX with its NUL).
   */
  const LONG = `import os, sys
name = lambda c, i: (c * 253) + '%02d' % i
dirs = [name('d', i) for i in range(15)]
d = '/'.join(dirs)
for i in range(1, 16):
    os.mkdir('/'.join(dirs[:i]))
f = d + '/' + 'f' * 255
g = d + '/' + 'g' * 255
out = [len(f)]
fd = os.open(f, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o640)
os.write(fd, b'x' * 5000 + b'the end')
os.close(fd)
with open(f, 'rb') as fh: data = fh.read()
out.append((len(data), data[-7:].decode()))
st = os.stat(f)
out.append((st.st_size, oct(st.st_mode), st.st_nlink))
with open(f, 'ab') as fh: fh.write(b'+more')
os.rename(f, g)
out.append((os.path.exists(f), os.stat(g).st_size, open(g, 'rb').read()[-12:].decode()))
os.link(g, f)
out.append((os.stat(f).st_nlink, os.stat(g).st_ino == os.stat(f).st_ino))
os.unlink(g)
os.unlink(f)
out.append(sorted(os.listdir(d)))
try:
    os.open(d + '/' + 'h' * 256, os.O_CREAT | os.O_WRONLY)
except OSError as e:
    out.append(os.strerror(e.errno))
# Leave one file behind for the backing directory's check.
with open(f, 'w') as fh: fh.write('kept')
print(repr(out))
`;

  it('a 4095-byte path (16 names of 255 bytes): create, write, read, stat, rename, link, unlink as on a plain directory', async () => {
    const ref = await python(LONG, [], { cwd: refRoot });
    expect(ref.code, ref.stderr).toBe(0);
    expect(ref.stdout).toContain('[4095, (5007, \'the end\')');
    const viaMount = await python(LONG, [], { cwd: m.mnt });
    expect(viaMount.code, viaMount.stderr).toBe(0);
    expect(viaMount.stdout).toBe(ref.stdout);
    // The file is in the backing directory, at the same place.
    const find = `find . -type f -name 'fff*' -execdir cat {} \\;`;
    expect(await ok(find, m.b(`${'d'.repeat(253)}00`))).toBe('kept');
    // The daemon resolves paths from the backing root (its working directory).
    expect(await fsp.readlink(`/proc/${m.pid}/cwd`)).toBe(m.backing);
    await removeDeep(`${'d'.repeat(253)}00`);
  });

  it('deeper than PATH_MAX below the mount root: ENAMETOOLONG (a documented limit), and the daemon is unharmed', async () => {
    const script = `import os
for i in range(16):
    n = 'e' * 255
    os.mkdir(n)
    os.chdir(n)
try:
    open('deep', 'w').write('x')
    print('created')
except OSError as e:
    print(os.strerror(e.errno))
`;
    const ref = await python(script, [], { cwd: refRoot });
    expect(ref.stdout).toBe('created\n');
    const viaMount = await python(script, [], { cwd: m.mnt });
    expect(viaMount.stdout).toBe('File name too long\n');
    expect((await fsp.readFile(m.p('.pagerfs/stats'), 'utf8')).length).toBeGreaterThan(0);
    await removeDeep('e'.repeat(255));
  });
});

describe('O_TMPFILE', () => {
  it('is EOPNOTSUPP through the mount (a documented limit: libfuse2 has no tmpfile operation), and works in the reference', async () => {
    const script = `import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_TMPFILE | os.O_RDWR, 0o600)
    os.write(fd, b'x')
    os.close(fd)
    print('ok')
except OSError as e:
    print(errno.errorcode[e.errno])
`;
    const d = await pair();
    expect((await python(script, [d.ref])).stdout).toBe('ok\n');
    // EOPNOTSUPP and ENOTSUP are one number on Linux; python names it ENOTSUP.
    expect((await python(script, [d.mnt])).stdout).toBe('ENOTSUP\n');
  });
});

describe('inode numbers (use_ino)', () => {
  it('st_ino is the backing file\'s and stays across rename and link', async () => {
    const d = await pair();
    await fsp.writeFile(path.join(d.back, 'a'), 'a');
    const ino = (await fsp.stat(path.join(d.back, 'a'))).ino;
    expect((await fsp.stat(path.join(d.mnt, 'a'))).ino).toBe(ino);
    await fsp.rename(path.join(d.mnt, 'a'), path.join(d.mnt, 'b'));
    expect((await fsp.stat(path.join(d.mnt, 'b'))).ino).toBe(ino);
    await fsp.mkdir(path.join(d.mnt, 'sub'));
    await fsp.rename(path.join(d.mnt, 'b'), path.join(d.mnt, 'sub/c'));
    expect((await fsp.stat(path.join(d.mnt, 'sub/c'))).ino).toBe(ino);
    await fsp.link(path.join(d.mnt, 'sub/c'), path.join(d.mnt, 'd'));
    expect((await fsp.stat(path.join(d.mnt, 'd'))).ino).toBe(ino);
    expect((await fsp.stat(path.join(d.mnt, 'sub/c'))).ino).toBe(ino);
    // Directories, symlinks and special files too; a directory renamed keeps its number.
    await ok('mkdir dir && ln -s d sym && mkfifo fifo', d.mnt);
    for (const n of ['dir', 'sym', 'fifo', 'sub']) {
      expect((await fsp.lstat(path.join(d.mnt, n))).ino, n).toBe((await fsp.lstat(path.join(d.back, n))).ino);
    }
    const dirIno = (await fsp.lstat(path.join(d.mnt, 'dir'))).ino;
    await fsp.rename(path.join(d.mnt, 'dir'), path.join(d.mnt, 'dir2'));
    expect((await fsp.lstat(path.join(d.mnt, 'dir2'))).ino).toBe(dirIno);
  });

  it('readdir gives the backing inode numbers (d_ino) and file types (d_type), as the backing directory does', async () => {
    const d = await pair();
    await ok('echo x > f && ln f hard && mkdir dir && ln -s f sym && mkfifo fifo && mknod chr c 1 3', d.back);
    const script = `import os, sys
for e in sorted(os.scandir(sys.argv[1]), key=lambda e: e.name):
    print(e.name, e.inode(), e.is_file(follow_symlinks=False), e.is_dir(follow_symlinks=False), e.is_symlink())
`;
    const back = await python(script, [d.back]);
    const viaMount = await python(script, [d.mnt]);
    expect(viaMount.code, viaMount.stderr).toBe(0);
    expect(viaMount.stdout).toBe(back.stdout);
    // d_type came with readdir: no stat needed. strace is not assumed; DT_UNKNOWN would show as
    // d_ino 4294967295 above, so equality with the backing directory covers it.
    expect(back.stdout.split('\n').filter(Boolean)).toHaveLength(6);
    // The root lists .pagerfs with an inode number of its own, the one stat shows.
    const root = await python(`import os, sys
e = [e for e in os.scandir(sys.argv[1]) if e.name == '.pagerfs'][0]
print(e.inode() == os.stat(os.path.join(sys.argv[1], '.pagerfs')).st_ino, e.inode() != 0, e.is_dir())`, [m.mnt]);
    expect(root.stdout).toBe('True True True\n');
  });
});

describe('inode numbers above 32 bits (patched fuse-native)', () => {
  // A server of its own: ext4 numbers fit in 32 bits, XFS's and btrfs's need not.
  const SERVER = `
const Fuse = require(${JSON.stringify(path.join(ROOT, 'node_modules/fuse-native'))});
const t = new Date(0);
const attrs = {
  '/': { mode: 0o40755, nlink: 2, ino: 1 },
  '/big': { mode: 0o100644, nlink: 1, ino: 2 ** 40 + 5 },
  '/huge': { mode: 0o100644, nlink: 1, ino: 2n ** 62n + 7n },
};
const stat = (p) => ({ size: 0, uid: 0, gid: 0, atime: t, mtime: t, ctime: t, ...attrs[p] });
const ops = {
  getattr (p, cb) { return attrs[p] ? cb(0, stat(p)) : cb(Fuse.ENOENT); },
  readdir (p, cb) { cb(0, ['big', 'huge'], [stat('/big'), stat('/huge')]); },
};
class F extends Fuse { _fuseOptions () { return '-ouse_ino'; } }
const fuse = new F(process.argv[1], ops, { timeout: false });
fuse.mount((err) => { if (err) { console.error(err.message); process.exit(1); } console.log('mounted'); });
process.on('SIGTERM', () => fuse.unmount(() => process.exit(0)));
`;
  let mnt: string;
  let child: ReturnType<typeof spawn> | undefined;

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await sleep(300);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    if (mnt && await isMounted(mnt)) await run('fusermount', ['-uz', mnt]);
  });

  it('st_ino and d_ino keep all 64 bits', async () => {
    mnt = await tempDir('pagerfs-ino64-');
    child = spawn(process.execPath, ['-e', SERVER, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString('utf8'); });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString('utf8'); });
    expect(await waitFor(() => out.includes('mounted'), 10_000), out).toBe(true);
    expect((await fsp.stat(path.join(mnt, 'big'), { bigint: true })).ino).toBe(2n ** 40n + 5n);
    expect((await fsp.stat(path.join(mnt, 'huge'), { bigint: true })).ino).toBe(2n ** 62n + 7n);
    const res = await python('import os, sys\nprint(sorted((e.name, e.inode()) for e in os.scandir(sys.argv[1])))', [mnt]);
    expect(res.stdout).toBe(`[('big', ${2 ** 40 + 5}), ('huge', ${2n ** 62n + 7n})]\n`);
  });
});

describe('hard links: every name sees link, unlink and rename at once', () => {
  /**
   * Each step, then a stat of every existing name (names cached by the stats before): nlink and ctime
   * per name. ctime through the mount is compared with the backing file's (nanoseconds, less what
   * a JSON number keeps); link counts with the reference's.
   */
  const STEPS = `import os, sys, time, json
names = ['a', 'b', 'c', 'd', 'e']
def snap():
    out = {}
    for n in names:
        try:
            st = os.lstat(n)
            out[n] = [st.st_nlink, st.st_ctime_ns]
        except FileNotFoundError:
            pass
    return out
with open('a', 'w') as f: f.write('data')
os.link('a', 'b')
res = [snap()]
for step in ["os.link('a', 'c')", "os.link('b', 'd')", "os.unlink('b')", "os.rename('c', 'e')", "os.unlink('a')",
             "os.chmod('d', 0o600)", "os.rename('d', 'a')"]:
    time.sleep(0.02)
    exec(step)
    res.append(snap())
print(json.dumps(res))
`;

  it('link counts match the reference right after each step, and ctime moves on every name', async () => {
    const d = await pair();
    const ref = await python(STEPS, [], { cwd: d.ref });
    expect(ref.code, ref.stderr).toBe(0);
    const viaMount = await python(STEPS, [], { cwd: d.mnt });
    expect(viaMount.code, viaMount.stderr).toBe(0);
    type Snap = Record<string, [number, number]>;
    const r = JSON.parse(ref.stdout) as Snap[];
    const v = JSON.parse(viaMount.stdout) as Snap[];
    const nlinks = (s: Snap[]): Array<Record<string, number>> => s.map((x) => Object.fromEntries(Object.entries(x).map(([k, [n]]) => [k, n])));
    expect(nlinks(v)).toEqual(nlinks(r));
    expect(nlinks(r)[1]).toEqual({ a: 3, b: 3, c: 3 });
    // All names of the inode show one ctime at each step, and it changes where the reference's does.
    for (let i = 0; i < v.length; i++) {
      const cts = new Set(Object.values(v[i]!).map(([, c]) => c));
      expect(cts.size, `step ${i}: ${JSON.stringify(v[i])}`).toBe(1);
      if (i > 0) {
        const refChanged = Object.values(r[i]!)[0]![1] !== Object.values(r[i - 1]!)[0]![1];
        const mntChanged = Object.values(v[i]!)[0]![1] !== Object.values(v[i - 1]!)[0]![1];
        expect(mntChanged, `ctime change at step ${i}`).toBe(refChanged);
      }
    }
    // The last ctime is the backing file's (a double of ns since 1970 keeps it to ~0.25 µs).
    const last = Object.values(v[v.length - 1]!)[0]![1];
    const back = await fsp.lstat(path.join(d.back, 'a'), { bigint: true });
    expect(Math.abs(Number(back.ctimeNs) - last)).toBeLessThanOrEqual(1_000);
  });

  it('a name stat-ed just before (attributes in the kernel\'s cache) shows the new count right after', async () => {
    const d = await pair();
    await fsp.writeFile(path.join(d.mnt, 'x'), 'x');
    await fsp.link(path.join(d.mnt, 'x'), path.join(d.mnt, 'y'));
    for (let i = 0; i < 3; i++) {
      expect((await fsp.stat(path.join(d.mnt, 'x'))).nlink).toBe(2);
      await fsp.link(path.join(d.mnt, 'y'), path.join(d.mnt, 'z'));
      expect((await fsp.stat(path.join(d.mnt, 'x'))).nlink).toBe(3);
      await fsp.unlink(path.join(d.mnt, 'z'));
      expect((await fsp.stat(path.join(d.mnt, 'x'))).nlink).toBe(2);
    }
  });
});

describe('--allow-other: another user acts as itself', () => {
  it('files, directories, symlinks and FIFOs that uid 65534 creates are its own, as on the reference', async () => {
    const d = await pair(0o777);
    const script = 'umask 022; echo hi > f && mkdir dir && ln -s f sym && mkfifo fifo && python3 -c "import socket; socket.socket(socket.AF_UNIX).bind(\'sock\')" && id -u';
    expect(await ok(script, d.ref, true)).toBe(`${NOBODY}\n`);
    await ok(script, d.mnt, true);
    const names = ['f', 'dir', 'sym', 'fifo', 'sock'];
    const want = await describeNames(d.ref, names);
    expect(want).toContain(`f regular file 644 ${NOBODY}:${NOBODY}`);
    expect(await describeNames(d.mnt, names)).toBe(want);
    expect(await describeNames(d.back, names)).toBe(want);
    // And it may write to its own file afterwards, through a new open.
    await ok('echo more >> f && cat f', d.mnt, true);
    expect(await fsp.readFile(path.join(d.back, 'f'), 'utf8')).toBe('hi\nmore\n');
  });

  it('writes that uid 65534 may not make are refused as on the reference', async () => {
    const d = await pair(0o755);
    for (const dir of [d.ref, d.back]) {
      await fsp.writeFile(path.join(dir, 'root-file'), 'root\n');
      await fsp.chmod(path.join(dir, 'root-file'), 0o644);
    }
    const script = `for c in 'echo x >> root-file' 'echo x > new-file' 'mkdir newdir' 'mkfifo newfifo' 'rm -f root-file' 'chmod 666 root-file' 'touch root-file'; do
      if sh -c "$c" 2>/dev/null; then echo "$c: ok"; else echo "$c: refused"; fi
    done; cat root-file`;
    const ref = await ok(script, d.ref, true);
    expect(ref).toContain('echo x >> root-file: refused');
    expect(ref).toContain('mkdir newdir: refused');
    expect(await ok(script, d.mnt, true)).toBe(ref);
    expect(await fsp.readFile(path.join(d.back, 'root-file'), 'utf8')).toBe('root\n');
    expect((await fsp.readdir(d.back)).sort()).toEqual(['root-file']);
  });
});
