// containerd's stdio fifos, opened so that no read or open ever blocks the event loop.
import * as fs from 'node:fs';
import * as net from 'node:net';

const { O_RDONLY, O_WRONLY, O_NONBLOCK } = fs.constants;

/** A writer for a fifo containerd reads (stdout/stderr). As the runc shim does, a read end
 * is held open too, so a containerd restart (reader gone for a while) does not break the
 * copy with EPIPE. */
export class FifoWriter {
  private closed = false;

  private constructor(
    readonly stream: net.Socket,
    private readonly keepAliveFd: number,
  ) {}

  static open(path: string): FifoWriter {
    // Our own read end first: then opening the write end never waits for containerd's
    // reader (a client that died before Create would otherwise block it forever).
    const keepAliveFd = fs.openSync(path, O_RDONLY | O_NONBLOCK);
    let fd: number;
    try {
      fd = fs.openSync(path, O_WRONLY | O_NONBLOCK);
    } catch (err) {
      fs.closeSync(keepAliveFd);
      throw err;
    }
    const stream = new net.Socket({ fd, readable: false, writable: true });
    return new FifoWriter(stream, keepAliveFd);
  }

  /** Idempotent: the fd number may be someone else's after the first close. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream.end();
    fs.closeSync(this.keepAliveFd);
  }
}

/** A reader for the stdin fifo containerd writes. Non-blocking read-only: until a writer
 * first connects, epoll reports nothing (Linux only reports hang-up on a fifo after a
 * writer has come and gone), and when the client closes its end (ctr does so at EOF of
 * its own stdin, without CloseIO) we read EOF and pass it on. */
export function openFifoReader(path: string): net.Socket {
  const fd = fs.openSync(path, O_RDONLY | O_NONBLOCK);
  return new net.Socket({ fd, readable: true, writable: false });
}
