import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PageStore } from '../store/page-store';
import { makeScratchDir } from './scratch-dir';

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
});
