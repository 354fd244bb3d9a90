/**
 * Typed binding for native/ (pageshare_native.node): the Linux syscalls Node
 * does not expose. The addon is loaded lazily on first use, so importing this
 * module never fails; calling a function when the addon is not built throws
 * "native addon not built: run `make build` (tried <path>)".
 *
 * Every wrapper validates its arguments here (and the C side validates them
 * again). Invalid arguments throw TypeError (code ERR_INVALID_ARG_TYPE /
 * ERR_INVALID_ARG_VALUE) or RangeError (code ERR_OUT_OF_RANGE). Failed
 * syscalls throw an Error shaped like Node's system errors:
 * { code: 'ENOENT', errno: 2 (positive), syscall: 'bind', path?: string }.
 *
 * All file descriptors returned are close-on-exec; close them with
 * fs.closeSync().
 */
import * as fs from 'fs';
import * as path from 'path';

/** Result of reaping a process through its pidfd. */
export interface ExitStatus {
  pid: number;
  /** Exit code if the process exited normally, else null. */
  exitCode: number | null;
  /** Signal number if a signal killed the process, else null. */
  signal: number | null;
  /** containerd convention: exitCode, or 128 + signal. */
  status: number;
}

/** A file descriptor received over a unix socket, with the data sent along
 * with it (runc sends the pty path, e.g. "/dev/pts/3"). */
export interface ReceivedFd {
  fd: number;
  name: string;
}

export interface Pty {
  master: number;
  slave: number;
  /** Path of the slave end, e.g. "/dev/pts/3". */
  name: string;
}

export interface WindowSize {
  rows: number;
  cols: number;
}

/** Handle returned by watchReadable(). */
export interface ReadableWatcher {
  /** Stop watching. Idempotent; may be called from inside the callback. */
  close(): void;
}

/** The shape of pageshare_native.node, exactly as the C code exports it. */
export interface NativeAddon {
  pipe2(): [number, number];
  eventfd(): number;
  readEventfd(fd: number): bigint | null;
  flock(fd: number, exclusive: boolean, wait: boolean): boolean;
  funlock(fd: number): void;
  setChildSubreaper(on: boolean): void;
  isChildSubreaper(): boolean;
  setMemoryMerge(on: boolean): void;
  isMemoryMerge(): boolean;
  pidfdOpen(pid: number): number;
  waitPidfd(pidfd: number): ExitStatus | null;
  watchReadable(fd: number, callback: () => void): ReadableWatcher;
  unixListen(path: string): number;
  acceptConnection(listenFd: number): number | null;
  unixConnect(path: string): number;
  sendFd(sockFd: number, fd: number, name: string): void;
  receiveFd(connFd: number): ReceivedFd | null;
  setWindowSize(fd: number, rows: number, cols: number): void;
  getWindowSize(fd: number): WindowSize;
  openPty(): Pty;
}

const ADDON_FUNCTIONS: ReadonlyArray<keyof NativeAddon> = [
  'pipe2',
  'eventfd',
  'readEventfd',
  'flock',
  'funlock',
  'setChildSubreaper',
  'isChildSubreaper',
  'setMemoryMerge',
  'isMemoryMerge',
  'pidfdOpen',
  'waitPidfd',
  'watchReadable',
  'unixListen',
  'acceptConnection',
  'unixConnect',
  'sendFd',
  'receiveFd',
  'setWindowSize',
  'getWindowSize',
  'openPty',
];

/** Where the addon lives, relative to the repository root. */
export const ADDON_RELATIVE_PATH = path.join('native', 'build', 'Release', 'pageshare_native.node');

// ---- loading ---------------------------------------------------------------

function isPageshareRoot(dir: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, 'package.json'), 'utf8');
  } catch {
    return false;
  }
  try {
    const pkg: unknown = JSON.parse(text);
    return typeof pkg === 'object' && pkg !== null && (pkg as { name?: unknown }).name === 'pageshare';
  } catch {
    return false;
  }
}

/** The nearest directory at or above startDir holding the package.json of
 * "pageshare", or null. */
export function findRepoRoot(startDir: string): string | null {
  let dir = path.resolve(startDir);
  for (;;) {
    if (isPageshareRoot(dir)) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** Path of the .node file for the repository containing startDir. */
export function addonPath(startDir: string = __dirname): string {
  const root = findRepoRoot(startDir);
  if (root === null) {
    throw new Error(`cannot find the pageshare repository root (a package.json named "pageshare") above ${startDir}`);
  }
  return path.join(root, ADDON_RELATIVE_PATH);
}

/** Load the addon for the repository containing startDir (no caching beyond
 * Node's own module cache). Use nativeAddon() for the shared instance. */
export function loadNativeAddon(startDir: string = __dirname): NativeAddon {
  const file = addonPath(startDir);
  if (!fs.existsSync(file)) {
    throw new Error(`native addon not built: run \`make build\` (tried ${file})`);
  }
  const loaded: unknown = require(file);
  if (typeof loaded !== 'object' || loaded === null) {
    throw new Error(`native addon at ${file} did not export an object: run \`make build\``);
  }
  const missing = ADDON_FUNCTIONS.filter((name) => typeof (loaded as Record<string, unknown>)[name] !== 'function');
  if (missing.length > 0) {
    throw new Error(`native addon at ${file} is out of date (missing ${missing.join(', ')}): run \`make build\``);
  }
  return loaded as NativeAddon;
}

let cached: NativeAddon | undefined;

/** The raw addon (loaded on first call). Prefer the validating wrappers. */
export function nativeAddon(): NativeAddon {
  cached ??= loadNativeAddon();
  return cached;
}

// ---- argument validation -----------------------------------------------------

type ArgErrorCode = 'ERR_INVALID_ARG_TYPE' | 'ERR_INVALID_ARG_VALUE' | 'ERR_OUT_OF_RANGE';

function argError(code: ArgErrorCode, message: string): Error {
  const err = code === 'ERR_OUT_OF_RANGE' ? new RangeError(message) : new TypeError(message);
  return Object.assign(err, { code });
}

function typeOfValue(value: unknown): string {
  return value === null ? 'null' : typeof value;
}

function checkInt(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') {
    throw argError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be of type number. Received ${typeOfValue(value)}`);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw argError(
      'ERR_OUT_OF_RANGE',
      `The value of "${name}" is out of range. It must be an integer >= ${min} and <= ${max}. Received ${value}`,
    );
  }
  return value;
}

const INT32_MAX = 0x7fffffff;
const checkFd = (name: string, value: unknown): number => checkInt(name, value, 0, INT32_MAX);

function checkBool(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') {
    throw argError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be of type boolean. Received ${typeOfValue(value)}`);
  }
  return value;
}

/** A string without NUL bytes, at most maxBytes long in UTF-8. */
function checkString(name: string, value: unknown, maxBytes: number, allowEmpty: boolean): string {
  if (typeof value !== 'string') {
    throw argError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be of type string. Received ${typeOfValue(value)}`);
  }
  if (value.includes('\0')) {
    throw argError('ERR_INVALID_ARG_VALUE', `The "${name}" argument must not contain null bytes`);
  }
  if (!allowEmpty && value.length === 0) {
    throw argError('ERR_INVALID_ARG_VALUE', `The "${name}" argument must not be empty`);
  }
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > maxBytes) {
    throw argError('ERR_OUT_OF_RANGE', `The "${name}" argument is too long: ${bytes} bytes, at most ${maxBytes}`);
  }
  return value;
}

/** sizeof(sockaddr_un.sun_path) - 1 on Linux. */
export const MAX_UNIX_PATH_BYTES = 107;
/** Largest name sendFd() can send / receiveFd() reads in one message. */
export const MAX_FD_NAME_BYTES = 4095;

// ---- wrappers ----------------------------------------------------------------

/** pipe2(O_CLOEXEC) -> [readFd, writeFd], blocking. */
export function pipe2(): [number, number] {
  return nativeAddon().pipe2();
}

/** prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants get re-parented to
 * this process instead of init. */
export function setChildSubreaper(on = true): void {
  nativeAddon().setChildSubreaper(checkBool('on', on));
}

/** prctl(PR_GET_CHILD_SUBREAPER). */
export function isChildSubreaper(): boolean {
  return nativeAddon().isChildSubreaper();
}

/** pidfd_open(pid, 0) -> a close-on-exec pidfd. Throws ESRCH if no such
 * process. Pair with watchReadable(): a pidfd becomes readable on exit. */
export function pidfdOpen(pid: number): number {
  return nativeAddon().pidfdOpen(checkInt('pid', pid, 1, INT32_MAX));
}

/** waitid(P_PIDFD, pidfd, WEXITED | WNOHANG): reaps the process and returns
 * its status, or null while it is still running. The process must be a
 * child of ours (including orphans re-parented to us as child subreaper);
 * otherwise this throws ECHILD. Do not use on children spawned through
 * child_process: libuv reaps those itself. */
export function waitPidfd(pidfd: number): ExitStatus | null {
  return nativeAddon().waitPidfd(checkFd('pidfd', pidfd));
}

/** Call callback() (no arguments) on Node's event loop each time fd is
 * readable, hung up or in error, until close(). Level-triggered: consume the
 * data or close the watcher in the callback, or it fires again (a reaped
 * pidfd stays readable forever). The watcher keeps the process alive while
 * open. Caveats: it puts fd in O_NONBLOCK mode (shared by dup'ed copies);
 * close the watcher before closing fd; libuv allows one watcher per fd
 * (else EEXIST); regular files cannot be watched (EPERM). A throwing
 * callback is an uncaught exception. */
export function watchReadable(fd: number, callback: () => void): ReadableWatcher {
  checkFd('fd', fd);
  if (typeof callback !== 'function') {
    throw argError('ERR_INVALID_ARG_TYPE', `The "callback" argument must be of type function. Received ${typeOfValue(callback)}`);
  }
  return nativeAddon().watchReadable(fd, callback);
}

/** A listening unix stream socket bound to path (nonblocking, cloexec,
 * small backlog). The path must not exist; the caller unlinks it later. */
export function unixListen(socketPath: string): number {
  return nativeAddon().unixListen(checkString('path', socketPath, MAX_UNIX_PATH_BYTES, false));
}

/** accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) -> fd, or null if no connection
 * is pending. */
export function acceptConnection(listenFd: number): number | null {
  return nativeAddon().acceptConnection(checkFd('listenFd', listenFd));
}

/** Connect a nonblocking, cloexec unix stream socket to path. */
export function unixConnect(socketPath: string): number {
  return nativeAddon().unixConnect(checkString('path', socketPath, MAX_UNIX_PATH_BYTES, false));
}

/** Send fd (SCM_RIGHTS) with name as the message data, the way runc sends a
 * console. Used by tests; the shim only receives. */
export function sendFd(sockFd: number, fd: number, name: string): void {
  nativeAddon().sendFd(checkFd('sockFd', sockFd), checkFd('fd', fd), checkString('name', name, MAX_FD_NAME_BYTES, true));
}

/** Receive one fd (close-on-exec) and its name from a connected unix socket,
 * or null if nothing has arrived yet. Throws code EPROTO if a message comes
 * without exactly one fd, ECONNRESET if the peer closed first. */
export function receiveFd(connFd: number): ReceivedFd | null {
  return nativeAddon().receiveFd(checkFd('connFd', connFd));
}

/** ioctl(TIOCSWINSZ) on a terminal fd (e.g. a console's pty master). */
export function setWindowSize(fd: number, rows: number, cols: number): void {
  nativeAddon().setWindowSize(checkFd('fd', fd), checkInt('rows', rows, 0, 0xffff), checkInt('cols', cols, 0, 0xffff));
}

/** ioctl(TIOCGWINSZ). */
export function getWindowSize(fd: number): WindowSize {
  return nativeAddon().getWindowSize(checkFd('fd', fd));
}

/** A new pty pair (both ends O_CLOEXEC | O_NOCTTY, blocking). */
export function openPty(): Pty {
  return nativeAddon().openPty();
}

/** flock(): exclusive or shared, waiting or not. Returns false only when
 * wait is false and the lock is held through another open file description.
 * A waiting flock blocks the whole event loop: use wait = false in the shim. */
export function flock(fd: number, exclusive: boolean, wait: boolean): boolean {
  return nativeAddon().flock(checkFd('fd', fd), checkBool('exclusive', exclusive), checkBool('wait', wait));
}

/** flock(LOCK_UN). */
export function funlock(fd: number): void {
  nativeAddon().funlock(checkFd('fd', fd));
}

/** eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), e.g. for cgroup v1
 * memory.oom_control notifications via cgroup.event_control. */
export function eventfd(): number {
  return nativeAddon().eventfd();
}

/** Read (and reset) an eventfd counter, or null if it is zero (EAGAIN). */
export function readEventfd(fd: number): bigint | null {
  return nativeAddon().readEventfd(checkFd('fd', fd));
}

/** prctl(PR_SET_MEMORY_MERGE): opt the whole process into KSM. Needs
 * CAP_SYS_RESOURCE and a kernel with CONFIG_KSM (else EINVAL). */
export function setMemoryMerge(on: boolean): void {
  nativeAddon().setMemoryMerge(checkBool('on', on));
}

/** prctl(PR_GET_MEMORY_MERGE). */
export function isMemoryMerge(): boolean {
  return nativeAddon().isMemoryMerge();
}
