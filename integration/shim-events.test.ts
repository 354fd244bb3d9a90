/**
 * The task events containerd receives from pageshare (Docker drives container state from
 * them): create, start, exec-added, exec-started, exit, delete, paused, resumed and oom,
 * with the right ids, pids and exit statuses, seen through `ctr events`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, type Containerd } from './harness/containerd';
import { buildBusyboxImage, importImage } from './harness/image';
import { PAGESHARE_RUNTIME } from './harness/paths';
import { waitFor } from './harness/wait';

jest.setTimeout(120_000);

const IMAGE = 'docker.io/library/pstest-events:latest';

interface SeenEvent {
  topic: string;
  body: Record<string, unknown>;
}

let containerd: Containerd;
let workDir: string;
let watcher: ChildProcess;
const seen: SeenEvent[] = [];

function eventsFor(id: string): SeenEvent[] {
  return seen.filter((e) => e.body['container_id'] === id);
}

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pse-'));
  const tar = path.join(workDir, 'busybox.tar');
  await buildBusyboxImage(tar, IMAGE);
  containerd = await startContainerd({ version: '1.7', env: { PAGESHARE_ROOT: path.join(workDir, 'store') } });
  await importImage(containerd, tar);
  watcher = spawn(containerd.ctrPath, ['--address', containerd.address, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let buffered = '';
  watcher.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      // "<date> <time> <zone> UTC <namespace> <topic> <json>"
      const m = /\s(\/tasks\/[a-z-]+)\s+(\{.*\})\s*$/.exec(line);
      if (m) seen.push({ topic: m[1]!, body: JSON.parse(m[2]!) as Record<string, unknown> });
    }
  });
});

afterAll(async () => {
  watcher?.kill();
  await containerd?.stop();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

it('publishes the lifecycle of a container and its exec processes in order', async () => {
  const rt = ['--runtime', PAGESHARE_RUNTIME];
  await containerd.ctrOk(['run', '-d', ...rt, IMAGE, 'ev1', 'sleep', '1000']);
  await containerd.ctrOk(['task', 'exec', '--exec-id', 'x1', 'ev1', 'sh', '-c', 'exit 2']).catch(() => undefined);
  await containerd.ctrOk(['task', 'pause', 'ev1']);
  await containerd.ctrOk(['task', 'resume', 'ev1']);
  await containerd.ctrOk(['task', 'kill', '-s', 'SIGKILL', 'ev1']);
  await waitFor(async () => (await containerd.taskStatus('ev1')) === 'STOPPED', { timeoutMs: 10_000 });
  await containerd.ctr(['task', 'rm', 'ev1']);
  await waitFor(() => eventsFor('ev1').some((e) => e.topic === '/tasks/delete' && !e.body['id']), { timeoutMs: 10_000 });

  const events = eventsFor('ev1');
  expect(events.map((e) => e.topic)).toEqual([
    '/tasks/create',
    '/tasks/start',
    '/tasks/exec-added',
    '/tasks/exec-started',
    '/tasks/exit',
    '/tasks/delete',
    '/tasks/paused',
    '/tasks/resumed',
    '/tasks/exit',
    '/tasks/delete',
  ]);
  const initPid = events[0]!.body['pid'];
  expect(events[1]!.body['pid']).toBe(initPid);
  const execExit = events[4]!.body;
  expect(execExit).toMatchObject({ id: 'x1', exit_status: 2 });
  expect(execExit['pid']).toBe(events[3]!.body['pid']);
  const initExit = events[8]!.body;
  expect(initExit).toMatchObject({ id: 'ev1', pid: initPid, exit_status: 137 });
  expect(events[9]!.body).toMatchObject({ pid: initPid, exit_status: 137 });
});

it('publishes TaskOOM when the container hits its memory limit', async () => {
  const r = await containerd.ctr([
    'run', '--rm', '--memory-limit', String(32 << 20), '--runtime', PAGESHARE_RUNTIME, IMAGE, 'ev-oom',
    'sh', '-c', 'dd if=/dev/zero of=/dev/null bs=100M count=1',
  ]);
  expect(r.code).toBe(137);
  await waitFor(() => eventsFor('ev-oom').some((e) => e.topic === '/tasks/delete'), { timeoutMs: 10_000 });
  expect(eventsFor('ev-oom').map((e) => e.topic)).toContain('/tasks/oom');
});

it('publishes TaskCheckpointed after a checkpoint', async () => {
  await containerd.ctrOk(['run', '-d', '--runtime', PAGESHARE_RUNTIME, IMAGE, 'ev-ck', 'sleep', '1000']);
  await containerd.ctrOk(['containers', 'checkpoint', '--task', 'ev-ck', 'docker.io/library/ev-ck:1']);
  await waitFor(() => eventsFor('ev-ck').some((e) => e.topic === '/tasks/checkpointed'), { timeoutMs: 10_000 });
  // containerd pauses the task around the call.
  const topics = eventsFor('ev-ck').map((e) => e.topic);
  expect(topics.indexOf('/tasks/paused')).toBeLessThan(topics.indexOf('/tasks/checkpointed'));
  await containerd.ctrOk(['task', 'kill', '-s', 'SIGKILL', 'ev-ck']);
  await waitFor(async () => (await containerd.taskStatus('ev-ck')) === 'STOPPED', { timeoutMs: 10_000 });
  await containerd.ctr(['task', 'rm', 'ev-ck']);
  await containerd.ctr(['container', 'rm', 'ev-ck']);
});
