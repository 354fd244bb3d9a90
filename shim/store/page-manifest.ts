// The page manifest: what a checkpoint directory holds in place of CRIU's pages-*.img. One
// reader (decodeManifest) and one writer (encodeManifest).
//
//   manifest = header, checkpoint id, files, trailer          (integers little-endian)
//   header   = magic "PGSHMNFT" | version u16 (1) | flags u16 (0)
//              | total length u64 (every byte, trailer included) | page size u32 (4096)
//              | hash algorithm u8 (1 = SHA-256) | 3 reserved bytes (0) | store id 16 bytes
//   checkpoint id = length u16 (1..1024) | UTF-8
//   files    = count u32 (<= 65536), then per pages file:
//              name: length u16 (1..255) | UTF-8 (e.g. "pages-1.img"; no "/" or NUL)
//              page count u32 | run count u32 | runs
//   run      = kind u8 (0: zero pages, 1: stored pages) | count u32 (>= 1)
//              | for stored pages, count names of 32 bytes (SHA-256 of the page)
//   name pages (only with flag 2; then stored runs above carry no names) = count u32, then
//              count names of 32 bytes: the store pages that hold the files' stored names, in
//              order, 128 names per page (the last one zero-padded; see name-pages.ts)
//   locations (only with flag 1) = per pages file, in file order: run count u32, then runs
//              of its stored pages in order: pack id u32 | first page number u32 (byte
//              offset / page size) | count u32 (>= 1), each run as long as it can be (the
//              next run does not continue it), counts adding up to the file's stored pages
//   trailer  = SHA-256 of every byte before it
//
// Locations are hints, written at ingest so that a restore reads pages without one index
// lookup per page. Every page read is still checked against its name, and a page that gc
// moved since is looked up in the index; a restore uses them only while the store keeps
// the checkpoint.
//
// Runs are canonical (page-runs.ts): no empty run, no two neighbours of one kind; a file's
// runs add up to its page count; file names are unique. The reader checks magic, version and
// length first, then the checksum, then parses with a bounds check on every read, so damaged
// input always ends in a ManifestError and never in a wrong manifest. Anything it accepts
// encodes back to the same bytes.
import * as crypto from 'node:crypto';
import { PAGE_SIZE } from '../criu/page-size';
import { STORE_ID_BYTES, isStoreId } from './pack-header';
import { HASH_BYTES } from './page-ref';
import { PageRun, runsPageCount } from './page-runs';
import { ManifestError, ManifestErrorReason } from './store-error';

export const MANIFEST_MAGIC = Buffer.from('PGSHMNFT', 'latin1');
export const MANIFEST_VERSION = 1;
/** Names per name page (name-pages.ts). */
export const NAMES_PER_PAGE = PAGE_SIZE / HASH_BYTES;
const HASH_SHA256 = 1;
/** Header flag: a locations section follows the files. */
const FLAG_LOCATIONS = 1;
/** Header flag: the stored names are in store pages, named in a section after the files. */
const FLAG_NAME_PAGES = 2;
/** Bytes of one page's location. */
export const LOCATION_BYTES = 8;
const RUN_ZERO = 0;
const RUN_STORED = 1;

export const MAX_CHECKPOINT_ID_BYTES = 1024;
export const MAX_FILE_NAME_BYTES = 255;
export const MAX_FILES = 65536;
const MAX_U32 = 0xffffffff;
const TRAILER_BYTES = 32;
/** magic, version, flags, total length, page size, hash algorithm, reserved, store id. */
const HEADER_BYTES = 8 + 2 + 2 + 8 + 4 + 1 + 3 + STORE_ID_BYTES;
const OFF_VERSION = 8;
const OFF_TOTAL = 12;
/** The smallest well-formed manifest: header, a 1-byte id, no files, trailer. */
const MIN_BYTES = HEADER_BYTES + 2 + 1 + 4 + TRAILER_BYTES;

/** A run without its names. */
export interface RunShape {
  readonly kind: PageRun['kind'];
  readonly count: number;
}

/** One pages file of a manifest, its runs with names (PageRun) or without (RunShape). */
export interface ManifestFileOf<Run extends RunShape> {
  /** The CRIU pages file this stands for, e.g. "pages-1.img". */
  readonly name: string;
  readonly runs: readonly Run[];
  /**
   * Where each stored page was at ingest (LOCATION_BYTES per stored page, in order: pack id
   * u32, page number u32), or absent. All files of a manifest have them, or none.
   */
  readonly locations?: Buffer;
}

export type ManifestPagesFile = ManifestFileOf<PageRun>;
export type PagedManifestFile = ManifestFileOf<RunShape>;

interface ManifestOf<File> {
  /** The store that holds the pages (hex, 32 characters). */
  readonly storeId: string;
  readonly checkpointId: string;
  readonly files: readonly File[];
}

export type PageManifest = ManifestOf<ManifestPagesFile>;

/**
 * A manifest whose stored names live in store pages (deduplicated like any page, so a
 * checkpoint that differs little from an earlier one adds few of them): `namePages` names
 * those pages, HASH_BYTES each. name-pages.ts makes and resolves it.
 */
export interface PagedManifest extends ManifestOf<PagedManifestFile> {
  readonly namePages: Buffer;
}

/** What a manifest file holds: names inline (older checkpoints) or in name pages. */
export type StoredManifest = PageManifest | PagedManifest;

export function isPagedManifest(m: StoredManifest): m is PagedManifest {
  return 'namePages' in m;
}

/** Stored pages of a file's runs. */
export function storedPagesOf(runs: readonly RunShape[]): number {
  let n = 0;
  for (const r of runs) if (r.kind === 'stored') n += r.count;
  return n;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Why a name or id is not allowed, or undefined. Shared by the reader and the writer. */
function badText(text: string, bytes: number, maxBytes: number, isFileName: boolean): string | undefined {
  if (bytes < 1 || bytes > maxBytes) return `must be 1 to ${maxBytes} bytes of UTF-8, is ${bytes}`;
  if (text.includes('\0')) return 'contains a NUL character';
  if (isFileName && (text.includes('/') || text === '.' || text === '..')) return 'is not a plain file name';
  return undefined;
}

// ---- writer ----------------------------------------------------------------------------

function invalid(detail: string): ManifestError {
  return new ManifestError('MANIFEST_INVALID', '(being written)', undefined, detail);
}

function textBytes(text: string, what: string, maxBytes: number, isFileName: boolean): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.toString('utf8') !== text) throw invalid(`${what} is not valid Unicode`);
  const bad = badText(text, bytes.length, maxBytes, isFileName);
  if (bad !== undefined) throw invalid(`${what} ${JSON.stringify(text)} ${bad}`);
  return bytes;
}

function checkRuns(name: string, runs: readonly RunShape[], named: boolean): void {
  let previous: PageRun['kind'] | undefined;
  for (const [i, run] of runs.entries()) {
    if (!Number.isInteger(run.count) || run.count < 1 || run.count > MAX_U32) {
      throw invalid(`file ${name} run ${i} has count ${run.count}`);
    }
    if (run.kind === previous) throw invalid(`file ${name} runs ${i - 1} and ${i} are both ${run.kind} (merge them)`);
    if (named && run.kind === 'stored' && (run as PageRun & { kind: 'stored' }).hashes.length !== run.count * HASH_BYTES) {
      throw invalid(`file ${name} run ${i} has ${(run as PageRun & { kind: 'stored' }).hashes.length} bytes of names for ${run.count} pages`);
    }
    previous = run.kind;
  }
  if (runsPageCount(runs as PageRun[]) > MAX_U32) throw invalid(`file ${name} has more than ${MAX_U32} pages`);
}

export function encodeManifest(m: StoredManifest): Buffer {
  const paged = isPagedManifest(m);
  if (!isStoreId(m.storeId)) throw invalid(`store id ${JSON.stringify(m.storeId)} is not ${STORE_ID_BYTES * 2} hex digits`);
  const id = textBytes(m.checkpointId, 'checkpoint id', MAX_CHECKPOINT_ID_BYTES, false);
  if (m.files.length > MAX_FILES) throw invalid(`${m.files.length} pages files, at most ${MAX_FILES}`);
  const names = new Set<string>();
  const withLocations = m.files.length > 0 && m.files[0].locations !== undefined;
  const locationParts: Buffer[] = [];
  const parts: Buffer[] = [];
  const header = Buffer.alloc(HEADER_BYTES);
  parts.push(header);
  const idLen = Buffer.alloc(2);
  idLen.writeUInt16LE(id.length);
  parts.push(idLen, id);
  const fileCount = Buffer.alloc(4);
  fileCount.writeUInt32LE(m.files.length);
  parts.push(fileCount);
  for (const f of m.files) {
    const name = textBytes(f.name, 'pages file name', MAX_FILE_NAME_BYTES, true);
    if (names.has(f.name)) throw invalid(`pages file ${f.name} appears twice`);
    names.add(f.name);
    checkRuns(f.name, f.runs, !paged);
    if ((f.locations !== undefined) !== withLocations) throw invalid('either every pages file has locations, or none');
    if (f.locations !== undefined) {
      const storedPages = storedPagesOf(f.runs);
      if (f.locations.length !== storedPages * LOCATION_BYTES) {
        throw invalid(`file ${f.name} has ${f.locations.length} bytes of locations for ${storedPages} stored pages`);
      }
      locationParts.push(encodeLocationRuns(f.locations));
    }
    const head = Buffer.alloc(2 + name.length + 8);
    head.writeUInt16LE(name.length, 0);
    name.copy(head, 2);
    head.writeUInt32LE(runsPageCount(f.runs), 2 + name.length);
    head.writeUInt32LE(f.runs.length, 2 + name.length + 4);
    parts.push(head);
    for (const run of f.runs) {
      const r = Buffer.alloc(5);
      r.writeUInt8(run.kind === 'zero' ? RUN_ZERO : RUN_STORED, 0);
      r.writeUInt32LE(run.count, 1);
      parts.push(r);
      if (!paged && run.kind === 'stored') parts.push((run as PageRun & { kind: 'stored' }).hashes);
    }
  }
  if (paged) {
    const stored = m.files.reduce((n, f) => n + storedPagesOf(f.runs), 0);
    const expected = Math.ceil(stored / NAMES_PER_PAGE);
    if (m.namePages.length !== expected * HASH_BYTES) throw invalid(`${m.namePages.length} bytes of name-page names for ${stored} stored pages (${expected} name pages)`);
    const count = Buffer.alloc(4);
    count.writeUInt32LE(expected);
    parts.push(count, m.namePages);
  }
  parts.push(...locationParts);
  let total = TRAILER_BYTES;
  for (const p of parts) total += p.length;
  MANIFEST_MAGIC.copy(header, 0);
  header.writeUInt16LE(MANIFEST_VERSION, OFF_VERSION);
  header.writeUInt16LE((withLocations ? FLAG_LOCATIONS : 0) | (paged ? FLAG_NAME_PAGES : 0), 10);
  header.writeBigUInt64LE(BigInt(total), OFF_TOTAL);
  header.writeUInt32LE(PAGE_SIZE, 20);
  header.writeUInt8(HASH_SHA256, 24);
  Buffer.from(m.storeId, 'hex').copy(header, 28);
  const body = Buffer.concat(parts, total - TRAILER_BYTES);
  return Buffer.concat([body, crypto.createHash('sha256').update(body).digest()], total);
}

/** Per-page locations (LOCATION_BYTES each) as maximal runs of consecutive pages of one pack. */
function encodeLocationRuns(locations: Buffer): Buffer {
  const runs: number[] = [];
  for (let at = 0; at < locations.length; at += LOCATION_BYTES) {
    const pack = locations.readUInt32LE(at);
    const page = locations.readUInt32LE(at + 4);
    const n = runs.length;
    if (n > 0 && runs[n - 3] === pack && runs[n - 2] + runs[n - 1] === page) runs[n - 1]++;
    else runs.push(pack, page, 1);
  }
  const out = Buffer.alloc(4 + runs.length * 4);
  out.writeUInt32LE(runs.length / 3, 0);
  runs.forEach((v, i) => out.writeUInt32LE(v, 4 + i * 4));
  return out;
}

// ---- reader ----------------------------------------------------------------------------

/** A bounds-checked cursor over the checksummed body. */
class Cursor {
  pos: number;

  constructor(
    private readonly buf: Buffer,
    start: number,
    private readonly end: number,
    private readonly source: string,
  ) {
    this.pos = start;
  }

  corrupt(detail: string, at = this.pos): ManifestError {
    return new ManifestError('MANIFEST_CORRUPT', this.source, at, detail);
  }

  private need(n: number, what: string): number {
    if (n > this.end - this.pos) throw this.corrupt(`${what} runs past the end of the manifest`);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  u8(what: string): number {
    return this.buf.readUInt8(this.need(1, what));
  }

  u16(what: string): number {
    return this.buf.readUInt16LE(this.need(2, what));
  }

  u32(what: string): number {
    return this.buf.readUInt32LE(this.need(4, what));
  }

  bytes(n: number, what: string): Buffer {
    const at = this.need(n, what);
    return this.buf.subarray(at, at + n);
  }

  text(what: string, maxBytes: number, isFileName: boolean): string {
    const at = this.pos;
    const len = this.u16(`${what} length`);
    const raw = this.bytes(len, what);
    let text: string;
    try {
      text = utf8.decode(raw);
    } catch {
      throw this.corrupt(`${what} is not valid UTF-8`, at);
    }
    const bad = badText(text, len, maxBytes, isFileName);
    if (bad !== undefined) throw this.corrupt(`${what} ${bad}`, at);
    return text;
  }
}

function fail(reason: ManifestErrorReason, source: string, offset: number | undefined, detail: string): ManifestError {
  return new ManifestError(reason, source, offset, detail);
}

/** A file's location runs, expanded to LOCATION_BYTES per stored page; canonical runs only. */
function decodeLocationRuns(c: Cursor, name: string, storedPages: number): Buffer {
  const countAt = c.pos;
  const runCount = c.u32(`${name} location run count`);
  if (runCount > c.remaining / 12) throw c.corrupt(`${name} claims ${runCount} location runs, more than the bytes left can hold`, countAt);
  const out = Buffer.alloc(storedPages * LOCATION_BYTES);
  let page = 0;
  let previous: { pack: number; end: number } | undefined;
  for (let r = 0; r < runCount; r++) {
    const runAt = c.pos;
    const pack = c.u32(`${name} location run ${r} pack`);
    const first = c.u32(`${name} location run ${r} page`);
    const count = c.u32(`${name} location run ${r} count`);
    if (count < 1 || count > storedPages - page) throw c.corrupt(`${name} location run ${r} has count ${count} for the ${storedPages - page} stored pages left`, runAt);
    if (first + count > 0x100000000) throw c.corrupt(`${name} location run ${r} goes past page 2^32`, runAt);
    if (previous !== undefined && previous.pack === pack && previous.end === first) throw c.corrupt(`${name} location runs ${r - 1} and ${r} should be one`, runAt);
    for (let k = 0; k < count; k++, page++) {
      out.writeUInt32LE(pack, page * LOCATION_BYTES);
      out.writeUInt32LE(first + k, page * LOCATION_BYTES + 4);
    }
    previous = { pack, end: first + count };
  }
  if (page !== storedPages) throw c.corrupt(`${name} location runs hold ${page} pages, not its ${storedPages} stored pages`, countAt);
  return out;
}

/** Parse a manifest; throws ManifestError (and nothing else) for any damage. */
export function decodeManifest(input: Buffer, source = 'page manifest'): StoredManifest {
  if (!Buffer.isBuffer(input)) throw fail('MANIFEST_CORRUPT', source, undefined, 'not a Buffer');
  const magicLen = Math.min(input.length, MANIFEST_MAGIC.length);
  if (!input.subarray(0, magicLen).equals(MANIFEST_MAGIC.subarray(0, magicLen))) {
    throw fail('MANIFEST_BAD_MAGIC', source, 0, 'not a pageshare page manifest (bad magic)');
  }
  if (input.length < OFF_VERSION + 2) throw fail('MANIFEST_TRUNCATED', source, input.length, `only ${input.length} bytes`);
  const version = input.readUInt16LE(OFF_VERSION);
  if (version !== MANIFEST_VERSION) {
    throw fail('MANIFEST_UNSUPPORTED_VERSION', source, OFF_VERSION, `format version ${version}; this pageshare reads version ${MANIFEST_VERSION}`);
  }
  if (input.length < MIN_BYTES) throw fail('MANIFEST_TRUNCATED', source, input.length, `only ${input.length} bytes`);
  const declared = input.readBigUInt64LE(OFF_TOTAL);
  if (declared > BigInt(input.length)) {
    throw fail('MANIFEST_TRUNCATED', source, input.length, `declares ${declared} bytes but has ${input.length}`);
  }
  const total = Number(declared);
  if (total < input.length) throw fail('MANIFEST_CORRUPT', source, total, `${input.length - total} bytes after the declared end`);
  if (total < MIN_BYTES) throw fail('MANIFEST_CORRUPT', source, OFF_TOTAL, `declares ${total} bytes, less than any manifest`);
  const bodyEnd = total - TRAILER_BYTES;
  const expected = crypto.createHash('sha256').update(input.subarray(0, bodyEnd)).digest();
  if (!expected.equals(input.subarray(bodyEnd, total))) {
    throw fail('MANIFEST_CHECKSUM_MISMATCH', source, bodyEnd, 'checksum mismatch (the file is damaged)');
  }
  // Checksummed: from here on, bad content means a buggy or hostile writer, still never trusted.
  const buf = Buffer.from(input.subarray(0, bodyEnd)); // names below are views into this copy
  const flags = buf.readUInt16LE(10);
  if ((flags & ~(FLAG_LOCATIONS | FLAG_NAME_PAGES)) !== 0) throw fail('MANIFEST_UNSUPPORTED_VERSION', source, 10, `unknown flags 0x${flags.toString(16)}`);
  const paged = (flags & FLAG_NAME_PAGES) !== 0;
  const pageSize = buf.readUInt32LE(20);
  if (pageSize !== PAGE_SIZE) throw fail('MANIFEST_UNSUPPORTED_VERSION', source, 20, `page size ${pageSize}; this host uses ${PAGE_SIZE}`);
  const hashAlgorithm = buf.readUInt8(24);
  if (hashAlgorithm !== HASH_SHA256) throw fail('MANIFEST_UNSUPPORTED_VERSION', source, 24, `unknown hash algorithm ${hashAlgorithm}`);
  const c = new Cursor(buf, HEADER_BYTES, bodyEnd, source);
  if (buf.readUIntLE(25, 3) !== 0) throw c.corrupt('reserved header bytes are not zero', 25);
  const storeId = buf.subarray(28, 28 + STORE_ID_BYTES).toString('hex');
  const checkpointId = c.text('checkpoint id', MAX_CHECKPOINT_ID_BYTES, false);
  const fileCountAt = c.pos;
  const fileCount = c.u32('file count');
  if (fileCount > MAX_FILES) throw c.corrupt(`${fileCount} pages files, at most ${MAX_FILES}`, fileCountAt);
  const files: Array<{ name: string; runs: RunShape[]; locations?: Buffer }> = [];
  const names = new Set<string>();
  for (let i = 0; i < fileCount; i++) {
    const nameAt = c.pos;
    const name = c.text(`pages file ${i} name`, MAX_FILE_NAME_BYTES, true);
    if (names.has(name)) throw c.corrupt(`pages file ${name} appears twice`, nameAt);
    names.add(name);
    const pageCountAt = c.pos;
    const pageCount = c.u32(`${name} page count`);
    const runCount = c.u32(`${name} run count`);
    if (runCount > c.remaining / 5) throw c.corrupt(`${name} claims ${runCount} runs, more than the bytes left can hold`);
    const runs: RunShape[] = [];
    let sum = 0;
    for (let r = 0; r < runCount; r++) {
      const runAt = c.pos;
      const kind = c.u8(`${name} run ${r} kind`);
      const count = c.u32(`${name} run ${r} count`);
      if (count < 1) throw c.corrupt(`${name} run ${r} is empty`, runAt);
      const previous = runs.length > 0 ? runs[runs.length - 1].kind : undefined;
      if (kind === RUN_ZERO) {
        if (previous === 'zero') throw c.corrupt(`${name} has two zero runs in a row`, runAt);
        runs.push({ kind: 'zero', count });
      } else if (kind === RUN_STORED) {
        if (previous === 'stored') throw c.corrupt(`${name} has two stored runs in a row`, runAt);
        if (paged) {
          runs.push({ kind: 'stored', count });
        } else {
          if (count > c.remaining / HASH_BYTES) throw c.corrupt(`${name} run ${r} names ${count} pages, more than the bytes left`, runAt);
          runs.push({ kind: 'stored', count, hashes: c.bytes(count * HASH_BYTES, `${name} run ${r} names`) } as RunShape);
        }
      } else {
        throw c.corrupt(`${name} run ${r} has unknown kind ${kind}`, runAt);
      }
      sum += count;
      if (sum > pageCount) throw c.corrupt(`${name} runs hold more than its ${pageCount} pages`, runAt);
    }
    if (sum !== pageCount) throw c.corrupt(`${name} declares ${pageCount} pages but its runs hold ${sum}`, pageCountAt);
    files.push({ name, runs });
  }
  let namePages: Buffer | undefined;
  if (paged) {
    const stored = files.reduce((n, f) => n + storedPagesOf(f.runs), 0);
    const countAt = c.pos;
    const count = c.u32('name page count');
    if (count !== Math.ceil(stored / NAMES_PER_PAGE)) throw c.corrupt(`${count} name pages for ${stored} stored pages`, countAt);
    namePages = c.bytes(count * HASH_BYTES, 'name-page names');
  }
  if ((flags & FLAG_LOCATIONS) !== 0) {
    for (const [i, f] of files.entries()) {
      files[i] = { ...f, locations: decodeLocationRuns(c, f.name, storedPagesOf(f.runs)) };
    }
  }
  if (c.remaining !== 0) throw c.corrupt(`${c.remaining} unexpected bytes before the trailer`);
  if (namePages !== undefined) return { storeId, checkpointId, files, namePages };
  return { storeId, checkpointId, files: files as ManifestPagesFile[] };
}
