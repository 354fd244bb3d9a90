// The protobufjs Root for our CRIU image messages (proto/criu/), kept apart from the
// containerd protos, plus the decode/encode boundary: protobufjs errors become
// CriuImageErrors, and 64-bit fields cross as bigint.
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { repoRoot } from '../paths/repo-root';
import { CriuImageError } from './criu-image-error';

export const CRIU_PROTO_FILES = ['pagemap.proto', 'vma.proto', 'mm.proto', 'fown.proto', 'regfile.proto', 'fdinfo.proto', 'mnt.proto'];

export type CriuMessageName =
  | 'pagemap_head'
  | 'pagemap_entry'
  | 'vma_entry'
  | 'aio_ring_entry'
  | 'mm_entry'
  | 'fown_entry'
  | 'reg_file_entry'
  | 'fdinfo_entry'
  | 'file_entry'
  | 'mnt_entry';

/** Where an entry sits, for error messages. */
export interface EntryLocation {
  readonly file: string;
  readonly offset?: number;
}

let root: protobuf.Root | undefined;
export function criuProtoRoot(): protobuf.Root {
  if (!root) {
    const dir = path.join(repoRoot(), 'proto', 'criu');
    const r = new protobuf.Root();
    r.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(dir, target));
    r.loadSync(CRIU_PROTO_FILES.map((f) => path.join(dir, f)), { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

const types = new Map<CriuMessageName, protobuf.Type>();
export function criuMessageType(name: CriuMessageName): protobuf.Type {
  let type = types.get(name);
  if (!type) {
    type = criuProtoRoot().lookupType(name);
    types.set(name, type);
  }
  return type;
}

export interface DecodeOptions {
  /**
   * 'refuse' (the default): an entry with fields our protos lack is an UNSUPPORTED error,
   * because protobufjs drops them on decode and re-encoding would lose them silently.
   */
  readonly unknownFields?: 'refuse' | 'ignore';
}

/**
 * Decodes one entry payload strictly. The wire is scanned first (protobufjs itself reads a
 * field of the wrong wire type as if it were right), then decoded; whatever protobufjs
 * throws on malformed bytes (a RangeError, a missing required field, runaway nesting)
 * becomes a BAD_ENTRY CriuImageError.
 */
export function decodeEntry(name: CriuMessageName, payload: Uint8Array, where: EntryLocation, options: DecodeOptions = {}): protobuf.Message {
  const type = criuMessageType(name);
  const unknown: string[] = [];
  try {
    scanFields(type, payload, unknown);
    const message = type.decode(payload);
    if (unknown.length > 0 && options.unknownFields !== 'ignore') {
      throw new CriuImageError(
        'UNSUPPORTED',
        where.file,
        where.offset,
        `${name} has field(s) ${unknown.join(', ')} that pageshare does not know: the dump comes from a newer CRIU than pageshare supports`,
      );
    }
    return message;
  } catch (err) {
    if (err instanceof CriuImageError) throw err;
    const why = err instanceof Error ? err.message : String(err);
    throw new CriuImageError('BAD_ENTRY', where.file, where.offset, `not a valid ${name}: ${why}`);
  }
}

/** Encodes a message (a decoded one, or a plain object with the proto's field names). */
export function encodeEntry(name: CriuMessageName, message: object): Uint8Array {
  return criuMessageType(name).encode(message).finish();
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

function wireTypeOf(field: protobuf.Field): number {
  if (field.resolvedType instanceof protobuf.Type) return WIRE_LENGTH;
  if (field.resolvedType instanceof protobuf.Enum) return WIRE_VARINT;
  switch (field.type) {
    case 'double':
    case 'fixed64':
    case 'sfixed64':
      return WIRE_FIXED64;
    case 'float':
    case 'fixed32':
    case 'sfixed32':
      return WIRE_FIXED32;
    case 'string':
    case 'bytes':
      return WIRE_LENGTH;
    default:
      return WIRE_VARINT;
  }
}

/**
 * Walks the fields of `payload` (and of the messages embedded in it), checking each wire
 * type against the proto and collecting unknown field numbers as "message.number". Throws
 * plain errors; the caller turns them into CriuImageErrors.
 */
function scanFields(type: protobuf.Type, payload: Uint8Array, unknown: string[]): void {
  const reader = protobuf.Reader.create(payload);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const id = tag >>> 3;
    const wire = tag & 7;
    if (id === 0) throw new Error(`field number 0 at offset ${reader.pos}`);
    const field = type.fieldsById[id];
    if (!field) {
      const label = `${type.name}.${id}`;
      if (!unknown.includes(label)) unknown.push(label);
      reader.skipType(wire);
      continue;
    }
    const expected = wireTypeOf(field);
    if (wire === expected && field.resolvedType instanceof protobuf.Type) {
      const length = reader.uint32();
      const start = reader.pos;
      reader.skip(length);
      scanFields(field.resolvedType, payload.subarray(start, start + length), unknown);
    } else if (wire === expected || (field.repeated && wire === WIRE_LENGTH && expected !== WIRE_LENGTH)) {
      reader.skipType(wire); // the second case: a packed repeated scalar
    } else {
      throw new Error(`field ${id} (${field.name}) has wire type ${wire}, expected ${expected}`);
    }
  }
}

/** A 64-bit value as protobufjs decodes it (a Long, or a number without the long package). */
export type WireLong = number | { low: number; high: number; unsigned?: boolean };

export function u64ToBigInt(value: WireLong): bigint {
  if (typeof value === 'number') return BigInt(value);
  return (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
}

export function s64ToBigInt(value: WireLong): bigint {
  return BigInt.asIntN(64, u64ToBigInt(value));
}

/** A bigint as the low/high pair protobufjs encodes (two's complement for negatives). */
export function bigIntToWire(value: bigint): { low: number; high: number; unsigned: boolean } {
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0, unsigned: value >= 0n };
}
