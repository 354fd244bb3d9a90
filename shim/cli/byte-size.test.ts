import { formatBytes, formatRatio } from './byte-size';

describe('formatBytes', () => {
  it('uses binary units with three significant digits', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1.00 KiB');
    expect(formatBytes(4096 * 3)).toBe('12.0 KiB');
    expect(formatBytes(1536 * 1024)).toBe('1.50 MiB');
    expect(formatBytes(200 * 1024 ** 3)).toBe('200 GiB');
    expect(formatBytes(3 * 1024 ** 4)).toBe('3.00 TiB');
  });

  it('never prints 1024 of a unit', () => {
    expect(formatBytes(1024 * 1024 - 1)).toBe('1.00 MiB');
  });
});

describe('formatRatio', () => {
  it('prints two decimals, or a dash when there is nothing to divide by', () => {
    expect(formatRatio(2.5)).toBe('2.50x');
    expect(formatRatio(null)).toBe('-');
  });
});
