/**
 * The pager's service loop: reads packets from the port, coalesces adjacent READ requests that
 * arrive together, and hands them to a handler with bounded concurrency.
 *
 * Request lifecycle, as the pager sees it (the kernel side is in src/page-request.ts):
 *  1. A reader faults on a missing page; the kernel queues a READ packet (key, offset, length).
 *  2. This loop reads it, together with every packet already queued behind it, and merges READs of
 *     the same key whose ranges touch into one job (one backing read instead of several).
 *  3. It waits for a free slot (at most `concurrency` jobs run at once), so packets that keep arriving
 *     meanwhile wait on the port and are coalesced in their turn. A handler that answers before it
 *     returns gives the slot straight back (begin()); only an answer still to come holds it.
 *  4. The handler answers: supplyPages for what it read, opRange(FAIL) with an allowed status for what
 *     it could not. A handler that throws fails the job's range with ERR_IO (logged with its stack):
 *     a bug in one answer never leaves a reader hanging.
 *  5. COMPLETE is the last packet for a key; the handler forgets the key.
 * Packet fields are frozen (the kernel froze the request when we read it), so jobs keep them as is.
 */
import type { Logger } from 'pino';
import type { PortPacket, Port } from '../src/index.js';
import type { PagerMetrics } from './metrics.js';

export interface PageJob {
  key: number;
  command: 'READ' | 'DIRTY';
  /** Byte range, page-aligned. */
  offset: number;
  length: number;
  /** Packets merged into this job. */
  packets: number;
  /** When the first packet of the job was read (performance.now()). */
  receivedAt: number;
  /** How the job was answered, for the trace (set by the handler when tracing). */
  answer?: string;
}

export interface PageJobHandler {
  /**
   * Answers a READ or DIRTY job. Must answer every page of it (supply, dirty or fail). Returns
   * nothing when it answered before returning (the job never takes a slot or a promise), else the
   * promise of the answer.
   */
  handle(job: PageJob): Promise<void> | void;
  /** Called when a job's handler threw: fail the range so no reader hangs. */
  failJob(job: PageJob, err: unknown): void;
  /** The key's last packet. */
  complete(key: number): void;
}

/** A job answerWithin waits on: given up (its slot freed) once older than answerTimeoutMs. */
interface WatchedJob {
  readonly job: PageJob;
  readonly startedAt: number;
  readonly giveUp: () => void;
}

/** Most packets drained from the port into one coalescing batch. */
const MAX_BATCH = 256;
/**
 * How long the loop may answer packets without the event loop turning before it lets it turn:
 * packets answered at once wake their readers in microtasks, which may fault again at once, and
 * such a chain (a workload hunt met one: eight writers in a shrunk budget) never lets FUSE
 * requests, timers (writeback, request timeouts) or I/O callbacks run.
 */
const YIELD_AFTER_MS = 20;

export class PortServer {
  private running = 0;
  /**
   * READ jobs read from the port while every slot was busy, in order; each starts as a slot frees.
   * The loop reads on meanwhile: a DIRTY packet behind them must not wait for a slot to be read.
   */
  private readonly readBacklog: PageJob[] = [];
  private loopDone: Promise<void> | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  /** Jobs whose answer is awaited with a give-up time (answerTimeoutMs); owned by answerWithin/sweep. */
  private readonly watched = new Set<WatchedJob>();
  /** Runs while `watched` is not empty. */
  private sweepTimer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly port: Port,
    private readonly handler: PageJobHandler,
    private readonly concurrency: number,
    private readonly metrics: PagerMetrics,
    private readonly log: Logger,
    private readonly describeKey: (key: number) => string,
    private readonly trace: boolean,
    /** A handler not settled after this long gives its slot back (counted, logged); undefined: never. */
    private readonly answerTimeoutMs?: number,
  ) {}

  start(): void {
    if (this.loopDone !== null) return;
    this.loopDone = this.loop();
  }

  /** Resolves when the port was closed and every job in flight (and waiting for a slot) has finished. */
  async stopped(): Promise<void> {
    await this.loopDone;
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Jobs running now. */
  get busy(): number {
    return this.running;
  }

  /** Set by a setImmediate callback (noteTurn): the event loop has turned since the loop looked. */
  private turned = true;
  private readonly noteTurn = (): void => { this.turned = true; };

  private async loop(): Promise<void> {
    let busySince = 0;
    for (;;) {
      const first = await this.port.wait();
      if (first === null) return;
      if (this.turned) {
        this.turned = false;
        busySince = performance.now();
        setImmediate(this.noteTurn);
      } else if (performance.now() - busySince > YIELD_AFTER_MS) {
        await new Promise<void>((r) => setImmediate(r)); // noteTurn (queued earlier) runs first
        this.metrics.loopYields++;
      }
      const batch: PortPacket[] = [first];
      while (batch.length < MAX_BATCH) {
        const p = this.port.closed ? null : this.port.tryRead();
        if (p === null) break;
        batch.push(p);
      }
      const now = performance.now();
      for (const job of coalesce(batch, now, (key) => this.handler.complete(key), this.metrics)) {
        // Slots bound the backing reads on libuv's pool. A DIRTY answer reads nothing (a statfs at
        // most) and is what lets written pages go (a page awaiting it may not be evicted): behind
        // fills that wait for memory those very pages hold, it would wait forever. So DIRTY jobs
        // take no slot (one per writer at most), and READ jobs wait for one off the loop.
        if (job.command === 'DIRTY') this.launch(job, false);
        else if (this.readBacklog.length === 0 && this.running < this.concurrency) this.launch(job, true);
        else this.readBacklog.push(job);
      }
    }
  }

  /** Starts a job (`slotted`: it holds one of the `concurrency` slots until answered). */
  private launch(job: PageJob, slotted: boolean): void {
    if (slotted) this.running++;
    const pending = this.begin(job);
    if (pending === null) {
      if (slotted) this.running--; // answered already (the small cold read): the slot was never needed
      return;
    }
    const run = pending.finally(() => {
      if (slotted) {
        this.running--;
        this.startBacklog();
      }
      this.inFlight.delete(run);
    });
    this.inFlight.add(run);
  }

  /** Starts waiting READ jobs while slots are free (a loop: many may answer at once, without a slot). */
  private startBacklog(): void {
    while (this.running < this.concurrency && this.readBacklog.length > 0) this.launch(this.readBacklog.shift()!, true);
  }

  /** Calls the handler: null when the job was answered before it returned, else the answer to wait for. */
  private begin(job: PageJob): Promise<void> | null {
    let answer: Promise<void> | void;
    try {
      answer = this.handler.handle(job);
    } catch (err) {
      this.handlerThrew(job, err);
      answer = undefined;
    }
    if (answer === undefined) {
      this.finish(job);
      return null;
    }
    return this.run(job, answer);
  }

  private async run(job: PageJob, answer: Promise<void>): Promise<void> {
    try {
      await this.answerWithin(job, answer);
    } catch (err) {
      this.handlerThrew(job, err);
    }
    this.finish(job);
  }

  private handlerThrew(job: PageJob, err: unknown): void {
    this.log.error({ err, key: job.key, path: this.describeKey(job.key), command: job.command, offset: job.offset, length: job.length },
      'pager handler threw; failing the request with ERR_IO');
    job.answer = 'threw: failed ERR_IO';
    try {
      this.handler.failJob(job, err);
    } catch (failErr) {
      this.log.warn({ err: failErr }, 'could not fail the request (detached?)');
    }
  }

  /** A job is done: its latency, and its trace line. */
  private finish(job: PageJob): void {
    const ms = performance.now() - job.receivedAt;
    this.metrics.latency.record(ms);
    if (this.trace) {
      this.log.debug({ key: job.key, path: this.describeKey(job.key), command: job.command, offset: job.offset,
        length: job.length, packets: job.packets, answer: job.answer, latencyMs: Number(ms.toFixed(3)) },
      'page request answered');
    }
  }

  /**
   * The handler's answer, or a give-up after answerTimeoutMs: the slot is freed so one pager that
   * never answers cannot stall every other file. A late answer is still applied; a late throw is
   * logged only (its readers already gave up with TIMED_OUT). One sweep timer watches every job in
   * flight (a timer per job cost ~5% of a cold random read's CPU: make, enroll, clear).
   */
  private answerWithin(job: PageJob, answer: Promise<void>): Promise<void> {
    if (this.answerTimeoutMs === undefined) return answer;
    return new Promise<void>((resolve, reject) => {
      const watch: WatchedJob = { job, startedAt: performance.now(), giveUp: () => resolve() };
      this.watched.add(watch);
      this.ensureSweep();
      answer.then(() => {
        this.watched.delete(watch);
        resolve();
      }, (err: unknown) => {
        if (this.watched.delete(watch)) reject(err);
        else this.log.warn({ err, key: job.key }, 'a page request answered after its timeout failed');
      });
    });
  }

  private ensureSweep(): void {
    if (this.sweepTimer !== null) return;
    const limit = this.answerTimeoutMs!;
    // A give-up comes at most a quarter of the limit late (and at least every 5 ms, at most 1 s).
    const period = Math.max(5, Math.min(1000, limit / 4));
    this.sweepTimer = setInterval(() => this.sweep(limit), period);
    this.sweepTimer.unref();
  }

  /** Gives up the jobs older than `limit`; stops the timer when nothing is in flight. */
  private sweep(limit: number): void {
    if (this.watched.size === 0) {
      clearInterval(this.sweepTimer!);
      this.sweepTimer = null;
      return;
    }
    const now = performance.now();
    for (const w of this.watched) {
      if (now - w.startedAt < limit) continue;
      this.watched.delete(w);
      const job = w.job;
      this.metrics.abandonedJobs++;
      job.answer = `no answer within ${limit} ms: slot given back`;
      this.log.warn({ key: job.key, path: this.describeKey(job.key), command: job.command, offset: job.offset, length: job.length, waitedMs: limit },
        'the pager has not answered a page request; giving its slot back (readers time out)');
      w.giveUp();
    }
  }
}

/** Merges READ packets of one key whose ranges touch; keeps DIRTY packets apart; runs COMPLETEs. */
export function coalesce(batch: PortPacket[], now: number, complete: (key: number) => void, metrics: PagerMetrics): PageJob[] {
  const jobs: PageJob[] = [];
  const reads = new Map<number, PageJob[]>();
  for (const p of batch) {
    if (p.command === 'COMPLETE') {
      metrics.completePackets++;
      complete(p.key);
      continue;
    }
    if (p.command === 'DIRTY') {
      metrics.dirtyRequests++;
      jobs.push({ key: p.key, command: 'DIRTY', offset: p.offset, length: p.length, packets: 1, receivedAt: now });
      continue;
    }
    metrics.readRequests++;
    const list = reads.get(p.key) ?? [];
    list.push({ key: p.key, command: 'READ', offset: p.offset, length: p.length, packets: 1, receivedAt: now });
    reads.set(p.key, list);
  }
  for (const list of reads.values()) {
    list.sort((a, b) => a.offset - b.offset);
    let cur = list[0];
    for (let i = 1; i < list.length; i++) {
      const j = list[i];
      if (j.offset <= cur.offset + cur.length) {
        cur.length = Math.max(cur.offset + cur.length, j.offset + j.length) - cur.offset;
        cur.packets++;
      } else {
        jobs.push(cur);
        cur = j;
      }
    }
    jobs.push(cur);
  }
  return jobs;
}
