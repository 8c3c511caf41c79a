/**
 * PagerFilesystem's operations called directly, without a mount, where a test needs an exact
 * interleaving that the kernel would only produce by chance: the FUSE handlers are plain methods
 * with callbacks, over a real DirectoryPager and real backing files.
 */
import { constants as fsc, mkdtempSync, promises as fsp, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_VMO_SIZE_BYTES, PAGE_SIZE, VmSystem } from '../../src/index.js';
import { DirectoryPager, FaultInjector, parseFaultRules } from '../../pager/index.js';
import { PagerFilesystem } from '../../fs/filesystem.js';

interface Setup {
  dir: string;
  dp: DirectoryPager;
  fsys: PagerFilesystem;
}

const made: Setup[] = [];
afterEach(async () => {
  for (const s of made.splice(0)) {
    await s.dp.shutdown().catch(() => undefined);
    rmSync(s.dir, { recursive: true, force: true });
  }
});

function setup(files: Record<string, Buffer | string> = {}, faults = ''): Setup {
  const dir = mkdtempSync(path.join(tmpdir(), 'pagerfs-ops-'));
  for (const [name, data] of Object.entries(files)) writeFileSync(path.join(dir, name), data);
  const system = new VmSystem({ budgetBytes: 64 * PAGE_SIZE });
  const dp = new DirectoryPager({
    system, backingDir: dir, writebackDelayMs: 60_000,
    faults: new FaultInjector(faults === '' ? [] : parseFaultRules(faults)),
  });
  dp.start();
  const fsys = new PagerFilesystem({ pager: dp, logger: pino({ level: 'silent' }) });
  const s = { dir, dp, fsys };
  made.push(s);
  return s;
}

/** Calls a callback-style handler; resolves with the callback's arguments. */
function call<A extends unknown[]>(fn: (cb: (...args: A) => void) => void): Promise<A> {
  return new Promise((resolve) => fn((...args: A) => resolve(args)));
}

/** Like call, and tells whether the callback has come yet (to check that a handler is still waiting). */
function started<A extends unknown[]>(fn: (cb: (...args: A) => void) => void): { result: Promise<A>; answered: () => boolean } {
  let answered = false;
  const result = call<A>((cb) => fn((...args: A) => { answered = true; cb(...args); }));
  return { result, answered: () => answered };
}

async function open(s: Setup, p: string, flags: number): Promise<number> {
  const [err, fd] = await call<[number, number?]>((cb) => s.fsys.open(p, flags, cb));
  expect(err, `open ${p}`).toBe(0);
  return fd!;
}

describe('operations in an exact interleaving', () => {
  it('a write waiting for the pager when a truncate cuts the file counts as made before it: it succeeds, and the size is the truncate\'s', async () => {
    const s = setup({ 'log.txt': '' });
    const appender = await open(s, '/log.txt', fsc.O_WRONLY | fsc.O_APPEND);
    const other = await open(s, '/log.txt', fsc.O_WRONLY);
    const line = Buffer.alloc(5000, 0x78);
    // The append grows the file into a dirty zero run: its pages trap DIRTY, so the write waits
    // for the pager, and the truncate (logrotate's copytruncate) runs meanwhile.
    const write = started<[number]>((cb) => s.fsys.write('/log.txt', appender, line, line.length, 0, cb));
    expect(write.answered(), 'the write waits for the pager').toBe(false);
    const truncate = call<[number]>((cb) => s.fsys.ftruncate('/log.txt', other, 0, cb));
    expect(await write.result).toEqual([line.length]); // was EINVAL: the wait ended past the new end
    expect(await truncate).toEqual([0]);
    expect(s.dp.files()[0]!.vmo.contentSizeBytes).toBe(0);
    // The next append lands at the new end.
    expect(await call<[number]>((cb) => s.fsys.write('/log.txt', appender, line, 10, 0, cb))).toEqual([10]);
    expect(s.dp.files()[0]!.vmo.contentSizeBytes).toBe(10);
    for (const fd of [appender, other]) { // close(2): FLUSH (writes back), then RELEASE
      expect(await call((cb) => s.fsys.flush('/log.txt', fd, cb))).toEqual([0]);
      await call((cb) => s.fsys.release('/log.txt', fd, cb));
    }
    expect(await fsp.readFile(path.join(s.dir, 'log.txt'))).toEqual(line.subarray(0, 10));
  });

  it('a reader never sees as zeros the stretch a waiting write grew the file by: it reads up to where that write has got', async () => {
    const s = setup({ 'grow.log': 'head\n' });
    const appender = await open(s, '/grow.log', fsc.O_WRONLY | fsc.O_APPEND);
    const reader = await open(s, '/grow.log', fsc.O_RDONLY);
    const line = Buffer.alloc(5000, 0x78);
    // The append grows the file into new pages, which trap DIRTY: the write waits for the pager,
    // with the file's size already past the line's end (so that another append lands after it).
    const write = started<[number]>((cb) => s.fsys.write('/grow.log', appender, line, line.length, 5, cb));
    expect(write.answered(), 'the append waits for the pager').toBe(false);
    // A tail -f reading past the old end meanwhile got 4,096 zero bytes the file never held.
    const buf = Buffer.alloc(PAGE_SIZE, 0xff);
    const [n] = await call<[number]>((cb) => s.fsys.read('/grow.log', reader, buf, buf.length, PAGE_SIZE, cb));
    expect(n, 'bytes read past the old end while the append waits').toBe(0);
    expect(await write.result).toEqual([line.length]);
    const [m] = await call<[number]>((cb) => s.fsys.read('/grow.log', reader, buf, buf.length, PAGE_SIZE, cb));
    expect(m).toBe(5 + line.length - PAGE_SIZE);
    expect(buf.subarray(0, m)).toEqual(line.subarray(0, m));
  });

  it('a write that fails and undoes its extension of the file keeps what another write acknowledged meanwhile in that extension', async () => {
    // Page 0's DIRTY request fails (an injected IO error); page 1's succeeds.
    const s = setup({ 'ext.bin': '' }, 'ext.bin:0-4095=IO');
    const a = await open(s, '/ext.bin', fsc.O_WRONLY);
    const b = await open(s, '/ext.bin', fsc.O_WRONLY);
    const big = Buffer.alloc(2 * PAGE_SIZE, 0x61);
    const small = Buffer.from('acknowledged');
    // A extends the file to two pages and waits for the pager; B writes into page 1 meanwhile.
    const writeA = started<[number]>((cb) => s.fsys.write('/ext.bin', a, big, big.length, 0, cb));
    expect(writeA.answered(), 'A waits for the pager').toBe(false);
    const writeB = call<[number]>((cb) => s.fsys.write('/ext.bin', b, small, small.length, PAGE_SIZE + 100, cb));
    expect(await writeB).toEqual([small.length]);
    expect(await writeA.result).toEqual([-constants.errno.EIO]);
    const vmo = s.dp.files()[0]!.vmo;
    expect(vmo.contentSizeBytes, 'the size keeps B\'s acknowledged bytes').toBe(PAGE_SIZE + 100 + small.length);
    const got = Buffer.alloc(small.length);
    await vmo.read(got, PAGE_SIZE + 100);
    expect(got).toEqual(small);
  });

  it('a size or write past the largest file is EFBIG and changes nothing, as on a plain file (was EIO past 2^53, EINVAL for writes)', async () => {
    const s = setup({ 'big.bin': 'abc' });
    const fd = await open(s, '/big.bin', fsc.O_RDWR);
    const EFBIG = -constants.errno.EFBIG;
    expect(await call<[number]>((cb) => s.fsys.ftruncate('/big.bin', fd, MAX_VMO_SIZE_BYTES + PAGE_SIZE, cb))).toEqual([EFBIG]);
    expect(await call<[number]>((cb) => s.fsys.ftruncate('/big.bin', fd, 2 ** 60, cb))).toEqual([EFBIG]);
    expect(await call<[number]>((cb) => s.fsys.truncate('/big.bin', 2 ** 60, cb))).toEqual([EFBIG]);
    const one = Buffer.from('x');
    expect(await call<[number]>((cb) => s.fsys.write('/big.bin', fd, one, 1, MAX_VMO_SIZE_BYTES, cb))).toEqual([EFBIG]);
    expect(await call<[number]>((cb) => s.fsys.write('/big.bin', fd, one, 1, 2 ** 60, cb))).toEqual([EFBIG]);
    // A write that crosses the limit is cut short at it (Linux's generic_write_checks).
    const two = Buffer.from('yz');
    expect(await call<[number]>((cb) => s.fsys.write('/big.bin', fd, two, 2, MAX_VMO_SIZE_BYTES - 1, cb))).toEqual([1]);
    expect(s.dp.files()[0]!.vmo.contentSizeBytes).toBe(MAX_VMO_SIZE_BYTES);
    expect(await call<[number]>((cb) => s.fsys.ftruncate('/big.bin', fd, 3, cb))).toEqual([0]);
    expect(await call((cb) => s.fsys.flush('/big.bin', fd, cb))).toEqual([0]);
    await call((cb) => s.fsys.release('/big.bin', fd, cb));
    expect(await fsp.readFile(path.join(s.dir, 'big.bin'), 'utf8')).toBe('abc');
  });
});
