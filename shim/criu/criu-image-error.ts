// One error type for everything that can be wrong with a CRIU image: a checkpoint that is
// damaged, truncated, or written by a CRIU whose format we do not know. It names the file and
// the byte offset so a user can look at the bytes (crit, xxd) and decide what to do.
import { ShimError } from '../errors/shim-error';

/** Stable reasons, for callers that branch (never match on the message). */
export type CriuImageErrorReason =
  /** The head magic or the image's own magic is not the expected one. */
  | 'BAD_MAGIC'
  /** The file ends inside a magic, an entry's length or an entry's payload. */
  | 'TRUNCATED'
  /** An entry (or the whole file) claims more bytes than the limit allows. */
  | 'TOO_LARGE'
  /** An entry is not a valid message of its type, or holds values CRIU never writes. */
  | 'BAD_ENTRY'
  /** Valid, but uses something this reader does not support (fields of a newer CRIU). */
  | 'UNSUPPORTED'
  /** A pages file does not match its pagemap (size, or a missing file). */
  | 'PAGES_MISMATCH'
  /** The writer was given a value the format cannot hold. */
  | 'INVALID_VALUE';

export class CriuImageError extends ShimError {
  constructor(
    readonly reason: CriuImageErrorReason,
    /** The image file (or a description of the buffer) the problem is in. */
    readonly file: string,
    /** Byte offset in the file where the problem starts, when there is one. */
    readonly offset: number | undefined,
    detail: string,
  ) {
    super('FAILED_PRECONDITION', `${file}${offset === undefined ? '' : ` at byte ${offset}`}: ${detail}`);
    this.name = 'CriuImageError';
  }
}
