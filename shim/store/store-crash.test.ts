// The store under SIGKILL and under two writers, with real processes. The children run the
// compiled store (dist/, which `make test` builds first): see store-test-child.ts.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from '../paths/repo-root';
import { PAGE_SIZE } from '../criu/page-size';
import { PAGE_MANIFEST_FILE, readManifestFile } from './manifest-file';
import { pageRefsOf, runsPageCount } from './page-runs';
import { PageStore } from './page-store';
import { testPage } from './test-pages';

const CHILD = path.join(repoRoot(), 'dist', 'shim', 'store', 'store-test-child.js');

/** Fail loudly (not skip) when dist/ is missing or older than the sources it was built from. */
function checkBuilt(): void {
  const srcDir = path.join(repoRoot(), 'shim', 'store');
  const stale = fs
    .readdirSync(srcDir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .filter((f) => {
      const js = path.join(repoRoot(), 'dist', 'shim', 'store', f.replace(/\.ts$/, '.js'));
      return !fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(path.join(srcDir, f)).mtimeMs;
    });
  if (stale.length > 0) {
    throw new Error(`dist/ is missing or older than shim/store/${stale[0]}: run \`make build\` (these tests run the compiled store in child processes)`);
  }
}

interface Child {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly output: () => string;
  readonly kill: () => void;
}

function startChild(args: string[]): Child {
  const proc = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(proc, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  return { exited, output: () => `${out}${err}`, kill: () => proc.kill('SIGKILL') };
}

async function waitForOutput(child: Child, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!child.output().includes(text)) {
    if (Date.now() > deadline) throw new Error(`the ingest loop printed no "${text}" within ${timeoutMs} ms:\n${child.output()}`);
    await sleep(10);
  }
}

/** Every manifest in dir must name a kept checkpoint whose pages all read back verified. */
async function checkManifests(store: PageStore, manifests: string): Promise<number> {
  let n = 0;
  for (const id of fs.readdirSync(manifests)) {
    const file = path.join(manifests, id, PAGE_MANIFEST_FILE);
    if (!fs.existsSync(file)) continue;
    const m = store.resolveManifest(await readManifestFile(file));
    expect(m.storeId).toBe(store.storeId);
    const record = store.getCheckpoint(m.checkpointId);
    expect(runsPageCount(m.files[0].runs)).toBe(record.pageCount);
    expect(store.readManifestPages(m, 'pages-1.img')).toHaveLength(record.pageCount * PAGE_SIZE);
    n++;
  }
  return n;
}

/**
 * Start the ingest loop and SIGKILL it, 10 times, on one store; after each kill the store
 * must verify and every manifest must restore. Returns how many manifests the last check saw.
 */
async function killLoop(dir: string, lane: number): Promise<number> {
  const root = path.join(dir, 'store');
  const manifests = path.join(dir, 'manifests');
  fs.mkdirSync(manifests, { recursive: true });
  let checked = 0;
  for (let round = 0; round < 10; round++) {
    const child = startChild(['loop', root, manifests]);
    // The first round waits for a committed checkpoint (whatever the machine's load), so
    // that the manifest check below always has something to check.
    if (round === 0) await waitForOutput(child, 'committed', 60_000);
    // Node and the addons load in ~150 ms; kills land before, during and between ingests,
    // manifest writes, seals and gc (compaction included).
    const delay = 100 + ((round * 53 + lane * 131) % 300) + Math.floor(Math.random() * 30);
    await Promise.race([sleep(delay), child.exited]);
    child.kill();
    const { signal } = await child.exited;
    if (signal !== 'SIGKILL') throw new Error(`the ingest loop stopped by itself:\n${child.output()}`);

    const store = PageStore.open(root);
    try {
      const report = await store.verify();
      if (!report.ok) throw new Error(`verify failed after kill ${round}:\n${JSON.stringify(report.problems.slice(0, 5), null, 2)}`);
      checked = await checkManifests(store, manifests);
    } finally {
      store.close();
    }
  }

  // And the store goes on working.
  const store = PageStore.open(root);
  try {
    const session = await store.beginIngest({ checkpointId: 'after', containerId: 'c', namespace: 'n' });
    const refs = session.addPages(Buffer.concat([testPage('after', 0), Buffer.alloc(PAGE_SIZE), testPage('after', 1)]));
    await session.commit();
    expect(store.readPages(refs).subarray(0, PAGE_SIZE).equals(testPage('after', 0))).toBe(true);
    await store.gc();
    expect((await store.verify()).ok).toBe(true);
    await checkManifests(store, manifests);
  } finally {
    store.close();
  }
  return checked;
}

let work: string;

beforeAll(checkBuilt);

beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-crash-'));
});

afterEach(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

describe('page store crash safety', () => {
  it('leaves a store that verifies, and manifests that restore, after SIGKILL at random moments', async () => {
    // Two stores side by side (one per core), 10 kills each.
    const lanes = await Promise.all([0, 1].map((lane) => killLoop(path.join(work, `lane-${lane}`), lane)));
    for (const checked of lanes) expect(checked).toBeGreaterThan(0);
  });

  it('keeps both checkpoints intact when two processes ingest at once, one after the other', async () => {
    const root = path.join(work, 'store');
    const manifests = path.join(work, 'manifests');
    PageStore.open(root).close(); // both children find the store created
    const pages = 600;
    const shared = 300;
    const children = ['p1', 'p2'].map((id) => ({ id, child: startChild(['ingest', root, manifests, id, `seed-${id}`, String(pages), String(shared)]) }));
    const spans: Array<{ acquired: number; committing: number }> = [];
    for (const { child } of children) {
      const { code } = await child.exited;
      if (code !== 0) throw new Error(`ingest child failed:\n${child.output()}`);
      const t = (what: string): number => Number(new RegExp(`${what} (\\d+)`).exec(child.output())?.[1]);
      spans.push({ acquired: t('acquired'), committing: t('committing') });
    }
    // The writer lock: one held it from acquiring to committing, then the other.
    const [a, b] = spans.sort((x, y) => x.acquired - y.acquired);
    expect(b.acquired).toBeGreaterThanOrEqual(a.committing);

    const store = PageStore.open(root);
    try {
      expect((await store.verify()).ok).toBe(true);
      expect(store.stats().pages).toBe(shared + 2 * (pages - shared));
      for (const { id } of children) {
        const m = store.resolveManifest(await readManifestFile(path.join(manifests, id, PAGE_MANIFEST_FILE)));
        const expected = Buffer.concat([...Array(pages).keys()].map((n) => (n < shared ? testPage('shared', n) : testPage(`seed-${id}`, n))));
        expect(store.readPages([...pageRefsOf(m.files[0].runs)], { checkpointId: id }).equals(expected)).toBe(true);
        expect(store.getCheckpoint(id).pageCount).toBe(pages);
      }
    } finally {
      store.close();
    }
  });
});
