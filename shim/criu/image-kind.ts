// The CRIU image kinds pageshare reads or writes, with their magics (CRIU's
// criu/include/magic.h and criu/image-desc.c). Since image format v1.1 a file starts with
// a u32 head magic (IMG_COMMON_MAGIC, or IMG_SERVICE_MAGIC for CRIU's own service files)
// followed by the u32 magic of its kind; inventory.img has only its own magic. Raw images
// (pages-N.img) have no magic and no framing at all, so they are not an ImageKind.

/** First u32 of every image except inventory.img and the service files. */
export const IMG_COMMON_MAGIC = 0x54564319;
/** First u32 of CRIU's service files (stats-dump, stats-restore, irmap-cache). */
export const IMG_SERVICE_MAGIC = 0x55105940;

/** Which u32 precedes the kind's own magic: IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, or none. */
export type ImageHead = 'common' | 'service' | 'none';

export interface ImageKind {
  /** CRIU's name for the kind (as crit prints it). */
  readonly name: string;
  readonly magic: number;
  readonly head: ImageHead;
}

function kind(name: string, magic: number, head: ImageHead = 'common'): ImageKind {
  return Object.freeze({ name, magic, head });
}

/** Image kinds whose entries are plain length-prefixed messages with nothing after them. */
export const ImageKinds = Object.freeze({
  INVENTORY: kind('INVENTORY', 0x58313116, 'none'),
  /** pagemap-<pid>.img; pagemap-shmem-<shmid>.img has the same magic. */
  PAGEMAP: kind('PAGEMAP', 0x56084025),
  MM: kind('MM', 0x57492820),
  FILES: kind('FILES', 0x56303138),
  /** reg-files.img, from CRIU versions before files.img. */
  REG_FILES: kind('REG_FILES', 0x50363636),
  FDINFO: kind('FDINFO', 0x56213732),
  /** mountpoints-<id>.img: the mounts of one mount namespace. */
  MNTS: kind('MNTS', 0x55563928),
  STATS: kind('STATS', 0x57093306, 'service'),
});

export function magicHex(magic: number): string {
  return `0x${(magic >>> 0).toString(16).padStart(8, '0')}`;
}
