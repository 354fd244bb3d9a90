import fc from 'fast-check';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkPagesFile, listPagemaps, Page, PAGE_SIZE, PagemapFile, readPresentPages } from './checkpoint-images';
import { CriuImageError } from './criu-image-error';
import { Pagemap, PE_LAZY, PE_PARENT, PE_PRESENT, writePagemapFile } from './pagemap';

/** A page whose bytes say which address it belongs to. */
function pageFor(vaddr: number): Buffer {
  const page = Buffer.alloc(PAGE_SIZE);
  for (let at = 0; at < PAGE_SIZE; at += 8) page.writeBigUInt64LE(BigInt(vaddr + at), at);
  return page;
}

/** Writes a pagemap and the pages file its present runs need. */
async function writeDump(dir: string, name: string, pagemap: Pagemap): Promise<Buffer[]> {
  await writePagemapFile(path.join(dir, name), pagemap);
  const pages: Buffer[] = [];
  for (const e of pagemap.entries) {
    if (!(e.flags & PE_PRESENT)) continue;
    for (let i = 0; i < e.nrPages; i++) pages.push(pageFor(e.vaddr + i * PAGE_SIZE));
  }
  await fsp.writeFile(path.join(dir, `pages-${pagemap.pagesId}.img`), Buffer.concat(pages));
  return pages;
}

async function collect(pages: AsyncIterable<Page>): Promise<Array<{ vaddr: number; hex: string }>> {
  const out: Array<{ vaddr: number; hex: string }> = [];
  for await (const p of pages) out.push({ vaddr: p.vaddr, hex: p.page.toString('hex') });
  return out;
}

const taskPagemap: Pagemap = {
  pagesId: 2,
  pageCountField: 'u32',
  entries: [
    { vaddr: 0x400000, nrPages: 3, flags: PE_PRESENT },
    { vaddr: 0x500000, nrPages: 2, flags: PE_PARENT },
    { vaddr: 0x600000, nrPages: 1, flags: PE_LAZY },
    { vaddr: 0x7f0000000000, nrPages: 4, flags: PE_PRESENT | PE_LAZY },
  ],
};
const shmemPagemap: Pagemap = { pagesId: 1, pageCountField: 'u32', entries: [{ vaddr: 0, nrPages: 2, flags: PE_PRESENT }] };

describe('checkpoint images', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'pageshare-criu-dir-'));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('lists task and shmem pagemaps with the pages file each names', async () => {
    await writeDump(dir, 'pagemap-123.img', taskPagemap);
    await writeDump(dir, 'pagemap-shmem-18446744073709551615.img', shmemPagemap);
    await writeDump(dir, 'pagemap-45.img', { pagesId: 3, pageCountField: 'u32', entries: [] });
    await fsp.writeFile(path.join(dir, 'mm-123.img'), 'not a pagemap');
    const files = await listPagemaps(dir);
    expect(files.map((f) => [f.kind, f.id, path.basename(f.pagemapPath), path.basename(f.pagesPath)])).toEqual([
      ['task', '45', 'pagemap-45.img', 'pages-3.img'],
      ['task', '123', 'pagemap-123.img', 'pages-2.img'],
      ['shmem', '18446744073709551615', 'pagemap-shmem-18446744073709551615.img', 'pages-1.img'],
    ]);
    expect(files[1].pagemap).toEqual(taskPagemap);
  });

  it('yields every present page with its address, skipping parent and lazy-only runs', async () => {
    await writeDump(dir, 'pagemap-123.img', taskPagemap);
    const [file] = await listPagemaps(dir);
    const expected = [0x400000, 0x401000, 0x402000, 0x7f0000000000, 0x7f0000001000, 0x7f0000002000, 0x7f0000003000];
    expect(await collect(readPresentPages(file))).toEqual(expected.map((vaddr) => ({ vaddr, hex: pageFor(vaddr).toString('hex') })));
  });

  it('gives the same pages for any chunk size, reading each chunk with few large reads', async () => {
    await writeDump(dir, 'pagemap-123.img', taskPagemap);
    const [file] = await listPagemaps(dir);
    const reference = await collect(readPresentPages(file, { chunkSize: PAGE_SIZE }));
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 9 }), async (pagesPerChunk) => {
        expect(await collect(readPresentPages(file, { chunkSize: pagesPerChunk * PAGE_SIZE }))).toEqual(reference);
      }),
      { numRuns: 20 },
    );
    const reads = await countReads(file, 3 * PAGE_SIZE);
    expect(reads).toEqual([3 * PAGE_SIZE, 3 * PAGE_SIZE, PAGE_SIZE]);
  });

  it('lets a consumer stop early and closes the file', async () => {
    await writeDump(dir, 'pagemap-123.img', taskPagemap);
    const [file] = await listPagemaps(dir);
    const io = instrumentOpen();
    try {
      for await (const page of readPresentPages(file)) {
        expect(page.vaddr).toBe(0x400000);
        break;
      }
    } finally {
      io.restore();
    }
    expect(io.closes).toBe(1);
  });

  it('refuses a pages file of the wrong size, before reading a page', async () => {
    await writeDump(dir, 'pagemap-123.img', taskPagemap);
    const [file] = await listPagemaps(dir);
    await fsp.truncate(file.pagesPath, 6 * PAGE_SIZE);
    await expect(collect(readPresentPages(file))).rejects.toMatchObject({ reason: 'PAGES_MISMATCH', file: file.pagesPath });
    await fsp.truncate(file.pagesPath, 8 * PAGE_SIZE);
    await expect(checkPagesFile(file)).rejects.toMatchObject({ reason: 'PAGES_MISMATCH' });
  });

  it('needs no pages file when nothing is present, and says which one is missing otherwise', async () => {
    await writePagemapFile(path.join(dir, 'pagemap-1.img'), { pagesId: 4, pageCountField: 'u32', entries: [{ vaddr: 0, nrPages: 1, flags: PE_PARENT }] });
    await writePagemapFile(path.join(dir, 'pagemap-2.img'), { pagesId: 5, pageCountField: 'u32', entries: [{ vaddr: 0, nrPages: 1, flags: PE_PRESENT }] });
    const [empty, missing] = await listPagemaps(dir);
    expect(await collect(readPresentPages(empty))).toEqual([]);
    const err = await collect(readPresentPages(missing)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuImageError);
    expect(err).toMatchObject({ reason: 'PAGES_MISMATCH', file: path.join(dir, 'pages-5.img') });
  });

  it('does not trust a pagemap that claims a huge run over a small pages file', async () => {
    await writeDump(dir, 'pagemap-1.img', { pagesId: 1, pageCountField: 'u32', entries: [{ vaddr: 0, nrPages: 1, flags: PE_PRESENT }] });
    await writePagemapFile(path.join(dir, 'pagemap-1.img'), { pagesId: 1, pageCountField: 'u32', entries: [{ vaddr: 0, nrPages: 0xffffffff, flags: PE_PRESENT }] });
    const [file] = await listPagemaps(dir);
    await expect(collect(readPresentPages(file))).rejects.toMatchObject({ reason: 'PAGES_MISMATCH' });
  });

  it('refuses two pagemaps naming one pages file, and bad chunk sizes', async () => {
    await writeDump(dir, 'pagemap-1.img', shmemPagemap);
    await writePagemapFile(path.join(dir, 'pagemap-shmem-9.img'), shmemPagemap);
    await expect(listPagemaps(dir)).rejects.toMatchObject({ reason: 'BAD_ENTRY' });
    await fsp.rm(path.join(dir, 'pagemap-shmem-9.img'));
    const [file] = await listPagemaps(dir);
    await expect(collect(readPresentPages(file, { chunkSize: 1000 }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('reports a corrupt pagemap with its path', async () => {
    await fsp.writeFile(path.join(dir, 'pagemap-7.img'), Buffer.from([0x19, 0x43, 0x56, 0x54, 0, 0, 0, 0]));
    await expect(listPagemaps(dir)).rejects.toMatchObject({ reason: 'BAD_MAGIC', file: path.join(dir, 'pagemap-7.img'), offset: 4 });
  });
});

/** Records the sizes of reads on, and the closes of, files opened through fsp.open. */
function instrumentOpen(): { reads: number[]; closes: number; restore: () => void } {
  const io = { reads: [] as number[], closes: 0, restore: () => spy.mockRestore() };
  const open = fsp.open;
  const spy = jest.spyOn(fsp, 'open').mockImplementation(async (...args: Parameters<typeof fsp.open>) => {
    const handle = await open(...args);
    const read = handle.read.bind(handle) as (b: Buffer, o: number, l: number, p: number) => Promise<{ bytesRead: number; buffer: Buffer }>;
    const close = handle.close.bind(handle);
    const patched = handle as unknown as { read: typeof read; close: typeof close };
    patched.read = async (b, o, l, p) => {
      io.reads.push(l);
      return read(b, o, l, p);
    };
    patched.close = async () => {
      io.closes++;
      return close();
    };
    return handle;
  });
  return io;
}

/** The sizes of the reads readPresentPages makes on the pages file. */
async function countReads(file: PagemapFile, chunkSize: number): Promise<number[]> {
  const io = instrumentOpen();
  try {
    for await (const _ of readPresentPages(file, { chunkSize })) {
      /* drain */
    }
  } finally {
    io.restore();
  }
  return io.reads;
}
