/**
 * Running host commands from tests: a one-shot `run` with a hard timeout, and
 * `startDaemon` for long-lived processes (containerd, dockerd) whose output goes to a log file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the command (and its process group) after this long. Default 60 s. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. Without it stdin is /dev/null. */
  input?: string | Buffer;
}

export interface RunResult {
  /** Exit code; 128 + signal number when killed by a signal (as a shell reports it). */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

/** Output kept per stream; a runaway command must not fill the test's memory. */
const MAX_CAPTURE_BYTES = 16 * 1024 * 1024;
/** After the child exits, how long to wait for grandchildren that still hold its pipes. */
const PIPE_DRAIN_GRACE_MS = 2000;

export class CommandError extends Error {
  readonly code = 'E_COMMAND_FAILED';
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    super(
      `${command} ${result.timedOut ? 'timed out' : `exited with ${result.code}`} after ${result.durationMs} ms\n` +
        `stderr: ${tail(result.stderr)}\nstdout: ${tail(result.stdout)}`,
    );
    this.name = 'CommandError';
  }
}

function tail(text: string, max = 4000): string {
  const t = text.trimEnd();
  return t.length > max ? `...${t.slice(t.length - max)}` : t;
}

function signalNumber(signal: NodeJS.Signals): number {
  return os.constants.signals[signal] ?? 0;
}

class Capture {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  add(chunk: Buffer): void {
    if (this.bytes >= MAX_CAPTURE_BYTES) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/**
 * Runs `cmd args` and resolves with its exit status and output; never rejects for a
 * non-zero exit (use `runOk` for that). Rejects only if the command cannot be spawned.
 * The child gets its own process group so a timeout kills what it started too.
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise<RunResult>((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(cmd, [...args], {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        detached: true,
      });
    } catch (err) {
      reject(err);
      return;
    }
    const out = new Capture();
    const errOut = new Capture();
    child.stdout?.on('data', (c: Buffer) => out.add(c));
    child.stderr?.on('data', (c: Buffer) => errOut.add(c));
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined); // the command may exit without reading
      child.stdin.end(opts.input);
    }

    let timedOut = false;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let settled = false;
    let drainTimer: NodeJS.Timeout | undefined;

    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        try {
          child.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);

    const finish = (): void => {
      if (settled || exit === undefined) return;
      settled = true;
      clearTimeout(timer);
      if (drainTimer) clearTimeout(drainTimer);
      child.stdout?.destroy();
      child.stderr?.destroy();
      const { code, signal } = exit;
      resolve({
        code: code ?? (signal ? 128 + signalNumber(signal) : -1),
        signal,
        stdout: out.text(),
        stderr: errOut.text(),
        timedOut,
        durationMs: Date.now() - started,
      });
    };

    child.on('error', (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      drainTimer = setTimeout(finish, PIPE_DRAIN_GRACE_MS);
    });
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      exit = exit ?? { code, signal };
      finish();
    });
  });
}

/** Like `run`, but throws a CommandError (with stderr) unless the command exits 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0 || result.timedOut) throw new CommandError([cmd, ...args].join(' '), result);
  return result;
}

export interface DaemonOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdout and stderr are appended here. */
  logFile: string;
}

export interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A long-running child process of the test. */
export class Daemon {
  readonly pid: number;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<DaemonExit>;
  private exitStatus: DaemonExit | undefined;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    if (child.pid === undefined) throw new Error(`${name}: spawn returned no pid`);
    this.pid = child.pid;
    this.exited = new Promise<DaemonExit>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
    });
  }

  static start(cmd: string, args: readonly string[], opts: DaemonOptions): Promise<Daemon> {
    const fd = fs.openSync(opts.logFile, 'a');
    try {
      const child = spawn(cmd, [...args], {
        env: opts.env,
        cwd: opts.cwd,
        stdio: ['ignore', fd, fd],
      });
      return new Promise<Daemon>((resolve, reject) => {
        child.once('error', reject);
        child.once('spawn', () => resolve(new Daemon(cmd, child)));
      });
    } finally {
      fs.closeSync(fd);
    }
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  get exitInfo(): DaemonExit | undefined {
    return this.exitStatus;
  }

  /** Sends `signal`, waits up to `graceMs`, then SIGKILLs. Safe to call when already exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<DaemonExit> {
    if (!this.running) return this.exitStatus as DaemonExit;
    this.child.kill(signal);
    const graceful = await Promise.race([this.exited, delay(graceMs).then(() => undefined)]);
    if (graceful) return graceful;
    this.child.kill('SIGKILL');
    return this.exited;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** The last `lines` lines of a log file, or "(no log)" (for error messages). */
export function fileTail(file: string, lines = 40): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
