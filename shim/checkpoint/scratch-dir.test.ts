import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PageStore } from '../store/page-store';
import { makeScratchDir, sweepStaleScratch } from './scratch-dir';

async function waitFor(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('makeScratchDir', () => {
  let root: string;
  beforeEach(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), 'psscratch-'))));
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('makes a private dir that a concurrent `store gc` leaves alone (a dump writes its images there)', async () => {
    const store = PageStore.open(root);
    try {
      const dir = makeScratchDir('dump', 'c1', root);
      fs.mkdirSync(path.join(dir, 'images'));
      fs.writeFileSync(path.join(dir, 'images', 'pages-1.img'), Buffer.alloc(4096, 1));
      expect((fs.statSync(dir).mode & 0o777).toString(8)).toBe('700');
      await store.gc();
      expect(fs.existsSync(path.join(dir, 'images', 'pages-1.img'))).toBe(true);
      expect((await store.verify()).ok).toBe(true);
    } finally {
      store.close();
    }
  });

  it('gives each call its own dir', () => {
    expect(makeScratchDir('restore', 'c1', root)).not.toBe(makeScratchDir('restore', 'c1', root));
  });

  it('sweeps the dirs of owners that are gone, and only those', async () => {
    const mine = makeScratchDir('dump', 'c1', root);
    expect(path.basename(mine)).toMatch(new RegExp(`^dump-p${process.pid}-c1-`));
    const dead = path.join(root, 'scratch', 'restore-p999999999-c2-abc');
    const unowned = path.join(root, 'scratch', 'dump-c3-old');
    for (const d of [dead, unowned]) fs.mkdirSync(path.join(d, 'images'), { recursive: true });
    expect(sweepStaleScratch(root, (pid) => pid === process.pid)).toEqual([dead]);
    await waitFor(() => !fs.existsSync(dead));
    expect(fs.existsSync(mine)).toBe(true);
    expect(fs.existsSync(unowned)).toBe(true);
  });
});
