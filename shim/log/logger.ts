// The shim server's log: one line per event on stderr, which the server points at its
// log file. `start` and `delete` must keep stdout clean, so nothing here writes there.
type Level = 'debug' | 'info' | 'warn' | 'error';

let debugEnabled = false;
let problems = 0;

/** How many warnings and errors were logged: a server that had none removes its log on exit. */
export function problemCount(): number {
  return problems;
}

export function enableDebug(on: boolean): void {
  debugEnabled = on;
}

function write(level: Level, message: string, fields?: Record<string, unknown>): void {
  if (level === 'debug' && !debugEnabled) return;
  if (level === 'warn' || level === 'error') problems++;
  const extra = fields ? ' ' + JSON.stringify(fields) : '';
  process.stderr.write(`${new Date().toISOString()} ${level} ${message}${extra}\n`);
}

export const log = {
  debug: (message: string, fields?: Record<string, unknown>) => write('debug', message, fields),
  info: (message: string, fields?: Record<string, unknown>) => write('info', message, fields),
  warn: (message: string, fields?: Record<string, unknown>) => write('warn', message, fields),
  error: (message: string, fields?: Record<string, unknown>) => write('error', message, fields),
};

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
