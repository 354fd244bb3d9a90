// A shim server outlives the checkpoints and restores it serves, and each of those moves
// hundreds of MiB through Buffers (pages read, hashed, written). V8 frees a Buffer's memory
// only when a GC finds the Buffer dead, and a server whose JS heap hardly grows runs none for
// a long time: measured, a server kept 110-200 MiB of such garbage after one checkpoint and
// a few restores. So after heavy work, once the server has been quiet for a moment, it runs
// one full GC itself.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { log } from '../log/logger';

/** Quiet time after the last heavy operation before the collection. */
const QUIET_MS = 1500;

let collect: (() => void) | undefined;
let timer: NodeJS.Timeout | undefined;

function gcFunction(): () => void {
  if (collect === undefined) {
    // The documented flag, set at run time: a fresh context then sees `gc`.
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  return collect;
}

/** Asks for one full GC once the server has been quiet for QUIET_MS (calls coalesce). */
export function collectWhenQuiet(): void {
  clearTimeout(timer);
  timer = setTimeout(() => {
    timer = undefined;
    const before = process.memoryUsage();
    const started = Date.now();
    gcFunction()();
    const after = process.memoryUsage();
    const mib = (n: number) => (n / 1048576).toFixed(1);
    log.info(`idle collection in ${Date.now() - started} ms: rss ${mib(before.rss)} -> ${mib(after.rss)} MiB, external ${mib(before.external)} -> ${mib(after.external)} MiB`);
  }, QUIET_MS);
  timer.unref();
}
