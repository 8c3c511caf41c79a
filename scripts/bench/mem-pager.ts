/**
 * An in-process user pager for the core and eviction suites: it answers READ packets by filling the
 * pages of a reusable aux VMO with a pattern held in memory (no disk) and moving them in with
 * supplyPages — the same fill-then-supply shape as the directory pager, minus the file I/O.
 *
 * Page contents: a seeded 4 KiB pattern with the page index stamped in bytes 0..3 and the key in
 * bytes 4..7, so a reader can check it got the right page (checkPage).
 */
import { PAGE_SIZE, type Pager, type PortPacket, type Port, type VmObjectPaged, type VmSystem } from '../../src/index.js';
import { Rng } from './stats.js';

/** Largest request the aux VMO serves at once; longer requests are supplied in pieces. */
const AUX_PAGES = 256;

export class MemoryPager {
  readonly pager: Pager;
  readonly port: Port;
  private readonly pattern = Buffer.alloc(PAGE_SIZE);
  private readonly vmos = new Map<number, VmObjectPaged>();
  private readonly aux: VmObjectPaged;
  private nextKey = 1;
  private loop: Promise<void> | null = null;
  /** Packets answered and pages supplied (for sanity checks). */
  readPackets = 0;
  suppliedPages = 0;

  constructor(readonly system: VmSystem, seed = 0x5eed) {
    this.pager = system.createPager();
    this.port = system.createPort();
    new Rng(seed).fill(this.pattern);
    this.aux = system.createVmo(AUX_PAGES * PAGE_SIZE);
  }

  /** A pager VMO of `sizeBytes` served by this pager. */
  createVmo(sizeBytes: number): VmObjectPaged {
    const key = this.nextKey++;
    const vmo = this.pager.createVmo(0, this.port, key, sizeBytes);
    this.vmos.set(key, vmo);
    return vmo;
  }

  /** Starts answering packets. */
  start(): void {
    this.loop ??= this.serve();
  }

  /** Closes the port and waits for the loop to end. */
  async stop(): Promise<void> {
    this.port.close();
    await this.loop;
    this.aux.close();
    this.pager.close();
  }

  private async serve(): Promise<void> {
    for (;;) {
      const first = await this.port.wait();
      if (first === null) return;
      this.handle(first);
      // Drain what queued meanwhile without another await per packet.
      for (let p = this.drainOne(); p !== null; p = this.drainOne()) this.handle(p);
    }
  }

  /** The next queued packet, or null when none is queued or the port was closed meanwhile. */
  private drainOne(): PortPacket | null {
    return this.port.closed ? null : this.port.tryRead();
  }

  private handle(p: PortPacket): void {
    if (p.command === 'COMPLETE') {
      this.vmos.delete(p.key);
      return;
    }
    if (p.command !== 'READ') return; // no TRAP_DIRTY VMOs here
    const vmo = this.vmos.get(p.key);
    if (vmo === undefined) return;
    this.readPackets++;
    this.supply(vmo, p.key, p.offset / PAGE_SIZE, p.length / PAGE_SIZE);
  }

  /**
   * Supplies pages [first, first + count) of the VMO with the pattern (also used directly to fill a
   * VMO without faults, as a prefetching pager may). Returns pages newly installed.
   */
  supply(vmo: VmObjectPaged, key: number, first: number, count: number): number {
    let added = 0;
    for (let done = 0; done < count;) {
      const n = Math.min(AUX_PAGES, count - done);
      const views = this.aux.mapPages(0, n * PAGE_SIZE);
      let page = first + done;
      for (const view of views) {
        for (let off = 0; off < view.length; off += PAGE_SIZE, page++) {
          this.pattern.copy(view, off);
          view.writeUInt32LE(page, off);
          view.writeUInt32LE(key, off + 4);
        }
      }
      added += this.pager.supplyPages(vmo, (first + done) * PAGE_SIZE, n * PAGE_SIZE, this.aux, 0);
      done += n;
    }
    this.suppliedPages += added;
    return added;
  }

  /** Supplies the whole VMO, or pages [first, end). */
  fill(vmo: VmObjectPaged, first = 0, end = vmo.sizePages): number {
    return this.supply(vmo, this.keyOf(vmo), first, end - first);
  }

  keyOf(vmo: VmObjectPaged): number {
    for (const [k, v] of this.vmos) if (v === vmo) return k;
    throw new Error('not a VMO of this pager');
  }

  /** Does `buf` (one page read at page `page` of the VMO with `key`) hold what this pager supplied? */
  checkPage(buf: Uint8Array, page: number, key: number): boolean {
    const b = Buffer.from(buf.buffer, buf.byteOffset, PAGE_SIZE);
    return b.readUInt32LE(0) === page && b.readUInt32LE(4) === key && b.compare(this.pattern, 8, PAGE_SIZE, 8, PAGE_SIZE) === 0;
  }
}
