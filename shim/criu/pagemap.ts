// pagemap-<id>.img: the list of page runs a dump holds for one address space (a task) or
// one shared memory object (pagemap-shmem-<shmid>.img, same format). The image's first
// entry is a pagemap_head naming pages-<pages_id>.img; every later entry is a run of
// nr_pages pages starting at vaddr. Runs flagged PE_PRESENT have their pages in the pages
// file, in entry order, one after the other; runs without it (PE_PARENT: in the parent
// dump; PE_LAZY alone: to be fetched from a page server) take no space there
// (criu/pagemap.c: skip_pagemap_pages advances pi_off only for present entries).
import { CriuImageError } from './criu-image-error';
import { bigIntToWire, decodeEntry, encodeEntry, u64ToBigInt, WireLong } from './criu-proto';
import { CriuImage, parseImage, ParseImageOptions, readImageFile, ReadImageOptions, serializeImage, writeFileAtomically } from './image-file';
import { ImageKinds } from './image-kind';
import { PAGE_SIZE } from './page-size';

/** The pages are in the parent dump's pages file (incremental dumps). */
export const PE_PARENT = 1 << 0;
/** The pages may be restored lazily (by userfaultfd); CRIU sets it on most private anonymous memory. */
export const PE_LAZY = 1 << 1;
/** The pages are in this dump's pages file. */
export const PE_PRESENT = 1 << 2;

/**
 * Where an entry keeps its page count. 'u32': field 2, as CRIU up to 4.1 writes it.
 * 'u64': field 5, as CRIU 4.2 writes it, with field 2 written as 0 (so CRIU 4.1 cannot
 * read such an image: it would see empty runs).
 */
export type PageCountField = 'u32' | 'u64';

export interface PagemapEntry {
  /**
   * First page of the run: a virtual address (task pagemaps) or a byte offset into the
   * object (shmem pagemaps). A number: x86_64 user addresses are below 2^47 (2^56 with
   * 5-level paging, and only for mappings placed there on purpose), and an image whose
   * run would end above 2^53 is refused rather than rounded.
   */
  readonly vaddr: number;
  readonly nrPages: number;
  /** PE_* bits, after CRIU's compatibility rules for images older than the flags field. */
  readonly flags: number;
}

export interface Pagemap {
  /** N of pages-N.img. */
  readonly pagesId: number;
  readonly entries: readonly PagemapEntry[];
  readonly pageCountField: PageCountField;
}

/** A present run and the bytes it occupies in the pages file. */
export interface PageRun extends PagemapEntry {
  /** Index of the run's entry in Pagemap.entries. */
  readonly entryIndex: number;
  /** Byte offset of the run's first page in pages-<pagesId>.img. */
  readonly pagesOffset: number;
  readonly byteLength: number;
}

interface RawHead {
  pages_id: number;
}

interface RawEntry {
  vaddr: WireLong;
  compat_nr_pages: number;
  in_parent: boolean;
  flags: number;
  nr_pages: WireLong;
}

const MAX_U32 = 0xffffffff;
const has = (o: object, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);

/** Turns a parsed PAGEMAP image into a Pagemap, checking every entry. */
export function decodePagemap(image: CriuImage, source = 'pagemap image'): Pagemap {
  const [headEntry, ...runEntries] = image.entries;
  if (!headEntry) {
    throw new CriuImageError('BAD_ENTRY', source, undefined, 'the pagemap has no pagemap_head entry (the file holds only its magic)');
  }
  const headAt = { file: source, offset: headEntry.offset };
  const head = decodeEntry('pagemap_head', headEntry.payload, headAt) as unknown as RawHead;

  const entries: PagemapEntry[] = [];
  let wide = 0;
  let presentBytes = 0n;
  for (const e of runEntries) {
    const raw = decodeEntry('pagemap_entry', e.payload, { file: source, offset: e.offset }) as unknown as RawEntry;

    // criu/pagemap.c init_compat_pagemap_entry()
    let flags = has(raw, 'flags') ? raw.flags : 0;
    if (has(raw, 'in_parent') && raw.in_parent) flags |= PE_PARENT;
    else if (!has(raw, 'flags')) flags = PE_PRESENT;
    let count: bigint;
    if (has(raw, 'nr_pages')) {
      count = u64ToBigInt(raw.nr_pages);
      wide++;
    } else {
      count = BigInt(raw.compat_nr_pages);
    }

    const vaddr = u64ToBigInt(raw.vaddr);
    if (vaddr % BigInt(PAGE_SIZE) !== 0n) {
      throw new CriuImageError('BAD_ENTRY', source, e.offset, `a run starts at 0x${vaddr.toString(16)}, which is not page aligned`);
    }
    const end = vaddr + count * BigInt(PAGE_SIZE);
    if (end > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new CriuImageError(
        'UNSUPPORTED',
        source,
        e.offset,
        `a run of ${count} pages at 0x${vaddr.toString(16)} ends above 2^53, beyond what pageshare handles`,
      );
    }
    if (flags & PE_PRESENT) {
      presentBytes += count * BigInt(PAGE_SIZE);
      if (presentBytes > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new CriuImageError('UNSUPPORTED', source, e.offset, 'the present runs add up to more than 2^53 bytes of pages');
      }
    }
    entries.push({ vaddr: Number(vaddr), nrPages: Number(count), flags });
  }
  // An image CRIU wrote uses one form throughout; a mixed one is written back in the wide form.
  const pageCountField: PageCountField = wide > 0 ? 'u64' : 'u32';
  return { pagesId: head.pages_id, entries, pageCountField };
}

export function parsePagemap(bytes: Uint8Array, options: ParseImageOptions = {}): Pagemap {
  return decodePagemap(parseImage(bytes, ImageKinds.PAGEMAP, options), options.source);
}

export async function readPagemapFile(file: string, options: ReadImageOptions = {}): Promise<Pagemap> {
  return decodePagemap(await readImageFile(file, ImageKinds.PAGEMAP, options), file);
}

function invalid(detail: string): CriuImageError {
  return new CriuImageError('INVALID_VALUE', 'pagemap being written', undefined, detail);
}

function isUint(value: number, max: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= max;
}

/**
 * The bytes of a pagemap image, as CRIU writes them: flags always present, never in_parent,
 * the count in the entry's pageCountField. So images CRIU 3.x-4.2 wrote come back byte for
 * byte; images older than the flags field come back in this form, meaning the same.
 */
export function serializePagemap(pagemap: Pagemap): Buffer {
  if (!isUint(pagemap.pagesId, MAX_U32)) throw invalid(`pages id ${pagemap.pagesId} is not a u32`);
  const payloads: Uint8Array[] = [encodeEntry('pagemap_head', { pages_id: pagemap.pagesId })];
  const wide = pagemap.pageCountField === 'u64';
  pagemap.entries.forEach((e, i) => {
    if (!isUint(e.vaddr, Number.MAX_SAFE_INTEGER) || e.vaddr % PAGE_SIZE !== 0) {
      throw invalid(`entry ${i}: vaddr ${e.vaddr} is not a page-aligned address`);
    }
    if (!isUint(e.nrPages, wide ? Number.MAX_SAFE_INTEGER : MAX_U32)) {
      throw invalid(`entry ${i}: ${e.nrPages} pages does not fit the ${pagemap.pageCountField} page count`);
    }
    if (!isUint(e.flags, MAX_U32)) throw invalid(`entry ${i}: flags ${e.flags} are not a u32`);
    const raw = wide
      ? { vaddr: bigIntToWire(BigInt(e.vaddr)), compat_nr_pages: 0, flags: e.flags, nr_pages: bigIntToWire(BigInt(e.nrPages)) }
      : { vaddr: bigIntToWire(BigInt(e.vaddr)), compat_nr_pages: e.nrPages, flags: e.flags };
    payloads.push(encodeEntry('pagemap_entry', raw));
  });
  return serializeImage(ImageKinds.PAGEMAP, payloads);
}

export async function writePagemapFile(file: string, pagemap: Pagemap): Promise<void> {
  await writeFileAtomically(file, serializePagemap(pagemap));
}

/** The present runs in pages-file order, with the byte range each occupies there. */
export function* presentPageRuns(pagemap: Pagemap): Generator<PageRun> {
  let pagesOffset = 0;
  for (let i = 0; i < pagemap.entries.length; i++) {
    const e = pagemap.entries[i];
    if (!(e.flags & PE_PRESENT)) continue;
    const byteLength = e.nrPages * PAGE_SIZE;
    yield { ...e, entryIndex: i, pagesOffset, byteLength };
    pagesOffset += byteLength;
  }
}

/** Pages the pages file must hold: the sum over present runs. */
export function presentPageCount(pagemap: Pagemap): number {
  let n = 0;
  for (const e of pagemap.entries) if (e.flags & PE_PRESENT) n += e.nrPages;
  return n;
}
