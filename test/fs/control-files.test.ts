/**
 * The control files under <mountpoint>/.pagerfs/: stats (JSON counters that follow faults, evictions,
 * writeback and the budget), faults (the fault rule set: replace, read back, all-or-nothing, clear)
 * and unmount; and that the control directory cannot be damaged through the mount.
 */
import { promises as fsp } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PAGE, ROOT, codeOf, isMounted, randomData, readToEnd, run, sha256, sleep, startMount, useMountHooks, waitFor, type Stats } from './harness.js';

useMountHooks();

const MiB = 1024 * 1024;

describe('.pagerfs/stats', () => {
  it('is JSON with every documented counter and a files[] entry per file in use', async () => {
    const m = await startMount({ budget: '2MiB', files: { 'dir/a.bin': randomData(3 * PAGE) } });
    await fsp.readFile(m.p('dir/a.bin'));
    const s = await m.stats();
    for (const key of ['budgetBytes', 'residentBytes', 'dirtyBytes', 'pinnedBytes', 'pageRequests', 'suppliedPages',
      'failedRequests', 'evictedPages', 'writebackBytes', 'readaheadHitPages']) {
      expect(typeof s[key], key).toBe('number');
      expect(Number.isFinite(s[key] as number), key).toBe(true);
    }
    expect(s.budgetBytes).toBe(2 * MiB);
    expect(Array.isArray(s.files)).toBe(true);
    const f = s.files.find((x) => x.path === 'dir/a.bin');
    expect(f).toBeDefined();
    for (const key of ['path', 'size', 'residentBytes', 'dirtyBytes', 'faults', 'evictedPages'] as const) {
      expect(f![key], key).toBeDefined();
    }
    expect(f!.size).toBe(3 * PAGE);
    expect(f!.residentBytes).toBe(3 * PAGE);
    expect(f!.faults).toBeGreaterThan(0);
    // The stats file is read-only.
    expect(await codeOf(fsp.writeFile(m.p('.pagerfs/stats'), 'x'))).toBe('EACCES');
  });

  it('counts page requests and supplied pages for faults, and none for re-reading resident pages', async () => {
    const m = await startMount({ budget: '1MiB', args: ['--readahead', '0'], files: { 'small.bin': randomData(16 * PAGE) } });
    const s0 = await m.stats();
    expect(s0.pageRequests).toBe(0);
    expect(s0.suppliedPages).toBe(0);
    expect(s0.residentBytes).toBe(0);
    await fsp.readFile(m.p('small.bin'));
    const s1 = await m.stats();
    expect(s1.pageRequests).toBeGreaterThan(0);
    expect(s1.suppliedPages).toBe(16);
    expect(s1.residentBytes).toBe(16 * PAGE);
    expect(s1.files.find((f) => f.path === 'small.bin')?.residentBytes).toBe(16 * PAGE);
    await fsp.readFile(m.p('small.bin'));
    const s2 = await m.stats();
    expect(s2.pageRequests).toBe(s1.pageRequests);
    expect(s2.suppliedPages).toBe(16);
  });

  it('counts evictions (total and per file) once reads exceed the budget, and readahead hits for a sequential reader', async () => {
    const m = await startMount({ budget: '1MiB', files: { 'first.bin': randomData(512 * 1024), 'big.bin': randomData(4 * MiB) } });
    await fsp.readFile(m.p('first.bin'));
    expect((await m.stats()).evictedPages).toBe(0);
    const big = await fsp.readFile(m.p('big.bin'));
    expect(big.length).toBe(4 * MiB);
    const s = await m.stats();
    expect(s.evictedPages).toBeGreaterThan(0);
    expect(s.suppliedPages).toBeGreaterThanOrEqual((4 * MiB + 512 * 1024) / PAGE);
    expect(s.residentBytes).toBeLessThanOrEqual(s.budgetBytes);
    const perFile = s.files.reduce((a, f) => a + f.evictedPages, 0);
    expect(perFile).toBeGreaterThan(0);
    expect(perFile).toBeLessThanOrEqual(s.evictedPages);
    expect(s.readaheadHitPages).toBeGreaterThan(0);
  });

  it('shows dirty bytes while data is unwritten and writeback bytes once it is written back', async () => {
    const m = await startMount({ budget: '2MiB', args: ['--writeback-delay', '60s'], files: { 'w.bin': randomData(8 * PAGE) } });
    const fh = await fsp.open(m.p('w.bin'), 'r+');
    try {
      await fh.write(randomData(3 * PAGE), 0, 3 * PAGE, PAGE);
      const s1 = await m.stats();
      expect(s1.dirtyBytes).toBe(3 * PAGE);
      expect(s1.files.find((f) => f.path === 'w.bin')?.dirtyBytes).toBe(3 * PAGE);
      expect(s1.writebackBytes).toBe(0);
      await fh.sync();
      const s2 = await m.stats();
      expect(s2.dirtyBytes).toBe(0);
      expect(s2.files.find((f) => f.path === 'w.bin')?.dirtyBytes).toBe(0);
      expect(s2.writebackBytes).toBeGreaterThanOrEqual(3 * PAGE);
    } finally {
      await fh.close();
    }
  });

  it('counts failed requests when a fault rule fires', async () => {
    const m = await startMount({ budget: '1MiB', files: { 'bad.bin': randomData(PAGE) } });
    expect((await m.stats()).failedRequests).toBe(0);
    await fsp.writeFile(m.p('.pagerfs/faults'), 'bad.bin=IO\n');
    expect(await codeOf(fsp.readFile(m.p('bad.bin')))).toBe('EIO');
    expect((await m.stats()).failedRequests).toBeGreaterThan(0);
  });

  it('residentBytes never exceeds budgetBytes while files several times the budget are read over and over', async () => {
    const files: Record<string, Buffer> = { 'a.bin': randomData(3 * MiB), 'b.bin': randomData(3 * MiB + 5), 'c.bin': randomData(2 * MiB) };
    const m = await startMount({ budget: '1MiB', files });
    const reader = run('sh', ['-c', 'for i in 1 2 3; do for f in "$@"; do cat "$f" | sha256sum; done; done', 'sh',
      m.p('a.bin'), m.p('b.bin'), m.p('c.bin')], { timeoutMs: 120_000 });
    let finished = false;
    void reader.then(() => { finished = true; });
    const samples: Stats[] = [];
    while (!finished) {
      samples.push(await m.stats());
      await sleep(5);
    }
    const res = await reader;
    const sums = res.stdout.trim().split('\n').map((l) => l.split(' ')[0]);
    const want = [files['a.bin'], files['b.bin'], files['c.bin']].map(sha256);
    expect(sums).toEqual([...want, ...want, ...want]);
    samples.push(await m.stats());
    expect(samples.length).toBeGreaterThan(5);
    const worst = Math.max(...samples.map((s) => s.residentBytes));
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(1 * MiB);
    for (const s of samples) expect(s.residentBytes).toBeLessThanOrEqual(s.budgetBytes);
    expect(samples[samples.length - 1].evictedPages).toBeGreaterThan((8 * MiB) / PAGE);
  }, 150_000);
});

describe('.pagerfs/stats while counters change', () => {
  it('fs.readFile (which trusts the reported size) gets the whole document after the document grew', async () => {
    const m = await startMount({ budget: '1MiB', files: { 'one.bin': randomData(PAGE), 'two-with-a-long-name.bin': randomData(PAGE) } });
    await fsp.readFile(m.p('one.bin'));
    const before = (await readToEnd(m.p('.pagerfs/stats'))).length;
    await fsp.stat(m.p('.pagerfs/stats')); // the kernel caches this size for about a second
    await fsp.readFile(m.p('two-with-a-long-name.bin')); // one more files[] entry: the document grows
    const text = await fsp.readFile(m.p('.pagerfs/stats'), 'utf8');
    expect(() => JSON.parse(text), `${text.length} bytes, ends ${JSON.stringify(text.slice(-20))}`).not.toThrow();
    expect(text.length).toBeGreaterThan(before);
    expect((JSON.parse(text) as Stats).files.map((f) => f.path).sort()).toEqual(['one.bin', 'two-with-a-long-name.bin']);
  });

  it('fs.readFile always gets a complete JSON document during heavy reads', async () => {
    const m = await startMount({ budget: '1MiB', files: { 'a.bin': randomData(4 * MiB) } });
    const reader = run('sh', ['-c', 'for i in 1 2 3 4 5; do cat "$1" > /dev/null; done', 'sh', m.p('a.bin')], { timeoutMs: 120_000 });
    let finished = false;
    void reader.then(() => { finished = true; });
    const broken: string[] = [];
    let reads = 0;
    while (!finished) {
      const text = await fsp.readFile(m.p('.pagerfs/stats'), 'utf8');
      reads++;
      try {
        JSON.parse(text);
      } catch {
        broken.push(`${text.length} bytes, ends ${JSON.stringify(text.slice(-30))}`);
      }
    }
    await reader;
    expect(reads).toBeGreaterThan(5);
    expect(broken).toEqual([]);
  }, 150_000);
});

describe('.pagerfs/faults', () => {
  it('writing rules replaces the set and reading returns them, one a line', async () => {
    const m = await startMount({ budget: '1MiB' });
    const file = m.p('.pagerfs/faults');
    expect(await fsp.readFile(file, 'utf8')).toBe('');
    await fsp.writeFile(file, 'a/*.bin:0-1MiB=IO\n  **=delay:5ms;count=3  \n\n# a comment\nlogs/**=IO_DATA_INTEGRITY;p=0.5\n');
    expect(await fsp.readFile(file, 'utf8')).toBe('a/*.bin:0-1MiB=IO\n**=delay:5ms;count=3\nlogs/**=IO_DATA_INTEGRITY;p=0.5\n');
    await fsp.writeFile(file, 'x.bin=BAD_STATE\n');
    expect(await fsp.readFile(file, 'utf8')).toBe('x.bin=BAD_STATE\n');
    // The rules from the command line are the initial set.
    const m2 = await startMount({ budget: '1MiB', args: ['--inject-fault', 'q.bin=IO', '--inject-fault', 'r/**:4KiB-8KiB=NO_SPACE'] });
    expect(await fsp.readFile(m2.p('.pagerfs/faults'), 'utf8')).toBe('q.bin=IO\nr/**:4KiB-8KiB=NO_SPACE\n');
  });

  it('a rule written to the faults file takes effect at once, and a new set replaces it', async () => {
    const data = randomData(2 * PAGE);
    const m = await startMount({ budget: '1MiB', args: ['--readahead', '0'], files: { 'one.bin': data, 'two.bin': data } });
    await fsp.writeFile(m.p('.pagerfs/faults'), 'one.bin=IO\n');
    expect(await codeOf(fsp.readFile(m.p('one.bin')))).toBe('EIO');
    expect((await fsp.readFile(m.p('two.bin'))).equals(data)).toBe(true);
    await fsp.writeFile(m.p('.pagerfs/faults'), 'nothing-matches=IO\n');
    expect((await fsp.readFile(m.p('one.bin'))).equals(data)).toBe(true);
  });

  it('a write with a bad line fails with EINVAL and leaves the rule set unchanged', async () => {
    const m = await startMount({ budget: '1MiB' });
    const file = m.p('.pagerfs/faults');
    await fsp.writeFile(file, 'keep.bin=IO\n');
    for (const bad of ['ok.bin=IO\nnot a rule\n', 'x=NOPE\n', 'x:9-1=IO\n', 'x=IO;count=0\n', 'x=delay:soon\n']) {
      expect(await codeOf(fsp.writeFile(file, bad)), bad).toBe('EINVAL');
      expect(await fsp.readFile(file, 'utf8'), bad).toBe('keep.bin=IO\n');
    }
    // The same through a shell redirection (bash: dash's printf reports every write error as "I/O error").
    const sh = await run('bash', ['-c', 'printf "a=IO\\nb=WHAT\\n" > "$1"', 'bash', file]);
    expect(sh.code).not.toBe(0);
    expect(sh.stderr).toMatch(/Invalid argument/);
    expect(await fsp.readFile(file, 'utf8')).toBe('keep.bin=IO\n');
  });

  it('an empty write (": >") clears the rule set', async () => {
    const m = await startMount({ budget: '1MiB', args: ['--inject-fault', 'a=IO'], files: { a: 'data' } });
    const file = m.p('.pagerfs/faults');
    expect(await fsp.readFile(file, 'utf8')).toBe('a=IO\n');
    const res = await run('sh', ['-c', ': > "$1"', 'sh', file]);
    expect(res.code).toBe(0);
    // Nothing was written, so the clearing applies at release, which the kernel sends after close.
    expect(await waitFor(async () => (await fsp.readFile(file, 'utf8')) === '')).toBe(true);
    expect(await fsp.readFile(m.p('a'), 'utf8')).toBe('data');
  });
});

describe('.pagerfs directory', () => {
  it('lists stats, faults and unmount, and hides a backing entry of the same name', async () => {
    const m = await startMount({ budget: '1MiB', files: { '.pagerfs/stats': 'impostor', 'x': 'x' } });
    expect((await fsp.readdir(m.p('.pagerfs'))).sort()).toEqual(['budget', 'faults', 'stats', 'unmount']);
    expect((await fsp.readdir(m.p())).filter((n) => n === '.pagerfs')).toEqual(['.pagerfs']);
    const stats = await fsp.readFile(m.p('.pagerfs/stats'), 'utf8');
    expect(stats).not.toContain('impostor');
    expect(JSON.parse(stats).budgetBytes).toBe(1 * MiB);
  });

  it('cannot be changed through the mount: unlink, rename, chmod, mkdir, create and link are refused', async () => {
    const m = await startMount({ budget: '1MiB', files: { x: 'x' } });
    expect(await codeOf(fsp.unlink(m.p('.pagerfs/stats')))).toMatch(/^(EACCES|EPERM)$/);
    expect(await codeOf(fsp.rename(m.p('.pagerfs/faults'), m.p('f2')))).toMatch(/^(EACCES|EPERM)$/);
    expect(await codeOf(fsp.rename(m.p('x'), m.p('.pagerfs/stats')))).toMatch(/^(EACCES|EPERM)$/);
    expect(await codeOf(fsp.chmod(m.p('.pagerfs/stats'), 0o666))).toMatch(/^(EACCES|EPERM)$/);
    expect(await codeOf(fsp.mkdir(m.p('.pagerfs')))).toBe('EEXIST');
    expect(await codeOf(fsp.writeFile(m.p('.pagerfs/new'), 'x'))).toMatch(/^(EACCES|EPERM|ENOENT)$/);
    expect(await codeOf(fsp.link(m.p('x'), m.p('.pagerfs/x')))).toMatch(/^(EACCES|EPERM|ENOENT)$/);
    expect(await codeOf(fsp.rmdir(m.p('.pagerfs')))).toMatch(/^(EACCES|EPERM|ENOTEMPTY)$/);
    expect((await fsp.readdir(m.p('.pagerfs'))).sort()).toEqual(['budget', 'faults', 'stats', 'unmount']);
    expect(await codeOf(fsp.lstat(m.b('.pagerfs')))).toBe('ENOENT');
  });

  it('with --kernel-cache the control files read whole and fresh (they read empty: the kernel went by their size)', async () => {
    const m = await startMount({ budget: '2MiB', args: ['--kernel-cache'], files: { f: 'x' } });
    const stats = JSON.parse((await fsp.readFile(m.p('.pagerfs/stats'), 'utf8'))) as Stats;
    expect(stats.budgetBytes).toBe(2 * 1024 * 1024);
    await fsp.writeFile(m.p('.pagerfs/budget'), '4MiB');
    expect((await fsp.readFile(m.p('.pagerfs/budget'), 'utf8')).trim()).toBe(String(4 * 1024 * 1024)); // not a cached copy
    const res = await run('node', ['dist/fs/cli.js', 'budget', m.mnt], { cwd: ROOT });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/4MiB/);
  });

  it('writing .pagerfs/unmount is EBUSY while a file is open; `lazy` writes back, unmounts and ends the daemon with status 0', async () => {
    const m = await startMount({ budget: '1MiB', args: ['--writeback-delay', '60s'], files: { f: 'old' } });
    const writer = await fsp.open(m.p('f'), 'r+');
    await writer.write('new', 0);
    expect(await codeOf(fsp.writeFile(m.p('.pagerfs/unmount'), '1\n'))).toBe('EBUSY');
    // An open for writing that writes nothing (`: > unmount`, `touch unmount`) is refused at its
    // close the same way (it unmounted before: the check ran only on write).
    expect((await run('sh', ['-c', `: > ${m.p('.pagerfs/unmount')}`])).code).toBe(0); // applied at release: close cannot say
    await new Promise((r) => setTimeout(r, 300));
    expect(await isMounted(m.mnt)).toBe(true);
    expect(m.running).toBe(true);
    await fsp.writeFile(m.p('.pagerfs/unmount'), 'lazy\n');
    expect(await m.waitExit(20_000)).toBe(true);
    expect(m.exitCode).toBe(0);
    expect(await waitFor(async () => !(await isMounted(m.mnt)), 5000)).toBe(true);
    await writer.close().catch(() => undefined);
    expect(await fsp.readFile(m.b('f'), 'utf8')).toBe('new');
  });

  it('the unmount a write to .pagerfs/unmount asks for waits for that writer\'s close, which succeeds (it raced the close: ECONNABORTED)', async () => {
    const m = await startMount({ budget: '1MiB', files: { f: 'x' } });
    const h = await fsp.open(m.p('.pagerfs/unmount'), 'w');
    await h.write('1\n');
    // The daemon unmounted right after answering the write: the writer's close then met a
    // connection already gone (`pagerfs unmount` saw ECONNABORTED and exited 4, "did not answer").
    await sleep(500);
    expect(await isMounted(m.mnt)).toBe(true);
    await h.close(); // must not fail
    expect(await m.waitExit(20_000)).toBe(true);
    expect(m.exitCode).toBe(0);
    expect(await waitFor(async () => !(await isMounted(m.mnt)), 5000)).toBe(true);
  });
});
