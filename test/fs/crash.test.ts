/**
 * Daemon death and signals: SIGTERM/SIGINT/SIGHUP write back dirty data and exit 0; SIGKILL leaves a stale
 * mount (ENOTCONN) that `mount` refuses without --force and clears with it; `unmount` clears a stale
 * mount too.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PAGE, codeOf, isMounted, python, randomData, runCli, sleep, startMount, useMountHooks, waitFor } from './harness.js';
import { Tmux } from './tmux.js';

useMountHooks();

describe('signals', () => {
  it.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)('%s writes back the dirty data of a still-open file, unmounts and exits 0', async (signal) => {
    const logFile = path.join(os.tmpdir(), `pagerfs-signal-${process.pid}-${signal}.log`);
    await fsp.rm(logFile, { force: true });
    const m = await startMount({ budget: '1MiB', logLevel: 'info', args: ['--writeback-delay', '60s', '--log-file', logFile], files: { 'f.bin': randomData(16 * PAGE) } });
    const data = randomData(6 * PAGE + 11);
    const fh = await fsp.open(m.p('f.bin'), 'r+');
    await fh.write(data, 0, data.length, 3 * PAGE + 1);
    await fh.write('tail', 20 * PAGE); // grows the file too
    // Precondition: the data lives only in pagerfs so far.
    expect((await m.stats()).dirtyBytes).toBeGreaterThan(0);
    expect((await fsp.stat(m.b('f.bin'))).size).toBe(16 * PAGE);
    m.child.kill(signal);
    expect(await m.waitExit(20_000)).toBe(true);
    await fh.close().catch(() => undefined);
    expect(m.exitCode).toBe(0);
    const back = await fsp.readFile(m.b('f.bin'));
    expect(back.length).toBe(20 * PAGE + 4);
    expect(back.subarray(3 * PAGE + 1, 3 * PAGE + 1 + data.length).equals(data)).toBe(true);
    expect(back.subarray(20 * PAGE).toString()).toBe('tail');
    expect(back.subarray(16 * PAGE, 20 * PAGE).equals(Buffer.alloc(4 * PAGE))).toBe(true);
    expect(await waitFor(async () => !(await isMounted(m.mnt)), 5000)).toBe(true);
    // The daemon leaves through _exit(2) (no stdio flush, fs/mount.ts exitDaemon): its log still
    // ends with the unmount, as it must with a synchronous logger.
    const lines = (await fsp.readFile(logFile, 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(lines.at(-1)).toBe('pagerfs unmounted');
    await fsp.rm(logFile, { force: true });
  });
});

describe('stopping under a streaming writer', () => {
  it('SIGTERM while a writer streams: every byte the writer was told was written is in the backing file; its later writes get ENOTCONN', async () => {
    // Before: writes accepted between the last writeback and the VMOs' detach were dropped
    // (4-5 MiB of acknowledged data lost in three runs of this scenario).
    const m = await startMount({ budget: '8MiB', args: ['--writeback-delay', '60s'] });
    const writer = python(`
import errno, os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY)
data = bytes(range(256)) * 4096
acked, why = 0, 'short write'
try:
    while True:
        n = os.pwrite(fd, data, acked)
        acked += n
        if n < len(data): break
except OSError as e:
    why = errno.errorcode.get(e.errno, str(e.errno))
print(acked, why.replace(' ', '-'))
`, [m.p('w.bin')], { timeoutMs: 60_000 });
    await waitFor(async () => ((await fsp.stat(m.b('w.bin')).catch(() => null))?.size ?? 0) > 0 || (await m.stats()).dirtyBytes > 4 * 1024 * 1024);
    m.child.kill('SIGTERM');
    expect(await m.waitExit(30_000)).toBe(true);
    expect(m.exitCode).toBe(0);
    const res = await writer;
    expect(res.code, res.stderr).toBe(0);
    const [ackedText, why] = res.stdout.trim().split(' ');
    const acked = Number(ackedText);
    expect(acked).toBeGreaterThan(0);
    expect(['ENOTCONN', 'short-write']).toContain(why);
    const backing = await fsp.readFile(m.b('w.bin'));
    expect(backing.length, `acknowledged ${acked} bytes`).toBeGreaterThanOrEqual(acked);
    const mib = Buffer.concat(Array.from({ length: 4096 }, () => Buffer.from(Array.from({ length: 256 }, (_, i) => i))));
    let bad = -1;
    for (let i = 0; i < acked && bad < 0; i += mib.length) {
      const n = Math.min(mib.length, acked - i);
      if (!backing.subarray(i, i + n).equals(mib.subarray(0, n))) bad = i;
    }
    expect(bad, 'first MiB that differs').toBe(-1);
  });
});

describe('a killed daemon (SIGKILL)', () => {
  it('leaves a stale mount that answers ENOTCONN; fsync\'d and closed data is already in the backing file', async () => {
    const m = await startMount({ budget: '1MiB', args: ['--writeback-delay', '60s'], files: { 'a': 'a', 'b': 'b' } });
    await fsp.writeFile(m.p('closed.txt'), 'closed data');
    const fh = await fsp.open(m.p('synced.txt'), 'w');
    await fh.write('synced data');
    await fh.sync();
    m.child.kill('SIGKILL');
    expect(await m.waitExit(10_000)).toBe(true);
    expect(m.exitSignal).toBe('SIGKILL');
    expect(await isMounted(m.mnt)).toBe(true);
    expect(await codeOf(fsp.readFile(m.p('a')))).toBe('ENOTCONN');
    expect(await codeOf(fsp.readdir(m.mnt))).toBe('ENOTCONN');
    await fh.close().catch(() => undefined);
    expect(await fsp.readFile(m.b('closed.txt'), 'utf8')).toBe('closed data');
    expect(await fsp.readFile(m.b('synced.txt'), 'utf8')).toBe('synced data');
  });

  // Right after the kill the kernel still answers stat(mountpoint) from its attribute cache (about a
  // second) while everything else is ENOTCONN; later, stat fails too. Both moments must be handled.
  it.each([['right after the kill', 0], ['1.5 s after the kill', 1500]])(
    'mount without --force (%s) refuses the stale mountpoint with one line saying to use --force, and changes nothing',
    async (_when, delayMs) => {
      const m = await startMount({ budget: '1MiB', files: { 'a': 'a' } });
      await fsp.stat(m.mnt); // the kernel now caches the root's attributes
      m.child.kill('SIGKILL');
      expect(await m.waitExit(10_000), 'the daemon died of the SIGKILL').toBe(true);
      await sleep(delayMs);
      const res = await runCli(['mount', m.backing, m.mnt, '--memory-budget', '1MiB'], { timeoutMs: 15_000 });
      expect(res.timedOut).toBe(false);
      expect(res.code).not.toBe(0);
      const lines = res.stderr.trimEnd().split('\n');
      expect(lines, res.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^pagerfs: /);
      expect(lines[0]).toMatch(/stale/);
      expect(lines[0]).toMatch(/--force/);
      // Still the same stale mount.
      expect(await isMounted(m.mnt)).toBe(true);
      expect(await codeOf(fsp.readFile(m.p('a')))).toBe('ENOTCONN');
    });

  it.each([['right after the kill', 0], ['1.5 s after the kill', 1500]])(
    'mount --force (%s) clears the stale mount and serves the backing directory again', async (_when, delayMs) => {
      const data = randomData(10 * PAGE + 1);
      const m = await startMount({ budget: '1MiB', files: { 'a.bin': data } });
      await fsp.writeFile(m.p('written-before.txt'), 'survives');
      await fsp.stat(m.mnt);
      m.child.kill('SIGKILL');
      expect(await m.waitExit(10_000), 'the daemon died of the SIGKILL').toBe(true);
      expect(await codeOf(fsp.readFile(m.p('a.bin')))).toBe('ENOTCONN');
      await sleep(delayMs);
      const again = await startMount({ budget: '1MiB', backing: m.backing, mountpoint: m.mnt, args: ['--force'] });
      expect((await again.stats()).budgetBytes).toBe(1024 * 1024);
      expect((await fsp.readFile(again.p('a.bin'))).equals(data)).toBe(true);
      expect(await fsp.readFile(again.p('written-before.txt'), 'utf8')).toBe('survives');
      // Exactly one mount there now.
      const mounts = (await fsp.readFile('/proc/self/mounts', 'utf8')).split('\n').filter((l) => l.split(' ')[1] === m.mnt);
      expect(mounts).toHaveLength(1);
      const res = await again.unmount();
      expect(res.code).toBe(0);
      expect(again.exitCode).toBe(0);
      expect(await isMounted(m.mnt)).toBe(false);
    });

  it('pagerfs unmount clears a stale mount', async () => {
    const m = await startMount({ budget: '1MiB' });
    m.child.kill('SIGKILL');
    expect(await m.waitExit(10_000), 'the daemon exited').toBe(true);
    expect(await isMounted(m.mnt)).toBe(true);
    const res = await runCli(['unmount', m.mnt], { timeoutMs: 20_000 });
    expect(res.timedOut).toBe(false);
    expect(res.code).toBe(0);
    expect(res.stderr).toMatch(/did not answer/);
    expect(await isMounted(m.mnt)).toBe(false);
    expect(await fsp.readdir(m.mnt)).toEqual([]);
  });
});

describe('a stopped daemon (SIGSTOP)', () => {
  it('every command gives up after the answer timeout with one line (top\'s q still quits), and the mount serves again after SIGCONT', async () => {
    const m = await startMount({ budget: '1MiB', files: { 'd/f.bin': randomData(8 * PAGE) } });
    const env = { ...process.env, PAGERFS_ANSWER_TIMEOUT: '1s' };
    process.kill(m.pid, 'SIGSTOP');
    const t = await Tmux.start(80, 24);
    try {
      // Before: each of these blocked for good in a FUSE request (unmount's stat even shrugged off SIGTERM).
      for (const args of [['budget', m.mnt], ['budget', m.mnt, '2MiB'], ['residency', m.p('d/f.bin')], ['touch', m.p('d')],
        ['stats', m.mnt], ['top', m.mnt, '--once'], ['unmount', m.mnt]]) {
        const res = await runCli(args, { env, timeoutMs: 15_000 });
        const what = `pagerfs ${args.join(' ')}\nexit ${res.code}${res.timedOut ? ' (timed out)' : ''}\nstderr: ${res.stderr}`;
        expect(res.timedOut, what).toBe(false);
        expect(res.code, what).toBe(args[0] === 'unmount' ? 4 : 3);
        expect(res.stderr.trimEnd().split('\n'), what).toHaveLength(1);
        expect(res.stderr, what).toMatch(/^pagerfs: .*has not answered for 1s: it is stopped/);
        expect(res.stdout, what).toBe('');
      }
      expect(await isMounted(m.mnt)).toBe(true);
      // Live top waiting on the stopped daemon: q quits at once (before: the read stuck in libuv's pool held the exit for good).
      await t.type(`PAGERFS_ANSWER_TIMEOUT=60s node dist/fs/cli.js top ${m.mnt}; echo TOP-EXIT-$((40+2)) $?`);
      await sleep(1500);
      await t.keys('q');
      await t.waitFor(/^TOP-EXIT-42 0$/m, 10_000);
    } finally {
      process.kill(m.pid, 'SIGCONT');
      await t.close();
    }
    expect((await runCli(['budget', m.mnt], { env })).stdout).toMatch(/^1MiB/);
    expect((await fsp.readFile(m.p('d/f.bin'))).equals(await fsp.readFile(m.b('d/f.bin')))).toBe(true);
  });
});
