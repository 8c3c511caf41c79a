/**
 * Fault injection: rules that make the pager fail (or delay) chosen page requests instead of
 * answering them from the backing store.
 *
 * Rule syntax, one rule a line (the same for --inject-fault and <mount>/.pagerfs/faults):
 *   GLOB[:START-END]=ACTION[,ACTION][;count=N][;p=P]
 *   GLOB      path relative to the mount root: `*` any run without '/', `**` any run, `?` one char
 *   START-END byte range (sizes like 1MiB); the rule applies to requests overlapping it
 *   ACTION    a failure status, ZxStatus name without ERR_ (IO, IO_DATA_INTEGRITY, BAD_STATE, NO_SPACE,
 *             BUFFER_TOO_SMALL), or delay:20ms, or delay:5ms-50ms (uniform jitter); a delay then a
 *             status delays, then fails
 *   count=N   the rule fires N times, then is spent; p=P fires with probability P (0..1)
 * Examples: `logs/*.bin:0-1MiB=IO`, `**=IO_DATA_INTEGRITY`, `big/**=delay:10ms,IO;p=0.5`.
 */
import { ALLOWED_FAIL_STATUSES, ZxStatus, parseStatusName, statusName } from '../src/index.js';
import { parseDuration, parseSize } from './sizes.js';

export interface FaultRule {
  /** The rule as written, normalised (what reading .pagerfs/faults gives back). */
  readonly text: string;
  readonly glob: string;
  readonly pattern: RegExp;
  /** Byte range [start, end) the rule covers; undefined: the whole file. */
  readonly range?: { start: number; end: number };
  readonly status?: ZxStatus;
  readonly delayMs?: { min: number; max: number };
  /** Remaining firings; undefined: unlimited. */
  remaining?: number;
  readonly probability: number;
}

export interface FaultAction {
  status?: ZxStatus;
  delayMs: number;
  rule: FaultRule;
}

/** Turns a glob into an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') { i++; re += '(?:.*/)?'; } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Runs a parse step, naming the rule in any error it throws. */
function withRule<T>(rule: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new Error(`fault rule "${rule}": ${(err as Error).message}`);
  }
}

/** Parses one rule; throws an Error whose message says what is wrong with it. */
export function parseFaultRule(line: string): FaultRule {
  const text = line.trim();
  const [main, ...opts] = text.split(';');
  const eq = main.lastIndexOf('=');
  if (eq <= 0) throw new Error(`fault rule "${text}": expected GLOB[:START-END]=ACTION`);
  let target = main.slice(0, eq).trim();
  const actionText = main.slice(eq + 1);
  let range: FaultRule['range'];
  const colon = target.lastIndexOf(':');
  if (colon >= 0) {
    const spec = target.slice(colon + 1);
    target = target.slice(0, colon);
    const m = /^([^-]+)-([^-]+)$/.exec(spec);
    if (m === null) throw new Error(`fault rule "${text}": range "${spec}" must be START-END, like 0-1MiB`);
    const start = withRule(text, () => parseSize(m[1]));
    const end = withRule(text, () => parseSize(m[2]));
    if (end <= start) throw new Error(`fault rule "${text}": range end must be above its start`);
    range = { start, end };
  }
  if (target.length === 0) throw new Error(`fault rule "${text}": empty path glob`);
  let status: ZxStatus | undefined;
  let delayMs: FaultRule['delayMs'];
  for (const part of actionText.split(',').map((s) => s.trim())) {
    if (part.startsWith('delay:')) {
      const [lo, hi] = part.slice(6).split('-');
      const min = withRule(text, () => parseDuration(lo));
      const max = hi === undefined ? min : withRule(text, () => parseDuration(hi));
      if (max < min) throw new Error(`fault rule "${text}": delay range must not run backwards`);
      delayMs = { min, max };
      continue;
    }
    const s = parseStatusName(part);
    if (s === undefined || !ALLOWED_FAIL_STATUSES.includes(s)) {
      throw new Error(`fault rule "${text}": "${part}" is not a failure a pager may give ` +
        `(one of ${ALLOWED_FAIL_STATUSES.map((x) => statusName(x).slice(4)).join(', ')}, or delay:DURATION)`);
    }
    status = s;
  }
  if (status === undefined && delayMs === undefined) throw new Error(`fault rule "${text}": no action`);
  let remaining: number | undefined;
  let probability = 1;
  for (const opt of opts) {
    const [k, v] = opt.split('=').map((s) => s.trim());
    if (k === 'count' && /^\d+$/.test(v ?? '') && Number(v) > 0) remaining = Number(v);
    else if (k === 'p' && v !== undefined && Number(v) >= 0 && Number(v) <= 1 && v !== '') probability = Number(v);
    else throw new Error(`fault rule "${text}": unknown option "${opt}" (count=N or p=0..1)`);
  }
  return { text, glob: target, pattern: globToRegExp(target), range, status, delayMs, remaining, probability };
}

/** Parses a whole rule set (one rule a line, blank lines and # comments ignored); all or nothing. */
export function parseFaultRules(text: string): FaultRule[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map(parseFaultRule);
}

export class FaultInjector {
  private rules: FaultRule[] = [];
  /** Firings so far. */
  fired = 0;

  constructor(rules: FaultRule[] = [], private readonly random: () => number = Math.random) {
    this.rules = rules;
  }

  /** Replaces the whole rule set. */
  replace(rules: FaultRule[]): void {
    this.rules = rules;
  }

  list(): readonly FaultRule[] {
    return this.rules;
  }

  /** No rules: nothing can fire (lets the pager skip matching on its hot path). */
  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** The rules as text, one a line (what `.pagerfs/faults` reads back). */
  toText(): string {
    return this.rules.map((r) => `${r.text}\n`).join('');
  }

  /**
   * The lowest byte of [offset, offset + length) that a failing rule covers, without firing it
   * (counts and probabilities are not consumed), or undefined. Readahead stops there, so that it
   * never supplies pages a rule would fail.
   */
  firstFailingByte(path: string, offset: number, length: number): number | undefined {
    let first: number | undefined;
    for (const rule of this.rules) {
      if (rule.status === undefined || !rule.pattern.test(path)) continue;
      if (rule.remaining !== undefined && rule.remaining <= 0) continue;
      const start = rule.range === undefined ? offset : Math.max(offset, rule.range.start);
      const end = rule.range === undefined ? offset + length : Math.min(offset + length, rule.range.end);
      if (start < end && (first === undefined || start < first)) first = start;
    }
    return first;
  }

  /** The first rule that fires for a request on `path` over bytes [offset, offset + length). */
  match(path: string, offset: number, length: number): FaultAction | undefined {
    for (const rule of this.rules) {
      if (!rule.pattern.test(path)) continue;
      if (rule.range !== undefined && (offset >= rule.range.end || offset + length <= rule.range.start)) continue;
      if (rule.remaining !== undefined && rule.remaining <= 0) continue;
      if (rule.probability < 1 && this.random() >= rule.probability) continue;
      if (rule.remaining !== undefined) rule.remaining--;
      this.fired++;
      const d = rule.delayMs;
      const delayMs = d === undefined ? 0 : d.min + (d.max - d.min) * this.random();
      return { status: rule.status, delayMs, rule };
    }
    return undefined;
  }
}
