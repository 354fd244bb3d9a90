// Where a shim server listens. One server serves every container of one containerd
// namespace (as the runc shim groups a pod's containers): the name is derived from
// containerd's address and the namespace, and kept short for sun_path.
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import * as path from 'node:path';

export const SHIM_STATE_DIR = process.env['PAGESHARE_SHIM_DIR'] ?? '/run/pageshare/s';

export interface ShimServerFiles {
  /** gRPC socket. */
  socket: string;
  ttrpcSocket: string;
  /** The bootstrap JSON the server wrote for containerd (its version decides 2 or 3). */
  bootstrap: string;
  lock: string;
  log: string;
  pid: string;
}

export function shimServerFiles(containerdAddress: string, namespace: string): ShimServerFiles {
  const key = createHash('sha256').update(`${containerdAddress}\0${namespace}`).digest('hex').slice(0, 24);
  const base = path.join(SHIM_STATE_DIR, key);
  return { socket: `${base}.sock`, ttrpcSocket: `${base}.ttrpc`, bootstrap: `${base}.json`, lock: `${base}.lock`, log: `${base}.log`, pid: `${base}.pid` };
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
