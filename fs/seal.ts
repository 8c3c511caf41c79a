/**
 * `pagerfs seal [--check] <dir>`: seal a directory for the verified pager, or check a sealed one
 * without mounting it (pager/verity.ts holds the format and the work; this is the command's voice).
 *
 * Output of `seal`: a summary (files, bytes, pages, elapsed, where the sidecar is) and one line per
 * entry left out. Output of `--check`: one line per problem, then a summary line:
 *   PATH: page N (bytes A-B) corrupted         pages N-M (bytes A-B) for a run of bad pages
 *   PATH: changed since sealing (size X -> Y)
 *   PATH: missing (sealed with X bytes)         or "... is now a directory" and the like
 *   PATH: tree damaged (REASON)
 *   PATH: cannot be read (ERRNO)
 *   PATH: not sealed                            a regular file added since sealing
 * Byte ranges are half-open [A, B), as in --inject-fault rules, so a line can become a fault rule.
 * Exit codes: 0 sealed, or checked and all intact; 1 anything corrupted, changed, missing, damaged,
 * unreadable or not sealed (a damaged manifest too); bad input throws ConfigError (EXIT.BAD_PATH).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { formatSize } from '../pager/sizes.js';
import {
  VERITY_DIR, checkDirectory, isVerityError, pageByteRange, sealDirectory,
  type CheckReport, type FileCheck, type SkippedEntry,
} from '../pager/verity.js';
import { ConfigError, EXIT } from './config.js';

const SKIP_WORDS: Record<SkippedEntry['reason'], string> = {
  symlink: 'symlink, not followed',
  special: 'not a regular file',
  reserved: "pagerfs's control directory name",
};

/**
 * Runs `pagerfs seal <dir>` (check false) or `pagerfs seal --check <dir>` (check true), writing its
 * lines through `out`, and returns the exit code (0 or 1, above). Throws ConfigError with
 * EXIT.BAD_PATH when `dir` does not exist or is not a directory, when --check finds it not sealed,
 * and when sealing fails (a file cannot be read or changes while it is read).
 */
export async function sealCommand(dir: string, opts: { check: boolean }, out: (line: string) => void): Promise<number> {
  const root = path.resolve(dir);
  const verb = opts.check ? 'check' : 'seal';
  const st = await fsp.stat(root).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(`Cannot ${verb} "${root}": ${err.code === 'ENOENT' ? 'directory does not exist' : `directory cannot be read (${err.code})`}`, EXIT.BAD_PATH);
  });
  if (!st.isDirectory()) throw new ConfigError(`Cannot ${verb} "${root}": not a directory`, EXIT.BAD_PATH);
  return opts.check ? check(root, out) : seal(root, out);
}

async function seal(root: string, out: (line: string) => void): Promise<number> {
  let summary;
  try {
    summary = await sealDirectory(root);
  } catch (err) {
    if (isVerityError(err)) throw new ConfigError(`Cannot seal "${root}": ${err.message.charAt(0).toLowerCase()}${err.message.slice(1)}`, EXIT.BAD_PATH);
    throw err;
  }
  const seconds = (summary.elapsedMs / 1000).toFixed(2);
  out(`Sealed "${summary.dir}": ${summary.files} files, ${formatSize(summary.bytes)} in ${summary.pages} pages, in ${seconds} s`);
  out(`Hash trees (${formatSize(summary.treeBytes)}) and manifest in "${summary.sidecarDir}"`);
  if (summary.skipped.length > 0) {
    out(`Left out ${summary.skipped.length} (not sealed, not served by a verified mount):`);
    for (const s of summary.skipped) out(`  ${s.path}: ${SKIP_WORDS[s.reason]}`);
  }
  return 0;
}

async function check(root: string, out: (line: string) => void): Promise<number> {
  let report: CheckReport;
  try {
    report = await checkDirectory(root);
  } catch (err) {
    if (isVerityError(err) && err.code === 'not-sealed') throw new ConfigError(`Cannot check "${root}": ${err.message}`, EXIT.BAD_PATH);
    if (isVerityError(err) && err.code === 'damaged') {
      out(`${path.join(root, VERITY_DIR)}: damaged (${err.detail ?? err.message})`);
      out(`Checked "${root}": the seal itself is damaged: run \`pagerfs seal ${root}\` again`);
      return 1;
    }
    throw err;
  }
  const counts = new Map<string, number>();
  const count = (what: string): void => { counts.set(what, (counts.get(what) ?? 0) + 1); };
  for (const f of report.files) {
    for (const line of problemLines(f)) out(line);
    if (f.status !== 'ok') count(f.status === 'damaged' ? 'tree damaged' : f.status);
  }
  for (const rel of report.unsealed) {
    out(`${rel}: not sealed`);
    count('not sealed');
  }
  const what = `${report.files.length} sealed files, ${report.pagesChecked} pages (${formatSize(report.bytesChecked)}) read`;
  if (report.clean) {
    out(`Checked "${report.dir}" (sealed ${report.sealedAt}): ${what}: all intact`);
    return 0;
  }
  const badPages = report.files.reduce((n, f) => n + (f.status === 'corrupted' ? f.badPages.length : 0), 0);
  const problems = [...counts].map(([k, n]) => (k === 'corrupted' ? `${n} corrupted (${badPages} pages)` : `${n} ${k}`)).join(', ');
  out(`Checked "${report.dir}" (sealed ${report.sealedAt}): ${what}: ${problems}`);
  return 1;
}

/** The lines `--check` prints for one file: none when it is intact. */
export function problemLines(f: FileCheck): string[] {
  switch (f.status) {
    case 'ok':
      return [];
    case 'missing':
      return [`${f.path}: ${f.now === undefined ? 'missing' : `is now ${f.now}`} (sealed with ${f.sealedSizeBytes} bytes)`];
    case 'changed':
      return [`${f.path}: changed since sealing (size ${f.sealedSizeBytes} -> ${f.sizeBytes})`];
    case 'damaged':
      return [`${f.path}: tree damaged (${f.reason})`];
    case 'unreadable':
      return [`${f.path}: cannot be read (${f.code})`];
    case 'corrupted': {
      // One line per run of consecutive bad pages, so a wholly overwritten file is one line.
      const lines: string[] = [];
      for (let i = 0; i < f.badPages.length;) {
        let j = i;
        while (j + 1 < f.badPages.length && f.badPages[j + 1] === f.badPages[j] + 1) j++;
        const first = f.badPages[i];
        const last = f.badPages[j];
        const start = pageByteRange(f.sizeBytes, first).start;
        const end = pageByteRange(f.sizeBytes, last).end;
        lines.push(first === last
          ? `${f.path}: page ${first} (bytes ${start}-${end}) corrupted`
          : `${f.path}: pages ${first}-${last} (bytes ${start}-${end}) corrupted`);
        i = j + 1;
      }
      return lines;
    }
  }
}
