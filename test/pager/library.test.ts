/**
 * pagerfs as a library (issue #9): `import … from 'pagerfs'` gives the syscall surface and the
 * pager layer without FUSE, and the guide's raw pager runs as written.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { rawPagerDemo } from '../../scripts/examples/raw-pager.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const exec = promisify(execFile);

describe('the library entry', () => {
  it('the guide\'s raw pager (for await over the port) answers READ, fails one page, and sees COMPLETE', async () => {
    expect(await rawPagerDemo(3)).toEqual([
      'READ key=42 offset=8192 length=4096',
      'read: "page 2"',
      'READ key=42 offset=12288 length=4096',
      'read of page 3: ERR_IO: page request failed by the pager at page 3',
      'COMPLETE key=42 offset=0 length=0',
    ]);
  });

  it("`import 'pagerfs'` (the package's own exports) loads no FUSE binding and exports the pager API", async () => {
    const script = `
      import * as lib from 'pagerfs';
      import * as core from 'pagerfs/core';
      import { createRequire } from 'node:module';
      const loaded = Object.keys(createRequire(process.cwd() + '/x.js').cache).filter((k) => k.includes('fuse'));
      const names = ['VmSystem', 'Pager', 'Port', 'ZxStatus', 'PagerOp', 'PAGE_SIZE', 'ModulePager', 'DirectoryPager',
        'VerifiedPager', 'loadPagerModule', 'syntheticFill', 'syntheticMismatch', 'sealDirectory', 'PagerService'];
      console.log(JSON.stringify({ loaded, missing: names.filter((n) => !(n in lib)), core: typeof core.VmSystem }));`;
    const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT });
    expect(JSON.parse(stdout)).toEqual({ loaded: [], missing: [], core: 'function' });
  });
});
