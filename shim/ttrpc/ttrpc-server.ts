// A ttrpc server for unary calls, serving the same handlers and message codecs as the gRPC
// server (grpc-js ServiceDefinitions carry each method's request decoder and response
// encoder). containerd's own shims speak ttrpc; see shim/bootstrap/protocol.ts for why
// pageshare offers it beside gRPC.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { status as Code, type ServiceDefinition, type UntypedServiceImplementation, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { protoRoot } from '../proto/proto-root';
import { log, errorMessage } from '../log/logger';
import { FrameDecoder, MessageType, encodeFrame, type Frame } from './frame-decoder';

interface UnaryMethod {
  decode(payload: Buffer): unknown;
  encode(response: unknown): Buffer;
  handle: (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => void;
}

interface RequestEnvelope {
  service: string;
  method: string;
  payload: Uint8Array;
}

interface Status {
  code: number;
  message: string;
}

export class TtrpcServer {
  private readonly methods = new Map<string, UnaryMethod>();
  private readonly sockets = new Set<net.Socket>();
  private readonly server = net.createServer((socket) => this.serveConnection(socket));

  /** Serves `implementation` as service `name` (one implementation may have several names). */
  addService(name: string, definition: ServiceDefinition, implementation: UntypedServiceImplementation): void {
    for (const [method, d] of Object.entries(definition)) {
      const handle = implementation[method];
      if (typeof handle !== 'function') continue;
      this.methods.set(`${name}/${method}`, {
        decode: (payload) => d.requestDeserialize(payload),
        encode: (response) => d.responseSerialize(response),
        handle: handle as UnaryMethod['handle'],
      });
    }
  }

  listen(path: string): Promise<void> {
    fs.rmSync(path, { force: true });
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(path, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  close(): void {
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
  }

  private serveConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', (err) => log.debug('ttrpc connection error', { error: errorMessage(err) }));
    const decoder = new FrameDecoder();
    let lastStreamId = 0;
    const respond = (streamId: number, status: Status, payload?: Buffer): void => {
      const type = protoRoot().lookupType('ttrpc.Response');
      const body = Buffer.from(type.encode(type.fromObject({ status, payload: payload ?? Buffer.alloc(0) })).finish());
      if (!socket.destroyed) socket.write(encodeFrame(streamId, MessageType.Response, 0, body));
    };
    socket.on('data', (chunk: Buffer) => {
      for (const item of decoder.push(chunk)) {
        if ('oversized' in item) {
          respond(item.oversized.streamId, { code: Code.RESOURCE_EXHAUSTED, message: `message of ${item.oversized.length} bytes exceeds the 4 MiB limit` });
          continue;
        }
        const frame = item.frame;
        if (frame.streamId % 2 !== 1) {
          respond(frame.streamId, { code: Code.INVALID_ARGUMENT, message: 'StreamID must be odd for client initiated streams' });
        } else if (frame.type !== MessageType.Request) {
          respond(frame.streamId, { code: Code.INVALID_ARGUMENT, message: 'only unary requests are served' });
        } else if (frame.streamId <= lastStreamId) {
          respond(frame.streamId, { code: Code.INVALID_ARGUMENT, message: 'StreamID cannot be re-used and must increment' });
        } else {
          lastStreamId = frame.streamId;
          this.dispatch(frame, respond);
        }
      }
    });
  }

  private dispatch(frame: Frame, respond: (streamId: number, status: Status, payload?: Buffer) => void): void {
    let envelope: RequestEnvelope;
    try {
      const type = protoRoot().lookupType('ttrpc.Request');
      envelope = type.toObject(type.decode(frame.payload)) as RequestEnvelope;
    } catch (err) {
      respond(frame.streamId, { code: Code.INVALID_ARGUMENT, message: `unmarshal request error: ${errorMessage(err)}` });
      return;
    }
    const method = this.methods.get(`${envelope.service}/${envelope.method}`);
    if (!method) {
      respond(frame.streamId, { code: Code.UNIMPLEMENTED, message: `service ${envelope.service}: method ${envelope.method} not implemented` });
      return;
    }
    let request: unknown;
    try {
      request = method.decode(Buffer.from(envelope.payload ?? []));
    } catch (err) {
      respond(frame.streamId, { code: Code.INVALID_ARGUMENT, message: `cannot decode ${envelope.method} request: ${errorMessage(err)}` });
      return;
    }
    const call = { request } as ServerUnaryCall<unknown, unknown>;
    method.handle(call, (err, response) => {
      if (err) {
        const e = err as { code?: number; details?: string; message?: string };
        respond(frame.streamId, { code: e.code ?? Code.UNKNOWN, message: e.details ?? e.message ?? 'error' });
        return;
      }
      respond(frame.streamId, { code: Code.OK, message: '' }, method.encode(response));
    });
  }
}
