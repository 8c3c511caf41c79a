#!/usr/bin/env node
/**
 * The pagerfs command line (commander). Parses once into typed configs, validates before mounting,
 * and speaks in one voice: `pagerfs: <action> "<value>": <what is wrong>` on stderr, non-zero exit.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import v8 from 'node:v8';
import { Command, CommanderError, Option } from 'commander';
import { createLogger, formatSize, parseDuration } from '../pager/index.js';
import { ConfigError, DEFAULTS, EXIT, canonicalPath, parseMountOptions, type HeapMode, type RawMountOptions } from './config.js';
import { mountTypeAt, noAnswerText, readStatsAnswer } from './client.js';
import { printable } from './render.js';
import { CONTROL_DIR, type StatsDocument } from './control.js';
import { clearStaleMount, exitDaemon, loadMountPager, mountPagerfs } from './mount.js';
import { topCommand } from './top.js';
import { budgetCommand, evictCommand, lockCommand, residencyCommand, touchCommand, unlockCommand } from './verbs.js';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * `--heap small`: the daemon's memory is the budget plus Node itself, so V8 is told to keep its heap
 * small: the young generation stays at its initial size instead of doubling under load (each FUSE
 * request leaves short-lived garbage), and old-space growth favours size. Both can be set after
 * start-up (--max-semi-space-size cannot). Measured at a 16 MiB budget: peak RSS 112 -> 85 MiB;
 * under the pressure bench (4 readers, cold random reads, 64/16 MiB) 162-170 -> 134-135 MiB at
 * ~10% less throughput; warm reads within noise. Set in the daemon, not in mountPagerfs: a program
 * embedding pagerfs keeps its own heap settings.
 */
function applyHeapMode(mode: HeapMode): void {
  if (mode === 'fast') return;
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  v8.setFlagsFromString('--optimize-for-size');
}

async function runMount(first: string, second: string | undefined, raw: RawMountOptions): Promise<void> {
  // `mount <source> <mountpoint>` for pagers that serve a directory, `mount <mountpoint>` otherwise.
  const [source, mountpoint] = second === undefined ? [undefined, first] : [first, second];
  const loaded = await loadMountPager(raw.pager ?? 'directory', source !== undefined);
  const config = parseMountOptions(source, mountpoint, raw);
  applyHeapMode(config.heap);
  let log: ReturnType<typeof createLogger>;
  try {
    log = createLogger({ level: config.trace && config.logLevel === 'info' ? 'debug' : config.logLevel, file: config.logFile });
  } catch (err) {
    throw new ConfigError(`Cannot write the log to "${config.logFile}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EXIT.BAD_PATH);
  }
  let stopping = false;
  let signals = 0;
  const mounted = await mountPagerfs(config, log, { onUnmountRequest: () => stop('unmount request') }, loaded);
  /** `reason`: a signal's name (isSignal: a second one exits at once), or why the daemon stops by itself. */
  const stop = (reason: string, isSignal = false): void => {
    if (isSignal) signals++;
    if (stopping) {
      // Only a second signal from the user gives up on the writeback, not one after an unmount
      // request or an outside unmount (a systemd stop then must still write back).
      if (signals < 2) return;
      log.warn({ signal: reason }, 'second signal: exiting without waiting for writeback');
      exitDaemon(1);
    }
    stopping = true;
    log.info({ signal: reason }, 'stopping: writing back dirty pages and unmounting');
    mounted.unmount().then(() => exitDaemon(EXIT.OK), (err: unknown) => {
      log.error({ err }, 'unmount failed');
      exitDaemon(1);
    });
  };
  // SIGHUP too: a terminal or ssh session closing under a foreground daemon must not kill it
  // without a writeback (and leave a stale mount), as it would by default.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => stop(sig, true));
  // Unmounted behind our back (fusermount -u, umount -l): finish the pager's work and exit.
  const watch = setInterval(() => {
    if (stopping) return;
    isMounted(config.mountpoint).then((mountedNow) => {
      if (!mountedNow && !stopping) {
        log.warn({ mountpoint: config.mountpoint }, 'the mount went away without us; shutting down');
        stop('external unmount');
      }
    }, () => undefined);
  }, 1000);
  watch.unref();
}

async function readStats(mountpoint: string): Promise<StatsDocument> {
  // In a child process, within the answer timeout: a stopped daemon must not hang `stats` for good.
  const mnt = path.resolve(mountpoint);
  const res = await readStatsAnswer(mnt);
  if ('timedOutMs' in res) throw new ConfigError(`Cannot read stats of "${mountpoint}": ${noAnswerText(mnt, res.timedOutMs)}`, EXIT.BAD_PATH);
  if ('code' in res) {
    const gone = res.code === 'ENOTCONN' || res.code === 'ECONNABORTED';
    throw new ConfigError(`Cannot read stats of "${mountpoint}": ${gone ? 'its pagerfs daemon is gone (`pagerfs unmount` clears the mount)' : 'not a pagerfs mount'} (${res.code})`, EXIT.BAD_PATH);
  }
  return JSON.parse(res.text) as StatsDocument;
}

function statsTable(s: StatsDocument, maxFiles = 10): string {
  const pct = s.budgetBytes === 0 ? 0 : (100 * s.residentBytes) / s.budgetBytes;
  const lines = [
    `budget ${formatSize(s.budgetBytes)}  resident ${formatSize(s.residentBytes)} (${pct.toFixed(1)}%)  dirty ${formatSize(s.dirtyBytes)}  pinned ${formatSize(s.pinnedBytes)}  arena pages ${s.hugePageBytes > 0 ? '2 MiB (THP)' : '4 KiB'}`,
    `page requests ${s.pageRequests} (read ${s.readRequests}, dirty ${s.dirtyRequests})  supplied pages ${s.suppliedPages}  failed ${s.failedRequests}`,
    `evicted pages ${s.evictedPages}  writeback ${formatSize(s.writebackBytes)}  readahead hits ${s.readaheadHitPages} pages  latency p50 ${s.latencyP50Ms.toFixed(2)} ms p99 ${s.latencyP99Ms.toFixed(2)} ms`,
    // Older daemons' documents have no fast-read fields.
    ...(s.fastReadsEnabled === undefined ? [] : [`fast reads ${s.fastReadsEnabled ? `${s.fastReads} (${formatSize(s.fastReadBytes)})  fell back ${s.fastReadFallbacks}` : 'off'}`]),
    '',
    `${'resident'.padStart(10)} ${'dirty'.padStart(8)} ${'faults'.padStart(7)} ${'evicted'.padStart(8)}  path`,
    ...s.files.slice(0, maxFiles).map((f) =>
      `${formatSize(f.residentBytes).padStart(10)} ${formatSize(f.dirtyBytes).padStart(8)} ${String(f.faults).padStart(7)} ${String(f.evictedPages).padStart(8)}  ${printable(f.path)}`),
  ];
  return lines.join('\n');
}

async function isMounted(mountpoint: string): Promise<boolean> {
  return (await mountTypeAt(mountpoint)) !== null;
}

async function unmountCommand(mountpoint: string, timeoutText: string, lazy: boolean): Promise<void> {
  let timeoutMs: number;
  try {
    timeoutMs = parseDuration(timeoutText);
  } catch (err) {
    throw new ConfigError(`Invalid --timeout "${timeoutText}": ${(err as Error).message}`);
  }
  // A daemon that does not answer (SIGSTOPped, hung) would block canonicalPath's stat, and then the
  // write below, for good: ask it first, within the answer timeout. No daemon at all (ENOTCONN) is
  // the stale mount cleared below.
  const written = path.resolve(mountpoint);
  if (await mountTypeAt(written) === 'fuse.pagerfs') {
    const res = await readStatsAnswer(written);
    if ('timedOutMs' in res) {
      throw new ConfigError(`Cannot unmount "${mountpoint}": ${noAnswerText(written, res.timedOutMs)}; nothing was done`, EXIT.MOUNT_FAILED);
    }
  }
  const mnt = canonicalPath(mountpoint);
  const type = await mountTypeAt(mnt);
  if (type === null) throw new ConfigError(`Cannot unmount "${mountpoint}": nothing is mounted there`, EXIT.BAD_PATH);
  // Never touch another filesystem: the hard way below would detach it (as root, even /home).
  if (type !== 'fuse.pagerfs') throw new ConfigError(`Cannot unmount "${mountpoint}": it is a ${type} mount, not pagerfs`, EXIT.BAD_PATH);
  try {
    await writeFile(path.join(mnt, CONTROL_DIR, 'unmount'), lazy ? 'lazy\n' : '1\n');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EBUSY') {
      throw new ConfigError(`Cannot unmount "${mountpoint}": files are open through it (close them, or use --lazy to detach it anyway; fuser -vm ${mountpoint} lists the processes)`, EXIT.REFUSED);
    }
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EIO' || code === 'EROFS') {
      throw new ConfigError(`Cannot unmount "${mountpoint}": writing the dirty data back failed (${code}); it stays in the mount, ` +
        'still dirty and readable: fix the backing store (make room) and unmount again', EXIT.REFUSED);
    }
    if (code !== 'ENOTCONN' && code !== 'ECONNABORTED') {
      throw new ConfigError(`Cannot unmount "${mountpoint}": the daemon refused (${code})`, EXIT.REFUSED);
    }
    // No daemon answers (killed): clear the mount the hard way.
    process.stderr.write(`pagerfs: the daemon did not answer (${code}); clearing the mount\n`);
    await clearStaleMount(mnt);
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (await isMounted(mnt)) {
    if (Date.now() > deadline) throw new ConfigError(`Cannot unmount "${mountpoint}": the daemon is still writing back after ${timeoutText}`, EXIT.MOUNT_FAILED);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('pagerfs')
    .description('A FUSE filesystem whose file contents live in pager-backed VMOs (a model of Fuchsia Zircon\'s), ' +
      'filled by a userspace pager from a backing directory under a memory budget.')
    .showHelpAfterError()
    .exitOverride();

  program.command('mount')
    .description('Mount <backing> on <mountpoint> and serve it in the foreground until SIGINT/SIGTERM/SIGHUP (which write back every dirty page, unmount and exit 0; a second signal exits at once). ' +
      'With --pager, another pager serves the files: `mount --pager synthetic <mountpoint>`, `mount --pager verified <dir> <mountpoint>` ' +
      '(a pager that serves a directory takes <backing>, any other takes <mountpoint> alone).')
    .argument('<backing>', 'the directory whose files pagerfs serves (only for pagers that serve a directory: directory, verified)')
    .argument('[mountpoint]', 'an empty directory to mount on')
    .option('--pager <name|path>', 'the pager that answers page requests: directory (backing files, read-write), synthetic (pseudo-random ' +
      'files, no disk), verified (a directory sealed with `pagerfs seal`, read-only, every page checked), or the path of your own pager module (.mjs)', 'directory')
    .option('--pager-option <key=value>', 'an option for the pager (repeatable): synthetic takes files=N, size=SIZE, seed=N; see README "Other pagers"', collect)
    .option('--memory-budget <size>', 'most bytes of file pages resident at once (e.g. 64MiB, 1G, 512k; minimum 16 pages)', DEFAULTS.budget)
    .option('--readahead <size>', 'largest readahead window for sequential readers (windows read in the background, ahead of a steady reader, may reach twice this); 0 turns readahead off', DEFAULTS.readahead)
    .option('--writeback-delay <duration>', 'write back dirty data once it is this old (e.g. 500ms, 5s)', DEFAULTS.writebackDelay)
    .option('--request-timeout <duration>', 'a read waiting longer than this for the pager fails with ETIMEDOUT', DEFAULTS.requestTimeout)
    .option('--attr-timeout <duration>', 'how long the kernel trusts file attributes before asking again (FUSE attr_timeout; 0 asks every time). ' +
      'Other names of a hard-linked file may show an old link count and ctime for this long after link/unlink/rename; 0 makes them exact ' +
      'at the cost of a getattr per directory on every path the kernel checks', DEFAULTS.attrTimeout)
    .option('--inject-fault <rule>', 'fail or delay page requests: GLOB[:START-END]=STATUS|delay:D[,STATUS][;count=N][;p=P] (repeatable; same syntax as .pagerfs/faults)', collect)
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', DEFAULTS.logLevel)
    .option('--log-file <path>', 'write the log (JSON lines) to this file instead of stderr')
    .option('--trace', 'log one debug line per page request and its answer (implies --log-level debug unless set)')
    .option('--metrics-listen <host:port>', 'serve the stats counters in Prometheus text format on this address (loopback by default)')
    .option('--force', 'clear a stale mount left at <mountpoint> by a killed daemon before mounting')
    .option('--allow-other', 'let users other than the one mounting access the filesystem (FUSE allow_other)')
    .option('--kernel-cache', 'let the kernel page cache sit in front of pagerfs (shared mmap works; the pager sees fewer reads)')
    .option('--pressure-thresholds <w,c,o>', 'memory pressure levels WARNING, CRITICAL, OUT_OF_MEMORY: when available pages (free plus reclaimable clean ones) fall to these shares of the budget', DEFAULTS.pressureThresholds)
    .option('--heap <mode>', 'how the daemon sizes its JavaScript heap: small (V8 keeps its young generation at its first size and favours size: ~30 MiB less RSS, cold reads ~10% slower), fast (V8\'s defaults), or auto: small when --memory-budget is at most 256MiB', DEFAULTS.heap)
    .option('--huge-pages', 'make the memory budget of 2 MiB transparent huge pages instead of 4 KiB pages: a first touch faults 2 MiB at once and copies out of the arena are ~15% faster, but on VMs that hand free memory back to the host a first touch can cost 2-4x what 4 KiB pages do (measured here: no gain through a mount, see README); RSS grows in 2 MiB steps. No effect when the system\'s transparent huge pages are off')
    .option('--spin-wait <duration>', 'how long a FUSE thread that handed a request to the JavaScript thread spins for the answer before it sleeps ' +
      '(e.g. 20us; 0, the default, sleeps at once). Spinning saves waking a sleeping thread on fast answers (resident reads, metadata) at the ' +
      'cost of CPU while a request waits; only one thread spins, and only while its request is the only one waiting. On an idle machine ' +
      'serial reads gained 5-10%; with other work on the cores they lost up to 15% (see README)', DEFAULTS.spinWait)
    .option('--no-fast-read', 'answer every read on the JavaScript thread: without it, reads of resident pages are copied and answered on ' +
      'libfuse\'s own threads (fewer thread hand-offs; see README "Decisions"), and only what they cannot answer reaches the daemon\'s JavaScript')
    .option('--max-locked <fraction>', 'most of the budget locked pages (`pagerfs lock`) may hold: a fraction in (0, 1] or a percentage', DEFAULTS.maxLocked)
    .action(async (first: string, second: string | undefined, opts: RawMountOptions) => runMount(first, second, opts));

  program.command('unmount')
    .description('Unmount a pagerfs mount: the daemon writes back every dirty page, unmounts and exits. A stale mount (killed daemon) is cleared.')
    .argument('<mountpoint>', 'the mountpoint')
    .option('--timeout <duration>', 'how long to wait for the daemon to finish', '60s')
    .option('--lazy', 'unmount even when files are open through the mount: their processes\' later calls fail with ENOTCONN (as with umount -l); without it a busy mount is refused (exit 1). A shell whose working directory is inside is not seen and does not hold the unmount up')
    .action(async (mountpoint: string, opts: { timeout: string; lazy?: boolean }) => unmountCommand(mountpoint, opts.timeout, opts.lazy ?? false));

  program.command('stats')
    .description('Show the counters of a mounted pagerfs: budget, residency, page requests, evictions, busiest files.')
    .argument('<mountpoint>', 'the mountpoint')
    .option('--json', 'print the raw JSON document (.pagerfs/stats)')
    .addOption(new Option('--watch', 'refresh every second until interrupted'))
    .action(async (mountpoint: string, opts: { json?: boolean; watch?: boolean }) => {
      const show = async (): Promise<void> => {
        const s = await readStats(mountpoint);
        const text = opts.json ? JSON.stringify(s, null, 2) : statsTable(s);
        if (opts.watch && process.stdout.isTTY) process.stdout.write('\x1b[H\x1b[2J');
        process.stdout.write(`${text}\n`);
      };
      await show();
      if (!opts.watch) return;
      await new Promise<void>(() => {
        setInterval(() => { show().catch((err: Error) => { process.stderr.write(`pagerfs: ${err.message}\n`); process.exit(EXIT.BAD_PATH); }); }, 1000);
      });
    });

  program.command('budget')
    .summary('Print or set the memory budget of a mount')
    .description('Print the memory budget in force, or set it (shrinking evicts and writes back as needed). ' +
      'A shrink that would leave fewer than 16 pages (64KiB) beside the locked and pinned pages is refused (exit 1), naming the ' +
      'smallest budget accepted, and the budget stays.')
    .argument('<mountpoint>', 'the mountpoint (or any path inside the mount)')
    .argument('[size]', 'the new budget, e.g. 64MiB, 1G, 512k (minimum 16 pages)')
    // "-5" is a bad size, not an unknown option: let it reach the size check.
    .allowUnknownOption()
    .action(async (mountpoint: string, size: string | undefined) => budgetCommand(mountpoint, size));

  const verbNote = 'Paths must lie inside a pagerfs mount; directories are walked (symbolic links inside them are not followed). ' +
    'Ends with a summary; on a terminal, a run longer than a second shows its progress. Exit 1 if the filesystem refused something, 3 for a bad path.';
  program.command('touch')
    .summary('Fault files in (vmtouch -t)')
    .description('Fault every page of the files in (hint commit). Touching more than the budget evicts older pages, and touching more files ' +
      `than the daemon keeps closed (stats idleFileCap) lets the earliest go again; the summary says how many of each. ${verbNote}`)
    .argument('<paths...>', 'files or directories')
    .action(async (paths: string[]) => touchCommand(paths));

  program.command('evict')
    .summary('Write back and evict files now (vmtouch -e)')
    .description(`Write back the files' dirty pages, then evict their clean pages now (hint evict); prints the pages freed. Locked pages stay. ${verbNote}`)
    .argument('<paths...>', 'files or directories')
    .action(async (paths: string[]) => evictCommand(paths));

  program.command('lock')
    .summary('Fault files in and keep them resident (vmtouch -l)')
    .description('Fault the files in and keep them resident (hint always_need). Refused (ENOMEM, exit 1) beyond the share of the budget ' +
      'locked pages may hold (mount --max-locked, default 50%), or when locked and pinned pages would leave fewer than 16 pages of ' +
      `the budget for reads; then the locks this run placed are lifted again. ${verbNote}`)
    .argument('<paths...>', 'files or directories')
    .action(async (paths: string[]) => lockCommand(paths));

  program.command('unlock')
    .summary('Make locked files evictable again')
    .description(`Lift the lock of the files (hint normal): their pages become evictable again. ${verbNote}`)
    .argument('<paths...>', 'files or directories')
    .action(async (paths: string[]) => unlockCommand(paths));

  program.command('residency')
    .summary('Resident / total pages per file; -v draws strips (vmtouch -v)')
    .description(`Show resident / total pages per file (with dirty and locked pages); -v draws each file as a strip, one character per chunk of pages. ${verbNote}`)
    .argument('<paths...>', 'files or directories')
    .option('-v, --verbose', 'draw a residency strip per file (as wide as the terminal, else 64 characters)')
    .action(async (paths: string[], opts: { verbose?: boolean }) => residencyCommand(paths, opts));

  program.command('top')
    .summary('Live view: budget, pressure, rates, latency, busiest files')
    .description('A live view of a mount: budget bar, pressure level, rates per second, latency and the busiest files with residency strips. ' +
      'Quit with q or Ctrl-C. Without a terminal, prints plain frames.')
    .argument('<mountpoint>', 'the mountpoint (or any path inside the mount)')
    .option('--once', 'sample twice, one interval apart, print one plain-text frame and exit')
    .option('--interval <duration>', 'time between refreshes (and between the two samples of --once)', '1s')
    .action(async (mountpoint: string, opts: { once?: boolean; interval?: string }) => topCommand(mountpoint, opts));

  program.command('seal')
    .summary('Seal a directory for the verified pager, or check a sealed one')
    .description('Build a SHA-256 hash tree over the 4 KiB pages of every regular file in <dir>, kept in <dir>/.pagerfs-verity/ ' +
      '(the verified pager serves only what is sealed, and hides that directory). Sealing again replaces the whole seal. ' +
      'With --check, read every sealed file and list what no longer matches (corrupted pages with their byte ranges, files changed, ' +
      'missing or added since sealing, damaged trees) without mounting; exit 1 when anything does not match.')
    .argument('<dir>', 'the directory to seal or check')
    .option('--check', 'check the directory against its seal instead of sealing it')
    .action(async (dir: string, opts: { check?: boolean }) => {
      const { sealCommand } = await import('./seal.js');
      const code = await sealCommand(dir, { check: opts.check === true }, (line) => process.stdout.write(`${line}\n`));
      if (code !== 0) process.exitCode = code;
    });

  program.command('demo')
    .description('Run the demonstration: mount a sample directory under a small budget and show the pager at work.')
    .action(async () => {
      const { runDemo } = await import('./demo.js');
      await runDemo();
    });

  return program;
}

async function main(): Promise<void> {
  // `pagerfs residency dir | head`: a reader that went away is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.OK);
    throw err;
  });
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.exitCode === 0 ? 0 : EXIT.USAGE);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`pagerfs: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`pagerfs: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(EXIT.MOUNT_FAILED);
  }
}

void main();
