// The subset of the OCI runtime spec (config.json) that pageshare reads or edits.
// Unknown fields are kept as they are when a spec is rewritten.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface OciProcess {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user?: { uid: number; gid: number; additionalGids?: number[] };
  args?: string[];
  env?: string[];
  cwd?: string;
  [key: string]: unknown;
}

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface OciHook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface OciLinux {
  cgroupsPath?: string;
  namespaces?: Array<{ type: string; path?: string }>;
  resources?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface OciSpec {
  ociVersion: string;
  process?: OciProcess;
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  mounts?: OciMount[];
  hooks?: Record<string, OciHook[] | undefined>;
  annotations?: Record<string, string>;
  linux?: OciLinux;
  [key: string]: unknown;
}

/** Puts `wanted` at its destination, replacing what was mounted there (so edits are idempotent). */
export function setMount(mounts: OciMount[], wanted: OciMount): void {
  const at = mounts.findIndex((m) => m.destination === wanted.destination);
  if (at >= 0) mounts[at] = wanted;
  else mounts.push(wanted);
}

/** The bundle's config.json. */
export function readBundleSpec(bundle: string): OciSpec {
  return JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as OciSpec;
}

/** Replaces the bundle's config.json whole (written aside, then renamed). */
export function writeBundleSpec(bundle: string, spec: OciSpec): void {
  const file = path.join(bundle, 'config.json');
  const tmp = `${file}.pageshare.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(spec));
  fs.renameSync(tmp, file);
}
