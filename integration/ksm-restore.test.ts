/**
 * Copy-mode restores with KSM (annotation io.pageshare.ksm=on on the checkpointed container,
 * carried by its spec): the restored processes are mergeable, KSM scans for a bounded burst
 * and merges the replicas' equal pages, and the host's KSM settings are as before afterwards.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, type Containerd } from './harness/containerd';
import { importImage } from './harness/image';
import { PAGESHARE_RUNTIME } from './harness/paths';
import { nodeImageBuilder } from './harness/runtime-images';
import { waitFor } from './harness/wait';

jest.setTimeout(300_000);

const IMAGE = 'docker.io/library/pstest-ksm-node:latest';
const KSM = '/sys/kernel/mm/ksm';
const SETTINGS = ['run', 'pages_to_scan', 'sleep_millisecs'];
// ~40 MB of V8 objects and a checksum; SIGUSR2 writes the checksum now and at start.
const APP = `
const fs = require('fs');
const data = [];
for (let i = 0; i < 300000; i++) data.push({ i, s: 'k' + i + '-' + ((i * 7919) % 10007), a: [i, i * 2, i * 3] });
const sum = () => data.reduce((h, o) => (h * 31 + o.i + o.s.length + o.a[2]) | 0, 7);
const expected = sum();
process.on('SIGUSR2', () => fs.writeFileSync('/tmp/sum', sum() + ' ' + expected));
fs.writeFileSync('/tmp/ready', 'ready');
setInterval(() => undefined, 1000);
`;

let workDir: string;
let containerd: Containerd;
const ksmSettings = (): string[] => SETTINGS.map((k) => fs.readFileSync(path.join(KSM, k), 'utf8').trim());
let before: string[];

async function pidOf(id: string): Promise<number> {
  const task = (await containerd.tasks()).find((t) => t.id === id);
  if (!task) throw new Error(`no task ${id}`);
  return task.pid;
}

function ksmStat(pid: number): Record<string, string> {
  return Object.fromEntries(
    fs
      .readFileSync(`/proc/${pid}/ksm_stat`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(/:?\s+/) as [string, string]),
  );
}

(fs.existsSync(path.join(KSM, 'run')) ? describe : describe.skip)('KSM after copy-mode restores', () => {
  beforeAll(async () => {
    before = ksmSettings();
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'psksm-'));
    const node = await nodeImageBuilder(IMAGE);
    node.builder.addContent('/app/app.js', APP).setCmd(['/usr/bin/node', '/app/app.js']);
    await node.builder.build(path.join(workDir, 'node.tar'));
    containerd = await startContainerd({ version: '1.7', env: { PAGESHARE_ROOT: path.join(workDir, 'store') } });
    await importImage(containerd, path.join(workDir, 'node.tar'));
  });

  afterAll(async () => {
    await containerd?.stop();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
    // Whatever happened, the host's KSM settings as they were.
    if (before) SETTINGS.forEach((k, i) => fs.writeFileSync(path.join(KSM, k), before[i]));
  });

  it('merges the replicas’ equal pages during a bounded burst, then puts the settings back', async () => {
    const annotations = ['--annotation', 'io.pageshare.restore=copy', '--annotation', 'io.pageshare.ksm=on', '--annotation', 'io.pageshare.ksm.burst-ms=6000'];
    await containerd.ctrOk(['run', '-d', '--runtime', PAGESHARE_RUNTIME, ...annotations, IMAGE, 'ksm-src']);
    const srcPid = await pidOf('ksm-src');
    await waitFor(async () => fs.existsSync(`/proc/${srcPid}/root/tmp/ready`), { timeoutMs: 60_000, intervalMs: 250 });
    await containerd.ctrOk(['containers', 'checkpoint', '--task', '--image', '--rw', 'ksm-src', 'docker.io/library/ksm-src:1']);
    await containerd.removeContainer('ksm-src');

    for (const id of ['ksm-r1', 'ksm-r2']) await containerd.ctrOk(['containers', 'restore', '--live', '--rw', id, 'docker.io/library/ksm-src:1']);
    const pids = [await pidOf('ksm-r1'), await pidOf('ksm-r2')];
    for (const pid of pids) expect(ksmStat(pid)['ksm_merge_any']).toBe('yes');
    expect(ksmSettings()[0]).toBe('1'); // scanning during the burst
    // The burst (6 s) merges most of the second replica's heap into the first's.
    await waitFor(async () => pids.every((pid) => Number(ksmStat(pid)['ksm_merging_pages']) > 2000), { timeoutMs: 30_000, intervalMs: 250 });
    if (process.env['PAGESHARE_TEST_FIGURES'] === '1') process.stdout.write(`ksm_merging_pages: ${pids.map((p) => ksmStat(p)['ksm_merging_pages']).join(', ')}\n`);
    await waitFor(async () => ksmSettings().join(' ') === before.join(' '), { timeoutMs: 30_000, intervalMs: 250 });

    for (const [i, id] of ['ksm-r1', 'ksm-r2'].entries()) {
      process.kill(pids[i], 'SIGUSR2');
      await waitFor(async () => fs.existsSync(`/proc/${pids[i]}/root/tmp/sum`), { timeoutMs: 20_000, intervalMs: 200 });
      const [now, expected] = fs.readFileSync(`/proc/${pids[i]}/root/tmp/sum`, 'utf8').split(' ');
      expect(now).toBe(expected);
      await containerd.removeContainer(id);
    }
  });
});
