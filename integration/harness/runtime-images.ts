// Images with a managed runtime copied from the host: Node.js (the host's node binary and
// the libraries ldd names) and a JVM (the host's JDK 17 directory and its libraries). No
// registry is reachable, and these run exactly the runtimes the host has.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageBuilder } from './image';
import { runOk } from './process';

export const NODE_BINARY = fs.existsSync('/usr/bin/node') ? '/usr/bin/node' : process.execPath;
export const JDK_DIR = '/usr/lib/jvm/java-17-openjdk-amd64';

/** `ldd binary`: the absolute paths of the libraries it loads (none if static), and ldd's output. */
export async function sharedLibraries(binary: string): Promise<{ paths: string[]; output: string }> {
  const r = await runOk('ldd', [binary], { timeoutMs: 10_000 }).catch((err: unknown) => ({ stdout: String(err) }));
  const paths = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(0x/.exec(line);
    if (m?.[1]) paths.add(m[1]);
  }
  return { paths: [...paths], output: r.stdout.trim() };
}

/** The dirs and files any of these images needs around the runtime. */
function addBase(b: ImageBuilder): void {
  for (const dir of ['/proc', '/sys', '/dev', '/run', '/etc', '/root']) b.addEmptyDir(dir);
  b.addEmptyDir('/tmp', 0o1777);
  b.addContent('/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  b.addContent('/etc/group', 'root:x:0:\nnogroup:x:65534:\n');
  b.addContent('/etc/hosts', '127.0.0.1 localhost\n');
}

/** Adds `binary`'s libraries; returns them as [path in the image, host file copied]. */
async function addLibraries(b: ImageBuilder, binary: string, added: Set<string> = new Set()): Promise<{ libraries: Array<[string, string]>; output: string }> {
  const libs = await sharedLibraries(binary);
  const libraries: Array<[string, string]> = [];
  for (const lib of libs.paths) {
    if (added.has(lib)) continue;
    added.add(lib);
    const host = fs.realpathSync(lib);
    b.addFile(lib, host);
    libraries.push([lib, host]);
  }
  return { libraries, output: libs.output };
}

export interface NodeImage {
  readonly builder: ImageBuilder;
  readonly libraries: Array<[string, string]>;
  readonly lddOutput: string;
}

/** /usr/bin/node and its libraries; add the app and set the command. */
export async function nodeImageBuilder(name: string): Promise<NodeImage> {
  const b = new ImageBuilder(name);
  b.addFile('/usr/bin/node', NODE_BINARY, 0o755);
  const { libraries, output } = await addLibraries(b, NODE_BINARY);
  addBase(b);
  b.setEnv(['PATH=/usr/bin:/bin']);
  return { builder: b, libraries, lddOutput: output };
}

/** The host's JDK 17 at /opt/jdk (java on PATH) with the libraries java and libjvm load. */
export async function jvmImageBuilder(name: string): Promise<ImageBuilder> {
  if (!fs.existsSync(path.join(JDK_DIR, 'bin', 'java'))) throw new Error(`no JDK at ${JDK_DIR}: install openjdk-17-jdk-headless`);
  const b = new ImageBuilder(name);
  // What java runs from (bin, conf, lib with its modules image), not the jmods or sources.
  b.addEmptyDir('/opt/jdk');
  for (const part of ['bin', 'conf', 'lib']) b.addDir(path.join(JDK_DIR, part), `/opt/jdk/${part}`);
  b.addFile('/opt/jdk/release', path.join(JDK_DIR, 'release'));
  // Debian's conf/ holds symlinks into /etc (java.security among them): bring their targets.
  const etc = '/etc/java-17-openjdk';
  if (fs.existsSync(etc)) b.addDir(etc, etc);
  const added = new Set<string>();
  await addLibraries(b, path.join(JDK_DIR, 'bin', 'java'), added);
  await addLibraries(b, path.join(JDK_DIR, 'lib', 'server', 'libjvm.so'), added);
  for (const lib of ['libnet.so', 'libnio.so', 'libzip.so', 'libjimage.so', 'libjava.so']) {
    const file = path.join(JDK_DIR, 'lib', lib);
    if (fs.existsSync(file)) await addLibraries(b, file, added);
  }
  addBase(b);
  b.setEnv(['PATH=/opt/jdk/bin:/usr/bin:/bin', 'JAVA_HOME=/opt/jdk']);
  return b;
}

/**
 * JS that makes a heap mostly garbage: objects kept for ~30 rounds then dropped (~1 MiB a
 * round, every 5 ms), so they reach the old space and pile up between major GCs. Writes
 * /tmp/ready after `readyRounds` rounds and /tmp/beat (a counter) every 5 rounds.
 */
export function nodeChurn(readyRounds: number): string {
  return `
const window = [];
let rounds = 0;
(function churn() {
  const junk = [];
  for (let i = 0; i < 1000; i++) junk.push({ i, s: 'x'.repeat(200 + (i % 50)) + i, a: new Array(40).fill(i) });
  window.push(junk);
  if (window.length > 30) window.shift();
  rounds++;
  if (rounds === ${readyRounds}) require('fs').writeFileSync('/tmp/ready', 'ready');
  if (rounds % 5 === 0) require('fs').writeFileSync('/tmp/beat', String(rounds));
  setTimeout(churn, 5);
})();
`;
}

/** A Node.js app whose heap is mostly garbage: 24 MiB kept for good and nodeChurn (about 100 MiB anonymous memory, ~33 MiB after a compacting GC). */
export const NODE_CHURN_APP = `
const live = [];
for (let i = 0; i < 24; i++) live.push(Buffer.alloc(1 << 20, 65 + i).toString('latin1'));
${nodeChurn(400)}`;

/** Java statements (in a method that throws Exception) that churn as nodeChurn does, forever, every 10 ms. */
export function javaChurn(readyRounds: number): string {
  return `
    java.util.ArrayDeque<java.util.List<int[]>> window = new java.util.ArrayDeque<>();
    long rounds = 0;
    while (true) {
      java.util.List<int[]> junk = new java.util.ArrayList<>();
      for (int i = 0; i < 1000; i++) junk.add(new int[200 + (i % 50)]);
      window.add(junk);
      if (window.size() > 30) window.poll();
      if (++rounds == ${readyRounds}) java.nio.file.Files.writeString(java.nio.file.Path.of("/tmp/ready"), "ready");
      Thread.sleep(10);
    }`;
}

/**
 * jvmImageBuilder with one class compiled from `source` (javac, in workDir) as /app, run with
 * `javaOptions` (e.g. -Xms16m: G1 never shrinks the heap below its initial size, by default
 * 1/64 of RAM up to -Xmx). Builds the image tar at outPath.
 */
export async function buildJavaAppImage(name: string, className: string, source: string, javaOptions: readonly string[], workDir: string, outPath: string): Promise<void> {
  const classes = path.join(workDir, `classes-${className}`);
  fs.mkdirSync(classes, { recursive: true });
  fs.writeFileSync(path.join(classes, `${className}.java`), source);
  execFileSync('javac', ['-d', classes, path.join(classes, `${className}.java`)]);
  const b = await jvmImageBuilder(name);
  b.addFile(`/app/${className}.class`, path.join(classes, `${className}.class`));
  b.setCmd(['/opt/jdk/bin/java', ...javaOptions, '-cp', '/app', className]);
  await b.build(outPath);
}
