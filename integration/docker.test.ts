/**
 * pageshare under Docker: a private dockerd 28.5 (containerd image store) on a private
 * containerd 1.7, running containers with `--runtime io.containerd.pageshare.v1` (no
 * daemon.json entry needed) and through a daemon.json `runtimes` alias: exit statuses,
 * stdout, logs, exec (with stdin), stop (SIGTERM), kill, pause/unpause.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, type Containerd } from './harness/containerd';
import { DOCKER_NAMESPACE, startDocker, type Docker } from './harness/docker';
import { buildBusyboxImage } from './harness/image';
import { PAGESHARE_RUNTIME } from './harness/paths';
import { waitFor } from './harness/wait';

jest.setTimeout(180_000);

const IMAGE = 'docker.io/library/pstest-docker:latest';
const RT = ['--runtime', PAGESHARE_RUNTIME];
/** A daemon.json alias for the shim, as a Docker user would configure it. */
const ALIAS = 'pageshare';
/** Says "started", answers SIGTERM with "got-term" and exit 0. */
const TRAPPING_LOOP = 'echo started; trap "echo got-term; exit 0" TERM; while true; do sleep 0.2; done';

let workDir: string | undefined;
let containerd: Containerd | undefined;
let docker: Docker | undefined;
let seq = 0;

/** A container name unique to this run of this file. */
function unique(what: string): string {
  seq += 1;
  return `dk-${what}-${process.pid}-${seq}`;
}

function d(): Docker {
  if (!docker) throw new Error('dockerd did not start');
  return docker;
}

async function inspect(name: string, format: string): Promise<string> {
  return (await d().dockerOk(['inspect', '-f', format, name])).stdout.trim();
}

async function logs(name: string): Promise<string> {
  const r = await d().dockerOk(['logs', name]);
  return r.stdout + r.stderr;
}

/** The command line of the parent (the shim server, a child subreaper) of a container's init. */
async function shimOf(name: string): Promise<string> {
  const pid = Number(await inspect(name, '{{.State.Pid}}'));
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return fs.readFileSync(`/proc/${ppid}/cmdline`, 'latin1').split('\0').join(' ');
}

function expectPageshareServer(cmdline: string): void {
  expect(cmdline).toContain('shim/main.js'); // the pageshare shim (Node), not containerd-shim-runc-v2
  expect(cmdline).toContain(`-namespace ${DOCKER_NAMESPACE}`);
  expect(cmdline).toContain(`-address ${containerd!.address}`);
  expect(cmdline.trim()).toMatch(/ serve$/);
}

/** The runtime containerd recorded for a Docker container. */
async function containerdRuntime(name: string): Promise<string> {
  const id = await inspect(name, '{{.Id}}');
  const info = await containerd!.ctrOk(['containers', 'info', id], { namespace: DOCKER_NAMESPACE });
  return (JSON.parse(info.stdout) as { Runtime: { Name: string } }).Runtime.Name;
}

async function waitForStatus(name: string, status: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(`${name} to be ${status}`, async () => (await inspect(name, '{{.State.Status}}')) === status, { timeoutMs });
}

async function waitForLog(name: string, text: string, timeoutMs = 15_000): Promise<string> {
  return waitFor(`"${text}" in the logs of ${name}`, async () => {
    const out = await logs(name);
    return out.includes(text) ? out : false;
  }, { timeoutMs });
}

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'psdk-'));
  const image = await buildBusyboxImage(path.join(workDir, 'busybox.tar'), IMAGE);
  containerd = await startContainerd({ version: '1.7' });
  docker = await startDocker(containerd, {
    daemonConfig: { runtimes: { [ALIAS]: { runtimeType: PAGESHARE_RUNTIME } } },
  });
  await docker.load(image.tarPath);
});

afterAll(async () => {
  try {
    await docker?.stop(); // dockerd first: it runs on the containerd
  } finally {
    try {
      await containerd?.stop();
    } finally {
      if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
    }
  }
});

describe('pageshare shim under dockerd 28.5 on containerd 1.7', () => {
  it('has the loaded OCI layout image in the containerd image store', async () => {
    const images = await d().dockerOk(['images', '--format', '{{.Repository}}:{{.Tag}}']);
    expect(images.stdout).toContain('pstest-docker:latest');
    const ctrImages = await containerd!.ctrOk(['images', 'ls', '-q'], { namespace: DOCKER_NAMESPACE });
    expect(ctrImages.stdout).toContain(IMAGE);
  });

  it('docker run --rm returns the exit status and the output', async () => {
    const exit3 = await d().docker(['run', '--rm', ...RT, IMAGE, 'sh', '-c', 'exit 3']);
    expect(exit3.stderr).not.toMatch(/error/i); // (dockerd warns that IPv4 forwarding is off: ip-forward=false)
    expect(exit3.code).toBe(3);

    const hello = await d().docker(['run', '--rm', ...RT, IMAGE, 'echo', 'hello']);
    expect(hello.code).toBe(0);
    expect(hello.stdout).toBe('hello\n');

    const withStdin = await d().docker(['run', '--rm', '-i', ...RT, IMAGE, 'sh', '-c', 'wc -c; exit 2'], { input: 'twelve bytes' });
    expect(withStdin.code).toBe(2);
    expect(withStdin.stdout.trim()).toBe('12');

    // --rm removed them.
    expect((await d().dockerOk(['ps', '-aq'])).stdout.trim()).toBe('');
  });

  it('runs detached: logs, exec, exec with stdin, stop by SIGTERM, rm', async () => {
    const c = unique('stop');
    await d().dockerOk(['run', '-d', '--name', c, ...RT, IMAGE, 'sh', '-c', TRAPPING_LOOP]);
    expect(await inspect(c, '{{.State.Status}} {{.HostConfig.Runtime}}')).toBe(`running ${PAGESHARE_RUNTIME}`);
    await waitForLog(c, 'started');
    expect(await containerdRuntime(c)).toBe(PAGESHARE_RUNTIME);
    expectPageshareServer(await shimOf(c));

    const exec = await d().docker(['exec', c, 'sh', '-c', 'echo in-exec; exit 4']);
    expect(exec.stdout).toBe('in-exec\n');
    expect(exec.code).toBe(4);

    const cat = await d().docker(['exec', '-i', c, 'cat'], { input: 'through stdin\nline two\n' });
    expect(cat.code).toBe(0);
    expect(cat.stdout).toBe('through stdin\nline two\n');

    const started = Date.now();
    await d().dockerOk(['stop', '-t', '20', c]);
    const stopMs = Date.now() - started;
    expect(stopMs).toBeLessThan(20_000); // the trap ended it, not the SIGKILL after the timeout
    expect(await inspect(c, '{{.State.Status}} {{.State.ExitCode}}')).toBe('exited 0');
    const out = await waitForLog(c, 'got-term');
    expect(out).toBe('started\ngot-term\n');

    await d().dockerOk(['rm', c]);
    expect((await d().docker(['inspect', c])).code).not.toBe(0);
  });

  it('docker kill ends a container with 137', async () => {
    const c = unique('kill');
    await d().dockerOk(['run', '-d', '--name', c, ...RT, IMAGE, 'sh', '-c', TRAPPING_LOOP]);
    await waitForLog(c, 'started');
    await d().dockerOk(['kill', c]);
    await waitForStatus(c, 'exited');
    expect(await inspect(c, '{{.State.Status}} {{.State.ExitCode}}')).toBe('exited 137');
    await d().dockerOk(['rm', c]);
  });

  it('docker pause and unpause freeze and thaw a running container', async () => {
    const c = unique('pause');
    await d().dockerOk(['run', '-d', '--name', c, ...RT, IMAGE, 'sh', '-c', TRAPPING_LOOP]);
    await waitForLog(c, 'started');
    await d().dockerOk(['pause', c]);
    expect(await inspect(c, '{{.State.Status}} {{.State.Paused}}')).toBe('paused true');
    await d().dockerOk(['unpause', c]);
    expect(await inspect(c, '{{.State.Status}} {{.State.Paused}}')).toBe('running false');
    // It really runs again: an exec answers.
    const exec = await d().docker(['exec', c, 'echo', 'thawed']);
    expect(exec.stdout).toBe('thawed\n');
    await d().dockerOk(['rm', '-f', c]);
  });

  it('runs through a daemon.json runtimes alias (runtimeType)', async () => {
    const r = await d().docker(['run', '--rm', '--runtime', ALIAS, IMAGE, 'sh', '-c', 'echo via-alias; exit 5']);
    expect(r.stdout).toBe('via-alias\n');
    expect(r.code).toBe(5);

    const c = unique('alias');
    await d().dockerOk(['run', '-d', '--name', c, '--runtime', ALIAS, IMAGE, 'sh', '-c', TRAPPING_LOOP]);
    await waitForLog(c, 'started');
    expect(await containerdRuntime(c)).toBe(PAGESHARE_RUNTIME);
    expectPageshareServer(await shimOf(c));
    await d().dockerOk(['stop', c]);
    expect(await inspect(c, '{{.State.Status}} {{.State.ExitCode}}')).toBe('exited 0');
    await d().dockerOk(['rm', c]);
  });
});
