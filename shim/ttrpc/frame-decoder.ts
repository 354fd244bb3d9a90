// ttrpc framing: a 10-byte header (payload length and stream id, big-endian u32; message
// type; flags) then the payload. A resumable decoder over arbitrary chunks, with the same
// 4 MiB payload limit as ttrpc itself: an oversized payload is skipped and reported.

export const HEADER_LENGTH = 10;
export const MAX_PAYLOAD = 4 << 20;

export enum MessageType {
  Request = 1,
  Response = 2,
  Data = 3,
}

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Buffer;
}

export type DecodedItem = { frame: Frame } | { oversized: { streamId: number; length: number } };

export function encodeFrame(streamId: number, type: MessageType, flags: number, payload: Buffer): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`ttrpc payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt32BE(payload.length, 0);
  header.writeUInt32BE(streamId >>> 0, 4);
  header.writeUInt8(type, 8);
  header.writeUInt8(flags, 9);
  return Buffer.concat([header, payload]);
}

export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes of an oversized payload still to skip. */
  private skipping = 0;

  /** Feeds a chunk; returns every frame it completes, in order. */
  push(chunk: Buffer): DecodedItem[] {
    const out: DecodedItem[] = [];
    if (this.skipping > 0) {
      const skip = Math.min(this.skipping, chunk.length);
      this.skipping -= skip;
      chunk = chunk.subarray(skip);
    }
    if (chunk.length > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
    for (;;) {
      if (this.skipping > 0 || this.pendingBytes < HEADER_LENGTH) return out;
      const head = this.peek(HEADER_LENGTH);
      const length = head.readUInt32BE(0);
      const streamId = head.readUInt32BE(4);
      if (length > MAX_PAYLOAD) {
        this.take(HEADER_LENGTH);
        const skipNow = Math.min(length, this.pendingBytes);
        this.take(skipNow);
        this.skipping = length - skipNow;
        out.push({ oversized: { streamId, length } });
        continue;
      }
      if (this.pendingBytes < HEADER_LENGTH + length) return out;
      this.take(HEADER_LENGTH);
      out.push({ frame: { streamId, type: head.readUInt8(8), flags: head.readUInt8(9), payload: this.take(length) } });
    }
  }

  private peek(n: number): Buffer {
    if (this.pending[0]!.length < n) this.pending = [Buffer.concat(this.pending)];
    return this.pending[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const taken = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return taken;
  }
}
