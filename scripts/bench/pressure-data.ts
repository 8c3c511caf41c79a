/**
 * The pressure suite's working set: `fileCount` files of `fileBytes` each, every 4 KiB page a pure
 * function of (file number, page number). The builder writes pages with `fillPage`; a reader checks
 * a page it read by filling the expected page the same way and comparing, so a page served from the
 * wrong file, the wrong offset, a stale frame or a torn supply shows up as a mismatch, with no copy
 * of the data kept in memory.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const PAGE_BYTES = 4096;
const WORDS_PER_PAGE = PAGE_BYTES / 4;
/** Pages written per write call while building. */
const CHUNK_PAGES = 256;

export interface WorkingSet {
  dir: string;
  /** Absolute paths, in file-number order. */
  files: string[];
  fileBytes: number;
  totalBytes: number;
}

/**
 * Writes page `pageNo` of file `fileNo` into `page` (PAGE_BYTES, 4-byte aligned): the file and page
 * numbers in the first two words (readable in a hex dump), then an LCG stream seeded by both, so no
 * two pages of the working set are alike.
 */
export function fillPage(page: Uint8Array, fileNo: number, pageNo: number): void {
  const words = new Uint32Array(page.buffer, page.byteOffset, WORDS_PER_PAGE);
  words[0] = fileNo;
  words[1] = pageNo;
  let x = (Math.imul(fileNo + 1, 0x9e3779b1) ^ Math.imul(pageNo + 1, 0x85ebca77)) >>> 0;
  for (let i = 2; i < WORDS_PER_PAGE; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    words[i] = x ^ (x >>> 16);
  }
}

/** Builds the working set under `root`/ws and flushes it to disk (so its writeback does not compete later). */
export function buildWorkingSet(root: string, fileCount: number, fileBytes: number): WorkingSet {
  if (fileBytes % PAGE_BYTES !== 0) throw new Error(`file size ${fileBytes} is not a whole number of pages`);
  const dir = path.join(root, 'ws');
  fs.mkdirSync(dir, { recursive: true });
  const chunk = Buffer.alloc(CHUNK_PAGES * PAGE_BYTES);
  const files: string[] = [];
  for (let f = 0; f < fileCount; f++) {
    const file = path.join(dir, `f${String(f).padStart(2, '0')}.bin`);
    const fd = fs.openSync(file, 'w');
    try {
      for (let page = 0; page * PAGE_BYTES < fileBytes; page += CHUNK_PAGES) {
        const pages = Math.min(CHUNK_PAGES, fileBytes / PAGE_BYTES - page);
        for (let p = 0; p < pages; p++) fillPage(chunk.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES), f, page + p);
        fs.writeSync(fd, chunk, 0, pages * PAGE_BYTES, page * PAGE_BYTES);
      }
    } finally {
      fs.closeSync(fd);
    }
    files.push(file);
  }
  spawnSync('sync', [], { stdio: 'ignore' });
  return { dir, files, fileBytes, totalBytes: fileCount * fileBytes };
}
