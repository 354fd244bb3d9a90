// Sizes for people: binary units (a page is 4 KiB), three significant digits.
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return String(bytes);
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${bytes} B`;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  // 1023.996 KiB would round to "1024 KiB": say 1.00 MiB instead.
  if (Number(value.toFixed(digits)) >= 1024 && unit < UNITS.length - 1) return `1.00 ${UNITS[unit + 1]}`;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** A dedup ratio such as "2.50x", or "-" when there is nothing on disk to divide by. */
export function formatRatio(ratio: number | null): string {
  return ratio === null ? '-' : `${ratio.toFixed(2)}x`;
}
