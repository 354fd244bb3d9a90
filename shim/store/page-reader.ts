// Reads pages by name and checks every one against its name before handing it out. A page
// that is not in the index, or whose pack is gone or too short, is a PageMissingError; bytes
// that hash to something else are a PageCorruptError. Both name the page, the pack and the
// offset (and the checkpoint, when the caller says which one it is restoring).
//
// gc may move a page to another pack between the index lookup and the read (compaction);
// a failed read therefore looks the page up once more before giving up.
import { PAGE_SIZE } from '../criu/page-size';
import { writeFullyAsync } from './durable-fs';
import { PackReader } from './pack-reader';
import { PageIndex, PageLocation } from './page-index';
import { hashPage } from './page-hash';
import { FileRead, HashPriority, PageHashPool, SharedChunks } from './page-hash-pool';
import { LOCATION_BYTES } from './page-manifest';
import { HASH_BYTES, PageRef, hashHex, hashKey } from './page-ref';
import { PageRun, runsPageCount } from './page-runs';
import { PackCorruptError, PageCorruptError, PageErrorContext, PageMissingError } from './store-error';

/** Pages per chunk of writePages(): 8 MiB. */
const WRITE_CHUNK_PAGES = 2048;
/** Chunks being verified or written while the next one is read. */
const WRITE_CHUNKS_AHEAD = 3;

/** Largest single read of a run of pages that lie back to back in a pack. */
const MAX_READ_BYTES = 1024 * 1024;

/** Where consecutive output pages go: `pages` pages from byte `position` of the output on. */
export interface OutputSegment {
  readonly pages: number;
  readonly position: number;
}

/** The writes for output pages first .. first + count - 1: bytes at `at` in the chunk go to `position`. */
function piecesOf(segments: readonly OutputSegment[], first: number, count: number): Array<{ at: number; position: number; length: number }> {
  const pieces: Array<{ at: number; position: number; length: number }> = [];
  let segmentFirst = 0;
  for (const s of segments) {
    const from = Math.max(first, segmentFirst);
    const to = Math.min(first + count, segmentFirst + s.pages);
    if (from < to) pieces.push({ at: (from - first) * PAGE_SIZE, position: s.position + (from - segmentFirst) * PAGE_SIZE, length: (to - from) * PAGE_SIZE });
    segmentFirst += s.pages;
    if (segmentFirst >= first + count) break;
  }
  return pieces;
}

interface Wanted {
  readonly hash: Buffer;
  /** Page indexes in the output that hold this page. */
  readonly slots: number[];
  location?: PageLocation;
}

export class PageReader {
  private readonly scratch = Buffer.allocUnsafe(MAX_READ_BYTES);

  constructor(
    private readonly index: PageIndex,
    private readonly packs: PackReader,
    private readonly storeRoot: string,
  ) {}

  /** One page, verified. */
  readPage(hash: Buffer, ctx: PageErrorContext = {}): Buffer {
    const out = Buffer.allocUnsafe(PAGE_SIZE);
    const loc = this.index.lookupPage(hash);
    if (loc === undefined) throw this.missing(hash, ctx, undefined, 'no pack holds it (the index has no entry for it)');
    if (this.tryRead(hash, loc, out)) return out;
    // Look again (gc may have moved the page), with the pack file opened afresh.
    this.packs.forget(loc.packId);
    const again = this.index.lookupPage(hash);
    if (again === undefined) throw this.missing(hash, ctx, loc, 'it was removed from the store while being read');
    return this.readOnce(hash, again, out, ctx);
  }

  /**
   * Pages in order, as one buffer of refs.length * PAGE_SIZE bytes (zero refs stay zero):
   * what a pages-N.img holds. Pages that lie back to back in a pack are read together.
   */
  readPages(refs: readonly PageRef[], ctx: PageErrorContext = {}): Buffer {
    const out = Buffer.alloc(refs.length * PAGE_SIZE);
    const wanted = new Map<string, Wanted>();
    refs.forEach((ref, slot) => {
      if (ref.kind === 'zero') return;
      const key = hashKey(ref.hash);
      const w = wanted.get(key);
      if (w === undefined) wanted.set(key, { hash: ref.hash, slots: [slot] });
      else w.slots.push(slot);
    });
    const list = [...wanted.values()];
    const locations = this.index.lookupPages(list.map((w) => w.hash));
    list.forEach((w, i) => {
      w.location = locations[i];
    });
    const located: Array<Wanted & { location: PageLocation }> = [];
    for (const w of list) {
      if (w.location === undefined) throw this.missing(w.hash, ctx, undefined, 'no pack holds it (the index has no entry for it)');
      located.push(w as Wanted & { location: PageLocation });
    }
    located.sort((a, b) => a.location.packId - b.location.packId || a.location.offset - b.location.offset);
    let i = 0;
    while (i < located.length) {
      // A run: same pack, each page right after the previous one.
      let j = i + 1;
      while (
        j < located.length &&
        (j - i + 1) * PAGE_SIZE <= MAX_READ_BYTES &&
        located[j].location.packId === located[i].location.packId &&
        located[j].location.offset === located[j - 1].location.offset + PAGE_SIZE
      ) {
        j++;
      }
      this.readRun(located.slice(i, j), out, ctx);
      i = j;
    }
    return out;
  }

  /**
   * The pages file that `runs` stand for, written to the file descriptor `fd` from offset 0
   * (what readPages() would return, without holding it in memory): chunks of 8 MiB are read
   * on this thread, named on the hash pool and compared with the expected names in one
   * memcmp (zero pages are zeros on both sides), a few chunks at a time, each written once
   * verified. With `locations` (a manifest's, LOCATION_BYTES per stored page) no index is
   * consulted; any page that fails verification goes through readPage(), which looks it up
   * again or names the problem. With `segments`, the pages go to those places instead: the
   * first segment's pages at its position, the next ones at the next segment's, and so on
   * (holes between them are left alone).
   */
  async writeRuns(
    runs: readonly PageRun[],
    fd: number,
    pool: PageHashPool,
    ctx: PageErrorContext = {},
    locations?: Buffer,
    segments?: readonly OutputSegment[],
    priority: HashPriority = 'normal',
  ): Promise<void> {
    const total = runsPageCount(runs);
    const places = segments ?? [{ pages: total, position: 0 }];
    if (places.reduce((n, s) => n + s.pages, 0) !== total) throw new RangeError(`the output segments hold a different number of pages than the runs (${total})`);
    const inFlight: Array<Promise<void>> = [];
    const buffers = new SharedChunks(WRITE_CHUNK_PAGES);
    const cursor = { run: 0, within: 0, stored: 0 };
    try {
      for (let first = 0; first < total; first += WRITE_CHUNK_PAGES) {
        const count = Math.min(WRITE_CHUNK_PAGES, total - first);
        const chunk = buffers.take(count);
        const expected = Buffer.alloc(count * HASH_BYTES);
        const reads: FileRead[] = [];
        this.fillChunk(runs, cursor, chunk, expected, count, ctx, locations, reads);
        const done = pool.hashPages(chunk, reads, { priority }).then(async (names) => {
          if (!names.equals(expected)) this.repairChunk(chunk, names, expected, ctx);
          // All pieces at once (a sparse output has hundreds of small extents per chunk), and
          // all of them over before an error goes up: the caller closes fd, and a write still
          // queued would land in whatever file gets that number next.
          const writes = await Promise.allSettled(piecesOf(places, first, count).map((piece) => writeFullyAsync(fd, chunk.subarray(piece.at, piece.at + piece.length), piece.position)));
          const failed = writes.find((w): w is PromiseRejectedResult => w.status === 'rejected');
          if (failed) throw failed.reason;
          buffers.give(chunk);
        });
        done.catch(() => undefined); // awaited below; this only marks it handled meanwhile
        inFlight.push(done);
        if (inFlight.length > WRITE_CHUNKS_AHEAD) await inFlight.shift();
      }
      while (inFlight.length > 0) await inFlight.shift();
    } finally {
      await Promise.allSettled(inFlight);
    }
  }

  /**
   * The next `count` pages of `runs` (from `cursor`, which advances) into `chunk`, unverified,
   * and their names into `expected`; zero pages are zeros in both.
   */
  private fillChunk(
    runs: readonly PageRun[],
    cursor: { run: number; within: number; stored: number },
    chunk: Buffer,
    expected: Buffer,
    count: number,
    ctx: PageErrorContext,
    locations: Buffer | undefined,
    /** Where the stored pages are to be read from (by the hash pool's workers). */
    reads: FileRead[],
  ): void {
    let slot = 0;
    while (slot < count) {
      const run = runs[cursor.run];
      const n = Math.min(run.count - cursor.within, count - slot);
      if (run.kind === 'zero') {
        chunk.fill(0, slot * PAGE_SIZE, (slot + n) * PAGE_SIZE);
      } else {
        run.hashes.copy(expected, slot * HASH_BYTES, cursor.within * HASH_BYTES, (cursor.within + n) * HASH_BYTES);
        const places =
          locations === undefined
            ? this.index.lookupPages(Array.from({ length: n }, (_, k) => run.hashes.subarray((cursor.within + k) * HASH_BYTES, (cursor.within + k + 1) * HASH_BYTES)))
            : undefined;
        const placeOf = (k: number): PageLocation | undefined => {
          if (places !== undefined) return places[k];
          const at = (cursor.stored + k) * LOCATION_BYTES;
          return { packId: (locations as Buffer).readUInt32LE(at), offset: (locations as Buffer).readUInt32LE(at + 4) * PAGE_SIZE };
        };
        let k = 0;
        while (k < n) {
          const loc = placeOf(k);
          if (loc === undefined) {
            const hash = run.hashes.subarray((cursor.within + k) * HASH_BYTES, (cursor.within + k + 1) * HASH_BYTES);
            throw this.missing(hash, ctx, undefined, 'no pack holds it (the index has no entry for it)');
          }
          // Pages back to back in one pack are read at once.
          let j = k + 1;
          for (; j < n; j++) {
            const next = placeOf(j);
            if (next === undefined || next.packId !== loc.packId || next.offset !== loc.offset + (j - k) * PAGE_SIZE) break;
          }
          let fd: number | null = null;
          try {
            fd = this.packs.descriptor(loc.packId);
          } catch (err) {
            if (!(err instanceof PackCorruptError)) throw err;
          }
          // No file, or a short or failed read: stale bytes, which fail verification and go to readPage().
          if (fd !== null) reads.push({ fd, position: loc.offset, at: (slot + k) * PAGE_SIZE, length: (j - k) * PAGE_SIZE });
          k = j;
        }
        cursor.stored += n;
      }
      slot += n;
      cursor.within += n;
      if (cursor.within === run.count) {
        cursor.run++;
        cursor.within = 0;
      }
    }
  }

  /** Replaces every page of a chunk whose name is not the expected one (readPage fixes or throws). */
  private repairChunk(chunk: Buffer, names: Buffer, expected: Buffer, ctx: PageErrorContext): void {
    for (let slot = 0; slot < chunk.length / PAGE_SIZE; slot++) {
      const at = slot * HASH_BYTES;
      if (names.compare(expected, at, at + HASH_BYTES, at, at + HASH_BYTES) === 0) continue;
      this.readPage(expected.subarray(at, at + HASH_BYTES), ctx).copy(chunk, slot * PAGE_SIZE);
    }
  }

  private readRun(run: ReadonlyArray<Wanted & { location: PageLocation }>, out: Buffer, ctx: PageErrorContext): void {
    const first = run[0].location;
    const length = run.length * PAGE_SIZE;
    let n: number | null;
    try {
      n = this.packs.read(first.packId, first.offset, this.scratch, length);
    } catch (err) {
      if (!(err instanceof PackCorruptError)) throw err;
      n = null;
    }
    for (const [k, w] of run.entries()) {
      const page = this.scratch.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
      const good = n !== null && n >= (k + 1) * PAGE_SIZE && hashPage(page).equals(w.hash);
      // Anything off goes through readPage(), which looks again and names the problem.
      const bytes = good ? page : this.readPage(w.hash, ctx);
      for (const slot of w.slots) bytes.copy(out, slot * PAGE_SIZE);
    }
  }

  /** Read and verify; false on any failure (the caller looks the page up again). */
  private tryRead(hash: Buffer, loc: PageLocation, out: Buffer): boolean {
    try {
      const n = this.packs.read(loc.packId, loc.offset, out, PAGE_SIZE);
      return n === PAGE_SIZE && hashPage(out).equals(hash);
    } catch (err) {
      if (err instanceof PackCorruptError) return false;
      throw err;
    }
  }

  /** The final attempt: read, verify, and throw the precise error. */
  private readOnce(hash: Buffer, loc: PageLocation, out: Buffer, ctx: PageErrorContext): Buffer {
    let n: number | null;
    try {
      n = this.packs.read(loc.packId, loc.offset, out, PAGE_SIZE);
    } catch (err) {
      if (err instanceof PackCorruptError) {
        throw new PageCorruptError(hashHex(hash), ctx.checkpointId, loc.packId, loc.offset, this.storeRoot, err.message);
      }
      throw err;
    }
    if (n === null) throw this.missing(hash, ctx, loc, 'its pack file does not exist');
    if (n < PAGE_SIZE) throw this.missing(hash, ctx, loc, `its pack file ends ${PAGE_SIZE - n} bytes into the page`);
    const actual = hashPage(out);
    if (!actual.equals(hash)) {
      throw new PageCorruptError(hashHex(hash), ctx.checkpointId, loc.packId, loc.offset, this.storeRoot, `its bytes hash to ${hashHex(actual)}`);
    }
    return out;
  }

  private missing(hash: Buffer, ctx: PageErrorContext, loc: PageLocation | undefined, detail: string): PageMissingError {
    return new PageMissingError(hashHex(hash), ctx.checkpointId, loc?.packId, loc?.offset, this.storeRoot, detail);
  }
}
