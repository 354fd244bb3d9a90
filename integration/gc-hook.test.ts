/**
 * The GC hook with real containers: Node.js and JVM containers that opt in (annotation
 * io.pageshare.gc) compact their heaps right before CRIU dumps them, so their checkpoints
 * hold fewer pages than the same app's without the hook; a restored container keeps the
 * agent and compacts again at its next checkpoint; an agent that never answers, and a
 * container with no managed runtime, do not block the checkpoint; a container that does not
 * opt in gets nothing.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, type Containerd } from './harness/containerd';
import { buildBusyboxImage, importImage } from './harness/image';
import { PAGESHARE_RUNTIME } from './harness/paths';
import { NODE_CHURN_APP, buildJavaAppImage, javaChurn, nodeImageBuilder } from './harness/runtime-images';
import { waitFor } from './harness/wait';
import { PageStore } from '../shim/store/page-store';

jest.setTimeout(300_000);

const NODE_IMAGE = 'docker.io/library/pstest-gc-node:latest';
const JVM_IMAGE = 'docker.io/library/pstest-gc-jvm:latest';
const BUSYBOX_IMAGE = 'docker.io/library/pstest-gc-busybox:latest';
const RT = ['--runtime', PAGESHARE_RUNTIME];
const NS = 'default';

// Loads the agent (NODE_OPTIONS), then blocks its event loop forever: the agent never answers.
const NODE_STUCK = `require('fs').writeFileSync('/tmp/ready', 'ready'); for (;;) {}`;

// Like the Node.js app (javaChurn), after 24 MiB kept for good. Run with -Xms16m: G1 never
// shrinks the heap below its initial size (without -Xms, 1/64 of RAM up to -Xmx, here all of
// it), and then the hook's GC runs but gives nothing back.
const JAVA_APP = `
public class Churn {
  public static void main(String[] a) throws Exception {
    java.util.List<byte[]> live = new java.util.ArrayList<>();
    for (int i = 0; i < 24; i++) live.add(new byte[1 << 20]);
${javaChurn(300)}
  }
}
`;

let workDir: string;
let storeRoot: string;
let gcRoot: string;
let containerd: Containerd;

async function waitReady(id: string): Promise<void> {
  await waitFor(async () => (await containerd.ctr(['task', 'exec', '--exec-id', `r${Date.now()}`, id, '/usr/bin/node', '-e', "process.stdout.write(require('fs').readFileSync('/tmp/ready','utf8'))"])).stdout.includes('ready'), {
    timeoutMs: 60_000,
    intervalMs: 250,
  });
}

/** Readiness for images without node: the file in the container's rootfs, from the host. */
async function waitReadyFile(id: string): Promise<void> {
  const pid = (await containerd.tasks()).find((t) => t.id === id)?.pid;
  if (pid === undefined) throw new Error(`${id} has no task`);
  await waitFor(() => fs.existsSync(`/proc/${pid}/root/tmp/ready`), { timeoutMs: 60_000, intervalMs: 250 });
}

/** PAGESHARE_TEST_FIGURES=1 prints the measured page counts (for notes; the assertions stand alone). */
function figure(text: string): void {
  if (process.env['PAGESHARE_TEST_FIGURES'] === '1') process.stdout.write(`${text}\n`);
}

async function checkpoint(id: string, ref: string): Promise<void> {
  await containerd.ctrOk(['containers', 'checkpoint', '--task', '--image', '--rw', id, ref]);
}

/** Pages the last checkpoint of a container dumped (as the store recorded them). */
async function pagesDumped(containerId: string): Promise<number> {
  const store = PageStore.open(storeRoot);
  try {
    await store.awaitPendingIngests(); // indexed just after the checkpoint call returns
    const mine = store.listCheckpoints().filter((c) => c.containerId === containerId);
    if (mine.length === 0) throw new Error(`no checkpoint of ${containerId} in the store`);
    return mine[mine.length - 1].pageCount;
  } finally {
    store.close();
  }
}

function acks(containerId: string): Array<{ id: string; ok: boolean; method: string }> {
  const dir = path.join(gcRoot, NS, containerId);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith('ack-'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { id: string; ok: boolean; method: string });
}

/** The shim's report of what the hook did at a container's last checkpoint. */
function lastGc(containerId: string): Array<{ runtime: string; ok: boolean; rssBeforeKiB?: number; rssAfterKiB?: number; detail: string }> {
  const file = path.join(gcRoot, NS, containerId, 'last-gc.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { outcomes: Array<{ runtime: string; ok: boolean; rssBeforeKiB?: number; rssAfterKiB?: number; detail: string }> }).outcomes;
}

function remove(id: string): Promise<void> {
  return containerd.removeContainer(id);
}

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'psgc-'));
  storeRoot = path.join(workDir, 'store');
  gcRoot = path.join(workDir, 'gc');
  const node = await nodeImageBuilder(NODE_IMAGE);
  node.builder.addContent('/app/app.js', NODE_CHURN_APP).addContent('/app/stuck.js', NODE_STUCK).setCmd(['/usr/bin/node', '/app/app.js']);
  await node.builder.build(path.join(workDir, 'node.tar'));
  await buildJavaAppImage(JVM_IMAGE, 'Churn', JAVA_APP, ['-Xms16m', '-Xmx256m'], workDir, path.join(workDir, 'jvm.tar'));
  await buildBusyboxImage(path.join(workDir, 'busybox.tar'), BUSYBOX_IMAGE);
  containerd = await startContainerd({ version: '1.7', env: { PAGESHARE_ROOT: storeRoot, PAGESHARE_GC_RUN_ROOT: gcRoot } });
  for (const tar of ['node.tar', 'jvm.tar', 'busybox.tar']) await importImage(containerd, path.join(workDir, tar));
});

afterAll(async () => {
  await containerd?.stop();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

it('compacts a Node.js heap before the dump: fewer pages than without the hook, and again after a restore', async () => {
  await containerd.ctrOk(['run', '-d', ...RT, '--annotation', 'io.pageshare.gc=node', NODE_IMAGE, 'node-gc']);
  await containerd.ctrOk(['run', '-d', ...RT, NODE_IMAGE, 'node-plain']);
  await waitReady('node-gc');
  await waitReady('node-plain');

  await checkpoint('node-gc', 'docker.io/library/node-gc:1');
  await checkpoint('node-plain', 'docker.io/library/node-plain:1');
  const withHook = await pagesDumped('node-gc');
  const without = await pagesDumped('node-plain');
  figure(`node: ${withHook} pages dumped with the hook, ${without} without; ${JSON.stringify(lastGc('node-gc'))}`);
  expect(lastGc('node-gc')).toEqual([expect.objectContaining({ runtime: 'node', ok: true })]);
  expect(acks('node-gc')).toEqual([expect.objectContaining({ ok: true })]);
  expect(acks('node-plain')).toEqual([]);
  expect(withHook).toBeLessThan(without * 0.75);
  // Both still run.
  expect(await containerd.taskStatus('node-gc')).toBe('RUNNING');
  expect(await containerd.taskStatus('node-plain')).toBe('RUNNING');

  await remove('node-gc');
  await containerd.ctrOk(['containers', 'restore', '--live', '--rw', 'node-gc-r', 'docker.io/library/node-gc:1']);
  expect(await containerd.taskStatus('node-gc-r')).toBe('RUNNING');
  const beat = async (): Promise<number> =>
    Number((await containerd.ctrOk(['task', 'exec', '--exec-id', `b${Date.now()}`, 'node-gc-r', '/usr/bin/node', '-e', "process.stdout.write(require('fs').readFileSync('/tmp/beat','utf8'))"])).stdout);
  const first = await beat();
  await waitFor(async () => (await beat()) > first, { timeoutMs: 20_000 });
  // The restored agent answers the next checkpoint, in the restored container's own dir.
  await checkpoint('node-gc-r', 'docker.io/library/node-gc-r:1');
  expect(acks('node-gc-r')).toEqual([expect.objectContaining({ ok: true })]);
  await remove('node-gc-r');
  await remove('node-plain');
  // A container's request dir goes with it.
  expect(fs.existsSync(path.join(gcRoot, NS, 'node-gc-r'))).toBe(false);
});

it('does not let an agent that never answers, or a container with no managed runtime, block the checkpoint', async () => {
  await containerd.ctrOk(['run', '-d', ...RT, '--annotation', 'io.pageshare.gc=auto', '--annotation', 'io.pageshare.gc.timeout-ms=1500', NODE_IMAGE, 'stuck', '/usr/bin/node', '/app/stuck.js']);
  await waitReadyFile('stuck');
  await checkpoint('stuck', 'docker.io/library/stuck:1');
  expect(acks('stuck')).toEqual([]);
  expect(await containerd.taskStatus('stuck')).toBe('RUNNING');
  await remove('stuck');

  await containerd.ctrOk(['run', '-d', ...RT, '--annotation', 'io.pageshare.gc=auto', BUSYBOX_IMAGE, 'plain-sh', 'sh', '-c', 'echo ready > /tmp/ready; sleep 600']);
  await waitReadyFile('plain-sh');
  await checkpoint('plain-sh', 'docker.io/library/plain-sh:1');
  expect(await containerd.taskStatus('plain-sh')).toBe('RUNNING');
  await remove('plain-sh');
});

it('leaves a container that does not opt in as it was: no mounts, no NODE_OPTIONS', async () => {
  await containerd.ctrOk(['run', '-d', ...RT, NODE_IMAGE, 'untouched']);
  await waitReady('untouched');
  const r = await containerd.ctrOk(['task', 'exec', '--exec-id', 'look', 'untouched', '/usr/bin/node', '-e', "process.stdout.write(JSON.stringify([process.env.NODE_OPTIONS ?? null, require('fs').existsSync('/.pageshare')]))"]);
  expect(JSON.parse(r.stdout)).toEqual([null, false]);
  await remove('untouched');
});

it('compacts a JVM heap through the attach mechanism: fewer pages than without the hook', async () => {
  await containerd.ctrOk(['run', '-d', ...RT, '--annotation', 'io.pageshare.gc=jvm', JVM_IMAGE, 'jvm-gc']);
  await containerd.ctrOk(['run', '-d', ...RT, JVM_IMAGE, 'jvm-plain']);
  await waitReadyFile('jvm-gc');
  await waitReadyFile('jvm-plain');
  await checkpoint('jvm-gc', 'docker.io/library/jvm-gc:1');
  await checkpoint('jvm-plain', 'docker.io/library/jvm-plain:1');
  const withHook = await pagesDumped('jvm-gc');
  const without = await pagesDumped('jvm-plain');
  const [jvm] = lastGc('jvm-gc');
  figure(`jvm: ${withHook} pages dumped with the hook, ${without} without; ${JSON.stringify(jvm)}`);
  // The JVM ran GC.run through the attach mechanism and answered (ok), gave memory back while
  // the shim held the container frozen (RSS as the shim saw it: 158-165 → 71-73 MiB in our
  // runs), and its dump is smaller than the same app's without the hook (12.6-13.1k pages
  // against 34-37k).
  expect(jvm).toMatchObject({ runtime: 'jvm', ok: true });
  expect(jvm.detail).toContain('GC.run');
  expect(jvm.detail).toContain('held frozen until the release');
  expect(jvm.rssAfterKiB!).toBeLessThan(jvm.rssBeforeKiB!);
  expect(withHook).toBeLessThan(without);
  expect(await containerd.taskStatus('jvm-gc')).toBe('RUNNING');
  await remove('jvm-gc');
  // The hook asked where the Java heap is; the restore (map mode: the program is java) maps
  // the committed heap from the page-cache file, and the churning JVM runs on over it.
  expect(jvm.detail).toMatch(/heap [0-9a-f]+-[0-9a-f]+/);
  await containerd.ctrOk(['containers', 'restore', '--live', '--rw', 'jvm-gc-r', 'docker.io/library/jvm-gc:1']);
  const restoredPid = (await containerd.tasks()).find((t) => t.id === 'jvm-gc-r')?.pid;
  const mapped = fs
    .readFileSync(`/proc/${restoredPid}/maps`, 'utf8')
    .split('\n')
    .filter((l) => l.includes('/.pageshare-pages/'));
  figure(`jvm restored in map mode: ${mapped.length} mappings of the page-cache file`);
  expect(mapped.length).toBeGreaterThan(0);
  await new Promise((r) => setTimeout(r, 2000));
  expect(await containerd.taskStatus('jvm-gc-r')).toBe('RUNNING');
  await remove('jvm-gc-r');
  await remove('jvm-plain');
});
