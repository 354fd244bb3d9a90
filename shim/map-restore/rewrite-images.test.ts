// The rewrite against the project's private CRIU, on a plain Node.js process (no container):
// dump it, map its V8 heap from a page-cache file, restore it, and check that its data is
// intact, also after a forced full GC, and that the file is what backs its heap.
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { privateCriu } from '../criu/test-criu';
import { rewriteForMapping } from './rewrite-images';

const run = promisify(execFile);

const { criu, skipReason } = privateCriu();

// ~30 MB of V8 objects whose checksum the process knows; SIGUSR2 makes it run a full GC, then
// write the checksum it computes now next to the one it computed at start.
const APP = `
const fs = require('fs');
const data = [];
for (let i = 0; i < 250000; i++) data.push({ i, s: 'v' + i + '-' + ((i * 7919) % 10007), a: [i, i * 2, i * 3] });
const sum = () => data.reduce((h, o) => (h * 31 + o.i + o.s.length + o.a[2]) | 0, 7);
const expected = sum();
process.on('SIGUSR2', () => { global.gc(); fs.writeFileSync(process.argv[1] + '.sum', sum() + ' ' + expected); });
fs.writeFileSync(process.argv[1], 'ready');
setInterval(() => undefined, 1000);
`;

async function waitForFile(file: string, timeoutMs = 20_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > end) throw new Error(`${file} did not appear`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return fs.readFileSync(file, 'utf8');
}

async function criuRun(args: string[], dir: string, log: string): Promise<void> {
  try {
    await run(criu as string, [...args, '-D', dir, '-v2', '-o', log]);
  } catch (err) {
    const tail = fs.readFileSync(path.join(dir, log), 'utf8').split('\n').slice(-15).join('\n');
    throw new Error(`criu ${args[0]} failed: ${(err as Error).message}\n${tail}`);
  }
}

(skipReason ? describe.skip : describe)(`map restore with CRIU${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let work: string;
  let restoredPid: number | undefined;

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-map-restore-'));
  });

  afterAll(() => {
    if (restoredPid !== undefined) {
      try {
        process.kill(restoredPid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('restores a Node.js process whose V8 heap is mapped from the page-cache file, data intact after a full GC', async () => {
    const ready = path.join(work, 'ready');
    const child = spawn(process.execPath, ['--expose-gc', '-e', APP, ready], { detached: true, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await waitForFile(ready);
    const pid = child.pid as number;
    const images = path.join(work, 'images');
    fs.mkdirSync(images);
    await criuRun(['dump', '-t', String(pid)], images, 'dump.log');
    await exited; // the pid is free again

    const cacheFile = path.join(work, 'heap.pages');
    const rewrite = await rewriteForMapping(images, { hostPath: cacheFile, pathInRestore: cacheFile });
    if (process.env['PAGESHARE_TEST_FIGURES'] === '1') process.stdout.write(`${JSON.stringify(rewrite)}\n`);
    expect(rewrite).toMatchObject({ tasks: 1, wroteFile: true });
    expect(rewrite.mappings).toBeGreaterThan(0);
    // Most of the process's memory is its V8 heap.
    expect(rewrite.mappedPages).toBeGreaterThan(rewrite.keptPages);
    expect(fs.statSync(cacheFile).size).toBe(rewrite.fileBytes);

    fs.rmSync(ready);
    await criuRun(['restore', '-d'], images, 'restore.log');
    restoredPid = pid;
    const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
    expect(maps.split('\n').filter((l) => l.endsWith(cacheFile))).toHaveLength(rewrite.mappings);

    process.kill(pid, 'SIGUSR2');
    const [now, expected] = (await waitForFile(`${ready}.sum`)).split(' ');
    expect(now).toBe(expected);
    process.kill(pid, 'SIGKILL');
    restoredPid = undefined;
  }, 60_000);
});
