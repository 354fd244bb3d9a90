// `start`: find or launch the namespace's shim server, then tell containerd where it is.
// stdout carries only the bootstrap JSON; the server is detached from containerd's pipes.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as native from '../native';
import { RuntimeError } from '../errors/shim-error';
import type { ShimFlags } from '../cli/shim-flags';
import { chooseProtocol } from './protocol';
import { START_LOCK, isListening, parseServerEndpoints, removeStaleServerFiles, shimServerFiles, type BootstrapParams, type ShimServerFiles } from './shim-socket';

const SERVER_READY_TIMEOUT_MS = 15_000;

/** V8 settings for a small, long-lived server that holds little state: tiny young
 * generation, one GC thread. (--lite-mode would save ~4 MiB of an idle server's 19 MiB
 * anonymous memory, but without the optimizing JIT verified page reads for a restore ran
 * at 36k instead of 60k pages/s here.) */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=96', '--single-threaded-gc'];

export async function startAction(flags: ShimFlags, entryScript: string): Promise<string> {
  const files = shimServerFiles(flags.address, flags.namespace);
  fs.mkdirSync(path.dirname(files.socket), { recursive: true, mode: 0o711 });
  const lockFd = fs.openSync(START_LOCK, 'a');
  try {
    native.flock(lockFd, true, true);
    if (!(await isListening(files.socket)) || !fs.existsSync(files.bootstrap)) {
      removeStaleServerFiles();
      await launchServer(flags, files, entryScript);
    }
    const endpoints = parseServerEndpoints(fs.readFileSync(files.bootstrap, 'utf8'), files.bootstrap);
    const protocol = chooseProtocol();
    const params: BootstrapParams =
      protocol === 'grpc'
        ? { version: endpoints.version, address: endpoints.grpc, protocol }
        : { version: endpoints.version, address: `unix://${endpoints.ttrpc}`, protocol };
    const bootstrap = JSON.stringify(params);
    // containerd 1.7 finds a restarted daemon's shims through <bundle>/address.
    fs.writeFileSync(path.join(flags.bundle || process.cwd(), 'address'), bootstrap);
    return bootstrap;
  } finally {
    fs.closeSync(lockFd);
  }
}

async function launchServer(flags: ShimFlags, files: ShimServerFiles, entryScript: string): Promise<void> {
  fs.rmSync(files.bootstrap, { force: true });
  const logFd = fs.openSync(files.log, 'a');
  const args = [...SERVER_NODE_FLAGS, entryScript, '-namespace', flags.namespace, '-address', flags.address];
  if (flags.publishBinary) args.push('-publish-binary', flags.publishBinary);
  if (flags.debug) args.push('-debug');
  args.push('serve');
  const child = spawn(process.execPath, args, {
    detached: true,
    cwd: '/',
    stdio: ['ignore', logFd, logFd, 'pipe'],
    env: process.env,
  });
  fs.closeSync(logFd);
  const ready = child.stdio[3]!;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new RuntimeError(`shim server did not start within ${SERVER_READY_TIMEOUT_MS} ms; see ${files.log}`)), SERVER_READY_TIMEOUT_MS);
      ready.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new RuntimeError(`shim server exited (${code ?? signal}) before it was ready: ${logTail(files.log)}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new RuntimeError(`cannot start shim server: ${err.message}`));
      });
    });
  } finally {
    ready.destroy();
    child.unref();
  }
}

function logTail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}
