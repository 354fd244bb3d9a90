/**
 * The GC hook's effect, in one run on one containerd: a Node.js app and a JVM app that churn
 * garbage, each checkpointed and restored on pageshare with the hook (annotation
 * io.pageshare.gc) and without it. Per variant (median of ROUNDS fresh containers): pages
 * dumped, bytes the checkpoint needs in the store (its distinct pages), checkpoint time,
 * restore time (`ctr containers restore` spawn to exit), and the restored process's minor and
 * major page faults (/proc/PID/stat) from the restore to its first request, and over its
 * first 100 requests (lines over the app's unix socket, one client connection). Page cache warm (nothing is dropped). Goal: at least 40%
 * fewer pages dumped with the hook, for both apps, and restore no slower.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, type Containerd } from '../integration/harness/containerd';
import { importImage } from '../integration/harness/image';
import { PAGESHARE_RUNTIME } from '../integration/harness/paths';
import { buildJavaAppImage, javaChurn, nodeChurn, nodeImageBuilder } from '../integration/harness/runtime-images';
import { waitFor } from '../integration/harness/wait';
import { PageStore } from '../shim/store/page-store';
import {
  faultsBetween,
  fmt,
  formatTable,
  JAVA_REQUEST_SERVER_IMPORTS,
  javaRequestServer,
  machineInfo,
  median,
  nodeRequestServerJs,
  onInterrupt,
  readFaults,
  sendRequests,
  timedCtr,
  writeResult,
  type BenchModule,
  type BenchReport,
  type Faults,
} from './common';

const NAMESPACE = 'gc-bench';
const ROUNDS = Number(process.env['BENCH_GC_ROUNDS'] ?? 3);
const REQUESTS = 100;
const NODE_IMAGE = 'docker.io/library/gcb-node:latest';
const JVM_IMAGE = 'docker.io/library/gcb-jvm:latest';

// Both apps: ~48 MiB of records kept for good, the harness's churn (garbage that reaches the
// old space), and a server on the unix socket /tmp/app.sock (CRIU 4.1.1 cannot dump TCP
// sockets on this kernel: SO_PASSCRED is refused) answering each line with a sum over 2000
// random records, so a restored process faults pages in.
const NODE_APP = `
const net = require('net');
const records = [];
for (let i = 0; i < 200000; i++) records.push({ id: i, name: 'record-' + i, values: [i, i * 2, i * 3, i * 4] });
${nodeChurn(500)}
${nodeRequestServerJs('/tmp/app.sock', 'const r = records[(Math.random() * records.length) | 0]; sum += r.values[1] + r.name.length;')}`;

const JAVA_APP = `
${JAVA_REQUEST_SERVER_IMPORTS}import java.util.concurrent.ThreadLocalRandom;

public class App {
  static final int[][] records = new int[200000][];

  static long answer() {
    long sum = 0;
    for (int k = 0; k < 2000; k++) sum += records[ThreadLocalRandom.current().nextInt(records.length)][1];
    return sum;
  }
${javaRequestServer('/tmp/app.sock')}
  public static void main(String[] a) throws Exception {
    for (int i = 0; i < records.length; i++) {
      records[i] = new int[54];
      for (int j = 0; j < 54; j++) records[i][j] = i * (j + 1);
    }
    startServer();
${javaChurn(500)}
  }
}
`;

type AppKind = 'node' | 'jvm';

interface Variant {
  readonly app: AppKind;
  readonly hook: boolean;
}

interface Sample {
  readonly checkpointMs: number;
  readonly pagesDumped: number;
  readonly distinctPages: number;
  readonly restoreMs: number;
  /** Faults of the restored process from its restore until the first request. */
  readonly faultsAtRestore: Faults;
  /** Faults during its first REQUESTS requests. */
  readonly faultsRequests: Faults;
  readonly requestsMs: number;
  readonly gc?: unknown;
}

class GcLab {
  constructor(
    private readonly containerd: Containerd,
    private readonly storeRoot: string,
    private readonly gcRoot: string,
  ) {}

  private ctr(args: readonly string[]): Promise<unknown> {
    return this.containerd.ctrOk(args, { namespace: NAMESPACE });
  }

  private async pidOf(id: string): Promise<number> {
    const task = (await this.containerd.tasks(NAMESPACE)).find((t) => t.id === id);
    if (task === undefined) throw new Error(`${id} has no task`);
    return task.pid;
  }

  private remove(id: string): Promise<void> {
    return this.containerd.removeContainer(id, NAMESPACE);
  }

  async round(v: Variant, round: number): Promise<Sample> {
    const id = `gcb-${v.app}-${v.hook ? 'hook' : 'plain'}-${round}`;
    const ref = `docker.io/library/${id}:1`;
    const annotation = v.hook ? ['--annotation', `io.pageshare.gc=${v.app}`] : [];
    await this.ctr(['run', '-d', '--runtime', PAGESHARE_RUNTIME, ...annotation, v.app === 'node' ? NODE_IMAGE : JVM_IMAGE, id]);
    const pid = await this.pidOf(id);
    await waitFor(() => fs.existsSync(`/proc/${pid}/root/tmp/ready`), { timeoutMs: 120_000, intervalMs: 100 });
    const ck = await timedCtr(this.containerd, NAMESPACE, ['containers', 'checkpoint', '--task', '--image', '--rw', id, ref]);
    if (ck.code !== 0) throw new Error(`checkpoint of ${id}: ${ck.stderr}`);
    const gcFile = path.join(this.gcRoot, NAMESPACE, id, 'last-gc.json');
    const gc = fs.existsSync(gcFile) ? (JSON.parse(fs.readFileSync(gcFile, 'utf8')) as unknown) : undefined;
    const store = PageStore.open(this.storeRoot);
    let record;
    try {
      await store.awaitPendingIngests();
      record = store.listCheckpoints().filter((c) => c.containerId === id).pop();
    } finally {
      store.close();
    }
    if (record === undefined) throw new Error(`no checkpoint of ${id} in the store`);
    await this.remove(id);
    const restored = `${id}-r`;
    const rs = await timedCtr(this.containerd, NAMESPACE, ['containers', 'restore', '--live', '--rw', restored, ref]);
    if (rs.code !== 0) throw new Error(`restore of ${id}: ${rs.stderr}`);
    const rpid = await this.pidOf(restored);
    const atRestore = readFaults(rpid);
    // The socket is a file in the container's filesystem: reachable from here.
    const requestsMs = await sendRequests(`/proc/${rpid}/root/tmp/app.sock`, REQUESTS);
    const after = readFaults(rpid);
    await this.remove(restored);
    await this.ctr(['images', 'rm', ref]);
    return {
      checkpointMs: ck.ms,
      pagesDumped: record.pageCount,
      distinctPages: record.uniquePages,
      restoreMs: rs.ms,
      faultsAtRestore: atRestore,
      faultsRequests: faultsBetween(atRestore, after),
      requestsMs,
      gc,
    };
  }
}

async function buildImages(workDir: string): Promise<void> {
  const node = await nodeImageBuilder(NODE_IMAGE);
  node.builder.addContent('/app/app.js', NODE_APP).setCmd(['/usr/bin/node', '/app/app.js']);
  await node.builder.build(path.join(workDir, 'node.tar'));
  await buildJavaAppImage(JVM_IMAGE, 'App', JAVA_APP, ['-Xms16m', '-Xmx512m'], workDir, path.join(workDir, 'jvm.tar'));
}

async function run(): Promise<BenchReport> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gcbench-'));
  const storeRoot = path.join(workDir, 'store');
  const gcRoot = path.join(workDir, 'gc');
  let containerd: Containerd | undefined;
  const unregister = onInterrupt(async () => {
    await containerd?.stop();
    fs.rmSync(workDir, { recursive: true, force: true });
  });
  const started = Date.now();
  try {
    await buildImages(workDir);
    containerd = await startContainerd({ version: '1.7', env: { PAGESHARE_ROOT: storeRoot, PAGESHARE_GC_RUN_ROOT: gcRoot } });
    for (const tar of ['node.tar', 'jvm.tar']) await importImage(containerd, path.join(workDir, tar), { namespace: NAMESPACE });
    const lab = new GcLab(containerd, storeRoot, gcRoot);
    const variants: Variant[] = [
      { app: 'node', hook: false },
      { app: 'node', hook: true },
      { app: 'jvm', hook: false },
      { app: 'jvm', hook: true },
    ];
    const samples = new Map<string, Sample[]>();
    // Rounds interleave the variants, so that drift in the machine hits them alike.
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of variants) {
        const key = `${v.app}/${v.hook ? 'hook' : 'plain'}`;
        process.stderr.write(`  ${key} round ${round + 1}/${ROUNDS}\n`);
        samples.set(key, [...(samples.get(key) ?? []), await lab.round(v, round)]);
      }
    }
    const med = (key: string, pick: (s: Sample) => number): number => median((samples.get(key) ?? []).map(pick));
    const metrics: Array<[string, string, (s: Sample) => number, number]> = [
      ['pages dumped', 'pages', (s) => s.pagesDumped, 0],
      ['bytes the checkpoint needs in the store', 'MiB', (s) => (s.distinctPages * 4096) / 1048576, 1],
      ['checkpoint (ctr containers checkpoint)', 'ms', (s) => s.checkpointMs, 0],
      ['restore (ctr containers restore --live)', 'ms', (s) => s.restoreMs, 0],
      ['restored process: minflt, restore to first request', 'faults', (s) => s.faultsAtRestore.minflt, 0],
      ['restored process: majflt, restore to first request', 'faults', (s) => s.faultsAtRestore.majflt, 0],
      [`restored process: minflt over its first ${REQUESTS} requests`, 'faults', (s) => s.faultsRequests.minflt, 0],
      [`restored process: majflt over its first ${REQUESTS} requests`, 'faults', (s) => s.faultsRequests.majflt, 0],
      [`its first ${REQUESTS} requests`, 'ms', (s) => s.requestsMs, 0],
    ];
    const rows: string[][] = [];
    const summary: Record<string, Record<string, { plain: number; hook: number; ratio: number }>> = {};
    for (const app of ['node', 'jvm'] as const) {
      summary[app] = {};
      for (const [label, unit, pick, digits] of metrics) {
        const plain = med(`${app}/plain`, pick);
        const hook = med(`${app}/hook`, pick);
        const ratio = plain > 0 ? hook / plain : NaN;
        summary[app][label] = { plain, hook, ratio };
        rows.push([`${app === 'node' ? 'Node.js' : 'JVM'}: ${label} (median, n=${ROUNDS})`, unit, fmt(plain, digits), fmt(hook, digits), Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '-']);
      }
    }
    const goals = (['node', 'jvm'] as const).flatMap((app) => [
      { metric: `${app}: pages dumped, hook/plain`, goal: '<= 0.60', value: summary[app]['pages dumped'].ratio, met: summary[app]['pages dumped'].ratio <= 0.6 },
      { metric: `${app}: restore time, hook/plain`, goal: '<= 1.00', value: summary[app]['restore (ctr containers restore --live)'].ratio, met: summary[app]['restore (ctr containers restore --live)'].ratio <= 1.0 },
    ]);
    const table = [
      formatTable(['gc hook', 'unit', 'without', 'with hook', 'with/without'], rows),
      '',
      ...goals.map((g) => `goal ${g.metric} ${g.goal}: ${g.value.toFixed(2)} ${g.met ? 'met' : 'NOT met'}`),
      '',
      'Apps: ~48 MiB of records kept, ~1 MiB a round (every 5-10 ms) kept 30 rounds then dropped; a unix-socket server,',
      '  each request reads 2000 random records. JVM: G1, -Xms16m -Xmx512m. Each round: a fresh container, checkpoint, kill,',
      '  restore, 100 requests. Faults from /proc/PID/stat of the restored process; page cache warm.',
    ].join('\n');
    const resultFile = writeResult('gc', {
      benchmark: 'gc',
      timestamp: new Date().toISOString(),
      durationMs: Date.now() - started,
      machine: await machineInfo(containerd),
      config: { rounds: ROUNDS, requests: REQUESTS, namespace: NAMESPACE },
      samples: Object.fromEntries(samples),
      summary,
      goals,
    });
    return { table, resultFile };
  } finally {
    unregister();
    await containerd?.stop();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

export const gc: BenchModule = { name: 'gc', run };
