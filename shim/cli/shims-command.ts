// `pageshare shims`: the shim servers running on this host.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { SHIM_STATE_DIR, isListening } from '../bootstrap/shim-socket';
import { ExitCode } from './cli-exit';
import { printJson, printText } from './command-context';

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

async function shims(json: boolean): Promise<ExitCode> {
  const servers = await listShimServers();
  if (json) printJson(servers);
  else if (servers.length === 0) printText('no shim servers');
  else printText(servers.map((s) => `${s.pid ?? '-'}\t${s.listening ? 'listening' : 'dead'}\tv${s.bootstrapVersion ?? '?'}\t${s.socket}`).join('\n'));
  return ExitCode.OK;
}

export function addShimsCommand(program: Command, run: (action: () => Promise<ExitCode>) => Promise<void>): void {
  program
    .command('shims')
    .description('list the pageshare shim servers on this host (one per containerd namespace)')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => run(() => shims(opts.json === true)));
}
