// A CRIU image directory seen as a set of page sources: every pagemap (one per task,
// pagemap-<pid>.img, and one per shared memory object, pagemap-shmem-<shmid>.img) with the
// raw pages-<pages_id>.img it names, and the present pages of each, read in large
// sequential chunks.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors/shim-error';
import { CriuImageError } from './criu-image-error';
import { Pagemap, presentPageCount, presentPageRuns, readPagemapFile } from './pagemap';
import { PAGE_SIZE } from './page-size';

export { PAGE_SIZE };

/** Bytes read from a pages file at a time. */
export const DEFAULT_PAGES_CHUNK_SIZE = 8 * 1024 * 1024;

export type PagemapKind = 'task' | 'shmem';

export interface PagemapFile {
  readonly kind: PagemapKind;
  /** The pid (task) or shmem id (shmem), as in the file name; a string because shmem ids are u64. */
  readonly id: string;
  readonly pagemapPath: string;
  readonly pagesPath: string;
  readonly pagemap: Pagemap;
}

export interface Page {
  /** Address of the page (task pagemap) or its byte offset in the object (shmem pagemap). */
  readonly vaddr: number;
  /**
   * PAGE_SIZE bytes: a view into the chunk it was read with (a fresh chunk per read, so a
   * page stays valid, but keeping one keeps its whole chunk in memory: copy to keep).
   */
  readonly page: Buffer;
}

export interface ReadPagesOptions {
  /** A positive multiple of PAGE_SIZE; DEFAULT_PAGES_CHUNK_SIZE when absent. */
  readonly chunkSize?: number;
}

const TASK_PAGEMAP = /^pagemap-(\d+)\.img$/;
const SHMEM_PAGEMAP = /^pagemap-shmem-(\d+)\.img$/;

export function pagesFileName(pagesId: number): string {
  return `pages-${pagesId}.img`;
}

function byId(a: PagemapFile, b: PagemapFile): number {
  if (a.kind !== b.kind) return a.kind === 'task' ? -1 : 1;
  const x = BigInt(a.id);
  const y = BigInt(b.id);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Every pagemap in `dir` (tasks first, then shmem objects, each by id), parsed. */
export async function listPagemaps(dir: string): Promise<PagemapFile[]> {
  const files: PagemapFile[] = [];
  const pagesOwner = new Map<number, string>();
  for (const name of (await fsp.readdir(dir)).sort()) {
    const task = TASK_PAGEMAP.exec(name);
    const shmem = task ? null : SHMEM_PAGEMAP.exec(name);
    const match = task ?? shmem;
    if (!match) continue;
    const pagemapPath = path.join(dir, name);
    const pagemap = await readPagemapFile(pagemapPath);
    const other = pagesOwner.get(pagemap.pagesId);
    if (other !== undefined) {
      throw new CriuImageError('BAD_ENTRY', pagemapPath, undefined, `names ${pagesFileName(pagemap.pagesId)}, which ${other} names too`);
    }
    pagesOwner.set(pagemap.pagesId, name);
    files.push({
      kind: task ? 'task' : 'shmem',
      id: match[1],
      pagemapPath,
      pagesPath: path.join(dir, pagesFileName(pagemap.pagesId)),
      pagemap,
    });
  }
  return files.sort(byId);
}

/**
 * Checks that the pages file holds exactly the pages the pagemap's present runs need, and
 * returns its size. A pagemap with no present pages needs no pages file.
 */
export async function checkPagesFile(file: PagemapFile): Promise<number> {
  const expected = presentPageCount(file.pagemap) * PAGE_SIZE;
  let size: number;
  try {
    size = (await fsp.stat(file.pagesPath)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && expected === 0) return 0;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CriuImageError('PAGES_MISMATCH', file.pagesPath, undefined, `is missing, but ${file.pagemapPath} has ${expected} bytes of present pages in it`);
    }
    throw err;
  }
  if (size !== expected) {
    throw new CriuImageError(
      'PAGES_MISMATCH',
      file.pagesPath,
      undefined,
      `is ${size} bytes, but the present runs of ${file.pagemapPath} need exactly ${expected}; the dump is incomplete or the files are from different dumps`,
    );
  }
  return size;
}

/** Every present page of a pagemap, in pages-file order (which is the pagemap's order). */
export async function* readPresentPages(file: PagemapFile, options: ReadPagesOptions = {}): AsyncGenerator<Page> {
  const chunkSize = options.chunkSize ?? DEFAULT_PAGES_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0 || chunkSize % PAGE_SIZE !== 0) {
    throw new InvalidArgumentError(`chunk size ${chunkSize} is not a positive multiple of ${PAGE_SIZE}`);
  }
  const total = await checkPagesFile(file);
  if (total === 0) return;

  const handle = await fsp.open(file.pagesPath, 'r');
  try {
    let chunk = Buffer.alloc(0);
    let chunkStart = 0;
    for (const run of presentPageRuns(file.pagemap)) {
      for (let i = 0; i < run.nrPages; i++) {
        const offset = run.pagesOffset + i * PAGE_SIZE;
        if (offset >= chunkStart + chunk.length) {
          chunkStart = offset;
          chunk = Buffer.allocUnsafe(Math.min(chunkSize, total - offset));
          await readFully(handle, chunk, offset, file.pagesPath);
        }
        const at = offset - chunkStart;
        yield { vaddr: run.vaddr + i * PAGE_SIZE, page: chunk.subarray(at, at + PAGE_SIZE) };
      }
    }
  } finally {
    await handle.close();
  }
}

async function readFully(handle: fsp.FileHandle, into: Buffer, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) {
      throw new CriuImageError('PAGES_MISMATCH', file, position + done, 'the file ended early: it shrank while it was read');
    }
    done += bytesRead;
  }
}
