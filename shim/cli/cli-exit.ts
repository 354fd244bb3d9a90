// How `pageshare` ends: one exit code per kind of outcome, so scripts can tell "the store
// is damaged" from "I typed it wrong" from "it could not run at all".
import { CommanderError } from 'commander';
import { StoreError, StoreErrorReason } from '../store/store-error';

export enum ExitCode {
  /** The command did what was asked and found nothing wrong. */
  OK = 0,
  /** A problem in the store's data: verify found damage, an unknown checkpoint id. */
  PROBLEM = 1,
  /** The command line was wrong: unknown command or option, missing argument. */
  USAGE = 2,
  /** The command could not run: no permission, the store's lock held too long, a newer index. */
  FAILED = 3,
}

export const EXIT_CODES_HELP = `Exit codes:
  0  ok
  1  a problem in the page store's data: verify found damage, unknown checkpoint
  2  usage error: unknown command or option, missing argument
  3  the command could not run: permission denied, store lock held too long,
     unreadable index
`;

/** An error the CLI itself raises, with the exit code it ends with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Store errors that describe the data (the rest say the command could not run). */
const DATA_PROBLEMS: ReadonlySet<StoreErrorReason> = new Set<StoreErrorReason>([
  'STORE_PAGE_MISSING',
  'STORE_PAGE_CORRUPT',
  'STORE_PACK_CORRUPT',
  'STORE_CHECKPOINT_NOT_FOUND',
  'STORE_WRONG_STORE',
  'MANIFEST_BAD_MAGIC',
  'MANIFEST_TRUNCATED',
  'MANIFEST_CHECKSUM_MISMATCH',
  'MANIFEST_CORRUPT',
]);

export function exitCodeOf(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  if (err instanceof StoreError) {
    if (DATA_PROBLEMS.has(err.reason)) return ExitCode.PROBLEM;
    if (err.reason === 'STORE_INVALID_ARGUMENT') return ExitCode.USAGE;
  }
  return ExitCode.FAILED;
}

/** The one line a user sees for an error (with the stack when PAGESHARE_DEBUG=1). */
export function errorText(err: unknown, env: NodeJS.ProcessEnv = process.env): string {
  if (env.PAGESHARE_DEBUG === '1' && err instanceof Error && err.stack !== undefined) return `pageshare: ${err.stack}`;
  let message = err instanceof Error ? err.message : String(err);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EACCES' || code === 'EPERM') {
    message += ' (the page store belongs to root: run as root, or point --root or PAGESHARE_ROOT at another store)';
  }
  return `pageshare: ${message}`;
}
