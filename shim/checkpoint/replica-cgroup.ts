// A container restored from a checkpoint gets its own cgroup. The checkpointed spec names
// the dumped container's cgroup (`ctr containers restore` reuses it as it is), so every
// replica of one checkpoint would otherwise share that cgroup: their memory and CPU limits,
// stats and OOM kills would be pooled, and concurrent restores into it race in runc's
// devices-cgroup setup. A replica that keeps the dumped container's id (Docker restores a
// container into itself) keeps its path.
import * as path from 'node:path';
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

/** Rewrites the bundle's spec so the restored container gets its own cgroup; returns the new path if it changed. */
export function giveReplicaItsCgroup(bundle: string, containerId: string): string | undefined {
  const spec = readBundleSpec(bundle);
  const current = spec.linux?.cgroupsPath;
  if (current === undefined) return undefined;
  const wanted = replicaCgroupsPath(current, containerId);
  if (wanted === current) return undefined;
  (spec.linux ??= {}).cgroupsPath = wanted;
  writeBundleSpec(bundle, spec);
  return wanted;
}
