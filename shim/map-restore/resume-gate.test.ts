import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { OciSpec } from '../spec/oci-spec';
import { CRIU_CONFIG_ANNOTATION, ResumeGate, armResumeGate, installResumeGate } from './resume-gate';

let work: string;
beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-resume-gate-'));
});
afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

/** Runs the installed script as CRIU does (the script's path alone, its action in the environment). */
function runScript(script: string, env: Record<string, string>): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(script, [], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
}

function installed(annotations?: Record<string, string>): { spec: OciSpec; config: string; script: string } {
  const spec: OciSpec = { ociVersion: '1.0.2', ...(annotations ? { annotations } : {}) };
  installResumeGate(work, spec);
  const config = spec.annotations![CRIU_CONFIG_ANNOTATION];
  const script = /^action-script (.+)$/m.exec(fs.readFileSync(config, 'utf8'))![1];
  return { spec, config, script };
}

it("points runc's CRIU config at a bundle file that keeps the annotated config and adds the script", () => {
  const theirs = path.join(work, 'theirs.conf');
  fs.writeFileSync(theirs, 'tcp-established\nfile-locks');
  const { config, script } = installed({ [CRIU_CONFIG_ANNOTATION]: theirs });
  expect(path.dirname(config)).toBe(work);
  const lines = fs.readFileSync(config, 'utf8').split('\n');
  expect(lines.slice(0, 2)).toEqual(['tcp-established', 'file-locks']);
  expect(lines).toContain(`action-script ${script}`);
  expect(fs.statSync(script).mode & 0o111).not.toBe(0);

  // Installed again (a restore's spec is the one already changed): unchanged.
  const again: OciSpec = { ociVersion: '1.0.2', annotations: { [CRIU_CONFIG_ANNOTATION]: config } };
  installResumeGate(work, again);
  expect(again.annotations![CRIU_CONFIG_ANNOTATION]).toBe(config);
  expect(fs.readFileSync(config, 'utf8').match(/^action-script /gm)).toHaveLength(1);
});

it('is armed only for a restore that waits: the script line comes and goes, the rest stays', () => {
  const theirs = path.join(work, 'theirs.conf');
  fs.writeFileSync(theirs, 'tcp-established\n');
  const { config, script } = installed({ [CRIU_CONFIG_ANNOTATION]: theirs });
  const scriptLines = (): string[] => fs.readFileSync(config, 'utf8').split('\n').filter((l) => l.startsWith('action-script'));
  armResumeGate(work, false);
  expect(scriptLines()).toEqual([]);
  expect(fs.readFileSync(config, 'utf8')).toMatch(/^tcp-established\n/);
  armResumeGate(work, false);
  armResumeGate(work, true);
  armResumeGate(work, true);
  expect(scriptLines()).toEqual([`action-script ${script}`]);
  expect(fs.readFileSync(config, 'utf8')).toMatch(/^tcp-established\n/);
});

it('an empty annotation (no config file for runc) gets only the script', () => {
  const { config, script } = installed({ [CRIU_CONFIG_ANNOTATION]: '' });
  expect(fs.readFileSync(config, 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#'))).toEqual([`action-script ${script}`]);
});

it('the script passes every stage but post-restore, and any restore without a gate', async () => {
  const { script } = installed();
  for (const action of ['pre-restore', 'setup-namespaces', 'post-setup-namespaces', 'pre-resume', 'post-resume', 'pre-dump', 'post-dump', 'network-lock']) {
    await expect(runScript(script, { CRTOOLS_SCRIPT_ACTION: action, PAGESHARE_RESUME_GATE: '/nonexistent' })).resolves.toBe(0);
  }
  await expect(runScript(script, { CRTOOLS_SCRIPT_ACTION: 'post-restore' })).resolves.toBe(0);
  // Only post-restore acknowledges.
  const gate = ResumeGate.open(path.join(work, 'other.ack'));
  await expect(runScript(script, { CRTOOLS_SCRIPT_ACTION: 'pre-resume', ...gate.env })).resolves.toBe(0);
  expect(gate.held).toBe(false);
  gate.close();
});

it('at post-restore the script waits for the verdict: go passes, stop or a closed gate abort', async () => {
  const { script } = installed();
  const post = { CRTOOLS_SCRIPT_ACTION: 'post-restore' };

  const go = ResumeGate.open(path.join(work, 'go.ack'));
  expect(go.held).toBe(false);
  const waiting = runScript(script, { ...post, ...go.env });
  let settled = false;
  void waiting.then(() => (settled = true));
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(settled).toBe(false); // held until the verdict
  expect(go.held).toBe(true); // and it says so
  go.release(true);
  await expect(waiting).resolves.toBe(0);
  // CRIU runs the script more than once per stage: every run gets the verdict.
  await expect(runScript(script, { ...post, ...go.env })).resolves.toBe(0);
  expect(go.released).toBe(true);
  go.close();

  const stop = ResumeGate.open(path.join(work, 'stop.ack'));
  stop.release(false); // before the script even looks
  await expect(runScript(script, { ...post, ...stop.env })).resolves.not.toBe(0);
  stop.close();

  // The shim went away without a verdict: the write end closes, the script reads nothing.
  const dropped = ResumeGate.open(path.join(work, 'dropped.ack'));
  const env = dropped.env;
  const aborted = runScript(script, { ...post, ...env });
  await new Promise((resolve) => setTimeout(resolve, 100));
  dropped.close();
  await expect(aborted).resolves.not.toBe(0);
  // And once its pipe is gone, a late script cannot open it.
  await expect(runScript(script, { ...post, ...env })).resolves.not.toBe(0);
});
