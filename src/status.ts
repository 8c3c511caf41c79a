/**
 * Zircon status codes: the one vocabulary in which the VM core and the pager report outcomes.
 *
 * Values are Zircon's own (zircon/system/public/zircon/errors.h), so a trace can be read against
 * Fuchsia's documentation. The mapping to errno lives at the FUSE edge (fs/), nowhere else.
 */
export enum ZxStatus {
  OK = 0,
  ERR_INTERNAL = -1,
  ERR_NOT_SUPPORTED = -2,
  ERR_NO_RESOURCES = -3,
  ERR_NO_MEMORY = -4,
  ERR_INTERNAL_INTR_RETRY = -6,
  ERR_INVALID_ARGS = -10,
  ERR_BAD_HANDLE = -11,
  ERR_WRONG_TYPE = -12,
  ERR_BAD_SYSCALL = -13,
  ERR_OUT_OF_RANGE = -14,
  ERR_BUFFER_TOO_SMALL = -15,
  ERR_BAD_STATE = -20,
  ERR_TIMED_OUT = -21,
  ERR_SHOULD_WAIT = -22,
  ERR_CANCELED = -23,
  ERR_PEER_CLOSED = -24,
  ERR_NOT_FOUND = -25,
  ERR_ALREADY_EXISTS = -26,
  ERR_ALREADY_BOUND = -27,
  ERR_UNAVAILABLE = -28,
  ERR_ACCESS_DENIED = -30,
  ERR_IO = -40,
  ERR_IO_REFUSED = -41,
  ERR_IO_DATA_INTEGRITY = -42,
  ERR_IO_DATA_LOSS = -43,
  ERR_IO_NOT_PRESENT = -44,
  ERR_IO_OVERRUN = -45,
  ERR_IO_MISSED_DEADLINE = -46,
  ERR_IO_INVALID = -47,
  ERR_BAD_PATH = -50,
  ERR_NOT_DIR = -51,
  ERR_NOT_FILE = -52,
  ERR_FILE_BIG = -53,
  ERR_NO_SPACE = -54,
  ERR_NOT_EMPTY = -55,
  ERR_STOP = -60,
  ERR_NEXT = -61,
  ERR_ASYNC = -62,
}

/** The name Zircon gives a status, e.g. "ERR_IO"; unknown values print as their number. */
export function statusName(status: ZxStatus): string {
  return ZxStatus[status] ?? `ZX_STATUS(${status})`;
}

/** Parses "IO", "ERR_IO" or "io" into a status; undefined when no such status exists. */
export function parseStatusName(text: string): ZxStatus | undefined {
  const upper = text.trim().toUpperCase();
  const name = upper.startsWith('ERR_') || upper === 'OK' ? upper : `ERR_${upper}`;
  const value = (ZxStatus as unknown as Record<string, ZxStatus | undefined>)[name];
  return typeof value === 'number' ? value : undefined;
}

/**
 * A failure that is part of an operation's contract: bad input from the caller, or a status the
 * pager delivered. Bugs are not ZxErrors; they are InternalErrors (see assert.ts).
 */
export class ZxError extends Error {
  readonly status: ZxStatus;

  constructor(status: ZxStatus, message?: string) {
    super(message === undefined ? statusName(status) : `${statusName(status)}: ${message}`);
    this.name = 'ZxError';
    this.status = status;
  }
}

/** True when `err` is a ZxError carrying `status` (any status when omitted). */
export function isZxError(err: unknown, status?: ZxStatus): err is ZxError {
  return err instanceof ZxError && (status === undefined || err.status === status);
}
