// What the store and checkpoint commands print: the store's reports as text for people,
// and the checkpoint record as the JSON object scripts get. No store logic here.
import { PAGE_SIZE } from '../criu/page-size';
import type { GcReport } from '../store/store-gc';
import type { CheckpointRecord } from '../store/page-index';
import type { StoreStats } from '../store/page-store';
import type { VerifyReport } from '../store/store-verify';
import { formatBytes, formatRatio } from './byte-size';
import { renderFields, renderTable } from './text-table';

/** A checkpoint as `checkpoint ls --json` and `checkpoint show --json` print it. */
export interface CheckpointView {
  readonly id: string;
  readonly containerId: string;
  readonly namespace: string;
  /** ISO 8601, UTC. */
  readonly created: string;
  readonly createdAtMs: number;
  /** Pages in the checkpoint, zero pages and repeats included. */
  readonly pageCount: number;
  readonly zeroPages: number;
  /** Distinct non-zero pages it references. */
  readonly uniquePages: number;
  /** Pages its ingest added to the store (the others were there already). */
  readonly newPages: number;
  /** pageCount pages: the memory the checkpoint stands for. */
  readonly logicalBytes: number;
  /** uniquePages pages: what its pages take in the store, pages shared with others included. */
  readonly storedBytes: number;
}

export function checkpointView(c: CheckpointRecord): CheckpointView {
  return {
    id: c.id,
    containerId: c.containerId,
    namespace: c.namespace,
    created: new Date(c.createdAtMs).toISOString(),
    createdAtMs: c.createdAtMs,
    pageCount: c.pageCount,
    zeroPages: c.zeroPages,
    uniquePages: c.uniquePages,
    newPages: c.newPages,
    logicalBytes: c.pageCount * PAGE_SIZE,
    storedBytes: c.uniquePages * PAGE_SIZE,
  };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function statsText(root: string, s: StoreStats): string {
  return renderFields([
    ['page store', root],
    ['checkpoints', String(s.checkpoints)],
    ['pages', `${s.pages} (${formatBytes(s.storedBytes)})`],
    ['packs', `${s.packs} (${s.sealedPacks} sealed, ${s.pinnedPacks} pinned)`],
    ['zero pages', `${s.zeroPagesReferenced} referenced (never stored)`],
    ['logical size', formatBytes(s.logicalBytes)],
    ['physical size', formatBytes(s.physicalBytes)],
    ['dedup ratio', formatRatio(s.dedupRatio)],
  ]);
}

export function checkpointTable(checkpoints: readonly CheckpointView[]): string {
  return renderTable(
    [
      { header: 'ID', value: (c) => c.id },
      { header: 'CONTAINER', value: (c) => c.containerId },
      { header: 'NAMESPACE', value: (c) => c.namespace },
      { header: 'CREATED', value: (c) => c.created },
      { header: 'PAGES', value: (c) => String(c.pageCount), align: 'right' },
      { header: 'UNIQUE', value: (c) => String(c.uniquePages), align: 'right' },
      { header: 'NEW', value: (c) => String(c.newPages), align: 'right' },
      { header: 'SIZE', value: (c) => formatBytes(c.logicalBytes), align: 'right' },
      { header: 'STORED', value: (c) => formatBytes(c.storedBytes), align: 'right' },
    ],
    checkpoints,
  );
}

export function checkpointText(c: CheckpointView): string {
  return renderFields([
    ['id', c.id],
    ['container', c.containerId],
    ['namespace', c.namespace],
    ['created', c.created],
    ['pages', `${c.pageCount} (${formatBytes(c.logicalBytes)})`],
    ['zero pages', String(c.zeroPages)],
    ['unique pages', `${c.uniquePages} (${formatBytes(c.storedBytes)} in the store, shared pages included)`],
    ['new pages', `${c.newPages} (added to the store by this checkpoint)`],
  ]);
}

export function verifyText(root: string, r: VerifyReport): string {
  const out: string[] = [
    `verified ${root}: ${plural(r.packsChecked, 'pack')}, ${plural(r.pagesChecked, 'page')}, ${plural(r.checkpointsChecked, 'checkpoint')}`,
  ];
  if (r.ok) {
    out.push('ok: every kept checkpoint can be restored from this store');
  } else {
    out.push(`${plural(r.problemCount, 'problem')}:`);
    for (const p of r.problems) {
      const needed = p.checkpointIds === undefined ? '' : p.checkpointIds.length === 0 ? ' (no kept checkpoint needs it)' : ` (needed by ${p.checkpointIds.join(', ')})`;
      out.push(`  ${p.kind}: ${p.message}${needed}`);
    }
    if (r.problemCount > r.problems.length) out.push(`  ... and ${r.problemCount - r.problems.length} more`);
    if (r.damagedCheckpoints.length > 0) {
      out.push(`damaged checkpoints (they cannot be restored from this store; take them again): ${r.damagedCheckpoints.join(', ')}`);
    }
  }
  const { tailBytes, deadBytes, orphanFiles, orphanBytes } = r.reclaimable;
  const parts: string[] = [];
  if (deadBytes > 0) parts.push(`${formatBytes(deadBytes)} of dropped pages still in packs`);
  if (tailBytes > 0) parts.push(`${formatBytes(tailBytes)} past packs' committed ends`);
  if (orphanFiles.length > 0) parts.push(`${plural(orphanFiles.length, 'leftover file')} of ${formatBytes(orphanBytes)}`);
  out.push(
    parts.length === 0
      ? 'reclaimable: 0 B'
      : `reclaimable: ${formatBytes(tailBytes + deadBytes + orphanBytes)} (${parts.join(', ')}); ` +
          '`pageshare store gc` removes leftovers, and dropped pages once their pack is mostly dead',
  );
  return out.join('\n') + '\n';
}

export function gcText(root: string, r: GcReport): string {
  const fields: Array<[string, string]> = [
    ['pages dropped', `${r.pagesRemoved} (no kept checkpoint referenced them)`],
    ['packs deleted', r.packsDeleted.length === 0 ? 'none' : r.packsDeleted.join(', ')],
  ];
  if (r.packsCompacted.length > 0) fields.push(['packs compacted', `${r.packsCompacted.join(', ')} (live pages moved to ${r.packsCreated.join(', ')})`]);
  if (r.pinnedKept.length > 0) fields.push(['pinned, kept', r.pinnedKept.join(', ')]);
  for (const s of r.compactionSkipped) fields.push(['not compacted', `pack ${s.packId}: ${s.reason} (run \`pageshare store verify\`)`]);
  if (r.orphanFilesRemoved > 0) fields.push(['leftovers removed', plural(r.orphanFilesRemoved, 'file')]);
  return `gc of ${root} freed ${formatBytes(r.bytesFreed)}\n` + renderFields(fields, '  ');
}
