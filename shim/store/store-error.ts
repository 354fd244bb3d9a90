// Errors of the page store and of page manifests. Each carries a stable `reason` (callers
// branch on it, never on the message) and, as a ShimError, a gRPC status for the service.
// Messages name what is damaged (checkpoint, page hash, pack, offset) and what to do next.
import { ShimError, ShimErrorCode } from '../errors/shim-error';

/** Stable reasons, documented here once. */
export type StoreErrorReason =
  /** A page a checkpoint needs is not in the index, or its pack file is gone or too short. */
  | 'STORE_PAGE_MISSING'
  /** A page's bytes do not hash to its name. */
  | 'STORE_PAGE_CORRUPT'
  /** A pack file's header is unreadable or belongs to another pack or store. */
  | 'STORE_PACK_CORRUPT'
  /** No pack with that id (e.g. pinning a pack gc already removed). */
  | 'STORE_PACK_NOT_FOUND'
  | 'STORE_CHECKPOINT_NOT_FOUND'
  | 'STORE_CHECKPOINT_EXISTS'
  /** Another process held the store's lock for longer than the caller wanted to wait. */
  | 'STORE_LOCK_TIMEOUT'
  /** An ingest session was used after commit, abort or a failure. */
  | 'STORE_SESSION_CLOSED'
  /** A manifest names pages of another store (another host, or a re-created store). */
  | 'STORE_WRONG_STORE'
  /** The store (this handle) was closed. */
  | 'STORE_CLOSED'
  /** The index was written by a newer pageshare (or is not a pageshare index). */
  | 'STORE_INDEX_UNSUPPORTED'
  /** A caller passed a value the store cannot take (a page of the wrong size, an empty id). */
  | 'STORE_INVALID_ARGUMENT'
  /** The manifest does not start with the manifest magic (not a manifest). */
  | 'MANIFEST_BAD_MAGIC'
  /** The manifest was written in a format version this pageshare does not read. */
  | 'MANIFEST_UNSUPPORTED_VERSION'
  /** The manifest ends before its declared length. */
  | 'MANIFEST_TRUNCATED'
  /** The manifest's bytes do not match its trailer checksum. */
  | 'MANIFEST_CHECKSUM_MISMATCH'
  /** The checksum matches but the content is not a valid manifest (or has extra bytes). */
  | 'MANIFEST_CORRUPT'
  /** The writer was given a manifest the format cannot hold. */
  | 'MANIFEST_INVALID';

const SHIM_CODE: Record<StoreErrorReason, ShimErrorCode> = {
  STORE_PAGE_MISSING: 'FAILED_PRECONDITION',
  STORE_PAGE_CORRUPT: 'FAILED_PRECONDITION',
  STORE_PACK_CORRUPT: 'FAILED_PRECONDITION',
  STORE_PACK_NOT_FOUND: 'NOT_FOUND',
  STORE_CHECKPOINT_NOT_FOUND: 'NOT_FOUND',
  STORE_CHECKPOINT_EXISTS: 'ALREADY_EXISTS',
  STORE_LOCK_TIMEOUT: 'FAILED_PRECONDITION',
  STORE_SESSION_CLOSED: 'FAILED_PRECONDITION',
  STORE_WRONG_STORE: 'FAILED_PRECONDITION',
  STORE_CLOSED: 'FAILED_PRECONDITION',
  STORE_INDEX_UNSUPPORTED: 'FAILED_PRECONDITION',
  STORE_INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  MANIFEST_BAD_MAGIC: 'FAILED_PRECONDITION',
  MANIFEST_UNSUPPORTED_VERSION: 'FAILED_PRECONDITION',
  MANIFEST_TRUNCATED: 'FAILED_PRECONDITION',
  MANIFEST_CHECKSUM_MISMATCH: 'FAILED_PRECONDITION',
  MANIFEST_CORRUPT: 'FAILED_PRECONDITION',
  MANIFEST_INVALID: 'INVALID_ARGUMENT',
};

export class StoreError extends ShimError {
  constructor(
    readonly reason: StoreErrorReason,
    message: string,
  ) {
    super(SHIM_CODE[reason], message);
    this.name = 'StoreError';
  }
}

/** Where a page was looked for, for error messages. */
export interface PageErrorContext {
  /** The checkpoint being restored, when the read is for one. */
  readonly checkpointId?: string;
}

function forCheckpoint(ctx: PageErrorContext): string {
  return ctx.checkpointId === undefined ? '' : ` of checkpoint ${ctx.checkpointId}`;
}

const VERIFY_HINT =
  'run `pageshare store verify` to list every damaged page and the checkpoints that need them; ' +
  'those checkpoints cannot be restored from this store and must be taken again';

export class PageMissingError extends StoreError {
  constructor(
    readonly hash: string,
    readonly checkpointId: string | undefined,
    readonly packId: number | undefined,
    readonly offset: number | undefined,
    readonly storeRoot: string,
    detail: string,
  ) {
    const where = packId === undefined ? '' : ` (pack ${packId} at offset ${offset ?? '?'})`;
    super(
      'STORE_PAGE_MISSING',
      `page ${hash}${forCheckpoint({ checkpointId })} is missing from the page store ${storeRoot}${where}: ${detail}; ${VERIFY_HINT}`,
    );
    this.name = 'PageMissingError';
  }
}

export class PageCorruptError extends StoreError {
  constructor(
    readonly hash: string,
    readonly checkpointId: string | undefined,
    readonly packId: number,
    readonly offset: number,
    readonly storeRoot: string,
    /** What is wrong, e.g. "its bytes hash to <hex>". */
    readonly detail: string,
  ) {
    super(
      'STORE_PAGE_CORRUPT',
      `page ${hash}${forCheckpoint({ checkpointId })} is corrupt in the page store ${storeRoot} ` +
        `(pack ${packId} at offset ${offset}: ${detail}); ${VERIFY_HINT}`,
    );
    this.name = 'PageCorruptError';
  }
}

export class PackCorruptError extends StoreError {
  constructor(
    readonly packId: number,
    readonly file: string,
    detail: string,
  ) {
    super('STORE_PACK_CORRUPT', `pack ${packId} (${file}) is damaged: ${detail}; ${VERIFY_HINT}`);
    this.name = 'PackCorruptError';
  }
}

export class CheckpointNotFoundError extends StoreError {
  constructor(
    readonly checkpointId: string,
    storeRoot: string,
  ) {
    super(
      'STORE_CHECKPOINT_NOT_FOUND',
      `checkpoint ${checkpointId} is not in the page store ${storeRoot} (\`pageshare checkpoint ls\` lists the kept ones)`,
    );
    this.name = 'CheckpointNotFoundError';
  }
}

export class CheckpointExistsError extends StoreError {
  constructor(
    readonly checkpointId: string,
    storeRoot: string,
  ) {
    super(
      'STORE_CHECKPOINT_EXISTS',
      `checkpoint ${checkpointId} is already in the page store ${storeRoot}: use a new checkpoint id, or remove the old checkpoint first`,
    );
    this.name = 'CheckpointExistsError';
  }
}

export class StoreLockTimeoutError extends StoreError {
  constructor(
    readonly lockFile: string,
    readonly waitedMs: number,
    holder: string | undefined,
  ) {
    super(
      'STORE_LOCK_TIMEOUT',
      `gave up after ${waitedMs} ms waiting for the page store lock ${lockFile}` +
        `${holder === undefined ? '' : ` (last taken by ${holder})`}: another checkpoint, gc or verify is running; ` +
        'retry when it has finished, or raise the lock timeout',
    );
    this.name = 'StoreLockTimeoutError';
  }
}

export class SessionClosedError extends StoreError {
  constructor(
    readonly checkpointId: string,
    readonly state: string,
    operation: string,
  ) {
    super(
      'STORE_SESSION_CLOSED',
      `cannot ${operation}: the ingest of checkpoint ${checkpointId} is ${state}; start a new ingest with beginIngest()`,
    );
    this.name = 'SessionClosedError';
  }
}

export class WrongStoreError extends StoreError {
  constructor(
    readonly checkpointId: string,
    readonly manifestStoreId: string,
    readonly storeId: string,
    storeRoot: string,
  ) {
    super(
      'STORE_WRONG_STORE',
      `checkpoint ${checkpointId} keeps its pages in page store ${manifestStoreId}, but ${storeRoot} is store ${storeId}: ` +
        'restore it on the host that took it, or point PAGESHARE_ROOT at that store',
    );
    this.name = 'WrongStoreError';
  }
}

export class StoreClosedError extends StoreError {
  constructor(storeRoot: string) {
    super('STORE_CLOSED', `the page store ${storeRoot} was closed: open it again with PageStore.open()`);
    this.name = 'StoreClosedError';
  }
}

export class IndexUnsupportedError extends StoreError {
  constructor(file: string, detail: string) {
    super('STORE_INDEX_UNSUPPORTED', `cannot use the page store index ${file}: ${detail}`);
    this.name = 'IndexUnsupportedError';
  }
}

export class PackNotFoundError extends StoreError {
  constructor(
    readonly packId: number,
    storeRoot: string,
  ) {
    super('STORE_PACK_NOT_FOUND', `pack ${packId} is not in the page store ${storeRoot}: look the page up again (gc may have moved it)`);
    this.name = 'PackNotFoundError';
  }
}

export class StoreArgumentError extends StoreError {
  constructor(message: string) {
    super('STORE_INVALID_ARGUMENT', message);
    this.name = 'StoreArgumentError';
  }
}

export type ManifestErrorReason = Extract<StoreErrorReason, `MANIFEST_${string}`>;

/** Anything wrong with a page manifest, from the reader (damaged input) or the writer (bad value). */
export class ManifestError extends StoreError {
  constructor(
    override readonly reason: ManifestErrorReason,
    /** The manifest file (or a description of the buffer). */
    readonly source: string,
    /** Byte offset where the problem was found, when there is one. */
    readonly offset: number | undefined,
    detail: string,
  ) {
    const hint =
      reason === 'MANIFEST_INVALID'
        ? ''
        : reason === 'MANIFEST_UNSUPPORTED_VERSION'
          ? '; restore it with the pageshare version that wrote it'
          : '; the checkpoint is damaged: take it again (its pages may still be in the store, see `pageshare checkpoint ls`)';
    super(reason, `page manifest ${source}${offset === undefined ? '' : ` at byte ${offset}`}: ${detail}${hint}`);
    this.name = 'ManifestError';
  }
}
