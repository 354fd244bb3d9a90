// Private working space for dumps and restores: under pageshare's root (same filesystem as
// the page store, so images move cheaply), never inside the directory containerd tars, and
// not in the store's tmp/, which `store gc` empties (it would delete images in use).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { log } from '../log/logger';
import { processExited } from '../proc/proc-info';
import { defaultStoreRoot } from '../store/store-layout';

export function scratchRoot(root = defaultStoreRoot()): string {
  return path.join(root, 'scratch');
}

/** The name says which process owns the dir, so that a later server can sweep a dead one's. */
export function makeScratchDir(kind: 'dump' | 'restore', containerId: string, root = defaultStoreRoot()): string {
  const parent = scratchRoot(root);
  fs.mkdirSync(parent, { recursive: true, mode: 0o700 });
  return fs.mkdtempSync(path.join(parent, `${kind}-p${process.pid}-${containerId.slice(0, 40)}-`));
}

const OWNED = /^(?:dump|restore)-p(\d+)-/;

/**
 * Remove the scratch dirs whose owning process is gone (a server killed mid-dump leaves CRIU's
 * images, hundreds of MiB); a zombie counts as gone, since a killed server may wait a while to
 * be reaped. A dir whose pid is alive, reused or not, is left alone. Returns the dirs removed.
 */
export function sweepStaleScratch(root = defaultStoreRoot(), alive: (pid: number) => boolean = (pid) => !processExited(pid)): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(scratchRoot(root));
  } catch {
    return removed;
  }
  for (const name of names) {
    const pid = Number(OWNED.exec(name)?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || alive(pid)) continue;
    const dir = path.join(scratchRoot(root), name);
    removeInBackground(dir);
    removed.push(dir);
  }
  return removed;
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
