/**
 * Docker's experimental checkpoints on pageshare: Docker sends no checkpoint options (so the
 * container keeps running, as with any non-runc shim), and `docker start --checkpoint`
 * restores through the page store with Docker's own logging pipes re-attached: output
 * written after the restore reaches `docker logs`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, type Containerd } from './harness/containerd';
import { startDocker, type Docker } from './harness/docker';
import { buildBusyboxImage } from './harness/image';
import { PAGESHARE_RUNTIME } from './harness/paths';
import { waitFor } from './harness/wait';
import { PageStore } from '../shim/store/page-store';

jest.setTimeout(180_000);

const IMAGE = 'docker.io/library/pstest-dckpt:latest';

let workDir: string;
let containerd: Containerd;
let docker: Docker;

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'psdc-'));
  const tar = path.join(workDir, 'busybox.tar');
  await buildBusyboxImage(tar, IMAGE);
  containerd = await startContainerd({ version: '1.7', env: { PAGESHARE_ROOT: path.join(workDir, 'store') } });
  docker = await startDocker(containerd);
  await docker.load(tar);
});

afterAll(async () => {
  await docker?.stop();
  await containerd?.stop();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

it('checkpoints with nil options and restores with stdio re-attached', async () => {
  const name = `dk-ck-${process.pid}`;
  await docker.dockerOk(['run', '-d', '--name', name, '--runtime', PAGESHARE_RUNTIME, IMAGE, 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.2; done']);
  await waitFor(async () => (await docker.docker(['logs', name])).stdout.includes('line 5'), { timeoutMs: 20_000 });
  await docker.dockerOk(['checkpoint', 'create', name, 'cp1']);
  // No options from Docker: the container is left running.
  expect((await docker.dockerOk(['inspect', '-f', '{{.State.Running}}', name])).stdout.trim()).toBe('true');
  const store = PageStore.open(path.join(workDir, 'store'));
  try {
    await store.awaitPendingIngests();
    expect(store.listCheckpoints().length).toBe(1);
  } finally {
    store.close();
  }
  await docker.dockerOk(['stop', '-t', '1', name]);
  const logsAtStop = (await docker.dockerOk(['logs', name])).stdout;
  const lastBefore = Math.max(...[...logsAtStop.matchAll(/line (\d+)/g)].map((m) => Number(m[1])));

  await docker.dockerOk(['start', '--checkpoint', 'cp1', name]);
  expect((await docker.dockerOk(['inspect', '-f', '{{.State.Running}}', name])).stdout.trim()).toBe('true');
  // The restored shell goes on from its dumped counter and its output reaches docker logs.
  await waitFor(
    async () => {
      const numbers = [...(await docker.docker(['logs', name])).stdout.matchAll(/line (\d+)/g)].map((m) => Number(m[1]));
      return numbers.length > 0 && numbers[numbers.length - 1]! > lastBefore + 3;
    },
    { timeoutMs: 20_000 },
  );
  await docker.dockerOk(['rm', '-f', name]);
});
