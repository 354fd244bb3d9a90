/**
 * What every benchmark module shares: summaries of samples, memory from
 * /proc/PID/smaps_rollup and page faults from /proc/PID/stat, timed commands, the Node.js
 * workloads and their request client, machine info, plain-text tables and the results
 * folder. Benchmarks only measure and print: nothing here asserts on a time.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Containerd } from '../integration/harness/containerd';
import { depPaths, repoRoot } from '../integration/harness/paths';
import { run } from '../integration/harness/process';
import { waitFor } from '../integration/harness/wait';
import { shimServerFiles } from '../shim/bootstrap/shim-socket';
import { scratchRoot } from '../shim/checkpoint/scratch-dir';

/** A benchmark module as bench/run.ts runs it. */
/** The two runtimes every benchmark compares. */
export type RuntimeKey = 'stock' | 'pageshare';

export interface RuntimeDef {
  key: RuntimeKey;
  runtime: string;
  label: string;
}

export interface BenchModule {
  name: string;
  /** Runs the benchmark, writes bench/results/<name>.json and returns the table to print. */
  run(): Promise<BenchReport>;
}

export interface BenchReport {
  /** The printed table (plain text, several lines). */
  table: string;
  /** Where the JSON went. */
  resultFile: string;
}

// ---------------------------------------------------------------------------------------
// Statistics

export interface Summary {
  n: number;
  min: number;
  median: number;
  /** Nearest-rank 90th percentile: the ceil(0.9 n)-th smallest sample. */
  p90: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of the samples (p in 0..100). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

export function median(samples: readonly number[]): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function summarize(samples: readonly number[]): Summary {
  const n = samples.length;
  return {
    n,
    min: n ? Math.min(...samples) : Number.NaN,
    median: median(samples),
    p90: percentile(samples, 90),
    max: n ? Math.max(...samples) : Number.NaN,
    mean: n ? samples.reduce((a, b) => a + b, 0) / n : Number.NaN,
  };
}

/** ours / stock, or null when it is not a number (stock is 0, a figure is missing). */
export function ratio(ours: number, stock: number): number | null {
  const r = ours / stock;
  return Number.isFinite(r) ? r : null;
}

// ---------------------------------------------------------------------------------------
// Processes and memory

function readProc(pid: number, name: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/${name}`, 'latin1');
  } catch {
    return undefined;
  }
}

export function parentPid(pid: number): number | undefined {
  const stat = readProc(pid, 'stat');
  if (!stat) return undefined;
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return Number.isFinite(ppid) && ppid > 0 ? ppid : undefined;
}

/** The command line with NULs turned into spaces ('' for gone processes and kernel threads). */
export function cmdline(pid: number): string {
  return (readProc(pid, 'cmdline') ?? '').replace(/\0+$/, '').replace(/\0/g, ' ');
}

export function processAlive(pid: number): boolean {
  const stat = readProc(pid, 'stat');
  if (!stat) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** Live pids whose command line satisfies `match`. */
export function findProcesses(match: (cmd: string) => boolean): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const cmd = cmdline(pid);
    if (cmd !== '' && match(cmd) && processAlive(pid)) pids.push(pid);
  }
  return pids.sort((a, b) => a - b);
}

/** The memory fields of /proc/PID/smaps_rollup that the benchmarks report, in bytes. */
export interface Memory {
  rss: number;
  pss: number;
  pssAnon: number;
  pssFile: number;
  pssShmem: number;
  /** Private_Clean + Private_Dirty: what would be freed if the process went away. */
  uss: number;
  swap: number;
}

export const MEMORY_FIELDS: readonly (keyof Memory)[] = ['pss', 'pssAnon', 'pssFile', 'pssShmem', 'uss', 'rss', 'swap'];

export function zeroMemory(): Memory {
  return { rss: 0, pss: 0, pssAnon: 0, pssFile: 0, pssShmem: 0, uss: 0, swap: 0 };
}

/** The "Name:   123 kB" lines of a /proc file (smaps_rollup, meminfo), in bytes by name. */
export function readKbFields(file: string): Map<string, number> {
  const bytes = new Map<string, number>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) bytes.set(m[1] as string, Number(m[2]) * 1024);
  }
  return bytes;
}

/** Parses /proc/PID/smaps_rollup (kB figures) into bytes; throws if the process is gone. */
export function readMemory(pid: number): Memory {
  const kb = readKbFields(`/proc/${pid}/smaps_rollup`);
  const f = (name: string): number => kb.get(name) ?? 0;
  return {
    rss: f('Rss'),
    pss: f('Pss'),
    pssAnon: f('Pss_Anon'),
    pssFile: f('Pss_File'),
    pssShmem: f('Pss_Shmem'),
    uss: f('Private_Clean') + f('Private_Dirty'),
    swap: f('Swap'),
  };
}

export function addMemory(a: Memory, b: Memory): Memory {
  const out = zeroMemory();
  for (const k of MEMORY_FIELDS) out[k] = a[k] + b[k];
  return out;
}

/** Field by field median of several readings. */
export function medianMemory(readings: readonly Memory[]): Memory {
  const out = zeroMemory();
  for (const k of MEMORY_FIELDS) out[k] = median(readings.map((r) => r[k]));
  return out;
}

export const MiB = 1024 * 1024;

/** Page faults a process has taken so far. */
export interface Faults {
  minflt: number;
  majflt: number;
}

/** /proc/PID/stat fields 10 (minflt) and 12 (majflt); throws if the process is gone. */
export function readFaults(pid: number): Faults {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (the state).
  return { minflt: Number(f[7]), majflt: Number(f[9]) };
}

/** The faults taken between two readings of one process. */
export function faultsBetween(before: Faults, after: Faults): Faults {
  return { minflt: after.minflt - before.minflt, majflt: after.majflt - before.majflt };
}

// ---------------------------------------------------------------------------------------
// Commands

export interface TimedResult {
  /** Wall time from just before spawn until the process exited, in ms (sub-ms resolution). */
  ms: number;
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command and times it from spawn to exit with performance.now(). */
export function timedRun(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<TimedResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, [...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let ended: number | undefined;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', () => {
      ended = performance.now();
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ ms: (ended ?? performance.now()) - started, code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}

/** `ctr --address A --namespace NS args...`, timed. */
export function timedCtr(containerd: Containerd, namespace: string, args: readonly string[]): Promise<TimedResult> {
  return timedRun(containerd.ctrPath, ['--address', containerd.address, '--namespace', namespace, ...args], containerd.env);
}

// ---------------------------------------------------------------------------------------
// Workloads: apps in the images, and a client for their request servers

export interface HeapAppOptions {
  /**
   * Every byte of the data in V8's heap: the Float64Arrays and the hot buffer become plain
   * arrays of numbers (no typed arrays or Buffers, whose elements V8 keeps outside its heap).
   */
  v8HeapOnly?: boolean;
}

/**
 * A Node.js app with a large live heap (the checkpoint and sharing benchmarks). Deterministic
 * data (xorshift PRNG, fixed seed) of four kinds kept in a global (`data`): small records with
 * strings and references, text strings, arrays of numbers and Float64Arrays (`matrices`),
 * built until heapUsed + arrayBuffers reach $BC_HEAP_MB (default `heapMb`) MiB. `serverJs`
 * runs next (before /tmp/ready), e.g. a request server over the data. Then a hot part
 * allocated together (20000 small records and a 4 MiB buffer, ~3% of the data) is mutated
 * every 100 ms while a sample of the rest is read. Writes /tmp/ready once built and
 * /tmp/hb ("tick touches wallMs") every 20 ms; never writes to stdout or stderr (after a
 * restore nobody reads them).
 */
export function heapAppJs(heapMb: number, serverJs = '', options: HeapAppOptions = {}): string {
  // A typed array's elements live in malloc'd memory outside V8's heap; a plain array of
  // numbers (the same elements, read the same way) keeps them in it.
  const numbers = (length: string): string => (options.v8HeapOnly ? `new Array(${length}).fill(0)` : `new Float64Array(${length})`);
  return `'use strict';
const fs = require('fs');
const TARGET = Number(process.env.BC_HEAP_MB || ${heapMb}) * 1024 * 1024;
let seed = 0x2545f491;
function rnd() {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed;
}
const WORDS = [];
for (let i = 0; i < 4096; i++) {
  let w = '';
  const n = 3 + (rnd() % 9);
  for (let j = 0; j < n; j++) w += String.fromCharCode(97 + (rnd() % 26));
  WORDS.push(w);
}
function sentence(words) {
  const parts = [];
  for (let i = 0; i < words; i++) parts.push(WORDS[rnd() % WORDS.length]);
  return parts.join(' ');
}
function used() {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
const data = (globalThis.__bcData = { records: [], texts: [], series: [], matrices: [], hot: [], hotBuffer: null });
let rounds = 0;
while (used() < TARGET) {
  for (let i = 0; i < 2000; i++) {
    const id = data.records.length;
    data.records.push({
      id,
      name: WORDS[rnd() % WORDS.length] + '-' + id,
      score: (rnd() % 100000) / 7,
      flags: rnd() % 256,
      tags: [WORDS[rnd() % WORDS.length], WORDS[rnd() % WORDS.length]],
      parent: id > 0 ? data.records[rnd() % id] : null,
    });
  }
  for (let i = 0; i < 400; i++) data.texts.push(sentence(8 + (rnd() % 120)));
  const series = new Array(2048);
  for (let i = 0; i < series.length; i++) series[i] = (rnd() % 1000000) / 1000;
  data.series.push(series);
  const m = ${numbers('16384')};
  for (let i = 0; i < m.length; i++) m[i] = Math.sin(rnd()) * 1000;
  data.matrices.push(m);
  rounds++;
}
const HOT = 20000;
for (let i = 0; i < HOT; i++) data.hot.push({ id: i, score: (rnd() % 1000) / 3, flags: rnd() % 256 });
data.hotBuffer = ${numbers('512 * 1024')};
if (typeof globalThis.gc === 'function') globalThis.gc();
${serverJs}fs.writeFileSync('/tmp/ready', JSON.stringify({ rounds, records: data.records.length, texts: data.texts.length, hot: HOT, memory: process.memoryUsage() }) + '\\n');
let tick = 0;
let touches = 0;
let checksum = 0;
setInterval(() => {
  tick++;
  fs.writeFileSync('/tmp/hb', tick + ' ' + touches + ' ' + Date.now() + ' ' + checksum + '\\n');
}, 20);
setInterval(() => {
  touches++;
  for (let i = touches % 50; i < data.hot.length; i += 50) {
    const r = data.hot[i];
    r.score = (r.score * 31 + touches) % 100003;
    r.flags = (r.flags + 1) & 255;
  }
  const b = data.hotBuffer;
  for (let i = touches % 64; i < b.length; i += 64) b[i] += 1;
  let s = 0;
  for (let i = touches % 997; i < data.records.length; i += 997) s += data.records[i].score;
  for (let i = touches % 131; i < data.texts.length; i += 131) s += data.texts[i].length;
  checksum = s;
}, 100);
`;
}

/**
 * JS that serves requests on the unix socket `socketPath` (CRIU 4.1.1 cannot dump TCP sockets
 * on this kernel: SO_PASSCRED is refused): each line is answered with a sum over 2000 lookups,
 * `lookupJs` adding one random lookup to `sum`, so a restored process faults pages in. Needs
 * `net` (require('net')) in scope.
 */
export function nodeRequestServerJs(socketPath: string, lookupJs: string): string {
  return `net.createServer((c) => {
  let buf = '';
  c.on('data', (d) => {
    buf += d;
    for (let at = buf.indexOf('\\n'); at >= 0; at = buf.indexOf('\\n')) {
      buf = buf.slice(at + 1);
      let sum = 0;
      for (let k = 0; k < 2000; k++) { ${lookupJs} }
      c.write(sum + '\\n');
    }
  });
}).listen('${socketPath}');
`;
}

/** The imports javaRequestServer's methods need, for the top of the app's source. */
export const JAVA_REQUEST_SERVER_IMPORTS = `import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
`;

/**
 * Java for the JVM apps, nodeRequestServerJs's counterpart: two static methods for the app's
 * class, which defines `static long answer()`. `startServer()` serves the unix socket
 * `socketPath` from a daemon thread, a connection at a time, answering each line (each
 * newline, however the reads split them) with answer().
 */
export function javaRequestServer(socketPath: string): string {
  return `
  static void serve(SocketChannel c) throws Exception {
    ByteBuffer in = ByteBuffer.allocate(4096);
    while (c.read(in) > 0) {
      in.flip();
      while (in.hasRemaining()) {
        if (in.get() == '\\n') c.write(ByteBuffer.wrap((answer() + "\\n").getBytes(StandardCharsets.US_ASCII)));
      }
      in.clear();
    }
    c.close();
  }

  static void startServer() throws Exception {
    Files.deleteIfExists(Path.of("${socketPath}"));
    ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    server.bind(UnixDomainSocketAddress.of("${socketPath}"));
    Thread t = new Thread(() -> {
      while (true) {
        try { serve(server.accept()); } catch (Exception e) { }
      }
    });
    t.setDaemon(true);
    t.start();
  }
`;
}

/**
 * Sends `count` requests (a line each) over one connection to a request server's unix socket,
 * each once the previous one was answered; resolves with the ms from connecting to the last
 * answer. Rejects on a socket error, or when the answers do not come within `timeoutMs`.
 */
export function sendRequests(socketPath: string, count: number, timeoutMs = 60_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let left = count;
    let buf = '';
    const c = net.connect(socketPath, () => c.write('q\n'));
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`${socketPath}: ${left} of ${count} requests unanswered after ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      buf += d;
      for (let at = buf.indexOf('\n'); at >= 0; at = buf.indexOf('\n')) {
        buf = buf.slice(at + 1);
        if (--left === 0) {
          clearTimeout(timer);
          c.destroy();
          resolve(performance.now() - started);
          return;
        }
        c.write('q\n');
      }
    });
    c.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

// ---------------------------------------------------------------------------------------
// Machine info and results

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memTotalBytes: number;
  kernel: string;
  node: string;
  containerd?: string;
  runc?: string;
  hostname: string;
  loadavg: number[];
}

/** The machine's CPU time so far, all cores (/proc/stat, in clock ticks). */
export interface CpuTimes {
  readonly total: number;
  /** Time a hypervisor gave our virtual CPUs' turn to something else. */
  readonly steal: number;
}

export function cpuTimes(): CpuTimes {
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice
  const fields = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
}

/** The share of CPU time stolen by the hypervisor between two readings (0..1), or null. */
export function stealShare(before: CpuTimes, after: CpuTimes): number | null {
  const total = after.total - before.total;
  return total > 0 ? (after.steal - before.steal) / total : null;
}

/** `ctr version`'s server version. */
export async function containerdVersion(containerd: Containerd): Promise<string> {
  const out = (await containerd.ctrOk(['version'], { timeoutMs: 10_000 })).stdout;
  const server = out.slice(out.indexOf('Server:'));
  return /Version:\s*(\S+)/.exec(server)?.[1] ?? 'unknown';
}

export async function machineInfo(containerd?: Containerd): Promise<MachineInfo> {
  const info: MachineInfo = {
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memTotalBytes: os.totalmem(),
    kernel: os.release(),
    node: process.version,
    hostname: os.hostname(),
    loadavg: os.loadavg(),
  };
  if (containerd) info.containerd = await containerdVersion(containerd).catch(() => 'unknown');
  const runc = await run(depPaths().RUNC, ['--version'], { timeoutMs: 10_000 }).catch(() => undefined);
  if (runc?.code === 0) info.runc = runc.stdout.split('\n')[0]?.trim();
  return info;
}

/** The entries of a dir; none when it is missing. */
export function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Waits until a page store (PAGESHARE_ROOT) is settled: the shim indexes a checkpoint and
 * removes its scratch dir just after the Checkpoint call returns, so bytes measured at once
 * would count CRIU's images and miss the index rows, and the first restore would wait for it.
 */
export async function settleStore(root: string): Promise<void> {
  const busy = (): boolean =>
    listDir(scratchRoot(root)).some((e) => e.startsWith('dump-')) || listDir(path.join(root, 'pending')).some((e) => e.endsWith('.ingest'));
  await waitFor(() => !busy(), { timeoutMs: 30_000, intervalMs: 20 });
}

/** A benchmark's temp dir, with a page store and a temp dir for containerd in it. */
export interface BenchDirs {
  workDir: string;
  /** PAGESHARE_ROOT of the run. */
  storeRoot: string;
  /** containerd's XDG_RUNTIME_DIR: where it dumps and extracts checkpoints (private to the run). */
  ctdDir: string;
}

export function makeBenchDirs(prefix: string): BenchDirs {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const dirs = { workDir, storeRoot: path.join(workDir, 'store'), ctdDir: path.join(workDir, 'ctd') };
  fs.mkdirSync(dirs.storeRoot, { recursive: true });
  fs.mkdirSync(dirs.ctdDir, { recursive: true, mode: 0o700 });
  return dirs;
}

/** Where both shims keep runc's state (`<root>/<namespace>/<id>`). */
export const RUNC_ROOT = '/run/containerd/runc';

/**
 * Notes whether runc's state dir of `namespace` exists now; the function returned removes it
 * later if it did not and it is empty again (our containers made it).
 */
export function runcNamespaceDirCleanup(namespace: string): () => void {
  const dir = path.join(RUNC_ROOT, namespace);
  const existed = fs.existsSync(dir);
  return () => {
    if (existed) return;
    try {
      fs.rmdirSync(dir);
    } catch {
      /* not empty or already gone */
    }
  };
}

/** The commit the shim was built from, and whether shim/, native/ or oci-hooks/ had uncommitted changes. */
export async function sourceVersion(): Promise<{ commit: string; shimDirty: boolean } | undefined> {
  const head = await run('git', ['rev-parse', 'HEAD'], { cwd: repoRoot(), timeoutMs: 10_000 }).catch(() => undefined);
  if (head?.code !== 0) return undefined;
  const status = await run('git', ['status', '--porcelain', '--', 'shim', 'native', 'oci-hooks'], { cwd: repoRoot(), timeoutMs: 10_000 });
  return { commit: head.stdout.trim(), shimDirty: status.stdout.trim() !== '' };
}

/** ", shim abc1234" (+ " + uncommitted changes") for a table's title; '' when unknown. */
export function describeSource(source: { commit: string; shimDirty: boolean } | undefined): string {
  return source ? `, shim ${source.commit.slice(0, 7)}${source.shimDirty ? ' + uncommitted changes' : ''}` : '';
}

/** The checkpoint/restore lines of a namespace's pageshare server log (if it logged any), the last 200. */
export function pageshareServerLog(address: string, namespace: string): string[] {
  try {
    const text = fs.readFileSync(shimServerFiles(address, namespace).log, 'utf8');
    return text.split('\n').filter((l) => /checkpoint|restore|pages/i.test(l)).slice(-200);
  } catch {
    return [];
  }
}

export function resultsDir(): string {
  return path.join(repoRoot(), 'bench', 'results');
}

/** Writes bench/results/<name>.json and returns its path. */
export function writeResult(name: string, data: unknown): string {
  const dir = resultsDir();
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

// ---------------------------------------------------------------------------------------
// Tables

export type Align = 'left' | 'right';

/** A plain-text table: columns padded to their widest cell, a rule under the header. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], align?: readonly Align[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (text: string, i: number): string =>
    (align?.[i] ?? (i === 0 ? 'left' : 'right')) === 'left' ? text.padEnd(widths[i] ?? 0) : text.padStart(widths[i] ?? 0);
  const line = (cells: readonly string[]): string => header.map((_, i) => cell(cells[i] ?? '', i)).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function fmt(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);
}

export function fmtRatio(value: number | null): string {
  return value === null ? '-' : `${value.toFixed(2)}x`;
}

// ---------------------------------------------------------------------------------------
// Interrupts

const cleanups = new Set<() => Promise<void>>();

/** Registers cleanup to run if the benchmark is interrupted (SIGINT/SIGTERM); returns an unregister function. */
export function onInterrupt(fn: () => Promise<void>): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Installs the SIGINT/SIGTERM handlers that run the registered cleanups, then exit. */
export function installInterruptHandlers(): void {
  let interrupted = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${signal}: cleaning up...\n`);
    void Promise.allSettled([...cleanups].map((fn) => fn())).then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
