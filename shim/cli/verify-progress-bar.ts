// The progress bar of `store verify`: on stderr, and only for a person watching a terminal
// (never with --json, never into a pipe or a log file). It appears once a run has taken a
// moment, so quick runs print nothing extra, and it is erased when the run ends.
import { Presets, SingleBar } from 'cli-progress';
import type { VerifyProgress } from '../store/store-verify';

const SHOW_AFTER_MS = 300;
/** Signals that end a run: the bar turns line wrapping off, so it must be erased first. */
const ENDING_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export class VerifyProgressBar {
  private bar: SingleBar | undefined;
  private readonly startedAt = Date.now();

  private constructor(
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly showAfterMs: number,
  ) {}

  /** A bar on stream, or undefined when nobody would see it. */
  static forTerminal(stream: NodeJS.WritableStream & { isTTY?: boolean }, json: boolean, showAfterMs = SHOW_AFTER_MS): VerifyProgressBar | undefined {
    return !json && stream.isTTY === true ? new VerifyProgressBar(stream, showAfterMs) : undefined;
  }

  update(p: VerifyProgress): void {
    if (this.bar === undefined) {
      if (p.pagesTotal === 0 || Date.now() - this.startedAt < this.showAfterMs) return;
      this.bar = new SingleBar(
        {
          stream: this.stream,
          format: 'verifying |{bar}| {percentage}% | {value}/{total} pages | ETA {eta_formatted}',
          clearOnComplete: true,
        },
        Presets.shades_classic,
      );
      this.bar.start(p.pagesTotal, p.pagesChecked);
      for (const signal of ENDING_SIGNALS) process.once(signal, this.interrupted);
      return;
    }
    this.bar.setTotal(p.pagesTotal);
    this.bar.update(p.pagesChecked);
  }

  /** Erase the bar. Idempotent. */
  stop(): void {
    for (const signal of ENDING_SIGNALS) process.removeListener(signal, this.interrupted);
    this.bar?.stop();
    this.bar = undefined;
  }

  /** Erase the bar, then die of the signal as if no handler had caught it. */
  private readonly interrupted = (signal: NodeJS.Signals): void => {
    this.stop();
    process.kill(process.pid, signal);
  };
}
