// A process's stdio when it has no terminal: real pipes (CRIU can dump and runc can
// re-attach them, unlike socketpairs) between the container and containerd's fifos,
// a logging binary, or a file.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import * as native from '../native';
import { InvalidArgumentError } from '../errors/shim-error';
import { log, errorMessage } from '../log/logger';
import type { ChildStdio } from '../runc/runc-driver';
import { FifoWriter, openFifoReader } from './fifo';
import { parseStdioTarget, type StdioTarget } from './stdio-uri';
import { noTerminal, type Stdio } from './stdio';

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
}

export interface IoContext {
  containerId: string;
  namespace: string;
}

interface Pipe {
  read: number;
  write: number;
}

function makePipe(): Pipe {
  const [read, write] = native.pipe2();
  return { read, write };
}

function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
}

/** Copies `from` into `to` and never lets a broken consumer stall the producer. */
function pump(from: Readable, to: Writable, what: string, endTarget: boolean): Promise<void> {
  return new Promise((resolve) => {
    from.pipe(to, { end: endTarget });
    to.on('error', (err) => {
      log.warn(`${what}: consumer failed; discarding further output`, { error: errorMessage(err) });
      from.unpipe(to);
      from.resume();
    });
    from.on('error', (err) => {
      log.debug(`${what}: source error`, { error: errorMessage(err) });
      resolve();
    });
    from.on('close', () => resolve());
  });
}

export class ProcessIo implements Stdio {
  private readonly childEnds: number[] = [];
  private readonly copies: Promise<void>[] = [];
  private stdinSource?: net.Socket;
  private stdinSink?: net.Socket;
  private readonly closers: Array<() => void> = [];
  private loggingBinary?: ChildProcess;
  readonly childStdio: ChildStdio = {};
  readonly resize = noTerminal('this process');

  private constructor(
    readonly paths: StdioPaths,
    private readonly context: IoContext,
  ) {}

  /** Prepares pipes and opens targets; call `attach()` once runc has the child ends. */
  static async open(paths: StdioPaths, context: IoContext): Promise<ProcessIo> {
    const io = new ProcessIo(paths, context);
    try {
      await io.setUp();
    } catch (err) {
      io.close();
      throw err;
    }
    return io;
  }

  private async setUp(): Promise<void> {
    const stdout = parseStdioTarget(this.paths.stdout);
    const stderr = parseStdioTarget(this.paths.stderr);
    if (this.paths.stdin) {
      if (parseStdioTarget(this.paths.stdin).kind !== 'fifo') {
        throw new InvalidArgumentError(`stdin must be a fifo path, got "${this.paths.stdin}"`);
      }
      const pipe = makePipe();
      this.childStdio.stdin = pipe.read;
      this.childEnds.push(pipe.read);
      this.stdinSink = new net.Socket({ fd: pipe.write, readable: false, writable: true });
      this.stdinSink.on('error', (err) => log.debug('stdin: container side closed', { error: errorMessage(err) }));
      this.stdinSource = openFifoReader(this.paths.stdin);
      this.stdinSource.pipe(this.stdinSink);
    }
    const binary = stdout.kind === 'binary' ? stdout : stderr.kind === 'binary' ? stderr : undefined;
    if (binary) {
      await this.startLoggingBinary(binary);
      return;
    }
    const sharedTarget = stdout.kind !== 'none' && this.paths.stdout === this.paths.stderr;
    const outSink = await this.openSink(stdout);
    const errSink = sharedTarget ? outSink : await this.openSink(stderr);
    const copies: Promise<void>[] = [];
    const connect = (sink: Writable | undefined, slot: 'stdout' | 'stderr'): void => {
      if (!sink) return;
      const pipe = makePipe();
      this.childStdio[slot] = pipe.write;
      this.childEnds.push(pipe.write);
      const source = new net.Socket({ fd: pipe.read, readable: true, writable: false });
      copies.push(pump(source, sink, `${this.context.containerId} ${slot}`, false));
    };
    connect(outSink, 'stdout');
    connect(errSink, 'stderr');
    // A sink is ended once every copy into it is done, so a shared target ends once.
    this.copies.push(
      Promise.all(copies).then(() => {
        outSink?.end();
        if (errSink !== outSink) errSink?.end();
      }),
    );
  }

  private async openSink(target: StdioTarget): Promise<Writable | undefined> {
    switch (target.kind) {
      case 'none':
        return undefined;
      case 'fifo': {
        const writer = await FifoWriter.open(target.path);
        this.closers.push(() => writer.close());
        writer.stream.on('error', () => undefined);
        return writer.stream;
      }
      case 'file': {
        const fd = fs.openSync(target.path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o644);
        return fs.createWriteStream('', { fd });
      }
      case 'binary':
        throw new Error('unreachable: binary targets are handled by startLoggingBinary');
    }
  }

  /** containerd's binary:// logging: the binary reads fd 3 (stdout) and 4 (stderr) and
   * closes or writes fd 5 once it is ready. */
  private async startLoggingBinary(target: Extract<StdioTarget, { kind: 'binary' }>): Promise<void> {
    const out = makePipe();
    const err = makePipe();
    const ready = makePipe();
    this.childStdio.stdout = out.write;
    this.childStdio.stderr = err.write;
    this.childEnds.push(out.write, err.write);
    const child = spawn(target.path, target.args, {
      stdio: ['ignore', 'ignore', 'ignore', out.read, err.read, ready.write],
      env: { ...process.env, CONTAINER_ID: this.context.containerId, CONTAINER_NAMESPACE: this.context.namespace },
    });
    this.loggingBinary = child;
    closeQuietly(out.read);
    closeQuietly(err.read);
    closeQuietly(ready.write);
    const readyStream = new net.Socket({ fd: ready.read, readable: true, writable: false });
    await new Promise<void>((resolve, reject) => {
      child.once('error', (e) => reject(new InvalidArgumentError(`cannot start logging binary ${target.path}: ${e.message}`)));
      readyStream.once('data', () => resolve());
      readyStream.once('close', () => resolve());
    });
    readyStream.destroy();
  }

  /** After runc has started the process: drop our copies of the container's ends, so
   * the copies see EOF when the container closes them. */
  attach(): void {
    for (const fd of this.childEnds.splice(0)) closeQuietly(fd);
  }

  /** Resolves when stdout and stderr have been copied to the end. */
  drained(): Promise<void> {
    return Promise.all(this.copies).then(() => undefined);
  }

  closeStdin(): void {
    this.stdinSource?.unpipe();
    this.stdinSource?.destroy();
    this.stdinSink?.end();
    this.stdinSource = undefined;
  }

  /** Releases everything; safe to call more than once. */
  close(): void {
    this.attach();
    this.closeStdin();
    this.stdinSink?.destroy();
    for (const close of this.closers.splice(0)) close();
    if (this.loggingBinary && this.loggingBinary.exitCode === null) {
      const binary = this.loggingBinary;
      // Give the logger time to flush what it read, as the runc shim does.
      setTimeout(() => binary.exitCode === null && binary.kill('SIGKILL'), 10_000).unref();
    }
  }
}
