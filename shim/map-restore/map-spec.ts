// Which containers restore in map mode, and the read-only mount that makes their sharing
// domain's page-cache files visible inside them. The mount must exist from the container's
// creation on: CRIU restores the mount table it dumped, and runc maps each bind mount of the
// spec onto the host path it names now.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors/shim-error';
import { GC_ANNOTATION } from '../gc/gc-spec';
import { pageCacheRoot } from '../store/page-cache-dir';
import { readBundleSpec, setMount, writeBundleSpec, type OciSpec } from '../spec/oci-spec';
import { installResumeGate } from './resume-gate';

export const RESTORE_ANNOTATION = 'io.pageshare.restore';
/** Where a container sees its sharing domain's page-cache files. */
export const PAGE_CACHE_MOUNT = '/.pageshare-pages';

export type RestoreMode = 'map' | 'copy';
/** The shim's environment (containerd's) may set the mode of containers without the annotation. */
export const RESTORE_DEFAULT_ENV = 'PAGESHARE_RESTORE_DEFAULT';

/** Programs whose heaps map well: a container running one restores in map mode by default. */
const MANAGED_RUNTIME_PROGRAM = /^(node|nodejs|java)$/;

/** Whether the container runs a managed runtime: the GC hook is on for it, or its program is one. */
export function runsManagedRuntime(spec: OciSpec): boolean {
  const gc = spec.annotations?.[GC_ANNOTATION];
  if (gc !== undefined && gc !== 'off') return true;
  const program = spec.process?.args?.[0];
  return program !== undefined && MANAGED_RUNTIME_PROGRAM.test(path.posix.basename(program));
}

function parseMode(value: string, where: string): RestoreMode {
  if (value === 'map' || value === 'copy') return value;
  throw new InvalidArgumentError(`${where}=${value}: expected map or copy`);
}

/**
 * The annotation's choice; without it, PAGESHARE_RESTORE_DEFAULT's; without that, map for a
 * managed runtime (Node.js, the JVM) and copy for anything else.
 */
export function restoreModeOf(spec: OciSpec, env: NodeJS.ProcessEnv = process.env): RestoreMode {
  const value = spec.annotations?.[RESTORE_ANNOTATION];
  if (value !== undefined) return parseMode(value, `annotation ${RESTORE_ANNOTATION}`);
  const fallback = env[RESTORE_DEFAULT_ENV];
  if (fallback !== undefined && fallback !== '') return parseMode(fallback, RESTORE_DEFAULT_ENV);
  return runsManagedRuntime(spec) ? 'map' : 'copy';
}

/** A sharing domain's page-cache dir on the host: one per containerd namespace. */
export function pageCacheDir(storeRoot: string, namespace: string): string {
  return path.join(pageCacheRoot(storeRoot), namespace);
}

export interface MapRestoreSettings {
  /** Host dir of the container's sharing domain. */
  readonly domainDir: string;
  /** The restore's tasks can be held until their pages are in (resume-gate.ts). */
  readonly resumeGate: boolean;
}

/**
 * For a container in map mode: creates the domain dir and adds the read-only mount to its
 * spec; for a restore also the resume gate, so CRIU can start before the page-cache file is
 * complete.
 */
export function prepareMapRestore(bundle: string, storeRoot: string, namespace: string, restoring: boolean): MapRestoreSettings | undefined {
  const spec = readBundleSpec(bundle);
  if (restoreModeOf(spec) !== 'map') return undefined;
  const domainDir = pageCacheDir(storeRoot, namespace);
  fs.mkdirSync(domainDir, { recursive: true, mode: 0o755 });
  setMount((spec.mounts ??= []), { destination: PAGE_CACHE_MOUNT, type: 'bind', source: domainDir, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  if (restoring) installResumeGate(bundle, spec);
  writeBundleSpec(bundle, spec);
  return { domainDir, resumeGate: restoring };
}
