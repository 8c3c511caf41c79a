/**
 * The I/O of the fs suite, each run as a child process (never from the bench's event loop) and
 * timed from spawn to exit by Reaper.runDriver:
 *  - sequential reads: `dd if=FILE of=/dev/null bs=B`; the byte count dd reports is checked.
 *  - random 4 KiB reads: fio (psync, `--invalidate=0` so the backing file stays in the page cache,
 *    numjobs readers, time-based; fio's own IOPS), or, without fio, a python3 stand-in (forked
 *    readers doing os.pread at seeded random page offsets).
 *  - many files: `xargs -0 -a LIST cat` in the mount's root, output to /dev/null (open, read, close
 *    per file; the list is made by the bench, so no directory walk is timed).
 *  - `ls -lR ROOT` to /dev/null (readdir plus a lstat per entry).
 *  - sequential write with fsync: `dd if=/dev/zero of=FILE bs=1M count=N conv=fsync` (a new file:
 *    the previous one is removed, untimed).
 */
import { spawnSync } from 'node:child_process';
import type { Reaper } from './fs-procs.js';

export interface Timed {
  ns: number;
  /** Work done: bytes, reads, files or entries. */
  units: number;
}

export function haveCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export async function seqRead(reaper: Reaper, file: string, blockBytes: number, expectBytes: number): Promise<Timed> {
  const r = await reaper.runDriver('dd', [`if=${file}`, 'of=/dev/null', `bs=${blockBytes}`]);
  const m = /^(\d+) bytes/m.exec(r.stderr);
  const bytes = m === null ? NaN : Number(m[1]);
  if (bytes !== expectBytes) throw new Error(`dd read ${bytes} bytes of ${file}, expected ${expectBytes}:\n${r.stderr}`);
  return { ns: r.ns, units: bytes };
}

const PY_RANDOM = `
import os, sys, time, random
path, jobs, runtime = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
pages = os.stat(path).st_size // 4096
r, w = os.pipe()
kids = []
for j in range(jobs):
    pid = os.fork()
    if pid == 0:
        fd = os.open(path, os.O_RDONLY)
        rnd = random.Random(1000 + j)
        n = 0
        t0 = time.monotonic()
        end = t0 + runtime
        while time.monotonic() < end:
            for _ in range(64):
                os.pread(fd, 4096, rnd.randrange(pages) * 4096)
            n += 64
        os.write(w, ("%d %f\\n" % (n, time.monotonic() - t0)).encode())
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
os.close(w)
data = os.read(r, 65536).decode().split()
ios = sum(int(x) for x in data[0::2])
secs = max(float(x) for x in data[1::2])
print(ios, secs)
`;

/** Random 4 KiB reads over `file` by `jobs` readers for `runtimeS` seconds: reads done and the time they took. */
export async function randRead(reaper: Reaper, file: string, jobs: number, runtimeS: number, useFio: boolean): Promise<Timed & { tool: string }> {
  if (useFio) {
    const r = await reaper.runDriver('fio', ['--name=rand4k', `--filename=${file}`, '--rw=randread', '--bs=4k', '--ioengine=psync',
      `--numjobs=${jobs}`, '--group_reporting', '--time_based', `--runtime=${runtimeS}`, '--invalidate=0', '--output-format=json']);
    const json = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: Array<{ read: { total_ios: number; runtime: number; iops: number } }> };
    const read = json.jobs[0].read;
    // With group_reporting, runtime is the longest job's (ms); total_ios sums every job.
    return { ns: read.runtime * 1e6, units: read.total_ios, tool: 'fio' };
  }
  const r = await reaper.runDriver('python3', ['-c', PY_RANDOM, file, String(jobs), String(runtimeS)]);
  const [ios, secs] = r.stdout.trim().split(/\s+/).map(Number);
  return { ns: secs * 1e9, units: ios, tool: 'python3' };
}

/** Reads every file named in `listFile` (NUL-separated, relative to `root`) with cat. */
export async function readFiles(reaper: Reaper, root: string, listFile: string, count: number): Promise<Timed> {
  const r = await reaper.runDriver('xargs', ['-0', '-a', listFile, 'cat'], { cwd: root, stdoutNull: true });
  return { ns: r.ns, units: count };
}

export async function listTree(reaper: Reaper, root: string, entries: number): Promise<Timed> {
  const r = await reaper.runDriver('ls', ['-lR', root], { stdoutNull: true });
  return { ns: r.ns, units: entries };
}

export async function writeFsync(reaper: Reaper, file: string, mib: number): Promise<Timed> {
  await reaper.runDriver('rm', ['-f', file]);
  const r = await reaper.runDriver('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fsync']);
  const m = /^(\d+) bytes/m.exec(r.stderr);
  if (m === null || Number(m[1]) !== mib * 1024 * 1024) throw new Error(`dd wrote ${m?.[1]} bytes to ${file}, expected ${mib} MiB:\n${r.stderr}`);
  return { ns: r.ns, units: mib * 1024 * 1024 };
}

/** Untimed check: `cmp` of two files (throws when they differ). */
export async function compareFiles(reaper: Reaper, a: string, b: string): Promise<void> {
  await reaper.runDriver('cmp', [a, b]);
}
