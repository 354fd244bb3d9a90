// Work a shim server goes on doing after the call that started it has returned (a
// checkpoint's indexing and page-cache file): an idle server finishes it before it exits,
// instead of leaving it to the next writer half done.
const pending = new Set<Promise<unknown>>();

/** Keeps the server up (within backgroundWorkDone's limit) until `work` settles. */
export function trackBackgroundWork(work: Promise<unknown>): void {
  pending.add(work);
  void work.then(
    () => pending.delete(work),
    () => pending.delete(work),
  );
}

/** Resolves once every tracked piece of work has settled, or after limitMs: whether it all did. */
export async function backgroundWorkDone(limitMs: number): Promise<boolean> {
  if (pending.size === 0) return true;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), limitMs);
  });
  try {
    return await Promise.race([Promise.allSettled([...pending]).then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
