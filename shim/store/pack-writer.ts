// Appends pages to one pack file through a large buffer (a write per writeBufferBytes, not
// per page). Nothing it writes is visible until the index commits it, so bytes past the
// committed length are garbage a crash may leave behind; reopening cuts them off.
import * as fs from 'node:fs';
import { PAGE_SIZE } from '../criu/page-size';
import { syncFd, writeFully, writeFullyAsync } from './durable-fs';
import { PackHeader, encodePackHeader } from './pack-header';
import { checkHeader } from './pack-reader';
import { PackCorruptError } from './store-error';

export const DEFAULT_WRITE_BUFFER_BYTES = 8 * 1024 * 1024;
/**
 * After this many bytes written since the last one, an fdatasync starts in the background, so
 * the disk writes while the ingest goes on and the final fsync only waits for the tail.
 */
const EARLY_SYNC_BYTES = 64 * 1024 * 1024;

export class PackWriter {
  private fd: number | undefined;
  private readonly buffer: Buffer;
  private buffered = 0;
  /** File offset where the buffer's first byte goes. */
  private flushedLength: number;
  private unsyncedBytes = 0;
  private readonly earlySyncs: Array<Promise<void>> = [];
  /** appendPagesDirect() writes not yet known to be done. */
  private readonly inFlight: Array<Promise<void>> = [];
  /** The first error of a background fdatasync (Linux reports a writeback error only once per fd). */
  private earlySyncError: Error | undefined;

  private constructor(
    readonly packId: number,
    readonly file: string,
    /** The file was created by this writer (its directory entry is not durable yet). */
    readonly isNew: boolean,
    fd: number,
    startLength: number,
    bufferBytes: number,
  ) {
    this.fd = fd;
    this.flushedLength = startLength;
    this.buffer = Buffer.allocUnsafe(Math.max(PAGE_SIZE, bufferBytes - (bufferBytes % PAGE_SIZE)));
  }

  /** A new pack file (replacing any garbage file of that name: ids are never reused once committed). */
  static create(file: string, header: PackHeader, bufferBytes = DEFAULT_WRITE_BUFFER_BYTES): PackWriter {
    const fd = fs.openSync(
      file,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC,
      0o644,
    );
    const writer = new PackWriter(header.packId, file, true, fd, 0, bufferBytes);
    writer.appendRaw(encodePackHeader(header));
    return writer;
  }

  /** Continue the open pack after its last committed page (cutting off any garbage tail). */
  static reopen(file: string, packId: number, storeId: string, committedLength: number, bufferBytes = DEFAULT_WRITE_BUFFER_BYTES): PackWriter {
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDWR);
    } catch (err) {
      throw new PackCorruptError(packId, file, `cannot open it (${(err as Error).message})`);
    }
    try {
      checkHeader(fd, file, packId, storeId);
      const size = fs.fstatSync(fd).size;
      if (size < committedLength) {
        throw new PackCorruptError(packId, file, `it is ${size} bytes but the index has pages up to byte ${committedLength}`);
      }
      if (size > committedLength) fs.ftruncateSync(fd, committedLength);
      return new PackWriter(packId, file, false, fd, committedLength, bufferBytes);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** File length once everything appended so far is written. */
  get length(): number {
    return this.flushedLength + this.buffered;
  }

  /**
   * Append `count` pages of `source` from byte `start` without copying them: the write runs
   * on the thread pool (sync() waits for it). `source` must stay unchanged until `written`
   * settles; a write error surfaces there and again at sync(). Returns the first page's offset.
   */
  appendPagesDirect(source: Buffer, start: number, count: number): { offset: number; written: Promise<void> } {
    this.flush();
    const fd = this.openFd();
    const offset = this.flushedLength;
    const bytes = count * PAGE_SIZE;
    this.flushedLength += bytes;
    const written = writeFullyAsync(fd, source.subarray(start, start + bytes), offset).catch((err: Error) => {
      this.earlySyncError ??= err;
      throw err;
    });
    written.catch(() => undefined); // surfaced at sync(); the caller may not wait for it
    this.inFlight.push(written);
    this.countWritten(bytes);
    return { offset, written };
  }

  /** Append one page (PAGE_SIZE bytes of `source` from `sourceOffset`); returns its offset in the file. */
  append(source: Buffer, sourceOffset = 0): number {
    const offset = this.length;
    this.appendRaw(source, sourceOffset, sourceOffset + PAGE_SIZE);
    return offset;
  }

  private appendRaw(bytes: Buffer, start = 0, end = bytes.length): void {
    let done = start;
    while (done < end) {
      if (this.buffered === this.buffer.length) this.flush();
      const n = bytes.copy(this.buffer, this.buffered, done, end);
      this.buffered += n;
      done += n;
    }
  }

  flush(): void {
    if (this.buffered === 0) return;
    const fd = this.openFd();
    writeFully(fd, this.buffer.subarray(0, this.buffered), this.flushedLength);
    this.flushedLength += this.buffered;
    const written = this.buffered;
    this.buffered = 0;
    this.countWritten(written);
  }

  /** Bytes handed to the kernel: start a background fdatasync every EARLY_SYNC_BYTES. */
  private countWritten(bytes: number): void {
    const fd = this.openFd();
    this.unsyncedBytes += bytes;
    if (this.unsyncedBytes >= EARLY_SYNC_BYTES) {
      this.unsyncedBytes = 0;
      this.earlySyncs.push(
        new Promise<void>((resolve) =>
          fs.fdatasync(fd, (err) => {
            if (err !== null) this.earlySyncError ??= err;
            resolve();
          }),
        ),
      );
    }
  }

  /** Flush and fsync: every appended page is durable when this resolves. */
  async sync(): Promise<void> {
    this.flush();
    await this.settleEarlySyncs();
    await syncFd(this.openFd());
    this.unsyncedBytes = 0;
  }

  /** Resolves when every write and background fdatasync started so far has ended (never rejects). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight, ...this.earlySyncs]);
  }

  private async settleEarlySyncs(): Promise<void> {
    await Promise.allSettled(this.inFlight.splice(0));
    await Promise.all(this.earlySyncs.splice(0));
    if (this.earlySyncError !== undefined) throw this.earlySyncError;
  }

  /** Forget everything after length (an aborted ingest's pages). */
  truncate(length: number): void {
    this.buffered = 0;
    this.flushedLength = length;
    fs.ftruncateSync(this.openFd(), length);
  }

  /**
   * Close the file (buffered bytes not flushed are dropped). Idempotent. A background
   * fdatasync still running keeps the fd open until it ends (never a reused descriptor).
   */
  close(): void {
    if (this.fd === undefined) return;
    if (this.earlySyncs.length > 0 || this.inFlight.length > 0) {
      const fd = this.fd;
      this.fd = undefined;
      void Promise.allSettled([...this.earlySyncs.splice(0), ...this.inFlight.splice(0)]).then(() => {
        try {
          fs.closeSync(fd);
        } catch {
          /* nothing was pending on it */
        }
      });
      return;
    }
    fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private openFd(): number {
    if (this.fd === undefined) throw new Error(`pack ${this.packId} writer is closed`);
    return this.fd;
  }
}

/** Sealed packs are read-only on disk too (best effort: root ignores the mode, tools do not). */
export function makePackReadOnly(file: string): void {
  try {
    fs.chmodSync(file, 0o444);
  } catch {
    /* the index's sealed flag is what counts */
  }
}
