// The host-wide page store (DESIGN.md, "Store pages by content"): 4 KiB pages kept once, by
// content, in append-only pack files, with an SQLite index of pages, packs, checkpoints and
// the pages each checkpoint references. Zero pages are never stored.
//
// Promises kept, whatever instant a process is killed at:
// - The index names only durable pages: packs are fsynced before the transaction that
//   records their pages commits (ingest-session.ts), and a checkpoint exists from that commit.
// - gc never deletes a page a kept checkpoint references, and never deletes or rewrites a
//   pinned pack (a foreign key from pins makes the index refuse to drop its row).
// - A manifest written after commit() resolves names only durable pages.
// - A sealed pack never changes; only the one open pack is appended to.
// Concurrency: ingests, seals and gc take the writer lock (one at a time, across processes);
// gc and verify exclude each other through the gc lock; reads take no lock.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PAGE_SIZE } from '../criu/page-size';
import { syncDirectorySync } from './durable-fs';
import { FileLock } from './file-lock';
import { IngestInfo, IngestSession } from './ingest-session';
import { PACK_HEADER_SIZE } from './pack-header';
import { PackReader } from './pack-reader';
import { DEFAULT_WRITE_BUFFER_BYTES, PackWriter, makePackReadOnly } from './pack-writer';
import { CheckpointRecord, PackPin, PageIndex } from './page-index';
import type { HashPriority, PageHashPool } from './page-hash-pool';
import { OutputSegment, PageReader } from './page-reader';
import { PendingIngestError, decodePendingIngest, listPendingIngests, pendingFile } from './pending-ingest';
import { LOCATION_BYTES, PageManifest, StoredManifest, isPagedManifest } from './page-manifest';
import { HASH_BYTES, PageRef, storedPageRef } from './page-ref';
import { withNamesFromPages } from './name-pages';
import { PageRange, pageRefsOf, selectPages } from './page-runs';
import { GcOptions, GcReport, collectGarbage } from './store-gc';
import {
  CheckpointExistsError,
  CheckpointNotFoundError,
  PackCorruptError,
  PackNotFoundError,
  PageErrorContext,
  StoreArgumentError,
  StoreClosedError,
  WrongStoreError,
} from './store-error';
import { StoreLayout, defaultStoreRoot } from './store-layout';
import { VerifyProgress, VerifyReport, verifyStore } from './store-verify';

export const DEFAULT_PACK_SIZE_LIMIT = 256 * 1024 * 1024;
export const DEFAULT_LOCK_TIMEOUT_MS = 10 * 60 * 1000;

export interface PageStoreOptions {
  /** A pack is sealed once the next page would take it past this size (default 256 MiB). */
  readonly packSizeLimit?: number;
  /** Pack writes are buffered up to this many bytes (default 8 MiB). */
  readonly writeBufferBytes?: number;
  /** How long beginIngest, sealOpenPack, gc and verify wait for another process's lock (default 10 min). */
  readonly lockTimeoutMs?: number;
}

export interface LockWaitOptions {
  /** Overrides PageStoreOptions.lockTimeoutMs for this call. */
  readonly lockTimeoutMs?: number;
}

export interface StoreStats {
  readonly checkpoints: number;
  /** Distinct pages stored. */
  readonly pages: number;
  readonly packs: number;
  readonly sealedPacks: number;
  readonly pinnedPacks: number;
  /** Zero pages the kept checkpoints contain (never stored). */
  readonly zeroPagesReferenced: number;
  /** Bytes the kept checkpoints stand for: every page, zero pages and repeats included. */
  readonly logicalBytes: number;
  /** Bytes of live pages (pages * PAGE_SIZE). */
  readonly storedBytes: number;
  /** Bytes of pack files on disk (headers, dead pages and crash leftovers included). */
  readonly physicalBytes: number;
  /** logicalBytes / physicalBytes; null while nothing is on disk. */
  readonly dedupRatio: number | null;
}

/** Part of a pages file, and where its pages go in the output (back to back from 0 when absent). */
export interface PageSelection {
  readonly ranges: readonly PageRange[];
  readonly segments?: readonly OutputSegment[];
  /** 'background': the hash workers serve every other job first. */
  readonly priority?: HashPriority;
}

/** Where a page lives now (gc compaction may move it; pin the pack before mapping it). */
export interface PagePlace {
  readonly packId: number;
  readonly offset: number;
  readonly file: string;
  readonly sealed: boolean;
}

function positiveInteger(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) throw new StoreArgumentError(`${name} must be an integer >= ${min}, got ${value}`);
  return value;
}

function checkText(name: string, value: unknown, maxBytes: number): string {
  if (typeof value !== 'string' || value.length === 0 || Buffer.byteLength(value) > maxBytes || value.includes('\0')) {
    throw new StoreArgumentError(`${name} must be a non-empty string of at most ${maxBytes} bytes without NUL, got ${JSON.stringify(value)}`);
  }
  return value;
}

export class PageStore {
  readonly layout: StoreLayout;
  private readonly index: PageIndex;
  private readonly packReader: PackReader;
  private readonly pageReader: PageReader;
  private readonly packSizeLimit: number;
  private readonly writeBufferBytes: number;
  private readonly lockTimeoutMs: number;
  private readonly sessions = new Set<IngestSession>();
  private closed = false;

  private constructor(layout: StoreLayout, index: PageIndex, options: PageStoreOptions) {
    this.layout = layout;
    this.index = index;
    this.packSizeLimit = positiveInteger('packSizeLimit', options.packSizeLimit, DEFAULT_PACK_SIZE_LIMIT, PACK_HEADER_SIZE + PAGE_SIZE);
    this.writeBufferBytes = positiveInteger('writeBufferBytes', options.writeBufferBytes, DEFAULT_WRITE_BUFFER_BYTES, PAGE_SIZE);
    this.lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    this.packReader = new PackReader(layout, index.storeId);
    this.pageReader = new PageReader(index, this.packReader, layout.root);
  }

  /**
   * Open the store at root (default $PAGESHARE_ROOT or /var/lib/pageshare), creating its
   * layout if needed. Several processes may open one store at once.
   */
  static open(root: string = defaultStoreRoot(), options: PageStoreOptions = {}): PageStore {
    const layout = new StoreLayout(root);
    const fresh = !fs.existsSync(layout.packsDir);
    for (const dir of [layout.root, layout.packsDir, layout.tmpDir, layout.pendingDir, layout.locksDir]) fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    if (fresh) {
      syncDirectorySync(path.dirname(layout.root));
      syncDirectorySync(layout.root);
    }
    const index = PageIndex.open(layout.indexFile);
    let store: PageStore;
    try {
      store = new PageStore(layout, index, options);
    } catch (err) {
      index.close();
      throw err;
    }
    // Records a dead writer left: index them now if no live writer holds the lock (one that
    // does will, before it touches a pack).
    if (listPendingIngests(layout.pendingDir).length > 0) {
      const lock = FileLock.tryAcquire(layout.writerLock, { exclusive: true, holder: 'replay of pending ingests' });
      if (lock !== undefined) {
        try {
          store.replayPendingIngests();
        } finally {
          lock.release();
        }
      }
    }
    return store;
  }

  get root(): string {
    return this.layout.root;
  }

  /** This store's identity (manifests record it, so a restore can tell it has the right store). */
  get storeId(): string {
    return this.index.storeId;
  }

  // ---- ingest --------------------------------------------------------------------------

  /**
   * Start ingesting a checkpoint's pages. Waits (without blocking the event loop) for any
   * other ingest, seal or gc to finish. The session holds the store's writer lock until
   * commit() or abort(): always call one of them.
   */
  async beginIngest(info: IngestInfo, wait: LockWaitOptions = {}): Promise<IngestSession> {
    this.requireOpen();
    checkText('checkpointId', info.checkpointId, 1024);
    checkText('containerId', info.containerId, 1024);
    checkText('namespace', info.namespace, 1024);
    if (info.expectedPages !== undefined) positiveInteger('expectedPages', info.expectedPages, 0, 0);
    if (this.index.checkpointExists(info.checkpointId)) throw new CheckpointExistsError(info.checkpointId, this.root);
    const lock = await this.lock(this.layout.writerLock, true, `ingest of checkpoint ${info.checkpointId}`, wait);
    try {
      this.replayPendingIngests();
      const session = new IngestSession(
        this.index,
        this.layout,
        lock,
        info,
        { packSizeLimit: this.packSizeLimit, writeBufferBytes: this.writeBufferBytes },
        (s) => this.sessions.delete(s),
      );
      this.sessions.add(session);
      return session;
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  /**
   * Seal the open pack now (it will never be appended to again), e.g. before mapping its
   * pages into a process. Returns its id, or undefined if there was no open pack.
   */
  async sealOpenPack(wait: LockWaitOptions = {}): Promise<number | undefined> {
    this.requireOpen();
    const lock = await this.lock(this.layout.writerLock, true, 'seal', wait);
    try {
      this.replayPendingIngests();
      const open = this.index.openPack();
      if (open === undefined) return undefined;
      const file = this.layout.packFile(open.id);
      try {
        // Cuts off any crash garbage after the committed pages, so the sealed file is exact.
        const writer = PackWriter.reopen(file, open.id, this.storeId, open.length, PAGE_SIZE);
        try {
          await writer.sync();
        } finally {
          writer.close();
        }
      } catch (err) {
        if (!(err instanceof PackCorruptError)) throw err;
      }
      this.index.sealPack(open.id, open.length);
      makePackReadOnly(file);
      return open.id;
    } finally {
      lock.release();
    }
  }

  // ---- reads ---------------------------------------------------------------------------

  /** One page, checked against its name (PageMissingError, PageCorruptError). */
  readPage(hash: Buffer, ctx: PageErrorContext = {}): Buffer {
    this.requireOpen();
    return this.pageReader.readPage(hash, ctx);
  }

  /**
   * Pages in order as one buffer (refs.length * PAGE_SIZE bytes; zero refs are zero-filled),
   * each checked against its name. Pages adjacent in a pack are read together. Pass the
   * checkpoint id so that errors name it.
   */
  readPages(refs: readonly PageRef[], ctx: PageErrorContext = {}): Buffer {
    this.requireOpen();
    return this.pageReader.readPages(refs, ctx);
  }

  /**
   * The manifest with every stored page's name: a paged manifest's name pages are read from
   * the store and verified (errors name the checkpoint). Throws WrongStoreError if it
   * belongs to another store.
   */
  resolveManifest(manifest: StoredManifest): PageManifest {
    this.requireOpen();
    if (manifest.storeId !== this.storeId) throw new WrongStoreError(manifest.checkpointId, manifest.storeId, this.storeId, this.root);
    if (!isPagedManifest(manifest)) return manifest;
    const refs: PageRef[] = [];
    for (let at = 0; at < manifest.namePages.length; at += HASH_BYTES) refs.push(storedPageRef(manifest.namePages.subarray(at, at + HASH_BYTES)));
    return withNamesFromPages(manifest, this.readPages(refs, { checkpointId: manifest.checkpointId }));
  }

  /**
   * What one pages file of a checkpoint held (e.g. "pages-1.img"), rebuilt from its manifest,
   * every page verified; errors name the checkpoint. Throws WrongStoreError if the manifest
   * belongs to another store.
   */
  readManifestPages(manifest: PageManifest, fileName: string): Buffer {
    this.requireOpen();
    if (manifest.storeId !== this.storeId) throw new WrongStoreError(manifest.checkpointId, manifest.storeId, this.storeId, this.root);
    const file = manifest.files.find((f) => f.name === fileName);
    if (file === undefined) throw new StoreArgumentError(`the manifest of checkpoint ${manifest.checkpointId} has no pages file ${fileName}`);
    return this.pageReader.readPages([...pageRefsOf(file.runs)], { checkpointId: manifest.checkpointId });
  }

  /**
   * readManifestPages() written straight into `out` (a file created or replaced, or an open
   * descriptor), on the hash pool: the way to rebuild a large pages file for a restore. With
   * a selection, only those pages, placed where its segments say.
   */
  async writeManifestPages(manifest: PageManifest, fileName: string, out: string | number, pool: PageHashPool, selection?: PageSelection): Promise<void> {
    this.requireOpen();
    if (manifest.storeId !== this.storeId) throw new WrongStoreError(manifest.checkpointId, manifest.storeId, this.storeId, this.root);
    const file = manifest.files.find((f) => f.name === fileName);
    if (file === undefined) throw new StoreArgumentError(`the manifest of checkpoint ${manifest.checkpointId} has no pages file ${fileName}`);
    // Locations are trusted only while the store keeps the checkpoint (its pages then exist);
    // otherwise every page is looked up, and one gc removed fails the restore, named.
    const allLocations = file.locations !== undefined && this.index.checkpointExists(manifest.checkpointId) ? file.locations : undefined;
    const { runs, locations } = selection ? selectPages(file.runs, selection.ranges, allLocations, LOCATION_BYTES) : { runs: file.runs, locations: allLocations };
    const fd = typeof out === 'number' ? out : fs.openSync(out, 'w');
    try {
      await this.pageReader.writeRuns(runs, fd, pool, { checkpointId: manifest.checkpointId }, locations, selection?.segments, selection?.priority);
    } finally {
      if (typeof out !== 'number') fs.closeSync(fd);
    }
  }

  hasPage(hash: Buffer): boolean {
    this.requireOpen();
    return this.index.hasPage(hash);
  }

  /** Where a page is now, or undefined if the store does not have it. */
  locatePage(hash: Buffer): PagePlace | undefined {
    this.requireOpen();
    const loc = this.index.lookupPage(hash);
    if (loc === undefined) return undefined;
    const pack = this.index.pack(loc.packId);
    return { packId: loc.packId, offset: loc.offset, file: this.layout.packFile(loc.packId), sealed: pack?.sealed ?? false };
  }

  // ---- checkpoints ---------------------------------------------------------------------

  listCheckpoints(): CheckpointRecord[] {
    this.requireOpen();
    return this.index.listCheckpoints();
  }

  getCheckpoint(id: string): CheckpointRecord {
    this.requireOpen();
    const record = this.index.getCheckpoint(id);
    if (record === undefined) throw new CheckpointNotFoundError(id, this.root);
    return record;
  }

  /** Stop keeping a checkpoint; gc then frees the pages no other checkpoint references. */
  removeCheckpoint(id: string): void {
    this.requireOpen();
    // A record left by a crash after its checkpoint was indexed must not bring it back.
    fs.rmSync(pendingFile(this.layout.pendingDir, id), { force: true });
    if (!this.index.removeCheckpoint(id)) throw new CheckpointNotFoundError(id, this.root);
  }

  // ---- pins ----------------------------------------------------------------------------

  /**
   * Keep a pack's file as it is, whatever gc decides, until unpinned (the hook for mapping
   * pack pages into running containers). owner names the user, e.g. "container:ns/id".
   * Throws PackNotFoundError if gc has removed the pack: look the page up again.
   */
  pinPack(packId: number, owner: string): void {
    this.requireOpen();
    checkText('owner', owner, 1024);
    if (!this.index.pin(packId, owner, Date.now())) throw new PackNotFoundError(packId, this.root);
  }

  /** Drop an owner's pins (of one pack, or all of them). Returns how many were dropped. */
  unpinPacks(owner: string, packId?: number): number {
    this.requireOpen();
    return this.index.unpin(owner, packId);
  }

  listPins(): PackPin[] {
    this.requireOpen();
    return this.index.listPins();
  }

  // ---- maintenance ---------------------------------------------------------------------

  stats(): StoreStats {
    this.requireOpen();
    const t = this.index.totals();
    let physicalBytes = 0;
    for (const name of fs.readdirSync(this.layout.packsDir)) {
      if (StoreLayout.packIdOf(name) === undefined) continue;
      try {
        physicalBytes += fs.statSync(path.join(this.layout.packsDir, name)).size;
      } catch {
        /* removed meanwhile */
      }
    }
    const logicalBytes = t.logicalPages * PAGE_SIZE;
    return {
      checkpoints: t.checkpoints,
      pages: t.pages,
      packs: t.packs,
      sealedPacks: t.sealedPacks,
      pinnedPacks: t.pinnedPacks,
      zeroPagesReferenced: t.zeroPagesReferenced,
      logicalBytes,
      storedBytes: t.pages * PAGE_SIZE,
      physicalBytes,
      dedupRatio: physicalBytes > 0 ? logicalBytes / physicalBytes : null,
    };
  }

  /** Re-hash every page and check packs and references (see store-verify.ts). */
  async verify(onProgress?: (progress: VerifyProgress) => void, wait: LockWaitOptions = {}): Promise<VerifyReport> {
    this.requireOpen();
    const lock = await this.lock(this.layout.gcLock, false, 'verify', wait);
    // A connection of its own: verify reads one snapshot while this handle goes on working.
    const snapshot = PageIndex.open(this.layout.indexFile);
    try {
      return await verifyStore(this.layout, snapshot, onProgress);
    } finally {
      snapshot.close();
      lock.release();
    }
  }

  /** Free what no kept checkpoint needs (see store-gc.ts). */
  async gc(options: GcOptions = {}, wait: LockWaitOptions = {}): Promise<GcReport> {
    this.requireOpen();
    const gcLock = await this.lock(this.layout.gcLock, true, 'gc', wait);
    try {
      const writerLock = await this.lock(this.layout.writerLock, true, 'gc', wait);
      try {
        this.replayPendingIngests();
        this.packReader.close();
        return await collectGarbage(
          { layout: this.layout, index: this.index, packSizeLimit: this.packSizeLimit, writeBufferBytes: this.writeBufferBytes },
          options,
        );
      } finally {
        writerLock.release();
      }
    } finally {
      gcLock.release();
    }
  }

  /**
   * Wait until the store has indexed a checkpoint whose ingest is still being published (by
   * this or another process), or index it if its writer died. Returns at once for a
   * checkpoint the index has, or one with no pending record.
   */
  async awaitIndexed(checkpointId: string, wait: LockWaitOptions = {}): Promise<void> {
    this.requireOpen();
    if (this.index.checkpointExists(checkpointId) || !fs.existsSync(pendingFile(this.layout.pendingDir, checkpointId))) return;
    await this.replayUnderWriterLock(`restore of checkpoint ${checkpointId}`, wait);
  }

  /**
   * Wait until every ingest made durable so far is indexed (a checkpoint is listed from then
   * on): a live writer finishes its own, a dead one's is indexed here.
   */
  async awaitPendingIngests(wait: LockWaitOptions = {}): Promise<void> {
    this.requireOpen();
    if (listPendingIngests(this.layout.pendingDir).length === 0) return;
    await this.replayUnderWriterLock('indexing pending ingests', wait);
  }

  /** Waits for the writer lock (a live writer indexes its own record before it lets go), then replays what is left. */
  private async replayUnderWriterLock(holder: string, wait: LockWaitOptions): Promise<void> {
    const lock = await this.lock(this.layout.writerLock, true, holder, wait);
    try {
      this.replayPendingIngests();
    } finally {
      lock.release();
    }
  }

  /**
   * Index every pending record (the caller holds the writer lock). A record whose checkpoint
   * the index has is only removed; an unreadable one is renamed *.unreadable and left.
   */
  private replayPendingIngests(): void {
    for (const file of listPendingIngests(this.layout.pendingDir)) {
      let data;
      try {
        data = decodePendingIngest(fs.readFileSync(file), file);
      } catch (err) {
        if (!(err instanceof PendingIngestError) && !(err instanceof SyntaxError)) throw err;
        fs.renameSync(file, `${file}.unreadable`);
        continue;
      }
      if (!this.index.checkpointExists(data.checkpoint.id)) {
        this.index.commitIngest(data);
        for (const p of data.packs) if (p.sealed) makePackReadOnly(this.layout.packFile(p.id));
      }
      fs.rmSync(file, { force: true });
    }
  }

  /** Abort open ingests and close the index. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.sessions]) s.abort();
    this.packReader.close();
    this.index.close();
  }

  private requireOpen(): void {
    if (this.closed) throw new StoreClosedError(this.root);
  }

  /** Take a store lock; fails if this handle is closed while waiting. */
  private async lock(file: string, exclusive: boolean, holder: string, wait: LockWaitOptions): Promise<FileLock> {
    const lock = await FileLock.acquire(file, { exclusive, timeoutMs: wait.lockTimeoutMs ?? this.lockTimeoutMs, holder });
    if (this.closed) {
      lock.release();
      throw new StoreClosedError(this.root);
    }
    return lock;
  }
}
