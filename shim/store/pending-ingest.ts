// An ingest whose pages are durable but which the index does not hold yet. A checkpoint's
// pages are made durable (packs fsynced) and this record written (fsynced, renamed into
// pending/) before its manifest; the index transaction follows after the checkpoint call has
// returned, so that containerd's pause does not wait for one B-tree insert per page. If the
// process dies in between, the next holder of the writer lock (an ingest, a seal, gc, or a
// store opened while nobody holds it) commits the record before doing anything else: the
// record's pages lie below the packs' committed lengths only once that is done, so no writer
// may touch a pack first.
//
//   record = magic "PGSHPEND" | version u16 (1) | json length u32 | json
//            | new page count u32 | per new page: name (32) | pack id u32 | offset u64
//            | existing id count u32 | per existing page: id u64
//            | trailer: SHA-256 of every byte before it
//   json   = { checkpoint, packs, nextPackId } of the IngestCommit
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { replaceFileDurably } from './durable-fs';
import type { IngestCommit, NewPage } from './page-index';
import { HASH_BYTES } from './page-ref';

const MAGIC = Buffer.from('PGSHPEND', 'latin1');
const VERSION = 1;
const SUFFIX = '.ingest';
const NEW_PAGE_BYTES = HASH_BYTES + 4 + 8;

/** A record that cannot be read back (it is left for a person to look at, renamed). */
export class PendingIngestError extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`pending ingest record ${file} is unreadable: ${detail}`);
    this.name = 'PendingIngestError';
  }
}

/** The record's file for a checkpoint (ids are any text, so the name is a digest of it). */
export function pendingFile(pendingDir: string, checkpointId: string): string {
  return path.join(pendingDir, `${crypto.createHash('sha256').update(checkpointId).digest('hex').slice(0, 32)}${SUFFIX}`);
}

export function encodePendingIngest(c: IngestCommit): Buffer {
  const json = Buffer.from(JSON.stringify({ checkpoint: c.checkpoint, packs: c.packs, nextPackId: c.nextPackId }), 'utf8');
  const size = MAGIC.length + 2 + 4 + json.length + 4 + c.pages.length * NEW_PAGE_BYTES + 4 + c.existingPageIds.length * 8 + 32;
  const out = Buffer.alloc(size);
  let at = MAGIC.copy(out, 0);
  at = out.writeUInt16LE(VERSION, at);
  at = out.writeUInt32LE(json.length, at);
  at += json.copy(out, at);
  at = out.writeUInt32LE(c.pages.length, at);
  for (const p of c.pages) {
    at += p.hash.copy(out, at);
    at = out.writeUInt32LE(p.packId, at);
    at = out.writeBigUInt64LE(BigInt(p.offset), at);
  }
  at = out.writeUInt32LE(c.existingPageIds.length, at);
  for (const id of c.existingPageIds) at = out.writeBigUInt64LE(BigInt(id), at);
  crypto.createHash('sha256').update(out.subarray(0, at)).digest().copy(out, at);
  return out;
}

export function decodePendingIngest(buf: Buffer, file: string): IngestCommit {
  const bad = (detail: string): PendingIngestError => new PendingIngestError(file, detail);
  if (buf.length < MAGIC.length + 2 + 4 + 4 + 4 + 32 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw bad('not a pending ingest record');
  const body = buf.subarray(0, buf.length - 32);
  if (!crypto.createHash('sha256').update(body).digest().equals(buf.subarray(buf.length - 32))) throw bad('checksum mismatch');
  let at = MAGIC.length;
  const version = buf.readUInt16LE(at);
  if (version !== VERSION) throw bad(`version ${version}, this pageshare reads ${VERSION}`);
  at += 2;
  const need = (n: number): void => {
    if (at + n > body.length) throw bad('truncated');
  };
  need(4);
  const jsonLength = buf.readUInt32LE(at);
  at += 4;
  need(jsonLength);
  const meta = JSON.parse(buf.subarray(at, at + jsonLength).toString('utf8')) as Pick<IngestCommit, 'checkpoint' | 'packs' | 'nextPackId'>;
  at += jsonLength;
  need(4);
  const pageCount = buf.readUInt32LE(at);
  at += 4;
  need(pageCount * NEW_PAGE_BYTES);
  const pages: NewPage[] = [];
  for (let i = 0; i < pageCount; i++) {
    const hash = Buffer.from(buf.subarray(at, at + HASH_BYTES));
    pages.push({ hash, packId: buf.readUInt32LE(at + HASH_BYTES), offset: Number(buf.readBigUInt64LE(at + HASH_BYTES + 4)) });
    at += NEW_PAGE_BYTES;
  }
  need(4);
  const idCount = buf.readUInt32LE(at);
  at += 4;
  need(idCount * 8);
  const existingPageIds: number[] = [];
  for (let i = 0; i < idCount; i++) existingPageIds.push(Number(buf.readBigUInt64LE(at + i * 8)));
  at += idCount * 8;
  if (at !== body.length) throw bad(`${body.length - at} unexpected bytes`);
  return { ...meta, pages, existingPageIds };
}

/** Write the record durably (fsynced file, atomic rename, fsynced directory). */
export async function writePendingIngest(pendingDir: string, c: IngestCommit): Promise<string> {
  const file = pendingFile(pendingDir, c.checkpoint.id);
  await replaceFileDurably(file, encodePendingIngest(c));
  return file;
}

/** Pending records in pendingDir, oldest first. */
export function listPendingIngests(pendingDir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(pendingDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => n.endsWith(SUFFIX))
    .map((n) => path.join(pendingDir, n))
    .map((f) => ({ f, t: fs.statSync(f).mtimeMs }))
    .sort((a, b) => a.t - b.t)
    .map(({ f }) => f);
}
