// Reads images that the project's private CRIU really wrote: dumps of small processes this
// test starts, each filling pages with a marker that names the page's index.
import { execFile, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { listPagemaps, PAGE_SIZE, PagemapFile, readPresentPages } from './checkpoint-images';
import { CriuMessageName, decodeEntry, encodeEntry } from './criu-proto';
import { parseImage, readImageFile, serializeImage } from './image-file';
import { ImageKind, ImageKinds } from './image-kind';
import { presentPageCount, readPagemapFile, serializePagemap } from './pagemap';
import { privateCriu } from './test-criu';

const run = promisify(execFile);

// The marked memory is a run of 16-byte records: this marker, then the record's index
// (u64 LE). 16 bytes because the Node child's Buffer is only 16-byte aligned (malloc), so its
// pages start mid-buffer; a record never straddles a page and each page says where it is.
const MARKER = Buffer.from('PSMARKER');
const RECORD = 16;
const MARKED_PAGES = 300;
const RECORDS = (MARKED_PAGES * 4096) / RECORD;

const { criu, skipReason } = privateCriu();
const hasPython = spawnSync('python3', ['-c', 'pass'], { stdio: 'ignore' }).status === 0;

interface MarkedPage {
  /** Where the first whole record starts in the page. */
  phase: number;
  firstRecord: number;
  records: number;
}

/**
 * The run of whole records a page holds from the first marker on (pages at the ends of the
 * marked memory hold other bytes before or after it), or undefined when there is none.
 */
function markedRecords(page: Buffer): MarkedPage | undefined {
  const phase = page.indexOf(MARKER);
  if (phase < 0 || phase + RECORD > PAGE_SIZE) return undefined;
  const firstRecord = Number(page.readBigUInt64LE(phase + 8));
  let records = 0;
  for (let at = phase; at + RECORD <= PAGE_SIZE; at += RECORD, records++) {
    if (!page.subarray(at, at + 8).equals(MARKER) || Number(page.readBigUInt64LE(at + 8)) !== firstRecord + records) break;
  }
  return { phase, firstRecord, records };
}

// Fills fresh anonymous private memory (one Buffer) with records. The marker is spelled out
// as byte values so that no other copy of it (a string in the V8 heap) can be found.
const NODE_CHILD = `
const fs = require('fs');
const [, ready, count] = process.argv;
const buf = Buffer.alloc(Number(count) * 4096);
[0x50, 0x53, 0x4d, 0x41, 0x52, 0x4b, 0x45, 0x52].forEach((b, i) => { buf[i] = b; });
for (let r = 0; r < buf.length / 16; r++) { buf.copy(buf, r * 16, 0, 8); buf.writeBigUInt64LE(BigInt(r), r * 16 + 8); }
globalThis.keep = buf;
fs.writeFileSync(ready + '.tmp', String(process.pid)); fs.renameSync(ready + '.tmp', ready);
setInterval(() => {}, 1 << 30);
`;

// The same in shared anonymous memory, which CRIU dumps as a shmem pagemap (only that
// pagemap is searched, so the marker's copies in Python's heap do not matter).
const PYTHON_CHILD = `
import mmap, os, struct, sys, time
ready, count = sys.argv[1], int(sys.argv[2])
m = mmap.mmap(-1, count * 4096)
m[:] = b''.join(b'PSMARKER' + struct.pack('<Q', r) for r in range(count * 4096 // 16))
with open(ready + '.tmp', 'w') as f:
    f.write(str(os.getpid()))
os.rename(ready + '.tmp', ready)
while True:
    time.sleep(3600)
`;

interface Dumped {
  pid: number;
  dir: string;
}

/** Starts a marker process in its own session, dumps it (leaving it running), then kills it. */
async function dumpMarkerProcess(work: string, command: string, args: string[]): Promise<Dumped> {
  const ready = path.join(work, 'ready');
  const child = spawn(command, [...args, ready, String(MARKED_PAGES)], { detached: true, stdio: 'ignore' });
  child.unref();
  let pid: number | undefined;
  try {
    const deadline = Date.now() + 20_000;
    while (!fs.existsSync(ready)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${command} did not get ready (exit ${child.exitCode})`);
      await new Promise((r) => setTimeout(r, 20));
    }
    pid = Number(await fsp.readFile(ready, 'utf8'));
    const dir = path.join(work, 'images');
    await fsp.mkdir(dir);
    try {
      await run(criu as string, ['dump', '-t', String(pid), '-D', dir, '--shell-job', '--leave-running', '-v2', '-o', 'dump.log']);
    } catch (err) {
      const log = await fsp.readFile(path.join(dir, 'dump.log'), 'utf8').catch(() => '');
      throw new Error(`criu dump failed: ${(err as Error).message}\n${log.split('\n').slice(-20).join('\n')}`);
    }
    return { pid, dir };
  } finally {
    for (const p of new Set([child.pid, pid])) {
      if (p === undefined) continue;
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

/**
 * Reads every present page of a pagemap; for the marked ones, checks that all agree on where
 * record 0 is (address of the page + phase - 16 * first record) and returns that address
 * with the number of records seen.
 */
async function scanMarked(file: PagemapFile): Promise<{ bases: Set<number>; records: Set<number>; pages: number }> {
  const bases = new Set<number>();
  const records = new Set<number>();
  let pages = 0;
  for await (const { vaddr, page } of readPresentPages(file)) {
    pages++;
    const marked = markedRecords(page);
    if (!marked) continue;
    bases.add(vaddr + marked.phase - marked.firstRecord * RECORD);
    for (let r = marked.firstRecord; r < marked.firstRecord + marked.records; r++) records.add(r);
  }
  return { bases, records, pages };
}

const MESSAGE_OF: Array<[RegExp, ImageKind, CriuMessageName]> = [
  [/^mm-\d+\.img$/, ImageKinds.MM, 'mm_entry'],
  [/^files\.img$/, ImageKinds.FILES, 'file_entry'],
  [/^fdinfo-\d+\.img$/, ImageKinds.FDINFO, 'fdinfo_entry'],
];

/** Every image we know the format of writes back byte for byte, down to each entry. */
async function expectByteIdenticalRewrites(dir: string): Promise<void> {
  const names = await fsp.readdir(dir);
  for (const name of names) {
    const file = path.join(dir, name);
    const bytes = await fsp.readFile(file);
    if (/^pagemap-(shmem-)?\d+\.img$/.test(name)) {
      expect(serializePagemap(await readPagemapFile(file))).toEqual(bytes);
      continue;
    }
    if (name === 'inventory.img') {
      const image = parseImage(bytes, ImageKinds.INVENTORY, { source: file });
      expect(serializeImage(ImageKinds.INVENTORY, image.entries.map((e) => e.payload))).toEqual(bytes);
      continue;
    }
    const known = MESSAGE_OF.find(([pattern]) => pattern.test(name));
    if (!known) continue;
    const [, kind, message] = known;
    const image = await readImageFile(file, kind);
    expect(image.entries.length).toBeGreaterThan(0);
    expect(serializeImage(kind, image.entries.map((e) => e.payload))).toEqual(bytes);
    for (const e of image.entries) {
      // Refuses unknown fields: our protos cover every field this CRIU wrote.
      const decoded = decodeEntry(message, e.payload, { file, offset: e.offset });
      expect(Buffer.from(encodeEntry(message, decoded))).toEqual(e.payload);
    }
  }
  expect(names.filter((n) => /^mm-\d+\.img$/.test(n))).toHaveLength(1);
}

(skipReason ? describe.skip : describe)(`images of a real CRIU dump${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let work: string;
  beforeEach(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'pageshare-criu-dump-'));
  });
  afterEach(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('finds every marked page of private memory at its address, and writes the images back byte for byte', async () => {
    const { pid, dir } = await dumpMarkerProcess(work, process.execPath, ['-e', NODE_CHILD]);
    const files = await listPagemaps(dir);
    const task = files.filter((f) => f.kind === 'task');
    expect(task.map((f) => f.id)).toEqual([String(pid)]);

    for (const f of files) {
      expect((await fsp.stat(f.pagesPath)).size).toBe(presentPageCount(f.pagemap) * PAGE_SIZE);
    }
    const { bases, records, pages } = await scanMarked(task[0]);
    expect(pages).toBe(presentPageCount(task[0].pagemap));
    // Every record was found, and every page put its records at the same Buffer start: each
    // page came with its own address.
    expect(records.size).toBe(RECORDS);
    expect(bases.size).toBe(1);

    await expectByteIdenticalRewrites(dir);
  });

  (hasPython ? it : it.skip)(`finds marked pages of shared memory at their offsets in a shmem pagemap${hasPython ? '' : ' (skipped: no python3)'}`, async () => {
    const { dir } = await dumpMarkerProcess(work, 'python3', ['-c', PYTHON_CHILD]);
    const files = await listPagemaps(dir);
    let found = 0;
    for (const f of files.filter((x) => x.kind === 'shmem')) {
      expect((await fsp.stat(f.pagesPath)).size).toBe(presentPageCount(f.pagemap) * PAGE_SIZE);
      const { bases, records } = await scanMarked(f);
      if (records.size === 0) continue;
      // A shmem pagemap addresses the object, not the task: record 0 is at offset 0.
      expect([...bases]).toEqual([0]);
      found += records.size;
    }
    expect(found).toBe(RECORDS);
    await expectByteIdenticalRewrites(dir);
  });
});
