/**
 * Assertions for bugs, as opposed to ZxError for contract failures.
 *
 * An assertion that fails means pagerfs itself is wrong; it throws InternalError carrying the
 * message and, where the caller supplies one, a dump of the state involved. These checks are cheap
 * and always on; the expensive consistency walks live behind `VmSystem.validate`.
 */
export class InternalError extends Error {
  constructor(message: string) {
    super(`pagerfs internal error: ${message}`);
    this.name = 'InternalError';
  }
}

export function assert(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new InternalError(typeof message === 'function' ? message() : message);
}
