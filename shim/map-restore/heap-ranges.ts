// Where a managed runtime says its heap is, so a restore can map it even where no VMA
// signature tells it apart. HotSpot commits its Java heap with plain private anonymous
// mappings (no MAP_NORESERVE), which look like any malloc'd block; but the JVM reports its
// heap's reserved range (jcmd GC.heap_info), and inside it the JVM never mremaps and never
// relies on zeros after MADV_DONTNEED (it commits and uncommits by mmap over the range, and
// clears what it allocates). The GC hook asks for the ranges right after its GC; the shim
// keeps them in the dump's image dir, keyed by the pid CRIU names the task's images with.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PAGE_SIZE } from '../criu/page-size';

export interface HeapRange {
  readonly start: number;
  readonly end: number;
}

/** The file in a dump's image dir (it travels with the other images). */
export const HEAP_RANGES_FILE = 'pageshare-heap-ranges.json';

interface HeapRangesFile {
  readonly version: 1;
  /** Pid as in the images (pagemap-<pid>.img) -> its heap ranges. */
  readonly tasks: Record<string, HeapRange[]>;
}

/**
 * The heap ranges in `jcmd GC.heap_info` output: every "[0x<start>, ..., 0x<end>)" (G1 gives
 * one per heap, Parallel and Serial one per generation, with the committed end in between).
 * Ranges that are not page-aligned or empty are left out.
 */
export function parseJvmHeapInfo(text: string): HeapRange[] {
  const ranges: HeapRange[] = [];
  for (const m of text.matchAll(/\[(0x[0-9a-fA-F]+)((?:,\s*0x[0-9a-fA-F]+)+)\)/g)) {
    const addresses = [m[1], ...m[2].split(',').map((a) => a.trim()).filter((a) => a !== '')].map((a) => Number(BigInt(a)));
    const start = addresses[0];
    const end = addresses[addresses.length - 1];
    if (!Number.isSafeInteger(end) || start >= end || start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0) continue;
    ranges.push({ start, end });
  }
  return ranges;
}

export function writeHeapRanges(imageDir: string, tasks: ReadonlyMap<number, readonly HeapRange[]>): void {
  if (tasks.size === 0) return;
  const file: HeapRangesFile = { version: 1, tasks: Object.fromEntries([...tasks].map(([pid, ranges]) => [String(pid), [...ranges]])) };
  fs.writeFileSync(path.join(imageDir, HEAP_RANGES_FILE), JSON.stringify(file));
}

/** The ranges kept with a dump (none when there is no file or it is not ours). */
export function readHeapRanges(imageDir: string): Map<string, HeapRange[]> {
  let parsed: HeapRangesFile;
  try {
    parsed = JSON.parse(fs.readFileSync(path.join(imageDir, HEAP_RANGES_FILE), 'utf8')) as HeapRangesFile;
  } catch {
    return new Map();
  }
  const out = new Map<string, HeapRange[]>();
  if (parsed?.version !== 1 || typeof parsed.tasks !== 'object' || parsed.tasks === null) return out;
  for (const [pid, ranges] of Object.entries(parsed.tasks)) {
    if (!Array.isArray(ranges)) continue;
    const good = ranges.filter((r) => Number.isSafeInteger(r?.start) && Number.isSafeInteger(r?.end) && r.start < r.end && r.start % PAGE_SIZE === 0 && r.end % PAGE_SIZE === 0);
    if (good.length > 0) out.set(pid, good);
  }
  return out;
}
