/**
 * Unit tests for the native addon, with real syscalls (Linux, root).
 * Every fd a test opens is closed (see `fds`), every process it starts is
 * reaped, and nothing waits on a timer: tests wait on the events themselves.
 */
import { spawn } from 'child_process';
import { once } from 'events';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  ADDON_RELATIVE_PATH,
  ExitStatus,
  NativeAddon,
  ReadableWatcher,
  acceptConnection,
  addonPath,
  eventfd,
  findRepoRoot,
  flock,
  funlock,
  getWindowSize,
  isChildSubreaper,
  isMemoryMerge,
  loadNativeAddon,
  nativeAddon,
  openPty,
  pidfdOpen,
  pipe2,
  readEventfd,
  receiveFd,
  sendFd,
  setChildSubreaper,
  setMemoryMerge,
  setWindowSize,
  unixConnect,
  unixListen,
  waitPidfd,
  watchReadable,
} from './index';

const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = fs.constants.O_NONBLOCK;
const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** fds opened by the current test; whatever is left is closed afterwards. */
const fds = {
  open: new Set<number>(),
  track(fd: number): number {
    this.open.add(fd);
    return fd;
  },
  close(fd: number): void {
    this.open.delete(fd);
    fs.closeSync(fd);
  },
  closeAll(): void {
    for (const fd of [...this.open]) this.close(fd);
  },
};

/** Watchers opened by the current test; closed afterwards (close is idempotent). */
const watchers: ReadableWatcher[] = [];

let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-native-'));
});

afterEach(() => {
  for (const w of watchers.splice(0)) w.close();
  fds.closeAll();
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** open(2) flags of an fd, from /proc/self/fdinfo. */
function fdFlags(fd: number): number {
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const match = /^flags:\s+([0-7]+)$/m.exec(info);
  if (!match) throw new Error(`no flags in fdinfo of ${fd}`);
  return parseInt(match[1], 8);
}

/** Watch fd; resolve with onReadable()'s value the first time it is not
 * undefined, closing the watcher then. */
function whenReadable<T>(fd: number, onReadable: () => T | undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const watcher: ReadableWatcher = watchReadable(fd, () => {
      try {
        const value = onReadable();
        if (value === undefined) return;
        watcher.close();
        resolve(value);
      } catch (err) {
        watcher.close();
        reject(err);
      }
    });
    watchers.push(watcher);
  });
}

/** Expect fn() to throw an error of this type with these properties. The
 * type is compared by name: jest runs tests in a vm context, so errors made
 * by the addon (main context) fail `instanceof` against the test's globals. */
function expectThrow(fn: () => unknown, props: Record<string, unknown>, type: ErrorConstructor = Error): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toEqual(expect.objectContaining(props));
  expect(Object.prototype.toString.call(thrown)).toBe('[object Error]');
  expect((thrown as Error).name).toBe(type.name);
}

// ---------------------------------------------------------------------------

describe('loading', () => {
  test('finds the repository root and the built addon', () => {
    expect(findRepoRoot(__dirname)).toBe(REPO_ROOT);
    expect(addonPath()).toBe(path.join(REPO_ROOT, ADDON_RELATIVE_PATH));
    expect(typeof nativeAddon().pipe2).toBe('function');
  });

  test('names the path tried when the addon is not built', () => {
    const fakeRoot = path.join(tmp, 'fake-repo');
    fs.mkdirSync(path.join(fakeRoot, 'shim', 'native'), { recursive: true });
    fs.writeFileSync(path.join(fakeRoot, 'package.json'), JSON.stringify({ name: 'pageshare' }));
    const expected = path.join(fakeRoot, ADDON_RELATIVE_PATH);
    expect(() => loadNativeAddon(path.join(fakeRoot, 'shim', 'native'))).toThrow(
      `native addon not built: run \`make build\` (tried ${expected})`,
    );
  });

  test('skips package.json files of other packages', () => {
    const other = path.join(tmp, 'other');
    fs.mkdirSync(other, { recursive: true });
    fs.writeFileSync(path.join(other, 'package.json'), JSON.stringify({ name: 'not-pageshare' }));
    expect(findRepoRoot(other)).toBeNull();
    expect(() => addonPath(other)).toThrow(/cannot find the pageshare repository root/);
  });
});

describe('pipe2', () => {
  test('returns a close-on-exec pipe', () => {
    const [r, w] = pipe2().map((fd) => fds.track(fd));
    expect(r).not.toBe(w);
    expect(fdFlags(r) & O_CLOEXEC).toBe(O_CLOEXEC);
    expect(fdFlags(w) & O_CLOEXEC).toBe(O_CLOEXEC);
    expect(fdFlags(r) & O_NONBLOCK).toBe(0);
    fs.writeSync(w, 'hello');
    const buf = Buffer.alloc(16);
    expect(buf.toString('utf8', 0, fs.readSync(r, buf))).toBe('hello');
  });
});

describe('child subreaper', () => {
  afterEach(() => setChildSubreaper(false));

  test('set and get', () => {
    setChildSubreaper(true);
    expect(isChildSubreaper()).toBe(true);
    setChildSubreaper(false);
    expect(isChildSubreaper()).toBe(false);
    setChildSubreaper();
    expect(isChildSubreaper()).toBe(true);
  });
});

describe('pidfd', () => {
  /** Orphans not reaped yet (pidfd -> pid), killed and reaped after each test. */
  const unreaped = new Map<number, number>();

  beforeEach(() => setChildSubreaper(true));
  afterEach(async () => {
    for (const [pidfd, pid] of unreaped) {
      const exited = whenExited(pidfd);
      process.kill(pid, 'SIGKILL');
      await exited;
    }
    setChildSubreaper(false);
  });

  /**
   * Start `script` as a background subshell of /bin/sh and let sh exit, so
   * the subshell is re-parented to us (we are a child subreaper) without
   * libuv knowing it: exactly the situation of a container init after
   * `runc create` exits. fd 3 of the subshell is `fd3`.
   */
  async function startOrphan(script: string, fd3: number): Promise<number> {
    const sh = spawn('/bin/sh', ['-c', `( ${script} ) </dev/null >/dev/null 2>&1 & echo $!`], {
      stdio: ['ignore', 'pipe', 'inherit', fd3],
    });
    let out = '';
    sh.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const [code] = (await once(sh, 'close')) as [number | null];
    expect(code).toBe(0);
    const pid = Number(out.trim());
    expect(Number.isInteger(pid) && pid > 0).toBe(true);
    return pid;
  }

  /** The orphan's ExitStatus, once its pidfd is readable. */
  function whenExited(pidfd: number): Promise<ExitStatus> {
    return whenReadable(pidfd, () => {
      const status = waitPidfd(pidfd);
      if (status === null) return undefined;
      unreaped.delete(pidfd);
      return status;
    });
  }

  /** Start an orphan blocked reading fd 3 until `release` is called. */
  async function blockedOrphan(script: string): Promise<{ pid: number; pidfd: number; release(): void }> {
    const [r, w] = pipe2().map((fd) => fds.track(fd));
    const pid = await startOrphan(`read line <&3; ${script}`, r);
    fds.close(r);
    const pidfd = fds.track(pidfdOpen(pid));
    unreaped.set(pidfd, pid);
    return { pid, pidfd, release: () => fds.close(w) };
  }

  test('reaps an exited orphan through its pidfd', async () => {
    const orphan = await blockedOrphan('exit 7');
    expect(fdFlags(orphan.pidfd) & O_CLOEXEC).toBe(O_CLOEXEC);
    expect(waitPidfd(orphan.pidfd)).toBeNull(); // still blocked in read
    const exited = whenExited(orphan.pidfd);
    orphan.release(); // EOF on fd 3: read fails, the subshell exits 7
    expect(await exited).toEqual({ pid: orphan.pid, exitCode: 7, signal: null, status: 7 });
    expect(fs.existsSync(`/proc/${orphan.pid}`)).toBe(false); // reaped, no zombie
  });

  test('reports a killed orphan as 128 + signal', async () => {
    const orphan = await blockedOrphan('exit 0');
    const exited = whenExited(orphan.pidfd);
    process.kill(orphan.pid, 'SIGKILL');
    expect(await exited).toEqual({ pid: orphan.pid, exitCode: null, signal: 9, status: 137 });
  });

  test('throws ECHILD for a process that is not our child', () => {
    const pidfd = fds.track(pidfdOpen(process.pid));
    expectThrow(() => waitPidfd(pidfd), { code: 'ECHILD', errno: os.constants.errno.ECHILD, syscall: 'waitid' });
  });

  test('throws ESRCH for a pid that does not exist', () => {
    expectThrow(() => pidfdOpen(0x7fffffff), {
      code: 'ESRCH',
      errno: os.constants.errno.ESRCH,
      syscall: 'pidfd_open',
      message: 'ESRCH: No such process, pidfd_open',
    });
  });
});

describe('watchReadable', () => {
  test('calls back when a pipe becomes readable; close() inside the callback', async () => {
    const [r, w] = pipe2().map((fd) => fds.track(fd));
    const got = whenReadable(r, () => {
      const buf = Buffer.alloc(16);
      return buf.toString('utf8', 0, fs.readSync(r, buf));
    });
    expect(fdFlags(r) & O_NONBLOCK).toBe(O_NONBLOCK); // uv_poll_init's doing
    fs.writeSync(w, 'ping');
    expect(await got).toBe('ping');
  });

  test('is level-triggered: calls back again until the data is consumed', async () => {
    const [r, w] = pipe2().map((fd) => fds.track(fd));
    let calls = 0;
    const thirdCall = whenReadable(r, () => (++calls === 3 ? calls : undefined));
    fs.writeSync(w, 'x');
    expect(await thirdCall).toBe(3);
  });

  test('calls back on hang-up', async () => {
    const [r, w] = pipe2().map((fd) => fds.track(fd));
    const hungUp = whenReadable(r, () => fs.readSync(r, Buffer.alloc(1)) === 0 || undefined);
    fds.close(w);
    expect(await hungUp).toBe(true);
  });

  test('never calls back after close(); close() is idempotent', async () => {
    const [r1, w1] = pipe2().map((fd) => fds.track(fd));
    const [r2, w2] = pipe2().map((fd) => fds.track(fd));
    let closedCalls = 0;
    const closed = watchReadable(r1, () => closedCalls++);
    watchers.push(closed);
    closed.close();
    closed.close();
    const other = whenReadable(r2, () => true);
    // Both fds become readable before the loop polls again, so a live
    // watcher on r1 would be called in the same poll phase as r2's.
    fs.writeSync(w1, 'x');
    fs.writeSync(w2, 'x');
    await other;
    await new Promise<void>((resolve) => setImmediate(resolve)); // end of that poll phase
    expect(closedCalls).toBe(0);
  });

  test('the fd can be watched again after close()', async () => {
    const [r, w] = pipe2().map((fd) => fds.track(fd));
    watchReadable(r, () => undefined).close();
    const again = whenReadable(r, () => true);
    fs.writeSync(w, 'x');
    expect(await again).toBe(true);
  });

  test('refuses a second watcher on the same fd (EEXIST)', () => {
    const [r] = pipe2().map((fd) => fds.track(fd));
    watchers.push(watchReadable(r, () => undefined));
    expectThrow(() => watchReadable(r, () => undefined), { code: 'EEXIST', syscall: 'uv_poll_init' });
  });

  test('refuses a regular file (EPERM)', () => {
    const file = path.join(tmp, 'regular');
    fs.writeFileSync(file, '');
    const fd = fds.track(fs.openSync(file, 'r'));
    expectThrow(() => watchReadable(fd, () => undefined), { code: 'EPERM', syscall: 'uv_poll_init' });
  });

  test('keeps the event loop alive while open, and lets it exit once closed', async () => {
    // The child has nothing but the watcher on its stdin to keep it running.
    const script = `
      const fs = require('fs');
      const addon = require(${JSON.stringify(addonPath())});
      const watcher = addon.watchReadable(0, () => {
        const buf = Buffer.alloc(64);
        fs.writeSync(1, 'got ' + buf.toString('utf8', 0, fs.readSync(0, buf)));
        watcher.close();
      });
      fs.writeSync(1, 'ready\\n');`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out === 'ready\n') child.stdin.write('ping');
    });
    const [code] = (await once(child, 'close')) as [number | null];
    expect(out).toBe('ready\ngot ping');
    expect(code).toBe(0);
  });
});

describe('console socket', () => {
  let n = 0;
  const socketPath = (): string => path.join(tmp, `console-${++n}.sock`);

  /** A listening socket and a client connected to it, plus the accepted end. */
  function connectedPair(): { listener: number; client: number; server: number } {
    const p = socketPath();
    const listener = fds.track(unixListen(p));
    expect(acceptConnection(listener)).toBeNull();
    const client = fds.track(unixConnect(p));
    const server = fds.track(acceptConnection(listener) ?? -1);
    expect(server).toBeGreaterThanOrEqual(0);
    return { listener, client, server };
  }

  test('listen, accept (when readable), receive a pty master and its name', async () => {
    const p = socketPath();
    const listener = fds.track(unixListen(p));
    expect(fs.statSync(p).isSocket()).toBe(true);
    expect(fdFlags(listener) & (O_CLOEXEC | O_NONBLOCK)).toBe(O_CLOEXEC | O_NONBLOCK);

    const accepted = whenReadable(listener, () => acceptConnection(listener) ?? undefined);
    const client = fds.track(unixConnect(p));
    const server = fds.track(await accepted);
    expect(fdFlags(server) & (O_CLOEXEC | O_NONBLOCK)).toBe(O_CLOEXEC | O_NONBLOCK);

    expect(receiveFd(server)).toBeNull(); // nothing sent yet
    const pty = openPty();
    fds.track(pty.master);
    fds.track(pty.slave);
    const received = whenReadable(server, () => receiveFd(server) ?? undefined);
    sendFd(client, pty.master, pty.name);
    const { fd, name } = await received;
    fds.track(fd);

    expect(name).toBe(pty.name);
    expect(name).toMatch(/^\/dev\/pts\/\d+$/);
    expect(fd).not.toBe(pty.master);
    expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);
    const a = fs.fstatSync(fd);
    const b = fs.fstatSync(pty.master);
    expect([a.dev, a.ino, a.rdev]).toEqual([b.dev, b.ino, b.rdev]);
  });

  test('an empty name round-trips', () => {
    const { client, server } = connectedPair();
    const [r] = pipe2().map((fd) => fds.track(fd));
    sendFd(client, r, '');
    const got = receiveFd(server);
    expect(got).not.toBeNull();
    fds.track(got?.fd ?? -1);
    expect(got?.name).toBe('');
  });

  test('throws EPROTO for a message without an fd', () => {
    const { client, server } = connectedPair();
    fs.writeSync(client, '/dev/pts/0');
    expectThrow(() => receiveFd(server), { code: 'EPROTO' });
  });

  test('throws ECONNRESET when the peer closes without sending an fd', () => {
    const { client, server } = connectedPair();
    fds.close(client);
    expectThrow(() => receiveFd(server), { code: 'ECONNRESET' });
  });

  test('reports bind and connect failures with the path', () => {
    const p = socketPath();
    fds.track(unixListen(p));
    expectThrow(() => unixListen(p), { code: 'EADDRINUSE', syscall: 'bind', path: p });
    const missing = path.join(tmp, 'missing.sock');
    expectThrow(() => unixConnect(missing), { code: 'ENOENT', syscall: 'connect', path: missing });
  });

  test('rejects paths that do not fit in sockaddr_un', () => {
    const long = path.join(tmp, 'x'.repeat(120));
    expectThrow(() => unixListen(long), { code: 'ERR_OUT_OF_RANGE' }, RangeError);
    expectThrow(() => unixConnect(''), { code: 'ERR_INVALID_ARG_VALUE' }, TypeError);
  });
});

describe('pty window size', () => {
  test('set on the master, read on the slave', () => {
    const pty = openPty();
    fds.track(pty.master);
    fds.track(pty.slave);
    expect(fdFlags(pty.master) & O_CLOEXEC).toBe(O_CLOEXEC);
    expect(fs.realpathSync(`/proc/self/fd/${pty.slave}`)).toBe(pty.name);
    setWindowSize(pty.master, 40, 120);
    expect(getWindowSize(pty.slave)).toEqual({ rows: 40, cols: 120 });
    setWindowSize(pty.master, 65535, 0);
    expect(getWindowSize(pty.master)).toEqual({ rows: 65535, cols: 0 });
  });

  test('ENOTTY on a non-terminal; rows and cols must fit in 16 bits', () => {
    const [r] = pipe2().map((fd) => fds.track(fd));
    expectThrow(() => setWindowSize(r, 24, 80), { code: 'ENOTTY', syscall: 'ioctl' });
    expectThrow(() => getWindowSize(r), { code: 'ENOTTY', syscall: 'ioctl' });
    expectThrow(() => setWindowSize(r, 65536, 80), { code: 'ERR_OUT_OF_RANGE' }, RangeError);
  });
});

describe('flock', () => {
  test('exclusive and shared locks between two open file descriptions', () => {
    const file = path.join(tmp, 'lockfile');
    fs.writeFileSync(file, '');
    const a = fds.track(fs.openSync(file, 'r'));
    const b = fds.track(fs.openSync(file, 'r'));

    expect(flock(a, true, false)).toBe(true);
    expect(flock(b, true, false)).toBe(false);
    expect(flock(b, false, false)).toBe(false);
    funlock(a);
    expect(flock(b, true, true)).toBe(true); // free, so waiting returns at once
    funlock(b);

    expect(flock(a, false, false)).toBe(true);
    expect(flock(b, false, false)).toBe(true);
    expect(flock(b, true, false)).toBe(false);
    funlock(a);
    funlock(b);
  });

  test('EBADF on a closed fd', () => {
    const [r] = pipe2();
    fs.closeSync(r);
    expectThrow(() => flock(r, true, false), { code: 'EBADF', syscall: 'flock' });
  });
});

describe('eventfd', () => {
  const write = (fd: number, value: bigint): void => {
    const buf = Buffer.alloc(8);
    if (os.endianness() === 'LE') buf.writeBigUInt64LE(value);
    else buf.writeBigUInt64BE(value);
    fs.writeSync(fd, buf);
  };

  test('counts writes, reads reset, null when zero', () => {
    const fd = fds.track(eventfd());
    expect(fdFlags(fd) & (O_CLOEXEC | O_NONBLOCK)).toBe(O_CLOEXEC | O_NONBLOCK);
    expect(readEventfd(fd)).toBeNull();
    write(fd, 2n);
    write(fd, 3n);
    expect(readEventfd(fd)).toBe(5n);
    expect(readEventfd(fd)).toBeNull();
    write(fd, 0xfffffffffffffffen); // the largest counter value
    expect(readEventfd(fd)).toBe(0xfffffffffffffffen);
  });

  test('wakes a watcher', async () => {
    const fd = fds.track(eventfd());
    const value = whenReadable(fd, () => readEventfd(fd) ?? undefined);
    write(fd, 1n);
    expect(await value).toBe(1n);
  });
});

describe('memory merge (KSM)', () => {
  const hasKsm = fs.existsSync('/sys/kernel/mm/ksm');
  (hasKsm ? test : test.skip)('set and get PR_SET_MEMORY_MERGE', () => {
    const before = isMemoryMerge();
    try {
      setMemoryMerge(true);
      expect(isMemoryMerge()).toBe(true);
      setMemoryMerge(false);
      expect(isMemoryMerge()).toBe(false);
    } finally {
      setMemoryMerge(before);
    }
  });
});

describe('argument validation', () => {
  type Untyped = Record<keyof NativeAddon, (...args: unknown[]) => unknown>;
  const wrappers = {
    readEventfd,
    flock,
    funlock,
    setChildSubreaper,
    setMemoryMerge,
    pidfdOpen,
    waitPidfd,
    watchReadable,
    unixListen,
    acceptConnection,
    unixConnect,
    sendFd,
    receiveFd,
    setWindowSize,
    getWindowSize,
  } as unknown as Partial<Untyped>;

  const cases: Array<[keyof NativeAddon, unknown[], ErrorConstructor, string]> = [
    ['readEventfd', [], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['readEventfd', ['3'], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['readEventfd', [-1], RangeError, 'ERR_OUT_OF_RANGE'],
    ['readEventfd', [1.5], RangeError, 'ERR_OUT_OF_RANGE'],
    ['readEventfd', [NaN], RangeError, 'ERR_OUT_OF_RANGE'],
    ['readEventfd', [2 ** 31], RangeError, 'ERR_OUT_OF_RANGE'],
    ['flock', [0, 'yes', false], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['flock', [0, true], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['funlock', [null], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['setChildSubreaper', [1], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['setMemoryMerge', ['on'], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['pidfdOpen', [0], RangeError, 'ERR_OUT_OF_RANGE'],
    ['pidfdOpen', [Infinity], RangeError, 'ERR_OUT_OF_RANGE'],
    ['waitPidfd', [10n], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['watchReadable', [0, 'callback'], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['watchReadable', [-5, () => undefined], RangeError, 'ERR_OUT_OF_RANGE'],
    ['unixListen', [42], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['unixListen', ['/tmp/a\0b'], TypeError, 'ERR_INVALID_ARG_VALUE'],
    ['unixListen', ['/tmp/' + 'x'.repeat(103)], RangeError, 'ERR_OUT_OF_RANGE'],
    ['acceptConnection', [{}], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['unixConnect', [''], TypeError, 'ERR_INVALID_ARG_VALUE'],
    ['sendFd', [0, 0, 5], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['sendFd', [0, 0, 'x'.repeat(4096)], RangeError, 'ERR_OUT_OF_RANGE'],
    ['receiveFd', [undefined], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['setWindowSize', [0, 24, 65536], RangeError, 'ERR_OUT_OF_RANGE'],
    ['setWindowSize', [0, '24', 80], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['getWindowSize', [-1], RangeError, 'ERR_OUT_OF_RANGE'],
  ];

  /** Short, printable rendering of the arguments for test titles. */
  const show = (value: unknown): string => {
    if (typeof value === 'string') {
      const text = JSON.stringify(value.length > 12 ? `${value.slice(0, 8)}…` : value);
      return value.length > 12 ? `${text} (${value.length} chars)` : text;
    }
    if (typeof value === 'bigint') return `${value}n`;
    if (typeof value === 'function') return 'fn';
    if (typeof value === 'object' && value !== null) return JSON.stringify(value);
    return String(value);
  };
  const titled = cases.map(([name, args, type, code]) => [`${name}(${args.map(show).join(', ')})`, name, args, type, code] as const);

  test.each(titled)('C rejects %s', (_title, name, args, type, code) => {
    const raw = nativeAddon() as unknown as Untyped;
    expectThrow(() => raw[name](...args), { code }, type);
  });

  test.each(titled)('TS rejects %s', (_title, name, args, type, code) => {
    const wrapper = wrappers[name];
    if (!wrapper) throw new Error(`no wrapper for ${name}`);
    expectThrow(() => wrapper(...args), { code }, type);
  });

  test('the path boundary is the same in TS and C: 107 bytes fit', () => {
    const dir = fs.mkdtempSync('/tmp/p');
    try {
      const p = path.join(dir, 'x'.repeat(107 - dir.length - 1));
      expect(Buffer.byteLength(p)).toBe(107);
      fds.track(unixListen(p));
      expectThrow(() => unixListen(p + 'x'), { code: 'ERR_OUT_OF_RANGE' }, RangeError);
      expectThrow(() => (nativeAddon() as unknown as Untyped).unixListen(p + 'x'), { code: 'ERR_OUT_OF_RANGE' }, RangeError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
