import fc from 'fast-check';
import { CriuImageError } from './criu-image-error';
import { IMG_COMMON_MAGIC, ImageKinds } from './image-kind';
import { PAGE_SIZE } from './page-size';
import { Pagemap, PE_LAZY, PE_PARENT, PE_PRESENT, parsePagemap, presentPageCount, presentPageRuns, serializePagemap } from './pagemap';
import { imageBytes, lfield, vfield } from './test-bytes';

const MAGICS = [IMG_COMMON_MAGIC, ImageKinds.PAGEMAP.magic];

/** The first three entries of a pagemap CRIU 4.1.1 wrote here, byte for byte. */
const CRIU_411_PAGEMAP = Buffer.from(
  '19435654254008560200000008020c000000088080aebff8c11510012004' +
    '0c0000000880c0aebff8c11510022004' +
    '0d0000000880e0f0cff9c115108002' +
    '2006',
  'hex',
);

function errorOf(fn: () => unknown): CriuImageError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CriuImageError) return err;
    throw err;
  }
  throw new Error('expected a CriuImageError');
}

describe('parsePagemap', () => {
  it('reads what CRIU 4.1.1 writes and writes it back byte for byte', () => {
    const pm = parsePagemap(CRIU_411_PAGEMAP);
    expect(pm).toEqual({
      pagesId: 2,
      pageCountField: 'u32',
      entries: [
        { vaddr: 0x560f87eb8000, nrPages: 1, flags: PE_PRESENT },
        { vaddr: 0x560f87eba000, nrPages: 2, flags: PE_PRESENT },
        { vaddr: 0x560f99fc3000, nrPages: 256, flags: PE_PRESENT | PE_LAZY },
      ],
    });
    expect(serializePagemap(pm)).toEqual(CRIU_411_PAGEMAP);
  });

  it('reads the CRIU 4.2 form (count in field 5, field 2 zero) and keeps it', () => {
    const bytes = imageBytes(MAGICS, [
      vfield(1, 7),
      [...vfield(1, 0x7f0000000000), ...vfield(2, 0), ...vfield(4, PE_PRESENT), ...vfield(5, 3)],
    ]);
    const pm = parsePagemap(bytes);
    expect(pm).toMatchObject({ pagesId: 7, pageCountField: 'u64', entries: [{ vaddr: 0x7f0000000000, nrPages: 3, flags: PE_PRESENT }] });
    expect(serializePagemap(pm)).toEqual(bytes);
  });

  it('applies CRIU compatibility rules to images older than the flags field', () => {
    const bytes = imageBytes(MAGICS, [
      vfield(1, 1),
      [...vfield(1, 0x1000), ...vfield(2, 1)],
      [...vfield(1, 0x2000), ...vfield(2, 1), ...vfield(3, 1)],
      [...vfield(1, 0x3000), ...vfield(2, 1), ...vfield(3, 0)],
      [...vfield(1, 0x4000), ...vfield(2, 1), ...vfield(3, 1), ...vfield(4, PE_LAZY)],
    ]);
    expect(parsePagemap(bytes).entries.map((e) => e.flags)).toEqual([PE_PRESENT, PE_PARENT, PE_PRESENT, PE_LAZY | PE_PARENT]);
  });

  it('refuses a pagemap without a head', () => {
    expect(errorOf(() => parsePagemap(imageBytes(MAGICS, []), { source: 'pagemap-9.img' }))).toMatchObject({
      reason: 'BAD_ENTRY',
      file: 'pagemap-9.img',
    });
  });

  it('refuses entries that miss required fields, with the entry offset', () => {
    const bytes = imageBytes(MAGICS, [vfield(1, 1), vfield(1, 0x1000)]);
    const err = errorOf(() => parsePagemap(bytes));
    expect(err).toMatchObject({ reason: 'BAD_ENTRY', offset: 14 });
    expect(err.message).toContain('compat_nr_pages');
  });

  it('refuses fields it could not write back', () => {
    const bytes = imageBytes(MAGICS, [vfield(1, 1), [...vfield(1, 0x1000), ...vfield(2, 1), ...vfield(4, 4), ...lfield(9, [1])]]);
    const err = errorOf(() => parsePagemap(bytes));
    expect(err).toMatchObject({ reason: 'UNSUPPORTED', offset: 14 });
    expect(err.message).toContain('pagemap_entry.9');
  });

  it('refuses unaligned runs and runs ending above 2^53', () => {
    const unaligned = imageBytes(MAGICS, [vfield(1, 1), [...vfield(1, 0x1001), ...vfield(2, 1), ...vfield(4, 4)]]);
    expect(errorOf(() => parsePagemap(unaligned)).reason).toBe('BAD_ENTRY');
    const high = imageBytes(MAGICS, [vfield(1, 1), [...vfield(1, 1n << 56n), ...vfield(2, 1), ...vfield(4, 4)]]);
    expect(errorOf(() => parsePagemap(high)).reason).toBe('UNSUPPORTED');
    const long = imageBytes(MAGICS, [vfield(1, 1), [...vfield(1, 0), ...vfield(2, 0), ...vfield(4, 4), ...vfield(5, 1n << 42n)]]);
    expect(errorOf(() => parsePagemap(long)).reason).toBe('UNSUPPORTED');
  });
});

describe('presentPageRuns', () => {
  it('gives present runs their place in the pages file; parent and lazy-only runs take none', () => {
    const pm: Pagemap = {
      pagesId: 1,
      pageCountField: 'u32',
      entries: [
        { vaddr: 0x10000, nrPages: 2, flags: PE_PRESENT },
        { vaddr: 0x20000, nrPages: 5, flags: PE_PARENT },
        { vaddr: 0x30000, nrPages: 3, flags: PE_LAZY },
        { vaddr: 0x40000, nrPages: 4, flags: PE_LAZY | PE_PRESENT },
      ],
    };
    expect([...presentPageRuns(pm)]).toEqual([
      { vaddr: 0x10000, nrPages: 2, flags: PE_PRESENT, entryIndex: 0, pagesOffset: 0, byteLength: 2 * PAGE_SIZE },
      { vaddr: 0x40000, nrPages: 4, flags: PE_LAZY | PE_PRESENT, entryIndex: 3, pagesOffset: 2 * PAGE_SIZE, byteLength: 4 * PAGE_SIZE },
    ]);
    expect(presentPageCount(pm)).toBe(6);
  });
});

describe('serializePagemap', () => {
  const base: Pagemap = { pagesId: 1, pageCountField: 'u32', entries: [] };
  it.each([
    ['a pages id that is not a u32', { ...base, pagesId: -1 }],
    ['an unaligned vaddr', { ...base, entries: [{ vaddr: 12, nrPages: 1, flags: 4 }] }],
    ['a fractional count', { ...base, entries: [{ vaddr: 0, nrPages: 1.5, flags: 4 }] }],
    ['a count over u32 in the u32 form', { ...base, entries: [{ vaddr: 0, nrPages: 2 ** 32, flags: 4 }] }],
    ['negative flags', { ...base, entries: [{ vaddr: 0, nrPages: 1, flags: -1 }] }],
  ])('refuses %s', (_what, pm) => {
    expect(errorOf(() => serializePagemap(pm)).reason).toBe('INVALID_VALUE');
  });

  it('writes a count over u32 in the u64 form', () => {
    const pm: Pagemap = { ...base, pageCountField: 'u64', entries: [{ vaddr: 0, nrPages: 2 ** 32, flags: 4 }] };
    expect(parsePagemap(serializePagemap(pm))).toEqual(pm);
  });
});

const entryArb = fc.record({
  vaddr: fc.nat({ max: 2 ** 35 - 1 }).map((p) => p * PAGE_SIZE),
  nrPages: fc.nat({ max: 0xffff }),
  flags: fc.nat({ max: 7 }),
});
const pagemapArb: fc.Arbitrary<Pagemap> = fc.record({
  pagesId: fc.nat({ max: 0xffffffff }),
  pageCountField: fc.constantFrom<'u32' | 'u64'>('u32', 'u64'),
  entries: fc.array(entryArb, { maxLength: 20 }),
});

describe('fuzzing pagemaps', () => {
  it('round-trips any pagemap', () => {
    fc.assert(
      fc.property(pagemapArb, (pm) => {
        const bytes = serializePagemap(pm);
        const back = parsePagemap(bytes);
        // A pagemap without entries cannot show which form it used; it reads as u32.
        expect(back).toEqual(pm.entries.length === 0 ? { ...pm, pageCountField: 'u32' } : pm);
        expect(serializePagemap(back)).toEqual(bytes);
      }),
    );
  });

  it('truncated or corrupted pagemaps fail only with CriuImageError', () => {
    fc.assert(
      fc.property(
        pagemapArb,
        fc.nat(),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        (pm, cut, edits) => {
          const bytes = Buffer.from(serializePagemap(pm));
          for (const [at, value] of edits) bytes[at % bytes.length] = value;
          try {
            const back = parsePagemap(bytes.subarray(0, cut % (bytes.length + 1)));
            for (const e of back.entries) expect(Number.isSafeInteger(e.vaddr + e.nrPages * PAGE_SIZE)).toBe(true);
          } catch (err) {
            expect(err).toBeInstanceOf(CriuImageError);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('arbitrary payloads inside valid framing fail only with CriuImageError', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 24 }), { maxLength: 6 }), (payloads) => {
        try {
          parsePagemap(imageBytes(MAGICS, payloads.map((p) => [...p])));
        } catch (err) {
          expect(err).toBeInstanceOf(CriuImageError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
