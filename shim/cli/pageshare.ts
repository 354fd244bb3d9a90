// `pageshare`: the operator's command line (bin/pageshare). Each command opens what it
// needs, calls one method and prints the result; the exit code says how it went (cli-exit.ts).
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { SHIM_VERSION } from '../version';
import { addCheckpointCommands } from './checkpoint-commands';
import { EXIT_CODES_HELP, ExitCode, errorText, exitCodeOf } from './cli-exit';
import { addShimsCommand } from './shims-command';
import { addStoreCommands } from './store-commands';

function storeRoot(value: string): string {
  if (value === '') throw new InvalidArgumentError('the store root must not be empty');
  return value;
}

/** Run one command's action and record how it ended. */
async function run(action: () => Promise<ExitCode>): Promise<void> {
  process.exitCode = await action();
}

function main(argv: readonly string[]): void {
  // `pageshare ... | head` closes stdout early: that is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? ExitCode.OK);
    throw err;
  });

  const program = new Command('pageshare')
    .description('pageshare: checkpoint/restore runtime for containerd')
    .version(SHIM_VERSION)
    .option('--root <dir>', 'the page store (default: $PAGESHARE_ROOT, else /var/lib/pageshare)', storeRoot)
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, 'pageshare: ')) })
    .addHelpText('afterAll', `\n${EXIT_CODES_HELP}`);
  addStoreCommands(program, run);
  addCheckpointCommands(program, run);
  addShimsCommand(program, run);

  program.parseAsync([...argv]).catch((err: unknown) => {
    const code = exitCodeOf(err);
    // commander has already printed its own errors (and help, and the version).
    if (!(err instanceof CommanderError)) process.stderr.write(`${errorText(err)}\n`);
    process.exitCode = code;
  });
}

main(process.argv);
