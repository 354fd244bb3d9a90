// For tests that run the project's private CRIU on plain processes: where it is, or why such
// a test must be skipped.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../paths/repo-root';

export interface PrivateCriu {
  /** The criu binary, when it can be run. */
  readonly criu: string | undefined;
  readonly skipReason: string | undefined;
}

export function privateCriu(): PrivateCriu {
  const file = path.join(repoRoot(), '.deps', 'paths.json');
  const bin = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { CRIU_BIN?: string }).CRIU_BIN : undefined;
  const criu = bin ? path.join(bin, 'criu') : undefined;
  const skipReason = !criu ? '.deps/paths.json with CRIU_BIN is missing: run `make build`' : process.getuid?.() !== 0 ? 'CRIU needs root' : undefined;
  return { criu, skipReason };
}
