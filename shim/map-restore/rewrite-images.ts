// Rewrites a dump's images so that CRIU restores the managed-heap regions of every task as
// private mappings of one page-cache file instead of copying their pages (see map-plan.ts and
// ../../../shared/MAP-RESTORE.md for the fields). The page-cache file is under its name at full
// size before CRIU opens it, complete and sealed before any restored task runs (a restore that
// writes it meanwhile holds its tasks: resume-gate.ts), and never written again once sealed: a
// mapped file that changed would show through, one that shrank would SIGBUS.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listPagemaps, PAGE_SIZE, pagesFileName } from '../criu/checkpoint-images';
import { decodeEntry, encodeEntry, u64ToBigInt, type WireLong } from '../criu/criu-proto';
import { readImageFile, writeImageFile } from '../criu/image-file';
import { ImageKinds } from '../criu/image-kind';
import { writePagemapFile } from '../criu/pagemap';
import { readFullyAsync, replaceFileDurably, syncDirectory, syncFd, writeFullyAsync } from '../store/durable-fs';
import { sealPathOf } from '../store/page-cache-dir';
import { readHeapRanges } from './heap-ranges';
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

export interface TaskImages extends TaskLayout {
  readonly pid: string;
  readonly mmPath: string;
  readonly mm: MmEntry;
  readonly pagemapPath: string;
  readonly pagesId: number;
  readonly pageCountField: 'u32' | 'u64';
  readonly plan: MapPlan;
}

/** One task's part of the page-cache file, and which of its dumped pages go where. */
export interface TaskLayout {
  /** The task's dumped pages file. */
  readonly pagesPath: string;
  /** Where this task's extent starts in the page-cache file. */
  readonly fileBase: number;
  readonly plan: Pick<MapPlan, 'toFile' | 'toPages'>;
}

/** What writing a page-cache file (and the pages that stay private) needs of a plan. */
export interface PageCacheLayout {
  readonly tasks: readonly TaskLayout[];
  readonly fileBytes: number;
  /** Names the page-cache file's layout (which dumped pages sit where). */
  readonly layout: string;
}

/** What a rewrite will do to a dump's images; computed from mm-*.img and pagemap-*.img only. */
export interface ImagesMapPlan extends PageCacheLayout {
  /** The tasks with something to map. */
  readonly tasks: readonly TaskImages[];
}

/** Plans every task of a dump; needs no pages file (a restore plans before rebuilding pages). */
export async function planImagesMapping(imageDir: string): Promise<ImagesMapPlan> {
  const tasks: TaskImages[] = [];
  let fileBytes = 0;
  const heapRanges = readHeapRanges(imageDir);
  for (const pagemap of await listPagemaps(imageDir)) {
    if (pagemap.kind !== 'task') continue;
    const mmPath = path.join(imageDir, `mm-${pagemap.id}.img`);
    const mmImage = await readImageFile(mmPath, ImageKinds.MM);
    if (mmImage.entries.length !== 1) throw new Error(`${mmPath}: expected one mm entry, found ${mmImage.entries.length}`);
    const mm = decodeEntry('mm_entry', mmImage.entries[0].payload, { file: mmPath }) as unknown as MmEntry;
    const vmas = mm.vmas.map((v) => ({ start: Number(u64ToBigInt(v.start)), end: Number(u64ToBigInt(v.end)), prot: v.prot, flags: v.flags, status: v.status }));
    const plan = planTaskMapping(vmas, pagemap.pagemap.entries, heapRanges.get(pagemap.id));
    if (plan.regions.length === 0) continue;
    tasks.push({ pid: pagemap.id, mmPath, mm, pagemapPath: pagemap.pagemapPath, pagesPath: pagemap.pagesPath, pagesId: pagemap.pagemap.pagesId, pageCountField: pagemap.pagemap.pageCountField, plan, fileBase: fileBytes });
    fileBytes += plan.fileBytes;
  }
  const layout = layoutOf(tasks.map((t) => ({ pid: t.pid, pagesFile: path.basename(t.pagesPath), fileBase: t.fileBase, toFile: t.plan.toFile })));
  return { tasks, fileBytes, layout };
}

/** The name of a page-cache file's layout: which dumped pages of which task sit where. */
export function layoutOf(tasks: ReadonlyArray<{ pid: string; pagesFile: string; fileBase: number; toFile: readonly ByteCopy[] }>): string {
  return crypto
    .createHash('sha256')
    .update(JSON.stringify(tasks.map((t) => [t.pid, t.pagesFile, t.fileBase, t.toFile.map((c) => ({ from: c.from, to: c.to, length: c.length }))])))
    .digest('hex');
}

/**
 * Rewrites `imageDir` in place from its dumped pages. With `reuse`, a sealed page-cache file
 * of the same layout already at hostPath is taken as it is (the caller names files per
 * checkpoint); otherwise it is written from the dumped pages first. Returns what was mapped;
 * with nothing mappable the images are left untouched.
 */
export async function rewriteForMapping(imageDir: string, cache: PageCacheFile, options: { reuse?: boolean } = {}): Promise<MapRewrite> {
  const plan = await planImagesMapping(imageDir);
  if (plan.tasks.length === 0) return { tasks: 0, mappings: 0, mappedPages: 0, keptPages: 0, fileBytes: 0, wroteFile: false };
  const reused = options.reuse === true && isSealedPageCacheFile(cache.hostPath, plan);
  if (!reused) {
    await writeSealedPageCacheFile(cache.hostPath, plan, (fd, task) => copyRanges(task.pagesPath, fd, task.plan.toFile, task.fileBase));
  }
  for (const task of plan.tasks) {
    // The pages that stay, into a new pages file.
    const newPages = path.join(imageDir, `.${pagesFileName(task.pagesId)}.mapped`);
    await copyInto(task.pagesPath, newPages, task.plan.toPages, task.plan.keptPages * PAGE_SIZE);
    fs.renameSync(newPages, task.pagesPath);
  }
  return { ...(await applyImagesMapping(imageDir, plan, cache)), wroteFile: !reused };
}

/**
 * The image edits of a planned rewrite, once the page-cache file is sealed and each task's
 * pages file holds only its kept pages: the file in files.img, each task's pagemap (the kept
 * entries) and mm (the regions as private mappings of the file).
 */
export async function applyImagesMapping(imageDir: string, plan: ImagesMapPlan, cache: Pick<PageCacheFile, 'pathInRestore'>, outDir: string = imageDir): Promise<MapRewrite> {
  const summary = { tasks: plan.tasks.length, mappings: 0, mappedPages: 0, keptPages: 0, fileBytes: plan.fileBytes, wroteFile: false };
  if (plan.tasks.length === 0) return summary;
  const fileId = await addFileEntry(imageDir, outDir, cache, plan.fileBytes);
  for (const task of plan.tasks) {
    await writePagemapFile(path.join(outDir, path.basename(task.pagemapPath)), { pagesId: task.pagesId, pageCountField: task.pageCountField, entries: task.plan.keptEntries });
    for (const region of task.plan.regions) {
      const vma = task.mm.vmas[region.vmaIndex];
      vma.status = (vma.status & ~VMA_ANON_PRIVATE) | VMA_FILE_PRIVATE;
      vma.flags &= ~MAP_ANONYMOUS; // left in, CRIU would map zeroes
      vma.shmid = fileId;
      vma.pgoff = task.fileBase + region.fileOffset;
      vma.fdflags = O_RDONLY;
    }
    await writeImageFile(path.join(outDir, path.basename(task.mmPath)), ImageKinds.MM, [encodeEntry('mm_entry', task.mm)]);
    summary.mappings += task.plan.regions.length;
    summary.mappedPages += task.plan.mappedPages;
    summary.keptPages += task.plan.keptPages;
  }
  return summary;
}

// ---- the sealed page-cache file ---------------------------------------------------------
//
// A page-cache file is trusted only with its seal beside it (`<file>.seal`): the layout it
// was written for, the boot it was written in, and the identity (device, inode, size, ctime)
// it had once complete. The seal goes after the file is complete under its name and is
// removed before a file is replaced, so at any instant there is either a sealed complete
// file or one that is not trusted (and is written again). A sealed file whose identity no
// longer matches was changed after sealing: that is an error, never silently mapped or
// replaced.
//
// The file is not fsynced when written: it is a cache of pages the store holds durably, and
// within one boot every reader (CRIU's mappings included) sees the page cache, so a killed
// shim leaves nothing half-visible behind a seal. Only a kernel crash or power loss could
// leave its blocks incomplete on disk, and after that the boot id differs: the seal no longer
// counts and the next restore writes the file again. That saves an fsync of the whole file
// (about 200 MiB, 0.4 s here) on the first restore of every checkpoint. Once a later
// checkpoint depends on the file it is made durable (makePageCacheFileDurable).

export class PageCacheAlteredError extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`page-cache file ${file} was changed after it was sealed (${detail}); it is not mapped. Remove it and its .seal (pageshare store gc removes them once no container maps them) to have it written again`);
    this.name = 'PageCacheAlteredError';
  }
}

interface PageCacheSeal {
  readonly version: 1;
  readonly layout: string;
  readonly bootId: string;
  readonly size: number;
  readonly dev: string;
  readonly ino: string;
  readonly ctimeNs: string;
  /** Set once the file and its name were fsynced (when a later checkpoint came to depend on it). */
  readonly durable?: boolean;
  /** Written at checkpoint for this container (a later checkpoint of it supersedes the file). */
  readonly preparedFor?: string;
  /** When that checkpoint was made durable (ms): only an earlier one's file is superseded. */
  readonly preparedAt?: number;
}

/** The container and time a sealed page-cache file was written for at checkpoint, if it was. */
export function preparedOf(hostPath: string): { readonly for: string; readonly at: number } | undefined {
  const seal = readSeal(hostPath);
  return seal?.preparedFor === undefined ? undefined : { for: seal.preparedFor, at: seal.preparedAt ?? 0 };
}

let bootIdCache: string | undefined;
function bootId(): string {
  return (bootIdCache ??= fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
}

function identityOf(file: string): Omit<PageCacheSeal, 'version' | 'layout' | 'bootId'> | undefined {
  try {
    const st = fs.statSync(file, { bigint: true });
    return { size: Number(st.size), dev: st.dev.toString(), ino: st.ino.toString(), ctimeNs: st.ctimeNs.toString() };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function readSeal(hostPath: string): PageCacheSeal | undefined {
  let text: string;
  try {
    text = fs.readFileSync(sealPathOf(hostPath), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const seal = JSON.parse(text) as PageCacheSeal;
    return seal.version === 1 ? seal : undefined;
  } catch {
    return undefined; // a torn seal seals nothing
  }
}

/**
 * Why the file at hostPath cannot be mapped as it is, or undefined if it can: 'unsealed'
 * when there is no file, no seal, a seal for another layout, or a seal of an earlier boot
 * for a file never made durable (such a file is written again); 'altered' with the detail
 * when the sealed file itself changed. `layout` undefined accepts any layout (a later
 * checkpoint that maps the file keeps the offsets it was dumped with).
 */
export function pageCacheSealProblem(hostPath: string, layout?: string): { kind: 'unsealed' | 'altered'; detail: string } | undefined {
  const seal = readSeal(hostPath);
  const now = identityOf(hostPath);
  if (now === undefined) return { kind: 'unsealed', detail: 'there is no such file' };
  if (seal === undefined) return { kind: 'unsealed', detail: 'it has no seal' };
  if (layout !== undefined && seal.layout !== layout) return { kind: 'unsealed', detail: 'it was written for another layout' };
  const sameBoot = seal.bootId === bootId();
  if (!sameBoot && seal.durable !== true) return { kind: 'unsealed', detail: 'it was written before the last reboot and never made durable' };
  // The device number may change across a reboot; the inode, size and ctime on disk do not.
  const fields = sameBoot ? (['size', 'dev', 'ino', 'ctimeNs'] as const) : (['size', 'ino', 'ctimeNs'] as const);
  const changed = fields.filter((k) => String(seal[k]) !== String(now[k]));
  if (changed.length > 0) return { kind: 'altered', detail: `${changed.join(', ')} differ from the seal` };
  return undefined;
}

/**
 * Whether hostPath is a sealed page-cache file for this plan's layout: false when it is to
 * be written (again); throws PageCacheAlteredError when the sealed file itself changed.
 */
export function isSealedPageCacheFile(hostPath: string, plan: PageCacheLayout): boolean {
  const problem = pageCacheSealProblem(hostPath, plan.layout);
  if (problem?.kind === 'altered') throw new PageCacheAlteredError(hostPath, problem.detail);
  if (problem !== undefined) return false;
  const size = identityOf(hostPath)?.size;
  if (size !== plan.fileBytes) throw new PageCacheAlteredError(hostPath, `${size} bytes, the layout needs ${plan.fileBytes}`);
  return true;
}

/**
 * Makes a sealed page-cache file survive a crash: fsyncs it and its dir, then marks its seal
 * durable (written aside, fsynced, renamed). For files a later checkpoint depends on: their
 * own checkpoint may be gone by then, and nothing could write them again.
 */
export async function makePageCacheFileDurable(hostPath: string): Promise<void> {
  const problem = pageCacheSealProblem(hostPath);
  if (problem !== undefined) throw new Error(`page-cache file ${hostPath} cannot be made durable: ${problem.detail}`);
  const seal = readSeal(hostPath) as PageCacheSeal;
  if (seal.durable === true) return;
  const fd = fs.openSync(hostPath, 'r');
  try {
    await syncFd(fd);
  } finally {
    fs.closeSync(fd);
  }
  await syncDirectory(path.dirname(hostPath));
  await replaceFileDurably(sealPathOf(hostPath), Buffer.from(JSON.stringify({ ...seal, durable: true })), 0o444);
}

/**
 * Writes the page-cache file of `plan` at hostPath (fill writes each task's pages through
 * the fd) and seals it once complete.
 */
export async function writeSealedPageCacheFile<T extends TaskLayout>(hostPath: string, plan: PageCacheLayout & { readonly tasks: readonly T[] }, fill: (fd: number, task: T) => Promise<void>): Promise<void> {
  await (await startPageCacheFile(hostPath, plan, fill)).complete;
}

/**
 * Starts writing the page-cache file of `plan`: resolves once the file (its full size, not
 * yet filled, unsealed) is under hostPath, so CRIU can open and map it; `complete` settles
 * once fill has written every task's pages and the file is sealed. Nothing may read the
 * mapped pages before that (see resume-gate.ts). On failure the unsealed file is removed
 * again if the name still holds it. The caller keeps other writers of hostPath out until
 * `complete` settles (an unsealed file is otherwise fair game to replace).
 */
export async function startPageCacheFile<T extends TaskLayout>(
  hostPath: string,
  plan: PageCacheLayout & { readonly tasks: readonly T[] },
  fill: (fd: number, task: T) => Promise<void>,
  sealed: Pick<PageCacheSeal, 'preparedFor' | 'preparedAt'> = {},
): Promise<{ complete: Promise<void> }> {
  const tmp = `${hostPath}.${process.pid}-${crypto.randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o444);
  let ino: bigint;
  try {
    fs.ftruncateSync(fd, plan.fileBytes);
    ino = fs.fstatSync(fd, { bigint: true }).ino;
    // The seal first: at no instant does a seal stand beside a file it was not made for.
    fs.rmSync(sealPathOf(hostPath), { force: true });
    fs.renameSync(tmp, hostPath);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  /** hostPath's identity while it is still the file written here, else undefined. */
  const ours = (): ReturnType<typeof identityOf> => {
    const identity = identityOf(hostPath);
    return identity?.ino === ino.toString() ? identity : undefined;
  };
  const complete = (async () => {
    try {
      for (const task of plan.tasks) await fill(fd, task);
    } catch (err) {
      if (ours() !== undefined) fs.rmSync(hostPath, { force: true });
      throw err;
    } finally {
      fs.closeSync(fd);
    }
    const identity = ours();
    if (identity === undefined) throw new Error(`page-cache file ${hostPath} was replaced while it was being written`);
    const seal: PageCacheSeal = { version: 1, layout: plan.layout, bootId: bootId(), ...identity, ...sealed };
    const sealTmp = `${tmp}.seal`;
    fs.writeFileSync(sealTmp, JSON.stringify(seal), { mode: 0o444 });
    fs.renameSync(sealTmp, sealPathOf(hostPath));
  })();
  complete.catch(() => undefined); // the caller awaits it; this only marks it handled meanwhile
  return { complete };
}

async function copyInto(fromFile: string, toFile: string, copies: readonly ByteCopy[], size: number): Promise<void> {
  const fd = fs.openSync(toFile, 'w', 0o644);
  try {
    fs.ftruncateSync(fd, size);
    await copyRanges(fromFile, fd, copies);
  } finally {
    fs.closeSync(fd);
  }
}

/** Copies the byte ranges `copies` names from `fromFile` into toFd, each at `base` + its `to`. */
export async function copyRanges(fromFile: string, toFd: number, copies: readonly ByteCopy[], base = 0): Promise<void> {
  const from = fs.openSync(fromFile, 'r');
  const buffer = Buffer.allocUnsafe(COPY_CHUNK);
  try {
    for (const c of copies) {
      for (let done = 0; done < c.length; ) {
        const want = Math.min(COPY_CHUNK, c.length - done);
        const got = await readFullyAsync(from, buffer, want, c.from + done);
        if (got !== want) throw new Error(`${fromFile}: short read at ${c.from + done} (${got} of ${want} bytes)`);
        await writeFullyAsync(toFd, buffer.subarray(0, got), base + c.to + done);
        done += got;
      }
    }
  } finally {
    fs.closeSync(from);
  }
}

/** Adds the page-cache file to files.img (written into outDir) as a read-only regular file; returns its id. */
async function addFileEntry(imageDir: string, outDir: string, cache: Pick<PageCacheFile, 'pathInRestore'>, size: number): Promise<number> {
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
  await writeImageFile(path.join(outDir, 'files.img'), ImageKinds.FILES, [...image.entries.map((e) => e.payload), encodeEntry('file_entry', entry)]);
  return id;
}

