// Removing page-cache files (page-cache-dir.ts) no one needs any more. A checkpoint's files
// go when all of these hold:
// - the store no longer keeps the checkpoint;
// - no marker in its .refs dir names a checkpoint the store keeps (markers naming checkpoints
//   it does not keep are removed, whatever happens to the file);
// - no live process maps the .pages file (by device and inode, so replicas seeing it through
//   their bind mount count; while some process's maps cannot be read, no .pages file goes).
// Files being written go once their writer pid has exited.
//
// The caller holds the store's gc and writer locks: no ingest adds a checkpoint (or its
// markers' meaning) meanwhile. Order, for crashes: the .seal goes first, so at any instant a
// restore either sees the sealed file it trusted or a file without a seal, which it does not
// trust and rewrites; then the .pages file; the .refs dir last. A crash leaves a subset of a
// group whose checkpoint is still not kept, which the next gc removes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileIdentity, MappingScan, mappingKey, scanMappings } from '../proc/mapped-files';
import { processExited } from '../proc/proc-info';
import { syncDirectorySync } from './durable-fs';
import { PageCacheFiles, allocatedBytes, listPageCache } from './page-cache-dir';

export interface PageCacheGcOptions {
  /** Only these checkpoints' files (`checkpoint rm`); without it, every domain's files and tmp leftovers. */
  readonly checkpointIds?: readonly string[];
  /** Where processes are listed (tests). */
  readonly procDir?: string;
}

export interface PageCacheRemoval {
  readonly namespace: string;
  readonly checkpointId: string;
  /** Paths removed, in the order they went. */
  readonly removed: readonly string[];
  readonly bytesFreed: number;
}

/** A file of a checkpoint the store no longer keeps, left in place because something still needs it. */
export interface PageCacheHeld {
  readonly namespace: string;
  readonly checkpointId: string;
  readonly file: string;
  /** Pids mapping it. */
  readonly mappedBy: readonly number[];
  /** Kept checkpoints whose markers name it. */
  readonly referencedBy: readonly string[];
  /** Why the mappings could not be checked, if they could not. */
  readonly unchecked?: string;
}

export interface PageCacheGcReport {
  readonly removed: readonly PageCacheRemoval[];
  readonly held: readonly PageCacheHeld[];
  /** Markers naming checkpoints the store no longer keeps. */
  readonly staleMarkersRemoved: readonly string[];
  /** Files whose writer exited before renaming them into place. */
  readonly tmpFilesRemoved: readonly string[];
  /** Blocks given back (allocated sizes: the files are sparse). */
  readonly bytesFreed: number;
}

export const NO_PAGE_CACHE_GC: PageCacheGcReport = { removed: [], held: [], staleMarkersRemoved: [], tmpFilesRemoved: [], bytesFreed: 0 };

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** Unlink a file if it is there; returns the bytes it took, or undefined if it was not there. */
function unlinkFile(file: string): number | undefined {
  const bytes = allocatedBytes(file);
  try {
    fs.unlinkSync(file);
    return bytes;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Remove the markers naming checkpoints not kept; returns the kept ones they name. */
function pruneMarkers(refsDir: string, isKept: (id: string) => boolean, staleRemoved: string[]): string[] {
  const live: string[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(refsDir, { withFileTypes: true });
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return live;
    throw err;
  }
  let pruned = false;
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (!e.isFile()) continue;
    if (isKept(e.name)) {
      live.push(e.name);
    } else if (unlinkFile(path.join(refsDir, e.name)) !== undefined) {
      staleRemoved.push(path.join(refsDir, e.name));
      pruned = true;
    }
  }
  if (pruned) syncDirectorySync(refsDir);
  return live;
}

/** A file's identity as /proc/<pid>/maps names it; undefined once it is gone. */
export function mappedIdentityOf(file: string): FileIdentity | undefined {
  try {
    const st = fs.lstatSync(file, { bigint: true });
    return { dev: st.dev, ino: st.ino };
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Removes a checkpoint's seal, file and (empty) refs dir, in that order (see the header). */
export function removePageCacheFiles(f: PageCacheFiles): PageCacheRemoval {
  const removed: string[] = [];
  let bytesFreed = 0;
  for (const file of [f.sealFile, f.pagesFile]) {
    const bytes = unlinkFile(file);
    if (bytes === undefined) continue;
    removed.push(file);
    bytesFreed += bytes;
    // The seal's removal is durable before the file's.
    if (file === f.sealFile) syncDirectorySync(path.dirname(file));
  }
  try {
    fs.rmdirSync(f.refsDir);
    removed.push(f.refsDir);
  } catch (err) {
    // ENOTEMPTY: an entry that is no marker; it stays, and so does the dir.
    if (errnoOf(err) !== 'ENOENT' && errnoOf(err) !== 'ENOTEMPTY') throw err;
  }
  return { namespace: f.namespace, checkpointId: f.checkpointId, removed, bytesFreed };
}

function uncheckedReason(scan: MappingScan): string | undefined {
  const [first, ...more] = scan.unreadable;
  if (first === undefined) return undefined;
  const others = more.length === 0 ? '' : ` and ${more.length} other processes`;
  return `cannot tell whether it is mapped: the mappings of pid ${first.pid}${others} are unreadable (${first.code})`;
}

/** Remove the page-cache files no one needs (see the header). The caller holds the gc and writer locks. */
export function collectPageCache(storeRoot: string, isKept: (checkpointId: string) => boolean, options: PageCacheGcOptions = {}): PageCacheGcReport {
  const listing = listPageCache(storeRoot);
  const only = options.checkpointIds === undefined ? undefined : new Set(options.checkpointIds);
  const staleMarkersRemoved: string[] = [];
  const held: PageCacheHeld[] = [];
  const unused: Array<{ files: PageCacheFiles; identity: FileIdentity | undefined }> = [];
  for (const f of listing.files) {
    if (only !== undefined && !only.has(f.checkpointId)) continue;
    const referencedBy = f.hasRefs ? pruneMarkers(f.refsDir, isKept, staleMarkersRemoved) : [];
    if (isKept(f.checkpointId)) continue;
    if (referencedBy.length > 0) {
      held.push({ namespace: f.namespace, checkpointId: f.checkpointId, file: f.pagesFile, mappedBy: [], referencedBy });
      continue;
    }
    unused.push({ files: f, identity: f.hasPages ? mappedIdentityOf(f.pagesFile) : undefined });
  }

  const identities = unused.flatMap((u) => (u.identity === undefined ? [] : [u.identity]));
  const scan = scanMappings(identities, options.procDir);
  const unchecked = uncheckedReason(scan);
  const removed: PageCacheRemoval[] = [];
  const touched = new Set<string>();
  for (const { files: f, identity } of unused) {
    if (identity !== undefined) {
      const mappedBy = scan.mappers.get(mappingKey(identity)) ?? [];
      if (mappedBy.length > 0 || unchecked !== undefined) {
        const why = mappedBy.length === 0 && unchecked !== undefined ? { unchecked } : {};
        held.push({ namespace: f.namespace, checkpointId: f.checkpointId, file: f.pagesFile, mappedBy, referencedBy: [], ...why });
        continue;
      }
    }
    removed.push(removePageCacheFiles(f));
    touched.add(path.dirname(f.pagesFile));
  }

  const tmpFilesRemoved: string[] = [];
  let tmpBytes = 0;
  if (only === undefined) {
    for (const t of listing.tmpFiles) {
      if (!processExited(t.writerPid)) continue;
      const bytes = unlinkFile(t.file);
      if (bytes === undefined) continue;
      tmpFilesRemoved.push(t.file);
      tmpBytes += bytes;
      touched.add(path.dirname(t.file));
    }
  }
  for (const dir of touched) syncDirectorySync(dir);

  return {
    removed,
    held,
    staleMarkersRemoved,
    tmpFilesRemoved,
    bytesFreed: removed.reduce((sum, r) => sum + r.bytesFreed, tmpBytes),
  };
}
