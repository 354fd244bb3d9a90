// `pageshare`: the operator's command line. For now it reports the shim servers running
// on this host; store and checkpoint commands come with the page store.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { SHIM_STATE_DIR, isListening } from '../bootstrap/shim-socket';
import { SHIM_VERSION } from '../version';

interface ShimServerInfo {
  socket: string;
  pid: number | null;
  listening: boolean;
  bootstrapVersion: number | null;
}

async function listShimServers(): Promise<ShimServerInfo[]> {
  let names: string[];
  try {
    names = fs.readdirSync(SHIM_STATE_DIR).filter((n) => n.endsWith('.sock'));
  } catch {
    return [];
  }
  return Promise.all(
    names.map(async (name) => {
      const base = path.join(SHIM_STATE_DIR, name.slice(0, -'.sock'.length));
      const read = (f: string): string | null => {
        try {
          return fs.readFileSync(f, 'utf8');
        } catch {
          return null;
        }
      };
      const pid = Number(read(`${base}.pid`)) || null;
      const bootstrap = read(`${base}.json`);
      return {
        socket: `${base}.sock`,
        pid,
        listening: await isListening(`${base}.sock`),
        bootstrapVersion: bootstrap ? ((JSON.parse(bootstrap) as { version: number }).version ?? null) : null,
      };
    }),
  );
}

const program = new Command('pageshare').description('pageshare: checkpoint/restore runtime for containerd').version(SHIM_VERSION);
program
  .command('shims')
  .description('list the pageshare shim servers on this host (one per containerd namespace)')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const servers = await listShimServers();
    if (opts.json) {
      process.stdout.write(JSON.stringify(servers, null, 2) + '\n');
      return;
    }
    if (servers.length === 0) {
      process.stdout.write('no shim servers\n');
      return;
    }
    for (const s of servers) {
      process.stdout.write(`${s.pid ?? '-'}\t${s.listening ? 'listening' : 'dead'}\tv${s.bootstrapVersion ?? '?'}\t${s.socket}\n`);
    }
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`pageshare: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
