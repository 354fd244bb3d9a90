// A map-mode restore's image edits, made once when the checkpoint is taken: the dump's mm,
// pagemap and files images rewritten to map the checkpoint's page-cache file, and the layout
// (which dumped pages go to the file, which stay private), kept in the checkpoint dir under
// PREPARED_MAPPING_DIR. The plan is arithmetic over images every restore gets anyway, so
// making it while the checkpoint's pages are being hashed takes it off the restores' critical
// path (measured on a first restore: 40-135 ms planning, 14-40 ms rewriting the images).
// A checkpoint without it (older, or dumped without the page-cache mount), or with one that
// does not check out, is planned at restore as before.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PAGE_SIZE } from '../criu/page-size';
import { dumpedMountpoints } from './dumped-mounts';
import type { ByteCopy } from './map-plan';
import { PAGE_CACHE_MOUNT } from './map-spec';
import { HEAP_RANGES_FILE } from './heap-ranges';
import { applyImagesMapping, layoutOf, planImagesMapping, type ImagesMapPlan, type MapRewrite, type PageCacheLayout, type TaskLayout } from './rewrite-images';

/** The folder in a checkpoint dir (and so in containerd's tar) that holds a prepared mapping. */
export const PREPARED_MAPPING_DIR = 'pageshare-map';
const PLAN_FILE = 'plan.json';
const PLAN_VERSION = 1;
/** The only files a prepared mapping may replace in a restore's images. */
const IMAGE_NAME = /^(mm-\d+|pagemap-\d+|files)\.img$/;
const PAGES_FILE_NAME = /^pages-\d+\.img$/;
/** Any file of a prepared mapping (a plan with a few hundred thousand copies is ~10 MiB). */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

/** plan.json: the layout, the summary, and a SHA-256 of every rewritten image. */
interface PlanFile {
  readonly version: number;
  readonly checkpointId: string;
  /** The page-cache file as the restored tasks open it (PAGE_CACHE_MOUNT/<name>). */
  readonly pathInRestore: string;
  readonly layout: string;
  readonly fileBytes: number;
  readonly summary: { readonly mappings: number; readonly mappedPages: number; readonly keptPages: number };
  /** Copies flattened as from, to, length triples. */
  readonly tasks: ReadonlyArray<{ readonly pid: string; readonly pagesFile: string; readonly fileBase: number; readonly toFile: readonly number[]; readonly toPages: readonly number[] }>;
  /** SHA-256 of each rewritten image. */
  readonly images: Readonly<Record<string, string>>;
  /** SHA-256 of each dumped image the plan was made from (so it is applied only to those). */
  readonly inputs: Readonly<Record<string, string>>;
}

export interface PreparedMapping {
  readonly checkpointId: string;
  readonly pathInRestore: string;
  readonly plan: PlanFile;
  /** The rewritten images, by name, checked against plan.json. */
  readonly images: ReadonlyMap<string, Buffer>;
}

/**
 * At checkpoint: plans the dump in `imageDir` for a map-mode restore of `checkpointId` and
 * writes the result into imageDir/PREPARED_MAPPING_DIR. Nothing when the dump cannot be
 * mapped (no page-cache mount in it, or nothing mappable).
 */
export async function prepareMapping(imageDir: string, checkpointId: string, pathInRestore: string): Promise<ImagesMapPlan | undefined> {
  if (!(await dumpedMountpoints(imageDir)).includes(PAGE_CACHE_MOUNT)) return undefined;
  return writePreparedMapping(imageDir, checkpointId, pathInRestore);
}

/** prepareMapping without asking whether the dump has the page-cache mount; returns the plan. */
export async function writePreparedMapping(imageDir: string, checkpointId: string, pathInRestore: string): Promise<ImagesMapPlan | undefined> {
  const plan = await planImagesMapping(imageDir);
  if (plan.tasks.length === 0) return undefined;
  const outDir = path.join(imageDir, PREPARED_MAPPING_DIR);
  fs.mkdirSync(outDir);
  const summary = await applyImagesMapping(imageDir, plan, { pathInRestore }, outDir);
  const images: Record<string, string> = {};
  const inputs: Record<string, string> = {};
  for (const name of fs.readdirSync(outDir).sort()) {
    images[name] = sha256(fs.readFileSync(path.join(outDir, name)));
    inputs[name] = sha256(fs.readFileSync(path.join(imageDir, name)));
  }
  const heapRanges = path.join(imageDir, HEAP_RANGES_FILE);
  if (fs.existsSync(heapRanges)) inputs[HEAP_RANGES_FILE] = sha256(fs.readFileSync(heapRanges));
  const file: PlanFile = {
    version: PLAN_VERSION,
    checkpointId,
    pathInRestore,
    layout: plan.layout,
    fileBytes: plan.fileBytes,
    summary: { mappings: summary.mappings, mappedPages: summary.mappedPages, keptPages: summary.keptPages },
    tasks: plan.tasks.map((t) => ({ pid: t.pid, pagesFile: path.basename(t.pagesPath), fileBase: t.fileBase, toFile: flatten(t.plan.toFile), toPages: flatten(t.plan.toPages) })),
    images,
    inputs,
  };
  fs.writeFileSync(path.join(outDir, PLAN_FILE), JSON.stringify(file));
  return plan;
}

/**
 * At restore, synchronously (containerd may remove its dir after Create): the prepared
 * mapping of an extracted checkpoint dir, undefined if it has none. Throws
 * PreparedMappingError when one is there but does not check out.
 */
export function readPreparedMapping(checkpointDir: string): PreparedMapping | undefined {
  const dir = path.join(checkpointDir, PREPARED_MAPPING_DIR);
  if (!fs.existsSync(path.join(dir, PLAN_FILE))) return undefined;
  const text = readRegularFile(dir, PLAN_FILE).toString('utf8');
  let plan: PlanFile;
  try {
    plan = JSON.parse(text) as PlanFile;
  } catch (err) {
    throw new PreparedMappingError(dir, `${PLAN_FILE} is not JSON: ${(err as Error).message}`);
  }
  checkPlanFile(dir, plan);
  const images = new Map<string, Buffer>();
  for (const [name, digest] of Object.entries(plan.images)) {
    const bytes = readRegularFile(dir, name);
    if (sha256(bytes) !== digest) throw new PreparedMappingError(dir, `${name} does not match its SHA-256 in ${PLAN_FILE}`);
    images.set(name, bytes);
  }
  return { checkpointId: plan.checkpointId, pathInRestore: plan.pathInRestore, plan, images };
}

/** Puts the prepared images in place of the dumped ones in `imageDir`; returns the layout and what it maps. */
export function applyPreparedMapping(imageDir: string, prepared: PreparedMapping): { layout: PageCacheLayout; rewrite: MapRewrite } {
  const { plan } = prepared;
  // Only onto the images it was made from: a dump edited since is planned afresh.
  for (const [name, digest] of Object.entries(plan.inputs)) {
    const file = path.join(imageDir, name);
    if (!fs.existsSync(file) || sha256(fs.readFileSync(file)) !== digest) throw new PreparedMappingError(imageDir, `the dumped ${name} is not the one it was prepared from`);
  }
  // Through a new name: never written through whatever stands at the old one.
  for (const [name, bytes] of prepared.images) {
    const tmp = path.join(imageDir, `.${name}.prepared`);
    fs.writeFileSync(tmp, bytes, { flag: 'wx' });
    fs.renameSync(tmp, path.join(imageDir, name));
  }
  const tasks: TaskLayout[] = plan.tasks.map((t) => ({
    pagesPath: path.join(imageDir, t.pagesFile),
    fileBase: t.fileBase,
    plan: { toFile: unflatten(t.toFile), toPages: unflatten(t.toPages) },
  }));
  return {
    layout: { tasks, fileBytes: plan.fileBytes, layout: plan.layout },
    rewrite: { tasks: tasks.length, ...plan.summary, fileBytes: plan.fileBytes, wroteFile: false },
  };
}

export class PreparedMappingError extends Error {
  constructor(dir: string, detail: string) {
    super(`the prepared mapping in ${dir} is unusable: ${detail}`);
    this.name = 'PreparedMappingError';
  }
}

function checkPlanFile(dir: string, plan: PlanFile): void {
  const bad = (detail: string): never => {
    throw new PreparedMappingError(dir, detail);
  };
  if (typeof plan !== 'object' || plan === null) bad(`${PLAN_FILE} holds no object`);
  if (plan.version !== PLAN_VERSION) bad(`version ${String(plan.version)}, this pageshare reads ${PLAN_VERSION}`);
  if (typeof plan.checkpointId !== 'string' || typeof plan.pathInRestore !== 'string' || typeof plan.layout !== 'string') bad('a name is missing');
  const isCount = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!isCount(plan.fileBytes) || plan.fileBytes % PAGE_SIZE !== 0) bad(`file size ${String(plan.fileBytes)}`);
  const s = plan.summary;
  if (typeof s !== 'object' || s === null || !isCount(s.mappings) || !isCount(s.mappedPages) || !isCount(s.keptPages)) bad('the summary is malformed');
  if (!Array.isArray(plan.tasks) || plan.tasks.length === 0) bad('it names no task');
  for (const t of plan.tasks) {
    if (typeof t !== 'object' || t === null || typeof t.pagesFile !== 'string' || !PAGES_FILE_NAME.test(t.pagesFile) || typeof t.pid !== 'string') bad('a task names no pages file');
    if (!isCount(t.fileBase) || t.fileBase % PAGE_SIZE !== 0 || t.fileBase > plan.fileBytes) bad(`a task's file base ${String(t.fileBase)}`);
    for (const copies of [t.toFile, t.toPages]) {
      if (!Array.isArray(copies) || copies.length % 3 !== 0 || !copies.every((n) => isCount(n) && n % PAGE_SIZE === 0)) bad(`the copies of ${t.pagesFile} are malformed`);
    }
    for (let i = 0; i < t.toFile.length; i += 3) {
      if (t.fileBase + (t.toFile[i + 1] as number) + (t.toFile[i + 2] as number) > plan.fileBytes) bad(`a copy of ${t.pagesFile} ends past the file's ${plan.fileBytes} bytes`);
    }
  }
  for (const field of ['images', 'inputs'] as const) {
    const named = plan[field];
    if (typeof named !== 'object' || named === null) bad(`it has no ${field}`);
    for (const [name, digest] of Object.entries(named)) {
      if (!(IMAGE_NAME.test(name) || (field === 'inputs' && name === HEAP_RANGES_FILE)) || typeof digest !== 'string') bad(`it lists ${JSON.stringify(name)}`);
    }
  }
  // The layout names what sits where in the page-cache file (its seal): it must be this one's.
  if (layoutOf(plan.tasks.map((t) => ({ pid: t.pid, pagesFile: t.pagesFile, fileBase: t.fileBase, toFile: unflatten(t.toFile) }))) !== plan.layout) bad('its layout does not match its copies');
}

/** Reads a regular file (never through a symlink), refusing anything larger than an image may be. */
function readRegularFile(dir: string, name: string): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(path.join(dir, name), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new PreparedMappingError(dir, `${name} is a symlink`);
    throw err;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new PreparedMappingError(dir, `${name} is not a regular file`);
    if (st.size > MAX_FILE_BYTES) throw new PreparedMappingError(dir, `${name} is ${st.size} bytes, more than ${MAX_FILE_BYTES}`);
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function sha256(bytes: Buffer): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

function flatten(copies: readonly ByteCopy[]): number[] {
  const out = new Array<number>(copies.length * 3);
  copies.forEach((c, i) => {
    out[i * 3] = c.from;
    out[i * 3 + 1] = c.to;
    out[i * 3 + 2] = c.length;
  });
  return out;
}

function unflatten(flat: readonly number[]): ByteCopy[] {
  const out: ByteCopy[] = [];
  for (let i = 0; i < flat.length; i += 3) out.push({ from: flat[i] as number, to: flat[i + 1] as number, length: flat[i + 2] as number });
  return out;
}
