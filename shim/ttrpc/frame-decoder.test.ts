import fc from 'fast-check';
import { FrameDecoder, HEADER_LENGTH, MAX_PAYLOAD, MessageType, encodeFrame, type DecodedItem, type Frame } from './frame-decoder';

interface FrameSpec {
  streamId: number;
  type: number;
  flags: number;
  payload: Buffer;
}

const frameArb: fc.Arbitrary<FrameSpec> = fc.record({
  streamId: fc.nat({ max: 0xffffffff }),
  type: fc.integer({ min: 0, max: 255 }),
  flags: fc.integer({ min: 0, max: 255 }),
  payload: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
});

function encode(f: FrameSpec): Buffer {
  return encodeFrame(f.streamId, f.type as MessageType, f.flags, f.payload);
}

/** Splits `data` at the given cut points (any integers; reduced modulo the length). */
function split(data: Buffer, cuts: number[]): Buffer[] {
  if (data.length === 0) return [];
  const points = [...new Set(cuts.map((c) => c % data.length))].filter((c) => c > 0).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    chunks.push(data.subarray(at, p));
    at = p;
  }
  chunks.push(data.subarray(at));
  return chunks;
}

function feed(decoder: FrameDecoder, chunks: Buffer[]): DecodedItem[] {
  const out: DecodedItem[] = [];
  for (const c of chunks) out.push(...decoder.push(c));
  return out;
}

function oneByteChunks(data: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i++) chunks.push(data.subarray(i, i + 1));
  return chunks;
}

function asFrames(items: DecodedItem[]): Frame[] {
  return items.map((item) => {
    if (!('frame' in item)) throw new Error(`unexpected item ${JSON.stringify(item)}`);
    return item.frame;
  });
}

function expectSameFrames(actual: Frame[], expected: FrameSpec[]): void {
  expect(actual.map((f) => ({ ...f, payload: f.payload.toString('hex') }))).toEqual(
    expected.map((f) => ({ streamId: f.streamId, type: f.type, flags: f.flags, payload: f.payload.toString('hex') })),
  );
}

/** The decoder's buffered byte count (a private field; read to check memory stays bounded). */
function held(decoder: FrameDecoder): number {
  const d = decoder as unknown as { pending: Buffer[]; pendingBytes: number };
  expect(d.pending.reduce((n, b) => n + b.length, 0)).toBe(d.pendingBytes);
  return d.pendingBytes;
}

/** A header that announces `length` payload bytes (encodeFrame refuses oversized payloads). */
function rawHeader(length: number, streamId: number, type = MessageType.Request, flags = 0): Buffer {
  const h = Buffer.alloc(HEADER_LENGTH);
  h.writeUInt32BE(length, 0);
  h.writeUInt32BE(streamId, 4);
  h.writeUInt8(type, 8);
  h.writeUInt8(flags, 9);
  return h;
}

describe('encodeFrame', () => {
  it('writes the 10-byte big-endian header then the payload', () => {
    const bytes = encodeFrame(0x01020304, MessageType.Response, 0x7f, Buffer.from('hi'));
    expect(bytes.toString('hex')).toBe('00000002' + '01020304' + '02' + '7f' + Buffer.from('hi').toString('hex'));
  });

  it('refuses a payload over 4 MiB', () => {
    expect(MAX_PAYLOAD).toBe(4 * 1024 * 1024);
    expect(() => encodeFrame(1, MessageType.Request, 0, Buffer.alloc(MAX_PAYLOAD + 1))).toThrow(RangeError);
  });
});

describe('FrameDecoder', () => {
  it('decodes frames split at arbitrary chunk boundaries, in order', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, cuts) => {
        const stream = Buffer.concat(frames.map(encode));
        const decoder = new FrameDecoder();
        expectSameFrames(asFrames(feed(decoder, split(stream, cuts))), frames);
        expect(held(decoder)).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('decodes frames fed one byte at a time', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 6 }), (frames) => {
        const stream = Buffer.concat(frames.map(encode));
        const decoder = new FrameDecoder();
        expectSameFrames(asFrames(feed(decoder, oneByteChunks(stream))), frames);
        expect(held(decoder)).toBe(0);
      }),
      { numRuns: 100 },
    );
  });

  it('returns nothing until a frame is complete, then exactly that frame', () => {
    const bytes = encodeFrame(7, MessageType.Request, 1, Buffer.from('payload'));
    const decoder = new FrameDecoder();
    for (let i = 0; i < bytes.length - 1; i++) expect(decoder.push(bytes.subarray(i, i + 1))).toEqual([]);
    expect(decoder.push(bytes.subarray(bytes.length - 1))).toEqual([{ frame: { streamId: 7, type: 1, flags: 1, payload: Buffer.from('payload') } }]);
  });

  it('decodes an empty chunk as nothing and keeps state across it', () => {
    const bytes = encodeFrame(3, MessageType.Request, 0, Buffer.from('x'));
    const decoder = new FrameDecoder();
    expect(decoder.push(bytes.subarray(0, 4))).toEqual([]);
    expect(decoder.push(Buffer.alloc(0))).toEqual([]);
    expect(asFrames(decoder.push(bytes.subarray(4)))).toHaveLength(1);
  });

  it('returns payloads that do not alias later input', () => {
    const decoder = new FrameDecoder();
    const chunk = Buffer.concat([encodeFrame(1, MessageType.Request, 0, Buffer.from('abc')), Buffer.from([0, 0])]);
    const [item] = decoder.push(chunk);
    chunk.fill(0);
    expect((item as { frame: Frame }).frame.payload.toString()).toBe('abc');
  });

  it('accepts a payload of exactly 4 MiB', () => {
    const payload = Buffer.alloc(MAX_PAYLOAD, 0xab);
    const decoder = new FrameDecoder();
    const items = feed(decoder, split(encodeFrame(9, MessageType.Request, 0, payload), [1, 5, 11, 1 << 20, 3 << 20]));
    const frames = asFrames(items);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.payload.equals(payload)).toBe(true);
  });

  it('reports a header of 4 MiB + 1 as oversized and skips its payload', () => {
    const decoder = new FrameDecoder();
    const after = encodeFrame(5, MessageType.Request, 0, Buffer.from('next'));
    const items = feed(decoder, [rawHeader(MAX_PAYLOAD + 1, 3), Buffer.alloc(MAX_PAYLOAD + 1), after]);
    expect(items).toEqual([{ oversized: { streamId: 3, length: MAX_PAYLOAD + 1 } }, { frame: { streamId: 5, type: MessageType.Request, flags: 0, payload: Buffer.from('next') } }]);
  });

  it('reports an oversized frame in the middle once; the frames around it still decode', () => {
    const extraArb = fc.integer({ min: 1, max: 64 });
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 4 }),
        fc.array(frameArb, { minLength: 1, maxLength: 4 }),
        extraArb,
        fc.nat({ max: 0xffffffff }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.boolean(),
        (before, after, extra, streamId, cuts, bytewise) => {
          const length = MAX_PAYLOAD + extra;
          const head = Buffer.concat([...before.map(encode), rawHeader(length, streamId)]);
          const body = Buffer.alloc(length, 0x5a);
          const tail = Buffer.concat(after.map(encode));
          const decoder = new FrameDecoder();
          let chunks: Buffer[];
          if (bytewise) {
            // One byte at a time up to and a little into the oversized body, a big chunk
            // for most of it, and one byte at a time from its last bytes on.
            chunks = [...oneByteChunks(head), ...oneByteChunks(body.subarray(0, 3)), body.subarray(3, length - 3), ...oneByteChunks(Buffer.concat([body.subarray(length - 3), tail]))];
          } else {
            chunks = split(Buffer.concat([head, body, tail]), cuts);
          }
          const items = feed(decoder, chunks);
          const oversized = items.filter((i) => 'oversized' in i);
          expect(oversized).toEqual([{ oversized: { streamId, length } }]);
          const at = items.indexOf(oversized[0]!);
          expectSameFrames(asFrames(items.slice(0, at)), before);
          expectSameFrames(asFrames(items.slice(at + 1)), after);
          expect(held(decoder)).toBe(0);
        },
      ),
      { numRuns: 12 },
    );
  });

  it('never throws on garbage and holds at most what it was fed and has not returned', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 30 }), (chunks) => {
        const decoder = new FrameDecoder();
        let fed = 0;
        let returned = 0;
        let skippedOrPending = 0; // oversized payload bytes announced but not necessarily fed yet
        for (const c of chunks) {
          const items = decoder.push(Buffer.from(c));
          fed += c.length;
          for (const item of items) {
            if ('frame' in item) {
              expect(item.frame.payload.length).toBeLessThanOrEqual(MAX_PAYLOAD);
              returned += HEADER_LENGTH + item.frame.payload.length;
            } else {
              expect(item.oversized.length).toBeGreaterThan(MAX_PAYLOAD);
              returned += HEADER_LENGTH;
              skippedOrPending += item.oversized.length;
            }
          }
          const h = held(decoder);
          expect(returned).toBeLessThanOrEqual(fed);
          expect(h).toBeLessThanOrEqual(fed - returned);
          expect(h).toBeLessThan(HEADER_LENGTH + MAX_PAYLOAD);
          // Everything fed is accounted for: returned frames, skipped oversized bytes, or held.
          expect(fed).toBeLessThanOrEqual(returned + skippedOrPending + h);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('does not buffer a stream of oversized headers with garbage bodies', () => {
    const decoder = new FrameDecoder();
    let reported = 0;
    // 0xff bytes announce a 4 GiB payload; the decoder must skip rather than collect it.
    for (let i = 0; i < 256; i++) {
      for (const item of decoder.push(Buffer.alloc(64 * 1024, 0xff))) {
        expect('oversized' in item).toBe(true);
        reported++;
      }
      expect(held(decoder)).toBe(0);
    }
    expect(reported).toBe(1);
  });

  it('holds an incomplete frame only until it completes', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(rawHeader(1000, 1))).toEqual([]);
    expect(held(decoder)).toBe(HEADER_LENGTH);
    expect(decoder.push(Buffer.alloc(999))).toEqual([]);
    expect(held(decoder)).toBe(HEADER_LENGTH + 999);
    expect(asFrames(decoder.push(Buffer.alloc(1)))).toHaveLength(1);
    expect(held(decoder)).toBe(0);
  });
});
