/**
 * The module host in-process (no FUSE): what a module's read gets told when it answers wrongly.
 */
import { describe, expect, it } from 'vitest';
import { VmSystem, ZxStatus, type VmObjectPaged } from '../../src/index.js';
import type { ReadRequest } from '../../pager/module.js';
import { ModulePager } from '../../pager/module-pager.js';
import { memoryLogger, rejectionStatus } from './helpers.js';

const PAGE = 4096;

/** A host whose one file `f` (2 pages) is answered by `answer`; the read of page 0's error message, as logged. */
async function loggedError(answer: (req: ReadRequest) => void): Promise<{ status: string; message: string }> {
  const system = new VmSystem({ budgetBytes: 1024 * 1024 });
  const { logger, lines } = memoryLogger();
  const host = new ModulePager({ system, logger, name: 'test.mjs', definition: { files: [{ path: 'f', sizeBytes: 2 * PAGE }], read: answer, readahead: false } });
  host.start();
  try {
    const file = await host.open('f');
    const status = await rejectionStatus((file.vmo as VmObjectPaged).read(Buffer.alloc(PAGE), 0));
    const threw = lines().find((l) => l.msg === 'pager handler threw; failing the request with ERR_IO');
    return { status, message: String((threw?.err as { message?: string } | undefined)?.message) };
  } finally {
    await host.shutdown();
  }
}

describe('a module that supplies the wrong thing gets an error that says what is wrong', () => {
  it.each([
    ['a string', 'hello', /data must be a Buffer or Uint8Array, not a string/],
    ['null', null, /data must be a Buffer or Uint8Array, not null/],
    ['an ArrayBuffer', new ArrayBuffer(PAGE), /data must be a Buffer or Uint8Array, not an ArrayBuffer/],
    ['an array of numbers', [104, 105], /data must be a Buffer or Uint8Array, not an Array/],
  ])('supply(offset, %s): the reader gets ERR_IO and the log names the type (it said "data.subarray is not a function")', async (_name, data, message) => {
    const { status, message: logged } = await loggedError((req) => req.supply(req.offsetBytes, data as unknown as Uint8Array));
    expect(status).toBe('ERR_IO');
    expect(logged).toMatch(message);
  });

  it('an unaligned offset is called an unaligned offset; a bad length, a bad length', async () => {
    expect((await loggedError((req) => req.supply(req.offsetBytes + 1, Buffer.alloc(PAGE)))).message)
      .toMatch(/supply at offset 1: the offset must be a page-aligned byte offset/);
    expect((await loggedError((req) => { void req.supplyWith(req.offsetBytes, -4096, () => {}); })).message)
      .toMatch(/supply of -4096 bytes at offset 0: the length must be a whole number of bytes/);
  });

  it('fail() with no status, a status name or a status a pager may not use says which (it said "status 0")', async () => {
    expect((await loggedError((req) => req.fail(undefined as unknown as ZxStatus))).message)
      .toMatch(/the status must be a ZxStatus such as api\.ZxStatus\.ERR_IO, not undefined/);
    expect((await loggedError((req) => req.fail('ERR_IO' as unknown as ZxStatus))).message).toMatch(/not a string/);
    expect((await loggedError((req) => req.fail(ZxStatus.ERR_NO_MEMORY))).message)
      .toMatch(/may not fail a request with status ERR_NO_MEMORY \(allowed: ERR_IO, .*ERR_NO_SPACE/);
  });
});

describe('a module whose read returns without answering', () => {
  it('is named in the log at once (its reader still waits for the request timeout); one that answered all is not', async () => {
    const system = new VmSystem({ budgetBytes: 1024 * 1024, requestTimeoutMs: 300 });
    const { logger, lines } = memoryLogger();
    const host = new ModulePager({
      system, logger, name: 'test.mjs',
      definition: {
        files: [{ path: 'silent', sizeBytes: 2 * PAGE }, { path: 'answered', sizeBytes: 2 * PAGE }],
        read(req) {
          if (req.path === 'answered') {
            req.fail(ZxStatus.ERR_IO, req.offsetBytes, PAGE);
            if (req.lengthBytes > PAGE) req.supply(req.offsetBytes + PAGE, Buffer.alloc(req.lengthBytes - PAGE));
          }
        },
        readahead: false,
      },
    });
    host.start();
    const warning = "the pager module's read returned without answering every page of its request: their readers wait until --request-timeout unless it answers them later";
    try {
      const silent = await host.open('silent');
      const waiting = rejectionStatus((silent.vmo as VmObjectPaged).read(Buffer.alloc(2 * PAGE), 0));
      await new Promise((r) => setTimeout(r, 50));
      expect(lines().filter((l) => l.msg === warning)).toMatchObject([{ path: 'silent', unansweredPages: 2, firstUnanswered: 0 }]);
      expect(await waiting).toBe('ERR_TIMED_OUT');
      const answered = await host.open('answered');
      expect(await rejectionStatus((answered.vmo as VmObjectPaged).read(Buffer.alloc(2 * PAGE), 0))).toBe('ERR_IO');
      expect(lines().filter((l) => l.msg === warning)).toHaveLength(1);
    } finally {
      await host.shutdown();
    }
  });
});

describe('a module whose close() throws', () => {
  it('is logged as the module\'s failure and the shutdown succeeds', async () => {
    const system = new VmSystem({ budgetBytes: 1024 * 1024 });
    const { logger, lines } = memoryLogger();
    const host = new ModulePager({
      system, logger, name: 'test.mjs',
      definition: { files: [], read() {}, close() { throw new Error('close fails on purpose'); } },
    });
    host.start();
    await host.shutdown();
    expect(lines().filter((l) => l.msg === "the pager module's close() failed"))
      .toMatchObject([{ err: { message: 'close fails on purpose' } }]);
  });
});

describe('a module pager, which has no liveFileAt', () => {
  it('answers residencyAt and hintAt by opening the file, as before (its VMOs are never let go)', async () => {
    const system = new VmSystem({ budgetBytes: 1024 * 1024 });
    const host = new ModulePager({
      system, name: 'test.mjs',
      definition: { files: [{ path: 'f', sizeBytes: 3 * PAGE }], read: (req) => req.supply(req.offsetBytes, Buffer.alloc(req.lengthBytes, 7)), readahead: false },
    });
    host.start();
    try {
      expect(host.liveFileAt).toBeUndefined();
      const st = await host.tree.lstat('f');
      expect(await host.residencyAt('f', st)).toMatchObject({ pages: 3, resident: 0, absent: 3 });
      expect(await host.hintAt('f', st, 'commit')).toBe(3);
      expect(await host.residencyAt('f', st)).toMatchObject({ pages: 3, resident: 3, absent: 0 });
      expect(await host.hintAt('f', st, 'evict')).toBe(0);
      expect(host.files().map((f) => [f.relPath, f.opens])).toEqual([['f', 0]]);
    } finally {
      await host.shutdown();
    }
  });
});
