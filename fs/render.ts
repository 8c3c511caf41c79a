/**
 * Text rendering shared by the vmtouch-style verbs (fs/verbs.ts) and `pagerfs top` (fs/top.ts):
 * residency strips, the budget bar, fixed-width cells, and the progress line of long runs.
 * Nothing here does I/O except Progress, which writes to a terminal only.
 */
import { PAGE_SIZE } from '../src/index.js';
import { formatSize } from '../pager/index.js';
import { decodeMap } from './xattr.js';

/** Counts of one stretch of pages by state (the letters of user.pagerfs.map). */
interface ChunkCounts { absent: number; clean: number; dirty: number; locked: number; pinned: number }

/**
 * The legend of residency strips. One character stands for a chunk of pages: upper case when every
 * page of the chunk is resident, lower case when only some are; the most notable state present wins
 * (pinned, then dirty, then locked, then clean).
 */
export const STRIP_LEGEND = "O/o resident  D/d dirty  L/l locked  P/p pinned  ' ' absent  (upper case: the whole chunk)";

/**
 * Draws a file's residency (a user.pagerfs.map value) as `width` characters (fewer when the file has
 * fewer pages), one per chunk of pages. An empty file is an empty strip.
 */
export function residencyStrip(map: string, totalPages: number, width: number): string {
  const runs = decodeMap(map.trim());
  const pages = totalPages > 0 ? totalPages : runs.reduce((n, r) => n + r.pages, 0);
  if (pages <= 0 || width <= 0) return '';
  const cells = Math.min(width, pages);
  const counts: ChunkCounts[] = Array.from({ length: cells }, () => ({ absent: 0, clean: 0, dirty: 0, locked: 0, pinned: 0 }));
  const cellOf = (page: number): number => Math.min(cells - 1, Math.floor((page * cells) / pages));
  let page = 0;
  for (const run of runs) {
    // A folded map's last bucket may reach past the end of the file: clamp.
    const end = Math.min(pages, page + run.pages);
    const key = run.state === 'c' ? 'clean' : run.state === 'd' ? 'dirty' : run.state === 'l' ? 'locked' : run.state === 'p' ? 'pinned' : 'absent';
    // Spread the run over the cells it covers (a cell boundary may fall inside it).
    while (page < end) {
      const cell = cellOf(page);
      const cellEnd = Math.min(end, Math.ceil(((cell + 1) * pages) / cells));
      const n = Math.max(1, cellEnd - page);
      counts[cell][key] += n;
      page += n;
    }
    if (page >= pages) break;
  }
  return counts.map((c) => {
    const resident = c.clean + c.dirty + c.locked + c.pinned;
    if (resident === 0) return ' ';
    const full = c.absent === 0;
    const ch = c.pinned > 0 ? 'p' : c.dirty > 0 ? 'd' : c.locked > 0 ? 'l' : 'o';
    return full ? ch.toUpperCase() : ch;
  }).join('');
}

/** The budget as a bar of `width` cells: L locked, D dirty, = clean, . free (in that order). */
export function budgetBar(parts: { budget: number; clean: number; dirty: number; locked: number }, width: number): string {
  const { budget } = parts;
  if (budget <= 0 || width <= 0) return '';
  const cells = (bytes: number): number => Math.max(0, Math.round((bytes / budget) * width));
  let locked = cells(parts.locked);
  let dirty = cells(parts.dirty);
  let clean = cells(parts.clean);
  // Rounding must not push the bar past its width; take the excess from the largest part.
  let over = locked + dirty + clean - width;
  while (over > 0) {
    if (clean >= dirty && clean >= locked && clean > 0) clean--;
    else if (dirty >= locked && dirty > 0) dirty--;
    else locked--;
    over--;
  }
  return 'L'.repeat(locked) + 'D'.repeat(dirty) + '='.repeat(clean) + '.'.repeat(width - locked - dirty - clean);
}

/** Pages as "N (size)". */
export function pagesText(pages: number): string {
  return `${pages} (${formatSize(pages * PAGE_SIZE)})`;
}

export function percent(part: number, whole: number): string {
  return `${whole === 0 ? '100' : ((100 * part) / whole).toFixed(whole === part || part === 0 ? 0 : 1)}%`;
}

/** A rate per second for people: 0, 12, 3.4, 1.2k. */
export function rateText(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '-';
  const v = Math.max(0, perSecond);
  if (v >= 10_000) return `${(v / 1000).toFixed(0)}k`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (v >= 10 || Number.isInteger(v)) return v.toFixed(0);
  return v.toFixed(1);
}

/**
 * A file name as a terminal may show it: control characters (C0, DEL, C1: escape sequences,
 * newlines) as \xNN, so a name cannot clear the screen or break a table. Plain names unchanged.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

// ---- terminal columns ----
// A name in Chinese takes two columns a character, an accent none: widths count what a terminal
// draws (East Asian wide and emoji graphemes 2, combining and format characters 0), not UTF-16 units.

const PLAIN = /^[\x20-\x7e]*$/;
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]+$/u;
const EMOJI = /\p{Emoji_Presentation}|\uFE0F/u;
/** East Asian Wide and Fullwidth blocks (Unicode's EastAsianWidth W/F, by block). */
const WIDE: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f], [0x2e80, 0x303e], [0x3041, 0x33ff], [0x3400, 0x4dbf], [0x4e00, 0x9fff],
  [0xa000, 0xa4cf], [0xa960, 0xa97f], [0xac00, 0xd7a3], [0xf900, 0xfaff], [0xfe10, 0xfe19],
  [0xfe30, 0xfe6f], [0xff00, 0xff60], [0xffe0, 0xffe6], [0x1f300, 0x1f64f], [0x1f900, 0x1f9ff],
  [0x20000, 0x3fffd],
];
const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

function graphemeColumns(g: string): number {
  const cp = g.codePointAt(0)!;
  for (const [lo, hi] of WIDE) if (cp >= lo && cp <= hi) return 2;
  if (EMOJI.test(g)) return 2;
  return ZERO_WIDTH.test(g) ? 0 : 1;
}

/** The columns `text` takes on a terminal. */
export function columns(text: string): number {
  if (PLAIN.test(text)) return text.length;
  let n = 0;
  for (const { segment } of graphemes.segment(text)) n += graphemeColumns(segment);
  return n;
}

/** Pads `text` with spaces to `width` columns. */
export function padColumns(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - columns(text)));
}

/** How many of `parts` (graphemes, in the order they are kept) fit in `width` columns. */
function fittingCount(parts: string[], width: number): number {
  let used = 0;
  let n = 0;
  for (const part of parts) {
    used += graphemeColumns(part);
    if (used > width) break;
    n++;
  }
  return n;
}

/** Cuts `text` to `width` columns, keeping its end (for paths) with a leading '…'. */
export function fitLeft(text: string, width: number): string {
  if (width <= 0) return '';
  if (columns(text) <= width) return text;
  const parts = [...graphemes.segment(text)].map((s) => s.segment);
  return `…${parts.slice(parts.length - fittingCount([...parts].reverse(), width - 1)).join('')}`;
}

/** Cuts `text` to `width` columns (keeps its start). */
export function fitRight(text: string, width: number): string {
  if (columns(text) <= width) return text;
  const parts = [...graphemes.segment(text)].map((s) => s.segment);
  return parts.slice(0, fittingCount(parts, width)).join('');
}

/** The vmtouch-style summary block: right-aligned labels, one line each. */
export function summaryBlock(rows: Array<[string, string]>): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padStart(w)}: ${v}`).join('\n');
}

export function elapsedText(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 3 : 1)} seconds`;
}

/**
 * The progress line of a long run: shown on a terminal only (stdout a TTY), and only once the run has
 * lasted a second; redrawn at most ten times a second and erased by `done()`.
 */
export class Progress {
  private readonly start = Date.now();
  private readonly enabled: boolean;
  private shown = false;
  private lastDraw = 0;
  private timer: NodeJS.Timeout | null = null;
  private text = '';

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {
    this.enabled = out.isTTY === true;
    if (this.enabled) {
      this.timer = setTimeout(() => this.draw(true), 1000);
      this.timer.unref();
    }
  }

  /** The current state, e.g. "touch 3/10 files  1024/4096 pages  dir/file.bin". */
  update(text: string): void {
    this.text = text;
    if (this.enabled && Date.now() - this.start >= 1000) this.draw(false);
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    this.shown = true;
    const width = Math.max(20, (this.out.columns ?? 80) - 1);
    this.out.write(`\r\x1b[K${fitRight(this.text, width)}`);
  }

  /** Erases the line (if it was ever drawn); call before printing the summary. */
  done(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.shown) this.out.write('\r\x1b[K');
    this.shown = false;
  }
}
