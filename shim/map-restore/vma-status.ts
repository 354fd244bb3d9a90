// CRIU's VmaEntry.status bits (criu/include/image.h, part of the image ABI) and mmap flags,
// and which VMAs a restore may turn into private mappings of a page-cache file.
export const VMA_AREA_REGULAR = 1 << 0;
export const VMA_FILE_PRIVATE = 1 << 6;
export const VMA_ANON_PRIVATE = 1 << 9;
/** Every status bit other than these two makes a VMA special (stack, heap, vdso, vvar, aio, guard, ...). */
const ORDINARY_STATUS = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;

export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
/**
 * V8 reserves its heap as MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE regions (256 KiB pages)
 * that it manages itself and never grows with mremap. Exactly these flags: MAP_GROWSDOWN,
 * MAP_STACK or MAP_HUGETLB and friends disqualify a VMA.
 */
export const MANAGED_HEAP_FLAGS = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

const PROT_READ = 0x1;
/** Code is never mapped from the page-cache file: its mount is noexec, and JIT code changes. */
const PROT_EXEC = 0x4;

export interface VmaShape {
  readonly start: number;
  readonly end: number;
  readonly prot: number;
  readonly flags: number;
  readonly status: number;
}

/**
 * A VMA whose pages may come from a private file mapping instead of anonymous memory: a
 * plain private anonymous region with the managed-heap signature (see MANAGED_HEAP_FLAGS),
 * readable, not executable. Never [heap] (brk), stacks, vdso/vvar or anything CRIU flags specially.
 */
export function isMappableVma(vma: VmaShape): boolean {
  return vma.status === ORDINARY_STATUS && vma.flags === MANAGED_HEAP_FLAGS && (vma.prot & PROT_READ) !== 0 && (vma.prot & PROT_EXEC) === 0 && vma.end > vma.start;
}

/**
 * A VMA inside a heap range its runtime reported (heap-ranges.ts): a plain private anonymous
 * region (with or without MAP_NORESERVE), readable, not executable, wholly inside one range.
 */
export function isReportedHeapVma(vma: VmaShape, ranges: ReadonlyArray<{ readonly start: number; readonly end: number }>): boolean {
  const plain = vma.flags === (MAP_PRIVATE | MAP_ANONYMOUS) || vma.flags === MANAGED_HEAP_FLAGS;
  return (
    plain &&
    vma.status === ORDINARY_STATUS &&
    (vma.prot & PROT_READ) !== 0 &&
    (vma.prot & PROT_EXEC) === 0 &&
    vma.end > vma.start &&
    ranges.some((r) => vma.start >= r.start && vma.end <= r.end)
  );
}
