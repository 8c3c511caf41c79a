import { describe, expect, it } from 'vitest';
import { formatSize, parseDuration, parseSize } from '../../pager/index.js';

const K = 1024;
const M = K * K;
const G = M * K;
const T = G * K;

describe('parseSize', () => {
  it.each([
    ['0', 0],
    ['4096', 4096],
    ['1b', 1],
    ['100B', 100],
    ['512k', 512 * K],
    ['1K', K],
    ['2kb', 2 * K],
    ['3KiB', 3 * K],
    ['64MiB', 64 * M],
    ['64mib', 64 * M],
    ['2MB', 2 * M],
    ['7m', 7 * M],
    ['1G', G],
    ['1gb', G],
    ['2GiB', 2 * G],
    ['1T', T],
    ['1tib', T],
    ['1.5k', 1536],
    ['0.5MiB', 512 * K],
    ['1.0001k', 1024], // rounded to whole bytes
    [' 8 MiB ', 8 * M],
    ['16\tk', 16 * K],
  ])('"%s" is %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each([
    [''],
    ['   '],
    ['abc'],
    ['k'],
    ['MiB'],
    ['-1'],
    ['-1k'],
    ['+5'],
    ['1x'],
    ['1PiB'],
    ['1 k b'],
    ['1e3'],
    ['1.5.2'],
    ['.5k'],
    ['5.'],
    ['0x10'],
    ['1,024'],
    ['12 34'],
  ])('"%s" is not a size', (text) => {
    expect(() => parseSize(text)).toThrow(`"${text}" is not a size`);
  });

  it('a size too large to count in bytes exactly is refused', () => {
    expect(() => parseSize('99999999T')).toThrow(/too large/);
    expect(() => parseSize('9'.repeat(30))).toThrow(/too large/);
  });
});

describe('formatSize', () => {
  it.each([
    [0, '0B'],
    [1, '1B'],
    [1023, '1023B'],
    [1024, '1KiB'],
    [1536, '1.5KiB'],
    [4096, '4KiB'],
    [8 * M, '8MiB'],
    [2.5 * M, '2.5MiB'],
    [G, '1GiB'],
    [3 * T, '3TiB'],
    [1024 * T, '1024TiB'], // TiB is the largest unit
  ])('%d bytes is %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  it.each([0, 1, 1023, 1024, 1536, 4096, 8 * M, G, 3 * T])('parseSize reads back what formatSize wrote for %d', (bytes) => {
    expect(parseSize(formatSize(bytes))).toBe(bytes);
  });
});

describe('parseDuration', () => {
  it.each([
    ['20ms', 20],
    ['0ms', 0],
    ['250', 250],
    ['5s', 5000],
    ['0.5s', 500],
    ['1.5m', 90_000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    [' 3 s ', 3000],
    ['2.5ms', 2.5],
    ['20us', 0.02],
    ['500µs', 0.5],
  ])('"%s" is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    [''],
    ['fast'],
    ['ms'],
    ['5x'],
    ['-5ms'],
    ['5 sec'],
    ['1d'],
    ['5msms'],
    ['1e3ms'],
    ['5ms-10ms'],
  ])('"%s" is not a duration', (text) => {
    expect(() => parseDuration(text)).toThrow(`"${text}" is not a duration`);
  });
});
