// A process's stdio when it has a terminal: the pty master from runc, copied to and from
// containerd's fifos; resized on ResizePty.
import * as tty from 'node:tty';
import type * as net from 'node:net';
import * as native from '../native';
import { log, errorMessage } from '../log/logger';
import { FifoWriter, openFifoReader } from './fifo';
import type { StdioPaths } from './process-io';
import type { Stdio } from './stdio';

export class PtyIo implements Stdio {
  private readonly master: tty.ReadStream;
  private stdin?: net.Socket;
  private stdout?: FifoWriter;
  private readonly copied: Promise<void>;
  private closed = false;
  /** The stream closes the master fd itself after EIO; past that the number may be reused. */
  private masterOpen = true;

  private constructor(
    private readonly masterFd: number,
    stdout: FifoWriter | undefined,
    stdinPath: string,
  ) {
    this.master = new tty.ReadStream(masterFd);
    this.stdout = stdout;
    this.copied = new Promise((resolve) => {
      // The master reads EIO once the last slave holder exits: that is the end of output.
      this.master.on('error', (err) => {
        if ((err as NodeJS.ErrnoException).code !== 'EIO') log.debug('pty read failed', { error: errorMessage(err) });
        resolve();
      });
      this.master.on('close', () => {
        this.masterOpen = false;
        resolve();
      });
    });
    if (stdout) this.master.pipe(stdout.stream, { end: false });
    else this.master.resume();
    if (stdinPath) {
      this.stdin = openFifoReader(stdinPath);
      this.stdin.on('data', (chunk: Buffer) => {
        if (this.masterOpen) this.master.write(chunk);
      });
    }
  }

  static async open(masterFd: number, paths: StdioPaths): Promise<PtyIo> {
    const stdout = paths.stdout ? await FifoWriter.open(paths.stdout) : undefined;
    return new PtyIo(masterFd, stdout, paths.stdin);
  }

  /** A resize after the process is gone changes nothing, as for the runc shim. */
  resize(width: number, height: number): void {
    if (this.masterOpen) native.setWindowSize(this.masterFd, height, width);
  }

  drained(): Promise<void> {
    return this.copied;
  }

  closeStdin(): void {
    this.stdin?.destroy();
    this.stdin = undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closeStdin();
    this.master.destroy();
    void this.copied.then(() => this.stdout?.close());
    this.stdout?.close();
  }
}
