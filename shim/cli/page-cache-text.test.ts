import { NO_PAGE_CACHE_GC, PageCacheGcReport } from '../store/page-cache-gc';
import { pageCacheGcText, pageCacheRmText, pageCacheStatsText } from './page-cache-text';

const report: PageCacheGcReport = {
  removed: [{ namespace: 'default', checkpointId: 'c1', removed: ['/r/page-cache/default/c1.pages.seal', '/r/page-cache/default/c1.pages'], bytesFreed: 8192 }],
  held: [
    { namespace: 'default', checkpointId: 'c2', file: '/r/page-cache/default/c2.pages', mappedBy: [41, 42], referencedBy: [] },
    { namespace: 'prod', checkpointId: 'c2', file: '/r/page-cache/prod/c2.pages', mappedBy: [], referencedBy: ['c3'] },
    { namespace: 'prod', checkpointId: 'c4', file: '/r/page-cache/prod/c4.pages', mappedBy: [], referencedBy: [], unchecked: 'cannot tell whether it is mapped: the mappings of pid 1 are unreadable (EACCES)' },
  ],
  staleMarkersRemoved: ['/r/page-cache/prod/c2.pages.refs/c9'],
  tmpFilesRemoved: ['/r/page-cache/default/c5.pages.77.tmp'],
  bytesFreed: 12288,
};

describe('page-cache text', () => {
  it('stats: count, apparent and allocated size', () => {
    expect(pageCacheStatsText({ files: 2, apparentBytes: 2 * 1024 * 1024, allocatedBytes: 12 * 1024 })).toBe(
      'page-cache files  2, 2.00 MiB (12.0 KiB on disk: they are sparse)\n',
    );
  });

  it('gc: what went, what stayed and why', () => {
    expect(pageCacheGcText(report)).toBe(
      [
        'page-cache files',
        '  removed            default/c1 (8.00 KiB)',
        '  kept               default/c2: mapped by 2 processes (pid 41, 42)',
        '  kept               prod/c2: a later checkpoint needs it (c3)',
        '  kept               prod/c4: cannot tell whether it is mapped: the mappings of pid 1 are unreadable (EACCES)',
        '  markers removed    1 (their checkpoints are gone)',
        '  leftovers removed  1 file of writers that exited',
        '',
      ].join('\n'),
    );
    expect(pageCacheGcText(NO_PAGE_CACHE_GC)).toBe('');
  });

  it('checkpoint rm: one line per domain', () => {
    expect(pageCacheRmText(report).split('\n')).toEqual([
      'removed the page-cache files of c1 in default (8.00 KiB)',
      'kept the page-cache file of c2 in default: mapped by 2 processes (pid 41, 42); `pageshare store gc` removes it once nothing needs it',
      'kept the page-cache file of c2 in prod: a later checkpoint needs it (c3); `pageshare store gc` removes it once nothing needs it',
      'kept the page-cache file of c4 in prod: cannot tell whether it is mapped: the mappings of pid 1 are unreadable (EACCES)',
      '',
    ]);
    expect(pageCacheRmText(NO_PAGE_CACHE_GC)).toBe('');
  });
});
