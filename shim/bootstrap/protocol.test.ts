import { PROTOCOL_ENV, chooseProtocol } from './protocol';

describe('chooseProtocol', () => {
  it('picks ttrpc unless told otherwise (containerd drops idle gRPC shim connections)', () => {
    expect(chooseProtocol({})).toBe('ttrpc');
    expect(chooseProtocol({ [PROTOCOL_ENV]: 'auto' })).toBe('ttrpc');
    expect(chooseProtocol({ [PROTOCOL_ENV]: '' })).toBe('ttrpc');
  });

  it('lets the environment choose either protocol', () => {
    expect(PROTOCOL_ENV).toBe('PAGESHARE_SHIM_PROTOCOL');
    expect(chooseProtocol({ PAGESHARE_SHIM_PROTOCOL: 'grpc' })).toBe('grpc');
    expect(chooseProtocol({ PAGESHARE_SHIM_PROTOCOL: 'ttrpc' })).toBe('ttrpc');
  });

  it('refuses any other value, naming it', () => {
    expect(() => chooseProtocol({ PAGESHARE_SHIM_PROTOCOL: 'GRPC' })).toThrow('PAGESHARE_SHIM_PROTOCOL must be grpc, ttrpc or auto, not "GRPC"');
    expect(() => chooseProtocol({ PAGESHARE_SHIM_PROTOCOL: 'http' })).toThrow(/not "http"/);
  });

  it('reads process.env by default', () => {
    const saved = process.env[PROTOCOL_ENV];
    try {
      process.env[PROTOCOL_ENV] = 'grpc';
      expect(chooseProtocol()).toBe('grpc');
      delete process.env[PROTOCOL_ENV];
      expect(chooseProtocol()).toBe('ttrpc');
    } finally {
      if (saved === undefined) delete process.env[PROTOCOL_ENV];
      else process.env[PROTOCOL_ENV] = saved;
    }
  });
});
