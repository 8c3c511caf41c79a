/** Sizes and durations as people write them: "64MiB", "1G", "512k", "4096"; "5s", "20ms", "1.5m". */

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
};

/** Parses a byte size (binary units, case-insensitive; "MB" means MiB). Throws a clear Error. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m?.[2].toLowerCase();
  if (m === null || unit === undefined || !(unit in SIZE_UNITS)) {
    throw new Error(`"${text}" is not a size: use a number with an optional unit, like 4096, 512k, 64MiB or 1G`);
  }
  const bytes = Number(m[1]) * SIZE_UNITS[unit];
  if (!Number.isSafeInteger(Math.round(bytes))) throw new Error(`"${text}" is too large`);
  return Math.round(bytes);
}

/** Formats bytes with the largest binary unit that keeps it readable: 8388608 → "8MiB". */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  // 1048575 bytes is 1023.999 KiB: round first, then move up a unit if rounding reached 1024.
  if (!Number.isInteger(v) && Number(v.toFixed(1)) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${Number.isInteger(v) ? v : v.toFixed(1)}${units[i]}`;
}

const DURATION_UNITS: Record<string, number> = { us: 0.001, 'µs': 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a duration into milliseconds: "50us", "20ms", "5s", "1.5m", "1h"; a bare number is milliseconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)?\s*$/.exec(text);
  if (m === null) throw new Error(`"${text}" is not a duration: use a number with a unit, like 20ms, 5s or 1m`);
  return Number(m[1]) * DURATION_UNITS[m[2] ?? 'ms'];
}
