// A container's cgroup v1 controllers (this machine mounts the v1 hierarchy) and the
// metrics containerd's `io.containerd.cgroups.v1.Metrics` carries.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const CGROUP_ROOT = '/sys/fs/cgroup';

/** controller -> path inside that controller's hierarchy, read from /proc/PID/cgroup. */
export function cgroupPathsOf(pid: number): Map<string, string> {
  const paths = new Map<string, string>();
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return paths;
  }
  for (const line of text.trim().split('\n')) {
    const [, controllers, cgPath] = line.split(':', 3) as [string, string, string];
    if (!controllers) continue;
    for (const c of controllers.split(',')) paths.set(c, cgPath);
  }
  return paths;
}

function readNumber(file: string): number {
  try {
    const v = fs.readFileSync(file, 'utf8').trim();
    return v === 'max' ? 0 : Number(v) || 0;
  } catch {
    return 0;
  }
}

function readKeyed(file: string): Map<string, number> {
  const map = new Map<string, number>();
  try {
    for (const line of fs.readFileSync(file, 'utf8').trim().split('\n')) {
      const [key, value] = line.split(/\s+/);
      if (key) map.set(key, Number(value) || 0);
    }
  } catch {
    /* controller not there */
  }
  return map;
}

export class CgroupV1 {
  constructor(private readonly paths: Map<string, string>) {}

  dir(controller: string): string | undefined {
    const p = this.paths.get(controller);
    return p === undefined ? undefined : path.join(CGROUP_ROOT, controller, p);
  }

  freezer(): CgroupV1Freezer | undefined {
    const dir = this.dir('freezer');
    return dir === undefined ? undefined : new CgroupV1Freezer(dir);
  }

  /** A plain object shaped like io.containerd.cgroups.v1.Metrics. */
  metrics(): object {
    const pidsDir = this.dir('pids');
    const cpuDir = this.dir('cpuacct');
    const cpuCtl = this.dir('cpu');
    const memDir = this.dir('memory');
    const out: Record<string, object> = {};
    if (pidsDir) out['pids'] = { current: readNumber(`${pidsDir}/pids.current`), limit: readNumber(`${pidsDir}/pids.max`) };
    if (cpuDir) {
      const stat = readKeyed(`${cpuDir}/cpuacct.stat`);
      const hz = 100; // USER_HZ: cpuacct.stat counts ticks
      const perCpu = (() => {
        try {
          return fs.readFileSync(`${cpuDir}/cpuacct.usage_percpu`, 'utf8').trim().split(/\s+/).map(Number);
        } catch {
          return [];
        }
      })();
      const throttle = cpuCtl ? readKeyed(`${cpuCtl}/cpu.stat`) : new Map<string, number>();
      out['cpu'] = {
        usage: {
          total: readNumber(`${cpuDir}/cpuacct.usage`),
          user: ((stat.get('user') ?? 0) * 1e9) / hz,
          kernel: ((stat.get('system') ?? 0) * 1e9) / hz,
          per_cpu: perCpu,
        },
        throttling: {
          periods: throttle.get('nr_periods') ?? 0,
          throttled_periods: throttle.get('nr_throttled') ?? 0,
          throttled_time: throttle.get('throttled_time') ?? 0,
        },
      };
    }
    if (memDir) {
      const s = readKeyed(`${memDir}/memory.stat`);
      const g = (k: string): number => s.get(k) ?? 0;
      const entry = (prefix: string): object => ({
        usage: readNumber(`${memDir}/${prefix}usage_in_bytes`),
        max: readNumber(`${memDir}/${prefix}max_usage_in_bytes`),
        limit: readNumber(`${memDir}/${prefix}limit_in_bytes`),
        failcnt: readNumber(`${memDir}/${prefix}failcnt`),
      });
      out['memory'] = {
        cache: g('cache'), rss: g('rss'), rss_huge: g('rss_huge'), mapped_file: g('mapped_file'),
        dirty: g('dirty'), writeback: g('writeback'), pg_pg_in: g('pgpgin'), pg_pg_out: g('pgpgout'),
        pg_fault: g('pgfault'), pg_maj_fault: g('pgmajfault'), inactive_anon: g('inactive_anon'),
        active_anon: g('active_anon'), inactive_file: g('inactive_file'), active_file: g('active_file'),
        unevictable: g('unevictable'), hierarchical_memory_limit: g('hierarchical_memory_limit'),
        hierarchical_swap_limit: g('hierarchical_memsw_limit'), total_cache: g('total_cache'),
        total_rss: g('total_rss'), total_rss_huge: g('total_rss_huge'), total_mapped_file: g('total_mapped_file'),
        total_dirty: g('total_dirty'), total_writeback: g('total_writeback'), total_pg_pg_in: g('total_pgpgin'),
        total_pg_pg_out: g('total_pgpgout'), total_pg_fault: g('total_pgfault'), total_pg_maj_fault: g('total_pgmajfault'),
        total_inactive_anon: g('total_inactive_anon'), total_active_anon: g('total_active_anon'),
        total_inactive_file: g('total_inactive_file'), total_active_file: g('total_active_file'),
        total_unevictable: g('total_unevictable'),
        usage: entry('memory.'), swap: entry('memory.memsw.'), kernel: entry('memory.kmem.'), kernel_tcp: entry('memory.kmem.tcp.'),
      };
      const oom = readKeyed(`${memDir}/memory.oom_control`);
      out['memory_oom_control'] = { oom_kill_disable: oom.get('oom_kill_disable') ?? 0, under_oom: oom.get('under_oom') ?? 0, oom_kill: oom.get('oom_kill') ?? 0 };
    }
    return out;
  }
}

const FREEZE_POLL_MS = 1;

/**
 * The v1 freezer of one container, written directly: runc derives "paused" from this same
 * state, so freezing here is what `runc pause` does, without a runc process (tens of ms).
 */
export class CgroupV1Freezer {
  constructor(private readonly dir: string) {}

  freeze(timeoutMs: number): Promise<void> {
    return this.setState('FROZEN', timeoutMs);
  }

  thaw(timeoutMs: number): Promise<void> {
    return this.setState('THAWED', timeoutMs);
  }

  private async setState(state: 'FROZEN' | 'THAWED', timeoutMs: number): Promise<void> {
    const file = path.join(this.dir, 'freezer.state');
    const deadline = Date.now() + timeoutMs;
    fs.writeFileSync(file, state);
    // FREEZING until every task has stopped; writing again retries the ones that had not.
    while (fs.readFileSync(file, 'utf8').trim() !== state) {
      if (Date.now() >= deadline) throw new Error(`${file} did not reach ${state} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, FREEZE_POLL_MS));
      fs.writeFileSync(file, state);
    }
  }
}
