import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PAGE_SIZE } from '../criu/page-size';
import { PE_PRESENT, writePagemapFile } from '../criu/pagemap';
import { PageHashPool } from '../store/page-hash-pool';
import { PageStore } from '../store/page-store';
import { pageAt, randomPages } from '../store/test-pages';
import { waitFor } from '../../integration/harness/wait';
import type { ArchiveContext } from './checkpoint-archive';
import { PageStoreArchive } from './page-store-archive';
import { DumpFollower } from './pages-ingest';

const CONTEXT: ArchiveContext = { containerId: 'app', namespace: 'default' };
let dir: string;
let storeRoot: string;
let imageDir: string;
let pool: PageHashPool;
let archive: PageStoreArchive;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-follow-'));
  storeRoot = path.join(dir, 'store');
  imageDir = path.join(dir, 'images');
  fs.mkdirSync(imageDir);
  pool = new PageHashPool(2);
  archive = new PageStoreArchive(() => storeRoot, pool);
});

afterEach(async () => {
  await pool.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Pages as a dump holds them: mostly distinct, one of zeros, one repeated. */
function dumpedPages(count: number): Buffer {
  const pages = randomPages(count);
  pageAt(pages, 3).fill(0);
  pageAt(pages, 5).copy(pageAt(pages, 7));
  return pages;
}

/** A task's pagemap naming `pagesId`'s file: one run of `count` present pages. */
async function writePagemap(pid: number, pagesId: number, count: number): Promise<void> {
  await writePagemapFile(path.join(imageDir, `pagemap-${pid}.img`), { pagesId, pageCountField: 'u32', entries: [{ vaddr: 0x7f0000000000, nrPages: count, flags: PE_PRESENT }] });
}

/** Appends to a pages file in steps, as CRIU does while it dumps. */
async function writeGrowing(file: string, pages: Buffer, steps: number): Promise<void> {
  const step = Math.ceil(pages.length / PAGE_SIZE / steps) * PAGE_SIZE;
  for (let at = 0; at < pages.length; at += step) {
    fs.appendFileSync(file, pages.subarray(at, at + step));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A dump being followed while its pages-1.img grows in `steps`, once `taken` pages of it were taken. */
async function followGrowing(pages: Buffer, steps: number, taken: number): Promise<DumpFollower> {
  const followed = archive.followDump(imageDir, CONTEXT) as DumpFollower;
  await writeGrowing(path.join(imageDir, 'pages-1.img'), pages, steps);
  await waitFor(() => followed.pagesTaken >= taken, { timeoutMs: 10_000, intervalMs: 5 });
  return followed;
}

/** The pages files a restore would read, rebuilt from the store. */
async function restoredPages(checkpointDir: string, name: string): Promise<Buffer> {
  const scratch = fs.mkdtempSync(path.join(dir, 'scratch-'));
  const { imagePath } = await archive.load(checkpointDir, scratch, CONTEXT);
  return fs.readFileSync(path.join(imagePath, name));
}

async function verifyStore(): Promise<{ ok: boolean; checkpoints: number }> {
  const store = PageStore.open(storeRoot);
  try {
    await store.awaitPendingIngests();
    return { ok: (await store.verify()).ok, checkpoints: store.listCheckpoints().length };
  } finally {
    store.close();
  }
}

test('a pages file followed while it is written is taken during the dump and restores exactly', async () => {
  const pages = dumpedPages(9000);
  // Whole chunks went to the store before the dump ended.
  const followed = await followGrowing(pages, 5, 4096);
  expect(followed.pagesTaken).toBeLessThan(9000);
  await writePagemap(1, 1, 9000);
  const checkpointDir = path.join(dir, 'checkpoint');
  await archive.store(imageDir, checkpointDir, CONTEXT, followed);
  expect(followed.completed).toBe(true);
  expect(fs.existsSync(path.join(checkpointDir, 'pages-1.img'))).toBe(false);
  expect((await restoredPages(checkpointDir, 'pages-1.img')).equals(pages)).toBe(true);
  expect(await verifyStore()).toEqual({ ok: true, checkpoints: 1 });
});

test('after a failed dump what was followed is dropped, and the next checkpoint works', async () => {
  const followed = await followGrowing(dumpedPages(5000), 2, 2048);
  await followed.abandon();
  await followed.abandon(); // idempotent
  expect(await verifyStore()).toEqual({ ok: true, checkpoints: 0 });

  fs.rmSync(imageDir, { recursive: true });
  fs.mkdirSync(imageDir);
  const pages = dumpedPages(3000);
  fs.writeFileSync(path.join(imageDir, 'pages-1.img'), pages);
  await writePagemap(1, 1, 3000);
  const checkpointDir = path.join(dir, 'checkpoint');
  await archive.store(imageDir, checkpointDir, CONTEXT);
  expect((await restoredPages(checkpointDir, 'pages-1.img')).equals(pages)).toBe(true);
  expect(await verifyStore()).toEqual({ ok: true, checkpoints: 1 });
});

test('a followed file that is not the first the manifest lists is taken again in order', async () => {
  // pages-1.img belongs to task 9; task 2's file (pages-2.img) comes first in the manifest.
  const first = dumpedPages(300);
  const second = dumpedPages(4500);
  const followed = await followGrowing(second, 3, 2048);
  fs.writeFileSync(path.join(imageDir, 'pages-2.img'), first);
  await writePagemap(9, 1, 4500);
  await writePagemap(2, 2, 300);
  const checkpointDir = path.join(dir, 'checkpoint');
  await archive.store(imageDir, checkpointDir, CONTEXT, followed);
  expect(followed.completed).toBe(false);
  expect((await restoredPages(checkpointDir, 'pages-2.img')).equals(first)).toBe(true);
  expect((await restoredPages(checkpointDir, 'pages-1.img')).equals(second)).toBe(true);
  expect(await verifyStore()).toEqual({ ok: true, checkpoints: 1 });
});

test('a pages file shorter than its pagemap fails the checkpoint and leaves the store as it was', async () => {
  const followed = await followGrowing(dumpedPages(3000), 2, 2048);
  await writePagemap(1, 1, 3001);
  await expect(archive.store(imageDir, path.join(dir, 'checkpoint'), CONTEXT, followed)).rejects.toThrow(/pages-1\.img: is 12288000 bytes, but the present runs/);
  expect(await verifyStore()).toEqual({ ok: true, checkpoints: 0 });
});

test("a dump is not followed while another ingest holds the store's lock, and is taken after it", async () => {
  const other = PageStore.open(storeRoot);
  const session = await other.beginIngest({ checkpointId: 'other', containerId: 'other', namespace: 'default' });
  const pages = dumpedPages(6000);
  const followed = archive.followDump(imageDir, CONTEXT) as DumpFollower;
  await writeGrowing(path.join(imageDir, 'pages-1.img'), pages, 3);
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect(followed.pagesTaken).toBe(0);
  session.abort();
  other.close();
  await writePagemap(1, 1, 6000);
  const checkpointDir = path.join(dir, 'checkpoint');
  await archive.store(imageDir, checkpointDir, CONTEXT, followed);
  expect(followed.completed).toBe(false);
  expect((await restoredPages(checkpointDir, 'pages-1.img')).equals(pages)).toBe(true);
});

test('a checkpoint holding a symbolic link is refused before anything is written through it', async () => {
  const pages = dumpedPages(100);
  fs.writeFileSync(path.join(imageDir, 'pages-1.img'), pages);
  await writePagemap(1, 1, 100);
  const checkpointDir = path.join(dir, 'checkpoint');
  await archive.store(imageDir, checkpointDir, CONTEXT);
  const target = path.join(dir, 'outside');
  fs.writeFileSync(target, 'untouched');
  fs.symlinkSync(target, path.join(checkpointDir, 'pages-1.img'));
  await expect(restoredPages(checkpointDir, 'pages-1.img')).rejects.toThrow(/pages-1\.img is a symbolic link/);
  expect(fs.readFileSync(target, 'utf8')).toBe('untouched');
});
