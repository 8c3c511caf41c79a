/** `npm run demo`: mounts a sample backing directory under a small budget and shows the pager at work. */
import { runDemo } from '../fs/demo.js';

runDemo().catch((err: unknown) => {
  process.stderr.write(`pagerfs demo failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
