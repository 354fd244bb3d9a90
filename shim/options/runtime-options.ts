// Options containerd passes at Create (containerd.runc.v1.Options from ctr, nerdctl and
// Docker's runc-compatible path; runtimeoptions.v1.Options from CRI or Docker), reduced to
// what pageshare uses, and persisted in the bundle for the `delete` action.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { anyTypeName, isEmptyAny, unpackAny, type Any } from '../proto/any';
import { log } from '../log/logger';
import { RuncDriver } from '../runc/runc-driver';

export interface RuntimeOptions {
  runcBinary: string;
  runcRoot: string;
  systemdCgroup: boolean;
  noPivot: boolean;
  noNewKeyring: boolean;
}

interface RuncOptionsMessage {
  no_pivot_root: boolean;
  no_new_keyring: boolean;
  binary_name: string;
  root: string;
  systemd_cgroup: boolean;
}

/** As the runc shim: runc state lives under /run/containerd/runc/<namespace>. */
export const DEFAULT_RUNC_ROOT = '/run/containerd/runc';

export function defaultRuntimeOptions(namespace: string): RuntimeOptions {
  return { runcBinary: 'runc', runcRoot: path.join(DEFAULT_RUNC_ROOT, namespace), systemdCgroup: false, noPivot: false, noNewKeyring: false };
}

export function parseRuntimeOptions(any: Any | null | undefined, namespace: string): RuntimeOptions {
  const options = defaultRuntimeOptions(namespace);
  if (isEmptyAny(any)) return options;
  const type = anyTypeName(any);
  if (type === 'containerd.runc.v1.Options') {
    const m = unpackAny<RuncOptionsMessage>(any, type);
    if (m.binary_name) options.runcBinary = m.binary_name;
    if (m.root) options.runcRoot = path.join(m.root, namespace);
    options.systemdCgroup = m.systemd_cgroup;
    options.noPivot = m.no_pivot_root;
    options.noNewKeyring = m.no_new_keyring;
  } else {
    // runtimeoptions.v1.Options (CRI, Docker) carries a config file for other runtimes.
    log.info(`ignoring runtime options of type ${type}`);
  }
  return options;
}

const RECORD_FILE = 'pageshare.json';

export function saveRuntimeOptions(bundle: string, options: RuntimeOptions): void {
  fs.writeFileSync(path.join(bundle, RECORD_FILE), JSON.stringify(options));
}

export function loadRuntimeOptions(bundle: string, namespace: string): RuntimeOptions {
  try {
    return { ...defaultRuntimeOptions(namespace), ...(JSON.parse(fs.readFileSync(path.join(bundle, RECORD_FILE), 'utf8')) as Partial<RuntimeOptions>) };
  } catch {
    return defaultRuntimeOptions(namespace);
  }
}

/** The runc a container's options name, logging to its bundle's log.json. */
export function runcDriverFor(bundle: string, options: RuntimeOptions): RuncDriver {
  return new RuncDriver({ binary: options.runcBinary, root: options.runcRoot, systemdCgroup: options.systemdCgroup }, path.join(bundle, 'log.json'));
}
