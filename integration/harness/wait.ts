/** Polling with a deadline, for conditions the tests cannot be notified about. */

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class WaitTimeoutError extends Error {
  readonly code = 'E_WAIT_TIMEOUT';
  constructor(what: string, timeoutMs: number, lastError: unknown) {
    const why = lastError instanceof Error ? `: ${lastError.message}` : lastError ? `: ${String(lastError)}` : '';
    super(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    this.name = 'WaitTimeoutError';
  }
}

/** Thrown by a probe to stop waiting at once (the awaited thing can no longer happen). */
export class WaitAbortedError extends Error {
  readonly code = 'E_WAIT_ABORTED';
  constructor(message: string) {
    super(message);
    this.name = 'WaitAbortedError';
  }
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

type Probe<T> = () => Promise<T | undefined | false> | T | undefined | false;

/**
 * Calls `probe` until it returns something other than undefined/false and returns that.
 * A probe that throws counts as "not yet" (the last error is reported on timeout), except
 * a WaitAbortedError, which ends the wait at once. `what` names the condition in the
 * timeout message.
 */
export function waitFor<T>(what: string, probe: Probe<T>, opts?: WaitOptions): Promise<T>;
export function waitFor<T>(probe: Probe<T>, opts?: WaitOptions): Promise<T>;
export function waitFor<T>(
  first: string | Probe<T>,
  second?: Probe<T> | WaitOptions,
  third?: WaitOptions,
): Promise<T> {
  if (typeof first === 'string') {
    if (typeof second !== 'function') throw new TypeError('waitFor(what, probe, opts): probe must be a function');
    return poll(first, second, third ?? {});
  }
  return poll('a condition', first, typeof second === 'object' ? second : {});
}

async function poll<T>(what: string, probe: Probe<T>, opts: WaitOptions): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      if (err instanceof WaitAbortedError) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) throw new WaitTimeoutError(what, timeoutMs, lastError);
    await sleep(intervalMs);
  }
}
