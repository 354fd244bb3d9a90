// Between CRIU's image directory and the checkpoint directory containerd tars (and later
// extracts for a restore). The page-store archive keeps memory pages in the shared store
// and a manifest in their place.

export interface ArchiveContext {
  containerId: string;
  namespace: string;
  /** A restore in map mode: the host dir of the container's sharing domain (see map-restore/). */
  pageCacheDir?: string;
}

export interface CheckpointArchive {
  /** Called before CRIU runs (a dump, or a restore's Create): start what store()/load() need. */
  prepare?(): void;
  /**
   * Called as CRIU starts dumping into `imageDir`: may start taking the images as CRIU writes
   * them. What it returns goes to store() after a dump that succeeded, and is abandoned after
   * one that failed.
   */
  followDump?(imageDir: string, context: ArchiveContext): FollowedDump;
  /**
   * After a dump into `imageDir`, writes what containerd will keep into `checkpointDir`.
   * Work that goes on reading `imageDir` after it resolves is in `settled`.
   */
  store(imageDir: string, checkpointDir: string, context: ArchiveContext, followed?: FollowedDump): Promise<StoredCheckpoint | void>;
  /** Before a restore: an image directory CRIU can read, made from `checkpointDir`
   * (may be `checkpointDir` itself). `scratchDir` is private and removed afterwards. */
  load(checkpointDir: string, scratchDir: string, context: ArchiveContext): Promise<LoadedImages>;
}

export interface StoredCheckpoint {
  /** Settles once nothing reads the dump's images any more (they may be removed then). */
  readonly settled: Promise<void>;
}

/** Work an archive started during a dump (followDump). */
export interface FollowedDump {
  /** The dump failed: drop what was taken. Idempotent. */
  abandon(): Promise<void>;
}

export interface LoadedImages {
  /** What CRIU reads: complete once load() resolves. */
  readonly imagePath: string;
  /**
   * Work CRIU does not read but the restored tasks do (the page-cache file they map): settles
   * once it is complete and verified. The tasks must not resume before it resolves, and must
   * not resume at all if it rejects (with the error the restore fails with).
   */
  readonly beforeResume?: Promise<void>;
  /** Called once the restore is over (its tasks run, or it failed): what load() held goes. */
  readonly release?: () => void;
}
