/**
 * Mounting: builds the kernel (VmSystem), the directory pager and the filesystem, and hands them
 * to fuse-native with the mount options pagerfs needs.
 *
 * Modes (see README "Caching modes"):
 *  - default: `direct_io`. Every read() reaches the VMO and its pager, so faults and eviction are
 *    real; writes arrive in 128 KiB pieces. Shared writable mmap is not available (ENODEV).
 *  - --kernel-cache: no direct_io, `big_writes`. The kernel's page cache sits in front of the VMO
 *    (MAP_SHARED works), so repeated reads within an open never reach pagerfs.
 * Always: `use_ino` (st_ino is the backing file's), `default_permissions` (the kernel checks modes),
 * `attr_timeout` (--attr-timeout, see below), fsname/subtype for `mount` listings. fuse-native knows
 * none of direct_io / big_writes / use_ino and drops a zero attr_timeout, so a subclass appends them
 * to its option string.
 *
 * attr_timeout: with default_permissions the kernel checks every directory on a path, and asks
 * getattr for each one whose cached attributes expired; with 0 that is every component of every
 * path (an `ls -l` entry took 4 round trips). The default, libfuse's 1 s, costs this: libfuse2's
 * high-level API gives every name of a hard-linked file its own kernel inode and cannot invalidate
 * the others, so after link / unlink / rename another name may show the old link count and ctime
 * for up to that long, and after a write or truncate through one name the others the old size. `--attr-timeout 0` makes them exact (README "POSIX" has both costs).
 * Lookups (entry_timeout) stay cached for 1 s.
 *
 * The daemon chdir()s into the backing directory (DirectoryPager chdirToRoot) and works with paths
 * relative to it, so paths up to PATH_MAX - 1 bytes below the mount root work. Under --allow-other
 * a root daemon creates files as the caller (owner and group: PagerFilesystem createAsCaller).
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { PAGE_SIZE, VmSystem, type FrameMemorySource } from '../src/index.js';
import { FaultInjector, formatSize, type BackingRoot, type PagerService } from '../pager/index.js';
import { PagerModuleError, loadPagerModule, type LoadedPagerModule } from '../pager/module.js';
import { createPagerService } from '../pager/module-host.js';
import { ConfigError, EXIT, checkPaths, type MountConfig } from './config.js';
import { CONTROL_DIR } from './control.js';
import { PagerFilesystem } from './filesystem.js';
import type { MetricsServer } from './metrics-server.js';
import { hasFastReads } from './fast-read.js';
import { setSpinWait } from './spin-wait.js';
import { hugePageFrameMemory, hugePagesTakeEffect, transparentHugePageMode } from './frame-memory.js';
import { XATTR_PREFIX } from './xattr.js';

const exec = promisify(execFile);

type FuseClass = typeof import('fuse-native');

/** Loads fuse-native, with a clear message when libfuse2 is missing. */
function loadFuse(): FuseClass {
  const require = createRequire(import.meta.url);
  try {
    return require('fuse-native') as FuseClass;
  } catch (err) {
    const msg = (err as Error).message;
    if (/libfuse\.so\.2/.test(msg)) {
      throw new ConfigError('Cannot mount: libfuse2 is not installed (run `npm run setup` as root, or `apt-get install libfuse2 fuse3`)', EXIT.MOUNT_FAILED);
    }
    throw err;
  }
}

/**
 * Ends the daemon's process with `code` once its mount is gone. Through the binding's _exit(2)
 * (level 14), not exit(3): libfuse's worker threads, cancelled at unmount, can die holding
 * stderr's lock, and exit(3) then hangs flushing stdio. Nothing is lost by skipping it: pino
 * writes synchronously (pager/log.ts) and Node writes through fds, not stdio.
 */
export function exitDaemon(code: number): never {
  // Profiles (--cpu-prof, --heap-prof, --prof) and coverage are written by Node at exit(3).
  const collecting = process.env.NODE_V8_COVERAGE !== undefined || process.execArgv.some((a) => /^--(cpu-prof|heap-prof|prof)\b/.test(a));
  if (!collecting) loadFuse().exitNow?.(code);
  process.exit(code);
}

export interface MountedPagerfs {
  readonly config: MountConfig;
  readonly system: VmSystem;
  readonly pager: PagerService;
  readonly filesystem: PagerFilesystem;
  /**
   * Writes back every dirty page, unmounts, and shuts the pager down. Idempotent. Rejects (after
   * unmounting all the same) when the writeback failed: dirty data was lost.
   */
  unmount(): Promise<void>;
}

/** Clears a stale FUSE mount (a killed daemon's) at `mountpoint`. */
export async function clearStaleMount(mountpoint: string): Promise<void> {
  try {
    await exec('fusermount', ['-uz', mountpoint]);
  } catch {
    await exec('umount', ['-l', mountpoint]);
  }
}

export interface MountHooks {
  /** Someone wrote .pagerfs/unmount (`pagerfs unmount`): the owner should unmount and exit. */
  onUnmountRequest?: () => void;
}

/** A pager module's error as the CLI reports it (one line, the exit code its kind calls for); others as they are. */
function mountError(err: unknown): unknown {
  if (!(err instanceof PagerModuleError)) return err;
  const exit = { usage: EXIT.USAGE, missing: EXIT.BAD_PATH, failed: EXIT.MOUNT_FAILED }[err.kind];
  return new ConfigError(`Cannot mount: ${err.message}`, exit);
}

/**
 * Loads the mount's pager module and checks that the source argument fits it: a module that serves
 * a directory needs one, any other takes none. Throws ConfigError (one line) and mounts nothing.
 */
export async function loadMountPager(spec: string, hasSource: boolean): Promise<LoadedPagerModule> {
  let loaded: LoadedPagerModule;
  try {
    loaded = await loadPagerModule(spec);
  } catch (err) {
    throw mountError(err);
  }
  const wantsSource = loaded.module.source === 'directory';
  if (wantsSource && !hasSource) {
    throw new ConfigError(`Cannot mount: the ${loaded.name} pager serves a directory: pagerfs mount --pager ${spec} <directory> <mountpoint>`);
  }
  if (!wantsSource && hasSource) {
    throw new ConfigError(`Cannot mount: the ${loaded.name} pager takes no source directory: pagerfs mount --pager ${spec} <mountpoint>`);
  }
  return loaded;
}

/**
 * The backing directory as the binding sees it (native/README.md, levels 5 and 7): it answers
 * getxattr of backing attributes on its own FUSE threads (`ls -l` asks two missing attributes per
 * file, ~60 µs each through the JS thread), and getattr of names whose inode pagerfs does not serve
 * (the pager tells it which it serves: servedInodes); other getattr, open and readdir arrive with the
 * backing lstat or entries read. pagerfs's own attribute names, hidden names and the control
 * directory still reach fs/filesystem.ts. A root too long for the binding's buffer: off.
 */
function backingPassthrough(root: BackingRoot | null): NonNullable<ConstructorParameters<FuseClass>[2]>['backingPassthrough'] {
  if (root === null || Buffer.byteLength(root.dir) >= 4000) return undefined;
  const hiddenNames = root.hiddenNames.filter((n) => n !== CONTROL_DIR);
  // The binding keeps them in 1 KiB; a tree hiding more names is not passed through at all.
  if (hiddenNames.reduce((n, name) => n + Buffer.byteLength(name) + 1, 1) > 1000) return undefined;
  return { root: root.dir === '/' ? '' : root.dir, skipTopName: CONTROL_DIR, skipXattrPrefix: XATTR_PREFIX, hiddenNames };
}

export async function mountPagerfs(config: MountConfig, log: Logger, hooks: MountHooks = {}, module?: LoadedPagerModule): Promise<MountedPagerfs> {
  const loaded = module ?? await loadMountPager(config.pager, config.backing !== undefined);
  const state = await checkPaths(config);
  if (state === 'stale') {
    if (!config.force) {
      throw new ConfigError(`Cannot mount on "${config.mountpoint}": a stale mount is there (Transport endpoint is not connected); use --force to clear it`, EXIT.BAD_PATH);
    }
    log.warn({ mountpoint: config.mountpoint }, 'clearing a stale mount');
    await clearStaleMount(config.mountpoint);
    await checkPaths(config);
  }
  const Fuse = loadFuse();
  let frameMemory: FrameMemorySource | undefined;
  if (config.hugePages && Fuse.frameMemory !== undefined) {
    const mode = transparentHugePageMode();
    if (!hugePagesTakeEffect(mode)) log.info({ transparentHugePages: mode }, 'transparent huge pages are off on this system: the arena uses 4 KiB pages');
    frameMemory = hugePageFrameMemory(Fuse.frameMemory, mode);
  }
  const system = new VmSystem({
    frameMemory,
    budgetBytes: config.budgetBytes,
    requestTimeoutMs: config.requestTimeoutMs,
    pressureThresholds: config.pressureThresholds,
    requestOvertimeMs: Math.min(20_000, config.requestTimeoutMs / 2),
    onRequestOvertime: (waiter, ms) => {
      const r = waiter.request;
      const outstanding = r.source.allOutstanding().includes(r);
      log.warn({ key: r.source.key, page: waiter.pageIndex, waitedMs: Math.round(ms), command: r.kind, request: [r.startPage, r.endPage],
        delivered: r.delivered, outstanding, waiters: r.waiters.length }, 'page request overtime: the pager has not answered');
    },
  });
  let pager: PagerService;
  try {
    pager = await createPagerService(loaded, {
      system,
      log,
      pagerOptions: config.pagerOptions,
      source: config.backing,
      service: {
        faults: new FaultInjector(config.faults),
        trace: config.trace,
        writebackDelayMs: config.writebackDelayMs,
        maxLockedShare: config.maxLockedShare ?? 0.5,
        readaheadMaxBytes: config.readaheadBytes,
        answerTimeoutMs: config.requestTimeoutMs,
        chdirToRoot: true,
        readCached: Fuse.preadCached,
        pageCheck: Fuse.sha256BadPages,
        servedInodes: Fuse.servedInode,
        fallocate: Fuse.fallocate,
        revalidateMs: config.attrTimeoutMs,
      },
    });
  } catch (err) {
    throw mountError(err);
  }
  pager.start();
  const root = (process.geteuid?.() ?? 0) === 0;
  if (config.allowOther && !root) {
    log.warn('--allow-other without root: files others create belong to the daemon\'s user (only root may give files away)');
  }
  const filesystem = new PagerFilesystem({
    pager, logger: log, hooks: { onUnmountRequest: hooks.onUnmountRequest }, createAsCaller: config.allowOther && root,
  });
  const extra = [
    'use_ino',
    'default_permissions',
    `attr_timeout=${config.attrTimeoutMs / 1000}`,
    `fsname=pagerfs`,
    'subtype=pagerfs',
    ...(config.kernelCache ? ['big_writes'] : ['direct_io']),
  ];
  class PagerFuse extends Fuse {
    override _fuseOptions(): string {
      const base = super._fuseOptions();
      return base === '' ? `-o${extra.join(',')}` : `${base},${extra.join(',')}`;
    }
  }
  // fuse-native's per-operation timeout would fail a read waiting on a slow pager; the VM core's
  // request timeout (--request-timeout) decides instead, and answers ETIMEDOUT.
  const fuse = new PagerFuse(config.mountpoint, filesystem.operations(), {
    force: false, mkdir: false, timeout: false, allowOther: config.allowOther,
    backingPassthrough: backingPassthrough(pager.tree.backingRoot?.() ?? null),
  });
  setSpinWait(Fuse, config.spinWaitNs);
  // Metrics first: once the mount shows, everything the daemon serves is up (and a port in use
  // fails before anything is mounted).
  let metrics: MetricsServer | null = null;
  if (config.metricsListen !== undefined) {
    try {
      // Loaded only when asked for: prom-client adds ~12 MiB to the daemon's RSS.
      const { startMetricsServer } = await import('./metrics-server.js');
      metrics = await startMetricsServer(pager, config.metricsListen, log, () => filesystem.fastReadStats());
    } catch (err) {
      await pager.shutdown();
      throw new ConfigError(`Cannot serve metrics on "${config.metricsListen.host}:${config.metricsListen.port}": ${(err as Error).message}`, EXIT.MOUNT_FAILED);
    }
  }
  try {
    await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
  } catch (err) {
    await metrics?.close();
    throw err;
  }
  // Fast reads (fs/fast-read.ts) once the binding's registry exists (the mount made it); a handle
  // opened before this only has its reads answered by the JS thread until it is registered here.
  const fastRead = config.fastRead && hasFastReads(fuse);
  if (fastRead) filesystem.enableFastReads(fuse);
  log.info({ pager: loaded.name, backing: config.backing, mountpoint: config.mountpoint, budget: formatSize(config.budgetBytes),
    budgetPages: config.budgetBytes / PAGE_SIZE, mode: config.kernelCache ? 'kernel-cache' : 'direct_io', fastRead }, 'pagerfs mounted');

  let unmounting: Promise<void> | null = null;
  const unmount = (): Promise<void> => {
    unmounting ??= (async () => {
      let writebackError: unknown;
      try {
        // No change accepted from here on can be lost: writes and truncates now fail (ENOTCONN),
        // and the last writes accepted finish before the writeback.
        await filesystem.refuseChanges();
        await pager.writebackAll(true);
      } catch (err) {
        writebackError = err;
        log.error({ err: (err as Error).message }, 'writeback before unmount failed: dirty data is lost');
      }
      await new Promise<void>((resolve) => fuse.unmount((err) => {
        if (err) log.warn({ err: err.message }, 'unmount reported an error');
        resolve();
      }));
      filesystem.disableFastReads(); // before the VMOs go away
      await pager.shutdown().catch((err: unknown) => { writebackError ??= err; });
      await metrics?.close();
      log.info({ mountpoint: config.mountpoint }, 'pagerfs unmounted');
      // The mount is gone either way; the daemon's exit status says whether everything was written.
      if (writebackError !== undefined) throw writebackError;
    })();
    return unmounting;
  };
  return { config, system, pager, filesystem, unmount };
}
