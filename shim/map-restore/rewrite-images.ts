// Rewrites a dump's images so that CRIU restores the managed-heap regions of every task as
// private mappings of one page-cache file instead of copying their pages (see map-plan.ts and
// ../../../shared/MAP-RESTORE.md for the fields). The page-cache file is written, fsynced and
// renamed into place before any image names it, and is never written again: a mapped file that
// changed would show through, one that shrank would SIGBUS.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listPagemaps, PAGE_SIZE, pagesFileName } from '../criu/checkpoint-images';
import { decodeEntry, encodeEntry, u64ToBigInt, type WireLong } from '../criu/criu-proto';
import { readImageFile, writeImageFile } from '../criu/image-file';
import { ImageKinds } from '../criu/image-kind';
import { writePagemapFile } from '../criu/pagemap';
import { readFully, syncDirectorySync, writeFully } from '../store/durable-fs';
import { planTaskMapping, type ByteCopy, type MapPlan } from './map-plan';
import { MAP_ANONYMOUS, VMA_ANON_PRIVATE, VMA_FILE_PRIVATE } from './vma-status';

export interface PageCacheFile {
  /** Where the shim writes it. */
  readonly hostPath: string;
  /** The same file as the restored processes see it (the path CRIU opens in their mount namespace). */
  readonly pathInRestore: string;
}

export interface MapRewrite {
  readonly tasks: number;
  readonly mappings: number;
  readonly mappedPages: number;
  readonly keptPages: number;
  readonly fileBytes: number;
  /** False when an identical page-cache file (same checkpoint, same layout) was already there. */
  readonly wroteFile: boolean;
}

const FD_TYPE_REG = 1;
const O_RDONLY = 0;
const S_IFREG_READ_ONLY = 0o100444;
const COPY_CHUNK = 8 * 1024 * 1024;

interface MmEntry {
  vmas: Array<{ start: WireLong; end: WireLong; prot: number; flags: number; status: number; shmid: WireLong; pgoff: WireLong; fdflags?: number }>;
}

interface TaskImages {
  readonly pid: string;
  readonly mmPath: string;
  readonly mm: MmEntry;
  readonly pagemapPath: string;
  readonly pagesPath: string;
  readonly pagesId: number;
  readonly pageCountField: 'u32' | 'u64';
  readonly plan: MapPlan;
  /** Where this task's extent starts in the page-cache file. */
  readonly fileBase: number;
}

/**
 * Rewrites `imageDir` in place. With `reuse`, a page-cache file already at hostPath with the
 * planned size is taken as it is (the caller names files per checkpoint); otherwise it is
 * written from the dumped pages first. Returns what was mapped; with nothing mappable the
 * images are left untouched.
 */
export async function rewriteForMapping(imageDir: string, cache: PageCacheFile, options: { reuse?: boolean } = {}): Promise<MapRewrite> {
  const tasks: TaskImages[] = [];
  let fileBytes = 0;
  for (const pagemap of await listPagemaps(imageDir)) {
    if (pagemap.kind !== 'task') continue;
    const mmPath = path.join(imageDir, `mm-${pagemap.id}.img`);
    const mmImage = await readImageFile(mmPath, ImageKinds.MM);
    if (mmImage.entries.length !== 1) throw new Error(`${mmPath}: expected one mm entry, found ${mmImage.entries.length}`);
    const mm = decodeEntry('mm_entry', mmImage.entries[0].payload, { file: mmPath }) as unknown as MmEntry;
    const vmas = mm.vmas.map((v) => ({ start: Number(u64ToBigInt(v.start)), end: Number(u64ToBigInt(v.end)), prot: v.prot, flags: v.flags, status: v.status }));
    const plan = planTaskMapping(vmas, pagemap.pagemap.entries);
    if (plan.regions.length === 0) continue;
    tasks.push({ pid: pagemap.id, mmPath, mm, pagemapPath: pagemap.pagemapPath, pagesPath: pagemap.pagesPath, pagesId: pagemap.pagemap.pagesId, pageCountField: pagemap.pagemap.pageCountField, plan, fileBase: fileBytes });
    fileBytes += plan.fileBytes;
  }
  const summary = { tasks: tasks.length, mappings: 0, mappedPages: 0, keptPages: 0, fileBytes, wroteFile: false };
  if (tasks.length === 0) return summary;

  const reused = options.reuse === true && sizeOf(cache.hostPath) === fileBytes;
  if (!reused) writePageCacheFile(cache.hostPath, fileBytes, tasks);

  const fileId = await addFileEntry(imageDir, cache, fileBytes);
  for (const task of tasks) {
    // Pages that stay, into a new pages file; then the pagemap that describes them.
    const newPages = path.join(imageDir, `.${pagesFileName(task.pagesId)}.mapped`);
    copyInto(task.pagesPath, newPages, task.plan.toPages, task.plan.keptPages * PAGE_SIZE);
    fs.renameSync(newPages, task.pagesPath);
    await writePagemapFile(task.pagemapPath, { pagesId: task.pagesId, pageCountField: task.pageCountField, entries: task.plan.keptEntries });
    for (const region of task.plan.regions) {
      const vma = task.mm.vmas[region.vmaIndex];
      vma.status = (vma.status & ~VMA_ANON_PRIVATE) | VMA_FILE_PRIVATE;
      vma.flags &= ~MAP_ANONYMOUS; // left in, CRIU would map zeroes
      vma.shmid = fileId;
      vma.pgoff = task.fileBase + region.fileOffset;
      vma.fdflags = O_RDONLY;
    }
    await writeImageFile(task.mmPath, ImageKinds.MM, [encodeEntry('mm_entry', task.mm)]);
    summary.mappings += task.plan.regions.length;
    summary.mappedPages += task.plan.mappedPages;
    summary.keptPages += task.plan.keptPages;
  }
  return { ...summary, wroteFile: !reused };
}

function sizeOf(file: string): number | undefined {
  try {
    return fs.statSync(file).size;
  } catch {
    return undefined;
  }
}

/** Sparse, fsynced, then renamed into place, so a name that exists is a complete file. */
function writePageCacheFile(hostPath: string, fileBytes: number, tasks: readonly TaskImages[]): void {
  const tmp = `${hostPath}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o444);
  try {
    fs.ftruncateSync(fd, fileBytes);
    for (const task of tasks) {
      const copies = task.plan.toFile.map((c) => ({ ...c, to: task.fileBase + c.to }));
      copyRanges(task.pagesPath, fd, copies);
    }
    fs.fsyncSync(fd);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, hostPath);
  syncDirectorySync(path.dirname(hostPath));
}

function copyInto(fromFile: string, toFile: string, copies: readonly ByteCopy[], size: number): void {
  const fd = fs.openSync(toFile, 'w', 0o644);
  try {
    fs.ftruncateSync(fd, size);
    copyRanges(fromFile, fd, copies);
  } finally {
    fs.closeSync(fd);
  }
}

function copyRanges(fromFile: string, toFd: number, copies: readonly ByteCopy[]): void {
  const from = fs.openSync(fromFile, 'r');
  const buffer = Buffer.allocUnsafe(COPY_CHUNK);
  try {
    for (const c of copies) {
      for (let done = 0; done < c.length; ) {
        const want = Math.min(COPY_CHUNK, c.length - done);
        const got = readFully(from, buffer, want, c.from + done);
        if (got !== want) throw new Error(`${fromFile}: short read at ${c.from + done} (${got} of ${want} bytes)`);
        writeFully(toFd, buffer.subarray(0, got), c.to + done);
        done += got;
      }
    }
  } finally {
    fs.closeSync(from);
  }
}

/** Adds the page-cache file to files.img as a read-only regular file; returns its id. */
async function addFileEntry(imageDir: string, cache: PageCacheFile, size: number): Promise<number> {
  const filesPath = path.join(imageDir, 'files.img');
  const image = await readImageFile(filesPath, ImageKinds.FILES);
  let maxId = 0;
  for (const e of image.entries) {
    const entry = decodeEntry('file_entry', e.payload, { file: filesPath, offset: e.offset }, { unknownFields: 'ignore' }) as unknown as { id: number };
    maxId = Math.max(maxId, entry.id);
  }
  const id = maxId + 1;
  const entry = {
    type: FD_TYPE_REG,
    id,
    reg: { id, flags: O_RDONLY, pos: 0, fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 }, name: cache.pathInRestore, size, mode: S_IFREG_READ_ONLY },
  };
  await writeImageFile(filesPath, ImageKinds.FILES, [...image.entries.map((e) => e.payload), encodeEntry('file_entry', entry)]);
  return id;
}

