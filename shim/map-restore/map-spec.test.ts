import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PAGE_CACHE_MOUNT, prepareMapRestore, restoreModeOf } from './map-spec';

let work: string;
beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-map-spec-'));
});
afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

function bundleWith(annotations?: Record<string, string>): string {
  const bundle = path.join(work, 'bundle');
  fs.mkdirSync(bundle, { recursive: true });
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }], ...(annotations ? { annotations } : {}) }));
  return bundle;
}

it('is chosen by the annotation, then PAGESHARE_RESTORE_DEFAULT, then map for managed runtimes; a clear error for anything but map or copy', () => {
  const noEnv = {};
  const spec = (args: string[], annotations?: Record<string, string>) => ({ ociVersion: '1.0.2', process: { args }, ...(annotations ? { annotations } : {}) });
  expect(restoreModeOf({ ociVersion: '1.0.2' }, noEnv)).toBe('copy');
  expect(restoreModeOf(spec(['/bin/sh', '-c', 'sleep 1']), noEnv)).toBe('copy');
  expect(restoreModeOf(spec(['/usr/bin/node', 'app.js']), noEnv)).toBe('map');
  expect(restoreModeOf(spec(['java', '-jar', 'app.jar']), noEnv)).toBe('map');
  expect(restoreModeOf(spec(['/app/start'], { 'io.pageshare.gc': 'auto' }), noEnv)).toBe('map');
  expect(restoreModeOf(spec(['/app/start'], { 'io.pageshare.gc': 'off' }), noEnv)).toBe('copy');
  expect(restoreModeOf(spec(['/usr/bin/node'], { 'io.pageshare.restore': 'copy' }), noEnv)).toBe('copy');
  expect(restoreModeOf(spec(['/usr/bin/node']), { PAGESHARE_RESTORE_DEFAULT: 'copy' })).toBe('copy');
  expect(restoreModeOf(spec(['/bin/sh']), { PAGESHARE_RESTORE_DEFAULT: 'map' })).toBe('map');
  expect(restoreModeOf(spec(['/bin/sh'], { 'io.pageshare.restore': 'map' }), { PAGESHARE_RESTORE_DEFAULT: 'copy' })).toBe('map');
  expect(() => restoreModeOf({ ociVersion: '1.0.2', annotations: { 'io.pageshare.restore': 'mmap' } })).toThrow(/io.pageshare.restore=mmap: expected map or copy/);
  expect(() => restoreModeOf({ ociVersion: '1.0.2' }, { PAGESHARE_RESTORE_DEFAULT: 'yes' })).toThrow(/PAGESHARE_RESTORE_DEFAULT=yes: expected map or copy/);
});

it("adds the domain's read-only mount once, and leaves a container that does not opt in byte for byte", () => {
  const plain = bundleWith();
  const before = fs.readFileSync(path.join(plain, 'config.json'));
  expect(prepareMapRestore(plain, path.join(work, 'store'), 'default', true)).toBeUndefined();
  expect(fs.readFileSync(path.join(plain, 'config.json'))).toEqual(before);

  const bundle = bundleWith({ 'io.pageshare.restore': 'map' });
  const settings = prepareMapRestore(bundle, path.join(work, 'store'), 'ns1', false);
  prepareMapRestore(bundle, path.join(work, 'store'), 'ns1', false); // a restore's Create sees the checkpointed spec again
  expect(settings).toEqual({ domainDir: path.join(work, 'store', 'page-cache', 'ns1'), resumeGate: false });
  expect(fs.statSync(settings!.domainDir).isDirectory()).toBe(true);
  const mounts = (JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { mounts: Array<{ destination: string; source: string; options: string[] }> }).mounts;
  expect(mounts.filter((m) => m.destination === PAGE_CACHE_MOUNT)).toEqual([expect.objectContaining({ source: settings!.domainDir, options: expect.arrayContaining(['ro', 'noexec']) })]);
});
