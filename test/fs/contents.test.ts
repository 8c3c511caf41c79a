/**
 * File contents through a real mount: bytes read equal the backing files around page boundaries and
 * past the memory budget; writes larger than the budget; truncate/extend zeros; open files that are
 * renamed or unlinked; injected faults; many concurrent readers.
 */
import { promises as fsp } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { PAGE, codeOf, python, randomData, run, sha256, startMount, tempDir, useMountHooks, waitFor, type Mount } from './harness.js';

useMountHooks();

const MiB = 1024 * 1024;
const BUDGET = 4 * MiB;

let m: Mount;
beforeAll(async () => {
  m = await startMount({ budget: '4MiB', args: ['--writeback-delay', '60s'] });
});

/** python3: preads at every (offset, length) pair, compared with the backing file; prints mismatches as JSON. */
const PREAD_CHECK = `
import json, os, sys
via, back = sys.argv[1], sys.argv[2]
offs = json.loads(sys.argv[3]); lens = json.loads(sys.argv[4])
data = open(back, 'rb').read()
fd = os.open(via, os.O_RDONLY)
bad = []
for off in offs:
    for ln in lens:
        got = b''
        while len(got) < ln:
            chunk = os.pread(fd, ln - len(got), off + len(got))
            if not chunk:
                break
            got += chunk
        if got != data[off:off + ln]:
            bad.append([off, ln, len(got), len(data[off:off + ln])])
os.close(fd)
print(json.dumps(bad))
`;

describe('bytes read equal the backing file', () => {
  const sizes = [0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE - 1, 2 * PAGE, 2 * PAGE + 1, 3 * MiB + 17, BUDGET + 3 * MiB + 5];

  it.each(sizes)('a %i-byte file reads back identically (readFile, cat, dd with odd block sizes)', async (size) => {
    const data = randomData(size);
    const rel = `sizes/f-${size}`;
    await fsp.mkdir(m.b('sizes'), { recursive: true });
    await fsp.writeFile(m.b(rel), data);
    expect((await fsp.stat(m.p(rel))).size).toBe(size);
    const viaRead = await fsp.readFile(m.p(rel));
    expect(viaRead.length).toBe(size);
    expect(sha256(viaRead)).toBe(sha256(data));
    const cat = await run('sh', ['-c', `cat "$1" | sha256sum`, 'sh', m.p(rel)]);
    expect(cat.stdout.split(' ')[0]).toBe(sha256(data));
    const dd = await run('sh', ['-c', `dd if="$1" bs=4097 status=none | sha256sum`, 'sh', m.p(rel)]);
    expect(dd.stdout.split(' ')[0]).toBe(sha256(data));
    // Again: pages now resident (or evicted and faulted back in).
    expect(sha256(await fsp.readFile(m.p(rel)))).toBe(sha256(data));
  });

  it('preads at unaligned offsets and lengths across page boundaries match the backing bytes', async () => {
    const data = randomData(5 * PAGE + 321);
    await fsp.writeFile(m.b('unaligned'), data);
    const offs = [0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE - 7, 3 * PAGE + 100, 5 * PAGE, 5 * PAGE + 320, 5 * PAGE + 321, 6 * PAGE];
    const lens = [1, 2, 17, PAGE - 1, PAGE, PAGE + 1, 3 * PAGE + 5, 10 * PAGE];
    const res = await python(PREAD_CHECK, [m.p('unaligned'), m.b('unaligned'), JSON.stringify(offs), JSON.stringify(lens)]);
    expect(res.stderr).toBe('');
    expect(JSON.parse(res.stdout)).toEqual([]);
  });

  it('a file three times the budget reads correctly twice in a row, and its start again after eviction', async () => {
    const data = randomData(3 * BUDGET + 1234);
    await fsp.writeFile(m.b('huge'), data);
    for (let i = 0; i < 2; i++) expect(sha256(await fsp.readFile(m.p('huge')))).toBe(sha256(data));
    const fh = await fsp.open(m.p('huge'), 'r');
    try {
      const buf = Buffer.alloc(3 * PAGE);
      await fh.read(buf, 0, buf.length, 10);
      expect(buf.equals(data.subarray(10, 10 + buf.length))).toBe(true);
    } finally {
      await fh.close();
    }
  });
});

describe('writes', () => {
  it('16 MiB written with dd under a 4 MiB budget ends up correct in the backing file after close', async () => {
    const src = `${await tempDir('pagerfs-src-')}/src.bin`;
    const data = randomData(16 * MiB);
    await fsp.writeFile(src, data);
    const res = await run('dd', [`if=${src}`, `of=${m.p('written-16m')}`, 'bs=1M', 'status=none']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(sha256(await fsp.readFile(m.b('written-16m')))).toBe(sha256(data));
    expect(sha256(await fsp.readFile(m.p('written-16m')))).toBe(sha256(data));
    const s = await m.stats();
    expect(s.residentBytes).toBeLessThanOrEqual(s.budgetBytes);
  });

  it('small odd-sized writes (dd bs=4097) over an existing larger-than-budget file are all in the backing file after close', async () => {
    const base = randomData(6 * MiB);
    await fsp.writeFile(m.b('overwrite'), base);
    const src = `${await tempDir('pagerfs-src-')}/patch.bin`;
    const patch = randomData(5 * MiB + 3);
    await fsp.writeFile(src, patch);
    const res = await run('dd', [`if=${src}`, `of=${m.p('overwrite')}`, 'bs=4097', 'seek=1', 'oflag=seek_bytes', 'conv=notrunc', 'status=none']);
    expect(res.code).toBe(0);
    const want = Buffer.from(base);
    patch.copy(want, 1);
    expect(sha256(await fsp.readFile(m.b('overwrite')))).toBe(sha256(want));
  });

  it('a write past the end leaves a hole that reads as zeros', async () => {
    await fsp.writeFile(m.b('holey'), 'abc');
    const fh = await fsp.open(m.p('holey'), 'r+');
    try {
      await fh.write('Z', 3 * PAGE + 5);
    } finally {
      await fh.close();
    }
    const want = Buffer.alloc(3 * PAGE + 6);
    want.write('abc', 0);
    want.write('Z', 3 * PAGE + 5);
    expect((await fsp.readFile(m.p('holey'))).equals(want)).toBe(true);
    expect((await fsp.readFile(m.b('holey'))).equals(want)).toBe(true);
  });
});

describe('truncate and extend read zeros past the old end', () => {
  it('extending a file with a partial last page reads zeros after the old end', async () => {
    const data = randomData(PAGE + 100);
    await fsp.writeFile(m.b('ext1'), data);
    expect((await fsp.readFile(m.p('ext1'))).equals(data)).toBe(true); // last page resident
    await run('truncate', ['-s', String(4 * PAGE + 1), m.p('ext1')]);
    const got = await fsp.readFile(m.p('ext1'));
    expect(got.length).toBe(4 * PAGE + 1);
    expect(got.subarray(0, data.length).equals(data)).toBe(true);
    expect(got.subarray(data.length).equals(Buffer.alloc(got.length - data.length))).toBe(true);
    expect((await fsp.readFile(m.b('ext1'))).equals(got)).toBe(true);
  });

  it('shrinking then extending never brings the old bytes back (mount and backing)', async () => {
    const data = randomData(3 * PAGE);
    await fsp.writeFile(m.b('ext2'), data);
    expect((await fsp.readFile(m.p('ext2'))).equals(data)).toBe(true); // every page resident
    await fsp.truncate(m.p('ext2'), 1000);
    await fsp.truncate(m.p('ext2'), 3 * PAGE);
    const want = Buffer.alloc(3 * PAGE);
    data.copy(want, 0, 0, 1000);
    expect((await fsp.readFile(m.p('ext2'))).equals(want)).toBe(true);
    expect((await fsp.readFile(m.b('ext2'))).equals(want)).toBe(true);
  });

  it('through an open handle: dirty data cut off by ftruncate does not come back when the file grows again', async () => {
    await fsp.writeFile(m.b('ext3'), randomData(PAGE));
    const fh = await fsp.open(m.p('ext3'), 'r+');
    const head = randomData(50);
    try {
      await fh.write(head, 0, 50, 0);
      await fh.write(randomData(2 * PAGE), 0, 2 * PAGE, 2 * PAGE + 10); // dirty, not written back
      await fh.truncate(50);
      await fh.truncate(5 * PAGE);
      const buf = Buffer.alloc(5 * PAGE);
      expect((await fh.read(buf, 0, buf.length, 0)).bytesRead).toBe(5 * PAGE);
      const want = Buffer.alloc(5 * PAGE);
      head.copy(want);
      expect(buf.equals(want)).toBe(true);
      // A write after the extension lands where it should, zeros around it.
      await fh.write('Q', 4 * PAGE);
      want.write('Q', 4 * PAGE);
    } finally {
      await fh.close();
    }
    const want = Buffer.alloc(5 * PAGE);
    head.copy(want);
    want.write('Q', 4 * PAGE);
    expect((await fsp.readFile(m.b('ext3'))).equals(want)).toBe(true);
    expect((await fsp.readFile(m.p('ext3'))).equals(want)).toBe(true);
  });

  it('truncating a larger-than-budget file to a mid-page size reads exactly the prefix', async () => {
    const data = randomData(BUDGET + MiB);
    await fsp.writeFile(m.b('ext4'), data);
    expect(sha256(await fsp.readFile(m.p('ext4')))).toBe(sha256(data));
    await fsp.truncate(m.p('ext4'), 2 * MiB + 3);
    await fsp.truncate(m.p('ext4'), 3 * MiB);
    const want = Buffer.alloc(3 * MiB);
    data.copy(want, 0, 0, 2 * MiB + 3);
    expect(sha256(await fsp.readFile(m.p('ext4')))).toBe(sha256(want));
    expect(sha256(await fsp.readFile(m.b('ext4')))).toBe(sha256(want));
  });
});

describe('files changed directly in the backing directory (close-to-open)', () => {
  /** What a person runs after changing the file outside: cat (or sha256sum) of it through the mount. */
  async function cat(rel: string): Promise<string> {
    const res = await run('cat', [m.p(rel)]);
    expect(res.code, res.stderr).toBe(0);
    return res.stdout;
  }
  async function sha256sum(rel: string): Promise<string> {
    const res = await run('sha256sum', [m.p(rel)]);
    expect(res.code, res.stderr).toBe(0);
    return res.stdout.split(' ')[0];
  }

  it('an append, an in-place rewrite and a truncation made outside show at the next open; an open handle keeps its view', async () => {
    await fsp.writeFile(m.b('log.txt'), 'line one\n');
    expect(await cat('log.txt')).toBe('line one\n');
    const held = await fsp.open(m.p('log.txt'), 'r');
    await new Promise((r) => setTimeout(r, 5)); // let the backing file's times move on
    await fsp.appendFile(m.b('log.txt'), 'line two\n');
    expect(await cat('log.txt')).toBe('line one\nline two\n');
    await new Promise((r) => setTimeout(r, 5));
    await run('sh', ['-c', `printf 'LINE' | dd of=${m.b('log.txt')} conv=notrunc status=none`]);
    expect(await cat('log.txt')).toBe('LINE one\nline two\n');
    await new Promise((r) => setTimeout(r, 5));
    await fsp.truncate(m.b('log.txt'), 4);
    expect(await cat('log.txt')).toBe('LINE');
    // Opened before all that: still the first version (its VMO was retired, not changed).
    const buf = Buffer.alloc(64);
    const { bytesRead } = await held.read(buf, 0, 64, 0);
    expect(buf.subarray(0, bytesRead).toString()).toBe('line one\n');
    await held.close();
  });

  it('an unchanged file keeps its VMO across opens, whatever its times\' sub-millisecond digits', async () => {
    // 0.7 ms and 0.2 ms past the second: the binding's lstat and Node's fstat must agree on the
    // stamp both ways of rounding, or every open would retire the VMO and lose the warm cache.
    for (const [name, frac] of [['frac7.bin', '000700000'], ['frac2.bin', '000200000']] as const) {
      await fsp.writeFile(m.b(name), randomData(3 * PAGE));
      const t = await run('touch', ['-d', `2026-01-01 00:00:00.${frac}`, m.b(name)]);
      expect(t.code, t.stderr).toBe(0);
      const before = (await m.stats()).pageRequests;
      for (let i = 0; i < 3; i++) expect((await cat(name)).length).toBeGreaterThan(0);
      // A retired VMO would be gone from the list and its successor would fault again: count requests.
      expect((await m.stats()).pageRequests - before, `${name}: page requests over three opens`).toBe(1);
    }
  });

  it('a reader open before a chmod, chown, touch, link, rename or setfattr through the mount sees what is written after it', async () => {
    // Each of these moves the backing ctime; the next open took that for a change made outside and
    // gave the writer a new VMO, while the reader kept reading the old one: it never saw the write.
    const steps: [string, (f: string) => Promise<unknown>][] = [
      ['chmod', (f) => fsp.chmod(m.p(f), 0o600)],
      ['chown', (f) => fsp.chown(m.p(f), 0, 0)],
      ['touch', (f) => fsp.utimes(m.p(f), new Date(), new Date(2020, 1, 1))],
      ['link', (f) => fsp.link(m.p(f), m.p(`${f}.2`))],
      ['rename', (f) => fsp.rename(m.p(f), m.p(`${f}.moved`)).then(() => fsp.rename(m.p(`${f}.moved`), m.p(f)))],
      ['setfattr', (f) => fsp.writeFile(m.p(`${f}.x`), '').then(() => run('setfattr', ['-n', 'user.k', '-v', 'v', m.p(f)]))],
    ];
    for (const [what, step] of steps) {
      const f = `coherent-${what}.txt`;
      await fsp.writeFile(m.b(f), 'old'.repeat(3000));
      const reader = await fsp.open(m.p(f), 'r');
      const first = Buffer.alloc(3);
      await reader.read(first, 0, 3, 0);
      expect(first.toString(), what).toBe('old');
      await step(f);
      const writer = await fsp.open(m.p(f), 'r+');
      await writer.write('NEW', 0);
      const got = Buffer.alloc(3);
      await reader.read(got, 0, 3, 0);
      await writer.close();
      await reader.close();
      expect(got.toString(), `${what}: the reader's view of the write`).toBe('NEW');
    }
  });

  it('a file written through the mount, closed, then changed outside shows the outside change', async () => {
    const w = await run('sh', ['-c', `printf 'written through pagerfs\\n' > ${m.p('edited.txt')}`]);
    expect(w.code, w.stderr).toBe(0);
    expect(await cat('edited.txt')).toBe('written through pagerfs\n');
    expect((await fsp.readFile(m.b('edited.txt'), 'utf8'))).toBe('written through pagerfs\n');
    // The kernel sends RELEASE after close(2) returns: the let-go follows it, so poll briefly.
    await waitFor(async () => (await m.stats()).files.find((f) => f.path === 'edited.txt')?.opens === 0);
    await new Promise((r) => setTimeout(r, 5));
    await fsp.appendFile(m.b('edited.txt'), 'and then outside\n');
    const want = 'written through pagerfs\nand then outside\n';
    expect(await waitFor(async () => (await cat('edited.txt')) === want, 5_000), 'cat shows the outside append').toBe(true);
  });

  it('tail -f: a handle at the end sees lines appended outside once the attribute timeout (1 s) has passed', async () => {
    await fsp.writeFile(m.b('tailed.log'), 'first\n');
    const res = await python(`
import os, sys, time
path, back = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY)
seen = os.read(fd, 100)
with open(back, 'a') as f: f.write('second\\n')
time.sleep(1.2)
size = os.fstat(fd).st_size
more = os.read(fd, 100)
print(repr((seen, size, more)))
`, [m.p('tailed.log'), m.b('tailed.log')], { timeoutMs: 30_000 });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.trim()).toBe("(b'first\\n', 13, b'second\\n')");
    // The handle kept the VMO it moved away from until it closed; then only the current one is left.
    expect(await waitFor(async () => (await m.stats()).files.filter((f) => f.path === 'tailed.log').length === 1), 'one VMO left').toBe(true);
  });

  it('tail -f of a file appended outside for a while keeps one VMO and one backing descriptor, not one per change seen', async () => {
    await fsp.writeFile(m.b('growing.log'), 'line 0\n');
    const fds = async (): Promise<number> => (await fsp.readdir(`/proc/${m.pid}/fd`)).length;
    const before = await fds();
    const res = await python(`
import json, os, sys, time
path, back, stats = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(path, os.O_RDONLY)
got = b''
for i in range(1, 6):
    with open(back, 'a') as f: f.write('line %d\\n' % i)
    time.sleep(1.15)
    while True:
        b = os.read(fd, 4096)
        if not b: break
        got += b
with open(stats) as f: files = [x for x in json.load(f)['files'] if x['path'] == 'growing.log']
print(json.dumps({'got': got.decode(), 'vmos': len(files)}))
os.close(fd)
`, [m.p('growing.log'), m.b('growing.log'), m.p('.pagerfs/stats')], { timeoutMs: 60_000 });
    expect(res.code, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout) as { got: string; vmos: number };
    expect(out.got).toBe([0, 1, 2, 3, 4, 5].map((i) => `line ${i}\n`).join(''));
    // Five changes followed: the handle let go of each VMO it moved away from (no read waited on it).
    expect(out.vmos, 'VMOs of the file while the handle was still open').toBe(1);
    expect(await fds(), 'daemon descriptors after the reader closed').toBeLessThanOrEqual(before + 1);
  }, 60_000);

  it('lseek(SEEK_END) of an open file measures that file, not whatever its name leads to now (fgetattr)', async () => {
    // The kernel asks attributes with the file handle (fgetattr) for SEEK_END; fuse-native used to
    // send that to getattr(path), which describes the name's new file (patch level 9). fstat itself
    // is answered by path in libfuse2's high-level API, as for every such filesystem.
    await fsp.writeFile(m.b('named.bin'), Buffer.alloc(3000, 1));
    await fsp.writeFile(m.b('other.bin'), Buffer.alloc(7000, 2));
    const res = await python(`
import os, sys, time
path, back_other, back_named = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(path, os.O_RDONLY)
os.rename(back_other, back_named)
time.sleep(1.2)
end = os.lseek(fd, 0, os.SEEK_END)
data = os.pread(fd, 4000, 0)
print(end, len(data), set(data))
`, [m.p('named.bin'), m.b('other.bin'), m.b('named.bin')], { timeoutMs: 30_000 });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.trim()).toBe('3000 3000 {1}');
  });

  it('an append through the mount right after one made outside lands after it (O_APPEND ignores the kernel\'s stale size)', async () => {
    await fsp.writeFile(m.b('appended.log'), '0123456789');
    expect(await cat('appended.log')).toBe('0123456789'); // the kernel now caches size 10
    await fsp.appendFile(m.b('appended.log'), 'OUT');
    const r = await run('sh', ['-c', `printf 'IN' >> ${m.p('appended.log')}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(await cat('appended.log')).toBe('0123456789OUTIN');
    expect(await fsp.readFile(m.b('appended.log'), 'utf8')).toBe('0123456789OUTIN');
  });

  it('a file created with O_APPEND appends at its end: a write through a hard link meanwhile is not overwritten', async () => {
    // Each name of a hard-linked file is its own kernel inode (libfuse2): the creating name's
    // cached size misses the write made through the other name.
    const res = await python(`
import os, sys
a, b = sys.argv[1], sys.argv[2]
fa = os.open(a, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o644)
os.write(fa, b'A1\\n')
os.link(a, b)
fb = os.open(b, os.O_WRONLY | os.O_APPEND)
os.write(fb, b'B1\\n')
os.write(fa, b'A2\\n')
os.close(fa); os.close(fb)
`, [m.p('created.log'), m.p('created-link.log')]);
    expect(res.code, res.stderr).toBe(0);
    expect(await cat('created.log')).toBe('A1\nB1\nA2\n');
  });

  it('two processes appending lines through the mount lose none', async () => {
    const r = await run('sh', ['-c', `(for i in $(seq 300); do echo a$i >> ${m.p('two.log')}; done) & (for i in $(seq 300); do echo b$i >> ${m.p('two.log')}; done); wait`]);
    expect(r.code, r.stderr).toBe(0);
    const lines = (await cat('two.log')).trim().split('\n');
    expect(lines).toHaveLength(600);
    expect(new Set(lines).size).toBe(600);
  });

  it('a large file rewritten outside reads back whole and new, past the budget', async () => {
    const v1 = randomData(BUDGET + 3 * PAGE);
    await fsp.writeFile(m.b('big-outside'), v1);
    expect(await sha256sum('big-outside')).toBe(sha256(v1));
    await new Promise((r) => setTimeout(r, 5));
    const v2 = randomData(BUDGET + 3 * PAGE);
    const fh = await fsp.open(m.b('big-outside'), 'r+'); // same inode, same size
    await fh.write(v2, 0, v2.length, 0);
    await fh.close();
    expect(await sha256sum('big-outside')).toBe(sha256(v2));
  });
});

describe('open files that are renamed or unlinked', () => {
  it('an unlinked open file stays readable (even past the budget) until the last close', async () => {
    const data = randomData(2 * BUDGET + 7);
    await fsp.writeFile(m.b('gone'), data);
    const a = await fsp.open(m.p('gone'), 'r');
    const b = await fsp.open(m.p('gone'), 'r');
    try {
      await fsp.unlink(m.p('gone'));
      expect(await codeOf(fsp.lstat(m.b('gone')))).toBe('ENOENT');
      expect(await codeOf(fsp.open(m.p('gone'), 'r'))).toBe('ENOENT');
      const buf = Buffer.alloc(data.length);
      expect((await a.read(buf, 0, buf.length, 0)).bytesRead).toBe(data.length);
      expect(sha256(buf)).toBe(sha256(data));
      await a.close();
      buf.fill(0);
      expect((await b.read(buf, 0, buf.length, 0)).bytesRead).toBe(data.length);
      expect(sha256(buf)).toBe(sha256(data));
    } finally {
      await a.close().catch(() => undefined);
      await b.close();
    }
    // Nothing of it remains once the last handle is released: no backing entry (not even libfuse's
    // .fuse_hidden rename), no VMO.
    expect(await waitFor(async () => !(await fsp.readdir(m.b())).some((n) => n.startsWith('.fuse_hidden')))).toBe(true);
    expect(await waitFor(async () => !(await m.stats()).files.some((f) => f.path === 'gone' || f.path.includes('fuse_hidden')))).toBe(true);
  });

  it('an unlinked open file can still be written and read back through its handle, and leaves nothing behind', async () => {
    await fsp.writeFile(m.b('gone2'), 'abc');
    const before = (await fsp.readdir(m.b())).sort();
    const fh = await fsp.open(m.p('gone2'), 'r+');
    try {
      await fsp.unlink(m.p('gone2'));
      const data = randomData(3 * PAGE);
      await fh.write(data, 0, data.length, 0);
      const buf = Buffer.alloc(data.length);
      expect((await fh.read(buf, 0, buf.length, 0)).bytesRead).toBe(data.length);
      expect(buf.equals(data)).toBe(true);
    } finally {
      await fh.close();
    }
    // libfuse keeps an unlinked open file as .fuse_hiddenNNN until the kernel's RELEASE (sent after close returns).
    const want = before.filter((n) => n !== 'gone2');
    await waitFor(async () => JSON.stringify((await fsp.readdir(m.b())).sort()) === JSON.stringify(want));
    expect((await fsp.readdir(m.b())).sort()).toEqual(want);
    expect((await m.stats()).files.filter((f) => f.path.includes('fuse_hidden') || f.path === 'gone2')).toEqual([]);
  });

  it('a renamed open file keeps reading through its handle and is readable under the new name', async () => {
    const data = randomData(4 * PAGE + 9);
    await fsp.writeFile(m.b('before-rename'), data);
    const fh = await fsp.open(m.p('before-rename'), 'r');
    try {
      const first = Buffer.alloc(PAGE);
      await fh.read(first, 0, PAGE, 0);
      await fsp.rename(m.p('before-rename'), m.p('after-rename'));
      const rest = Buffer.alloc(data.length - PAGE);
      expect((await fh.read(rest, 0, rest.length, PAGE)).bytesRead).toBe(rest.length);
      expect(Buffer.concat([first, rest]).equals(data)).toBe(true);
      expect((await fsp.readFile(m.p('after-rename'))).equals(data)).toBe(true);
      expect(await codeOf(fsp.lstat(m.p('before-rename')))).toBe('ENOENT');
    } finally {
      await fh.close();
    }
  });

  it('a file replaced by rename while open keeps its old contents for its open handle', async () => {
    const oldData = randomData(2 * PAGE + 1);
    const newData = randomData(PAGE + 3);
    await fsp.writeFile(m.b('victim'), oldData);
    await fsp.writeFile(m.b('replacement'), newData);
    const fh = await fsp.open(m.p('victim'), 'r');
    try {
      await fsp.rename(m.p('replacement'), m.p('victim'));
      const buf = Buffer.alloc(oldData.length);
      expect((await fh.read(buf, 0, buf.length, 0)).bytesRead).toBe(oldData.length);
      expect(buf.equals(oldData)).toBe(true);
      expect((await fsp.readFile(m.p('victim'))).equals(newData)).toBe(true);
    } finally {
      await fh.close();
    }
    expect((await fsp.readFile(m.b('victim'))).equals(newData)).toBe(true);
  });
});

/** python3: reads [off, off+len) for each range (own fd each), prints "OK n" or the errno name per range. */
const RANGE_READS = `
import errno, json, os, sys
path = sys.argv[1]
out = []
for off, ln in json.loads(sys.argv[2]):
    fd = os.open(path, os.O_RDONLY)
    try:
        got = os.pread(fd, ln, off)
        out.append('OK %d' % len(got))
    except OSError as e:
        out.append(errno.errorcode[e.errno])
    finally:
        os.close(fd)
print(json.dumps(out))
`;

describe('injected faults', () => {
  it('a fault rule on a byte range gives EIO to readers of that range only (readahead off)', async () => {
    const data = randomData(8 * PAGE);
    const f = await startMount({
      budget: '1MiB', args: ['--readahead', '0', '--inject-fault', 'victim.bin:8KiB-12KiB=IO'],
      files: { 'victim.bin': data, 'other.bin': data },
    });
    const ranges = [[0, PAGE], [PAGE, PAGE], [2 * PAGE, PAGE], [2 * PAGE + 100, 10], [3 * PAGE, PAGE], [7 * PAGE, PAGE], [PAGE, 3 * PAGE]];
    const res = await python(RANGE_READS, [f.p('victim.bin'), JSON.stringify(ranges)]);
    expect(res.stderr).toBe('');
    // The read spanning pages 1..3 returns the bytes before the failing page (a short read).
    expect(JSON.parse(res.stdout)).toEqual(['OK 4096', 'OK 4096', 'EIO', 'EIO', 'OK 4096', 'OK 4096', 'OK 4096']);
    const other = await python(RANGE_READS, [f.p('other.bin'), JSON.stringify(ranges)]);
    expect(JSON.parse(other.stdout)).toEqual(['OK 4096', 'OK 4096', 'OK 4096', 'OK 10', 'OK 4096', 'OK 4096', 'OK 12288']);
    // The bytes that do arrive are right.
    const ok = await python(PREAD_CHECK, [f.p('victim.bin'), f.b('victim.bin'), JSON.stringify([0, PAGE, 3 * PAGE, 5 * PAGE + 3]), JSON.stringify([1, PAGE])]);
    expect(JSON.parse(ok.stdout)).toEqual([]);
    const s = await f.stats();
    expect(s.failedRequests).toBeGreaterThan(0);
    // Clearing the rules makes the range readable again.
    await run('sh', ['-c', ': > "$1"', 'sh', f.p('.pagerfs/faults')]);
    // An empty write is applied at RELEASE, which the kernel sends after close returns.
    await waitFor(async () => (await fsp.readFile(f.p('.pagerfs/faults'), 'utf8')) === '', 10_000, 50, 'the fault rules cleared');
    expect(sha256(await fsp.readFile(f.p('victim.bin')))).toBe(sha256(data));
  });

  it('with readahead on, a sequential reader gets the bytes before the faulty range, then EIO', async () => {
    const data = randomData(64 * PAGE);
    const f = await startMount({ budget: '1MiB', files: { 'seq.bin': data } });
    await fsp.writeFile(f.p('.pagerfs/faults'), 'seq.bin:40KiB-44KiB=IO\n');
    const script = `
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
got = b''
try:
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            print('EOF', len(got)); break
        got += chunk
except OSError as e:
    print('ERR', e.errno, len(got))
sys.stdout.flush()
open(sys.argv[2], 'wb').write(got)
`;
    const out = `${await tempDir('pagerfs-out-')}/got`;
    const res = await python(script, [f.p('seq.bin'), out]);
    expect(res.stdout.trim()).toBe(`ERR 5 ${40 * 1024}`);
    expect((await fsp.readFile(out)).equals(data.subarray(0, 40 * 1024))).toBe(true);
    // Past the range, reads work.
    const after = await python(RANGE_READS, [f.p('seq.bin'), JSON.stringify([[44 * 1024, PAGE], [60 * PAGE, 4 * PAGE]])]);
    expect(JSON.parse(after.stdout)).toEqual(['OK 4096', 'OK 16384']);
  });
});

describe('concurrency', () => {
  it('32 concurrent readers (python threads, os.pread) of one multi-page file under a small budget all get the right bytes', async () => {
    const data = randomData(3 * MiB + 123);
    const f = await startMount({ budget: '1MiB', files: { 'shared.bin': data } });
    const script = `
import json, os, random, sys, threading
via, back = sys.argv[1], sys.argv[2]
data = open(back, 'rb').read()
size = len(data)
shared = os.open(via, os.O_RDONLY)
bad = []; errors = []; reads = [0]
lock = threading.Lock()
def worker(i):
    rnd = random.Random(i)
    fd = shared if i % 2 == 0 else os.open(via, os.O_RDONLY)
    try:
        for _ in range(150):
            off = rnd.randrange(0, size)
            ln = rnd.choice([1, 100, 4096, 4097, 8192, 65536, 200000])
            got = os.pread(fd, ln, off)
            with lock:
                reads[0] += 1
                if got != data[off:off + ln]:
                    bad.append([i, off, ln, len(got)])
    except OSError as e:
        with lock:
            errors.append([i, e.errno])
    finally:
        if fd != shared:
            os.close(fd)
ts = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps({'bad': bad, 'errors': errors, 'reads': reads[0]}))
`;
    const res = await python(script, [f.p('shared.bin'), f.b('shared.bin')], { timeoutMs: 120_000 });
    expect(res.stderr).toBe('');
    expect(JSON.parse(res.stdout)).toEqual({ bad: [], errors: [], reads: 32 * 150 });
    const s = await f.stats();
    expect(s.residentBytes).toBeLessThanOrEqual(s.budgetBytes);
    expect(s.evictedPages).toBeGreaterThan(0);
  }, 150_000);
});
