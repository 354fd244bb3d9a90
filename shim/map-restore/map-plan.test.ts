import { PE_PARENT, PE_PRESENT } from '../criu/pagemap';
import { planTaskMapping } from './map-plan';
import { MANAGED_HEAP_FLAGS, MAP_ANONYMOUS, MAP_PRIVATE, VMA_ANON_PRIVATE, VMA_AREA_REGULAR, type VmaShape } from './vma-status';

const P = 4096;
const RW = 0x3;
const ANON = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
const heap = (start: number, pages: number): VmaShape => ({ start: start * P, end: (start + pages) * P, prot: RW, flags: MANAGED_HEAP_FLAGS, status: ANON });
const present = (page: number, pages: number) => ({ vaddr: page * P, nrPages: pages, flags: PE_PRESENT });

it('moves the present pages of managed-heap VMAs to the file, at their offsets, and keeps the rest', () => {
  const vmas: VmaShape[] = [
    { start: 0, end: 4 * P, prot: RW, flags: MAP_PRIVATE | MAP_ANONYMOUS, status: ANON }, // malloc arena: stays
    heap(10, 8),
    heap(30, 4), // nothing present: not mapped
    heap(40, 2),
  ];
  // One entry spans the first VMA's tail and the heap's start; another ends inside the last heap.
  const entries = [present(2, 2), present(12, 3), present(16, 1), { vaddr: 20 * P, nrPages: 1, flags: 0 }, present(39, 2)];
  const plan = planTaskMapping(vmas, entries);
  expect(plan.regions).toEqual([
    { vmaIndex: 1, start: 10 * P, end: 18 * P, fileOffset: 0 },
    { vmaIndex: 3, start: 40 * P, end: 42 * P, fileOffset: 8 * P },
  ]);
  expect(plan.fileBytes).toBe(10 * P);
  // pages file: [2,3] [12,13,14] [16] [39,40]
  expect(plan.toFile).toEqual([
    { from: 2 * P, to: 2 * P, length: 3 * P },
    { from: 5 * P, to: 6 * P, length: P },
    { from: 7 * P, to: 8 * P, length: P },
  ]);
  expect(plan.keptEntries).toEqual([present(2, 2), { vaddr: 20 * P, nrPages: 1, flags: 0 }, present(39, 1)]);
  expect(plan.toPages).toEqual([
    { from: 0, to: 0, length: 2 * P },
    { from: 6 * P, to: 2 * P, length: P },
  ]);
  expect([plan.mappedPages, plan.keptPages]).toEqual([5, 3]);
});

it('splits one entry that covers two heap regions and the gap between them', () => {
  const plan = planTaskMapping([heap(0, 2), heap(3, 2)], [present(0, 5)]);
  expect(plan.keptEntries).toEqual([present(2, 1)]);
  expect(plan.toFile).toEqual([
    { from: 0, to: 0, length: 2 * P },
    { from: 3 * P, to: 2 * P, length: 2 * P },
  ]);
  expect(plan.toPages).toEqual([{ from: 2 * P, to: 0, length: P }]);
});

it('never maps [heap], stacks, shared or file memory, or anonymous memory without the managed-heap flags', () => {
  const special = [
    { start: 0, end: P, prot: RW, flags: MANAGED_HEAP_FLAGS, status: ANON | (1 << 5) }, // [heap]
    { start: P, end: 2 * P, prot: RW, flags: MANAGED_HEAP_FLAGS | 0x100, status: ANON | (1 << 1) }, // stack, MAP_GROWSDOWN
    { start: 2 * P, end: 3 * P, prot: RW, flags: MAP_PRIVATE | MAP_ANONYMOUS, status: ANON }, // no MAP_NORESERVE
    { start: 3 * P, end: 4 * P, prot: 0, flags: MANAGED_HEAP_FLAGS, status: ANON }, // PROT_NONE reservation
  ];
  const plan = planTaskMapping(special, [present(0, 4)]);
  expect(plan.regions).toEqual([]);
  expect(plan.keptEntries).toEqual([present(0, 4)]);
});

it('leaves a region with lazy pages to CRIU', () => {
  const plan = planTaskMapping([heap(0, 4)], [present(0, 1), { vaddr: 2 * P, nrPages: 1, flags: 2 }]);
  expect(plan.regions).toEqual([]);
  expect(plan.keptPages).toBe(1);
});

it('refuses an entry whose pages are in a parent image', () => {
  expect(() => planTaskMapping([heap(0, 1)], [{ vaddr: 0, nrPages: 1, flags: PE_PARENT }])).toThrow(/parent image/);
});

it('maps plain anonymous VMAs only wholly inside a heap range the runtime reported', () => {
  const plain = (start: number, pages: number, prot = RW): VmaShape => ({ start: start * P, end: (start + pages) * P, prot, flags: MAP_PRIVATE | MAP_ANONYMOUS, status: ANON });
  const vmas: VmaShape[] = [
    plain(0, 4), // a malloc'd block outside: stays
    plain(100, 8), // committed Java heap: mapped
    plain(108, 4, 0x7), // executable: never
    plain(118, 4), // straddles the range's end: stays
  ];
  const entries = [present(0, 4), present(100, 8), present(108, 4), present(118, 4)];
  expect(planTaskMapping(vmas, entries).regions).toEqual([]);
  const plan = planTaskMapping(vmas, entries, [{ start: 100 * P, end: 120 * P }]);
  expect(plan.regions).toEqual([{ vmaIndex: 1, start: 100 * P, end: 108 * P, fileOffset: 0 }]);
  expect([plan.mappedPages, plan.keptPages]).toEqual([8, 12]);
});
