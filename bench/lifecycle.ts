/**
 * Lifecycle benchmark: the stock containerd-shim-runc-v2 (io.containerd.runc.v2) and
 * pageshare (io.containerd.pageshare.v1) side by side on ONE private containerd 1.7, in
 * one run:
 *
 *  1. `ctr run -d` latency (ctr returns after Start; the task is then confirmed RUNNING):
 *     cold = the first container of a fresh namespace (for pageshare this also starts the
 *     namespace's Node server), warm = further containers, runtimes interleaved.
 *  2. `ctr task exec` latency of `true` in a running container, interleaved.
 *  3. Shim memory from /proc/PID/smaps_rollup with 1 and with 10 running containers, each
 *     runtime measured alone: stock = the containerd-shim-runc-v2 processes (one per
 *     container), pageshare = the server process; both found as the parents of the
 *     containers' init processes.
 *  4. pageshare/stock ratios of every figure.
 *
 * Only measures and prints; writes bench/results/lifecycle.json.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, type Containerd } from '../integration/harness/containerd';
import { buildBusyboxImage, importImage } from '../integration/harness/image';
import { PAGESHARE_RUNTIME, RUNC_RUNTIME } from '../integration/harness/paths';
import { sleep, waitFor } from '../integration/harness/wait';
import { shimServerFiles } from '../shim/bootstrap/shim-socket';
import {
  addMemory,
  cmdline,
  findProcesses,
  fmt,
  fmtRatio,
  formatTable,
  machineInfo,
  medianMemory,
  MEMORY_FIELDS,
  MiB,
  onInterrupt,
  parentPid,
  processAlive,
  ratio,
  readMemory,
  summarize,
  timedCtr,
  writeResult,
  zeroMemory,
  type BenchModule,
  type RuntimeDef,
  type RuntimeKey,
  type BenchReport,
  type Memory,
  type Summary,
  type TimedResult,
} from './common';

interface ShimRuntimeDef extends RuntimeDef {
  /** Does this command line belong to this runtime's shim (of the containerd at `address`)? */
  isShim(cmd: string, address: string): boolean;
}

const RUNTIMES: readonly ShimRuntimeDef[] = [
  {
    key: 'stock',
    runtime: RUNC_RUNTIME,
    label: 'runc.v2 (stock)',
    isShim: (cmd, address) => /(^|\/)containerd-shim-runc-v2 /.test(cmd) && cmd.includes(`-address ${address}`),
  },
  {
    key: 'pageshare',
    runtime: PAGESHARE_RUNTIME,
    label: 'pageshare',
    isShim: (cmd, address) => cmd.includes('/dist/shim/main.js ') && cmd.includes(`-address ${address}`) && / serve$/.test(cmd),
  },
];

const IMAGE = 'docker.io/library/bl-bench:latest';
/** Measured repetitions per runtime (run -d and exec). */
const REPEAT = positiveInt(process.env['BENCH_REPEAT'], 10);
/** Fresh namespaces, each with one first container per runtime. */
const COLD_ROUNDS = positiveInt(process.env['BENCH_COLD_ROUNDS'], 3);
/** Containers in the big memory phase. */
const MANY = 10;
/** Wait after starting containers before reading memory. */
const SETTLE_MS = 2000;
/** Memory readings per point (median taken), this far apart. */
const MEMORY_READINGS = 3;
const MEMORY_READING_GAP_MS = 500;

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

interface RunSample {
  id: string;
  namespace: string;
  ms: number;
  /** Was the task RUNNING at the first `ctr tasks ls` after ctr returned? */
  runningAtOnce: boolean;
}

interface MemoryPoint {
  containers: number;
  shimPids: number[];
  /** Shim pids found by command line (-address of this containerd), for cross-checking. */
  shimPidsByCmdline: number[];
  shimCmdline: string;
  /** Each reading: the sum over shimPids. */
  readings: Memory[];
  /** Per-process figures of the last reading. */
  perProcess: Array<{ pid: number; memory: Memory }>;
  median: Memory;
}

interface RuntimeResult {
  runtime: string;
  run: {
    cold: RunSample[];
    coldSummary: Summary;
    warmup: RunSample | undefined;
    warm: RunSample[];
    warmSummary: Summary;
    /** The untimed-for-the-table starts of the memory phase, for reference. */
    memoryPhase: RunSample[];
  };
  exec: {
    warmupMs: number | undefined;
    samplesMs: number[];
    summary: Summary;
  };
  memory: {
    one: MemoryPoint | undefined;
    many: MemoryPoint | undefined;
    /** (many - one) / (MANY - 1): what one more container costs. */
    perExtraContainer: Memory | undefined;
  };
}

function emptyRuntimeResult(def: RuntimeDef): RuntimeResult {
  return {
    runtime: def.runtime,
    run: { cold: [], coldSummary: summarize([]), warmup: undefined, warm: [], warmSummary: summarize([]), memoryPhase: [] },
    exec: { warmupMs: undefined, samplesMs: [], summary: summarize([]) },
    memory: { one: undefined, many: undefined, perExtraContainer: undefined },
  };
}

/** The containers this run created, by namespace, and the operations on them. */
class Lab {
  private readonly live = new Map<string, Set<string>>();
  readonly namespaces = new Set<string>();
  private readonly tag = crypto.randomBytes(3).toString('hex');

  constructor(readonly containerd: Containerd) {}

  /** A container id unique to this run: `bl-<random>-<name>`. */
  id(name: string): string {
    return `bl-${this.tag}-${name}`;
  }

  /** Creates the namespace and imports the image into it (images are per namespace). */
  async createNamespace(ns: string, imageTar: string): Promise<void> {
    this.namespaces.add(ns);
    await this.containerd.ctrOk(['namespaces', 'create', ns]);
    await importImage(this.containerd, imageTar, { namespace: ns });
  }

  /** `ctr run -d --runtime RT IMAGE id sleep 1000`, timed; then confirms the task RUNNING. */
  async runDetached(ns: string, def: RuntimeDef, id: string): Promise<RunSample> {
    this.namespaces.add(ns);
    const r: TimedResult = await timedCtr(this.containerd, ns, ['run', '-d', '--runtime', def.runtime, IMAGE, id, 'sleep', '1000']);
    // Tracked even on failure: ctr may have created the container before failing.
    let set = this.live.get(ns);
    if (!set) this.live.set(ns, (set = new Set()));
    set.add(id);
    if (r.code !== 0) throw new Error(`ctr run -d (${def.runtime}) ${id} exited ${r.code}: ${r.stderr.trim()}`);
    let runningAtOnce = (await this.containerd.taskStatus(id, ns)) === 'RUNNING';
    if (!runningAtOnce) {
      await waitFor(`${id} RUNNING`, async () => (await this.containerd.taskStatus(id, ns)) === 'RUNNING', { timeoutMs: 10_000 });
    }
    return { id, namespace: ns, ms: r.ms, runningAtOnce };
  }

  async exec(ns: string, id: string, execId: string): Promise<number> {
    const r = await timedCtr(this.containerd, ns, ['task', 'exec', '--exec-id', execId, id, 'true']);
    if (r.code !== 0) throw new Error(`ctr task exec ${id} ${execId} exited ${r.code}: ${r.stderr.trim()}`);
    return r.ms;
  }

  async initPid(ns: string, id: string): Promise<number> {
    const task = (await this.containerd.tasks(ns)).find((t) => t.id === id);
    if (!task || !(task.pid > 0)) throw new Error(`no task ${id} in ${ns}`);
    return task.pid;
  }

  /** SIGKILLs the tasks of the namespace's containers, deletes tasks and containers. */
  async removeAll(ns: string): Promise<void> {
    const ids = [...(this.live.get(ns) ?? [])];
    const c = this.containerd;
    await Promise.all(ids.map((id) => c.ctr(['task', 'kill', '-s', 'SIGKILL', id], { namespace: ns, timeoutMs: 15_000 })));
    await waitFor(
      `tasks of ${ns} stopped`,
      async () => (await c.tasks(ns)).every((t) => !ids.includes(t.id) || t.status !== 'RUNNING'),
      { timeoutMs: 20_000 },
    ).catch(() => undefined);
    for (const id of ids) {
      await c.ctr(['task', 'rm', '-f', id], { namespace: ns, timeoutMs: 15_000 });
      await c.ctr(['container', 'rm', id], { namespace: ns, timeoutMs: 15_000 });
      this.live.get(ns)?.delete(id);
    }
  }

  async removeEverything(): Promise<void> {
    for (const ns of this.live.keys()) await this.removeAll(ns).catch(() => undefined);
  }

  /** Live shim processes of either runtime belonging to this containerd. */
  shimProcesses(): number[] {
    const address = this.containerd.address;
    return findProcesses((cmd) => RUNTIMES.some((d) => d.isShim(cmd, address)));
  }

  /** Waits (bounded) until no shim of this containerd runs; returns what is left. */
  async waitNoShims(timeoutMs = 20_000): Promise<number[]> {
    try {
      await waitFor('no shims left', () => this.shimProcesses().length === 0, { timeoutMs, intervalMs: 100 });
      return [];
    } catch {
      return this.shimProcesses();
    }
  }
}

/** The distinct parents of the containers' init processes, each checked to be `def`'s shim. */
async function shimPidsOf(lab: Lab, def: ShimRuntimeDef, ns: string, ids: readonly string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const id of ids) {
    const init = await lab.initPid(ns, id);
    const parent = parentPid(init);
    if (parent === undefined) throw new Error(`${id}: init ${init} has no parent`);
    const cmd = cmdline(parent);
    if (!def.isShim(cmd, lab.containerd.address)) {
      throw new Error(`${id}: parent ${parent} of init ${init} is not the ${def.key} shim: ${JSON.stringify(cmd)}`);
    }
    pids.add(parent);
  }
  return [...pids].sort((a, b) => a - b);
}

async function measureMemory(lab: Lab, def: ShimRuntimeDef, ns: string, ids: readonly string[]): Promise<MemoryPoint> {
  const shimPids = await shimPidsOf(lab, def, ns, ids);
  const shimPidsByCmdline = findProcesses((cmd) => def.isShim(cmd, lab.containerd.address));
  const readings: Memory[] = [];
  let perProcess: Array<{ pid: number; memory: Memory }> = [];
  for (let i = 0; i < MEMORY_READINGS; i++) {
    if (i > 0) await sleep(MEMORY_READING_GAP_MS);
    perProcess = shimPids.map((pid) => ({ pid, memory: readMemory(pid) }));
    readings.push(perProcess.reduce((sum, p) => addMemory(sum, p.memory), zeroMemory()));
  }
  return {
    containers: ids.length,
    shimPids,
    shimPidsByCmdline,
    shimCmdline: cmdline(shimPids[0] ?? 0),
    readings,
    perProcess,
    median: medianMemory(readings),
  };
}

function memoryDelta(many: Memory, one: Memory, containers: number): Memory {
  const out = zeroMemory();
  for (const k of MEMORY_FIELDS) out[k] = (many[k] - one[k]) / containers;
  return out;
}

function log(message: string): void {
  process.stderr.write(`[lifecycle] ${message}\n`);
}

async function runBenchmark(): Promise<BenchReport> {
  const started = new Date();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bl-'));
  let containerd: Containerd | undefined;
  let lab: Lab | undefined;
  const results: Record<RuntimeKey, RuntimeResult> = {
    stock: emptyRuntimeResult(RUNTIMES[0] as RuntimeDef),
    pageshare: emptyRuntimeResult(RUNTIMES[1] as RuntimeDef),
  };
  const notes: string[] = [];
  const cleanup = async (): Promise<void> => {
    if (lab) {
      await lab.removeEverything().catch(() => undefined);
      await lab.waitNoShims(10_000).catch(() => undefined); // let the servers exit on their own
    }
    if (containerd) await containerd.stop().catch((err: unknown) => log(`containerd stop: ${String(err)}`));
    if (containerd && lab) removeServerFiles(containerd.address, lab.namespaces);
    fs.rmSync(workDir, { recursive: true, force: true });
  };
  const unregister = onInterrupt(cleanup);
  try {
    log('building the busybox image and starting containerd 1.7');
    const image = await buildBusyboxImage(path.join(workDir, 'busybox.tar'), IMAGE);
    containerd = await startContainerd({ version: '1.7', logLevel: 'info' });
    lab = new Lab(containerd);
    const machine = await machineInfo(containerd);
    const [stock, ours] = RUNTIMES as readonly [ShimRuntimeDef, ShimRuntimeDef];

    // 1a. Cold: the first container of a fresh namespace (pageshare: a new server too).
    for (let round = 0; round < COLD_ROUNDS; round++) {
      const ns = `bl-cold${round}`;
      await lab.createNamespace(ns, image.tarPath);
      const order = round % 2 === 0 ? [stock, ours] : [ours, stock];
      for (const def of order) {
        results[def.key].run.cold.push(await lab.runDetached(ns, def, lab.id(`cold${round}-${def.key}`)));
      }
      log(`cold round ${round + 1}/${COLD_ROUNDS}: ${order.map((d) => `${d.key} ${fmt(results[d.key].run.cold[round]?.ms)} ms`).join(', ')}`);
      await lab.removeAll(ns);
    }

    // 1b. Warm run -d, interleaved, after one untimed (but recorded) warm-up each.
    const latNs = 'bl-lat';
    await lab.createNamespace(latNs, image.tarPath);
    const execTarget: Record<RuntimeKey, string> = { stock: lab.id('lat-stock-w'), pageshare: lab.id('lat-pageshare-w') };
    for (const def of RUNTIMES) results[def.key].run.warmup = await lab.runDetached(latNs, def, execTarget[def.key]);
    for (let i = 0; i < REPEAT; i++) {
      for (const def of RUNTIMES) results[def.key].run.warm.push(await lab.runDetached(latNs, def, lab.id(`lat-${def.key}-${i}`)));
    }
    log(`run -d: ${REPEAT} per runtime done`);

    // 2. exec, interleaved, after one warm-up each.
    for (const def of RUNTIMES) results[def.key].exec.warmupMs = await lab.exec(latNs, execTarget[def.key], 'ewarm');
    for (let i = 0; i < REPEAT; i++) {
      for (const def of RUNTIMES) results[def.key].exec.samplesMs.push(await lab.exec(latNs, execTarget[def.key], `e${i}`));
    }
    log(`exec: ${REPEAT} per runtime done`);
    await lab.removeAll(latNs);

    // 3. Memory, each runtime alone.
    for (const def of RUNTIMES) {
      const left = await lab.waitNoShims();
      if (left.length > 0) notes.push(`before the ${def.key} memory phase, shims still ran: ${left.join(', ')}`);
      const ns = `bl-mem-${def.key}`;
      await lab.createNamespace(ns, image.tarPath);
      const ids: string[] = [];
      const start = async (n: number): Promise<void> => {
        while (ids.length < n) {
          const id = lab!.id(`mem-${def.key}-${ids.length}`);
          results[def.key].run.memoryPhase.push(await lab!.runDetached(ns, def, id));
          ids.push(id);
        }
      };
      await start(1);
      await sleep(SETTLE_MS);
      const one = await measureMemory(lab, def, ns, ids);
      await start(MANY);
      await sleep(SETTLE_MS);
      const many = await measureMemory(lab, def, ns, ids);
      results[def.key].memory = { one, many, perExtraContainer: memoryDelta(many.median, one.median, MANY - 1) };
      for (const point of [one, many]) {
        const a = point.shimPids.join(',');
        const b = point.shimPidsByCmdline.join(',');
        if (a !== b) notes.push(`${def.key} with ${point.containers}: shims by parent [${a}] != by command line [${b}]`);
      }
      log(`memory ${def.key}: PSS ${fmt(one.median.pss / MiB, 2)} MiB (1), ${fmt(many.median.pss / MiB, 2)} MiB (${MANY})`);
      await lab.removeAll(ns);
    }
    const leftAtEnd = await lab.waitNoShims();
    if (leftAtEnd.length > 0) notes.push(`shims still running after the last phase: ${leftAtEnd.join(', ')}`);

    for (const def of RUNTIMES) {
      const r = results[def.key];
      r.run.coldSummary = summarize(r.run.cold.map((s) => s.ms));
      r.run.warmSummary = summarize(r.run.warm.map((s) => s.ms));
      r.exec.summary = summarize(r.exec.samplesMs);
      const late = [...r.run.cold, ...r.run.warm].filter((s) => !s.runningAtOnce);
      if (late.length > 0) notes.push(`${def.key}: ${late.length} task(s) not yet RUNNING when ctr run -d returned: ${late.map((s) => s.id).join(', ')}`);
    }

    const { rows, ratios } = buildRows(results);
    const table = renderTable(machine.containerd ?? '1.7', machine.nproc, os.release(), rows, notes);
    const resultFile = writeResult('lifecycle', {
      benchmark: 'lifecycle',
      timestamp: started.toISOString(),
      durationMs: Date.now() - started.getTime(),
      machine,
      config: {
        containerdVersion: '1.7',
        image: IMAGE,
        repeat: REPEAT,
        coldRounds: COLD_ROUNDS,
        manyContainers: MANY,
        settleMs: SETTLE_MS,
        memoryReadings: MEMORY_READINGS,
        memoryReadingGapMs: MEMORY_READING_GAP_MS,
        runCommand: 'ctr run -d --runtime RT IMAGE ID sleep 1000',
        execCommand: 'ctr task exec --exec-id eN ID true',
        order: 'cold rounds alternate which runtime goes first; warm run -d and exec interleave stock, pageshare, stock, ...',
        percentile: 'nearest rank',
        units: { latency: 'ms', memory: 'bytes' },
      },
      runtimes: results,
      ratios,
      table: rows,
      notes,
      footnotes: FOOTNOTES,
    });
    return { table, resultFile };
  } finally {
    unregister();
    await cleanup();
  }
}

interface Row {
  metric: string;
  unit: string;
  stock: number | null;
  pageshare: number | null;
  ratio: number | null;
  digits: number;
}

const MEMORY_ROWS: ReadonlyArray<{ field: keyof Memory; label: string }> = [
  { field: 'pss', label: 'PSS' },
  { field: 'pssAnon', label: '  Pss_Anon' },
  { field: 'pssFile', label: '  Pss_File' },
  { field: 'uss', label: 'USS (Private_Clean+Dirty)' },
  { field: 'rss', label: 'RSS' },
];

function buildRows(results: Record<RuntimeKey, RuntimeResult>): { rows: Row[]; ratios: Record<string, number | null> } {
  const rows: Row[] = [];
  const ratios: Record<string, number | null> = {};
  const add = (key: string, metric: string, unit: string, pick: (r: RuntimeResult) => number | undefined, digits: number): void => {
    const s = pick(results.stock);
    const p = pick(results.pageshare);
    const q = s === undefined || p === undefined ? null : ratio(p, s);
    ratios[key] = q;
    rows.push({ metric, unit, stock: s ?? null, pageshare: p ?? null, ratio: q, digits });
  };
  add('run.cold.median', `ctr run -d, cold: median of ${COLD_ROUNDS} fresh namespaces`, 'ms', (r) => r.run.coldSummary.median, 1);
  add('run.cold.max', 'ctr run -d, cold: max', 'ms', (r) => r.run.coldSummary.max, 1);
  add('run.warm.median', `ctr run -d, warm: median (n=${REPEAT})`, 'ms', (r) => r.run.warmSummary.median, 1);
  add('run.warm.p90', 'ctr run -d, warm: p90', 'ms', (r) => r.run.warmSummary.p90, 1);
  add('exec.median', `ctr task exec true: median (n=${REPEAT})`, 'ms', (r) => r.exec.summary.median, 1);
  add('exec.p90', 'ctr task exec true: p90', 'ms', (r) => r.exec.summary.p90, 1);
  for (const [point, n] of [['one', 1], ['many', MANY]] as const) {
    add(`memory.${point}.processes`, `shim processes, ${n} container${n > 1 ? 's' : ''}`, '', (r) => r.memory[point]?.shimPids.length, 0);
    for (const { field, label } of MEMORY_ROWS) {
      add(`memory.${point}.${field}`, `  ${label}`, 'MiB', (r) => mib(r.memory[point]?.median[field]), 2);
    }
  }
  for (const field of ['pss', 'uss', 'rss'] as const) {
    const label = `${field.toUpperCase()} per extra container: (${MANY} - 1 containers) / ${MANY - 1}`;
    add(`memory.perExtraContainer.${field}`, label, 'MiB', (r) => mib(r.memory.perExtraContainer?.[field]), 2);
  }
  return { rows, ratios };
}

function mib(bytes: number | undefined): number | undefined {
  return bytes === undefined ? undefined : bytes / MiB;
}

const FOOTNOTES: readonly string[] = [
  'Latency: wall time of the ctr command, spawn to exit (ctr run -d returns after Start; every task was then checked RUNNING).',
  'Cold = first container of a fresh namespace; for pageshare it includes starting the namespace\'s Node server process.',
  'Memory: sums over the shim processes (stock: one containerd-shim-runc-v2 per container; pageshare: the one server per',
  '  namespace), found as the parents of the containers\' init processes; median of 3 readings of /proc/PID/smaps_rollup,',
  '  taken 2 s after the containers started, each runtime measured with only its own containers running.',
  'PSS divides each shared page among all processes mapping it. Pss_File is thus lowered by unrelated sharers: the 10 stock',
  '  shims share one Go binary among themselves, and the pageshare server shares the node binary and libraries with this',
  '  benchmark (itself Node) and any other Node process on the host. USS (pages mapped by that process only) is the lower',
  '  bound of what the shims cost; RSS (every page, counted in full per process) the upper bound.',
];

function renderTable(containerdVersion: string, nproc: number, kernel: string, rows: readonly Row[], notes: readonly string[]): string {
  const header = ['lifecycle', 'unit', 'runc.v2 (stock)', 'pageshare', 'pageshare/stock'];
  const body = rows.map((r) => [r.metric, r.unit, fmt(r.stock, r.digits), fmt(r.pageshare, r.digits), fmtRatio(r.ratio)]);
  const title = `Lifecycle: containerd ${containerdVersion}, ${nproc} CPUs, kernel ${kernel}, node ${process.version}`;
  const parts = [title, '', formatTable(header, body, ['left', 'left', 'right', 'right', 'right']), '', ...FOOTNOTES];
  if (notes.length > 0) parts.push('', 'Notes from this run:', ...notes.map((n) => `  - ${n}`));
  return parts.join('\n');
}

/** The lock and log files a pageshare server leaves in its state dir for our namespaces. */
function removeServerFiles(address: string, namespaces: ReadonlySet<string>): void {
  for (const ns of namespaces) {
    const files = shimServerFiles(address, ns);
    const pid = Number(fs.existsSync(files.pid) ? fs.readFileSync(files.pid, 'utf8').trim() : 0);
    if (pid > 0 && processAlive(pid)) continue; // still serving: not ours to touch
    for (const f of Object.values(files)) fs.rmSync(f, { force: true });
  }
}

export const lifecycle: BenchModule = { name: 'lifecycle', run: runBenchmark };
