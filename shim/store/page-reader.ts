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
import { PageHashPool, SharedChunks } from './page-hash-pool';
import { LOCATION_BYTES } from './page-manifest';
import { HASH_BYTES, PageRef, hashHex, hashKey } from './page-ref';
import { PackCorruptError, PageCorruptError, PageErrorContext, PageMissingError } from './store-error';

/** Pages per chunk of writePages(): 8 MiB. */
const WRITE_CHUNK_PAGES = 2048;
/** Chunks being verified or written while the next one is read. */
const WRITE_CHUNKS_AHEAD = 3;

/** Largest single read of a run of pages that lie back to back in a pack. */
const MAX_READ_BYTES = 1024 * 1024;

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
   * What readPages() returns, written to the file descriptor `fd` from offset 0 instead of
   * built in memory: chunks are read on this thread and verified on the hash pool, a few at
   * a time, and each is written once verified. Zero pages are written as zeros. Any page that
   * fails verification goes through readPage(), which looks it up again or names the problem.
   */
  async writePages(
    refs: readonly PageRef[],
    fd: number,
    pool: PageHashPool,
    ctx: PageErrorContext = {},
    /** Where each stored page should be (manifest locations): no index lookups then. */
    locations?: Buffer,
  ): Promise<void> {
    const inFlight: Array<Promise<void>> = [];
    const buffers = new SharedChunks(WRITE_CHUNK_PAGES);
    let storedBefore = 0;
    try {
      for (let first = 0; first < refs.length; first += WRITE_CHUNK_PAGES) {
        const slots = refs.slice(first, first + WRITE_CHUNK_PAGES);
        const chunk = buffers.take(slots.length);
        storedBefore += this.readChunk(slots, chunk, ctx, locations, storedBefore);
        const done = pool.hashPages(chunk).then(async (names) => {
          this.repairChunk(slots, chunk, names, ctx);
          await writeFullyAsync(fd, chunk, first * PAGE_SIZE);
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
   * Reads a chunk's stored pages into place (unverified): pages back to back in a pack at
   * once. Returns how many stored pages the chunk has.
   */
  private readChunk(slots: readonly PageRef[], chunk: Buffer, ctx: PageErrorContext, hints: Buffer | undefined, storedBefore: number): number {
    const stored: Array<{ slot: number; hash: Buffer }> = [];
    slots.forEach((ref, slot) => {
      if (ref.kind === 'stored') stored.push({ slot, hash: ref.hash });
      else chunk.fill(0, slot * PAGE_SIZE, (slot + 1) * PAGE_SIZE); // a reused buffer
    });
    const locations: Array<PageLocation | undefined> =
      hints === undefined
        ? this.index.lookupPages(stored.map((s) => s.hash))
        : stored.map((_, k) => {
            const at = (storedBefore + k) * LOCATION_BYTES;
            return { packId: hints.readUInt32LE(at), offset: hints.readUInt32LE(at + 4) * PAGE_SIZE };
          });
    let i = 0;
    while (i < stored.length) {
      const loc = locations[i];
      if (loc === undefined) throw this.missing(stored[i].hash, ctx, undefined, 'no pack holds it (the index has no entry for it)');
      // A run: consecutive slots whose pages lie back to back in one pack.
      let j = i + 1;
      while (j < stored.length) {
        const next = locations[j];
        if (next === undefined || next.packId !== loc.packId || stored[j].slot !== stored[i].slot + (j - i)) break;
        if (next.offset !== loc.offset + (j - i) * PAGE_SIZE) break;
        j++;
      }
      const at = stored[i].slot * PAGE_SIZE;
      try {
        // A short or failed read leaves zeros, which fail verification and go to readPage().
        this.packs.read(loc.packId, loc.offset, chunk.subarray(at), (j - i) * PAGE_SIZE);
      } catch (err) {
        if (!(err instanceof PackCorruptError)) throw err;
      }
      i = j;
    }
    return stored.length;
  }

  /** Checks every stored page of a chunk against the names the pool computed; fixes or throws. */
  private repairChunk(slots: readonly PageRef[], chunk: Buffer, names: Buffer, ctx: PageErrorContext): void {
    slots.forEach((ref, slot) => {
      if (ref.kind !== 'stored') return;
      if (names.compare(ref.hash, 0, HASH_BYTES, slot * HASH_BYTES, (slot + 1) * HASH_BYTES) === 0) return;
      this.readPage(ref.hash, ctx).copy(chunk, slot * PAGE_SIZE);
    });
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
