// runc --console-socket: runc connects to this unix socket and sends the pty master of
// the container's terminal as an SCM_RIGHTS message. Node cannot receive descriptors, so
// the addon accepts and receives; the loop only learns "readable".
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as native from '../native';
import { RuntimeError } from '../errors/shim-error';

export class ConsoleSocket {
  private watchers: native.ReadableWatcher[] = [];
  private fds: number[] = [];
  private readonly dir: string;
  readonly path: string;
  private readonly listenFd: number;

  constructor() {
    // Short path: sun_path holds ~108 bytes.
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pscon-'));
    this.path = path.join(this.dir, 's');
    this.listenFd = native.unixListen(this.path);
    this.fds.push(this.listenFd);
  }

  /** The pty master runc sends; rejects after `timeoutMs` or when `abort` settles first. */
  receiveMaster(timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.close();
        reject(new RuntimeError(`no terminal received from runc within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (fd: number): void => {
        clearTimeout(timer);
        this.close();
        resolve(fd);
      };
      const fail = (err: unknown): void => {
        clearTimeout(timer);
        this.close();
        reject(err instanceof Error ? err : new Error(String(err)));
      };
      const onConnection = (connFd: number): void => {
        this.fds.push(connFd);
        const watcher = native.watchReadable(connFd, () => {
          try {
            const received = native.receiveFd(connFd);
            if (received) done(received.fd);
          } catch (err) {
            fail(err);
          }
        });
        this.watchers.push(watcher);
      };
      this.watchers.push(
        native.watchReadable(this.listenFd, () => {
          try {
            const connFd = native.acceptConnection(this.listenFd);
            if (connFd !== null) onConnection(connFd);
          } catch (err) {
            fail(err);
          }
        }),
      );
    });
  }

  close(): void {
    for (const w of this.watchers.splice(0)) w.close();
    for (const fd of this.fds.splice(0)) {
      try {
        fs.closeSync(fd);
      } catch {
        /* closed */
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
