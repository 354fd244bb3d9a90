// A container's init process: created by `runc create` and started by `runc start`, or,
// when the container is created from a checkpoint, restored by `runc restore` at start.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NotFoundError, RuntimeError } from '../errors/shim-error';
import type { CheckpointArchive, ArchiveContext, LoadedImages } from '../checkpoint/checkpoint-archive';
import type { CheckpointRequest } from '../checkpoint/checkpoint-request';
import { criuFailureDetails } from '../checkpoint/criu-log';
import { removeInBackground } from '../checkpoint/scratch-dir';
import type { IoContext, StdioPaths } from '../io/process-io';
import { KsmBurst } from '../ksm/ksm-burst';
import { writeHeapRanges, type HeapRange } from '../map-restore/heap-ranges';
import { ResumeGate, armResumeGate } from '../map-restore/resume-gate';
import { collectWhenQuiet } from '../memory/idle-collection';
import type { KsmSettings } from '../ksm/ksm-spec';
import { errorMessage, log } from '../log/logger';
import type { RuncDriver } from '../runc/runc-driver';
import { ShimProcess } from './shim-process';

export interface InitOptions {
  noPivot: boolean;
  noNewKeyring: boolean;
}

/** Where a container created from a checkpoint comes from. */
export interface RestoreSource {
  checkpointDir: string;
  archive: CheckpointArchive;
  /** A private directory for CRIU's work files and any images made for the restore. */
  scratchDir: string;
  /** Map mode: the sharing domain's page-cache dir (mounted in the container). */
  pageCacheDir?: string;
  /** KSM for the restored processes: made mergeable, and scanning raised for a burst. */
  ksm?: KsmSettings;
  /** CRIU runs the resume gate's script for this bundle (installResumeGate). */
  resumeGate?: boolean;
}

export class InitProcess extends ShimProcess {
  private readonly pidFile: string;
  /** A restore's images being rebuilt, from Create on. */
  private loading: Promise<LoadedImages> | undefined;

  constructor(
    containerId: string,
    paths: StdioPaths,
    terminal: boolean,
    readonly bundle: string,
    private readonly runc: RuncDriver,
    ioContext: IoContext,
    private readonly options: InitOptions,
    private readonly restoreSource?: RestoreSource,
  ) {
    super(containerId, '', paths, terminal, ioContext, [], restoreSource ? 'created-checkpoint' : 'created');
    this.pidFile = path.join(bundle, 'init.pid');
  }

  private get archiveContext(): ArchiveContext {
    const pageCacheDir = this.restoreSource?.pageCacheDir;
    return { containerId: this.containerId, namespace: this.ioContext.namespace, ...(pageCacheDir ? { pageCacheDir } : {}) };
  }

  /** `runc create`; a container from a checkpoint has nothing to create until start. */
  async create(): Promise<number> {
    const source = this.restoreSource;
    if (source) {
      source.archive.prepare?.();
      // Rebuild the images now: containerd calls Start right after, which waits for them.
      // A failure surfaces at Start, as a failed restore.
      try {
        this.loading = source.archive.load(source.checkpointDir, source.scratchDir, this.archiveContext);
      } catch (err) {
        this.loading = Promise.reject(err as Error);
      }
      this.loading.catch(() => undefined); // awaited in start() or delete()
      return 0;
    }
    await this.launch(this.pidFile, (stdio, consoleSocket) =>
      this.runc.create(this.containerId, {
        bundle: this.bundle,
        pidFile: this.pidFile,
        consoleSocket,
        noPivot: this.options.noPivot,
        noNewKeyring: this.options.noNewKeyring,
        stdio,
      }),
    );
    return this.pid;
  }

  async start(): Promise<void> {
    const source = this.restoreSource;
    if (!source) {
      await this.runStart(() => this.runc.start(this.containerId));
      return;
    }
    await this.runStart(async () => {
      const workPath = path.join(source.scratchDir, 'work');
      fs.mkdirSync(workPath, { recursive: true });
      let gate: ResumeGate | undefined;
      let release: (() => void) | undefined;
      try {
        const loaded = await (this.loading ?? source.archive.load(source.checkpointDir, source.scratchDir, this.archiveContext));
        const { imagePath, beforeResume } = loaded;
        release = loaded.release;
        if (source.resumeGate === true) armResumeGate(this.bundle, beforeResume !== undefined);
        // Whether the pages have failed already (a gate that said "stop" is why CRIU aborted).
        let pagesFailure: Error | undefined;
        if (beforeResume !== undefined) {
          if (source.resumeGate === true) {
            // runc starts now; CRIU holds the restored tasks until the pages they map are in.
            const opened = (gate = ResumeGate.open(path.join(source.scratchDir, 'resume-gate.ack')));
            beforeResume.then(
              () => opened.release(true),
              (err: unknown) => {
                pagesFailure = err as Error;
                opened.release(false);
              },
            );
          } else {
            await beforeResume;
          }
        }
        await this.launch(this.pidFile, (stdio, consoleSocket) =>
          this.runc.restore(this.containerId, {
            bundle: this.bundle,
            imagePath,
            workPath,
            pidFile: this.pidFile,
            consoleSocket,
            noPivot: this.options.noPivot,
            stdio,
            mergeMemory: source.ksm !== undefined,
            ...(gate ? { env: gate.env } : {}),
          }).then(
            () => this.checkGateHeld(gate),
            (err: unknown) => {
              const criu = `${(err as Error).message}\n${criuFailureDetails(workPath, 'restore.log', this.bundle)}`;
              if (pagesFailure !== undefined) {
                throw new RuntimeError(`restore of ${this.containerId} from ${source.checkpointDir} failed before its processes resumed: ${pagesFailure.message}\n(runc: ${criu})`);
              }
              throw new RuntimeError(`restore of ${this.containerId} from ${source.checkpointDir} failed: ${criu}`);
            },
          ),
        );
      } finally {
        gate?.close();
        release?.();
        removeInBackground(source.scratchDir);
        collectWhenQuiet();
      }
      if (source.ksm) {
        const { burstMs } = source.ksm;
        // The restore has succeeded; a KSM that cannot be raised costs only the merging.
        void KsmBurst.shared()
          .raise(burstMs)
          .catch((err: unknown) => log.warn(`KSM burst for ${this.containerId} failed: ${errorMessage(err)}`));
      }
    });
  }

  /**
   * After runc restore succeeded with a gate: CRIU must have run the script, which then read
   * "go" (anything else would have failed the restore). A CRIU that skipped it may have let
   * the tasks run on pages not yet verified: the container is removed and the restore fails.
   */
  private async checkGateHeld(gate: ResumeGate | undefined): Promise<void> {
    if (gate === undefined || gate.held) return;
    await this.runc.delete(this.containerId, true).catch((e: unknown) => log.warn(`could not remove ${this.containerId}: ${errorMessage(e)}`));
    throw new RuntimeError(
      `restore of ${this.containerId}: CRIU did not run the resume gate's action script at post-restore, so its processes may have run before their pages were verified; they were removed (is ${this.bundle}/pageshare-criu.conf given to CRIU through org.criu.config?)`,
    );
  }

  /** Dumps the container with CRIU into `checkpointDir` through `archive`. On failure the
   * container runs on as before and the error carries the tail of CRIU's log. */
  async checkpoint(
    checkpointDir: string,
    request: CheckpointRequest,
    archive: CheckpointArchive,
    scratchDir: string,
    heapRanges: ReadonlyMap<number, readonly HeapRange[]> = new Map(),
  ): Promise<void> {
    const imagePath = path.join(scratchDir, 'images');
    const workPath = request.workPath || path.join(scratchDir, 'work');
    let settled: Promise<void> | undefined;
    try {
      this.lifecycle.check('checkpoint');
      fs.mkdirSync(imagePath, { recursive: true });
      fs.mkdirSync(workPath, { recursive: true });
      archive.prepare?.();
      // With the images (CRIU leaves files of other names alone), so a map-mode restore of this
      // dump can map the reported heaps.
      writeHeapRanges(imagePath, heapRanges);
      // The archive may take CRIU's images as they are written: handed to store() below, or dropped.
      const followed = archive.followDump?.(imagePath, this.archiveContext);
      try {
        await this.runc.checkpoint(this.containerId, {
          imagePath,
          workPath,
          leaveRunning: !request.exit,
          tcpEstablished: request.openTcp,
          externalUnixSockets: request.externalUnixSockets,
          shellJob: request.terminal,
          fileLocks: request.fileLocks,
          emptyNamespaces: request.emptyNamespaces,
          cgroupsMode: request.cgroupsMode,
        });
      } catch (err) {
        await followed?.abandon().catch((e: unknown) => log.warn(`dropping what was taken of ${this.containerId}'s failed dump: ${errorMessage(e)}`));
        throw new RuntimeError(`checkpoint of ${this.containerId} failed: ${(err as Error).message}\n${criuFailureDetails(workPath, 'dump.log', this.bundle)}`);
      }
      settled = (await archive.store(imagePath, checkpointDir, this.archiveContext, followed))?.settled;
    } finally {
      // Once the archive's background work no longer reads the images.
      void (settled ?? Promise.resolve())
        .catch(() => undefined)
        .finally(() => {
          removeInBackground(scratchDir);
          collectWhenQuiet();
        });
    }
  }

  async kill(signal: number, all: boolean): Promise<void> {
    this.lifecycle.check('kill');
    try {
      await this.runc.kill(this.containerId, signal, all);
    } catch (err) {
      if (err instanceof RuntimeError && /not running|container does not exist|process already finished/i.test(err.message)) {
        throw new NotFoundError(`container ${this.containerId}: process already finished`);
      }
      throw err;
    }
  }

  async pause(): Promise<void> {
    this.lifecycle.check('pause');
    await this.runc.pause(this.containerId);
    this.lifecycle.apply('pause');
  }

  async resume(): Promise<void> {
    this.lifecycle.check('resume');
    await this.runc.resume(this.containerId);
    this.lifecycle.apply('resume');
  }

  async update(resourcesJson: string): Promise<void> {
    this.lifecycle.check('update');
    await this.runc.update(this.containerId, resourcesJson);
  }

  checkExec(): void {
    this.lifecycle.check('exec');
  }

  /** Removes the runc container. A created (never started) container is killed first. */
  async delete(): Promise<void> {
    this.lifecycle.check('delete');
    if (this.lifecycle.state === 'created-checkpoint') {
      // Never restored: runc knows nothing of it; only the scratch space is ours.
      (await this.loading?.catch(() => undefined))?.release?.();
      if (this.restoreSource) fs.rmSync(this.restoreSource.scratchDir, { recursive: true, force: true });
      this.finishDelete();
      return;
    }
    await this.runc.delete(this.containerId, this.lifecycle.state === 'created');
    await this.drainOutput(2_000);
    // A killed created process is still reaped by its watcher; its exit is not announced.
    this.finishDelete();
  }
}
