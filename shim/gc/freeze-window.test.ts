import { FreezeWindow, type ContainerFreezer } from './freeze-window';

function recordingFreezer(failThaws = 0): ContainerFreezer & { calls: string[] } {
  const calls: string[] = [];
  let thawFailures = failThaws;
  return {
    calls,
    freeze: async () => void calls.push(`freeze@${Date.now()}`),
    thaw: async () => {
      calls.push(`thaw@${Date.now()}`);
      if (thawFailures-- > 0) throw new Error('EBUSY');
    },
  };
}

it('freezes once for overlapping holds and thaws after the latest end asked for', async () => {
  const freezer = recordingFreezer();
  const window = new FreezeWindow(freezer);
  const started = Date.now();
  const first = window.hold(started + 30);
  const second = window.hold(started + 80);
  expect(second).toBe(first);
  await first;
  expect(Date.now() - started).toBeGreaterThanOrEqual(79);
  expect(freezer.calls.map((c) => c.split('@')[0])).toEqual(['freeze', 'thaw']);
  // A later hold is a new freeze.
  await window.hold(Date.now() + 5);
  expect(freezer.calls).toHaveLength(4);
  await window.settled();
});

it('tries a failed thaw once more', async () => {
  const freezer = recordingFreezer(1);
  await new FreezeWindow(freezer).hold(Date.now());
  expect(freezer.calls.map((c) => c.split('@')[0])).toEqual(['freeze', 'thaw', 'thaw']);
});

it('reports a freeze that failed to the holder, and settles without throwing', async () => {
  const window = new FreezeWindow({ freeze: () => Promise.reject(new Error('no freezer')), thaw: async () => undefined });
  await expect(window.hold(Date.now() + 10)).rejects.toThrow('no freezer');
  await expect(window.settled()).resolves.toBeUndefined();
});
