// Which protocol `start` tells containerd to use. The server always serves both: gRPC
// (grpc-js) and ttrpc (containerd's own shims' protocol).
//
// Why ttrpc by default: containerd watches a gRPC shim connection and treats connectivity
// state Idle as "the shim died", then cleans the container up (kills it).
// - containerd 2.x (2.1.9, 2.2) connects with grpc.NewClient, which starts Idle: whether a
//   new container survives is a race, lost here within a millisecond.
// - containerd 1.7.24 dials blocking (Ready at once) but vendors grpc-go 1.59, whose
//   channels go Idle after 30 minutes without an RPC: measured here, a gRPC-served
//   container with no RPC traffic was killed 30 minutes after its start, to the second.
// ttrpc connections have no idle state. gRPC stays available for those who want it.
export type ShimProtocol = 'grpc' | 'ttrpc';

export const PROTOCOL_ENV = 'PAGESHARE_SHIM_PROTOCOL';

export function chooseProtocol(env: NodeJS.ProcessEnv = process.env): ShimProtocol {
  const wanted = env[PROTOCOL_ENV];
  if (wanted === 'grpc' || wanted === 'ttrpc') return wanted;
  if (wanted && wanted !== 'auto') throw new Error(`${PROTOCOL_ENV} must be grpc, ttrpc or auto, not "${wanted}"`);
  return 'ttrpc';
}
