/**
 * Removing what a test's daemons leave behind even when they crash: processes that still
 * refer to the test's temp dir (shims, containers' helpers), mounts under it, runc state
 * that points into it, and finally the dir itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from './process';
import { sleep } from './wait';

function readProcFile(pid: number, name: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/${name}`, 'latin1');
  } catch {
    return undefined;
  }
}

function parentPid(pid: number): number | undefined {
  const stat = readProcFile(pid, 'stat');
  if (!stat) return undefined;
  // The comm field may hold spaces and parentheses; the fields after the last ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(fields[1]);
  return Number.isFinite(ppid) ? ppid : undefined;
}

/** This process and its ancestors: never killed, whatever their environment says. */
function protectedPids(): Set<number> {
  const pids = new Set<number>();
  let pid: number | undefined = process.pid;
  while (pid !== undefined && pid > 0 && !pids.has(pid)) {
    pids.add(pid);
    pid = parentPid(pid);
  }
  return pids;
}

/** Pids whose command line or environment contains `marker` (typically a temp dir). */
export function processesMentioning(marker: string): number[] {
  const skip = protectedPids();
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (skip.has(pid)) continue;
    const cmdline = readProcFile(pid, 'cmdline');
    if (!cmdline) continue; // kernel threads and zombies
    if (cmdline.includes(marker) || (readProcFile(pid, 'environ') ?? '').includes(marker)) found.push(pid);
  }
  return found;
}

function alive(pid: number): boolean {
  const stat = readProcFile(pid, 'stat');
  if (!stat) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** Where containerd's clients and shims keep host-wide files: fifo dirs and shim sockets. */
export const HOST_RUNTIME_FILES_ROOT = '/run/containerd';

/** Inode -> path of the bound unix sockets (/proc/net/unix). */
function unixSocketPaths(): Map<string, string> {
  const byInode = new Map<string, string>();
  let table = '';
  try {
    table = fs.readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return byInode;
  }
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const inode = fields[6];
    const socketPath = fields[7];
    if (inode && socketPath?.startsWith('/')) byInode.set(inode, socketPath);
  }
  return byInode;
}

/**
 * Named fifos and bound sockets under `root` that `pids` hold open. A shim killed with
 * SIGKILL cannot remove its socket (/run/containerd/s/...) or the client's fifo dir
 * (/run/containerd/fifo/...); these are the ones to remove for it.
 */
export function runtimeFilesHeldBy(pids: readonly number[], root = HOST_RUNTIME_FILES_ROOT): string[] {
  const sockets = unixSocketPaths();
  const files = new Set<string>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const socket = /^socket:\[(\d+)\]$/.exec(target);
      const file = socket ? sockets.get(socket[1] ?? '') : target;
      if (file?.startsWith(`${root}/`)) files.add(file);
    }
  }
  return [...files];
}

/** Removes files found by `runtimeFilesHeldBy`, and their folder when it is a now empty fifo dir. */
function removeRuntimeFiles(files: readonly string[]): void {
  for (const file of files) {
    fs.rmSync(file, { force: true });
    const dir = path.dirname(file);
    if (path.dirname(dir) === path.join(HOST_RUNTIME_FILES_ROOT, 'fifo')) {
      try {
        fs.rmdirSync(dir);
      } catch {
        /* not empty yet, or gone */
      }
    }
  }
}

/**
 * SIGKILLs every process mentioning `marker` and waits until they are gone; then removes
 * the host runtime files (shim sockets, fifos) they held, which they can no longer do.
 */
export async function killProcessesMentioning(marker: string, timeoutMs = 5000): Promise<number[]> {
  const killed: number[] = [];
  const held = new Set<string>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = processesMentioning(marker).filter(alive);
    if (pids.length === 0) {
      removeRuntimeFiles([...held]);
      return killed;
    }
    for (const file of runtimeFilesHeldBy(pids)) held.add(file);
    if (Date.now() > deadline) throw new Error(`processes mentioning ${marker} survive SIGKILL: ${pids.join(', ')}`);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        if (!killed.includes(pid)) killed.push(pid);
      } catch {
        /* already gone */
      }
    }
    await sleep(50);
  }
}

/** Undoes the octal escapes (\040 for space...) of /proc/self/mountinfo. */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const root = path.resolve(dir);
  const points = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => unescapeMountPath(line.split(' ')[4] ?? ''))
    .filter((p) => p === root || p.startsWith(`${root}/`));
  return [...new Set(points)].sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
}

/** Unmounts everything under `dir`, deepest first, lazily when a plain umount fails. */
export async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const points = mountsUnder(dir);
    if (points.length === 0) return;
    for (const point of points) {
      const plain = await run('umount', [point], { timeoutMs: 10_000 });
      if (plain.code !== 0) await run('umount', ['-l', point], { timeoutMs: 10_000 });
    }
  }
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`cannot unmount under ${dir}: ${left.join(', ')}`);
}

/** runc's default state roots for containerd's shims; each holds `<namespace>/<id>/state.json`. */
export const DEFAULT_RUNC_ROOTS: readonly string[] = ['/run/containerd/runc', '/run/runc'];

/** Folders `<root>/<id>` (and `<root>/<ns>/<id>`) whose state.json mentions `marker`. */
function runcStatesMentioning(roots: readonly string[], marker: string): Array<{ root: string; id: string }> {
  const found: Array<{ root: string; id: string }> = [];
  const scan = (root: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(root, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const dir = path.join(root, entry.name);
      const state = path.join(dir, 'state.json');
      if (fs.existsSync(state)) {
        if (fs.readFileSync(state, 'utf8').includes(marker)) found.push({ root, id: entry.name });
      } else if (depth > 0) {
        scan(dir, depth - 1);
      }
    }
  };
  for (const root of roots) scan(root, 1);
  return found;
}

/**
 * Force-deletes runc containers whose state mentions `marker` (this kills their processes)
 * and removes their state folders. Returns the state folders that were found.
 */
export async function removeRuncState(runc: string, roots: readonly string[], marker: string): Promise<string[]> {
  const states = runcStatesMentioning(roots, marker);
  for (const { root, id } of states) {
    await run(runc, ['--root', root, 'delete', '--force', id], { timeoutMs: 15_000 });
    fs.rmSync(path.join(root, id), { recursive: true, force: true });
  }
  return states.map(({ root, id }) => path.join(root, id));
}

/** Removes `dir` recursively, but never through a mount point that is still there. */
export function removeTree(dir: string): void {
  const mounts = mountsUnder(dir);
  if (mounts.length > 0) throw new Error(`refusing to remove ${dir}: still mounted: ${mounts.join(', ')}`);
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

export interface Leftovers {
  pids: number[];
  mounts: string[];
  dirExists: boolean;
}

/** What remains of a test dir: for tests asserting that a stop() cleaned everything. */
export function leftovers(dir: string): Leftovers {
  return {
    pids: processesMentioning(dir).filter(alive),
    mounts: mountsUnder(dir),
    dirExists: fs.existsSync(dir),
  };
}

/**
 * The full sweep: processes, runc state, mounts, then the folder. Each step runs even if an
 * earlier one failed; the first error is rethrown at the end.
 */
export async function sweep(dir: string, runc: string | undefined, runcRoots: readonly string[]): Promise<void> {
  const errors: unknown[] = [];
  const step = async (fn: () => Promise<unknown> | unknown): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  };
  await step(() => killProcessesMentioning(dir));
  if (runc) await step(() => removeRuncState(runc, runcRoots, dir));
  await step(() => killProcessesMentioning(dir));
  await step(() => unmountUnder(dir));
  await step(() => removeTree(dir));
  if (errors.length > 0) throw errors[0];
}

/**
 * Host-wide folders that containerd, ctr and the runc shim create on first use
 * (`/run/containerd/runc/<ns>`, `/run/containerd/fifo`, `/run/containerd/s`...). Note which
 * of them exist before a daemon starts; `removeCreatedEmptyDirs` later removes the ones that
 * did not and are empty again (never anything with content: other tests may be using them).
 */
export const HOST_RUNTIME_DIRS: readonly string[] = ['/run/containerd', '/run/containerd/runc', '/run/containerd/fifo', '/run/containerd/s'];

export function existingDirs(dirs: readonly string[] = HOST_RUNTIME_DIRS): Set<string> {
  const found = new Set<string>();
  for (const dir of dirs) {
    if (fs.existsSync(dir)) found.add(dir);
  }
  for (const root of DEFAULT_RUNC_ROOTS) {
    try {
      for (const ns of fs.readdirSync(root)) found.add(path.join(root, ns));
    } catch {
      /* no such root */
    }
  }
  return found;
}

export function removeCreatedEmptyDirs(before: ReadonlySet<string>): void {
  const now = existingDirs();
  // Deepest first, so /run/containerd/runc/default goes before /run/containerd/runc.
  const created = [...now].filter((d) => !before.has(d)).sort((a, b) => b.length - a.length);
  for (const dir of created) {
    try {
      fs.rmdirSync(dir); // fails (and is left) unless empty
    } catch {
      /* in use or not empty */
    }
  }
}

/** Where ctr makes a directory of stdio fifos per task or exec; it never removes those of
 * `run -d` or `exec -d` (whatever the shim). */
export const CTR_FIFO_ROOT = '/run/containerd/fifo';

export function fifoDirs(root = CTR_FIFO_ROOT): Set<string> {
  try {
    return new Set(fs.readdirSync(root));
  } catch {
    return new Set();
  }
}

/** Removes the fifo directories that appeared since `before` and hold nothing but fifos. */
export function removeCreatedFifoDirs(before: ReadonlySet<string>, root = CTR_FIFO_ROOT): void {
  for (const name of fifoDirs(root)) {
    if (before.has(name)) continue;
    const dir = path.join(root, name);
    try {
      const entries = fs.readdirSync(dir).map((e) => fs.lstatSync(path.join(dir, e)));
      if (entries.every((st) => st.isFIFO())) fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* gone meanwhile */
    }
  }
}
