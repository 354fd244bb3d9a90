// One place that loads our .proto files: the gRPC package definition (for the Task
// service and the Events client) and a protobufjs Root (for google.protobuf.Any payloads
// and the binary DeleteResponse that `delete` prints).
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import { repoRoot } from '../paths/repo-root';

export const PROTO_FILES = [
  'containerd/task/v3/shim.proto',
  'containerd/events/task.proto',
  'containerd/services/events/v1/events.proto',
  'containerd/services/version/v1/version.proto',
  'containerd/runc/v1/options.proto',
  'containerd/runtimeoptions/v1/api.proto',
  'containerd/cgroups/v1/metrics.proto',
  'ttrpc/ttrpc.proto',
];

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: Number,
  defaults: true,
  oneofs: true,
};

function protoDir(): string {
  return path.join(repoRoot(), 'proto');
}

let packageDefinition: protoLoader.PackageDefinition | undefined;
/** grpc-js service and message definitions, derived from the one parsed Root (parsing the
 * files a second time through proto-loader cost ~80 ms of server start). */
export function loadPackageDefinition(): protoLoader.PackageDefinition {
  packageDefinition ??= protoLoader.fromJSON(protoRoot().toJSON(), LOADER_OPTIONS);
  return packageDefinition;
}

let root: protobuf.Root | undefined;
export function protoRoot(): protobuf.Root {
  if (!root) {
    const r = new protobuf.Root();
    const dir = protoDir();
    r.resolvePath = (_origin, target) => {
      // google/protobuf/* are protobufjs's bundled well-known types.
      if (target.startsWith('google/protobuf/')) return target;
      return path.isAbsolute(target) ? target : path.join(dir, target);
    };
    r.loadSync(PROTO_FILES.map((f) => path.join(dir, f)), { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}
