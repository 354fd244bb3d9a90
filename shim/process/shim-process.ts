// What the init process and exec processes share: a lifecycle, a pid, stdio, and an
// exit that callers can wait for.
import { type ExitStatus } from '../reaper/exit-watcher';
import { TaskStatus, toTimestamp, type StateResponse, type WaitResponse } from '../proto/messages';
import type { Stdio } from '../io/stdio';
import type { StdioPaths } from '../io/process-io';
import { Lifecycle, type ProcessOperation } from './lifecycle';

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
    unsupported: readonly ProcessOperation[],
  ) {
    const subject = execId ? `exec ${execId} in container ${containerId}` : `container ${containerId}`;
    this.lifecycle = new Lifecycle(subject, unsupported);
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
