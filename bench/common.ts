/**
 * What every benchmark module shares: summaries of samples, memory from
 * /proc/PID/smaps_rollup, timed commands, machine info, plain-text tables and the
 * results folder. Benchmarks only measure and print: nothing here asserts on a time.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Containerd } from '../integration/harness/containerd';
import { depPaths, repoRoot } from '../integration/harness/paths';
import { run } from '../integration/harness/process';

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

/** Parses /proc/PID/smaps_rollup (kB figures) into bytes; throws if the process is gone. */
export function readMemory(pid: number): Memory {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) kb.set(m[1] as string, Number(m[2]) * 1024);
  }
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
