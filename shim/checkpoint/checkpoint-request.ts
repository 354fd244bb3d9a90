// What a Checkpoint call asks for: containerd.runc.v1.CheckpointOptions when the client sent
// them (ctr containers checkpoint), the runc shim's defaults when not (nerdctl, Docker).
import { anyTypeName, isEmptyAny, unpackAny, type Any } from '../proto/any';
import { InvalidArgumentError } from '../errors/shim-error';

export interface CheckpointRequest {
  /** Stop the container after a successful dump. */
  exit: boolean;
  openTcp: boolean;
  externalUnixSockets: boolean;
  terminal: boolean;
  fileLocks: boolean;
  emptyNamespaces: string[];
  cgroupsMode: string;
  /** A CRIU work dir the user wants kept (logs); empty: a private one, removed afterwards. */
  workPath: string;
}

interface CheckpointOptionsMessage {
  exit: boolean;
  open_tcp: boolean;
  external_unix_sockets: boolean;
  terminal: boolean;
  file_locks: boolean;
  empty_namespaces: string[];
  cgroups_mode: string;
  image_path: string;
  work_path: string;
}

const CGROUPS_MODES = ['', 'soft', 'full', 'strict', 'ignore'];

export function parseCheckpointRequest(any: Any | null | undefined): CheckpointRequest {
  const request: CheckpointRequest = {
    exit: false,
    openTcp: false,
    externalUnixSockets: false,
    terminal: false,
    fileLocks: false,
    emptyNamespaces: [],
    cgroupsMode: '',
    workPath: '',
  };
  if (isEmptyAny(any)) return request;
  const type = anyTypeName(any);
  if (type !== 'containerd.runc.v1.CheckpointOptions') {
    throw new InvalidArgumentError(`unsupported checkpoint options type ${type} (expected containerd.runc.v1.CheckpointOptions)`);
  }
  const m = unpackAny<CheckpointOptionsMessage>(any, type);
  if (!CGROUPS_MODES.includes(m.cgroups_mode)) {
    throw new InvalidArgumentError(`invalid cgroups_mode "${m.cgroups_mode}" (use soft, full, strict or ignore)`);
  }
  return {
    exit: m.exit,
    openTcp: m.open_tcp,
    externalUnixSockets: m.external_unix_sockets,
    terminal: m.terminal,
    fileLocks: m.file_locks,
    emptyNamespaces: m.empty_namespaces,
    cgroupsMode: m.cgroups_mode,
    workPath: m.work_path,
  };
}
