import { InvalidArgumentError } from '../errors/shim-error';
import { parseShimFlags, type ShimFlags } from './shim-flags';

const DEFAULTS: ShimFlags = {
  namespace: '',
  address: '',
  publishBinary: '',
  id: '',
  bundle: '',
  socket: '',
  debug: false,
  version: false,
  action: undefined,
};

describe('parseShimFlags', () => {
  it('parses the flags containerd passes to start', () => {
    const argv = ['-namespace', 'ns', '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 'c1', '-debug', 'start'];
    expect(parseShimFlags(argv)).toEqual({
      ...DEFAULTS,
      namespace: 'ns',
      address: '/run/containerd/containerd.sock',
      publishBinary: '/usr/bin/containerd',
      id: 'c1',
      debug: true,
      action: 'start',
    });
  });

  it('parses delete with a bundle', () => {
    expect(parseShimFlags(['-namespace', 'default', '-id', 'x', '-bundle', '/run/bundle/x', 'delete'])).toEqual({
      ...DEFAULTS,
      namespace: 'default',
      id: 'x',
      bundle: '/run/bundle/x',
      action: 'delete',
    });
  });

  it('gives defaults for no arguments', () => {
    expect(parseShimFlags([])).toEqual(DEFAULTS);
  });

  it('accepts --flag, -flag=value and --flag=value forms', () => {
    expect(parseShimFlags(['--namespace', 'a', '-id=c2', '--bundle=/b', '--socket=unix:///s.sock', 'serve'])).toEqual({
      ...DEFAULTS,
      namespace: 'a',
      id: 'c2',
      bundle: '/b',
      socket: 'unix:///s.sock',
      action: 'serve',
    });
  });

  it('keeps everything after the first = in an inline value, and an empty inline value', () => {
    expect(parseShimFlags(['-address=/a=b=c']).address).toBe('/a=b=c');
    expect(parseShimFlags(['-id=']).id).toBe('');
  });

  it('takes the next argument as a value even when it looks like a flag or an action', () => {
    expect(parseShimFlags(['-id', '-debug']).id).toBe('-debug');
    expect(parseShimFlags(['-id', '-debug']).debug).toBe(false);
    const f = parseShimFlags(['-id', 'start', 'delete']);
    expect(f.id).toBe('start');
    expect(f.action).toBe('delete');
  });

  it('reads boolean flags alone or with =true / =false', () => {
    expect(parseShimFlags(['-v']).version).toBe(true);
    expect(parseShimFlags(['--debug']).debug).toBe(true);
    expect(parseShimFlags(['-debug=true']).debug).toBe(true);
    expect(parseShimFlags(['-debug=false']).debug).toBe(false);
    expect(parseShimFlags(['-debug', '-debug=false']).debug).toBe(false);
    // A boolean flag does not swallow the next argument.
    expect(parseShimFlags(['-debug', 'start'])).toEqual({ ...DEFAULTS, debug: true, action: 'start' });
  });

  it('reads boolean inline values as Go does (strconv.ParseBool)', () => {
    expect(parseShimFlags(['-debug=1']).debug).toBe(true);
    expect(parseShimFlags(['-debug=TRUE']).debug).toBe(true);
    expect(parseShimFlags(['-v=t']).version).toBe(true);
    expect(() => parseShimFlags(['-debug=yes'])).toThrow(InvalidArgumentError);
  });

  it('lets a later flag win', () => {
    expect(parseShimFlags(['-id', 'a', '-id', 'b']).id).toBe('b');
  });

  it('refuses an unknown flag', () => {
    expect(() => parseShimFlags(['-nope', 'x'])).toThrow(new InvalidArgumentError('unknown flag -nope'));
    expect(() => parseShimFlags(['--nope=1'])).toThrow(new InvalidArgumentError('unknown flag -nope'));
    // Names are exact: no prefixes, no case folding.
    expect(() => parseShimFlags(['-name', 'ns'])).toThrow(InvalidArgumentError);
    expect(() => parseShimFlags(['-ID', 'x'])).toThrow(InvalidArgumentError);
  });

  it('refuses a string flag without a value', () => {
    expect(() => parseShimFlags(['-namespace'])).toThrow(new InvalidArgumentError('flag -namespace needs a value'));
    expect(() => parseShimFlags(['-id', 'x', '--bundle'])).toThrow(new InvalidArgumentError('flag -bundle needs a value'));
  });

  it('refuses an unknown action', () => {
    expect(() => parseShimFlags(['-id', 'x', 'stop'])).toThrow(new InvalidArgumentError('unknown action "stop" (expected start, delete or serve)'));
    expect(() => parseShimFlags(['Start'])).toThrow(InvalidArgumentError);
  });

  it('throws errors that map to INVALID_ARGUMENT', () => {
    try {
      parseShimFlags(['-bogus']);
      throw new Error('did not throw');
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).grpcStatus).toBe(3);
    }
  });
});
