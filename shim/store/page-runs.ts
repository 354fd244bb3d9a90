// A pages file as runs: zero pages as a count, stored pages as their names back to back.
// This is how a manifest holds a pages file in memory and on disk, so a manifest's size (and
// the memory decoding it takes) follows its stored pages, not the zero pages it stands for.
//
// Canonical form, which the manifest writer requires and its reader enforces: every run has
// count >= 1, and no two neighbouring runs are of the same kind.
import { HASH_BYTES, PageRef, ZERO_PAGE_REF, storedPageRef } from './page-ref';

export interface ZeroRun {
  readonly kind: 'zero';
  readonly count: number;
}

export interface StoredRun {
  readonly kind: 'stored';
  readonly count: number;
  /** count * HASH_BYTES bytes: the page names in order. */
  readonly hashes: Buffer;
}

export type PageRun = ZeroRun | StoredRun;

export function runsPageCount(runs: ReadonlyArray<{ readonly count: number }>): number {
  let n = 0;
  for (const r of runs) n += r.count;
  return n;
}

/** The pages of runs in order. */
export function* pageRefsOf(runs: readonly PageRun[]): Generator<PageRef> {
  for (const r of runs) {
    if (r.kind === 'zero') {
      for (let i = 0; i < r.count; i++) yield ZERO_PAGE_REF;
    } else {
      for (let i = 0; i < r.count; i++) yield storedPageRef(r.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
    }
  }
}

const CHUNK_HASHES = 4096;

/** Builds canonical runs from pages in order (what an ingest returns, page by page). */
export class PageRunsBuilder {
  private readonly runs: PageRun[] = [];
  private zeros = 0;
  private chunks: Buffer[] = [];
  private chunk: Buffer | undefined;
  private inChunk = 0;
  private stored = 0;
  private total = 0;

  get pageCount(): number {
    return this.total;
  }

  add(ref: PageRef): void {
    this.total++;
    if (ref.kind === 'zero') {
      this.closeStored();
      this.zeros++;
      return;
    }
    if (ref.hash.length !== HASH_BYTES) throw new RangeError(`a page name is ${HASH_BYTES} bytes, got ${ref.hash.length}`);
    this.closeZeros();
    if (this.chunk === undefined || this.inChunk === CHUNK_HASHES) {
      if (this.chunk !== undefined) this.chunks.push(this.chunk);
      this.chunk = Buffer.allocUnsafe(CHUNK_HASHES * HASH_BYTES);
      this.inChunk = 0;
    }
    ref.hash.copy(this.chunk, this.inChunk * HASH_BYTES);
    this.inChunk++;
    this.stored++;
  }

  /**
   * Pages by their names, back to back (HASH_BYTES each; all-zero bytes name a zero page, as
   * PageHashPool.hashPages gives them).
   */
  addNames(names: Buffer): void {
    for (let at = 0; at < names.length; at += HASH_BYTES) {
      let zero = true;
      for (let k = at; k < at + HASH_BYTES; k++) {
        if (names[k] !== 0) {
          zero = false;
          break;
        }
      }
      this.total++;
      if (zero) {
        this.closeStored();
        this.zeros++;
        continue;
      }
      this.closeZeros();
      if (this.chunk === undefined || this.inChunk === CHUNK_HASHES) {
        if (this.chunk !== undefined) this.chunks.push(this.chunk);
        this.chunk = Buffer.allocUnsafe(CHUNK_HASHES * HASH_BYTES);
        this.inChunk = 0;
      }
      names.copy(this.chunk, this.inChunk * HASH_BYTES, at, at + HASH_BYTES);
      this.inChunk++;
      this.stored++;
    }
  }

  addAll(refs: Iterable<PageRef>): void {
    for (const r of refs) this.add(r);
  }

  /** The runs so far; the builder can go on adding after this. */
  build(): PageRun[] {
    this.closeZeros();
    this.closeStored();
    return [...this.runs];
  }

  private closeZeros(): void {
    if (this.zeros === 0) return;
    this.runs.push({ kind: 'zero', count: this.zeros });
    this.zeros = 0;
  }

  private closeStored(): void {
    if (this.stored === 0) return;
    const parts = [...this.chunks];
    if (this.chunk !== undefined) parts.push(this.chunk.subarray(0, this.inChunk * HASH_BYTES));
    this.runs.push({ kind: 'stored', count: this.stored, hashes: Buffer.concat(parts) });
    this.chunks = [];
    this.chunk = undefined;
    this.inChunk = 0;
    this.stored = 0;
  }
}

/** Runs for a list of pages. */
export function runsOf(refs: Iterable<PageRef>): PageRun[] {
  const b = new PageRunsBuilder();
  b.addAll(refs);
  return b.build();
}

/** Pages `first` .. `first + count - 1` of a pages file. */
export interface PageRange {
  readonly first: number;
  readonly count: number;
}

/**
 * The runs of just the pages in `ranges` (ascending, not overlapping), back to back, in
 * canonical form; with `locations` (a manifest's, `locationBytes` per stored page) also the
 * locations of the stored pages kept. What a restore needs when only part of a pages file
 * is to be written.
 */
export function selectPages(
  runs: readonly PageRun[],
  ranges: readonly PageRange[],
  locations?: Buffer,
  locationBytes = 8,
): { runs: PageRun[]; locations?: Buffer } {
  const pieces: PageRun[] = [];
  const keptLocations: Buffer[] = [];
  let run = 0;
  let runFirst = 0; // page number of runs[run]'s first page
  let storedBefore = 0; // stored pages in the runs before runs[run]
  for (const range of ranges) {
    if (range.count <= 0) continue;
    let at = range.first;
    const end = range.first + range.count;
    while (at < end) {
      while (run < runs.length && runFirst + runs[run].count <= at) {
        if (runs[run].kind === 'stored') storedBefore += runs[run].count;
        runFirst += runs[run].count;
        run++;
      }
      if (run >= runs.length) throw new RangeError(`page ${at} is past the end of the pages file (${runFirst} pages)`);
      const r = runs[run];
      const from = at - runFirst;
      const n = Math.min(r.count - from, end - at);
      if (r.kind === 'zero') pieces.push({ kind: 'zero', count: n });
      else {
        pieces.push({ kind: 'stored', count: n, hashes: r.hashes.subarray(from * HASH_BYTES, (from + n) * HASH_BYTES) });
        if (locations) keptLocations.push(locations.subarray((storedBefore + from) * locationBytes, (storedBefore + from + n) * locationBytes));
      }
      at += n;
    }
  }
  // Canonical: neighbours of one kind become one run.
  const merged: PageRun[] = [];
  for (const p of pieces) {
    const last = merged[merged.length - 1];
    if (last === undefined || last.kind !== p.kind) merged.push(p);
    else if (last.kind === 'zero') merged[merged.length - 1] = { kind: 'zero', count: last.count + p.count };
    else merged[merged.length - 1] = { kind: 'stored', count: last.count + p.count, hashes: Buffer.concat([last.hashes, (p as StoredRun).hashes]) };
  }
  return locations ? { runs: merged, locations: Buffer.concat(keptLocations) } : { runs: merged };
}
