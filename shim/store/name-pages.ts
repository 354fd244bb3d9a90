// A checkpoint's stored page names kept as pages in the store ("name pages") rather than
// inline in its manifest. The names are 32 bytes per stored page (~1.9 MB for a 230 MiB
// dump): inline, every checkpoint's tar carries all of them again, however little changed.
// As pages they are content-addressed like the memory pages: a checkpoint that differs from
// an earlier one in a few places adds only the name pages that hold changed names.
//
// Layout: the stored names of every pages file of the manifest, in manifest order, back to
// back, NAMES_PER_PAGE (128) per page; the last page is zero-padded. A name page is added to
// the checkpoint's ingest like any page, so it is durable before the manifest names it, is
// referenced by the checkpoint (gc keeps it), and is verified by its name when read back.
import { PAGE_SIZE } from '../criu/page-size';
import { HASH_BYTES } from './page-ref';
import { ManifestError } from './store-error';
import { NAMES_PER_PAGE, PageManifest, PagedManifest, storedPagesOf } from './page-manifest';
import type { PageRun } from './page-runs';

/** The stored names of a manifest's files, in order. */
export function storedNamesOf(m: PageManifest): Buffer {
  const parts: Buffer[] = [];
  for (const f of m.files) for (const r of f.runs) if (r.kind === 'stored') parts.push(r.hashes);
  return Buffer.concat(parts);
}

/** The name pages that hold `names` (HASH_BYTES each), back to back, the last zero-padded. */
export function namePagesOf(names: Buffer): Buffer {
  const count = Math.ceil(names.length / HASH_BYTES / NAMES_PER_PAGE);
  const pages = Buffer.alloc(count * PAGE_SIZE);
  names.copy(pages);
  return pages;
}

/** The manifest without inline names, naming its name pages instead. */
export function pagedManifestOf(m: PageManifest, namePageNames: Buffer): PagedManifest {
  return {
    storeId: m.storeId,
    checkpointId: m.checkpointId,
    files: m.files.map((f) => ({ name: f.name, runs: f.runs.map((r) => ({ kind: r.kind, count: r.count })), ...(f.locations ? { locations: f.locations } : {}) })),
    namePages: namePageNames,
  };
}

/**
 * The manifest with its names again, from the bytes of its name pages (read and verified by
 * the caller, in order). Padding that is not zero means the pages do not belong to it.
 */
export function withNamesFromPages(m: PagedManifest, pages: Buffer): PageManifest {
  const stored = m.files.reduce((n, f) => n + storedPagesOf(f.runs), 0);
  const namesBytes = stored * HASH_BYTES;
  if (pages.length !== (m.namePages.length / HASH_BYTES) * PAGE_SIZE || pages.length < namesBytes) {
    throw new ManifestError('MANIFEST_CORRUPT', `checkpoint ${m.checkpointId}`, undefined, `its ${m.namePages.length / HASH_BYTES} name pages cannot hold ${stored} names`);
  }
  if (pages.subarray(namesBytes).some((b) => b !== 0)) {
    throw new ManifestError('MANIFEST_CORRUPT', `checkpoint ${m.checkpointId}`, undefined, 'its last name page has bytes after its names');
  }
  let at = 0;
  const files = m.files.map((f) => ({
    name: f.name,
    runs: f.runs.map((r): PageRun => {
      if (r.kind === 'zero') return { kind: 'zero', count: r.count };
      const hashes = pages.subarray(at, at + r.count * HASH_BYTES);
      at += r.count * HASH_BYTES;
      return { kind: 'stored', count: r.count, hashes };
    }),
    ...(f.locations ? { locations: f.locations } : {}),
  }));
  return { storeId: m.storeId, checkpointId: m.checkpointId, files };
}
