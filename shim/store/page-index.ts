// The page store's index: which pack and offset hold each page, which packs are sealed,
// which checkpoints are kept and which pages each one needs, which packs are pinned.
//
// Why SQLite (better-sqlite3) and not LMDB: several shims open the store at once, and SQLite
// in WAL mode gives multi-process readers that never block, one writer at a time with a busy
// timeout, and atomic multi-table transactions that are durable at COMMIT (synchronous=FULL).
// gc and verify are joins (pages no kept checkpoint references, references with no page)
// that SQL states in one line, and foreign keys make "never drop a pinned pack" and "never
// drop a pack that holds pages" hold even if gc had a bug. The cost: with no
// prebuilt binary reachable, npm compiles better-sqlite3 from source (~2 minutes on 2 cores,
// the toolchain native/ already needs); lmdb-js would install prebuilt, but has no query
// language, and its asynchronous, batched writes (commit and flush reported apart) make the
// "pack durable, then index" ordering harder to hold.
import Database from 'better-sqlite3';
import * as crypto from 'node:crypto';
import { PAGE_SIZE } from '../criu/page-size';
import { STORE_ID_BYTES, isStoreId } from './pack-header';
import { IndexUnsupportedError } from './store-error';

const SCHEMA_VERSION = 1;
const BUSY_TIMEOUT_MS = 30_000;
/** Rows commitIngestInSlices() writes between two yields to the event loop (a few ms). */
const COMMIT_SLICE_ROWS = 1024;

const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE packs (
  id INTEGER PRIMARY KEY,
  length INTEGER NOT NULL,               -- end of the last committed page; later bytes are garbage
  sealed INTEGER NOT NULL DEFAULT 0,     -- 1: never appended again (may be mapped)
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE pages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a stale reference cannot alias a new page
  hash BLOB NOT NULL UNIQUE,
  pack INTEGER NOT NULL REFERENCES packs (id),
  pack_offset INTEGER NOT NULL
) STRICT;
CREATE INDEX pages_by_pack ON pages (pack, pack_offset);
CREATE TABLE checkpoints (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  container_id TEXT NOT NULL,
  namespace TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  page_count INTEGER NOT NULL,           -- every page, zero pages and repeats included
  zero_pages INTEGER NOT NULL,
  unique_pages INTEGER NOT NULL,         -- distinct non-zero pages (rows in refs)
  new_pages INTEGER NOT NULL             -- pages this checkpoint added to the store
) STRICT;
-- A checkpoint's distinct pages, by page id: small rows, appended in id order. No index from
-- page to checkpoints (and so no foreign key to pages, which would need one): it would double
-- the index work per ingested page. gc finds unreferenced pages in one anti-join instead,
-- and verify checks that every reference has its page.
CREATE TABLE refs (
  checkpoint INTEGER NOT NULL REFERENCES checkpoints (seq) ON DELETE CASCADE,
  page INTEGER NOT NULL,
  PRIMARY KEY (checkpoint, page)
) STRICT, WITHOUT ROWID;
CREATE TABLE pins (
  pack INTEGER NOT NULL REFERENCES packs (id),
  owner TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (pack, owner)
) STRICT;
`;

export interface PageLocation {
  readonly packId: number;
  readonly offset: number;
}

export interface PageEntry extends PageLocation {
  readonly id: number;
}

export interface PackRow {
  readonly id: number;
  /** File offset just past the last committed page. */
  readonly length: number;
  readonly sealed: boolean;
  readonly createdAtMs: number;
}

export interface CheckpointRecord {
  readonly id: string;
  readonly containerId: string;
  readonly namespace: string;
  readonly createdAtMs: number;
  /** Pages in the checkpoint, zero pages and repeats included. */
  readonly pageCount: number;
  readonly zeroPages: number;
  /** Distinct non-zero pages. */
  readonly uniquePages: number;
  /** Pages this checkpoint's ingest added to the store (the rest were already there). */
  readonly newPages: number;
}

export interface PackPin {
  readonly packId: number;
  readonly owner: string;
  readonly createdAtMs: number;
}

export interface NewPage {
  readonly hash: Buffer;
  readonly packId: number;
  readonly offset: number;
}

export interface PageMove {
  /** pages.id */
  readonly id: number;
  readonly packId: number;
  readonly offset: number;
}

export interface IndexedPage {
  readonly id: number;
  readonly hash: Buffer;
  readonly offset: number;
}

/** Everything an ingest makes visible, in one transaction. */
export interface IngestCommit {
  readonly packs: readonly PackRow[];
  readonly pages: readonly NewPage[];
  readonly checkpoint: CheckpointRecord;
  /** Ids of the pages already in the store that the checkpoint references (new pages are added). */
  readonly existingPageIds: readonly number[];
  readonly nextPackId: number;
}

export interface GarbageCollected {
  readonly pagesRemoved: number;
  /** Pack rows deleted because no live page was left (their files are to be unlinked). */
  readonly packsRemoved: readonly PackRow[];
  /** Packs with no live page that stay because they are pinned. */
  readonly pinnedKept: readonly number[];
}

export interface PackSwitch {
  /** Sealed packs holding the copies (already durable on disk). */
  readonly newPacks: readonly PackRow[];
  readonly moves: readonly PageMove[];
  /** The packs copied from. */
  readonly oldPacks: readonly number[];
  readonly nextPackId: number;
}

export interface IndexTotals {
  readonly checkpoints: number;
  readonly pages: number;
  readonly packs: number;
  readonly sealedPacks: number;
  readonly pinnedPacks: number;
  readonly zeroPagesReferenced: number;
  readonly logicalPages: number;
}

interface CheckpointRow {
  id: string;
  container_id: string;
  namespace: string;
  created_at: number;
  page_count: number;
  zero_pages: number;
  unique_pages: number;
  new_pages: number;
}

interface PackDbRow {
  id: number;
  length: number;
  sealed: number;
  created_at: number;
}

function toCheckpoint(row: CheckpointRow): CheckpointRecord {
  return {
    id: row.id,
    containerId: row.container_id,
    namespace: row.namespace,
    createdAtMs: row.created_at,
    pageCount: row.page_count,
    zeroPages: row.zero_pages,
    uniquePages: row.unique_pages,
    newPages: row.new_pages,
  };
}

function toPack(row: PackDbRow): PackRow {
  return { id: row.id, length: row.length, sealed: row.sealed !== 0, createdAtMs: row.created_at };
}

const CHECKPOINT_COLUMNS = 'id, container_id, namespace, created_at, page_count, zero_pages, unique_pages, new_pages';

export class PageIndex {
  private readonly db: Database.Database;
  readonly storeId: string;

  private readonly stmtLookup: Database.Statement<[Buffer], { pack: number; pack_offset: number }>;
  private readonly stmtPageId: Database.Statement<[Buffer], number>;
  private readonly stmtEntry: Database.Statement<[Buffer], [number, number, number]>;

  private constructor(
    readonly file: string,
    db: Database.Database,
  ) {
    this.db = db;
    this.storeId = this.meta('store_id');
    this.stmtLookup = db.prepare('SELECT pack, pack_offset FROM pages WHERE hash = ?');
    this.stmtPageId = db.prepare<[Buffer], number>('SELECT id FROM pages WHERE hash = ?').pluck();
    this.stmtEntry = db.prepare<[Buffer], [number, number, number]>('SELECT id, pack, pack_offset FROM pages WHERE hash = ?').raw();
  }

  /** Open (creating if needed) the index at file. Safe when several processes race to create it. */
  static open(file: string): PageIndex {
    let db: Database.Database;
    try {
      db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
    } catch (err) {
      throw new IndexUnsupportedError(file, (err as Error).message);
    }
    try {
      db.pragma('journal_mode = WAL');
      // FULL: in WAL mode, NORMAL may lose the last commits on power loss; a commit here is
      // the promise that a checkpoint's pages are durable.
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      PageIndex.migrate(db, file);
      return new PageIndex(file, db);
    } catch (err) {
      db.close();
      if (err instanceof IndexUnsupportedError) throw err;
      throw new IndexUnsupportedError(file, (err as Error).message);
    }
  }

  private static migrate(db: Database.Database, file: string): void {
    // A plain read first: opening a current index takes no write lock, so it never waits on
    // (or blocks the event loop behind) a writer, e.g. an ingest being indexed in slices.
    if ((db.pragma('user_version', { simple: true }) as number) !== SCHEMA_VERSION) PageIndex.createSchema(db, file);
    PageIndex.checkMeta(db, file);
  }

  private static createSchema(db: Database.Database, file: string): void {
    db.transaction(() => {
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version === SCHEMA_VERSION) return;
      if (version !== 0) {
        throw new IndexUnsupportedError(file, `schema version ${version}, this pageshare knows ${SCHEMA_VERSION}: use a newer pageshare`);
      }
      const tables = db.prepare<[], number>("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").pluck().get();
      if (tables !== 0) throw new IndexUnsupportedError(file, 'it holds tables but no pageshare schema version');
      db.exec(SCHEMA);
      const insert = db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?)');
      insert.run('store_id', crypto.randomBytes(STORE_ID_BYTES).toString('hex'));
      insert.run('page_size', String(PAGE_SIZE));
      insert.run('next_pack_id', '1');
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }).immediate();
  }

  private static checkMeta(db: Database.Database, file: string): void {
    const pageSize = db.prepare<[], string>("SELECT value FROM meta WHERE key = 'page_size'").pluck().get();
    if (pageSize !== String(PAGE_SIZE)) throw new IndexUnsupportedError(file, `page size ${pageSize}, expected ${PAGE_SIZE}`);
    const storeId = db.prepare<[], string>("SELECT value FROM meta WHERE key = 'store_id'").pluck().get();
    if (storeId === undefined || !isStoreId(storeId)) throw new IndexUnsupportedError(file, 'no valid store id');
  }

  private meta(key: string): string {
    const value = this.db.prepare<[string], string>('SELECT value FROM meta WHERE key = ?').pluck().get(key);
    if (value === undefined) throw new IndexUnsupportedError(this.file, `meta key ${key} is missing`);
    return value;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  // ---- pages ---------------------------------------------------------------------------

  lookupPage(hash: Buffer): PageLocation | undefined {
    const row = this.stmtLookup.get(hash);
    return row === undefined ? undefined : { packId: row.pack, offset: row.pack_offset };
  }

  hasPage(hash: Buffer): boolean {
    return this.stmtPageId.get(hash) !== undefined;
  }

  /** The page's id, or undefined if the store does not have it. */
  pageId(hash: Buffer): number | undefined {
    return this.stmtPageId.get(hash);
  }

  /** Id and place of many pages (undefined where the store has none), in one read transaction. */
  pageEntries(hashes: readonly Buffer[]): Array<PageEntry | undefined> {
    if (hashes.length === 0) return [];
    return this.db
      .transaction(() =>
        hashes.map((h) => {
          const row = this.stmtEntry.get(h);
          return row === undefined ? undefined : { id: row[0], packId: row[1], offset: row[2] };
        }),
      )
      .deferred();
  }

  /** Locations of many pages from one consistent snapshot of the index. */
  lookupPages(hashes: readonly Buffer[]): Array<PageLocation | undefined> {
    return this.db.transaction(() => hashes.map((h) => this.lookupPage(h))).deferred();
  }

  /** Live pages of a pack in file order. */
  pagesOfPack(packId: number): IndexedPage[] {
    return this.db
      .prepare<[number], { id: number; hash: Buffer; pack_offset: number }>(
        'SELECT id, hash, pack_offset FROM pages WHERE pack = ? ORDER BY pack_offset',
      )
      .all(packId)
      .map((r) => ({ id: r.id, hash: r.hash, offset: r.pack_offset }));
  }

  /** Live page count per pack. */
  livePagesPerPack(): Map<number, number> {
    const rows = this.db.prepare<[], { pack: number; n: number }>('SELECT pack, count(*) AS n FROM pages GROUP BY pack').all();
    return new Map(rows.map((r) => [r.pack, r.n]));
  }

  /** Pages whose pack has no row (the index contradicts itself). */
  pagesWithoutPack(): Array<{ hash: Buffer; packId: number; offset: number }> {
    return this.db
      .prepare<[], { hash: Buffer; pack: number; pack_offset: number }>(
        'SELECT hash, pack, pack_offset FROM pages WHERE pack NOT IN (SELECT id FROM packs)',
      )
      .all()
      .map((r) => ({ hash: r.hash, packId: r.pack, offset: r.pack_offset }));
  }

  /** References whose page is not in the index. */
  danglingRefs(): Array<{ checkpointId: string; pageId: number }> {
    return this.db
      .prepare<[], { id: string; page: number }>(
        `SELECT c.id, r.page FROM refs r JOIN checkpoints c ON c.seq = r.checkpoint
         WHERE r.page NOT IN (SELECT id FROM pages) ORDER BY c.seq, r.page`,
      )
      .all()
      .map((r) => ({ checkpointId: r.id, pageId: r.page }));
  }

  /** For each page name, the kept checkpoints that reference it (one pass over refs). */
  checkpointsReferencing(hashes: readonly Buffer[]): Map<string, string[]> {
    const out = new Map<string, string[]>();
    if (hashes.length === 0) return out;
    const rows = this.db
      .prepare<[string], { hash: Buffer; id: string }>(
        `SELECT p.hash, c.id FROM refs r JOIN checkpoints c ON c.seq = r.checkpoint JOIN pages p ON p.id = r.page
         WHERE r.page IN (SELECT id FROM pages WHERE hash IN (SELECT unhex(value) FROM json_each(?)))
         ORDER BY c.seq`,
      )
      .all(JSON.stringify(hashes.map((h) => h.toString('hex'))));
    for (const r of rows) {
      const key = r.hash.toString('hex');
      const list = out.get(key) ?? [];
      list.push(r.id);
      out.set(key, list);
    }
    return out;
  }

  // ---- packs ---------------------------------------------------------------------------

  packs(): PackRow[] {
    return this.db.prepare<[], PackDbRow>('SELECT id, length, sealed, created_at FROM packs ORDER BY id').all().map(toPack);
  }

  pack(packId: number): PackRow | undefined {
    const row = this.db.prepare<[number], PackDbRow>('SELECT id, length, sealed, created_at FROM packs WHERE id = ?').get(packId);
    return row === undefined ? undefined : toPack(row);
  }

  /** The pack new pages are appended to (the newest unsealed one), if any. */
  openPack(): PackRow | undefined {
    const row = this.db
      .prepare<[], PackDbRow>('SELECT id, length, sealed, created_at FROM packs WHERE sealed = 0 ORDER BY id DESC LIMIT 1')
      .get();
    return row === undefined ? undefined : toPack(row);
  }

  /** The lowest id no pack ever had (ids are never reused). */
  nextPackId(): number {
    return Number(this.meta('next_pack_id'));
  }

  sealPack(packId: number, length: number): void {
    this.db.prepare<[number, number]>('UPDATE packs SET sealed = 1, length = ? WHERE id = ?').run(length, packId);
  }

  // ---- ingest --------------------------------------------------------------------------

  checkpointExists(id: string): boolean {
    return this.db.prepare<[string], number>('SELECT 1 FROM checkpoints WHERE id = ?').pluck().get(id) !== undefined;
  }

  /** Make an ingest visible: its packs, new pages, checkpoint and references, atomically. */
  commitIngest(c: IngestCommit): void {
    this.db
      .transaction(() => {
        for (const _ of this.ingestRows(c)) {
          /* every row written */
        }
      })
      .immediate();
  }

  /**
   * commitIngest() in one transaction that yields to the event loop every few hundred rows,
   * so that a server goes on answering calls meanwhile. Nothing else may use this
   * connection until it resolves (the transaction is open across the yields).
   */
  async commitIngestInSlices(c: IngestCommit): Promise<void> {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      let rows = 0;
      for (const _ of this.ingestRows(c)) {
        if (++rows % COMMIT_SLICE_ROWS === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      this.db.exec('COMMIT');
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
  }

  /** Writes an ingest's rows one at a time (the caller holds the transaction), yielding after each. */
  private *ingestRows(c: IngestCommit): Generator<void> {
    const upsertPack = this.db.prepare<[number, number, number, number]>(
      `INSERT INTO packs (id, length, sealed, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET length = excluded.length, sealed = excluded.sealed`,
    );
    const insertPage = this.db.prepare<[Buffer, number, number]>('INSERT INTO pages (hash, pack, pack_offset) VALUES (?, ?, ?)');
    const insertCheckpoint = this.db.prepare<[string, string, string, number, number, number, number, number]>(
      `INSERT INTO checkpoints (${CHECKPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const insertRef = this.db.prepare<[bigint | number, number]>('INSERT INTO refs (checkpoint, page) VALUES (?, ?)');
    for (const p of c.packs) {
      upsertPack.run(p.id, p.length, p.sealed ? 1 : 0, p.createdAtMs);
      yield;
    }
    const pageIds = [...c.existingPageIds];
    for (const p of c.pages) {
      pageIds.push(Number(insertPage.run(p.hash, p.packId, p.offset).lastInsertRowid));
      yield;
    }
    const k = c.checkpoint;
    const seq = insertCheckpoint.run(k.id, k.containerId, k.namespace, k.createdAtMs, k.pageCount, k.zeroPages, k.uniquePages, k.newPages).lastInsertRowid;
    // In id order: appends to the refs B-tree instead of random inserts.
    pageIds.sort((a, b) => a - b);
    for (const id of pageIds) {
      insertRef.run(seq, id);
      yield;
    }
    this.bumpNextPackId(c.nextPackId);
  }

  private bumpNextPackId(next: number): void {
    this.db
      .prepare<[number]>("UPDATE meta SET value = CAST(max(CAST(value AS INTEGER), ?) AS TEXT) WHERE key = 'next_pack_id'")
      .run(next);
  }

  // ---- checkpoints ---------------------------------------------------------------------

  listCheckpoints(): CheckpointRecord[] {
    return this.db.prepare<[], CheckpointRow>(`SELECT ${CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY seq`).all().map(toCheckpoint);
  }

  getCheckpoint(id: string): CheckpointRecord | undefined {
    const row = this.db.prepare<[string], CheckpointRow>(`SELECT ${CHECKPOINT_COLUMNS} FROM checkpoints WHERE id = ?`).get(id);
    return row === undefined ? undefined : toCheckpoint(row);
  }

  /** Forget a checkpoint (its pages stay until gc). False if there was none. */
  removeCheckpoint(id: string): boolean {
    return this.db.prepare<[string]>('DELETE FROM checkpoints WHERE id = ?').run(id).changes > 0;
  }

  // ---- pins ----------------------------------------------------------------------------

  /** False if the pack does not exist. Pinning twice with one owner is a no-op. */
  pin(packId: number, owner: string, nowMs: number): boolean {
    return this.db
      .transaction(() => {
        if (this.pack(packId) === undefined) return false;
        this.db
          .prepare<[number, string, number]>('INSERT OR IGNORE INTO pins (pack, owner, created_at) VALUES (?, ?, ?)')
          .run(packId, owner, nowMs);
        return true;
      })
      .immediate();
  }

  /** Drop an owner's pins (of one pack, or all). Returns how many were dropped. */
  unpin(owner: string, packId?: number): number {
    if (packId === undefined) return this.db.prepare<[string]>('DELETE FROM pins WHERE owner = ?').run(owner).changes;
    return this.db.prepare<[string, number]>('DELETE FROM pins WHERE owner = ? AND pack = ?').run(owner, packId).changes;
  }

  listPins(): PackPin[] {
    return this.db
      .prepare<[], { pack: number; owner: string; created_at: number }>('SELECT pack, owner, created_at FROM pins ORDER BY pack, owner')
      .all()
      .map((r) => ({ packId: r.pack, owner: r.owner, createdAtMs: r.created_at }));
  }

  pinnedPackIds(): Set<number> {
    return new Set(this.db.prepare<[], number>('SELECT DISTINCT pack FROM pins').pluck().all());
  }

  // ---- gc ------------------------------------------------------------------------------

  /** Delete pages no kept checkpoint references, then packs left with no page and no pin. */
  collectGarbage(): GarbageCollected {
    return this.db
      .transaction((): GarbageCollected => {
        const pagesRemoved = this.db
          .prepare('DELETE FROM pages WHERE id NOT IN (SELECT page FROM refs)')
          .run().changes;
        const empty = this.db
          .prepare<[], PackDbRow>(
            `SELECT id, length, sealed, created_at FROM packs
             WHERE NOT EXISTS (SELECT 1 FROM pages WHERE pages.pack = packs.id) ORDER BY id`,
          )
          .all()
          .map(toPack);
        const pinned = this.pinnedPackIds();
        const deletePack = this.db.prepare<[number]>('DELETE FROM packs WHERE id = ?');
        const packsRemoved: PackRow[] = [];
        const pinnedKept: number[] = [];
        for (const p of empty) {
          if (pinned.has(p.id)) {
            pinnedKept.push(p.id);
          } else {
            deletePack.run(p.id);
            packsRemoved.push(p);
          }
        }
        return { pagesRemoved, packsRemoved, pinnedKept };
      })
      .immediate();
  }

  /**
   * Point moved pages at their copies and drop the packs they came from, unless pinned
   * meanwhile (a pinned pack keeps its file and row; only its pages' rows move). Returns the
   * old packs whose rows were deleted (their files are to be unlinked).
   */
  switchPacks(s: PackSwitch): number[] {
    return this.db
      .transaction((): number[] => {
        const insertPack = this.db.prepare<[number, number, number]>(
          'INSERT INTO packs (id, length, sealed, created_at) VALUES (?, ?, 1, ?)',
        );
        for (const p of s.newPacks) insertPack.run(p.id, p.length, p.createdAtMs);
        const move = this.db.prepare<[number, number, number]>('UPDATE pages SET pack = ?, pack_offset = ? WHERE id = ?');
        for (const m of s.moves) move.run(m.packId, m.offset, m.id);
        const pinned = this.pinnedPackIds();
        const stillUsed = this.db.prepare<[number], number>('SELECT 1 FROM pages WHERE pack = ? LIMIT 1').pluck();
        const deletePack = this.db.prepare<[number]>('DELETE FROM packs WHERE id = ?');
        const deleted: number[] = [];
        for (const id of s.oldPacks) {
          if (pinned.has(id) || stillUsed.get(id) !== undefined) continue;
          deletePack.run(id);
          deleted.push(id);
        }
        this.bumpNextPackId(s.nextPackId);
        return deleted;
      })
      .immediate();
  }

  // ---- stats ---------------------------------------------------------------------------

  totals(): IndexTotals {
    return this.db
      .transaction((): IndexTotals => {
        const count = (sql: string): number => this.db.prepare<[], number>(sql).pluck().get() ?? 0;
        return {
          checkpoints: count('SELECT count(*) FROM checkpoints'),
          pages: count('SELECT count(*) FROM pages'),
          packs: count('SELECT count(*) FROM packs'),
          sealedPacks: count('SELECT count(*) FROM packs WHERE sealed = 1'),
          pinnedPacks: count('SELECT count(DISTINCT pack) FROM pins'),
          zeroPagesReferenced: count('SELECT coalesce(sum(zero_pages), 0) FROM checkpoints'),
          logicalPages: count('SELECT coalesce(sum(page_count), 0) FROM checkpoints'),
        };
      })
      .deferred();
  }

  // ---- snapshots -----------------------------------------------------------------------

  /** Start a read transaction: later reads see one snapshot until endRead(). */
  beginRead(): void {
    this.db.exec('BEGIN DEFERRED');
    // The snapshot starts at the first read.
    this.db.prepare('SELECT 1 FROM meta LIMIT 1').get();
  }

  endRead(): void {
    if (this.db.inTransaction) this.db.exec('COMMIT');
  }
}
