/**
 * `pagerfs top`: `--once` prints one plain frame with every field (budget bar, pressure, rates,
 * latency, busiest files with residency strips) within 80x24; live in a tmux terminal it renders,
 * refreshes, and quits on q or Ctrl-C leaving the terminal as it was; bad input is refused.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, PAGE, randomData, run, runCli, startMount, tempDir, useMountHooks, type RunResult } from './harness.js';
import { Tmux } from './tmux.js';

useMountHooks();

const MiB = 1024 * 1024;

/** Reads `file` over and over (dd) until stopped. */
function keepReading(file: string): { stop: () => Promise<void> } {
  const child = spawn('sh', ['-c', `while :; do dd if="${file}" of=/dev/null bs=128k 2>/dev/null; done`], { stdio: 'ignore' });
  return {
    stop: () => new Promise<void>((resolve) => { child.on('exit', () => resolve()); child.kill('SIGKILL'); }),
  };
}

function oneLine(res: RunResult, exit: number, mention: RegExp): void {
  const what = `exit ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`;
  expect(res.code, what).toBe(exit);
  expect(res.stderr.trimEnd().split('\n'), what).toHaveLength(1);
  expect(res.stderr, what).toMatch(/^pagerfs: /);
  expect(res.stderr, what).toMatch(mention);
  expect(res.stdout, what).toBe('');
}

describe('pagerfs top --once', () => {
  it('prints one plain-text frame within 80x24 showing every field: budget bar, pressure, rates, latency, busiest files with strips', async () => {
    const m = await startMount({
      budget: '2MiB', args: ['--writeback-delay', '60s'],
      files: { 'hot/stream.bin': randomData(6 * MiB), 'small.bin': randomData(32 * PAGE), 'locked.bin': randomData(16 * PAGE) },
    });
    expect((await runCli(['lock', m.p('locked.bin')])).code).toBe(0);
    await fsp.readFile(m.p('small.bin'));
    const reader = keepReading(m.p('hot/stream.bin'));
    let res: RunResult;
    try {
      res = await runCli(['top', m.mnt, '--once']);
    } finally {
      await reader.stop();
    }
    expect(res.code, res.stderr).toBe(0);
    const out = res.stdout;
    expect(out).not.toMatch(/\x1b|\r/);
    const lines = out.replace(/\n$/, '').split('\n');
    expect(lines.length).toBeLessThanOrEqual(24);
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(80);
    expect(lines[0]).toContain(`pagerfs top  ${m.mnt}`);
    // Budget bar: locked, dirty, clean, free.
    const bar = /^budget 2MiB \[([LD=.]+)\]$/m.exec(out);
    expect(bar, out).not.toBeNull();
    expect(bar![1]).toMatch(/^L+/); // 64 KiB locked of 2 MiB: at least one cell
    expect(out).toMatch(/L locked 64KiB {3}D dirty \S+ {3}= clean \S+ {3}\. free \S+/);
    expect(out).toMatch(/^pressure (NORMAL|WARNING|CRITICAL|OUT_OF_MEMORY) {3}\(time in each: NORMAL [\d.]+s, WARNING [\d.]+s, CRITICAL [\d.]+s, OOM [\d.]+s\)$/m);
    // Rates per second from two samples; the reader makes requests, supplies and evictions happen.
    const r1 = /per second: +page requests (\S+) +supplied pages (\S+) +evictions (\S+)/.exec(out);
    const r2 = /writeback (\S+)\/s +failures (\S+)/.exec(out);
    expect(r1, out).not.toBeNull();
    expect(r2, out).not.toBeNull();
    expect(Number.parseFloat(r1![1])).toBeGreaterThan(0);
    expect(Number.parseFloat(r1![2])).toBeGreaterThan(0);
    expect(Number.parseFloat(r1![3])).toBeGreaterThan(0);
    expect(r2![2]).toBe('0');
    expect(out).toMatch(/latency: +p50 \d+\.\d\d ms +p99 \d+\.\d\d ms/);
    // Busiest files: the streamed file first, each with a strip; the locked one drawn with L.
    const table = lines.slice(lines.findIndex((l) => /busiest files/.test(l)) + 1);
    expect(table[0]).toMatch(/hot\/stream\.bin +\[[ OoDdLlPp]+\]$/);
    expect(table.find((l) => l.includes('locked.bin'))).toMatch(/\[L+\]$/);
    expect(table.find((l) => l.includes('small.bin'))).toMatch(/\[[ OoDdLlPp]+\]$/);
  });

  it('a file name with an escape sequence or a newline reaches the terminal escaped, in top, stats and residency', async () => {
    const name = 'evil\x1b[2J\nname.bin';
    const m = await startMount({ budget: '1MiB', files: { [name]: randomData(8 * PAGE) } });
    await fsp.readFile(m.p(name)); // resident: listed among the busiest files
    for (const args of [['top', m.mnt, '--once'], ['stats', m.mnt], ['residency', '-v', m.p(name)], ['residency', m.mnt]]) {
      const res = await runCli(args);
      expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(0);
      expect(res.stdout, args.join(' ')).not.toContain('\x1b');
      expect(res.stdout, args.join(' ')).toContain('evil\\x1b[2J\\x0aname.bin');
    }
  });

  it('refuses a path outside a mount, and a bad interval, with one line', async () => {
    const m = await startMount({ budget: '2MiB' });
    oneLine(await runCli(['top', m.backing, '--once']), 3, /not inside a pagerfs mount/);
    oneLine(await runCli(['top', path.join(m.mnt, 'nope'), '--once']), 3, /no such file or directory/);
    oneLine(await runCli(['top', m.mnt, '--once', '--interval', 'soon']), 2, /Invalid --interval "soon"/);
    oneLine(await runCli(['top', m.mnt, '--once', '--interval', '5ms']), 2, /at least 100ms/);
    oneLine(await runCli(['top', m.mnt, '--once', '--interval', '1000h']), 2, /at most 1h/); // a timer past 2^31 ms fires at once
  });

  it('without a terminal prints plain frames until the mount goes away, then exits with one line', async () => {
    const m = await startMount({ budget: '2MiB', files: { 'f.bin': randomData(8 * PAGE) } });
    const child = spawn(process.execPath, [CLI, 'top', m.mnt, '--interval', '200ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const deadline = Date.now() + 15_000;
    while ((out.match(/^pagerfs top/gm) ?? []).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect((out.match(/^pagerfs top/gm) ?? []).length).toBeGreaterThanOrEqual(2);
    await m.unmount();
    expect(await exited).toBe(3);
    expect(out).not.toMatch(/\x1b/);
    expect(err.trimEnd().split('\n')).toHaveLength(1);
    expect(err).toMatch(/^pagerfs: Cannot read the stats of/);
  });
});

describe('pagerfs top in a terminal', () => {
  it('in a terminal narrower than its layout (12x6), each line is cut to the width: title first, nothing wrapped or scrolled', async () => {
    const m = await startMount({ budget: '2MiB', files: { 'a.bin': randomData(16 * PAGE) } });
    await fsp.readFile(m.p('a.bin'));
    const t = await Tmux.start(12, 6);
    try {
      await t.type(`node dist/fs/cli.js top ${m.mnt}; echo Q-$((1+1))`);
      const screen = await t.waitFor(/^budget 2MiB/m);
      const text = screen.join('\n');
      // Before: lines were drawn 20 columns wide, wrapped, and scrolled the title and budget away.
      expect(screen, text).toHaveLength(6);
      for (const row of screen) expect(row.length, text).toBeLessThanOrEqual(11);
      expect(screen[0], text).toMatch(/^…\S \d\d:\d\d:\d\d$/);
      expect(screen[1], text).toBe('budget 2MiB');
      expect(screen[2], text).toMatch(/^ {2}L locked/);
      expect(screen[3], text).toMatch(/^pressure/);
      await t.keys('q');
      expect((await t.waitFor(/^Q-2$/m)).join('\n')).toMatch(/^Q-2$/m);
    } finally {
      await t.close();
    }
  });

  it('a name in Chinese and Japanese (two columns a character) keeps the table aligned and inside 80 columns', async () => {
    const wide = '日本語のファイル名前です中文名字.bin'; // 16 wide characters: 32 columns before '.bin'
    const m = await startMount({ budget: '2MiB', files: { [wide]: randomData(16 * PAGE), 'plain.bin': randomData(16 * PAGE) } });
    await fsp.readFile(m.p(wide));
    await fsp.readFile(m.p('plain.bin'));
    const t = await Tmux.start(80, 24);
    try {
      await t.type(`node dist/fs/cli.js top ${m.mnt} --once; echo DONE-$((1+1))`);
      const screen = await t.waitFor(/^DONE-2$/m);
      const text = screen.join('\n');
      // capture-pane gives a wide character once: its columns are the row's characters plus one per wide one.
      const columnOf = (row: string, i: number): number => i + (row.slice(0, i).match(/[\u3000-\u9fff]/g) ?? []).length;
      const wideRow = screen.find((r) => /[\u3000-\u9fff]/.test(r) && r.includes('['));
      const plainRow = screen.find((r) => r.includes('plain.bin'));
      expect(wideRow, text).toBeDefined();
      expect(plainRow, text).toBeDefined();
      // Before: the name was cut to 25 UTF-16 units (up to 50 columns), the row ran past 80 columns
      // and its strip wrapped onto the next line.
      expect(wideRow!, text).toMatch(/…\S*\.bin +\[[ OoDdLlPp]+\]$/);
      expect(columnOf(wideRow!, wideRow!.length), text).toBeLessThanOrEqual(80);
      expect(columnOf(wideRow!, wideRow!.indexOf('[')), text).toBe(plainRow!.indexOf('['));
      expect(wideRow!.indexOf('['), text).toBeLessThan(plainRow!.indexOf('['));
    } finally {
      await t.close();
    }
  });

  for (const [name, key] of [['q', 'q'], ['Ctrl-C', 'C-c']] as const) {
    it(`renders within 80x24, refreshes, and quits on ${name} leaving the shell prompt usable and the terminal settings as they were`, async () => {
      const m = await startMount({ budget: '2MiB', files: { 'a.bin': randomData(4 * MiB), 'b.bin': randomData(64 * PAGE) } });
      expect((await runCli(['lock', m.p('b.bin')])).code).toBe(0);
      const dir = await tempDir('pagerfs-tty-');
      const t = await Tmux.start(80, 24);
      const reader = keepReading(m.p('a.bin'));
      try {
        await t.type(`stty -g > ${dir}/before; echo READY-$((20+1))`);
        await t.waitFor(/^READY-21$/m);
        await t.type(`node dist/fs/cli.js top ${m.mnt}`);
        const first = await t.waitFor(/pagerfs top/);
        expect(first.join('\n')).toMatch(/pagerfs top/);
        // A refresh: rates appear once a second sample exists.
        const screen = await t.waitFor(/page requests [1-9]/);
        const text = screen.join('\n');
        expect(screen).toHaveLength(24);
        for (const row of screen) expect(row.length).toBeLessThanOrEqual(80);
        expect(screen[0]).toMatch(/^pagerfs top {2}\S+ +\d\d:\d\d:\d\d {2}q: quit/);
        expect(text).toMatch(/^budget 2MiB \[[LD=.]+\]/m);
        expect(text).toMatch(/^pressure \S+/m);
        expect(text).toMatch(/page requests [1-9]/);
        expect(text).toMatch(/supplied pages \S+ +evictions \S+/);
        expect(text).toMatch(/writeback \S+ +failures \S+/);
        expect(text).toMatch(/p50 \S+ ms +p99 \S+ ms/);
        expect(text).toMatch(/a\.bin +\[[ OoDdLlPp]+\]/);
        expect(text).toMatch(/b\.bin +\[L+\]/);
        // The shell's lines are hidden while top runs: alternate screen, no cursor.
        expect(text).not.toMatch(/READY-21/);
        expect(await t.flag('alternate_on')).toBe('1');
        expect(await t.flag('cursor_flag')).toBe('0');

        await t.keys(key);
        const back = await t.waitFor(/^READY-21$/m);
        expect(back.join('\n')).not.toMatch(/budget 2MiB \[/);
        await t.type(`stty -g > ${dir}/after; echo AFTER-$((40+2))`);
        const after = await t.waitFor(/^AFTER-42$/m);
        expect(after.join('\n')).toMatch(/^AFTER-42$/m);
        const [b, a] = await Promise.all([fsp.readFile(path.join(dir, 'before'), 'utf8'), fsp.readFile(path.join(dir, 'after'), 'utf8')]);
        expect(a).toBe(b);
        expect(await t.flag('alternate_on')).toBe('0');
        expect(await t.flag('cursor_flag')).toBe('1');
        // top is gone.
        const ps = await run('pgrep', ['-f', `cli.js top ${m.mnt}`]);
        expect(ps.stdout).toBe('');
      } finally {
        await reader.stop();
        await t.close();
      }
    });
  }
});
