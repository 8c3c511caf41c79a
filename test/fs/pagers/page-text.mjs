// A complete pager module: every 4 KiB page of its files says which page it is.
// Mount it with: pagerfs mount --pager ./page-text.mjs /mnt/pages --pager-option files=3
import { appendFile } from 'node:fs/promises';

const PAGE = 4096;

/** The text of page `n`: "page n", dots, and a newline, exactly one page long. */
export function pageText(n) {
  return `page ${n}\n`.padEnd(PAGE - 1, '.') + '\n';
}

export default {
  description: 'files whose every page says "page N"',
  options: { files: 'how many files (default 2)', pages: 'pages per file (default 8)', log: 'append each request to this file' },
  create({ options }) {
    const count = Number(options.files ?? 2);
    const pages = Number(options.pages ?? 8);
    return {
      files: Array.from({ length: count }, (_, i) => ({ path: `doc-${i}.txt`, sizeBytes: pages * PAGE })),
      async read(req) {
        if (options.log) {
          const line = { path: req.path, key: req.key, offset: req.offsetBytes, length: req.lengthBytes };
          await appendFile(options.log, `${JSON.stringify(line)}\n`);
        }
        let text = '';
        for (let at = req.offsetBytes; at < req.offsetBytes + req.lengthBytes; at += PAGE) text += pageText(at / PAGE);
        req.supply(req.offsetBytes, Buffer.from(text));
      },
    };
  },
};
