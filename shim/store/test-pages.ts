// Pages for tests and benchmarks: deterministic (a test can rebuild what a child process
// stored) and distinct, or random.
import * as crypto from 'node:crypto';
import { PAGE_SIZE } from '../criu/page-size';

/** A non-zero page determined by (seed, n): the text "seed:n" over a SHA-256-derived fill. */
export function testPage(seed: string, n: number): Buffer {
  const page = Buffer.alloc(PAGE_SIZE);
  const head = crypto.createHash('sha256').update(`${seed}:${n}`).digest();
  for (let off = 0; off < PAGE_SIZE; off += head.length) head.copy(page, off);
  page.write(`${seed}:${n}`, 0, 'utf8');
  return page;
}

/** count random pages in one buffer. */
export function randomPages(count: number): Buffer {
  return crypto.randomBytes(count * PAGE_SIZE);
}

/** Page i of a buffer of pages. */
export function pageAt(pages: Buffer, i: number): Buffer {
  return pages.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
}
