// What the init process and exec processes share: a lifecycle, a pid, stdio, and an
// exit that callers can wait for.
import * as fs from 'node:fs';
import { RuntimeError } from '../errors/shim-error';
import { ConsoleSocket } from '../io/console-socket';
import { ProcessIo, type IoContext } from '../io/process-io';
import { PtyIo } from '../io/pty-io';
import { watchExit, type ExitStatus } from '../reaper/exit-watcher';
import type { ChildStdio } from '../runc/runc-driver';
import { TaskStatus, toTimestamp, type StateResponse, type WaitResponse } from '../proto/messages';
import type { Stdio } from '../io/stdio';
import type { StdioPaths } from '../io/process-io';
import { Lifecycle, type ProcessOperation } from './lifecycle';

const TERMINAL_TIMEOUT_MS = 10_000;

/** Runs the runc command that starts a process, given the container's side of its stdio
 * (pipes) or a console socket path (terminal). */
export type Launcher = (stdio: ChildStdio, consoleSocket: string | undefined) => Promise<void>;

export abstract class ShimProcess {
  readonly lifecycle: Lifecycle;
  pid = 0;
  exit: ExitStatus | undefined;
  protected stdio: Stdio | undefined;
  private readonly exited: Promise<ExitStatus>;
  private resolveExited!: (exit: ExitStatus) => void;
  private readonly exitListeners: Array<(exit: ExitStatus) => void> = [];
  /** An exit seen while a start was under way waits for it, so that the lifecycle reads
   * created -> running -> stopped and TaskExit is never published before TaskStart. */
  private starting = false;
  private exitDuringStart: ExitStatus | undefined;

  protected constructor(
    readonly containerId: string,
    /** The exec id; empty for the init process. */
    readonly execId: string,
    readonly paths: StdioPaths,
    readonly terminal: boolean,
    protected readonly ioContext: IoContext,
    unsupported: readonly ProcessOperation[],
    initial: 'created' | 'created-checkpoint' = 'created',
  ) {
    const subject = execId ? `exec ${execId} in container ${containerId}` : `container ${containerId}`;
    this.lifecycle = new Lifecycle(subject, unsupported, initial);
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
  }

  /** The id containerd uses in events: the exec id, or the container id for init. */
  get eventId(): string {
    return this.execId || this.containerId;
  }

  onExit(listener: (exit: ExitStatus) => void): void {
    this.exitListeners.push(listener);
  }

  /** Called once by the exit watcher. */
  protected setExited(exit: ExitStatus): void {
    if (this.exit) return;
    if (this.starting) {
      this.exitDuringStart = exit;
      return;
    }
    this.exit = exit;
    this.resolveExited(exit);
    if (this.lifecycle.state === 'deleted') return;
    this.lifecycle.apply('exit');
    for (const listener of this.exitListeners) listener(exit);
  }

  /** Starts the process through `launcher` with its stdio (pipes, or a pty from runc),
   * learns its pid from `pidFile` and watches for its exit. */
  protected async launch(pidFile: string, launcher: Launcher): Promise<void> {
    const console = this.terminal ? new ConsoleSocket() : undefined;
    const master = console?.receiveMaster(TERMINAL_TIMEOUT_MS);
    master?.catch(() => undefined);
    let io: ProcessIo | undefined;
    try {
      io = this.terminal ? undefined : await ProcessIo.open(this.paths, this.ioContext);
      await launcher(io?.childStdio ?? {}, console?.path);
      const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0) throw new RuntimeError(`runc wrote no valid pid to ${pidFile}`);
      this.pid = pid;
      watchExit(pid, (exit) => this.setExited(exit));
      this.stdio = io ?? (await PtyIo.open(await master!, this.paths));
      io?.attach();
    } catch (err) {
      console?.close();
      io?.close();
      // runc started it but we could not take it over (pid file, terminal): do not leave
      // an unsupervised process behind.
      if (this.pid > 0 && !this.stdio) {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      void master?.then((fd) => fs.closeSync(fd)).catch(() => undefined);
      throw err;
    }
  }

  /** Closes stdio and answers waiters of a process deleted without ever exiting (never
   * started, or restored never): containerd's "unknown" status 255. */
  protected finishDelete(): void {
    this.stdio?.close();
    if (!this.exit) this.resolveExited({ status: 255, exitedAt: new Date() });
    this.lifecycle.apply('delete');
  }

  /** Releases stdio when the container goes away under a process containerd never deleted. */
  releaseStdio(): void {
    this.stdio?.close();
  }

  /** Runs the start transition: `launch` does the work, then the state becomes running. */
  protected async runStart(launch: () => Promise<void>): Promise<void> {
    this.lifecycle.check('start');
    this.starting = true;
    try {
      await launch();
      this.lifecycle.apply('start');
    } finally {
      this.starting = false;
      const pending = this.exitDuringStart;
      this.exitDuringStart = undefined;
      // After the caller has published TaskStart (its continuation runs first).
      if (pending) setImmediate(() => this.setExited(pending));
    }
  }

  wait(): Promise<WaitResponse> {
    return this.exited.then((exit) => ({ exit_status: exit.status, exited_at: toTimestamp(exit.exitedAt) }));
  }

  /** Resolves once output is drained, bounded so a process that leaked its stdout to a
   * background child cannot hold a delete forever. */
  protected async drainOutput(timeoutMs: number): Promise<void> {
    if (!this.stdio) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.stdio.drained(), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  resize(width: number, height: number): void {
    this.stdio?.resize(width, height);
  }

  closeStdin(): void {
    this.stdio?.closeStdin();
  }

  state(bundle: string): StateResponse {
    return {
      id: this.eventId,
      bundle,
      pid: this.pid,
      status: this.lifecycle.state === 'deleted' ? TaskStatus.STOPPED : this.lifecycle.status,
      stdin: this.paths.stdin,
      stdout: this.paths.stdout,
      stderr: this.paths.stderr,
      terminal: this.terminal,
      exit_status: this.exit?.status ?? 0,
      exited_at: toTimestamp(this.exit?.exitedAt),
      exec_id: this.execId,
    };
  }
}
