// What a process's stdio offers its process, whether pipes or a terminal.
import { FailedPreconditionError } from '../errors/shim-error';

export interface Stdio {
  /** Resolves once all output has been copied out. */
  drained(): Promise<void>;
  closeStdin(): void;
  /** Idempotent. */
  close(): void;
  resize(width: number, height: number): void;
}

/** For processes without a terminal: resizing is an error, as with the runc shim. */
export function noTerminal(subject: string): Stdio['resize'] {
  return () => {
    throw new FailedPreconditionError(`cannot resize ${subject}: it has no terminal`);
  };
}
