/**
 * Checkpoint and restore through containerd, as users drive them: `ctr containers
 * checkpoint --task --image --rw` (CheckpointOptions), restore with `ctr containers restore
 * --live --rw`, several restores of one checkpoint at once, a dump CRIU refuses (the
 * container runs on), and a restore from a damaged checkpoint.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, type Containerd } from './harness/containerd';
import { buildBusyboxImage, importImage } from './harness/image';
import { PAGESHARE_RUNTIME, type ContainerdVersion } from './harness/paths';
import { waitFor } from './harness/wait';

jest.setTimeout(180_000);

const IMAGE = 'docker.io/library/pstest-ckpt:latest';
const RT = ['--runtime', PAGESHARE_RUNTIME];
/** Counts in a file, so a restored container shows it went on from where it was dumped. */
const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done';

let workDir: string;
let imageTar: string;

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'psck-'));
  imageTar = path.join(workDir, 'busybox.tar');
  await buildBusyboxImage(imageTar, IMAGE);
});

afterAll(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

describe.each<ContainerdVersion>(['1.7', '2.1'])('checkpoint/restore on containerd %s', (version) => {
  let containerd: Containerd;
  const storeRoot = () => path.join(workDir, `store-${version}`);

  // The counter truncates the file before it writes, so a read can land between the two
  // (seen once after a restore): such an empty read is retried.
  const count = async (id: string, execId: string): Promise<number> => {
    for (let attempt = 0; ; attempt++) {
      const text = (await containerd.ctrOk(['task', 'exec', '--exec-id', `${execId}-${attempt}`, id, 'cat', '/tmp/count'])).stdout.trim();
      if (text !== '' || attempt === 4) return Number(text);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  const remove = (id: string): Promise<void> => containerd.removeContainer(id, undefined, 10_000);

  beforeAll(async () => {
    containerd = await startContainerd({ version, env: { PAGESHARE_ROOT: storeRoot() } });
    await importImage(containerd, imageTar);
  });

  afterAll(async () => {
    await containerd?.stop();
  });

  it('checkpoints a running container, which runs on, and restores it elsewhere several times', async () => {
    await containerd.ctrOk(['run', '-d', ...RT, IMAGE, 'ck', 'sh', '-c', COUNTER]);
    await waitFor(async () => (await count('ck', 'c0')) > 3, { timeoutMs: 10_000 });
    await containerd.ctrOk(['containers', 'checkpoint', '--task', '--image', '--rw', 'ck', 'docker.io/library/ck:one']);
    const atDump = await count('ck', 'c1');
    // The source keeps running (and counting) after the dump.
    await waitFor(async () => (await count('ck', 'c2')) > atDump + 2, { timeoutMs: 10_000 });
    await remove('ck');

    const replicas = ['ck-r1', 'ck-r2', 'ck-r3'];
    await Promise.all(replicas.map((id) => containerd.ctrOk(['containers', 'restore', '--live', '--rw', id, 'docker.io/library/ck:one'])));
    for (const id of replicas) {
      expect(await containerd.taskStatus(id)).toBe('RUNNING');
      const first = await count(id, 'r0');
      // It resumed from the dumped counter, not from zero, and keeps going.
      expect(first).toBeGreaterThanOrEqual(atDump - 1);
      await waitFor(async () => (await count(id, 'r1')) > first, { timeoutMs: 10_000 });
    }
    // Restored tasks are ordinary tasks: exec exit codes, kill, exit status, delete.
    const exec = await containerd.ctr(['task', 'exec', '--exec-id', 'x', 'ck-r1', 'sh', '-c', 'exit 6']);
    expect(exec.code).toBe(6);
    await containerd.ctrOk(['task', 'kill', '-s', 'SIGKILL', 'ck-r1']);
    await waitFor(async () => (await containerd.taskStatus('ck-r1')) === 'STOPPED', { timeoutMs: 10_000 });
    expect((await containerd.ctrOk(['task', 'rm', 'ck-r1'])).stderr).toContain('137');
    await containerd.ctrOk(['container', 'rm', 'ck-r1']);
    for (const id of replicas.slice(1)) await remove(id);
  });

  it('leaves the container running and explains a dump CRIU refuses', async () => {
    // An established TCP connection inside the container, without open_tcp: CRIU refuses.
    await containerd.ctrOk([
      'run', '-d', ...RT, IMAGE, 'tcp',
      'sh', '-c', 'nc -l -p 7777 -e cat & sleep 0.3; (while true; do echo x; sleep 1; done) | nc 127.0.0.1 7777 > /dev/null & ' + COUNTER,
    ]);
    await waitFor(async () => (await count('tcp', 't0')) > 3, { timeoutMs: 10_000 });
    const r = await containerd.ctr(['containers', 'checkpoint', '--task', 'tcp', 'docker.io/library/tcp:fail']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/checkpoint of tcp failed/);
    expect(r.stderr).toMatch(/tcp|TCP|socket/);
    expect(await containerd.taskStatus('tcp')).toBe('RUNNING');
    const before = await count('tcp', 't1');
    await waitFor(async () => (await count('tcp', 't2')) > before, { timeoutMs: 10_000 });
    await remove('tcp');
  });
});
