// A pager module that misbehaves on purpose, file by file, for the host's error handling tests:
//   ok.txt                answered (every byte is 'k')
//   throws.bin            read() throws                       -> the reader gets EIO
//   silent.bin            read() never answers                -> the reader gets ETIMEDOUT
//   fail-<STATUS>.bin     read() fails with that status       -> its errno
//   bad-status.bin        read() fails with NO_MEMORY (a status a pager may not use) -> EIO
//   answers-then-hangs-N.bin  read() supplies every page ('a'), then its promise never settles
//   unawaited-fill.bin    read() calls supplyWith without awaiting it, and the fill throws
const PAGE = 4096;
const STATUSES = ['IO', 'IO_DATA_INTEGRITY', 'BAD_STATE', 'NO_SPACE', 'BUFFER_TOO_SMALL'];

export default {
  description: 'files that fail, throw or hang on purpose',
  create({ api }) {
    const files = ['ok.txt', 'throws.bin', 'silent.bin', 'bad-status.bin', ...STATUSES.map((s) => `fail-${s}.bin`),
      ...[0, 1, 2, 3].map((n) => `answers-then-hangs-${n}.bin`), 'unawaited-fill.bin']
      .map((path) => ({ path, sizeBytes: 4 * PAGE, mode: 0o444 }));
    return {
      files,
      read(req) {
        if (req.path === 'ok.txt') return req.supply(req.offsetBytes, Buffer.alloc(req.lengthBytes, 'k'));
        if (req.path === 'throws.bin') throw new Error('this pager throws on purpose');
        if (req.path === 'silent.bin') return new Promise(() => {});
        if (req.path === 'bad-status.bin') return req.fail(api.ZxStatus.ERR_NO_MEMORY);
        if (req.path.startsWith('answers-then-hangs-')) {
          req.supply(req.offsetBytes, Buffer.alloc(req.lengthBytes, 'a'));
          return new Promise(() => {});
        }
        if (req.path === 'unawaited-fill.bin') {
          void req.supplyWith(req.offsetBytes, req.lengthBytes, () => { throw new Error('this fill throws on purpose'); });
          return;
        }
        const status = req.path.slice('fail-'.length, -'.bin'.length);
        req.fail(api.ZxStatus[`ERR_${status}`]);
      },
    };
  },
};
