// containerd-shim-pageshare-v1: `start`, `delete`, and `serve` (the server `start` launches).
// Each action loads only its own modules: containerd runs `start` once per container, and
// grpc-js and the proto loader alone take ~180 ms to load.
import { parseShimFlags } from './cli/shim-flags';
import { enableDebug, errorMessage } from './log/logger';
import { SHIM_VERSION } from './version';

async function main(argv: string[]): Promise<number> {
  const flags = parseShimFlags(argv);
  enableDebug(flags.debug);
  if (flags.version) {
    process.stdout.write(`containerd-shim-pageshare-v1\n  Version: ${SHIM_VERSION}\n  Runtime: io.containerd.pageshare.v1\n`);
    return 0;
  }
  if (!flags.namespace && flags.action !== undefined) throw new Error('-namespace is required');
  switch (flags.action) {
    case 'start':
      process.stdout.write(await (await import('./bootstrap/start')).startAction(flags, __filename));
      return 0;
    case 'delete':
      process.stdout.write(await (await import('./bootstrap/delete')).deleteAction(flags));
      return 0;
    case 'serve':
      await (await import('./bootstrap/serve')).serve(flags.address, flags.namespace);
      return -1; // keep running
    case undefined:
      throw new Error('no action given: expected start or delete');
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`containerd-shim-pageshare-v1: ${errorMessage(err)}\n`);
    // A server that failed half-way (a socket bound, a subreaper) must not linger.
    process.exit(1);
  },
);
