import { PROTOCOL_ENV, chooseProtocol } from './protocol';

describe('chooseProtocol', () => {
  it('picks gRPC for bootstrap version 2 (containerd 1.7) and ttrpc for 3 (containerd 2.x)', () => {
    expect(chooseProtocol(2, {})).toBe('grpc');
    expect(chooseProtocol(3, {})).toBe('ttrpc');
  });

  it('treats "auto" and an empty value as unset', () => {
    expect(chooseProtocol(2, { [PROTOCOL_ENV]: 'auto' })).toBe('grpc');
    expect(chooseProtocol(3, { [PROTOCOL_ENV]: 'auto' })).toBe('ttrpc');
    expect(chooseProtocol(3, { [PROTOCOL_ENV]: '' })).toBe('ttrpc');
  });

  it('lets the environment override either way', () => {
    expect(PROTOCOL_ENV).toBe('PAGESHARE_SHIM_PROTOCOL');
    expect(chooseProtocol(2, { PAGESHARE_SHIM_PROTOCOL: 'ttrpc' })).toBe('ttrpc');
    expect(chooseProtocol(3, { PAGESHARE_SHIM_PROTOCOL: 'grpc' })).toBe('grpc');
  });

  it('refuses any other value, naming it', () => {
    expect(() => chooseProtocol(3, { PAGESHARE_SHIM_PROTOCOL: 'GRPC' })).toThrow('PAGESHARE_SHIM_PROTOCOL must be grpc, ttrpc or auto, not "GRPC"');
    expect(() => chooseProtocol(2, { PAGESHARE_SHIM_PROTOCOL: 'http' })).toThrow(/not "http"/);
  });

  it('reads process.env by default', () => {
    const saved = process.env[PROTOCOL_ENV];
    try {
      process.env[PROTOCOL_ENV] = 'grpc';
      expect(chooseProtocol(3)).toBe('grpc');
      delete process.env[PROTOCOL_ENV];
      expect(chooseProtocol(3)).toBe('ttrpc');
    } finally {
      if (saved === undefined) delete process.env[PROTOCOL_ENV];
      else process.env[PROTOCOL_ENV] = saved;
    }
  });
});
