// google.protobuf.Any as grpc-js hands it to us (keepCase), and the codecs for the
// payload types pageshare reads or writes.
import { protoRoot } from './proto-root';

export interface Any {
  type_url: string;
  value: Buffer;
}

/** containerd names protobuf payloads by full message name, without a host prefix. */
export function packAny(typeName: string, message: object): Any {
  const type = protoRoot().lookupType(typeName);
  const err = type.verify(message);
  if (err) throw new Error(`cannot encode ${typeName}: ${err}`);
  return { type_url: typeName, value: Buffer.from(type.encode(type.fromObject(message)).finish()) };
}

/** The message name behind a type URL: "types.googleapis.com/a.B" and "a.B" both give "a.B". */
export function anyTypeName(any: Any): string {
  const slash = any.type_url.lastIndexOf('/');
  return slash >= 0 ? any.type_url.slice(slash + 1) : any.type_url;
}

export function unpackAny<T>(any: Any, typeName: string): T {
  const type = protoRoot().lookupType(typeName);
  const decoded = type.decode(any.value);
  return type.toObject(decoded, { longs: Number, enums: Number, defaults: true }) as T;
}

/** Payloads containerd encodes as JSON (OCI spec types registered with typeurl). */
export function unpackJsonAny<T>(any: Any): T {
  return JSON.parse(Buffer.from(any.value).toString('utf8')) as T;
}

export function isEmptyAny(any: Any | null | undefined): any is null | undefined {
  return !any || (!any.type_url && (!any.value || any.value.length === 0));
}

export function encodeMessage(typeName: string, message: object): Buffer {
  const type = protoRoot().lookupType(typeName);
  return Buffer.from(type.encode(type.fromObject(message)).finish());
}

export function decodeMessage<T>(typeName: string, bytes: Uint8Array): T {
  const type = protoRoot().lookupType(typeName);
  return type.toObject(type.decode(bytes), { longs: Number, enums: Number, defaults: true }) as T;
}
