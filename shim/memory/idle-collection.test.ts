import { collectWhenQuiet } from './idle-collection';

it('frees the memory of dead Buffers once quiet, without the process running with --expose-gc', async () => {
  let big: Buffer | undefined = Buffer.alloc(64 * 1024 * 1024, 1);
  const withBuffer = process.memoryUsage().arrayBuffers;
  expect(big.length).toBe(64 * 1024 * 1024);
  big = undefined;
  collectWhenQuiet();
  collectWhenQuiet(); // coalesced
  await new Promise((r) => setTimeout(r, 2000));
  expect(process.memoryUsage().arrayBuffers).toBeLessThan(withBuffer - 60 * 1024 * 1024);
});
