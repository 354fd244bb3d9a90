// A container owns its init process, its exec processes, its rootfs mount and its runc
// driver. The task service only finds containers and calls them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CheckpointArchive } from '../checkpoint/checkpoint-archive';
import { parseCheckpointRequest } from '../checkpoint/checkpoint-request';
import { giveReplicaItsCgroup } from '../checkpoint/replica-cgroup';
import { makeScratchDir } from '../checkpoint/scratch-dir';
import { ksmSettingsOf } from '../ksm/ksm-spec';
import type { HeapRange } from '../map-restore/heap-ranges';
import { prepareMapRestore } from '../map-restore/map-spec';
import { namespacePid } from '../proc/proc-info';
import { NODE_AGENT_FILE, agentsDir, prepareGcHook, type GcSettings } from '../gc/gc-spec';
import { defaultStoreRoot } from '../store/store-layout';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors/shim-error';
import type { EventSink } from '../events/event-publisher';
import { log, errorMessage } from '../log/logger';
import { watchOom } from '../oom/oom-watcher';
import { parseRuntimeOptions, runcDriverFor, saveRuntimeOptions, type RuntimeOptions } from '../options/runtime-options';
import { ExecProcess } from '../process/exec-process';
import { InitProcess } from '../process/init-process';
import type { ShimProcess } from '../process/shim-process';
import { isEmptyAny, packAny, unpackJsonAny, type Any } from '../proto/any';
import { toTimestamp, type CreateTaskRequest, type DeleteResponse, type ExecProcessRequest, type ProcessInfo } from '../proto/messages';
import { mountRootfs, unmountRootfs } from '../rootfs/rootfs';
import type { RuncDriver } from '../runc/runc-driver';
import { readBundleSpec, type OciProcess } from '../spec/oci-spec';
import { CgroupV1, cgroupPathsOf, type CgroupV1Freezer } from '../stats/cgroup-v1';

type GcHook = GcSettings & { readonly runDir: string };

/** A freezer that takes longer than this has a stuck task; runc pause is tried instead. */
const FREEZE_TIMEOUT_MS = 2000;

export class Container {
  private readonly execs = new Map<string, ExecProcess>();
  private stopOomWatch: () => void = () => undefined;
  private cgroup: CgroupV1 | undefined;

  private constructor(
    readonly id: string,
    readonly bundle: string,
    readonly namespace: string,
    readonly init: InitProcess,
    private readonly runc: RuncDriver,
    private readonly events: EventSink,
    /** The GC hook's settings, for a container that opted in. */
    private readonly gc?: GcHook,
  ) {
    this.announceExit(this.init);
  }

  static async create(request: CreateTaskRequest, namespace: string, events: EventSink): Promise<Container> {
    const bundle = request.bundle;
    if (!path.isAbsolute(bundle) || !fs.existsSync(path.join(bundle, 'config.json'))) {
      throw new InvalidArgumentError(`bundle ${bundle} has no config.json`);
    }
    if (request.checkpoint && !fs.existsSync(request.checkpoint)) {
      throw new InvalidArgumentError(`checkpoint ${request.checkpoint} for ${request.id} does not exist`);
    }
    const options: RuntimeOptions = parseRuntimeOptions(request.options, namespace);
    saveRuntimeOptions(bundle, options);
    fs.mkdirSync(options.runcRoot, { recursive: true, mode: 0o711 });
    const runc = runcDriverFor(bundle, options);
    const paths = { stdin: request.stdin, stdout: request.stdout, stderr: request.stderr };
    if (request.checkpoint) {
      const cgroup = giveReplicaItsCgroup(bundle, request.id);
      if (cgroup !== undefined) log.info(`restore of ${request.id}: its own cgroup ${cgroup} (the checkpoint named another container's)`);
    }
    // Before runc sees the spec (a restore's spec is the checkpointed one: it keeps the hook).
    const gc = prepareGcHook(bundle, namespace, request.id);
    const mapRestore = prepareMapRestore(bundle, defaultStoreRoot(), namespace, Boolean(request.checkpoint));
    const ksm = request.checkpoint ? ksmSettingsOf(readBundleSpec(bundle)) : undefined;
    const restoreSource = request.checkpoint
      ? {
          checkpointDir: request.checkpoint,
          archive: await Container.archive(),
          scratchDir: makeScratchDir('restore', request.id),
          ...(mapRestore ? { pageCacheDir: mapRestore.domainDir, resumeGate: mapRestore.resumeGate } : {}),
          ...(ksm ? { ksm } : {}),
        }
      : undefined;
    const init = new InitProcess(
      request.id,
      paths,
      request.terminal,
      bundle,
      runc,
      { containerId: request.id, namespace },
      { noPivot: options.noPivot, noNewKeyring: options.noNewKeyring },
      restoreSource,
    );
    try {
      await mountRootfs(bundle, request.rootfs);
      await init.create();
    } catch (err) {
      // Leave nothing behind: runc's state (a retry would meet "exists"), the mount, scratch.
      await runc.delete(request.id, true).catch(() => undefined);
      await unmountRootfs(bundle);
      if (restoreSource) fs.rmSync(restoreSource.scratchDir, { recursive: true, force: true });
      if (gc) fs.rmSync(gc.runDir, { recursive: true, force: true });
      throw err;
    }
    const container = new Container(request.id, bundle, namespace, init, runc, events, gc);
    if (init.pid) container.watchCgroup();
    return container;
  }

  private static archiveInstance: Promise<CheckpointArchive> | undefined;

  /** How checkpoints are kept: memory pages in the host's page store. Loaded on first use:
   * the store and CRIU modules (SQLite among them) cost a server that never checkpoints
   * several MiB. */
  static archive(): Promise<CheckpointArchive> {
    // The promise, not the instance: restores that start at once share one archive (and its
    // in-process guard against two writers of one page-cache file).
    Container.archiveInstance ??= import('../checkpoint/page-store-archive').then(({ PageStoreArchive }) => new PageStoreArchive(() => defaultStoreRoot()));
    return Container.archiveInstance;
  }

  /** Stats and OOM notifications need the init's cgroup, known once it has a pid. */
  private watchCgroup(): void {
    this.cgroup = new CgroupV1(cgroupPathsOf(this.init.pid));
    this.stopOomWatch = watchOom(this.cgroup, () => this.events.publish('TaskOOM', { container_id: this.id }));
  }

  /** TaskExit for the init (id = container id) or an exec (id = exec id). */
  private announceExit(proc: ShimProcess): void {
    proc.onExit((exit) => {
      this.events.publish('TaskExit', {
        container_id: this.id,
        id: proc.eventId,
        pid: proc.pid,
        exit_status: exit.status,
        exited_at: toTimestamp(exit.exitedAt),
      });
    });
  }

  /** The init process for an empty exec id, else that exec process. */
  process(execId: string): ShimProcess & { kill(signal: number, all: boolean): unknown } {
    if (!execId) return this.init;
    const exec = this.execs.get(execId);
    if (!exec) throw new NotFoundError(`exec ${execId} not found in container ${this.id}`);
    return exec;
  }

  addExec(request: ExecProcessRequest): void {
    if (this.execs.has(request.exec_id)) throw new AlreadyExistsError(`exec ${request.exec_id} already exists in container ${this.id}`);
    this.init.checkExec();
    if (isEmptyAny(request.spec)) throw new InvalidArgumentError(`exec ${request.exec_id}: no process spec`);
    let spec: OciProcess;
    try {
      spec = unpackJsonAny<OciProcess>(request.spec as Any);
    } catch (err) {
      throw new InvalidArgumentError(`exec ${request.exec_id}: process spec is not valid JSON: ${errorMessage(err)}`);
    }
    if (!Array.isArray(spec.args) || spec.args.length === 0) throw new InvalidArgumentError(`exec ${request.exec_id}: process spec has no args`);
    const paths = { stdin: request.stdin, stdout: request.stdout, stderr: request.stderr };
    const exec = new ExecProcess(this.id, request.exec_id, paths, request.terminal, spec, this.bundle, this.runc, {
      containerId: this.id,
      namespace: this.namespace,
    });
    this.announceExit(exec);
    this.execs.set(request.exec_id, exec);
  }

  async start(execId: string): Promise<number> {
    if (!execId) {
      await this.init.start();
      if (!this.cgroup) this.watchCgroup();
      return this.init.pid;
    }
    const exec = this.process(execId) as ExecProcess;
    this.init.checkExec();
    return exec.start();
  }

  /** Deletes an exec process, or (empty exec id) the whole container. */
  async delete(execId: string): Promise<DeleteResponse> {
    const proc = this.process(execId);
    if (execId) {
      await (proc as ExecProcess).delete();
      this.execs.delete(execId);
    } else {
      await this.init.delete();
      this.stopOomWatch();
      if (this.gc) fs.rmSync(this.gc.runDir, { recursive: true, force: true });
      // Exec processes containerd never deleted (e.g. `exec --detach`) die with the init:
      // release their stdio, or a namespace's long-lived server leaks their fds.
      for (const exec of this.execs.values()) if (exec.lifecycle.state !== 'deleted') exec.releaseStdio();
      await unmountRootfs(this.bundle).catch((err) => log.warn('unmounting rootfs failed', { error: errorMessage(err) }));
    }
    return { pid: proc.pid, exit_status: proc.exit?.status ?? 0, exited_at: toTimestamp(proc.exit?.exitedAt) };
  }

  /** Dumps the container into `checkpointDir` (what containerd will tar). */
  async checkpoint(checkpointDir: string, options: Any | null): Promise<void> {
    if (!path.isAbsolute(checkpointDir)) throw new InvalidArgumentError(`checkpoint path "${checkpointDir}" must be absolute`);
    const request = parseCheckpointRequest(options);
    this.init.lifecycle.check('checkpoint');
    const heapRanges = this.gc ? await this.compactHeaps(this.gc) : new Map<number, readonly HeapRange[]>();
    await this.init.checkpoint(checkpointDir, request, await Container.archive(), makeScratchDir('dump', this.id), heapRanges);
  }

  /**
   * The GC hook: every Node.js / JVM process compacts its heap before the dump. containerd
   * has usually paused the container by now, and a frozen runtime collects nothing, so the
   * container runs again for at most the hook's timeout (an app may act meanwhile: after
   * containerd's rw-layer diff, before the dump), then is paused again. Never fails the
   * checkpoint: a missing, hung or broken agent is logged and the dump goes on. Returns the
   * heap ranges the runtimes reported, by the pid the dump's images will carry.
   */
  private async compactHeaps(gc: GcHook): Promise<Map<number, readonly HeapRange[]>> {
    const heapRanges = new Map<number, readonly HeapRange[]>();
    const paused = this.init.lifecycle.state === 'paused';
    const started = Date.now();
    const freezer = this.cgroup?.freezer();
    try {
      if (paused) await this.runc.resume(this.id);
      const pids = await this.runc.ps(this.id);
      const { compactBeforeDump } = await import('../gc/gc-before-dump');
      const outcomes = await compactBeforeDump(pids, {
        mode: gc.mode,
        timeoutMs: gc.timeoutMs,
        agentFile: path.join(agentsDir(), NODE_AGENT_FILE),
        gcDir: gc.runDir,
        ...(freezer ? { freezer } : {}),
      });
      // Frozen at once: every ms the app runs now, it allocates again (runc pause takes tens of ms).
      if (paused) await this.freezeAgain(freezer);
      // What the hook did at the last checkpoint, for operators (and tests): next to the acks.
      fs.writeFileSync(path.join(gc.runDir, 'last-gc.json'), JSON.stringify({ at: new Date().toISOString(), ms: Date.now() - started, outcomes }));
      const summary = outcomes.map((o) => `${o.runtime} pid ${o.pid} ${o.ok ? 'ok' : 'FAILED'} in ${o.ms} ms: ${o.detail}`);
      log.info(`gc before checkpoint of ${this.id}: ${outcomes.length} managed runtime(s) in ${Date.now() - started} ms${summary.length > 0 ? `; ${summary.join('; ')}` : ''}`);
      for (const o of outcomes) {
        const nsPid = o.heapRanges && o.heapRanges.length > 0 ? namespacePid(o.pid) : undefined;
        if (nsPid !== undefined && o.heapRanges) heapRanges.set(nsPid, o.heapRanges);
      }
    } catch (err) {
      log.warn(`gc before checkpoint of ${this.id} failed, dumping anyway: ${errorMessage(err)}`);
      // Frozen again whatever failed (freezing a frozen cgroup changes nothing).
      if (paused) await this.freezeAgain(freezer);
    }
    return heapRanges;
  }

  /** Back to the paused state containerd left the container in: the freezer directly, else runc. */
  private async freezeAgain(freezer: CgroupV1Freezer | undefined): Promise<void> {
    try {
      if (freezer) return await freezer.freeze(FREEZE_TIMEOUT_MS);
    } catch (err) {
      log.warn(`freezing ${this.id} through its cgroup failed, trying runc pause: ${errorMessage(err)}`);
    }
    await this.runc.pause(this.id).catch((err: unknown) => log.warn(`pausing ${this.id} again after its gc failed: ${errorMessage(err)}`));
  }

  async pids(): Promise<ProcessInfo[]> {
    const pids = await this.runc.ps(this.id);
    const execByPid = new Map<number, string>();
    for (const exec of this.execs.values()) if (exec.pid) execByPid.set(exec.pid, exec.execId);
    return pids.map((pid) => {
      const execId = execByPid.get(pid);
      return { pid, info: execId ? packAny('containerd.runc.v1.ProcessDetails', { exec_id: execId }) : null };
    });
  }

  stats(): Any {
    if (!this.cgroup) throw new FailedPreconditionError(`container ${this.id} has no cgroup yet`);
    return packAny('io.containerd.cgroups.v1.Metrics', this.cgroup.metrics());
  }

  async update(resources: Any | null): Promise<void> {
    if (isEmptyAny(resources)) throw new InvalidArgumentError(`update of ${this.id}: no resources given`);
    // containerd sends the OCI LinuxResources as JSON, which is what runc update reads.
    await this.init.update(Buffer.from(resources.value).toString('utf8'));
  }

}
