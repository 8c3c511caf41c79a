/**
 * The fs suite's data set, built in a temporary directory by the bench itself: one large file
 * (big.bin), `mediumCount` files of 1 MiB (medium/m000.bin …), and `smallCount` files of 4 KiB
 * spread over `smallDirs` folders (small/d00/f00000.bin …). Contents are seeded pseudo-random
 * bytes with the file number and page number stamped into the first 8 bytes of every 4 KiB page,
 * so no two pages are equal. Also writes the NUL-separated file lists the readers use, and
 * flushes everything to disk (`sync`) so later writes do not compete with its writeback.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Rng } from './stats.js';

const MiB = 1024 * 1024;
const PAGE = 4096;
const BLOCK = 16 * MiB;

export interface DataSetShape {
  bigBytes: number;
  mediumCount: number;
  mediumBytes: number;
  smallCount: number;
  smallDirs: number;
  smallBytes: number;
}

export interface DataSet {
  dir: string;
  shape: DataSetShape;
  bigName: string;
  /** NUL-separated relative paths, for `xargs -0 -a`. */
  smallList: string;
  mediumList: string;
  smallNames: string[];
  mediumNames: string[];
  /** Entries `ls -lR` lists (files and directories below the root). */
  entries: number;
  totalBytes: number;
}

function stamp(buf: Buffer, fileNo: number, firstPage: number): void {
  for (let p = 0; p * PAGE < buf.length; p++) {
    buf.writeUInt32LE(fileNo, p * PAGE);
    buf.writeUInt32LE(firstPage + p, p * PAGE + 4);
  }
}

export function buildDataSet(root: string, shape: DataSetShape, progress: (msg: string) => void): DataSet {
  const dir = path.join(root, 'backing');
  fs.mkdirSync(path.join(dir, 'medium'), { recursive: true });
  const block = Buffer.alloc(BLOCK);
  new Rng(0xda7a5e7).fill(block);
  const total = shape.bigBytes + shape.mediumCount * shape.mediumBytes + shape.smallCount * shape.smallBytes;
  let written = 0;
  const tell = (what: string): void => progress(`building the data set in ${dir}: ${what} (${Math.round((100 * written) / total)}%)`);

  const bigName = 'big.bin';
  const fd = fs.openSync(path.join(dir, bigName), 'w');
  try {
    for (let off = 0; off < shape.bigBytes; off += BLOCK) {
      const n = Math.min(BLOCK, shape.bigBytes - off);
      stamp(block.subarray(0, n), 0, off / PAGE);
      fs.writeSync(fd, block, 0, n, off);
      written += n;
      if ((off / BLOCK) % 8 === 0) tell(`${bigName}`);
    }
  } finally {
    fs.closeSync(fd);
  }

  const mediumNames: string[] = [];
  for (let i = 0; i < shape.mediumCount; i++) {
    const name = `medium/m${String(i).padStart(3, '0')}.bin`;
    const start = (i * shape.mediumBytes) % (BLOCK - shape.mediumBytes + 1);
    const slice = block.subarray(start, start + shape.mediumBytes);
    stamp(slice, 1 + i, 0);
    fs.writeFileSync(path.join(dir, name), slice);
    mediumNames.push(name);
    written += shape.mediumBytes;
    if (i % 32 === 0) tell(`${shape.mediumCount} files of ${shape.mediumBytes / MiB} MiB`);
  }

  const smallNames: string[] = [];
  const perDir = Math.ceil(shape.smallCount / shape.smallDirs);
  for (let d = 0; d < shape.smallDirs; d++) fs.mkdirSync(path.join(dir, 'small', `d${String(d).padStart(2, '0')}`), { recursive: true });
  for (let i = 0; i < shape.smallCount; i++) {
    const name = `small/d${String(Math.floor(i / perDir)).padStart(2, '0')}/f${String(i).padStart(5, '0')}.bin`;
    const start = (i * shape.smallBytes) % (BLOCK - shape.smallBytes + 1);
    const slice = block.subarray(start, start + shape.smallBytes);
    stamp(slice, 100_000 + i, 0);
    fs.writeFileSync(path.join(dir, name), slice);
    smallNames.push(name);
    written += shape.smallBytes;
    if (i % 1000 === 0) tell(`${shape.smallCount} files of ${shape.smallBytes / 1024} KiB in ${shape.smallDirs} folders`);
  }

  const smallList = path.join(root, 'small.list');
  const mediumList = path.join(root, 'medium.list');
  fs.writeFileSync(smallList, `${smallNames.join('\0')}\0`);
  fs.writeFileSync(mediumList, `${mediumNames.join('\0')}\0`);
  progress('building the data set: sync (flushing it to disk)');
  spawnSync('sync', [], { stdio: 'ignore' });
  return {
    dir, shape, bigName, smallList, mediumList, smallNames, mediumNames, totalBytes: total,
    // files + medium/ + small/ + its folders
    entries: 1 + shape.mediumCount + shape.smallCount + 2 + shape.smallDirs,
  };
}
