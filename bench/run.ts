/**
 * `make bench`: runs every benchmark module in turn and prints its table. Each module
 * writes its raw samples and summary to bench/results/<name>.json.
 *
 *   node dist/bench/run.js              every module
 *   node dist/bench/run.js lifecycle    only the named ones (lifecycle, checkpoint, gc, sharing)
 */
import { installInterruptHandlers, type BenchModule } from './common';
import { checkpoint } from './checkpoint';
import { gc } from './gc';
import { lifecycle } from './lifecycle';
import { sharing } from './sharing';

/** In the order they run. Add new modules here. */
const MODULES: readonly BenchModule[] = [lifecycle, checkpoint, gc, sharing];

async function main(argv: readonly string[]): Promise<number> {
  const unknown = argv.filter((name) => !MODULES.some((m) => m.name === name));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; known: ${MODULES.map((m) => m.name).join(', ')}\n`);
    return 2;
  }
  const selected = argv.length > 0 ? MODULES.filter((m) => argv.includes(m.name)) : MODULES;
  installInterruptHandlers();
  let failed = 0;
  for (const module of selected) {
    process.stderr.write(`== ${module.name}\n`);
    try {
      const report = await module.run();
      process.stdout.write(`\n${report.table}\n\n(raw samples: ${report.resultFile})\n\n`);
    } catch (err) {
      failed++;
      process.stderr.write(`benchmark ${module.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
  }
  return failed > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
