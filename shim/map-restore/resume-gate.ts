// Holds a restored container's tasks before they resume, until the shim says "go".
//
// A map-mode restore can start `runc restore` while the checkpoint's page-cache file is still
// being written and verified: CRIU only maps the file, and nothing reads a mapped page until
// the tasks run again. CRIU runs its action scripts at "post-restore" after every task is
// restored and before any resumes, and aborts the restore (killing the tasks) when one exits
// non-zero. runc hands CRIU the config file named by the spec annotation org.criu.config;
// the shim points that at a file in the bundle that adds its script. CRIU 3.19 and later run
// such scripts in runc's RPC mode too.
//
// The verdict travels through a pipe the shim keeps open, reached by CRIU's script as
// /proc/<shim pid>/fd/<read end> (given in runc's environment, which CRIU inherits): lines of
// "go" or "stop", one per run of the script (CRIU 4.1.1 runs a config file's script twice per
// stage in RPC mode, measured here; the shell reads a pipe a byte at a time, so each run
// takes one line). A shim that dies closes the pipe, the script reads nothing, and the
// restore is aborted: no task ever runs on pages that were not verified.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipe2 } from '../native';
import type { OciSpec } from '../spec/oci-spec';

/** runc passes the file this names to CRIU as its config file (unset: runc's default). */
export const CRIU_CONFIG_ANNOTATION = 'org.criu.config';
/** What runc uses when the annotation is absent. */
const RUNC_DEFAULT_CRIU_CONFIG = '/etc/criu/runc.conf';
/** In runc's environment for a gated restore: the path CRIU's script reads the verdict from. */
export const RESUME_GATE_ENV = 'PAGESHARE_RESUME_GATE';
/** And a file the script creates before it waits: proof that CRIU ran it at post-restore. */
export const RESUME_GATE_ACK_ENV = 'PAGESHARE_RESUME_GATE_ACK';

/** Runs of the script one verdict answers (more than CRIU makes; the rest is never read). */
const VERDICT_LINES = 32;
const CONFIG_FILE = 'pageshare-criu.conf';
const SCRIPT_FILE = 'pageshare-resume-gate';

const SCRIPT = `#!/bin/sh
# Written by pageshare. CRIU runs it at every stage of a dump or restore of this container
# (see ${CONFIG_FILE}). At post-restore, before the restored tasks resume, a gated restore
# waits for the shim's verdict on the pages they map: anything but "go" aborts the restore.
[ "$CRTOOLS_SCRIPT_ACTION" = post-restore ] || exit 0
[ -n "$${RESUME_GATE_ENV}" ] || exit 0
[ -z "$${RESUME_GATE_ACK_ENV}" ] || : > "$${RESUME_GATE_ACK_ENV}" || exit 1
read -r verdict < "$${RESUME_GATE_ENV}" || exit 1
[ "$verdict" = go ]
`;

/** The config line that has CRIU run the bundle's gate script. */
function scriptLineOf(bundle: string): string {
  return `action-script ${path.join(bundle, SCRIPT_FILE)}`;
}

/**
 * Makes CRIU run the gate script for this bundle: a config file in the bundle holding what
 * CRIU would have read otherwise (the annotated file, or runc's default) plus the script,
 * and the annotation pointing at it. Changes `spec` (the caller writes it). The files live
 * with the bundle because runc keeps the annotation for later dumps of the container too
 * (where the script does nothing).
 */
export function installResumeGate(bundle: string, spec: OciSpec): void {
  const configPath = path.join(bundle, CONFIG_FILE);
  const annotations = (spec.annotations ??= {});
  const previous = annotations[CRIU_CONFIG_ANNOTATION];
  if (previous === configPath && fs.existsSync(configPath)) return;
  // An empty annotation means "no config file" to runc.
  const inherited = previous === undefined ? RUNC_DEFAULT_CRIU_CONFIG : previous;
  let base = '';
  if (inherited !== '') {
    try {
      base = fs.readFileSync(inherited, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // CRIU ignores a missing one too
    }
  }
  fs.writeFileSync(path.join(bundle, SCRIPT_FILE), SCRIPT, { mode: 0o755 });
  const origin = inherited === '' ? 'none' : inherited;
  // armResumeGate() takes the action-script line out for a restore with nothing to wait for.
  const ours = `# pageshare: the action-script line holds restored tasks until their mapped pages are verified (config before this: ${origin})\n${scriptLineOf(bundle)}\n`;
  fs.writeFileSync(configPath, base === '' || base.endsWith('\n') ? base + ours : `${base}\n${ours}`);
  annotations[CRIU_CONFIG_ANNOTATION] = configPath;
}

/**
 * Whether CRIU runs the gate script for this bundle's next restore: off when nothing is to
 * be waited for (a sealed page-cache file), which spares CRIU a shell per stage.
 */
export function armResumeGate(bundle: string, on: boolean): void {
  const configPath = path.join(bundle, CONFIG_FILE);
  const scriptLine = scriptLineOf(bundle);
  const lines = fs.readFileSync(configPath, 'utf8').split('\n');
  const ours = lines.findIndex((l) => l === scriptLine);
  if (on === (ours >= 0)) return;
  if (on) fs.writeFileSync(configPath, `${lines.join('\n').replace(/\n*$/, '\n')}${scriptLine}\n`);
  else fs.writeFileSync(configPath, lines.filter((_, i) => i !== ours).join('\n'));
}

/** One restore's gate: open it before runc starts, release it once the pages are verified. */
export class ResumeGate {
  private verdict: 'go' | 'stop' | undefined;

  private constructor(
    private readonly readFd: number,
    private writeFd: number | undefined,
    private readonly ackFile: string,
  ) {}

  /** `ackFile`: a path of the host, absent now, that the script creates (in a private dir). */
  static open(ackFile: string): ResumeGate {
    fs.rmSync(ackFile, { force: true });
    const [readFd, writeFd] = pipe2();
    return new ResumeGate(readFd, writeFd, ackFile);
  }

  /** For runc's environment. */
  get env(): Record<string, string> {
    return { [RESUME_GATE_ENV]: `/proc/${process.pid}/fd/${this.readFd}`, [RESUME_GATE_ACK_ENV]: this.ackFile };
  }

  /** Whether CRIU ran the script at post-restore (it then waited for the verdict). */
  get held(): boolean {
    return fs.existsSync(this.ackFile);
  }

  /** Whether release() was called (go or stop). */
  get released(): boolean {
    return this.verdict !== undefined;
  }

  /** Lets the tasks resume (true) or has CRIU abort the restore (false). Once only. */
  release(go: boolean): void {
    if (this.verdict !== undefined || this.writeFd === undefined) return;
    this.verdict = go ? 'go' : 'stop';
    try {
      // A few hundred bytes: a pipe takes them at once.
      fs.writeSync(this.writeFd, `${this.verdict}\n`.repeat(VERDICT_LINES));
    } finally {
      fs.closeSync(this.writeFd);
      this.writeFd = undefined;
    }
  }

  /** Once runc has returned: without a verdict the script (if it runs later) reads nothing. */
  close(): void {
    if (this.writeFd !== undefined) fs.closeSync(this.writeFd);
    this.writeFd = undefined;
    fs.closeSync(this.readFd);
  }
}
