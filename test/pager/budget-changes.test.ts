/**
 * PagerService.setBudget while the pager is busy: fills under way (a whole request is waited for,
 * a stuck one only for a while), locks being placed, and two changes at once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { VmoOp, ZxStatus, statusName } from '../../src/index.js';
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
});
