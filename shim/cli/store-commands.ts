// `pageshare store stats|verify|gc`: open the store, call one method, print its report.
import type { Command } from 'commander';
import { PageCacheStats, pageCacheStats } from '../store/page-cache-dir';
import type { StoreStats } from '../store/page-store';
import { NO_GC } from '../store/store-gc';
import type { VerifyReport } from '../store/store-verify';
import { ExitCode } from './cli-exit';
import { CommandContext, contextOf, printJson, printText } from './command-context';
import { pageCacheGcText, pageCacheStatsText } from './page-cache-text';
import { noStoreText, withExistingStore } from './store-access';
import { gcText, statsText, verifyText } from './store-report-text';
import { VerifyProgressBar } from './verify-progress-bar';

/** What a root without a store reports (see store-access.ts). */
const NO_STATS: StoreStats & { pageCache: PageCacheStats } = {
  checkpoints: 0,
  pages: 0,
  packs: 0,
  sealedPacks: 0,
  pinnedPacks: 0,
  zeroPagesReferenced: 0,
  logicalBytes: 0,
  storedBytes: 0,
  physicalBytes: 0,
  dedupRatio: null,
  pageCache: { files: 0, apparentBytes: 0, allocatedBytes: 0 },
};
const NO_VERIFY: VerifyReport = {
  ok: true,
  problems: [],
  problemCount: 0,
  damagedCheckpoints: [],
  packsChecked: 0,
  pagesChecked: 0,
  checkpointsChecked: 0,
  reclaimable: { tailBytes: 0, deadBytes: 0, orphanFiles: [], orphanBytes: 0 },
};

async function stats(ctx: CommandContext): Promise<ExitCode> {
  const s = await withExistingStore(ctx.root, (store) => ({ ...store.stats(), pageCache: pageCacheStats(store.layout.root) }), () => undefined);
  if (ctx.json) printJson({ root: ctx.root, exists: s !== undefined, ...(s ?? NO_STATS) });
  else printText(s === undefined ? noStoreText(ctx.root) : statsText(ctx.root, s) + pageCacheStatsText(s.pageCache));
  return ExitCode.OK;
}

async function verify(ctx: CommandContext): Promise<ExitCode> {
  const bar = VerifyProgressBar.forTerminal(process.stderr, ctx.json);
  let report: VerifyReport | undefined;
  try {
    report = await withExistingStore(ctx.root, (store) => store.verify((p) => bar?.update(p)), () => undefined);
  } finally {
    bar?.stop();
  }
  if (ctx.json) printJson({ root: ctx.root, exists: report !== undefined, ...(report ?? NO_VERIFY) });
  else printText(report === undefined ? noStoreText(ctx.root) : verifyText(ctx.root, report));
  return report === undefined || report.ok ? ExitCode.OK : ExitCode.PROBLEM;
}

async function gc(ctx: CommandContext, compact: boolean): Promise<ExitCode> {
  const report = await withExistingStore(ctx.root, (store) => store.gc({ compact }), () => undefined);
  if (ctx.json) printJson({ root: ctx.root, exists: report !== undefined, ...(report ?? NO_GC) });
  else printText(report === undefined ? `${noStoreText(ctx.root)}: nothing to collect` : gcText(ctx.root, report) + pageCacheGcText(report.pageCache));
  return ExitCode.OK;
}

export function addStoreCommands(program: Command, run: (action: () => Promise<ExitCode>) => Promise<void>): void {
  const store = program.command('store').description('inspect and maintain the page store');
  store
    .command('stats')
    .description('pages, packs, logical and physical size, dedup ratio, page-cache files')
    .option('--json', 'print JSON (sizes in bytes)')
    .action((_opts: unknown, cmd: Command) => run(() => stats(contextOf(cmd))));
  store
    .command('verify')
    .description('re-hash every page and check packs and checkpoints; exit code 1 if any kept checkpoint is damaged')
    .option('--json', 'print JSON')
    .action((_opts: unknown, cmd: Command) => run(() => verify(contextOf(cmd))));
  store
    .command('gc')
    .description('free pages no kept checkpoint references, page-cache files nothing needs, and leftovers of crashes')
    .option('--json', 'print JSON')
    .option('--no-compact', 'do not rewrite mostly-empty sealed packs (only delete packs with no live page)')
    .action((opts: { compact: boolean }, cmd: Command) => run(() => gc(contextOf(cmd), opts.compact)));
}
