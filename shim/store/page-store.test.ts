import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PAGE_SIZE } from '../criu/page-size';
import { readManifestFile, writeManifestFile } from './manifest-file';
import { PACK_HEADER_SIZE } from './pack-header';
import { hashPage } from './page-hash';
import { PageRef, StoredPageRef, ZERO_PAGE_REF, storedPageRef } from './page-ref';
import { PageRunsBuilder, pageRefsOf, runsOf } from './page-runs';
import { LOCATION_BYTES, PagedManifest } from './page-manifest';
import { namePagesOf, pagedManifestOf, storedNamesOf } from './name-pages';
import { PageHashPool, sharedPages } from './page-hash-pool';
import { PageStore, PageStoreOptions } from './page-store';
import {
  CheckpointExistsError,
  CheckpointNotFoundError,
  PageCorruptError,
  PageMissingError,
  SessionClosedError,
  StoreArgumentError,
  StoreLockTimeoutError,
  WrongStoreError,
} from './store-error';
import { DEFAULT_STORE_ROOT, defaultStoreRoot } from './store-layout';
import { pageAt, randomPages, testPage } from './test-pages';

const ZERO = Buffer.alloc(PAGE_SIZE);
let root: string;
const stores: PageStore[] = [];

function open(options: PageStoreOptions = {}): PageStore {
  const store = PageStore.open(root, options);
  stores.push(store);
  return store;
}

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-store-'));
});

afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  fs.rmSync(root, { recursive: true, force: true });
});

/** Ingest pages (a buffer of whole pages) as one checkpoint; returns the refs in order. */
async function ingest(store: PageStore, id: string, pages: Buffer, expectedPages?: number): Promise<PageRef[]> {
  const session = await store.beginIngest({ checkpointId: id, containerId: `ctr-${id}`, namespace: 'default', expectedPages });
  const refs = session.addPages(pages);
  await session.commit();
  return refs;
}

/** What the store should name each page: zero pages as zero, the rest by SHA-256. */
function pagesRefs(pages: Buffer): PageRef[] {
  const refs: PageRef[] = [];
  for (let i = 0; i < pages.length / PAGE_SIZE; i++) {
    const page = pageAt(pages, i);
    refs.push(page.equals(ZERO) ? ZERO_PAGE_REF : storedPageRef(hashPage(page)));
  }
  return refs;
}

function stored(refs: readonly PageRef[]): StoredPageRef[] {
  return refs.filter((r): r is StoredPageRef => r.kind === 'stored');
}

function packFiles(): string[] {
  return fs.readdirSync(path.join(root, 'packs')).sort();
}

describe('PageStore', () => {
  it('creates its layout and takes its root from PAGESHARE_ROOT', () => {
    const store = open();
    for (const entry of ['index.db', 'packs', 'tmp', 'locks']) expect(fs.existsSync(path.join(root, entry))).toBe(true);
    expect(store.storeId).toMatch(/^[0-9a-f]{32}$/);
    expect(PageStore.open(root).storeId).toBe(store.storeId);
    expect(defaultStoreRoot({ PAGESHARE_ROOT: '/srv/ps' })).toBe('/srv/ps');
    expect(defaultStoreRoot({})).toBe(DEFAULT_STORE_ROOT);
    expect(DEFAULT_STORE_ROOT).toBe('/var/lib/pageshare');
  });

  it('reads back what it ingested, verified, one page or many at a time', async () => {
    const store = open();
    const pages = Buffer.concat([randomPages(100), ZERO, pageAt(randomPages(1), 0)]);
    const refs = await ingest(store, 'c1', pages);
    expect(refs).toHaveLength(102);
    expect(refs[100]).toBe(ZERO_PAGE_REF);
    for (let i = 0; i < 102; i++) {
      const r = refs[i];
      if (r.kind === 'stored') expect(store.readPage(r.hash).equals(pageAt(pages, i))).toBe(true);
    }
    expect(store.readPages(refs, { checkpointId: 'c1' }).equals(pages)).toBe(true);
    // Out of order and repeated.
    const shuffled = [refs[5], refs[100], refs[2], refs[5], refs[99]];
    const expected = Buffer.concat([pageAt(pages, 5), ZERO, pageAt(pages, 2), pageAt(pages, 5), pageAt(pages, 99)]);
    expect(store.readPages(shuffled).equals(expected)).toBe(true);
    expect(store.getCheckpoint('c1')).toMatchObject({
      id: 'c1',
      containerId: 'ctr-c1',
      namespace: 'default',
      pageCount: 102,
      zeroPages: 1,
      uniquePages: 101,
      newPages: 101,
    });
    expect((await store.verify()).ok).toBe(true);
  });

  it('stores each page once: 10 ingests of the same 1000 pages keep one copy', async () => {
    const store = open();
    const pages = randomPages(1000);
    for (let i = 0; i < 10; i++) {
      await ingest(store, `same-${i}`, pages);
      expect(store.getCheckpoint(`same-${i}`).newPages).toBe(i === 0 ? 1000 : 0);
    }
    const stats = store.stats();
    expect(stats.pages).toBe(1000);
    expect(stats.checkpoints).toBe(10);
    expect(stats.logicalBytes).toBe(10 * 1000 * PAGE_SIZE);
    expect(stats.physicalBytes).toBe(PACK_HEADER_SIZE + 1000 * PAGE_SIZE);
    expect(stats.dedupRatio).toBeGreaterThan(9.9);
  });

  it('dedups within one ingest too', async () => {
    const store = open();
    const page = pageAt(randomPages(1), 0);
    const refs = await ingest(store, 'rep', Buffer.concat([page, page, page]));
    expect(new Set(stored(refs).map((r) => r.hash.toString('hex'))).size).toBe(1);
    expect(store.getCheckpoint('rep')).toMatchObject({ pageCount: 3, uniquePages: 1, newPages: 1 });
    expect(store.stats().pages).toBe(1);
  });

  it('never stores zero pages, but counts them', async () => {
    const store = open();
    const refs = await ingest(store, 'zeros', Buffer.concat([Buffer.alloc(500 * PAGE_SIZE), testPage('z', 1)]));
    expect(refs.filter((r) => r.kind === 'zero')).toHaveLength(500);
    const stats = store.stats();
    expect(stats).toMatchObject({ pages: 1, zeroPagesReferenced: 500, logicalBytes: 501 * PAGE_SIZE });
    expect(stats.physicalBytes).toBe(PACK_HEADER_SIZE + PAGE_SIZE);
    expect(store.readPages(refs).equals(Buffer.concat([Buffer.alloc(500 * PAGE_SIZE), testPage('z', 1)]))).toBe(true);
  });

  it('finds a flipped byte: readPage throws PageCorruptError and verify reports it', async () => {
    const store = open();
    const refs = stored(await ingest(store, 'victim', randomPages(10)));
    await ingest(store, 'bystander', randomPages(3));
    const place = store.locatePage(refs[4].hash);
    expect(place).toBeDefined();
    const fd = fs.openSync(place!.file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, place!.offset + 100);
    b[0] ^= 0xff;
    fs.writeSync(fd, b, 0, 1, place!.offset + 100);
    fs.closeSync(fd);

    let thrown: unknown;
    try {
      store.readPages(refs, { checkpointId: 'victim' });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PageCorruptError);
    const e = thrown as PageCorruptError;
    expect(e).toMatchObject({ reason: 'STORE_PAGE_CORRUPT', hash: refs[4].hash.toString('hex'), checkpointId: 'victim', packId: place!.packId, offset: place!.offset });
    expect(e.message).toContain('victim');
    expect(e.message).toContain('pageshare store verify');
    expect(() => store.readPage(refs[4].hash)).toThrow(PageCorruptError);
    expect(store.readPage(refs[3].hash)).toHaveLength(PAGE_SIZE);

    const report = await store.verify();
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([
      expect.objectContaining({ kind: 'page-corrupt', hash: refs[4].hash.toString('hex'), packId: place!.packId, offset: place!.offset, checkpointIds: ['victim'] }),
    ]);
    expect(report.damagedCheckpoints).toEqual(['victim']);
  });

  it('reports a missing page naming the checkpoint and the page', async () => {
    const store = open();
    const refs = stored(await ingest(store, 'gone', randomPages(4)));
    fs.rmSync(store.locatePage(refs[0].hash)!.file);
    expect(() => store.readPages(refs, { checkpointId: 'gone' })).toThrow(PageMissingError);
    expect(() => store.readPages(refs, { checkpointId: 'gone' })).toThrow(/page [0-9a-f]{64} of checkpoint gone is missing/);
    const unknown = hashPage(testPage('never', 0));
    expect(() => store.readPage(unknown)).toThrow(PageMissingError);
    const report = await store.verify();
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatchObject({ kind: 'pack-missing' });
    expect(report.damagedCheckpoints).toEqual(['gone']);
  });

  it('leaves nothing behind when an ingest is aborted', async () => {
    const store = open();
    await ingest(store, 'kept', randomPages(5));
    const before = packFiles().map((f) => fs.statSync(path.join(root, 'packs', f)).size);
    const session = await store.beginIngest({ checkpointId: 'dropped', containerId: 'c', namespace: 'n' });
    session.addPages(randomPages(50));
    session.abort();
    session.abort();
    expect(session.state).toBe('aborted');
    expect(() => session.addPage(testPage('x', 0))).toThrow(SessionClosedError);
    expect(packFiles().map((f) => fs.statSync(path.join(root, 'packs', f)).size)).toEqual(before);
    expect(store.listCheckpoints().map((c) => c.id)).toEqual(['kept']);
    expect(store.stats().pages).toBe(5);
    // The lock was released: the next ingest starts at once.
    await ingest(store, 'next', randomPages(1));
  });

  it('treats bytes after the last committed page as reclaimable, and the next ingest cuts them off', async () => {
    const store = open();
    await ingest(store, 'a', randomPages(3));
    const [pack] = packFiles();
    const file = path.join(root, 'packs', pack);
    fs.appendFileSync(file, randomPages(2).subarray(0, PAGE_SIZE + 123));
    const report = await store.verify();
    expect(report.ok).toBe(true);
    expect(report.reclaimable.tailBytes).toBe(PAGE_SIZE + 123);
    await ingest(store, 'b', randomPages(1));
    expect(fs.statSync(file).size).toBe(PACK_HEADER_SIZE + 4 * PAGE_SIZE);
    expect((await store.verify()).reclaimable.tailBytes).toBe(0);
  });

  it('checks its arguments and its state', async () => {
    const store = open();
    const session = await store.beginIngest({ checkpointId: 'x', containerId: 'c', namespace: 'n' });
    expect(() => session.addPage(Buffer.alloc(100))).toThrow(StoreArgumentError);
    expect(() => session.addPages(Buffer.alloc(PAGE_SIZE + 1))).toThrow(StoreArgumentError);
    await session.commit();
    await expect(session.commit()).rejects.toThrow(SessionClosedError);
    await expect(store.beginIngest({ checkpointId: 'x', containerId: 'c', namespace: 'n' })).rejects.toThrow(CheckpointExistsError);
    await expect(store.beginIngest({ checkpointId: '', containerId: 'c', namespace: 'n' })).rejects.toThrow(StoreArgumentError);
    expect(() => store.getCheckpoint('nope')).toThrow(CheckpointNotFoundError);
    expect(() => store.removeCheckpoint('nope')).toThrow(CheckpointNotFoundError);
    store.close();
    expect(() => store.stats()).toThrow(expect.objectContaining({ reason: 'STORE_CLOSED' }));
  });

  it('serializes ingests: a second one waits for the first, or times out', async () => {
    const a = open();
    const b = open();
    const first = await a.beginIngest({ checkpointId: 'first', containerId: 'c', namespace: 'n' });
    await expect(b.beginIngest({ checkpointId: 'late', containerId: 'c', namespace: 'n' }, { lockTimeoutMs: 30 })).rejects.toThrow(StoreLockTimeoutError);
    let secondStarted = false;
    const second = b.beginIngest({ checkpointId: 'second', containerId: 'c', namespace: 'n' }).then((s) => {
      secondStarted = true;
      return s;
    });
    const shared = testPage('shared', 0);
    first.addPage(shared);
    await new Promise((r) => setTimeout(r, 50));
    expect(secondStarted).toBe(false);
    await first.commit();
    const s2 = await second;
    s2.addPage(shared);
    s2.addPage(testPage('own', 0));
    await s2.commit();
    expect(b.getCheckpoint('second').newPages).toBe(1);
    expect((await a.verify()).ok).toBe(true);
  });

  it('rolls over to a new pack at the size limit, keeping an ingest contiguous and in order', async () => {
    const limit = PACK_HEADER_SIZE + 64 * PAGE_SIZE;
    const store = open({ packSizeLimit: limit, writeBufferBytes: 16 * PAGE_SIZE });
    const refs = stored(await ingest(store, 'big', randomPages(150)));
    const places = refs.map((r) => store.locatePage(r.hash)!);
    expect(places.map((p) => p.packId)).toEqual([...Array(150).keys()].map((i) => 1 + Math.floor(i / 64)));
    for (let i = 1; i < 150; i++) {
      if (places[i].packId === places[i - 1].packId) expect(places[i].offset).toBe(places[i - 1].offset + PAGE_SIZE);
    }
    expect(places.map((p) => p.sealed)).toEqual([...Array(150).keys()].map((i) => i < 128));
    expect(fs.statSync(places[0].file).mode & 0o777).toBe(0o444);
    // A checkpoint that would not fit in what is left of the open pack starts a new one.
    const next = stored(await ingest(store, 'next', randomPages(50), 50));
    expect(store.locatePage(next[0].hash)).toMatchObject({ packId: 4, offset: PACK_HEADER_SIZE });
    expect(store.locatePage(refs[149].hash)!.sealed).toBe(true);
  });

  it('seals the open pack on request and never appends to it again', async () => {
    const store = open();
    const refs = stored(await ingest(store, 'a', randomPages(3)));
    const file = store.locatePage(refs[0].hash)!.file;
    const bytes = fs.readFileSync(file);
    expect(await store.sealOpenPack()).toBe(1);
    expect(await store.sealOpenPack()).toBeUndefined();
    const more = stored(await ingest(store, 'b', randomPages(3)));
    expect(store.locatePage(more[0].hash)).toMatchObject({ packId: 2, sealed: false });
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
    expect(store.locatePage(refs[0].hash)!.sealed).toBe(true);
  });

  it('gc removes only pages no kept checkpoint references, and deletes empty packs', async () => {
    const store = open({ packSizeLimit: PACK_HEADER_SIZE + 100 * PAGE_SIZE });
    const p = (n: number): Buffer => testPage('gc', n);
    const range = (from: number, to: number): Buffer => Buffer.concat([...Array(to - from).keys()].map((i) => p(from + i)));
    const a = stored(await ingest(store, 'a', range(0, 100))); // fills and seals pack 1
    const b = stored(await ingest(store, 'b', range(50, 150))); // 50 shared, 50 new in pack 2
    expect((await store.gc()).pagesRemoved).toBe(0);

    store.removeCheckpoint('a');
    const report = await store.gc({ compact: false });
    expect(report.pagesRemoved).toBe(50);
    expect(report.packsDeleted).toEqual([]);
    expect(store.hasPage(a[0].hash)).toBe(false);
    expect(store.readPages(b).equals(range(50, 150))).toBe(true);
    expect(store.stats().pages).toBe(100);

    store.removeCheckpoint('b');
    const last = await store.gc();
    expect(last.pagesRemoved).toBe(100);
    expect(last.packsDeleted).toEqual([1, 2]);
    expect(packFiles()).toEqual([]);
    expect(store.stats()).toMatchObject({ pages: 0, packs: 0, physicalBytes: 0, checkpoints: 0 });
    expect((await store.verify()).ok).toBe(true);
  });

  it('gc compacts mostly-dead sealed packs, keeping arrival order, and the pages still read back', async () => {
    const store = open({ packSizeLimit: PACK_HEADER_SIZE + 32 * PAGE_SIZE });
    const pages = randomPages(96); // packs 1..3
    const all = stored(await ingest(store, 'all', pages));
    await store.sealOpenPack();
    const keepIdx = [3, 4, 5, 40, 41, 90];
    const keep = keepIdx.map((i) => all[i]);
    const keeper = await store.beginIngest({ checkpointId: 'keeper', containerId: 'c', namespace: 'n' });
    for (const i of keepIdx) keeper.addPage(pageAt(pages, i));
    await keeper.commit();
    store.removeCheckpoint('all');
    const report = await store.gc();
    expect(report.pagesRemoved).toBe(90);
    expect(report.packsCompacted).toEqual([1, 2, 3]);
    expect(report.packsDeleted).toEqual([1, 2, 3]);
    expect(report.packsCreated).toEqual([4]);
    expect(report.bytesFreed).toBeGreaterThan(80 * PAGE_SIZE);
    const places = keep.map((r) => store.locatePage(r.hash)!);
    expect(places.map((p) => [p.packId, p.offset])).toEqual(keep.map((_, i) => [4, PACK_HEADER_SIZE + i * PAGE_SIZE]));
    expect(store.readPages(keep).equals(Buffer.concat(keepIdx.map((i) => pageAt(pages, i))))).toBe(true);
    expect(packFiles()).toEqual(['0000000004.pack']);
    expect((await store.verify()).ok).toBe(true);
  });

  it('gc never deletes or compacts a pinned pack', async () => {
    const store = open({ packSizeLimit: PACK_HEADER_SIZE + 8 * PAGE_SIZE });
    const pages = randomPages(16);
    const refs = stored(await ingest(store, 'a', pages)); // packs 1 and 2
    await store.sealOpenPack();
    await ingest(store, 'b', pageAt(pages, 9)); // keeps one page of pack 2 alive
    const pack1 = store.locatePage(refs[0].hash)!;
    const pack2 = store.locatePage(refs[9].hash)!;
    const bytes1 = fs.readFileSync(pack1.file);
    const bytes2 = fs.readFileSync(pack2.file);
    store.pinPack(1, 'container:test/one');
    store.pinPack(2, 'container:test/one');
    expect(store.listPins().map((p) => p.packId)).toEqual([1, 2]);
    store.removeCheckpoint('a');
    const report = await store.gc();
    expect(report.pinnedKept).toEqual([1, 2]);
    expect(report.packsDeleted).toEqual([]);
    expect(report.packsCompacted).toEqual([]);
    expect(fs.readFileSync(pack1.file).equals(bytes1)).toBe(true);
    expect(fs.readFileSync(pack2.file).equals(bytes2)).toBe(true);
    expect((await store.verify()).ok).toBe(true);

    expect(store.unpinPacks('container:test/one')).toBe(2);
    const after = await store.gc();
    expect(after.packsDeleted).toEqual([1, 2]);
    expect(after.packsCompacted).toEqual([2]);
    expect(store.readPage(refs[9].hash).equals(pageAt(pages, 9))).toBe(true);
    expect(() => store.pinPack(1, 'late')).toThrow(expect.objectContaining({ reason: 'STORE_PACK_NOT_FOUND' }));
  });

  it('gc removes crash leftovers: unnamed pack files and tmp/', async () => {
    const store = open();
    await ingest(store, 'a', randomPages(2));
    fs.writeFileSync(path.join(root, 'packs', '0000000099.pack'), Buffer.alloc(PAGE_SIZE));
    fs.writeFileSync(path.join(root, 'tmp', 'junk'), 'x');
    const report = await store.verify();
    expect(report.ok).toBe(true);
    expect(report.reclaimable.orphanFiles).toHaveLength(2);
    const gc = await store.gc();
    expect(gc.orphanFilesRemoved).toBe(2);
    expect(packFiles()).toEqual(['0000000001.pack']);
  });

  it('keeps a manifest\'s names in name pages: resolved and verified on read, shared by a checkpoint that changed little', async () => {
    const store = open();
    /** An ingest as the checkpoint archive does it: pages, then the name pages, one session. */
    const ingestPaged = async (id: string, pages: Buffer): Promise<{ paged: PagedManifest; newPages: number }> => {
      const session = await store.beginIngest({ checkpointId: id, containerId: 'c', namespace: 'n' });
      const runs = runsOf(session.addPages(pages));
      const m = { storeId: store.storeId, checkpointId: id, files: [{ name: 'pages-1.img', runs }] };
      const before = session.newPageCount;
      const namePageNames = session.addDescriptionPages(namePagesOf(storedNamesOf(m)));
      const newPages = session.newPageCount - before;
      expect(session.pageCount).toBe(pages.length / PAGE_SIZE); // the memory, not the names
      await session.commit();
      return { paged: pagedManifestOf(m, namePageNames), newPages };
    };
    const pages = randomPages(1000);
    const first = await ingestPaged('first', pages);
    expect(first.paged.namePages.length / 32).toBe(8); // 1000 names, 128 a page
    expect(first.newPages).toBe(8);
    const resolved = store.resolveManifest(first.paged);
    expect(store.readManifestPages(resolved, 'pages-1.img').equals(pages)).toBe(true);
    // One page changed: one name page is new, the other seven are shared.
    const changed = Buffer.from(pages);
    randomPages(1).copy(changed, 500 * PAGE_SIZE);
    const second = await ingestPaged('second', changed);
    expect(second.newPages).toBe(1);
    expect(store.readManifestPages(store.resolveManifest(second.paged), 'pages-1.img').equals(changed)).toBe(true);
    expect(() => store.resolveManifest({ ...second.paged, storeId: 'ff'.repeat(16) })).toThrow(WrongStoreError);
    // A damaged name page fails the read, naming the checkpoint.
    const place = store.locatePage(first.paged.namePages.subarray(0, 32))!;
    const fd = fs.openSync(place.file, 'r+');
    fs.writeSync(fd, Buffer.from([0x55]), 0, 1, place.offset + 7);
    fs.closeSync(fd);
    expect(() => store.resolveManifest(first.paged)).toThrow(PageCorruptError);
    expect(() => store.resolveManifest(first.paged)).toThrow(/checkpoint first/);
  });

  it('restores a checkpoint from its manifest', async () => {
    const store = open();
    const pages = Buffer.concat([randomPages(10), Buffer.alloc(3 * PAGE_SIZE), randomPages(2)]);
    const session = await store.beginIngest({ checkpointId: 'm', containerId: 'c', namespace: 'n' });
    const runs = new PageRunsBuilder();
    runs.addAll(session.addPages(pages));
    await session.commit();
    const dir = path.join(root, 'checkpoint-dir');
    fs.mkdirSync(dir);
    const file = await writeManifestFile(dir, { storeId: store.storeId, checkpointId: 'm', files: [{ name: 'pages-1.img', runs: runs.build() }] });
    const manifest = store.resolveManifest(await readManifestFile(file));
    expect(manifest.storeId).toBe(store.storeId);
    expect(store.readManifestPages(manifest, 'pages-1.img').equals(pages)).toBe(true);
    expect(store.readPages([...pageRefsOf(manifest.files[0].runs)], { checkpointId: manifest.checkpointId }).equals(pages)).toBe(true);
    expect(() => store.readManifestPages({ ...manifest, storeId: 'ff'.repeat(16) }, 'pages-1.img')).toThrow(WrongStoreError);
    expect(() => store.readManifestPages(manifest, 'pages-9.img')).toThrow(StoreArgumentError);
    expect(storedPageRef(hashPage(pageAt(pages, 0)))).toEqual([...pageRefsOf(manifest.files[0].runs)][0]);
  });

  it('takes pages with names computed on the hash pool exactly as pages it hashes itself', async () => {
    const store = open();
    const pool = new PageHashPool(2);
    try {
      const known = randomPages(5);
      await ingest(store, 'first', known);
      // New pages, pages the store has, repeats within the chunk, and zero pages.
      const pages = Buffer.concat([randomPages(6), pageAt(known, 2), Buffer.alloc(2 * PAGE_SIZE), pageAt(known, 2), randomPages(3)]);
      const shared = sharedPages(pages.length / PAGE_SIZE);
      pages.copy(shared);
      const session = await store.beginIngest({ checkpointId: 'named', containerId: 'c', namespace: 'n' });
      const names = await pool.hashPages(shared);
      await session.addNamedPages(shared, names);
      const runs = new PageRunsBuilder();
      runs.addNames(names);
      const refs = [...pageRefsOf(runs.build())];
      expect(session.newPageCount).toBe(9);
      const record = await session.commit();
      expect(record).toMatchObject({ pageCount: 13, zeroPages: 2, uniquePages: 10, newPages: 9 });
      expect(refs).toEqual(pagesRefs(pages));
      expect(store.readPages(refs, { checkpointId: 'named' }).equals(pages)).toBe(true);
      expect((await store.verify()).ok).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('writes pool-named pages straight from the chunk across pack rollovers, in order', async () => {
    const store = open({ packSizeLimit: PACK_HEADER_SIZE + 7 * PAGE_SIZE });
    const pool = new PageHashPool(2);
    try {
      const pages = Buffer.concat([randomPages(9), pageAt(randomPages(1), 0), Buffer.alloc(PAGE_SIZE), randomPages(12)]);
      pageAt(pages, 3).copy(pages, 15 * PAGE_SIZE); // a repeat inside a run of new pages
      const shared = sharedPages(pages.length / PAGE_SIZE);
      pages.copy(shared);
      const session = await store.beginIngest({ checkpointId: 'direct', containerId: 'c', namespace: 'n' });
      const names = await pool.hashPages(shared);
      await session.addNamedPages(shared, names);
      await session.commit();
      const runs = new PageRunsBuilder();
      runs.addNames(names);
      expect(store.readPages([...pageRefsOf(runs.build())], { checkpointId: 'direct' }).equals(pages)).toBe(true);
      expect(packFiles().length).toBe(3); // 21 distinct pages, 7 per pack
      expect((await store.verify()).ok).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('writes a pages file from its manifest on the hash pool, and names a flipped byte', async () => {
    const store = open();
    const pool = new PageHashPool(2);
    try {
      // More than one 8 MiB chunk, with zero runs and a page that appears twice.
      const pages = Buffer.concat([randomPages(2100), Buffer.alloc(3 * PAGE_SIZE), randomPages(40)]);
      pageAt(pages, 5).copy(pages, 2110 * PAGE_SIZE);
      const session = await store.beginIngest({ checkpointId: 'w', containerId: 'c', namespace: 'n' });
      const runs = new PageRunsBuilder();
      runs.addAll(session.addPages(pages));
      await session.commit();
      const manifest = { storeId: store.storeId, checkpointId: 'w', files: [{ name: 'pages-1.img', runs: runs.build() }] };
      const out = path.join(root, 'pages-1.img');
      await store.writeManifestPages(manifest, 'pages-1.img', out, pool);
      expect(fs.readFileSync(out).equals(pages)).toBe(true);

      const victim = storedPageRef(hashPage(pageAt(pages, 2120)));
      const place = store.locatePage(victim.hash)!;
      const fd = fs.openSync(place.file, 'r+');
      fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, place.offset + 7);
      fs.closeSync(fd);
      const error = await store.writeManifestPages(manifest, 'pages-1.img', out, pool).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PageCorruptError);
      expect(error).toMatchObject({ checkpointId: 'w', hash: victim.hash.toString('hex'), packId: place.packId, offset: place.offset });
      await expect(store.writeManifestPages({ ...manifest, storeId: 'ff'.repeat(16) }, 'pages-1.img', out, pool)).rejects.toThrow(WrongStoreError);
    } finally {
      await pool.close();
    }
  });

  it('reads pages where the manifest locations say while the store keeps the checkpoint, and looks them up otherwise', async () => {
    const store = open();
    const pool = new PageHashPool(2);
    try {
      const pages = Buffer.concat([randomPages(30), Buffer.alloc(PAGE_SIZE), randomPages(5)]);
      const session = await store.beginIngest({ checkpointId: 'hinted', containerId: 'c', namespace: 'n' });
      const refs = session.addPages(pages);
      await session.commit();
      const runs = runsOf(refs);
      const storedRefs = stored(refs);
      const taken = session.takeLocations();
      const locations = Buffer.alloc(storedRefs.length * LOCATION_BYTES);
      storedRefs.forEach((ref, k) => {
        const place = store.locatePage(ref.hash)!;
        locations.writeUInt32LE(place.packId, k * LOCATION_BYTES);
        locations.writeUInt32LE(place.offset / PAGE_SIZE, k * LOCATION_BYTES + 4);
      });
      expect(taken.equals(locations)).toBe(true);
      expect(session.takeLocations()).toHaveLength(0);
      const out = path.join(root, 'pages-1.img');
      const manifest = { storeId: store.storeId, checkpointId: 'hinted', files: [{ name: 'pages-1.img', runs, locations }] };
      await store.writeManifestPages(manifest, 'pages-1.img', out, pool);
      expect(fs.readFileSync(out).equals(pages)).toBe(true);
      // Wrong hints (two swapped) cost a lookup, never wrong bytes.
      const swapped = Buffer.from(locations);
      locations.copy(swapped, 0, LOCATION_BYTES, 2 * LOCATION_BYTES);
      locations.copy(swapped, LOCATION_BYTES, 0, LOCATION_BYTES);
      await store.writeManifestPages({ ...manifest, files: [{ ...manifest.files[0], locations: swapped }] }, 'pages-1.img', out, pool);
      expect(fs.readFileSync(out).equals(pages)).toBe(true);
      // Once the checkpoint is removed and gc runs, its pages are gone even if the bytes are not.
      await ingest(store, 'keeps-the-pack', pageAt(pages, 0));
      store.removeCheckpoint('hinted');
      await store.gc();
      await expect(store.writeManifestPages(manifest, 'pages-1.img', out, pool)).rejects.toThrow(PageMissingError);
    } finally {
      await pool.close();
    }
  });

  it('writes only selected pages, each range where its segment says, with and without locations', async () => {
    const store = open();
    const pool = new PageHashPool(2);
    try {
      // 3000 pages (more than one 2048-page chunk), a zero page inside the first range.
      const pages = Buffer.concat([randomPages(1500), Buffer.alloc(PAGE_SIZE), randomPages(1499)]);
      const session = await store.beginIngest({ checkpointId: 'sel', containerId: 'c', namespace: 'n' });
      const refs = session.addPages(pages);
      await session.commit();
      const locations = session.takeLocations();
      const ranges = [
        { first: 10, count: 2030 }, // crosses the zero page and the first chunk's end
        { first: 2100, count: 5 },
        { first: 2990, count: 10 },
      ];
      const segments = [
        { pages: 2030, position: 4 * PAGE_SIZE },
        { pages: 5, position: 3000 * PAGE_SIZE },
        { pages: 10, position: 2040 * PAGE_SIZE },
      ];
      const expected = Buffer.alloc(3005 * PAGE_SIZE);
      ranges.forEach((r, i) => pages.copy(expected, segments[i].position, r.first * PAGE_SIZE, (r.first + r.count) * PAGE_SIZE));
      for (const withLocations of [true, false]) {
        const file = { name: 'pages-1.img', runs: runsOf(refs), ...(withLocations ? { locations } : {}) };
        const manifest = { storeId: store.storeId, checkpointId: 'sel', files: [file] };
        const out = path.join(root, `sparse-${withLocations}`);
        const fd = fs.openSync(out, 'w');
        try {
          fs.ftruncateSync(fd, expected.length);
          await store.writeManifestPages(manifest, 'pages-1.img', fd, pool, { ranges, segments });
        } finally {
          fs.closeSync(fd);
        }
        expect(fs.readFileSync(out).equals(expected)).toBe(true);
        // Without segments, the selected pages back to back.
        const packed = path.join(root, `packed-${withLocations}`);
        await store.writeManifestPages(manifest, 'pages-1.img', packed, pool, { ranges });
        expect(fs.readFileSync(packed).equals(Buffer.concat(ranges.map((r) => pages.subarray(r.first * PAGE_SIZE, (r.first + r.count) * PAGE_SIZE))))).toBe(true);
      }
      await expect(store.writeManifestPages({ storeId: store.storeId, checkpointId: 'sel', files: [{ name: 'pages-1.img', runs: runsOf(refs) }] }, 'pages-1.img', path.join(root, 'x'), pool, { ranges: [{ first: 2999, count: 2 }] })).rejects.toThrow(RangeError);
    } finally {
      await pool.close();
    }
  });
});
