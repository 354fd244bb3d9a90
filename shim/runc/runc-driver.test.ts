import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lastRuncError } from './runc-driver';

function line(level: string, msg: string): string {
  return JSON.stringify({ level, msg, time: '2025-01-01T00:00:00Z' }) + '\n';
}

describe('lastRuncError', () => {
  let dir: string;
  let file: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runc-log-'));
    file = path.join(dir, 'log.json');
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('returns the last error or fatal message', () => {
    fs.writeFileSync(file, line('info', 'starting') + line('error', 'first problem') + line('warning', 'hmm') + line('error', 'container not running') + line('info', 'bye'));
    expect(lastRuncError(file)).toBe('container not running');
    fs.appendFileSync(file, line('fatal', 'nsenter: could not open /proc/1/ns/mnt'));
    expect(lastRuncError(file)).toBe('nsenter: could not open /proc/1/ns/mnt');
  });

  it('returns undefined when no line is an error', () => {
    fs.writeFileSync(file, line('info', 'a') + line('warning', 'b') + line('debug', 'c'));
    expect(lastRuncError(file)).toBeUndefined();
  });

  it('returns undefined for a missing or empty file', () => {
    expect(lastRuncError(path.join(dir, 'absent.json'))).toBeUndefined();
    fs.writeFileSync(file, '');
    expect(lastRuncError(file)).toBeUndefined();
  });

  it('skips an error line with an empty message', () => {
    fs.writeFileSync(file, line('error', 'real') + line('error', ''));
    expect(lastRuncError(file)).toBe('real');
  });

  it('skips a partial last line (runc still writing) and non-JSON lines', () => {
    const partial = line('error', 'half written').slice(0, 20);
    fs.writeFileSync(file, line('error', 'complete') + 'not json at all\n' + 'null\n' + '42\n' + partial);
    expect(lastRuncError(file)).toBe('complete');
  });

  it('tolerates blank lines and a trailing newline', () => {
    fs.writeFileSync(file, '\n' + line('error', 'x') + '\n\n');
    expect(lastRuncError(file)).toBe('x');
  });

  it('reads only what was written after the offset', () => {
    fs.writeFileSync(file, line('error', 'an earlier call failed'));
    const from = fs.statSync(file).size;
    expect(lastRuncError(file, from)).toBeUndefined();
    fs.appendFileSync(file, line('info', 'this call'));
    expect(lastRuncError(file, from)).toBeUndefined();
    fs.appendFileSync(file, line('error', 'this call failed'));
    expect(lastRuncError(file, from)).toBe('this call failed');
    expect(lastRuncError(file, 0)).toBe('this call failed');
  });

  it('treats the offset as bytes, with multi-byte UTF-8 before it', () => {
    fs.writeFileSync(file, line('error', 'ünïcödé — 容器 失败'));
    const from = fs.statSync(file).size;
    expect(from).toBeGreaterThan(fs.readFileSync(file, 'utf8').length);
    fs.appendFileSync(file, line('error', 'après: 容器'));
    expect(lastRuncError(file, from)).toBe('après: 容器');
  });

  it('ignores the tail of a line cut by an offset inside it', () => {
    const earlier = line('error', 'earlier');
    fs.writeFileSync(file, earlier + line('info', 'later'));
    // From the middle of the error line: its tail is not JSON, and the rest is info.
    expect(lastRuncError(file, Math.floor(earlier.length / 2))).toBeUndefined();
  });

  it('returns undefined for an offset past the end', () => {
    fs.writeFileSync(file, line('error', 'x'));
    expect(lastRuncError(file, 10_000)).toBeUndefined();
  });
});
