// A process started in a running container with `runc exec --detach`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FailedPreconditionError, NotFoundError } from '../errors/shim-error';
import type { IoContext, StdioPaths } from '../io/process-io';
import type { RuncDriver } from '../runc/runc-driver';
import type { OciProcess } from '../spec/oci-spec';
import { ShimProcess } from './shim-process';

export class ExecProcess extends ShimProcess {
  constructor(
    containerId: string,
    execId: string,
    paths: StdioPaths,
    terminal: boolean,
    private readonly spec: OciProcess,
    private readonly bundle: string,
    private readonly runc: RuncDriver,
    ioContext: IoContext,
  ) {
    super(containerId, execId, paths, terminal, ioContext, ['pause', 'resume', 'update', 'checkpoint', 'exec']);
  }

  async start(): Promise<number> {
    await this.runStart(async () => {
      const workDir = fs.mkdtempSync(path.join(this.bundle, `.exec-${this.execId.slice(0, 32)}-`));
      const processFile = path.join(workDir, 'process.json');
      const pidFile = path.join(workDir, 'pid');
      fs.writeFileSync(processFile, JSON.stringify({ ...this.spec, terminal: this.terminal }));
      try {
        await this.launch(pidFile, (stdio, consoleSocket) =>
          this.runc.exec(this.containerId, { processFile, pidFile, consoleSocket, stdio }),
        );
      } finally {
        fs.rmSync(workDir, { recursive: true, force: true });
      }
    });
    return this.pid;
  }

  kill(signal: number): void {
    this.lifecycle.check('kill');
    // Not started (or start failed): there is no process. process.kill(0) would signal our own
    // process group, the server itself.
    if (this.pid <= 0 || this.exit) throw new FailedPreconditionError(`cannot kill exec ${this.execId}: it has no running process`);
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
    this.finishDelete();
  }
}
