// Task events to containerd's Events service over gRPC, in order, with retries so a
// containerd restart does not drop them.
import * as grpc from '@grpc/grpc-js';
import { packAny } from '../proto/any';
import { containerdClient } from '../proto/containerd-client';
import { log, errorMessage } from '../log/logger';

export type TaskEventName =
  | 'TaskCreate'
  | 'TaskStart'
  | 'TaskExit'
  | 'TaskDelete'
  | 'TaskExecAdded'
  | 'TaskExecStarted'
  | 'TaskPaused'
  | 'TaskResumed'
  | 'TaskCheckpointed'
  | 'TaskOOM';

const TOPICS: Record<TaskEventName, string> = {
  TaskCreate: '/tasks/create',
  TaskStart: '/tasks/start',
  TaskExit: '/tasks/exit',
  TaskDelete: '/tasks/delete',
  TaskExecAdded: '/tasks/exec-added',
  TaskExecStarted: '/tasks/exec-started',
  TaskPaused: '/tasks/paused',
  TaskResumed: '/tasks/resumed',
  TaskCheckpointed: '/tasks/checkpointed',
  TaskOOM: '/tasks/oom',
};

const MAX_ATTEMPTS = 30;
const RETRY_DELAY_MS = 500;
const PUBLISH_TIMEOUT_MS = 5000;

interface PublishClient extends grpc.Client {
  Publish(request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null) => void): void;
}

export interface EventSink {
  publish(name: TaskEventName, event: object): void;
}

export class EventPublisher implements EventSink {
  private readonly client: PublishClient;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    containerdAddress: string,
    private readonly namespace: string,
  ) {
    this.client = containerdClient<PublishClient>('events', containerdAddress);
  }

  publish(name: TaskEventName, event: object): void {
    const request = { topic: TOPICS[name], event: packAny(`containerd.events.${name}`, event) };
    this.queue = this.queue.then(() => this.send(request, name));
  }

  /** Resolves when everything queued so far has been sent or given up. */
  flush(): Promise<void> {
    return this.queue;
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }

  private async send(request: object, name: TaskEventName): Promise<void> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS && !this.closed; attempt++) {
      const metadata = new grpc.Metadata();
      metadata.set('containerd-namespace', this.namespace);
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        // A containerd that accepts but never answers must not stall every later event.
        this.client.Publish(request, metadata, { deadline: Date.now() + PUBLISH_TIMEOUT_MS }, (e) => resolve(e)),
      );
      if (!err) return;
      log.warn(`publishing ${name} failed (attempt ${attempt})`, { error: errorMessage(err) });
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
    }
    log.error(`gave up publishing ${name}`);
  }
}
