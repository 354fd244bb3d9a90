// Hand encoders for tests: protobuf wire bytes built without protobufjs, so the tests pin
// the format instead of checking protobufjs against itself.

export function varint(value: number | bigint): number[] {
  let v = BigInt(value);
  if (v < 0n) v = BigInt.asUintN(64, v);
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

/** A varint field (wire type 0). */
export function vfield(field: number, value: number | bigint): number[] {
  return [...varint((field << 3) | 0), ...varint(value)];
}

/** A length-delimited field (wire type 2). */
export function lfield(field: number, bytes: number[]): number[] {
  return [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
}

export function u32le(value: number): number[] {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return [...b];
}

/** magics followed by length-prefixed payloads. */
export function imageBytes(magics: number[], payloads: number[][]): Buffer {
  return Buffer.from([...magics.flatMap(u32le), ...payloads.flatMap((p) => [...u32le(p.length), ...p])]);
}
