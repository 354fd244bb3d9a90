/**
 * Test images without a registry: a one-layer OCI image layout tar built from host files
 * (busybox, a Node or Java tree...), and its import into a containerd.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import * as tar from 'tar-stream';
import type { Containerd } from './containerd';
import { depPaths } from './paths';
import { runOk } from './process';

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

/** One thing to put in the image. Exactly one of source / content / symlink / hardlink / hostDir / dir. */
export interface ImageFile {
  /** Absolute path inside the image. */
  path: string;
  /** A host file copied in (its mode is kept unless `mode` is given). */
  source?: string;
  content?: string | Buffer;
  /** Target of a symbolic link (relative or absolute, as written). */
  symlink?: string;
  /** Absolute image path of an earlier entry this is a hard link to. */
  hardlink?: string;
  /** A host directory copied recursively to `path` (files, dirs, symlinks). */
  hostDir?: string;
  /** An empty directory. */
  dir?: true;
  mode?: number;
  uid?: number;
  gid?: number;
}

export interface ImageSpec {
  /** Full reference, e.g. `docker.io/library/pstest:latest`. */
  name: string;
  files: readonly ImageFile[];
  cmd?: readonly string[];
  entrypoint?: readonly string[];
  /** `KEY=value` entries; default a PATH only. */
  env?: readonly string[];
  workingDir?: string;
  labels?: Readonly<Record<string, string>>;
  /** Compress the layer with gzip (default: plain tar, faster to build and import). */
  gzip?: boolean;
}

export interface BuiltImage {
  name: string;
  tarPath: string;
  manifestDigest: string;
  configDigest: string;
  layerDigest: string;
  /** sha256 of the uncompressed layer (rootfs.diff_ids[0]). */
  diffId: string;
  layerSize: number;
}

export const DEFAULT_ENV: readonly string[] = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
/** Fixed timestamps keep digests stable for identical content. */
const EPOCH = new Date('2020-01-01T00:00:00Z');

type LayerEntry =
  | { kind: 'file'; mode: number; uid: number; gid: number; source: string; size: number }
  | { kind: 'content'; mode: number; uid: number; gid: number; data: Buffer }
  | { kind: 'symlink'; uid: number; gid: number; target: string }
  | { kind: 'hardlink'; uid: number; gid: number; target: string }
  | { kind: 'dir'; mode: number; uid: number; gid: number };

/** Image path -> tar name: no leading slash, normalised. */
function tarName(imagePath: string): string {
  if (!imagePath.startsWith('/')) throw new Error(`image paths must be absolute: ${imagePath}`);
  const normal = path.posix.normalize(imagePath).replace(/^\/+/, '').replace(/\/+$/, '');
  if (normal === '' || normal.startsWith('..')) throw new Error(`bad image path: ${imagePath}`);
  return normal;
}

/** Collects entries (later additions replace earlier ones at the same path) and writes the image. */
export class ImageBuilder {
  private readonly entries = new Map<string, LayerEntry>();
  private cmd: readonly string[] = ['/bin/sh'];
  private entrypoint: readonly string[] | undefined;
  private env: readonly string[] = DEFAULT_ENV;
  private workingDir = '/';
  private labels: Readonly<Record<string, string>> = {};
  private gzip = false;

  constructor(readonly name: string) {}

  static fromSpec(spec: ImageSpec): ImageBuilder {
    const b = new ImageBuilder(spec.name);
    for (const f of spec.files) b.add(f);
    if (spec.cmd) b.cmd = spec.cmd;
    b.entrypoint = spec.entrypoint;
    if (spec.env) b.env = spec.env;
    if (spec.workingDir) b.workingDir = spec.workingDir;
    if (spec.labels) b.labels = spec.labels;
    b.gzip = spec.gzip ?? false;
    return b;
  }

  add(f: ImageFile): this {
    const uid = f.uid ?? 0;
    const gid = f.gid ?? 0;
    const kinds = [f.source, f.content, f.symlink, f.hardlink, f.hostDir, f.dir].filter((x) => x !== undefined);
    if (kinds.length !== 1) throw new Error(`${f.path}: give exactly one of source/content/symlink/hardlink/hostDir/dir`);
    if (f.source !== undefined) {
      const st = fs.statSync(f.source);
      if (!st.isFile()) throw new Error(`${f.source} is not a regular file`);
      this.put(f.path, { kind: 'file', mode: f.mode ?? st.mode & 0o7777, uid, gid, source: f.source, size: st.size });
    } else if (f.content !== undefined) {
      const data = typeof f.content === 'string' ? Buffer.from(f.content) : f.content;
      this.put(f.path, { kind: 'content', mode: f.mode ?? 0o644, uid, gid, data });
    } else if (f.symlink !== undefined) {
      this.put(f.path, { kind: 'symlink', uid, gid, target: f.symlink });
    } else if (f.hardlink !== undefined) {
      this.put(f.path, { kind: 'hardlink', uid, gid, target: tarName(f.hardlink) });
    } else if (f.hostDir !== undefined) {
      this.addDir(f.hostDir, f.path);
    } else {
      this.put(f.path, { kind: 'dir', mode: f.mode ?? 0o755, uid, gid });
    }
    return this;
  }

  addFile(imagePath: string, hostPath: string, mode?: number): this {
    return this.add({ path: imagePath, source: hostPath, mode });
  }

  addContent(imagePath: string, content: string | Buffer, mode?: number): this {
    return this.add({ path: imagePath, content, mode });
  }

  addSymlink(imagePath: string, target: string): this {
    return this.add({ path: imagePath, symlink: target });
  }

  addEmptyDir(imagePath: string, mode = 0o755): this {
    return this.add({ path: imagePath, dir: true, mode });
  }

  /** Copies a host directory tree to `imagePath` (regular files, dirs and symlinks; others skipped). */
  addDir(hostPath: string, imagePath: string): this {
    const st = fs.statSync(hostPath);
    if (!st.isDirectory()) throw new Error(`${hostPath} is not a directory`);
    this.put(imagePath, { kind: 'dir', mode: st.mode & 0o7777, uid: 0, gid: 0 });
    for (const entry of fs.readdirSync(hostPath, { withFileTypes: true })) {
      const host = path.join(hostPath, entry.name);
      const inImage = path.posix.join(imagePath, entry.name);
      if (entry.isDirectory()) this.addDir(host, inImage);
      else if (entry.isSymbolicLink()) this.addSymlink(inImage, fs.readlinkSync(host));
      else if (entry.isFile()) this.addFile(inImage, host);
    }
    return this;
  }

  setCmd(cmd: readonly string[]): this {
    this.cmd = cmd;
    return this;
  }

  setEntrypoint(entrypoint: readonly string[] | undefined): this {
    this.entrypoint = entrypoint;
    return this;
  }

  setEnv(env: readonly string[]): this {
    this.env = env;
    return this;
  }

  setWorkingDir(dir: string): this {
    this.workingDir = dir;
    return this;
  }

  setLabels(labels: Readonly<Record<string, string>>): this {
    this.labels = labels;
    return this;
  }

  setGzip(gzip: boolean): this {
    this.gzip = gzip;
    return this;
  }

  private put(imagePath: string, entry: LayerEntry): void {
    const name = tarName(imagePath);
    const existing = this.entries.get(name);
    // A directory added twice keeps its first mode unless explicitly a dir again.
    if (existing?.kind === 'dir' && entry.kind === 'dir') return;
    this.entries.set(name, entry);
  }

  /** Entries in tar order, with every missing parent directory made explicit. */
  private orderedEntries(): Array<[string, LayerEntry]> {
    for (const [name, entry] of this.entries) {
      if (entry.kind !== 'hardlink') continue;
      const target = this.entries.get(entry.target);
      if (target?.kind !== 'file' && target?.kind !== 'content') {
        throw new Error(`hard link /${name}: /${entry.target} is not a regular file of the image`);
      }
    }
    const all = new Map(this.entries);
    for (const name of this.entries.keys()) {
      for (let dir = path.posix.dirname(name); dir !== '.'; dir = path.posix.dirname(dir)) {
        if (!all.has(dir)) all.set(dir, { kind: 'dir', mode: 0o755, uid: 0, gid: 0 });
      }
    }
    // Parents before children; hard link targets are files and keep their sort position,
    // so links are moved after everything else.
    return [...all.entries()].sort(([a, ea], [b, eb]) => {
      const la = ea.kind === 'hardlink' ? 1 : 0;
      const lb = eb.kind === 'hardlink' ? 1 : 0;
      return la - lb || (a < b ? -1 : a > b ? 1 : 0);
    });
  }

  /** Writes the OCI image layout tar to `outPath`. */
  async build(outPath: string): Promise<BuiltImage> {
    fs.mkdirSync(path.dirname(outPath), { recursive: true });
    const layerPath = `${outPath}.layer.tmp`;
    try {
      const layer = await this.writeLayer(layerPath);
      const config = Buffer.from(
        JSON.stringify({
          created: EPOCH.toISOString(),
          architecture: 'amd64',
          os: 'linux',
          config: {
            Env: [...this.env],
            Cmd: [...this.cmd],
            ...(this.entrypoint ? { Entrypoint: [...this.entrypoint] } : {}),
            WorkingDir: this.workingDir,
            Labels: { ...this.labels },
          },
          rootfs: { type: 'layers', diff_ids: [layer.diffId] },
          history: [{ created: EPOCH.toISOString(), created_by: 'pageshare integration harness' }],
        }),
      );
      const configDigest = sha256(config);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA_TYPES.manifest,
          config: { mediaType: MEDIA_TYPES.config, digest: configDigest, size: config.length },
          layers: [
            {
              mediaType: this.gzip ? MEDIA_TYPES.layerGzip : MEDIA_TYPES.layer,
              digest: layer.digest,
              size: layer.size,
            },
          ],
        }),
      );
      const manifestDigest = sha256(manifest);
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA_TYPES.index,
          manifests: [
            {
              mediaType: MEDIA_TYPES.manifest,
              digest: manifestDigest,
              size: manifest.length,
              platform: { architecture: 'amd64', os: 'linux' },
              annotations: {
                'io.containerd.image.name': this.name,
                'org.opencontainers.image.ref.name': refTag(this.name),
              },
            },
          ],
        }),
      );

      const header = (name: string, size: number): TarHeader => ({
        name,
        size,
        mode: 0o644,
        mtime: EPOCH,
        type: 'file',
      });
      await writeTar(outPath, [], async (pack) => {
        const addBuffer = (name: string, data: Buffer): Promise<void> => entryDone(pack, header(name, data.length), data);
        await addBuffer('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
        await addBuffer('index.json', index);
        await entryDone(pack, { name: 'blobs', type: 'directory', mode: 0o755, mtime: EPOCH });
        await entryDone(pack, { name: 'blobs/sha256', type: 'directory', mode: 0o755, mtime: EPOCH });
        await addBuffer(blobName(configDigest), config);
        await addBuffer(blobName(manifestDigest), manifest);
        await entryFromFile(pack, header(blobName(layer.digest), layer.size), layerPath);
      });
      return {
        name: this.name,
        tarPath: outPath,
        manifestDigest,
        configDigest,
        layerDigest: layer.digest,
        diffId: layer.diffId,
        layerSize: layer.size,
      };
    } finally {
      fs.rmSync(layerPath, { force: true });
    }
  }

  private async writeLayer(layerPath: string): Promise<{ digest: string; diffId: string; size: number }> {
    const entries = this.orderedEntries();
    const diff = new HashingStream();
    const blob = new HashingStream();
    const stages: NodeJS.ReadWriteStream[] = this.gzip ? [diff, zlib.createGzip(), blob] : [diff];
    await writeTar(layerPath, stages, async (pack) => {
      for (const [name, entry] of entries) {
        const base = { name, uid: entry.uid, gid: entry.gid, uname: 'root', gname: 'root', mtime: EPOCH };
        switch (entry.kind) {
          case 'dir':
            await entryDone(pack, { ...base, type: 'directory', mode: entry.mode });
            break;
          case 'symlink':
            await entryDone(pack, { ...base, type: 'symlink', linkname: entry.target, mode: 0o777 });
            break;
          case 'hardlink': {
            // Unpackers chmod the shared inode with the link's mode too: repeat the target's.
            const target = this.entries.get(entry.target);
            const mode = target && 'mode' in target ? target.mode : 0o644;
            await entryDone(pack, { ...base, type: 'link', linkname: entry.target, mode });
            break;
          }
          case 'content':
            await entryDone(pack, { ...base, type: 'file', mode: entry.mode, size: entry.data.length }, entry.data);
            break;
          case 'file':
            await entryFromFile(pack, { ...base, type: 'file', mode: entry.mode, size: entry.size }, entry.source);
            break;
        }
      }
    });
    const diffId = diff.digest();
    return { digest: this.gzip ? blob.digest() : diffId, diffId, size: fs.statSync(layerPath).size };
  }
}

type TarHeader = Parameters<tar.Pack['entry']>[0];

/**
 * Streams a tar through `stages` into `outPath` while `fill` adds the entries. On failure
 * the partial file is removed and nothing is left running.
 */
async function writeTar(
  outPath: string,
  stages: readonly NodeJS.ReadWriteStream[],
  fill: (pack: tar.Pack) => Promise<void>,
): Promise<void> {
  const pack = tar.pack();
  const written = pipeline([Readable.from(pack), ...stages, fs.createWriteStream(outPath)]);
  try {
    await fill(pack);
    pack.finalize();
  } catch (err) {
    pack.destroy(err instanceof Error ? err : new Error(String(err)));
    await written.catch(() => undefined);
    fs.rmSync(outPath, { force: true });
    throw err;
  }
  await written;
}

/** Adds one entry (with its data, if any) and resolves once tar-stream has taken it. */
function entryDone(pack: tar.Pack, header: TarHeader, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
    if (data) pack.entry(header, data, cb);
    else pack.entry(header, cb);
  });
}

/** Streams a host file into one entry (header.size must be its size), with backpressure. */
function entryFromFile(pack: tar.Pack, header: TarHeader, source: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    sink.on('error', reject);
    const copy = async (): Promise<void> => {
      const chunks: AsyncIterable<Buffer> = fs.createReadStream(source);
      for await (const chunk of chunks) {
        if (!sink.write(chunk)) await new Promise<void>((ok) => sink.once('drain', () => ok()));
      }
      sink.end(undefined);
    };
    copy().catch((err: unknown) => {
      const error = err instanceof Error ? err : new Error(String(err));
      sink.destroy(error);
      reject(error);
    });
  });
}

/** A pass-through that hashes what flows by. */
class HashingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private result: string | undefined;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    cb(null, chunk);
  }
  digest(): string {
    this.result ??= `sha256:${this.hash.digest('hex')}`;
    return this.result;
  }
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function blobName(digest: string): string {
  return `blobs/sha256/${digest.slice('sha256:'.length)}`;
}

/** The tag of a reference ("latest" when none), as `docker save` writes ref.name. */
function refTag(name: string): string {
  const last = name.slice(name.lastIndexOf('/') + 1);
  const at = last.indexOf('@');
  const base = at >= 0 ? last.slice(0, at) : last;
  const colon = base.indexOf(':');
  return colon >= 0 ? base.slice(colon + 1) : 'latest';
}

export function buildImage(spec: ImageSpec, outPath: string): Promise<BuiltImage> {
  return ImageBuilder.fromSpec(spec).build(outPath);
}

export const BUSYBOX_IMAGE = 'docker.io/library/pstest:latest';

const ETC_FILES: readonly ImageFile[] = [
  { path: '/etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' },
  { path: '/etc/group', content: 'root:x:0:\nnogroup:x:65534:\n' },
  { path: '/etc/hosts', content: '127.0.0.1 localhost\n' },
  { path: '/etc/hostname', content: 'pstest\n' },
  { path: '/etc/resolv.conf', content: '' },
];

let busyboxApplets: readonly string[] | undefined;

/** The applets the installed busybox provides (`busybox --list`). */
export async function listBusyboxApplets(): Promise<readonly string[]> {
  if (!busyboxApplets) {
    const out = await runOk(depPaths().BUSYBOX, ['--list'], { timeoutMs: 10_000 });
    busyboxApplets = out.stdout
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s !== '' && s !== 'busybox' && !s.includes('/'));
  }
  return busyboxApplets;
}

/**
 * A busybox userland: /bin/busybox with a symlink per applet in /bin (sh, echo, sleep, cat,
 * ps, dd, ...), /usr/bin/env, /etc basics and the usual empty mount points. `extra` entries
 * are added on top (and replace same-path entries).
 */
export async function busyboxImageBuilder(name = BUSYBOX_IMAGE, extra: readonly ImageFile[] = []): Promise<ImageBuilder> {
  const b = new ImageBuilder(name);
  b.addFile('/bin/busybox', depPaths().BUSYBOX, 0o755);
  for (const applet of await listBusyboxApplets()) b.addSymlink(`/bin/${applet}`, 'busybox');
  b.addSymlink('/usr/bin/env', '/bin/busybox');
  for (const dir of ['/proc', '/sys', '/dev', '/root', '/run', '/var', '/usr/local/bin', '/sbin']) b.addEmptyDir(dir);
  b.addEmptyDir('/tmp', 0o1777);
  b.addEmptyDir('/var/tmp', 0o1777);
  for (const f of ETC_FILES) b.add(f);
  for (const f of extra) b.add(f);
  return b;
}

/** Builds the busybox image (see `busyboxImageBuilder`) to `outPath`. */
export async function buildBusyboxImage(
  outPath: string,
  name = BUSYBOX_IMAGE,
  extra: readonly ImageFile[] = [],
): Promise<BuiltImage> {
  return (await busyboxImageBuilder(name, extra)).build(outPath);
}

export interface ImportOptions {
  /** containerd namespace; default "default". */
  namespace?: string;
  /** Snapshotter to unpack into; default containerd's (overlayfs). */
  snapshotter?: string;
  timeoutMs?: number;
  /** containerd 2.x only: import in ctr itself (`--local`) instead of via the transfer service. */
  local?: boolean;
}

/**
 * `ctr images import`, unpacked into the snapshotter so `ctr run` can use it at once (the
 * default on 1.7 and 2.1; `--no-unpack` would break that). `--platform linux/amd64` names
 * the one platform the image has; neither version needs `--all-platforms` for it.
 */
export async function importImage(containerd: Containerd, tarPath: string, opts: ImportOptions = {}): Promise<void> {
  const args = ['images', 'import', '--platform', 'linux/amd64'];
  if (opts.local && containerd.version !== '1.7') args.push('--local');
  if (opts.snapshotter) args.push('--snapshotter', opts.snapshotter);
  await containerd.ctrOk([...args, tarPath], { namespace: opts.namespace, timeoutMs: opts.timeoutMs ?? 120_000 });
}
