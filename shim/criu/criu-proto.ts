// The protobufjs Root for our CRIU image messages (proto/criu/), kept apart from the
// containerd protos, plus the decode/encode boundary: protobufjs errors become
// CriuImageErrors, and 64-bit fields cross as bigint.
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { repoRoot } from '../paths/repo-root';
import { CriuImageError } from './criu-image-error';

export const CRIU_PROTO_FILES = ['pagemap.proto', 'vma.proto', 'mm.proto', 'fown.proto', 'regfile.proto', 'fdinfo.proto'];

export type CriuMessageName =
  | 'pagemap_head'
  | 'pagemap_entry'
  | 'vma_entry'
  | 'aio_ring_entry'
  | 'mm_entry'
  | 'fown_entry'
  | 'reg_file_entry'
  | 'fdinfo_entry'
  | 'file_entry';

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

/**
 * Decodes one entry payload. Whatever protobufjs throws on malformed bytes (a RangeError,
 * a missing required field, runaway group nesting) becomes a BAD_ENTRY CriuImageError.
 */
export function decodeEntry(name: CriuMessageName, payload: Uint8Array, where: EntryLocation): protobuf.Message {
  try {
    return criuMessageType(name).decode(payload);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new CriuImageError('BAD_ENTRY', where.file, where.offset, `not a valid ${name}: ${why}`);
  }
}

/** Encodes a message (a decoded one, or a plain object with the proto's field names). */
export function encodeEntry(name: CriuMessageName, message: object): Uint8Array {
  return criuMessageType(name).encode(message).finish();
}

/**
 * Top-level field numbers in `payload` that `name` does not declare. protobufjs drops
 * unknown fields when it decodes, so a writer that re-encodes a decoded entry must refuse
 * entries that have any. The payload must already have decoded without error.
 */
export function unknownFieldNumbers(name: CriuMessageName, payload: Uint8Array): number[] {
  const type = criuMessageType(name);
  const reader = protobuf.Reader.create(payload);
  const unknown: number[] = [];
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const id = tag >>> 3;
    if (!type.fieldsById[id] && !unknown.includes(id)) unknown.push(id);
    reader.skipType(tag & 7);
  }
  return unknown;
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
