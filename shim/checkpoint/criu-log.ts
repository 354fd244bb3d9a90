// CRIU explains its failures in its own log, in the work dir. The tail goes into the error,
// and the whole log is kept in the bundle (criu-dump.log / criu-restore.log, as the runc
// shim does) because the work dir is removed.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Printed on every run here (an unprivileged-looking rlimit probe); not the failure. */
const NOISE = /RLIMIT_NOFILE/;

export function criuFailureDetails(workDir: string, logName: 'dump.log' | 'restore.log', bundle: string, lines = 12): string {
  const source = path.join(workDir, logName);
  let text: string[];
  try {
    text = fs.readFileSync(source, 'utf8').trimEnd().split('\n');
  } catch {
    return `(CRIU wrote no ${logName})`;
  }
  const kept = path.join(bundle, `criu-${logName}`);
  try {
    fs.copyFileSync(source, kept);
  } catch {
    /* the bundle is gone: the tail below still says what happened */
  }
  const relevant = text.filter((l) => !NOISE.test(l));
  const errors = relevant.filter((l) => /Error|Warn/.test(l));
  return `${(errors.length > 0 ? errors : relevant).slice(-lines).join('\n')}\n(full CRIU log: ${kept})`;
}
