// The runc command line, one method per subcommand: typed options in, typed results out,
// and runc's own error (from its JSON log, else stderr) in every failure.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import * as fs from 'node:fs';
import { RuntimeError } from '../errors/shim-error';
import { setMemoryMerge } from '../native';

export interface RuncConfig {
  /** runc binary (a name found on PATH, or a path). */
  binary: string;
  /** runc's state root, one per containerd namespace. */
  root: string;
  systemdCgroup: boolean;
}

/** The container's side of its stdio, handed to runc create / exec as fds 0-2. */
export interface ChildStdio {
  stdin?: number;
  stdout?: number;
  stderr?: number;
}

export interface CreateOptions {
  bundle: string;
  pidFile: string;
  consoleSocket?: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
  stdio: ChildStdio;
}

export interface ExecOptions {
  processFile: string;
  pidFile: string;
  consoleSocket?: string;
  stdio: ChildStdio;
}

export interface CheckpointOptions {
  imagePath: string;
  workPath: string;
  leaveRunning: boolean;
  tcpEstablished: boolean;
  externalUnixSockets: boolean;
  shellJob: boolean;
  fileLocks: boolean;
  emptyNamespaces: string[];
  /** soft | full | strict | ignore; empty for runc's default. */
  cgroupsMode: string;
}

export interface RestoreOptions {
  bundle: string;
  imagePath: string;
  workPath: string;
  pidFile: string;
  consoleSocket?: string;
  noPivot?: boolean;
  stdio: ChildStdio;
  /** Make the restored processes mergeable by KSM (they inherit it from runc and CRIU). */
  mergeMemory?: boolean;
  /** Added to runc's environment (which CRIU and its action scripts inherit). */
  env?: Readonly<Record<string, string>>;
}

/** How runc is spawned beyond its arguments and stdio. */
interface SpawnExtras {
  /** Written to runc's stdin. */
  input?: string;
  mergeMemory?: boolean;
  env?: Readonly<Record<string, string>>;
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export class RuncDriver {
  constructor(
    readonly config: RuncConfig,
    /** runc --log target; its last error line explains failures. */
    private readonly logFile: string,
  ) {}

  async create(id: string, opts: CreateOptions): Promise<void> {
    const args = ['create', '--bundle', opts.bundle, '--pid-file', opts.pidFile];
    if (opts.consoleSocket) args.push('--console-socket', opts.consoleSocket);
    if (opts.noPivot) args.push('--no-pivot');
    if (opts.noNewKeyring) args.push('--no-new-keyring');
    args.push(id);
    await this.runChecked(args, opts.stdio);
  }

  async start(id: string): Promise<void> {
    await this.runChecked(['start', id]);
  }

  async exec(id: string, opts: ExecOptions): Promise<void> {
    const args = ['exec', '--process', opts.processFile, '--detach', '--pid-file', opts.pidFile];
    if (opts.consoleSocket) args.push('--console-socket', opts.consoleSocket);
    args.push(id);
    await this.runChecked(args, opts.stdio);
  }

  async checkpoint(id: string, opts: CheckpointOptions): Promise<void> {
    const args = ['checkpoint', '--image-path', opts.imagePath, '--work-path', opts.workPath];
    if (opts.leaveRunning) args.push('--leave-running');
    if (opts.tcpEstablished) args.push('--tcp-established');
    if (opts.externalUnixSockets) args.push('--ext-unix-sk');
    if (opts.shellJob) args.push('--shell-job');
    if (opts.fileLocks) args.push('--file-locks');
    for (const ns of opts.emptyNamespaces) args.push('--empty-ns', ns);
    if (opts.cgroupsMode) args.push('--manage-cgroups-mode', opts.cgroupsMode);
    args.push(id);
    await this.runChecked(args);
  }

  /** `runc restore --detach`: the restored init is re-parented to us (no runc subreaper). */
  async restore(id: string, opts: RestoreOptions): Promise<void> {
    const args = ['restore', '--detach', '--no-subreaper', '--bundle', opts.bundle, '--image-path', opts.imagePath, '--work-path', opts.workPath, '--pid-file', opts.pidFile];
    if (opts.consoleSocket) args.push('--console-socket', opts.consoleSocket);
    if (opts.noPivot) args.push('--no-pivot');
    args.push(id);
    await this.runChecked(args, opts.stdio, { mergeMemory: opts.mergeMemory === true, ...(opts.env ? { env: opts.env } : {}) });
  }

  async kill(id: string, signal: number, all: boolean): Promise<void> {
    const args = ['kill'];
    if (all) args.push('--all');
    args.push(id, String(signal));
    await this.runChecked(args);
  }

  async delete(id: string, force: boolean): Promise<void> {
    const args = ['delete'];
    if (force) args.push('--force');
    args.push(id);
    await this.runChecked(args);
  }

  async pause(id: string): Promise<void> {
    await this.runChecked(['pause', id]);
  }

  async resume(id: string): Promise<void> {
    await this.runChecked(['resume', id]);
  }

  async ps(id: string): Promise<number[]> {
    const out = await this.runChecked(['ps', '--format', 'json', id]);
    const pids = JSON.parse(out.stdout.trim() || '[]') as unknown;
    if (!Array.isArray(pids)) throw new RuntimeError(`runc ps ${id}: unexpected output ${out.stdout.slice(0, 200)}`);
    return pids.map(Number);
  }

  async update(id: string, resourcesJson: string): Promise<void> {
    await this.runChecked(['update', '--resources', '-', id], {}, { input: resourcesJson });
  }

  /** `runc state`: null when runc does not know the container. */
  async state(id: string): Promise<{ status: string; pid: number } | null> {
    const out = await this.run(['state', id]);
    if (out.code !== 0) return null;
    return JSON.parse(out.stdout) as { status: string; pid: number };
  }

  private globalArgs(): string[] {
    const args = ['--root', this.config.root, '--log', this.logFile, '--log-format', 'json'];
    if (this.config.systemdCgroup) args.push('--systemd-cgroup');
    return args;
  }

  private async runChecked(args: string[], stdio: ChildStdio = {}, extras: SpawnExtras = {}): Promise<RunResult> {
    const logOffset = fileSize(this.logFile);
    const result = await this.run(args, stdio, extras);
    if (result.code !== 0) {
      const why = lastRuncError(this.logFile, logOffset) ?? (result.stderr.trim() || `exit ${result.code ?? result.signal}`);
      throw new RuntimeError(`runc ${args[0]} failed: ${why}`);
    }
    return result;
  }

  private run(args: string[], stdio: ChildStdio = {}, { input, mergeMemory = false, env }: SpawnExtras = {}): Promise<RunResult> {
    // Where the caller hands the container's stdio over, runc's own output goes there too;
    // its errors still reach us through --log.
    const passStdio = stdio.stdin !== undefined || stdio.stdout !== undefined || stdio.stderr !== undefined;
    const stdioOption: StdioOptions = passStdio
      ? [stdio.stdin ?? 'ignore', stdio.stdout ?? 'ignore', stdio.stderr ?? 'ignore']
      : [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'];
    return new Promise((resolve, reject) => {
      // PR_SET_MEMORY_MERGE is inherited across fork and exec: set on this process only for
      // the synchronous spawn (the fork and exec happen inside it), so only runc inherits it.
      if (mergeMemory) setMemoryMerge(true);
      let child: ChildProcess;
      try {
        child = spawn(this.config.binary, [...this.globalArgs(), ...args], { stdio: stdioOption, ...(env ? { env: { ...process.env, ...env } } : {}) });
      } finally {
        if (mergeMemory) setMemoryMerge(false);
      }
      let stdout = '';
      let stderr = '';
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      if (input !== undefined) child.stdin?.end(input);
      child.on('error', (err) => reject(new RuntimeError(`cannot run ${this.config.binary}: ${err.message}`)));
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  }
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** The last error runc wrote to its JSON log after byte `from`, if any. (Concurrent runc
 * calls share the log, so a call reads only what was appended while it ran.) */
export function lastRuncError(file: string, from = 0): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file).subarray(from).toString('utf8');
  } catch {
    return undefined;
  }
  const lines = text.trim().split('\n').reverse();
  for (const line of lines) {
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if ((entry.level === 'error' || entry.level === 'fatal') && entry.msg) return entry.msg;
    } catch {
      /* a partial line */
    }
  }
  return undefined;
}
