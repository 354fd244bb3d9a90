import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packAny } from '../proto/any';
import { DEFAULT_RUNC_ROOT, defaultRuntimeOptions, loadRuntimeOptions, parseRuntimeOptions, saveRuntimeOptions, type RuntimeOptions } from './runtime-options';

const RUNC_OPTIONS = 'containerd.runc.v1.Options';

describe('runtime options', () => {
  let stderr: jest.SpyInstance;
  beforeEach(() => {
    // parseRuntimeOptions logs ignored option types to stderr; keep the test output clean.
    stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });
  afterEach(() => stderr.mockRestore());

  it('defaults to runc under /run/containerd/runc/<namespace>', () => {
    expect(DEFAULT_RUNC_ROOT).toBe('/run/containerd/runc');
    expect(defaultRuntimeOptions('k8s.io')).toEqual({ runcBinary: 'runc', runcRoot: '/run/containerd/runc/k8s.io', systemdCgroup: false, noPivot: false, noNewKeyring: false });
    expect(parseRuntimeOptions(null, 'default')).toEqual(defaultRuntimeOptions('default'));
    expect(parseRuntimeOptions(undefined, 'default')).toEqual(defaultRuntimeOptions('default'));
    expect(parseRuntimeOptions({ type_url: '', value: Buffer.alloc(0) }, 'default')).toEqual(defaultRuntimeOptions('default'));
  });

  it('reads binary_name, root (joined with the namespace) and systemd_cgroup from containerd.runc.v1.Options', () => {
    const any = packAny(RUNC_OPTIONS, { binary_name: '/usr/local/bin/crun', root: '/run/custom-runc', systemd_cgroup: true, no_pivot_root: true, no_new_keyring: true });
    expect(any.type_url).toBe(RUNC_OPTIONS);
    expect(parseRuntimeOptions(any, 'ns1')).toEqual({
      runcBinary: '/usr/local/bin/crun',
      runcRoot: '/run/custom-runc/ns1',
      systemdCgroup: true,
      noPivot: true,
      noNewKeyring: true,
    });
  });

  it('keeps the defaults for fields the options leave empty', () => {
    const any = packAny(RUNC_OPTIONS, { systemd_cgroup: true });
    expect(parseRuntimeOptions(any, 'ns2')).toEqual({ ...defaultRuntimeOptions('ns2'), systemdCgroup: true });
    // An Options with every field at its default encodes to no bytes at all.
    const empty = packAny(RUNC_OPTIONS, {});
    expect(empty.value.length).toBe(0);
    expect(parseRuntimeOptions(empty, 'ns2')).toEqual(defaultRuntimeOptions('ns2'));
  });

  it('accepts a type URL with a host prefix', () => {
    const any = packAny(RUNC_OPTIONS, { binary_name: 'runc-custom' });
    const prefixed = { ...any, type_url: `types.googleapis.com/${RUNC_OPTIONS}` };
    expect(parseRuntimeOptions(prefixed, 'ns').runcBinary).toBe('runc-custom');
  });

  it('ignores options of another type', () => {
    const any = packAny('runtimeoptions.v1.Options', { type_url: 'x', config_path: '/etc/runtime.toml' });
    expect(parseRuntimeOptions(any, 'ns3')).toEqual(defaultRuntimeOptions('ns3'));
    expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toContain('ignoring runtime options of type runtimeoptions.v1.Options');
    expect(parseRuntimeOptions({ type_url: 'example.com/some.Unknown', value: Buffer.from([1, 2, 3]) }, 'ns3')).toEqual(defaultRuntimeOptions('ns3'));
  });

  describe('in the bundle', () => {
    let bundle: string;
    beforeEach(() => {
      bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-bundle-'));
    });
    afterEach(() => fs.rmSync(bundle, { recursive: true, force: true }));

    it('round-trips through save and load', () => {
      const options: RuntimeOptions = { runcBinary: '/opt/runc', runcRoot: '/run/r/ns', systemdCgroup: true, noPivot: true, noNewKeyring: false };
      saveRuntimeOptions(bundle, options);
      expect(fs.existsSync(path.join(bundle, 'pageshare.json'))).toBe(true);
      expect(loadRuntimeOptions(bundle, 'other-ns')).toEqual(options);
    });

    it('round-trips what parseRuntimeOptions produced', () => {
      const parsed = parseRuntimeOptions(packAny(RUNC_OPTIONS, { binary_name: 'crun', root: '/r' }), 'x');
      saveRuntimeOptions(bundle, parsed);
      expect(loadRuntimeOptions(bundle, 'x')).toEqual(parsed);
    });

    it('falls back to the defaults without a record', () => {
      expect(loadRuntimeOptions(bundle, 'ns')).toEqual(defaultRuntimeOptions('ns'));
    });

    it('falls back to the defaults for a corrupt record', () => {
      fs.writeFileSync(path.join(bundle, 'pageshare.json'), '{"runcBinary": "/opt/ru');
      expect(loadRuntimeOptions(bundle, 'ns')).toEqual(defaultRuntimeOptions('ns'));
    });

    it('fills fields a record lacks from the defaults', () => {
      fs.writeFileSync(path.join(bundle, 'pageshare.json'), JSON.stringify({ runcBinary: '/opt/runc' }));
      expect(loadRuntimeOptions(bundle, 'ns')).toEqual({ ...defaultRuntimeOptions('ns'), runcBinary: '/opt/runc' });
    });
  });
});
