// The page-cache files of map-mode restores, as the store sees them on disk:
//
//   <root>/page-cache/<namespace>/          one sharing domain
//     <checkpointId>.pages                  read-only, sparse; mapped by restored replicas
//     <checkpointId>.pages.seal             what makes a restore trust the file
//     <checkpointId>.pages.refs/<dependent> a later checkpoint that needs the file (empty marker)
//     <name>.<pid>[-<tag>].tmp[.seal]       a file (or its seal) being written by process pid
//
// Only these names belong to a checkpoint's files; anything else in the dirs is left alone.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const PAGE_CACHE_DIR = 'page-cache';
const PAGES = '.pages';
const SEAL = '.pages.seal';
const REFS = '.pages.refs';
const TMP = /\.(\d+)(?:-[0-9a-z]+)?\.tmp(?:\.seal)?$/;

/** One checkpoint's files in one domain; at least one of them exists. */
export interface PageCacheFiles {
  readonly namespace: string;
  readonly checkpointId: string;
  readonly pagesFile: string;
  readonly sealFile: string;
  readonly refsDir: string;
  readonly hasPages: boolean;
  readonly hasSeal: boolean;
  readonly hasRefs: boolean;
}

/** A file some process was writing (renamed into place once complete). */
export interface PageCacheTmpFile {
  readonly file: string;
  readonly writerPid: number;
}

export interface PageCacheListing {
  /** By namespace, then checkpoint id. */
  readonly files: readonly PageCacheFiles[];
  readonly tmpFiles: readonly PageCacheTmpFile[];
}

export interface PageCacheStats {
  /** .pages files. */
  readonly files: number;
  /** Their sizes (holes included). */
  readonly apparentBytes: number;
  /** The blocks they take on disk (they are sparse). */
  readonly allocatedBytes: number;
}

export function pageCacheRoot(storeRoot: string): string {
  return path.join(storeRoot, PAGE_CACHE_DIR);
}

/** The page-cache file of a checkpoint, by name (in its domain dir). */
export function pageCacheFileName(checkpointId: string): string {
  return `${checkpointId}${PAGES}`;
}

/** The seal beside a page-cache file. */
export function sealPathOf(pagesFile: string): string {
  return `${pagesFile}${SEAL.slice(PAGES.length)}`;
}

/** The dir of markers of the checkpoints that depend on a page-cache file. */
export function refsDirPathOf(pagesFile: string): string {
  return `${pagesFile}${REFS.slice(PAGES.length)}`;
}

function entriesOf(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** The checkpoint files and tmp files of every domain; absent dirs list nothing. */
export function listPageCache(storeRoot: string): PageCacheListing {
  const files: PageCacheFiles[] = [];
  const tmpFiles: PageCacheTmpFile[] = [];
  const byName = (a: fs.Dirent, b: fs.Dirent): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const domain of entriesOf(pageCacheRoot(storeRoot)).sort(byName)) {
    if (!domain.isDirectory()) continue;
    const dir = path.join(pageCacheRoot(storeRoot), domain.name);
    const found = new Map<string, { pages: boolean; seal: boolean; refs: boolean }>();
    const note = (id: string, kind: 'pages' | 'seal' | 'refs'): void => {
      if (id === '') return;
      const f = found.get(id) ?? { pages: false, seal: false, refs: false };
      f[kind] = true;
      found.set(id, f);
    };
    for (const e of entriesOf(dir)) {
      const tmp = TMP.exec(e.name);
      if (tmp !== null) {
        if (e.isFile()) tmpFiles.push({ file: path.join(dir, e.name), writerPid: Number(tmp[1]) });
      } else if (e.name.endsWith(REFS)) {
        if (e.isDirectory()) note(e.name.slice(0, -REFS.length), 'refs');
      } else if (e.name.endsWith(SEAL)) {
        if (e.isFile()) note(e.name.slice(0, -SEAL.length), 'seal');
      } else if (e.name.endsWith(PAGES)) {
        if (e.isFile()) note(e.name.slice(0, -PAGES.length), 'pages');
      }
    }
    for (const id of [...found.keys()].sort()) {
      const f = found.get(id)!;
      const pagesFile = path.join(dir, `${id}${PAGES}`);
      files.push({
        namespace: domain.name,
        checkpointId: id,
        pagesFile,
        sealFile: path.join(dir, `${id}${SEAL}`),
        refsDir: path.join(dir, `${id}${REFS}`),
        hasPages: f.pages,
        hasSeal: f.seal,
        hasRefs: f.refs,
      });
    }
  }
  return { files, tmpFiles };
}

/** Bytes a file takes on disk (0 once it is gone). */
export function allocatedBytes(file: string): number {
  try {
    return fs.lstatSync(file).blocks * 512;
  } catch {
    return 0;
  }
}

/** The .pages files of every domain: how many, and their apparent and allocated sizes. */
export function pageCacheStats(storeRoot: string): PageCacheStats {
  let files = 0;
  let apparentBytes = 0;
  let allocated = 0;
  for (const f of listPageCache(storeRoot).files) {
    if (!f.hasPages) continue;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(f.pagesFile);
    } catch {
      continue; // removed meanwhile
    }
    files++;
    apparentBytes += st.size;
    allocated += st.blocks * 512;
  }
  return { files, apparentBytes, allocatedBytes: allocated };
}
