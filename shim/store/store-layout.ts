// Where a page store keeps its files. One store per host, shared by every shim:
//
//   <root>/                 default /var/lib/pageshare, or $PAGESHARE_ROOT
//     index.db              SQLite index (+ index.db-wal, index.db-shm): pages, packs,
//                           checkpoints and their page references, pins
//     packs/0000000001.pack append-only pack files (pack-header.ts); read-only once sealed
//     pending/<id>.ingest   an ingest whose pages are durable but not yet in the index
//                           (pending-ingest.ts): the next writer puts it there first
//     tmp/                  scratch space (nothing in it is referenced; gc empties it)
//     locks/writer.lock     flock: held exclusively by an ingest, a seal and gc
//     locks/gc.lock         flock: held exclusively by gc, shared by verify
import * as path from 'node:path';

export const DEFAULT_STORE_ROOT = '/var/lib/pageshare';
export const STORE_ROOT_ENV = 'PAGESHARE_ROOT';

/** The host's store root: $PAGESHARE_ROOT if set, else /var/lib/pageshare. */
export function defaultStoreRoot(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[STORE_ROOT_ENV];
  return fromEnv !== undefined && fromEnv !== '' ? path.resolve(fromEnv) : DEFAULT_STORE_ROOT;
}

const PACK_FILE = /^(\d{10,})\.pack$/;

export class StoreLayout {
  readonly root: string;
  readonly indexFile: string;
  readonly packsDir: string;
  readonly tmpDir: string;
  readonly pendingDir: string;
  readonly locksDir: string;
  readonly writerLock: string;
  readonly gcLock: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.indexFile = path.join(this.root, 'index.db');
    this.packsDir = path.join(this.root, 'packs');
    this.tmpDir = path.join(this.root, 'tmp');
    this.pendingDir = path.join(this.root, 'pending');
    this.locksDir = path.join(this.root, 'locks');
    this.writerLock = path.join(this.locksDir, 'writer.lock');
    this.gcLock = path.join(this.locksDir, 'gc.lock');
  }

  packFile(packId: number): string {
    return path.join(this.packsDir, `${String(packId).padStart(10, '0')}.pack`);
  }

  /** The pack id a file name in packs/ stands for, or undefined for any other name. */
  static packIdOf(fileName: string): number | undefined {
    const m = PACK_FILE.exec(fileName);
    if (m === null) return undefined;
    const id = Number(m[1]);
    return Number.isSafeInteger(id) && id > 0 ? id : undefined;
  }
}
