/**
 * Dirty zero ranges of a pager VMO: page runs that read as zero without asking the pager because
 * pagerfs itself made them zero (growing the VMO, or zeroRange of whole pages), and that the pager
 * has not yet written back. They have no frames; a write there commits a frame and removes that page
 * from the range.
 *
 * Each run is Dirty or AwaitingClean (see DirtyState). WRITEBACK_END removes AwaitingClean runs:
 * they become gaps, which the pager supplies like any other page.
 *
 * Invariant: runs are sorted, disjoint, non-empty, and adjacent runs differ in state.
 */
import { DirtyState } from './arena.js';

export interface ZeroRun {
  start: number;
  end: number;
  state: DirtyState.Dirty | DirtyState.AwaitingClean;
}

export class ZeroRanges {
  private runs: ZeroRun[] = [];

  get isEmpty(): boolean {
    return this.runs.length === 0;
  }

  /** The state of the run holding `pageIndex`, or Untracked when it is in none. */
  stateAt(pageIndex: number): DirtyState {
    const runs = this.runs;
    let lo = 0;
    let hi = runs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (runs[mid].end <= pageIndex) lo = mid + 1;
      else hi = mid;
    }
    return lo < runs.length && runs[lo].start <= pageIndex ? runs[lo].state : DirtyState.Untracked;
  }

  /** Runs overlapping [start, end), clipped to it, in order. */
  overlapping(start: number, end: number): ZeroRun[] {
    const out: ZeroRun[] = [];
    for (const r of this.runs) {
      if (r.end <= start) continue;
      if (r.start >= end) break;
      out.push({ start: Math.max(r.start, start), end: Math.min(r.end, end), state: r.state });
    }
    return out;
  }

  /** Makes [start, end) a run in `state`, replacing whatever was there. */
  set(start: number, end: number, state: DirtyState.Dirty | DirtyState.AwaitingClean): void {
    if (start >= end) return;
    this.clear(start, end);
    this.runs.push({ start, end, state });
    this.normalize();
  }

  /** Removes [start, end) from every run (splitting runs). */
  clear(start: number, end: number): void {
    if (start >= end) return;
    const out: ZeroRun[] = [];
    for (const r of this.runs) {
      if (r.end <= start || r.start >= end) { out.push(r); continue; }
      if (r.start < start) out.push({ start: r.start, end: start, state: r.state });
      if (r.end > end) out.push({ start: end, end: r.end, state: r.state });
    }
    this.runs = out;
  }

  /** Changes runs in [start, end) that are in `from` to `to`. */
  transition(start: number, end: number, from: DirtyState, to: DirtyState.Dirty | DirtyState.AwaitingClean): void {
    for (const r of this.overlapping(start, end)) if (r.state === from) this.set(r.start, r.end, to);
  }

  /** Removes the parts of [start, end) that are in `state`. */
  clearState(start: number, end: number, state: DirtyState): void {
    for (const r of this.overlapping(start, end)) if (r.state === state) this.clear(r.start, r.end);
  }

  /** Pages covered by runs. */
  get pageCount(): number {
    let n = 0;
    for (const r of this.runs) n += r.end - r.start;
    return n;
  }

  all(): readonly ZeroRun[] {
    return this.runs;
  }

  private normalize(): void {
    this.runs.sort((a, b) => a.start - b.start);
    const out: ZeroRun[] = [];
    for (const r of this.runs) {
      const last = out[out.length - 1];
      if (last !== undefined && last.end === r.start && last.state === r.state) last.end = r.end;
      else out.push({ ...r });
    }
    this.runs = out;
  }
}
