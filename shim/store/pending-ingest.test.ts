import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PAGE_SIZE } from '../criu/page-size';
import type { IngestCommit } from './page-index';
import { PageStore } from './page-store';
import { PendingIngestError, decodePendingIngest, encodePendingIngest, listPendingIngests, pendingFile } from './pending-ingest';
import { StoreLayout } from './store-layout';
import { randomPages } from './test-pages';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-pending-'));
});
afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const sample: IngestCommit = {
  packs: [{ id: 3, length: 3 * PAGE_SIZE, sealed: false, createdAtMs: 5 }],
  pages: [
    { hash: Buffer.alloc(32, 1), packId: 3, offset: PAGE_SIZE },
    { hash: Buffer.alloc(32, 2), packId: 3, offset: 2 * PAGE_SIZE },
  ],
  checkpoint: { id: 'ckpt é', containerId: 'c', namespace: 'n', createdAtMs: 7, pageCount: 4, zeroPages: 1, uniquePages: 3, newPages: 2 },
  existingPageIds: [9, 2 ** 40],
  nextPackId: 4,
};

describe('pending ingest records', () => {
  it('round-trip, and any damage is a PendingIngestError', () => {
    const bytes = encodePendingIngest(sample);
    expect(decodePendingIngest(bytes, 'f')).toEqual(sample);
    for (const at of [0, 9, 20, bytes.length - 40, bytes.length - 1]) {
      const bad = Buffer.from(bytes);
      bad[at] ^= 0x40;
      expect(() => decodePendingIngest(bad, 'f')).toThrow(PendingIngestError);
    }
    expect(() => decodePendingIngest(bytes.subarray(0, bytes.length - 5), 'f')).toThrow(PendingIngestError);
  });

  it('are indexed by the next store opened when their writer died between makeDurable and publish', async () => {
    const pages = Buffer.concat([randomPages(20), Buffer.alloc(PAGE_SIZE)]);
    const first = PageStore.open(root);
    const session = await first.beginIngest({ checkpointId: 'durable-only', containerId: 'c', namespace: 'n' });
    const refs = session.addPages(pages);
    await session.makeDurable();
    const layout = new StoreLayout(root);
    expect(listPendingIngests(layout.pendingDir)).toEqual([pendingFile(layout.pendingDir, 'durable-only')]);
    first.close(); // as a process that dies here: the lock goes, the record stays

    const second = PageStore.open(root);
    try {
      expect(listPendingIngests(layout.pendingDir)).toEqual([]);
      expect(second.getCheckpoint('durable-only')).toMatchObject({ pageCount: 21, zeroPages: 1, newPages: 20 });
      expect(second.readPages(refs, { checkpointId: 'durable-only' }).equals(pages)).toBe(true);
      expect((await second.verify()).ok).toBe(true);
      // The next ingest appends after the replayed pages instead of cutting them off.
      const next = await second.beginIngest({ checkpointId: 'next', containerId: 'c', namespace: 'n' });
      next.addPages(randomPages(3));
      await next.commit();
      expect(second.readPages(refs).equals(pages)).toBe(true);
      expect((await second.verify()).ok).toBe(true);
    } finally {
      second.close();
    }
  });

  it('make a restore wait until the checkpoint is indexed', async () => {
    const writer = PageStore.open(root);
    const reader = PageStore.open(root);
    try {
      const session = await writer.beginIngest({ checkpointId: 'slow', containerId: 'c', namespace: 'n' });
      session.addPages(randomPages(5));
      await session.makeDurable();
      let indexed = false;
      const waiting = reader.awaitIndexed('slow', { lockTimeoutMs: 10_000 }).then(() => {
        indexed = reader.getCheckpoint('slow') !== undefined;
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(indexed).toBe(false);
      await session.publish({ inSlices: true });
      await waiting;
      expect(indexed).toBe(true);
      await reader.awaitIndexed('never-taken'); // no record: returns at once
    } finally {
      writer.close();
      reader.close();
    }
  });

  it('leave an unreadable record aside, renamed, and go on', async () => {
    const layout = new StoreLayout(root);
    PageStore.open(root).close();
    const file = pendingFile(layout.pendingDir, 'broken');
    fs.writeFileSync(file, 'not a record');
    const store = PageStore.open(root);
    try {
      expect(fs.existsSync(`${file}.unreadable`)).toBe(true);
      expect(listPendingIngests(layout.pendingDir)).toEqual([]);
      expect((await store.verify()).ok).toBe(true);
    } finally {
      store.close();
    }
  });
});
