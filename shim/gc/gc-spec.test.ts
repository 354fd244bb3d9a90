import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { OciSpec } from '../spec/oci-spec';
import { AGENTS_MOUNT, DEFAULT_GC_TIMEOUT_MS, GC_RUN_MOUNT, gcSettingsOf, prepareGcHook, withGcHook } from './gc-spec';

const base: OciSpec = {
  ociVersion: '1.0.2',
  process: { args: ['node', 'app.js'], env: ['PATH=/bin', 'NODE_OPTIONS=--max-old-space-size=512'], cwd: '/' },
  mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
  annotations: { 'io.pageshare.gc': 'node' },
  linux: { namespaces: [{ type: 'pid' }] },
  somethingNew: { kept: true },
};

describe('the GC hook in a spec', () => {
  it('is chosen by the annotation, or by PAGESHARE_GC_DEFAULT, with a bounded wait', () => {
    expect(gcSettingsOf(base, {})).toEqual({ mode: 'node', timeoutMs: DEFAULT_GC_TIMEOUT_MS });
    expect(gcSettingsOf({ ...base, annotations: {} }, {})).toBeUndefined();
    expect(gcSettingsOf({ ...base, annotations: {} }, { PAGESHARE_GC_DEFAULT: 'auto' })).toEqual({ mode: 'auto', timeoutMs: DEFAULT_GC_TIMEOUT_MS });
    expect(gcSettingsOf({ ...base, annotations: { 'io.pageshare.gc': 'off' } }, { PAGESHARE_GC_DEFAULT: 'auto' })).toBeUndefined();
    expect(gcSettingsOf({ ...base, annotations: { 'io.pageshare.gc': 'jvm', 'io.pageshare.gc.timeout-ms': '1500' } }, {})).toEqual({ mode: 'jvm', timeoutMs: 1500 });
    expect(() => gcSettingsOf({ ...base, annotations: { 'io.pageshare.gc': 'python' } }, {})).toThrow(/node, jvm, auto or off/);
    expect(() => gcSettingsOf({ ...base, annotations: { 'io.pageshare.gc': 'node', 'io.pageshare.gc.timeout-ms': 'soon' } }, {})).toThrow(/milliseconds/);
  });

  it('adds the agent mounts and loads the Node.js agent, keeping the user NODE_OPTIONS and everything else', () => {
    const out = withGcHook(base, { mode: 'node', timeoutMs: 1 }, '/host/agents', '/run/x/c1');
    expect(out.mounts).toEqual([
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: AGENTS_MOUNT, type: 'bind', source: '/host/agents', options: ['rbind', 'ro', 'nosuid', 'nodev'] },
      { destination: GC_RUN_MOUNT, type: 'bind', source: '/run/x/c1', options: ['rbind', 'rw', 'nosuid', 'nodev', 'noexec'] },
    ]);
    expect(out.process?.env).toEqual(['PATH=/bin', 'NODE_OPTIONS=--max-old-space-size=512 --require /.pageshare/node-gc-agent.js', 'PAGESHARE_GC_DIR=/.pageshare-run']);
    expect(out.somethingNew).toEqual({ kept: true });
    expect(base.mounts).toHaveLength(1); // the input is not changed
  });

  it('is idempotent, and a restored container gets its own request dir', () => {
    const once = withGcHook(base, { mode: 'auto', timeoutMs: 1 }, '/host/agents', '/run/x/c1');
    const again = withGcHook(once, { mode: 'auto', timeoutMs: 1 }, '/host/agents', '/run/x/c2');
    expect(again.mounts?.filter((m) => m.destination === GC_RUN_MOUNT)).toEqual([expect.objectContaining({ source: '/run/x/c2' })]);
    expect(again.process?.env?.filter((e) => e.startsWith('NODE_OPTIONS='))).toEqual(['NODE_OPTIONS=--max-old-space-size=512 --require /.pageshare/node-gc-agent.js']);
  });

  it('adds no environment for a JVM-only container', () => {
    const out = withGcHook({ ...base, process: { args: ['java'], env: ['PATH=/bin'] } }, { mode: 'jvm', timeoutMs: 1 }, '/a', '/r');
    expect(out.process?.env).toEqual(['PATH=/bin']);
  });

  it('leaves the bundle of a container that does not opt in byte for byte as it was', () => {
    const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-gcspec-'));
    try {
      const text = JSON.stringify({ ...base, annotations: {} }, null, 2);
      fs.writeFileSync(path.join(bundle, 'config.json'), text);
      expect(prepareGcHook(bundle, 'ns', 'c')).toBeUndefined();
      expect(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')).toBe(text);
    } finally {
      fs.rmSync(bundle, { recursive: true, force: true });
    }
  });
});
