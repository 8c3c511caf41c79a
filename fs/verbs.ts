/**
 * The vmtouch-style verbs and the budget command, run against a live mount through its control
 * files and user.pagerfs.* attributes (fs/client.ts):
 *
 *   budget MOUNT [SIZE]   print the budget in force, or set it (.pagerfs/budget)
 *   touch PATH...         hint commit: fault every page in (older pages may be evicted to make room)
 *   evict PATH...         hint evict: write back dirty pages, then reclaim the clean ones now
 *   lock PATH...          hint always_need: fault in and keep (refused beyond the locked share, or
 *                         when it would leave reads fewer than MIN_BUDGET_PAGES of the budget)
 *   unlock PATH...        hint normal: lift always_need
 *   residency PATH...     resident / total pages per file (-v: a strip per file)
 *
 * Every operand is checked before anything changes: it must exist and lie inside a pagerfs mount
 * (directories are walked; only regular files count; hard links once). Each verb ends with a summary
 * and shows a progress line on a terminal when it runs longer than a second.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { MIN_BUDGET_PAGES, PAGE_SIZE } from '../src/index.js';
import { formatSize, parseSize } from '../pager/index.js';
import {
  XattrError, getMap, getResidency, locate, readBudget, readStats, setHint, writeBudget,
  type Hint, type Residency,
} from './client.js';
import { ConfigError, EXIT } from './config.js';
import { CONTROL_DIR, type StatsDocument } from './control.js';
import { Progress, STRIP_LEGEND, elapsedText, pagesText, percent, printable, residencyStrip, summaryBlock } from './render.js';

/** One regular file a verb works on. */
export interface Target {
  /** The name to show: the operand, or the operand joined with the path below it. */
  display: string;
  /** Absolute path through the mount. */
  file: string;
  mountpoint: string;
  /** Relative to the mountpoint (how .pagerfs/stats names it). */
  rel: string;
  size: number;
  pages: number;
}

export interface Targets {
  files: Target[];
  directories: number;
  mountpoints: string[];
}

const pagesOf = (bytes: number): number => Math.ceil(bytes / PAGE_SIZE);

/** What reads need beside the pinned and locked pages (VmSystem.smallestBudgetPages). */
const WORKING_BYTES = MIN_BUDGET_PAGES * PAGE_SIZE;

/** A size exactly, in the largest unit that divides it (1114112 → "1088KiB"): a value to type back in. */
function exactSize(bytes: number): string {
  for (const [unit, name] of [[1024 ** 3, 'GiB'], [1024 ** 2, 'MiB'], [1024, 'KiB']] as const) {
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${name}`;
  }
  return `${bytes}B`;
}

function warn(text: string): void {
  process.stderr.write(`pagerfs: ${text}\n`);
}

/**
 * Resolves the operands to the regular files under them. Throws ConfigError (nothing has changed yet)
 * for an operand that does not exist, lies outside a pagerfs mount, or is neither a regular file nor
 * a directory. Unreadable directories met during the walk are reported and skipped.
 */
export async function collectTargets(operands: string[], verb: string): Promise<Targets> {
  const action = `Cannot ${verb}`;
  if (operands.length === 0) throw new ConfigError(`${action}: no paths given`);
  const located = [];
  for (const given of operands) {
    const loc = await locate(given, action);
    const st = await fsp.stat(loc.real).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError(`${action} "${given}": cannot be read (${err.code})`, EXIT.BAD_PATH);
    });
    if (!st.isFile() && !st.isDirectory()) throw new ConfigError(`${action} "${given}": not a regular file or a directory`, EXIT.BAD_PATH);
    located.push({ loc, isDir: st.isDirectory() });
  }
  const seen = new Set<string>();
  const out: Targets = { files: [], directories: 0, mountpoints: [] };
  const add = (display: string, file: string, mountpoint: string, st: { dev: number; ino: number; size: number }): void => {
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return;
    seen.add(id);
    if (!out.mountpoints.includes(mountpoint)) out.mountpoints.push(mountpoint);
    out.files.push({ display: printable(display), file, mountpoint, rel: path.relative(mountpoint, file), size: st.size, pages: pagesOf(st.size) });
  };
  const walk = async (dir: string, display: string, mountpoint: string, mountDev: number): Promise<void> => {
    out.directories++;
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      warn(`skipping directory "${printable(display)}": cannot be listed (${(err as NodeJS.ErrnoException).code})`);
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (dir === mountpoint && e.name === CONTROL_DIR) continue;
      const shown = path.join(display, e.name);
      // Symbolic links are not followed inside a walk (as vmtouch without -f).
      if (e.isDirectory()) {
        // As find -xdev: a filesystem mounted inside the mount holds no pagerfs pages.
        const st = await fsp.lstat(full).catch(() => null);
        if (st === null) continue;
        if (st.dev !== mountDev) warn(`skipping directory "${printable(shown)}": another filesystem is mounted there`);
        else await walk(full, shown, mountpoint, mountDev);
      } else if (e.isFile()) {
        const st = await fsp.lstat(full).catch(() => null);
        if (st?.isFile()) add(shown, full, mountpoint, st);
      }
    }
  };
  for (const { loc, isDir } of located) {
    if (isDir) await walk(loc.real, loc.given, loc.mountpoint, loc.mountDev);
    else add(loc.given, loc.real, loc.mountpoint, await fsp.stat(loc.real));
  }
  return out;
}

/** Runs fn over items, at most `limit` at once, in order of start. */
async function pool<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function statsByMount(mountpoints: string[]): Promise<Map<string, StatsDocument>> {
  const out = new Map<string, StatsDocument>();
  for (const m of mountpoints) out.set(m, await readStats(m));
  return out;
}

/** A file's resident pages as a stats document reports them (0 when it has no VMO). */
function residentIn(stats: Map<string, StatsDocument>, t: Target): number {
  const f = stats.get(t.mountpoint)?.files.find((x) => x.path === t.rel);
  return f === undefined ? 0 : f.residentBytes / PAGE_SIZE;
}

function errText(err: unknown): string {
  if (err instanceof XattrError) return `${err.detail} (${err.code})`;
  if (err instanceof ConfigError) return err.message;
  const e = err as NodeJS.ErrnoException;
  return e.code !== undefined ? `${e.message} (${e.code})` : String(err);
}

/** The lines every verb's summary starts with. */
function commonRows(targets: Targets, resident: number): Array<[string, string]> {
  const total = targets.files.reduce((n, t) => n + t.pages, 0);
  return [
    ['Files', String(targets.files.length)],
    ['Directories', String(targets.directories)],
    ['Resident Pages', `${resident}/${total}  ${formatSize(resident * PAGE_SIZE)}/${formatSize(total * PAGE_SIZE)}  ${percent(resident, total)}`],
  ];
}

interface HintRun {
  failures: number;
  /** The targets the hint failed for (reported already). */
  failed: Set<Target>;
  elapsedMs: number;
}

/** Applies `hint` to every target (`concurrency` at once), with progress; failures are reported and counted. */
async function applyHint(verb: string, targets: Targets, hint: Hint, concurrency: number): Promise<HintRun> {
  const start = Date.now();
  const progress = new Progress();
  const totalPages = targets.files.reduce((n, t) => n + t.pages, 0);
  let doneFiles = 0;
  let donePages = 0;
  const failed = new Set<Target>();
  await pool(targets.files, concurrency, async (t) => {
    progress.update(`${verb} ${doneFiles}/${targets.files.length} files  ${donePages}/${totalPages} pages  ${t.display}`);
    try {
      await setHint(t.file, hint);
    } catch (err) {
      progress.done();
      warn(`${verb} "${t.display}": ${errText(err)}`);
      failed.add(t);
    }
    doneFiles++;
    donePages += t.pages;
    progress.update(`${verb} ${doneFiles}/${targets.files.length} files  ${donePages}/${totalPages} pages  ${t.display}`);
  });
  progress.done();
  return { failures: failed.size, failed, elapsedMs: Date.now() - start };
}

function finish(summary: Array<[string, string]>, failures: number, verb: string): void {
  process.stdout.write(`${summaryBlock(summary)}\n`);
  if (failures > 0) throw new ConfigError(`${verb}: ${failures} file${failures === 1 ? '' : 's'} failed (see above)`, EXIT.REFUSED);
}

// ---- the verbs ----

export async function touchCommand(operands: string[]): Promise<void> {
  const targets = await collectTargets(operands, 'touch');
  const before = await statsByMount(targets.mountpoints);
  const run = await applyHint('touch', targets, 'commit', 1);
  const after = await statsByMount(targets.mountpoints);
  const resident = targets.files.reduce((n, t) => n + residentIn(after, t), 0);
  let evicted = 0;
  let budget = 0;
  for (const m of targets.mountpoints) {
    evicted += after.get(m)!.evictedPages - before.get(m)!.evictedPages;
    budget += after.get(m)!.budgetBytes;
  }
  const rows = commonRows(targets, resident);
  rows.push(['Evicted Pages', `${pagesText(evicted)}${evicted > 0 ? `: older pages made room within the ${formatSize(budget)} budget` : ''}`]);
  // The daemon keeps the pages of a bounded number of closed files (stats idleFileCap): touched
  // earlier in a run over more files than that, files lose their VMO, pages and all. Say so, not
  // only count them out of Resident Pages (their pages are not counted as evicted).
  const letGo = targets.files.filter((t) => t.pages > 0 && !run.failed.has(t) && !after.get(t.mountpoint)!.files.some((x) => x.path === t.rel));
  if (letGo.length > 0) {
    const caps = [...new Set(targets.mountpoints.map((m) => after.get(m)!.idleFileCap))];
    const cap = caps.length === 1 && caps[0] !== null ? `at most ${caps[0]}` : 'a bounded number of';
    rows.push(['Let Go', `${letGo.length} file${letGo.length === 1 ? '' : 's'} (${formatSize(letGo.reduce((n, t) => n + t.pages, 0) * PAGE_SIZE)}) ` +
      `after ${letGo.length === 1 ? 'its' : 'their'} touch: the daemon keeps the pages of ${cap} closed files, the least recently closed ` +
      `let go first (touch fewer files at once, or lock them): ${letGo.slice(0, 3).map((t) => t.display).join(', ')}${letGo.length > 3 ? ', …' : ''}`]);
  }
  rows.push(['Elapsed', elapsedText(run.elapsedMs)]);
  finish(rows, run.failures, 'touch');
}

export async function evictCommand(operands: string[]): Promise<void> {
  const targets = await collectTargets(operands, 'evict');
  const before = await statsByMount(targets.mountpoints);
  const run = await applyHint('evict', targets, 'evict', 4);
  const after = await statsByMount(targets.mountpoints);
  let freed = 0;
  let resident = 0;
  for (const t of targets.files) {
    const r = residentIn(after, t);
    freed += Math.max(0, residentIn(before, t) - r);
    resident += r;
  }
  const rows = commonRows(targets, resident);
  rows.push(['Evicted Pages', `${pagesText(freed)} freed`]);
  if (resident > 0) rows.push(['Still Resident', `${pagesText(resident)}: locked (unlock first), or dirty and not written back`]);
  rows.push(['Elapsed', elapsedText(run.elapsedMs)]);
  finish(rows, run.failures, 'evict');
}

export async function lockCommand(operands: string[]): Promise<void> {
  const targets = await collectTargets(operands, 'lock');
  const start = Date.now();
  const progress = new Progress();
  const totalPages = targets.files.reduce((n, t) => n + t.pages, 0);
  const lockedHere: Target[] = [];
  let donePages = 0;
  for (const [i, t] of targets.files.entries()) {
    progress.update(`lock ${i}/${targets.files.length} files  ${donePages}/${totalPages} pages  ${t.display}`);
    let had: Residency | null = null;
    try {
      had = await getResidency(t.file);
      await setHint(t.file, 'always_need');
    } catch (err) {
      progress.done();
      const noMemory = err instanceof XattrError && err.code === 'ENOMEM';
      // What was locked when the lock was refused, read before the undo below lifts this run's locks
      // (read after it, a run refused at its 1,025th file said "0B of 8MiB locked now").
      const atRefusal = noMemory ? await readStats(t.mountpoint).catch(() => null) : null;
      // All or nothing: lift the locks this run placed (files that had none before).
      for (const u of lockedHere) await setHint(u.file, 'normal').catch(() => undefined);
      const undone = lockedHere.length === 0 ? 'nothing was locked'
        : `the ${lockedHere.length} file${lockedHere.length === 1 ? '' : 's'} locked before it ${lockedHere.length === 1 ? 'was' : 'were'} unlocked again`;
      if (noMemory) {
        const held = atRefusal === null ? '' : `${formatSize(atRefusal.lockedBytes)} of ${formatSize(atRefusal.budgetBytes)} locked when it was refused; `;
        // The daemon also refuses a lock that would leave reads fewer than MIN_BUDGET_PAGES of the
        // budget, whatever --max-locked allows: say so when that is what this lock would do.
        let why = 'locked pages may hold only a share of the budget';
        if (atRefusal !== null) {
          const lockable = atRefusal.lockableBytes;
          const wanted = atRefusal.lockedBytes - (had?.locked ?? 0) * PAGE_SIZE + t.pages * PAGE_SIZE;
          if (wanted > lockable) {
            why = `locked pages must leave ${formatSize(WORKING_BYTES)} (${MIN_BUDGET_PAGES} pages) of the budget for reads ` +
              `(at most ${exactSize(Math.max(0, lockable))} can be locked), and may hold only a share of it`;
          }
        }
        throw new ConfigError(`Cannot lock "${t.display}" (${pagesText(t.pages)}): ${why} ` +
          `(${held}see mount --max-locked) (ENOMEM); ${undone}`, EXIT.REFUSED);
      }
      throw new ConfigError(`Cannot lock "${t.display}": ${errText(err)}; ${undone}`, EXIT.REFUSED);
    }
    // Locked before this run (even if every locked page has been written to since): not ours to lift.
    if (had !== null && had.locked === 0) lockedHere.push(t);
    donePages += t.pages;
  }
  progress.done();
  let locked = 0;
  let resident = 0;
  const partly: string[] = [];
  for (const t of targets.files) {
    const r = await getResidency(t.file);
    locked += r.locked;
    resident += r.resident;
    if (r.absent > 0) partly.push(t.display);
  }
  const stats = await statsByMount(targets.mountpoints);
  const lockedAll = [...stats.values()].reduce((n, s) => n + s.lockedBytes, 0);
  const budget = [...stats.values()].reduce((n, s) => n + s.budgetBytes, 0);
  const rows = commonRows(targets, resident);
  rows.push(['Locked Pages', `${pagesText(locked)}  (mount: ${formatSize(lockedAll)} of the ${formatSize(budget)} budget locked)`]);
  if (partly.length > 0) rows.push(['Partly Locked', `${partly.length} file${partly.length === 1 ? '' : 's'} (pages evicted while locking): ${partly.slice(0, 3).join(', ')}`]);
  rows.push(['Elapsed', elapsedText(Date.now() - start)]);
  finish(rows, 0, 'lock');
}

export async function unlockCommand(operands: string[]): Promise<void> {
  const targets = await collectTargets(operands, 'unlock');
  const before = await statsByMount(targets.mountpoints);
  const run = await applyHint('unlock', targets, 'normal', 4);
  const after = await statsByMount(targets.mountpoints);
  let unlocked = 0;
  for (const m of targets.mountpoints) unlocked += Math.max(0, before.get(m)!.lockedBytes - after.get(m)!.lockedBytes) / PAGE_SIZE;
  const resident = targets.files.reduce((n, t) => n + residentIn(after, t), 0);
  finish([
    ...commonRows(targets, resident),
    ['Unlocked Pages', pagesText(unlocked)],
    ['Elapsed', elapsedText(run.elapsedMs)],
  ], run.failures, 'unlock');
}

/** Width of residency strips: what fits the terminal after the counts, else 64. */
function stripWidth(): number {
  if (process.stdout.isTTY !== true || process.stdout.columns === undefined) return 64;
  return Math.max(8, process.stdout.columns - 2 - 24);
}

export async function residencyCommand(operands: string[], opts: { verbose?: boolean }): Promise<void> {
  const targets = await collectTargets(operands, 'show the residency of');
  const start = Date.now();
  const progress = new Progress();
  const results: Array<{ r: Residency; map: string } | { err: unknown }> = new Array(targets.files.length);
  let done = 0;
  await pool(targets.files, 4, async (t, i) => {
    try {
      const r = await getResidency(t.file);
      results[i] = { r, map: opts.verbose ? await getMap(t.file) : '' };
    } catch (err) {
      results[i] = { err };
    }
    progress.update(`residency ${++done}/${targets.files.length} files  ${t.display}`);
  });
  progress.done();
  const lines: string[] = [];
  if (opts.verbose) lines.push(`legend: ${STRIP_LEGEND}`);
  else lines.push(`${'resident'.padStart(9)} ${'total'.padStart(9)} ${'%'.padStart(6)} ${'dirty'.padStart(7)} ${'locked'.padStart(7)}  path`);
  let resident = 0;
  let dirty = 0;
  let locked = 0;
  let failures = 0;
  const width = stripWidth();
  for (const [i, t] of targets.files.entries()) {
    const res = results[i];
    if ('err' in res) {
      warn(`residency "${t.display}": ${errText(res.err)}`);
      failures++;
      continue;
    }
    const { r, map } = res;
    resident += r.resident;
    dirty += r.dirty;
    locked += r.locked;
    const counts = `${r.resident}/${r.pages}`;
    if (opts.verbose) {
      lines.push(t.display);
      lines.push(`[${residencyStrip(map, r.pages, width)}] ${counts}  ${percent(r.resident, r.pages)}${r.dirty > 0 ? `  dirty ${r.dirty}` : ''}${r.locked > 0 ? `  locked ${r.locked}` : ''}`);
    } else {
      lines.push(`${String(r.resident).padStart(9)} ${String(r.pages).padStart(9)} ${percent(r.resident, r.pages).padStart(6)} ${String(r.dirty).padStart(7)} ${String(r.locked).padStart(7)}  ${t.display}`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
  finish([
    ...commonRows(targets, resident),
    ['Dirty Pages', pagesText(dirty)],
    ['Locked Pages', pagesText(locked)],
    ['Elapsed', elapsedText(Date.now() - start)],
  ], failures, 'residency');
}

// ---- budget ----

export async function budgetCommand(target: string, size: string | undefined): Promise<void> {
  if (size === undefined) {
    const loc = await locate(target, 'Cannot read the budget of');
    const bytes = await readBudget(loc.mountpoint);
    process.stdout.write(`${formatSize(bytes)} (${bytes} bytes)\n`);
    return;
  }
  let bytes: number;
  try {
    bytes = parseSize(size);
  } catch (err) {
    throw new ConfigError(`Invalid budget "${size}": ${(err as Error).message}`);
  }
  const min = MIN_BUDGET_PAGES * PAGE_SIZE;
  if (bytes < min) throw new ConfigError(`Invalid budget "${size}": below the minimum of ${formatSize(min)} (${MIN_BUDGET_PAGES} pages)`);
  const loc = await locate(target, 'Cannot set the budget of');
  const before = await readStats(loc.mountpoint);
  // The daemon's rule (stats smallestBudgetBytes, from VmSystem.smallestBudgetPages): a shrink must leave
  // MIN_BUDGET_PAGES beside the locked and pinned pages, or every read of an absent page would fail
  // (ENOSPC) until an unlock.
  const budgetBytes = Math.floor(bytes / PAGE_SIZE) * PAGE_SIZE;
  const heldRefusal = (s: StatsDocument): ConfigError => new ConfigError(
    `Cannot set the budget of "${target}" to ${formatSize(bytes)}: ${formatSize(s.lockedBytes)} of locked and ${formatSize(s.pinnedBytes)} of pinned pages ` +
    `stay resident, and reads need ${formatSize(WORKING_BYTES)} (${MIN_BUDGET_PAGES} pages) beside them: the smallest budget accepted now is ` +
    `${exactSize(s.smallestBudgetBytes)} (unlock some first) (EBUSY); the budget stays ${formatSize(s.budgetBytes)}`, EXIT.REFUSED);
  // Locked pages are known in advance: refuse without asking the daemon (which would reclaim first).
  if (budgetBytes < before.budgetBytes && budgetBytes < before.smallestBudgetBytes) throw heldRefusal(before);
  try {
    await writeBudget(loc.mountpoint, bytes);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EBUSY') {
      const s = await readStats(loc.mountpoint).catch(() => before);
      // Locked meanwhile (or pinned): the same refusal as above.
      if (budgetBytes < s.smallestBudgetBytes) throw heldRefusal(s);
      // The daemon found too much it cannot free now: say what, dirty pages included (before, every
      // such refusal blamed locked or pinned pages, even with none).
      throw new ConfigError(`Cannot set the budget of "${target}" to ${formatSize(bytes)}: the daemon could not free enough ` +
        `(locked ${formatSize(s.lockedBytes)}, pinned ${formatSize(s.pinnedBytes)}, dirty ${formatSize(s.dirtyBytes)} not yet written back) ` +
        `(EBUSY); the budget stays ${formatSize(s.budgetBytes)}`, EXIT.REFUSED);
    }
    if (code === 'EINVAL') throw new ConfigError(`Invalid budget "${size}": refused by the daemon (EINVAL)`);
    throw new ConfigError(`Cannot set the budget of "${target}": ${errText(err)}`, EXIT.REFUSED);
  }
  const after = await readStats(loc.mountpoint);
  const evicted = after.evictedPages - before.evictedPages;
  process.stdout.write(`budget ${formatSize(before.budgetBytes)} -> ${formatSize(after.budgetBytes)} (${after.budgetBytes} bytes)` +
    `${evicted > 0 ? `; ${pagesText(evicted)} evicted` : ''}\n`);
}
