// The compiled `pageshare` CLI (dist/, from `make build`) against a store filled through
// the PageStore API: what it prints, as text and JSON, and how it exits.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PAGE_SIZE } from '../criu/page-size';
import { hashPage } from '../store/page-hash';
import { PageStore } from '../store/page-store';
import { testPage } from '../store/test-pages';

const REPO = path.resolve(__dirname, '../..');
const CLI = path.join(REPO, 'dist/shim/cli/pageshare.js');
const ZERO = Buffer.alloc(PAGE_SIZE);

/**
 * The compiled files the CLI loads, each checked against its source: a test of an old
 * build would pass or fail for the wrong reasons.
 */
function staleBuildFiles(): string[] {
  const stale: string[] = [];
  const seen = new Set<string>();
  const visit = (js: string): void => {
    if (seen.has(js)) return;
    seen.add(js);
    const source = path.join(REPO, path.relative(path.join(REPO, 'dist'), js)).replace(/\.js$/, '.ts');
    if (!fs.existsSync(js)) {
      stale.push(`${path.relative(REPO, js)} is missing`);
      return;
    }
    if (fs.existsSync(source) && fs.statSync(source).mtimeMs > fs.statSync(js).mtimeMs) stale.push(`${path.relative(REPO, source)} is newer than its build`);
    for (const m of fs.readFileSync(js, 'utf8').matchAll(/require\("(\.{1,2}\/[^"]+)"\)/g)) {
      visit(path.resolve(path.dirname(js), m[1]!) + '.js');
    }
  };
  visit(CLI);
  return stale;
}

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let root: string;

function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PAGESHARE_ROOT: root, PAGESHARE_DEBUG: '', ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json<T = Record<string, unknown>>(r: CliResult): T {
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as T;
}

/** Ingest pages as one checkpoint, in a pack of its own (sealed) for its new pages. */
async function ingest(store: PageStore, id: string, pages: readonly Buffer[]): Promise<void> {
  const session = await store.beginIngest({ checkpointId: id, containerId: `ctr-${id}`, namespace: 'default' });
  for (const p of pages) session.addPage(p);
  await session.commit();
  await store.sealOpenPack();
}

const range = (seed: string, from: number, to: number): Buffer[] => Array.from({ length: to - from }, (_, i) => testPage(seed, from + i));

/**
 * c1: 10 pages of "a", a zero page, a repeat of a:0 (12 pages, 10 unique).
 * c2: a:0..4 again and 5 pages of "b" (10 pages, 10 unique, 5 new).
 * c3: 6 pages of "c", its own (6 new).
 */
async function fillStore(): Promise<void> {
  const store = PageStore.open(root);
  try {
    await ingest(store, 'c1', [...range('a', 0, 10), ZERO, testPage('a', 0)]);
    await ingest(store, 'c2', [...range('a', 0, 5), ...range('b', 0, 5)]);
    await ingest(store, 'c3', range('c', 0, 6));
  } finally {
    store.close();
  }
}

/** Flip one byte of a page checkpoint c3 alone uses. */
function corruptPageOfC3(): number {
  const store = PageStore.open(root);
  try {
    const place = store.locatePage(hashPage(testPage('c', 2)))!;
    const fd = fs.openSync(place.file, 'r+');
    try {
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, place.offset + 100);
      b[0] ^= 0xff;
      fs.writeSync(fd, b, 0, 1, place.offset + 100);
    } finally {
      fs.closeSync(fd);
    }
    return place.packId;
  } finally {
    store.close();
  }
}

beforeAll(() => {
  const stale = staleBuildFiles();
  if (stale.length > 0) throw new Error(`dist/ is out of date, run make build (${stale.slice(0, 3).join('; ')})`);
});

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-cli-'));
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('pageshare store stats', () => {
  it('counts checkpoints, pages and packs, and reports sizes as text and JSON', async () => {
    await fillStore();
    const s = json<Record<string, number | string | boolean | null>>(cli(['store', 'stats', '--json']));
    expect(s).toMatchObject({
      root,
      exists: true,
      checkpoints: 3,
      pages: 10 + 5 + 6,
      packs: 3,
      sealedPacks: 3,
      pinnedPacks: 0,
      zeroPagesReferenced: 1,
      logicalBytes: (12 + 10 + 6) * PAGE_SIZE,
      storedBytes: 21 * PAGE_SIZE,
    });
    expect(s.physicalBytes).toBeGreaterThanOrEqual(21 * PAGE_SIZE);
    expect(s.dedupRatio).toBeCloseTo((s.logicalBytes as number) / (s.physicalBytes as number));

    const text = cli(['store', 'stats']);
    expect(text.code).toBe(0);
    expect(text.stderr).toBe('');
    expect(text.stdout).toMatch(/^checkpoints +3$/m);
    expect(text.stdout).toMatch(/^pages +21 \(84\.0 KiB\)$/m);
    expect(text.stdout).toMatch(/^logical size +112 KiB$/m);
    expect(text.stdout).toMatch(/^dedup ratio +\d+\.\d\dx$/m);
  });

  it('says there is no store yet at a root never used, exits 0, and does not create it', () => {
    const missing = path.join(root, 'never-used');
    const r = cli(['store', 'stats'], { PAGESHARE_ROOT: missing });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`no page store at ${missing} yet (the first checkpoint taken with pageshare creates it)\n`);
    expect(json(cli(['store', 'stats', '--json'], { PAGESHARE_ROOT: missing }))).toMatchObject({ exists: false, checkpoints: 0, pages: 0, dedupRatio: null });
    expect(json(cli(['checkpoint', 'ls', '--json'], { PAGESHARE_ROOT: missing }))).toEqual({ root: missing, exists: false, checkpoints: [] });
    expect(cli(['store', 'verify'], { PAGESHARE_ROOT: missing }).code).toBe(0);
    expect(cli(['store', 'gc'], { PAGESHARE_ROOT: missing }).code).toBe(0);
    expect(fs.existsSync(missing)).toBe(false);
  });

  it('takes the store from --root before PAGESHARE_ROOT, wherever the option is', async () => {
    await fillStore();
    const elsewhere = { PAGESHARE_ROOT: path.join(root, 'other') };
    expect(json(cli(['--root', root, 'store', 'stats', '--json'], elsewhere))).toMatchObject({ root, checkpoints: 3 });
    expect(json(cli(['store', 'stats', '--json', '--root', root], elsewhere))).toMatchObject({ root, checkpoints: 3 });
  });
});

describe('pageshare checkpoint', () => {
  it('ls lists every kept checkpoint with its pages', async () => {
    await fillStore();
    const out = json<{ checkpoints: Array<Record<string, unknown>> }>(cli(['checkpoint', 'ls', '--json']));
    expect(out.checkpoints.map((c) => c.id)).toEqual(['c1', 'c2', 'c3']);
    expect(out.checkpoints[1]).toMatchObject({
      id: 'c2',
      containerId: 'ctr-c2',
      namespace: 'default',
      pageCount: 10,
      zeroPages: 0,
      uniquePages: 10,
      newPages: 5,
      logicalBytes: 10 * PAGE_SIZE,
      storedBytes: 10 * PAGE_SIZE,
    });
    expect(new Date(out.checkpoints[0]!.created as string).getTime()).toBe(out.checkpoints[0]!.createdAtMs);

    const text = cli(['checkpoint', 'ls']);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +CONTAINER +NAMESPACE +CREATED +PAGES +UNIQUE +NEW +SIZE +STORED$/);
    expect(lines[1]).toMatch(/^c1 +ctr-c1 +default +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z +12 +10 +10 +48\.0 KiB +40\.0 KiB$/);
    expect(lines).toHaveLength(4);
  });

  it('show prints one checkpoint; an unknown id exits 1 with a one-line error', async () => {
    await fillStore();
    expect(json(cli(['checkpoint', 'show', 'c1', '--json']))).toMatchObject({ root, checkpoint: { id: 'c1', pageCount: 12, zeroPages: 1 } });
    expect(cli(['checkpoint', 'show', 'c1']).stdout).toMatch(/^new pages +10 \(added to the store by this checkpoint\)$/m);
    const r = cli(['checkpoint', 'show', 'nope']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`pageshare: checkpoint nope is not in the page store ${root} (\`pageshare checkpoint ls\` lists the kept ones)\n`);
  });

  it('rm removes the known ids, reports the unknown one and exits 1; gc then frees the pages only they used', async () => {
    await fillStore();
    const before = json<{ physicalBytes: number }>(cli(['store', 'stats', '--json']));
    const rm = cli(['checkpoint', 'rm', 'c3', 'nope', 'c2']);
    expect(rm.code).toBe(1);
    expect(rm.stdout).toBe('removed checkpoint c3\nremoved checkpoint c2\n`pageshare store gc` frees the pages no other checkpoint uses\n');
    expect(rm.stderr).toMatch(/^pageshare: checkpoint nope is not in the page store/);
    expect(json<{ checkpoints: Array<{ id: string }> }>(cli(['checkpoint', 'ls', '--json'])).checkpoints.map((c) => c.id)).toEqual(['c1']);

    const gc = cli(['store', 'gc', '--json']);
    expect(gc.code).toBe(0);
    const report = json<{ pagesRemoved: number; packsDeleted: number[]; bytesFreed: number }>(gc);
    // c2's "b" pages and all of c3's; c2's "a" pages stay for c1.
    expect(report.pagesRemoved).toBe(5 + 6);
    expect(report.packsDeleted).toEqual([2, 3]);
    expect(report.bytesFreed).toBeGreaterThanOrEqual(11 * PAGE_SIZE);
    const after = json<{ pages: number; checkpoints: number; physicalBytes: number }>(cli(['store', 'stats', '--json']));
    expect(after).toMatchObject({ pages: 10, checkpoints: 1 });
    expect(after.physicalBytes).toBe(before.physicalBytes - report.bytesFreed);

    const again = cli(['store', 'gc']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^gc of ${root} freed 0 B\n {2}pages dropped +0 `));
  });

  it('rm --json names what it removed and what it did not find', async () => {
    await fillStore();
    const r = cli(['checkpoint', 'rm', '--json', 'c1', 'x']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      root,
      removed: ['c1'],
      notFound: ['x'],
      pageCache: { removed: [], held: [], staleMarkersRemoved: [], tmpFilesRemoved: [], bytesFreed: 0 },
    });
  });
});

describe('pageshare store verify', () => {
  it('exits 0 on a sound store, without a progress bar when stderr is not a terminal', async () => {
    await fillStore();
    const r = cli(['store', 'verify']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`verified ${root}: 3 packs, 21 pages, 3 checkpoints\nok: every kept checkpoint can be restored from this store\nreclaimable: 0 B\n`);
    expect(json(cli(['store', 'verify', '--json']))).toMatchObject({ ok: true, problemCount: 0, pagesChecked: 21 });
  });

  it('exits 1 and names the pack, page and checkpoint of a corrupt page; after rm and gc the store is sound again', async () => {
    await fillStore();
    const packId = corruptPageOfC3();
    const text = cli(['store', 'verify']);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`^  page-corrupt: page [0-9a-f]+ in pack ${packId} at offset \\d+ hashes to [0-9a-f]+ \\(needed by c3\\)$`, 'm'));
    expect(text.stdout).toMatch(/^damaged checkpoints .*: c3$/m);

    const r = cli(['store', 'verify', '--json']);
    expect(r.code).toBe(1);
    const report = json<{ ok: boolean; problemCount: number; damagedCheckpoints: string[]; problems: Array<Record<string, unknown>> }>(r);
    expect(report).toMatchObject({ ok: false, problemCount: 1, damagedCheckpoints: ['c3'] });
    expect(report.problems[0]).toMatchObject({ kind: 'page-corrupt', packId, checkpointIds: ['c3'] });

    expect(cli(['checkpoint', 'rm', 'c3']).code).toBe(0);
    expect(cli(['store', 'gc']).code).toBe(0);
    expect(cli(['store', 'verify']).code).toBe(0);
  });
});

describe('pageshare exit codes and errors', () => {
  it.each([
    [['bogus'], /^pageshare: unknown command 'bogus'/],
    [['store', 'stats', '--bogus'], /^pageshare: unknown option '--bogus'/],
    [['checkpoint', 'rm'], /^pageshare: missing required argument 'id'/],
    [['checkpoint', 'show', 'a', 'b'], /^pageshare: too many arguments/],
    [['--root', '', 'store', 'stats'], /^pageshare: option '--root <dir>' argument '' is invalid/],
    [['store'], /^Usage: pageshare store/],
  ])('exits 2 on the usage error %j', (args, message) => {
    const r = cli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });

  it('documents the exit codes in --help, and exits 0 for it', () => {
    const r = cli(['store', 'verify', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Exit codes:\n  0  ok\n  1  ');
    expect(r.stdout).toContain('  2  usage error');
  });

  it('exits 3 when the store cannot be read, with a stack trace only under PAGESHARE_DEBUG=1', () => {
    fs.writeFileSync(path.join(root, 'index.db'), 'not a database, just text that is long enough to be a header: '.repeat(10));
    const r = cli(['checkpoint', 'ls']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^pageshare: cannot use the page store index .*index\.db: /);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    const debug = cli(['checkpoint', 'ls'], { PAGESHARE_DEBUG: '1' });
    expect(debug.code).toBe(3);
    expect(debug.stderr).toMatch(/\n {4}at /);
  });
});
