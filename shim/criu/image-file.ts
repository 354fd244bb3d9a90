// The framing shared by CRIU's protobuf images (criu/image.c, criu/protobuf.c):
//
//   image  = [head magic u32 LE] kind magic u32 LE, entry*
//   entry  = length u32 LE, protobuf payload of that many bytes
//
// The kinds listed in ImageKinds carry nothing after an entry's payload (pipes-data,
// sk-queues, ghost files and a few others do, and are not read here). The reader trusts no
// length: each is checked against the bytes that remain and against a maximum before any
// payload is touched, and payloads are views into the file's buffer, so a lying length never
// causes an allocation. The writer emits exactly the bytes CRIU would, so parsing a file and
// serializing its payloads gives the file back byte for byte.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CriuImageError } from './criu-image-error';
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, ImageKind, magicHex } from './image-kind';

/** Largest entry payload accepted (CRIU's biggest, an mm entry, is ~40 bytes per VMA). */
export const DEFAULT_MAX_ENTRY_SIZE = 64 * 1024 * 1024;
/** Largest image file read into memory (pages files are raw and are never read this way). */
export const DEFAULT_MAX_IMAGE_FILE_SIZE = 256 * 1024 * 1024;

const U32 = 4;
const MAX_U32 = 0xffffffff;

export interface ImageEntry {
  /** Offset of the entry's length field in the file. */
  readonly offset: number;
  /** The protobuf payload: a view into the parsed buffer, not a copy. */
  readonly payload: Buffer;
}

export interface CriuImage {
  readonly kind: ImageKind;
  readonly entries: readonly ImageEntry[];
}

export interface ParseImageOptions {
  /** Names the file in errors (default "CRIU <kind> image"). */
  readonly source?: string;
  readonly maxEntrySize?: number;
}

export interface ReadImageOptions {
  readonly maxEntrySize?: number;
  readonly maxFileSize?: number;
}

function headMagic(kind: ImageKind): number | undefined {
  switch (kind.head) {
    case 'common':
      return IMG_COMMON_MAGIC;
    case 'service':
      return IMG_SERVICE_MAGIC;
    case 'none':
      return undefined;
  }
}

function magicLength(kind: ImageKind): number {
  return kind.head === 'none' ? U32 : 2 * U32;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Splits an image into its entries after checking its magics. */
export function parseImage(bytes: Uint8Array, kind: ImageKind, options: ParseImageOptions = {}): CriuImage {
  const buf = asBuffer(bytes);
  const source = options.source ?? `CRIU ${kind.name} image`;
  const maxEntrySize = options.maxEntrySize ?? DEFAULT_MAX_ENTRY_SIZE;

  const expected: Array<[number, string]> = [];
  const head = headMagic(kind);
  if (head !== undefined) expected.push([head, kind.head === 'service' ? 'IMG_SERVICE_MAGIC' : 'IMG_COMMON_MAGIC']);
  expected.push([kind.magic, `${kind.name} magic`]);
  let pos = 0;
  for (const [magic, name] of expected) {
    if (buf.length - pos < U32) {
      throw new CriuImageError('TRUNCATED', source, pos, `the file ends inside its magic (${buf.length} bytes); it is not a complete CRIU image`);
    }
    const found = buf.readUInt32LE(pos);
    if (found !== magic) {
      throw new CriuImageError(
        'BAD_MAGIC',
        source,
        pos,
        `expected ${name} ${magicHex(magic)}, found ${magicHex(found)}: not a CRIU ${kind.name} image (or from a CRIU older than image format v1.1)`,
      );
    }
    pos += U32;
  }

  const entries: ImageEntry[] = [];
  while (pos < buf.length) {
    const offset = pos;
    if (buf.length - pos < U32) {
      throw new CriuImageError('TRUNCATED', source, offset, `the file ends inside an entry's length (${buf.length - pos} of 4 bytes)`);
    }
    const size = buf.readUInt32LE(pos);
    pos += U32;
    if (size > maxEntrySize) {
      throw new CriuImageError('TOO_LARGE', source, offset, `an entry claims ${size} bytes, more than the ${maxEntrySize}-byte limit`);
    }
    if (size > buf.length - pos) {
      throw new CriuImageError('TRUNCATED', source, offset, `an entry claims ${size} bytes but only ${buf.length - pos} remain`);
    }
    entries.push({ offset, payload: buf.subarray(pos, pos + size) });
    pos += size;
  }
  return { kind, entries };
}

/** The bytes of an image of `kind` holding `payloads` in order (what CRIU itself writes). */
export function serializeImage(kind: ImageKind, payloads: readonly Uint8Array[]): Buffer {
  let total = magicLength(kind);
  for (const p of payloads) {
    if (p.byteLength > MAX_U32) {
      throw new CriuImageError('INVALID_VALUE', `CRIU ${kind.name} image`, undefined, `an entry of ${p.byteLength} bytes does not fit a u32 length`);
    }
    total += U32 + p.byteLength;
  }
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  const head = headMagic(kind);
  if (head !== undefined) pos = out.writeUInt32LE(head, pos);
  pos = out.writeUInt32LE(kind.magic, pos);
  for (const p of payloads) {
    pos = out.writeUInt32LE(p.byteLength, pos);
    out.set(p, pos);
    pos += p.byteLength;
  }
  return out;
}

/** Reads and parses an image file, refusing files larger than the limit before reading. */
export async function readImageFile(file: string, kind: ImageKind, options: ReadImageOptions = {}): Promise<CriuImage> {
  const maxFileSize = options.maxFileSize ?? DEFAULT_MAX_IMAGE_FILE_SIZE;
  const handle = await fsp.open(file, 'r');
  let bytes: Buffer;
  try {
    const { size } = await handle.stat();
    if (size > maxFileSize) {
      throw new CriuImageError('TOO_LARGE', file, undefined, `the image is ${size} bytes, more than the ${maxFileSize}-byte limit for a ${kind.name} image`);
    }
    bytes = await handle.readFile();
    if (bytes.length > maxFileSize) {
      throw new CriuImageError('TOO_LARGE', file, undefined, `the image grew past the ${maxFileSize}-byte limit while it was read`);
    }
  } finally {
    await handle.close();
  }
  return parseImage(bytes, kind, { source: file, maxEntrySize: options.maxEntrySize });
}

/**
 * Writes an image file whole: to a temporary name in the same folder, then renamed over
 * `file`, so a reader (or CRIU) never sees half an image. Not fsynced: images are rewritten
 * only in a restore's scratch copy, which a crash makes worthless anyway (an fsync there
 * waits on the journal while the restore writes its page-cache file).
 */
export async function writeImageFile(file: string, kind: ImageKind, payloads: readonly Uint8Array[]): Promise<void> {
  await writeFileAtomically(file, serializeImage(kind, payloads));
}

/** Replaces `file` through a temporary name: atomic for readers, but not durable (no fsync). */
export async function writeFileAtomically(file: string, bytes: Uint8Array): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const handle = await fsp.open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(bytes);
  } catch (err) {
    await handle.close();
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}
