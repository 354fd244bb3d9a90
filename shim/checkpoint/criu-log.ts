// CRIU explains its failures in its own log, in the work dir: the tail goes into errors.
import * as fs from 'node:fs';
import * as path from 'node:path';

export function criuLogTail(workDir: string, logName: 'dump.log' | 'restore.log', lines = 12): string {
  try {
    const text = fs.readFileSync(path.join(workDir, logName), 'utf8').trimEnd().split('\n');
    const errors = text.filter((l) => /Error|error|Warn/.test(l));
    return (errors.length > 0 ? errors : text).slice(-lines).join('\n');
  } catch {
    return `(no ${logName} in ${workDir})`;
  }
}
