// Small /proc and file helpers: the GC triggers (jvm-attach.ts, node-gc-trigger.ts) and the scratch-dir sweep.
import * as fs from 'node:fs';

/** /proc/<pid>/status, or undefined once the process is gone: callers treat a missing process as data, not an error. */
export function readStatus(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return undefined;
  }
}

/** Whether bit `signo` is set in a status mask (SigCgt, SigBlk): the masks are hex bitmaps wider than 32 bits, hence BigInt. */
export function signalInMask(status: string, mask: 'SigCgt' | 'SigBlk', signo: number): boolean {
  const match = new RegExp(`^${mask}:\\s+([0-9a-f]+)`, 'm').exec(status);
  return match !== null && ((BigInt(`0x${match[1]}`) >> BigInt(signo - 1)) & 1n) === 1n;
}

/** The pid in the process's innermost pid namespace (the one it names its files after); undefined once it is gone. */
export function namespacePid(pid: number): number | undefined {
  const status = readStatus(pid);
  if (status === undefined) return undefined;
  const match = /^NSpid:\s+(.*)$/m.exec(status);
  if (!match) return pid; // kernel without NSpid (< 4.1): no pid namespaces to translate
  const levels = match[1].trim().split(/\s+/);
  return Number(levels[levels.length - 1]);
}

/** Gone, or a zombie: either way it will never answer again. */
export function processExited(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const state = stat.charAt(stat.lastIndexOf(')') + 2); // after "pid (comm) "; comm may hold ')'
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

/** Up to `maxBytes` of a container-writable file: O_NOFOLLOW so a planted symlink cannot point us at a host file, O_NONBLOCK so a planted FIFO cannot hang the open. */
export function readNoFollow(file: string, maxBytes: number): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(maxBytes);
    return buf.subarray(0, fs.readSync(fd, buf, 0, maxBytes, 0));
  } catch {
    return undefined; // a FIFO or directory planted under the name, or a read error
  } finally {
    fs.closeSync(fd);
  }
}
