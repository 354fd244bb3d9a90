// Micro-benchmark of the page store on one core: `node dist/shim/store/store-bench.js [pages]`.
// Prints pages/s for naming pages (SHA-256), for ingesting new, repeated and zero pages
// (hash, index lookup, buffered pack append, commit with fsyncs) and for verified reads.
// Numbers only, no thresholds: compare runs on the same machine.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PAGE_SIZE } from '../criu/page-size';
import { hashPage, isZeroPage } from './page-hash';
import { PageHashPool, sharedPages } from './page-hash-pool';
import { PageRunsBuilder } from './page-runs';
import { PageStore } from './page-store';
import { pageAt, randomPages } from './test-pages';

function rate(pages: number, ms: number): string {
  return `${Math.round((pages / ms) * 1000).toLocaleString('en-US')} pages/s (${((pages * PAGE_SIZE) / ms / 1000).toFixed(0)} MB/s)`;
}

function time<T>(fn: () => T): [T, number] {
  const start = process.hrtime.bigint();
  const out = fn();
  return [out, Number(process.hrtime.bigint() - start) / 1e6];
}

async function timeAsync<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = process.hrtime.bigint();
  const out = await fn();
  return [out, Number(process.hrtime.bigint() - start) / 1e6];
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 100_000);
  const pages = randomPages(count);
  const zeros = Buffer.alloc(count * PAGE_SIZE);
  zeros.fill(0); // fault the memory in now, not inside a timed loop
  console.log(`store-bench: ${count} pages of ${PAGE_SIZE} bytes, node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu?'}`);

  time(() => {
    for (let i = 0; i < Math.min(count, 10_000); i++) hashPage(pageAt(pages, i));
  }); // warm-up
  const [, hashMs] = time(() => {
    for (let i = 0; i < count; i++) hashPage(pageAt(pages, i));
  });
  console.log(`hash (sha256)        ${rate(count, hashMs)}`);
  const [, zeroMs] = time(() => {
    for (let i = 0; i < count; i++) isZeroPage(pageAt(zeros, i));
  });
  console.log(`zero-page check      ${rate(count, zeroMs)}`);

  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-bench-'));
  const store = PageStore.open(root);
  try {
    const ingest = async (id: string, data: Buffer): Promise<[number, number]> => {
      const session = await store.beginIngest({ checkpointId: id, containerId: 'bench', namespace: 'bench' });
      const [, addMs] = time(() => {
        for (let i = 0; i < count; i++) session.addPage(pageAt(data, i));
      });
      const [, commitMs] = await timeAsync(() => session.commit());
      return [addMs, commitMs];
    };
    const [newAdd, newCommit] = await ingest('new', pages);
    console.log(`ingest new pages     ${rate(count, newAdd + newCommit)} (add ${newAdd.toFixed(0)} ms, commit ${newCommit.toFixed(0)} ms)`);
    const [dupAdd, dupCommit] = await ingest('repeat', pages);
    console.log(`ingest stored pages  ${rate(count, dupAdd + dupCommit)} (add ${dupAdd.toFixed(0)} ms, commit ${dupCommit.toFixed(0)} ms)`);
    const [zeroAdd, zeroCommit] = await ingest('zeros', zeros);
    console.log(`ingest zero pages    ${rate(count, zeroAdd + zeroCommit)} (add ${zeroAdd.toFixed(0)} ms, commit ${zeroCommit.toFixed(0)} ms)`);

    const session = await store.beginIngest({ checkpointId: 'refs', containerId: 'bench', namespace: 'bench' });
    const refs = session.addPages(pages);
    await session.commit();
    const [, readMs] = time(() => store.readPages(refs, { checkpointId: 'refs' }));
    console.log(`readPages (verified) ${rate(count, readMs)}`);
    // The paths a checkpoint and a restore take: names from the hash pool, chunk by chunk.
    const pool = new PageHashPool();
    pool.warm();
    const shared = sharedPages(count);
    randomPages(count).copy(shared);
    const chunked = await store.beginIngest({ checkpointId: 'pool', containerId: 'bench', namespace: 'bench' });
    const runs = new PageRunsBuilder();
    const [, poolAddMs] = await timeAsync(async () => {
      for (let first = 0; first < count; first += 2048) {
        const chunk = shared.subarray(first * PAGE_SIZE, Math.min(count, first + 2048) * PAGE_SIZE);
        const names = await pool.hashPages(chunk);
        await chunked.addNamedPages(chunk, names);
        runs.addNames(names);
      }
    });
    const [, poolCommitMs] = await timeAsync(() => chunked.commit());
    console.log(`ingest new (${pool.size} hash workers) ${rate(count, poolAddMs + poolCommitMs)} (add ${poolAddMs.toFixed(0)} ms, commit ${poolCommitMs.toFixed(0)} ms)`);
    const manifest = { storeId: store.storeId, checkpointId: 'pool', files: [{ name: 'pages-1.img', runs: runs.build() }] };
    const out = path.join(root, 'pages-1.img');
    const [, writeMs] = await timeAsync(() => store.writeManifestPages(manifest, 'pages-1.img', out, pool));
    console.log(`writeManifestPages   ${rate(count, writeMs)} (verified on ${pool.size} workers)`);
    await pool.close();
    const [report, verifyMs] = await timeAsync(() => store.verify());
    console.log(`verify               ${rate(report.pagesChecked, verifyMs)} ok=${report.ok}`);
  } finally {
    store.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
