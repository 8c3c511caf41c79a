/**
 * The pressure suite's picture, as a hand-written SVG (no plotting dependency): time on x, three
 * panels sharing it — memory (resident bytes, the budget in force, the daemon's RSS), the pressure
 * level as a step over four coloured bands, and the fault rate (page requests/s, evictions/s) —
 * with the budget steps marked across all three and named above them. Pure: data in, text out.
 */

export interface ChartPoint {
  /** Seconds since the readers started. */
  tS: number;
  residentBytes: number;
  budgetBytes: number;
  rssBytes: number | null;
  /** 0 NORMAL … 3 OUT_OF_MEMORY. */
  level: number;
  /** Rates over the interval that ends at tS; null where the interval is too short to mean anything. */
  requestsPerS: number | null;
  evictionsPerS: number | null;
}

export interface ChartPhase {
  startS: number;
  endS: number;
  /** First line above the phase, e.g. "budget 16 MiB". */
  label: string;
  /** Second line, e.g. "hit rate 12%". */
  detail: string;
  /** Drawn greyed (the warm-up, which the tables leave out). */
  muted: boolean;
  /** Lines written in the memory panel just after the phase starts (what its budget change did). */
  note: string[];
}

export interface ChartInput {
  title: string;
  subtitle: string;
  points: ChartPoint[];
  phases: ChartPhase[];
  /** Small print under the x axis. */
  footnote: string;
}

export const LEVEL_NAMES = ['NORMAL', 'WARNING', 'CRITICAL', 'OUT_OF_MEMORY'] as const;

const WIDTH = 1100;
const LEFT = 122;
const RIGHT = 40;
const PLOT_W = WIDTH - LEFT - RIGHT;
const MiB = 1024 * 1024;
const COLORS = {
  resident: '#4e79a7',
  budget: '#d62728',
  rss: '#59a14f',
  requests: '#f28e2b',
  evictions: '#7b5ea7',
  level: '#333333',
  grid: '#e6e6e6',
  axis: '#666666',
  boundary: '#888888',
  text: '#222222',
  muted: '#777777',
};
const LEVEL_FILLS = ['#e3f2e1', '#fff3c4', '#ffd8a8', '#ffc9c9'];

interface Panel {
  top: number;
  height: number;
  yMax: number;
  y(v: number): number;
}

function panel(top: number, height: number, yMax: number): Panel {
  return { top, height, yMax, y: (v) => top + height - (Math.max(0, Math.min(v, yMax)) / yMax) * height };
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A 1-2-5 step giving about `target` intervals over [0, max]. */
function niceStep(max: number, target: number): number {
  const raw = max / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

/** Rounds `max` up to a whole number of nice steps; returns that top and the ticks from 0. */
function niceAxis(max: number, target: number): { top: number; ticks: number[] } {
  const step = niceStep(max > 0 ? max : 1, target);
  const top = Math.max(step, Math.ceil(max / step) * step);
  const ticks: number[] = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
  return { top, ticks };
}

function fmtRateTick(v: number): string {
  return v >= 1000 ? `${Number((v / 1000).toFixed(1))}k` : String(Math.round(v));
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
}

function polyline(points: Array<[number, number]>, attrs: string): string {
  if (points.length === 0) return '';
  return `<polyline fill="none" ${attrs} points="${points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`;
}

/** A value held from each point to the next (the budget and the level change in steps). */
function stepPoints(xs: number[], ys: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < xs.length; i++) {
    if (i > 0) out.push([xs[i], ys[i - 1]]);
    out.push([xs[i], ys[i]]);
  }
  return out;
}

/** Grid lines and labels of a panel's y axis, its frame and its title. */
function frame(p: Panel, ticks: number[], label: (v: number) => string, title: string, unit: string): string {
  const out: string[] = [];
  for (const v of ticks) {
    const y = p.y(v);
    out.push(`<line x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="${COLORS.grid}"/>`);
    out.push(text(LEFT - 8, y + 4, label(v), `text-anchor="end" font-size="12" fill="${COLORS.axis}"`));
  }
  out.push(`<rect x="${LEFT}" y="${p.top}" width="${PLOT_W}" height="${p.height}" fill="none" stroke="${COLORS.axis}"/>`);
  out.push(text(LEFT, p.top - 8, title, `font-size="14" font-weight="bold" fill="${COLORS.text}"`));
  const cy = p.top + p.height / 2;
  out.push(text(24, cy, unit, `transform="rotate(-90 24 ${cy.toFixed(1)})" text-anchor="middle" font-size="12" fill="${COLORS.axis}"`));
  return out.join('\n');
}

/** A legend row, right-aligned just above a panel: [colour, dash pattern or '', name]. */
function legend(p: Panel, items: Array<[string, string, string]>): string {
  const out: string[] = [];
  let x = LEFT + PLOT_W;
  for (const [color, dash, name] of [...items].reverse()) {
    const w = 8 + name.length * 6.6;
    x -= w;
    out.push(text(x, p.top - 8, name, `font-size="12" fill="${COLORS.text}"`));
    x -= 28;
    out.push(`<line x1="${x}" x2="${x + 22}" y1="${p.top - 12}" y2="${p.top - 12}" stroke="${color}" stroke-width="3"${dash !== '' ? ` stroke-dasharray="${dash}"` : ''}/>`);
    x -= 14;
  }
  return out.join('\n');
}

/** Index of the highest value in each run of values above `top`. */
function offScale(values: number[], top: number): number[] {
  const peaks: number[] = [];
  let best = -1;
  values.forEach((v, i) => {
    if (v > top) {
      if (best < 0 || v > values[best]) best = i;
    } else if (best >= 0) {
      peaks.push(best);
      best = -1;
    }
  });
  if (best >= 0) peaks.push(best);
  return peaks;
}

export function pressureSvg(input: ChartInput): string {
  const pts = input.points;
  const tMax = Math.max(1, ...pts.map((p) => p.tS), ...input.phases.map((ph) => ph.endS));
  const x = (t: number): number => LEFT + (t / tMax) * PLOT_W;

  const xs = pts.map((p) => x(p.tS));
  const mem = niceAxis(Math.max(...pts.flatMap((p) => [p.residentBytes, p.budgetBytes, p.rssBytes ?? 0])) / MiB * 1.04, 6);
  // The scale follows the page requests: a shrink evicts thousands of pages in one sample, a spike
  // that would flatten everything else; it is cut at the top and its value written there.
  const rated = pts.flatMap((p, i) => (p.requestsPerS !== null && p.evictionsPerS !== null
    ? [{ x: xs[i], requests: p.requestsPerS, evictions: p.evictionsPerS }] : []));
  const rate = niceAxis(Math.max(1, ...rated.map((r) => r.requests)) * 1.3, 5);
  const memP = panel(150, 270, mem.top);
  const lvlP = panel(470, 104, LEVEL_NAMES.length);
  const rateP = panel(624, 220, rate.top);
  const bottom = rateP.top + rateP.height;
  const height = bottom + 90;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" ` +
    'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">');
  out.push(`<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`);
  out.push(text(LEFT, 32, input.title, `font-size="19" font-weight="bold" fill="${COLORS.text}"`));
  out.push(text(LEFT, 54, input.subtitle, `font-size="12.5" fill="${COLORS.muted}"`));

  // Phases: a muted band (the warm-up, often too narrow to centre a heading over: its heading ends
  // at its right edge and may run into the empty left margin), a dashed line at every step inside
  // the panels (not through their titles), a heading with the step's figures above the memory panel.
  input.phases.forEach((ph, i) => {
    const x0 = x(ph.startS);
    const x1 = x(ph.endS);
    const color = ph.muted ? COLORS.muted : COLORS.text;
    const [hx, anchor] = ph.muted ? [x1 - 6, 'end'] : [(x0 + x1) / 2, 'middle'];
    if (ph.muted) {
      for (const p of [memP, lvlP, rateP]) out.push(`<rect x="${x0.toFixed(1)}" y="${p.top}" width="${(x1 - x0).toFixed(1)}" height="${p.height}" fill="#000000" fill-opacity="0.05"/>`);
    }
    out.push(text(hx, 86, ph.label, `text-anchor="${anchor}" font-size="13.5" font-weight="bold" fill="${color}"`));
    out.push(text(hx, 104, ph.detail, `text-anchor="${anchor}" font-size="12" fill="${color}"`));
    if (i > 0) {
      for (const [y0, y1] of [[72, 110], ...[memP, lvlP, rateP].map((p) => [p.top, p.top + p.height])]) {
        out.push(`<line x1="${x0.toFixed(1)}" x2="${x0.toFixed(1)}" y1="${y0}" y2="${y1}" stroke="${COLORS.boundary}" stroke-width="1.2" stroke-dasharray="5 4"/>`);
      }
    }
  });

  // Memory.
  out.push(frame(memP, mem.ticks, (v) => String(v), 'Memory', 'MiB'));
  if (pts.length > 0) {
    const area = [`${xs[0].toFixed(1)},${memP.y(0).toFixed(1)}`, ...pts.map((p, i) => `${xs[i].toFixed(1)},${memP.y(p.residentBytes / MiB).toFixed(1)}`),
      `${xs[xs.length - 1].toFixed(1)},${memP.y(0).toFixed(1)}`];
    out.push(`<polygon points="${area.join(' ')}" fill="${COLORS.resident}" fill-opacity="0.28"/>`);
  }
  out.push(polyline(pts.map((p, i) => [xs[i], memP.y(p.residentBytes / MiB)]), `stroke="${COLORS.resident}" stroke-width="2"`));
  out.push(polyline(stepPoints(xs, pts.map((p) => memP.y(p.budgetBytes / MiB))), `stroke="${COLORS.budget}" stroke-width="2.5" stroke-dasharray="9 5"`));
  const rss = pts.map((p, i): [number, number] | null => (p.rssBytes === null ? null : [xs[i], memP.y(p.rssBytes / MiB)])).filter((v): v is [number, number] => v !== null);
  out.push(polyline(rss, `stroke="${COLORS.rss}" stroke-width="2"`));
  const noteY = memP.y(Math.max(...pts.map((p) => p.budgetBytes)) / MiB) - 12 - 16;
  for (const ph of input.phases) {
    ph.note.forEach((line, k) => out.push(text(x(ph.startS) + 7, noteY + k * 16, line, `font-size="12" fill="${COLORS.text}"`)));
  }
  out.push(legend(memP, [[COLORS.resident, '', 'resident bytes'], [COLORS.budget, '9 5', 'budget in force'], [COLORS.rss, '', 'daemon RSS (VmRSS)']]));

  // Pressure level: one band per level, the level as a step through the band's middle.
  const bandH = lvlP.height / LEVEL_NAMES.length;
  LEVEL_NAMES.forEach((name, i) => {
    const top = lvlP.top + lvlP.height - (i + 1) * bandH;
    out.push(`<rect x="${LEFT}" y="${top.toFixed(1)}" width="${PLOT_W}" height="${bandH.toFixed(1)}" fill="${LEVEL_FILLS[i]}"/>`);
    out.push(text(LEFT - 8, top + bandH / 2 + 4, name, `text-anchor="end" font-size="11" fill="${COLORS.axis}"`));
  });
  out.push(`<rect x="${LEFT}" y="${lvlP.top}" width="${PLOT_W}" height="${lvlP.height}" fill="none" stroke="${COLORS.axis}"/>`);
  out.push(text(LEFT, lvlP.top - 8, 'Pressure level', `font-size="14" font-weight="bold" fill="${COLORS.text}"`));
  out.push(polyline(stepPoints(xs, pts.map((p) => lvlP.y(p.level + 0.5))), `stroke="${COLORS.level}" stroke-width="3"`));

  // Fault rate.
  out.push(frame(rateP, rate.ticks, fmtRateTick, 'Fault rate', 'per second'));
  out.push(polyline(rated.map((r) => [r.x, rateP.y(r.evictions)]), `stroke="${COLORS.evictions}" stroke-width="1.6" stroke-dasharray="4 3"`));
  out.push(polyline(rated.map((r) => [r.x, rateP.y(r.requests)]), `stroke="${COLORS.requests}" stroke-width="2"`));
  for (const peak of offScale(rated.map((r) => r.evictions), rate.top)) {
    out.push(text(rated[peak].x + 6, rateP.top + 14, `↑ ${fmtRateTick(rated[peak].evictions)}/s`, `font-size="12" fill="${COLORS.evictions}"`));
  }
  out.push(legend(rateP, [[COLORS.requests, '', 'page requests/s'], [COLORS.evictions, '4 3', 'evicted pages/s']]));

  // Time axis.
  const tAxis = niceAxis(tMax, 12);
  for (const t of tAxis.ticks.filter((v) => v <= tMax + 1e-9)) {
    out.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${bottom}" y2="${bottom + 5}" stroke="${COLORS.axis}"/>`);
    out.push(text(x(t), bottom + 19, String(Number(t.toFixed(1))), `text-anchor="middle" font-size="12" fill="${COLORS.axis}"`));
  }
  out.push(text(LEFT + PLOT_W / 2, bottom + 40, 'seconds since the readers started', `text-anchor="middle" font-size="13" fill="${COLORS.text}"`));
  out.push(text(LEFT, bottom + 68, input.footnote, `font-size="11.5" fill="${COLORS.muted}"`));
  out.push('</svg>');
  return `${out.filter((l) => l !== '').join('\n')}\n`;
}
