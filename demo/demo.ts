// `make demo`: a private containerd, a container on pageshare, and what the shim does for it.
// Everything it starts lives in a temp dir and is removed at the end.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, type Containerd } from '../integration/harness/containerd';
import { buildBusyboxImage, importImage } from '../integration/harness/image';
import { PAGESHARE_RUNTIME } from '../integration/harness/paths';
import { NODE_CHURN_APP, nodeImageBuilder } from '../integration/harness/runtime-images';
import { waitFor } from '../integration/harness/wait';
import { PageStore } from '../shim/store/page-store';

const IMAGE = 'docker.io/library/pageshare-demo:latest';
const NODE_IMAGE = 'docker.io/library/pageshare-demo-node:latest';
const RT = ['--runtime', PAGESHARE_RUNTIME];

function step(title: string): void {
  process.stdout.write(`\n== ${title}\n`);
}

function show(text: string): void {
  const body = text.trimEnd();
  if (body) process.stdout.write(body.split('\n').map((l) => `   ${l}`).join('\n') + '\n');
}

function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** Opens the store once the shim has indexed what it just checkpointed (right after the call). */
async function settledStore<T>(root: string, use: (store: PageStore) => T): Promise<T> {
  const store = PageStore.open(root);
  try {
    await store.awaitPendingIngests();
    return use(store);
  } finally {
    store.close();
  }
}

async function storeFigures(root: string): Promise<string> {
  return settledStore(root, (store) => {
    const s = store.stats();
    return `${s.checkpoints} checkpoint(s): logical ${mib(s.logicalBytes)}, stored ${mib(s.storedBytes)}, on disk ${mib(s.physicalBytes)}, dedup ratio ${s.dedupRatio?.toFixed(2) ?? '-'}`;
  });
}

function memoryOf(pid: number): string {
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(rollup)?.[1] ?? 0);
  return `RSS ${(kb('Rss') / 1024).toFixed(1)} MiB, PSS ${(kb('Pss') / 1024).toFixed(1)} MiB (anon ${(kb('Pss_Anon') / 1024).toFixed(1)})`;
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'psdemo-'));
  let containerd: Containerd | undefined;
  try {
    step('Starting a private containerd 1.7 with pageshare on its PATH');
    const storeRoot = path.join(work, 'page-store');
    containerd = await startContainerd({ version: '1.7', logLevel: 'info', env: { PAGESHARE_ROOT: storeRoot } });
    show(`page store (PAGESHARE_ROOT): ${storeRoot}`);
    show(`address ${containerd.address}`);

    step('Building a busybox image locally (no registry) and importing it');
    const tar = path.join(work, 'image.tar');
    await buildBusyboxImage(tar, IMAGE);
    await importImage(containerd, tar);
    show(IMAGE);

    step(`ctr run --rm --runtime ${PAGESHARE_RUNTIME} ... sh -c 'echo hello from pageshare; exit 3'`);
    const once = await containerd.ctr(['run', '--rm', ...RT, IMAGE, 'demo-once', 'sh', '-c', 'echo hello from pageshare; exit 3']);
    show(once.stdout);
    show(`exit status: ${once.code}`);

    step('Three detached containers: one shim server serves the whole namespace');
    for (const id of ['demo-a', 'demo-b', 'demo-c']) {
      await containerd.ctrOk(['run', '-d', ...RT, IMAGE, id, 'sh', '-c', 'while true; do sleep 1; done']);
    }
    const tasks = await containerd.tasks();
    show((await containerd.ctrOk(['task', 'ls'])).stdout);
    const servers = new Set(tasks.map((t) => parentOf(t.pid)));
    for (const pid of servers) show(`shim server pid ${pid} (parent and reaper of ${tasks.length} container inits): ${memoryOf(pid)}`);

    step('exec, ps, pause/resume, metrics');
    show((await containerd.ctr(['task', 'exec', '--exec-id', 'hello', 'demo-a', 'sh', '-c', 'echo "exec in $(hostname), pid $$"'])).stdout);
    show((await containerd.ctrOk(['task', 'ps', 'demo-a'])).stdout);
    await containerd.ctrOk(['task', 'pause', 'demo-b']);
    show(`demo-b after pause: ${await containerd.taskStatus('demo-b')}`);
    await containerd.ctrOk(['task', 'resume', 'demo-b']);
    show(`demo-b after resume: ${await containerd.taskStatus('demo-b')}`);
    show((await containerd.ctrOk(['task', 'metrics', 'demo-c'])).stdout.split('\n').slice(0, 6).join('\n'));

    step('Killing and removing the containers; the idle shim server then exits');
    for (const id of ['demo-a', 'demo-b', 'demo-c']) {
      await containerd.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitFor(async () => (await containerd!.taskStatus(id)) === 'STOPPED', { timeoutMs: 10_000 });
      await containerd.ctr(['task', 'rm', id]);
      await containerd.ctrOk(['container', 'rm', id]);
    }
    for (const pid of servers) {
      await waitFor(() => !fs.existsSync(`/proc/${pid}`), { timeoutMs: 15_000 });
      show(`shim server ${pid} exited`);
    }
    step('Checkpoint/restore: an app holding 48 MiB of data, checkpointed twice into the page store');
    const app = 'x=$(head -c 37748736 /dev/urandom | base64); i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done';
    await containerd.ctrOk(['run', '-d', ...RT, IMAGE, 'demo-app', 'sh', '-c', app]);
    const count = async (id: string): Promise<number> =>
      Number((await containerd!.ctr(['task', 'exec', '--exec-id', `c${Date.now()}`, id, 'cat', '/tmp/count'])).stdout.trim()) || 0;
    await waitFor(async () => (await count('demo-app')) > 5, { timeoutMs: 60_000 });
    for (const n of [1, 2]) {
      const t0 = Date.now();
      await containerd.ctrOk(['containers', 'checkpoint', '--task', '--image', '--rw', 'demo-app', `docker.io/library/demo-app:cp${n}`]);
      show(`checkpoint ${n} in ${Date.now() - t0} ms (the app's counter is at ${await count('demo-app')}); ${await storeFigures(storeRoot)}`);
      // containerd 1.7 cannot hold two checkpoint images of one container whose blobs match.
      if (n === 1) await containerd.ctrOk(['images', 'rm', 'docker.io/library/demo-app:cp1']);
    }
    show('the second checkpoint added almost nothing: its pages were already in the store');
    await containerd.ctrOk(['task', 'kill', '-s', 'SIGKILL', 'demo-app']);
    await waitFor(async () => (await containerd!.taskStatus('demo-app')) === 'STOPPED', { timeoutMs: 10_000 });
    await containerd.ctr(['task', 'rm', 'demo-app']);
    await containerd.ctrOk(['container', 'rm', 'demo-app']);
    const t0 = Date.now();
    await containerd.ctrOk(['containers', 'restore', '--live', '--rw', 'demo-restored', 'docker.io/library/demo-app:cp2']);
    show(`restored as demo-restored in ${Date.now() - t0} ms; its counter resumes at ${await count('demo-restored')} and goes on:`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    show(`one second later: ${await count('demo-restored')}`);
    await containerd.ctrOk(['task', 'kill', '-s', 'SIGKILL', 'demo-restored']);
    await waitFor(async () => (await containerd!.taskStatus('demo-restored')) === 'STOPPED', { timeoutMs: 10_000 });
    await containerd.ctr(['task', 'rm', 'demo-restored']);
    await containerd.ctrOk(['container', 'rm', 'demo-restored']);

    step('The GC hook: the same churning Node.js app, checkpointed with and without io.pageshare.gc=node');
    const node = await nodeImageBuilder(NODE_IMAGE);
    node.builder.addContent('/app/app.js', NODE_CHURN_APP).setCmd(['/usr/bin/node', '/app/app.js']);
    await node.builder.build(path.join(work, 'node.tar'));
    await importImage(containerd, path.join(work, 'node.tar'));
    await containerd.ctrOk(['run', '-d', ...RT, '--annotation', 'io.pageshare.gc=node', NODE_IMAGE, 'churn-gc']);
    await containerd.ctrOk(['run', '-d', ...RT, NODE_IMAGE, 'churn-plain']);
    const ready = async (id: string): Promise<boolean> =>
      (await containerd!.ctr(['task', 'exec', '--exec-id', `r${Date.now()}`, id, '/usr/bin/node', '-e', "require('fs').accessSync('/tmp/ready')"])).code === 0;
    await waitFor(async () => (await ready('churn-gc')) && (await ready('churn-plain')), { timeoutMs: 60_000, intervalMs: 250 });
    const pagesOf = (id: string): Promise<number> =>
      settledStore(storeRoot, (store) => store.listCheckpoints().filter((c) => c.containerId === id).slice(-1)[0]?.pageCount ?? 0);
    const dumped: Record<string, number> = {};
    for (const id of ['churn-plain', 'churn-gc']) {
      const t = Date.now();
      await containerd.ctrOk(['containers', 'checkpoint', '--task', '--image', '--rw', id, `docker.io/library/${id}:1`]);
      const ms = Date.now() - t;
      dumped[id] = await pagesOf(id);
      show(`${id}: checkpoint in ${ms} ms, ${dumped[id]} pages dumped (${mib(dumped[id] * 4096)})`);
    }
    show(`with the hook: ${Math.round((1 - dumped['churn-gc'] / dumped['churn-plain']) * 100)}% fewer pages`);
    for (const id of ['churn-gc', 'churn-plain']) {
      await containerd.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitFor(async () => (await containerd!.taskStatus(id)) === 'STOPPED', { timeoutMs: 10_000 });
      await containerd.ctr(['task', 'rm', id]);
      await containerd.ctrOk(['container', 'rm', id]);
    }

    step('Done.');
  } finally {
    await containerd?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
