import * as fs from 'node:fs';
import * as path from 'node:path';

let cached: string | undefined;

/** The pageshare checkout this code runs from (sources under ts-jest, or dist/ when built). */
export function repoRoot(): string {
  if (cached) return cached;
  let dir = __dirname;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        if ((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === 'pageshare') {
          cached = dir;
          return dir;
        }
      } catch {
        /* not ours: keep walking */
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the pageshare package root above ${__dirname}`);
    dir = parent;
  }
}
