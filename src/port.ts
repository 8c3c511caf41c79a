/**
 * A port: the queue on which the kernel delivers page-request packets to a pager.
 *
 * Packets are delivered in the order they were queued. A page request sits on the port as itself
 * until it is read; a request answered before the pager read it (an early supply) is withdrawn, so
 * the pager never sees a stale packet. Reading it freezes the request's range (see PageRequest).
 *
 * Closing the port stops delivery: readers waiting on it end, and no packet can be read again; the
 * kernel keeps accepting supplies for its VMOs (SEMANTICS.md, "Closing the port").
 */
import { ZxError, ZxStatus } from './status.js';
import { PAGE_SIZE } from './constants.js';

export const enum PagerCommand {
  Read = 0,
  Complete = 1,
  Dirty = 2,
}

export const PAGER_COMMAND_NAMES = ['READ', 'COMPLETE', 'DIRTY'] as const;
export type PagerCommandName = (typeof PAGER_COMMAND_NAMES)[number];

/** What every page-request packet carries. Offsets and lengths are bytes, page-aligned. */
interface PacketFields<C extends PagerCommandName> {
  readonly type: 'page_request';
  /** The key given to createVmo: which VMO the request is for. */
  readonly key: number;
  readonly command: C;
  readonly offset: number;
  readonly length: number;
}

/** Supply [offset, offset + length) with supplyPages, or fail it with opRange(FAIL). */
export type ReadPacket = PacketFields<'READ'>;
/** The VMO wants to dirty [offset, offset + length): opRange(DIRTY) to allow it, or FAIL. */
export type DirtyPacket = PacketFields<'DIRTY'>;
/** The VMO is detached (or gone): the last packet for its key; offset and length are 0. */
export type CompletePacket = PacketFields<'COMPLETE'>;

/** A page-request packet as the pager reads it: switch on `command` to narrow it. */
export type PageRequestPacket = ReadPacket | DirtyPacket | CompletePacket;

export type PortPacket = PageRequestPacket;

/** What the port holds for one undelivered packet. */
export interface PortEntry {
  /** False once withdrawn (answered early); the port skips it. */
  pending: boolean;
  key: number;
  command: PagerCommand;
  /** Page range; read at delivery so a request trimmed before delivery is delivered trimmed. */
  startPage: number;
  endPage: number;
  /** Called when the pager reads the entry. */
  onDelivered?: () => void;
}

type Reader = { resolve: (p: PortPacket | null) => void; timer: ReturnType<typeof setTimeout> | undefined };

export class Port {
  /** Undelivered entries in queue order; entries before `head` were consumed. */
  private entries: PortEntry[] = [];
  private head = 0;
  private readers: Reader[] = [];
  private closedFlag = false;
  /** Packets delivered so far (for stats). */
  delivered = 0;

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Entries queued and not yet read or withdrawn. O(queued). */
  get pendingCount(): number {
    let n = 0;
    for (let i = this.head; i < this.entries.length; i++) if (this.entries[i].pending) n++;
    return n;
  }

  /** Kernel side: queues an entry and wakes one reader. Entries queued on a closed port are dropped. */
  queue(entry: PortEntry): void {
    if (this.closedFlag) return;
    this.entries.push(entry);
    const reader = this.readers.shift();
    if (reader !== undefined) {
      if (reader.timer !== undefined) clearTimeout(reader.timer);
      reader.resolve(this.tryRead());
    }
  }

  /**
   * Reads the next packet without waiting, or returns null when none is queued (Zircon's
   * port_wait with a deadline in the past). Throws BAD_STATE once the port is closed.
   */
  tryRead(): PortPacket | null {
    if (this.closedFlag) throw new ZxError(ZxStatus.ERR_BAD_STATE, 'port is closed');
    while (this.head < this.entries.length) {
      const entry = this.entries[this.head++];
      if (!entry.pending) continue;
      entry.pending = false;
      this.compact();
      this.delivered++;
      entry.onDelivered?.();
      return Object.freeze({
        type: 'page_request' as const,
        key: entry.key,
        command: PAGER_COMMAND_NAMES[entry.command],
        offset: entry.startPage * PAGE_SIZE,
        length: (entry.endPage - entry.startPage) * PAGE_SIZE,
      }) as PageRequestPacket; // `command` names the variant
    }
    this.compact();
    return null;
  }

  /**
   * Waits for the next packet. Resolves null when the port closes while waiting; rejects with
   * TIMED_OUT after `timeoutMs` (no deadline when omitted).
   */
  wait(timeoutMs?: number): Promise<PortPacket | null> {
    if (this.closedFlag) return Promise.resolve(null);
    const ready = this.tryRead();
    if (ready !== null) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const reader: Reader = { resolve, timer: undefined };
      if (timeoutMs !== undefined) {
        reader.timer = setTimeout(() => {
          this.readers = this.readers.filter((r) => r !== reader);
          reject(new ZxError(ZxStatus.ERR_TIMED_OUT, `no packet within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.readers.push(reader);
    });
  }

  /** `for await (const packet of port)`: ends when the port is closed. */
  async *[Symbol.asyncIterator](): AsyncGenerator<PortPacket> {
    for (;;) {
      const packet = await this.wait();
      if (packet === null) return;
      yield packet;
    }
  }

  /** Closes the port: waiting readers get null, queued packets are dropped. Idempotent. */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.entries = [];
    this.head = 0;
    const readers = this.readers;
    this.readers = [];
    for (const r of readers) {
      if (r.timer !== undefined) clearTimeout(r.timer);
      r.resolve(null);
    }
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}
