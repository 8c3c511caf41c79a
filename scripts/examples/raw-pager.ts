/**
 * A user pager on the raw syscalls, with no FUSE: what README "Guide to the user pager" walks
 * through. Run it: `node dist/scripts/examples/raw-pager.js` (prints what happens).
 */
import { PAGE_SIZE, PagerOp, VmSystem, ZxStatus } from 'pagerfs';

/** Serves one VMO whose page N reads "page N", failing page `badPage` with ERR_IO. Returns the log. */
export async function rawPagerDemo(badPage = 3): Promise<string[]> {
  const log: string[] = [];
  const system = new VmSystem({ budgetBytes: 1024 * 1024 });            // a kernel with a 1 MiB arena
  const pager = system.createPager();
  const port = system.createPort();
  const vmo = pager.createVmo(0, port, 42, 8 * PAGE_SIZE);               // key 42, 8 pages, nothing resident

  const serving = (async () => {
    for await (const packet of port) {                                    // ends when the port closes
      log.push(`${packet.command} key=${packet.key} offset=${packet.offset} length=${packet.length}`);
      if (packet.command !== 'READ') continue;                           // COMPLETE: nothing to answer
      for (let off = packet.offset; off < packet.offset + packet.length; off += PAGE_SIZE) {
        const page = off / PAGE_SIZE;
        if (page === badPage) { pager.opRange(PagerOp.FAIL, vmo, off, PAGE_SIZE, ZxStatus.ERR_IO); continue; }
        const aux = system.createVmo(PAGE_SIZE);                         // frames to fill, then move
        await aux.write(Buffer.from(`page ${page}\n`.padEnd(PAGE_SIZE, '.')), 0);
        pager.supplyPages(vmo, off, PAGE_SIZE, aux, 0);
        aux.close();
      }
    }
  })();

  const buf = Buffer.alloc(16);
  await vmo.read(buf, 2 * PAGE_SIZE);                                    // faults: a READ packet, then the supply wakes us
  log.push(`read: ${JSON.stringify(buf.toString().split('\n')[0])}`);
  await vmo.read(buf, 3 * PAGE_SIZE).catch((err: Error) => log.push(`read of page 3: ${err.message}`));
  pager.detachVmo(vmo);                                                  // then a COMPLETE packet
  await new Promise((r) => setImmediate(r));
  port.close();
  await serving;
  return log;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await rawPagerDemo()) console.log(line);
}
