// OOM notification for a cgroup v1 memory controller: an eventfd registered through
// cgroup.event_control fires on OOM and when the cgroup goes away. As containerd's own v1
// watcher does, an event while the cgroup still exists is an OOM. (The kernel signals before
// the OOM killer counts its kill in memory.oom_control, so that counter cannot decide.)
import * as fs from 'node:fs';
import * as native from '../native';
import { log, errorMessage } from '../log/logger';
import type { CgroupV1 } from '../stats/cgroup-v1';

/** Calls `onOom` for each OOM kill in the container's memory cgroup; returns a stop function. */
export function watchOom(cgroup: CgroupV1, onOom: () => void): () => void {
  const memDir = cgroup.dir('memory');
  if (!memDir) return () => undefined;
  let efd: number | undefined;
  let controlFd: number | undefined;
  let watcher: native.ReadableWatcher | undefined;
  const stop = (): void => {
    watcher?.close();
    for (const fd of [efd, controlFd]) if (fd !== undefined) fs.closeSync(fd);
    watcher = efd = controlFd = undefined;
  };
  try {
    efd = native.eventfd();
    controlFd = fs.openSync(`${memDir}/memory.oom_control`, 'r');
    fs.writeFileSync(`${memDir}/cgroup.event_control`, `${efd} ${controlFd}`);
  } catch (err) {
    log.warn('OOM notifications unavailable', { cgroup: memDir, error: errorMessage(err) });
    stop();
    return () => undefined;
  }
  watcher = native.watchReadable(efd, () => {
    if (efd === undefined || native.readEventfd(efd) === null) return;
    if (!fs.existsSync(memDir)) return stop();
    onOom();
  });
  return stop;
}
