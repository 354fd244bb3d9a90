// Learning how a process ended without racing libuv: the shim is a child subreaper, so a
// container's init (re-parented to us when `runc create` exits) and detached exec
// processes are our children. A pidfd becomes readable when its process exits, and
// waitid(P_PIDFD) reaps exactly that process; libuv only waits for pids it spawned.
import * as fs from 'node:fs';
import * as native from '../native';
import { log, errorMessage } from '../log/logger';

export interface ExitStatus {
  /** containerd's convention: the exit code, or 128 + signal number. */
  status: number;
  exitedAt: Date;
}

/** Calls `onExit` once when `pid` exits; returns a function that stops watching. */
export function watchExit(pid: number, onExit: (exit: ExitStatus) => void): () => void {
  const pidfd = native.pidfdOpen(pid);
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    watcher.close();
    fs.closeSync(pidfd);
  };
  const check = (): void => {
    if (stopped) return;
    let result: ReturnType<typeof native.waitPidfd>;
    try {
      result = native.waitPidfd(pidfd);
    } catch (err) {
      // ECHILD: not our child (should not happen for processes runc started for us).
      log.error(`cannot reap pid ${pid}`, { error: errorMessage(err) });
      stop();
      onExit({ status: 255, exitedAt: new Date() });
      return;
    }
    if (!result) return;
    stop();
    onExit({ status: result.status, exitedAt: new Date() });
  };
  const watcher = native.watchReadable(pidfd, check);
  return stop;
}
