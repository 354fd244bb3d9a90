import fc from 'fast-check';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CriuImageError } from './criu-image-error';
import { parseImage, readImageFile, serializeImage, writeImageFile } from './image-file';
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, ImageKinds } from './image-kind';
import { imageBytes } from './test-bytes';

const PAGEMAP = ImageKinds.PAGEMAP;

function errorOf(fn: () => unknown): CriuImageError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CriuImageError) return err;
    throw err;
  }
  throw new Error('expected a CriuImageError');
}

describe('parseImage', () => {
  it('splits a common-head image into payload views at their offsets', () => {
    const bytes = imageBytes([IMG_COMMON_MAGIC, PAGEMAP.magic], [[8, 2], [], [1, 2, 3]]);
    const image = parseImage(bytes, PAGEMAP);
    expect(image.entries.map((e) => e.offset)).toEqual([8, 14, 18]);
    expect(image.entries.map((e) => [...e.payload])).toEqual([[8, 2], [], [1, 2, 3]]);
    expect(image.entries[0].payload.buffer).toBe(bytes.buffer);
  });

  it('reads inventory.img with its single magic and service files with IMG_SERVICE_MAGIC', () => {
    const inv = imageBytes([ImageKinds.INVENTORY.magic], [[8, 2]]);
    expect(parseImage(inv, ImageKinds.INVENTORY).entries).toHaveLength(1);
    const stats = imageBytes([IMG_SERVICE_MAGIC, ImageKinds.STATS.magic], [[10, 0]]);
    expect(parseImage(stats, ImageKinds.STATS).entries).toHaveLength(1);
    expect(errorOf(() => parseImage(stats, { ...ImageKinds.STATS, head: 'common' })).reason).toBe('BAD_MAGIC');
  });

  it('accepts an image with no entries', () => {
    expect(parseImage(imageBytes([IMG_COMMON_MAGIC, PAGEMAP.magic], []), PAGEMAP).entries).toEqual([]);
  });

  it('names the file, the offset and the magic it expected', () => {
    const wrongHead = errorOf(() => parseImage(imageBytes([0x12345678, PAGEMAP.magic], []), PAGEMAP, { source: '/d/pagemap-1.img' }));
    expect(wrongHead).toMatchObject({ reason: 'BAD_MAGIC', file: '/d/pagemap-1.img', offset: 0, code: 'FAILED_PRECONDITION' });
    expect(wrongHead.message).toContain('0x54564319');
    const wrongKind = errorOf(() => parseImage(imageBytes([IMG_COMMON_MAGIC, ImageKinds.MM.magic], []), PAGEMAP));
    expect(wrongKind).toMatchObject({ reason: 'BAD_MAGIC', offset: 4 });
    expect(wrongKind.message).toContain('0x57492820');
  });

  it('reports truncation inside a magic, a length and a payload', () => {
    const full = imageBytes([IMG_COMMON_MAGIC, PAGEMAP.magic], [[8, 2], [1, 2, 3]]);
    expect(errorOf(() => parseImage(full.subarray(0, 6), PAGEMAP))).toMatchObject({ reason: 'TRUNCATED', offset: 4 });
    expect(errorOf(() => parseImage(full.subarray(0, 16), PAGEMAP))).toMatchObject({ reason: 'TRUNCATED', offset: 14 });
    expect(errorOf(() => parseImage(full.subarray(0, full.length - 1), PAGEMAP))).toMatchObject({ reason: 'TRUNCATED', offset: 14 });
  });

  it('refuses lengths above the limit, and huge lengths without allocating for them', () => {
    const huge = Buffer.concat([imageBytes([IMG_COMMON_MAGIC, PAGEMAP.magic], []), Buffer.from([0xff, 0xff, 0xff, 0xff, 1])]);
    expect(errorOf(() => parseImage(huge, PAGEMAP))).toMatchObject({ reason: 'TOO_LARGE', offset: 8 });
    expect(errorOf(() => parseImage(huge, PAGEMAP, { maxEntrySize: 0xffffffff }))).toMatchObject({ reason: 'TRUNCATED', offset: 8 });
    const small = imageBytes([IMG_COMMON_MAGIC, PAGEMAP.magic], [[1, 2, 3, 4, 5]]);
    expect(errorOf(() => parseImage(small, PAGEMAP, { maxEntrySize: 4 }))).toMatchObject({ reason: 'TOO_LARGE' });
  });
});

describe('serializeImage', () => {
  it('writes the magics and length-prefixed payloads', () => {
    expect(serializeImage(PAGEMAP, [Buffer.from([8, 2]), new Uint8Array()])).toEqual(
      imageBytes([IMG_COMMON_MAGIC, PAGEMAP.magic], [[8, 2], []]),
    );
    expect(serializeImage(ImageKinds.INVENTORY, [])).toEqual(imageBytes([ImageKinds.INVENTORY.magic], []));
    expect(serializeImage(ImageKinds.STATS, [])).toEqual(imageBytes([IMG_SERVICE_MAGIC, ImageKinds.STATS.magic], []));
  });
});

const kindArb = fc.constantFrom(...Object.values(ImageKinds));
const payloadsArb = fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 12 });

describe('fuzzing the framing', () => {
  it('round-trips any payloads byte for byte', () => {
    fc.assert(
      fc.property(kindArb, payloadsArb, (kind, payloads) => {
        const bytes = serializeImage(kind, payloads);
        const image = parseImage(bytes, kind);
        expect(image.entries.map((e) => [...e.payload])).toEqual(payloads.map((p) => [...p]));
        expect(serializeImage(kind, image.entries.map((e) => e.payload))).toEqual(bytes);
      }),
    );
  });

  it('a truncated image parses to a prefix of its entries or fails with TRUNCATED', () => {
    fc.assert(
      fc.property(kindArb, payloadsArb, fc.nat(), (kind, payloads, cut) => {
        const bytes = serializeImage(kind, payloads);
        const at = cut % (bytes.length + 1);
        try {
          const image = parseImage(bytes.subarray(0, at), kind);
          expect(image.entries.map((e) => [...e.payload])).toEqual(payloads.slice(0, image.entries.length).map((p) => [...p]));
        } catch (err) {
          expect(err).toBeInstanceOf(CriuImageError);
          expect((err as CriuImageError).reason).toBe('TRUNCATED');
        }
      }),
    );
  });

  it('corrupted bytes give entries inside the buffer or a CriuImageError, never anything else', () => {
    fc.assert(
      fc.property(
        kindArb,
        payloadsArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        (kind, payloads, edits) => {
          const bytes = Buffer.from(serializeImage(kind, payloads));
          for (const [at, value] of edits) bytes[at % bytes.length] = value;
          try {
            const image = parseImage(bytes, kind, { maxEntrySize: 1 << 20 });
            let end = kind.head === 'none' ? 4 : 8;
            for (const e of image.entries) {
              expect(e.offset).toBe(end);
              end = e.offset + 4 + e.payload.length;
            }
            expect(end).toBe(bytes.length);
          } catch (err) {
            expect(err).toBeInstanceOf(CriuImageError);
          }
        },
      ),
    );
  });

  it('random bytes claiming any lengths never throw anything but a CriuImageError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 4 }), (tail, lengths) => {
        const parts = [Buffer.from(serializeImage(PAGEMAP, [])), ...lengths.map((l) => Buffer.from(new Uint32Array([l]).buffer)), Buffer.from(tail)];
        try {
          parseImage(Buffer.concat(parts), PAGEMAP);
        } catch (err) {
          expect(err).toBeInstanceOf(CriuImageError);
        }
      }),
    );
  });
});

describe('image files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'pageshare-criu-image-'));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('writes whole files and reads them back', async () => {
    const file = path.join(dir, 'mm-1.img');
    await writeImageFile(file, ImageKinds.MM, [Buffer.from([8, 1])]);
    expect(await fsp.readdir(dir)).toEqual(['mm-1.img']);
    const image = await readImageFile(file, ImageKinds.MM);
    expect(image.entries.map((e) => [...e.payload])).toEqual([[8, 1]]);
    await expect(readImageFile(file, ImageKinds.PAGEMAP)).rejects.toMatchObject({ reason: 'BAD_MAGIC', file });
  });

  it('refuses a file over the size limit before reading it', async () => {
    const file = path.join(dir, 'pagemap-1.img');
    await writeImageFile(file, PAGEMAP, [Buffer.alloc(100)]);
    await expect(readImageFile(file, PAGEMAP, { maxFileSize: 50 })).rejects.toMatchObject({ reason: 'TOO_LARGE', file });
  });
});
