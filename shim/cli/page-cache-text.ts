// What `store stats`, `store gc` and `checkpoint rm` print about page-cache files, for
// people (JSON prints the store's reports as they are). No store logic here.
import type { PageCacheStats } from '../store/page-cache-dir';
import type { PageCacheGcReport, PageCacheHeld } from '../store/page-cache-gc';
import { formatBytes } from './byte-size';
import { renderFields } from './text-table';

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function pageCacheStatsText(s: PageCacheStats): string {
  return renderFields([['page-cache files', `${s.files}, ${formatBytes(s.apparentBytes)} (${formatBytes(s.allocatedBytes)} on disk: they are sparse)`]]);
}

/** Why a file stays. */
function heldText(h: PageCacheHeld): string {
  if (h.referencedBy.length > 0) return `a later checkpoint needs it (${h.referencedBy.join(', ')})`;
  if (h.mappedBy.length > 0) return `mapped by ${plural(h.mappedBy.length, 'process', 'processes')} (pid ${h.mappedBy.join(', ')})`;
  return h.unchecked ?? 'in use';
}

/** The page-cache part of `store gc`'s report; empty when gc found no page-cache file to remove. */
export function pageCacheGcText(r: PageCacheGcReport): string {
  const fields: Array<[string, string]> = [];
  for (const x of r.removed) fields.push(['removed', `${x.namespace}/${x.checkpointId} (${formatBytes(x.bytesFreed)})`]);
  for (const h of r.held) fields.push(['kept', `${h.namespace}/${h.checkpointId}: ${heldText(h)}`]);
  if (r.staleMarkersRemoved.length > 0) fields.push(['markers removed', `${r.staleMarkersRemoved.length} (their checkpoints are gone)`]);
  if (r.tmpFilesRemoved.length > 0) fields.push(['leftovers removed', `${plural(r.tmpFilesRemoved.length, 'file')} of writers that exited`]);
  return fields.length === 0 ? '' : 'page-cache files\n' + renderFields(fields, '  ');
}

/** What `checkpoint rm` did with a removed checkpoint's page-cache files. */
export function pageCacheRmText(r: PageCacheGcReport): string {
  const lines: string[] = [];
  for (const x of r.removed) lines.push(`removed the page-cache files of ${x.checkpointId} in ${x.namespace} (${formatBytes(x.bytesFreed)})`);
  for (const h of r.held) {
    const later = h.referencedBy.length > 0 || h.mappedBy.length > 0 ? '; `pageshare store gc` removes it once nothing needs it' : '';
    lines.push(`kept the page-cache file of ${h.checkpointId} in ${h.namespace}: ${heldText(h)}${later}`);
  }
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}
