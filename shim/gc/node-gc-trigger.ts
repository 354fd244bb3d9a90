// The shim's side of the Node.js GC agent (oci-hooks/agents/node-gc-agent.js): which
// processes carry the agent, and one request/signal/ack round through the container's gc dir.
// The dir is writable by the container, so nothing written there is trusted: the request is
// created without following links, acks are read without following links and with a size cap.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../log/logger';
import { namespacePid, processExited, readNoFollow, readStatus, signalInMask } from '../proc/proc-info';

/** The agent's signal; its default action is "ignore", so a wrong pick harms nothing. */
const AGENT_SIGNAL = 'SIGURG';
const AGENT_SIGNAL_NUMBER = os.constants.signals.SIGURG;
const REQUEST_FILE = 'request';
/** An ack is a line of JSON well under this; more is not an ack. */
const ACK_MAX_BYTES = 4096;
const ACK_POLL_MS = 20;

/** The agent file as the host sees it: a process with an fd on this (dev, ino) loaded the agent. */
export interface AgentFileId {
  readonly dev: bigint;
  readonly ino: bigint;
}

export function agentFileId(agentFile: string): AgentFileId {
  const stat = fs.statSync(agentFile, { bigint: true });
  return { dev: stat.dev, ino: stat.ino };
}

/** Memory figures the agent takes inside the process (KiB; smaps_rollup and V8 heap statistics). */
export interface AgentMemory {
  readonly rssKB?: number;
  readonly anonKB?: number;
  readonly privateDirtyKB?: number;
  readonly heapTotalKB?: number;
  readonly heapUsedKB?: number;
  readonly externalKB?: number;
}

export interface NodeGcAck {
  readonly id: string;
  /** The pid inside the container's pid namespace. */
  readonly pid: number;
  readonly ok: boolean;
  /** 'low-memory-notification', 'gc-extension' (no inspector), 'none' or 'timeout'. */
  readonly method: string;
  readonly gcMs: number;
  readonly before: AgentMemory;
  readonly after: AgentMemory;
}

export type NodeGcResult =
  | { readonly pid: number; readonly status: 'acked'; readonly ms: number; readonly ack: NodeGcAck }
  /** timeout: no ack by the deadline; exited: the process went away; unreachable: no request or no signal could be sent. */
  | { readonly pid: number; readonly status: 'timeout' | 'exited' | 'unreachable'; readonly ms: number; readonly detail: string };

/** True if the process has the agent loaded and its listener armed (fd on the agent file, SIGURG caught). */
export function carriesAgent(pid: number, agent: AgentFileId): boolean {
  return catchesSignal(pid, AGENT_SIGNAL_NUMBER) && hasFdOn(pid, agent);
}

/**
 * Asks every process in `pids` (host pids that carry the agent) for a GC at once and waits
 * until each has acknowledged, exited, or `deadline` (epoch ms) has passed. Never throws.
 */
export async function requestNodeGc(pids: readonly number[], gcDir: string, deadline: number): Promise<NodeGcResult[]> {
  const started = Date.now();
  const requestId = `${started}-${crypto.randomBytes(6).toString('hex')}`;
  try {
    writeRequest(gcDir, requestId);
  } catch (err) {
    const detail = `cannot write the GC request in ${gcDir}: ${errorMessage(err)}`;
    return pids.map((pid) => ({ pid, status: 'unreachable', ms: Date.now() - started, detail }));
  }

  const results = new Map<number, NodeGcResult>();
  const waiting = new Map<number, string>(); // host pid -> its ack file
  for (const pid of pids) {
    try {
      const nsPid = namespacePid(pid);
      if (nsPid === undefined) throw new Error(`process ${pid} is gone`);
      const ackFile = path.join(gcDir, `ack-${nsPid}`);
      fs.rmSync(ackFile, { force: true }); // an old round's ack (unlink does not follow links)
      process.kill(pid, AGENT_SIGNAL);
      waiting.set(pid, ackFile);
    } catch (err) {
      const gone = processExited(pid);
      results.set(pid, {
        pid,
        status: gone ? 'exited' : 'unreachable',
        ms: Date.now() - started,
        detail: gone ? 'exited before it was signalled' : `cannot signal: ${errorMessage(err)}`,
      });
    }
  }

  for (;;) {
    for (const [pid, ackFile] of waiting) {
      const ack = readAck(ackFile);
      if (ack?.id === requestId) {
        results.set(pid, { pid, status: 'acked', ms: Date.now() - started, ack });
        waiting.delete(pid);
      } else if (processExited(pid)) {
        results.set(pid, { pid, status: 'exited', ms: Date.now() - started, detail: 'exited before acknowledging the GC request' });
        waiting.delete(pid);
      }
    }
    const left = deadline - Date.now();
    if (waiting.size === 0 || left <= 0) break;
    await sleep(Math.min(ACK_POLL_MS, left));
  }
  for (const pid of waiting.keys()) {
    const ms = Date.now() - started;
    results.set(pid, { pid, status: 'timeout', ms, detail: `no ack within ${ms} ms (event loop blocked, or the process is stopped)` });
  }
  return pids.map((pid) => results.get(pid)).filter((r): r is NodeGcResult => r !== undefined);
}

/** Replaces the request file atomically; a link the container planted is never followed. */
function writeRequest(gcDir: string, requestId: string): void {
  const tmp = path.join(gcDir, `.request-${crypto.randomBytes(6).toString('hex')}.tmp`);
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
  try {
    fs.writeSync(fd, `${requestId}\n`);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, path.join(gcDir, REQUEST_FILE));
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** The ack in `file`, or undefined while there is none (or it is not an ack). */
function readAck(file: string): NodeGcAck | undefined {
  const data = readNoFollow(file, ACK_MAX_BYTES);
  return data === undefined ? undefined : parseAck(data.toString('utf8'));
}

export function parseAck(text: string): NodeGcAck | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(value)) return undefined;
  const { id, pid, ok, method, gcMs, before, after } = value;
  if (typeof id !== 'string' || typeof pid !== 'number' || typeof ok !== 'boolean' || typeof method !== 'string' || typeof gcMs !== 'number') return undefined;
  return { id, pid, ok, method, gcMs, before: memoryOf(before), after: memoryOf(after) };
}

function memoryOf(value: unknown): AgentMemory {
  if (!isRecord(value)) return {};
  const figure = (key: string): number | undefined => {
    const v = value[key];
    return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
  };
  return {
    rssKB: figure('rssKB'),
    anonKB: figure('anonKB'),
    privateDirtyKB: figure('privateDirtyKB'),
    heapTotalKB: figure('heapTotalKB'),
    heapUsedKB: figure('heapUsedKB'),
    externalKB: figure('externalKB'),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasFdOn(pid: number, file: AgentFileId): boolean {
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const stat = fs.statSync(`/proc/${pid}/fd/${fd}`, { bigint: true }); // follows the magic link to the open file
      if (stat.dev === file.dev && stat.ino === file.ino) return true;
    } catch {
      /* closed meanwhile */
    }
  }
  return false;
}

function catchesSignal(pid: number, signo: number): boolean {
  return signalInMask(readStatus(pid) ?? '', 'SigCgt', signo);
}
