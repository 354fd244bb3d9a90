// The long-lived shim server: a child subreaper serving containerd.task.v3.Task on a
// unix socket for every container of one namespace.
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { ServiceDefinition } from '@grpc/grpc-js';
import * as native from '../native';
import { EventPublisher } from '../events/event-publisher';
import { log, errorMessage, problemCount } from '../log/logger';
import { loadPackageDefinition } from '../proto/proto-root';
import { TaskService } from '../service/task-service';
import { bootstrapVersionFor, containerdVersion } from './containerd-version';
import { TtrpcServer } from '../ttrpc/ttrpc-server';
import { removeServerFiles, shimServerFiles, type ServerEndpoints } from './shim-socket';
import { sweepStaleScratch } from '../checkpoint/scratch-dir';
import { KsmBurst } from '../ksm/ksm-burst';
import { backgroundWorkDone } from '../service/background-work';

/** How long an idle server waits for a checkpoint's background work before it exits. */
const BACKGROUND_WORK_LIMIT_MS = 120_000;
/** An idle server lingers this long after its last container, so a `start` that just
 * found it alive is not left pointing at a socket that vanished. */
const IDLE_LINGER_MS = 2000;
const READY_FD = 3;

export async function serve(address: string, namespace: string): Promise<void> {
  const files = shimServerFiles(address, namespace);
  native.setChildSubreaper(true);
  process.on('uncaughtException', (err) => log.error('uncaught exception (server keeps running)', { error: err.stack ?? String(err) }));
  process.on('unhandledRejection', (err) => log.error('unhandled rejection (server keeps running)', { error: errorMessage(err) }));

  // Asked while the sockets are bound (only the bootstrap file needs the answer): `start`
  // waits for this server under a host-wide lock.
  const bootstrapVersion = containerdVersion(address).then(
    (v) => {
      const version = bootstrapVersionFor(v);
      log.info(`containerd ${v}: bootstrap version ${version}`);
      return version;
    },
    (err: unknown) => {
      log.warn('cannot ask containerd for its version; assuming 1.x (bootstrap version 2)', { error: errorMessage(err) });
      return 2 as const;
    },
  );

  const events = new EventPublisher(address, namespace);
  const server = new grpc.Server();
  let ttrpc: TtrpcServer | undefined;
  let lingerTimer: NodeJS.Timeout | undefined;
  const exitIfIdle = (): void => {
    if (service.containerCount > 0) return;
    log.info('no containers left: shutting down');
    removeServerFiles(files, problemCount() > 0);
    void events.flush().then(() => {
      // A Create that reached us on an open connection meanwhile keeps us serving it (our
      // files are gone, so new containers of the namespace get a new server).
      if (service.containerCount > 0) {
        log.warn('a container arrived while shutting down: serving it');
        return;
      }
      server.forceShutdown();
      ttrpc?.close();
      events.close();
      // A checkpoint's indexing and page-cache file first (the next writer would redo them).
      void backgroundWorkDone(BACKGROUND_WORK_LIMIT_MS)
        .then((done) => {
          if (!done) log.warn(`exiting with background work still running after ${BACKGROUND_WORK_LIMIT_MS} ms`);
        })
        // A KSM burst of ours ends now: its timer would never fire.
        .then(() => KsmBurst.settle())
        .catch((err: unknown) => log.warn(`putting KSM settings back failed: ${errorMessage(err)}`))
        .finally(() => process.exit(0));
    });
  };
  const service = new TaskService(namespace, events, () => {
    clearTimeout(lingerTimer);
    lingerTimer = setTimeout(exitIfIdle, IDLE_LINGER_MS);
  });
  const definition = loadPackageDefinition()['containerd.task.v3.Task'] as unknown as ServiceDefinition;
  const handlers = service.handlers();
  server.addService(definition, handlers);
  // Over ttrpc containerd names the service by task API version: v2 (bootstrap 2), v3 (3).
  ttrpc = new TtrpcServer();
  ttrpc.addService('containerd.task.v2.Task', definition, handlers);
  ttrpc.addService('containerd.task.v3.Task', definition, handlers);
  await ttrpc.listen(files.ttrpcSocket);
  fs.rmSync(files.socket, { force: true });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${files.socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  const endpoints: ServerEndpoints = { version: await bootstrapVersion, grpc: files.socket, ttrpc: files.ttrpcSocket };
  fs.writeFileSync(files.bootstrap, JSON.stringify(endpoints));
  fs.writeFileSync(files.pid, String(process.pid));
  log.info(`serving ${namespace} on ${files.socket}`, { pid: process.pid });
  // A server killed mid-dump leaves CRIU's images in the store's scratch dir: sweep those.
  const swept = sweepStaleScratch();
  if (swept.length > 0) log.info(`removing ${swept.length} scratch dir(s) of servers that are gone`);
  // A server that died during a KSM burst left the host's settings raised: back, unless a live burst holds them.
  void KsmBurst.settle().catch((err: unknown) => log.warn(`settling KSM settings left by a dead server failed: ${errorMessage(err)}`));
  process.on('SIGTERM', () => {
    log.info('SIGTERM: exiting; containerd cleans up the containers it still knew through `delete`');
    removeServerFiles(files, problemCount() > 0);
    process.exit(0);
  });
  signalReady();
}

function signalReady(): void {
  try {
    fs.writeSync(READY_FD, 'ready\n');
    fs.closeSync(READY_FD);
  } catch {
    /* started by hand, not by `start` */
  }
}
