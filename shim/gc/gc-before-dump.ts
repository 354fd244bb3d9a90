// Right before CRIU dumps a container, every Node.js process that carries the GC agent and
// every JVM in it collects, compacts and returns its free memory, so the images hold live
// data rather than garbage. All of them at once, within one time bound, and never failing:
// a runtime that cannot be reached or does not answer in time gets a non-ok outcome and the
// dump goes on. The container must be running (not frozen) meanwhile: a frozen process
// collects nothing.
import { errorMessage, log } from '../log/logger';
import { FreezeWindow, type ContainerFreezer } from './freeze-window';
import { compactJvm, jvmKindOf, type JvmGcResult } from './jvm-attach';
import { agentFileId, carriesAgent, requestNodeGc, type AgentFileId, type NodeGcResult } from './node-gc-trigger';
import type { HeapRange } from '../map-restore/heap-ranges';

export type ManagedRuntime = 'node' | 'jvm';
/** Which runtimes to compact ('auto' = both). */
export type GcMode = 'node' | 'jvm' | 'auto';

export interface GcBeforeDumpOptions {
  readonly mode: GcMode;
  /** Overall bound for all processes together. */
  readonly timeoutMs: number;
  /** Host path of oci-hooks/agents/node-gc-agent.js (the file bind-mounted into the container). */
  readonly agentFile: string;
  /** Host path of the container's writable gc dir (PAGESHARE_GC_DIR inside). */
  readonly gcDir: string;
  /** The container's freezer: lets a JVM's released memory go before the app runs on. */
  readonly freezer?: ContainerFreezer;
}

export interface GcOutcome {
  /** Host pid. */
  readonly pid: number;
  readonly runtime: ManagedRuntime;
  readonly ok: boolean;
  readonly ms: number;
  /** What was done (the agent's method, before/after RSS), or why it failed or timed out. */
  readonly detail: string;
  readonly rssBeforeKiB?: number;
  readonly rssAfterKiB?: number;
  /** Where the runtime reported its heap (JVMs), for a map-mode restore. */
  readonly heapRanges?: readonly HeapRange[];
}

/** How long past the deadline the runtimes' own (self-bounded) waits get to report before the backstop does. */
const REPORT_GRACE_MS = 20;

interface ManagedProcess {
  readonly pid: number;
  readonly runtime: ManagedRuntime;
}

/**
 * Compacts the managed runtimes among `pids` (host pids, e.g. from `runc ps`) in parallel and
 * reports one outcome per runtime found, in the order of `pids`; other processes are skipped
 * silently. Never throws and never takes longer than timeoutMs (+ a few ms).
 */
export async function compactBeforeDump(pids: readonly number[], options: GcBeforeDumpOptions): Promise<GcOutcome[]> {
  const started = Date.now();
  const deadline = started + Math.max(0, options.timeoutMs);
  // Aborted on return: no attach connection may outlive the call (CRIU refuses to dump a
  // container with a unix socket connected to a process outside it).
  const giveUp = new AbortController();
  const freezeWindow = options.freezer ? new FreezeWindow(options.freezer) : undefined;
  const holdStill = freezeWindow ? (until: number) => freezeWindow.hold(Math.min(until, deadline)) : undefined;
  const outcomes = new Map<number, GcOutcome>();
  let targets: ManagedProcess[] = [];
  let unfinished = `no answer within ${options.timeoutMs} ms`;
  try {
    targets = findManagedProcesses(pids, options);
    const jobs: Promise<void>[] = [];
    const nodePids = targets.filter((t) => t.runtime === 'node').map((t) => t.pid);
    if (nodePids.length > 0) {
      jobs.push(requestNodeGc(nodePids, options.gcDir, deadline).then((results) => results.forEach((r) => outcomes.set(r.pid, nodeOutcome(r)))));
    }
    for (const { pid, runtime } of targets) {
      if (runtime === 'jvm') jobs.push(compactJvm(pid, { deadline, signal: giveUp.signal, holdStill }).then((r) => void outcomes.set(pid, jvmOutcome(pid, r))));
    }
    const all = Promise.all(jobs);
    all.catch(() => undefined); // a failure after the deadline has nobody left to tell
    await untilDeadline(all, deadline + REPORT_GRACE_MS);
  } catch (err) {
    unfinished = `GC before the dump failed: ${errorMessage(err)}`;
    log.warn(unfinished);
  } finally {
    giveUp.abort();
    // Never return with the container frozen by us: the caller decides what state it dumps in.
    await freezeWindow?.settled();
  }
  return targets.map(({ pid, runtime }) => outcomes.get(pid) ?? { pid, runtime, ok: false, ms: Date.now() - started, detail: unfinished });
}

function findManagedProcesses(pids: readonly number[], options: GcBeforeDumpOptions): ManagedProcess[] {
  let agent: AgentFileId | undefined;
  if (options.mode !== 'jvm') {
    try {
      agent = agentFileId(options.agentFile);
    } catch (err) {
      log.warn(`no Node.js process can be compacted before the dump: the GC agent is unreadable: ${errorMessage(err)}`);
    }
  }
  const found: ManagedProcess[] = [];
  for (const pid of new Set(pids)) {
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) continue; // the shim is never a target
    if (agent !== undefined && carriesAgent(pid, agent)) found.push({ pid, runtime: 'node' });
    else if (options.mode !== 'node' && jvmKindOf(pid) !== undefined) found.push({ pid, runtime: 'jvm' });
  }
  return found;
}

function nodeOutcome(result: NodeGcResult): GcOutcome {
  const base = { pid: result.pid, runtime: 'node', ms: result.ms } as const;
  if (result.status !== 'acked') return { ...base, ok: false, detail: `${result.status}: ${result.detail}` };
  const { ack } = result;
  const rssBeforeKiB = ack.before.rssKB;
  const rssAfterKiB = ack.after.rssKB;
  const rss = rssBeforeKiB !== undefined && rssAfterKiB !== undefined ? `, RSS ${mib(rssBeforeKiB)} → ${mib(rssAfterKiB)} MiB` : '';
  const detail = ack.ok ? `${ack.method}, GC ${ack.gcMs} ms${rss}` : `the agent's GC failed (${ack.method}) after ${ack.gcMs} ms`;
  return { ...base, ok: ack.ok, detail, rssBeforeKiB, rssAfterKiB };
}

function jvmOutcome(pid: number, result: JvmGcResult): GcOutcome {
  const detail = result.failure ? `${result.failure.toLowerCase().replace('_', ' ')}: ${result.detail}` : result.detail;
  return { pid, runtime: 'jvm', ok: result.ok, ms: result.ms, detail, rssBeforeKiB: result.rssBeforeKiB, rssAfterKiB: result.rssAfterKiB, ...(result.heapRanges ? { heapRanges: result.heapRanges } : {}) };
}

/** Waits for `work`, but not past `deadline` (epoch ms). */
async function untilDeadline(work: Promise<unknown>, deadline: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
  });
  try {
    await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function mib(kib: number): string {
  return (kib / 1024).toFixed(1);
}
