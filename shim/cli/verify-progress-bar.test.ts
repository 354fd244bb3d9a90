import { Writable } from 'node:stream';
import { VerifyProgressBar } from './verify-progress-bar';

/** A stream that says it is a terminal and keeps what is written to it. */
function fakeTerminal(isTTY: boolean): Writable & { isTTY: boolean; columns: number; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return Object.assign(stream, { isTTY, columns: 100, text: () => chunks.join('') });
}

describe('VerifyProgressBar', () => {
  it('is not shown for --json or when stderr is not a terminal', () => {
    expect(VerifyProgressBar.forTerminal(fakeTerminal(true), true)).toBeUndefined();
    expect(VerifyProgressBar.forTerminal(fakeTerminal(false), false)).toBeUndefined();
  });

  it('draws pages checked out of the total on a terminal, and erases itself', () => {
    const tty = fakeTerminal(true);
    const bar = VerifyProgressBar.forTerminal(tty, false, 0)!;
    bar.update({ pagesChecked: 0, pagesTotal: 40 });
    bar.update({ pagesChecked: 40, pagesTotal: 40 });
    bar.stop();
    bar.stop();
    expect(tty.text()).toContain('verifying');
    expect(tty.text()).toContain('40/40 pages');
  });

  it('stays hidden on quick runs and for an empty store', () => {
    const tty = fakeTerminal(true);
    const quick = VerifyProgressBar.forTerminal(tty, false, 60_000)!;
    quick.update({ pagesChecked: 1, pagesTotal: 2 });
    quick.stop();
    const empty = VerifyProgressBar.forTerminal(tty, false, 0)!;
    empty.update({ pagesChecked: 0, pagesTotal: 0 });
    empty.stop();
    expect(tty.text()).toBe('');
  });
});
