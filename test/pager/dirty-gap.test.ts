/**
 * A DIRTY request that writeback overtakes: some of its pages (a dirty zero run) are written back
 * and become a gap before the pager answers. The pager must still dirty the other pages, or their
 * writer waits forever (found by the fsx test under load: a write timed out).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FaultInjector, parseFaultRule } from '../../pager/index.js';
import { PAGE_SIZE, cleanupEnvs, makeEnv, pattern } from './helpers.js';

afterEach(cleanupEnvs);

describe('a DIRTY request partly overtaken by writeback', () => {
  it('the pages still present are dirtied and the write completes; the bytes reach the backing file', async () => {
    const env = makeEnv({ requestTimeoutMs: 3000, readaheadMaxBytes: 0, faults: new FaultInjector([parseFaultRule('f.bin=delay:300ms')]) });
    env.put('f.bin', pattern(PAGE_SIZE, 9));
    const f = await env.dp.open('f.bin');
    await f.vmo.read(Buffer.alloc(1), 0); // page 0 resident and Clean (after the delay rule's 300 ms)
    f.vmo.resize(3 * PAGE_SIZE); // pages 1 and 2: a dirty zero run
    const data = Buffer.alloc(3 * PAGE_SIZE - 100, 0x5c);
    const dirtyBefore = env.dp.metrics.dirtyRequests;
    let written = false;
    const write = f.vmo.write(data, 100).then(() => { written = true; }); // traps: DIRTY for [0, 3), answered after 300 ms
    while (env.dp.metrics.dirtyRequests === dirtyBefore) await new Promise((r) => setTimeout(r, 2));
    env.dp.faults.replace([]); // later requests answer at once
    await env.dp.writeback(f); // writes the zero run back: pages 1 and 2 become a gap
    expect(written, 'writeback overtook the DIRTY request').toBe(false);
    await write;
    await env.dp.writeback(f, true);
    const expected = Buffer.concat([pattern(PAGE_SIZE, 9).subarray(0, 100), data]);
    expect(env.backing('f.bin').equals(expected)).toBe(true);
  });
});
