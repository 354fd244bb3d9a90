import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PAGE_SIZE } from '../criu/page-size';
import { hashPage } from './page-hash';
import { PageHashPool, ZERO_PAGE_NAME, sharedPages } from './page-hash-pool';
import { pageAt, randomPages } from './test-pages';

const pools: PageHashPool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

function pool(size: number): PageHashPool {
  const p = new PageHashPool(size);
  pools.push(p);
  return p;
}

function inShared(pages: Buffer): Buffer {
  const buf = sharedPages(pages.length / PAGE_SIZE);
  pages.copy(buf);
  return buf;
}

describe('PageHashPool', () => {
  it('fails only the jobs a failed worker held; queued ones go to the worker left', async () => {
    const p = pool(2);
    p.warm();
    const pages = inShared(randomPages(512));
    const jobs = Array.from({ length: 12 }, () => p.hashPages(pages, [], { priority: 'background' }).then(
      (names) => names,
      (err: Error) => err,
    ));
    // The first worker dies: it holds at most two parts (two jobs).
    (p as unknown as { workers: Array<{ worker: { emit(event: string, err: Error): void } }> }).workers[0].worker.emit('error', new Error('gone'));
    const results = await Promise.all(jobs);
    const failed = results.filter((r): r is Error => r instanceof Error);
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.length).toBeLessThanOrEqual(2);
    for (const r of results) if (!(r instanceof Error)) expect(r.subarray(0, 32)).toEqual(hashPage(pageAt(pages, 0)));
  });

  it('serves normal jobs before background jobs that wait, and names both right', async () => {
    const p = pool(1);
    p.warm();
    const pages = inShared(randomPages(2048));
    const done: string[] = [];
    const background = [0, 1, 2, 3, 4].map((i) => p.hashPages(pages, [], { priority: 'background' }).then((names) => (done.push(`b${i}`), names)));
    const normal = p.hashPages(pages, []).then((names) => (done.push('n'), names));
    const all = await Promise.all([...background, normal]);
    // The worker held two background parts when the normal one came; it went next.
    expect(done.indexOf('n')).toBeLessThanOrEqual(2);
    expect(done.filter((d) => d.startsWith('b'))).toEqual(['b0', 'b1', 'b2', 'b3', 'b4']);
    for (const names of all) expect(names.subarray(0, 32)).toEqual(hashPage(pageAt(pages, 0)));
  });

  it.each([1, 2, 3])('names pages as hashPage does, split over %i workers, with zero pages named by zeros', async (size) => {
    const pages = Buffer.concat([randomPages(150), Buffer.alloc(2 * PAGE_SIZE), randomPages(101)]);
    const names = await pool(size).hashPages(inShared(pages));
    expect(names).toHaveLength(253 * 32);
    for (let i = 0; i < 253; i++) {
      const expected = i === 150 || i === 151 ? ZERO_PAGE_NAME : hashPage(pageAt(pages, i));
      expect(names.subarray(i * 32, (i + 1) * 32).equals(expected)).toBe(true);
    }
  });

  it('hashes a view into a larger shared buffer, and many jobs at once', async () => {
    const p = pool(2);
    const pages = randomPages(40);
    const shared = inShared(pages);
    const views = [0, 10, 20, 30].map((first) => shared.subarray(first * PAGE_SIZE, (first + 10) * PAGE_SIZE));
    const all = await Promise.all(views.map((v) => p.hashPages(v)));
    all.forEach((names, k) => {
      for (let i = 0; i < 10; i++) expect(names.subarray(i * 32, (i + 1) * 32).equals(hashPage(pageAt(pages, k * 10 + i)))).toBe(true);
    });
  });

  it('refuses memory the workers cannot see, and partial pages', async () => {
    const p = pool(1);
    await expect(p.hashPages(randomPages(1))).rejects.toThrow(/SharedArrayBuffer/);
    await expect(p.hashPages(Buffer.from(new SharedArrayBuffer(100)))).rejects.toThrow(/whole number/);
    expect(await p.hashPages(sharedPages(0))).toHaveLength(0);
  });

  it('starts its workers again after close()', async () => {
    const p = pool(2);
    const pages = randomPages(3);
    await p.hashPages(inShared(pages));
    await p.close();
    const names = await p.hashPages(inShared(pages));
    expect(names.subarray(0, 32).equals(hashPage(pageAt(pages, 0)))).toBe(true);
  });

  it('reads parts of the buffer from a file on the workers first, and says when a read fell short', async () => {
    const p = pool(2);
    const pages = randomPages(300);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-pool-'));
    const file = path.join(dir, 'pages');
    fs.writeFileSync(file, pages);
    const fd = fs.openSync(file, 'r');
    try {
      const buf = sharedPages(200);
      // Pages 50..249 of the file, in two reads that each cross the split between workers.
      const reads = [
        { fd, position: 50 * PAGE_SIZE, at: 0, length: 120 * PAGE_SIZE },
        { fd, position: 170 * PAGE_SIZE, at: 120 * PAGE_SIZE, length: 80 * PAGE_SIZE },
      ];
      const names = await p.hashPages(buf, reads, { readsMustSucceed: true });
      expect(buf.equals(pages.subarray(50 * PAGE_SIZE, 250 * PAGE_SIZE))).toBe(true);
      for (let i = 0; i < 200; i++) expect(names.subarray(i * 32, (i + 1) * 32).equals(hashPage(pageAt(pages, 50 + i)))).toBe(true);
      const pastEnd = [{ fd, position: 299 * PAGE_SIZE, at: 0, length: 2 * PAGE_SIZE }];
      await expect(p.hashPages(sharedPages(2), pastEnd, { readsMustSucceed: true })).rejects.toThrow(/1 read\(s\).*short/);
      expect(await p.hashPages(sharedPages(2), pastEnd)).toHaveLength(64);
    } finally {
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
