// One checkpoint's pages going into the store. The session holds the store's writer lock
// from beginIngest() to commit() or abort(), so ingests from several shims take turns.
//
// addPage() names the page (zero pages are never stored), and appends it to the open pack
// unless the store or this session already has it; pages of one ingest land contiguous and
// in arrival order. makeDurable() fsyncs the packs it wrote (and packs/ for new files), THEN
// writes the ingest's pending record (pending-ingest.ts); publish() runs one index
// transaction with the new pages, the checkpoint and its references, then drops the record
// (commit() does both). A crash before the record exists leaves at most unreferenced bytes
// after a pack's committed length (the next ingest cuts them off) and a new pack file no
// index row names (gc removes it); a crash after it leaves a record the next writer indexes
// before it touches any pack.
import * as fs from 'node:fs';
import { PAGE_SIZE } from '../criu/page-size';
import { syncDirectory } from './durable-fs';
import { FileLock } from './file-lock';
import { PACK_HEADER_SIZE } from './pack-header';
import { PackWriter, makePackReadOnly } from './pack-writer';
import { CheckpointRecord, IngestCommit, NewPage, PackRow, PageEntry, PageIndex } from './page-index';
import { LOCATION_BYTES } from './page-manifest';
import { writePendingIngest } from './pending-ingest';
import { hashPage, isZeroPage } from './page-hash';
import { ZERO_PAGE_NAME } from './page-hash-pool';
import { HASH_BYTES, PageRef, ZERO_PAGE_REF, hashKey, storedPageRef } from './page-ref';
import { CheckpointExistsError, PackCorruptError, SessionClosedError, StoreArgumentError } from './store-error';
import { StoreLayout } from './store-layout';

export interface IngestInfo {
  readonly checkpointId: string;
  readonly containerId: string;
  readonly namespace: string;
  /**
   * How many pages are coming, if known. When they would not fit in the open pack, the
   * session starts a new pack so that the checkpoint's pages stay contiguous.
   */
  readonly expectedPages?: number;
}

export interface IngestSettings {
  readonly packSizeLimit: number;
  readonly writeBufferBytes: number;
}

export type IngestState = 'open' | 'committing' | 'durable' | 'committed' | 'aborted' | 'failed';

/** A pack this session appends to or seals. */
interface SessionPack {
  readonly id: number;
  readonly createdAtMs: number;
  /** Committed length when the session began (0 for a pack the session created). */
  readonly startLength: number;
  writer: PackWriter | undefined;
  sealed: boolean;
}

export class IngestSession {
  private stateValue: IngestState = 'open';
  private readonly packs: SessionPack[] = [];
  private current: SessionPack | undefined;
  private nextPackId: number;
  private readonly pending: NewPage[] = [];
  /** Each distinct non-zero page of this checkpoint (hashKey): pack id * 2^32 + page number in the pack. */
  private readonly locations = new Map<string, number>();
  /** The location of every stored page added, in order, since takeLocations(). */
  private arrival: number[] = [];
  /** Ids of the distinct pages the store already had. */
  private readonly existing: number[] = [];
  private pages = 0;
  private zeroPages = 0;
  private pendingRecord: { readonly data: IngestCommit; readonly file: string } | undefined;

  /** Use PageStore.beginIngest(). */
  constructor(
    private readonly index: PageIndex,
    private readonly layout: StoreLayout,
    private readonly lock: FileLock,
    readonly info: IngestInfo,
    private readonly settings: IngestSettings,
    private readonly onDone: (session: IngestSession) => void,
  ) {
    this.nextPackId = index.nextPackId();
    try {
      this.adoptOpenPack();
    } catch (err) {
      this.closeWriters();
      this.finish('failed');
      throw err;
    }
  }

  get state(): IngestState {
    return this.stateValue;
  }

  get checkpointId(): string {
    return this.info.checkpointId;
  }

  /** Pages added so far (zero pages and repeats included). */
  get pageCount(): number {
    return this.pages;
  }

  /** Pages this session will add to the store. */
  get newPageCount(): number {
    return this.pending.length;
  }

  /**
   * Add the next page of the checkpoint (PAGE_SIZE bytes; copied, so the buffer may be reused).
   * If it throws (a full disk), abort() the session.
   */
  addPage(page: Buffer): PageRef {
    this.requireOpen('add a page');
    if (!Buffer.isBuffer(page) || page.length !== PAGE_SIZE) {
      throw new StoreArgumentError(`a page must be a Buffer of ${PAGE_SIZE} bytes (got ${Buffer.isBuffer(page) ? page.length : typeof page})`);
    }
    this.pages++;
    if (isZeroPage(page)) {
      this.zeroPages++;
      return ZERO_PAGE_REF;
    }
    const hash = hashPage(page);
    const key = hashKey(hash);
    if (!this.locations.has(key)) this.addDistinct(key, hash, page, 0, this.index.pageEntries([hash])[0]);
    this.arrival.push(this.locations.get(key) as number);
    return storedPageRef(hash);
  }

  /** Add consecutive pages (a multiple of PAGE_SIZE bytes, e.g. a chunk of pages-N.img). */
  addPages(pages: Buffer): PageRef[] {
    if (!Buffer.isBuffer(pages) || pages.length % PAGE_SIZE !== 0) {
      throw new StoreArgumentError(`pages must be a Buffer of a multiple of ${PAGE_SIZE} bytes`);
    }
    const refs: PageRef[] = [];
    for (let off = 0; off < pages.length; off += PAGE_SIZE) refs.push(this.addPage(pages.subarray(off, off + PAGE_SIZE)));
    return refs;
  }

  /**
   * Add pages that describe the checkpoint rather than hold its memory (its name pages):
   * stored, deduplicated and referenced like any page, but not counted in pageCount, the
   * memory the checkpoint stands for. Returns their names, in order. None may be all zeros.
   */
  addDescriptionPages(pages: Buffer): Buffer {
    const counted = this.pages;
    const refs = this.addPages(pages);
    this.pages = counted;
    return Buffer.concat(
      refs.map((ref) => {
        if (ref.kind !== 'stored') throw new StoreArgumentError('a description page of zeros cannot be stored');
        return ref.hash;
      }),
    );
  }

  /**
   * Add consecutive pages whose names the caller computed (PageHashPool.hashPages: HASH_BYTES
   * per page, ZERO_PAGE_NAME for a zero page); the names are the pages' refs, in order
   * (PageRunsBuilder.addNames). The store looks the chunk's new names up in one index read.
   * The names are trusted: they must be the pages' SHA-256. Lean on purpose (one string per
   * page, no per-page objects): a dump has ~60k pages per 230 MiB. The returned promise
   * settles when the new pages' bytes are written (not yet durable: makeDurable() does that);
   * keep `pages` unchanged until then.
   */
  addNamedPages(pages: Buffer, names: Buffer): Promise<void> {
    this.requireOpen('add pages');
    const count = pages.length / PAGE_SIZE;
    if (!Buffer.isBuffer(pages) || !Number.isInteger(count) || !Buffer.isBuffer(names) || names.length !== count * HASH_BYTES) {
      throw new StoreArgumentError(`pages must be whole ${PAGE_SIZE}-byte pages with ${HASH_BYTES} bytes of name each`);
    }
    // First pass: the names this session has not seen (each once), for one index read.
    const keys: Array<string | undefined> = new Array<string | undefined>(count);
    const unseen: number[] = [];
    const unseenKeys = new Set<string>();
    for (let i = 0; i < count; i++) {
      const at = i * HASH_BYTES;
      if (names.compare(ZERO_PAGE_NAME, 0, HASH_BYTES, at, at + HASH_BYTES) === 0) continue;
      const key = names.toString('latin1', at, at + HASH_BYTES);
      keys[i] = key;
      if (!this.locations.has(key) && !unseenKeys.has(key)) {
        unseenKeys.add(key);
        unseen.push(i);
      }
    }
    const entries = this.index.pageEntries(unseen.map((i) => names.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES)));
    const entryOf = new Map<string, PageEntry | undefined>();
    unseen.forEach((i, k) => entryOf.set(keys[i] as string, entries[k]));
    // Second pass, in order: new pages go to the pack as they come, runs of them written
    // straight from `pages` (no copy) on the thread pool.
    this.pages += count;
    const writes: Array<Promise<void>> = [];
    let run: { readonly writer: PackWriter; readonly first: number; count: number } | undefined;
    const writeRun = (): void => {
      if (run === undefined) return;
      writes.push(run.writer.appendPagesDirect(pages, run.first * PAGE_SIZE, run.count).written);
      run = undefined;
    };
    for (let i = 0; i < count; i++) {
      const key = keys[i];
      if (key === undefined) {
        this.zeroPages++;
        continue;
      }
      const seen = this.locations.get(key);
      if (seen !== undefined) {
        this.arrival.push(seen);
        continue;
      }
      const hash = names.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
      const stored = entryOf.get(key);
      if (stored !== undefined) {
        const location = stored.packId * 2 ** 32 + stored.offset / PAGE_SIZE;
        this.existing.push(stored.id);
        this.locations.set(key, location);
        this.arrival.push(location);
        continue;
      }
      const extends_ = run !== undefined && run.first + run.count === i && run.writer.length + (run.count + 1) * PAGE_SIZE <= this.settings.packSizeLimit;
      if (!extends_) {
        writeRun();
        const pack = this.packWithRoom();
        run = { writer: pack.writer as PackWriter, first: i, count: 0 };
      }
      const current = run as { readonly writer: PackWriter; readonly first: number; count: number };
      const offset = current.writer.length + current.count * PAGE_SIZE;
      current.count++;
      const packId = (this.current as SessionPack).id;
      const location = packId * 2 ** 32 + offset / PAGE_SIZE;
      this.pending.push({ hash, packId, offset });
      this.locations.set(key, location);
      this.arrival.push(location);
    }
    writeRun();
    return Promise.all(writes).then(() => undefined);
  }

  /**
   * The locations of the stored (non-zero) pages added since the last call, in order, as a
   * manifest holds them (LOCATION_BYTES each: pack id u32, page number u32).
   */
  takeLocations(): Buffer {
    const out = Buffer.alloc(this.arrival.length * LOCATION_BYTES);
    this.arrival.forEach((at, k) => {
      out.writeUInt32LE(Math.floor(at / 2 ** 32), k * LOCATION_BYTES);
      out.writeUInt32LE(at % 2 ** 32, k * LOCATION_BYTES + 4);
    });
    this.arrival = [];
    return out;
  }

  /** A page the session has not seen: reference the store's copy, or append it to the pack. */
  private addDistinct(key: string, hash: Buffer, source: Buffer, sourceOffset: number, stored: PageEntry | undefined): void {
    let packId: number;
    let offset: number;
    if (stored !== undefined) {
      this.existing.push(stored.id);
      ({ packId, offset } = stored);
    } else {
      const pack = this.packWithRoom();
      packId = pack.id;
      offset = (pack.writer as PackWriter).append(source, sourceOffset);
      this.pending.push({ hash, packId, offset });
    }
    this.locations.set(key, packId * 2 ** 32 + offset / PAGE_SIZE);
  }

  /** Make the pages durable, then index the checkpoint. The checkpoint exists once this resolves. */
  async commit(): Promise<CheckpointRecord> {
    await this.makeDurable();
    return this.publish();
  }

  /**
   * Make the pages durable (packs fsynced) and write the ingest's pending record (fsynced):
   * from then on a crash keeps the checkpoint, and the next writer indexes it. A manifest may
   * name the pages once this resolves. The writer lock stays held: call publish() next.
   */
  async makeDurable(): Promise<void> {
    this.requireOpen('commit');
    this.stateValue = 'committing';
    try {
      let newFile = false;
      for (const p of this.packs) {
        if (p.writer === undefined) continue;
        await p.writer.sync();
        newFile ||= p.writer.isNew;
      }
      if (newFile) await syncDirectory(this.layout.packsDir);
      const record: CheckpointRecord = {
        id: this.info.checkpointId,
        containerId: this.info.containerId,
        namespace: this.info.namespace,
        createdAtMs: Date.now(),
        pageCount: this.pages,
        zeroPages: this.zeroPages,
        uniquePages: this.locations.size,
        newPages: this.pending.length,
      };
      const packRows: PackRow[] = this.packs.map((p) => ({
        id: p.id,
        length: p.writer?.length ?? p.startLength,
        sealed: p.sealed,
        createdAtMs: p.createdAtMs,
      }));
      const data: IngestCommit = { packs: packRows, pages: this.pending, checkpoint: record, existingPageIds: this.existing, nextPackId: this.nextPackId };
      this.pendingRecord = { data, file: await writePendingIngest(this.layout.pendingDir, data) };
      this.stateValue = 'durable';
    } catch (err) {
      // Whatever was written stays as unreferenced bytes (or a record the next writer
      // indexes): cutting them off could lose pages a record names.
      this.closeWriters();
      this.finish('failed');
      throw err;
    }
  }

  /**
   * Index a durable ingest in one transaction; the checkpoint exists once this resolves.
   * inSlices: yield to the event loop every few thousand rows (a server's other calls go on).
   */
  async publish(options: { inSlices?: boolean } = {}): Promise<CheckpointRecord> {
    const pending = this.pendingRecord;
    if (this.stateValue !== 'durable' || pending === undefined) throw new SessionClosedError(this.info.checkpointId, this.stateValue, 'publish');
    this.stateValue = 'committing';
    const record = pending.data.checkpoint;
    try {
      try {
        if (options.inSlices === true) await this.index.commitIngestInSlices(pending.data);
        else this.index.commitIngest(pending.data);
      } catch (err) {
        if ((err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE' && this.index.checkpointExists(record.id)) {
          throw new CheckpointExistsError(record.id, this.layout.root);
        }
        throw err;
      }
      // Indexed: the record has done its job (a leftover one is dropped on replay).
      fs.rmSync(pending.file, { force: true });
      this.closeWriters();
      for (const p of this.packs) if (p.sealed) makePackReadOnly(this.layout.packFile(p.id));
      this.finish('committed');
      return record;
    } catch (err) {
      // The record stays: the next writer retries it (or drops it if the checkpoint exists).
      this.closeWriters();
      this.finish('failed');
      throw err;
    }
  }

  /**
   * Drop everything this session wrote (after makeDurable(): only let go, the record stays for
   * the next writer). Idempotent; a no-op once committed or failed.
   */
  abort(): void {
    if (this.stateValue === 'durable') {
      // The pages and the record are durable: the next writer indexes them.
      this.closeWriters();
      this.finish('failed');
      return;
    }
    if (this.stateValue !== 'open') return;
    this.stateValue = 'aborted';
    // Writes still on the thread pool must land before the pack is cut back and the lock
    // goes: a write landing after the next writer appended would overwrite its pages.
    const writers = this.packs.map((p) => p.writer).filter((w): w is PackWriter => w !== undefined);
    void Promise.all(writers.map((w) => w.settled())).then(() => {
      try {
        for (const p of this.packs) {
          const w = p.writer;
          if (w === undefined) continue;
          if (w.isNew) {
            w.close();
            fs.rmSync(w.file, { force: true });
          } else {
            w.truncate(p.startLength);
          }
        }
      } catch {
        // What is left is garbage the next ingest or gc removes.
      } finally {
        this.closeWriters();
        this.finish('aborted');
      }
    });
  }

  private requireOpen(operation: string): void {
    if (this.stateValue !== 'open') throw new SessionClosedError(this.info.checkpointId, this.stateValue, operation);
  }

  private finish(state: IngestState): void {
    this.stateValue = state;
    this.lock.release();
    this.onDone(this);
  }

  /** Close every pack file; never throws (after a commit, a close error changes nothing). */
  private closeWriters(): void {
    for (const p of this.packs) {
      try {
        p.writer?.close();
      } catch {
        /* the bytes were fsynced, or are garbage */
      }
    }
  }

  /** Continue the store's open pack, or seal it if this checkpoint should start a fresh one. */
  private adoptOpenPack(): void {
    const open = this.index.openPack();
    if (open === undefined) return;
    const entry: SessionPack = { id: open.id, createdAtMs: open.createdAtMs, startLength: open.length, writer: undefined, sealed: false };
    this.packs.push(entry);
    try {
      // Reopening also cuts off bytes a crashed ingest left after the committed length.
      entry.writer = PackWriter.reopen(
        this.layout.packFile(open.id),
        open.id,
        this.index.storeId,
        open.length,
        this.settings.writeBufferBytes,
      );
    } catch (err) {
      // A damaged open pack is never appended to again (verify reports it); ingest goes on.
      if (!(err instanceof PackCorruptError)) throw err;
      entry.sealed = true;
      return;
    }
    const expectedBytes = (this.info.expectedPages ?? 0) * PAGE_SIZE;
    if (open.length > PACK_HEADER_SIZE && open.length + expectedBytes > this.settings.packSizeLimit) {
      entry.writer.close();
      entry.writer = undefined;
      entry.sealed = true;
      return;
    }
    this.current = entry;
  }

  /** The pack the next new page goes to, rolling over to a new pack when this one is full. */
  private packWithRoom(): SessionPack {
    const cur = this.current;
    if (cur?.writer !== undefined && cur.writer.length + PAGE_SIZE <= this.settings.packSizeLimit) return cur;
    if (cur !== undefined) {
      cur.writer?.flush();
      cur.sealed = true;
    }
    const id = this.nextPackId++;
    const createdAtMs = Date.now();
    const writer = PackWriter.create(
      this.layout.packFile(id),
      { packId: id, storeId: this.index.storeId, createdAtMs },
      this.settings.writeBufferBytes,
    );
    const entry: SessionPack = { id, createdAtMs, startLength: 0, writer, sealed: false };
    this.packs.push(entry);
    this.current = entry;
    return entry;
  }
}
