// compactBeforeDump against real local processes (no containers): Node.js children with and
// without the agent, and JDK 17 JVMs. Each child stays at tens of MB.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compactBeforeDump, type GcBeforeDumpOptions, type GcOutcome } from './gc-before-dump';

const AGENT = path.resolve(__dirname, '../../oci-hooks/agents/node-gc-agent.js');
const JAVA = '/usr/bin/java';
const JAVAC = '/usr/bin/javac';

// ~10 MB live, ~30 MB of objects that live long enough to reach old space and are then
// dropped (what a checkpoint after a burst of work sees), then slow young-generation churn.
const NODE_CHURN = `
const live = [];
for (let i = 0; i < 100000; i++) live.push({ i, s: 'live-' + i + '-' + Math.random() });
let ring = [];
for (let b = 0; b < 30; b++) {
  const batch = [];
  for (let i = 0; i < 8000; i++) batch.push({ b, i, s: 'ring-' + i + '-' + Math.random(), a: [i, i + 1, i + 2] });
  ring.push(batch);
}
ring = null;
setInterval(() => { const t = []; for (let i = 0; i < 2000; i++) t.push({ i, s: String(Math.random()) }); globalThis.sink = t; }, 50);
process.stdout.write('READY\\n');
`;
const NODE_IDLE = `setInterval(() => undefined, 1000); process.stdout.write('READY\\n');`;
// Bounded, in case the test that kills it dies first.
const NODE_BUSY = `process.stdout.write('READY\\n'); const end = Date.now() + 15000; while (Date.now() < end) {}`;
// Runs before the agent's listener (prepended) and exits: the process is gone before it can ack.
const NODE_EXITS_ON_SIGNAL = `process.prependListener('SIGURG', () => process.exit(0)); setInterval(() => undefined, 1000); process.stdout.write('READY\\n');`;

const JAVA_CHURN = `
import java.util.ArrayList;
import java.util.List;
public class Churn {
    static volatile Object sink;
    public static void main(String[] args) throws Exception {
        List<byte[]> live = new ArrayList<>();
        for (int i = 0; i < 8 * 1024; i++) live.add(new byte[1024]);
        List<byte[]> ring = new ArrayList<>();
        for (int i = 0; i < 40 * 1024; i++) ring.add(new byte[1024]);
        ring = null;
        System.out.println("READY");
        System.out.flush();
        while (live.size() > 0) {
            sink = new byte[32 * 1024];
            Thread.sleep(20);
        }
    }
}
`;
const JVM_FLAGS = ['-Xms8m', '-Xmx128m', '-XX:+UseG1GC', '-XX:TieredStopAtLevel=1', '-Xss512k'];

let work: string;
let gcDir: string;
let javaClasses: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-gc-test-'));
  javaClasses = path.join(work, 'classes');
  fs.mkdirSync(javaClasses);
  fs.writeFileSync(path.join(javaClasses, 'Churn.java'), JAVA_CHURN);
  const javac = spawnSync(JAVAC, ['-d', javaClasses, path.join(javaClasses, 'Churn.java')], { encoding: 'utf8' });
  if (javac.status !== 0) throw new Error(`javac failed: ${javac.stderr}`);
});

beforeEach(() => {
  gcDir = fs.mkdtempSync(path.join(work, 'run-'));
});

afterEach(async () => {
  await Promise.all(children.splice(0).map(stopChild));
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

interface Started {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly output: () => string;
}

/** Starts a child and resolves once it printed READY. */
async function start(command: string, args: string[], env: NodeJS.ProcessEnv, cwd = work): Promise<Started> {
  const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (output.includes('READY')) resolve();
    };
    child.stdout?.on('data', check);
    child.on('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before READY: ${output}`)));
  });
  if (child.pid === undefined) throw new Error('no pid');
  return { child, pid: child.pid, output: () => output };
}

function nodeEnv(withAgent: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, PAGESHARE_GC_DIR: gcDir };
  if (withAgent) env.NODE_OPTIONS = `--require ${AGENT}`;
  return env;
}

function startNode(script: string, withAgent = true): Promise<Started> {
  return start(process.execPath, ['-e', script], nodeEnv(withAgent));
}

function startJvm(extraFlags: string[] = []): Promise<Started> {
  return start(JAVA, [...JVM_FLAGS, ...extraFlags, '-cp', javaClasses, 'Churn'], { PATH: process.env.PATH });
}

/** SIGTERM (a JVM then removes its attach socket and hsperfdata), SIGKILL if that is not enough. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function options(overrides: Partial<GcBeforeDumpOptions> = {}): GcBeforeDumpOptions {
  return { mode: 'auto', timeoutMs: 10_000, agentFile: AGENT, gcDir, ...overrides };
}

/** Runs compactBeforeDump and measures how long it took. */
async function timed(pids: number[], opts: GcBeforeDumpOptions): Promise<{ outcomes: GcOutcome[]; elapsedMs: number }> {
  const started = Date.now();
  const outcomes = await compactBeforeDump(pids, opts);
  const elapsedMs = Date.now() - started;
  if (process.env.PAGESHARE_GC_TEST_VERBOSE) process.stderr.write(`${JSON.stringify({ elapsedMs, outcomes })}\n`);
  return { outcomes, elapsedMs };
}

describe('compactBeforeDump, Node.js', () => {
  it('compacts a process that carries the agent: it acks and its RSS drops', async () => {
    const app = await startNode(NODE_CHURN);
    const { outcomes } = await timed([app.pid], options());
    expect(outcomes).toHaveLength(1);
    const [outcome] = outcomes;
    expect(outcome).toMatchObject({ pid: app.pid, runtime: 'node', ok: true });
    expect(outcome.detail).toMatch(/low-memory-notification/);
    expect(outcome.rssAfterKiB).toBeLessThan(outcome.rssBeforeKiB ?? 0);
    expect(alive(app.child)).toBe(true);
    expect(app.output()).toBe('READY\n'); // the agent wrote nothing
    expect(fs.readdirSync(gcDir).sort()).toEqual([`ack-${app.pid}`, 'request']);
  }, 30_000);

  it('skips a Node.js process without the agent, and one in jvm mode', async () => {
    const plain = await startNode(NODE_IDLE, false);
    const withAgent = await startNode(NODE_IDLE);
    expect((await timed([plain.pid], options())).outcomes).toEqual([]);
    expect((await timed([withAgent.pid], options({ mode: 'jvm' }))).outcomes).toEqual([]);
    expect(alive(plain.child) && alive(withAgent.child)).toBe(true);
  }, 30_000);

  it('reports a process whose event loop is blocked as not ok, within the timeout', async () => {
    const busy = await startNode(NODE_BUSY);
    const { outcomes, elapsedMs } = await timed([busy.pid], options({ timeoutMs: 1000 }));
    expect(outcomes).toEqual([expect.objectContaining({ pid: busy.pid, runtime: 'node', ok: false, detail: expect.stringMatching(/^timeout/) })]);
    expect(elapsedMs).toBeLessThan(1000 + 150);
  }, 30_000);

  it('reports a process that exits meanwhile as not ok', async () => {
    const quitter = await startNode(NODE_EXITS_ON_SIGNAL);
    const { outcomes, elapsedMs } = await timed([quitter.pid], options({ timeoutMs: 5000 }));
    expect(outcomes).toEqual([expect.objectContaining({ pid: quitter.pid, runtime: 'node', ok: false, detail: expect.stringMatching(/^exited/) })]);
    expect(elapsedMs).toBeLessThan(2000);
  }, 30_000);

  it('keeps nothing alive: a script that loads the agent and does nothing exits at once, silently', async () => {
    const started = Date.now();
    const run = spawnSync(process.execPath, ['-e', ''], { env: nodeEnv(true), encoding: 'utf8', timeout: 10_000 });
    expect(run.status).toBe(0);
    expect(run.stdout + run.stderr).toBe('');
    expect(Date.now() - started).toBeLessThan(3000);
    // and it did load: a process that stays up has the agent's listener armed
    const up = await startNode(NODE_IDLE);
    const sigCgt = /^SigCgt:\s+([0-9a-f]+)/m.exec(fs.readFileSync(`/proc/${up.pid}/status`, 'utf8'))?.[1] ?? '0';
    expect((BigInt(`0x${sigCgt}`) >> BigInt(os.constants.signals.SIGURG - 1)) & 1n).toBe(1n);
  }, 30_000);
});

describe('compactBeforeDump, JVM', () => {
  it('compacts a JDK 17 G1 JVM through the attach mechanism: its RSS drops', async () => {
    const jvm = await startJvm();
    const { outcomes } = await timed([jvm.pid], options());
    expect(outcomes).toHaveLength(1);
    const [outcome] = outcomes;
    expect(outcome).toMatchObject({ pid: jvm.pid, runtime: 'jvm', ok: true });
    expect(outcome.detail).toMatch(/started by SIGQUIT.*G1 GC\.run/);
    expect(outcome.rssAfterKiB).toBeLessThan(outcome.rssBeforeKiB ?? 0);
    expect(alive(jvm.child)).toBe(true);
    expect(jvm.output()).not.toMatch(/Full thread dump/);
    // The listener stays: a second round needs no signal.
    const again = await timed([jvm.pid], options());
    expect(again.outcomes[0]).toMatchObject({ ok: true, detail: expect.stringMatching(/already running.*40\/70 restored/) });
    // A JVM that does not answer (stopped here) costs the timeout, no more.
    process.kill(jvm.pid, 'SIGSTOP');
    try {
      const stuck = await timed([jvm.pid], options({ timeoutMs: 1000 }));
      expect(stuck.outcomes).toEqual([expect.objectContaining({ pid: jvm.pid, runtime: 'jvm', ok: false, detail: expect.stringMatching(/^timeout/) })]);
      expect(stuck.elapsedMs).toBeLessThan(1000 + 150);
    } finally {
      process.kill(jvm.pid, 'SIGCONT');
    }
  }, 30_000);

  it('holds a G1 JVM still while it releases memory, then lets it run again', async () => {
    const jvm = await startJvm();
    // The container's freezer, for one process: SIGSTOP/SIGCONT stop and resume every thread.
    const calls: string[] = [];
    const freezer = {
      freeze: async () => void (calls.push('freeze'), process.kill(jvm.pid, 'SIGSTOP')),
      thaw: async () => void (calls.push('thaw'), process.kill(jvm.pid, 'SIGCONT')),
    };
    const { outcomes } = await timed([jvm.pid], options({ freezer }));
    expect(outcomes).toEqual([expect.objectContaining({ pid: jvm.pid, runtime: 'jvm', ok: true, detail: expect.stringMatching(/G1 GC\.run.*held frozen until the release/) })]);
    expect(calls).toEqual(['freeze', 'thaw']);
    expect(outcomes[0]?.rssAfterKiB).toBeLessThan(outcomes[0]?.rssBeforeKiB ?? 0);
    expect(fs.readFileSync(`/proc/${jvm.pid}/stat`, 'utf8')).not.toMatch(/^\d+ \(.*\) T /); // running again
  }, 30_000);

  it('refuses a JVM started with -XX:+DisableAttachMechanism and leaves it running', async () => {
    const jvm = await startJvm(['-XX:+DisableAttachMechanism']);
    const { outcomes, elapsedMs } = await timed([jvm.pid], options());
    expect(outcomes).toEqual([expect.objectContaining({ pid: jvm.pid, runtime: 'jvm', ok: false, detail: expect.stringMatching(/refused.*DisableAttachMechanism/) })]);
    expect(elapsedMs).toBeLessThan(1000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(alive(jvm.child)).toBe(true);
    expect(jvm.output()).not.toMatch(/Full thread dump/); // no SIGQUIT was sent
    expect((await timed([jvm.pid], options({ mode: 'node' }))).outcomes).toEqual([]);
  }, 30_000);
});
