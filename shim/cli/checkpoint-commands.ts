// `pageshare checkpoint ls|show|rm`: the checkpoints the page store keeps.
import type { Command } from 'commander';
import { NO_PAGE_CACHE_GC } from '../store/page-cache-gc';
import { CheckpointNotFoundError } from '../store/store-error';
import { CliError, ExitCode, errorText } from './cli-exit';
import { CommandContext, contextOf, printJson, printText } from './command-context';
import { pageCacheRmText } from './page-cache-text';
import { noStoreText, withExistingStore } from './store-access';
import { CheckpointView, checkpointTable, checkpointText, checkpointView } from './store-report-text';

async function list(ctx: CommandContext): Promise<ExitCode> {
  const checkpoints = await withExistingStore(ctx.root, (store) => store.listCheckpoints().map(checkpointView), () => undefined);
  if (ctx.json) printJson({ root: ctx.root, exists: checkpoints !== undefined, checkpoints: checkpoints ?? [] });
  else if (checkpoints === undefined) printText(noStoreText(ctx.root));
  else if (checkpoints.length === 0) printText(`no checkpoints in ${ctx.root}`);
  else printText(checkpointTable(checkpoints));
  return ExitCode.OK;
}

async function show(ctx: CommandContext, id: string): Promise<ExitCode> {
  const checkpoint = await withExistingStore<CheckpointView>(
    ctx.root,
    (store) => checkpointView(store.getCheckpoint(id)),
    () => {
      throw new CliError(`checkpoint ${id} is not in the page store: ${noStoreText(ctx.root)}`, ExitCode.PROBLEM);
    },
  );
  if (ctx.json) printJson({ root: ctx.root, checkpoint });
  else printText(checkpointText(checkpoint));
  return ExitCode.OK;
}

async function remove(ctx: CommandContext, ids: readonly string[]): Promise<ExitCode> {
  const removed: string[] = [];
  const notFound: string[] = [];
  const pageCache = await withExistingStore(
    ctx.root,
    async (store) => {
      for (const id of new Set(ids)) {
        try {
          store.removeCheckpoint(id);
          removed.push(id);
        } catch (err) {
          if (!(err instanceof CheckpointNotFoundError)) throw err;
          notFound.push(id);
          process.stderr.write(`${errorText(err)}\n`);
        }
      }
      // After every record is gone: a marker of one removed checkpoint no longer holds another's file.
      return removed.length === 0 ? NO_PAGE_CACHE_GC : (await store.gc({ pageCacheOf: removed })).pageCache;
    },
    () => {
      notFound.push(...new Set(ids));
      process.stderr.write(`pageshare: ${noStoreText(ctx.root)}: no checkpoint to remove\n`);
      return NO_PAGE_CACHE_GC;
    },
  );
  if (ctx.json) printJson({ root: ctx.root, removed, notFound, pageCache });
  else if (removed.length > 0) {
    printText(
      removed.map((id) => `removed checkpoint ${id}`).join('\n') +
        '\n`pageshare store gc` frees the pages no other checkpoint uses\n' +
        pageCacheRmText(pageCache),
    );
  }
  return notFound.length > 0 ? ExitCode.PROBLEM : ExitCode.OK;
}

export function addCheckpointCommands(program: Command, run: (action: () => Promise<ExitCode>) => Promise<void>): void {
  const checkpoint = program.command('checkpoint').description('the checkpoints the page store keeps');
  checkpoint
    .command('ls')
    .description('list kept checkpoints: container, namespace, creation time, pages and their size')
    .option('--json', 'print JSON')
    .action((_opts: unknown, cmd: Command) => run(() => list(contextOf(cmd))));
  checkpoint
    .command('show')
    .description('one checkpoint in detail; exit code 1 if the store does not keep it')
    .argument('<id>', 'checkpoint id (from `pageshare checkpoint ls`)')
    .option('--json', 'print JSON')
    .action((id: string, _opts: unknown, cmd: Command) => run(() => show(contextOf(cmd), id)));
  checkpoint
    .command('rm')
    .description(
      'stop keeping checkpoints (the next `pageshare store gc` frees their pages) and remove their page-cache files unless mapped or referenced; exit code 1 if an id is unknown, the others are still removed',
    )
    .argument('<id...>', 'checkpoint ids')
    .option('--json', 'print JSON')
    .action((ids: string[], _opts: unknown, cmd: Command) => run(() => remove(contextOf(cmd), ids)));
}
