// An flock(2) on a file, taken without blocking the event loop (the native flock is polled
// with LOCK_NB and a growing pause). The kernel drops the lock when the process dies, so a
// crashed ingest never leaves the store locked. flock belongs to the open file description:
// two FileLocks on one file conflict even inside one process. (Node opens every file with
// O_CLOEXEC, so a lock never leaks into runc or CRIU.)
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { flock, funlock } from '../native/index';
import { StoreLockTimeoutError } from './store-error';

export interface LockOptions {
  readonly exclusive: boolean;
  /** How long to wait for another holder; Infinity waits forever. */
  readonly timeoutMs: number;
  /** Recorded in the file (exclusive locks only) so that a timeout can say who held it. */
  readonly holder?: string;
}

const FIRST_PAUSE_MS = 2;
const MAX_PAUSE_MS = 100;

export class FileLock {
  private fd: number | undefined;

  private constructor(
    readonly file: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Take the lock, waiting up to options.timeoutMs (then StoreLockTimeoutError). */
  static async acquire(file: string, options: LockOptions): Promise<FileLock> {
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    try {
      const started = Date.now();
      let pause = FIRST_PAUSE_MS;
      while (!flock(fd, options.exclusive, false)) {
        const waited = Date.now() - started;
        if (waited >= options.timeoutMs) throw new StoreLockTimeoutError(file, waited, readHolder(fd));
        await sleep(Math.min(pause, Math.max(1, options.timeoutMs - waited)));
        pause = Math.min(pause * 2, MAX_PAUSE_MS);
      }
      const lock = new FileLock(file, fd);
      if (options.exclusive && options.holder !== undefined) lock.recordHolder(options.holder);
      return lock;
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** Take the lock if nobody holds it, without waiting; undefined if somebody does. */
  static tryAcquire(file: string, options: Omit<LockOptions, 'timeoutMs'>): FileLock | undefined {
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    try {
      if (!flock(fd, options.exclusive, false)) {
        fs.closeSync(fd);
        return undefined;
      }
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    const lock = new FileLock(file, fd);
    if (options.exclusive && options.holder !== undefined) lock.recordHolder(options.holder);
    return lock;
  }

  get held(): boolean {
    return this.fd !== undefined;
  }

  /** Drop the lock. Idempotent. */
  release(): void {
    const fd = this.fd;
    if (fd === undefined) return;
    this.fd = undefined;
    try {
      funlock(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  private recordHolder(holder: string): void {
    if (this.fd === undefined) return;
    const text = Buffer.from(`${holder} pid ${process.pid} since ${new Date().toISOString()}\n`);
    // Diagnostics only: a failure to record must not fail the operation.
    try {
      fs.ftruncateSync(this.fd, 0);
      fs.writeSync(this.fd, text, 0, text.length, 0);
    } catch {
      /* ignore */
    }
  }
}

function readHolder(fd: number): string | undefined {
  try {
    const buf = Buffer.alloc(512);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, n).toString('utf8').trim();
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}
