/**
 * The harness itself, checked with the stock runc shim (io.containerd.runc.v2): a private
 * containerd of each supported version, an imported busybox image, `ctr run`, a restart
 * that the running task survives, Docker on top, and a stop() that leaves nothing behind.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { leftovers } from './harness/cleanup';
import { ContainerdStartError, startContainerd, type Containerd } from './harness/containerd';
import { DOCKER_NAMESPACE, startDocker, type Docker } from './harness/docker';
import { buildBusyboxImage, importImage, type BuiltImage } from './harness/image';
import { CONTAINERD_VERSIONS, depPaths, RUNC_RUNTIME, shimBinDir } from './harness/paths';
import { waitFor } from './harness/wait';

// jest reads testTimeout only from the top-level config, not from a project's.
jest.setTimeout(180_000);

const IMAGE = 'docker.io/library/pstest-smoke:latest';

function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^\S+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

let imageDir: string;
let image: BuiltImage;

beforeAll(async () => {
  imageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'psi-'));
  image = await buildBusyboxImage(path.join(imageDir, 'busybox.tar'), IMAGE);
});

afterAll(() => {
  if (imageDir) fs.rmSync(imageDir, { recursive: true, force: true });
});

describe.each(CONTAINERD_VERSIONS)('harness with containerd %s and the stock runc shim', (version) => {
  let containerd: Containerd | undefined;
  let docker: Docker | undefined;
  /** Processes of containers deliberately left running for stop() to clean up. */
  const survivors: number[] = [];

  beforeAll(async () => {
    containerd = await startContainerd({ version });
    await importImage(containerd, image.tarPath);
  });

  afterAll(async () => {
    await docker?.stop();
    await containerd?.stop();
  });

  function ctrd(): Containerd {
    if (!containerd) throw new Error('containerd did not start');
    return containerd;
  }

  test('containerd finds our shim and CRIU first on its PATH', () => {
    const environ = fs.readFileSync(`/proc/${ctrd().pid ?? 0}/environ`, 'utf8').split('\0');
    const pathVar = environ.find((e) => e.startsWith('PATH='))?.slice('PATH='.length) ?? '';
    expect(pathVar.split(':').slice(0, 3)).toEqual([shimBinDir(), depPaths().CRIU_BIN, ctrd().binDir]);
  });

  test('ctr run --rm returns the container exit code and output', async () => {
    const r = await ctrd().ctr(['run', '--rm', '--runtime', RUNC_RUNTIME, IMAGE, 'c1', 'sh', '-c', 'echo hi; exit 3']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hi\n');
    expect(r.code).toBe(3);
    expect(await ctrd().taskStatus('c1')).toBeUndefined();
  });

  test('ctr run -d, tasks ls, kill, delete', async () => {
    const c = ctrd();
    await c.ctrOk(['run', '-d', '--runtime', RUNC_RUNTIME, IMAGE, 'c2', 'sleep', '1000']);
    const task = (await c.tasks()).find((t) => t.id === 'c2');
    expect(task?.status).toBe('RUNNING');
    expect(pidAlive(task?.pid ?? -1)).toBe(true);

    await c.ctrOk(['tasks', 'kill', '--signal', 'SIGKILL', 'c2']);
    await waitFor('c2 to stop', async () => (await c.taskStatus('c2')) === 'STOPPED', { timeoutMs: 10_000 });
    await c.ctrOk(['tasks', 'delete', 'c2']);
    await c.ctrOk(['containers', 'delete', 'c2']);
    expect(await c.taskStatus('c2')).toBeUndefined();
    expect((await c.ctrOk(['containers', 'ls', '-q'])).stdout.trim()).toBe('');
  });

  test('a running task survives a containerd restart', async () => {
    const c = ctrd();
    await c.ctrOk(['run', '-d', '--runtime', RUNC_RUNTIME, IMAGE, 'c3', 'sleep', '1000']);
    const before = (await c.tasks()).find((t) => t.id === 'c3');
    expect(before?.status).toBe('RUNNING');
    const oldPid = c.pid;

    await c.restart();

    expect(c.pid).not.toBe(oldPid);
    const after = (await c.tasks()).find((t) => t.id === 'c3');
    expect(after).toEqual(before);
    // The reconnected shim still answers: exec into the container.
    const exec = await c.ctrOk(['tasks', 'exec', '--exec-id', 'e1', 'c3', 'sh', '-c', 'echo from-exec']);
    expect(exec.stdout).toBe('from-exec\n');
    // Left running on purpose: stop() must kill it.
    survivors.push(after?.pid ?? -1);
  });

  test('docker run --rm returns the container exit code (default runtime runc)', async () => {
    docker = await startDocker(ctrd());
    await docker.load(image.tarPath);
    const images = await ctrd().ctrOk(['images', 'ls', '-q'], { namespace: DOCKER_NAMESPACE });
    expect(images.stdout).toContain(IMAGE);

    const r = await docker.docker(['run', '--rm', IMAGE, 'sh', '-c', 'echo hi; exit 3']);
    expect(r.stdout).toBe('hi\n');
    expect(r.code).toBe(3);

    // Left running on purpose: stop() must remove it.
    await docker.dockerOk(['run', '-d', '--name', 'bg', IMAGE, 'sleep', '1000']);
    const pid = Number((await docker.dockerOk(['inspect', '--format', '{{.State.Pid}}', 'bg'])).stdout.trim());
    expect(pidAlive(pid)).toBe(true);
    survivors.push(pid);
  });

  test('stop() kills what runs and leaves no process, mount or folder behind', async () => {
    const c = ctrd();
    const dirs = [c.tmpDir, ...(docker ? [docker.tmpDir] : [])];
    expect(survivors.length).toBeGreaterThan(0);

    await docker?.stop();
    await c.stop();
    await c.stop(); // idempotent

    for (const dir of dirs) expect(leftovers(dir)).toEqual({ pids: [], mounts: [], dirExists: false });
    for (const pid of survivors) expect(pidAlive(pid)).toBe(false);
    expect(c.running).toBe(false);
  });
});

test('a failed containerd start cleans up after itself', async () => {
  const err: unknown = await startContainerd({ version: '1.7', extraConfig: 'this is not toml' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ContainerdStartError);
  const tmpDir = (err as ContainerdStartError).tmpDir;
  expect(leftovers(tmpDir)).toEqual({ pids: [], mounts: [], dirExists: false });
});
