// Reads byte ranges of pack files, keeping a few descriptors open. A descriptor stays valid
// after gc unlinks or replaces its file (the bytes of a committed page never change), so a
// cached fd never returns wrong data; callers verify every page against its name anyway.
import * as fs from 'node:fs';
import { readFully } from './durable-fs';
import { PACK_HEADER_SIZE, PackHeader, PackHeaderFormatError, decodePackHeader } from './pack-header';
import { PackCorruptError } from './store-error';
import { StoreLayout } from './store-layout';

const DEFAULT_MAX_OPEN = 64;

/** Read and check a pack's header through an open fd; throws PackCorruptError. */
export function checkHeader(fd: number, file: string, packId: number, storeId: string): PackHeader {
  const buf = Buffer.alloc(PACK_HEADER_SIZE);
  const n = readFully(fd, buf, PACK_HEADER_SIZE, 0);
  let header: PackHeader;
  try {
    header = decodePackHeader(buf.subarray(0, n));
  } catch (err) {
    if (err instanceof PackHeaderFormatError) throw new PackCorruptError(packId, file, err.message);
    throw err;
  }
  if (header.packId !== packId) throw new PackCorruptError(packId, file, `its header names pack ${header.packId}`);
  if (header.storeId !== storeId) throw new PackCorruptError(packId, file, `it belongs to store ${header.storeId}, not ${storeId}`);
  return header;
}

export class PackReader {
  /** packId -> fd, least recently used first. */
  private readonly fds = new Map<number, number>();

  constructor(
    private readonly layout: StoreLayout,
    private readonly storeId: string,
    private readonly maxOpen = DEFAULT_MAX_OPEN,
  ) {}

  /**
   * Read length bytes at offset of a pack into buf. Returns how many bytes were there (fewer
   * at end of file), or null if the pack file does not exist. Throws PackCorruptError if the
   * file is not that pack.
   */
  read(packId: number, offset: number, buf: Buffer, length: number): number | null {
    const fd = this.fdOf(packId);
    if (fd === null) return null;
    return readFully(fd, buf, length, offset);
  }

  /**
   * The open descriptor of a pack (checked header), or null if its file does not exist. It
   * stays open until forget() or close(); a caller that reads it elsewhere must verify what it reads.
   */
  descriptor(packId: number): number | null {
    return this.fdOf(packId);
  }

  /** Close a pack's cached descriptor (the next read opens the file again). */
  forget(packId: number): void {
    const fd = this.fds.get(packId);
    if (fd === undefined) return;
    this.fds.delete(packId);
    fs.closeSync(fd);
  }

  close(): void {
    for (const id of [...this.fds.keys()]) this.forget(id);
  }

  private fdOf(packId: number): number | null {
    const cached = this.fds.get(packId);
    if (cached !== undefined) {
      this.fds.delete(packId);
      this.fds.set(packId, cached);
      return cached;
    }
    const file = this.layout.packFile(packId);
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDONLY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      checkHeader(fd, file, packId, this.storeId);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    if (this.fds.size >= this.maxOpen) {
      const oldest = this.fds.keys().next().value;
      if (oldest !== undefined) this.forget(oldest);
    }
    this.fds.set(packId, fd);
    return fd;
  }
}
