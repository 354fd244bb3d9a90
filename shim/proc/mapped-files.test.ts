import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileIdentity, mappingKey, scanMappings } from './mapped-files';
import { startMappingProcess, stopMappingProcess, stopMappingProcesses } from './test-mapping-process';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-maps-'));
});

afterEach(async () => {
  await stopMappingProcesses();
  fs.rmSync(dir, { recursive: true, force: true });
});

function fileWithPages(name: string, pages = 2): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.alloc(pages * 4096, 7));
  return file;
}

function identity(file: string): FileIdentity {
  const st = fs.statSync(file, { bigint: true });
  return { dev: st.dev, ino: st.ino };
}

describe('mappingKey', () => {
  it('splits st_dev the way maps prints it, large major and minor numbers included', () => {
    // makedev(0xfd, 0x01) and makedev(0x1234, 0x56789) in glibc's encoding.
    expect(mappingKey({ dev: 0xfd01n, ino: 42n })).toBe('253:1:42');
    const dev = ((0x1234n & 0xfffn) << 8n) | ((0x1234n & ~0xfffn) << 32n) | (0x56789n & 0xffn) | ((0x56789n & ~0xffn) << 12n);
    expect(mappingKey({ dev, ino: 2n ** 60n })).toBe(`${0x1234}:${0x56789}:${2n ** 60n}`);
  });
});

describe('scanMappings', () => {
  it('finds the process that maps a file, by device and inode, also after the file is renamed', async () => {
    const mapped = fileWithPages('mapped');
    const other = fileWithPages('other');
    const child = await startMappingProcess(mapped);
    fs.renameSync(mapped, path.join(dir, 'renamed'));

    // (A sandbox may hide some processes' maps from root: scan.unreadable need not be empty.)
    const scan = scanMappings([identity(path.join(dir, 'renamed')), identity(other)]);
    expect(scan.mappers.get(mappingKey(identity(path.join(dir, 'renamed'))))).toEqual([child.pid]);
    expect(scan.mappers.has(mappingKey(identity(other)))).toBe(false);

    await stopMappingProcess(child);
    expect(scanMappings([identity(path.join(dir, 'renamed'))]).mappers.size).toBe(0);
  });

  it('reads nothing when no file is asked about', () => {
    expect(scanMappings([], path.join(dir, 'no-proc')).mappers.size).toBe(0);
  });

  it('skips processes that are gone, and says which process it could not read', () => {
    const proc = path.join(dir, 'proc');
    const file = fileWithPages('f');
    const id = identity(file);
    const [major, minor] = mappingKey(id).split(':').map(Number);
    const line = `7f0000000000-7f0000002000 r--s 00000000 ${major!.toString(16).padStart(2, '0')}:${minor!.toString(16).padStart(2, '0')} ${id.ino} ${file}\n`;
    fs.mkdirSync(path.join(proc, '10'), { recursive: true });
    fs.writeFileSync(path.join(proc, '10', 'maps'), `7f0000003000-7f0000004000 rw-p 00000000 00:00 0\n${line}${line}`);
    fs.mkdirSync(path.join(proc, '11')); // exited between the listing and the read: no maps
    fs.mkdirSync(path.join(proc, 'self'));
    expect(scanMappings([id], proc)).toEqual({ mappers: new Map([[mappingKey(id), [10]]]), unreadable: [] });

    fs.mkdirSync(path.join(proc, '12', 'maps'), { recursive: true }); // EISDIR: neither gone nor readable
    expect(scanMappings([id], proc)).toEqual({ mappers: new Map([[mappingKey(id), [10]]]), unreadable: [{ pid: 12, code: 'EISDIR' }] });
  });
});
