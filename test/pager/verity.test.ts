import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as fsc, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, EXIT } from '../../fs/config.js';
import { sealCommand } from '../../fs/seal.js';
import { flipByte } from './helpers.js';
import { syntheticFill } from '../../pager/synthetic-content.js';
import {
  EMPTY_ROOT_HASH, MANIFEST_FILE, VERITY_DIR, VerityError, checkDirectory, isSidecarPath, loadSeal,
  sealDirectory, treeFilePath, treeLevelCounts, type FileCheck,
} from '../../pager/verity.js';

const PAGE = 4096;
const MiB = 1024 * 1024;

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await fsp.rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await fsp.mkdtemp(path.join(tmpdir(), 'pagerfs-verity-'));
  dirs.push(d);
  return d;
}

/** Deterministic bytes for file number `n` (the synthetic pager's content). */
function content(n: number, sizeBytes: number): Buffer {
  const b = Buffer.alloc(sizeBytes);
  syntheticFill(1234, n, 0, b);
  return b;
}

async function put(dir: string, rel: string, data: Uint8Array): Promise<void> {
  await fsp.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
  await fsp.writeFile(path.join(dir, rel), data);
}

/** The tree of `data` written straight from the format in pager/verity.ts, with createHash. */
function referenceTree(data: Uint8Array): { tree: Buffer; root: string } {
  const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();
  const padded = (b: Uint8Array): Buffer => Buffer.concat([b, Buffer.alloc(PAGE - b.length)]);
  if (data.length === 0) return { tree: Buffer.alloc(0), root: createHash('sha256').digest('hex') };
  let level: Buffer[] = [];
  for (let off = 0; off < data.length; off += PAGE) level.push(sha(padded(data.subarray(off, off + PAGE))));
  const levels = [level];
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let j = 0; j < level.length; j += 128) next.push(sha(padded(Buffer.concat(level.slice(j, j + 128)))));
    levels.push(next);
    level = next;
  }
  return { tree: Buffer.concat(levels.flat()), root: level[0].toString('hex') };
}

async function runCommand(dir: string, check: boolean): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await sealCommand(dir, { check }, (l) => lines.push(l));
  return { code, lines };
}

async function expectVerityError(p: Promise<unknown>, code: VerityError['code'], message: RegExp): Promise<void> {
  const err: unknown = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(VerityError);
  expect((err as VerityError).code).toBe(code);
  expect((err as VerityError).message).toMatch(message);
  expect((err as VerityError).message).not.toContain('\n');
}

const SIZES: Array<[string, number]> = [
  ['empty', 0],
  ['one byte', 1],
  ['4095 bytes', PAGE - 1],
  ['one page', PAGE],
  ['4097 bytes', PAGE + 1],
  ['128 pages (one full hash block)', 128 * PAGE],
  ['129 pages (two levels above the leaves)', 129 * PAGE],
  ['10 MiB', 10 * MiB],
];

describe('tree geometry', () => {
  it.each([
    [0, []],
    [1, [1]],
    [2, [2, 1]],
    [128, [128, 1]],
    [129, [129, 2, 1]],
    [2560, [2560, 20, 1]],
    [128 * 128 + 1, [16385, 129, 2, 1]],
  ])('a file of %d pages has levels %j', (pages, counts) => {
    expect(treeLevelCounts(pages)).toEqual(counts);
  });

  it('the root of an empty file is SHA-256 of no bytes', () => {
    expect(EMPTY_ROOT_HASH).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it.each([
    ['.pagerfs-verity', true],
    ['.pagerfs-verity/manifest.json', true],
    ['/.pagerfs-verity/trees/x.tree', true],
    ['.pagerfs-verity.new-12-0123abcd', true],
    ['.pagerfs-verity.old-5-deadbeef/trees', true],
    ['.pagerfs-verity.old-notes', false],
    ['a/.pagerfs-verity', false],
    ['.pagerfs', false],
  ])('isSidecarPath(%s) is %s', (rel, yes) => {
    expect(isSidecarPath(rel)).toBe(yes);
  });
});

describe('sealDirectory and VerityTree', () => {
  it.each(SIZES)('a sealed %s file verifies page by page and in one batch', async (_name, sizeBytes) => {
    const dir = await tempDir();
    const data = content(1, sizeBytes);
    await put(dir, 'f.bin', data);
    const summary = await sealDirectory(dir);
    expect(summary).toMatchObject({ files: 1, bytes: sizeBytes, pages: Math.ceil(sizeBytes / PAGE), sidecarDir: path.join(dir, VERITY_DIR) });

    const seal = await loadSeal(dir);
    const tree = await seal.openTree('f.bin');
    expect(tree.pageCount).toBe(Math.ceil(sizeBytes / PAGE));
    expect(tree.rootHash).toBe(referenceTree(data).root);
    for (let p = 0; p < tree.pageCount; p++) {
      const bytes = data.subarray(p * PAGE, (p + 1) * PAGE);
      expect(tree.pageLengthBytes(p)).toBe(bytes.length);
      if (!tree.verifyPage(p, bytes)) expect.fail(`page ${p} does not verify`);
    }
    expect(tree.verifyPages(0, data)).toEqual([]);
    expect(tree.verifyPages(0, Array.from({ length: tree.pageCount }, (_, p) => data.subarray(p * PAGE, (p + 1) * PAGE)))).toEqual([]);
    if (sizeBytes === 0) {
      expect(tree.rootHash).toBe(EMPTY_ROOT_HASH);
      expect(() => tree.verifyPage(0, new Uint8Array(0))).toThrow(RangeError);
    }
  });

  it.each(SIZES.filter(([, s]) => s > 0))('the tree file of a %s file holds the documented levels', async (_name, sizeBytes) => {
    const dir = await tempDir();
    const data = content(2, sizeBytes);
    await put(dir, 'f.bin', data);
    await sealDirectory(dir);
    const want = referenceTree(data);
    expect((await fsp.readFile(treeFilePath(dir, 'f.bin'))).equals(want.tree)).toBe(true);
    const manifest = JSON.parse(await fsp.readFile(path.join(dir, VERITY_DIR, MANIFEST_FILE), 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ format: 'pagerfs-verity', version: 1, pageSizeBytes: 4096, hashAlgorithm: 'sha256', hashesPerBlock: 128 });
    expect(manifest.files).toEqual([{ path: 'f.bin', sizeBytes, rootHash: want.root, mtimeMs: (await fsp.stat(path.join(dir, 'f.bin'))).mtimeMs }]);
  });

  it('the last page verifies as its own bytes or as a whole frame with a zero tail, not with a dirty tail', async () => {
    const dir = await tempDir();
    const data = content(3, 2 * PAGE + 100);
    await put(dir, 'f.bin', data);
    await sealDirectory(dir);
    const tree = await (await loadSeal(dir)).openTree('f.bin');
    const frame = Buffer.alloc(PAGE);
    data.copy(frame, 0, 2 * PAGE);
    expect(tree.verifyPage(2, frame)).toBe(true);
    expect(tree.verifyPage(2, data.subarray(2 * PAGE))).toBe(true);
    frame[PAGE - 1] = 1;
    expect(tree.verifyPage(2, frame)).toBe(false);
    // A short read of a full page, or a last page of the wrong length, does not match.
    expect(tree.verifyPage(0, data.subarray(0, PAGE - 1))).toBe(false);
    expect(tree.verifyPage(2, data.subarray(2 * PAGE, 2 * PAGE + 99))).toBe(false);
    // A run of frames with the file's end inside the last one.
    const frames = Buffer.alloc(3 * PAGE);
    data.copy(frames);
    expect(tree.verifyPages(0, frames)).toEqual([]);
    expect(() => tree.verifyPage(3, frame)).toThrow(RangeError);
    expect(() => tree.verifyPages(2, frames)).toThrow(RangeError);
    expect(() => tree.verifyPages(0, frames, 4)).toThrow(RangeError);
  });

  it('a flipped byte fails exactly its page, alone or in a batch', async () => {
    const dir = await tempDir();
    const data = content(4, 10 * MiB);
    await put(dir, 'big.bin', data);
    await sealDirectory(dir);
    const tree = await (await loadSeal(dir)).openTree('big.bin');
    const flipAt = 1234 * PAGE + 567;
    data[flipAt] ^= 0x40;
    for (let p = 0; p < tree.pageCount; p++) {
      expect.soft(tree.verifyPage(p, data.subarray(p * PAGE, (p + 1) * PAGE)), `page ${p}`).toBe(p !== 1234);
    }
    expect(tree.verifyPages(0, data)).toEqual([1234]);
    expect(tree.verifyPages(1200, data.subarray(1200 * PAGE, 1300 * PAGE))).toEqual([1234]);
    expect(tree.verifyPages(1233, [data.subarray(1233 * PAGE, 1234 * PAGE), data.subarray(1234 * PAGE, 1235 * PAGE)])).toEqual([1234]);
  });

  it('seals nested directories and leaves out the sidecar, .pagerfs at the root, symlinks and fifos', async () => {
    const dir = await tempDir();
    await put(dir, 'a.bin', content(1, 10));
    await put(dir, 'd/b.bin', content(2, PAGE + 3));
    await put(dir, 'd/e/f/c.bin', content(3, 3 * PAGE));
    await put(dir, 'd/.pagerfs', content(4, 5)); // the name is reserved at the root only
    await put(dir, '.pagerfs/stats', content(5, 5));
    await put(dir, '.pagerfs-verity.old-notes', content(6, 6)); // not a temp sidecar's name: sealed
    await fsp.mkdir(path.join(dir, 'empty'));
    await fsp.symlink('a.bin', path.join(dir, 'link'));
    await fsp.symlink('../d', path.join(dir, 'd/e/dirlink'));
    execFileSync('mkfifo', [path.join(dir, 'd/pipe')]);
    const first = await sealDirectory(dir);
    const second = await sealDirectory(dir); // the sidecar now exists and must not seal itself
    for (const summary of [first, second]) {
      expect(summary.skipped).toEqual([
        { path: '.pagerfs', reason: 'reserved' },
        { path: 'd/e/dirlink', reason: 'symlink' },
        { path: 'd/pipe', reason: 'special' },
        { path: 'link', reason: 'symlink' },
      ]);
    }
    const seal = await loadSeal(dir);
    expect([...seal.files.keys()]).toEqual(['.pagerfs-verity.old-notes', 'a.bin', 'd/.pagerfs', 'd/b.bin', 'd/e/f/c.bin']);
    expect(seal.skipped).toEqual(second.skipped);
    expect((await seal.openTree('d/e/f/c.bin')).verifyPages(0, content(3, 3 * PAGE))).toEqual([]);
    expect((await seal.openTree('/d/b.bin')).pageCount).toBe(2);
    const report = await checkDirectory(dir);
    expect(report.clean).toBe(true);
    expect(report.unsealed).toEqual([]);
    // The sidecar holds the manifest and one tree per sealed file, nothing else.
    expect((await fsp.readdir(path.join(dir, VERITY_DIR))).sort()).toEqual([MANIFEST_FILE, 'trees']);
    expect((await fsp.readdir(path.join(dir, VERITY_DIR, 'trees'))).length).toBe(5);
    expect((await fsp.readdir(dir)).filter(isSidecarPath)).toEqual([VERITY_DIR]);
  });

  it('reports progress per file, ending with every file and byte done', async () => {
    const dir = await tempDir();
    await put(dir, 'a', content(1, 100));
    await put(dir, 'b/c', content(2, 3 * PAGE));
    const seen: string[] = [];
    await sealDirectory(dir, { onProgress: (p) => seen.push(`${p.path} ${p.filesDone}/${p.filesTotal} ${p.bytesDone}/${p.bytesTotal}`) });
    expect(seen).toEqual([`a 1/2 100/${100 + 3 * PAGE}`, `b/c 2/2 ${100 + 3 * PAGE}/${100 + 3 * PAGE}`]);
  });

  it('re-sealing replaces the old sidecar whole and removes a stray temp sidecar', async () => {
    const dir = await tempDir();
    await put(dir, 'gone.bin', content(1, PAGE));
    await put(dir, 'kept.bin', content(2, PAGE));
    await sealDirectory(dir);
    const goneTree = treeFilePath(dir, 'gone.bin');
    await fsp.access(goneTree);
    await fsp.rm(path.join(dir, 'gone.bin'));
    await put(dir, 'kept.bin', content(3, 2 * PAGE));
    await fsp.mkdir(path.join(dir, '.pagerfs-verity.new-99-0123abcd/trees'), { recursive: true });
    expect((await checkDirectory(dir)).clean).toBe(false);
    await sealDirectory(dir);
    await expect(fsp.access(goneTree)).rejects.toThrow();
    const report = await checkDirectory(dir);
    expect(report.clean).toBe(true);
    expect(report.files).toEqual([{ path: 'kept.bin', status: 'ok', sizeBytes: 2 * PAGE, touched: false }]);
    expect((await fsp.readdir(dir)).sort()).toEqual([VERITY_DIR, 'kept.bin']);
  });
});

describe('loadSeal and openTree failures', () => {
  it('a directory without a sidecar is not sealed, with a one-line hint', async () => {
    const dir = await tempDir();
    await put(dir, 'a', content(1, 10));
    await expectVerityError(loadSeal(dir), 'not-sealed', /is not sealed: run `pagerfs seal .*`/);
    await expectVerityError(checkDirectory(dir), 'not-sealed', /is not sealed/);
  });

  it.each([
    ['not JSON', (t: string) => t.slice(0, 40), /not JSON/],
    ['empty', () => '', /not JSON/],
    ['another format', (t: string) => t.replace('"pagerfs-verity"', '"blobfs"'), /format is "blobfs"/],
    ['a newer version', (t: string) => t.replace('"version": 1', '"version": 2'), /version 2/],
    ['another page size', (t: string) => t.replace('"pageSizeBytes": 4096', '"pageSizeBytes": 16384'), /page size 16384/],
    ['a bad root hash', (t: string) => t.replace(/"rootHash": "[0-9a-f]{4}/, '"rootHash": "XYZW'), /no valid rootHash/],
    ['a path escaping the directory', (t: string) => t.replace('"path": "a"', '"path": "../a"'), /not a relative path/],
  ])('a manifest that is %s is damaged as a whole', async (_name, garble, message) => {
    const dir = await tempDir();
    await put(dir, 'a', content(1, 10));
    await sealDirectory(dir);
    const file = path.join(dir, VERITY_DIR, MANIFEST_FILE);
    await fsp.writeFile(file, garble(await fsp.readFile(file, 'utf8')));
    await expectVerityError(loadSeal(dir), 'damaged', message);
    const { code, lines } = await runCommand(dir, true);
    expect(code).toBe(1);
    expect(lines[0]).toMatch(new RegExp(`${VERITY_DIR}: damaged \\(`));
  });

  it('a sidecar without its manifest is damaged', async () => {
    const dir = await tempDir();
    await put(dir, 'a', content(1, 10));
    await sealDirectory(dir);
    await fsp.rm(path.join(dir, VERITY_DIR, MANIFEST_FILE));
    await expectVerityError(loadSeal(dir), 'damaged', /manifest\.json is missing/);
  });

  it.each([
    ['is missing', async (f: string) => fsp.rm(f), /tree file is missing/],
    ['is truncated', async (f: string) => fsp.truncate(f, 64), /holds 64 bytes, 82592 expected/],
    ['is one byte longer', async (f: string) => fsp.appendFile(f, 'x'), /holds 82593 bytes/],
    ['has a garbled leaf', async (f: string) => flipByte(f, 100 * 32 + 5), /levels 0 and 1 disagree/],
    ['has a garbled upper level', async (f: string) => flipByte(f, 2560 * 32 + 7), /levels 0 and 1 disagree/],
    ['has a garbled root', async (f: string) => flipByte(f, 2580 * 32 + 31), /levels 1 and 2 disagree/],
    ['is the (consistent) tree of other bytes', async (f: string) => fsp.writeFile(f, referenceTree(content(9, 10 * MiB)).tree), /does not hash up to the root in the manifest/],
  ])('a tree file that %s is damaged for its file alone', async (_name, garble, message) => {
    const dir = await tempDir();
    await put(dir, 'big.bin', content(1, 10 * MiB)); // levels 2560, 20, 1: 2581 hashes
    await put(dir, 'small.bin', content(2, 10));
    await sealDirectory(dir);
    await garble(treeFilePath(dir, 'big.bin'));
    const seal = await loadSeal(dir);
    await expectVerityError(seal.openTree('big.bin'), 'damaged', message);
    await seal.openTree('small.bin');
    const report = await checkDirectory(dir);
    expect(report.files[0]).toMatchObject({ path: 'big.bin', status: 'damaged', reason: expect.stringMatching(message) as unknown });
    expect(report.files[1]).toMatchObject({ path: 'small.bin', status: 'ok' });
    const { code, lines } = await runCommand(dir, true);
    expect(code).toBe(1);
    expect(lines[0]).toMatch(/^big\.bin: tree damaged \(/);
    expect(lines).toHaveLength(2);
  });

  it('a tree file replaced by a FIFO is damaged at once, not an open that waits forever for a writer', async () => {
    const dir = await tempDir();
    await put(dir, 'a.bin', content(1, 3 * PAGE));
    await sealDirectory(dir);
    const fifo = treeFilePath(dir, 'a.bin');
    await fsp.rm(fifo);
    execFileSync('mkfifo', [fifo]);
    const seal = await loadSeal(dir);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // It used to block in open(2) on libuv's pool (a verified mount's reader of the file hung for good).
      const outcome = await Promise.race([
        seal.openTree('a.bin').then(() => 'opened', (err: unknown) => err),
        new Promise((r) => { timer = setTimeout(() => r('hung'), 3000); }),
      ]);
      expect(outcome).toBeInstanceOf(VerityError);
      expect(outcome).toMatchObject({ code: 'damaged', message: expect.stringMatching(/tree file is not a regular file/) as unknown });
    } finally {
      clearTimeout(timer);
      // Release an open still blocked on the FIFO (before the fix), so the worker can exit.
      await fsp.open(fifo, fsc.O_WRONLY | fsc.O_NONBLOCK).then((fh) => fh.close(), () => undefined);
    }
  });

  it('a manifest replaced by a FIFO is damaged at once (mount and seal --check used to wait forever)', async () => {
    const dir = await tempDir();
    await put(dir, 'a.bin', content(1, 10));
    await sealDirectory(dir);
    const fifo = path.join(dir, VERITY_DIR, MANIFEST_FILE);
    await fsp.rm(fifo);
    execFileSync('mkfifo', [fifo]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const outcome = await Promise.race([
        loadSeal(dir).then(() => 'loaded', (err: unknown) => err),
        new Promise((r) => { timer = setTimeout(() => r('hung'), 3000); }),
      ]);
      expect(outcome).toMatchObject({ code: 'damaged', message: expect.stringMatching(/manifest\.json is not a regular file/) as unknown });
    } finally {
      clearTimeout(timer);
      await fsp.open(fifo, fsc.O_WRONLY | fsc.O_NONBLOCK).then((fh) => fh.close(), () => undefined);
    }
  });

  it('a path that is not in the seal is not sealed', async () => {
    const dir = await tempDir();
    await put(dir, 'a', content(1, 10));
    await sealDirectory(dir);
    await expectVerityError((await loadSeal(dir)).openTree('b'), 'not-sealed', /"b" is not sealed in/);
  });
});

describe('checkDirectory', () => {
  it('reports exactly the page holding a flipped byte of a 10 MiB file', async () => {
    const dir = await tempDir();
    await put(dir, 'big.bin', content(1, 10 * MiB));
    await put(dir, 'other.bin', content(2, 5000));
    await sealDirectory(dir);
    await flipByte(path.join(dir, 'big.bin'), 777 * PAGE + 4095);
    const report = await checkDirectory(dir);
    expect(report.files).toEqual<FileCheck[]>([
      { path: 'big.bin', status: 'corrupted', sizeBytes: 10 * MiB, badPages: [777] },
      { path: 'other.bin', status: 'ok', sizeBytes: 5000, touched: false },
    ]);
    expect(report.pagesChecked).toBe(2560 + 2);
    expect(report.bytesChecked).toBe(10 * MiB + 5000);
    expect(report.clean).toBe(false);
  });

  it.each([
    ['grown', 10 * MiB + 1],
    ['shrunk', 10 * MiB - PAGE],
    ['emptied', 0],
  ])('a file %s since sealing is changed', async (_name, newSize) => {
    const dir = await tempDir();
    await put(dir, 'big.bin', content(1, 10 * MiB));
    await sealDirectory(dir);
    await fsp.truncate(path.join(dir, 'big.bin'), newSize);
    const report = await checkDirectory(dir);
    expect(report.files).toEqual([{ path: 'big.bin', status: 'changed', sealedSizeBytes: 10 * MiB, sizeBytes: newSize }]);
    const { code, lines } = await runCommand(dir, true);
    expect(code).toBe(1);
    expect(lines[0]).toBe(`big.bin: changed since sealing (size ${10 * MiB} -> ${newSize})`);
  });

  it('reports a deleted file as missing, a replaced one by what is there, and a new file as not sealed', async () => {
    const dir = await tempDir();
    await put(dir, 'a', content(1, 10));
    await put(dir, 'b', content(2, 20));
    await put(dir, 'c', content(3, 30));
    await sealDirectory(dir);
    await fsp.rm(path.join(dir, 'a'));
    await fsp.rm(path.join(dir, 'b'));
    await fsp.mkdir(path.join(dir, 'b'));
    await put(dir, 'n/new', content(4, 40));
    const report = await checkDirectory(dir);
    expect(report.files).toEqual([
      { path: 'a', status: 'missing', sealedSizeBytes: 10 },
      { path: 'b', status: 'missing', sealedSizeBytes: 20, now: 'a directory' },
      { path: 'c', status: 'ok', sizeBytes: 30, touched: false },
    ]);
    expect(report.unsealed).toEqual(['n/new']);
    const { code, lines } = await runCommand(dir, true);
    expect(code).toBe(1);
    expect(lines.slice(0, 3)).toEqual(['a: missing (sealed with 10 bytes)', 'b: is now a directory (sealed with 20 bytes)', 'n/new: not sealed']);
    expect(lines[3]).toMatch(/: 2 missing, 1 not sealed$/);
  });

  it('a file touched but with the same bytes is ok', async () => {
    const dir = await tempDir();
    await put(dir, 'a', content(1, 10));
    await sealDirectory(dir);
    await fsp.utimes(path.join(dir, 'a'), new Date(2000, 1, 1), new Date(2000, 1, 1));
    const report = await checkDirectory(dir);
    expect(report.files).toEqual([{ path: 'a', status: 'ok', sizeBytes: 10, touched: true }]);
    expect(report.clean).toBe(true);
  });
});

describe('sealCommand', () => {
  it('seals with a summary, then checks clean with exit 0', async () => {
    const dir = await tempDir();
    await put(dir, 'a.bin', content(1, 10 * MiB));
    await put(dir, 'd/b.bin', content(2, 1));
    await fsp.symlink('a.bin', path.join(dir, 'link'));
    const sealed = await runCommand(dir, false);
    expect(sealed.code).toBe(0);
    expect(sealed.lines[0]).toMatch(new RegExp(`^Sealed "${dir}": 2 files, 10\\.0MiB in 2561 pages, in \\d+\\.\\d\\d s$`));
    expect(sealed.lines[1]).toBe(`Hash trees (80.7KiB) and manifest in "${path.join(dir, VERITY_DIR)}"`);
    expect(sealed.lines.slice(2)).toEqual(['Left out 1 (not sealed, not served by a verified mount):', '  link: symlink, not followed']);
    const checked = await runCommand(dir, true);
    expect(checked).toEqual({
      code: 0,
      lines: [expect.stringMatching(new RegExp(`^Checked "${dir}" \\(sealed .*\\): 2 sealed files, 2561 pages \\(10\\.0MiB\\) read: all intact$`)) as unknown],
    });
  });

  it('--check prints each corrupted page run with its byte range and exits 1', async () => {
    const dir = await tempDir();
    await put(dir, 'big.bin', content(1, 10 * MiB));
    await put(dir, 'tail.bin', content(2, 2 * PAGE + 10));
    await sealDirectory(dir);
    for (const at of [5, 100 * PAGE, 101 * PAGE + 9, 102 * PAGE]) await flipByte(path.join(dir, 'big.bin'), at);
    await flipByte(path.join(dir, 'tail.bin'), 2 * PAGE + 9);
    const { code, lines } = await runCommand(dir, true);
    expect(code).toBe(1);
    expect(lines).toEqual([
      'big.bin: page 0 (bytes 0-4096) corrupted',
      `big.bin: pages 100-102 (bytes ${100 * PAGE}-${103 * PAGE}) corrupted`,
      `tail.bin: page 2 (bytes ${2 * PAGE}-${2 * PAGE + 10}) corrupted`,
      expect.stringMatching(/: 2 sealed files, 2563 pages \(10\.0MiB\) read: 2 corrupted \(5 pages\)$/) as unknown,
    ]);
  });

  it.each([
    ['seal', false],
    ['check', true],
  ])('%s refuses a missing path and a file with EXIT.BAD_PATH', async (verb, check) => {
    const dir = await tempDir();
    await put(dir, 'file', content(1, 1));
    for (const [target, why] of [[path.join(dir, 'nope'), 'directory does not exist'], [path.join(dir, 'file'), 'not a directory']]) {
      const err: unknown = await sealCommand(target, { check }, () => undefined).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).exitCode).toBe(EXIT.BAD_PATH);
      expect((err as ConfigError).message).toBe(`Cannot ${verb} "${target}": ${why}`);
    }
  });

  it('--check on a directory that is not sealed throws ConfigError with the seal hint', async () => {
    const dir = await tempDir();
    const err: unknown = await sealCommand(dir, { check: true }, () => undefined).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).exitCode).toBe(EXIT.BAD_PATH);
    expect((err as ConfigError).message).toBe(`Cannot check "${dir}": "${dir}" is not sealed: run \`pagerfs seal ${dir}\``);
  });
});
