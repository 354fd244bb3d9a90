/**
 * Checkpoint benchmark: the stock containerd-shim-runc-v2 (io.containerd.runc.v2) and
 * pageshare (io.containerd.pageshare.v1) side by side on ONE private containerd 1.7, in one
 * run, on one Node.js workload (~200 MB of live heap, a small hot part of it mutated every
 * 100 ms; see heapAppJs in common.ts):
 *
 *  1. checkpoint time: wall time of `ctr containers checkpoint --task --image --rw C REF`
 *     (ctr pauses, the shim dumps, containerd stores the tar, ctr resumes);
 *  2. restore time: wall time of `ctr containers restore --live --rw C2 REF` (ctr returns
 *     after Start), then the restored app is confirmed running (its heartbeat file changes
 *     and its heap loop goes on);
 *  3. the size of one checkpoint: the criu tar blob in containerd's content store, plus
 *     for pageshare the page store ($PAGESHARE_ROOT, emptied before each checkpoint);
 *  4. bytes on disk after 10 successive checkpoints of one running container, as a ratio
 *     to the first of them (stock: the 10 criu tars; pageshare: the 10 tars + the store).
 *
 * Runtimes are interleaved (alternating which goes first) so machine load hits both. Each
 * checkpoint and restore is also timed phase by phase from outside, by polling what the
 * parts write (containerd's temp dir, the shim's scratch dir, runc's state dir): see PhaseWatcher.
 *
 * containerd 1.7.24 cannot make a second checkpoint image of a container while the first
 * exists (the spec blob it writes is identical: "content ... already exists", and ctr then
 * silently stores an index without the criu tar). The series works around it by deleting
 * just that spec blob (`ctr content rm`) before each further checkpoint: the next
 * checkpoint writes the identical blob again, so every earlier image is whole again
 * afterwards (checked at the end, and the first image of each series is restored).
 *
 * Only measures and prints; writes bench/results/checkpoint.json.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startContainerd, type Containerd } from '../integration/harness/containerd';
import { importImage } from '../integration/harness/image';
import { NODE_BINARY, nodeImageBuilder } from '../integration/harness/runtime-images';
import { PAGESHARE_RUNTIME, RUNC_RUNTIME } from '../integration/harness/paths';
import { runOk } from '../integration/harness/process';
import { sleep, WaitAbortedError, waitFor } from '../integration/harness/wait';
import { shimServerFiles } from '../shim/bootstrap/shim-socket';
import { scratchRoot } from '../shim/checkpoint/scratch-dir';
import { PAGE_MANIFEST_FILE } from '../shim/store/manifest-file';
import { PageStore, type StoreStats } from '../shim/store/page-store';
import type { CheckpointRecord } from '../shim/store/page-index';
import {
  cpuTimes,
  describeSource,
  fmt,
  fmtRatio,
  formatTable,
  heapAppJs,
  listDir,
  machineInfo,
  makeBenchDirs,
  MiB,
  onInterrupt,
  pageshareServerLog,
  processAlive,
  ratio,
  readMemory,
  RUNC_ROOT,
  runcNamespaceDirCleanup,
  settleStore,
  sourceVersion,
  stealShare,
  summarize,
  timedCtr,
  writeResult,
  type BenchModule,
  type RuntimeDef,
  type RuntimeKey,
  type BenchReport,
  type Memory,
  type Summary,
  type TimedResult,
} from './common';

const RUNTIMES: readonly RuntimeDef[] = [
  { key: 'stock', runtime: RUNC_RUNTIME, label: 'runc.v2 (stock)' },
  { key: 'pageshare', runtime: PAGESHARE_RUNTIME, label: 'pageshare' },
];

const IMAGE = 'docker.io/library/bc-node:latest';
const NAMESPACE = 'bc-bench';
/** Measured checkpoint + restore rounds per runtime (after one warm-up round). */
const REPEAT = positiveInt(process.env['BENCH_CHECKPOINT_REPEAT'], 5);
/** Successive checkpoints of one running container. */
const SERIES = 10;
/** The workload's live data. */
const HEAP_MB = 200;
/** After the app reports its data built, before the first checkpoint. */
const SETTLE_MS = 1000;
/** Between successive checkpoints of the series (the app goes on mutating its hot part). */
const SERIES_GAP_MS = 1000;
/** Phase polling interval. */
const POLL_MS = 5;

/** The app's source (see heapAppJs). */
const APP_JS = heapAppJs(HEAP_MB);

const CRIU_TAR_MEDIA_TYPE = 'application/vnd.containerd.container.criu.checkpoint.criu.tar';
const SPEC_MEDIA_TYPE = 'application/vnd.containerd.container.checkpoint.config.v1+proto';

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

function log(message: string): void {
  process.stderr.write(`[checkpoint] ${message}\n`);
}

// ---------------------------------------------------------------------------------------
// The workload


interface NodeImageInfo {
  nodeBinary: string;
  nodeBinaryBytes: number;
  /** The shared libraries `ldd` named, as [path in the image, host file copied]. */
  libraries: Array<[string, string]>;
  lddOutput: string;
  layerBytes: number;
}

async function buildNodeImage(outPath: string): Promise<NodeImageInfo> {
  const { builder: b, libraries, lddOutput } = await nodeImageBuilder(IMAGE);
  b.addContent('/app/app.js', APP_JS);
  b.setCmd(['/usr/bin/node', '--expose-gc', '/app/app.js']);
  b.setEnv(['PATH=/usr/bin:/bin', `BC_HEAP_MB=${HEAP_MB}`]);
  const built = await b.build(outPath);
  return { nodeBinary: NODE_BINARY, nodeBinaryBytes: fs.statSync(NODE_BINARY).size, libraries, lddOutput, layerBytes: built.layerSize };
}

interface Heartbeat {
  tick: number;
  touches: number;
  wallMs: number;
}

function readHeartbeat(pid: number): Heartbeat | undefined {
  try {
    const [tick, touches, wallMs] = fs.readFileSync(`/proc/${pid}/root/tmp/hb`, 'utf8').trim().split(' ').map(Number);
    if (!Number.isFinite(tick) || !Number.isFinite(touches) || !Number.isFinite(wallMs)) return undefined;
    return { tick: tick as number, touches: touches as number, wallMs: wallMs as number };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Sizes

interface DiskBytes {
  /** Sum of file sizes (du --apparent-size). */
  apparent: number;
  /** Allocated blocks (du without --apparent-size; st_blocks * 512 for one file). */
  real: number;
}

function addBytes(a: DiskBytes, b: DiskBytes): DiskBytes {
  return { apparent: a.apparent + b.apparent, real: a.real + b.real };
}

async function du(dir: string): Promise<DiskBytes> {
  const first = (out: string): number => Number(out.trim().split(/\s+/)[0]);
  const apparent = first((await runOk('du', ['-s', '--apparent-size', '--block-size=1', dir], { timeoutMs: 30_000 })).stdout);
  const real = first((await runOk('du', ['-s', '--block-size=1', dir], { timeoutMs: 30_000 })).stdout);
  return { apparent, real };
}

async function leftBehind(dir: string, before: ReadonlySet<string>): Promise<{ entries: string[]; bytes: DiskBytes }> {
  const entries = listDir(dir).filter((e) => !before.has(e));
  let bytes: DiskBytes = { apparent: 0, real: 0 };
  for (const e of entries) bytes = addBytes(bytes, await du(path.join(dir, e)));
  return { entries, bytes };
}

interface TarMember {
  name: string;
  size: number;
}

/** `tar -tvf FILE`: member names and sizes, largest first. */
async function listTar(file: string): Promise<TarMember[]> {
  const out = (await runOk('tar', ['-tvf', file], { timeoutMs: 60_000 })).stdout;
  const members: TarMember[] = [];
  for (const line of out.split('\n')) {
    // -rw-r--r-- root/root 1234 2020-01-01 00:00 name
    const m = /^\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+(.+)$/.exec(line.trim());
    if (m) members.push({ name: m[2] as string, size: Number(m[1]) });
  }
  return members.sort((a, b) => b.size - a.size);
}

interface BlobInfo {
  mediaType: string;
  digest: string;
  size: number;
}

interface CheckpointImage {
  ref: string;
  indexDigest: string;
  blobs: BlobInfo[];
  criuTar: BlobInfo & { onDisk: DiskBytes };
  spec: BlobInfo | undefined;
}

// ---------------------------------------------------------------------------------------
// Phases, seen from outside

/** First/last time (ms since the command was spawned) each condition was seen true. */
type PhaseTimes = Record<string, { first: number; last: number } | undefined>;

/**
 * Polls, every POLL_MS while a ctr command runs, what the parts write, and notes when each
 * of these was first and last seen (only entries that appeared after the watch began):
 *
 *  - ctd: an entry in containerd's temp dir (its XDG_RUNTIME_DIR, private to this run):
 *    the dir the shim dumps into for a checkpoint (removed once containerd has stored its
 *    tar), the dir containerd extracts the tar into for a restore;
 *  - ctdInventory: CRIU's inventory.img in it (the stock shim dumps there; CRIU writes
 *    inventory.img when its dump is complete);
 *  - scratch, scratchInventory, scratchImages, scratchPages: the pageshare shim's scratch
 *    dir ($PAGESHARE_ROOT/scratch/dump-*, restore-*), CRIU's inventory.img in its images/ (dump
 *    complete), its images/ dir (restore: rebuilding began), a pages-*.img in it (restore:
 *    the pages are rebuilt from the store);
 *  - runcState: runc's state dir of the container (restore: `runc restore` has begun).
 */
class PhaseWatcher {
  private readonly seen: PhaseTimes = {};
  private readonly started = performance.now();
  private readonly timer: NodeJS.Timeout;
  private readonly ctdBefore: Set<string>;
  private readonly scratchBefore: Set<string>;

  constructor(
    private readonly ctdDir: string,
    private readonly scratchDir: string,
    private readonly runcStateDir?: string,
  ) {
    this.ctdBefore = new Set(listDir(ctdDir));
    this.scratchBefore = new Set(listDir(scratchDir));
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.poll();
  }

  private mark(name: string, now: number): void {
    const t = this.seen[name];
    if (t) t.last = now;
    else this.seen[name] = { first: now, last: now };
  }

  private poll(): void {
    const now = performance.now() - this.started;
    const ctd = listDir(this.ctdDir).filter((e) => !this.ctdBefore.has(e));
    if (ctd.length > 0) {
      this.mark('ctd', now);
      if (ctd.some((e) => fs.existsSync(path.join(this.ctdDir, e, 'inventory.img')))) this.mark('ctdInventory', now);
      // pageshare writes its manifest last, just before the Checkpoint call returns.
      if (ctd.some((e) => fs.existsSync(path.join(this.ctdDir, e, PAGE_MANIFEST_FILE)))) this.mark('ctdManifest', now);
    }
    const scratch = listDir(this.scratchDir).filter((e) => !this.scratchBefore.has(e) && (e.startsWith('dump-') || e.startsWith('restore-')));
    if (scratch.length > 0) {
      this.mark('scratch', now);
      for (const e of scratch) {
        const images = path.join(this.scratchDir, e, 'images');
        const names = listDir(images);
        if (!fs.existsSync(images)) continue;
        this.mark('scratchImages', now);
        if (names.includes('inventory.img')) this.mark('scratchInventory', now);
        if (names.some((n) => /^pages-\d+\.img$/.test(n))) this.mark('scratchPages', now);
      }
    }
    if (this.runcStateDir && fs.existsSync(this.runcStateDir)) this.mark('runcState', now);
  }

  stop(): PhaseTimes {
    clearInterval(this.timer);
    this.poll();
    return this.seen;
  }
}

function span(a: number | undefined, b: number | undefined): number | null {
  return a === undefined || b === undefined ? null : b - a;
}

/** Checkpoint phases in ms, derived from the watcher (null where an event was not seen). */
interface CheckpointPhases {
  /** Spawn until containerd's checkpoint dir appears: ctr, pause, rw-layer diff, the RPC reaching the shim. */
  beforeDump: number | null;
  /** Until CRIU's inventory.img is written: runc checkpoint / CRIU dump. */
  dump: number | null;
  /** pageshare: until its manifest appears in containerd's dir (page ingest, pages durable, the other images copied). */
  ingest: number | null;
  /** Until containerd's dir is gone: runc's finish, the shim's answer, containerd's tar into the content store. */
  containerdTar: number | null;
  /** Until ctr exits: index and image records, resume. */
  after: number | null;
}

function checkpointPhases(key: RuntimeKey, t: PhaseTimes, totalMs: number): CheckpointPhases {
  const ctdFirst = t['ctd']?.first;
  const ctdGone = t['ctd']?.last;
  const inventory = key === 'stock' ? t['ctdInventory']?.first : t['scratchInventory']?.first;
  const manifest = key === 'pageshare' ? t['ctdManifest']?.first : undefined;
  return {
    beforeDump: span(0, ctdFirst),
    dump: span(ctdFirst, inventory),
    ingest: key === 'pageshare' ? span(inventory, manifest) : null,
    containerdTar: span(key === 'pageshare' ? manifest : inventory, ctdGone),
    after: span(ctdGone, totalMs),
  };
}

/** Restore phases in ms. */
interface RestorePhases {
  /** Spawn until containerd's dir appears: the container record, rootfs snapshot and rw layer, task Create begins. */
  beforeCreate: number | null;
  /** containerd extracts the tar, the shim's Create, Start begins (until pageshare rebuilds pages / runc restore begins). */
  extractAndCreate: number | null;
  /** pageshare: the images dir rebuilt, every page read from the store and verified. */
  pageRebuild: number | null;
  /** Until ctr exits: runc restore / CRIU, the shim's answer. */
  runcRestore: number | null;
}

function restorePhases(key: RuntimeKey, t: PhaseTimes, totalMs: number): RestorePhases {
  const ctdFirst = t['ctd']?.first;
  const runc = t['runcState']?.first;
  if (key === 'pageshare') {
    // The pages file appears when its rebuild starts; runc's state dir once it is done.
    const imagesFirst = t['scratchImages']?.first;
    return {
      beforeCreate: span(0, ctdFirst),
      extractAndCreate: span(ctdFirst, imagesFirst),
      pageRebuild: span(imagesFirst, runc),
      runcRestore: span(runc, totalMs),
    };
  }
  return { beforeCreate: span(0, ctdFirst), extractAndCreate: span(ctdFirst, runc), pageRebuild: null, runcRestore: span(runc, totalMs) };
}

// ---------------------------------------------------------------------------------------
// The lab: containers and images of this run

interface RunningApp {
  id: string;
  pid: number;
  runMs: number;
  ready: unknown;
  readyAfterMs: number;
}

interface RestoreSample {
  id: string;
  ms: number;
  phases: RestorePhases;
  phaseTimes: PhaseTimes;
  runningAtOnce: boolean;
  pid: number;
  /** Spawn of ctr until the restored app's first heartbeat written after the call began. */
  firstHeartbeatMs: number;
  /** Spawn of ctr until its heap loop had run twice more after that (the app progresses). */
  progressConfirmedMs: number;
  /**
   * What the restore left in containerd's temp dir once the restored app ran: containerd
   * 1.7 extracts the checkpoint tar into a ctrd-checkpoint* dir for Create and never removes
   * it (containerd/containerd#10166).
   */
  leftInContainerdTemp: { entries: string[]; bytes: DiskBytes };
}

class Lab {
  readonly tag = crypto.randomBytes(3).toString('hex');
  private readonly containers = new Set<string>();
  private readonly images = new Set<string>();

  /** Set by the cleanup: the benchmark stops at its next step. */
  aborted = false;

  constructor(
    readonly containerd: Containerd,
    readonly ctdDir: string,
    readonly storeRoot: string,
  ) {}

  private checkNotAborted(): void {
    if (this.aborted) throw new Error('checkpoint benchmark interrupted');
  }

  /** A name unique to this run: `bc-<random>-<name>`. */
  id(name: string): string {
    return `bc-${this.tag}-${name}`;
  }

  ref(name: string): string {
    return `docker.io/library/${this.id(name)}:latest`;
  }

  private ctrOk(args: readonly string[], timeoutMs = 60_000) {
    return this.containerd.ctrOk(args, { namespace: NAMESPACE, timeoutMs });
  }

  async pidOf(id: string): Promise<{ pid: number; status: string } | undefined> {
    const t = (await this.containerd.tasks(NAMESPACE)).find((x) => x.id === id);
    return t ? { pid: t.pid, status: t.status } : undefined;
  }

  async runApp(def: RuntimeDef, id: string): Promise<RunningApp> {
    this.checkNotAborted();
    this.containers.add(id);
    const r = await timedCtr(this.containerd, NAMESPACE, ['run', '-d', '--runtime', def.runtime, IMAGE, id]);
    if (r.code !== 0) throw new Error(`ctr run -d (${def.runtime}) ${id} exited ${r.code}: ${r.stderr.trim()}`);
    const started = performance.now();
    const task = await waitFor(`${id} RUNNING`, async () => {
      const t = await this.pidOf(id);
      return t?.status === 'RUNNING' ? t : undefined;
    }, { timeoutMs: 20_000 });
    const ready = await waitFor(`${id} ready (/tmp/ready)`, () => {
      if (!processAlive(task.pid)) throw new WaitAbortedError(`${id}: init ${task.pid} exited before its data was built`);
      try {
        return JSON.parse(fs.readFileSync(`/proc/${task.pid}/root/tmp/ready`, 'utf8')) as unknown;
      } catch {
        return undefined;
      }
    }, { timeoutMs: 120_000, intervalMs: 100 });
    return { id, pid: task.pid, runMs: r.ms, ready, readyAfterMs: performance.now() - started };
  }

  async checkpoint(def: RuntimeDef, id: string, ref: string): Promise<{ result: TimedResult; phases: CheckpointPhases; phaseTimes: PhaseTimes }> {
    this.checkNotAborted();
    this.images.add(ref);
    const watcher = new PhaseWatcher(this.ctdDir, scratchRoot(this.storeRoot));
    let result: TimedResult;
    let phaseTimes: PhaseTimes = {};
    try {
      result = await timedCtr(this.containerd, NAMESPACE, ['containers', 'checkpoint', '--task', '--image', '--rw', id, ref]);
    } finally {
      phaseTimes = watcher.stop();
    }
    if (result.code !== 0) throw new Error(`ctr containers checkpoint (${def.key}) ${id} ${ref} exited ${result.code}: ${result.stderr.trim()}`);
    return { result, phases: checkpointPhases(def.key, phaseTimes, result.ms), phaseTimes };
  }

  /** The checkpoint image's index and blobs; throws if it holds no criu tar. */
  async inspect(ref: string): Promise<CheckpointImage> {
    const ls = (await this.ctrOk(['images', 'ls'])).stdout.split('\n');
    const line = ls.find((l) => l.split(/\s+/)[0] === ref);
    const indexDigest = line?.split(/\s+/)[2];
    if (!indexDigest?.startsWith('sha256:')) throw new Error(`checkpoint image ${ref} not listed by ctr images ls`);
    const index = JSON.parse((await this.ctrOk(['content', 'get', indexDigest])).stdout) as { manifests?: BlobInfo[] };
    const blobs = (index.manifests ?? []).map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size }));
    const tar = blobs.find((b) => b.mediaType === CRIU_TAR_MEDIA_TYPE);
    if (!tar) {
      throw new Error(`checkpoint image ${ref} has no ${CRIU_TAR_MEDIA_TYPE} (containerd 1.7 "content already exists"?): ${JSON.stringify(blobs)}`);
    }
    const st = fs.statSync(this.blobFile(tar.digest));
    if (st.size !== tar.size) throw new Error(`${ref}: blob ${tar.digest} is ${st.size} bytes on disk, the index says ${tar.size}`);
    return {
      ref,
      indexDigest,
      blobs,
      criuTar: { ...tar, onDisk: { apparent: st.size, real: st.blocks * 512 } },
      spec: blobs.find((b) => b.mediaType === SPEC_MEDIA_TYPE),
    };
  }

  blobFile(digest: string): string {
    return path.join(this.containerd.root, 'io.containerd.content.v1.content', 'blobs', 'sha256', digest.slice('sha256:'.length));
  }

  /** Digests of every blob in the namespace's content store. */
  async contentDigests(): Promise<Set<string>> {
    const out = (await this.ctrOk(['content', 'ls', '-q'])).stdout;
    return new Set(out.split('\n').map((s) => s.trim()).filter(Boolean));
  }

  async removeContent(digest: string): Promise<void> {
    await this.ctrOk(['content', 'rm', digest]);
  }

  async restore(def: RuntimeDef, id: string, ref: string): Promise<RestoreSample> {
    this.checkNotAborted();
    this.containers.add(id);
    const wallStart = Date.now();
    const ctdBefore = new Set(listDir(this.ctdDir));
    const watcher = new PhaseWatcher(this.ctdDir, scratchRoot(this.storeRoot), path.join(RUNC_ROOT, NAMESPACE, id));
    const t0 = performance.now();
    let r: TimedResult;
    let phaseTimes: PhaseTimes = {};
    try {
      r = await timedCtr(this.containerd, NAMESPACE, ['containers', 'restore', '--live', '--rw', id, ref]);
    } finally {
      phaseTimes = watcher.stop();
    }
    if (r.code !== 0) throw new Error(`ctr containers restore --live --rw ${id} ${ref} exited ${r.code}: ${r.stderr.trim()}`);
    let task = await this.pidOf(id);
    const runningAtOnce = task?.status === 'RUNNING';
    if (!runningAtOnce) {
      task = await waitFor(`${id} RUNNING`, async () => {
        const t = await this.pidOf(id);
        return t?.status === 'RUNNING' ? t : undefined;
      }, { timeoutMs: 20_000 });
    }
    const pid = (task as { pid: number }).pid;
    const first = await waitFor(`${id}: a heartbeat after the restore`, () => {
      const hb = readHeartbeat(pid);
      return hb && hb.wallMs >= wallStart ? { hb, at: performance.now() - t0 } : undefined;
    }, { timeoutMs: 20_000, intervalMs: POLL_MS });
    const progress = await waitFor(`${id}: the heap loop running after the restore`, () => {
      const hb = readHeartbeat(pid);
      return hb && hb.touches >= first.hb.touches + 2 ? performance.now() - t0 : undefined;
    }, { timeoutMs: 20_000, intervalMs: POLL_MS });
    return {
      id,
      ms: r.ms,
      phases: restorePhases(def.key, phaseTimes, r.ms),
      phaseTimes,
      runningAtOnce,
      pid,
      firstHeartbeatMs: first.at,
      progressConfirmedMs: progress,
      leftInContainerdTemp: await leftBehind(this.ctdDir, ctdBefore),
    };
  }

  /** SIGKILL, delete the tasks and containers. */
  async removeContainers(ids: readonly string[]): Promise<void> {
    const c = this.containerd;
    const ns = { namespace: NAMESPACE, timeoutMs: 15_000 };
    await Promise.all(ids.map((id) => c.ctr(['task', 'kill', '-s', 'SIGKILL', id], ns)));
    await waitFor('tasks stopped', async () => (await c.tasks(NAMESPACE)).every((t) => !ids.includes(t.id) || t.status !== 'RUNNING'), {
      timeoutMs: 20_000,
    }).catch(() => undefined);
    for (const id of ids) {
      await c.ctr(['task', 'rm', '-f', id], ns);
      await c.ctr(['container', 'rm', id], ns);
      this.containers.delete(id);
    }
  }

  async removeImages(refs: readonly string[]): Promise<void> {
    if (refs.length === 0) return;
    await this.containerd.ctr(['images', 'rm', '--sync', ...refs], { namespace: NAMESPACE, timeoutMs: 60_000 });
    for (const ref of refs) this.images.delete(ref);
  }

  async removeEverything(): Promise<void> {
    await this.removeContainers([...this.containers]).catch(() => undefined);
    await this.removeImages([...this.images]).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------
// The page store

interface StoreSnapshot {
  du: DiskBytes;
  stats: StoreStats;
  checkpoints: CheckpointRecord[];
}

function emptyStore(root: string): void {
  for (const name of listDir(root)) {
    // Domain dirs of page-cache files are bind-mounted into running containers (map mode,
    // the default for Node.js): emptied, never removed, or those mounts would point nowhere.
    if (name === 'page-cache') {
      for (const domain of listDir(path.join(root, name))) {
        for (const entry of listDir(path.join(root, name, domain))) fs.rmSync(path.join(root, name, domain, entry), { recursive: true, force: true });
      }
      continue;
    }
    fs.rmSync(path.join(root, name), { recursive: true, force: true });
  }
}

async function storeSnapshot(root: string): Promise<StoreSnapshot> {
  await settleStore(root);
  const store = PageStore.open(root);
  try {
    return { du: await du(root), stats: store.stats(), checkpoints: store.listCheckpoints() };
  } finally {
    store.close();
  }
}

// ---------------------------------------------------------------------------------------
// The benchmark

interface RoundSample {
  round: number;
  warmup: boolean;
  id: string;
  ref: string;
  app: { runMs: number; readyAfterMs: number; ready: unknown; memoryAtCheckpoint: Memory | undefined };
  checkpoint: { ms: number; phases: CheckpointPhases; phaseTimes: PhaseTimes };
  image: CheckpointImage;
  /** First measured round only: the members of the criu tar (`tar -tv`), largest first. */
  tarMembers: TarMember[] | undefined;
  /** pageshare: the store after this one checkpoint (emptied before it). */
  store: StoreSnapshot | undefined;
  /** The criu tar plus (pageshare) the store. */
  total: DiskBytes;
  restore: RestoreSample;
  /** Share of the machine's CPU time the hypervisor stole during the checkpoint and the restore. */
  cpuSteal: { checkpoint: number | null; restore: number | null };
}

interface SeriesStep {
  index: number;
  ref: string;
  ms: number;
  phases: CheckpointPhases;
  /** The spec blob removed (`ctr content rm`) just before this checkpoint, if any. */
  specRemoved: string | null;
  criuTar: DiskBytes;
  indexDigest: string;
  /** pageshare: the store after this checkpoint. */
  storeDu: DiskBytes | undefined;
  /** Tars so far plus (pageshare) the store now. */
  cumulative: DiskBytes;
}

interface SeriesResult {
  id: string;
  steps: SeriesStep[];
  tarsTotal: DiskBytes;
  storeFinal: StoreSnapshot | undefined;
  /** Every other blob of the 10 images (spec, options, rw layer diff, index), distinct. */
  otherBlobsBytes: number;
  first: DiskBytes;
  total: DiskBytes;
  ratioToFirst: { apparent: number | null; real: number | null };
  /** Did every blob of every image exist at the end? */
  imagesComplete: boolean;
  missingBlobs: string[];
  /** The first image of the series restored at the end. */
  restoreOfFirst: RestoreSample | { error: string } | undefined;
  /** pageshare: each image of the series restored once in map mode, one after another. */
  mapRestores?: MapRestoreStep[];
}

interface MapRestoreStep {
  index: number;
  ms: number;
  /** Lines of the restored process's /proc/PID/maps that map a page-cache file. */
  mappings: number;
  /** The page-cache files so far ($PAGESHARE_ROOT/page-cache). */
  pageCache: DiskBytes;
  /** The whole store root, page-cache files included. */
  store: DiskBytes;
}

/** Mappings of page-cache files in a process (what map mode gives a restored process). */
function pageCacheMappings(pid: number): number {
  return fs
    .readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter((l) => l.includes('/.pageshare-pages/')).length;
}

interface RuntimeResult {
  runtime: string;
  rounds: RoundSample[];
  summary: Record<string, Summary>;
  series: SeriesResult | undefined;
}

async function runBenchmark(): Promise<BenchReport> {
  const started = new Date();
  const cpuAtStart = cpuTimes();
  const { workDir, storeRoot, ctdDir } = makeBenchDirs('bc-');
  let containerd: Containerd | undefined;
  let lab: Lab | undefined;
  const results: Record<RuntimeKey, RuntimeResult> = {
    stock: { runtime: RUNC_RUNTIME, rounds: [], summary: {}, series: undefined },
    pageshare: { runtime: PAGESHARE_RUNTIME, rounds: [], summary: {}, series: undefined },
  };
  const notes: string[] = [];
  let shimLog: string[] = [];
  const removeRuncNamespaceDir = runcNamespaceDirCleanup(NAMESPACE);
  let cleaning: Promise<void> | undefined;
  // Shared by the normal end and an interrupt: it runs once, and both wait for all of it.
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      if (lab) {
        lab.aborted = true;
        await lab.removeEverything().catch(() => undefined);
      }
      if (containerd) await containerd.stop().catch((err: unknown) => log(`containerd stop: ${String(err)}`));
      if (containerd) removeServerFiles(containerd.address);
      removeRuncNamespaceDir();
      fs.rmSync(workDir, { recursive: true, force: true });
    })());
  const unregister = onInterrupt(cleanup);
  try {
    log(`building the Node image from ${NODE_BINARY} and starting containerd 1.7`);
    const image = await buildNodeImage(path.join(workDir, 'node-image.tar'));
    containerd = await startContainerd({ version: '1.7', logLevel: 'info', env: { PAGESHARE_ROOT: storeRoot, XDG_RUNTIME_DIR: ctdDir } });
    lab = new Lab(containerd, ctdDir, storeRoot);
    const machine = await machineInfo(containerd);
    const source = await sourceVersion();
    await containerd.ctrOk(['namespaces', 'create', NAMESPACE]);
    await importImage(containerd, path.join(workDir, 'node-image.tar'), { namespace: NAMESPACE });
    fs.rmSync(path.join(workDir, 'node-image.tar'), { force: true });
    const [stock, ours] = RUNTIMES as [RuntimeDef, RuntimeDef];

    // 1-3. Rounds: a fresh container per runtime and round, checkpointed once (pageshare
    // into an emptied store) and restored once; round 0 is a warm-up.
    for (let round = 0; round <= REPEAT; round++) {
      const order = round % 2 === 0 ? [stock, ours] : [ours, stock];
      for (const def of order) {
        const sample = await oneRound(lab, def, round, storeRoot);
        results[def.key].rounds.push(sample);
      }
      log(
        `round ${round}${round === 0 ? ' (warm-up)' : ''}: ` +
          order
            .map((d) => {
              const s = results[d.key].rounds[results[d.key].rounds.length - 1] as RoundSample;
              const steal = `CPU steal ${fmt((s.cpuSteal.checkpoint ?? NaN) * 100, 0)}% / ${fmt((s.cpuSteal.restore ?? NaN) * 100, 0)}%`;
              return `${d.key} checkpoint ${fmt(s.checkpoint.ms, 0)} ms, restore ${fmt(s.restore.ms, 0)} ms, ${fmt(s.total.apparent / MiB, 1)} MiB, ${steal}`;
            })
            .join('; '),
      );
    }

    // 4. Series: one running container per runtime, SERIES checkpoints each, interleaved.
    emptyStore(storeRoot);
    const apps: Record<RuntimeKey, RunningApp> = {
      stock: await lab.runApp(stock, lab.id('series-stock')),
      pageshare: await lab.runApp(ours, lab.id('series-pageshare')),
    };
    await sleep(SETTLE_MS);
    const steps: Record<RuntimeKey, SeriesStep[]> = { stock: [], pageshare: [] };
    const images: Record<RuntimeKey, CheckpointImage[]> = { stock: [], pageshare: [] };
    for (let i = 0; i < SERIES; i++) {
      const order = i % 2 === 0 ? [stock, ours] : [ours, stock];
      for (const def of order) {
        const prev = images[def.key][i - 1];
        let specRemoved: string | null = null;
        if (prev?.spec) {
          await lab.removeContent(prev.spec.digest);
          specRemoved = prev.spec.digest;
        }
        const ref = lab.ref(`series-${def.key}-${i}`);
        const ck = await lab.checkpoint(def, apps[def.key].id, ref);
        const img = await lab.inspect(ref);
        images[def.key].push(img);
        const tarsSoFar = images[def.key].reduce((sum, x) => addBytes(sum, x.criuTar.onDisk), { apparent: 0, real: 0 });
        if (def.key === 'pageshare') await settleStore(storeRoot);
        const storeDu = def.key === 'pageshare' ? await du(storeRoot) : undefined;
        steps[def.key].push({
          index: i,
          ref,
          ms: ck.result.ms,
          phases: ck.phases,
          specRemoved,
          criuTar: img.criuTar.onDisk,
          indexDigest: img.indexDigest,
          storeDu,
          cumulative: storeDu ? addBytes(tarsSoFar, storeDu) : tarsSoFar,
        });
      }
      log(`series checkpoint ${i + 1}/${SERIES}: ${order.map((d) => `${d.key} ${fmt(steps[d.key][i]?.ms, 0)} ms, total ${fmt((steps[d.key][i]?.cumulative.apparent ?? NaN) / MiB, 1)} MiB`).join('; ')}`);
      if (i < SERIES - 1) await sleep(SERIES_GAP_MS);
    }
    const present = await lab.contentDigests();
    for (const def of RUNTIMES) {
      const s = steps[def.key];
      const imgs = images[def.key];
      const missing = [...new Set(imgs.flatMap((img) => [img.indexDigest, ...img.blobs.map((b) => b.digest)]))].filter((d) => !present.has(d));
      const other = new Map<string, number>();
      for (const img of imgs) {
        for (const b of img.blobs) if (b.mediaType !== CRIU_TAR_MEDIA_TYPE && !b.mediaType.includes('image.manifest')) other.set(b.digest, b.size);
      }
      const last = s[s.length - 1] as SeriesStep;
      const first = s[0] as SeriesStep;
      results[def.key].series = {
        id: apps[def.key].id,
        steps: s,
        tarsTotal: imgs.reduce((sum, x) => addBytes(sum, x.criuTar.onDisk), { apparent: 0, real: 0 }),
        storeFinal: def.key === 'pageshare' ? await storeSnapshot(storeRoot) : undefined,
        otherBlobsBytes: [...other.values()].reduce((a, b) => a + b, 0),
        first: first.cumulative,
        total: last.cumulative,
        ratioToFirst: { apparent: ratio(last.cumulative.apparent, first.cumulative.apparent), real: ratio(last.cumulative.real, first.cumulative.real) },
        imagesComplete: missing.length === 0,
        missingBlobs: missing,
        restoreOfFirst: undefined,
      };
      if (missing.length > 0) notes.push(`${def.key}: ${missing.length} blob(s) of the series images missing at the end: ${missing.join(', ')}`);
    }
    // The first image of each series must still restore (the spec blob was deleted and rewritten since).
    for (const def of RUNTIMES) {
      const series = results[def.key].series as SeriesResult;
      const ref = steps[def.key][0]?.ref as string;
      const id = lab.id(`series-${def.key}-0-restored`);
      try {
        series.restoreOfFirst = await lab.restore(def, id, ref);
        log(`series ${def.key}: first image restored in ${fmt(series.restoreOfFirst.ms, 0)} ms, app progressing`);
      } catch (err) {
        series.restoreOfFirst = { error: err instanceof Error ? err.message : String(err) };
        notes.push(`${def.key}: restoring the first series image failed: ${series.restoreOfFirst.error}`);
      }
      await lab.removeContainers([id]).catch(() => undefined);
    }
    // Every series image restored once more by pageshare (map mode: the app is Node.js), one
    // after another: how page-cache files and mappings grow with the checkpoints.
    const ourSeries = results.pageshare.series;
    if (ourSeries !== undefined) {
      const mapped: MapRestoreStep[] = [];
      for (const [index, step] of steps.pageshare.entries()) {
        const id = lab.id(`series-pageshare-${index}-mapped`);
        try {
          const r = await lab.restore(ours, id, step.ref);
          mapped.push({ index, ms: r.ms, mappings: pageCacheMappings(r.pid), pageCache: await du(path.join(storeRoot, 'page-cache')), store: await du(storeRoot) });
        } catch (err) {
          notes.push(`pageshare: map-mode restore of series image ${index} failed: ${err instanceof Error ? err.message : String(err)}`);
          break;
        } finally {
          await lab.removeContainers([id]).catch(() => undefined);
        }
      }
      ourSeries.mapRestores = mapped;
      if (mapped.length > 0) {
        const firstStep = mapped[0] as MapRestoreStep;
        const lastStep = mapped[mapped.length - 1] as MapRestoreStep;
        notes.push(
          `pageshare: the ${mapped.length} series images each restored once in map mode: ${mapped.map((m) => m.mappings).join(', ')} page-cache mappings per restored process; ` +
            `page-cache files ${fmt(firstStep.pageCache.real / MiB, 1)} MiB after the 1st, ${fmt(lastStep.pageCache.real / MiB, 1)} MiB after the last (one file per checkpoint, not deduplicated); ` +
            `store root with them ${fmt(lastStep.store.real / MiB, 1)} MiB`,
        );
      }
    }
    shimLog = pageshareServerLog(containerd.address, NAMESPACE);
    for (const def of RUNTIMES) {
      const members = results[def.key].rounds.find((s) => s.tarMembers)?.tarMembers;
      if (members && members.length > 0) {
        const total = members.reduce((n, m) => n + m.size, 0);
        const top = members.slice(0, 3).map((m) => `${m.name} ${fmt(m.size / MiB, 2)} MiB`).join(', ');
        notes.push(`${def.key}: the criu tar holds ${members.length} files, ${fmt(total / MiB, 2)} MiB; largest: ${top}`);
      }
      const restores = results[def.key].rounds.map((s) => s.restore);
      const left = restores.map((r) => r.leftInContainerdTemp);
      const dirs = left.reduce((n, l) => n + l.entries.length, 0);
      if (dirs > 0) {
        const bytes = left.reduce((sum, l) => addBytes(sum, l.bytes), { apparent: 0, real: 0 });
        notes.push(
          `${def.key}: containerd 1.7 left ${dirs} ctrd-checkpoint* dir(s) in its temp dir after ${restores.length} restores ` +
            `(the extracted checkpoint, never removed: containerd/containerd#10166), ${fmt(bytes.real / MiB, 1)} MiB on disk in all ` +
            `(${fmt(bytes.real / MiB / restores.length, 1)} MiB per restore); by default that dir is /tmp`,
        );
      }
    }

    for (const def of RUNTIMES) {
      const r = results[def.key];
      const measured = r.rounds.filter((s) => !s.warmup);
      const pick = (f: (s: RoundSample) => number | null | undefined): Summary =>
        summarize(measured.map(f).filter((x): x is number => typeof x === 'number' && Number.isFinite(x)));
      r.summary = {
        checkpointMs: pick((s) => s.checkpoint.ms),
        restoreMs: pick((s) => s.restore.ms),
        restoreFirstHeartbeatMs: pick((s) => s.restore.firstHeartbeatMs),
        restoreProgressConfirmedMs: pick((s) => s.restore.progressConfirmedMs),
        criuTarApparent: pick((s) => s.image.criuTar.onDisk.apparent),
        criuTarReal: pick((s) => s.image.criuTar.onDisk.real),
        storeApparent: pick((s) => s.store?.du.apparent),
        storeReal: pick((s) => s.store?.du.real),
        totalApparent: pick((s) => s.total.apparent),
        totalReal: pick((s) => s.total.real),
        appRss: pick((s) => s.app.memoryAtCheckpoint?.rss),
        seriesCheckpointMs: summarize((r.series?.steps ?? []).map((s) => s.ms)),
        ...Object.fromEntries(
          (['beforeDump', 'dump', 'ingest', 'containerdTar', 'after'] as const).map((k) => [`checkpointPhase.${k}`, pick((s) => s.checkpoint.phases[k])]),
        ),
        ...Object.fromEntries(
          (['beforeCreate', 'extractAndCreate', 'pageRebuild', 'runcRestore'] as const).map((k) => [`restorePhase.${k}`, pick((s) => s.restore.phases[k])]),
        ),
      };
      const late = measured.filter((s) => !s.restore.runningAtOnce);
      if (late.length > 0) notes.push(`${def.key}: ${late.length} restored task(s) not yet RUNNING when ctr returned`);
      const missedPhases = measured.filter((s) =>
        Object.entries(s.checkpoint.phases).some(([k, v]) => v === null && !(def.key === 'stock' && k === 'ingest')),
      );
      if (missedPhases.length > 0) notes.push(`${def.key}: some checkpoint phase events were not seen by the ${POLL_MS} ms poller in ${missedPhases.length} round(s)`);
      const missedRestore = measured.filter((s) =>
        Object.entries(s.restore.phases).some(([k, v]) => v === null && !(def.key === 'stock' && k === 'pageRebuild')),
      );
      if (missedRestore.length > 0) notes.push(`${def.key}: some restore phase events were not seen by the ${POLL_MS} ms poller in ${missedRestore.length} round(s)`);
    }

    const steal = stealShare(cpuAtStart, cpuTimes());
    if (steal !== null && steal > 0.01) {
      notes.push(`CPU steal: the hypervisor took ${fmt(steal * 100, 0)}% of this VM's CPU time during the run (per round in the raw samples, cpuSteal); times vary with it`);
    }
    const { rows, ratios, goals } = buildRows(results);
    const table = renderTable(machine.containerd ?? '1.7', machine.nproc, os.release(), source, rows, notes);
    const resultFile = writeResult('checkpoint', {
      benchmark: 'checkpoint',
      timestamp: started.toISOString(),
      durationMs: Date.now() - started.getTime(),
      machine,
      source,
      config: {
        containerdVersion: '1.7',
        namespace: NAMESPACE,
        image: { name: IMAGE, ...image },
        app: { heapMb: HEAP_MB, command: ['/usr/bin/node', '--expose-gc', '/app/app.js'], source: APP_JS },
        repeat: REPEAT,
        warmupRounds: 1,
        series: SERIES,
        settleMs: SETTLE_MS,
        seriesGapMs: SERIES_GAP_MS,
        pollMs: POLL_MS,
        checkpointCommand: 'ctr containers checkpoint --task --image --rw C REF',
        restoreCommand: 'ctr containers restore --live --rw C2 REF',
        storeRoot: 'a temp dir, set as PAGESHARE_ROOT in containerd\'s environment; emptied before each round\'s pageshare checkpoint and before the series',
        containerdTempDir: 'XDG_RUNTIME_DIR of containerd set to a private temp dir, so the phase poller sees only this run\'s checkpoint dirs',
        seriesWorkaround:
          'before checkpoint i > 0 of a container: `ctr content rm <spec blob of checkpoint i-1>` (containerd 1.7.24 fails the whole Checkpoint RPC with "content already exists" on the identical spec blob and ctr then silently stores an index without the criu tar); checkpoint i writes the identical spec blob again, so every earlier image is whole again',
        order: 'rounds alternate which runtime goes first; series checkpoints alternate likewise',
        percentile: 'nearest rank',
        units: { time: 'ms', size: 'bytes' },
      },
      runtimes: results,
      ratios,
      goals,
      table: rows,
      notes,
      shimLog,
      footnotes: FOOTNOTES,
    });
    return { table, resultFile };
  } finally {
    unregister();
    await cleanup();
  }
}

async function oneRound(lab: Lab, def: RuntimeDef, round: number, storeRoot: string): Promise<RoundSample> {
  const name = `r${round}-${def.key}`;
  const id = lab.id(name);
  const ref = lab.ref(name);
  const restoredId = lab.id(`${name}-restored`);
  try {
    const app = await lab.runApp(def, id);
    await sleep(SETTLE_MS);
    if (def.key === 'pageshare') emptyStore(storeRoot);
    let memoryAtCheckpoint: Memory | undefined;
    try {
      memoryAtCheckpoint = readMemory(app.pid);
    } catch {
      memoryAtCheckpoint = undefined;
    }
    const cpuBefore = cpuTimes();
    const ck = await lab.checkpoint(def, id, ref);
    const cpuAfterCheckpoint = cpuTimes();
    const image = await lab.inspect(ref);
    const tarMembers = round === 1 ? await listTar(lab.blobFile(image.criuTar.digest)) : undefined;
    const store = def.key === 'pageshare' ? await storeSnapshot(storeRoot) : undefined;
    const total = store ? addBytes(image.criuTar.onDisk, store.du) : image.criuTar.onDisk;
    const cpuBeforeRestore = cpuTimes();
    const restore = await lab.restore(def, restoredId, ref);
    const cpuAfter = cpuTimes();
    return {
      cpuSteal: { checkpoint: stealShare(cpuBefore, cpuAfterCheckpoint), restore: stealShare(cpuBeforeRestore, cpuAfter) },
      round,
      warmup: round === 0,
      id,
      ref,
      app: { runMs: app.runMs, readyAfterMs: app.readyAfterMs, ready: app.ready, memoryAtCheckpoint },
      checkpoint: { ms: ck.result.ms, phases: ck.phases, phaseTimes: ck.phaseTimes },
      image,
      tarMembers,
      store,
      total,
      restore,
    };
  } finally {
    await lab.removeContainers([restoredId, id]);
    await lab.removeImages([ref]);
  }
}

// ---------------------------------------------------------------------------------------
// The table

interface Row {
  metric: string;
  unit: string;
  stock: number | null;
  pageshare: number | null;
  ratio: number | null;
  digits: number;
  goal: string;
}

interface Goal {
  metric: string;
  goal: string;
  value: number | null;
  met: boolean | null;
}

function buildRows(results: Record<RuntimeKey, RuntimeResult>): { rows: Row[]; ratios: Record<string, number | null>; goals: Goal[] } {
  const rows: Row[] = [];
  const ratios: Record<string, number | null> = {};
  const goals: Goal[] = [];
  const add = (key: string, metric: string, unit: string, pick: (r: RuntimeResult) => number | null | undefined, digits: number, goal = ''): void => {
    const s = pick(results.stock);
    const p = pick(results.pageshare);
    const q = s === undefined || s === null || p === undefined || p === null ? null : ratio(p, s);
    ratios[key] = q;
    rows.push({ metric, unit, stock: s ?? null, pageshare: p ?? null, ratio: q, digits, goal });
  };
  const med = (r: RuntimeResult, k: string): number | undefined => {
    const m = r.summary[k]?.median;
    return m === undefined || !Number.isFinite(m) ? undefined : m;
  };
  const mibMed = (r: RuntimeResult, k: string): number | undefined => {
    const m = med(r, k);
    return m === undefined ? undefined : m / MiB;
  };
  const n = REPEAT;
  add('checkpoint.ms', `checkpoint: ctr containers checkpoint --task --image --rw (median, n=${n})`, 'ms', (r) => med(r, 'checkpointMs'), 0, 'pageshare/stock <= 1.25x');
  add('checkpoint.max', '  max', 'ms', (r) => r.summary['checkpointMs']?.max, 0);
  add('checkpoint.phase.beforeDump', '  phase: pause, rw diff, until the Checkpoint RPC reaches the shim', 'ms', (r) => med(r, 'checkpointPhase.beforeDump'), 0);
  add('checkpoint.phase.dump', '  phase: runc checkpoint / CRIU dump (until inventory.img)', 'ms', (r) => med(r, 'checkpointPhase.dump'), 0);
  add('checkpoint.phase.ingest', '  phase: page ingest into the store + manifest (pageshare)', 'ms', (r) => med(r, 'checkpointPhase.ingest'), 0);
  add('checkpoint.phase.containerdTar', '  phase: shim returns, containerd tars the dir into its store', 'ms', (r) => med(r, 'checkpointPhase.containerdTar'), 0);
  add('checkpoint.phase.after', '  phase: index + image records, resume, ctr exit', 'ms', (r) => med(r, 'checkpointPhase.after'), 0);
  add('restore.ms', `restore: ctr containers restore --live --rw (median, n=${n})`, 'ms', (r) => med(r, 'restoreMs'), 0, 'pageshare/stock <= 1.25x');
  add('restore.max', '  max', 'ms', (r) => r.summary['restoreMs']?.max, 0);
  add('restore.phase.beforeCreate', '  phase: container, rootfs + rw layer, until task Create', 'ms', (r) => med(r, 'restorePhase.beforeCreate'), 0);
  add('restore.phase.extractAndCreate', '  phase: tar extracted, shim Create, Start begins', 'ms', (r) => med(r, 'restorePhase.extractAndCreate'), 0);
  add('restore.phase.pageRebuild', '  phase: pages rebuilt from the store, verified (pageshare)', 'ms', (r) => med(r, 'restorePhase.pageRebuild'), 0);
  add('restore.phase.runcRestore', '  phase: runc restore / CRIU, until ctr exits', 'ms', (r) => med(r, 'restorePhase.runcRestore'), 0);
  add('restore.firstHeartbeat', '  restore call -> first heartbeat of the restored app', 'ms', (r) => med(r, 'restoreFirstHeartbeatMs'), 0);
  add('app.rss', 'app RSS at checkpoint', 'MiB', (r) => mibMed(r, 'appRss'), 1);
  add('one.criuTar.apparent', 'one checkpoint: criu tar in containerd, apparent', 'MiB', (r) => mibMed(r, 'criuTarApparent'), 1);
  add('one.criuTar.real', '  real blocks', 'MiB', (r) => mibMed(r, 'criuTarReal'), 1);
  add('one.store.apparent', '  + page store (du, fresh store), apparent', 'MiB', (r) => mibMed(r, 'storeApparent'), 1);
  add('one.store.real', '  + page store, real blocks', 'MiB', (r) => mibMed(r, 'storeReal'), 1);
  add('one.total.apparent', '  = one checkpoint on disk, apparent', 'MiB', (r) => mibMed(r, 'totalApparent'), 1);
  add('one.total.real', '  = one checkpoint on disk, real blocks', 'MiB', (r) => mibMed(r, 'totalReal'), 1);
  const series = (r: RuntimeResult): SeriesResult | undefined => r.series;
  add('series.first.apparent', `${SERIES} checkpoints of one running container: after the 1st, apparent`, 'MiB', (r) => mib(series(r)?.first.apparent), 1);
  add('series.total.apparent', `  after the ${SERIES}th, apparent`, 'MiB', (r) => mib(series(r)?.total.apparent), 1);
  add('series.total.real', `  after the ${SERIES}th, real blocks`, 'MiB', (r) => mib(series(r)?.total.real), 1);
  add('series.ratioToFirst.apparent', `  ${SERIES} / 1, apparent`, 'x', (r) => series(r)?.ratioToFirst.apparent, 2, 'pageshare <= 1.3x (stock ~10x)');
  add('series.ratioToFirst.real', `  ${SERIES} / 1, real blocks`, 'x', (r) => series(r)?.ratioToFirst.real, 2, 'pageshare <= 1.3x');
  add('series.checkpoint.ms', `  checkpoint time in the series (median, n=${SERIES})`, 'ms', (r) => r.summary['seriesCheckpointMs']?.median, 0);

  const goal = (metric: string, text: string, value: number | null, limit: number): void => {
    goals.push({ metric, goal: text, value, met: value === null ? null : value <= limit });
  };
  goal('checkpoint time, pageshare/stock', '<= 1.25', ratios['checkpoint.ms'] ?? null, 1.25);
  goal('restore time, pageshare/stock', '<= 1.25', ratios['restore.ms'] ?? null, 1.25);
  goal(`pageshare bytes on disk, ${SERIES} checkpoints / 1 (apparent)`, '<= 1.3', results.pageshare.series?.ratioToFirst.apparent ?? null, 1.3);
  goal(`pageshare bytes on disk, ${SERIES} checkpoints / 1 (real blocks)`, '<= 1.3', results.pageshare.series?.ratioToFirst.real ?? null, 1.3);
  return { rows, ratios, goals };
}

function mib(bytes: number | undefined): number | undefined {
  return bytes === undefined ? undefined : bytes / MiB;
}

const FOOTNOTES: readonly string[] = [
  `Workload: node (the host's binary + the libraries ldd names) running a ${HEAP_MB} MB deterministic data set (records, strings,`,
  '  number arrays, Float64Arrays); ~3% of it (allocated together) is mutated every 100 ms, a sample of the rest read.',
  'Times: wall time of the ctr command, spawn to exit, median of the measured rounds (a warm-up round per runtime first).',
  '  Each round: a fresh container, one checkpoint, one restore of it into a new container (the original keeps running).',
  '  Phases are seen from outside by polling (every 5 ms) containerd\'s temp dir, the pageshare shim\'s scratch dir and',
  '  runc\'s state dir: "dump" ends when CRIU writes inventory.img, "runc restore" begins when runc makes its state dir',
  '  (both runtimes); pageshare\'s ingest ends when its manifest appears in containerd\'s dir. "first heartbeat": the',
  '  restored app wrote its 20 ms heartbeat file.',
  'Sizes: the criu tar blob in containerd\'s content store (st_size and st_blocks*512); pageshare adds its whole page store',
  '  ($PAGESHARE_ROOT: packs, SQLite index; du --apparent-size / du), emptied before each round\'s checkpoint.',
  `Series: ${SERIES} checkpoints of one running container, 1 s apart, each kept under its own image name; the ratio divides`,
  '  the bytes after the 10th by the bytes after the 1st of the same series. containerd 1.7.24 refuses a second checkpoint',
  '  image of a container (identical spec blob: "content already exists"): before each further checkpoint the previous',
  '  spec blob was deleted with `ctr content rm`, and the checkpoint wrote the identical blob back.',
];

function renderTable(
  containerdVersion: string,
  nproc: number,
  kernel: string,
  source: { commit: string; shimDirty: boolean } | undefined,
  rows: readonly Row[],
  notes: readonly string[],
): string {
  const header = ['checkpoint', 'unit', 'runc.v2 (stock)', 'pageshare', 'pageshare/stock', 'goal'];
  const body = rows.map((r) => [r.metric, r.unit, fmt(r.stock, r.digits), fmt(r.pageshare, r.digits), fmtRatio(r.ratio), r.goal]);
  const title = `Checkpoint/restore: containerd ${containerdVersion}, ${nproc} CPUs, kernel ${kernel}, node ${process.version}${describeSource(source)}`;
  const parts = [title, '', formatTable(header, body, ['left', 'left', 'right', 'right', 'right', 'left']), '', ...FOOTNOTES];
  if (notes.length > 0) parts.push('', 'Notes from this run:', ...notes.map((n) => `  - ${n}`));
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------
// The pageshare server's files

/** The lock and log files a pageshare server leaves in its state dir for our namespace. */
function removeServerFiles(address: string): void {
  const files = shimServerFiles(address, NAMESPACE);
  const pid = Number(fs.existsSync(files.pid) ? fs.readFileSync(files.pid, 'utf8').trim() : 0);
  if (pid > 0 && processAlive(pid)) return; // still serving: not ours to touch
  for (const f of Object.values(files)) fs.rmSync(f, { force: true });
}

export const checkpoint: BenchModule = { name: 'checkpoint', run: runBenchmark };
