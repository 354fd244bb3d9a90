// The burst against a stand-in sysfs dir (the real one is host-wide): settings raised, put
// back exactly once the last live lease ends, a dead holder's lease ignored.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KsmBurst } from './ksm-burst';

let work: string;
let sysDir: string;
let stateDir: string;
const read = (name: string) => fs.readFileSync(path.join(sysDir, name), 'utf8');

beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-ksm-'));
  sysDir = path.join(work, 'sys');
  stateDir = path.join(work, 'state');
  fs.mkdirSync(sysDir);
  for (const [k, v] of Object.entries({ run: '0', pages_to_scan: '100', sleep_millisecs: '20' })) fs.writeFileSync(path.join(sysDir, k), `${v}\n`);
});
afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

it('raises the scan settings for the burst and puts them back when it ends', async () => {
  const burst = new KsmBurst({ sysDir, stateDir });
  await burst.raise(60_000);
  expect([read('run'), read('pages_to_scan'), read('sleep_millisecs')]).toEqual(['1', '5000', '10']);
  await burst.raise(60_000); // a second restore extends it; the saved settings stay the host's
  await burst.end();
  expect([read('run'), read('pages_to_scan'), read('sleep_millisecs')]).toEqual(['0', '100', '20']);
  expect(fs.readdirSync(stateDir).sort()).toEqual(['lock']);
});

it('ends by itself after its duration', async () => {
  const burst = new KsmBurst({ sysDir, stateDir });
  await burst.raise(50);
  await new Promise((r) => setTimeout(r, 400));
  expect(read('run')).toBe('0');
});

it("waits for another live holder's lease, and ignores a dead holder's", async () => {
  const burst = new KsmBurst({ sysDir, stateDir });
  await burst.raise(60_000);
  // Another shim server (this test's parent process stands in: it is alive) still bursting.
  fs.writeFileSync(path.join(stateDir, `lease-${process.ppid}`), String(Date.now() + 60_000));
  await burst.end();
  expect(read('run')).toBe('1');
  // That holder died without ending: its lease no longer counts.
  fs.writeFileSync(path.join(stateDir, `lease-${process.ppid}`), String(Date.now() - 1));
  await burst.end();
  expect([read('run'), read('pages_to_scan'), read('sleep_millisecs')]).toEqual(['0', '100', '20']);
});

it('settles what a server that died mid-burst left: the settings come back unless a live burst holds them', async () => {
  const dead = new KsmBurst({ sysDir, stateDir });
  await dead.raise(60_000);
  // Its process is gone: its lease names a pid that no longer exists.
  fs.renameSync(path.join(stateDir, `lease-${process.pid}`), path.join(stateDir, 'lease-4194304'));
  await KsmBurst.settle({ sysDir, stateDir });
  expect([read('run'), read('pages_to_scan'), read('sleep_millisecs')]).toEqual(['0', '100', '20']);
  await KsmBurst.settle({ sysDir, stateDir }); // nothing saved: nothing to do
  expect(read('run')).toBe('0');
});
