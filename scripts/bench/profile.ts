/**
 * Summaries of V8 CPU profiles (`node --cpu-prof`, the .cpuprofile JSON): self time per function,
 * summed over one or more profiles, as the share of the sampled time that was not idle.
 */
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  /** µs on the monotonic clock, the one process.hrtime reads. */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A time window [startUs, endUs] on the monotonic clock (process.hrtime.bigint() / 1000). */
export type Window = [number, number];

export interface ProfileEntry {
  /** "function (file:line)" or a V8 pseudo-frame like "(garbage collector)". */
  name: string;
  selfMs: number;
  /** Share of the busy (not idle) sampled time. */
  share: number;
}

export interface ProfileSummary {
  files: number;
  totalMs: number;
  idleMs: number;
  busyMs: number;
  top: ProfileEntry[];
  /** Self time summed by source area: src/, pager/, fs/, node_modules/fuse-native, node:internal, V8 (GC, program). */
  byArea: ProfileEntry[];
}

function frameName(f: ProfileNode['callFrame'], root: string): string {
  if (f.url === '') return f.functionName === '' ? '(anonymous)' : f.functionName;
  const fn = f.functionName === '' ? '(anonymous)' : f.functionName;
  if (f.url.startsWith('node:')) return `${fn} [node]`;
  let file = f.url.replace(/^file:\/\//, '');
  if (file.startsWith(root)) file = path.relative(root, file).replace(/^dist\//, '').replace(/^node_modules\//, '');
  return `${fn} (${file}:${f.lineNumber + 1})`;
}

function area(f: ProfileNode['callFrame'], root: string): string {
  const url = f.url.replace(/^file:\/\//, '');
  if (url === '') return f.functionName === '(garbage collector)' ? 'V8: garbage collector' : `V8: ${f.functionName || 'other'}`;
  if (url.startsWith('node:')) return 'node: internals';
  const rel = url.startsWith(root) ? path.relative(root, url) : url;
  if (rel.includes('node_modules/fuse-native')) return 'fuse-native (JS side)';
  if (rel.includes('node_modules/')) return `npm: ${rel.split('node_modules/')[1].split('/')[0]}`;
  const top = rel.replace(/^dist\//, '').split('/')[0];
  return `pagerfs ${top}/`;
}

/** The .cpuprofile files a daemon wrote into `dir` (none when it did not exist). */
export function profilesOf(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f));
  } catch {
    return [];
  }
}

/**
 * Sums the self time of every function over the given .cpuprofile files; with `windows`, only the
 * samples taken inside one of them count.
 */
export function summarizeProfiles(files: string[], root: string, topN = 15, windows?: Window[]): ProfileSummary {
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const file of files) {
    const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    let t = prof.startTime;
    for (let i = 0; i < prof.samples.length; i++) {
      const node = byId.get(prof.samples[i]);
      const us = prof.timeDeltas[i] ?? 0;
      t += us;
      if (node === undefined || us <= 0) continue;
      if (windows !== undefined && !windows.some(([a, b]) => t >= a && t <= b)) continue;
      total += us;
      if (node.callFrame.functionName === '(idle)') {
        idle += us;
        continue;
      }
      const name = frameName(node.callFrame, root);
      self.set(name, (self.get(name) ?? 0) + us);
      const a = area(node.callFrame, root);
      areas.set(a, (areas.get(a) ?? 0) + us);
    }
  }
  const busy = total - idle;
  const entries = (m: Map<string, number>, n: number): ProfileEntry[] => [...m.entries()]
    .sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: busy > 0 ? us / busy : 0 }));
  return { files: files.length, totalMs: total / 1000, idleMs: idle / 1000, busyMs: busy / 1000, top: entries(self, topN), byArea: entries(areas, 12) };
}
