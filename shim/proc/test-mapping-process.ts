// For tests: a real process that maps a file (Node cannot mmap; Python can), until killed.
import { ChildProcess, spawn } from 'node:child_process';

const MAP_AND_WAIT = [
  'import mmap, sys, time',
  "f = open(sys.argv[1], 'rb')",
  'm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)',
  "print('mapped', flush=True)",
  'time.sleep(600)',
].join('\n');

const running = new Set<ChildProcess>();

/** Resolves once the child maps file read-only; kill it with stopMappingProcess(es). */
export function startMappingProcess(file: string): Promise<ChildProcess> {
  const child = spawn('python3', ['-c', MAP_AND_WAIT, file], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('mapped')) resolve(child);
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`python3 exited (${code}) before mapping ${file}: ${err}`)));
  });
}

/** Kill the child and wait until it is reaped (its mappings are gone then). */
export function stopMappingProcess(child: ChildProcess): Promise<void> {
  running.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Stop every child still running (for afterEach). */
export async function stopMappingProcesses(): Promise<void> {
  await Promise.all([...running].map(stopMappingProcess));
}
