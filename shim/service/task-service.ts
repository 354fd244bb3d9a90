// The containerd.task.v3.Task service: validates a request, finds the container, calls
// one method, publishes the event, and maps errors to gRPC statuses. No runc here.
import * as grpc from '@grpc/grpc-js';
import { Container } from '../container/container';
import { InvalidArgumentError, NotFoundError, ShimError, grpcStatusOf } from '../errors/shim-error';
import type { EventSink } from '../events/event-publisher';
import { log, errorMessage } from '../log/logger';
import type {
  CheckpointTaskRequest,
  CloseIORequest,
  CreateTaskRequest,
  ExecProcessRequest,
  IdRequest,
  KillRequest,
  ProcessRequest,
  ResizePtyRequest,
  ShutdownRequest,
  UpdateTaskRequest,
} from '../proto/messages';

import { SHIM_VERSION } from '../version';

type Handler = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

export class TaskService {
  private readonly containers = new Map<string, Container>();
  /** Ids whose Create is under way, so a second Create for one id is refused. */
  private readonly creating = new Set<string>();

  constructor(
    private readonly namespace: string,
    private readonly events: EventSink,
    /** Called when containerd asks to shut down and no container is left. */
    private readonly onShutdown: () => void,
  ) {}

  get containerCount(): number {
    return this.containers.size + this.creating.size;
  }

  /** grpc-js handlers keyed by method name. */
  handlers(): grpc.UntypedServiceImplementation {
    const methods: Record<string, (request: never) => Promise<object>> = {
      State: (r: ProcessRequest) => this.state(r),
      Create: (r: CreateTaskRequest) => this.create(r),
      Start: (r: ProcessRequest) => this.start(r),
      Delete: (r: ProcessRequest) => this.delete(r),
      Pids: (r: IdRequest) => this.pids(r),
      Pause: (r: IdRequest) => this.pause(r),
      Resume: (r: IdRequest) => this.resume(r),
      Checkpoint: (r: CheckpointTaskRequest) => this.checkpoint(r),
      Kill: (r: KillRequest) => this.kill(r),
      Exec: (r: ExecProcessRequest) => this.exec(r),
      ResizePty: (r: ResizePtyRequest) => this.resizePty(r),
      CloseIO: (r: CloseIORequest) => this.closeIO(r),
      Update: (r: UpdateTaskRequest) => this.update(r),
      Wait: (r: ProcessRequest) => this.wait(r),
      Stats: (r: IdRequest) => this.stats(r),
      Connect: (r: IdRequest) => this.connect(r),
      Shutdown: (r: ShutdownRequest) => this.shutdown(r),
    };
    const handlers: Record<string, Handler> = {};
    for (const [name, method] of Object.entries(methods)) {
      handlers[name] = (call, callback) => {
        const request = call.request as never;
        log.debug(`${name}`, request as Record<string, unknown>);
        method(request).then(
          (response) => callback(null, response),
          (err: unknown) => {
            if (!(err instanceof ShimError) || err.code === 'RUNTIME_FAILED' || err.code === 'INTERNAL') {
              log.error(`${name} failed`, { error: errorMessage(err) });
            }
            callback({ code: grpcStatusOf(err) as number, details: errorMessage(err) });
          },
        );
      };
    }
    return handlers;
  }

  private container(id: string): Container {
    if (!id) throw new InvalidArgumentError('request has no container id');
    const c = this.containers.get(id);
    if (!c) throw new NotFoundError(`container ${id} not found`);
    return c;
  }

  private async create(r: CreateTaskRequest): Promise<object> {
    if (!r.id) throw new InvalidArgumentError('Create: no container id');
    if (!r.bundle) throw new InvalidArgumentError(`Create ${r.id}: no bundle path`);
    if (this.containers.has(r.id) || this.creating.has(r.id)) throw new ShimError('ALREADY_EXISTS', `container ${r.id} already exists`);
    this.creating.add(r.id);
    try {
      const c = await Container.create(r, this.namespace, this.events);
      this.containers.set(r.id, c);
      this.events.publish('TaskCreate', {
        container_id: r.id,
        bundle: r.bundle,
        rootfs: r.rootfs,
        io: { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal },
        checkpoint: r.checkpoint,
        pid: c.init.pid,
      });
      return { pid: c.init.pid };
    } finally {
      this.creating.delete(r.id);
    }
  }

  private async start(r: ProcessRequest): Promise<object> {
    const c = this.container(r.id);
    const pid = await c.start(r.exec_id);
    if (r.exec_id) this.events.publish('TaskExecStarted', { container_id: r.id, exec_id: r.exec_id, pid });
    else this.events.publish('TaskStart', { container_id: r.id, pid });
    return { pid };
  }

  private async state(r: ProcessRequest): Promise<object> {
    const c = this.container(r.id);
    return c.process(r.exec_id).state(c.bundle);
  }

  private async delete(r: ProcessRequest): Promise<object> {
    const c = this.container(r.id);
    const result = await c.delete(r.exec_id);
    if (!r.exec_id) this.containers.delete(r.id);
    this.events.publish('TaskDelete', {
      container_id: r.id,
      pid: result.pid,
      exit_status: result.exit_status,
      exited_at: result.exited_at,
      id: r.exec_id,
    });
    return result;
  }

  private async pids(r: IdRequest): Promise<object> {
    return { processes: await this.container(r.id).pids() };
  }

  private async pause(r: IdRequest): Promise<object> {
    await this.container(r.id).init.pause();
    this.events.publish('TaskPaused', { container_id: r.id });
    return {};
  }

  private async resume(r: IdRequest): Promise<object> {
    await this.container(r.id).init.resume();
    this.events.publish('TaskResumed', { container_id: r.id });
    return {};
  }

  private async checkpoint(r: CheckpointTaskRequest): Promise<object> {
    if (!r.path) throw new InvalidArgumentError(`Checkpoint ${r.id}: no path`);
    await this.container(r.id).checkpoint(r.path, r.options);
    this.events.publish('TaskCheckpointed', { container_id: r.id, checkpoint: r.path });
    return {};
  }

  private async kill(r: KillRequest): Promise<object> {
    if (!Number.isInteger(r.signal) || r.signal <= 0 || r.signal > 64) throw new InvalidArgumentError(`Kill: invalid signal ${r.signal}`);
    await this.container(r.id).process(r.exec_id).kill(r.signal, r.all);
    return {};
  }

  private async exec(r: ExecProcessRequest): Promise<object> {
    if (!r.exec_id) throw new InvalidArgumentError('Exec: no exec id');
    this.container(r.id).addExec(r);
    this.events.publish('TaskExecAdded', { container_id: r.id, exec_id: r.exec_id });
    return {};
  }

  private async resizePty(r: ResizePtyRequest): Promise<object> {
    if (r.width > 0xffff || r.height > 0xffff) {
      throw new InvalidArgumentError(`ResizePty: invalid size ${r.width}x${r.height}`);
    }
    this.container(r.id).process(r.exec_id).resize(r.width, r.height);
    return {};
  }

  private async closeIO(r: CloseIORequest): Promise<object> {
    const p = this.container(r.id).process(r.exec_id);
    if (r.stdin) p.closeStdin();
    return {};
  }

  private async update(r: UpdateTaskRequest): Promise<object> {
    await this.container(r.id).update(r.resources);
    return {};
  }

  private async wait(r: ProcessRequest): Promise<object> {
    return this.container(r.id).process(r.exec_id).wait();
  }

  private async stats(r: IdRequest): Promise<object> {
    return { stats: this.container(r.id).stats() };
  }

  private async connect(r: IdRequest): Promise<object> {
    const c = this.containers.get(r.id);
    return { shim_pid: process.pid, task_pid: c?.init.pid ?? 0, version: SHIM_VERSION };
  }

  private async shutdown(_r: ShutdownRequest): Promise<object> {
    // One server serves every container of a namespace: it leaves only when none is left.
    if (this.containerCount === 0) setImmediate(this.onShutdown);
    return {};
  }
}
