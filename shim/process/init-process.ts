// A container's init process: created by `runc create`, started by `runc start`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NotFoundError, RuntimeError } from '../errors/shim-error';
import { ConsoleSocket } from '../io/console-socket';
import { ProcessIo, type IoContext, type StdioPaths } from '../io/process-io';
import { PtyIo } from '../io/pty-io';
import { watchExit } from '../reaper/exit-watcher';
import type { RuncDriver } from '../runc/runc-driver';
import { ShimProcess } from './shim-process';

const TERMINAL_TIMEOUT_MS = 10_000;

export interface InitOptions {
  noPivot: boolean;
  noNewKeyring: boolean;
}

export class InitProcess extends ShimProcess {
  constructor(
    containerId: string,
    paths: StdioPaths,
    terminal: boolean,
    readonly bundle: string,
    private readonly runc: RuncDriver,
    private readonly ioContext: IoContext,
  ) {
    super(containerId, '', paths, terminal, []);
  }

  async create(options: InitOptions): Promise<number> {
    const pidFile = path.join(this.bundle, 'init.pid');
    const console = this.terminal ? new ConsoleSocket() : undefined;
    const master = console?.receiveMaster(TERMINAL_TIMEOUT_MS);
    master?.catch(() => undefined);
    let io: ProcessIo | undefined;
    try {
      io = this.terminal ? undefined : await ProcessIo.open(this.paths, this.ioContext);
      await this.runc.create(this.containerId, {
        bundle: this.bundle,
        pidFile,
        consoleSocket: console?.path,
        noPivot: options.noPivot,
        noNewKeyring: options.noNewKeyring,
        stdio: io?.childStdio ?? {},
      });
      this.pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      if (!Number.isInteger(this.pid) || this.pid <= 0) throw new RuntimeError(`runc create wrote no valid pid to ${pidFile}`);
      watchExit(this.pid, (exit) => this.setExited(exit));
      this.stdio = io ?? (await PtyIo.open(await master!, this.paths));
      io?.attach();
    } catch (err) {
      console?.close();
      io?.close();
      throw err;
    }
    return this.pid;
  }

  async start(): Promise<void> {
    await this.runStart(() => this.runc.start(this.containerId));
  }

  async kill(signal: number, all: boolean): Promise<void> {
    this.lifecycle.check('kill');
    try {
      await this.runc.kill(this.containerId, signal, all);
    } catch (err) {
      if (err instanceof RuntimeError && /not running|container does not exist|process already finished/i.test(err.message)) {
        throw new NotFoundError(`container ${this.containerId}: process already finished`);
      }
      throw err;
    }
  }

  async pause(): Promise<void> {
    this.lifecycle.check('pause');
    await this.runc.pause(this.containerId);
    this.lifecycle.apply('pause');
  }

  async resume(): Promise<void> {
    this.lifecycle.check('resume');
    await this.runc.resume(this.containerId);
    this.lifecycle.apply('resume');
  }

  async update(resourcesJson: string): Promise<void> {
    this.lifecycle.check('update');
    await this.runc.update(this.containerId, resourcesJson);
  }

  checkExec(): void {
    this.lifecycle.check('exec');
  }

  /** Removes the runc container. A created (never started) container is killed first. */
  async delete(): Promise<void> {
    this.lifecycle.check('delete');
    await this.runc.delete(this.containerId, this.lifecycle.state === 'created');
    await this.drainOutput(2_000);
    this.stdio?.close();
    // A killed created process is still reaped by its watcher; its exit is not announced.
    this.lifecycle.apply('delete');
  }
}
