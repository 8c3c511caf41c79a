/**
 * `pagerfs top <mountpoint>`: a live view of a mount, refreshed every interval (1 s): the budget as a
 * bar (locked, dirty, clean, free), the pressure level and time spent in each, rates per second
 * computed from successive stats (page requests, supplied pages, evictions, writeback bytes,
 * failures), request latency p50/p99, and the busiest files, each with a residency strip.
 *
 * On a terminal it draws on the alternate screen with stdin in raw mode, and restores both when it
 * quits (q, Ctrl-C, SIGTERM/SIGHUP, or an error). `--once` samples twice an interval apart and prints
 * one plain-text frame (no escape codes) for scripts; with stdout not a terminal, frames are printed
 * one after another in plain text.
 */
import path from 'node:path';
import { formatSize, parseDuration } from '../pager/index.js';
import { getMap, locate, noAnswerText, readStatsAnswer } from './client.js';
import { ConfigError, EXIT } from './config.js';
import type { StatsDocument } from './control.js';
import { budgetBar, fitLeft, fitRight, padColumns, printable, rateText, residencyStrip } from './render.js';

interface Sample {
  at: number;
  stats: StatsDocument;
}

export interface FrameInput {
  mountpoint: string;
  prev: Sample | null;
  cur: Sample;
  /** user.pagerfs.map of files by path (missing: no strip). */
  maps: Map<string, string>;
  width: number;
  height: number;
  /** Wall clock shown in the title. */
  now: Date;
  live: boolean;
}

type FileRow = StatsDocument['files'][number] & { faultRate: number; evictRate: number };

const TABLE_TOP = 9;

/** The files to show, busiest first: page faults in the last interval, then evictions, then residency. */
export function busiestFiles(prev: Sample | null, cur: Sample, max: number): FileRow[] {
  const dt = prev === null ? 0 : (cur.at - prev.at) / 1000;
  const before = new Map((prev?.stats.files ?? []).map((f) => [f.path, f]));
  const rows = cur.stats.files.map((f) => {
    const b = before.get(f.path);
    const faultRate = dt > 0 && b !== undefined ? Math.max(0, f.faults - b.faults) / dt : NaN;
    const evictRate = dt > 0 && b !== undefined ? Math.max(0, f.evictedPages - b.evictedPages) / dt : NaN;
    return { ...f, faultRate, evictRate };
  });
  const n = (x: number): number => (Number.isFinite(x) ? x : 0);
  rows.sort((a, b) => n(b.faultRate) - n(a.faultRate) || n(b.evictRate) - n(a.evictRate) ||
    b.residentBytes - a.residentBytes || a.path.localeCompare(b.path));
  return rows.slice(0, Math.max(0, max));
}

/** How many file rows fit a screen of `height` lines. */
export function fileRows(height: number): number {
  return Math.max(0, height - TABLE_TOP - 1);
}

/** One frame as lines of at most `width` columns, at most `height` lines, no escape codes. */
export function renderFrame(f: FrameInput): string[] {
  const { cur, prev, width } = f;
  const s = cur.stats;
  const dt = prev === null ? 0 : (cur.at - prev.at) / 1000;
  const rate = (pick: (x: StatsDocument) => number): number => (dt > 0 ? Math.max(0, pick(s) - pick(prev!.stats)) / dt : NaN);
  const clean = Math.max(0, s.residentBytes - s.dirtyBytes - s.lockedBytes);
  const free = Math.max(0, s.budgetBytes - s.residentBytes);
  const clock = f.now.toTimeString().slice(0, 8);
  const title = `pagerfs top  ${printable(f.mountpoint)}`;
  const right = `${clock}${f.live ? '  q: quit' : ''}`;
  const lines: string[] = [];
  lines.push(`${padColumns(fitLeft(title, width - right.length - 1), width - right.length)}${right}`);
  const budgetLabel = `budget ${formatSize(s.budgetBytes)} `;
  lines.push(`${budgetLabel}[${budgetBar({ budget: s.budgetBytes, clean, dirty: s.dirtyBytes, locked: s.lockedBytes }, Math.max(4, width - budgetLabel.length - 2))}]`);
  lines.push(`  L locked ${formatSize(s.lockedBytes)}   D dirty ${formatSize(s.dirtyBytes)}   = clean ${formatSize(clean)}   . free ${formatSize(free)}`);
  const levels = Object.entries(s.secondsInPressureLevels ?? {})
    .map(([k, v]) => `${k === 'OUT_OF_MEMORY' ? 'OOM' : k} ${v === 0 || v >= 10 ? v.toFixed(0) : v.toFixed(1)}s`).join(', ');
  lines.push(`pressure ${s.pressureLevel}   (time in each: ${levels})`);
  const wbRate = rate((x) => x.writebackBytes);
  lines.push(`per second:  page requests ${rateText(rate((x) => x.pageRequests))}  supplied pages ${rateText(rate((x) => x.suppliedPages))}  evictions ${rateText(rate((x) => x.evictedPages))}`);
  lines.push(`             writeback ${Number.isFinite(wbRate) ? `${formatSize(Math.round(wbRate))}/s` : '-'}  failures ${rateText(rate((x) => x.failedRequests))}${dt > 0 ? '' : '   (rates after the next sample)'}`);
  lines.push(`latency:  p50 ${s.latencyP50Ms.toFixed(2)} ms  p99 ${s.latencyP99Ms.toFixed(2)} ms   (evicted since mount: ${s.evictedPages} pages)`);
  lines.push('');
  // The busiest files: resident, dirty, faults/s, path, residency strip.
  const pathW = Math.max(8, Math.min(28, Math.floor((width - 30) / 2)));
  const stripW = Math.max(4, width - (9 + 1 + 8 + 1 + 7 + 2 + pathW + 2) - 2);
  lines.push(`${'resident'.padStart(9)} ${'dirty'.padStart(8)} ${'flt/s'.padStart(7)}  ${'busiest files'.padEnd(pathW)}  residency`);
  const rows = busiestFiles(prev, cur, fileRows(f.height));
  if (rows.length === 0) lines.push('  (no file has pages yet)');
  for (const r of rows) {
    const map = f.maps.get(r.path);
    const strip = map === undefined ? '' : `[${residencyStrip(map, Math.ceil(r.size / 4096), stripW)}]`;
    lines.push(`${formatSize(r.residentBytes).padStart(9)} ${formatSize(r.dirtyBytes).padStart(8)} ${rateText(r.faultRate).padStart(7)}  ${padColumns(fitLeft(printable(r.path), pathW), pathW)}  ${strip}`);
  }
  return lines.slice(0, f.height).map((l) => fitRight(l, width));
}

async function sample(mountpoint: string): Promise<Sample> {
  // In a child process, within the answer timeout: a read the daemon never answers (SIGSTOPped) must
  // neither freeze top for good nor keep q and Ctrl-C from quitting (see readStatsAnswer).
  const res = await readStatsAnswer(mountpoint);
  if ('timedOutMs' in res) throw new ConfigError(noAnswerText(mountpoint, res.timedOutMs), EXIT.BAD_PATH);
  if ('code' in res) {
    throw new ConfigError(`Cannot read the stats of "${mountpoint}": not a pagerfs mount, or its daemon is gone (${res.code})`, EXIT.BAD_PATH);
  }
  return { at: performance.now(), stats: JSON.parse(res.text) as StatsDocument };
}

/** Maps of the files the frame will show (read in parallel; a file that went away has none). */
async function mapsFor(mountpoint: string, prev: Sample | null, cur: Sample, height: number): Promise<Map<string, string>> {
  const rows = busiestFiles(prev, cur, fileRows(height));
  const maps = new Map<string, string>();
  await Promise.all(rows.map(async (r) => {
    try {
      maps.set(r.path, await getMap(path.join(mountpoint, r.path)));
    } catch {
      // unlinked or renamed meanwhile: no strip this time
    }
  }));
  return maps;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function topCommand(target: string, opts: { once?: boolean; interval?: string }): Promise<void> {
  let intervalMs: number;
  try {
    intervalMs = parseDuration(opts.interval ?? '1s');
  } catch (err) {
    throw new ConfigError(`Invalid --interval "${opts.interval}": ${(err as Error).message}`);
  }
  if (intervalMs < 100) throw new ConfigError(`Invalid --interval "${opts.interval}": must be at least 100ms`);
  // Timers take at most 2^31 - 1 ms; a longer one fires at once (25d refreshed every millisecond).
  if (intervalMs > 3_600_000) throw new ConfigError(`Invalid --interval "${opts.interval}": must be at most 1h`);
  const loc = await locate(target, 'Cannot watch');
  const mnt = loc.mountpoint;
  const out = process.stdout;
  const tty = out.isTTY === true;
  const size = (): { width: number; height: number } => ({
    width: tty && out.columns ? out.columns : 80,
    height: tty && out.rows ? out.rows : 24,
  });

  if (opts.once || !tty) {
    let prev = await sample(mnt);
    for (;;) {
      await sleep(intervalMs);
      const cur = await sample(mnt);
      const { width, height } = size();
      const maps = await mapsFor(mnt, prev, cur, height);
      out.write(`${renderFrame({ mountpoint: mnt, prev, cur, maps, width, height, now: new Date(), live: false }).join('\n')}\n`);
      if (opts.once) return;
      out.write('\n');
      prev = cur;
    }
  }

  // Live on a terminal: alternate screen, hidden cursor, raw keys; everything restored on the way out.
  const stdin = process.stdin;
  const rawInput = stdin.isTTY === true;
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    if (rawInput) {
      try { stdin.setRawMode(false); } catch { /* the terminal went away */ }
    }
    stdin.pause();
    out.write('\x1b[?25h\x1b[?1049l');
  };
  const quit = (code: number, message?: string): void => {
    restore();
    if (message !== undefined) process.stderr.write(`pagerfs: ${message}\n`);
    out.write('', () => process.exit(code));
  };
  process.on('exit', restore);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => quit(0));
  out.write('\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J');
  if (rawInput) {
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', (key: Buffer) => {
      const k = key.toString('utf8');
      if (k === 'q' || k === 'Q' || k.includes('\x03') || k.includes('\x04')) quit(0);
    });
  }

  let prev: Sample | null = null;
  let cur: Sample;
  let maps: Map<string, string>;
  try {
    cur = await sample(mnt);
    maps = await mapsFor(mnt, prev, cur, size().height);
  } catch (err) {
    quit(EXIT.BAD_PATH, (err as Error).message);
    return;
  }
  const draw = (): void => {
    if (restored) return;
    const { width, height } = size();
    // One column spare: a full-width line would leave the cursor in the pending-wrap state, where \x1b[K erases the last character.
    // The layout needs 20 columns; a narrower terminal gets each line cut to its width, never wrapped
    // (a wrapped line scrolled the screen: rows drawn out of order, the title gone).
    const fit = Math.max(1, width - 1);
    const lines = renderFrame({ mountpoint: mnt, prev, cur, maps, width: Math.max(20, fit), height, now: new Date(), live: true })
      .map((l) => fitRight(l, fit));
    out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\r\n')}\x1b[J`);
  };
  out.on('resize', draw);
  draw();
  for (;;) {
    await sleep(intervalMs);
    if (restored) return;
    try {
      const next = await sample(mnt);
      prev = cur;
      cur = next;
      maps = await mapsFor(mnt, prev, cur, size().height);
    } catch (err) {
      quit(EXIT.BAD_PATH, (err as Error).message);
      return;
    }
    draw();
  }
}
