// The POSIX-sh fast path of `start` must find the same server files as the TypeScript code
// and print what `start` prints; it must fall back to Node for anything else.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { shimServerFiles } from '../bootstrap/shim-socket';

const TEMPLATE = path.join(__dirname, 'containerd-shim-pageshare-v1.sh');

/** The sh and its sleep: a process group of their own (detached). */
function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    /* gone */
  }
}

describe('the start fast path', () => {
  let dir: string;
  let script: string;
  let fakeServer: ChildProcess;
  const servers: net.Server[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'psfast-'));
    // A "slow path" that says so, instead of the real Node entry point.
    script = path.join(dir, 'shim');
    fs.writeFileSync(script, fs.readFileSync(TEMPLATE, 'utf8').replace('@NODE@', '/bin/echo').replace('@MAIN@', 'SLOW-PATH'), { mode: 0o755 });
    const files = shimServerFiles('/run/test/containerd.sock', 'ns1');
    const base = path.join(dir, path.basename(files.socket, '.sock'));
    for (const sock of [`${base}.sock`, `${base}.ttrpc`]) {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(sock, resolve));
      servers.push(server);
    }
    // A process whose command line looks like our server's: "serve" and the containerd address.
    fakeServer = spawn('sh', ['-c', 'sleep 60; :', 'serve', '-address', '/run/test/containerd.sock'], { stdio: 'ignore', detached: true });
    fs.writeFileSync(`${base}.pid`, String(fakeServer.pid));
    fs.writeFileSync(`${base}.json`, JSON.stringify({ version: 3, grpc: `${base}.sock`, ttrpc: `${base}.ttrpc` }));
  });

  afterAll(() => {
    if (fakeServer) killGroup(fakeServer);
    for (const s of servers) s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function start(args: string[], env: NodeJS.ProcessEnv = {}): { stdout: string; address: string | undefined } {
    const bundle = fs.mkdtempSync(path.join(dir, 'bundle-'));
    const r = spawnSync('sh', [script, ...args], { cwd: bundle, env: { PATH: process.env['PATH'], PAGESHARE_SHIM_DIR: dir, ...env }, encoding: 'utf8' });
    const addressFile = path.join(bundle, 'address');
    return { stdout: r.stdout, address: fs.existsSync(addressFile) ? fs.readFileSync(addressFile, 'utf8') : undefined };
  }

  const args = ['-namespace', 'ns1', '-address', '/run/test/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 'c1', 'start'];

  it('answers from the running server files, as start does (ttrpc by default)', () => {
    const { stdout, address } = start(args);
    const expected = JSON.stringify({ version: 3, address: `unix://${path.join(dir, path.basename(shimServerFiles('/run/test/containerd.sock', 'ns1').ttrpcSocket))}`, protocol: 'ttrpc' });
    expect(stdout).toBe(expected);
    expect(address).toBe(expected);
  });

  it('honours PAGESHARE_SHIM_PROTOCOL=grpc', () => {
    expect(JSON.parse(start(args, { PAGESHARE_SHIM_PROTOCOL: 'grpc' }).stdout)).toMatchObject({ protocol: 'grpc', version: 3 });
  });

  it('does not trust a live pid whose command line is not this server (a reused pid)', () => {
    const other = spawn('sh', ['-c', 'sleep 60; :', 'serve'], { stdio: 'ignore', detached: true });
    const files = shimServerFiles('/run/test/containerd.sock', 'ns1');
    const pidFile = path.join(dir, path.basename(files.pid));
    const saved = fs.readFileSync(pidFile, 'utf8');
    try {
      fs.writeFileSync(pidFile, String(other.pid));
      expect(start(args).stdout).toContain('SLOW-PATH');
    } finally {
      fs.writeFileSync(pidFile, saved);
      killGroup(other);
    }
  });

  it('leaves everything else to the real entry point', () => {
    expect(start(['-namespace', 'other', '-address', '/run/test/containerd.sock', 'start']).stdout).toContain('SLOW-PATH');
    expect(start([...args.slice(0, -1), 'delete']).stdout).toContain('SLOW-PATH');
    expect(start(['-v']).stdout).toContain('SLOW-PATH');
    expect(start(args, { PAGESHARE_SHIM_PROTOCOL: 'bogus' }).stdout).toContain('SLOW-PATH');
  });
});
