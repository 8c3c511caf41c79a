/**
 * The caller of the FUSE operation being handled: uid, gid and pid of the process that made the
 * system call (libfuse's fuse_get_context(), exposed by pagerfs's fuse-native patch: see
 * native/README.md). umask is the caller's only for create, mkdir and mknod (0 otherwise).
 *
 * Valid only during the synchronous part of an operation handler: call `caller()` first thing in
 * the handler and keep the result. Anywhere else (after an await, in a callback, in a timer) it
 * returns null, as it does with an unpatched fuse-native.
 */
import { createRequire } from 'node:module';

export interface Caller {
  uid: number;
  gid: number;
  pid: number;
  umask: number;
}

let getContext: (() => Caller | null) | undefined;

export function caller(): Caller | null {
  if (getContext === undefined) {
    // Loaded lazily: importing this module must not load the native binding.
    const Fuse = createRequire(import.meta.url)('fuse-native') as { getContext?: () => Caller | null };
    getContext = typeof Fuse.getContext === 'function' ? () => Fuse.getContext!() : () => null;
  }
  return getContext();
}
