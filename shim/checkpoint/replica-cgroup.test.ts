import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { giveReplicaItsCgroup, replicaCgroupsPath } from './replica-cgroup';

it('names the cgroup after the replica, for cgroupfs and systemd paths', () => {
  expect(replicaCgroupsPath('/default/src', 'r1')).toBe('/default/r1');
  expect(replicaCgroupsPath('/default/r1', 'r1')).toBe('/default/r1');
  expect(replicaCgroupsPath('/docker/abc', 'abc')).toBe('/docker/abc');
  expect(replicaCgroupsPath('src', 'r1')).toBe('r1');
  expect(replicaCgroupsPath('system.slice:docker:abc', 'def')).toBe('system.slice:docker:def');
  expect(replicaCgroupsPath('', 'r1')).toBe('');
});

it("rewrites only the spec's cgroups path, and only when it changes", () => {
  const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-replica-cgroup-'));
  try {
    const file = path.join(bundle, 'config.json');
    const spec = { ociVersion: '1.0.2', process: { args: ['/bin/true'] }, linux: { cgroupsPath: '/ns/src', namespaces: [{ type: 'pid' }] } };
    fs.writeFileSync(file, JSON.stringify(spec));
    expect(giveReplicaItsCgroup(bundle, 'src')).toBeUndefined();
    expect(giveReplicaItsCgroup(bundle, 'copy-2')).toBe('/ns/copy-2');
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({ ...spec, linux: { ...spec.linux, cgroupsPath: '/ns/copy-2' } });
    fs.writeFileSync(file, JSON.stringify({ ociVersion: '1.0.2' }));
    expect(giveReplicaItsCgroup(bundle, 'r')).toBeUndefined();
    // A cgroup of that name with processes in it (another namespace's container): refused.
    const root = path.join(bundle, 'cgroups');
    fs.mkdirSync(path.join(root, 'memory', 'ns', 'taken'), { recursive: true });
    fs.writeFileSync(path.join(root, 'memory', 'ns', 'taken', 'cgroup.procs'), '4242\n');
    fs.writeFileSync(file, JSON.stringify(spec));
    expect(() => giveReplicaItsCgroup(bundle, 'taken', root)).toThrow(/already holds another container's processes/);
    fs.writeFileSync(path.join(root, 'memory', 'ns', 'taken', 'cgroup.procs'), '');
    expect(giveReplicaItsCgroup(bundle, 'taken', root)).toBe('/ns/taken');
  } finally {
    fs.rmSync(bundle, { recursive: true, force: true });
  }
});
