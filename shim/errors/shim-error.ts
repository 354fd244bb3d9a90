// Errors the shim returns to containerd. Each has a stable string code and maps to one
// gRPC status; containerd turns those statuses back into errdefs (NotFound, ...).
// (The status numbers are gRPC's; grpc-js is not imported here because `start`, which runs
// once per container, must stay light.)

/** gRPC status codes used by the shim (the same numbers over ttrpc). */
export enum GrpcStatus {
  OK = 0,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  FAILED_PRECONDITION = 9,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
}

export type ShimErrorCode =
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'INVALID_ARGUMENT'
  | 'UNIMPLEMENTED'
  | 'RUNTIME_FAILED'
  | 'INTERNAL';

const GRPC_STATUS: Record<ShimErrorCode, GrpcStatus> = {
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  FAILED_PRECONDITION: GrpcStatus.FAILED_PRECONDITION,
  INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  UNIMPLEMENTED: GrpcStatus.UNIMPLEMENTED,
  RUNTIME_FAILED: GrpcStatus.UNKNOWN,
  INTERNAL: GrpcStatus.INTERNAL,
};

export class ShimError extends Error {
  constructor(
    readonly code: ShimErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ShimError';
  }

  get grpcStatus(): GrpcStatus {
    return GRPC_STATUS[this.code];
  }
}

export class NotFoundError extends ShimError {
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

export class AlreadyExistsError extends ShimError {
  constructor(message: string) {
    super('ALREADY_EXISTS', message);
  }
}

export class FailedPreconditionError extends ShimError {
  constructor(message: string) {
    super('FAILED_PRECONDITION', message);
  }
}

export class InvalidArgumentError extends ShimError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

export class UnimplementedError extends ShimError {
  constructor(message: string) {
    super('UNIMPLEMENTED', message);
  }
}

/** A runc (or CRIU) command failed; the message carries what it said. */
export class RuntimeError extends ShimError {
  constructor(message: string) {
    super('RUNTIME_FAILED', message);
  }
}

export function grpcStatusOf(err: unknown): GrpcStatus {
  return err instanceof ShimError ? err.grpcStatus : GrpcStatus.UNKNOWN;
}
