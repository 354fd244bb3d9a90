// The seal of a page-cache file: trusted in its boot, across a reboot only once made
// durable, never once the file changed (no CRIU needed: a plan without tasks).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makePageCacheFileDurable, pageCacheSealProblem, writeSealedPageCacheFile, type ImagesMapPlan } from './rewrite-images';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-seal-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const plan: ImagesMapPlan = { tasks: [], fileBytes: 8192, layout: 'layout-a' };
const editSeal = (file: string, change: Record<string, unknown>) => {
  const seal = JSON.parse(fs.readFileSync(`${file}.seal`, 'utf8')) as Record<string, unknown>;
  fs.chmodSync(`${file}.seal`, 0o644);
  fs.writeFileSync(`${file}.seal`, JSON.stringify({ ...seal, ...change }));
};

it('trusts a sealed file in its boot and layout, and after a reboot only once it was made durable', async () => {
  const file = path.join(dir, 'c1.pages');
  expect(pageCacheSealProblem(file)).toEqual({ kind: 'unsealed', detail: 'there is no such file' });
  await writeSealedPageCacheFile(file, plan, async () => undefined);
  expect(fs.statSync(file).size).toBe(8192);
  expect(pageCacheSealProblem(file, 'layout-a')).toBeUndefined();
  expect(pageCacheSealProblem(file, 'layout-b')).toMatchObject({ kind: 'unsealed' });
  editSeal(file, { bootId: 'an-earlier-boot' });
  expect(pageCacheSealProblem(file)).toEqual({ kind: 'unsealed', detail: 'it was written before the last reboot and never made durable' });
  await expect(makePageCacheFileDurable(file)).rejects.toThrow(/cannot be made durable/);

  await writeSealedPageCacheFile(file, plan, async () => undefined);
  await makePageCacheFileDurable(file);
  expect(JSON.parse(fs.readFileSync(`${file}.seal`, 'utf8'))).toMatchObject({ durable: true });
  editSeal(file, { bootId: 'an-earlier-boot', dev: '12345' });
  expect(pageCacheSealProblem(file, 'layout-a')).toBeUndefined();
});

it('calls a sealed file that was replaced or grew altered', async () => {
  const file = path.join(dir, 'c2.pages');
  await writeSealedPageCacheFile(file, plan, async () => undefined);
  fs.copyFileSync(file, `${file}.copy`);
  fs.renameSync(`${file}.copy`, file);
  expect(pageCacheSealProblem(file)).toMatchObject({ kind: 'altered', detail: expect.stringMatching(/ino/) });
  await writeSealedPageCacheFile(file, plan, async () => undefined);
  fs.chmodSync(file, 0o644);
  fs.appendFileSync(file, 'x');
  expect(pageCacheSealProblem(file)).toMatchObject({ kind: 'altered', detail: expect.stringMatching(/size/) });
});
