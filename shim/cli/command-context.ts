// What every store and checkpoint command gets from the command line, and how it prints.
import * as path from 'node:path';
import type { Command } from 'commander';
import { defaultStoreRoot } from '../store/store-layout';

export interface CommandContext {
  /** The page store, absolute. */
  readonly root: string;
  readonly json: boolean;
}

export function contextOf(cmd: Command): CommandContext {
  const opts = cmd.optsWithGlobals<{ root?: string; json?: boolean }>();
  return { root: path.resolve(opts.root ?? defaultStoreRoot()), json: opts.json === true };
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function printText(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}
