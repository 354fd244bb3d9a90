// Opting a restore into KSM: annotation io.pageshare.ksm=on makes the restored processes
// mergeable (PR_SET_MEMORY_MERGE, which CRIU's restored tasks inherit from runc and CRIU)
// and raises KSM's scanning for a burst (io.pageshare.ksm.burst-ms, default 30 s).
import { InvalidArgumentError } from '../errors/shim-error';
import type { OciSpec } from '../spec/oci-spec';

export const KSM_ANNOTATION = 'io.pageshare.ksm';
export const KSM_BURST_ANNOTATION = 'io.pageshare.ksm.burst-ms';
export const DEFAULT_KSM_BURST_MS = 30_000;

export interface KsmSettings {
  readonly burstMs: number;
}

export function ksmSettingsOf(spec: OciSpec): KsmSettings | undefined {
  const value = spec.annotations?.[KSM_ANNOTATION];
  if (value === undefined || value === 'off') return undefined;
  if (value !== 'on') throw new InvalidArgumentError(`annotation ${KSM_ANNOTATION}=${value}: expected on or off`);
  const text = spec.annotations?.[KSM_BURST_ANNOTATION];
  const burstMs = text === undefined ? DEFAULT_KSM_BURST_MS : Number(text);
  if (!Number.isSafeInteger(burstMs) || burstMs < 0 || burstMs > 3_600_000) {
    throw new InvalidArgumentError(`annotation ${KSM_BURST_ANNOTATION} must be 0 to 3600000 milliseconds, got ${JSON.stringify(text)}`);
  }
  return { burstMs };
}
