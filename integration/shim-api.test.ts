/**
 * The shim binary's own contract, driven directly as containerd would: `start` prints
 * bootstrap JSON and nothing else, the Task service answers malformed or unknown requests
 * with the right status codes over gRPC and ttrpc, `delete` prints a DeleteResponse, and
 * an idle server exits after Shutdown.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startContainerd, type Containerd } from './harness/containerd';
import { shimBinDir } from './harness/paths';
import { run } from './harness/process';
import { waitFor } from './harness/wait';
import { loadPackageDefinition, protoRoot } from '../shim/proto/proto-root';
import { decodeMessage } from '../shim/proto/any';
import { encodeFrame, FrameDecoder, MessageType } from '../shim/ttrpc/frame-decoder';

jest.setTimeout(120_000);

const NAMESPACE = 'psapi';
type Callback = (err: grpc.ServiceError | null, response?: Record<string, unknown>) => void;
type TaskClient = grpc.Client & Record<string, (request: object, callback: Callback) => void>;

let containerd: Containerd;
let bundle: string;
const shim = path.join(shimBinDir(), 'containerd-shim-pageshare-v1');

function shimArgs(action: string, id = 'api1'): string[] {
  return ['-namespace', NAMESPACE, '-address', containerd.address, '-publish-binary', 'containerd', '-id', id, action];
}

function call(client: TaskClient, method: string, request: object): Promise<{ err: grpc.ServiceError | null; response?: Record<string, unknown> }> {
  return new Promise((resolve) => client[method]!(request, (err, response) => resolve({ err, response })));
}

/** One unary ttrpc call over a raw socket. */
async function ttrpcCall(socketPath: string, service: string, method: string, payload: Buffer): Promise<{ code: number; message: string }> {
  const Request = protoRoot().lookupType('ttrpc.Request');
  const Response = protoRoot().lookupType('ttrpc.Response');
  const body = Buffer.from(Request.encode(Request.fromObject({ service, method, payload })).finish());
  const socket = net.connect(socketPath);
  try {
    socket.write(encodeFrame(1, MessageType.Request, 0, body));
    const decoder = new FrameDecoder();
    const frame = await new Promise<Buffer>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        for (const item of decoder.push(chunk)) if ('frame' in item) resolve(item.frame.payload);
      });
    });
    const response = Response.toObject(Response.decode(frame), { defaults: true }) as { status: { code: number; message: string } };
    return response.status;
  } finally {
    socket.destroy();
  }
}

beforeAll(async () => {
  containerd = await startContainerd({ version: '1.7' });
  bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'psapi-'));
});

afterAll(async () => {
  await containerd?.stop();
  if (bundle) fs.rmSync(bundle, { recursive: true, force: true });
});

describe('the shim binary', () => {
  let address: string;
  let endpoints: { grpc: string; ttrpc: string };
  let client: TaskClient;

  beforeAll(async () => {
    const started = await run(shim, shimArgs('start'), { cwd: bundle, env: { ...containerd.env, PAGESHARE_SHIM_PROTOCOL: 'grpc' } });
    expect(started.code).toBe(0);
    // containerd reads stdout and stderr merged: they must hold the JSON and nothing else.
    const printed = JSON.parse(started.stdout) as { version: number; address: string; protocol: string };
    expect(started.stderr).toBe('');
    expect(printed).toEqual({ version: 2, address: expect.stringMatching(/^\/.*\.sock$/), protocol: 'grpc' });
    expect(printed.address.length).toBeLessThan(100);
    expect(JSON.parse(fs.readFileSync(path.join(bundle, 'address'), 'utf8'))).toEqual(printed);
    address = printed.address;
    endpoints = JSON.parse(fs.readFileSync(address.replace(/\.sock$/, '.json'), 'utf8')) as { grpc: string; ttrpc: string };
    const pkg = grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as {
      containerd: { task: { v3: { Task: grpc.ServiceClientConstructor } } };
    };
    client = new pkg.containerd.task.v3.Task(`unix://${address}`, grpc.credentials.createInsecure()) as unknown as TaskClient;
  });

  afterAll(() => client?.close());

  it('reuses the namespace server for a second container', async () => {
    const again = await run(shim, shimArgs('start', 'api2'), { cwd: bundle, env: { ...containerd.env, PAGESHARE_SHIM_PROTOCOL: 'ttrpc' } });
    expect(again.code).toBe(0);
    const printed = JSON.parse(again.stdout) as { address: string; protocol: string };
    expect(printed).toEqual({ version: 2, address: `unix://${endpoints.ttrpc}`, protocol: 'ttrpc' });
  });

  it('answers unknown containers with NOT_FOUND', async () => {
    for (const method of ['State', 'Pids', 'Pause', 'Resume', 'Stats', 'Wait', 'Delete']) {
      const { err } = await call(client, method, { id: 'no-such-container' });
      expect([method, err?.code]).toEqual([method, grpc.status.NOT_FOUND]);
      expect(err?.details).toContain('no-such-container');
    }
  });

  it('rejects malformed requests with INVALID_ARGUMENT and says why', async () => {
    const noId = await call(client, 'Create', { id: '', bundle });
    expect(noId.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const badBundle = await call(client, 'Create', { id: 'x1', bundle: '/nonexistent/bundle' });
    expect(badBundle.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(badBundle.err?.details).toContain('config.json');
    const badSignal = await call(client, 'Kill', { id: 'x1', signal: 0 });
    expect(badSignal.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const noExecId = await call(client, 'Exec', { id: 'x1', exec_id: '' });
    expect(noExecId.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const badSize = await call(client, 'ResizePty', { id: 'x1', width: 70000, height: 10 });
    expect(badSize.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('answers Connect with its own pid', async () => {
    const { err, response } = await call(client, 'Connect', { id: 'api1' });
    expect(err).toBeNull();
    const pid = Number(response?.['shim_pid']);
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1')).toContain('serve');
  });

  it('serves the same API over ttrpc under the v2 and v3 service names', async () => {
    const State = protoRoot().lookupType('containerd.task.v3.StateRequest');
    const payload = Buffer.from(State.encode(State.fromObject({ id: 'no-such-container' })).finish());
    for (const service of ['containerd.task.v2.Task', 'containerd.task.v3.Task']) {
      const status = await ttrpcCall(endpoints.ttrpc, service, 'State', payload);
      expect(status.code).toBe(grpc.status.NOT_FOUND);
    }
    const unknown = await ttrpcCall(endpoints.ttrpc, 'containerd.task.v9.Task', 'State', payload);
    expect(unknown.code).toBe(grpc.status.UNIMPLEMENTED);
    const garbage = await ttrpcCall(endpoints.ttrpc, 'containerd.task.v3.Task', 'State', Buffer.from([0xff, 0xff, 0xff]));
    expect(garbage.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('prints only a DeleteResponse for `delete` of a container it never ran', async () => {
    // stdout is binary protobuf: read it as bytes.
    const deleted = spawnSync(shim, [...shimArgs('delete', 'ghost').slice(0, -1), '-bundle', bundle, 'delete'], { cwd: bundle, env: containerd.env, timeout: 30_000 });
    expect(deleted.status).toBe(0);
    const response = decodeMessage<{ pid: number; exit_status: number; exited_at: { seconds: number } }>('containerd.task.v3.DeleteResponse', deleted.stdout);
    expect(response.exit_status).toBe(137);
    expect(response.exited_at.seconds).toBeGreaterThan(1_700_000_000);
  });

  it('exits after Shutdown once it serves no container', async () => {
    const pid = Number((await call(client, 'Connect', { id: 'api1' })).response?.['shim_pid']);
    const { err } = await call(client, 'Shutdown', { id: 'api1' });
    expect(err).toBeNull();
    await waitFor(() => !fs.existsSync(`/proc/${pid}`), { timeoutMs: 10_000 });
    expect(fs.existsSync(address)).toBe(false);
  });
});
