// Between CRIU's image directory and the checkpoint directory containerd tars (and later
// extracts for a restore). The raw archive copies images as they are; the page-store
// archive keeps memory pages in the shared store and a manifest in their place.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ArchiveContext {
  containerId: string;
  namespace: string;
}

export interface CheckpointArchive {
  /** After a dump into `imageDir`, writes what containerd will keep into `checkpointDir`. */
  store(imageDir: string, checkpointDir: string, context: ArchiveContext): Promise<void>;
  /** Before a restore: an image directory CRIU can read, made from `checkpointDir`
   * (may be `checkpointDir` itself). `scratchDir` is private and removed afterwards. */
  load(checkpointDir: string, scratchDir: string, context: ArchiveContext): Promise<string>;
}

export class RawArchive implements CheckpointArchive {
  async store(imageDir: string, checkpointDir: string): Promise<void> {
    fs.mkdirSync(checkpointDir, { recursive: true });
    for (const name of fs.readdirSync(imageDir)) {
      fs.cpSync(path.join(imageDir, name), path.join(checkpointDir, name), { recursive: true });
    }
  }

  async load(checkpointDir: string): Promise<string> {
    return checkpointDir;
  }
}
