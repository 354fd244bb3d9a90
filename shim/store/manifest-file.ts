// The page manifest as a file in a checkpoint directory (the directory containerd tars).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { replaceFileDurably } from './durable-fs';
import { StoredManifest, decodeManifest, encodeManifest } from './page-manifest';
import { ManifestError } from './store-error';

/** The manifest's name in a checkpoint directory, next to CRIU's images. */
export const PAGE_MANIFEST_FILE = 'pageshare-pages.manifest';
/** Larger files are refused before reading (32 bytes per stored page: ~32 M pages, 128 GiB). */
export const MAX_MANIFEST_FILE_BYTES = 1024 * 1024 * 1024;

/**
 * Write the manifest into dir durably (a crash leaves the old file or the new one). Call it
 * only after the checkpoint's ingest has committed: the manifest then names durable pages.
 */
export async function writeManifestFile(dir: string, manifest: StoredManifest): Promise<string> {
  const file = path.join(dir, PAGE_MANIFEST_FILE);
  await replaceFileDurably(file, encodeManifest(manifest));
  return file;
}

/** Read and check a manifest file; throws ManifestError if it is damaged. */
export async function readManifestFile(file: string): Promise<StoredManifest> {
  checkManifestSize(file, (await fs.promises.stat(file)).size);
  return decodeManifest(await fs.promises.readFile(file), file);
}

/** readManifestFile, blocking (a few MiB at most). */
export function readManifestFileSync(file: string): StoredManifest {
  checkManifestSize(file, fs.statSync(file).size);
  return decodeManifest(fs.readFileSync(file), file);
}

function checkManifestSize(file: string, size: number): void {
  if (size > MAX_MANIFEST_FILE_BYTES) {
    throw new ManifestError('MANIFEST_CORRUPT', file, undefined, `${size} bytes, more than the ${MAX_MANIFEST_FILE_BYTES} a manifest may have`);
  }
}
