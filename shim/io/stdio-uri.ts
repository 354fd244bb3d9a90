// containerd names a process's stdout/stderr by path (a fifo it reads), or by URI:
// binary:///path/to/logger?arg=value (a logging binary the shim starts) or file:///path.
import { InvalidArgumentError } from '../errors/shim-error';

export type StdioTarget =
  | { kind: 'none' }
  | { kind: 'fifo'; path: string }
  | { kind: 'file'; path: string }
  | { kind: 'binary'; path: string; args: string[] };

export function parseStdioTarget(value: string): StdioTarget {
  if (!value) return { kind: 'none' };
  if (!value.includes('://')) return { kind: 'fifo', path: value };
  let url: URL;
  let path: string;
  try {
    url = new URL(value);
    path = decodeURIComponent(url.pathname);
  } catch {
    throw new InvalidArgumentError(`malformed stdio URI "${value}"`);
  }
  switch (url.protocol) {
    case 'fifo:':
      return { kind: 'fifo', path };
    case 'file:':
      return { kind: 'file', path };
    case 'binary:': {
      // As the runc shim does: each query key, then its first value, become arguments.
      const args: string[] = [];
      for (const key of new Set(url.searchParams.keys())) {
        args.push(key);
        const first = url.searchParams.get(key);
        if (first) args.push(first);
      }
      return { kind: 'binary', path, args };
    }
    default:
      throw new InvalidArgumentError(`unsupported stdio scheme "${url.protocol}" in "${value}" (use a fifo path, binary:// or file://)`);
  }
}
