// Which protocol `start` tells containerd to use. The server always serves both: gRPC
// (grpc-js) and ttrpc (containerd's own shims' protocol).
//
// Why not gRPC alone: containerd 2.x (checked in 2.1.9 and 2.2) watches a gRPC shim
// connection made with grpc.NewClient and treats connectivity state Idle as "shim died".
// A new client starts Idle, so whether a freshly started container is kept or cleaned up
// (killed) is a race; we saw it lost within a millisecond. containerd 1.7.24 dials with
// WithBlock (Ready at once) but vendors grpc-go 1.59, whose channels go Idle after 30
// minutes without RPCs by default; see the README for what was measured. ttrpc has no
// idleness.
export type ShimProtocol = 'grpc' | 'ttrpc';

export const PROTOCOL_ENV = 'PAGESHARE_SHIM_PROTOCOL';

export function chooseProtocol(bootstrapVersion: 2 | 3, env: NodeJS.ProcessEnv = process.env): ShimProtocol {
  const wanted = env[PROTOCOL_ENV];
  if (wanted === 'grpc' || wanted === 'ttrpc') return wanted;
  if (wanted && wanted !== 'auto') throw new Error(`${PROTOCOL_ENV} must be grpc, ttrpc or auto, not "${wanted}"`);
  return bootstrapVersion >= 3 ? 'ttrpc' : 'grpc';
}
