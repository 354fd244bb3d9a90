// A mapping prepared at checkpoint against one planned at restore, on a real CRIU dump of a
// Node.js process: the same images and layout; and a damaged one is refused.
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { privateCriu } from '../criu/test-criu';
import { PREPARED_MAPPING_DIR, PreparedMappingError, applyPreparedMapping, readPreparedMapping, writePreparedMapping } from './prepared-mapping';
import { applyImagesMapping, planImagesMapping } from './rewrite-images';

const run = promisify(execFile);
const { criu, skipReason } = privateCriu();
const APP = `
const data = [];
for (let i = 0; i < 100000; i++) data.push({ i, s: 'v' + i });
require('fs').writeFileSync(process.argv[1], 'ready');
setInterval(() => data.length, 1000);
`;
const CACHE = { hostPath: '/unused', pathInRestore: '/pageshare-cache/ck-1.pages' };

(skipReason ? describe.skip : describe)(`prepared mapping${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let work: string;
  let dump: string;

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-prepared-'));
    dump = path.join(work, 'dump');
    fs.mkdirSync(dump);
    const ready = path.join(work, 'ready');
    const child = spawn(process.execPath, ['-e', APP, ready], { detached: true, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    for (let i = 0; i < 400 && !fs.existsSync(ready); i++) await new Promise((r) => setTimeout(r, 25));
    await run(criu as string, ['dump', '-t', String(child.pid), '-D', dump, '-v1', '-o', 'dump.log']);
    await exited;
  }, 60_000);

  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  const copyOfDump = (name: string): string => {
    const dir = path.join(work, name);
    fs.cpSync(dump, dir, { recursive: true });
    return dir;
  };

  it('gives a restore the images and layout that planning there gives', async () => {
    const planned = copyOfDump('planned');
    const plan = await planImagesMapping(planned);
    const rewrite = await applyImagesMapping(planned, plan, CACHE);
    expect(rewrite.mappings).toBeGreaterThan(0);

    const checkpoint = copyOfDump('checkpoint');
    await writePreparedMapping(checkpoint, 'ck-1', CACHE.pathInRestore);
    const prepared = readPreparedMapping(checkpoint);
    expect(prepared).toMatchObject({ checkpointId: 'ck-1', pathInRestore: CACHE.pathInRestore });
    const restored = copyOfDump('restored');
    // Not onto images other than those it was made from.
    const edited = copyOfDump('edited');
    const mmName = [...prepared!.images.keys()].find((n) => n.startsWith('mm-')) as string;
    fs.appendFileSync(path.join(edited, mmName), Buffer.from([0]));
    expect(() => applyPreparedMapping(edited, prepared!)).toThrow(`the dumped ${mmName} is not the one it was prepared from`);
    const applied = applyPreparedMapping(restored, prepared!);

    const changed = fs.readdirSync(planned).filter((n) => !fs.readFileSync(path.join(planned, n)).equals(fs.readFileSync(path.join(dump, n))));
    expect(changed.sort()).toEqual([...prepared!.images.keys()].sort());
    for (const name of fs.readdirSync(planned)) expect(fs.readFileSync(path.join(restored, name)).equals(fs.readFileSync(path.join(planned, name)))).toBe(true);
    expect(applied.rewrite).toEqual(rewrite);
    expect(applied.layout.layout).toBe(plan.layout);
    expect(applied.layout.fileBytes).toBe(plan.fileBytes);
    expect(applied.layout.tasks).toEqual(plan.tasks.map((t) => ({ pagesPath: path.join(restored, path.basename(t.pagesPath)), fileBase: t.fileBase, plan: { toFile: t.plan.toFile, toPages: t.plan.toPages } })));
  });

  it('is refused when an image or the plan was changed', async () => {
    const checkpoint = copyOfDump('damaged');
    await writePreparedMapping(checkpoint, 'ck-1', CACHE.pathInRestore);
    const dir = path.join(checkpoint, PREPARED_MAPPING_DIR);
    const mm = fs.readdirSync(dir).find((n) => n.startsWith('mm-')) as string;
    const bytes = fs.readFileSync(path.join(dir, mm));
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(path.join(dir, mm), bytes);
    expect(() => readPreparedMapping(checkpoint)).toThrow(PreparedMappingError);
    expect(() => readPreparedMapping(checkpoint)).toThrow(`${mm} does not match its SHA-256`);

    // A link in its place is not followed.
    fs.rmSync(path.join(dir, mm));
    fs.symlinkSync(path.join(dump, mm), path.join(dir, mm));
    expect(() => readPreparedMapping(checkpoint)).toThrow(`${mm} is a symlink`);

    const planFile = path.join(dir, 'plan.json');
    const plan = JSON.parse(fs.readFileSync(planFile, 'utf8')) as { images: Record<string, string> };
    plan.images['../../escape.img'] = 'x';
    fs.writeFileSync(planFile, JSON.stringify(plan));
    expect(() => readPreparedMapping(checkpoint)).toThrow('it lists "../../escape.img"');
    fs.writeFileSync(planFile, '{');
    expect(() => readPreparedMapping(checkpoint)).toThrow('plan.json is not JSON');
    expect(readPreparedMapping(path.join(work, 'dump'))).toBeUndefined();
  });
});
