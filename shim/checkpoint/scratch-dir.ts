// Private working space for dumps and restores: under pageshare's root (same filesystem as
// the page store, so images move cheaply), never inside the directory containerd tars, and
// not in the store's tmp/, which `store gc` empties (it would delete images in use).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { log } from '../log/logger';
import { defaultStoreRoot } from '../store/store-layout';

export function scratchRoot(root = defaultStoreRoot()): string {
  return path.join(root, 'scratch');
}

export function makeScratchDir(kind: 'dump' | 'restore', containerId: string, root = defaultStoreRoot()): string {
  const parent = scratchRoot(root);
  fs.mkdirSync(parent, { recursive: true, mode: 0o700 });
  return fs.mkdtempSync(path.join(parent, `${kind}-${containerId.slice(0, 40)}-`));
}

/**
 * Remove a scratch dir without making the caller wait: unlinking a dump's pages (hundreds of
 * MiB) takes tens of milliseconds that a checkpoint or restore need not include.
 */
export function removeInBackground(dir: string): void {
  fs.promises.rm(dir, { recursive: true, force: true }).catch((err: unknown) => {
    log.warn(`could not remove scratch dir ${dir}: ${(err as Error).message}`);
  });
}
