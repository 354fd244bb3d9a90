// The header page of a pack file: its one reader and one writer.
//
//   pack   = header (one page), then pages, each PAGE_SIZE bytes at a page-aligned offset,
//            appended in arrival order; the index says which offsets hold live pages.
//   header = magic "PGSHPACK" | version u16 | flags u16 (0) | page size u32 | pack id u64
//            | store id 16 bytes | created at u64 (ms since the epoch)
//            | SHA-256 of the 48 bytes before it | zeros up to PAGE_SIZE
//   (all integers little-endian)
//
// The header fills a whole page so that page data starts page-aligned: restore will map
// pack pages straight into processes (MAP_PRIVATE), which needs file offsets that are
// multiples of the page size. Pages carry no checksum of their own: their name is one.
import * as crypto from 'node:crypto';
import { PAGE_SIZE } from '../criu/page-size';

export const PACK_MAGIC = Buffer.from('PGSHPACK', 'latin1');
export const PACK_VERSION = 1;
/** Bytes before the first page. */
export const PACK_HEADER_SIZE = PAGE_SIZE;
/** Bytes of a store id (random, chosen when the store is created). */
export const STORE_ID_BYTES = 16;

const OFF_VERSION = 8;
const OFF_FLAGS = 10;
const OFF_PAGE_SIZE = 12;
const OFF_PACK_ID = 16;
const OFF_STORE_ID = 24;
const OFF_CREATED = 40;
const OFF_CHECKSUM = 48;
const CHECKSUM_BYTES = 32;
const HEADER_END = OFF_CHECKSUM + CHECKSUM_BYTES;

export interface PackHeader {
  readonly packId: number;
  /** Hex, STORE_ID_BYTES * 2 characters. */
  readonly storeId: string;
  readonly createdAtMs: number;
}

/** Why a header could not be read (the caller wraps it with the pack's id and file). */
export class PackHeaderFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PackHeaderFormatError';
  }
}

function checksum(buf: Buffer): Buffer {
  return crypto.createHash('sha256').update(buf.subarray(0, OFF_CHECKSUM)).digest();
}

export function isStoreId(value: string): boolean {
  return value.length === STORE_ID_BYTES * 2 && /^[0-9a-f]+$/.test(value);
}

export function encodePackHeader(header: PackHeader): Buffer {
  if (!Number.isSafeInteger(header.packId) || header.packId < 1) throw new RangeError(`bad pack id ${header.packId}`);
  if (!isStoreId(header.storeId)) throw new RangeError(`bad store id ${header.storeId}`);
  if (!Number.isSafeInteger(header.createdAtMs) || header.createdAtMs < 0) throw new RangeError(`bad time ${header.createdAtMs}`);
  const buf = Buffer.alloc(PACK_HEADER_SIZE);
  PACK_MAGIC.copy(buf, 0);
  buf.writeUInt16LE(PACK_VERSION, OFF_VERSION);
  buf.writeUInt16LE(0, OFF_FLAGS);
  buf.writeUInt32LE(PAGE_SIZE, OFF_PAGE_SIZE);
  buf.writeBigUInt64LE(BigInt(header.packId), OFF_PACK_ID);
  Buffer.from(header.storeId, 'hex').copy(buf, OFF_STORE_ID);
  buf.writeBigUInt64LE(BigInt(header.createdAtMs), OFF_CREATED);
  checksum(buf).copy(buf, OFF_CHECKSUM);
  return buf;
}

function safeU64(buf: Buffer, offset: number, what: string): number {
  const value = buf.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new PackHeaderFormatError(`${what} ${value} is out of range`);
  return Number(value);
}

/** Reads a header from the first bytes of a pack; throws PackHeaderFormatError. */
export function decodePackHeader(buf: Buffer): PackHeader {
  if (buf.length < PACK_HEADER_SIZE) {
    throw new PackHeaderFormatError(`file is ${buf.length} bytes, shorter than a pack header (${PACK_HEADER_SIZE})`);
  }
  if (!buf.subarray(0, PACK_MAGIC.length).equals(PACK_MAGIC)) throw new PackHeaderFormatError('not a pack file (bad magic)');
  const version = buf.readUInt16LE(OFF_VERSION);
  if (version !== PACK_VERSION) throw new PackHeaderFormatError(`pack format version ${version} is not supported (this pageshare reads ${PACK_VERSION})`);
  if (!buf.subarray(OFF_CHECKSUM, HEADER_END).equals(checksum(buf))) throw new PackHeaderFormatError('header checksum mismatch');
  const flags = buf.readUInt16LE(OFF_FLAGS);
  if (flags !== 0) throw new PackHeaderFormatError(`unknown header flags 0x${flags.toString(16)}`);
  const pageSize = buf.readUInt32LE(OFF_PAGE_SIZE);
  if (pageSize !== PAGE_SIZE) throw new PackHeaderFormatError(`page size ${pageSize}, expected ${PAGE_SIZE}`);
  for (let i = HEADER_END; i < PACK_HEADER_SIZE; i++) {
    if (buf[i] !== 0) throw new PackHeaderFormatError(`non-zero byte at ${i} in the header's padding`);
  }
  const packId = safeU64(buf, OFF_PACK_ID, 'pack id');
  if (packId < 1) throw new PackHeaderFormatError('pack id 0');
  return {
    packId,
    storeId: buf.subarray(OFF_STORE_ID, OFF_STORE_ID + STORE_ID_BYTES).toString('hex'),
    createdAtMs: safeU64(buf, OFF_CREATED, 'creation time'),
  };
}
