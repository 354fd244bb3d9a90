// A checkpoint of a replica restored in map mode still maps the page-cache file its own
// restore mapped (CRIU dumps those regions as private file mappings plus their copy-on-write
// pages). Such a checkpoint depends on that file: the ingest records the dependency as an
// empty marker `<file>.refs/<checkpoint id>` in the domain dir, so store gc keeps the file
// while the checkpoint is kept, and a restore checks the files are there before CRIU runs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeEntry } from '../criu/criu-proto';
import { readImageFile } from '../criu/image-file';
import { ImageKinds } from '../criu/image-kind';
import { syncDirectorySync } from '../store/durable-fs';
import { refsDirPathOf } from '../store/page-cache-dir';
import { PAGE_CACHE_MOUNT } from './map-spec';
import { makePageCacheFileDurable, pageCacheSealProblem } from './rewrite-images';

const FD_TYPE_REG = 1;

/** The page-cache files (names in the domain dir) that a dump's files.img names. */
export async function pageCacheFilesNamed(imageDir: string): Promise<string[]> {
  const filesPath = path.join(imageDir, 'files.img');
  if (!fs.existsSync(filesPath)) return [];
  const image = await readImageFile(filesPath, ImageKinds.FILES);
  const names = new Set<string>();
  for (const e of image.entries) {
    const entry = decodeEntry('file_entry', e.payload, { file: filesPath, offset: e.offset }, { unknownFields: 'ignore' }) as unknown as { type: number; reg?: { name: string } };
    const name = entry.type === FD_TYPE_REG ? entry.reg?.name : undefined;
    if (name !== undefined && path.posix.dirname(name) === PAGE_CACHE_MOUNT) names.add(path.posix.basename(name));
  }
  return [...names].sort();
}

/**
 * Durable markers: checkpointId depends on each of `fileNames`, and each of those files is
 * made durable itself (see makePageCacheFileDurable).
 */
export async function recordPageCacheRefs(domainDir: string, fileNames: readonly string[], checkpointId: string): Promise<void> {
  for (const name of fileNames) {
    const file = path.join(domainDir, name);
    await makePageCacheFileDurable(file);
    const dir = refsDirPathOf(file);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.closeSync(fs.openSync(path.join(dir, checkpointId), 'w', 0o444));
    syncDirectorySync(dir);
    syncDirectorySync(domainDir);
  }
}

export class PageCacheFileMissingError extends Error {
  constructor(
    readonly checkpointId: string,
    readonly file: string,
    readonly detail: string,
  ) {
    super(`checkpoint ${checkpointId} maps the page-cache file ${file} (its container was itself restored in map mode), and it cannot be used: ${detail}; this checkpoint cannot be restored in this sharing domain`);
    this.name = 'PageCacheFileMissingError';
  }
}

/** Throws PageCacheFileMissingError for the first named file the domain lacks or cannot trust. */
export function checkPageCacheFilesPresent(domainDir: string, fileNames: readonly string[], checkpointId: string): void {
  for (const name of fileNames) {
    const file = path.join(domainDir, name);
    const problem = pageCacheSealProblem(file);
    if (problem !== undefined) throw new PageCacheFileMissingError(checkpointId, file, problem.kind === 'altered' ? `it changed after it was sealed (${problem.detail})` : problem.detail);
  }
}
