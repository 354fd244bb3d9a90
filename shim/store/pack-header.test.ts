import fc from 'fast-check';
import { PACK_HEADER_SIZE, PackHeaderFormatError, decodePackHeader, encodePackHeader } from './pack-header';

const header = { packId: 42, storeId: '00112233445566778899aabbccddeeff', createdAtMs: 1_700_000_000_000 };

describe('pack header', () => {
  it('fills exactly one page and round-trips', () => {
    const buf = encodePackHeader(header);
    expect(buf.length).toBe(PACK_HEADER_SIZE);
    expect(decodePackHeader(buf)).toEqual(header);
    expect(buf.subarray(0, 8).toString('latin1')).toBe('PGSHPACK');
  });

  it('rejects any single-byte change or truncation with a PackHeaderFormatError', () => {
    const good = encodePackHeader(header);
    fc.assert(
      fc.property(fc.nat({ max: PACK_HEADER_SIZE - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const bad = Buffer.from(good);
        bad[at] ^= xor;
        expect(() => decodePackHeader(bad)).toThrow(PackHeaderFormatError);
        expect(() => decodePackHeader(good.subarray(0, at))).toThrow(PackHeaderFormatError);
      }),
      { numRuns: 300 },
    );
  });
});
