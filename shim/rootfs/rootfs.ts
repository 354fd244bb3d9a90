// Mounting the rootfs containerd prepares (an overlay or bind mount from the snapshotter)
// at <bundle>/rootfs, and unmounting it on delete, through mount(8)/umount(8).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { RuntimeError } from '../errors/shim-error';
import type { Mount } from '../proto/messages';

const run = promisify(execFile);

export function rootfsPath(bundle: string): string {
  return path.join(bundle, 'rootfs');
}

export async function mountRootfs(bundle: string, mounts: readonly Mount[]): Promise<void> {
  if (mounts.length === 0) return;
  const target = rootfsPath(bundle);
  fs.mkdirSync(target, { recursive: true });
  const done: string[] = [];
  try {
    for (const m of mounts) {
      const args = ['-t', m.type || 'none'];
      if (m.options.length > 0) args.push('-o', m.options.join(','));
      args.push(m.source || m.type || 'none', m.target ? path.join(target, m.target) : target);
      try {
        await run('mount', args);
      } catch (err) {
        throw new RuntimeError(`mounting rootfs (${m.type} ${m.source}) at ${target} failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
      }
      done.push(target);
    }
  } catch (err) {
    for (const t of done.reverse()) await unmount(t);
    throw err;
  }
}

/** Unmounts everything at <bundle>/rootfs (stacked mounts included); no error if none. */
export async function unmountRootfs(bundle: string): Promise<void> {
  const target = rootfsPath(bundle);
  for (let i = 0; i < 8 && isMountPoint(target); i++) await unmount(target);
}

async function unmount(target: string): Promise<void> {
  try {
    await run('umount', [target]);
  } catch {
    await run('umount', ['-l', target]).catch(() => undefined);
  }
}

function isMountPoint(target: string): boolean {
  let mountinfo: string;
  try {
    mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  const resolved = fs.existsSync(target) ? fs.realpathSync(target) : target;
  return mountinfo.split('\n').some((line) => line.split(' ')[4] === resolved);
}
