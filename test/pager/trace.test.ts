/**
 * The pager's trace (issue #4 item 7): with trace on, one debug line per page request and its
 * answer: key and path, command, offset, length, how it was answered, latency.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FaultInjector, parseFaultRule } from '../../pager/index.js';
import { PAGE_SIZE, cleanupEnvs, makeEnv, memoryLogger, pattern, readVmo, rejectionStatus } from './helpers.js';

afterEach(cleanupEnvs);

describe('trace', () => {
  it('logs one line per page request with key, path, command, range, answer and latency; failures say their status', async () => {
    const { logger, lines } = memoryLogger();
    const env = makeEnv({ trace: true, logger, readaheadMaxBytes: 0, faults: new FaultInjector([parseFaultRule('logs/a.bin:16384-20480=IO')]) });
    env.put('logs/a.bin', pattern(8 * PAGE_SIZE));
    const f = await env.dp.open('logs/a.bin');
    expect((await readVmo(f.vmo, 0, 2 * PAGE_SIZE)).equals(pattern(8 * PAGE_SIZE).subarray(0, 2 * PAGE_SIZE))).toBe(true);
    expect(await rejectionStatus(readVmo(f.vmo, 4 * PAGE_SIZE, PAGE_SIZE))).toBe('ERR_IO');
    // A job's line is written when its handler has unwound, which may come after the next job's
    // answer (the first reader was woken by the supply itself): order them by offset.
    const traced = lines().filter((l) => l.msg === 'page request answered').sort((a, b) => Number(a.offset) - Number(b.offset));
    expect(traced).toHaveLength(2);
    expect(traced[0]).toMatchObject({ level: 20, key: f.key, path: 'logs/a.bin', command: 'READ', offset: 0, length: 2 * PAGE_SIZE, answer: '2/2 pages resident' });
    expect(traced[1]).toMatchObject({ key: f.key, command: 'READ', offset: 4 * PAGE_SIZE, length: PAGE_SIZE, answer: '0/1 pages resident; failed ERR_IO' });
    for (const l of traced) expect(typeof l.latencyMs).toBe('number');
  });

  it('is silent at the default level: no per-request lines without trace', async () => {
    const { logger, lines } = memoryLogger();
    const env = makeEnv({ logger, readaheadMaxBytes: 0 });
    env.put('b.bin', pattern(2 * PAGE_SIZE));
    const f = await env.dp.open('b.bin');
    await readVmo(f.vmo, 0, 2 * PAGE_SIZE);
    expect(lines().filter((l) => l.msg === 'page request answered')).toHaveLength(0);
  });
});
