// The few file-system steps that make a change survive a crash: fsync a file's bytes, fsync
// the directory that names it, and replace a file atomically (write aside, fsync, rename).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

const fsyncAsync = promisify(fs.fsync);

export async function syncFd(fd: number): Promise<void> {
  await fsyncAsync(fd);
}

/** fsync a directory, so that names created, renamed or removed in it are durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await fsyncAsync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** syncDirectory, blocking (for one-off setup). */
export function syncDirectorySync(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Write all of buf at position (pwrite until done). */
export function writeFully(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) {
    done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
  }
}

const writeAsync = promisify(fs.write);

/** writeFully on the thread pool. */
export async function writeFullyAsync(fd: number, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await writeAsync(fd, buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

const readAsync = promisify(fs.read);

/** readFully on the thread pool. */
export async function readFullyAsync(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await readAsync(fd, buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Read up to length bytes at position; fewer only at end of file. */
export function readFully(fd: number, buf: Buffer, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Replace file with data so that a crash leaves either the old or the new content. */
export async function replaceFileDurably(file: string, data: Buffer, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  // <name>.<pid>-<tag>.tmp: the form the page-cache gc reads a writer's pid from.
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}-${Date.now().toString(36)}.tmp`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
  try {
    writeFully(fd, data, 0);
    await fsyncAsync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  await syncDirectory(dir);
}
