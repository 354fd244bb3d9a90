// Which live processes map given files, from /proc/<pid>/maps: a mapping names its file by
// device and inode, so a file renamed, unlinked or seen through a bind mount (a container's
// view of the page-cache dir) is still recognised.
import * as fs from 'node:fs';

/** A file as the kernel names it in maps: st_dev and st_ino (from a bigint stat). */
export interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
}

export interface MappingScan {
  /** Pids mapping each file, by mappingKey(); files nobody maps are absent. */
  readonly mappers: ReadonlyMap<string, readonly number[]>;
  /**
   * Processes whose maps could not be read (not ENOENT or ESRCH: they were there): while
   * there is one, the scan cannot tell that a file is unmapped.
   */
  readonly unreadable: ReadonlyArray<{ readonly pid: number; readonly code: string }>;
}

/** The key of a file in MappingScan.mappers: "major:minor:inode", as maps prints them (in decimal). */
export function mappingKey(file: FileIdentity): string {
  // glibc's dev_t encoding (gnu_dev_major / gnu_dev_minor), which st_dev uses.
  const major = ((file.dev >> 8n) & 0xfffn) | ((file.dev >> 32n) & 0xfffff000n);
  const minor = (file.dev & 0xffn) | ((file.dev >> 12n) & 0xffffff00n);
  return `${major}:${minor}:${file.ino}`;
}

// "start-end perms offset major:minor inode [path]"; inode 0 is an anonymous mapping.
const MAPPING = /^\S+ \S+ \S+ ([0-9a-f]+):([0-9a-f]+) ([1-9]\d*)/gm;
/** A process that exits while it is read: its maps vanish (ENOENT) or cannot be walked any more (ESRCH). */
const GONE = new Set(['ENOENT', 'ESRCH']);

/** Scan every process once for mappings of the given files. */
export function scanMappings(files: readonly FileIdentity[], procDir = '/proc'): MappingScan {
  const wanted = new Set(files.map(mappingKey));
  const mappers = new Map<string, number[]>();
  const unreadable: Array<{ pid: number; code: string }> = [];
  if (wanted.size === 0) return { mappers, unreadable };
  for (const name of fs.readdirSync(procDir)) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    let maps: string;
    try {
      maps = fs.readFileSync(`${procDir}/${name}/maps`, 'latin1');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      if (!GONE.has(code)) unreadable.push({ pid, code });
      continue;
    }
    const seen = new Set<string>();
    for (const m of maps.matchAll(MAPPING)) {
      const key = `${parseInt(m[1]!, 16)}:${parseInt(m[2]!, 16)}:${m[3]}`;
      if (!wanted.has(key) || seen.has(key)) continue;
      seen.add(key);
      const pids = mappers.get(key);
      if (pids === undefined) mappers.set(key, [pid]);
      else pids.push(pid);
    }
  }
  return { mappers, unreadable };
}

/** Whether pid descends from one of `ancestors` (its parent chain in /proc/<pid>/stat); false once it is gone. */
export function descendsFrom(pid: number, ancestors: ReadonlySet<number>, procDir = '/proc'): boolean {
  for (let at = pid, steps = 0; at > 1 && steps < 4096; steps++) {
    if (ancestors.has(at)) return true;
    let stat: string;
    try {
      stat = fs.readFileSync(`${procDir}/${at}/stat`, 'latin1');
    } catch {
      return false;
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    at = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return false;
}
