import { anyTypeName, isEmptyAny, packAny, unpackAny } from './any';
import { toTimestamp } from './messages';

interface TaskExit {
  container_id: string;
  id: string;
  pid: number;
  exit_status: number;
  exited_at: { seconds: number; nanos: number } | null;
}

describe('google.protobuf.Any helpers', () => {
  it('round-trips containerd.events.TaskExit with a timestamp', () => {
    const exitedAt = toTimestamp(new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 678)));
    const event = { container_id: 'c1', id: 'e1', pid: 4242, exit_status: 137, exited_at: exitedAt };
    const any = packAny('containerd.events.TaskExit', event);
    expect(any.type_url).toBe('containerd.events.TaskExit');
    expect(Buffer.isBuffer(any.value)).toBe(true);
    expect(any.value.length).toBeGreaterThan(0);
    const back = unpackAny<TaskExit>(any, anyTypeName(any));
    expect(back).toEqual({ container_id: 'c1', id: 'e1', pid: 4242, exit_status: 137, exited_at: { seconds: 1735787045, nanos: 678_000_000 } });
  });

  it('fills defaults for fields left out', () => {
    const back = unpackAny<TaskExit>(packAny('containerd.events.TaskExit', { container_id: 'c2' }), 'containerd.events.TaskExit');
    expect(back).toMatchObject({ container_id: 'c2', id: '', pid: 0, exit_status: 0 });
  });

  it('keeps large uint32 values', () => {
    const back = unpackAny<TaskExit>(packAny('containerd.events.TaskExit', { pid: 0xffffffff, exit_status: 255 }), 'containerd.events.TaskExit');
    expect(back.pid).toBe(0xffffffff);
    expect(back.exit_status).toBe(255);
  });

  it('names the message behind a type URL with or without a host prefix', () => {
    expect(anyTypeName({ type_url: 'containerd.events.TaskExit', value: Buffer.alloc(0) })).toBe('containerd.events.TaskExit');
    expect(anyTypeName({ type_url: 'types.googleapis.com/containerd.events.TaskExit', value: Buffer.alloc(0) })).toBe('containerd.events.TaskExit');
    expect(anyTypeName({ type_url: 'https://example.com/a/b/x.Y', value: Buffer.alloc(0) })).toBe('x.Y');
    expect(anyTypeName({ type_url: '', value: Buffer.alloc(0) })).toBe('');
  });

  it('refuses to pack an invalid message', () => {
    expect(() => packAny('containerd.events.TaskExit', { pid: 'not a number' })).toThrow(/cannot encode containerd.events.TaskExit/);
    expect(() => packAny('containerd.events.TaskExit', { container_id: 42 })).toThrow(/container_id/);
    expect(() => packAny('containerd.events.TaskExit', { exited_at: { seconds: 'soon' } })).toThrow(Error);
  });

  it('refuses an unknown message type', () => {
    expect(() => packAny('containerd.events.NoSuchEvent', {})).toThrow();
  });

  it('tells an empty Any from a set one', () => {
    expect(isEmptyAny(null)).toBe(true);
    expect(isEmptyAny(undefined)).toBe(true);
    expect(isEmptyAny({ type_url: '', value: Buffer.alloc(0) })).toBe(true);
    expect(isEmptyAny(packAny('containerd.events.TaskExit', {}))).toBe(false);
  });
});
