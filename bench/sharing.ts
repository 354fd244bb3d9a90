/**
 * Sharing benchmark: N replicas restored from one checkpoint, on the stock
 * containerd-shim-runc-v2 (io.containerd.runc.v2) and on pageshare in map mode (annotation
 * io.pageshare.restore=map: replicas map their V8 heap privately from one page-cache file),
 * side by side on ONE private containerd 1.7, in one run.
 *
 * Per runtime and app: one source container (the Node.js app of the checkpoint benchmark,
 * ~200 MB of live heap, with a request server on a unix socket; the GC hook off, so both
 * runtimes dump the same heap) is checkpointed (`ctr containers checkpoint --task --image
 * --rw`) and removed; then batches of N replicas are restored from that checkpoint one after
 * the other (`ctr containers restore --live --rw`), N = 1, 4 and 8, page cache warm, N = 4
 * again with `sync; echo 3 > /proc/sys/vm/drop_caches` before each restore (cold), and N = 4
 * warm with the 4 ctr commands started at the same moment (concurrent; runc.v2 puts every
 * replica into the dumped container's cgroup, and a restore may fail there: failures are told
 * per replica, not hidden). Per batch: the restore times (each ctr command; all N: sum and
 * wall), the PSS of the N replicas (smaps_rollup: Pss, Pss_Anon, Pss_File) right after the
 * last restore, the growth of the system's AnonPages (/proc/meminfo) over the batch, each
 * replica's minflt and majflt (/proc/PID/stat) right after its restore and over its first 100
 * requests. The warm N = 4 batch then serves 20 requests a second per replica for 60 s and is
 * measured again. The same Node.js app with all its data in V8's heap (plain arrays for its
 * Float64Arrays, whose elements are malloc'd outside the heap and not mapped) is restored at
 * N = 4, warm, one after the other; goals are not read on it. A JVM app (with the GC hook off
 * pageshare does not map HotSpot's heap) is restored at N = 4, warm; then again with pageshare's
 * source container on io.pageshare.gc=jvm (the shim compacts the heap before the dump and learns
 * its range, and the map-mode restore maps it), stock's JVM checkpoint restored once more.
 *
 * Batches interleave the runtimes (which goes first alternates). PAGESHARE_BENCH_QUICK=1:
 * N = 1 and 2 (the concurrent and V8-heap-only batches at N = 2), 10 s of requests, a 64 MB
 * heap, no JVM. Only measures and prints; writes bench/results/sharing.json.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startContainerd, type Containerd } from '../integration/harness/containerd';
import { importImage } from '../integration/harness/image';
import { PAGESHARE_RUNTIME, RUNC_RUNTIME } from '../integration/harness/paths';
import { run } from '../integration/harness/process';
import { buildJavaAppImage, nodeImageBuilder } from '../integration/harness/runtime-images';
import { sleep, WaitAbortedError, waitFor } from '../integration/harness/wait';
import { GC_ANNOTATION } from '../shim/gc/gc-spec';
import { PAGE_CACHE_MOUNT, pageCacheDir, RESTORE_ANNOTATION } from '../shim/map-restore/map-spec';
import {
  addMemory,
  cmdline,
  describeSource,
  faultsBetween,
  fmt,
  fmtRatio,
  formatTable,
  heapAppJs,
  JAVA_REQUEST_SERVER_IMPORTS,
  javaRequestServer,
  listDir,
  machineInfo,
  makeBenchDirs,
  median,
  MiB,
  nodeRequestServerJs,
  onInterrupt,
  pageshareServerLog,
  parentPid,
  processAlive,
  ratio,
  readFaults,
  readKbFields,
  readMemory,
  runcNamespaceDirCleanup,
  sendRequests,
  settleStore,
  sourceVersion,
  timedCtr,
  writeResult,
  zeroMemory,
  type BenchModule,
  type BenchReport,
  type Faults,
  type Memory,
  type RuntimeDef,
  type RuntimeKey,
  type TimedResult,
} from './common';

const NAMESPACE = 'sharing-bench';
const QUICK = process.env['PAGESHARE_BENCH_QUICK'] === '1';

interface Plan {
  /** Replica counts of the warm Node.js batches, in order. */
  readonly batchSizes: readonly number[];
  /** The batch restored again with a cold page cache, kept under steady requests, and of the JVM. */
  readonly focusN: number;
  /** How long the focus batch serves steady requests before its PSS is read again. */
  readonly steadyMs: number;
  readonly heapMb: number;
  readonly jvm: boolean;
}

const PLAN: Plan = QUICK
  ? { batchSizes: [1, 2], focusN: 2, steadyMs: 10_000, heapMb: 64, jvm: false }
  : { batchSizes: [1, 4, 8], focusN: 4, steadyMs: 60_000, heapMb: 200, jvm: true };
/** Requests per replica whose faults are counted after the restores. */
const REQUESTS = 100;
/** Steady requests per second and replica. */
const STEADY_RATE = 20;
/** After the app reports its data built, before the checkpoint. */
const SETTLE_MS = 1000;
const SOCKET = '/tmp/app.sock';
const JVM_HEAP_MB = 200;
const JVM_OPTIONS: readonly string[] = ['-Xms16m', '-Xmx768m', `-Dapp.heapMb=${JVM_HEAP_MB}`];

const RUNTIMES: readonly RuntimeDef[] = [
  { key: 'stock', runtime: RUNC_RUNTIME, label: 'runc.v2 (stock)' },
  { key: 'pageshare', runtime: PAGESHARE_RUNTIME, label: 'pageshare (map)' },
];
/**
 * pageshare's GC hook on its source containers: off (both runtimes dump the same heap), or jvm
 * (the shim runs a GC in the JVM before the dump and asks it where the Java heap is, which a
 * map-mode restore needs to map that heap). Stock has no hook.
 */
type PageshareGc = 'off' | 'jvm';

/** pageshare's source containers (and so their restores, whose spec comes from the checkpoint). */
function pageshareAnnotations(gc: PageshareGc): readonly string[] {
  return ['--annotation', `${RESTORE_ANNOTATION}=map`, '--annotation', `${GC_ANNOTATION}=${gc}`];
}
const PAGESHARE_ANNOTATIONS = pageshareAnnotations('off');

function log(message: string): void {
  process.stderr.write(`[sharing] ${message}\n`);
}

// ---------------------------------------------------------------------------------------
// The apps

/** node-heap: the Node.js app with all its data in V8's heap (see NODE_HEAP_APP). */
type AppKind = 'node' | 'node-heap' | 'node-tiny' | 'jvm';

/**
 * The same Node.js app holding ~8 MB of data (its heap-building loop runs a few rounds, so
 * requests find data): what a restore costs with almost no memory to
 * bring back (containerd, runc, CRIU, Node's own ~40 MB), the floor under any gain on memory.
 */
const TINY_HEAP_MB = 8;

const IMAGES: Record<AppKind, string> = {
  node: 'docker.io/library/share-node:latest',
  'node-heap': 'docker.io/library/share-node-heap:latest',
  'node-tiny': 'docker.io/library/share-node-tiny:latest',
  jvm: 'docker.io/library/share-jvm:latest',
};

const APP_TITLES: Record<AppKind, string> = { node: 'Node.js', 'node-heap': 'Node.js, V8 heap only', 'node-tiny': `Node.js, ${TINY_HEAP_MB} MB of data (the floor)`, jvm: 'JVM' };

/** One request: 2000 random reads of records, texts and Float64Arrays (plain arrays in NODE_HEAP_APP) of the heap app's data. */
const NODE_LOOKUP =
  'const r = data.records[(Math.random() * data.records.length) | 0]; ' +
  'const m = data.matrices[(Math.random() * data.matrices.length) | 0]; ' +
  'sum += r.score + r.name.length + r.tags[1].length + data.texts[(Math.random() * data.texts.length) | 0].length + m[k * 8];';

const NODE_SERVER = `const net = require('net');\n${nodeRequestServerJs(SOCKET, NODE_LOOKUP)}`;
const NODE_APP = heapAppJs(PLAN.heapMb, NODE_SERVER);
/**
 * The same app and data with every byte of it in V8's heap: plain arrays of numbers where
 * NODE_APP has Float64Arrays, whose elements are malloc'd outside the heap, and so not mapped
 * by pageshare.
 */
const NODE_HEAP_APP = heapAppJs(PLAN.heapMb, NODE_SERVER, { v8HeapOnly: true });

/**
 * ~200 MB of live records (an int[48] each, a ~30-character name for every other one), a
 * request server on the unix socket answering each line with a sum over 2000 random records,
 * and a small hot part mutated every 100 ms. Writes /tmp/ready once it serves.
 */
const JVM_APP = `
${JAVA_REQUEST_SERVER_IMPORTS}import java.util.concurrent.ThreadLocalRandom;

public class SharingApp {
  static int[][] records;
  static String[] names;
  static final long[] hot = new long[20000];

  static long answer() {
    ThreadLocalRandom rnd = ThreadLocalRandom.current();
    long sum = 0;
    for (int k = 0; k < 2000; k++) {
      int i = rnd.nextInt(records.length);
      sum += records[i][k % 48] + names[i / 2].length();
    }
    return sum;
  }
${javaRequestServer(SOCKET)}
  public static void main(String[] args) throws Exception {
    long target = Long.getLong("app.heapMb", 200) << 20;
    int count = (int) (target / 248);
    records = new int[count][];
    names = new String[(count + 1) / 2];
    for (int i = 0; i < count; i++) {
      int[] r = new int[48];
      for (int j = 0; j < 48; j++) r[j] = i * 31 + j;
      records[i] = r;
      if (i % 2 == 0) names[i / 2] = "record-" + i + "-" + Long.toHexString(i * 0x9E3779B97F4A7C15L);
    }
    System.gc();
    startServer();
    Runtime rt = Runtime.getRuntime();
    Files.writeString(Path.of("/tmp/ready"), "{\\"records\\":" + count + ",\\"heapUsed\\":" + (rt.totalMemory() - rt.freeMemory()) + "}\\n");
    for (long touches = 0; ; touches++) {
      for (int i = (int) (touches % 50); i < hot.length; i += 50) hot[i] = hot[i] * 31 + touches;
      Thread.sleep(100);
    }
  }
}
`;

const NODE_COMMAND: readonly string[] = ['/usr/bin/node', '--expose-gc', '/app/app.js'];

async function buildNodeImage(app: 'node' | 'node-heap' | 'node-tiny', source: string, workDir: string, heapMb = PLAN.heapMb): Promise<void> {
  const node = await nodeImageBuilder(IMAGES[app]);
  node.builder.addContent('/app/app.js', source);
  node.builder.setCmd([...NODE_COMMAND]);
  node.builder.setEnv(['PATH=/usr/bin:/bin', `BC_HEAP_MB=${heapMb}`]);
  await node.builder.build(path.join(workDir, `${app}.tar`));
}

async function buildImages(workDir: string): Promise<void> {
  await buildNodeImage('node', NODE_APP, workDir);
  await buildNodeImage('node-heap', NODE_HEAP_APP, workDir);
  await buildNodeImage('node-tiny', NODE_APP, workDir, TINY_HEAP_MB);
  if (PLAN.jvm) await buildJavaAppImage(IMAGES.jvm, 'SharingApp', JVM_APP, JVM_OPTIONS, workDir, path.join(workDir, 'jvm.tar'));
}

// ---------------------------------------------------------------------------------------
// The system

/** The /proc/meminfo fields the benchmark reads, in bytes. */
interface Meminfo {
  anonPages: number;
  cached: number;
  memAvailable: number;
}

function readMeminfo(): Meminfo {
  const kb = readKbFields('/proc/meminfo');
  return { anonPages: kb.get('AnonPages') ?? NaN, cached: kb.get('Cached') ?? NaN, memAvailable: kb.get('MemAvailable') ?? NaN };
}

/** `sync; echo 3 > /proc/sys/vm/drop_caches`; resolves with the ms it took. */
async function dropCaches(): Promise<number> {
  const started = performance.now();
  await run('sync', [], { timeoutMs: 120_000 });
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  return performance.now() - started;
}

/**
 * Did ctr fail because its stdio fifo dir (/run/containerd/fifo/N) vanished before it opened
 * the fifos? The harness's Containerd.stop() removes every fifo dir that appeared while it
 * ran, those of other containerds running at the same time included (tests running
 * alongside the benchmark); such an attempt restored nothing and is made again.
 */
function lostFifoDir(stderr: string): boolean {
  return /failed to open std\w+ fifo \/run\/containerd\/fifo\/.*no such file or directory/.test(stderr);
}

/** The VMAs of a process that map a file under the page-cache mount. */
function mappedVmas(pid: number): number {
  try {
    return fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => l.includes(`${PAGE_CACHE_MOUNT}/`)).length;
  } catch {
    return 0;
  }
}

interface SteadyResult {
  durationMs: number;
  /** Per replica: answers received, ticks skipped because the previous request was still out. */
  answered: number[];
  skipped: number[];
  errors: string[];
}

/**
 * One connection per socket, a request every 1000/perSecond ms on each while the previous one
 * was answered (otherwise the tick is skipped), for durationMs.
 */
function steadyRequests(sockets: readonly string[], perSecond: number, durationMs: number): Promise<SteadyResult> {
  const started = performance.now();
  const answered = sockets.map(() => 0);
  const skipped = sockets.map(() => 0);
  const errors: string[] = [];
  const clients = sockets.map((socket, i) => {
    let outstanding = true;
    let buf = '';
    const c = net.connect(socket, () => c.write('q\n'));
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      buf += d;
      for (let at = buf.indexOf('\n'); at >= 0; at = buf.indexOf('\n')) {
        buf = buf.slice(at + 1);
        answered[i] = (answered[i] ?? 0) + 1;
        outstanding = false;
      }
    });
    c.on('error', (err) => errors.push(`${socket}: ${err.message}`));
    const timer = setInterval(() => {
      if (outstanding) skipped[i] = (skipped[i] ?? 0) + 1;
      else {
        outstanding = true;
        c.write('q\n');
      }
    }, 1000 / perSecond);
    return { c, timer };
  });
  return sleep(durationMs).then(() => {
    for (const { c, timer } of clients) {
      clearInterval(timer);
      c.destroy();
    }
    return { durationMs: performance.now() - started, answered, skipped, errors };
  });
}

// ---------------------------------------------------------------------------------------
// Samples

type Cache = 'warm' | 'cold';
/** sequential: each restore once the previous replica's pid is known; concurrent: all N ctr commands started at once. */
type RestoreMode = 'sequential' | 'concurrent';

interface BatchKind {
  app: AppKind;
  /** The GC hook of pageshare's source container, whose checkpoint pageshare restores. */
  pageshareGc: PageshareGc;
  n: number;
  cache: Cache;
  mode: RestoreMode;
  /** Steady requests after the first ones, then PSS again (the focus batch only). */
  steadyMs: number | undefined;
}

interface ReplicaSample {
  id: string;
  pid: number;
  restoreMs: number;
  /** From ctr's exit until `ctr task ls` gave the pid (the app runs meanwhile). */
  pidLookupMs: number;
  /** Read once the pid was known: the faults of the restore itself (and of those few ms). */
  faultsAtRestore: Faults;
  /** Earlier attempts that failed before restoring anything: ctr's fifo dir was gone (see lostFifoDir). */
  lostFifos: string[];
  mappedVmas: number;
  memoryAfterRestores: Memory;
  requests: { ms: number; faults: Faults } | { error: string };
}

/** A replica that was not restored: its ctr exited non-zero (after the lost-fifo attempts), or its task never ran. */
interface RestoreFailure {
  id: string;
  /** The ctr command's time, spawn to exit. */
  ms: number;
  error: string;
  lostFifos: string[];
}

interface SteadySample extends SteadyResult {
  ratePerSecond: number;
  memory: Memory[];
  total: Memory;
  meminfo: Meminfo;
  faults: Faults[];
}

interface BatchSample {
  runtime: RuntimeKey;
  app: AppKind;
  /** The batch's pageshareGc (a stock batch restores stock's one checkpoint of the app either way). */
  pageshareGc: PageshareGc;
  n: number;
  cache: Cache;
  mode: RestoreMode;
  /** This batch restored the checkpoint for the first time (pageshare writes the page-cache file then). */
  firstRestoreOfCheckpoint: boolean;
  /** The replicas restored (in the order of their ids). */
  replicas: ReplicaSample[];
  /** The replicas not restored; any makes the batch fail. */
  restoreFailures: RestoreFailure[];
  sumMs: number;
  /** First ctr spawn to last ctr exit, the cache drops between excluded. */
  wallMs: number;
  cacheDropMs: number[];
  meminfoBefore: Meminfo;
  meminfoAfter: Meminfo;
  total: Memory;
  /** The shim processes whose children the replicas are (one server for pageshare, one shim each for runc.v2). */
  shims: Array<{ pid: number; cmd: string; memory: Memory }>;
  steady?: SteadySample;
  /** 1, or 2 when the first attempt at this batch failed. */
  attempt: number;
  error?: string;
  /** On an error: each restored replica's process and task, and containerd's log lines naming it. */
  replicaStates?: string[];
}

interface CheckpointSample {
  runtime: RuntimeKey;
  app: AppKind;
  /** What the source container ran with (`ctr run` arguments). */
  annotations: readonly string[];
  ref: string;
  ready: unknown;
  memoryAtCheckpoint: Memory | undefined;
  checkpointMs: number;
  error?: string;
}

/** One replica's restore command, after the attempts that lost ctr's fifo dir. */
interface Restore {
  result: TimedResult;
  lostFifos: string[];
  exitedAt: number;
}

function restoreFailure(id: string, ref: string, restore: Restore): RestoreFailure {
  const { result, lostFifos } = restore;
  // ctr's and runc's messages run over several lines; one line each in the notes.
  const stderr = result.stderr.trim().replace(/\s*\n\s*/g, ' | ');
  return { id, ms: result.ms, error: `ctr containers restore --live --rw ${id} ${ref} exited ${result.code}: ${stderr}`, lostFifos };
}

// ---------------------------------------------------------------------------------------
// The lab: containers of this run

class SharingLab {
  private readonly tag = crypto.randomBytes(3).toString('hex');
  /** How many batches restored each checkpoint so far. */
  private readonly restoresOf = new Map<string, number>();

  constructor(
    private readonly containerd: Containerd,
    private readonly storeRoot: string,
    private readonly ctdDir: string,
  ) {}

  id(name: string): string {
    return `sh-${this.tag}-${name}`;
  }

  private async runningPid(id: string): Promise<number> {
    return waitFor(`${id} RUNNING`, async () => {
      const t = (await this.containerd.tasks(NAMESPACE)).find((x) => x.id === id);
      return t?.status === 'RUNNING' ? t.pid : undefined;
    }, { timeoutMs: 20_000, intervalMs: 20 });
  }

  /**
   * An idle container on pageshare for the whole run: without one, the namespace's shim
   * server exits 2 s after its last container goes, and the first restore of the next batch
   * would start it again (a host running containers has it up).
   */
  async keepPageshareServerUp(): Promise<void> {
    const id = this.id('server-keeper');
    await this.containerd.ctrOk(['run', '-d', '--runtime', PAGESHARE_RUNTIME, IMAGES.node, id, '/usr/bin/node', '-e', 'setInterval(() => {}, 1 << 30)'], {
      namespace: NAMESPACE,
    });
    await this.runningPid(id);
  }

  /** Runs the app (pageshare's with the GC hook `gc`), waits until it serves, checkpoints it and removes it. */
  async checkpoint(def: RuntimeDef, app: AppKind, gc: PageshareGc): Promise<CheckpointSample> {
    const annotations = def.key === 'pageshare' ? pageshareAnnotations(gc) : [];
    const id = this.id(`${app}-${def.key}${def.key === 'pageshare' && gc !== 'off' ? `-gc${gc}` : ''}-src`);
    const ref = `docker.io/library/${id}:1`;
    const sample: CheckpointSample = { runtime: def.key, app, annotations, ref, ready: undefined, memoryAtCheckpoint: undefined, checkpointMs: NaN };
    try {
      await this.containerd.ctrOk(['run', '-d', '--runtime', def.runtime, ...annotations, IMAGES[app], id], { namespace: NAMESPACE });
      const pid = await this.runningPid(id);
      sample.ready = await waitFor(`${id} serving (/tmp/ready and ${SOCKET})`, () => {
        if (!processAlive(pid)) throw new WaitAbortedError(`${id}: init ${pid} exited before it served`);
        if (!fs.existsSync(`/proc/${pid}/root${SOCKET}`)) return undefined;
        try {
          return JSON.parse(fs.readFileSync(`/proc/${pid}/root/tmp/ready`, 'utf8')) as unknown;
        } catch {
          return undefined;
        }
      }, { timeoutMs: 180_000, intervalMs: 100 });
      await sleep(SETTLE_MS);
      sample.memoryAtCheckpoint = readMemory(pid);
      const ck = await timedCtr(this.containerd, NAMESPACE, ['containers', 'checkpoint', '--task', '--image', '--rw', id, ref]);
      if (ck.code !== 0) throw new Error(`ctr containers checkpoint ${id} ${ref} exited ${ck.code}: ${ck.stderr.trim()}`);
      sample.checkpointMs = ck.ms;
      if (def.key === 'pageshare') await settleStore(this.storeRoot);
    } catch (err) {
      sample.error = err instanceof Error ? err.message : String(err);
    } finally {
      await this.containerd.removeContainer(id, NAMESPACE);
    }
    return sample;
  }

  /** Restores kind.n replicas of `ref` (one after the other, or all at once), measures them, and removes them. */
  async batch(def: RuntimeDef, ref: string, kind: BatchKind, attempt: number): Promise<BatchSample> {
    const mode = kind.mode === 'concurrent' ? '-concurrent' : '';
    const gc = kind.pageshareGc === 'off' ? '' : `-gc${kind.pageshareGc}`;
    const ids = Array.from({ length: kind.n }, (_, i) => this.id(`${kind.app}${gc}-${def.key}-n${kind.n}-${kind.cache}${mode}-a${attempt}-${i}`));
    const previous = this.restoresOf.get(ref) ?? 0;
    this.restoresOf.set(ref, previous + 1);
    const sample: BatchSample = {
      runtime: def.key,
      app: kind.app,
      pageshareGc: kind.pageshareGc,
      n: kind.n,
      cache: kind.cache,
      mode: kind.mode,
      firstRestoreOfCheckpoint: previous === 0,
      replicas: [],
      restoreFailures: [],
      sumMs: NaN,
      wallMs: NaN,
      cacheDropMs: [],
      meminfoBefore: readMeminfo(),
      meminfoAfter: readMeminfo(),
      total: zeroMemory(),
      shims: [],
      attempt,
    };
    try {
      if (kind.mode === 'concurrent') await this.restoreAtOnce(ref, kind, ids, sample);
      else await this.restoreInTurn(def, ref, kind, ids, sample);
      sample.meminfoAfter = readMeminfo();
      for (const r of sample.replicas) r.memoryAfterRestores = readMemory(r.pid);
      sample.total = sample.replicas.map((r) => r.memoryAfterRestores).reduce(addMemory, zeroMemory());
      sample.shims = this.shimsOf(sample.replicas.map((r) => r.pid));
      for (const r of sample.replicas) {
        const before = readFaults(r.pid);
        try {
          const ms = await sendRequests(`/proc/${r.pid}/root${SOCKET}`, REQUESTS);
          r.requests = { ms, faults: faultsBetween(before, readFaults(r.pid)) };
        } catch (err) {
          r.requests = { error: err instanceof Error ? err.message : String(err) };
        }
      }
      if (kind.steadyMs !== undefined) sample.steady = await this.steady(sample.replicas, kind.steadyMs);
    } catch (err) {
      sample.error = err instanceof Error ? err.message : String(err);
      sample.replicaStates = await this.replicaStates(sample.replicas);
    } finally {
      for (const id of ids) await this.containerd.removeContainer(id, NAMESPACE);
      this.removeExtractedCheckpoints();
    }
    return sample;
  }

  /** Restores the replicas one after the other, each once the previous one's pid is known. */
  private async restoreInTurn(def: RuntimeDef, ref: string, kind: BatchKind, ids: readonly string[], sample: BatchSample): Promise<void> {
    let first: number | undefined;
    let lastExit = 0;
    let dropsBetween = 0;
    for (const id of ids) {
      if (kind.cache === 'cold') {
        const ms = await dropCaches();
        sample.cacheDropMs.push(ms);
        if (first !== undefined) dropsBetween += ms;
      }
      if (first === undefined) {
        sample.meminfoBefore = readMeminfo();
        first = performance.now();
      }
      const restore = await this.restore(id, ref);
      lastExit = restore.exitedAt;
      if (restore.result.code !== 0) {
        sample.restoreFailures.push(restoreFailure(id, ref, restore));
        throw new Error(`ctr containers restore --live --rw ${id} ${ref} (${def.key}) exited ${restore.result.code}: ${restore.result.stderr.trim()}`);
      }
      sample.replicas.push(await this.restored(id, restore));
    }
    sample.sumMs = sample.replicas.reduce((n, r) => n + r.restoreMs, 0);
    sample.wallMs = lastExit - (first ?? lastExit) - dropsBetween;
  }

  /**
   * Starts the N restores at the same moment; each replica's pid is looked up once its own ctr
   * exited. Waits for all of them, so that a failure is told per replica and none is removed
   * while its restore still runs.
   */
  private async restoreAtOnce(ref: string, kind: BatchKind, ids: readonly string[], sample: BatchSample): Promise<void> {
    if (kind.cache === 'cold') sample.cacheDropMs.push(await dropCaches());
    sample.meminfoBefore = readMeminfo();
    const first = performance.now();
    const outcomes = await Promise.all(
      ids.map(async (id) => {
        const restore = await this.restore(id, ref);
        if (restore.result.code !== 0) return { restore, failure: restoreFailure(id, ref, restore) };
        try {
          return { restore, replica: await this.restored(id, restore) };
        } catch (err) {
          return { restore, failure: { ...restoreFailure(id, ref, restore), error: `${id}: ${err instanceof Error ? err.message : String(err)}` } };
        }
      }),
    );
    for (const o of outcomes) {
      if (o.replica) sample.replicas.push(o.replica);
      if (o.failure) sample.restoreFailures.push(o.failure);
    }
    sample.sumMs = sample.replicas.reduce((n, r) => n + r.restoreMs, 0);
    sample.wallMs = Math.max(...outcomes.map((o) => o.restore.exitedAt)) - first;
    const failures = sample.restoreFailures;
    if (failures.length > 0) throw new Error(`${failures.length} of ${ids.length} concurrent restores failed: ${failures.map((f) => f.error).join('; ')}`);
  }

  /** `ctr containers restore --live --rw`, made again (twice at most) when ctr's fifo dir vanished (see lostFifoDir). */
  private async restore(id: string, ref: string): Promise<Restore> {
    const lostFifos: string[] = [];
    let result = await timedCtr(this.containerd, NAMESPACE, ['containers', 'restore', '--live', '--rw', id, ref]);
    while (result.code !== 0 && lostFifoDir(result.stderr) && lostFifos.length < 2) {
      lostFifos.push(result.stderr.trim());
      await this.containerd.removeContainer(id, NAMESPACE);
      result = await timedCtr(this.containerd, NAMESPACE, ['containers', 'restore', '--live', '--rw', id, ref]);
    }
    return { result, lostFifos, exitedAt: performance.now() };
  }

  /** A replica whose restore succeeded: its pid once `ctr task ls` gives it, its faults then and what it maps. */
  private async restored(id: string, restore: Restore): Promise<ReplicaSample> {
    const pid = await this.runningPid(id);
    const faultsAtRestore = readFaults(pid);
    return {
      id,
      pid,
      restoreMs: restore.result.ms,
      pidLookupMs: performance.now() - restore.exitedAt,
      faultsAtRestore,
      lostFifos: restore.lostFifos,
      mappedVmas: mappedVmas(pid),
      memoryAfterRestores: zeroMemory(),
      requests: { error: 'not run' },
    };
  }

  private async replicaStates(replicas: readonly ReplicaSample[]): Promise<string[]> {
    const tasks = await this.containerd.tasks(NAMESPACE).catch(() => []);
    let logLines: string[] = [];
    try {
      logLines = fs.readFileSync(this.containerd.logPath, 'utf8').split('\n');
    } catch {
      /* no log */
    }
    const states: string[] = [];
    for (const r of replicas) {
      const task = tasks.find((t) => t.id === r.id);
      // `ctr task rm` of a stopped task warns with its exit code when it is not 0.
      const exit = task?.status === 'STOPPED' ? (await this.containerd.ctr(['task', 'rm', r.id], { namespace: NAMESPACE })).stderr.trim() : '';
      const named = logLines.filter((l) => l.includes(r.id)).slice(-5);
      states.push([`${r.id}: pid ${r.pid} ${processAlive(r.pid) ? 'alive' : 'gone'}, task ${task ? `${task.pid} ${task.status}` : 'none'} ${exit}`.trim(), ...named.map((l) => `  ${l}`)].join('\n'));
    }
    return states;
  }

  private shimsOf(pids: readonly number[]): BatchSample['shims'] {
    const parents = [...new Set(pids.map((pid) => parentPid(pid)).filter((p): p is number => p !== undefined))];
    return parents.map((pid) => ({ pid, cmd: cmdline(pid), memory: readMemory(pid) }));
  }

  private async steady(replicas: readonly ReplicaSample[], durationMs: number): Promise<SteadySample> {
    const before = replicas.map((r) => readFaults(r.pid));
    const result = await steadyRequests(replicas.map((r) => `/proc/${r.pid}/root${SOCKET}`), STEADY_RATE, durationMs);
    const memory = replicas.map((r) => readMemory(r.pid));
    return {
      ...result,
      ratePerSecond: STEADY_RATE,
      memory,
      total: memory.reduce(addMemory, zeroMemory()),
      meminfo: readMeminfo(),
      faults: replicas.map((r, i) => faultsBetween(before[i] as Faults, readFaults(r.pid))),
    };
  }

  /**
   * containerd 1.7 extracts a checkpoint into a ctrd-checkpoint* dir of its XDG_RUNTIME_DIR
   * for each restore and never removes it (containerd/containerd#10166): once the replicas
   * are gone, so that the disk and the page cache do not fill up over the batches.
   */
  private removeExtractedCheckpoints(): void {
    for (const e of listDir(this.ctdDir)) {
      if (e.startsWith('ctrd-checkpoint')) fs.rmSync(path.join(this.ctdDir, e), { recursive: true, force: true });
    }
  }
}

// ---------------------------------------------------------------------------------------
// The table

interface Metric {
  key: string;
  label: string;
  unit: string;
  digits: number;
  pick: (b: BatchSample) => number | undefined;
  /** A time: the row also gives stock/pageshare, how many times faster pageshare is. */
  time?: boolean;
}

function medianOf(values: ReadonlyArray<number | undefined>): number | undefined {
  const present = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  return present.length > 0 ? median(present) : undefined;
}

function requestsOf(r: ReplicaSample): { ms: number; faults: Faults } | undefined {
  return 'ms' in r.requests ? r.requests : undefined;
}

const mib = (bytes: number): number => bytes / MiB;

const BATCH_METRICS: readonly Metric[] = [
  { key: 'restore.perReplica', label: 'restore, per replica (median)', unit: 'ms', digits: 0, time: true, pick: (b) => medianOf(b.replicas.map((r) => r.restoreMs)) },
  { key: 'restore.sum', label: 'restore, all N: sum', unit: 'ms', digits: 0, time: true, pick: (b) => b.sumMs },
  { key: 'restore.wall', label: 'restore, all N: wall (first spawn to last exit)', unit: 'ms', digits: 0, time: true, pick: (b) => b.wallMs },
  { key: 'pss', label: 'PSS of the N replicas, right after the restores', unit: 'MiB', digits: 1, pick: (b) => mib(b.total.pss) },
  { key: 'pssAnon', label: '  of which Pss_Anon', unit: 'MiB', digits: 1, pick: (b) => mib(b.total.pssAnon) },
  { key: 'pssFile', label: '  of which Pss_File', unit: 'MiB', digits: 1, pick: (b) => mib(b.total.pssFile) },
  { key: 'anonGrowth', label: 'AnonPages growth, system-wide, first restore to last', unit: 'MiB', digits: 1, pick: (b) => mib(b.meminfoAfter.anonPages - b.meminfoBefore.anonPages) },
  { key: 'minfltRestore', label: 'minflt during restore, per replica (median)', unit: 'faults', digits: 0, pick: (b) => medianOf(b.replicas.map((r) => r.faultsAtRestore.minflt)) },
  { key: 'majfltRestore', label: 'majflt during restore, per replica (median)', unit: 'faults', digits: 0, pick: (b) => medianOf(b.replicas.map((r) => r.faultsAtRestore.majflt)) },
  { key: 'minfltRequests', label: `minflt over the first ${REQUESTS} requests, per replica (median)`, unit: 'faults', digits: 0, pick: (b) => medianOf(b.replicas.map((r) => requestsOf(r)?.faults.minflt)) },
  { key: 'majfltRequests', label: `majflt over the first ${REQUESTS} requests, per replica (median)`, unit: 'faults', digits: 0, pick: (b) => medianOf(b.replicas.map((r) => requestsOf(r)?.faults.majflt)) },
  { key: 'requests', label: `first ${REQUESTS} requests, per replica (median)`, unit: 'ms', digits: 0, time: true, pick: (b) => medianOf(b.replicas.map((r) => requestsOf(r)?.ms)) },
  { key: 'mappedVmas', label: 'VMAs mapped from the page-cache file, per replica (median)', unit: 'VMAs', digits: 0, pick: (b) => medianOf(b.replicas.map((r) => r.mappedVmas)) },
  { key: 'shimPss', label: 'PSS of the shim process(es) of the replicas', unit: 'MiB', digits: 1, pick: (b) => mib(b.shims.reduce((n, s) => n + s.memory.pss, 0)) },
];

const STEADY_METRICS: readonly Metric[] = [
  { key: 'steady.pss', label: 'PSS of the N replicas', unit: 'MiB', digits: 1, pick: (b) => (b.steady ? mib(b.steady.total.pss) : undefined) },
  { key: 'steady.pssAnon', label: '  of which Pss_Anon', unit: 'MiB', digits: 1, pick: (b) => (b.steady ? mib(b.steady.total.pssAnon) : undefined) },
  { key: 'steady.pssFile', label: '  of which Pss_File', unit: 'MiB', digits: 1, pick: (b) => (b.steady ? mib(b.steady.total.pssFile) : undefined) },
  { key: 'steady.anonGrowth', label: 'AnonPages growth, first restore to the end of the requests', unit: 'MiB', digits: 1, pick: (b) => (b.steady ? mib(b.steady.meminfo.anonPages - b.meminfoBefore.anonPages) : undefined) },
  { key: 'steady.minflt', label: 'minflt during the steady requests, per replica (median)', unit: 'faults', digits: 0, pick: (b) => medianOf(b.steady?.faults.map((f) => f.minflt) ?? []) },
  { key: 'steady.answered', label: 'requests answered, all replicas', unit: 'requests', digits: 0, pick: (b) => b.steady?.answered.reduce((n, a) => n + a, 0) },
];

interface Goal {
  metric: string;
  goal: string;
  value: number | null;
  met: boolean | null;
  /** Not measured because these runtimes' batch failed (what their cells show). */
  failed?: string;
}

interface GoalDef {
  key: string;
  text: string;
  value: (stock: number, ours: number) => number | null;
  met: (v: number) => boolean;
}

/** The goals, read on the warm Node.js batch of PLAN.focusN replicas restored one after the other. */
const GOALS: readonly GoalDef[] = [
  { key: 'pss', text: 'total PSS pageshare/stock <= 0.25x', value: (s, p) => ratio(p, s), met: (v) => v <= 0.25 },
  { key: 'restore.wall', text: 'restore of all N >= 3x faster (stock/pageshare)', value: (s, p) => ratio(s, p), met: (v) => v >= 3 },
  { key: 'minfltRestore', text: 'minflt during restore >= 10x fewer (stock/pageshare)', value: (s, p) => ratio(s, p), met: (v) => v >= 10 },
];

const FOCUS_KIND: BatchKind = { app: 'node', pageshareGc: 'off', n: PLAN.focusN, cache: 'warm', mode: 'sequential', steadyMs: PLAN.steadyMs };
const CONCURRENT_KIND: BatchKind = { app: 'node', pageshareGc: 'off', n: PLAN.focusN, cache: 'warm', mode: 'concurrent', steadyMs: undefined };

/** Where goals are read: all of them on the focus batch, the restore time once more on the concurrent one. */
const GOAL_SITES: ReadonlyArray<{ kind: BatchKind; goals: readonly GoalDef[]; label: string }> = [
  { kind: FOCUS_KIND, goals: GOALS, label: sectionTitle(FOCUS_KIND) },
  { kind: CONCURRENT_KIND, goals: GOALS.filter((g) => g.key === 'restore.wall'), label: `concurrent batch, ${sectionTitle(CONCURRENT_KIND)}` },
];

interface Row {
  section: string;
  key: string;
  metric: string;
  unit: string;
  stock: number | null;
  pageshare: number | null;
  /** What the cell of a runtime whose batch failed shows instead of a figure. */
  failed: Partial<Record<RuntimeKey, string>>;
  /** pageshare/stock. */
  ratio: number | null;
  /** stock/pageshare, for times. */
  speedUp: number | null;
  digits: number;
  goal: string;
}

type Batches = Map<string, Partial<Record<RuntimeKey, BatchSample>>>;

function batchKey(kind: Pick<BatchKind, 'app' | 'pageshareGc' | 'n' | 'cache' | 'mode'>): string {
  const gc = kind.pageshareGc === 'off' ? '' : `/gc-${kind.pageshareGc}`;
  return `${kind.app}/n${kind.n}/${kind.cache}${kind.mode === 'concurrent' ? '/concurrent' : ''}${gc}`;
}

function sectionTitle(kind: BatchKind): string {
  const mode = kind.mode === 'concurrent' ? ', restored at once (concurrently)' : '';
  const cache = kind.cache === 'warm' ? 'page cache warm' : 'page cache dropped before each restore';
  const gc = kind.pageshareGc === 'off' ? '' : ', GC hook on for pageshare';
  return `${APP_TITLES[kind.app]}, N=${kind.n}${mode}, ${cache}${gc}`;
}

/** What a failed batch's cells show. */
function failureLabel(b: BatchSample): string {
  const failed = b.restoreFailures.length;
  return failed > 0 ? `failed: ${failed} of ${b.replicas.length + failed} restores` : 'failed';
}

function buildRows(kinds: readonly BatchKind[], batches: Batches): { rows: Row[]; goals: Goal[] } {
  const rows: Row[] = [];
  const goals: Goal[] = [];
  const add = (section: string, key: string, m: Metric, pair: Partial<Record<RuntimeKey, BatchSample>>): void => {
    const value = (b: BatchSample | undefined): number | null => {
      const v = b && b.error === undefined ? m.pick(b) : undefined;
      return v === undefined || !Number.isFinite(v) ? null : v;
    };
    const s = value(pair.stock);
    const p = value(pair.pageshare);
    const failed: Row['failed'] = {};
    for (const b of Object.values(pair)) if (b.error !== undefined) failed[b.runtime] = failureLabel(b);
    const site = GOAL_SITES.find((g) => batchKey(g.kind) === key);
    const goal = site?.goals.find((g) => g.key === m.key);
    if (site && goal) {
      const v = s === null || p === null ? null : goal.value(s, p);
      const failedRuntimes = RUNTIMES.filter((d) => failed[d.key] !== undefined).map((d) => `${d.label} ${failed[d.key] ?? ''}`);
      goals.push({
        metric: `${site.label}: ${goal.text}`,
        goal: goal.text,
        value: v,
        met: v === null ? null : goal.met(v),
        ...(failedRuntimes.length > 0 ? { failed: failedRuntimes.join(', ') } : {}),
      });
    }
    rows.push({
      section,
      key: `${key}/${m.key}`,
      metric: m.label,
      unit: m.unit,
      stock: s,
      pageshare: p,
      failed,
      // A ratio of growths that may be negative (AnonPages) says nothing.
      ratio: s === null || p === null || s <= 0 || p < 0 ? null : ratio(p, s),
      speedUp: m.time && s !== null && p !== null ? ratio(s, p) : null,
      digits: m.digits,
      goal: goal?.text ?? '',
    });
  };
  for (const kind of kinds) {
    const key = batchKey(kind);
    const pair = batches.get(key) ?? {};
    for (const m of BATCH_METRICS) add(sectionTitle(kind), key, m, pair);
    if (kind.steadyMs !== undefined) {
      const section = `${sectionTitle(kind)}, after ${kind.steadyMs / 1000} s of ${STEADY_RATE} requests/s per replica`;
      for (const m of STEADY_METRICS) add(section, key, m, pair);
    }
  }
  return { rows, goals };
}

const FOOTNOTES: readonly string[] = [
  `Apps: Node.js (the host's node) with the checkpoint benchmark's data set (${PLAN.heapMb} MB of records, strings, number arrays and`,
  `  Float64Arrays; a hot 3% mutated every 100 ms) and a request server on the unix socket ${SOCKET} (each request reads 2000 random`,
  `  records, texts and Float64Array elements); "V8 heap only": the same app and data with plain arrays of numbers for the`,
  '  Float64Arrays and the hot buffer (typed arrays keep their elements in malloc\'d memory outside V8\'s heap, which pageshare',
  `  does not map), so every byte of its data is in the V8 heap; ${PLAN.jvm ? `the JVM (host JDK 17, G1, ${JVM_OPTIONS.join(' ')}) with ~${JVM_HEAP_MB} MB of records and the same kind of server` : 'no JVM (quick mode)'}.`,
  '  With the GC hook off pageshare maps only V8-heap-like VMAs (private, anonymous, MAP_NORESERVE): HotSpot commits its heap',
  '  without MAP_NORESERVE, so nothing of the JVM is mapped.',
  `pageshare: source containers run with ${PAGESHARE_ANNOTATIONS.filter((a) => a !== '--annotation').join(', ')} (the restores`,
  '  inherit them from the checkpointed spec); runc.v2: no annotation. One checkpoint per runtime and app, then the batches.',
  ...(PLAN.jvm
    ? [
        `"GC hook on for pageshare": pageshare's JVM source container runs with ${GC_ANNOTATION}=jvm instead (its own checkpoint;`,
        "  stock's JVM checkpoint is restored again, stock has no hook). Before the dump the shim attaches to the JVM, runs a GC",
        '  and asks GC.heap_info for the heap range: pageshare dumps a GC-compacted heap, so not the same heap as stock\'s, and',
        '  the hook is what tells pageshare where the Java heap is, so that the map-mode restore maps it. No goals on it.',
      ]
    : []),
  'Each batch but the concurrent one: N replicas restored one after the other with `ctr containers restore --live --rw`,',
  '  timed spawn to exit; wall runs from the first spawn to the last exit and includes, between restores, `ctr task ls` for',
  '  the pid and the /proc reads (and not the cache drops). Faults "during restore": /proc/PID/stat of the restored process',
  '  once `ctr task ls` gave its pid (the app runs for those few ms). PSS: the sum of the replicas\' smaps_rollup once the last',
  `  one is restored, before any request. Then ${REQUESTS} requests per replica over one connection each, one replica after the`,
  '  other. AnonPages: system-wide, so anything else running on the host shows in it. The replicas are removed after each batch.',
  '"Restored at once (concurrently)": the N `ctr containers restore` commands spawned at the same moment, each replica\'s pid',
  '  looked up once its own ctr exited; wall from the first spawn to the last exit. runc.v2 restores every replica into the',
  '  dumped container\'s cgroup, where concurrent restores may fail in runc; pageshare gives each replica its own cgroup. A',
  '  runtime whose batch failed (after the one retry) shows the failure in its cells; which replica and why is in the notes.',
  `Goals are read on the Node.js batch of N=${PLAN.focusN} restored one after the other, page cache warm; the restore-time goal once more`,
  '  on the concurrent batch (its own goal line). Not on the V8-heap-only app, which shows what mapping does for such apps.',
  'The first batch of each runtime and app restores its checkpoint for the first time (pageshare writes the page-cache file then).',
  'An idle pageshare container keeps the namespace\'s shim server up through the run (it would exit 2 s after its last',
  '  container, between batches); runc.v2 starts a shim per replica.',
  'A batch that fails is made once more (the failed attempt is in the JSON and the notes).',
  'pageshare/stock: below 1 is less for pageshare; stock/pageshare (times): how many times faster pageshare is.',
];

function renderTable(title: string, rows: readonly Row[], goals: readonly Goal[], notes: readonly string[]): string {
  const header = ['sharing', 'unit', 'runc.v2 (stock)', 'pageshare (map)', 'pageshare/stock', 'stock/pageshare', 'goal'];
  const body: string[][] = [];
  let section = '';
  for (const r of rows) {
    if (r.section !== section) {
      section = r.section;
      body.push([section]);
    }
    const cell = (key: RuntimeKey): string => r.failed[key] ?? fmt(r[key], r.digits);
    body.push([`  ${r.metric}`, r.unit, cell('stock'), cell('pageshare'), fmtRatio(r.ratio), r.speedUp === null ? '' : `${fmtRatio(r.speedUp)} faster`, r.goal]);
  }
  const verdict = (g: Goal): string => (g.met === null ? `not measured${g.failed === undefined ? '' : ` (${g.failed})`}` : g.met ? 'met' : 'NOT met');
  const goalLines = goals.map((g) => `goal ${g.metric}: ${g.value === null ? '-' : `${g.value.toFixed(2)}x`} ${verdict(g)}`);
  const parts = [title, '', formatTable(header, body, ['left', 'left', 'right', 'right', 'right', 'right', 'left']), '', ...goalLines, '', ...FOOTNOTES];
  if (notes.length > 0) parts.push('', 'Notes from this run:', ...notes.map((n) => `  - ${n}`));
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------
// The benchmark

/** Each replica's restore time in ms, in the order of the ids, a failed one marked; "(attempt 2)" after a failed first attempt. */
function restoreTimes(b: BatchSample): string {
  const each = [...b.replicas.map((r) => ({ id: r.id, text: fmt(r.restoreMs, 0) })), ...b.restoreFailures.map((f) => ({ id: f.id, text: `${fmt(f.ms, 0)} failed` }))];
  const times = each.sort((x, y) => x.id.localeCompare(y.id)).map((t) => t.text).join(' ');
  return b.attempt > 1 ? `${times} (attempt ${b.attempt})` : times;
}

function batchKinds(): BatchKind[] {
  const node: BatchKind[] = PLAN.batchSizes.map((n) => (n === PLAN.focusN ? FOCUS_KIND : { ...FOCUS_KIND, n, steadyMs: undefined }));
  node.push({ ...FOCUS_KIND, cache: 'cold', steadyMs: undefined }, CONCURRENT_KIND);
  const heapOnly: BatchKind = { ...FOCUS_KIND, app: 'node-heap', steadyMs: undefined };
  const tiny: BatchKind = { ...FOCUS_KIND, app: 'node-tiny', steadyMs: undefined };
  const jvm: BatchKind = { ...FOCUS_KIND, app: 'jvm', steadyMs: undefined };
  return PLAN.jvm ? [...node, heapOnly, tiny, jvm, { ...jvm, pageshareGc: 'jvm' }] : [...node, heapOnly, tiny];
}

/** What the page-cache dir holds at the end: each file's size and allocated bytes. */
function pageCacheFiles(storeRoot: string): Array<{ name: string; bytes: number; allocated: number }> {
  const dir = pageCacheDir(storeRoot, NAMESPACE);
  return listDir(dir).map((name) => {
    const st = fs.statSync(path.join(dir, name));
    return { name, bytes: st.size, allocated: st.blocks * 512 };
  });
}

async function runBenchmark(): Promise<BenchReport> {
  const started = new Date();
  const { workDir, storeRoot, ctdDir } = makeBenchDirs('sharing-');
  const removeRuncNamespaceDir = runcNamespaceDirCleanup(NAMESPACE);
  let containerd: Containerd | undefined;
  let cleaning: Promise<void> | undefined;
  // Shared by the normal end and an interrupt: it runs once, and both wait for all of it.
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      if (containerd) await containerd.stop().catch((err: unknown) => log(`containerd stop: ${String(err)}`));
      removeRuncNamespaceDir();
      fs.rmSync(workDir, { recursive: true, force: true });
    })());
  const unregister = onInterrupt(cleanup);
  try {
    log(`building the images${QUICK ? ' (quick mode)' : ''} and starting containerd 1.7`);
    await buildImages(workDir);
    containerd = await startContainerd({ version: '1.7', logLevel: 'info', env: { PAGESHARE_ROOT: storeRoot, XDG_RUNTIME_DIR: ctdDir } });
    const machine = await machineInfo(containerd);
    const source = await sourceVersion();
    await containerd.ctrOk(['namespaces', 'create', NAMESPACE]);
    const kinds = batchKinds();
    const apps = [...new Set(kinds.map((k) => k.app))];
    for (const app of apps) await importImage(containerd, path.join(workDir, `${app}.tar`), { namespace: NAMESPACE });
    const lab = new SharingLab(containerd, storeRoot, ctdDir);
    await lab.keepPageshareServerUp();
    const checkpoints: CheckpointSample[] = [];
    const batches: Batches = new Map();
    const failedAttempts: BatchSample[] = [];
    const notes: string[] = [];
    // Stock has no GC hook: its one checkpoint of an app serves the batches of every pageshareGc.
    const checkpointKey = (def: RuntimeDef, app: AppKind, gc: PageshareGc): string => (def.key === 'pageshare' ? `${def.key}/${app}/${gc}` : `${def.key}/${app}`);
    const checkpointed = new Map<string, CheckpointSample>();
    const groups = [...new Map(kinds.map((k) => [`${k.app}/${k.pageshareGc}`, { app: k.app, gc: k.pageshareGc }])).values()];
    for (const { app, gc } of groups) {
      const refs: Partial<Record<RuntimeKey, string>> = {};
      for (const def of RUNTIMES) {
        const key = checkpointKey(def, app, gc);
        let ck = checkpointed.get(key);
        if (ck === undefined) {
          ck = await lab.checkpoint(def, app, gc);
          checkpointed.set(key, ck);
          checkpoints.push(ck);
          if (ck.error !== undefined) notes.push(`${key}: no checkpoint (${ck.error}); its batches were skipped`);
          log(`${key}: checkpoint ${ck.error ?? `${fmt(ck.checkpointMs, 0)} ms, app PSS ${fmt(mib(ck.memoryAtCheckpoint?.pss ?? NaN), 1)} MiB`}`);
        }
        if (ck.error === undefined) refs[def.key] = ck.ref;
      }
      for (const [i, kind] of kinds.filter((k) => k.app === app && k.pageshareGc === gc).entries()) {
        const order = i % 2 === 0 ? RUNTIMES : [...RUNTIMES].reverse();
        const pair: Partial<Record<RuntimeKey, BatchSample>> = {};
        for (const def of order) {
          const ref = refs[def.key];
          if (ref === undefined) continue;
          let b = await lab.batch(def, ref, kind, 1);
          if (b.error !== undefined) {
            // Once more, so that one failure does not leave the row empty; both attempts are kept and told.
            failedAttempts.push(b);
            notes.push(`${sectionTitle(kind)} on ${def.key}: attempt 1 failed (${b.error}); ${(b.replicaStates ?? []).map((l) => l.split('\n')[0]).join('; ')}`);
            b = await lab.batch(def, ref, kind, 2);
            if (b.error !== undefined) notes.push(`${sectionTitle(kind)} on ${def.key}: attempt 2 failed too (${b.error})`);
          }
          pair[def.key] = b;
          log(
            `${sectionTitle(kind)} on ${def.key}: ` +
              (b.error ?? `restore wall ${fmt(b.wallMs, 0)} ms (each ${restoreTimes(b)}), PSS ${fmt(mib(b.total.pss), 1)} MiB, minflt at restore ${b.replicas.map((r) => r.faultsAtRestore.minflt).join(' ')}`),
          );
        }
        batches.set(batchKey(kind), pair);
        if (kind.mode === 'concurrent') {
          const each = RUNTIMES.flatMap((d) => {
            const b = pair[d.key];
            return b ? [`${d.key} ${restoreTimes(b)}`] : [];
          });
          notes.push(`${sectionTitle(kind)}: each replica's restore, ms (spawn to exit): ${each.join('; ')}`);
        }
      }
    }
    for (const [key, pair] of batches) {
      const failed = Object.values(pair).flatMap((b) => b.replicas.filter((r) => !('ms' in r.requests)).map((r) => `${r.id}: ${(r.requests as { error: string }).error}`));
      if (failed.length > 0) notes.push(`${key}: requests failed on ${failed.join('; ')}`);
      const retried = Object.values(pair).flatMap((b) => b.replicas.filter((r) => r.lostFifos.length > 0).map((r) => r.id));
      if (retried.length > 0) notes.push(`${key}: restore made again after ctr's fifo dir vanished (removed by another harness containerd's stop): ${retried.join(', ')}`);
      const ps = pair.pageshare;
      if (ps && ps.error === undefined && (ps.app !== 'jvm' || ps.pageshareGc === 'jvm') && ps.replicas.some((r) => r.mappedVmas === 0)) notes.push(`${key}: a pageshare replica maps nothing from the page-cache file`);
    }

    const { rows, goals } = buildRows(kinds, batches);
    const title =
      `Sharing: N replicas restored from one checkpoint${QUICK ? ' (QUICK MODE)' : ''}; containerd ${machine.containerd ?? '1.7'}, ` +
      `${machine.nproc} CPUs, ${fmt(machine.memTotalBytes / 2 ** 30, 1)} GiB, kernel ${machine.kernel}, node ${process.version}${describeSource(source)}`;
    const table = renderTable(title, rows, goals, notes);
    const resultFile = writeResult('sharing', {
      benchmark: 'sharing',
      timestamp: started.toISOString(),
      durationMs: Date.now() - started.getTime(),
      quick: QUICK,
      machine,
      source,
      config: {
        containerdVersion: '1.7',
        namespace: NAMESPACE,
        plan: PLAN,
        requests: REQUESTS,
        steadyRatePerSecond: STEADY_RATE,
        settleMs: SETTLE_MS,
        pageshareAnnotations: PAGESHARE_ANNOTATIONS,
        checkpointCommand: 'ctr containers checkpoint --task --image --rw C REF',
        restoreCommand: 'ctr containers restore --live --rw C2 REF',
        concurrentRestores: 'the N restore commands of a concurrent batch spawned at the same moment; wall from the first spawn to the last exit',
        coldCache: 'sync; echo 3 > /proc/sys/vm/drop_caches before each restore of the batch',
        apps: {
          node: { image: IMAGES.node, command: NODE_COMMAND, heapMb: PLAN.heapMb, source: NODE_APP },
          'node-heap': { image: IMAGES['node-heap'], command: NODE_COMMAND, heapMb: PLAN.heapMb, source: NODE_HEAP_APP },
          'node-tiny': { image: IMAGES['node-tiny'], command: NODE_COMMAND, heapMb: TINY_HEAP_MB, source: NODE_APP },
          jvm: PLAN.jvm ? { image: IMAGES.jvm, options: JVM_OPTIONS, heapMb: JVM_HEAP_MB, source: JVM_APP } : undefined,
        },
        units: { time: 'ms', memory: 'bytes (table: MiB)' },
      },
      checkpoints,
      batches: [...batches.values()].flatMap((pair) => Object.values(pair)),
      failedAttempts,
      notes,
      footnotes: FOOTNOTES,
      summary: rows,
      goals,
      pageCacheFiles: pageCacheFiles(storeRoot),
      shimLog: pageshareServerLog(containerd.address, NAMESPACE),
    });
    return { table, resultFile };
  } finally {
    unregister();
    await cleanup();
  }
}

export const sharing: BenchModule = { name: 'sharing', run: runBenchmark };
