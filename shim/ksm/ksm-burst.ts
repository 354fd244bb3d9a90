// Copy-mode restores may ask KSM to merge the restored processes' equal pages. KSM is a host
// setting (off here by default), so a restore raises it only for a bounded burst: scanning
// on and fast until the burst ends, then every setting exactly as it was. Merged pages stay
// merged after the scanner stops (run = 0 keeps them; only run = 2 would unmerge).
//
// Several shim servers (one per containerd namespace) may burst at once. They coordinate in
// one directory under a file lock: the first saves the host's settings, each holder leaves a
// lease (its pid and end time), and whoever ends the last live lease puts the settings back.
// A holder that died leaves a lease that counts only until its end time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { log, errorMessage } from '../log/logger';
import { processExited } from '../proc/proc-info';
import { FileLock } from '../store/file-lock';

export const KSM_SYSFS = '/sys/kernel/mm/ksm';
const SETTINGS = ['run', 'pages_to_scan', 'sleep_millisecs'] as const;
type Settings = Record<(typeof SETTINGS)[number], string>;
/** While bursting: about 400 MB/s of scanning, bounded by the burst's length. */
const BURST: Settings = { run: '1', pages_to_scan: '5000', sleep_millisecs: '10' };
const SAVED_FILE = 'saved.json';
const LOCK_FILE = 'lock';

export interface KsmBurstOptions {
  /** The KSM sysfs dir (tests point it elsewhere). */
  readonly sysDir?: string;
  /** Where leases and the saved settings live. */
  readonly stateDir?: string;
}

export class KsmBurst {
  private readonly sysDir: string;
  private readonly stateDir: string;
  private timer: NodeJS.Timeout | undefined;
  private endsAt = 0;

  constructor(options: KsmBurstOptions = {}) {
    this.sysDir = options.sysDir ?? KSM_SYSFS;
    this.stateDir = options.stateDir ?? '/run/pageshare/ksm';
  }

  private static instance: KsmBurst | undefined;

  /** The process's burst (one lease per process). */
  static shared(): KsmBurst {
    return (KsmBurst.instance ??= new KsmBurst());
  }

  static available(sysDir = KSM_SYSFS): boolean {
    return fs.existsSync(path.join(sysDir, 'run'));
  }

  /** Scanning on (or kept on) for at least `durationMs` from now. */
  async raise(durationMs: number): Promise<void> {
    const endsAt = Date.now() + durationMs;
    await this.locked(() => {
      const saved = path.join(this.stateDir, SAVED_FILE);
      if (!fs.existsSync(saved)) {
        const current = Object.fromEntries(SETTINGS.map((k) => [k, this.read(k)])) as Settings;
        fs.writeFileSync(saved, JSON.stringify(current));
      }
      this.endsAt = Math.max(this.endsAt, endsAt);
      fs.writeFileSync(this.leaseFile(), String(this.endsAt));
      // Scan settings before run, so the scanner starts fast.
      for (const k of ['pages_to_scan', 'sleep_millisecs', 'run'] as const) this.write(k, BURST[k]);
    });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.end().catch((err: unknown) => log.warn(`KSM burst end failed: ${errorMessage(err)}`)), this.endsAt - Date.now());
    this.timer.unref();
  }

  /** Whether this process has a burst under way. */
  get active(): boolean {
    return this.endsAt > 0;
  }

  /**
   * For a server that exits (its timer would never fire) or starts (a server that died may
   * have left the settings raised): ends this process's burst, if any, and puts the host's
   * settings back unless another live burst holds them.
   */
  static async settle(options: KsmBurstOptions = {}): Promise<void> {
    const burst = KsmBurst.instance ?? new KsmBurst(options);
    if (!fs.existsSync(path.join(burst.stateDir, SAVED_FILE))) return;
    await burst.end();
  }

  /** Ends this process's burst now; the host's settings come back if no other burst is live. */
  async end(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.endsAt = 0;
    await this.locked(() => {
      fs.rmSync(this.leaseFile(), { force: true });
      const now = Date.now();
      const live = fs
        .readdirSync(this.stateDir)
        .filter((n) => /^lease-\d+$/.test(n))
        .filter((n) => {
          const pid = Number(n.slice('lease-'.length));
          const until = Number(fs.readFileSync(path.join(this.stateDir, n), 'utf8'));
          if (!processExited(pid) && until > now) return true;
          fs.rmSync(path.join(this.stateDir, n), { force: true }); // a dead or past lease
          return false;
        });
      if (live.length > 0) return;
      const saved = path.join(this.stateDir, SAVED_FILE);
      if (!fs.existsSync(saved)) return;
      const settings = JSON.parse(fs.readFileSync(saved, 'utf8')) as Settings;
      // run first: the scanner stops before its pace goes back.
      for (const k of ['run', 'pages_to_scan', 'sleep_millisecs'] as const) this.write(k, settings[k]);
      fs.rmSync(saved);
      log.info(`KSM settings restored: ${JSON.stringify(settings)}`);
    });
  }

  private leaseFile(): string {
    return path.join(this.stateDir, `lease-${process.pid}`);
  }

  private read(name: string): string {
    return fs.readFileSync(path.join(this.sysDir, name), 'utf8').trim();
  }

  private write(name: string, value: string): void {
    fs.writeFileSync(path.join(this.sysDir, name), value);
  }

  private async locked(body: () => void): Promise<void> {
    fs.mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    const lock = await FileLock.acquire(path.join(this.stateDir, LOCK_FILE), { exclusive: true, timeoutMs: 10_000 });
    try {
      body();
    } finally {
      lock.release();
    }
  }
}
