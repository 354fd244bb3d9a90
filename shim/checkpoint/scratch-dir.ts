// Private working space for dumps and restores: under pageshare's root (same filesystem as
// the page store, so images move cheaply), never inside the directory containerd tars.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const DEFAULT_ROOT = '/var/lib/pageshare';

/** pageshare's host-wide root: PAGESHARE_ROOT (containerd's environment reaches the shim). */
export function pageshareRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env['PAGESHARE_ROOT'] || DEFAULT_ROOT;
}

export function makeScratchDir(kind: 'dump' | 'restore', containerId: string, root = pageshareRoot()): string {
  const parent = path.join(root, 'tmp');
  fs.mkdirSync(parent, { recursive: true, mode: 0o700 });
  return fs.mkdtempSync(path.join(parent, `${kind}-${containerId.slice(0, 40)}-`));
}
