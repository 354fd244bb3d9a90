// Checkpoints whose memory lives in the shared page store: after a dump, every present page
// of every pages-*.img goes into the store (deduplicated, zero pages never stored) and the
// checkpoint directory containerd tars keeps a page manifest instead of the raw pages.
// Before a restore the pages files are rebuilt from the store, each page verified.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PagemapFile, listPagemaps } from '../criu/checkpoint-images';
import { PAGE_SIZE } from '../criu/page-size';
import { presentPageCount } from '../criu/pagemap';
import { log } from '../log/logger';
import { collectWhenQuiet } from '../memory/idle-collection';
import { PAGE_CACHE_MOUNT, pageCacheDir } from '../map-restore/map-spec';
import { applyImagesMapping, copyRanges, isSealedPageCacheFile, planImagesMapping, preparedOf, startPageCacheFile, type ImagesMapPlan, type MapRewrite, type PageCacheLayout } from '../map-restore/rewrite-images';
import { PREPARED_MAPPING_DIR, PreparedMappingError, applyPreparedMapping, prepareMapping, readPreparedMapping, type PreparedMapping } from '../map-restore/prepared-mapping';
import { InvalidArgumentError } from '../errors/shim-error';
import type { ByteCopy } from '../map-restore/map-plan';
import { dumpedMountpoints } from '../map-restore/dumped-mounts';
import { checkPageCacheFilesPresent, pageCacheFilesNamed, recordPageCacheRefs } from '../map-restore/page-cache-refs';
import { PAGE_MANIFEST_FILE, readManifestFileSync, writeManifestFile } from '../store/manifest-file';
import { listPageCache, pageCacheFileName } from '../store/page-cache-dir';
import type { ManifestPagesFile, PageManifest, PagedManifest, StoredManifest } from '../store/page-manifest';
import { namePagesOf, pagedManifestOf, storedNamesOf } from '../store/name-pages';
import type { IngestSession } from '../store/ingest-session';
import { PageHashPool } from '../store/page-hash-pool';
import { PageRange } from '../store/page-runs';
import { PageStore } from '../store/page-store';
import type { ArchiveContext, CheckpointArchive, FollowedDump, LoadedImages, StoredCheckpoint } from './checkpoint-archive';
import { DumpFollower, ingestPagesFile } from './pages-ingest';
import { FileLock } from '../store/file-lock';
import { trackBackgroundWork } from '../service/background-work';
import { descendsFrom, mappingKey, scanMappings } from '../proc/mapped-files';
import { mappedIdentityOf, removePageCacheFiles } from '../store/page-cache-gc';
import { shimServerPids } from '../bootstrap/shim-socket';

/**
 * Held by the process writing a page-cache file of a domain: `locks/page-cache-<domain>.lock`
 * in the store, never in the domain dir itself (containers read that dir, and could hold a
 * lock there). One per domain: writers of one domain take turns.
 */
function pageCacheWriterLock(storeRoot: string, domainDir: string): string {
  return path.join(storeRoot, 'locks', `page-cache-${path.basename(domainDir)}.lock`);
}
/**
 * Held shared by every map-mode restore of a domain from before it looks at a page-cache file
 * until its runc restore is over (CRIU opens the file by name meanwhile), and exclusively by
 * whoever removes a sealed file that is not garbage yet (supersedePreparedFiles).
 */
function pageCacheReadersLock(storeRoot: string, domainDir: string): string {
  return path.join(storeRoot, 'locks', `page-cache-${path.basename(domainDir)}.readers`);
}

/** Writers of other checkpoints of the domain go first; each takes ~0.5 s per 200 MiB here. */
const PAGE_CACHE_LOCK_TIMEOUT_MS = 10 * 60_000;

/** Takes one of a domain's locks (pageCacheWriterLock, pageCacheReadersLock), waiting its turn. */
function lockDomain(lockFile: string, exclusive: boolean): Promise<FileLock> {
  fs.mkdirSync(path.dirname(lockFile), { recursive: true });
  return FileLock.acquire(lockFile, { exclusive, timeoutMs: PAGE_CACHE_LOCK_TIMEOUT_MS, holder: `pid ${process.pid}` });
}

/** A page-cache file as a restore sees it. */
interface PageCacheFileJob {
  /** Whether this restore's call wrote it (rather than finding it sealed or being written). */
  readonly wrote: boolean;
  /** Sealed already when this restore looked: nothing to wait for. */
  readonly sealed: boolean;
  /** Settles once the file is under its name (CRIU may open it). */
  readonly placed: Promise<void>;
  /** Settles once the file is complete, verified and sealed. */
  readonly complete: Promise<void>;
}

/** A checkpoint's page-cache file in a domain dir, and where the restored tasks see it. */
function pageCacheFileOf(domainDir: string, checkpointId: string): { hostPath: string; pathInRestore: string } {
  return { hostPath: path.join(domainDir, pageCacheFileName(checkpointId)), pathInRestore: pathInRestoreOf(checkpointId) };
}

function pathInRestoreOf(checkpointId: string): string {
  return `${PAGE_CACHE_MOUNT}/${pageCacheFileName(checkpointId)}`;
}

/** The checkpoint's prepared mapping; one that does not check out is set aside (logged): a restore plans itself. */
function readPreparedMappingOf(checkpointDir: string): PreparedMapping | undefined {
  try {
    return readPreparedMapping(checkpointDir);
  } catch (err) {
    log.warn(`${err instanceof PreparedMappingError ? err.message : `the prepared mapping in ${checkpointDir} is unreadable: ${(err as Error).message}`}; the restore plans the mapping itself`);
    return undefined;
  }
}

/** Applies a prepared mapping, or undefined (logged) when it does not fit these images. */
function appliedPreparedMapping(imageDir: string, prepared: PreparedMapping): ReturnType<typeof applyPreparedMapping> | undefined {
  try {
    return applyPreparedMapping(imageDir, prepared);
  } catch (err) {
    if (!(err instanceof PreparedMappingError)) throw err;
    log.warn(`${err.message}; the restore plans the mapping itself`);
    return undefined;
  }
}

/** The dumped pages' byte ranges of a plan as page ranges of the pages file. */
function pageRangesOf(copies: readonly ByteCopy[]): PageRange[] {
  return copies.map((c) => ({ first: c.from / PAGE_SIZE, count: c.length / PAGE_SIZE }));
}

export class PageStoreArchive implements CheckpointArchive {
  /** `root` is read at each use: PAGESHARE_ROOT may differ between callers in tests. */
  constructor(
    private readonly root: () => string,
    private readonly hashPool: PageHashPool = PageHashPool.shared(),
  ) {}

  /** Start the hashing workers while CRIU runs. */
  prepare(): void {
    this.hashPool.warm();
  }

  /** Follows the dump's first pages file into the store while CRIU writes it (pages-ingest.ts). */
  followDump(imageDir: string, context: ArchiveContext): FollowedDump {
    return new DumpFollower(this.root(), imageDir, context, this.hashPool);
  }

  async store(imageDir: string, checkpointDir: string, context: ArchiveContext, followedDump?: FollowedDump): Promise<StoredCheckpoint | void> {
    let followed = followedDump instanceof DumpFollower ? await followedDump.stop() : undefined;
    if (followedDump !== undefined && !(followedDump instanceof DumpFollower)) await followedDump.abandon();
    let pagemaps: PagemapFile[];
    try {
      pagemaps = await listPagemaps(imageDir);
    } catch (err) {
      await followed?.abandon();
      throw err;
    }
    // What was followed counts only if it is the file the manifest lists first.
    if (followed !== undefined && pagemaps[0]?.pagesPath !== followed.pagesPath) {
      await followed.abandon();
      followed = undefined;
    }
    const expectedPages = pagemaps.reduce((n, f) => n + presentPageCount(f.pagemap), 0);
    const pagesFiles = new Set(pagemaps.map((f) => path.basename(f.pagesPath)));
    const started = Date.now();
    const store = followed?.store ?? PageStore.open(this.root());
    let publishing = false;
    let settled: Promise<void> | undefined;
    try {
      let session: IngestSession;
      try {
        session = followed?.session ?? (await store.beginIngest({ checkpointId: randomUUID(), ...context, expectedPages }));
      } catch (err) {
        await followed?.abandon();
        throw err;
      }
      let files: ManifestPagesFile[];
      let paged: PagedManifest;
      // A map-mode restore's plan and image edits, made meanwhile (prepared-mapping.ts).
      const preparing = this.prepareMapping(imageDir, session.checkpointId);
      try {
        files = [];
        for (const [i, pagemap] of pagemaps.entries()) {
          const runs = i === 0 && followed !== undefined ? await followed.complete(pagemap) : await ingestPagesFile(session, pagemap, this.hashPool);
          files.push({ name: path.basename(pagemap.pagesPath), runs, locations: session.takeLocations() });
        }
        // The names go to the store too, as pages (name-pages.ts): unchanged ones are shared.
        const manifest = { storeId: store.storeId, checkpointId: session.checkpointId, files };
        const namePageNames = session.addDescriptionPages(namePagesOf(storedNamesOf(manifest)));
        session.takeLocations(); // a restore looks name pages up by name
        paged = pagedManifestOf(manifest, namePageNames);
        await session.makeDurable();
        // A replica restored in map mode depends on its page-cache file(s): recorded before
        // the checkpoint exists, so gc never sees the checkpoint without its markers.
        const namedFiles = await pageCacheFilesNamed(imageDir);
        if (namedFiles.length > 0) await recordPageCacheRefs(pageCacheDir(this.root(), context.namespace), namedFiles, session.checkpointId);
        await preparing;
        // The pages are durable in the store (and its pending record); only now may a manifest name them.
        fs.mkdirSync(checkpointDir, { recursive: true });
        for (const name of fs.readdirSync(imageDir)) {
          if (!pagesFiles.has(name)) fs.cpSync(path.join(imageDir, name), path.join(checkpointDir, name), { recursive: true });
        }
        await writeManifestFile(checkpointDir, paged);
      } catch (err) {
        await preparing;
        if (followed !== undefined) await followed.abandon();
        else session.abort();
        throw err;
      }
      const durableAt = Date.now();
      const durableMs = durableAt - started;
      const plan = await preparing;
      const checkpointId = session.checkpointId;
      // Indexing (a B-tree insert per new page) happens after the call returns, so that
      // containerd's pause does not wait for it; a restore of this checkpoint waits for it
      // (awaitIndexed), and if this process dies first the next writer does it.
      publishing = true;
      // After this call's answer has gone out.
      const indexed = new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => session.publish({ inSlices: true }))
        .then(() => log.info(`checkpoint ${checkpointId} of ${context.containerId}: ${session.pageCount} pages, ${session.newPageCount} new in the store, durable in ${durableMs} ms, indexed in ${Date.now() - started} ms`))
        .catch((err: unknown) => log.warn(`checkpoint ${checkpointId}: indexing failed, left to the store's next writer: ${(err as Error).message}`))
        .finally(() => {
          store.close();
          collectWhenQuiet(); // the indexing's garbage too
        });
      // Then the page-cache file a map-mode restore of this checkpoint maps, written from the
      // dump, so that the first restore finds it sealed; after the indexing, not beside it: the
      // container resumes and containerd finishes its work meanwhile (2 cores here).
      if (plan !== undefined) settled = indexed.then(() => this.preparePageCacheFile(plan, context, checkpointId, durableAt));
      trackBackgroundWork(settled ?? indexed);
    } finally {
      if (!publishing) store.close();
    }
    return settled === undefined ? undefined : { settled };
  }

  /** prepareMapping, never failing the checkpoint: a restore plans what is not prepared. */
  private async prepareMapping(imageDir: string, checkpointId: string): Promise<ImagesMapPlan | undefined> {
    try {
      return await prepareMapping(imageDir, checkpointId, pathInRestoreOf(checkpointId));
    } catch (err) {
      fs.rmSync(path.join(imageDir, PREPARED_MAPPING_DIR), { recursive: true, force: true });
      log.warn(`checkpoint ${checkpointId}: preparing its map-mode restore failed, a restore will plan it: ${(err as Error).message}`);
      return undefined;
    }
  }

  /**
   * After a checkpoint: its page-cache file in the namespace's domain, copied from the dump
   * (the bytes its page names were computed from) and sealed, then the files earlier
   * checkpoints of the container left there superseded. Never fails the checkpoint: a restore
   * writes what is not there.
   */
  private async preparePageCacheFile(plan: ImagesMapPlan, context: ArchiveContext, checkpointId: string, preparedAt: number): Promise<void> {
    const started = Date.now();
    const domainDir = pageCacheDir(this.root(), context.namespace);
    const hostPath = pageCacheFileOf(domainDir, checkpointId).hostPath;
    try {
      fs.mkdirSync(domainDir, { recursive: true, mode: 0o755 });
      const lock = await lockDomain(pageCacheWriterLock(this.root(), domainDir), true);
      try {
        if (!isSealedPageCacheFile(hostPath, plan)) {
          const writing = await startPageCacheFile(hostPath, plan, (fd, task) => copyRanges(task.pagesPath, fd, task.plan.toFile, task.fileBase), { preparedFor: context.containerId, preparedAt });
          await writing.complete;
        }
      } finally {
        lock.release();
      }
      const superseded = this.supersedePreparedFiles(domainDir, context.containerId, preparedAt);
      log.info(`checkpoint ${checkpointId} of ${context.containerId}: page-cache file ${path.basename(hostPath)} written in ${Date.now() - started} ms${superseded > 0 ? `, ${superseded} earlier one(s) of the container removed` : ''}`);
    } catch (err) {
      log.warn(`checkpoint ${checkpointId}: its page-cache file was not written, a restore will write it: ${(err as Error).message}`);
    }
  }

  /**
   * Removes the page-cache files earlier checkpoints of the container prepared in the domain
   * (before `preparedAt`), unless a checkpoint depends on one (refs), a process maps one
   * (a replica: its next dump would find the file gone), or that cannot be told (a process
   * under a shim server whose mappings are unreadable), or a restore is reading the domain
   * (it holds the readers' lock shared: it may be about to map one). Returns how many went.
   */
  private supersedePreparedFiles(domainDir: string, containerId: string, preparedAt: number): number {
    const readers = FileLock.tryAcquire(pageCacheReadersLock(this.root(), domainDir), { exclusive: true, holder: `pid ${process.pid}` });
    if (readers === undefined) return 0;
    try {
      const domain = path.basename(domainDir);
      const candidates = listPageCache(this.root()).files.flatMap((f) => {
        if (f.namespace !== domain || !f.hasPages) return [];
        // A later checkpoint depends on it.
        if (f.hasRefs && fs.readdirSync(f.refsDir).length > 0) return [];
        const prepared = preparedOf(f.pagesFile);
        if (prepared === undefined || prepared.for !== containerId || prepared.at >= preparedAt) return [];
        const identity = mappedIdentityOf(f.pagesFile);
        return identity === undefined ? [] : [{ files: f, identity }];
      });
      if (candidates.length === 0) return 0;
      const scan = scanMappings(candidates.map((c) => c.identity));
      const servers = new Set(shimServerPids());
      if (scan.unreadable.some((p) => descendsFrom(p.pid, servers))) return 0;
      const unmapped = candidates.filter((c) => !scan.mappers.has(mappingKey(c.identity)));
      for (const { files } of unmapped) removePageCacheFiles(files);
      return unmapped.length;
    } finally {
      readers.release();
    }
  }

  load(checkpointDir: string, scratchDir: string, context: ArchiveContext): Promise<LoadedImages> {
    const manifestPath = path.join(checkpointDir, PAGE_MANIFEST_FILE);
    // A checkpoint with its pages inline (e.g. made by the runc shim) restores as it is.
    if (!fs.existsSync(manifestPath)) return Promise.resolve({ imagePath: checkpointDir });
    // Before the first await: what containerd extracted is read while the call that started
    // this (Create) is still running, whatever containerd does with the dir afterwards.
    const manifest = readManifestFileSync(manifestPath);
    const imageDir = path.join(scratchDir, 'images');
    fs.mkdirSync(imageDir, { recursive: true });
    const prepared = context.pageCacheDir !== undefined ? readPreparedMappingOf(checkpointDir) : undefined;
    for (const entry of fs.readdirSync(checkpointDir, { withFileTypes: true })) {
      if (entry.name === PAGE_MANIFEST_FILE || entry.name === PREPARED_MAPPING_DIR) continue;
      const from = path.join(checkpointDir, entry.name);
      // CRIU writes regular files; a link from a crafted tar would have the shim write through it.
      const refuseLinks = (file: string): boolean => {
        if (fs.lstatSync(file).isSymbolicLink()) throw new InvalidArgumentError(`checkpoint ${manifest.checkpointId}: ${path.relative(checkpointDir, file)} is a symbolic link; a checkpoint holds none`);
        return true;
      };
      refuseLinks(from);
      if (entry.isFile()) fs.copyFileSync(from, path.join(imageDir, entry.name));
      else fs.cpSync(from, path.join(imageDir, entry.name), { recursive: true, filter: refuseLinks });
    }
    return (async () => {
      const namedFiles = await pageCacheFilesNamed(imageDir);
      // Before CRIU, which would only say it cannot open a file.
      if (namedFiles.length > 0) checkPageCacheFilesPresent(pageCacheDir(this.root(), context.namespace), namedFiles, manifest.checkpointId);
      const domainDir = context.pageCacheDir;
      if (domainDir === undefined) return { imagePath: await this.rebuildPages(manifest, imageDir) };
      // Shared with other restores; keeps a superseding checkpoint from removing a sealed file
      // this restore is about to have CRIU open by name (supersedePreparedFiles).
      const readers = await lockDomain(pageCacheReadersLock(this.root(), domainDir), false);
      try {
        return { ...(await this.rebuildForMapping(manifest, imageDir, domainDir, context.containerId, prepared)), release: () => readers.release() };
      } catch (err) {
        readers.release();
        throw err;
      }
    })();
  }

  /**
   * Map mode: the images are planned (mm and pagemap images suffice) and rewritten to map
   * the checkpoint's page-cache file first, then only the pages that stay private are rebuilt
   * into the pages files. That file is written from the store unless a sealed
   * one is there already; its writing goes on after this resolves (beforeResume), while CRIU
   * restores. A replica restored after the first reads no mapped page.
   */
  private async rebuildForMapping(stored: StoredManifest, imageDir: string, pageCacheDir: string, containerId: string, prepared: PreparedMapping | undefined): Promise<LoadedImages> {
    const started = Date.now();
    const laps: string[] = [];
    let lapStart = started;
    const lap = (what: string): void => {
      const now = Date.now();
      laps.push(`${what} ${now - lapStart}`);
      lapStart = now;
    };
    // One page-cache file per checkpoint and domain, shared by every replica restored from it.
    const cache = pageCacheFileOf(pageCacheDir, stored.checkpointId);
    const name = path.basename(cache.hostPath);
    let plan: PageCacheLayout;
    let result: MapRewrite;
    const fits = prepared !== undefined && prepared.checkpointId === stored.checkpointId && prepared.pathInRestore === cache.pathInRestore;
    if (prepared !== undefined && !fits) log.warn(`checkpoint ${stored.checkpointId}: its prepared mapping names checkpoint ${prepared.checkpointId} (${prepared.pathInRestore}); planned here instead`);
    const applied = fits ? appliedPreparedMapping(imageDir, prepared) : undefined;
    if (applied !== undefined) {
      ({ layout: plan, rewrite: result } = applied);
      lap('prepared images');
    } else {
      if (!(await dumpedMountpoints(imageDir)).includes(PAGE_CACHE_MOUNT)) {
        log.info(`checkpoint ${stored.checkpointId} for ${containerId}: dumped without ${PAGE_CACHE_MOUNT}, restored by copying`);
        return { imagePath: await this.rebuildPages(stored, imageDir) };
      }
      const full = await planImagesMapping(imageDir);
      if (full.tasks.length === 0) return { imagePath: await this.rebuildPages(stored, imageDir) };
      lap('plan');
      // The images first, alone: they are small, and CRIU needs them. Once the pages' jobs
      // run, this thread and libuv's threadpool are busy with them, and the images' few reads
      // and writes would queue behind ~8 MiB page writes (measured: 35-150 ms then, ~20 ms alone).
      result = await applyImagesMapping(imageDir, full, cache);
      plan = full;
      lap('images');
    }
    const { store, manifest } = await this.openForRestore(stored);
    lap('store');
    let file: PageCacheFileJob | undefined;
    try {
      // Both at once, so the hash workers and the disk stay busy: the page-cache file (unless
      // sealed already) and the pages that stay private. CRIU needs the latter and the file
      // under its name; the file's pages only once the tasks resume.
      const planned = new Map(plan.tasks.map((task) => [path.basename(task.pagesPath), task]));
      const jobStart = Date.now();
      const timed = <T>(what: string, job: Promise<T>): Promise<T> => job.finally(() => laps.push(`(${what} ${Date.now() - jobStart})`));
      const jobs: [Promise<PageCacheFileJob>, Promise<unknown>] = [
        this.ensurePageCacheFile(store, manifest, plan, cache.hostPath),
        timed(
          'private pages',
          Promise.all(
            manifest.files.map((f) => {
              const task = planned.get(f.name);
              const selection = task ? { ranges: pageRangesOf(task.plan.toPages) } : undefined;
              return store.writeManifestPages(manifest, f.name, path.join(imageDir, f.name), this.hashPool, selection);
            }),
          ),
        ),
      ];
      const settled = await Promise.allSettled(jobs);
      if (settled[0].status === 'fulfilled') file = settled[0].value;
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        // Whatever is still writing the file stops being our business only once it settles.
        await file?.complete.catch(() => undefined);
        throw failed.reason;
      }
      lap('pages');
    } catch (err) {
      store.close();
      throw err;
    }
    const fileJob = file as PageCacheFileJob;
    const summary = (fileState: string): string =>
      `checkpoint ${manifest.checkpointId} for ${containerId}: map mode, ${result.mappings} mappings of ${name} (${result.mappedPages} pages, file ${fileState}), ${result.keptPages} pages rebuilt`;
    if (fileJob.sealed) {
      store.close();
      log.info(`${summary('reused')}, in ${Date.now() - started} ms (${laps.join(', ')})`);
      return { imagePath: imageDir };
    }
    const beforeResume = fileJob.complete.finally(() => store.close());
    beforeResume.then(
      () => log.info(`${summary(fileJob.wrote ? 'written' : 'written by another restore')}, in ${Date.now() - started} ms (${laps.join(', ')}, file ready ${Date.now() - lapStart} ms later)`),
      () => undefined, // the restore fails with it
    );
    return { imagePath: imageDir, beforeResume };
  }

  /** Page-cache files being written by this process: replicas restored at once wait for one writer. */
  private readonly writing = new Map<string, PageCacheFileJob>();

  /**
   * Makes sure hostPath is (or is becoming) the sealed page-cache file of the plan: resolves
   * once the file is under its name; its `complete` settles once it is sealed. One writer per
   * domain at a time across processes (pageCacheWriterLock), one per file in this one.
   */
  private ensurePageCacheFile(store: PageStore, manifest: PageManifest, plan: PageCacheLayout, hostPath: string): Promise<PageCacheFileJob> {
    const pending = this.writing.get(hostPath);
    if (pending !== undefined) return pending.placed.then(() => ({ wrote: false, sealed: pending.sealed, placed: pending.placed, complete: pending.complete }));
    if (isSealedPageCacheFile(hostPath, plan)) return Promise.resolve({ wrote: false, sealed: true, placed: Promise.resolve(), complete: Promise.resolve() });
    // Settled once the lock is held: whether the file was sealed by then (another process wrote it).
    let sealedMeanwhile = false;
    let placedResolve!: () => void;
    let placedReject!: (err: unknown) => void;
    const placed = new Promise<void>((resolve, reject) => {
      placedResolve = resolve;
      placedReject = reject;
    });
    const complete = (async () => {
      const lock = await lockDomain(pageCacheWriterLock(this.root(), path.dirname(hostPath)), true);
      try {
        // Another process may have written it meanwhile.
        if (isSealedPageCacheFile(hostPath, plan)) {
          sealedMeanwhile = true;
          placedResolve();
          return;
        }
        const writing = await startPageCacheFile(hostPath, plan, (fd, task) =>
          store.writeManifestPages(manifest, path.basename(task.pagesPath), fd, this.hashPool, {
            ranges: pageRangesOf(task.plan.toFile),
            segments: task.plan.toFile.map((c) => ({ pages: c.length / PAGE_SIZE, position: task.fileBase + c.to })),
            // CRIU waits for the private pages, the restored tasks only later for this.
            priority: 'background',
          }),
        );
        placedResolve();
        await writing.complete;
      } catch (err) {
        placedReject(err);
        throw err;
      } finally {
        lock.release();
      }
    })();
    complete.catch(() => undefined); // awaited by the restores; this only marks it handled meanwhile
    placed.catch(() => undefined);
    const writing: PageCacheFileJob = {
      get wrote() {
        return !sealedMeanwhile;
      },
      get sealed() {
        return sealedMeanwhile;
      },
      placed,
      complete,
    };
    this.writing.set(hostPath, writing);
    void complete.catch(() => undefined).finally(() => this.writing.delete(hostPath));
    return placed.then(() => writing);
  }

  /**
   * The store, once it has indexed the checkpoint, and the checkpoint's manifest with every
   * page name (name pages read and verified); the store is closed again if that fails.
   */
  private async openForRestore(stored: StoredManifest): Promise<{ store: PageStore; manifest: PageManifest }> {
    const store = PageStore.open(this.root());
    try {
      await store.awaitIndexed(stored.checkpointId);
      return { store, manifest: store.resolveManifest(stored) };
    } catch (err) {
      store.close();
      throw err;
    }
  }

  private async rebuildPages(stored: StoredManifest, imageDir: string): Promise<string> {
    const started = Date.now();
    const { store, manifest } = await this.openForRestore(stored);
    try {
      for (const file of manifest.files) {
        await store.writeManifestPages(manifest, file.name, path.join(imageDir, file.name), this.hashPool);
      }
    } finally {
      store.close();
    }
    log.info(`checkpoint ${manifest.checkpointId}: pages rebuilt from the store in ${Date.now() - started} ms`);
    return imageDir;
  }
}
