// Where a shim server listens. One server serves every container of one containerd
// namespace (as the runc shim groups a pod's containers): the name is derived from
// containerd's address and the namespace, and kept short for sun_path.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

// An empty value means the default, as in the sh fast path.
export const SHIM_STATE_DIR = process.env['PAGESHARE_SHIM_DIR'] || '/run/pageshare/s';

export interface ShimServerFiles {
  /** gRPC socket. */
  socket: string;
  ttrpcSocket: string;
  /** The bootstrap JSON the server wrote for containerd (its version decides 2 or 3). */
  bootstrap: string;
  log: string;
  pid: string;
}

/** `start` holds this while it checks for or launches a server (any namespace): launches
 * are rare and short, and one lock leaves nothing behind per namespace. */
export const START_LOCK = path.join(SHIM_STATE_DIR, '.start.lock');

/** Bumped whenever what a server writes or serves changes incompatibly: a pageshare upgraded
 * while an older server still serves containers starts a new server for new containers
 * (different files), and the old one serves its own until they are gone. */
export const SERVER_FORMAT = 2;

export function shimServerFiles(containerdAddress: string, namespace: string): ShimServerFiles {
  const key = createHash('sha256').update(`${containerdAddress}\0${namespace}\0${SERVER_FORMAT}`).digest('hex').slice(0, 24);
  return serverFilesAt(path.join(SHIM_STATE_DIR, key));
}

function serverFilesAt(base: string): ShimServerFiles {
  return { socket: `${base}.sock`, ttrpcSocket: `${base}.ttrpc`, bootstrap: `${base}.json`, log: `${base}.log`, pid: `${base}.pid` };
}

/** True when something accepts connections on the socket. */
export function isListening(socket: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.connect(socket);
    const timer = setTimeout(() => finish(false), timeoutMs);
    function finish(ok: boolean): void {
      clearTimeout(timer);
      conn.destroy();
      resolve(ok);
    }
    conn.once('connect', () => finish(true));
    conn.once('error', () => finish(false));
  });
}

export interface BootstrapParams {
  version: 2 | 3;
  address: string;
  protocol: 'grpc' | 'ttrpc';
}

/** What the server records for `start`: containerd's bootstrap version and both endpoints. */
export interface ServerEndpoints {
  version: 2 | 3;
  grpc: string;
  ttrpc: string;
}

export function parseServerEndpoints(text: string, file: string): ServerEndpoints {
  let value: Partial<ServerEndpoints>;
  try {
    value = JSON.parse(text) as Partial<ServerEndpoints>;
  } catch {
    throw new Error(`${file} is not valid JSON; remove it and retry`);
  }
  if ((value.version !== 2 && value.version !== 3) || typeof value.grpc !== 'string' || typeof value.ttrpc !== 'string') {
    throw new Error(`${file} does not describe a pageshare server of format ${SERVER_FORMAT}`);
  }
  return value as ServerEndpoints;
}

export function removeServerFiles(files: ShimServerFiles, keepLog = false): void {
  for (const f of [files.socket, files.ttrpcSocket, files.bootstrap, files.pid, ...(keepLog ? [] : [files.log])]) {
    fs.rmSync(f, { force: true });
  }
}

function isShimServer(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('serve');
  } catch {
    return false;
  }
}

/** Every server pid file in SHIM_STATE_DIR: its files' base path and the pid it names. */
function serverPidFiles(): Array<{ base: string; pid: number }> {
  let names: string[];
  try {
    names = fs.readdirSync(SHIM_STATE_DIR);
  } catch {
    return [];
  }
  const found: Array<{ base: string; pid: number }> = [];
  for (const name of names.filter((n) => n.endsWith('.pid'))) {
    const base = path.join(SHIM_STATE_DIR, name.slice(0, -'.pid'.length));
    try {
      found.push({ base, pid: Number(fs.readFileSync(`${base}.pid`, 'utf8').trim()) });
    } catch {
      // its server removed it meanwhile
    }
  }
  return found;
}

/** The pids of the live shim servers on the host (their pid files). */
export function shimServerPids(): number[] {
  return serverPidFiles()
    .map((f) => f.pid)
    .filter((pid) => pid > 0 && isShimServer(pid));
}

/** Removes the files of servers that died without cleaning up (SIGKILL, a crash), logs
 * included (a crash's log stays until the next server is launched on this host).
 * Call with START_LOCK held, so no server is being launched meanwhile. */
export function removeStaleServerFiles(): string[] {
  const removed: string[] = [];
  for (const { base, pid } of serverPidFiles()) {
    if (pid > 0 && isShimServer(pid)) continue;
    removeServerFiles(serverFilesAt(base));
    removed.push(base);
  }
  return removed;
}
