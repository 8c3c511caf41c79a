/**
 * Metadata the patched binding reads on libfuse's threads (native/README.md, levels 5 and 7).
 *  - getattr: a backing name is answered on libfuse's thread unless pagerfs said its size is its own
 *    (a VMO opened for writing or truncated, whose size may run ahead of the backing file); those
 *    are answered by the daemon. Who answered is read from the daemon thread's voluntary context
 *    switches: it sleeps in epoll between requests, so each request that reaches it costs at least
 *    one. Mounted with --attr-timeout 0, so every stat is a getattr.
 *  - readdir: the entries the binding read (names, d_ino, d_type) match the backing directory's,
 *    for a directory large enough to grow the binding's buffers many times.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, daemonThreadSwitches, isMounted, python, run, startMount, tempDir, useMountHooks, waitFor } from './harness.js';

useMountHooks();

/** Stats every path `rounds` times; the daemon thread's switches meanwhile and the sizes seen. */
async function statSwitches(pid: number, rounds: number, paths: string[]): Promise<{ switches: number; sizes: string }> {
  const { switches, out } = await daemonThreadSwitches(pid, ['rounds, paths = int(args[0]), args[1:]'], [
    'sizes = set()',
    'for r in range(rounds):',
    '    for p in paths: sizes.add(os.lstat(p).st_size)',
    'out = sorted(sizes)',
  ], [String(rounds), ...paths]);
  return { switches, sizes: out };
}

describe('metadata read by the binding', () => {
  it('names whose size is the backing file\'s never reach the daemon; a file written through the mount does, with its VMO\'s size', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 50; i++) files[`d/f${i}`] = 'x'.repeat(100 + i);
    files['served.txt'] = 'abc';
    const m = await startMount({ files, args: ['--attr-timeout', '0', '--writeback-delay', '60s'] });
    const names = Object.keys(files).filter((n) => n !== 'served.txt').map((n) => m.p(n));

    // 50 names × 20 rounds = 1,000 getattr of unserved files.
    const unserved = await statSwitches(m.pid, 20, names);
    expect(unserved.sizes).toBe(`[${Array.from({ length: 50 }, (_, i) => 100 + i).join(', ')}]`);
    // Files pagerfs serves but that nobody opened for writing or truncated: the VMO's size is the
    // backing file's, so the binding still answers.
    for (const n of names.slice(0, 10)) expect((await fsp.readFile(n)).length).toBeGreaterThanOrEqual(100);
    expect((await m.stats()).suppliedPages).toBeGreaterThanOrEqual(10);
    const readOnly = await statSwitches(m.pid, 100, names.slice(0, 10));

    // A file pagerfs serves: written past its backing size and not written back (60 s delay).
    const fh = await fsp.open(m.p('served.txt'), 'r+');
    try {
      await fh.write(Buffer.alloc(5000, 7), 0, 5000, 10_000);
      expect((await fsp.stat(m.b('served.txt'))).size).toBe(3); // not written back yet
      const served = await statSwitches(m.pid, 1000, [m.p('served.txt')]);
      expect(served.sizes).toBe('[15000]');
      expect(served.switches, `served file: ${served.switches} switches for 1,000 getattr`).toBeGreaterThanOrEqual(100);
    } finally {
      await fh.close();
    }
    expect(unserved.switches, `unserved files: ${unserved.switches} switches for 1,000 getattr`).toBeLessThan(100);
    expect(readOnly.switches, `served, read only: ${readOnly.switches} switches for 1,000 getattr`).toBeLessThan(100);
    console.log(`daemon thread switches for 1,000 getattr: unserved ${unserved.switches}, served read-only ${readOnly.switches}`);
  });

  it('the control directory stays the daemon\'s, even over a backing directory of that name', async () => {
    // (Hidden names are covered by test/fs/verified.test.ts: .pagerfs-verity is ENOENT there.)
    const m = await startMount({ files: { 'a.txt': 'a', '.pagerfs/real-file-in-backing': 'x', '.pagerfs-verity/f': 'y' } });
    expect((await fsp.stat(m.p('.pagerfs/stats'))).isFile()).toBe(true);
    await expect(fsp.stat(m.p('.pagerfs/real-file-in-backing'))).rejects.toMatchObject({ code: 'ENOENT' });
    // The directory pager hides nothing else: the verified pager's sidecar name is an ordinary one here.
    expect((await fsp.stat(m.p('.pagerfs-verity/f'))).size).toBe(1);
  });

  it('readdir of a directory of 5,000 entries read by the binding matches the backing directory (names, d_ino, d_type)', async () => {
    const m = await startMount({ files: { 'big/sub/x': 'x' } });
    // Long names, so the binding's name buffer and entry arrays grow many times over.
    await Promise.all(Array.from({ length: 5000 }, (_, i) => fsp.writeFile(m.b(`big/a-file-with-a-rather-long-name-to-fill-buffers-${i}`), '')));
    await fsp.symlink('sub', m.b('big/link'));
    const script = [
      'import os, sys',
      'for d in sys.argv[1:]:',
      '    print(sorted((e.name, e.inode(), e.is_file(follow_symlinks=False), e.is_dir(follow_symlinks=False), e.is_symlink()) for e in os.scandir(d)))',
    ].join('\n');
    const res = await python(script, [m.p('big'), m.b('big')], { timeoutMs: 60_000 });
    expect(res.code, res.stderr).toBe(0);
    const [viaMount, backing] = res.stdout.trim().split('\n');
    expect(viaMount.length).toBeGreaterThan(5000 * 40);
    expect(viaMount).toBe(backing);
  });
});

describe('the backing lstat handed to chmod, chown and utimens (level 15)', () => {
  // A small server of the raw binding: each op prints what it was handed, then does the change on
  // the backing file, so that what the handler saw can be compared with the file before and after.
  const SERVER = `
const fs = require('fs');
const Fuse = require(${JSON.stringify(path.join(ROOT, 'node_modules/fuse-native'))});
const [mnt, root] = process.argv.slice(1);
const full = (p) => root + p;
const report = (op, p, backing) => console.log(JSON.stringify({ op, path: p, backing: backing ?? null }));
const ops = {
  getattr (p, cb) { fs.lstat(full(p), (err, st) => err ? cb(err.errno) : cb(0, st)); },
  readdir (p, cb) { fs.readdir(full(p), (err, names) => err ? cb(err.errno) : cb(0, names)); },
  chmod (p, mode, cb, backing) { report('chmod', p, backing); fs.chmod(full(p), mode, (err) => cb(err ? err.errno : 0)); },
  chown (p, uid, gid, cb, backing) { report('chown', p, backing); fs.chown(full(p), uid, gid, (err) => cb(err ? err.errno : 0)); },
  utimens (p, atime, mtime, cb, backing) { report('utimens', p, backing); cb(0); },
};
const fuse = new Fuse(mnt, ops, { timeout: false, backingPassthrough: { root, skipTopName: '.hidden', skipXattrPrefix: 'user.x.' } });
fuse.mount((err) => { if (err) { console.error(err.message); process.exit(1); } console.log('{"mounted":true}'); });
process.on('SIGTERM', () => fuse.unmount(() => process.exit(0)));
`;

  it('each gets the lstat of the backing file made before the change, or its errno', async () => {
    const mnt = await tempDir('pagerfs-l15-mnt-');
    const root = await tempDir('pagerfs-l15-back-');
    await fsp.writeFile(path.join(root, 'f'), 'twelve bytes');
    await fsp.chmod(path.join(root, 'f'), 0o600);
    const before = await fsp.lstat(path.join(root, 'f'));
    const lines: string[] = [];
    const child = spawn(process.execPath, ['-e', SERVER, mnt, root], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => lines.push(...d.toString('utf8').split('\n').filter((l) => l !== '')));
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
    try {
      expect(await waitFor(() => lines.includes('{"mounted":true}'), 10_000, 50, 'the server mounted'), stderr).toBe(true);
      await fsp.chmod(path.join(mnt, 'f'), 0o640);
      await fsp.chown(path.join(mnt, 'f'), 1234, 5678);
      await fsp.utimes(path.join(mnt, 'f'), 1000, 2000);
      // A name removed from the backing directory after the kernel looked it up: the lstat's errno,
      // and the op still runs (its own chmod fails).
      await fsp.writeFile(path.join(root, 'gone'), 'x');
      await fsp.stat(path.join(mnt, 'gone'));
      await fsp.rm(path.join(root, 'gone'));
      await fsp.chmod(path.join(mnt, 'gone'), 0o600).catch(() => undefined);
      const seen = lines.filter((l) => l.startsWith('{"op"')).map((l) => JSON.parse(l) as {
        op: string; path: string; backing: { errno: number; ino?: number; mode?: number; uid?: number; size?: number; mtimeSec?: number } | null;
      });
      const of = (op: string, p = '/f') => seen.find((s) => s.op === op && s.path === p)?.backing;
      // chmod saw the mode before it (0600); chown saw the mode chmod left and the old owner; utimens
      // the owner chown left and the old mtime.
      expect(of('chmod')).toMatchObject({ errno: 0, ino: before.ino, mode: 0o100600, size: 12, uid: before.uid });
      expect(of('chown')).toMatchObject({ errno: 0, ino: before.ino, mode: 0o100640, uid: before.uid });
      expect(of('utimens')).toMatchObject({ errno: 0, ino: before.ino, uid: 1234, mtimeSec: Math.floor(before.mtimeMs / 1000) });
      expect(of('chmod', '/gone')).toEqual({ errno: -2 });
    } finally {
      child.kill('SIGTERM');
      await waitFor(() => child.exitCode !== null, 5000, 50, 'the server exited').catch(() => child.kill('SIGKILL'));
      if (await isMounted(mnt)) await run('fusermount', ['-uz', mnt]);
    }
  });
});
