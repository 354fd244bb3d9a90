// A process's lifecycle as an explicit state machine: every operation is checked against
// the current state in one place, and an illegal one is an error naming the state.
import { FailedPreconditionError, NotFoundError } from '../errors/shim-error';
import { TaskStatus } from '../proto/messages';

export type ProcessState = 'created' | 'created-checkpoint' | 'running' | 'paused' | 'stopped' | 'deleted';

export type ProcessOperation = 'start' | 'pause' | 'resume' | 'exit' | 'delete' | 'kill' | 'exec' | 'update' | 'checkpoint';

/** For each state, the operations allowed and the state each one leads to. */
const TRANSITIONS: Record<ProcessState, Partial<Record<ProcessOperation, ProcessState>>> = {
  created: { start: 'running', delete: 'deleted', kill: 'created', exit: 'stopped', update: 'created', exec: 'created' },
  // Created from a checkpoint: nothing runs until start restores it.
  'created-checkpoint': { start: 'running', delete: 'deleted' },
  running: { pause: 'paused', kill: 'running', exit: 'stopped', exec: 'running', update: 'running', checkpoint: 'running' },
  paused: { resume: 'running', kill: 'paused', exit: 'stopped', update: 'paused', checkpoint: 'paused' },
  stopped: { delete: 'deleted' },
  deleted: {},
};

const STATUS: Record<ProcessState, TaskStatus> = {
  created: TaskStatus.CREATED,
  'created-checkpoint': TaskStatus.CREATED,
  running: TaskStatus.RUNNING,
  paused: TaskStatus.PAUSED,
  stopped: TaskStatus.STOPPED,
  deleted: TaskStatus.STOPPED,
};

export class Lifecycle {
  private current: ProcessState;

  constructor(
    /** How errors name the process: "container c1" or "exec e1 in c1". */
    private readonly subject: string,
    /** Operations this kind of process does not support at all. */
    private readonly unsupported: readonly ProcessOperation[] = [],
    initial: 'created' | 'created-checkpoint' = 'created',
  ) {
    this.current = initial;
  }

  get state(): ProcessState {
    return this.current;
  }

  get status(): TaskStatus {
    return STATUS[this.current];
  }

  /** Throws unless `op` is allowed now; does not change state. */
  check(op: ProcessOperation): void {
    if (this.unsupported.includes(op)) {
      throw new FailedPreconditionError(`cannot ${op} ${this.subject}: not supported for this process`);
    }
    if (TRANSITIONS[this.current][op] !== undefined) return;
    if (op === 'kill' && (this.current === 'stopped' || this.current === 'deleted')) {
      // containerd treats a kill of a finished process as NotFound, as the runc shim says.
      throw new NotFoundError(`cannot kill ${this.subject}: process already finished`);
    }
    throw new FailedPreconditionError(`cannot ${op} ${this.subject} in ${this.current} state`);
  }

  /** Checks `op` and moves to the state it leads to. */
  apply(op: ProcessOperation): ProcessState {
    this.check(op);
    this.current = TRANSITIONS[this.current][op]!;
    return this.current;
  }
}
