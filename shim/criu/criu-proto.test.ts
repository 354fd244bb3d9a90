import fc from 'fast-check';
import { CriuImageError } from './criu-image-error';
import { bigIntToWire, CriuMessageName, decodeEntry, encodeEntry, s64ToBigInt, u64ToBigInt, WireLong } from './criu-proto';
import { lfield, varint, vfield } from './test-bytes';

const at = { file: 'test.img', offset: 8 };

function errorOf(fn: () => unknown): CriuImageError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CriuImageError) return err;
    throw err;
  }
  throw new Error('expected a CriuImageError');
}

/** A vma_entry as CRIU writes one for anonymous private memory. */
function vmaBytes(start: bigint, end: bigint, extra: number[] = []): number[] {
  return [
    ...vfield(1, start),
    ...vfield(2, end),
    ...vfield(3, 0),
    ...vfield(4, 0),
    ...vfield(5, 3),
    ...vfield(6, 0x22),
    ...vfield(7, 0x201),
    ...vfield(8, 1), // sint64 -1
    ...vfield(9, 0),
    ...vfield(10, 0),
    ...extra,
  ];
}

function mmBytes(vmas: number[][]): number[] {
  const out: number[] = [];
  for (let f = 1; f <= 11; f++) out.push(...vfield(f, 0x400000 * f));
  out.push(...vfield(12, 3), ...vfield(13, 33), ...vfield(13, 0xffffffffffffffffn));
  for (const v of vmas) out.push(...lfield(14, v));
  out.push(...vfield(15, 1));
  return out;
}

describe('decodeEntry / encodeEntry', () => {
  it('decodes and re-encodes an mm_entry with its VMAs byte for byte', () => {
    const bytes = Uint8Array.from(mmBytes([vmaBytes(0x7f0000000000n, 0x7f0000040000n), vmaBytes(0xffffffffff600000n, 0xffffffffff601000n)]));
    const mm = decodeEntry('mm_entry', bytes, at) as unknown as { vmas: Array<{ start: WireLong; fd: WireLong }>; mm_saved_auxv: WireLong[] };
    expect(mm.vmas.map((v) => u64ToBigInt(v.start))).toEqual([0x7f0000000000n, 0xffffffffff600000n]);
    expect(s64ToBigInt(mm.vmas[0].fd)).toBe(-1n);
    expect(u64ToBigInt(mm.mm_saved_auxv[1])).toBe(0xffffffffffffffffn);
    expect(Buffer.from(encodeEntry('mm_entry', mm))).toEqual(Buffer.from(bytes));
  });

  it('keeps file_entry kinds it does not interpret as opaque bytes, byte for byte', () => {
    const pipe = [...vfield(1, 5), ...vfield(2, 0x1234), ...lfield(3, [...vfield(1, 0), ...vfield(2, 0), ...vfield(3, 0), ...vfield(4, 0), ...vfield(5, 0)])];
    const bytes = Uint8Array.from([...vfield(1, 2), ...vfield(2, 7), ...lfield(18, pipe)]);
    const file = decodeEntry('file_entry', bytes, at) as unknown as { type: number; pipe: Uint8Array };
    expect(file.type).toBe(2);
    expect([...file.pipe]).toEqual(pipe);
    expect(Buffer.from(encodeEntry('file_entry', file))).toEqual(Buffer.from(bytes));
  });

  it('decodes a regular file entry with a negative mnt_id', () => {
    const fown = [...vfield(1, 0), ...vfield(2, 0), ...vfield(3, 0), ...vfield(4, 0), ...vfield(5, 0)];
    const name = [...Buffer.from('/pack/0001.pack')];
    const reg = [...vfield(1, 9), ...vfield(2, 0), ...vfield(3, 0), ...lfield(5, fown), ...lfield(6, name), ...vfield(7, 1), ...vfield(8, 1 << 20)];
    const bytes = Uint8Array.from([...vfield(1, 1), ...vfield(2, 9), ...lfield(3, reg)]);
    const file = decodeEntry('file_entry', bytes, at) as unknown as { reg: { name: string; mnt_id: number } };
    expect(file.reg).toMatchObject({ name: '/pack/0001.pack', mnt_id: -1 });
    expect(Buffer.from(encodeEntry('file_entry', file))).toEqual(Buffer.from(bytes));
  });

  it('refuses a field of the wrong wire type, also inside an embedded message', () => {
    expect(errorOf(() => decodeEntry('pagemap_head', Uint8Array.from([9, 0, 0, 0, 0, 0, 0, 0, 0]), at))).toMatchObject({
      reason: 'BAD_ENTRY',
      file: 'test.img',
      offset: 8,
    });
    const badVma = vmaBytes(0n, 4096n, [...varint((5 << 3) | 5), 0, 0, 0, 0]);
    expect(errorOf(() => decodeEntry('mm_entry', Uint8Array.from(mmBytes([badVma])), at)).message).toContain('prot');
  });

  it('refuses unknown fields unless told to ignore them, naming them', () => {
    const withUnknown = Uint8Array.from(mmBytes([vmaBytes(0n, 4096n, vfield(30, 1))]));
    const err = errorOf(() => decodeEntry('mm_entry', withUnknown, at));
    expect(err.reason).toBe('UNSUPPORTED');
    expect(err.message).toContain('vma_entry.30');
    expect(() => decodeEntry('mm_entry', withUnknown, at, { unknownFields: 'ignore' })).not.toThrow();
  });

  it('turns runaway group nesting into BAD_ENTRY', () => {
    const bomb = new Uint8Array(200_000).fill((31 << 3) | 3);
    expect(errorOf(() => decodeEntry('pagemap_entry', bomb, at)).reason).toBe('BAD_ENTRY');
  });

  it('random bytes never escape as anything but CriuImageError', () => {
    const names: CriuMessageName[] = ['pagemap_head', 'pagemap_entry', 'mm_entry', 'vma_entry', 'file_entry', 'reg_file_entry', 'fdinfo_entry'];
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.uint8Array({ maxLength: 48 }), (name, bytes) => {
        try {
          decodeEntry(name, bytes, at);
        } catch (err) {
          expect(err).toBeInstanceOf(CriuImageError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('64-bit values', () => {
  it('cross between bigint and the wire in both directions', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
        expect(u64ToBigInt(bigIntToWire(v))).toBe(v);
      }),
    );
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), (v) => {
        expect(s64ToBigInt(bigIntToWire(v))).toBe(v);
      }),
    );
    expect(u64ToBigInt(12)).toBe(12n);
  });
});
