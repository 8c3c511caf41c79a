/**
 * The `verified` pager module: `pagerfs mount --pager verified <dir> <mnt>` serves a directory that
 * `pagerfs seal <dir>` sealed, read-only, checking every page against its hash tree before it is
 * supplied (pager/verified-pager.ts). An unsealed directory or a damaged manifest refuses the mount.
 */
import type { PagerModule } from '../module.js';
import { PagerModuleError } from '../module.js';
import { VerifiedPager } from '../verified-pager.js';
import { isVerityError, loadSeal } from '../verity.js';
import { directoryServiceOptions } from './directory.js';

const verified: PagerModule = {
  description: 'a directory sealed with `pagerfs seal`, read-only; every page is checked against its SHA-256 hash tree',
  source: 'directory',
  options: {},
  async create(ctx) {
    let seal;
    try {
      seal = await loadSeal(ctx.source!);
    } catch (err) {
      if (isVerityError(err)) throw new PagerModuleError(err.message);
      throw err;
    }
    ctx.log.info({ dir: seal.dir, files: seal.files.size, sealedAt: seal.sealedAt }, 'verified pager: seal loaded');
    return new VerifiedPager({ ...directoryServiceOptions(ctx), pageCheck: ctx.service.pageCheck }, seal);
  },
};

export default verified;
