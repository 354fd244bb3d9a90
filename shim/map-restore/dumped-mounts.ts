// Whether a dump was taken with the page-cache mount in place. A restore can map the
// page-cache file only where the restored tasks see it, and CRIU restores the mount table it
// dumped: a container created without the mount (before map mode was chosen for it, or by
// another runtime) restores by copying.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { decodeEntry } from '../criu/criu-proto';
import { readImageFile } from '../criu/image-file';
import { ImageKinds } from '../criu/image-kind';

const MOUNTPOINTS_IMAGE = /^mountpoints-\d+\.img$/;

/** Every mountpoint of every dumped mount namespace, as absolute paths in the container. */
export async function dumpedMountpoints(imageDir: string): Promise<string[]> {
  const points: string[] = [];
  for (const name of (await fsp.readdir(imageDir)).filter((n) => MOUNTPOINTS_IMAGE.test(n)).sort()) {
    const file = path.join(imageDir, name);
    const image = await readImageFile(file, ImageKinds.MNTS);
    for (const e of image.entries) {
      const entry = decodeEntry('mnt_entry', e.payload, { file, offset: e.offset }, { unknownFields: 'ignore' }) as { mountpoint?: string };
      if (entry.mountpoint !== undefined) points.push(path.posix.normalize(`/${entry.mountpoint.replace(/^\.(?=\/|$)/, '')}`));
    }
  }
  return points;
}
