import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startMappingProcess, stopMappingProcess, stopMappingProcesses } from '../proc/test-mapping-process';
import { listPageCache, pageCacheRoot, pageCacheStats } from './page-cache-dir';
import { PageCacheGcOptions, PageCacheGcReport, collectPageCache } from './page-cache-gc';
import { testPage } from './test-pages';

/** Beyond any pid_max (2^22): no process has it. */
const DEAD_PID = 4194305;
const FILE_BYTES = 1024 * 1024;

let root: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-page-cache-'));
});

afterEach(async () => {
  await stopMappingProcesses();
  fs.rmSync(root, { recursive: true, force: true });
});

function domain(namespace: string): string {
  const dir = path.join(pageCacheRoot(root), namespace);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** A sparse, read-only page-cache file with one page written, its seal, and markers for `dependents`. */
function pageCacheFile(namespace: string, id: string, dependents: readonly string[] = []): string {
  const file = path.join(domain(namespace), `${id}.pages`);
  const fd = fs.openSync(file, 'w', 0o444);
  fs.ftruncateSync(fd, FILE_BYTES);
  fs.writeSync(fd, testPage(id, 0), 0, 4096, 64 * 1024);
  fs.closeSync(fd);
  fs.writeFileSync(`${file}.seal`, '{"version":1}', { mode: 0o444 });
  if (dependents.length > 0) {
    fs.mkdirSync(`${file}.refs`);
    for (const d of dependents) fs.writeFileSync(path.join(`${file}.refs`, d), '');
  }
  return file;
}

/**
 * collectPageCache over a /proc that shows only this process and `pids`: a sandbox may hide
 * other processes' maps even from root, and gc then (rightly) keeps every file.
 */
function collect(isKept: (id: string) => boolean, options: PageCacheGcOptions = {}, pids: ReadonlyArray<number | undefined> = []): PageCacheGcReport {
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-proc-'));
  try {
    for (const pid of [process.pid, ...pids]) fs.symlinkSync(`/proc/${pid}`, path.join(proc, String(pid)));
    return collectPageCache(root, isKept, { procDir: proc, ...options });
  } finally {
    fs.rmSync(proc, { recursive: true, force: true });
  }
}

const keeping =
  (...ids: string[]) =>
  (id: string): boolean =>
    ids.includes(id);

function namesIn(namespace: string): string[] {
  return fs.readdirSync(path.join(pageCacheRoot(root), namespace)).sort();
}

describe('collectPageCache', () => {
  it('removes the seal, the file and the refs dir of a checkpoint the store no longer keeps, and nothing else', () => {
    const gone = pageCacheFile('default', 'gone', ['also-gone']);
    pageCacheFile('default', 'kept');
    pageCacheFile('other', 'gone');
    fs.writeFileSync(path.join(domain('default'), 'notes.txt'), 'not ours');
    fs.mkdirSync(path.join(domain('default'), 'x.pages')); // a dir under a file's name: not a page-cache file
    const allocated = fs.statSync(gone).blocks * 512 + fs.statSync(`${gone}.seal`).blocks * 512;

    const report = collect(keeping('kept'));
    expect(report.removed).toEqual([
      { namespace: 'default', checkpointId: 'gone', removed: [`${gone}.seal`, gone, `${gone}.refs`], bytesFreed: allocated },
      { namespace: 'other', checkpointId: 'gone', removed: expect.any(Array), bytesFreed: allocated },
    ]);
    expect(report.staleMarkersRemoved).toEqual([path.join(`${gone}.refs`, 'also-gone')]);
    expect(report.held).toEqual([]);
    expect(report.bytesFreed).toBe(2 * allocated);
    expect(allocated).toBeLessThan(FILE_BYTES); // freed bytes are blocks, not the sparse size
    expect(namesIn('default')).toEqual(['kept.pages', 'kept.pages.seal', 'notes.txt', 'x.pages']);
    expect(namesIn('other')).toEqual([]);
  });

  it('keeps a file a kept checkpoint depends on, and drops the markers of checkpoints that are gone', () => {
    const file = pageCacheFile('default', 'base', ['child', 'gone-child']);
    const report = collect(keeping('child'));
    expect(report.removed).toEqual([]);
    expect(report.held).toEqual([{ namespace: 'default', checkpointId: 'base', file, mappedBy: [], referencedBy: ['child'] }]);
    expect(report.staleMarkersRemoved).toEqual([path.join(`${file}.refs`, 'gone-child')]);
    expect(fs.readdirSync(`${file}.refs`)).toEqual(['child']);

    // Markers of a checkpoint the store still keeps are pruned too; its files stay.
    const kept = pageCacheFile('default', 'kept', ['gone-child']);
    expect(collect(keeping('child', 'kept')).staleMarkersRemoved).toEqual([path.join(`${kept}.refs`, 'gone-child')]);
    expect(fs.existsSync(kept)).toBe(true);

    // Once its dependent is gone, so is the file.
    expect(collect(keeping('kept')).removed.map((r) => r.checkpointId)).toEqual(['base']);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('keeps a file a live process maps, and removes it once the process exits', async () => {
    const file = pageCacheFile('default', 'mapped');
    const child = await startMappingProcess(file);
    const report = collect(keeping(), {}, [child.pid]);
    expect(report.removed).toEqual([]);
    expect(report.held).toEqual([{ namespace: 'default', checkpointId: 'mapped', file, mappedBy: [child.pid], referencedBy: [] }]);
    expect(namesIn('default')).toEqual(['mapped.pages', 'mapped.pages.seal']);

    await stopMappingProcess(child);
    expect(collect(keeping(), {}, [child.pid]).removed.map((r) => r.checkpointId)).toEqual(['mapped']);
    expect(namesIn('default')).toEqual([]);
  });

  it('keeps every mapped-or-not file when a process cannot be checked', () => {
    const file = pageCacheFile('default', 'gone');
    const proc = path.join(root, 'proc');
    fs.mkdirSync(path.join(proc, '77', 'maps'), { recursive: true });
    const report = collect(keeping(), { procDir: proc });
    expect(report.removed).toEqual([]);
    expect(report.held).toEqual([
      { namespace: 'default', checkpointId: 'gone', file, mappedBy: [], referencedBy: [], unchecked: 'cannot tell whether it is mapped: the mappings of pid 77 are unreadable (EISDIR)' },
    ]);
    expect(fs.existsSync(file)).toBe(true);
  });

  it('removes what a crash left of a group: a file without its seal, a seal or a refs dir without its file', () => {
    const dir = domain('default');
    fs.writeFileSync(path.join(dir, 'a.pages'), 'x', { mode: 0o444 });
    fs.writeFileSync(path.join(dir, 'b.pages.seal'), '{}');
    fs.mkdirSync(path.join(dir, 'c.pages.refs'));
    const report = collect(keeping());
    expect(report.removed.map((r) => [r.checkpointId, r.removed.map((f) => path.basename(f))])).toEqual([
      ['a', ['a.pages']],
      ['b', ['b.pages.seal']],
      ['c', ['c.pages.refs']],
    ]);
    expect(namesIn('default')).toEqual([]);
  });

  it('removes files being written only once their writer has exited', () => {
    const dir = domain('default');
    const dead = path.join(dir, `c1.pages.${DEAD_PID}.tmp`);
    const deadTagged = path.join(dir, `c1.pages.${DEAD_PID}-0a1b2c3d.tmp`);
    const deadSeal = path.join(dir, `c1.pages.${DEAD_PID}-0a1b2c3d.tmp.seal`);
    const live = path.join(dir, `c1.pages.${process.pid}.tmp`);
    for (const f of [dead, deadTagged, deadSeal, live]) fs.writeFileSync(f, Buffer.alloc(8192, 1));
    const report = collect(keeping('c1'));
    expect([...report.tmpFilesRemoved].sort()).toEqual([dead, deadTagged, deadSeal].sort());
    expect(report.bytesFreed).toBe(3 * 8192);
    expect(namesIn('default')).toEqual([path.basename(live)]);
  });

  it('with checkpointIds, looks only at those checkpoints and leaves tmp files alone', () => {
    pageCacheFile('default', 'a');
    pageCacheFile('default', 'b');
    const tmp = path.join(domain('default'), `a.pages.${DEAD_PID}.tmp`);
    fs.writeFileSync(tmp, '');
    const report = collect(keeping(), { checkpointIds: ['a'] });
    expect(report.removed.map((r) => r.checkpointId)).toEqual(['a']);
    expect(report.tmpFilesRemoved).toEqual([]);
    expect(namesIn('default')).toEqual([path.basename(tmp), 'b.pages', 'b.pages.seal']);
  });

  it('has nothing to do without a page-cache dir', () => {
    expect(collect(keeping())).toEqual({ removed: [], held: [], staleMarkersRemoved: [], tmpFilesRemoved: [], bytesFreed: 0 });
    expect(listPageCache(root)).toEqual({ files: [], tmpFiles: [] });
  });
});

describe('pageCacheStats', () => {
  it('counts .pages files with their apparent and allocated sizes', () => {
    const a = pageCacheFile('default', 'a');
    const b = pageCacheFile('other', 'b', ['a']);
    fs.writeFileSync(path.join(domain('default'), `c.pages.${DEAD_PID}.tmp`), Buffer.alloc(4096));
    const allocated = (fs.statSync(a).blocks + fs.statSync(b).blocks) * 512;
    expect(pageCacheStats(root)).toEqual({ files: 2, apparentBytes: 2 * FILE_BYTES, allocatedBytes: allocated });
    expect(allocated).toBeLessThan(2 * FILE_BYTES);
  });
});
