// A HotSpot dynamic-attach client (the protocol jattach and jcmd speak) that makes a JVM
// collect and return its free heap: lower Min/MaxHeapFreeRatio, `jcmd GC.run`, `jcmd
// System.trim_native_heap`, restore the ratios, then, for G1, keep the container frozen until
// G1 has uncommitted the freed regions (on its own thread, about 100 ms after GC.run) and wait
// for RSS to show the release.
//
// The JVM may live in another mount namespace: every path goes through /proc/<pid>/root or
// /proc/<pid>/cwd, and since those trees belong to the container, the last component is
// never followed (O_NOFOLLOW, O_EXCL, lstat) and /tmp must be a real directory. (Intermediate
// components are not protected: a symlinked directory above them would resolve against the
// host root. Doing the file work after setns() into the container, as jattach does, would
// close that; Node cannot setns.)
//
// SIGQUIT is what starts a JVM's attach listener, but it kills a JVM that does not catch it
// (-Xrs) and prints a thread dump on the app's stdout when the .attach_pid file is missing.
// So: an existing socket is used without a signal, and SIGQUIT is sent only when it is caught,
// not blocked, and the .attach_pid file was created.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../log/logger';
import { namespacePid, processExited, readNoFollow, readStatus, signalInMask } from '../proc/proc-info';
import { parseJvmHeapInfo, type HeapRange } from '../map-restore/heap-ranges';

const SIGQUIT = 3;
/** Heap free ratios while collecting: the heap shrinks to its live data plus 10 %. Min must stay <= Max. */
const LOW_MIN_HEAP_FREE_RATIO = 0;
const LOW_MAX_HEAP_FREE_RATIO = 10;
/** Kept back from the GC steps so that restoring the ratios fits in the caller's time. */
const RESTORE_RESERVE_MS = 400;
/** Command replies are small (VM.flags is the largest, a few KiB). */
const REPLY_MAX_BYTES = 1 << 20;
/**
 * After GC.run, G1 hands the shrunk regions to its service thread, which uncommits them about
 * 100 ms later (JDK 17: G1UncommitRegionTask's initial delay), in steps of up to 128 MiB every
 * 10 ms. The app keeps allocating meanwhile and its young generation grows back (100 MB/s in
 * our churn apps), so the wait ends as soon as the release is over: RSS fell by at least
 * RELEASE_MIN_DROP_KIB and then did not fall for RELEASE_QUIET_MS. A JVM that releases nothing
 * (a heap already at its minimum) is waited for RELEASE_MAX_WAIT_MS at most; the other
 * collectors shrink inside the GC and are not waited for.
 */
const RELEASE_MIN_DROP_KIB = 1024;
/** G1UncommitRegionTask's initial delay (100 ms) and a margin. */
const G1_UNCOMMIT_DELAY_MS = 110;
const RELEASE_QUIET_MS = 15;
const RELEASE_MAX_WAIT_MS = 250;
const RELEASE_POLL_MS = 5;

/** Options that stop us from attaching: with attach disabled, SIGQUIT would only print a thread dump. */
const REFUSING_OPTIONS: readonly { readonly pattern: RegExp; readonly option: string }[] = [
  { pattern: /-XX:\+DisableAttachMechanism\b/, option: '-XX:+DisableAttachMechanism' },
];
/** Options under which SIGQUIT kills the JVM; HotSpot then starts the listener at startup instead. */
const NO_SIGQUIT_OPTIONS: readonly { readonly pattern: RegExp; readonly option: string }[] = [
  { pattern: /(^|\s)-Xrs(\s|$)/, option: '-Xrs' },
  { pattern: /-XX:\+ReduceSignalUsage\b/, option: '-XX:+ReduceSignalUsage' },
];

export type JvmKind = 'hotspot' | 'openj9';

/** Which JVM a process runs, from the libraries it maps; undefined for a process that is no JVM. */
export function jvmKindOf(pid: number): JvmKind | undefined {
  let maps: string;
  try {
    maps = fs.readFileSync(`/proc/${pid}/maps`, 'latin1');
  } catch {
    return undefined;
  }
  if (!/\/libjvm\.so$/m.test(maps)) return undefined;
  return /\/libj9vm[^/]*\.so$/m.test(maps) ? 'openj9' : 'hotspot';
}

export interface AttachPolicy {
  /** Why attaching must not be tried at all. */
  readonly refusal?: string;
  /** Why SIGQUIT must never be sent (an existing listener may still be used). */
  readonly noSigquit?: string;
}

/** What the JVM's options (command line, *JAVA*_OPTIONS, hsperfdata vmArgs, joined) allow. */
export function attachPolicyOf(jvmOptions: string): AttachPolicy {
  const refusing = REFUSING_OPTIONS.find((o) => o.pattern.test(jvmOptions));
  const noSigquit = NO_SIGQUIT_OPTIONS.find((o) => o.pattern.test(jvmOptions));
  return {
    ...(refusing ? { refusal: `the JVM runs with ${refusing.option}` } : {}),
    ...(noSigquit ? { noSigquit: `the JVM runs with ${noSigquit.option}` } : {}),
  };
}

export type JvmAttachFailure =
  /** The JVM's options forbid attaching, or it is not HotSpot. */
  | 'REFUSED'
  /** No attach socket, and SIGQUIT could not be sent safely or did not start one. */
  | 'NO_LISTENER'
  /** A command failed or answered with a non-zero code. */
  | 'COMMAND_FAILED'
  /** The time ran out (or the caller gave up). */
  | 'TIMEOUT'
  /** The process went away. */
  | 'EXITED';

export class JvmAttachError extends Error {
  constructor(
    readonly reason: JvmAttachFailure,
    message: string,
  ) {
    super(message);
    this.name = 'JvmAttachError';
  }
}

export interface JvmGcResult {
  readonly ok: boolean;
  /** Set when !ok. */
  readonly failure?: JvmAttachFailure;
  /** What was done, or why it failed, for the log. */
  readonly detail: string;
  readonly ms: number;
  readonly rssBeforeKiB?: number;
  readonly rssAfterKiB?: number;
  /** The Java heap's reserved range(s) from GC.heap_info, for a map-mode restore. */
  readonly heapRanges?: readonly HeapRange[];
}

export interface JvmGcOptions {
  /** Epoch ms by which everything, restoring the ratios and the RSS wait included, is over. */
  readonly deadline: number;
  /** Aborting closes every connection at once (the caller gives up, e.g. the dump starts). */
  readonly signal?: AbortSignal;
  /** Keeps the JVM's container frozen until the given epoch ms (see freeze-window.ts). */
  readonly holdStill?: (untilEpochMs: number) => Promise<void>;
}

/** Compacts one JVM (host pid). Never throws; a JVM it cannot reach safely is left alone. */
export async function compactJvm(pid: number, options: JvmGcOptions): Promise<JvmGcResult> {
  const started = Date.now();
  const done = (result: Omit<JvmGcResult, 'ms'>): JvmGcResult => ({ ...result, ms: Date.now() - started });
  let target: AttachTarget;
  try {
    const nsPid = namespacePid(pid);
    if (nsPid === undefined) throw new JvmAttachError('EXITED', 'the JVM exited');
    target = new AttachTarget(pid, nsPid, options.signal);
  } catch (err) {
    return done({ ok: false, failure: 'EXITED', detail: errorMessage(err) });
  }
  const kind = jvmKindOf(pid);
  if (kind !== 'hotspot') return done({ ok: false, failure: 'REFUSED', detail: kind === 'openj9' ? 'OpenJ9 speaks another attach protocol' : 'not a JVM (any more)' });
  const policy = attachPolicyOf(jvmOptionsOf(pid, target.nsPid));
  if (policy.refusal) return done({ ok: false, failure: 'REFUSED', detail: policy.refusal });

  const rssBeforeKiB = vmRssKiB(pid);
  const gcDeadline = options.deadline - Math.min(RESTORE_RESERVE_MS, (options.deadline - started) / 4);
  const notes: string[] = [];
  const saved: { min?: number; max?: number } = {};
  let failure: JvmAttachError | undefined;
  let rssAfterGcKiB: number | undefined;
  let releaseWaitMs = 0;
  let holdUntil: number | undefined;
  let heapRanges: HeapRange[] = [];
  try {
    notes.push(await ensureListener(target, policy, gcDeadline));
    const flags = await target.command(gcDeadline, 'jcmd', 'VM.flags');
    const collector = /-XX:\+Use(G1|Serial|Parallel|Shenandoah|Z|Epsilon)GC\b/.exec(flags)?.[1] ?? 'unknown';
    saved.min = await readFlag(target, gcDeadline, 'MinHeapFreeRatio');
    saved.max = await readFlag(target, gcDeadline, 'MaxHeapFreeRatio');
    if (saved.min !== undefined && saved.max !== undefined) {
      await target.command(gcDeadline, 'setflag', 'MinHeapFreeRatio', String(LOW_MIN_HEAP_FREE_RATIO)); // Min first: Min <= Max
      await target.command(gcDeadline, 'setflag', 'MaxHeapFreeRatio', String(LOW_MAX_HEAP_FREE_RATIO));
    }
    // An old generation outside G1 shrinks in steps over consecutive full GCs (0, 10, 40, 100 %
    // under ShrinkHeapInSteps), so those collectors get four.
    const runs = collector === 'G1' ? 1 : 4;
    const gcStarted = Date.now();
    for (let i = 0; i < runs; i++) await target.command(gcDeadline, 'jcmd', 'GC.run');
    rssAfterGcKiB = vmRssKiB(pid);
    // The other collectors shrink inside the GC; G1 uncommits afterwards.
    if (collector === 'G1') {
      releaseWaitMs = RELEASE_MAX_WAIT_MS;
      holdUntil = Math.min(Date.now() + G1_UNCOMMIT_DELAY_MS, gcDeadline);
    }
    notes.push(`${collector} GC.run ×${runs} ${Date.now() - gcStarted} ms`);
    // JDK >= 17.0.9; older ones answer with an error, which changes nothing.
    await target.command(gcDeadline, 'jcmd', 'System.trim_native_heap').catch(() => undefined);
    // Where the Java heap is, so a map-mode restore can map it (no VMA signature can tell).
    heapRanges = parseJvmHeapInfo(await target.command(gcDeadline, 'jcmd', 'GC.heap_info').catch(() => ''));
  } catch (err) {
    failure = err instanceof JvmAttachError ? err : new JvmAttachError('COMMAND_FAILED', errorMessage(err));
    if (failure.reason !== 'EXITED' && processExited(pid)) failure = new JvmAttachError('EXITED', 'the JVM exited during the GC');
  } finally {
    // Max first on the way back, for the same Min <= Max reason; given the rest of the time.
    let restored = 0;
    for (const [flag, value] of [['MaxHeapFreeRatio', saved.max], ['MinHeapFreeRatio', saved.min]] as const) {
      if (value === undefined || processExited(pid)) continue;
      try {
        await target.command(options.deadline, 'setflag', flag, String(value));
        restored++;
      } catch (err) {
        notes.push(`could not restore ${flag}=${value} (left at ${flag === 'MaxHeapFreeRatio' ? LOW_MAX_HEAP_FREE_RATIO : LOW_MIN_HEAP_FREE_RATIO}: more GC work, no harm): ${errorMessage(err)}`);
      }
    }
    if (restored === 2) notes.push(`heap free ratios ${LOW_MIN_HEAP_FREE_RATIO}/${LOW_MAX_HEAP_FREE_RATIO} during the GC, ${saved.min}/${saved.max} restored`);
  }
  if (failure) return done({ ok: false, failure: failure.reason, detail: [failure.message, ...notes].join('; '), rssBeforeKiB });

  if (holdUntil !== undefined && options.holdStill) {
    // Restoring the ratios (above) took a few ms; the app must not run on until G1 has released.
    try {
      await options.holdStill(holdUntil);
      notes.push('container held frozen until the release');
    } catch (err) {
      notes.push(`could not hold the container frozen: ${errorMessage(err)}`);
    }
  }
  const release = await waitForHeapRelease(pid, rssAfterGcKiB, releaseWaitMs, options.deadline, options.signal);
  notes.push(release.released ? `memory released within ${release.ms} ms` : `no release seen in ${release.ms} ms`);
  const rssAfterKiB = vmRssKiB(pid);
  if (rssBeforeKiB !== undefined && rssAfterKiB !== undefined) notes.push(`RSS ${mib(rssBeforeKiB)} → ${mib(rssAfterKiB)} MiB`);
  if (heapRanges.length > 0) notes.push(`heap ${heapRanges.map((r) => `${r.start.toString(16)}-${r.end.toString(16)}`).join(' ')}`);
  return done({ ok: true, detail: notes.join(', '), rssBeforeKiB, rssAfterKiB, heapRanges });
}

async function readFlag(target: AttachTarget, deadline: number, flag: string): Promise<number | undefined> {
  const reply = await target.command(deadline, 'printflag', flag); // "-XX:MinHeapFreeRatio=40"
  const match = /=(\d+)/.exec(reply);
  return match ? Number(match[1]) : undefined;
}

/** One JVM as reached from the host: its attach socket and the commands sent over it. */
class AttachTarget {
  readonly socketPath: string;

  constructor(
    readonly pid: number,
    /** The JVM names its files after its own pid (the one in its pid namespace). */
    readonly nsPid: number,
    private readonly abort: AbortSignal | undefined,
  ) {
    this.socketPath = `${this.tmpDir}/.java_pid${nsPid}`;
  }

  get tmpDir(): string {
    return `/proc/${this.pid}/root/tmp`;
  }

  /** The socket is there, as a socket, in a /tmp that is a real directory. */
  socketReady(): boolean {
    return lstatOrUndefined(this.tmpDir)?.isDirectory() === true && lstatOrUndefined(this.socketPath)?.isSocket() === true;
  }

  /** Sends one command on a fresh connection (HotSpot serves one per connection); its output, or a JvmAttachError. */
  command(deadline: number, name: string, ...args: string[]): Promise<string> {
    const words = [name, ...args, '', '', ''].slice(0, 4); // protocol 1: a command and exactly three arguments
    const request = `1\0${words.join('\0')}\0`;
    const what = [name, ...args].join(' ');
    return new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let received = 0;
      let settled = false;
      const socket = net.createConnection({ path: this.socketPath });
      const finish = (err: JvmAttachError | undefined, output?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.abort?.removeEventListener('abort', onAbort);
        socket.destroy();
        if (err) reject(err);
        else resolve(output ?? '');
      };
      const onAbort = (): void => finish(new JvmAttachError('TIMEOUT', `${what}: given up`));
      const timer = setTimeout(() => finish(new JvmAttachError('TIMEOUT', `${what}: no answer in time`)), Math.max(0, deadline - Date.now()));
      if (this.abort?.aborted) return onAbort();
      this.abort?.addEventListener('abort', onAbort);
      socket.on('connect', () => socket.end(request));
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > REPLY_MAX_BYTES) return finish(new JvmAttachError('COMMAND_FAILED', `${what}: reply larger than ${REPLY_MAX_BYTES} bytes`));
        chunks.push(chunk);
      });
      socket.on('error', (err) => finish(new JvmAttachError('COMMAND_FAILED', `${what}: ${err.message}`)));
      socket.on('close', () => {
        const reply = Buffer.concat(chunks).toString('utf8');
        const newline = reply.indexOf('\n');
        const code = Number.parseInt(newline < 0 ? reply : reply.slice(0, newline), 10);
        const output = newline < 0 ? '' : reply.slice(newline + 1);
        if (code === 0) finish(undefined, output);
        else finish(new JvmAttachError('COMMAND_FAILED', `${what}: ${Number.isNaN(code) ? 'no reply' : `code ${code}`}${output.trim() ? `: ${output.trim().slice(0, 200)}` : ''}`));
      });
    });
  }
}

/** Makes sure the attach listener runs; says how. */
async function ensureListener(target: AttachTarget, policy: AttachPolicy, deadline: number): Promise<string> {
  if (target.socketReady()) return 'attach listener already running';
  if (policy.noSigquit) throw new JvmAttachError('NO_LISTENER', `no attach socket, and ${policy.noSigquit} (SIGQUIT would kill it)`);
  const status = readStatus(target.pid);
  if (status === undefined) throw new JvmAttachError('EXITED', 'the JVM exited');
  if (!signalInMask(status, 'SigCgt', SIGQUIT)) throw new JvmAttachError('NO_LISTENER', 'no attach socket, and the JVM does not catch SIGQUIT (it would kill it)');
  if (signalInMask(status, 'SigBlk', SIGQUIT)) throw new JvmAttachError('NO_LISTENER', 'no attach socket, and SIGQUIT is blocked'); // the main thread's mask: coarse
  const attachFile = createAttachFile(target, ownerOf(status));
  if (!attachFile) throw new JvmAttachError('NO_LISTENER', 'cannot create the .attach_pid file (SIGQUIT would only print a thread dump)');
  try {
    process.kill(target.pid, 'SIGQUIT');
    for (let wait = 10; !target.socketReady(); wait = Math.min(wait * 2, 200)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new JvmAttachError('TIMEOUT', 'the attach socket did not appear in time');
      await sleep(Math.min(wait, left));
    }
    return 'attach listener started by SIGQUIT';
  } finally {
    if (attachFile.created) fs.rmSync(attachFile.path, { force: true });
  }
}

/**
 * Creates .attach_pid<nsPid> where HotSpot looks for it: the JVM's cwd, else its /tmp. Owned
 * by the JVM's euid/egid, which HotSpot requires (or root). Undefined when neither place works.
 */
function createAttachFile(target: AttachTarget, owner: { uid: number; gid: number }): { path: string; created: boolean } | undefined {
  const name = `.attach_pid${target.nsPid}`;
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  for (const dir of [`/proc/${target.pid}/cwd`, target.tmpDir]) {
    if (dir === target.tmpDir && lstatOrUndefined(dir)?.isDirectory() !== true) continue; // a /tmp symlink would resolve on the host
    const file = path.join(dir, name);
    try {
      fs.closeSync(fs.openSync(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600));
    } catch (err) {
      // Someone else's trigger file (a concurrent jcmd) does as well, if it is a plain file.
      if (isErrno(err, 'EEXIST') && lstatOrUndefined(file)?.isFile() === true) return { path: file, created: false };
      continue; // EACCES, EROFS, ENOENT: try the next place
    }
    try {
      fs.chownSync(file, owner.uid, owner.gid);
    } catch {
      /* fine when we already are its owner */
    }
    return { path: file, created: true };
  }
  return undefined;
}

/** Command line, the *JAVA*_OPTIONS variables, and hsperfdata's java.rt.vmArgs (which also covers @argfiles). */
function jvmOptionsOf(pid: number, nsPid: number): string {
  const parts: string[] = [];
  try {
    parts.push(fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' '));
  } catch {
    /* gone: the caller finds out */
  }
  try {
    for (const entry of fs.readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0')) {
      if (/^(JAVA_TOOL_OPTIONS|JDK_JAVA_OPTIONS|_JAVA_OPTIONS)=/.test(entry)) parts.push(entry.slice(entry.indexOf('=') + 1));
    }
  } catch {
    /* ignore */
  }
  const tmp = `/proc/${pid}/root/tmp`;
  try {
    if (lstatOrUndefined(tmp)?.isDirectory() === true) {
      for (const dir of fs.readdirSync(tmp)) {
        if (!dir.startsWith('hsperfdata_')) continue;
        const perfData = readNoFollow(path.join(tmp, dir, String(nsPid)), 64 * 1024)?.toString('latin1');
        const vmArgs = perfData && /java\.rt\.vmArgs\0+([^\0]*)/.exec(perfData);
        if (vmArgs) parts.push(vmArgs[1]);
      }
    }
  } catch {
    /* -XX:-UsePerfData, or unreadable */
  }
  return parts.join(' ');
}

/** Polls VmRSS until the GC's memory has been given back (see RELEASE_*), or the deadline. */
async function waitForHeapRelease(pid: number, rssAfterGcKiB: number | undefined, maxWaitMs: number, deadline: number, abort: AbortSignal | undefined): Promise<{ released: boolean; ms: number }> {
  const started = Date.now();
  let lowest = rssAfterGcKiB ?? Number.POSITIVE_INFINITY;
  let released = false;
  let lastDropAt = started;
  for (;;) {
    const kib = vmRssKiB(pid);
    const now = Date.now();
    if (kib === undefined) return { released, ms: now - started };
    if (kib <= lowest - RELEASE_MIN_DROP_KIB) {
      released = true;
      lastDropAt = now;
    }
    lowest = Math.min(lowest, kib);
    if (released ? now - lastDropAt >= RELEASE_QUIET_MS : now - started >= maxWaitMs) return { released, ms: now - started };
    const left = deadline - now;
    if (left <= 0 || abort?.aborted) return { released, ms: now - started };
    await sleep(Math.min(RELEASE_POLL_MS, left));
  }
}

/** Effective uid/gid as the host sees them. */
function ownerOf(status: string): { uid: number; gid: number } {
  const uid = /^Uid:\s+\d+\s+(\d+)/m.exec(status);
  const gid = /^Gid:\s+\d+\s+(\d+)/m.exec(status);
  return { uid: uid ? Number(uid[1]) : 0, gid: gid ? Number(gid[1]) : 0 };
}

function vmRssKiB(pid: number): number | undefined {
  const match = /^VmRSS:\s+(\d+)/m.exec(readStatus(pid) ?? '');
  return match ? Number(match[1]) : undefined;
}

function lstatOrUndefined(file: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(file);
  } catch {
    return undefined;
  }
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

function mib(kib: number): string {
  return (kib / 1024).toFixed(1);
}
