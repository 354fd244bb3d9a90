// `pageshare store gc`: drop pages no kept checkpoint references, delete packs left with
// no live page, and compact sealed packs that are mostly dead, never touching a pinned pack
// (one a running container maps). Runs with the gc and writer locks held exclusively, so no
// ingest, seal or verify runs meanwhile; readers go on (they look a page up again if it moved).
//
// Every step is ordered for crashes: index rows go first and files after (a crash leaves an
// unnamed file, which the next gc removes); a compacted copy is fsynced before the index
// switches to it, and the old pack is unlinked only after the switch commits. Then the
// page-cache files of map-mode restores that nothing needs any more (page-cache-gc.ts).
import * as fs from 'node:fs';
import { PAGE_SIZE } from '../criu/page-size';
import { readFully, syncDirectory } from './durable-fs';
import { PACK_HEADER_SIZE } from './pack-header';
import { PackWriter, makePackReadOnly } from './pack-writer';
import { NO_PAGE_CACHE_GC, PageCacheGcReport, collectPageCache } from './page-cache-gc';
import { PackRow, PageIndex, PageMove } from './page-index';
import { hashPage } from './page-hash';
import { StoreLayout } from './store-layout';
import { findOrphans } from './store-verify';

export interface GcOptions {
  /** Copy the live pages of mostly-dead sealed packs into new packs (default true). */
  readonly compact?: boolean;
  /** A sealed pack is compacted when its live pages fill less than this share of it (default 0.5). */
  readonly compactBelow?: number;
  /**
   * Only remove these checkpoints' page-cache files, under the same rules (what `checkpoint
   * rm` does); pages, packs and leftovers wait for a full gc.
   */
  readonly pageCacheOf?: readonly string[];
}

export interface GcReport {
  /** Index rows of pages no kept checkpoint referenced. */
  readonly pagesRemoved: number;
  /** Packs deleted (no live page left, or compacted away). */
  readonly packsDeleted: readonly number[];
  /** Packs whose live pages were copied into packsCreated. */
  readonly packsCompacted: readonly number[];
  readonly packsCreated: readonly number[];
  /** Packs gc would have deleted or compacted but left alone because they are pinned. */
  readonly pinnedKept: readonly number[];
  /** Packs not compacted because a live page in them failed verification (see verify). */
  readonly compactionSkipped: ReadonlyArray<{ readonly packId: number; readonly reason: string }>;
  /** Leftovers of crashes removed: unnamed pack files, tmp/ entries. */
  readonly orphanFilesRemoved: number;
  /** Page-cache files removed, and those of dropped checkpoints still mapped or referenced. */
  readonly pageCache: PageCacheGcReport;
  /** Bytes given back to the file system (pageCache.bytesFreed included). */
  readonly bytesFreed: number;
}

/** What a gc that removed nothing reports. */
export const NO_GC: GcReport = {
  pagesRemoved: 0,
  packsDeleted: [],
  packsCompacted: [],
  packsCreated: [],
  pinnedKept: [],
  compactionSkipped: [],
  orphanFilesRemoved: 0,
  pageCache: NO_PAGE_CACHE_GC,
  bytesFreed: 0,
};

export interface GcContext {
  readonly layout: StoreLayout;
  readonly index: PageIndex;
  readonly packSizeLimit: number;
  readonly writeBufferBytes: number;
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function unlink(file: string): number {
  const size = sizeOf(file);
  fs.rmSync(file, { force: true, recursive: true });
  return size;
}

/** Run gc. The caller holds the gc and writer locks. */
export async function collectGarbage(ctx: GcContext, options: GcOptions = {}): Promise<GcReport> {
  const { layout, index } = ctx;
  const isKept = (id: string): boolean => index.checkpointExists(id);
  if (options.pageCacheOf !== undefined) {
    const pageCache = collectPageCache(layout.root, isKept, { checkpointIds: options.pageCacheOf });
    return { ...NO_GC, pageCache, bytesFreed: pageCache.bytesFreed };
  }
  let bytesFreed = 0;

  const collected = index.collectGarbage();
  const packsDeleted: number[] = [];
  for (const p of collected.packsRemoved) {
    bytesFreed += unlink(layout.packFile(p.id));
    packsDeleted.push(p.id);
  }
  const pinnedKept = new Set(collected.pinnedKept);

  const compaction = options.compact === false ? undefined : await compact(ctx, options.compactBelow ?? 0.5, pinnedKept);
  if (compaction !== undefined) {
    bytesFreed += compaction.bytesFreed;
    packsDeleted.push(...compaction.deleted);
  }

  // Crash leftovers: pack files no row names (none is being written: we hold the writer
  // lock) and tmp/. Then the open pack's garbage tail.
  const orphans = findOrphans(layout, new Set(index.packs().map((p) => p.id)));
  for (const f of orphans.files) bytesFreed += unlink(f);
  const open = index.openPack();
  if (open !== undefined) {
    const file = layout.packFile(open.id);
    const size = sizeOf(file);
    if (size > open.length) {
      fs.truncateSync(file, open.length);
      bytesFreed += size - open.length;
    }
  }
  await syncDirectory(layout.packsDir);
  const pageCache = collectPageCache(layout.root, isKept);
  bytesFreed += pageCache.bytesFreed;

  return {
    pagesRemoved: collected.pagesRemoved,
    packsDeleted: packsDeleted.sort((a, b) => a - b),
    packsCompacted: compaction?.compacted ?? [],
    packsCreated: compaction?.created ?? [],
    pinnedKept: [...pinnedKept].sort((a, b) => a - b),
    compactionSkipped: compaction?.skipped ?? [],
    orphanFilesRemoved: orphans.files.length,
    pageCache,
    bytesFreed,
  };
}

interface Compaction {
  readonly compacted: number[];
  readonly created: number[];
  readonly deleted: number[];
  readonly skipped: Array<{ packId: number; reason: string }>;
  readonly bytesFreed: number;
}

async function compact(ctx: GcContext, compactBelow: number, pinnedKept: Set<number>): Promise<Compaction | undefined> {
  const { layout, index } = ctx;
  const pinned = index.pinnedPackIds();
  const live = index.livePagesPerPack();
  const candidates: PackRow[] = [];
  for (const p of index.packs()) {
    const liveBytes = (live.get(p.id) ?? 0) * PAGE_SIZE;
    const dataBytes = p.length - PACK_HEADER_SIZE;
    if (!p.sealed || liveBytes === 0 || liveBytes >= compactBelow * dataBytes) continue;
    if (pinned.has(p.id)) {
      pinnedKept.add(p.id);
      continue;
    }
    candidates.push(p);
  }
  if (candidates.length === 0) return undefined;

  let nextPackId = index.nextPackId();
  const writers: PackWriter[] = [];
  let writer: PackWriter | undefined;
  const moves: PageMove[] = [];
  const compacted: number[] = [];
  const skipped: Array<{ packId: number; reason: string }> = [];
  const page = Buffer.allocUnsafe(PAGE_SIZE);
  try {
    for (const pack of candidates) {
      const file = layout.packFile(pack.id);
      const packMoves: PageMove[] = [];
      let problem: string | undefined;
      let fd: number;
      try {
        fd = fs.openSync(file, fs.constants.O_RDONLY);
      } catch (err) {
        skipped.push({ packId: pack.id, reason: (err as Error).message });
        continue;
      }
      try {
        // Live pages in file order: arrival order survives compaction.
        for (const p of index.pagesOfPack(pack.id)) {
          if (readFully(fd, page, PAGE_SIZE, p.offset) !== PAGE_SIZE || !hashPage(page).equals(p.hash)) {
            problem = `page ${p.hash.toString('hex')} at offset ${p.offset} fails verification`;
            break;
          }
          if (writer === undefined || writer.length + PAGE_SIZE > ctx.packSizeLimit) {
            writer?.flush();
            const id = nextPackId++;
            writer = PackWriter.create(layout.packFile(id), { packId: id, storeId: index.storeId, createdAtMs: Date.now() }, ctx.writeBufferBytes);
            writers.push(writer);
          }
          packMoves.push({ id: p.id, packId: writer.packId, offset: writer.append(page) });
        }
      } finally {
        fs.closeSync(fd);
      }
      // A damaged pack stays where it is (its copied pages become dead bytes in the new pack).
      if (problem !== undefined) {
        skipped.push({ packId: pack.id, reason: problem });
        continue;
      }
      moves.push(...packMoves);
      compacted.push(pack.id);
    }
    for (const w of writers) await w.sync();
    if (writers.length > 0) await syncDirectory(layout.packsDir);
  } catch (err) {
    for (const w of writers) {
      w.close();
      fs.rmSync(w.file, { force: true });
    }
    throw err;
  }
  for (const w of writers) w.close();

  const newPacks: PackRow[] = writers.map((w) => ({ id: w.packId, length: w.length, sealed: true, createdAtMs: Date.now() }));
  const deleted = index.switchPacks({ newPacks, moves, oldPacks: compacted, nextPackId });
  let bytesFreed = 0;
  for (const id of deleted) bytesFreed += unlink(layout.packFile(id));
  for (const w of writers) {
    makePackReadOnly(w.file);
    bytesFreed -= sizeOf(w.file);
  }
  for (const id of compacted) if (!deleted.includes(id)) pinnedKept.add(id);
  return { compacted, created: writers.map((w) => w.packId), deleted, skipped, bytesFreed };
}
