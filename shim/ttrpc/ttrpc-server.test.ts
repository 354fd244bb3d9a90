import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ServiceDefinition, UntypedServiceImplementation, ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { loadPackageDefinition, protoRoot } from '../proto/proto-root';
import { FrameDecoder, MAX_PAYLOAD, MessageType, encodeFrame, HEADER_LENGTH, type Frame } from './frame-decoder';
import { TtrpcServer } from './ttrpc-server';

const SERVICE = 'containerd.task.v3.Task';

interface StateRequest {
  id: string;
  exec_id: string;
}

interface ResponseEnvelope {
  status?: { code?: number; message?: string };
  payload?: Uint8Array;
}

/** A connection that sends frames and collects the server's Response frames by stream id. */
class Client {
  private readonly decoder = new FrameDecoder();
  private readonly frames: Frame[] = [];
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const item of this.decoder.push(chunk)) {
        if ('frame' in item) this.frames.push(item.frame);
      }
      const w = this.waiters;
      this.waiters = [];
      for (const fn of w) fn();
    });
  }

  static connect(socketPath: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = net.connect(socketPath, () => resolve(new Client(s)));
      s.once('error', reject);
    });
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  request(streamId: number, service: string, method: string, payload: Buffer | Uint8Array): void {
    this.send(encodeFrame(streamId, MessageType.Request, 0, encodeRequest(service, method, payload)));
  }

  /** The Response frame for `streamId` (waits for it). */
  async response(streamId: number, timeoutMs = 5000): Promise<ResponseEnvelope & { frame: Frame }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex((f) => f.streamId === streamId);
      if (i >= 0) {
        const frame = this.frames.splice(i, 1)[0]!;
        const type = protoRoot().lookupType('ttrpc.Response');
        return { ...(type.toObject(type.decode(frame.payload), { longs: Number, defaults: true }) as ResponseEnvelope), frame };
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response for stream ${streamId}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

function encodeRequest(service: string, method: string, payload: Buffer | Uint8Array): Buffer {
  const type = protoRoot().lookupType('ttrpc.Request');
  return Buffer.from(type.encode(type.fromObject({ service, method, payload })).finish());
}

function stateRequest(id: string, execId = ''): Buffer {
  const type = protoRoot().lookupType('containerd.task.v3.StateRequest');
  return Buffer.from(type.encode(type.fromObject({ id, exec_id: execId })).finish());
}

function decodeState(payload: Uint8Array | undefined): Record<string, unknown> {
  const type = protoRoot().lookupType('containerd.task.v3.StateResponse');
  return type.toObject(type.decode(payload ?? new Uint8Array()), { longs: Number, enums: Number, defaults: true });
}

describe('TtrpcServer', () => {
  let dir: string;
  let socketPath: string;
  let server: TtrpcServer;
  let client: Client;
  const seen: StateRequest[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttrpc-test-'));
    socketPath = path.join(dir, 's.sock');
    server = new TtrpcServer();
    const definition = loadPackageDefinition()[SERVICE] as unknown as ServiceDefinition;
    const implementation: UntypedServiceImplementation = {
      State: (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        const req = call.request as StateRequest;
        seen.push(req);
        if (req.id === 'missing') {
          callback({ code: 5, details: 'not found' } as never, null);
        } else if (req.id === 'plain-error') {
          callback(new Error('it broke') as never, null);
        } else if (req.id === 'slow') {
          setTimeout(() => callback(null, { id: 'slow', pid: 1, status: 2 }), 50);
        } else {
          callback(null, { id: req.id, bundle: `/run/bundle/${req.id}`, pid: 4242, status: 2, exec_id: req.exec_id, exit_status: 0 });
        }
      },
    };
    server.addService(SERVICE, definition, implementation);
    await server.listen(socketPath);
  });

  afterAll(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    seen.length = 0;
    client = await Client.connect(socketPath);
  });

  afterEach(() => client.close());

  it('answers a valid request with status 0 and the handler response', async () => {
    client.request(1, SERVICE, 'State', stateRequest('c1', 'e1'));
    const r = await client.response(1);
    expect(r.frame.type).toBe(MessageType.Response);
    expect(r.frame.flags).toBe(0);
    expect(r.status?.code ?? 0).toBe(0);
    expect(decodeState(r.payload)).toMatchObject({ id: 'c1', bundle: '/run/bundle/c1', pid: 4242, status: 2, exec_id: 'e1' });
    expect(seen).toEqual([expect.objectContaining({ id: 'c1', exec_id: 'e1' })]);
  });

  it('answers requests split into single bytes and several requests in one write', async () => {
    const bytes = encodeFrame(1, MessageType.Request, 0, encodeRequest(SERVICE, 'State', stateRequest('a')));
    for (let i = 0; i < bytes.length; i++) client.send(bytes.subarray(i, i + 1));
    expect(decodeState((await client.response(1)).payload)).toMatchObject({ id: 'a' });
    client.send(
      Buffer.concat([
        encodeFrame(3, MessageType.Request, 0, encodeRequest(SERVICE, 'State', stateRequest('b'))),
        encodeFrame(5, MessageType.Request, 0, encodeRequest(SERVICE, 'State', stateRequest('c'))),
      ]),
    );
    expect(decodeState((await client.response(5)).payload)).toMatchObject({ id: 'c' });
    expect(decodeState((await client.response(3)).payload)).toMatchObject({ id: 'b' });
  });

  it('passes a handler error code and details through', async () => {
    client.request(1, SERVICE, 'State', stateRequest('missing'));
    const r = await client.response(1);
    expect(r.status).toMatchObject({ code: 5, message: 'not found' });
    expect(Buffer.from(r.payload ?? []).length).toBe(0);
  });

  it('answers a plain Error from a handler as UNKNOWN with its message', async () => {
    client.request(1, SERVICE, 'State', stateRequest('plain-error'));
    expect((await client.response(1)).status).toMatchObject({ code: 2, message: 'it broke' });
  });

  it('answers an unknown method or service with UNIMPLEMENTED', async () => {
    client.request(1, SERVICE, 'NoSuchMethod', stateRequest('c1'));
    client.request(3, 'containerd.task.v9.Task', 'State', stateRequest('c1'));
    // A method of the definition that the implementation does not provide.
    client.request(5, SERVICE, 'Create', Buffer.alloc(0));
    for (const id of [1, 3, 5]) {
      const r = await client.response(id);
      expect(r.status?.code).toBe(12);
    }
    expect(seen).toEqual([]);
    // The connection still serves.
    client.request(7, SERVICE, 'State', stateRequest('after'));
    expect(decodeState((await client.response(7)).payload)).toMatchObject({ id: 'after' });
  });

  it('rejects an even stream id with INVALID_ARGUMENT', async () => {
    client.request(2, SERVICE, 'State', stateRequest('c1'));
    const r = await client.response(2);
    expect(r.status?.code).toBe(3);
    expect(r.status?.message).toMatch(/odd/);
    expect(seen).toEqual([]);
    // An even id does not count as used: 1 still works.
    client.request(1, SERVICE, 'State', stateRequest('c1'));
    expect((await client.response(1)).status?.code ?? 0).toBe(0);
  });

  it('rejects a stream id that does not increase', async () => {
    client.request(5, SERVICE, 'State', stateRequest('first'));
    expect((await client.response(5)).status?.code ?? 0).toBe(0);
    client.request(5, SERVICE, 'State', stateRequest('same'));
    const same = await client.response(5);
    expect(same.status?.code).toBe(3);
    expect(same.status?.message).toMatch(/re-used|increment/);
    client.request(3, SERVICE, 'State', stateRequest('lower'));
    expect((await client.response(3)).status?.code).toBe(3);
    expect(seen.map((r) => r.id)).toEqual(['first']);
    client.request(7, SERVICE, 'State', stateRequest('higher'));
    expect(decodeState((await client.response(7)).payload)).toMatchObject({ id: 'higher' });
  });

  it('rejects a frame that is not a request with INVALID_ARGUMENT', async () => {
    client.send(encodeFrame(1, MessageType.Data, 0, encodeRequest(SERVICE, 'State', stateRequest('c1'))));
    expect((await client.response(1)).status?.code).toBe(3);
    expect(seen).toEqual([]);
  });

  it('answers a garbage envelope with INVALID_ARGUMENT and keeps serving', async () => {
    // Field 3 (payload, bytes) announces 127 bytes but only 1 follows. (protobufjs under
    // Node truncates a short *string* field silently, so that would not do here.)
    client.send(encodeFrame(1, MessageType.Request, 0, Buffer.from([0x1a, 0x7f, 0x61])));
    const r = await client.response(1);
    expect(r.status?.code).toBe(3);
    expect(r.status?.message).toMatch(/unmarshal request error/);
    client.request(3, SERVICE, 'State', stateRequest('next'));
    const next = await client.response(3);
    expect(next.status?.code ?? 0).toBe(0);
    expect(decodeState(next.payload)).toMatchObject({ id: 'next' });
    // Undecodable wire types too.
    client.send(encodeFrame(5, MessageType.Request, 0, Buffer.from([0xff, 0xff, 0xff])));
    expect((await client.response(5)).status?.code).toBe(3);
    client.request(7, SERVICE, 'State', stateRequest('again'));
    expect(decodeState((await client.response(7)).payload)).toMatchObject({ id: 'again' });
  });

  it('answers a garbage method payload with INVALID_ARGUMENT without calling the handler', async () => {
    // Field 1's length varint is cut short.
    client.request(1, SERVICE, 'State', Buffer.from([0x0a, 0xff]));
    const r = await client.response(1);
    expect(r.status?.code).toBe(3);
    expect(r.status?.message).toMatch(/State/);
    expect(seen).toEqual([]);
    client.request(3, SERVICE, 'State', stateRequest('next'));
    expect((await client.response(3)).status?.code ?? 0).toBe(0);
  });

  it('answers an oversized frame with RESOURCE_EXHAUSTED and serves the next request', async () => {
    const length = MAX_PAYLOAD + 100;
    const header = Buffer.alloc(HEADER_LENGTH);
    header.writeUInt32BE(length, 0);
    header.writeUInt32BE(1, 4);
    header.writeUInt8(MessageType.Request, 8);
    client.send(header);
    // ttrpc answers as soon as it sees the header.
    const r = await client.response(1);
    expect(r.status?.code).toBe(8);
    expect(r.status?.message).toMatch(/exceeds/);
    client.send(Buffer.alloc(length, 0x0a));
    client.request(3, SERVICE, 'State', stateRequest('after-big'));
    const next = await client.response(3, 15000);
    expect(next.status?.code ?? 0).toBe(0);
    expect(decodeState(next.payload)).toMatchObject({ id: 'after-big' });
    expect(seen.map((s) => s.id)).toEqual(['after-big']);
  });

  it('keeps stream ids per connection', async () => {
    client.request(9, SERVICE, 'State', stateRequest('one'));
    expect((await client.response(9)).status?.code ?? 0).toBe(0);
    const other = await Client.connect(socketPath);
    try {
      other.request(1, SERVICE, 'State', stateRequest('two'));
      expect(decodeState((await other.response(1)).payload)).toMatchObject({ id: 'two' });
    } finally {
      other.close();
    }
  });

  it('matches out-of-order answers to their stream ids', async () => {
    client.request(1, SERVICE, 'State', stateRequest('slow'));
    client.request(3, SERVICE, 'State', stateRequest('fast'));
    expect(decodeState((await client.response(3)).payload)).toMatchObject({ id: 'fast' });
    expect(decodeState((await client.response(1)).payload)).toMatchObject({ id: 'slow' });
  });
});
