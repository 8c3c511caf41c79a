/**
 * The one place where statuses become errno values (negative, as fuse-native wants them).
 *
 * ZxStatus from the VM core and the pager map through ZX_TO_ERRNO; Node fs errors already carry a
 * negative errno and pass through unchanged; anything else is an internal error and becomes EIO.
 */
import { constants } from 'node:os';
import { ZxError, ZxStatus } from '../src/index.js';

const E = constants.errno;

/** ZxStatus → errno (positive here; negated on the way out). */
export const ZX_TO_ERRNO: ReadonlyMap<ZxStatus, number> = new Map<ZxStatus, number>([
  [ZxStatus.ERR_IO, E.EIO],
  [ZxStatus.ERR_IO_DATA_INTEGRITY, E.EIO],
  [ZxStatus.ERR_IO_DATA_LOSS, E.EIO],
  [ZxStatus.ERR_IO_REFUSED, E.EIO],
  [ZxStatus.ERR_BAD_STATE, E.EIO],
  [ZxStatus.ERR_NO_SPACE, E.ENOSPC],
  [ZxStatus.ERR_NO_MEMORY, E.ENOMEM],
  [ZxStatus.ERR_NO_RESOURCES, E.ENOMEM],
  [ZxStatus.ERR_BUFFER_TOO_SMALL, E.ERANGE],
  [ZxStatus.ERR_TIMED_OUT, E.ETIMEDOUT],
  [ZxStatus.ERR_INVALID_ARGS, E.EINVAL],
  [ZxStatus.ERR_OUT_OF_RANGE, E.EINVAL],
  [ZxStatus.ERR_NOT_SUPPORTED, E.EOPNOTSUPP],
  [ZxStatus.ERR_NOT_FOUND, E.ENOENT],
  [ZxStatus.ERR_ALREADY_EXISTS, E.EEXIST],
  [ZxStatus.ERR_ACCESS_DENIED, E.EACCES],
  [ZxStatus.ERR_UNAVAILABLE, E.EAGAIN],
  [ZxStatus.ERR_SHOULD_WAIT, E.EAGAIN],
  [ZxStatus.ERR_PEER_CLOSED, E.EPIPE],
  [ZxStatus.ERR_FILE_BIG, E.EFBIG],
  [ZxStatus.ERR_NOT_DIR, E.ENOTDIR],
  [ZxStatus.ERR_NOT_FILE, E.EISDIR],
  [ZxStatus.ERR_NOT_EMPTY, E.ENOTEMPTY],
  [ZxStatus.ERR_BAD_PATH, E.ENOENT],
  [ZxStatus.ERR_CANCELED, E.ECANCELED],
]);

/** The negative errno for any error reaching the FUSE edge. */
export function toErrno(err: unknown): number {
  if (err instanceof ZxError) return -(ZX_TO_ERRNO.get(err.status) ?? E.EIO);
  const errno = (err as { errno?: unknown } | null)?.errno;
  if (typeof errno === 'number' && errno < 0) return errno;
  if (typeof errno === 'number' && errno > 0) return -errno;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in E) return -(E as Record<string, number>)[code];
  return -E.EIO;
}

/** Is this error one we expect (a status or an fs errno), rather than a bug worth a stack trace? */
export function isExpectedError(err: unknown): boolean {
  if (err instanceof ZxError) return true;
  const errno = (err as { errno?: unknown } | null)?.errno;
  return typeof errno === 'number' || typeof (err as { code?: unknown } | null)?.code === 'string';
}

export const ERRNO = E;
