/**
 * `npm run bench [-- <suite>...] [--flag...]`: the pagerfs benchmark runner.
 *
 * With no suite name every suite runs; with names, those suites. An unknown name or flag prints the
 * usage and exits with code 2. Flags go to every suite that knows them (FLAGS). Each suite prints tables of RATIOS measured side by side in the same run (never
 * a pass/fail on absolute time) with the issue's goal next to each and "met" / "NOT met"; a missed
 * goal never fails the process. Progress goes to stderr; results also go to bench-results/ as JSON
 * (every sample) and Markdown, stamped with the machine (cpus, node version) and the date.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { coreSuite } from './core.js';
import { evictionSuite } from './eviction.js';
import { fsSuite } from './fs.js';
import { endProgress, forceGc, metText, progress, repoRoot, type Suite, type SuiteResult } from './harness.js';
import { pagerSuite } from './pager.js';
import { pagersSuite } from './pagers.js';
import { pressureSuite } from './pressure.js';
import { renderMarkdown, renderText } from './stats.js';

const SUITES: Suite[] = [coreSuite, evictionSuite, pagerSuite, fsSuite, pagersSuite, pressureSuite];

/** Command-line flags and what they do (each names the suites that read it). */
const FLAGS: Record<string, string> = {
  '--quick': 'fs: a smaller data set (256 MiB file, 64 × 1 MiB, 2,000 × 4 KiB) and shorter samples; pagers: 4 × 32 MiB instead of 4 × 128 MiB, 3 rounds; pressure: 3 s budget steps instead of 8 s',
  '--profile': 'fs, pagers: run pagerfs (and the Node peers) under node --cpu-prof and summarize the profiles',
  '--peers-kernel-cache': 'fs: mount the Node peers without direct_io (big_writes), as pagerfs --kernel-cache',
};

interface Machine {
  cpus: number;
  cpuModel: string;
  nodeVersion: string;
  v8: string;
  platform: string;
  arch: string;
  totalMemBytes: number;
  hostname: string;
  /** 1/5/15-minute load averages when the run started (other work on the machine adds noise). */
  loadavg: number[];
}

function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    nodeVersion: process.version,
    v8: process.versions.v8,
    platform: `${os.platform()} ${os.release()}`,
    arch: os.arch(),
    totalMemBytes: os.totalmem(),
    hostname: os.hostname(),
    loadavg: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
}

function gitCommit(root: string): string | null {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString().trim() !== '';
    return dirty ? `${sha}+dirty` : sha;
  } catch {
    return null;
  }
}

function usage(): string {
  const width = Math.max(...SUITES.map((s) => s.name.length));
  return [
    'usage: npm run bench [-- <suite>...] [--flag...]      (no suite: run them all)',
    'suites:',
    ...SUITES.map((s) => `  ${s.name.padEnd(width)}  ${s.summary}`),
    'flags:',
    ...Object.entries(FLAGS).map(([f, what]) => `  ${f.padEnd(Math.max(...Object.keys(FLAGS).map((k) => k.length)))}  ${what}`),
  ].join('\n');
}

function renderSuite(r: SuiteResult, md: boolean): string {
  const out: string[] = [];
  out.push(md ? `## ${r.title}` : `=== ${r.title} (${(r.durationMs / 1000).toFixed(1)} s) ===`);
  if (md) out.push('', `_${(r.durationMs / 1000).toFixed(1)} s_`, '');
  for (const a of r.about) out.push(md ? `- ${a}` : a);
  for (const t of r.tables) {
    out.push('');
    out.push(md ? renderMarkdown(t) : renderText(t));
  }
  if (r.goals.length > 0) {
    const goals = {
      title: `Goals (${r.suite})`,
      columns: ['measured', 'ratio', 'goal', 'status'],
      rows: r.goals.map((g) => [g.name, g.display, g.goal, metText(g)]),
    };
    out.push('');
    out.push(md ? renderMarkdown(goals) : renderText(goals));
  }
  return out.join('\n');
}

async function main(): Promise<number> {
  const args = process.argv.slice(2).filter((a) => a !== '--');
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const flags = new Set(args.filter((a) => a.startsWith('--')));
  const names = args.filter((a) => !a.startsWith('--'));
  const unknown = [...names.filter((a) => !SUITES.some((s) => s.name === a)), ...[...flags].filter((f) => !(f in FLAGS))];
  if (unknown.length > 0) {
    process.stderr.write(`pagerfs bench: unknown suite or flag ${unknown.map((u) => `"${u}"`).join(', ')}\n${usage()}\n`);
    return 2;
  }
  const selected = names.length === 0 ? SUITES : SUITES.filter((s) => names.includes(s.name));
  const m = machine();
  const started = new Date();
  const root = repoRoot();
  const commit = gitCommit(root);
  const header = `pagerfs bench — ${started.toISOString()} — ${m.cpus} × ${m.cpuModel}, node ${m.nodeVersion}, ${m.platform}` +
    `${commit !== null ? `, commit ${commit}` : ''}${flags.size > 0 ? `, flags ${[...flags].join(' ')}` : ''}`;
  process.stdout.write(`${header}\n`);
  if (m.loadavg[0] > m.cpus * 0.5) {
    process.stdout.write(`note: load average ${m.loadavg[0]} on ${m.cpus} cpus when starting: other work competes, expect noisy samples\n`);
  }

  const results: SuiteResult[] = [];
  for (const suite of selected) {
    forceGc();
    const t0 = performance.now();
    const r = await suite.run({ progress: (msg) => progress(suite.name, msg), flags });
    endProgress();
    const result: SuiteResult = {
      suite: suite.name, title: suite.title, durationMs: performance.now() - t0, loadavgAfter: os.loadavg().map((l) => Number(l.toFixed(2))), ...r,
    };
    results.push(result);
    process.stdout.write(`\n${renderSuite(result, false)}\n`);
  }

  const allGoals = results.flatMap((r) => r.goals.map((g) => ({ suite: r.suite, ...g })));
  const met = allGoals.filter((g) => g.met).length;
  process.stdout.write(`\nGoals: ${met} of ${allGoals.length} met${allGoals.length > met ? ` (NOT met: ${allGoals.filter((g) => !g.met).map((g) => `${g.suite}: ${g.name}`).join('; ')})` : ''}\n`);

  const dir = path.join(root, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const base = path.join(dir, `${stamp}-${selected.map((s) => s.name).join('+')}${[...flags].map((f) => f.replace(/^--/, '-')).join('')}`);
  const json = { date: started.toISOString(), machine: m, commit, argv: args, suites: results, goals: allGoals };
  const md = [`# pagerfs benchmarks`, '', `- date: ${started.toISOString()}`, `- machine: ${m.cpus} × ${m.cpuModel}, ${fmtMem(m.totalMemBytes)} RAM, ${m.platform} ${m.arch}`,
    `- node ${m.nodeVersion} (V8 ${m.v8}); load average at start ${m.loadavg.join(' / ')}`, ...(commit !== null ? [`- commit: ${commit}`] : []), '',
    ...results.map((r) => `${renderSuite(r, true)}\n`)].join('\n');
  writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(`${base}.md`, `${md}\n`);
  writeFileSync(path.join(dir, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(path.join(dir, 'latest.md'), `${md}\n`);
  process.stderr.write(`results: ${path.relative(process.cwd(), base)}.{json,md}\n`);
  return 0;
}

function fmtMem(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

main().then((code) => {
  process.exitCode = code;
}, (err: unknown) => {
  endProgress();
  process.stderr.write(`pagerfs bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
