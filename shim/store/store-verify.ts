// `pageshare store verify`: re-hash every indexed page, check every pack file against the
// index, and every checkpoint's references against the pages. It reads one snapshot of the
// index (its own connection), holds the gc lock shared (gc cannot delete or move anything
// meanwhile) and lets ingests go on: bytes an ingest is appending show up as reclaimable.
//
// Problems are what makes a kept checkpoint unrestorable (or the index self-contradictory);
// leftovers of crashes (bytes after a pack's committed length, pack files no index row
// names, files in tmp/) are reclaimable space, not problems.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { PAGE_SIZE } from '../criu/page-size';
import { readFully } from './durable-fs';
import { PACK_HEADER_SIZE, PackHeaderFormatError, decodePackHeader } from './pack-header';
import { PackRow, PageIndex } from './page-index';
import { hashPage } from './page-hash';
import { hashHex } from './page-ref';
import { StoreLayout } from './store-layout';

export type VerifyProblemKind =
  /** The index names a pack whose file is not there. */
  | 'pack-missing'
  /** A pack file's header is damaged or names another pack or store. */
  | 'pack-header'
  /** A pack file is shorter than its committed length. */
  | 'pack-short'
  /** A page's bytes do not hash to its name. */
  | 'page-corrupt'
  /** A page's bytes are not in its pack file (missing file or too short). */
  | 'page-missing'
  /** A page's offset is not a page slot below its pack's committed length. */
  | 'page-misplaced'
  /** A page names a pack the index does not have. */
  | 'page-without-pack'
  /** A checkpoint references a page row the index does not have. */
  | 'reference-dangling';

export interface VerifyProblem {
  readonly kind: VerifyProblemKind;
  readonly message: string;
  readonly packId?: number;
  readonly offset?: number;
  /** The page's name (hex). */
  readonly hash?: string;
  /** Kept checkpoints that cannot be restored because of this problem. */
  readonly checkpointIds?: readonly string[];
}

export interface VerifyProgress {
  readonly pagesChecked: number;
  readonly pagesTotal: number;
}

export interface VerifyReport {
  /** True when every kept checkpoint can be restored from this store. */
  readonly ok: boolean;
  /** The first problems found (at most MAX_LISTED_PROBLEMS). */
  readonly problems: readonly VerifyProblem[];
  readonly problemCount: number;
  /** Checkpoints that need a damaged or missing page. */
  readonly damagedCheckpoints: readonly string[];
  readonly packsChecked: number;
  readonly pagesChecked: number;
  readonly checkpointsChecked: number;
  readonly reclaimable: {
    /** Bytes after packs' committed lengths (left by crashed or running ingests). */
    readonly tailBytes: number;
    /** Bytes of pages gc dropped from the index that are still in pack files. */
    readonly deadBytes: number;
    /** Pack files no index row names, and files in tmp/ (what gc would remove). */
    readonly orphanFiles: readonly string[];
    readonly orphanBytes: number;
  };
}

export const MAX_LISTED_PROBLEMS = 1000;
const READ_CHUNK_BYTES = 4 * 1024 * 1024;

class ProblemList {
  readonly listed: VerifyProblem[] = [];
  count = 0;

  add(p: VerifyProblem): void {
    this.count++;
    if (this.listed.length < MAX_LISTED_PROBLEMS) this.listed.push(p);
  }
}

function fileSize(file: string): number | undefined {
  try {
    return fs.statSync(file).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function checkHeaderOf(fd: number, pack: PackRow, storeId: string): string | undefined {
  const buf = Buffer.alloc(PACK_HEADER_SIZE);
  const n = readFully(fd, buf, PACK_HEADER_SIZE, 0);
  try {
    const h = decodePackHeader(buf.subarray(0, n));
    if (h.packId !== pack.id) return `its header names pack ${h.packId}`;
    if (h.storeId !== storeId) return `it belongs to store ${h.storeId}`;
    return undefined;
  } catch (err) {
    if (err instanceof PackHeaderFormatError) return err.message;
    throw err;
  }
}

/** Verify a store through index (a connection of its own: verify holds a read snapshot). */
export async function verifyStore(
  layout: StoreLayout,
  index: PageIndex,
  onProgress?: (progress: VerifyProgress) => void,
): Promise<VerifyReport> {
  const problems = new ProblemList();
  let tailBytes = 0;
  let deadBytes = 0;
  let pagesChecked = 0;
  index.beginRead();
  try {
    const packs = index.packs();
    const live = index.livePagesPerPack();
    let pagesTotal = 0;
    for (const n of live.values()) pagesTotal += n;
    const checkpoints = index.listCheckpoints();
    const report = (): void => onProgress?.({ pagesChecked, pagesTotal });
    report();

    for (const pack of packs) {
      const file = layout.packFile(pack.id);
      const pages = index.pagesOfPack(pack.id);
      const size = fileSize(file);
      deadBytes += Math.max(0, pack.length - PACK_HEADER_SIZE - pages.length * PAGE_SIZE);
      if (size === undefined) {
        problems.add({ kind: 'pack-missing', packId: pack.id, message: `pack ${pack.id} (${file}) is missing; ${pages.length} pages were in it` });
        for (const p of pages) {
          problems.add({ kind: 'page-missing', packId: pack.id, offset: p.offset, hash: hashHex(p.hash), message: `page ${hashHex(p.hash)} was in missing pack ${pack.id}` });
        }
        pagesChecked += pages.length;
        continue;
      }
      if (size > pack.length) tailBytes += size - pack.length;
      if (size < pack.length) {
        problems.add({ kind: 'pack-short', packId: pack.id, message: `pack ${pack.id} (${file}) is ${size} bytes, its committed length is ${pack.length}` });
      }
      const fd = fs.openSync(file, fs.constants.O_RDONLY);
      try {
        const headerProblem = checkHeaderOf(fd, pack, index.storeId);
        if (headerProblem !== undefined) {
          problems.add({ kind: 'pack-header', packId: pack.id, message: `pack ${pack.id} (${file}) header: ${headerProblem}` });
        }
        await verifyPackPages(fd, pack, size, pages, problems, (n) => {
          pagesChecked += n;
          report();
        });
      } finally {
        fs.closeSync(fd);
      }
    }

    for (const p of index.pagesWithoutPack()) {
      problems.add({ kind: 'page-without-pack', packId: p.packId, offset: p.offset, hash: hashHex(p.hash), message: `page ${hashHex(p.hash)} is indexed in pack ${p.packId}, which the index does not have` });
    }
    for (const r of index.danglingRefs()) {
      problems.add({
        kind: 'reference-dangling',
        checkpointIds: [r.checkpointId],
        message: `checkpoint ${r.checkpointId} references page #${r.pageId}, which the store does not have`,
      });
    }

    // Which checkpoints each listed page problem breaks.
    const damaged = new Set<string>();
    const users = index.checkpointsReferencing(
      problems.listed.flatMap((p) => (p.hash !== undefined && p.checkpointIds === undefined ? [Buffer.from(p.hash, 'hex')] : [])),
    );
    for (const [i, p] of problems.listed.entries()) {
      const ids = p.checkpointIds ?? (p.hash === undefined ? undefined : (users.get(p.hash) ?? []));
      if (ids === undefined) continue;
      for (const id of ids) damaged.add(id);
      problems.listed[i] = { ...p, checkpointIds: ids };
    }

    index.endRead();
    // Against the current index, not the snapshot: packs committed meanwhile are not orphans.
    const orphans = findOrphans(layout, new Set(index.packs().map((p) => p.id)));
    return {
      ok: problems.count === 0,
      problems: problems.listed,
      problemCount: problems.count,
      damagedCheckpoints: [...damaged].sort(),
      packsChecked: packs.length,
      pagesChecked,
      checkpointsChecked: checkpoints.length,
      reclaimable: { tailBytes, deadBytes, orphanFiles: orphans.files, orphanBytes: orphans.bytes },
    };
  } finally {
    index.endRead();
  }
}

async function verifyPackPages(
  fd: number,
  pack: PackRow,
  size: number,
  pages: ReadonlyArray<{ hash: Buffer; offset: number }>,
  problems: ProblemList,
  checked: (n: number) => void,
): Promise<void> {
  const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  let i = 0;
  while (i < pages.length) {
    const p = pages[i];
    if (p.offset < PACK_HEADER_SIZE || p.offset % PAGE_SIZE !== 0 || p.offset + PAGE_SIZE > pack.length) {
      problems.add({ kind: 'page-misplaced', packId: pack.id, offset: p.offset, hash: hashHex(p.hash), message: `page ${hashHex(p.hash)} is indexed at offset ${p.offset} of pack ${pack.id}, outside its committed pages` });
      i++;
      checked(1);
      continue;
    }
    // Read the pages that follow back to back in one go.
    let j = i + 1;
    while (j < pages.length && (j - i + 1) * PAGE_SIZE <= READ_CHUNK_BYTES && pages[j].offset === pages[j - 1].offset + PAGE_SIZE && pages[j].offset + PAGE_SIZE <= pack.length) j++;
    const want = Math.max(0, Math.min((j - i) * PAGE_SIZE, size - p.offset));
    const n = want > 0 ? readFully(fd, chunk, want, p.offset) : 0;
    for (let k = i; k < j; k++) {
      const q = pages[k];
      const at = (k - i) * PAGE_SIZE;
      if (at + PAGE_SIZE > n) {
        problems.add({ kind: 'page-missing', packId: pack.id, offset: q.offset, hash: hashHex(q.hash), message: `page ${hashHex(q.hash)} lies past the end of pack ${pack.id} (offset ${q.offset})` });
        continue;
      }
      const actual = hashPage(chunk.subarray(at, at + PAGE_SIZE));
      if (!actual.equals(q.hash)) {
        problems.add({ kind: 'page-corrupt', packId: pack.id, offset: q.offset, hash: hashHex(q.hash), message: `page ${hashHex(q.hash)} in pack ${pack.id} at offset ${q.offset} hashes to ${hashHex(actual)}` });
      }
    }
    checked(j - i);
    i = j;
    await yieldToLoop();
  }
}

/** Pack files the index does not name, and everything in tmp/. */
export function findOrphans(layout: StoreLayout, knownPacks: ReadonlySet<number>): { files: string[]; bytes: number } {
  const files: string[] = [];
  let bytes = 0;
  const add = (file: string): void => {
    const size = fileSize(file);
    if (size === undefined) return;
    files.push(file);
    bytes += size;
  };
  for (const name of safeReaddir(layout.packsDir).sort()) {
    const id = StoreLayout.packIdOf(name);
    if (id !== undefined && !knownPacks.has(id)) add(path.join(layout.packsDir, name));
  }
  for (const name of safeReaddir(layout.tmpDir).sort()) add(path.join(layout.tmpDir, name));
  return { files, bytes };
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
