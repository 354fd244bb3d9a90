// A dump's pages files into an ingest session, chunk by chunk: the hash workers read and
// hash a chunk while this thread indexes and writes earlier ones. The first pages file can be
// followed while CRIU is still writing it (DumpFollower), so that hashing overlaps the dump
// instead of starting after it.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { PagemapFile, checkPagesFile, pagesFileName } from '../criu/checkpoint-images';
import { PAGE_SIZE } from '../criu/page-size';
import { log } from '../log/logger';
import type { IngestSession } from '../store/ingest-session';
import { FileRead, PageHashPool, SharedChunks } from '../store/page-hash-pool';
import { PageRun, PageRunsBuilder } from '../store/page-runs';
import { PageStore } from '../store/page-store';
import { StoreLockTimeoutError } from '../store/store-error';
import type { ArchiveContext, FollowedDump } from './checkpoint-archive';

/** Pages read and hashed per step: 8 MiB. */
const CHUNK_PAGES = 2048;
/** Chunks being read or hashed while the index takes the current one. */
const CHUNKS_AHEAD = 3;

/** One pages file going into a session, in order; it may be fed while it still grows. */
class PagesFileIngest {
  private readonly runs = new PageRunsBuilder();
  private readonly hashed: Array<Promise<[Buffer, Buffer]>> = [];
  private readonly buffers = new SharedChunks(CHUNK_PAGES);
  private dispatched = 0;

  /** Pages handed to the workers so far. */
  get taken(): number {
    return this.dispatched;
  }

  constructor(
    private readonly session: IngestSession,
    private readonly pool: PageHashPool,
    private readonly fd: number,
  ) {}

  /**
   * Takes the file's pages up to `available` (pages the file is known to hold): whole chunks
   * only, unless `last`, when every page up to it goes.
   */
  async feed(available: number, last: boolean): Promise<void> {
    while (available - this.dispatched >= CHUNK_PAGES || (last && this.dispatched < available)) {
      const chunk = this.buffers.take(Math.min(CHUNK_PAGES, available - this.dispatched));
      // The workers read the chunk themselves, then hash it.
      const read: FileRead = { fd: this.fd, position: this.dispatched * PAGE_SIZE, at: 0, length: chunk.length };
      const job = this.pool.hashPages(chunk, [read], { readsMustSucceed: true }).then((names): [Buffer, Buffer] => [chunk, names]);
      job.catch(() => undefined); // awaited in take(); this only marks it handled meanwhile
      this.hashed.push(job);
      this.dispatched += chunk.length / PAGE_SIZE;
      if (this.hashed.length > CHUNKS_AHEAD) await this.take();
    }
  }

  /** The file's runs, once every page fed has been added. */
  async finish(): Promise<PageRun[]> {
    while (this.hashed.length > 0) await this.take();
    return this.runs.build();
  }

  /** Waits out every read in flight, whatever its outcome: the fd may be closed after this. */
  async settle(): Promise<void> {
    await Promise.allSettled(this.hashed);
  }

  private async take(): Promise<void> {
    const [pages, names] = await (this.hashed.shift() as Promise<[Buffer, Buffer]>);
    // The buffer is reused once its new pages are written (an error surfaces at makeDurable).
    this.session.addNamedPages(pages, names).then(
      () => this.buffers.give(pages),
      () => undefined,
    );
    this.runs.addNames(names);
  }
}

/** One complete pages file into the session; returns its runs. */
export async function ingestPagesFile(session: IngestSession, pagemap: PagemapFile, pool: PageHashPool): Promise<PageRun[]> {
  const totalPages = (await checkPagesFile(pagemap)) / PAGE_SIZE;
  if (totalPages === 0) return new PageRunsBuilder().build();
  const handle = await fsp.open(pagemap.pagesPath, 'r');
  const ingest = new PagesFileIngest(session, pool, handle.fd);
  try {
    await ingest.feed(totalPages, true);
    return await ingest.finish();
  } finally {
    await ingest.settle();
    await handle.close();
  }
}

/** How often a followed pages file is looked at while CRIU writes it. */
const FOLLOW_POLL_MS = 5;

/** What following a dump got: an open session holding the first pages file's start. */
export interface FollowedPages {
  readonly store: PageStore;
  readonly session: IngestSession;
  /** The file followed. */
  readonly pagesPath: string;
  /** Takes the rest of the file, now complete and checked against `pagemap`; returns its runs. */
  complete(pagemap: PagemapFile): Promise<PageRun[]>;
  /** Drops everything: reads settle, the session is aborted, the store closed. */
  abandon(): Promise<void>;
}

/**
 * Follows the first pages file (`pages-1.img`: CRIU numbers them in dump order, the root task
 * first) while CRIU writes it, and ingests it in whole chunks as it grows. CRIU only appends
 * to a pages file during a dump, through the page cache, so the bytes below the size this
 * sees are final. Whether the file is the one the manifest needs first is known only after
 * the dump: store() checks it, and abandons what was followed (starting over) if not.
 */
export class DumpFollower implements FollowedDump {
  private stopped = false;
  private completedValue = false;
  private store: PageStore | undefined;
  private session: IngestSession | undefined;
  private fd: number | undefined;
  private ingest: PagesFileIngest | undefined;
  private failure: unknown;
  private readonly running: Promise<void>;
  private wake: (() => void) | undefined;

  constructor(
    private readonly storeRoot: string,
    private readonly imageDir: string,
    private readonly context: ArchiveContext,
    private readonly pool: PageHashPool,
  ) {
    this.running = this.follow().catch((err: unknown) => {
      this.failure = err;
    });
  }

  /** Pages of the followed file taken so far. */
  get pagesTaken(): number {
    return this.ingest?.taken ?? 0;
  }

  /** The dump has ended: what was followed, or undefined (nothing, or it failed and was dropped). */
  async stop(): Promise<FollowedPages | undefined> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    const { store, session, ingest } = this;
    if (this.failure !== undefined || store === undefined || session === undefined || ingest === undefined) {
      if (this.failure !== undefined) log.warn(`following the dump in ${this.imageDir} failed, its pages are taken after it: ${(this.failure as Error).message}`);
      await this.abandon();
      return undefined;
    }
    return {
      store,
      session,
      pagesPath: this.pagesPath,
      complete: async (pagemap) => {
        try {
          const totalPages = (await checkPagesFile(pagemap)) / PAGE_SIZE;
          await ingest.feed(totalPages, true);
          const runs = await ingest.finish();
          this.completedValue = true;
          return runs;
        } finally {
          await this.closeFile();
        }
      },
      abandon: () => this.abandon(),
    };
  }

  /** After a failed dump (or when what was followed is not wanted). Idempotent. */
  async abandon(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    try {
      await this.closeFile();
    } finally {
      // The session's pack bytes are cut back and its lock released whatever happened above.
      this.session?.abort();
      this.session = undefined;
      this.store?.close();
      this.store = undefined;
    }
  }

  /** Whether store() took the followed file's pages as they were followed. */
  get completed(): boolean {
    return this.completedValue;
  }

  private get pagesPath(): string {
    return path.join(this.imageDir, pagesFileName(1));
  }

  private async closeFile(): Promise<void> {
    await this.ingest?.settle();
    this.ingest = undefined;
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private async follow(): Promise<void> {
    while (!this.stopped && this.fd === undefined) {
      try {
        this.fd = fs.openSync(this.pagesPath, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        await this.pause();
      }
    }
    // The store's writer lock only once there is a whole chunk to take, and only if nobody
    // holds it: otherwise (a small dump, another shim's ingest) the pages are taken after the
    // dump, as they were before, and no ingest waits on a dump.
    while (!this.stopped && this.fd !== undefined && fs.fstatSync(this.fd).size < CHUNK_PAGES * PAGE_SIZE) await this.pause();
    if (this.stopped || this.fd === undefined) return;
    this.store = PageStore.open(this.storeRoot);
    try {
      this.session = await this.store.beginIngest({ checkpointId: randomUUID(), ...this.context }, { lockTimeoutMs: 0 });
    } catch (err) {
      if (err instanceof StoreLockTimeoutError) return;
      throw err;
    }
    this.ingest = new PagesFileIngest(this.session, this.pool, this.fd);
    while (!this.stopped) {
      await this.ingest.feed(Math.floor(fs.fstatSync(this.fd).size / PAGE_SIZE), false);
      await this.pause();
    }
  }

  private pause(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, FOLLOW_POLL_MS);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
