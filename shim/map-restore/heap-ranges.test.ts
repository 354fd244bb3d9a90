import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HEAP_RANGES_FILE, parseJvmHeapInfo, readHeapRanges, writeHeapRanges } from './heap-ranges';

it('reads the heap ranges of GC.heap_info for G1, Parallel and Serial', () => {
  const g1 = ` garbage-first heap   total 262144K, used 24576K [0x00000000f0000000, 0x0000000100000000)
  region size 1024K, 24 young (24576K), 0 survivors (0K)
 Metaspace       used 1234K, committed 1408K, reserved 1056768K
  class space    used 100K, committed 192K, reserved 1048576K
`;
  expect(parseJvmHeapInfo(g1)).toEqual([{ start: 0xf0000000, end: 0x100000000 }]);
  const parallel = ` PSYoungGen      total 76288K, used 3932K [0x000000076ab00000, 0x0000000770000000, 0x00000007c0000000)
  eden space 65536K, 6% used [0x000000076ab00000,0x000000076aed7240,0x000000076eb00000)
 ParOldGen       total 175104K, used 0K [0x00000006c0000000, 0x00000006cab00000, 0x000000076ab00000)
`;
  const ranges = parseJvmHeapInfo(parallel);
  expect(ranges).toContainEqual({ start: 0x76ab00000, end: 0x7c0000000 });
  expect(ranges).toContainEqual({ start: 0x6c0000000, end: 0x76ab00000 });
  // The eden line's middle address is not page-aligned, its ends are: inside the young range anyway.
  expect(parseJvmHeapInfo('nothing here [0x1000, 0x1800)')).toEqual([]);
  expect(parseJvmHeapInfo('')).toEqual([]);
});

it('keeps ranges with the images and reads back only well-formed ones', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pageshare-heap-ranges-'));
  try {
    expect(readHeapRanges(dir).size).toBe(0);
    writeHeapRanges(dir, new Map());
    expect(fs.existsSync(path.join(dir, HEAP_RANGES_FILE))).toBe(false);
    writeHeapRanges(dir, new Map([[1, [{ start: 0x10000, end: 0x20000 }]]]));
    expect(readHeapRanges(dir)).toEqual(new Map([['1', [{ start: 0x10000, end: 0x20000 }]]]));
    fs.writeFileSync(path.join(dir, HEAP_RANGES_FILE), JSON.stringify({ version: 1, tasks: { '7': [{ start: 5, end: 3 }, { start: 4096, end: 8192 }], '8': 'x' } }));
    expect(readHeapRanges(dir)).toEqual(new Map([['7', [{ start: 4096, end: 8192 }]]]));
    fs.writeFileSync(path.join(dir, HEAP_RANGES_FILE), '{torn');
    expect(readHeapRanges(dir).size).toBe(0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
