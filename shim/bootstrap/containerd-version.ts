// containerd 1.7 accepts only bootstrap version 2 and 2.x insists on 3 for gRPC shims,
// while both set MAX_SHIM_VERSION=2; so the server asks containerd which it is.
import * as grpc from '@grpc/grpc-js';
import { containerdClient } from '../proto/containerd-client';

interface VersionClient extends grpc.Client {
  Version(request: object, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, response?: { version: string }) => void): void;
}

export function bootstrapVersionFor(containerdVersion: string): 2 | 3 {
  const major = /(\d+)\.\d+/.exec(containerdVersion);
  return major && Number(major[1]) >= 2 ? 3 : 2;
}

export async function containerdVersion(address: string, timeoutMs = 5000): Promise<string> {
  const client = containerdClient<VersionClient>('version', address);
  try {
    return await new Promise<string>((resolve, reject) =>
      client.Version({}, { deadline: Date.now() + timeoutMs }, (err, response) => (err ? reject(err) : resolve(response?.version ?? ''))),
    );
  } finally {
    client.close();
  }
}
