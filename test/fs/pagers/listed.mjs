// A pager whose file set changes: it serves the files listed in a JSON file (option `list`), read
// again at every lookup. Byte i of a file is (i + length of its path) mod 251.
import { readFileSync } from 'node:fs';

export function listedByte(path, i) {
  return (i + path.length) % 251;
}

export default {
  description: 'the files a JSON list names, re-read at every lookup',
  options: { list: 'a JSON file: [{ "path": "a.bin", "sizeBytes": 1234 }, …]' },
  create({ options }) {
    return {
      files: () => JSON.parse(readFileSync(options.list, 'utf8')),
      read(req) {
        const data = Buffer.alloc(req.lengthBytes);
        const end = Math.min(req.lengthBytes, req.sizeBytes - req.offsetBytes);
        for (let i = 0; i < end; i++) data[i] = listedByte(req.path, req.offsetBytes + i);
        req.supply(req.offsetBytes, data);
      },
    };
  },
};
