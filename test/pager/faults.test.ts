import { afterEach, describe, expect, it } from 'vitest';
import { ZxStatus, statusName } from '../../src/index.js';
import { FaultInjector, globToRegExp, parseFaultRule, parseFaultRules } from '../../pager/index.js';
import { PAGE_SIZE, cleanupEnvs, expectZx, makeEnv, pattern, readVmo, rejectionStatus } from './helpers.js';

afterEach(cleanupEnvs);

const KiB = 1024;
const MiB = 1024 * 1024;

describe('fault rule syntax', () => {
  it.each([
    // glob, matches, does not match
    ['*.bin', ['a.bin', '.bin', 'x.y.bin'], ['d/a.bin', 'a.bin2', 'aXbin']],
    ['logs/*.bin', ['logs/a.bin'], ['logs/sub/a.bin', 'other/a.bin', 'logs/a.txt']],
    ['**', ['a', 'd/e/f.bin'], []],
    ['big/**', ['big/a', 'big/x/y/z'], ['big', 'bigger/a', 'a/big/b']],
    ['**/*.dat', ['x.dat', 'a/x.dat', 'a/b/c/x.dat'], ['x.dat/y', 'a/x.dot']],
    ['a**z', ['az', 'a/b/z', 'abcz'], ['a/b/zz/']],
    ['f?.bin', ['f1.bin', 'fx.bin'], ['f.bin', 'f12.bin', 'f/.bin']],
    ['a+b(c).[d]$^|{e}.bin', ['a+b(c).[d]$^|{e}.bin'], ['aab(c).[d]$^|{e}.bin', 'a+b(c)x[d]$^|{e}.bin']],
  ])('glob %s matches what it should', (glob, yes, no) => {
    const re = globToRegExp(glob);
    for (const p of yes) expect(re.test(p), `${glob} should match ${p}`).toBe(true);
    for (const p of no) expect(re.test(p), `${glob} should not match ${p}`).toBe(false);
    // The rule built from the glob matches the same way.
    const rule = parseFaultRule(`${glob}=IO`);
    expect(rule.glob).toBe(glob);
    for (const p of yes) expect(rule.pattern.test(p)).toBe(true);
  });

  it.each([
    ['f:0-1MiB=IO', { start: 0, end: MiB }],
    ['f:4k-8KiB=IO', { start: 4 * KiB, end: 8 * KiB }],
    ['f:4096-12288=IO', { start: 4096, end: 12288 }],
    ['f:1MB-2G=IO', { start: MiB, end: 2 * 1024 * MiB }],
    ['logs/*.bin:0-1MiB=IO', { start: 0, end: MiB }],
  ])('byte range %s is parsed with its units', (text, range) => {
    const rule = parseFaultRule(text);
    expect(rule.range).toEqual(range);
    expect(rule.glob).toBe(text.slice(0, text.lastIndexOf(':')));
  });

  it('a rule without a range covers the whole file', () => {
    expect(parseFaultRule('f=IO').range).toBeUndefined();
  });

  it.each([
    ['IO', ZxStatus.ERR_IO],
    ['IO_DATA_INTEGRITY', ZxStatus.ERR_IO_DATA_INTEGRITY],
    ['BAD_STATE', ZxStatus.ERR_BAD_STATE],
    ['NO_SPACE', ZxStatus.ERR_NO_SPACE],
    ['BUFFER_TOO_SMALL', ZxStatus.ERR_BUFFER_TOO_SMALL],
    ['ERR_IO', ZxStatus.ERR_IO],
    ['io_data_integrity', ZxStatus.ERR_IO_DATA_INTEGRITY],
  ])('status %s is a failure action', (name, status) => {
    const rule = parseFaultRule(`f=${name}`);
    expect(rule.status).toBe(status);
    expect(rule.delayMs).toBeUndefined();
    expect(rule.probability).toBe(1);
    expect(rule.remaining).toBeUndefined();
  });

  it.each([
    ['f=delay:20ms', { min: 20, max: 20 }, undefined],
    ['f=delay:1s', { min: 1000, max: 1000 }, undefined],
    ['f=delay:15', { min: 15, max: 15 }, undefined],
    ['f=delay:5ms-50ms', { min: 5, max: 50 }, undefined],
    ['f=delay:10ms-10ms', { min: 10, max: 10 }, undefined],
    ['f=delay:10ms,IO', { min: 10, max: 10 }, ZxStatus.ERR_IO],
    ['f=delay:1ms-2ms, NO_SPACE', { min: 1, max: 2 }, ZxStatus.ERR_NO_SPACE],
  ])('delay action %s', (text, delay, status) => {
    const rule = parseFaultRule(text);
    expect(rule.delayMs).toEqual(delay);
    expect(rule.status).toBe(status);
  });

  it('count=N and p=P options, alone and together', () => {
    expect(parseFaultRule('f=IO;count=3').remaining).toBe(3);
    expect(parseFaultRule('f=IO;p=0.25').probability).toBe(0.25);
    expect(parseFaultRule('f=IO;p=0').probability).toBe(0);
    expect(parseFaultRule('f=IO;p=1').probability).toBe(1);
    const both = parseFaultRule('big/**=delay:10ms,IO;p=0.5;count=2');
    expect(both).toMatchObject({ glob: 'big/**', status: ZxStatus.ERR_IO, delayMs: { min: 10, max: 10 }, probability: 0.5, remaining: 2 });
  });

  it('the rule text is kept (trimmed) for reading back', () => {
    expect(parseFaultRule('  logs/*.bin:0-1MiB=IO  ').text).toBe('logs/*.bin:0-1MiB=IO');
    const inj = new FaultInjector(parseFaultRules('a=IO\nb=delay:1ms'));
    expect(inj.toText()).toBe('a=IO\nb=delay:1ms\n');
  });

  it.each([
    ['no equals sign', 'f.bin', /expected GLOB\[:START-END\]=ACTION/],
    ['empty glob', '=IO', /expected GLOB/],
    ['empty glob before a range', ':0-1k=IO', /empty path glob/],
    ['range without a dash', 'f:100=IO', /range "100" must be START-END/],
    ['range with three parts', 'f:1-2-3=IO', /must be START-END/],
    ['range running backwards', 'f:8k-4k=IO', /range end must be above its start/],
    ['empty range', 'f:4k-4k=IO', /range end must be above its start/],
    ['range with a bad size', 'f:abc-1k=IO', /"abc" is not a size/],
    ['a status a pager may not give', 'f=NOT_FOUND', /"NOT_FOUND" is not a failure a pager may give/],
    ['TIMED_OUT', 'f=TIMED_OUT', /"TIMED_OUT" is not a failure/],
    ['OK is no failure', 'f=OK', /"OK" is not a failure/],
    ['an unknown status', 'f=BOGUS', /"BOGUS" is not a failure/],
    ['no action at all', 'f=', /is not a failure|no action/],
    ['a bad delay', 'f=delay:soon', /"soon" is not a duration/],
    ['a delay range running backwards', 'f=delay:50ms-5ms', /delay range must not run backwards/],
    ['count=0', 'f=IO;count=0', /unknown option "count=0"/],
    ['count not a number', 'f=IO;count=x', /unknown option "count=x"/],
    ['negative count', 'f=IO;count=-1', /unknown option/],
    ['p above 1', 'f=IO;p=2', /unknown option "p=2"/],
    ['p below 0', 'f=IO;p=-0.1', /unknown option/],
    ['p empty', 'f=IO;p=', /unknown option/],
    ['p not a number', 'f=IO;p=often', /unknown option/],
    ['an unknown option', 'f=IO;when=now', /unknown option "when=now" \(count=N or p=0\.\.1\)/],
  ])('a rule with %s is refused with an error naming the problem', (_what, text, message) => {
    let err: unknown;
    try {
      parseFaultRule(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(message);
  });

  it.each([
    ['a bad size in its range', 'f:abc-1k=IO'],
    ['a bad delay', 'f=delay:soon'],
    ['a bad status', 'f=WHAT'],
    ['a bad option', 'f=IO;count=x'],
  ])('a refused rule with %s names the rule, so a bad line in a rule file can be found', (_what, text) => {
    expect(() => parseFaultRules(`a=IO\n${text}\nb=IO`)).toThrow(`fault rule "${text}"`);
  });

  it('parseFaultRules skips blank lines and comments', () => {
    const rules = parseFaultRules('\n# a comment\n  a=IO\n\n   # indented comment\nb/**:0-4k=delay:1ms;count=1\n');
    expect(rules.map((r) => r.text)).toEqual(['a=IO', 'b/**:0-4k=delay:1ms;count=1']);
  });

  it('parseFaultRules is all or nothing: one bad line throws, naming it, and the rule set in use stays', () => {
    const inj = new FaultInjector();
    inj.replace(parseFaultRules('a=IO\nb=BAD_STATE'));
    expect(() => inj.replace(parseFaultRules('c=IO\nd=WHAT\ne=IO'))).toThrow(/fault rule "d=WHAT"/);
    expect(inj.list().map((r) => r.text)).toEqual(['a=IO', 'b=BAD_STATE']);
  });
});

describe('FaultInjector.match', () => {
  it('a range rule applies only to requests overlapping it', () => {
    const inj = new FaultInjector(parseFaultRules('f:8k-16k=IO'));
    expect(inj.match('f', 0, 8 * KiB)).toBeUndefined(); // ends at the start
    expect(inj.match('f', 16 * KiB, 4 * KiB)).toBeUndefined(); // starts at the end
    expect(inj.match('f', 4 * KiB, 8 * KiB)?.status).toBe(ZxStatus.ERR_IO);
    expect(inj.match('f', 12 * KiB, 4 * KiB)?.status).toBe(ZxStatus.ERR_IO);
    expect(inj.match('f', 0, MiB)?.status).toBe(ZxStatus.ERR_IO);
    expect(inj.match('g', 8 * KiB, 4 * KiB)).toBeUndefined();
  });

  it('the first rule that fires wins', () => {
    const inj = new FaultInjector(parseFaultRules('a/*=NO_SPACE;count=1\na/**=IO\n**=BAD_STATE'));
    expect(inj.match('a/x', 0, 4096)?.status).toBe(ZxStatus.ERR_NO_SPACE);
    expect(inj.match('a/x', 0, 4096)?.status).toBe(ZxStatus.ERR_IO);
    expect(inj.match('a/y/z', 0, 4096)?.status).toBe(ZxStatus.ERR_IO);
    expect(inj.match('b', 0, 4096)?.status).toBe(ZxStatus.ERR_BAD_STATE);
    expect(inj.fired).toBe(4);
  });

  it('count=N fires N times, then is spent', () => {
    const inj = new FaultInjector(parseFaultRules('f=IO;count=2'));
    expect(inj.match('f', 0, 4096)).toBeDefined();
    expect(inj.match('f', 0, 4096)).toBeDefined();
    expect(inj.match('f', 0, 4096)).toBeUndefined();
    expect(inj.fired).toBe(2);
  });

  it('p=0 never fires and p=1 always fires', () => {
    const never = new FaultInjector(parseFaultRules('f=IO;p=0'));
    const always = new FaultInjector(parseFaultRules('f=IO;p=1'));
    for (let i = 0; i < 200; i++) {
      expect(never.match('f', 0, 4096)).toBeUndefined();
      expect(always.match('f', 0, 4096)).toBeDefined();
    }
  });

  it('p=P fires when the random draw is below P, and does not spend count when it does not fire', () => {
    let next = 0.9;
    const inj = new FaultInjector(parseFaultRules('f=IO;p=0.5;count=1'), () => next);
    expect(inj.match('f', 0, 4096)).toBeUndefined();
    next = 0.1;
    expect(inj.match('f', 0, 4096)).toBeDefined();
    expect(inj.match('f', 0, 4096)).toBeUndefined(); // spent
  });

  it('a jittered delay lies within its range', () => {
    let r = 0;
    const inj = new FaultInjector(parseFaultRules('f=delay:10ms-30ms'), () => r);
    expect(inj.match('f', 0, 4096)?.delayMs).toBe(10);
    r = 0.5;
    expect(inj.match('f', 0, 4096)?.delayMs).toBe(20);
    r = 0.999;
    const d = inj.match('f', 0, 4096)!.delayMs;
    expect(d).toBeGreaterThanOrEqual(10);
    expect(d).toBeLessThanOrEqual(30);
    expect(inj.match('f', 0, 4096)?.status).toBeUndefined();
  });
});

describe('injected faults in the running pager', () => {
  it.each([
    'IO', 'IO_DATA_INTEGRITY', 'BAD_STATE', 'NO_SPACE', 'BUFFER_TOO_SMALL',
  ])('an injected %s surfaces to the reader with that status and leaves other ranges readable', async (name) => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const data = pattern(16 * PAGE_SIZE, 40);
    env.put('f.bin', data);
    env.put('g.bin', data);
    env.dp.faults.replace(parseFaultRules(`f.bin:16k-32k=${name}`));
    const f = await env.dp.open('f.bin');
    const g = await env.dp.open('g.bin');
    expect(await rejectionStatus(f.vmo.read(Buffer.alloc(100), 5 * PAGE_SIZE))).toBe(`ERR_${name}`);
    // Other ranges of the file and other files read.
    expect((await readVmo(f.vmo, 0, 4 * PAGE_SIZE)).equals(data.subarray(0, 4 * PAGE_SIZE))).toBe(true);
    expect((await readVmo(f.vmo, 8 * PAGE_SIZE, 8 * PAGE_SIZE)).equals(data.subarray(8 * PAGE_SIZE))).toBe(true);
    expect((await readVmo(g.vmo, 0, data.length)).equals(data)).toBe(true);
    // The failure is counted by status.
    expect(env.dp.metrics.failuresByStatus[`ERR_${name}`]).toBe(1);
    expect(env.dp.metrics.injectedFaults).toBe(1);
    // Failing leaves no state behind: lifting the rule makes the range readable.
    env.dp.faults.replace([]);
    expect((await readVmo(f.vmo, 0, data.length)).equals(data)).toBe(true);
  });

  it('a glob rule fails only the files it names', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const names = ['logs/a.bin', 'logs/sub/b.bin', 'other/a.bin', 'logs/c.txt'];
    for (const n of names) env.put(n, pattern(PAGE_SIZE, n.length));
    env.dp.faults.replace(parseFaultRules('logs/*.bin=IO'));
    const results: Record<string, string> = {};
    for (const n of names) {
      const f = await env.dp.open(n);
      results[n] = await f.vmo.read(Buffer.alloc(1), 0).then(() => 'ok', (e: { status: ZxStatus }) => statusName(e.status));
    }
    expect(results).toEqual({ 'logs/a.bin': 'ERR_IO', 'logs/sub/b.bin': 'ok', 'other/a.bin': 'ok', 'logs/c.txt': 'ok' });
  });

  it('rules follow a file across renamed()', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    env.put('a.bin', pattern(2 * PAGE_SIZE));
    const f = await env.dp.open('a.bin');
    env.dp.faults.replace(parseFaultRules('b.bin=IO'));
    await readVmo(f.vmo, 0, PAGE_SIZE);
    env.dp.renamed('a.bin', 'b.bin');
    await expectZx(f.vmo.read(Buffer.alloc(1), PAGE_SIZE), ZxStatus.ERR_IO);
  });

  it('count=N fails the first N requests, then reads succeed', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const data = pattern(PAGE_SIZE, 41);
    env.put('f.bin', data);
    env.dp.faults.replace(parseFaultRules('f.bin=IO_DATA_INTEGRITY;count=2'));
    const f = await env.dp.open('f.bin');
    await expectZx(f.vmo.read(Buffer.alloc(10), 0), ZxStatus.ERR_IO_DATA_INTEGRITY);
    await expectZx(f.vmo.read(Buffer.alloc(10), 0), ZxStatus.ERR_IO_DATA_INTEGRITY);
    expect((await readVmo(f.vmo, 0, PAGE_SIZE)).equals(data)).toBe(true);
    expect(env.dp.faults.fired).toBe(2);
  });

  it('p=0 never fails a read; p=1 always does', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const data = pattern(8 * PAGE_SIZE, 42);
    env.put('never.bin', data);
    env.put('always.bin', data);
    env.dp.faults.replace(parseFaultRules('never.bin=IO;p=0\nalways.bin=IO;p=1'));
    const n = await env.dp.open('never.bin');
    const a = await env.dp.open('always.bin');
    for (let p = 0; p < 8; p++) {
      expect((await readVmo(n.vmo, p * PAGE_SIZE, PAGE_SIZE)).equals(data.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE))).toBe(true);
      await expectZx(a.vmo.read(Buffer.alloc(1), p * PAGE_SIZE), ZxStatus.ERR_IO);
    }
    expect(env.dp.metrics.injectedFaults).toBe(8);
  });

  it('a delay rule makes that read take at least the delay while a read of another file completes meanwhile', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const slowData = pattern(PAGE_SIZE, 43);
    const fastData = pattern(PAGE_SIZE, 44);
    env.put('slow.bin', slowData);
    env.put('fast.bin', fastData);
    env.dp.faults.replace(parseFaultRules('slow.bin=delay:1s'));
    const slow = await env.dp.open('slow.bin');
    const fast = await env.dp.open('fast.bin');
    let slowDone = false;
    const t0 = performance.now();
    const slowRead = readVmo(slow.vmo, 0, PAGE_SIZE).then((b) => { slowDone = true; return b; });
    const fastOut = await readVmo(fast.vmo, 0, PAGE_SIZE);
    expect(fastOut.equals(fastData)).toBe(true);
    expect(slowDone).toBe(false);
    expect((await slowRead).equals(slowData)).toBe(true);
    // Timers may fire a hair early by the clock we measure with; allow 5 ms.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(995);
  });

  it('a delay then a status delays, then fails', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    env.put('f.bin', pattern(PAGE_SIZE));
    env.dp.faults.replace(parseFaultRules('f.bin=delay:100ms,IO'));
    const f = await env.dp.open('f.bin');
    const t0 = performance.now();
    await expectZx(f.vmo.read(Buffer.alloc(1), 0), ZxStatus.ERR_IO);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(95);
  });

  it('a DIRTY request refused with NO_SPACE fails the write and leaves the data unchanged', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const data = pattern(4 * PAGE_SIZE, 45);
    env.put('f.bin', data);
    const f = await env.dp.open('f.bin');
    expect((await readVmo(f.vmo, 0, data.length)).equals(data)).toBe(true); // pages resident and Clean
    env.dp.faults.replace(parseFaultRules('f.bin=NO_SPACE'));
    await expectZx(f.vmo.write(Buffer.alloc(100, 0xee), PAGE_SIZE + 50), ZxStatus.ERR_NO_SPACE);
    expect((await readVmo(f.vmo, 0, data.length)).equals(data)).toBe(true);
    expect(env.dp.pager.queryDirtyRanges(f.vmo, 0, f.vmo.sizeBytes).ranges).toEqual([]);
    await env.dp.writeback(f, true);
    expect(env.backing('f.bin').equals(data)).toBe(true);
    expect(env.dp.metrics.failuresByStatus.ERR_NO_SPACE).toBe(1);
    // Space comes back: the same write succeeds.
    env.dp.faults.replace([]);
    await f.vmo.write(Buffer.alloc(100, 0xee), PAGE_SIZE + 50);
    await env.dp.writeback(f, true);
    const exp = Buffer.from(data);
    exp.fill(0xee, PAGE_SIZE + 50, PAGE_SIZE + 150);
    expect(env.backing('f.bin').equals(exp)).toBe(true);
  });

  it('a range rule fails the DIRTY request of a write into that range only', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0 });
    const data = pattern(4 * PAGE_SIZE, 46);
    env.put('f.bin', data);
    const f = await env.dp.open('f.bin');
    await readVmo(f.vmo, 0, data.length);
    env.dp.faults.replace(parseFaultRules('f.bin:8k-12k=NO_SPACE'));
    await f.vmo.write(Buffer.from('ok'), 0);
    await expectZx(f.vmo.write(Buffer.from('no'), 2 * PAGE_SIZE), ZxStatus.ERR_NO_SPACE);
    expect((await readVmo(f.vmo, 0, 2)).toString()).toBe('ok');
    expect((await readVmo(f.vmo, 2 * PAGE_SIZE, 2)).equals(data.subarray(2 * PAGE_SIZE, 2 * PAGE_SIZE + 2))).toBe(true);
  });

  it('shutdown does not wait out an injected delay: a delayed read fails at once and the pager stops', async () => {
    const env = makeEnv({ readaheadMaxBytes: 0, faults: new FaultInjector([parseFaultRule('slow.bin=delay:60s')]) });
    env.put('slow.bin', pattern(4 * PAGE_SIZE, 3));
    const f = await env.dp.open('slow.bin');
    const read = readVmo(f.vmo, 0, 10).then(() => 'read', (err: unknown) => (err as Error).message);
    while (env.dp.metrics.injectedFaults === 0) await new Promise((r) => setTimeout(r, 2));
    const t0 = performance.now();
    await env.dp.shutdown(); // waited the whole 60 s (SIGTERM of a daemon with such a rule)
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(await read).not.toBe('read');
  }, 20_000);
});
