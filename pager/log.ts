/** The one way pagerfs makes a logger: pino, structured, quiet unless asked. */
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  /** pino level: fatal, error, warn, info, debug, trace, silent. Default "info" (tests: "silent"). */
  level?: string;
  /** Write to this file instead of stderr. */
  file?: string;
}

export function createLogger(options: LogOptions = {}): Logger {
  const level = options.level ?? (process.env.VITEST ? 'silent' : 'info');
  const destination = options.file === undefined
    ? pino.destination({ fd: 2, sync: true })
    : pino.destination({ dest: options.file, sync: true, mkdir: true });
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** A logger that drops everything (for library users who did not ask for logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
