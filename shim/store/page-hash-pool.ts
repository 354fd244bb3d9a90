// Names pages on every core: SHA-256 of 4 KiB runs at ~160k pages/s per core here, so one
// thread would spend ~0.4 s on a 230 MiB dump or restore. The pool splits a buffer of pages
// between worker threads. Buffers are SharedArrayBuffer-backed (sharedPages()), so a worker
// reads the caller's bytes in place; each worker sends back only the 32-byte names.
//
// Workers start on first use and exit after a short idle time (they cost ~10 MiB each, and
// a shim server is long-lived); they are unref'd, so they never keep a process alive.
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { PAGE_SIZE } from '../criu/page-size';
import { HASH_BYTES } from './page-ref';
import { collectWhenQuiet } from '../memory/idle-collection';

/** The name hashPages() gives a page of zeros: zero pages are never hashed (or stored). */
export const ZERO_PAGE_NAME = Buffer.alloc(HASH_BYTES);

const IDLE_EXIT_MS = 15_000;
/** Below this a job is hashed by one worker: splitting costs more than it saves. */
const MIN_PAGES_PER_WORKER = 64;

// Plain JS, evaluated by each worker: no build step or file path to find (tests run the
// TypeScript sources). A zero page (a memcmp, ~12 GB/s) gets ZERO_PAGE_NAME.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
const PAGE = ${PAGE_SIZE};
const zero = Buffer.alloc(PAGE);
const hash = crypto.hash
  ? (b) => crypto.hash('sha256', b, 'buffer')
  : (b) => crypto.createHash('sha256').update(b).digest();
const fs = require('node:fs');
parentPort.on('message', ({ id, shared, byteOffset, pages, reads }) => {
  const names = Buffer.alloc(pages * 32);
  const view = Buffer.from(shared, byteOffset, pages * PAGE);
  // Reads asked for first: [fd, position, byte offset in this part, length]. A failed or
  // short read leaves the bytes as they were; the caller's verification catches that.
  let failedReads = 0;
  for (const [fd, position, at, length] of reads) {
    let done = 0;
    try {
      while (done < length) {
        const n = fs.readSync(fd, view, at + done, length - done, position + done);
        if (n === 0) break;
        done += n;
      }
    } catch {}
    if (done < length) failedReads++;
  }
  for (let i = 0; i < pages; i++) {
    const page = view.subarray(i * PAGE, (i + 1) * PAGE);
    if (!page.equals(zero)) hash(page).copy(names, i * 32);
  }
  parentPort.postMessage({ id, names: names.buffer, byteOffset: names.byteOffset, failedReads }, [names.buffer]);
});
`;

interface JobResult {
  readonly names: Buffer;
  readonly failedReads: number;
}

interface Job {
  readonly resolve: (result: JobResult) => void;
  readonly reject: (err: Error) => void;
  /** The worker holding it, once posted. */
  readonly worker?: PoolWorker;
}

/** A part of a hashPages() call, waiting for a worker. */
interface QueuedPart {
  readonly message: { id: number; shared: SharedArrayBuffer; byteOffset: number; pages: number; reads: ReadonlyArray<readonly [number, number, number, number]> };
  readonly job: Job;
}

interface PoolWorker {
  readonly worker: Worker;
  busy: number;
}

/**
 * 'background' parts go to a worker only when no 'normal' part waits: work that can finish
 * later (a page-cache file written while CRIU restores) leaves the workers to work that
 * something waits on (the pages CRIU reads).
 */
export type HashPriority = 'normal' | 'background';

/** Parts a worker holds at once: a second hides the message round trip; more would delay
 * a normal part queued behind background ones. */
const PARTS_PER_WORKER = 2;

/**
 * Bytes a worker reads from an open file into the job's buffer before hashing it, so reads run
 * on the workers too. The fd must stay open until the job settles; a failed or short read
 * leaves the buffer's bytes as they were (verify the names).
 */
export interface FileRead {
  readonly fd: number;
  readonly position: number;
  /** Byte offset in the buffer given to hashPages(). */
  readonly at: number;
  readonly length: number;
}

/** The parts of `reads` that land in [start, end) of the buffer, relative to start. */
function readsWithin(reads: readonly FileRead[], start: number, end: number): Array<[number, number, number, number]> {
  const out: Array<[number, number, number, number]> = [];
  for (const r of reads) {
    const a = Math.max(r.at, start);
    const b = Math.min(r.at + r.length, end);
    if (a < b) out.push([r.fd, r.position + (a - r.at), a - start, b - a]);
  }
  return out;
}

/** A Buffer whose memory workers can read in place (zero-filled). */
export function sharedPages(pageCount: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(pageCount * PAGE_SIZE));
}

/**
 * Reusable sharedPages() buffers of one size: allocating a fresh 8 MiB SharedArrayBuffer per
 * chunk makes V8 count ~230 MiB of new external memory per dump and run full GCs for it.
 */
export class SharedChunks {
  private readonly free: Buffer[] = [];

  constructor(readonly pagesPerChunk: number) {}

  /** A buffer of `pages` pages (at most pagesPerChunk): zeros when new, else what it last held. */
  take(pages: number): Buffer {
    if (pages > this.pagesPerChunk) throw new RangeError(`${pages} pages, chunks hold ${this.pagesPerChunk}`);
    const whole = this.free.pop() ?? sharedPages(this.pagesPerChunk);
    return whole.subarray(0, pages * PAGE_SIZE);
  }

  /** Hand a buffer from take() back, once nothing reads or writes it any more. */
  give(chunk: Buffer): void {
    this.free.push(Buffer.from(chunk.buffer as SharedArrayBuffer));
  }
}

export class PageHashPool {
  private static sharedPool: PageHashPool | undefined;
  private readonly workers: PoolWorker[] = [];
  private readonly jobs = new Map<number, Job>();
  private readonly queued: Record<HashPriority, QueuedPart[]> = { normal: [], background: [] };
  private nextJob = 1;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(readonly size: number = Math.max(1, Math.min(4, os.availableParallelism()))) {}

  /** The process-wide pool. */
  static shared(): PageHashPool {
    PageHashPool.sharedPool ??= new PageHashPool();
    return PageHashPool.sharedPool;
  }

  /** Start the workers now (e.g. while CRIU dumps), so the first job does not wait for them. */
  warm(): void {
    while (this.workers.length < this.size) this.spawn();
    this.armIdleTimer();
  }

  /**
   * The names of the pages in `pages` (a whole number of pages, from sharedPages()), as one
   * buffer of HASH_BYTES per page; a zero page gets ZERO_PAGE_NAME. `reads` fill parts of
   * `pages` from files first, on the workers.
   */
  async hashPages(pages: Buffer, reads: readonly FileRead[] = [], options: { readsMustSucceed?: boolean; priority?: HashPriority } = {}): Promise<Buffer> {
    if (!(pages.buffer instanceof SharedArrayBuffer)) throw new TypeError('hashPages needs a SharedArrayBuffer-backed buffer (sharedPages())');
    if (pages.length % PAGE_SIZE !== 0) throw new RangeError(`${pages.length} bytes is not a whole number of ${PAGE_SIZE}-byte pages`);
    const count = pages.length / PAGE_SIZE;
    if (count === 0) return Buffer.alloc(0);
    this.warm();
    const parts = Math.max(1, Math.min(this.workers.length, Math.floor(count / MIN_PAGES_PER_WORKER)));
    const per = Math.ceil(count / parts);
    const jobs: Array<Promise<JobResult>> = [];
    for (let first = 0; first < count; first += per) {
      const n = Math.min(per, count - first);
      jobs.push(this.submit(pages.buffer, pages.byteOffset + first * PAGE_SIZE, n, readsWithin(reads, first * PAGE_SIZE, (first + n) * PAGE_SIZE), options.priority ?? 'normal'));
    }
    const results = await Promise.all(jobs);
    const failedReads = results.reduce((n, r) => n + r.failedReads, 0);
    if (failedReads > 0 && options.readsMustSucceed === true) throw new Error(`${failedReads} read(s) of the pages to hash failed or came up short`);
    return results.length === 1 ? results[0].names : Buffer.concat(results.map((r) => r.names));
  }

  /** Stop the workers (a later job starts them again). */
  async close(): Promise<void> {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const workers = this.workers.splice(0);
    this.failQueued(new Error('the page hashing pool was closed'));
    await Promise.all(workers.map((w) => w.worker.terminate()));
  }

  private failQueued(err: Error): void {
    for (const queue of [this.queued.normal, this.queued.background]) {
      for (const part of queue.splice(0)) part.job.reject(err);
    }
  }

  private submit(shared: SharedArrayBuffer, byteOffset: number, pages: number, reads: ReadonlyArray<readonly [number, number, number, number]>, priority: HashPriority): Promise<JobResult> {
    const id = this.nextJob++;
    return new Promise<JobResult>((resolve, reject) => {
      this.queued[priority].push({ message: { id, shared, byteOffset, pages, reads }, job: { resolve, reject } });
      this.dispatch();
    });
  }

  /** Hands queued parts, normal ones first, to workers with room. */
  private dispatch(): void {
    for (;;) {
      const part = this.queued.normal[0] ?? this.queued.background[0];
      if (part === undefined || this.workers.length === 0) return;
      const target = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
      if (target.busy >= PARTS_PER_WORKER) return;
      (this.queued.normal.length > 0 ? this.queued.normal : this.queued.background).shift();
      target.busy++;
      const { id } = part.message;
      this.jobs.set(id, {
        worker: target,
        resolve: (result) => {
          target.busy--;
          part.job.resolve(result);
          this.dispatch();
        },
        reject: (err) => {
          target.busy--;
          part.job.reject(err);
          this.dispatch();
        },
      });
      target.worker.postMessage(part.message);
    }
  }

  private spawn(): void {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    const entry: PoolWorker = { worker, busy: 0 };
    worker.on('message', (m: { id: number; names: ArrayBuffer; byteOffset: number; failedReads: number }) => {
      const job = this.jobs.get(m.id);
      if (job === undefined) return;
      this.jobs.delete(m.id);
      job.resolve({ names: Buffer.from(m.names, m.byteOffset), failedReads: m.failedReads });
    });
    const fail = (err: Error): void => {
      const at = this.workers.indexOf(entry);
      if (at >= 0) this.workers.splice(at, 1);
      void entry.worker.terminate().catch(() => undefined); // gone already, unless it only erred
      // The jobs it held fail (each rejection hands queued parts to the workers left).
      const held = [...this.jobs].filter(([, job]) => job.worker === entry);
      for (const [id, job] of held) {
        this.jobs.delete(id);
        job.reject(new Error(`page hashing worker failed: ${err.message}`));
      }
      // Queued parts go to the workers left; with none left, they fail too.
      if (this.workers.length === 0) this.failQueued(new Error(`page hashing worker failed: ${err.message}`));
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (this.workers.includes(entry)) fail(new Error(`it exited with code ${code}`));
    });
    this.workers.push(entry);
  }

  private armIdleTimer(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.jobs.size > 0 || this.queued.normal.length > 0 || this.queued.background.length > 0) {
        this.armIdleTimer();
        return;
      }
      // Then the pages buffers the workers shared are garbage on this thread too.
      void this.close().then(collectWhenQuiet);
    }, IDLE_EXIT_MS);
    this.idleTimer.unref();
  }
}
