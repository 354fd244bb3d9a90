// A container restored from a checkpoint gets its own cgroup. The checkpointed spec names
// the dumped container's cgroup (`ctr containers restore` reuses it as it is), so every
// replica of one checkpoint would otherwise share that cgroup: their memory and CPU limits,
// stats and OOM kills would be pooled, and concurrent restores into it race in runc's
// devices-cgroup setup. A replica that keeps the dumped container's id (Docker restores a
// container into itself) keeps its path.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FailedPreconditionError } from '../errors/shim-error';
import { CGROUP_ROOT } from '../stats/cgroup-v1';
import { readBundleSpec, writeBundleSpec } from '../spec/oci-spec';

/**
 * The cgroups path for a replica called `containerId`: the last element of a cgroupfs path
 * ("/default/src" → "/default/replica"), or the name of a systemd one ("slice:prefix:src" →
 * "slice:prefix:replica"), becomes the container id. Empty stays empty (runc picks a path).
 */
export function replicaCgroupsPath(cgroupsPath: string, containerId: string): string {
  if (cgroupsPath === '') return cgroupsPath;
  const systemd = /^([^:/]*):([^:/]*):([^:/]+)$/.exec(cgroupsPath);
  if (systemd) return `${systemd[1]}:${systemd[2]}:${containerId}`;
  const parent = path.posix.dirname(cgroupsPath);
  return parent === '.' ? containerId : path.posix.join(parent, containerId);
}

/** Whether a cgroupfs path has processes, in the v1 memory hierarchy or a v2 one. */
function cgroupHoldsProcesses(cgroupsPath: string, cgroupRoot: string): boolean {
  if (cgroupsPath.includes(':')) return false; // systemd names: systemd refuses a unit that exists
  for (const dir of [path.join(cgroupRoot, 'memory', cgroupsPath), path.join(cgroupRoot, cgroupsPath)]) {
    try {
      if (fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim() !== '') return true;
    } catch {
      // not there: free
    }
  }
  return false;
}

/** Rewrites the bundle's spec so the restored container gets its own cgroup; returns the new path if it changed. */
export function giveReplicaItsCgroup(bundle: string, containerId: string, cgroupRoot = CGROUP_ROOT): string | undefined {
  const spec = readBundleSpec(bundle);
  const current = spec.linux?.cgroupsPath;
  if (current === undefined) return undefined;
  const wanted = replicaCgroupsPath(current, containerId);
  if (wanted === current) return undefined;
  // The path keeps the dumped container's parent (its namespace, for ctr): a container of that
  // namespace may already own it. Joining its cgroup would pool their limits: refuse instead.
  if (cgroupHoldsProcesses(wanted, cgroupRoot)) {
    throw new FailedPreconditionError(`restore of ${containerId}: its cgroup ${wanted} (the checkpointed path, renamed after it) already holds another container's processes`);
  }
  (spec.linux ??= {}).cgroupsPath = wanted;
  writeBundleSpec(bundle, spec);
  return wanted;
}
