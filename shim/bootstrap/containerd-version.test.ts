import { bootstrapVersionFor } from './containerd-version';

describe('bootstrapVersionFor', () => {
  it.each([
    ['1.7.24~ds1', 2],
    ['1.7.24', 2],
    ['v1.7.24', 2],
    ['1.6.36-0ubuntu1~24.04.2', 2],
    ['1.10.0', 2],
    ['v2.1.9', 3],
    ['2.1.9+unknown', 3],
    ['2.0.0-rc.1', 3],
    ['v2.2.0', 3],
    ['10.0.1', 3],
  ] as const)('%s -> bootstrap version %i', (version, expected) => {
    expect(bootstrapVersionFor(version)).toBe(expected);
  });

  it('falls back to 2 for a version it cannot read', () => {
    expect(bootstrapVersionFor('')).toBe(2);
    expect(bootstrapVersionFor('devel')).toBe(2);
  });
});
