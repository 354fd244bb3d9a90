// Which parts of one task's memory a restore maps from a page-cache file instead of copying,
// as pure arithmetic over its VMAs and pagemap: every mappable VMA that holds a present page
// gets a page-aligned extent of the file (the VMA's bytes at the same relative offsets, holes
// where nothing was present, so those still read as zeros); pagemap entries are split at the
// extents' edges; the pages inside move to the file, the rest stay for CRIU to copy.
import { PAGE_SIZE } from '../criu/page-size';
import { PE_PARENT, PE_PRESENT, type PagemapEntry } from '../criu/pagemap';
import type { HeapRange } from './heap-ranges';
import { isMappableVma, isReportedHeapVma, type VmaShape } from './vma-status';

export interface MappedRegion {
  /** Index of the VMA in the task's mm entry. */
  readonly vmaIndex: number;
  readonly start: number;
  readonly end: number;
  /** Byte offset of the region's first page in the page-cache file. */
  readonly fileOffset: number;
}

/** Bytes to move: `length` bytes at `from` in the dumped pages file go to `to`. */
export interface ByteCopy {
  readonly from: number;
  readonly to: number;
  readonly length: number;
}

export interface MapPlan {
  readonly regions: readonly MappedRegion[];
  /** The page-cache file's extent for this task: the regions back to back. */
  readonly fileBytes: number;
  /** Present pages that go into the page-cache file (`to` is relative to this task's extent). */
  readonly toFile: readonly ByteCopy[];
  /** The task's new pagemap entries: everything outside the regions, split where needed. */
  readonly keptEntries: readonly PagemapEntry[];
  /** Present pages that stay, into the new pages file (`to` is where they land there). */
  readonly toPages: readonly ByteCopy[];
  readonly mappedPages: number;
  readonly keptPages: number;
}

export class MapPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MapPlanError';
  }
}

/**
 * Plans one task. `entries` are its pagemap entries as CRIU wrote them (ascending, not
 * overlapping); an entry whose pages live in a parent image is refused (pageshare never makes
 * incremental dumps). `heapRanges`, where the task's runtime reported its heap, make the
 * plain anonymous VMAs inside them mappable too.
 */
export function planTaskMapping(vmas: readonly VmaShape[], entries: readonly PagemapEntry[], heapRanges: readonly HeapRange[] = []): MapPlan {
  const candidates = vmas.map((vma, vmaIndex) => ({ vma, vmaIndex })).filter(({ vma }) => isMappableVma(vma) || isReportedHeapVma(vma, heapRanges));
  candidates.sort((a, b) => a.vma.start - b.vma.start);
  const regions: MappedRegion[] = [];
  let fileBytes = 0;
  // One walk: VMAs and entries both ascend, and an entry may span several VMAs.
  let firstEntry = 0;
  for (const { vma, vmaIndex } of candidates) {
    if (vma.start % PAGE_SIZE !== 0 || vma.end % PAGE_SIZE !== 0) throw new MapPlanError(`VMA ${vmaIndex} is not page-aligned`);
    while (firstEntry < entries.length && entries[firstEntry].vaddr + entries[firstEntry].nrPages * PAGE_SIZE <= vma.start) firstEntry++;
    let inside = 0;
    let allPresent = true;
    for (let k = firstEntry; k < entries.length && entries[k].vaddr < vma.end; k++) {
      inside++;
      if ((entries[k].flags & PE_PRESENT) === 0) allPresent = false;
    }
    // Only regions that hold a present page are worth a mapping; lazy pages stay with CRIU.
    if (inside === 0 || !allPresent) continue;
    regions.push({ vmaIndex, start: vma.start, end: vma.end, fileOffset: fileBytes });
    fileBytes += vma.end - vma.start;
  }

  const toFile: ByteCopy[] = [];
  const toPages: ByteCopy[] = [];
  const keptEntries: PagemapEntry[] = [];
  let pagesOffset = 0; // where the entry's pages sit in the dumped pages file
  let keptOffset = 0;
  let mappedPages = 0;
  let keptPages = 0;
  let r = 0;
  for (const [index, entry] of entries.entries()) {
    if (entry.flags & PE_PARENT) throw new MapPlanError(`pagemap entry ${index} has its pages in a parent image`);
    const isPresent = (entry.flags & PE_PRESENT) !== 0;
    const end = entry.vaddr + entry.nrPages * PAGE_SIZE;
    let at = entry.vaddr;
    while (r < regions.length && regions[r].end <= at) r++;
    for (let k = r; at < end; ) {
      const region = k < regions.length && regions[k].start < end ? regions[k] : undefined;
      // The piece before the next region (or up to the entry's end) stays.
      const keepUntil = region ? Math.max(at, Math.min(region.start, end)) : end;
      if (keepUntil > at) {
        const length = keepUntil - at;
        keptEntries.push({ vaddr: at, nrPages: length / PAGE_SIZE, flags: entry.flags });
        if (isPresent) {
          toPages.push({ from: pagesOffset + (at - entry.vaddr), to: keptOffset, length });
          keptOffset += length;
          keptPages += length / PAGE_SIZE;
        }
        at = keepUntil;
      }
      if (!region || at >= end) break;
      // The piece inside the region moves to the file.
      const mapUntil = Math.min(region.end, end);
      if (isPresent) {
        const length = mapUntil - at;
        toFile.push({ from: pagesOffset + (at - entry.vaddr), to: region.fileOffset + (at - region.start), length });
        mappedPages += length / PAGE_SIZE;
      }
      at = mapUntil;
      k++;
    }
    if (isPresent) pagesOffset += entry.nrPages * PAGE_SIZE;
  }
  return { regions, fileBytes, toFile: mergeCopies(toFile), keptEntries, toPages: mergeCopies(toPages), mappedPages, keptPages };
}

/** Adjacent copies as one (fewer syscalls). */
function mergeCopies(copies: readonly ByteCopy[]): ByteCopy[] {
  const merged: ByteCopy[] = [];
  for (const c of copies) {
    const last = merged[merged.length - 1];
    if (last && last.from + last.length === c.from && last.to + last.length === c.to) merged[merged.length - 1] = { ...last, length: last.length + c.length };
    else merged.push(c);
  }
  return merged;
}
