// A gRPC client of one of containerd's own services, on containerd's socket (given as a bare
// path or a unix:// address, as containerd passes it to shims).
import * as grpc from '@grpc/grpc-js';
import { loadPackageDefinition } from './proto-root';

export function containerdClient<T extends grpc.Client>(service: 'events' | 'version', address: string): T {
  const pkg = grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as {
    containerd: { services: Record<string, { v1: Record<string, grpc.ServiceClientConstructor> }> };
  };
  const name = service === 'events' ? 'Events' : 'Version';
  const Client = pkg.containerd.services[service]!.v1[name]!;
  const target = address.startsWith('unix:') ? address : `unix://${address}`;
  return new Client(target, grpc.credentials.createInsecure()) as unknown as T;
}
