/**
 * A private containerd per test: own temp dir, config, root, state and sockets, started
 * with our shim and CRIU first on its PATH. `stop()` removes every trace of it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_RUNC_ROOTS, existingDirs, removeCreatedEmptyDirs,
  removeCreatedFifoDirs,
  fifoDirs, sweep } from './cleanup';
import { containerdBinDir, daemonPath, depPaths, type ContainerdVersion } from './paths';
import { removeStaleServerFiles } from '../../shim/bootstrap/shim-socket';
import { CommandError, Daemon, fileTail, run, type RunOptions, type RunResult } from './process';
import { WaitAbortedError, waitFor } from './wait';

export interface ContainerdOptions {
  version: ContainerdVersion;
  /** containerd's log level (default "debug"); the log is `<tmpDir>/containerd.log`. */
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** Extra environment for containerd (and so for the shims it starts). */
  env?: NodeJS.ProcessEnv;
  /** Appended verbatim to the generated config.toml (same format version as `version`). */
  extraConfig?: string;
  /** How long to wait for `ctr version` to answer. Default 30 s. */
  readyTimeoutMs?: number;
}

export interface CtrOptions extends Omit<RunOptions, 'env'> {
  /** containerd namespace; default "default". */
  namespace?: string;
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_NAMESPACE = 'default';

/** A failed start; everything it created (named by tmpDir) has been removed again. */
export class ContainerdStartError extends Error {
  readonly code = 'E_CONTAINERD_START';
  constructor(
    readonly tmpDir: string,
    readonly cause: unknown,
  ) {
    super(`containerd did not start in ${tmpDir}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'ContainerdStartError';
  }
}

/** One line of `ctr tasks ls`. */
export interface TaskInfo {
  id: string;
  pid: number;
  status: string;
}

/** Plugins that would only slow startup, write outside the temp dir or log noise. */
const DISABLED_PLUGINS: Record<ContainerdVersion, readonly string[]> = {
  '1.7': [
    'io.containerd.grpc.v1.cri',
    'io.containerd.nri.v1.nri',
    'io.containerd.snapshotter.v1.aufs',
    'io.containerd.snapshotter.v1.blockfile',
    'io.containerd.snapshotter.v1.btrfs',
    'io.containerd.snapshotter.v1.devmapper',
    'io.containerd.snapshotter.v1.zfs',
    'io.containerd.tracing.processor.v1.otlp',
    'io.containerd.internal.v1.tracing',
  ],
  '2.1': [
    'io.containerd.grpc.v1.cri',
    'io.containerd.cri.v1.images',
    'io.containerd.cri.v1.runtime',
    'io.containerd.podsandbox.controller.v1.podsandbox',
    'io.containerd.nri.v1.nri',
    'io.containerd.snapshotter.v1.blockfile',
    'io.containerd.snapshotter.v1.btrfs',
    'io.containerd.snapshotter.v1.devmapper',
    'io.containerd.snapshotter.v1.erofs',
    'io.containerd.snapshotter.v1.zfs',
    'io.containerd.differ.v1.erofs',
    'io.containerd.tracing.processor.v1.otlp',
    'io.containerd.internal.v1.tracing',
  ],
};

function toml(value: string): string {
  return JSON.stringify(value); // a TOML basic string is a JSON string for these paths
}

function renderConfig(version: ContainerdVersion, dirs: ContainerdDirs, logLevel: string, extra: string): string {
  const quotedPlugin = (id: string): string => (version === '1.7' ? `"${id}"` : `'${id}'`);
  const lines = [
    `version = ${version === '1.7' ? 2 : 3}`,
    `root = ${toml(dirs.root)}`,
    `state = ${toml(dirs.state)}`,
    `temp = ${toml(dirs.temp)}`,
    `disabled_plugins = [${DISABLED_PLUGINS[version].map((p) => toml(p)).join(', ')}]`,
    '',
    '[grpc]',
    `  address = ${toml(dirs.address)}`,
    '',
    '[ttrpc]',
    `  address = ${toml(dirs.ttrpcAddress)}`,
    '',
    '[debug]',
    `  level = ${toml(logLevel)}`,
    '',
    `[plugins.${quotedPlugin('io.containerd.internal.v1.opt')}]`,
    `  path = ${toml(path.join(dirs.tmpDir, 'opt'))}`,
  ];
  if (version === '2.1') {
    lines.push(
      '',
      `[plugins.${quotedPlugin('io.containerd.image-verifier.v1.bindir')}]`,
      `  bin_dir = ${toml(path.join(dirs.tmpDir, 'opt', 'image-verifier', 'bin'))}`,
    );
  }
  return `${lines.join('\n')}\n${extra}\n`;
}

interface ContainerdDirs {
  tmpDir: string;
  root: string;
  state: string;
  temp: string;
  address: string;
  ttrpcAddress: string;
}

export class Containerd {
  readonly address: string;
  readonly ttrpcAddress: string;
  readonly root: string;
  readonly state: string;
  readonly configPath: string;
  readonly logPath: string;
  readonly binDir: string;
  readonly ctrPath: string;
  /** containerd's environment (PATH with our shim and CRIU first). */
  readonly env: NodeJS.ProcessEnv;
  /** How long the last start (spawn until `ctr version` answers) took, in ms. */
  lastStartMs = 0;
  private daemon: Daemon | undefined;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  /** Host runtime folders that existed before this containerd started (see cleanup.ts). */
  private readonly hostDirsBefore = existingDirs();
  private readonly fifoDirsBefore = fifoDirs();

  private constructor(
    readonly version: ContainerdVersion,
    readonly tmpDir: string,
    private readonly opts: ContainerdOptions,
  ) {
    const dirs: ContainerdDirs = {
      tmpDir,
      root: path.join(tmpDir, 'root'),
      state: path.join(tmpDir, 'state'),
      temp: path.join(tmpDir, 'tmp'),
      address: path.join(tmpDir, 'c.sock'),
      ttrpcAddress: path.join(tmpDir, 'c.sock.ttrpc'),
    };
    this.address = dirs.address;
    this.ttrpcAddress = dirs.ttrpcAddress;
    this.root = dirs.root;
    this.state = dirs.state;
    this.configPath = path.join(tmpDir, 'config.toml');
    this.logPath = path.join(tmpDir, 'containerd.log');
    this.binDir = containerdBinDir(version);
    this.ctrPath = path.join(this.binDir, 'ctr');
    this.env = { ...process.env, ...opts.env, PATH: daemonPath(this.binDir) };
    for (const dir of [dirs.root, dirs.state, dirs.temp]) fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
    fs.writeFileSync(
      this.configPath,
      renderConfig(version, dirs, opts.logLevel ?? 'debug', opts.extraConfig ?? ''),
    );
  }

  /** Creates the temp dir and config, starts containerd and waits until it answers. */
  static async start(opts: ContainerdOptions): Promise<Containerd> {
    depPaths(); // fail early with the "run make build" message
    // /tmp, not $TMPDIR, and short: unix socket paths must stay under ~100 bytes.
    const tmpDir = fs.mkdtempSync('/tmp/psc-');
    let instance: Containerd | undefined;
    try {
      instance = new Containerd(opts.version, tmpDir, opts);
      await instance.launch();
      return instance;
    } catch (err) {
      if (instance) await instance.stop().catch(() => undefined);
      else fs.rmSync(tmpDir, { recursive: true, force: true });
      throw new ContainerdStartError(tmpDir, err);
    }
  }

  get pid(): number | undefined {
    return this.daemon?.running ? this.daemon.pid : undefined;
  }

  get running(): boolean {
    return this.daemon?.running ?? false;
  }

  private async launch(): Promise<void> {
    const started = Date.now();
    const daemon = await Daemon.start(path.join(this.binDir, 'containerd'), ['--config', this.configPath], {
      env: this.env,
      cwd: this.tmpDir,
      logFile: this.logPath,
    });
    this.daemon = daemon;
    await waitFor(
      `containerd ${this.version} at ${this.address}`,
      async () => {
        if (!daemon.running) {
          throw new WaitAbortedError(`containerd exited (${JSON.stringify(daemon.exitInfo)}); log:\n${this.logTail()}`);
        }
        // ctr waits for a socket that is not there yet: only ask once containerd made it.
        if (!fs.existsSync(this.address)) return false;
        const r = await this.ctr(['version'], { timeoutMs: 5000 });
        return r.code === 0;
      },
      { timeoutMs: this.opts.readyTimeoutMs ?? 30_000, intervalMs: 50 },
    );
    this.lastStartMs = Date.now() - started;
  }

  /** The last lines of containerd's log (for error messages). */
  logTail(lines = 40): string {
    return fileTail(this.logPath, lines);
  }

  /** Runs `ctr --address SOCK --namespace NS args...`; resolves whatever the exit code. */
  ctr(args: readonly string[], opts: CtrOptions = {}): Promise<RunResult> {
    const { namespace = DEFAULT_NAMESPACE, env, ...rest } = opts;
    return run(this.ctrPath, ['--address', this.address, '--namespace', namespace, ...args], {
      timeoutMs: 60_000,
      ...rest,
      env: { ...this.env, ...env },
    });
  }

  /** Like `ctr`, but throws a CommandError carrying ctr's stderr unless it exits 0. */
  async ctrOk(args: readonly string[], opts: CtrOptions = {}): Promise<RunResult> {
    const result = await this.ctr(args, opts);
    if (result.code !== 0 || result.timedOut) {
      throw new CommandError(`ctr -n ${opts.namespace ?? DEFAULT_NAMESPACE} ${args.join(' ')}`, result);
    }
    return result;
  }

  /** `ctr tasks ls` parsed. */
  async tasks(namespace = DEFAULT_NAMESPACE): Promise<TaskInfo[]> {
    const out = (await this.ctrOk(['tasks', 'ls'], { namespace })).stdout;
    return out
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f.length >= 3)
      .map(([id, pid, status]) => ({ id: id ?? '', pid: Number(pid), status: status ?? '' }));
  }

  /** The task's status ("RUNNING", "STOPPED", ...), or undefined when there is no task. */
  async taskStatus(id: string, namespace = DEFAULT_NAMESPACE): Promise<string | undefined> {
    return (await this.tasks(namespace)).find((t) => t.id === id)?.status;
  }

  /**
   * SIGKILLs a container's task, waits (up to stopTimeoutMs) for it to stop, and deletes the
   * task and the container. Best effort: what is already gone is no error.
   */
  async removeContainer(id: string, namespace = DEFAULT_NAMESPACE, stopTimeoutMs = 15_000): Promise<void> {
    await this.ctr(['task', 'kill', '-s', 'SIGKILL', id], { namespace });
    await waitFor(async () => (await this.taskStatus(id, namespace)) !== 'RUNNING', { timeoutMs: stopTimeoutMs }).catch(() => undefined);
    await this.ctr(['task', 'rm', '-f', id], { namespace });
    await this.ctr(['container', 'rm', id], { namespace });
  }

  /**
   * Stops containerd with SIGTERM (as an operator would) and starts it again with the same
   * config. Running shims and their containers are left alone and must be found again.
   */
  async restart(): Promise<void> {
    if (this.stopped) throw new Error('restart() after stop()');
    if (this.daemon) await this.daemon.stop('SIGTERM', 15_000);
    await this.launch();
  }

  /** Kills what runs, stops containerd and removes the temp dir. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.stopped = true;
    if (this.daemon?.running) {
      await this.removeAllContainers().catch(() => undefined);
      await this.daemon.stop('SIGTERM', 10_000);
    }
    try {
      await sweep(this.tmpDir, depPaths().RUNC, DEFAULT_RUNC_ROOTS);
    } finally {
      removeCreatedEmptyDirs(this.hostDirsBefore);
      removeCreatedFifoDirs(this.fifoDirsBefore);
      // pageshare servers of this containerd were killed above: drop their files too.
      removeStaleServerFiles();
    }
  }

  /** Every namespace: SIGKILL all tasks, delete them and their containers. Best effort. */
  private async removeAllContainers(): Promise<void> {
    const quick = { timeoutMs: 15_000 };
    const namespaces = (await this.ctr(['namespaces', 'ls', '-q'], quick)).stdout.split('\n').filter(Boolean);
    for (const namespace of namespaces) {
      const ns = { ...quick, namespace };
      const tasks = (await this.ctr(['tasks', 'ls', '-q'], ns)).stdout.split('\n').filter(Boolean);
      await Promise.all(tasks.map((id) => this.ctr(['tasks', 'kill', '--all', '--signal', 'SIGKILL', id], ns)));
      for (const id of tasks) await this.ctr(['tasks', 'delete', '--force', id], ns);
      const containers = (await this.ctr(['containers', 'ls', '-q'], ns)).stdout.split('\n').filter(Boolean);
      for (const id of containers) await this.ctr(['containers', 'delete', id], ns);
    }
  }
}

/** Starts a private containerd of the given version; see `Containerd`. */
export function startContainerd(opts: ContainerdOptions): Promise<Containerd> {
  return Containerd.start(opts);
}
