// Opting a container into the GC hook, and what that adds to its OCI spec before `runc
// create` (or `runc restore`): a read-only bind mount of the agents, a writable per-container
// dir for the agents' requests and acks, and NODE_OPTIONS that loads the Node.js agent. JVMs
// need nothing in the spec: the shim reaches them through HotSpot's attach mechanism.
//
// A container opts in with the annotation io.pageshare.gc = node | jvm | auto (`ctr run
// --annotation`), or every container does when the shim's environment (containerd's) sets
// PAGESHARE_GC_DEFAULT; `off` in the annotation opts one out of that default. Containers
// that do not opt in are left exactly as they were.
//
// The edit is idempotent: a spec that already has it (a restore, whose spec is the one the
// checkpointed container ran with) gets the same mounts, with this container's own dir.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors/shim-error';
import { repoRoot } from '../paths/repo-root';
import { readBundleSpec, setMount, writeBundleSpec, type OciSpec } from '../spec/oci-spec';
import type { GcMode } from './gc-before-dump';

export const GC_ANNOTATION = 'io.pageshare.gc';
export const GC_TIMEOUT_ANNOTATION = 'io.pageshare.gc.timeout-ms';
export const GC_DEFAULT_ENV = 'PAGESHARE_GC_DEFAULT';
export const GC_TIMEOUT_ENV = 'PAGESHARE_GC_TIMEOUT_MS';
export const DEFAULT_GC_TIMEOUT_MS = 10_000;

/** Where the agents appear in a container (read-only). */
export const AGENTS_MOUNT = '/.pageshare';
/** Where a container's request/ack dir appears (PAGESHARE_GC_DIR). */
export const GC_RUN_MOUNT = '/.pageshare-run';
export const NODE_AGENT_FILE = 'node-gc-agent.js';
const NODE_REQUIRE = `--require ${AGENTS_MOUNT}/${NODE_AGENT_FILE}`;

export interface GcSettings {
  readonly mode: GcMode;
  readonly timeoutMs: number;
}

const MODES: readonly string[] = ['node', 'jvm', 'auto'];

function parseTimeout(text: string | undefined, what: string): number | undefined {
  if (text === undefined || text === '') return undefined;
  const ms = Number(text);
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > 600_000) throw new InvalidArgumentError(`${what} must be 0 to 600000 milliseconds, got ${JSON.stringify(text)}`);
  return ms;
}

/** Whether (and how) a container opts in; undefined for one that does not. */
export function gcSettingsOf(spec: OciSpec, env: NodeJS.ProcessEnv = process.env): GcSettings | undefined {
  const annotation = spec.annotations?.[GC_ANNOTATION];
  const chosen = annotation ?? env[GC_DEFAULT_ENV];
  if (chosen === undefined || chosen === '' || chosen === 'off') return undefined;
  if (!MODES.includes(chosen)) {
    const where = annotation !== undefined ? `annotation ${GC_ANNOTATION}` : `${GC_DEFAULT_ENV}`;
    throw new InvalidArgumentError(`${where} must be node, jvm, auto or off, got ${JSON.stringify(chosen)}`);
  }
  const timeoutMs =
    parseTimeout(spec.annotations?.[GC_TIMEOUT_ANNOTATION], `annotation ${GC_TIMEOUT_ANNOTATION}`) ??
    parseTimeout(env[GC_TIMEOUT_ENV], GC_TIMEOUT_ENV) ??
    DEFAULT_GC_TIMEOUT_MS;
  return { mode: chosen as GcMode, timeoutMs };
}

/** The host dir with the agents (bind-mounted read-only; a new agent version needs a new file: CRIU reopens it by path). */
export function agentsDir(): string {
  return path.join(repoRoot(), 'oci-hooks', 'agents');
}

/** The host side of a container's request/ack dir. */
export function gcRunDir(namespace: string, containerId: string, base = process.env['PAGESHARE_GC_RUN_ROOT'] ?? '/run/pageshare/gc'): string {
  return path.join(base, namespace, containerId);
}

function setEnv(env: string[], name: string, value: (current: string | undefined) => string): void {
  const at = env.findIndex((e) => e.startsWith(`${name}=`));
  const current = at >= 0 ? env[at].slice(name.length + 1) : undefined;
  const entry = `${name}=${value(current)}`;
  if (at >= 0) env[at] = entry;
  else env.push(entry);
}

/** The spec with the hook's mounts and environment (a new object; `spec` is not changed). */
export function withGcHook(spec: OciSpec, settings: GcSettings, hostAgentsDir: string, hostRunDir: string): OciSpec {
  const out: OciSpec = JSON.parse(JSON.stringify(spec)) as OciSpec;
  const mounts = (out.mounts ??= []);
  setMount(mounts, { destination: AGENTS_MOUNT, type: 'bind', source: hostAgentsDir, options: ['rbind', 'ro', 'nosuid', 'nodev'] });
  setMount(mounts, { destination: GC_RUN_MOUNT, type: 'bind', source: hostRunDir, options: ['rbind', 'rw', 'nosuid', 'nodev', 'noexec'] });
  if (settings.mode !== 'jvm') {
    const proc = (out.process ??= {});
    const env = (proc.env ??= []);
    // The user's own NODE_OPTIONS stay; ours is added once.
    setEnv(env, 'NODE_OPTIONS', (current) => (current === undefined || current.trim() === '' ? NODE_REQUIRE : current.includes(NODE_REQUIRE) ? current : `${current} ${NODE_REQUIRE}`));
    setEnv(env, 'PAGESHARE_GC_DIR', () => GC_RUN_MOUNT);
  }
  return out;
}

/**
 * Reads the bundle's config.json and, for a container that opts in, rewrites it with the
 * hook and makes its request/ack dir. Returns the settings, or undefined (spec untouched).
 */
export function prepareGcHook(bundle: string, namespace: string, containerId: string): (GcSettings & { readonly runDir: string }) | undefined {
  const spec = readBundleSpec(bundle);
  const settings = gcSettingsOf(spec);
  if (settings === undefined) return undefined;
  const runDir = gcRunDir(namespace, containerId);
  fs.rmSync(runDir, { recursive: true, force: true });
  fs.mkdirSync(runDir, { recursive: true, mode: 0o777 });
  fs.chmodSync(runDir, 0o777); // the app may run as any user; the dir holds requests and acks only
  writeBundleSpec(bundle, withGcHook(spec, settings, agentsDir(), runDir));
  return { ...settings, runDir };
}
