import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { PAGE_MANIFEST_FILE, readManifestFile, writeManifestFile } from './manifest-file';
import { MANIFEST_MAGIC, PageManifest, PagedManifest, StoredManifest, decodeManifest, encodeManifest, LOCATION_BYTES } from './page-manifest';
import { namePagesOf, pagedManifestOf, storedNamesOf, withNamesFromPages } from './name-pages';
import { HASH_BYTES, PageRef, ZERO_PAGE_REF, storedPageRef } from './page-ref';
import { PageRunsBuilder, pageRefsOf, runsOf, runsPageCount } from './page-runs';
import { ManifestError } from './store-error';

const STORE_ID = '00112233445566778899aabbccddeeff';

function hash(n: number): Buffer {
  return crypto.createHash('sha256').update(String(n)).digest();
}

const refArb: fc.Arbitrary<PageRef> = fc.oneof(
  fc.constant(ZERO_PAGE_REF),
  fc.uint8Array({ minLength: HASH_BYTES, maxLength: HASH_BYTES }).map((b) => storedPageRef(Buffer.from(b))),
  // Repeats of a few names, as real checkpoints have.
  fc.integer({ min: 0, max: 3 }).map((n) => storedPageRef(hash(n))),
);

function validText(s: string, isFileName: boolean): boolean {
  const bytes = Buffer.from(s, 'utf8');
  return (
    bytes.length >= 1 &&
    bytes.toString('utf8') === s &&
    !s.includes('\0') &&
    (!isFileName || (bytes.length <= 255 && !s.includes('/') && s !== '.' && s !== '..'))
  );
}

const manifestArb: fc.Arbitrary<PageManifest> = fc.record({
  storeId: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex')),
  checkpointId: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).filter((s) => validText(s, false)),
  files: fc
    .uniqueArray(
      fc.record({
        name: fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).filter((s) => validText(s, true)),
        refs: fc.array(refArb, { maxLength: 40 }),
      }),
      { selector: (f) => f.name, maxLength: 4 },
    )
    .map((files) => files.map((f) => ({ name: f.name, runs: runsOf(f.refs) }))),
});

/** A small valid manifest with both kinds of runs. */
function sample(): Buffer {
  return encodeManifest({
    storeId: STORE_ID,
    checkpointId: 'ckpt-1',
    files: [
      { name: 'pages-1.img', runs: runsOf([ZERO_PAGE_REF, storedPageRef(hash(1)), storedPageRef(hash(2)), ZERO_PAGE_REF, ZERO_PAGE_REF]) },
      { name: 'pages-2.img', runs: [] },
    ],
  });
}

/** Fix a mutated manifest's length and checksum, so that only the parser can object. */
function reseal(body: Buffer): Buffer {
  const out = Buffer.alloc(body.length + 32);
  body.copy(out);
  out.writeBigUInt64LE(BigInt(out.length), 12);
  crypto.createHash('sha256').update(out.subarray(0, body.length)).digest().copy(out, body.length);
  return out;
}

function decodeOutcome(buf: Buffer): ManifestError | StoredManifest {
  try {
    return decodeManifest(buf, 'fuzz');
  } catch (err) {
    if (err instanceof ManifestError) return err;
    throw err; // anything else fails the property
  }
}

describe('page runs', () => {
  it('builds canonical runs and gives the pages back in order', () => {
    const refs = [ZERO_PAGE_REF, ZERO_PAGE_REF, storedPageRef(hash(1)), storedPageRef(hash(1)), ZERO_PAGE_REF, storedPageRef(hash(2))];
    const runs = runsOf(refs);
    expect(runs.map((r) => [r.kind, r.count])).toEqual([
      ['zero', 2],
      ['stored', 2],
      ['zero', 1],
      ['stored', 1],
    ]);
    expect(runsPageCount(runs)).toBe(6);
    expect([...pageRefsOf(runs)]).toEqual(refs);
  });

  it('handles long stored runs across the builder chunks', () => {
    const b = new PageRunsBuilder();
    for (let i = 0; i < 10000; i++) b.add(storedPageRef(hash(i)));
    const runs = b.build();
    expect(runs).toHaveLength(1);
    expect(runs[0].count).toBe(10000);
    const back = [...pageRefsOf(runs)];
    expect(back[9999]).toEqual(storedPageRef(hash(9999)));
    expect(back[4096]).toEqual(storedPageRef(hash(4096)));
  });
});

describe('page manifest', () => {
  it('round-trips any manifest, and anything it reads encodes back to the same bytes', () => {
    fc.assert(
      fc.property(manifestArb, (m) => {
        const bytes = encodeManifest(m);
        const back = decodeManifest(bytes);
        expect(back).toEqual(m);
        expect(encodeManifest(back).equals(bytes)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('carries location hints for stored pages when every file has them, and checks their length', () => {
    const runs = runsOf([ZERO_PAGE_REF, storedPageRef(hash(1)), storedPageRef(hash(2)), ZERO_PAGE_REF, storedPageRef(hash(3))]);
    const locations = Buffer.alloc(3 * LOCATION_BYTES);
    [7, 1, 7, 2, 9, 65535].forEach((v, i) => locations.writeUInt32LE(v, i * 4));
    const m: PageManifest = {
      storeId: STORE_ID,
      checkpointId: 'with-locations',
      files: [
        { name: 'pages-1.img', runs, locations },
        { name: 'pages-2.img', runs: [], locations: Buffer.alloc(0) },
      ],
    };
    const bytes = encodeManifest(m);
    expect(bytes.readUInt16LE(10)).toBe(1);
    expect(decodeManifest(bytes)).toEqual(m);
    expect(encodeManifest(decodeManifest(bytes)).equals(bytes)).toBe(true);
    expect(() => encodeManifest({ ...m, files: [m.files[0], { name: 'pages-2.img', runs: [] }] })).toThrow(/every pages file has locations/);
    expect(() => encodeManifest({ ...m, files: [{ ...m.files[0], locations: Buffer.alloc(8) }] })).toThrow(/bytes of locations for 3 stored pages/);
    // Cut the last location run short and re-checksum: the parser still refuses it.
    const cut = Buffer.from(bytes.subarray(0, bytes.length - 32));
    cut.writeUInt32LE(2, cut.length - 4 - 4); // the last run of pages-1 (pages-2 has none): 1 page, now 2
    expect(decodeOutcome(reseal(cut))).toMatchObject({ reason: 'MANIFEST_CORRUPT' });
    // Consecutive pages of one pack are one run: 3 runs here (7:1-2, 9:65535), 12 bytes each.
    const sequential = Buffer.alloc(500 * LOCATION_BYTES);
    for (let k = 0; k < 500; k++) {
      sequential.writeUInt32LE(4, k * LOCATION_BYTES);
      sequential.writeUInt32LE(100 + k, k * LOCATION_BYTES + 4);
    }
    const many = runsOf(Array.from({ length: 500 }, (_, k) => storedPageRef(hash(k + 10))));
    const big = encodeManifest({ storeId: STORE_ID, checkpointId: 'seq', files: [{ name: 'pages-1.img', runs: many, locations: sequential }] });
    const without = encodeManifest({ storeId: STORE_ID, checkpointId: 'seq', files: [{ name: 'pages-1.img', runs: many }] });
    expect(big.length - without.length).toBe(4 + 12);
    expect(decodeManifest(big).files[0].locations!.equals(sequential)).toBe(true);
  });

  it('round-trips paged manifests (names in name pages), which carry no inline names', () => {
    fc.assert(
      fc.property(manifestArb, (m) => {
        const names = storedNamesOf(m);
        const pageNames = Buffer.concat(Array.from({ length: Math.ceil(names.length / HASH_BYTES / 128) }, (_, k) => hash(100_000 + k)));
        const paged = pagedManifestOf(m, pageNames);
        const bytes = encodeManifest(paged);
        expect(bytes.readUInt16LE(10) & 2).toBe(2);
        const back = decodeManifest(bytes);
        expect(back).toEqual(paged);
        expect(encodeManifest(back).equals(bytes)).toBe(true);
        // What a restore does with the name pages' bytes: the manifest with its names again.
        expect(withNamesFromPages(back as PagedManifest, namePagesOf(names))).toEqual(m);
      }),
      { numRuns: 200 },
    );
    const m: PageManifest = { storeId: STORE_ID, checkpointId: 'p', files: [{ name: 'pages-1.img', runs: runsOf(Array.from({ length: 300 }, (_, k) => storedPageRef(hash(k + 1)))) }] };
    const paged = pagedManifestOf(m, Buffer.concat([hash(7), hash(8), hash(9)]));
    // 300 names need 3 name pages: 32 + 4 bytes of names and count instead of 300 * 32.
    expect(encodeManifest(paged).length).toBeLessThan(encodeManifest(m).length - 300 * HASH_BYTES + 3 * HASH_BYTES + 64);
    expect(() => encodeManifest({ ...paged, namePages: paged.namePages.subarray(32) })).toThrow(/name-page names for 300 stored pages/);
    // Bytes after the last name are not ours: refused.
    const pages = namePagesOf(storedNamesOf(m));
    pages[pages.length - 1] = 1;
    expect(() => withNamesFromPages(paged, pages)).toThrow(ManifestError);
    expect(() => withNamesFromPages(paged, pages.subarray(4096))).toThrow(/cannot hold 300 names/);
  });

  it('keeps zero pages as counts: a million zero pages take a few bytes', () => {
    const bytes = encodeManifest({ storeId: STORE_ID, checkpointId: 'z', files: [{ name: 'pages-1.img', runs: [{ kind: 'zero', count: 1_000_000 }] }] });
    expect(bytes.length).toBeLessThan(120);
    expect(runsPageCount(decodeManifest(bytes).files[0].runs)).toBe(1_000_000);
  });

  it('reads the version 1 golden bytes (the format must not drift)', () => {
    const golden = Buffer.from(GOLDEN_V1_HEX, 'hex');
    expect(decodeManifest(golden)).toEqual(decodeManifest(sample()));
    expect(sample().equals(golden)).toBe(true);
    // The header as page-manifest.ts specifies it.
    expect(golden.subarray(0, 8).equals(MANIFEST_MAGIC)).toBe(true);
    expect(golden.readUInt16LE(8)).toBe(1);
    expect(Number(golden.readBigUInt64LE(12))).toBe(golden.length);
    expect(golden.readUInt32LE(20)).toBe(4096);
    expect(golden.subarray(28, 44).toString('hex')).toBe(STORE_ID);
  });

  it('names each kind of damage with its own reason', () => {
    const good = sample();
    const reason = (buf: Buffer): string => (decodeOutcome(buf) as ManifestError).reason;
    expect(reason(Buffer.from('not a manifest at all, longer than the header......................'))).toBe('MANIFEST_BAD_MAGIC');
    expect(reason(Buffer.alloc(0))).toBe('MANIFEST_TRUNCATED');
    const v2 = Buffer.from(good);
    v2.writeUInt16LE(2, 8);
    expect(reason(v2)).toBe('MANIFEST_UNSUPPORTED_VERSION');
    expect(reason(good.subarray(0, good.length - 1))).toBe('MANIFEST_TRUNCATED');
    const flipped = Buffer.from(good);
    flipped[60] ^= 0x01;
    expect(reason(flipped)).toBe('MANIFEST_CHECKSUM_MISMATCH');
    expect(reason(Buffer.concat([good, Buffer.from([0])]))).toBe('MANIFEST_CORRUPT');
    // Checksum right, content wrong: two zero runs in a row (crafted).
    const body = Buffer.from(good.subarray(0, good.length - 32));
    const err = decodeOutcome(reseal(Buffer.concat([body.subarray(0, body.length), Buffer.from([0, 1, 0, 0, 0])])));
    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).reason).toBe('MANIFEST_CORRUPT');
    expect((err as ManifestError).message).toContain('fuzz');
  });

  it('turns random bytes into a ManifestError, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(decodeOutcome(Buffer.from(bytes))).toBeInstanceOf(ManifestError);
      }),
      { numRuns: 500 },
    );
    // The same behind a valid magic and version, to get past the first checks.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const buf = Buffer.concat([MANIFEST_MAGIC, Buffer.from([1, 0]), Buffer.from(bytes)]);
        expect(decodeOutcome(buf)).toBeInstanceOf(ManifestError);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects every single-byte change, truncation and extension of a valid manifest', () => {
    fc.assert(
      fc.property(
        manifestArb,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.uint8Array({ minLength: 1, maxLength: 8 }),
        (m, at, xor, extra) => {
          const bytes = encodeManifest(m);
          const flipped = Buffer.from(bytes);
          flipped[at % bytes.length] ^= xor;
          expect(decodeOutcome(flipped)).toBeInstanceOf(ManifestError);
          expect(decodeOutcome(bytes.subarray(0, at % bytes.length))).toBeInstanceOf(ManifestError);
          expect(decodeOutcome(Buffer.concat([bytes, Buffer.from(extra)]))).toBeInstanceOf(ManifestError);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('never accepts a re-checksummed mutation unless it is itself canonical', () => {
    // With the checksum fixed up, only the parser stands between damage and a wrong
    // manifest: whatever it accepts must be exactly what the writer produces.
    fc.assert(
      fc.property(manifestArb, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.nat({ max: 40 }), (m, at, xor, cut) => {
        const bytes = encodeManifest(m);
        const body = Buffer.from(bytes.subarray(0, bytes.length - 32));
        const pos = 20 + (at % (body.length - 20)); // leave magic, version, flags and length
        body[pos] ^= xor;
        for (const candidate of [reseal(body), reseal(body.subarray(0, Math.max(20, body.length - cut)))]) {
          const out = decodeOutcome(candidate);
          if (!(out instanceof ManifestError)) expect(encodeManifest(out).equals(candidate)).toBe(true);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses to write what it could not read back', () => {
    const write = (m: Partial<PageManifest>): unknown => {
      try {
        encodeManifest({ storeId: STORE_ID, checkpointId: 'c', files: [], ...m });
        return undefined;
      } catch (err) {
        return err instanceof ManifestError ? err.reason : err;
      }
    };
    expect(write({ storeId: 'xyz' })).toBe('MANIFEST_INVALID');
    expect(write({ checkpointId: '' })).toBe('MANIFEST_INVALID');
    expect(write({ checkpointId: '\ud800' })).toBe('MANIFEST_INVALID');
    expect(write({ files: [{ name: 'a/b', runs: [] }] })).toBe('MANIFEST_INVALID');
    expect(write({ files: [{ name: 'a', runs: [] }, { name: 'a', runs: [] }] })).toBe('MANIFEST_INVALID');
    expect(write({ files: [{ name: 'a', runs: [{ kind: 'zero', count: 1 }, { kind: 'zero', count: 1 }] }] })).toBe('MANIFEST_INVALID');
    expect(write({ files: [{ name: 'a', runs: [{ kind: 'stored', count: 2, hashes: Buffer.alloc(32) }] }] })).toBe('MANIFEST_INVALID');
    expect(write({ files: [{ name: 'a', runs: [{ kind: 'zero', count: 0 }] }] })).toBe('MANIFEST_INVALID');
  });

  it('is written to a checkpoint directory durably and read back', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-manifest-'));
    try {
      const m = decodeManifest(sample());
      const file = await writeManifestFile(dir, m);
      expect(path.basename(file)).toBe(PAGE_MANIFEST_FILE);
      expect(fs.readdirSync(dir)).toEqual([PAGE_MANIFEST_FILE]);
      expect(await readManifestFile(file)).toEqual(m);
      fs.appendFileSync(file, 'x');
      await expect(readManifestFile(file)).rejects.toMatchObject({ reason: 'MANIFEST_CORRUPT' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// sample() as version 1 wrote it. If this test fails, the encoding changed: that needs a new
// format version (and this reader must go on reading these bytes).
const GOLDEN_V1_HEX =
  '504753484d4e465401000000d100000000000000001000000100000000112233445566778899aabbccddeeff0600636b' +
  '70742d31020000000b0070616765732d312e696d670500000003000000000100000001020000006b86b273ff34fce19d' +
  '6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4bd4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da' +
  '3a666eec13ab3500020000000b0070616765732d322e696d67000000000000000082de30f62b416cc7460f1774a4a80d' +
  '2cbe2295c207a5f63e0495913982afcb81';
