// TypeScript shapes of the task API messages as grpc-js delivers them (keepCase, longs as
// numbers, enums as numbers, defaults filled in).
import type { Any } from './any';

export interface Timestamp {
  seconds: number;
  nanos: number;
}

export interface Mount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export enum TaskStatus {
  UNKNOWN = 0,
  CREATED = 1,
  RUNNING = 2,
  STOPPED = 3,
  PAUSED = 4,
  PAUSING = 5,
}

export interface CreateTaskRequest {
  id: string;
  bundle: string;
  rootfs: Mount[];
  terminal: boolean;
  stdin: string;
  stdout: string;
  stderr: string;
  checkpoint: string;
  parent_checkpoint: string;
  options: Any | null;
}

export interface IdRequest {
  id: string;
}

export interface ProcessRequest {
  id: string;
  exec_id: string;
}

export interface ExecProcessRequest extends ProcessRequest {
  terminal: boolean;
  stdin: string;
  stdout: string;
  stderr: string;
  spec: Any | null;
}

export interface ResizePtyRequest extends ProcessRequest {
  width: number;
  height: number;
}

export interface KillRequest extends ProcessRequest {
  signal: number;
  all: boolean;
}

export interface CloseIORequest extends ProcessRequest {
  stdin: boolean;
}

export interface CheckpointTaskRequest extends IdRequest {
  path: string;
  options: Any | null;
}

export interface UpdateTaskRequest extends IdRequest {
  resources: Any | null;
  annotations: Record<string, string>;
}

export interface ShutdownRequest extends IdRequest {
  now: boolean;
}

export interface StateResponse {
  id: string;
  bundle: string;
  pid: number;
  status: TaskStatus;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exit_status: number;
  exited_at: Timestamp | null;
  exec_id: string;
}

export interface DeleteResponse {
  pid: number;
  exit_status: number;
  exited_at: Timestamp | null;
}

export interface WaitResponse {
  exit_status: number;
  exited_at: Timestamp | null;
}

export interface ProcessInfo {
  pid: number;
  info: Any | null;
}

export function toTimestamp(date: Date | undefined): Timestamp | null {
  if (!date) return null;
  const ms = date.getTime();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}
