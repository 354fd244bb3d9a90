// The compiled `pageshare` CLI (dist/, from `make build`) on page-cache files: stats, gc and
// checkpoint rm, as text and JSON. Each command runs in a pid namespace of its own, with its
// own /proc: a sandbox may hide some host processes' maps even from root, and gc then keeps
// every page-cache file (page-cache-gc.test.ts covers live mappings).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pageCacheRoot } from '../store/page-cache-dir';
import { PageStore } from '../store/page-store';
import { testPage } from '../store/test-pages';

const REPO = path.resolve(__dirname, '../..');
const CLI = path.join(REPO, 'dist/shim/cli/pageshare.js');
const FILE_BYTES = 1024 * 1024;
const DEAD_PID = 4194305;

let root: string;

function cli(args: readonly string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('unshare', ['--pid', '--fork', '--mount', '--mount-proc', process.execPath, CLI, '--root', root, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PAGESHARE_DEBUG: '' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function pageCacheFile(namespace: string, id: string, dependents: readonly string[] = []): string {
  const dir = path.join(pageCacheRoot(root), namespace);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${id}.pages`);
  const fd = fs.openSync(file, 'w', 0o444);
  fs.ftruncateSync(fd, FILE_BYTES);
  fs.writeSync(fd, testPage(id, 0), 0, 4096, 0);
  fs.closeSync(fd);
  fs.writeFileSync(`${file}.seal`, '{"version":1}', { mode: 0o444 });
  for (const d of dependents) {
    fs.mkdirSync(`${file}.refs`, { recursive: true });
    fs.writeFileSync(path.join(`${file}.refs`, d), '');
  }
  return file;
}

function namesIn(namespace: string): string[] {
  return fs.readdirSync(path.join(pageCacheRoot(root), namespace)).sort();
}

beforeAll(() => {
  for (const f of ['shim/store/page-cache-gc', 'shim/store/page-cache-dir', 'shim/cli/page-cache-text', 'shim/cli/store-commands', 'shim/cli/checkpoint-commands']) {
    const js = path.join(REPO, 'dist', `${f}.js`);
    if (!fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(path.join(REPO, `${f}.ts`)).mtimeMs) throw new Error(`${f}.js is older than its source: run make build`);
  }
});

beforeEach(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-cli-page-cache-'));
  const store = PageStore.open(root);
  try {
    for (const id of ['c1', 'c2', 'c3']) {
      const session = await store.beginIngest({ checkpointId: id, containerId: `ctr-${id}`, namespace: 'default' });
      session.addPage(testPage(id, 1));
      await session.commit();
    }
  } finally {
    store.close();
  }
  pageCacheFile('default', 'c1');
  pageCacheFile('prod', 'c1');
  pageCacheFile('default', 'c2', ['c3']);
  pageCacheFile('default', 'c3');
  fs.writeFileSync(path.join(pageCacheRoot(root), 'default', `c3.pages.${DEAD_PID}.tmp`), Buffer.alloc(4096, 1));
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('pageshare and page-cache files', () => {
  it('store stats counts them, with apparent and allocated sizes', () => {
    const json = cli(['store', 'stats', '--json']);
    expect(json.stderr).toBe('');
    const { pageCache } = JSON.parse(json.stdout) as { pageCache: { files: number; apparentBytes: number; allocatedBytes: number } };
    expect(pageCache.files).toBe(4);
    expect(pageCache.apparentBytes).toBe(4 * FILE_BYTES);
    expect(pageCache.allocatedBytes).toBeGreaterThan(0);
    expect(pageCache.allocatedBytes).toBeLessThan(4 * FILE_BYTES);
    expect(cli(['store', 'stats']).stdout).toMatch(/^page-cache files {2}4, 4\.00 MiB \(.* on disk: they are sparse\)$/m);
  });

  it('checkpoint rm removes the files of the checkpoint in every domain, and says which it kept and why', () => {
    const json = cli(['checkpoint', 'rm', 'c1', '--json']);
    expect(json.code).toBe(0);
    const out = JSON.parse(json.stdout) as { removed: string[]; pageCache: { removed: Array<{ namespace: string; checkpointId: string }> } };
    expect(out.removed).toEqual(['c1']);
    expect(out.pageCache.removed.map((r) => `${r.namespace}/${r.checkpointId}`)).toEqual(['default/c1', 'prod/c1']);
    expect(namesIn('prod')).toEqual([]);
    expect(namesIn('default')).not.toContain('c1.pages');
    expect(namesIn('default')).toContain(`c3.pages.${DEAD_PID}.tmp`); // rm leaves leftovers to gc

    const text = cli(['checkpoint', 'rm', 'c2']);
    expect(text.stdout).toContain('kept the page-cache file of c2 in default: a later checkpoint needs it (c3); `pageshare store gc` removes it once nothing needs it');
    expect(namesIn('default')).toContain('c2.pages');
  });

  it('store gc removes what nothing needs any more and reports it, in the bytes freed too', () => {
    expect(cli(['checkpoint', 'rm', 'c2', 'c3']).code).toBe(0);
    pageCacheFile('default', 'c3', ['gone']); // written again after rm: gc still removes it

    const json = cli(['store', 'gc', '--json']);
    expect(json.stderr).toBe('');
    const report = JSON.parse(json.stdout) as {
      bytesFreed: number;
      pageCache: { removed: Array<{ checkpointId: string }>; tmpFilesRemoved: string[]; staleMarkersRemoved: string[]; bytesFreed: number };
    };
    expect(report.pageCache.removed.map((r) => r.checkpointId)).toEqual(['c3']);
    expect(report.pageCache.staleMarkersRemoved).toEqual([path.join(pageCacheRoot(root), 'default', 'c3.pages.refs', 'gone')]);
    expect(report.pageCache.tmpFilesRemoved).toEqual([path.join(pageCacheRoot(root), 'default', `c3.pages.${DEAD_PID}.tmp`)]);
    expect(report.bytesFreed).toBeGreaterThanOrEqual(report.pageCache.bytesFreed);
    expect(namesIn('default')).toEqual(['c1.pages', 'c1.pages.seal']);

    pageCacheFile('default', 'c2');
    expect(cli(['store', 'gc']).stdout).toMatch(/^page-cache files\n {2}removed {2}default\/c2 \(.*\)$/m);
  });
});
