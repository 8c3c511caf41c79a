/**
 * PagerService.setBudget while the pager is busy: fills under way (a whole request is waited for,
 * a stuck one only for a while), locks being placed, and two changes at once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MIN_BUDGET_PAGES, VmoOp, ZxStatus, statusName } from '../../src/index.js';
import { PAGE_SIZE, cleanupEnvs, holdBackingReads, makeEnv, pattern, readVmo, tick } from './helpers.js';

afterEach(cleanupEnvs);

describe('changing the budget while the pager is busy', () => {
  it('a shrink while a large request is half supplied waits for that request, then succeeds, and the rest comes in requests the new budget can hold (it failed with BAD_STATE)', async () => {
    const env = makeEnv({ budgetPages: 16384, readaheadMaxBytes: 0 });
    env.put('big.bin', pattern(4096 * PAGE_SIZE, 1));
    const f = await env.dp.open('big.bin');
    const commit = f.vmo.opRange(VmoOp.COMMIT, 0, 4096 * PAGE_SIZE).then(() => 'ok', (e: { status: ZxStatus }) => statusName(e.status));
    while (f.vmo.counters().residentPages < 256) await new Promise((r) => setImmediate(r));
    expect(f.vmo.counters().residentPages, 'part of a 1024-page request supplied').toBeLessThan(1024);
    await env.dp.setBudget(500 * PAGE_SIZE);
    expect(env.system.budgetPages).toBe(500);
    expect(await commit).toBe('ok');
    expect(env.system.arena.usedFrames).toBeLessThanOrEqual(500);
  });

  it('a fill that never ends holds a shrink back only for a while, and other files read on meanwhile', async () => {
    const env = makeEnv({ budgetPages: 1024, readaheadMaxBytes: 0 });
    env.put('stuck.bin', pattern(8 * PAGE_SIZE, 2));
    env.put('ok.bin', pattern(8 * PAGE_SIZE, 3));
    const stuck = await env.dp.open('stuck.bin');
    const ok = await env.dp.open('ok.bin');
    const hold = holdBackingReads(stuck, 'before'); // a backing read that hangs (a dead NFS server)
    const stuckRead = readVmo(stuck.vmo, 0, PAGE_SIZE).then(() => 'read', () => 'failed');
    await hold.held;
    try {
      let shrunk = false;
      const shrink = env.dp.setBudget(256 * PAGE_SIZE).then(() => { shrunk = true; });
      await tick(100);
      expect(shrunk, 'the shrink gives the fill some time').toBe(false);
      await shrink; // before: waited for the fill for ever, and held every other fill back with it
      expect(env.system.budgetPages).toBe(256);
      expect((await readVmo(ok.vmo, 0, 8 * PAGE_SIZE)).equals(pattern(8 * PAGE_SIZE, 3))).toBe(true);
    } finally {
      hold.release();
    }
    expect(await stuckRead).toBe('read');
  });

  it('budget changes run in the order they were asked for: a grow asked while a shrink writes back is the budget afterwards', async () => {
    const env = makeEnv({ budgetPages: 1024, readaheadMaxBytes: 0, writebackDelayMs: 60_000 });
    env.put('dirty.bin', pattern(512 * PAGE_SIZE, 5));
    const f = await env.dp.open('dirty.bin');
    await f.vmo.write(pattern(512 * PAGE_SIZE, 4), 0); // dirty pages the shrink must write back first
    const shrink = env.dp.setBudget(256 * PAGE_SIZE);
    const grow = env.dp.setBudget(2048 * PAGE_SIZE);
    await Promise.all([shrink, grow]);
    expect(env.system.budgetPages).toBe(2048); // was 256: the grow applied while the shrink wrote back
  });

  it('a shrink below the pages of a lock being placed is refused at once and the lock completes', async () => {
    const env = makeEnv({ budgetPages: 1024, readaheadMaxBytes: 0 });
    env.put('hot.bin', pattern(500 * PAGE_SIZE, 5));
    const f = await env.dp.open('hot.bin');
    const lock = env.dp.hint(f, 'always_need');
    await expect(env.dp.setBudget(300 * PAGE_SIZE)).rejects.toMatchObject({ status: ZxStatus.ERR_BAD_STATE });
    expect(await lock).toBe(500);
    expect(env.system.budgetPages).toBe(1024);
    expect(f.vmo.counters().lockedPages).toBe(500);
  });

  it('two locks of one file at once are one lock: neither is refused for the other\'s reservation', async () => {
    const env = makeEnv({ budgetPages: 1024, readaheadMaxBytes: 0 });
    env.put('twice.bin', pattern(400 * PAGE_SIZE, 6)); // 400 of 512 lockable pages (50%): twice would be 800
    const f = await env.dp.open('twice.bin');
    const [a, b] = await Promise.all([env.dp.hint(f, 'always_need'), env.dp.hint(f, 'always_need')]);
    expect([a, b]).toEqual([400, 400]); // the second was ENOMEM before
    expect(f.vmo.counters().lockedPages).toBe(400);
  });

  it('a shrink to exactly the locked pages is refused at once, nothing evicted (every read of an absent page then failed NO_SPACE); the smallest budget is accepted and reads go on', async () => {
    const env = makeEnv({ budgetPages: 1024, readaheadMaxBytes: 0 });
    env.put('hot.bin', pattern(256 * PAGE_SIZE, 7));
    env.put('warm.bin', pattern(64 * PAGE_SIZE, 8));
    env.put('cold.bin', pattern(128 * PAGE_SIZE, 9));
    const hot = await env.dp.open('hot.bin');
    expect(await env.dp.hint(hot, 'always_need')).toBe(256);
    const warm = await env.dp.open('warm.bin');
    await readVmo(warm.vmo, 0, 64 * PAGE_SIZE);
    const evicted = env.system.evictor.counters.evictedPages;
    for (const pages of [256, 256 + MIN_BUDGET_PAGES - 1]) {
      await expect(env.dp.setBudget(pages * PAGE_SIZE), `a shrink to ${pages} pages`).rejects.toMatchObject({
        status: ZxStatus.ERR_BAD_STATE,
        message: expect.stringMatching(/256 pages are pinned or locked.*smallest budget now: 272 pages/),
      });
      expect(env.system.budgetPages).toBe(1024);
    }
    expect(env.system.evictor.counters.evictedPages, 'nothing evicted by a refused shrink').toBe(evicted);
    expect(warm.vmo.counters().residentPages).toBe(64);
    await env.dp.setBudget((256 + MIN_BUDGET_PAGES) * PAGE_SIZE);
    expect(env.system.budgetPages).toBe(272);
    const cold = await env.dp.open('cold.bin');
    expect((await readVmo(cold.vmo, 0, 128 * PAGE_SIZE, 32 * PAGE_SIZE)).equals(pattern(128 * PAGE_SIZE, 9))).toBe(true);
    expect(env.system.arena.usedFrames).toBeLessThanOrEqual(272);
  });

  it('a lock that would leave fewer than MIN_BUDGET_PAGES of the budget beside the locked pages is refused (NO_MEMORY), even with --max-locked 100%', async () => {
    const env = makeEnv({ budgetPages: 272, readaheadMaxBytes: 0, maxLockedShare: 1 });
    env.put('too-big.bin', pattern(257 * PAGE_SIZE, 10));
    env.put('fits.bin', pattern(256 * PAGE_SIZE, 11));
    env.put('one.bin', pattern(PAGE_SIZE, 12));
    const tooBig = await env.dp.open('too-big.bin');
    await expect(env.dp.hint(tooBig, 'always_need')).rejects.toMatchObject({
      status: ZxStatus.ERR_NO_MEMORY,
      message: expect.stringMatching(/would hold 257 locked pages.*16 pages .* to read into.*at most 256/),
    });
    expect(tooBig.vmo.counters().residentPages, 'refused before anything is faulted in').toBe(0);
    expect(env.system.lockedPages).toBe(0);
    const fits = await env.dp.open('fits.bin');
    expect(await env.dp.hint(fits, 'always_need')).toBe(256);
    const one = await env.dp.open('one.bin');
    await expect(env.dp.hint(one, 'always_need')).rejects.toMatchObject({ status: ZxStatus.ERR_NO_MEMORY });
    expect(env.system.lockedPages).toBe(256);
    // What is left is enough to read through.
    expect((await readVmo(tooBig.vmo, 0, 257 * PAGE_SIZE, 32 * PAGE_SIZE)).equals(pattern(257 * PAGE_SIZE, 10))).toBe(true);
  });

  it('reads at the smallest budget a lock allows keep every locked page, whatever their size (requests sized for the whole budget took 16-68 of them)', async () => {
    for (const [chunkPages, readaheadMaxBytes] of [[1, 0], [32, 0], [32, 2 * 1024 * 1024], [256, 2 * 1024 * 1024]]) {
      const env = makeEnv({ budgetPages: 1024, readaheadMaxBytes });
      env.put('hot.bin', pattern(256 * PAGE_SIZE, 13));
      env.put('cold.bin', pattern(1024 * PAGE_SIZE, 14));
      const hot = await env.dp.open('hot.bin');
      await env.dp.hint(hot, 'always_need');
      await env.dp.setBudget((256 + MIN_BUDGET_PAGES) * PAGE_SIZE);
      const cold = await env.dp.open('cold.bin');
      const what = `reads of ${chunkPages} pages, readahead ${readaheadMaxBytes}`;
      expect((await readVmo(cold.vmo, 0, 1024 * PAGE_SIZE, chunkPages * PAGE_SIZE)).equals(pattern(1024 * PAGE_SIZE, 14)), what).toBe(true);
      expect(hot.vmo.counters().residentPages, what).toBe(256);
      expect(env.system.lockedPages, what).toBe(256);
      expect(env.system.evictor.counters.alwaysNeedOverrides, what).toBe(0);
    }
  });
});
