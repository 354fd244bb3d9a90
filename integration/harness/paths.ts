/**
 * Where things are: the repository root, the binaries the installer put in `.deps/`
 * (described by `.deps/paths.json`), and the PATH containerd and dockerd must see.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export type ContainerdVersion = '1.7' | '2.1';
export const CONTAINERD_VERSIONS: readonly ContainerdVersion[] = ['1.7', '2.1'];

/** `.deps/paths.json`: absolute paths written by scripts/install-deps.sh. */
export interface DepPaths {
  /** The runc binary. */
  RUNC: string;
  /** A static busybox binary (the test images' userland). */
  BUSYBOX: string;
  /** Folder with containerd, ctr and containerd-shim-runc-v2 1.7.x. */
  CONTAINERD_17_BIN: string;
  /** Folder with containerd, ctr and containerd-shim-runc-v2 2.1.x. */
  CONTAINERD_21_BIN: string;
  /** Folder with dockerd, docker and docker-init. */
  DOCKER_BIN: string;
  /** Folder whose `criu` works on this kernel. */
  CRIU_BIN: string;
}

const DEP_KEYS: readonly (keyof DepPaths)[] = [
  'RUNC',
  'BUSYBOX',
  'CONTAINERD_17_BIN',
  'CONTAINERD_21_BIN',
  'DOCKER_BIN',
  'CRIU_BIN',
];

export class MissingDependencyError extends Error {
  readonly code = 'E_MISSING_DEPENDENCY';
  constructor(message: string) {
    super(message);
    this.name = 'MissingDependencyError';
  }
}

let cachedRoot: string | undefined;

/** The folder holding the package.json whose name is "pageshare". */
export function repoRoot(): string {
  if (cachedRoot) return cachedRoot;
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      const parsed: unknown = JSON.parse(fs.readFileSync(pkg, 'utf8'));
      if (typeof parsed === 'object' && parsed !== null && (parsed as { name?: unknown }).name === 'pageshare') {
        cachedRoot = dir;
        return dir;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json named "pageshare" above ${__dirname}`);
    dir = parent;
  }
}

export function depPathsFile(): string {
  return path.join(repoRoot(), '.deps', 'paths.json');
}

let cachedDeps: DepPaths | undefined;

/** Reads and checks `.deps/paths.json`; throws MissingDependencyError telling what to run. */
export function depPaths(): DepPaths {
  if (cachedDeps) return cachedDeps;
  const file = depPathsFile();
  if (!fs.existsSync(file)) {
    throw new MissingDependencyError(
      `${file} is missing: run \`make build\` (it runs scripts/install-deps.sh) in ${repoRoot()} before the integration tests`,
    );
  }
  const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (typeof parsed !== 'object' || parsed === null) throw new MissingDependencyError(`${file}: not a JSON object`);
  const record = parsed as Record<string, unknown>;
  const deps = {} as DepPaths;
  for (const key of DEP_KEYS) {
    const value = record[key];
    if (typeof value !== 'string' || !path.isAbsolute(value)) {
      throw new MissingDependencyError(`${file}: ${key} is not an absolute path; run \`make build\` again`);
    }
    if (!fs.existsSync(value)) {
      throw new MissingDependencyError(`${file}: ${key}=${value} does not exist; run \`make build\` again`);
    }
    deps[key] = value;
  }
  cachedDeps = deps;
  return deps;
}

/** True when `.deps/paths.json` exists (for tests that skip instead of failing). */
export function depsInstalled(): boolean {
  return fs.existsSync(depPathsFile());
}

/** `<repo>/bin`, where `make build` puts containerd-shim-pageshare-v1. */
export function shimBinDir(): string {
  return path.join(repoRoot(), 'bin');
}

export const PAGESHARE_RUNTIME = 'io.containerd.pageshare.v1';
export const RUNC_RUNTIME = 'io.containerd.runc.v2';

export function containerdBinDir(version: ContainerdVersion): string {
  const deps = depPaths();
  return version === '1.7' ? deps.CONTAINERD_17_BIN : deps.CONTAINERD_21_BIN;
}

/**
 * PATH for the daemons: our shim and CRIU first (containerd looks shims up on its own
 * PATH, runc looks up criu on its PATH), then `extraDirs`, runc's folder, then the usual PATH.
 */
export function daemonPath(...extraDirs: string[]): string {
  const deps = depPaths();
  const dirs = [shimBinDir(), deps.CRIU_BIN, ...extraDirs, path.dirname(deps.RUNC)];
  const rest = (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':');
  const seen = new Set<string>();
  return [...dirs, ...rest].filter((d) => d !== '' && !seen.has(d) && (seen.add(d), true)).join(':');
}
