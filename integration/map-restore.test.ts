/**
 * Map-mode restores with real containers (annotation io.pageshare.restore=map): the shim
 * mounts the namespace's page-cache dir read-only at create; a restore rewrites the images so
 * the V8 heap is mapped from one page-cache file per checkpoint; two replicas restored from it
 * map the same file and keep their data through a forced full GC.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, type Containerd } from './harness/containerd';
import { shimServerFiles } from '../shim/bootstrap/shim-socket';
import { importImage } from './harness/image';
import { PAGESHARE_RUNTIME } from './harness/paths';
import { nodeImageBuilder } from './harness/runtime-images';
import { waitFor } from './harness/wait';

jest.setTimeout(300_000);

const IMAGE = 'docker.io/library/pstest-map-node:latest';
const RT = ['--runtime', PAGESHARE_RUNTIME];
const MAP = ['--annotation', 'io.pageshare.restore=map'];

// ~40 MB of V8 objects with a checksum taken at start; SIGUSR2: a full GC, then the checksum
// again, both into /tmp/sum.
const APP = `
const fs = require('fs');
const data = [];
for (let i = 0; i < 300000; i++) data.push({ i, s: 'v' + i + '-' + ((i * 7919) % 10007), a: [i, i * 2, i * 3] });
const sum = () => data.reduce((h, o) => (h * 31 + o.i + o.s.length + o.a[2]) | 0, 7);
const expected = sum();
process.on('SIGUSR2', () => { global.gc(); fs.writeFileSync('/tmp/sum', sum() + ' ' + expected); });
fs.writeFileSync('/tmp/ready', 'ready');
setInterval(() => undefined, 1000);
`;

let workDir: string;
let storeRoot: string;
let containerd: Containerd;

async function readInContainer(id: string, file: string): Promise<string> {
  const r = await containerd.ctr(['task', 'exec', '--exec-id', `r${Date.now()}${Math.random().toString(36).slice(2, 6)}`, id, '/usr/bin/node', '-e', `try { process.stdout.write(require('fs').readFileSync('${file}', 'utf8')) } catch {}`]);
  return r.stdout;
}

async function pidOf(id: string): Promise<number> {
  const task = (await containerd.tasks()).find((t) => t.id === id);
  if (!task) throw new Error(`no task ${id}`);
  return task.pid;
}

/** The digest of a checkpoint image's spec blob (its index names it by media type). */
async function specBlobOf(ref: string): Promise<string> {
  const line = (await containerd.ctrOk(['images', 'ls'])).stdout.split('\n').find((l) => l.startsWith(`${ref} `));
  const indexDigest = line?.split(/\s+/).find((f) => f.startsWith('sha256:'));
  if (!indexDigest) throw new Error(`no image ${ref}`);
  const index = JSON.parse((await containerd.ctrOk(['content', 'get', indexDigest])).stdout) as { manifests: Array<{ mediaType: string; digest: string }> };
  const spec = index.manifests.find((m) => m.mediaType === 'application/vnd.containerd.container.checkpoint.config.v1+proto');
  if (!spec) throw new Error(`checkpoint image ${ref} has no spec blob`);
  return spec.digest;
}

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'psmap-'));
  storeRoot = path.join(workDir, 'store');
  const node = await nodeImageBuilder(IMAGE);
  node.builder.addContent('/app/app.js', APP).setCmd(['/usr/bin/node', '--expose-gc', '/app/app.js']);
  await node.builder.build(path.join(workDir, 'node.tar'));
  containerd = await startContainerd({ version: '1.7', env: { PAGESHARE_ROOT: storeRoot } });
  await importImage(containerd, path.join(workDir, 'node.tar'));
});

afterAll(async () => {
  await containerd?.stop();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

it('restores replicas (at once, each in its own cgroup) that map their V8 heap from one sealed page-cache file, data intact after a full GC; a replica checkpointed again restores; a replaced file fails clearly', async () => {
  await containerd.ctrOk(['run', '-d', ...RT, ...MAP, IMAGE, 'map-src']);
  await waitFor(async () => (await readInContainer('map-src', '/tmp/ready')) === 'ready', { timeoutMs: 60_000, intervalMs: 250 });
  // The domain's page-cache dir is there, read-only, from create on.
  expect((await readInContainer('map-src', '/proc/self/mountinfo')).split('\n').find((l) => l.includes(' /.pageshare-pages '))).toMatch(/ ro[, ]/);
  await containerd.ctrOk(['containers', 'checkpoint', '--task', '--image', '--rw', 'map-src', 'docker.io/library/map-src:1']);
  await containerd.removeContainer('map-src');

  // At once: each replica gets its own cgroup, so their restores do not meet in runc.
  await Promise.all(['map-r1', 'map-r2'].map((id) => containerd.ctrOk(['containers', 'restore', '--live', '--rw', id, 'docker.io/library/map-src:1'])));
  for (const id of ['map-r1', 'map-r2']) {
    const memoryCgroup = fs.readFileSync(`/proc/${await pidOf(id)}/cgroup`, 'utf8').split('\n').find((l) => /:memory:/.test(l));
    expect(memoryCgroup).toMatch(new RegExp(`/default/${id}$`));
  }
  // The checkpoint carried its plan (pageshare-map/): the restores applied it, planning nothing.
  const shimLog = fs.readFileSync(shimServerFiles(containerd.address, 'default').log, 'utf8').split('\n');
  for (const id of ['map-r1', 'map-r2']) expect(shimLog.find((l) => l.includes(` for ${id}: map mode`))).toMatch(/\(prepared images \d+, /);
  const cacheDir = path.join(storeRoot, 'page-cache', 'default');
  const files = fs.readdirSync(cacheDir).filter((f) => f.endsWith('.pages'));
  expect(files).toHaveLength(1);
  const cacheFile = files[0];
  for (const id of ['map-r1', 'map-r2']) {
    const pid = await pidOf(id);
    const mapped = fs
      .readFileSync(`/proc/${pid}/maps`, 'utf8')
      .split('\n')
      .filter((l) => l.endsWith(`/.pageshare-pages/${cacheFile}`));
    if (process.env['PAGESHARE_TEST_FIGURES'] === '1') {
      const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      process.stdout.write(`${id}: ${mapped.length} mappings; ${rollup.split('\n').filter((l) => /^(Rss|Pss|Pss_Anon|Pss_File):/.test(l)).join(', ')}\n`);
    }
    expect(mapped.length).toBeGreaterThan(10);
    await containerd.ctrOk(['task', 'kill', '-s', 'SIGUSR2', id]);
    await waitFor(async () => (await readInContainer(id, '/tmp/sum')) !== '', { timeoutMs: 20_000, intervalMs: 200 });
    const [now, expected] = (await readInContainer(id, '/tmp/sum')).split(' ');
    expect(now).toBe(expected);
  }
  expect(fs.existsSync(path.join(cacheDir, `${cacheFile}.seal`))).toBe(true);

  // A replica checkpointed again: its mapped regions stay mappings of the first file, its
  // own pages go to the store, and the new checkpoint restores with data intact.
  // containerd 1.7 refuses a checkpoint whose spec blob exists already (map-r1 runs map-src's
  // spec): drop the first image's blob, which this checkpoint writes back byte for byte.
  await containerd.ctrOk(['content', 'rm', await specBlobOf('docker.io/library/map-src:1')]);
  await containerd.ctrOk(['containers', 'checkpoint', '--task', '--image', '--rw', 'map-r1', 'docker.io/library/map-r1:1']);
  await containerd.ctrOk(['containers', 'restore', '--live', '--rw', 'map-r3', 'docker.io/library/map-r1:1']);
  // The first file is durable now that a kept checkpoint depends on it.
  expect(JSON.parse(fs.readFileSync(path.join(cacheDir, `${cacheFile}.seal`), 'utf8'))).toMatchObject({ durable: true });
  const r3maps = fs.readFileSync(`/proc/${await pidOf('map-r3')}/maps`, 'utf8');
  expect(r3maps).toContain(`/.pageshare-pages/${cacheFile}`);
  await containerd.ctrOk(['task', 'exec', '--exec-id', 'rm-sum', 'map-r3', '/usr/bin/node', '-e', "require('fs').rmSync('/tmp/sum', { force: true })"]);
  await containerd.ctrOk(['task', 'kill', '-s', 'SIGUSR2', 'map-r3']);
  await waitFor(async () => (await readInContainer('map-r3', '/tmp/sum')) !== '', { timeoutMs: 20_000, intervalMs: 200 });
  const [r3now, r3expected] = (await readInContainer('map-r3', '/tmp/sum')).split(' ');
  expect(r3now).toBe(r3expected);

  // A sealed file replaced behind the shim's back fails the next restore clearly; the
  // replicas mapping the old one go on; without file and seal, the next restore writes it again.
  const hostFile = path.join(cacheDir, cacheFile);
  fs.copyFileSync(hostFile, `${hostFile}.copy`);
  fs.renameSync(`${hostFile}.copy`, hostFile);
  const failed = await containerd.ctr(['containers', 'restore', '--live', '--rw', 'map-r4', 'docker.io/library/map-src:1']);
  expect(failed.code).not.toBe(0);
  expect(failed.stderr).toMatch(/changed after it was sealed/);
  await containerd.removeContainer('map-r4').catch(() => undefined);
  const [r2now, r2expected] = (await readInContainer('map-r2', '/tmp/sum')).split(' ');
  expect(r2now).toBe(r2expected);
  fs.rmSync(hostFile);
  fs.rmSync(`${hostFile}.seal`);
  // The second checkpoint depends on the file (a marker says so); without it, a clear error.
  expect(fs.readdirSync(`${hostFile}.refs`)).toHaveLength(1);
  const orphaned = await containerd.ctr(['containers', 'restore', '--live', '--rw', 'map-r5', 'docker.io/library/map-r1:1']);
  expect(orphaned.code).not.toBe(0);
  expect(orphaned.stderr).toMatch(/maps the page-cache file .* cannot be used: there is no such file/);
  await containerd.removeContainer('map-r5').catch(() => undefined);
  await containerd.ctrOk(['containers', 'restore', '--live', '--rw', 'map-r4', 'docker.io/library/map-src:1']);
  expect(fs.existsSync(`${hostFile}.seal`)).toBe(true);
  expect(fs.readFileSync(`/proc/${await pidOf('map-r4')}/maps`, 'utf8')).toContain(`/.pageshare-pages/${cacheFile}`);
  for (const id of ['map-r1', 'map-r2', 'map-r3', 'map-r4']) await containerd.removeContainer(id);
});

it('a corrupt page of the page-cache file aborts the restore before its processes run again; nothing is sealed', async () => {
  // The page-cache file is written while CRIU restores; a page that fails verification must
  // stop CRIU before the tasks resume. This app's V8 heap holds random base64 text (pages of
  // it are unique to it, and mapped on restore) and it beats into a host dir while it runs.
  const beatsDir = path.join(workDir, 'beats');
  fs.mkdirSync(beatsDir);
  // (Text made in JS: Buffer.toString would leave copies of it in malloc'd memory, copied on restore.)
  const code = `const fs = require('fs'); const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
let seed = (Date.now() | 1) >>> 0; const rnd = () => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>>= 0); };
globalThis.junk = []; for (let i = 0; i < 200; i++) globalThis.junk.push(Array.from({ length: 48 * 1024 }, () => A[rnd() & 63]).join(''));
fs.writeFileSync('/tmp/ready', 'ready');
setInterval(() => fs.appendFileSync('/out/beats', 'x'), 10);`;
  const packsDir = path.join(storeRoot, 'packs');
  const sizesBefore = new Map(fs.existsSync(packsDir) ? fs.readdirSync(packsDir).map((f) => [f, fs.statSync(path.join(packsDir, f)).size]) : []);
  const cacheDir = path.join(storeRoot, 'page-cache', 'default');
  const seals = (): string[] => fs.readdirSync(cacheDir).filter((f) => f.endsWith('.seal'));
  const sealsAtStart = seals();
  await containerd.ctrOk(['run', '-d', ...RT, ...MAP, '--mount', `type=bind,src=${beatsDir},dst=/out,options=rbind:rw`, IMAGE, 'map-bad', '/usr/bin/node', '-e', code]);
  await waitFor(async () => (await readInContainer('map-bad', '/tmp/ready')) === 'ready', { timeoutMs: 60_000, intervalMs: 250 });
  await containerd.ctrOk(['containers', 'checkpoint', '--task', '--image', '--rw', 'map-bad', 'docker.io/library/map-bad:1']);
  await containerd.removeContainer('map-bad');
  // The checkpoint wrote its page-cache file from the dump; removed, so that the restore
  // writes it from the store, verifying every page.
  await waitFor(() => seals().length > sealsAtStart.length, { timeoutMs: 30_000, intervalMs: 50 });
  const prepared = seals().filter((f) => !sealsAtStart.includes(f));
  expect(prepared).toHaveLength(1);
  fs.rmSync(path.join(cacheDir, prepared[0]!));
  fs.rmSync(path.join(cacheDir, prepared[0]!.replace(/\.seal$/, '')));

  // One page of that text among what this checkpoint added to the packs: flip a byte in it.
  let victim: { file: string; at: number } | undefined;
  const page = Buffer.alloc(4096);
  for (const f of fs.readdirSync(packsDir).sort()) {
    const file = path.join(packsDir, f);
    const fd = fs.openSync(file, 'r');
    for (let at = sizesBefore.get(f) ?? 0; at + 4096 <= fs.statSync(file).size && victim === undefined; at += 4096) {
      fs.readSync(fd, page, 0, 4096, at);
      if (/^[A-Za-z0-9+/]{4096}$/.test(page.toString('latin1'))) victim = { file, at };
    }
    fs.closeSync(fd);
    if (victim) break;
  }
  expect(victim).toBeDefined();
  const fd = fs.openSync(victim!.file, 'r+');
  fs.writeSync(fd, Buffer.from([page[100]! ^ 0x01]), 0, 1, victim!.at + 100);
  fs.closeSync(fd);

  const sealsBefore = seals();
  const beatsBefore = fs.statSync(path.join(beatsDir, 'beats')).size;
  const failed = await containerd.ctr(['containers', 'restore', '--live', '--rw', 'map-bad-r', 'docker.io/library/map-bad:1']);
  expect(failed.code).not.toBe(0);
  expect(failed.stderr).toMatch(/failed before its processes resumed: .*page [0-9a-f]{64}.* is corrupt/);
  expect(await containerd.taskStatus('map-bad-r')).not.toBe('RUNNING');
  // The restored app never beat: CRIU killed it before it resumed.
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(fs.statSync(path.join(beatsDir, 'beats')).size).toBe(beatsBefore);
  // Nothing was sealed for the bad file (and no unsealed file of it is left to map).
  expect(fs.readdirSync(cacheDir).filter((f) => f.endsWith('.seal'))).toEqual(sealsBefore);
  await containerd.removeContainer('map-bad-r').catch(() => undefined);
});

it("keeps sharing domains apart: a container of another namespace sees its own page-cache dir, never this one's", async () => {
  const defaultDir = path.join(storeRoot, 'page-cache', 'default');
  const ours = fs.readdirSync(defaultDir).filter((f) => f.endsWith('.pages'));
  expect(ours.length).toBeGreaterThan(0); // left by the test above
  await importImage(containerd, path.join(workDir, 'node.tar'), { namespace: 'other' });
  await containerd.ctrOk(['run', '-d', ...RT, ...MAP, IMAGE, 'map-other'], { namespace: 'other' });
  try {
    const look = async (code: string): Promise<string> =>
      (await containerd.ctrOk(['task', 'exec', '--exec-id', `l${Date.now()}`, 'map-other', '/usr/bin/node', '-e', code], { namespace: 'other' })).stdout;
    // Its mount is its own domain's dir: empty, and none of the default namespace's files.
    expect(JSON.parse(await look("process.stdout.write(JSON.stringify(require('fs').readdirSync('/.pageshare-pages')))"))).toEqual([]);
    // What is mounted there is the other domain's dir (mountinfo's 4th field: the bind's root).
    const mountLine = (await look("process.stdout.write(require('fs').readFileSync('/proc/self/mountinfo', 'utf8'))")).split('\n').find((l) => l.split(' ')[4] === '/.pageshare-pages');
    expect(mountLine?.split(' ')[3]).toMatch(/\/page-cache\/other$/);
    expect(fs.existsSync(path.join(storeRoot, 'page-cache', 'other'))).toBe(true);
  } finally {
    await containerd.removeContainer('map-other', 'other');
  }
});

it("a checkpoint leaves its page-cache file sealed for the first restore; the container's later checkpoints supersede it once nothing maps it", async () => {
  const cacheDir = path.join(storeRoot, 'page-cache', 'default');
  const sealedFor = (id: string): string[] =>
    fs
      .readdirSync(cacheDir)
      .filter((f) => f.endsWith('.pages.seal') && (JSON.parse(fs.readFileSync(path.join(cacheDir, f), 'utf8')) as { preparedFor?: string }).preparedFor === id)
      .map((f) => f.slice(0, -'.seal'.length))
      .sort();
  const checkpoint = async (tag: number): Promise<void> => {
    // containerd 1.7 refuses a second image with the identical spec blob: removed first (as the bench does).
    if (tag > 1) await containerd.ctrOk(['content', 'rm', await specBlobOf(`docker.io/library/map-sup:${tag - 1}`)]);
    await containerd.ctrOk(['containers', 'checkpoint', '--task', '--image', '--rw', 'map-sup', `docker.io/library/map-sup:${tag}`]);
  };
  await containerd.ctrOk(['run', '-d', ...RT, ...MAP, IMAGE, 'map-sup']);
  await waitFor(async () => (await readInContainer('map-sup', '/tmp/ready')) === 'ready', { timeoutMs: 60_000, intervalMs: 250 });
  await checkpoint(1);
  await waitFor(() => sealedFor('map-sup').length === 1, { timeoutMs: 30_000, intervalMs: 50 });
  const [first] = sealedFor('map-sup') as [string];

  // The first restore finds it sealed: it rebuilds only the pages that stay private, and the
  // data the checkpoint copied into the file is intact.
  await containerd.ctrOk(['containers', 'restore', '--live', '--rw', 'map-sup-r', 'docker.io/library/map-sup:1']);
  const shimLog = fs.readFileSync(shimServerFiles(containerd.address, 'default').log, 'utf8').split('\n');
  expect(shimLog.find((l) => l.includes(' for map-sup-r: map mode'))).toMatch(/file reused/);
  expect(fs.readFileSync(`/proc/${await pidOf('map-sup-r')}/maps`, 'utf8')).toContain(`/.pageshare-pages/${first}`);
  await containerd.ctrOk(['task', 'kill', '-s', 'SIGUSR2', 'map-sup-r']);
  await waitFor(async () => (await readInContainer('map-sup-r', '/tmp/sum')) !== '', { timeoutMs: 20_000, intervalMs: 200 });
  const [now, expected] = (await readInContainer('map-sup-r', '/tmp/sum')).split(' ');
  expect(now).toBe(expected);

  // The next checkpoint leaves the first file alone while the replica maps it...
  await checkpoint(2);
  await waitFor(() => sealedFor('map-sup').length === 2, { timeoutMs: 30_000, intervalMs: 50 });
  expect(sealedFor('map-sup')).toContain(first);
  // ...and the one after supersedes both earlier files once nothing maps them.
  await containerd.removeContainer('map-sup-r');
  await checkpoint(3);
  await waitFor(() => sealedFor('map-sup').length === 1 && !sealedFor('map-sup').includes(first), { timeoutMs: 30_000, intervalMs: 50 });
  expect(fs.existsSync(path.join(cacheDir, first))).toBe(false);
  await containerd.removeContainer('map-sup');
});
