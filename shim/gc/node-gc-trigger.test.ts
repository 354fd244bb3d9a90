import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseAck, requestNodeGc } from './node-gc-trigger';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-gc-trigger-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the Node.js agent protocol, shim side', () => {
  it('reads an ack and rejects anything that is not one', () => {
    const ack = { id: 'r1', pid: 7, ok: true, method: 'low-memory-notification', gcMs: 12.5, before: { rssKB: 2048, heapUsedKB: 9 }, after: { rssKB: 1024, anonKB: -1 } };
    expect(parseAck(JSON.stringify(ack))).toEqual({ ...ack, before: expect.objectContaining({ rssKB: 2048, heapUsedKB: 9 }), after: expect.objectContaining({ rssKB: 1024, anonKB: undefined }) });
    for (const text of ['', '{', 'null', '[]', '{"id":1}', JSON.stringify({ ...ack, ok: 'yes' })]) expect(parseAck(text)).toBeUndefined();
  });

  it('replaces a request file the container planted as a symlink instead of writing through it', async () => {
    const outside = path.join(dir, 'outside');
    const gcDir = path.join(dir, 'gc');
    fs.mkdirSync(gcDir);
    fs.writeFileSync(outside, 'host file\n');
    fs.symlinkSync(outside, path.join(gcDir, 'request'));
    expect(await requestNodeGc([], gcDir, Date.now())).toEqual([]);
    expect(fs.readFileSync(outside, 'utf8')).toBe('host file\n');
    expect(fs.lstatSync(path.join(gcDir, 'request')).isFile()).toBe(true);
    expect(fs.readdirSync(gcDir)).toEqual(['request']);
  });

  it('reports every process as unreachable when the request cannot be written', async () => {
    const results = await requestNodeGc([process.pid], path.join(dir, 'missing'), Date.now() + 1000);
    expect(results).toEqual([expect.objectContaining({ pid: process.pid, status: 'unreachable', detail: expect.stringMatching(/cannot write the GC request/) })]);
  });
});
