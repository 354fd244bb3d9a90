// How a checkpoint names one of its pages: by content (a SHA-256 of its 4 KiB), or as a
// zero page, which the store never holds. Names are locations-free on purpose: gc may move a
// page to another pack, but its name never changes.

/** Bytes in a page name (SHA-256). */
export const HASH_BYTES = 32;

export interface ZeroPageRef {
  readonly kind: 'zero';
}

export interface StoredPageRef {
  readonly kind: 'stored';
  /** SHA-256 of the page's bytes (HASH_BYTES long). */
  readonly hash: Buffer;
}

export type PageRef = ZeroPageRef | StoredPageRef;

/** The one zero-page reference (all zero pages are the same). */
export const ZERO_PAGE_REF: ZeroPageRef = Object.freeze({ kind: 'zero' });

export function storedPageRef(hash: Buffer): StoredPageRef {
  return { kind: 'stored', hash };
}

/** A page name as users see it (lowercase hex). */
export function hashHex(hash: Buffer): string {
  return hash.toString('hex');
}

/** A compact Map/Set key for a page name. */
export function hashKey(hash: Buffer): string {
  return hash.toString('latin1');
}
