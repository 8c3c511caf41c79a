/**
 * The `directory` pager module, pagerfs's default: `pagerfs mount <backing> <mnt>` is
 * `pagerfs mount --pager directory <backing> <mnt>`. It serves the regular files of the backing
 * directory read-write, with their metadata, through a DirectoryPager (pager/directory-pager.ts).
 */
import { DirectoryPager, type DirectoryPagerOptions } from '../directory-pager.js';
import { serviceOptions, type PagerModule, type PagerModuleContext } from '../module.js';

/** The DirectoryPager options a directory-serving module builds from the mount's context. */
export function directoryServiceOptions(ctx: PagerModuleContext): DirectoryPagerOptions {
  const s = ctx.service;
  return { ...serviceOptions(ctx), backingDir: ctx.source!, chdirToRoot: s.chdirToRoot, readCached: s.readCached, servedInodes: s.servedInodes,
    revalidateMs: s.revalidateMs, fallocate: s.fallocate };
}

const directory: PagerModule = {
  description: 'the regular files of a backing directory, read-write, written back by the pager (the default)',
  source: 'directory',
  options: {},
  create: (ctx) => new DirectoryPager(directoryServiceOptions(ctx)),
};

export default directory;
