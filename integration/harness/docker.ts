/**
 * A private dockerd on top of a test's containerd (`--containerd=SOCK`): own data root,
 * exec root, socket and daemon.json; host networking and iptables left untouched.
 * Images go to containerd's `moby` namespace (containerd image store).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { existingDirs, removeCreatedEmptyDirs, sweep } from './cleanup';
import type { Containerd } from './containerd';
import { daemonPath, depPaths } from './paths';
import { CommandError, Daemon, fileTail, run, type RunOptions, type RunResult } from './process';
import { WaitAbortedError, waitFor } from './wait';

/** containerd namespace dockerd uses. */
export const DOCKER_NAMESPACE = 'moby';

export interface DockerOptions {
  /** Merged over the defaults into daemon.json (e.g. `runtimes`, `default-runtime`). */
  daemonConfig?: Readonly<Record<string, unknown>>;
  /** Extra dockerd arguments. */
  args?: readonly string[];
  /** Extra environment for dockerd. */
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

/** A failed start; everything it created (named by tmpDir) has been removed again. */
export class DockerStartError extends Error {
  readonly code = 'E_DOCKER_START';
  constructor(
    readonly tmpDir: string,
    readonly cause: unknown,
  ) {
    super(`dockerd did not start in ${tmpDir}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'DockerStartError';
  }
}

export const DEFAULT_DAEMON_CONFIG: Readonly<Record<string, unknown>> = {
  experimental: true,
  iptables: false,
  ip6tables: false,
  'ip-forward': false,
  'ip-masq': false,
  bridge: 'none',
  'userland-proxy': false,
  features: { 'containerd-snapshotter': true },
  debug: true,
};

export class Docker {
  readonly socket: string;
  /** `unix://...`, the value for DOCKER_HOST / `-H`. */
  readonly host: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly pidFile: string;
  readonly configPath: string;
  readonly logPath: string;
  /** dockerd's environment. */
  readonly env: NodeJS.ProcessEnv;
  /** Environment for the docker CLI (DOCKER_HOST, a private DOCKER_CONFIG). */
  readonly cliEnv: NodeJS.ProcessEnv;
  readonly dockerPath: string;
  lastStartMs = 0;
  private daemon: Daemon | undefined;
  private stopping: Promise<void> | undefined;
  private readonly hostDirsBefore = existingDirs();

  private constructor(
    readonly containerd: Containerd,
    readonly tmpDir: string,
    private readonly opts: DockerOptions,
  ) {
    const deps = depPaths();
    this.socket = path.join(tmpDir, 'd.sock');
    this.host = `unix://${this.socket}`;
    this.dataRoot = path.join(tmpDir, 'data');
    this.execRoot = path.join(tmpDir, 'exec');
    this.pidFile = path.join(tmpDir, 'dockerd.pid');
    this.configPath = path.join(tmpDir, 'daemon.json');
    this.logPath = path.join(tmpDir, 'dockerd.log');
    this.dockerPath = path.join(deps.DOCKER_BIN, 'docker');
    this.env = { ...process.env, ...opts.env, PATH: daemonPath(deps.DOCKER_BIN, containerd.binDir) };
    const cliConfig = path.join(tmpDir, 'cli');
    fs.mkdirSync(cliConfig, { recursive: true });
    this.cliEnv = { ...process.env, PATH: this.env.PATH, DOCKER_HOST: this.host, DOCKER_CONFIG: cliConfig };
    fs.writeFileSync(this.configPath, JSON.stringify({ ...DEFAULT_DAEMON_CONFIG, ...opts.daemonConfig }, null, 2));
  }

  static async start(containerd: Containerd, opts: DockerOptions = {}): Promise<Docker> {
    if (!containerd.running) throw new Error('startDocker: containerd is not running');
    const tmpDir = fs.mkdtempSync('/tmp/psd-');
    let instance: Docker | undefined;
    try {
      instance = new Docker(containerd, tmpDir, opts);
      await instance.launch();
      return instance;
    } catch (err) {
      if (instance) await instance.stop().catch(() => undefined);
      else fs.rmSync(tmpDir, { recursive: true, force: true });
      throw new DockerStartError(tmpDir, err);
    }
  }

  get running(): boolean {
    return this.daemon?.running ?? false;
  }

  get pid(): number | undefined {
    return this.daemon?.running ? this.daemon.pid : undefined;
  }

  private async launch(): Promise<void> {
    const started = Date.now();
    const args = [
      `--containerd=${this.containerd.address}`,
      `--config-file=${this.configPath}`,
      `--data-root=${this.dataRoot}`,
      `--exec-root=${this.execRoot}`,
      `--pidfile=${this.pidFile}`,
      `--host=${this.host}`,
      ...(this.opts.args ?? []),
    ];
    const daemon = await Daemon.start(path.join(depPaths().DOCKER_BIN, 'dockerd'), args, {
      env: this.env,
      cwd: this.tmpDir,
      logFile: this.logPath,
    });
    this.daemon = daemon;
    await waitFor(
      `dockerd at ${this.socket}`,
      async () => {
        if (!daemon.running) throw new WaitAbortedError(`dockerd exited (${JSON.stringify(daemon.exitInfo)}); log:\n${this.logTail()}`);
        if (!fs.existsSync(this.socket)) return false;
        const r = await this.docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 5000 });
        return r.code === 0;
      },
      { timeoutMs: this.opts.readyTimeoutMs ?? 30_000, intervalMs: 100 },
    );
    this.lastStartMs = Date.now() - started;
  }

  logTail(lines = 40): string {
    return fileTail(this.logPath, lines);
  }

  /** Runs the docker CLI against this daemon; resolves whatever the exit code. */
  docker(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(this.dockerPath, args, { timeoutMs: 120_000, ...opts, env: { ...this.cliEnv, ...opts.env } });
  }

  /** Like `docker`, but throws a CommandError carrying stderr unless it exits 0. */
  async dockerOk(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const result = await this.docker(args, opts);
    if (result.code !== 0 || result.timedOut) throw new CommandError(`docker ${args.join(' ')}`, result);
    return result;
  }

  /** `docker load -i tarPath` (an OCI layout tar works with the containerd image store). */
  async load(tarPath: string): Promise<RunResult> {
    return this.dockerOk(['load', '-i', tarPath], { timeoutMs: 300_000 });
  }

  /** Removes all containers, stops dockerd and everything it left. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.daemon?.running) {
      const ids = (await this.docker(['ps', '-aq'], { timeoutMs: 15_000 })).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await this.docker(['rm', '-f', ...ids], { timeoutMs: 60_000 });
      await this.daemon.stop('SIGTERM', 20_000);
    }
    try {
      // runc state of Docker's containers lives under its exec root (runtime-runc/<ns>/<id>).
      await sweep(this.tmpDir, depPaths().RUNC, [path.join(this.execRoot, 'runtime-runc')]);
    } finally {
      removeCreatedEmptyDirs(this.hostDirsBefore);
    }
  }
}

/** Starts a private dockerd using `containerd`; see `Docker`. */
export function startDocker(containerd: Containerd, opts: DockerOptions = {}): Promise<Docker> {
  return Docker.start(containerd, opts);
}
