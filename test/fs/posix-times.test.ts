/**
 * POSIX fidelity of file times through a real pagerfs mount, against a plain directory as the
 * reference: each step runs on a file in a plain directory and on a file through the mount, and
 * the backing file must end up as the reference did, to the precision the chain keeps.
 *
 * The chain (native/README.md): the kernel hands utimensat's nanoseconds and UTIME_NOW/UTIME_OMIT
 * to libfuse (flag_utime_omit_ok), the patched fuse-native hands both to JS exactly, and Node's
 * lutimes sets the backing file to the MICROSECOND (libuv truncates; seconds travel as a double).
 * So: backing = reference floored to the microsecond, for an omitted time too (re-set from lstat);
 * UTIME_NOW is the daemon's Date.now(). The mount's own view (getattr) is the backing file's
 * times to the nanosecond (the binding's lstat, handed over as BigInts of ns).
 *
 * Also: the caller's uid/gid/pid (fuse_get_context) reach JS through fs/caller.ts, checked with a
 * small fuse-native server of its own.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, python, run, sleep, startMount, tempDir, useMountHooks, waitFor, isMounted, type Mount } from './harness.js';

useMountHooks();

let m: Mount;
let ref: string;

beforeAll(async () => {
  m = await startMount({ budget: '4MiB' });
  ref = await tempDir('pagerfs-times-ref-');
});

interface Times {
  atime: bigint;
  mtime: bigint;
}

async function times(file: string): Promise<Times> {
  const st = await fsp.lstat(file, { bigint: true });
  return { atime: st.atimeNs, mtime: st.mtimeNs };
}

const floorUs = (ns: bigint): bigint => ns - (((ns % 1000n) + 1000n) % 1000n);
const us = (t: Times): Times => ({ atime: floorUs(t.atime), mtime: floorUs(t.mtime) });

/** A fresh empty file in the reference directory and one in the backing directory (seen through the mount). */
let seq = 0;
async function pair(): Promise<{ r: string; b: string; p: string; rel: string }> {
  const rel = `f${++seq}`;
  await fsp.writeFile(path.join(ref, rel), '');
  await fsp.writeFile(m.b(rel), '');
  return { r: path.join(ref, rel), b: m.b(rel), p: m.p(rel), rel };
}

/** The mount's view of a file's times: exactly the backing file's. */
async function expectMountView(p: string, b: string): Promise<void> {
  expect(await times(p)).toEqual(await times(b));
}

async function sh(cmd: string, args: string[]): Promise<void> {
  const res = await run(cmd, args);
  expect(res.code, `${cmd} ${args.join(' ')}: ${res.stderr}`).toBe(0);
}

/** utimensat(AT_FDCWD, file, times, 0) on each file, through ctypes: each time is ns, 'now' or 'omit'. */
const UTIMENSAT = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]
def ts(v):
    if v == 'now': return timespec(0, (1 << 30) - 1)
    if v == 'omit': return timespec(0, (1 << 30) - 2)
    s, n = divmod(int(v), 10**9)
    return timespec(s, n)
a, m = sys.argv[1], sys.argv[2]
for path in sys.argv[3:]:
    if libc.utimensat(-100, path.encode(), (timespec * 2)(ts(a), ts(m)), 0) != 0:
        sys.exit(path + ': ' + os.strerror(ctypes.get_errno()))
`;
type T = bigint | 'now' | 'omit';
async function utimensat(files: string[], a: T, mt: T): Promise<void> {
  const res = await python(UTIMENSAT, [String(a), String(mt), ...files]);
  expect(res.code, `utimensat ${a} ${mt}: ${res.stderr}`).toBe(0);
}

const A0 = 1_000_000_000_111_222_333n; // 2001-09-09T01:46:40.111222333Z
const M0 = 1_100_000_000_444_555_666n; // 2004-11-09T11:33:20.444555666Z

describe('atime and mtime are set apart', () => {
  it('touch -m -d and touch -a -d set one time each, as on a plain directory', async () => {
    const f = await pair();
    await sh('python3', ['-c', `import os, sys\nfor p in sys.argv[1:]: os.utime(p, ns=(${A0}, ${M0}))`, f.r, f.p]);
    expect(await times(f.r)).toEqual({ atime: A0, mtime: M0 });
    expect(await times(f.b)).toEqual(us({ atime: A0, mtime: M0 }));

    for (const file of [f.r, f.p]) await sh('touch', ['-m', '-d', '@1289567655.123456789', file]);
    const r1 = await times(f.r);
    expect(r1).toEqual({ atime: A0, mtime: 1_289_567_655_123_456_789n });
    expect(await times(f.b)).toEqual(us(r1));
    await expectMountView(f.p, f.b);

    for (const file of [f.r, f.p]) await sh('touch', ['-a', '-d', '@981173106.987654321', file]);
    const r2 = await times(f.r);
    expect(r2).toEqual({ atime: 981_173_106_987_654_321n, mtime: 1_289_567_655_123_456_789n });
    expect(await times(f.b)).toEqual(us(r2));
    await expectMountView(f.p, f.b);
  });

  it('touch -d sets both; times before 1970 and after 2038 survive', async () => {
    for (const when of ['@-315619199.5', '@4102444800.000001', '@0']) {
      const f = await pair();
      for (const file of [f.r, f.p]) await sh('touch', ['-d', when, file]);
      const r = await times(f.r);
      expect(r.atime).toBe(r.mtime);
      expect(await times(f.b), when).toEqual(us(r));
      await expectMountView(f.p, f.b);
    }
  });
});

describe('nanosecond timestamps', () => {
  it('os.utime(ns=...) reaches the backing file to the microsecond (the reference keeps nanoseconds)', async () => {
    const values: Array<[bigint, bigint]> = [
      [1_700_000_000_123_456_789n, 1_700_000_001_987_654_321n],
      [1_700_000_000_000_000_001n, 1_700_000_000_999_999_999n],
      [1_234_567_890_000_000_000n, 1_234_567_890_000_999_000n],
      [-5_000_000_001n, 2_000_000_000_000_001_500n],
    ];
    for (const [a, mt] of values) {
      const f = await pair();
      await sh('python3', ['-c', `import os, sys\nfor p in sys.argv[1:]: os.utime(p, ns=(${a}, ${mt}))`, f.r, f.p]);
      const r = await times(f.r);
      expect(r).toEqual({ atime: a, mtime: mt });
      expect(await times(f.b)).toEqual(us(r));
      await expectMountView(f.p, f.b);
    }
  });

  it('follow_symlinks=False sets the symlink itself, not its target', async () => {
    const f = await pair();
    await fsp.symlink(f.rel, path.join(ref, `${f.rel}.l`));
    await fsp.symlink(f.rel, m.b(`${f.rel}.l`));
    const target = { r: await times(f.r), b: await times(f.b) };
    for (const link of [path.join(ref, `${f.rel}.l`), m.p(`${f.rel}.l`)]) {
      await sh('python3', ['-c', `import os, sys\nos.utime(sys.argv[1], ns=(${A0}, ${M0}), follow_symlinks=False)`, link]);
    }
    expect(await times(path.join(ref, `${f.rel}.l`))).toEqual({ atime: A0, mtime: M0 });
    expect(await times(m.b(`${f.rel}.l`))).toEqual(us({ atime: A0, mtime: M0 }));
    expect(await times(f.r)).toEqual(target.r);
    expect(await times(f.b)).toEqual(target.b);
  });
});

describe('UTIME_OMIT and UTIME_NOW', () => {
  const T = 1_600_000_000_555_666_777n;
  const cases: Array<[T, T]> = [
    ['omit', T], [T, 'omit'], ['now', 'omit'], ['omit', 'now'], ['now', 'now'], [T, 'now'], ['now', T],
  ];
  for (const [a, mt] of cases) {
    it(`utimensat(atime=${a}, mtime=${mt}) acts on the backing file as on a plain file`, async () => {
      const f = await pair();
      await utimensat([f.r, f.p], A0, M0);
      const before = Date.now();
      await utimensat([f.r, f.p], a, mt);
      const after = Date.now();
      const r = await times(f.r);
      const b = await times(f.b);
      for (const [k, t, orig] of [['atime', a, A0], ['mtime', mt, M0]] as const) {
        if (t === 'omit') {
          expect(r[k], `reference ${k}`).toBe(orig);
          expect(b[k], `backing ${k}`).toBe(floorUs(orig));
        } else if (t === 'now') {
          // The kernel's coarse clock may lag the test's Date.now() by a tick.
          for (const [who, v] of [['reference', r[k]], ['backing', b[k]]] as const) {
            expect(v, `${who} ${k}`).toBeGreaterThanOrEqual(BigInt(before - 20) * 1_000_000n);
            expect(v, `${who} ${k}`).toBeLessThanOrEqual(BigInt(after + 1) * 1_000_000n);
          }
        } else {
          expect(r[k], `reference ${k}`).toBe(t);
          expect(b[k], `backing ${k}`).toBe(floorUs(t));
        }
      }
      if (a === 'now' && mt === 'now') expect(b.atime).toBe(b.mtime);
      await expectMountView(f.p, f.b);
    });
  }

  it('plain touch (both UTIME_NOW) through the mount moves both times to now', async () => {
    const f = await pair();
    await utimensat([f.p], A0, M0);
    const before = Date.now();
    await sh('touch', [f.p]);
    const b = await times(f.b);
    expect(b.atime).toBe(b.mtime);
    expect(b.mtime).toBeGreaterThanOrEqual(BigInt(before) * 1_000_000n);
  });
});

describe('stat times through the mount keep their nanoseconds', () => {
  // They were rounded to the millisecond, so 00:00:00.9996 showed as 00:00:01.000: rsync -a then
  // found every such file changed on every run, and cp -p copied the rounded time.
  const EXACT = [
    1577836800_999600000n, // touch -d '2020-01-01 00:00:00.9996'
    1577836800_999999999n, // one nanosecond before the next second
    -1_000_000_001n, // before 1970: seconds -2, nanoseconds 999999999
  ];

  it('a file pagerfs only lists (answered in the binding) and one it serves (answered in JS) show the backing times exactly', async () => {
    for (const [i, t] of EXACT.entries()) {
      const plain = m.b(`exact-plain-${i}`);
      const served = m.b(`exact-served-${i}`);
      await fsp.writeFile(plain, 'x');
      await fsp.writeFile(served, 'x');
      // Open for writing: the file's VMO is served, so its getattr reaches pagerfs's own handler.
      const fh = await fsp.open(m.p(`exact-served-${i}`), 'r+');
      try {
        await fh.write('y', 0);
        await fh.sync();
        for (const f of [plain, served]) {
          await sh('python3', ['-c', `import os, sys\nos.utime(sys.argv[1], ns=(${t}, ${t}))`, f]);
        }
        for (const rel of [`exact-plain-${i}`, `exact-served-${i}`]) {
          // The served name's attributes may be cached from the write for --attr-timeout.
          await waitFor(async () => { const off = (await times(m.p(rel))).mtime - t; return off > -2_000_000n && off < 2_000_000n; },
            10_000, 50, `${rel}: the new time shows through the mount`);
          const view = await fsp.lstat(m.p(rel), { bigint: true });
          expect({ rel, atime: view.atimeNs, mtime: view.mtimeNs, ctime: view.ctimeNs }).toEqual(
            { rel, atime: t, mtime: t, ctime: (await fsp.lstat(m.b(rel), { bigint: true })).ctimeNs });
        }
      } finally {
        await fh.close();
      }
    }
    const shown = await run('stat', ['-c', '%y', m.p('exact-plain-0')], { env: { ...process.env, TZ: 'UTC' } });
    expect(shown.stdout.trim()).toBe('2020-01-01 00:00:00.999600000 +0000');
  });

  it('rsync -a into the mount settles: a second run has nothing to do', async () => {
    const src = path.join(ref, 'rsync-src');
    await fsp.mkdir(src);
    for (const name of ['a', 'b']) {
      await fsp.writeFile(path.join(src, name), `${name}\n`);
      await sh('touch', ['-d', '2020-01-01 00:00:00.9996', path.join(src, name)]);
    }
    const first = await run('rsync', ['-ai', `${src}/`, `${m.p('rsync-dst')}/`]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/>f\+{9,} a/);
    const second = await run('rsync', ['-ai', `${src}/`, `${m.p('rsync-dst')}/`]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe('');
    // And test's -nt sees the copy as old as its source, not newer.
    const nt = await run('sh', ['-c', '[ "$1" -nt "$2" ] && echo newer || echo same', 'sh', m.p('rsync-dst/a'), path.join(src, 'a')]);
    expect(nt.stdout.trim()).toBe('same');
  });
});

describe('cp -p', () => {
  it('preserves mtime and atime into and out of the mount, as between plain directories', async () => {
    const src = path.join(ref, 'cp-src');
    await fsp.writeFile(src, 'some content\n');
    await sh('python3', ['-c', `import os, sys\nos.utime(sys.argv[1], ns=(${A0}, ${M0}))`, src]);
    // cp reads the source, which moves its atime (relatime): each copy gets the times of before.
    const before1 = await times(src);
    await sh('cp', ['-p', src, path.join(ref, 'cp-dst')]);
    expect(before1).toEqual({ atime: A0, mtime: M0 });
    expect(await times(path.join(ref, 'cp-dst'))).toEqual(before1);
    const before2 = await times(src);
    await sh('cp', ['-p', src, m.p('cp-dst')]);
    expect(before2.mtime).toBe(M0);
    expect(await times(m.b('cp-dst'))).toEqual(us(before2));
    await expectMountView(m.p('cp-dst'), m.b('cp-dst'));
    expect(await fsp.readFile(m.b('cp-dst'), 'utf8')).toBe('some content\n');

    // And back out: the copy carries what the mount reports.
    await sh('cp', ['-p', m.p('cp-dst'), path.join(ref, 'cp-back')]);
    expect((await times(path.join(ref, 'cp-back'))).mtime).toBe((await times(m.p('cp-dst'))).mtime);
  });
});

describe('caller context (fuse_get_context)', () => {
  const SERVER = `
const Fuse = require(${JSON.stringify(path.join(ROOT, 'node_modules/fuse-native'))});
import(${JSON.stringify(path.join(ROOT, 'dist/fs/caller.js'))}).then(({ caller }) => {
  const root = { mode: 0o40755, nlink: 2, size: 0, atime: new Date(0), mtime: new Date(0), ctime: new Date(0) };
  const ops = {
    getattr (p, cb) {
      if (p === '/') return cb(0, root);
      const now = caller();
      setTimeout(() => {
        console.log(JSON.stringify({ op: 'getattr', path: p, now, later: caller() }));
        cb(0, { mode: 0o100644, nlink: 1, size: 0, uid: now.uid, gid: now.gid, atime: 1n, mtime: 2n, ctime: 3n });
      }, 1);
    },
    readdir (p, cb) { cb(0, []); },
  };
  const fuse = new Fuse(process.argv[1], ops, { allowOther: true, timeout: false });
  fuse.mount((err) => { if (err) { console.error(err.message); process.exit(1); } console.log('{"mounted":true}'); });
  process.on('SIGTERM', () => fuse.unmount(() => process.exit(0)));
});
`;

  let mnt: string;
  let child: ReturnType<typeof spawn> | undefined;
  const lines: string[] = [];

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await sleep(300);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    if (mnt && await isMounted(mnt)) await run('fusermount', ['-uz', mnt]);
  });

  it('uid, gid and pid of the calling process reach the handler; null outside its synchronous part', async () => {
    mnt = await tempDir('pagerfs-caller-');
    await fsp.chmod(mnt, 0o755);
    child = spawn(process.execPath, ['-e', SERVER, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString('utf8').split('\n').filter((l) => l !== '')));
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
    expect(await waitFor(() => lines.includes('{"mounted":true}'), 10_000), stderr).toBe(true);

    // A process of another user, and root: each looks up a fresh name (no cached attributes).
    // `exec` keeps the shell's pid, which it prints first.
    const statAs = ['/bin/sh', '-c', 'echo $$; exec stat -c %n "$1" >/dev/null', 'sh'];
    const other = await run('setpriv', ['--reuid=4321', '--regid=1234', '--clear-groups', ...statAs, path.join(mnt, 'as-other')]);
    expect(other.code, other.stderr).toBe(0);
    const mine = await run(statAs[0], [...statAs.slice(1), path.join(mnt, 'as-root')]);
    expect(mine.code, mine.stderr).toBe(0);

    const seen = lines.filter((l) => l.startsWith('{"op"')).map((l) => JSON.parse(l) as {
      path: string; now: { uid: number; gid: number; pid: number } | null; later: unknown;
    });
    const of = (p: string) => seen.find((s) => s.path === p);
    expect(of('/as-other')?.now).toMatchObject({ uid: 4321, gid: 1234, pid: Number(other.stdout.trim()) });
    expect(of('/as-root')?.now).toMatchObject({ uid: 0, gid: 0, pid: Number(mine.stdout.trim()) });
    for (const s of seen) expect(s.later).toBeNull();
    // Stat times given as BigInt nanoseconds come through exactly.
    const st = await fsp.stat(path.join(mnt, 'as-root'), { bigint: true });
    expect([st.atimeNs, st.mtimeNs, st.ctimeNs]).toEqual([1n, 2n, 3n]);
  });
});
