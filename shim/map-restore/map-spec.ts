// Which containers restore in map mode, and the read-only mount that makes their sharing
// domain's page-cache files visible inside them. The mount must exist from the container's
// creation on: CRIU restores the mount table it dumped, and runc maps each bind mount of the
// spec onto the host path it names now.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors/shim-error';
import { setMount, type OciSpec } from '../spec/oci-spec';

export const RESTORE_ANNOTATION = 'io.pageshare.restore';
/** Where a container sees its sharing domain's page-cache files. */
export const PAGE_CACHE_MOUNT = '/.pageshare-pages';

export type RestoreMode = 'map' | 'copy';

/** The annotation's choice; copy when absent (map mode is opt-in while it is new). */
export function restoreModeOf(spec: OciSpec): RestoreMode {
  const value = spec.annotations?.[RESTORE_ANNOTATION];
  if (value === undefined || value === 'copy') return 'copy';
  if (value === 'map') return 'map';
  throw new InvalidArgumentError(`annotation ${RESTORE_ANNOTATION}=${value}: expected map or copy`);
}

/** A sharing domain's page-cache dir on the host: one per containerd namespace. */
export function pageCacheDir(storeRoot: string, namespace: string): string {
  return path.join(storeRoot, 'page-cache', namespace);
}

export interface MapRestoreSettings {
  /** Host dir of the container's sharing domain. */
  readonly domainDir: string;
}

/** For a container in map mode: creates the domain dir and adds the read-only mount to its spec. */
export function prepareMapRestore(bundle: string, storeRoot: string, namespace: string): MapRestoreSettings | undefined {
  const file = path.join(bundle, 'config.json');
  const spec = JSON.parse(fs.readFileSync(file, 'utf8')) as OciSpec;
  if (restoreModeOf(spec) !== 'map') return undefined;
  const domainDir = pageCacheDir(storeRoot, namespace);
  fs.mkdirSync(domainDir, { recursive: true, mode: 0o755 });
  setMount((spec.mounts ??= []), { destination: PAGE_CACHE_MOUNT, type: 'bind', source: domainDir, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  const tmp = `${file}.pageshare.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(spec));
  fs.renameSync(tmp, file);
  return { domainDir };
}
