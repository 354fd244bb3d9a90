// A process the store's crash and concurrency tests start (compiled: dist/shim/store/):
//
//   node store-test-child.js loop <root> <manifests-dir>
//       ingest checkpoints forever, writing each one's manifest only after its commit (as
//       the checkpoint path does), and now and then dropping the oldest checkpoint (its
//       manifest first) and running gc: the test SIGKILLs it at random moments.
//   node store-test-child.js ingest <root> <manifests-dir> <id> <seed> <pages> <shared>
//       ingest one checkpoint of <pages> pages testPage(<seed>, i) whose first <shared>
//       come from the seed "shared"; print "acquired", "committing" and "committed" <ms>, exit 0.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PAGE_SIZE } from '../criu/page-size';
import { writeManifestFile } from './manifest-file';
import { PageRunsBuilder } from './page-runs';
import { PageStore } from './page-store';
import { CheckpointNotFoundError } from './store-error';
import { randomPages, pageAt, testPage } from './test-pages';

/** The stand-in for a checkpoint directory (created after the commit, like containerd's). */
function checkpointDir(manifests: string, id: string): string {
  const dir = path.join(manifests, id);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

async function ingestLoop(root: string, manifests: string): Promise<void> {
  // Small packs and buffers, so that kills land in rollovers, seals and partial writes.
  const store = PageStore.open(root, { packSizeLimit: 512 * 1024, writeBufferBytes: 64 * 1024 });
  const pool = randomPages(64);
  for (let i = 0; ; i++) {
    const id = `loop-${process.pid}-${i}`;
    const session = await store.beginIngest({ checkpointId: id, containerId: 'c', namespace: 'test' });
    const runs = new PageRunsBuilder();
    const fresh = randomPages(96);
    for (let n = 0; n < 160; n++) {
      const kind = n % 5;
      const page = kind === 0 ? Buffer.alloc(PAGE_SIZE) : kind === 1 ? pageAt(pool, (i * 7 + n) % 64) : pageAt(fresh, n % 96);
      runs.add(session.addPage(page));
    }
    // As the checkpoint path does: durable, manifest, then indexed (kills land between too).
    await session.makeDurable();
    await writeManifestFile(checkpointDir(manifests, id), { storeId: store.storeId, checkpointId: id, files: [{ name: 'pages-1.img', runs: runs.build() }] });
    await session.publish({ inSlices: i % 2 === 0 });
    process.stdout.write(`committed ${id}\n`);
    if (i % 4 === 3) {
      const kept = fs.readdirSync(manifests).sort();
      const oldest = kept[0];
      if (oldest !== undefined) {
        // The manifest goes first: no manifest may outlive its checkpoint.
        fs.rmSync(path.join(manifests, oldest), { recursive: true, force: true });
        try {
          store.removeCheckpoint(oldest);
        } catch (err) {
          // Killed between committing and writing the manifest's directory... or not ours.
          if (!(err instanceof CheckpointNotFoundError)) throw err;
        }
      }
      const gc = await store.gc();
      process.stdout.write(`gc ${JSON.stringify(gc)}\n`);
    }
    if (i % 6 === 5) await store.sealOpenPack();
  }
}

async function ingestOnce(root: string, manifests: string, args: string[]): Promise<void> {
  const [id, seed, pagesText, sharedText] = args;
  const pages = Number(pagesText);
  const shared = Number(sharedText);
  const store = PageStore.open(root, { writeBufferBytes: 256 * 1024 });
  const session = await store.beginIngest({ checkpointId: id, containerId: id, namespace: 'test' });
  process.stdout.write(`acquired ${Date.now()}\n`);
  const runs = new PageRunsBuilder();
  for (let n = 0; n < pages; n++) runs.add(session.addPage(n < shared ? testPage('shared', n) : testPage(seed, n)));
  process.stdout.write(`committing ${Date.now()}\n`);
  await session.commit();
  process.stdout.write(`committed ${Date.now()}\n`);
  await writeManifestFile(checkpointDir(manifests, id), { storeId: store.storeId, checkpointId: id, files: [{ name: 'pages-1.img', runs: runs.build() }] });
  store.close();
}

async function main(): Promise<void> {
  const [mode, root, manifests, ...rest] = process.argv.slice(2);
  if (root === undefined || manifests === undefined) throw new Error('usage: store-test-child loop|ingest <root> <manifests-dir> ...');
  fs.mkdirSync(manifests, { recursive: true });
  if (mode === 'loop') await ingestLoop(root, manifests);
  else if (mode === 'ingest') await ingestOnce(root, manifests, rest);
  else throw new Error(`unknown mode ${mode}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
