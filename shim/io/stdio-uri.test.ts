import { InvalidArgumentError } from '../errors/shim-error';
import { parseStdioTarget } from './stdio-uri';

describe('parseStdioTarget', () => {
  it('reads an empty value as no stdio', () => {
    expect(parseStdioTarget('')).toEqual({ kind: 'none' });
  });

  it('reads a plain path as a fifo, verbatim', () => {
    expect(parseStdioTarget('/run/containerd/fifo/1/c1-stdout')).toEqual({ kind: 'fifo', path: '/run/containerd/fifo/1/c1-stdout' });
    // Plain paths are not URIs: no percent-decoding, '?' and '#' are part of the name.
    expect(parseStdioTarget('/tmp/a%20b?c#d')).toEqual({ kind: 'fifo', path: '/tmp/a%20b?c#d' });
    expect(parseStdioTarget('relative/fifo')).toEqual({ kind: 'fifo', path: 'relative/fifo' });
  });

  it('reads fifo:// and file:// URIs', () => {
    expect(parseStdioTarget('fifo:///run/x/stdout')).toEqual({ kind: 'fifo', path: '/run/x/stdout' });
    expect(parseStdioTarget('file:///var/log/c1.log')).toEqual({ kind: 'file', path: '/var/log/c1.log' });
  });

  it('percent-decodes URI paths', () => {
    expect(parseStdioTarget('file:///var/log/my%20logs/c%231.log')).toEqual({ kind: 'file', path: '/var/log/my logs/c#1.log' });
    expect(parseStdioTarget('binary:///opt/log%20driver/bin')).toEqual({ kind: 'binary', path: '/opt/log driver/bin', args: [] });
    expect(parseStdioTarget('fifo:///run/%C3%A9t%C3%A9')).toEqual({ kind: 'fifo', path: '/run/été' });
  });

  it('turns binary:// query keys and their first values into arguments, in order', () => {
    expect(parseStdioTarget('binary:///usr/bin/logger?id=c1&namespace=default')).toEqual({
      kind: 'binary',
      path: '/usr/bin/logger',
      args: ['id', 'c1', 'namespace', 'default'],
    });
  });

  it('omits empty values, keeps a repeated key once with its first value, and decodes query parts', () => {
    expect(parseStdioTarget('binary:///bin/l?--verbose&-n=1&-n=2&msg=hello%20world&plus=a+b')).toEqual({
      kind: 'binary',
      path: '/bin/l',
      args: ['--verbose', '-n', '1', 'msg', 'hello world', 'plus', 'a b'],
    });
    expect(parseStdioTarget('binary:///bin/l?')).toEqual({ kind: 'binary', path: '/bin/l', args: [] });
  });

  it('refuses an unsupported scheme', () => {
    expect(() => parseStdioTarget('http://example.com/log')).toThrow(InvalidArgumentError);
    expect(() => parseStdioTarget('tcp://127.0.0.1:9000')).toThrow(/unsupported stdio scheme "tcp:"/);
  });

  it('refuses a malformed URI', () => {
    expect(() => parseStdioTarget('://nothing')).toThrow(new InvalidArgumentError('malformed stdio URI "://nothing"'));
    expect(() => parseStdioTarget('binary://[::1/bin')).toThrow(InvalidArgumentError);
    expect(() => parseStdioTarget('1bad://x')).toThrow(InvalidArgumentError);
  });

  it('refuses a URI with malformed percent-encoding as an invalid argument', () => {
    expect(() => parseStdioTarget('file:///var/log/100%.log')).toThrow(InvalidArgumentError);
  });
});
