// A process started in a running container with `runc exec --detach`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NotFoundError } from '../errors/shim-error';
import { ConsoleSocket } from '../io/console-socket';
import { ProcessIo, type IoContext, type StdioPaths } from '../io/process-io';
import { PtyIo } from '../io/pty-io';
import { watchExit } from '../reaper/exit-watcher';
import type { RuncDriver } from '../runc/runc-driver';
import type { OciProcess } from '../spec/oci-spec';
import { ShimProcess } from './shim-process';

const TERMINAL_TIMEOUT_MS = 10_000;

export class ExecProcess extends ShimProcess {
  constructor(
    containerId: string,
    execId: string,
    paths: StdioPaths,
    terminal: boolean,
    private readonly spec: OciProcess,
    private readonly bundle: string,
    private readonly runc: RuncDriver,
    private readonly ioContext: IoContext,
  ) {
    super(containerId, execId, paths, terminal, ['pause', 'resume', 'update', 'checkpoint', 'exec']);
  }

  async start(): Promise<number> {
    await this.runStart(() => this.launch());
    return this.pid;
  }

  private async launch(): Promise<void> {
    const workDir = fs.mkdtempSync(path.join(this.bundle, `.exec-${this.execId.slice(0, 32)}-`));
    const processFile = path.join(workDir, 'process.json');
    const pidFile = path.join(workDir, 'pid');
    fs.writeFileSync(processFile, JSON.stringify({ ...this.spec, terminal: this.terminal }));
    const console = this.terminal ? new ConsoleSocket() : undefined;
    const master = console?.receiveMaster(TERMINAL_TIMEOUT_MS);
    master?.catch(() => undefined);
    const io = this.terminal ? undefined : await ProcessIo.open(this.paths, this.ioContext);
    try {
      await this.runc.exec(this.containerId, {
        processFile,
        pidFile,
        consoleSocket: console?.path,
        stdio: io?.childStdio ?? {},
      });
      this.pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      watchExit(this.pid, (exit) => this.setExited(exit));
      this.stdio = io ?? (await PtyIo.open(await master!, this.paths));
      io?.attach();
    } catch (err) {
      console?.close();
      io?.close();
      throw err;
    } finally {
      fs.rmSync(workDir, { recursive: true, force: true });
    }
  }

  kill(signal: number): void {
    this.lifecycle.check('kill');
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') throw new NotFoundError(`exec ${this.execId}: process already finished`);
      throw err;
    }
  }

  async delete(): Promise<void> {
    this.lifecycle.check('delete');
    await this.drainOutput(2_000);
    this.stdio?.close();
    this.lifecycle.apply('delete');
  }
}
