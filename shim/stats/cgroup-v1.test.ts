import * as fs from 'node:fs';
import * as path from 'node:path';
import { CgroupV1, cgroupPathsOf } from './cgroup-v1';

/** Our memory cgroup as /proc/self/cgroup names it (read independently of the code under test). */
function ownMemoryCgroup(): string | undefined {
  for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, controllers, p] = line.split(':');
    if (controllers?.split(',').includes('memory')) return p;
  }
  return undefined;
}

const memoryPath = ownMemoryCgroup();
const usageFile = memoryPath === undefined ? undefined : path.join('/sys/fs/cgroup/memory', memoryPath, 'memory.usage_in_bytes');
const hasV1Memory = usageFile !== undefined && fs.existsSync(usageFile);
// This machine mounts cgroup v1; on a host without it the usage checks cannot run.
const itV1 = hasV1Memory ? it : it.skip;

interface MemoryEntry {
  usage: number;
  max: number;
  limit: number;
  failcnt: number;
}

describe('cgroupPathsOf', () => {
  it('returns the memory controller path of this process', () => {
    expect(memoryPath).toBeDefined();
    const paths = cgroupPathsOf(process.pid);
    expect(paths.get('memory')).toBe(memoryPath);
  });

  it('splits comma-joined controllers and keeps named hierarchies (name=systemd)', () => {
    const paths = cgroupPathsOf(process.pid);
    const text = fs.readFileSync(`/proc/${process.pid}/cgroup`, 'utf8');
    for (const line of text.trim().split('\n')) {
      const [, controllers, p] = line.split(':');
      for (const c of controllers!.split(',').filter(Boolean)) expect(paths.get(c)).toBe(p);
    }
  });

  it('returns an empty map for a process that does not exist', () => {
    expect(cgroupPathsOf(2 ** 30).size).toBe(0);
  });
});

describe('CgroupV1', () => {
  itV1('reports a positive memory usage for our own cgroup', () => {
    const metrics = new CgroupV1(cgroupPathsOf(process.pid)).metrics() as { memory?: { usage: MemoryEntry; rss: number; cache: number } };
    expect(metrics.memory).toBeDefined();
    expect(metrics.memory!.usage.usage).toBeGreaterThan(0);
    expect(metrics.memory!.usage.limit).toBeGreaterThan(0);
    expect(metrics.memory!.usage.max).toBeGreaterThanOrEqual(metrics.memory!.usage.usage);
    // The same file, read here directly, is in the same ballpark (memory moves between reads).
    const direct = Number(fs.readFileSync(usageFile!, 'utf8').trim());
    expect(direct).toBeGreaterThan(0);
    expect(metrics.memory!.usage.usage).toBeLessThan(direct * 4);
    expect(metrics.memory!.usage.usage).toBeGreaterThan(direct / 4);
  });

  itV1('reports oom control and memory.stat counters', () => {
    const metrics = new CgroupV1(cgroupPathsOf(process.pid)).metrics() as {
      memory: Record<string, unknown>;
      memory_oom_control: { oom_kill_disable: number; under_oom: number; oom_kill: number };
    };
    expect(metrics.memory_oom_control.under_oom).toBe(0);
    const stat = fs.readFileSync(path.join('/sys/fs/cgroup/memory', memoryPath!, 'memory.stat'), 'utf8');
    // Counters memory.stat reports are carried over: pgfault only grows, and is positive.
    if (/^pgfault \d+/m.test(stat)) expect(metrics.memory['pg_fault']).toBeGreaterThan(0);
  });

  it('maps controllers to directories under /sys/fs/cgroup', () => {
    const cg = new CgroupV1(new Map([['memory', '/a/b'], ['cpu', '/']]));
    expect(cg.dir('memory')).toBe('/sys/fs/cgroup/memory/a/b');
    expect(path.resolve(cg.dir('cpu')!)).toBe('/sys/fs/cgroup/cpu');
    expect(cg.dir('pids')).toBeUndefined();
  });

  it('reports only the controllers it has paths for', () => {
    expect(new CgroupV1(new Map()).metrics()).toEqual({});
    const onlyPids = new CgroupV1(new Map([['pids', '/']])).metrics();
    expect(Object.keys(onlyPids)).toEqual(['pids']);
  });

  it('reads missing files as zeros rather than failing', () => {
    const gone = new CgroupV1(new Map([['memory', '/no/such/cgroup'], ['pids', '/no/such/cgroup'], ['cpuacct', '/no/such/cgroup']]));
    const m = gone.metrics() as { memory: { usage: MemoryEntry; rss: number }; pids: { current: number; limit: number }; cpu: { usage: { total: number; per_cpu: number[] } } };
    expect(m.memory.usage).toEqual({ usage: 0, max: 0, limit: 0, failcnt: 0 });
    expect(m.memory.rss).toBe(0);
    expect(m.pids).toEqual({ current: 0, limit: 0 });
    expect(m.cpu.usage.total).toBe(0);
    expect(m.cpu.usage.per_cpu).toEqual([]);
  });
});
