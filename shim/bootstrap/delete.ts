// `delete`: containerd's clean-up after a shim it lost. Force-remove the runc container,
// unmount the rootfs, and print a binary DeleteResponse (nothing else) on stdout.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ShimFlags } from '../cli/shim-flags';
import { RuntimeError } from '../errors/shim-error';
import { errorMessage } from '../log/logger';
import { loadRuntimeOptions, runcDriverFor } from '../options/runtime-options';
import { encodeMessage } from '../proto/any';
import { toTimestamp } from '../proto/messages';
import { unmountRootfs } from '../rootfs/rootfs';

/** 128 + SIGKILL, as the runc shim reports for a container it had to kill. */
const KILLED_STATUS = 137;

export async function deleteAction(flags: ShimFlags): Promise<Buffer> {
  const bundle = flags.bundle || process.cwd();
  const options = loadRuntimeOptions(bundle, flags.namespace);
  const runc = runcDriverFor(bundle, options);
  let pid = 0;
  try {
    pid = Number(fs.readFileSync(path.join(bundle, 'init.pid'), 'utf8').trim()) || 0;
  } catch {
    /* never created */
  }
  try {
    await runc.delete(flags.id, true);
  } catch (err) {
    if (!(err instanceof RuntimeError && /does not exist|not found/i.test(err.message))) {
      process.stderr.write(`pageshare delete ${flags.id}: ${errorMessage(err)}\n`);
    }
  }
  await unmountRootfs(bundle);
  return encodeMessage('containerd.task.v3.DeleteResponse', { pid, exit_status: KILLED_STATUS, exited_at: toTimestamp(new Date()) });
}
