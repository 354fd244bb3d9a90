import { FailedPreconditionError, NotFoundError } from '../errors/shim-error';
import { TaskStatus } from '../proto/messages';
import { Lifecycle } from './lifecycle';

describe('Lifecycle', () => {
  it('walks created -> running -> paused -> running -> stopped -> deleted', () => {
    const l = new Lifecycle('container c1');
    expect(l.status).toBe(TaskStatus.CREATED);
    expect(l.apply('start')).toBe('running');
    expect(l.apply('pause')).toBe('paused');
    expect(l.status).toBe(TaskStatus.PAUSED);
    expect(l.apply('resume')).toBe('running');
    expect(l.apply('exit')).toBe('stopped');
    expect(l.apply('delete')).toBe('deleted');
  });

  it('names the state when an operation is illegal', () => {
    const l = new Lifecycle('container c1');
    l.apply('start');
    expect(() => l.apply('delete')).toThrow(new FailedPreconditionError('cannot delete container c1 in running state'));
    expect(() => l.apply('resume')).toThrow(FailedPreconditionError);
    expect(l.state).toBe('running');
  });

  it('answers NotFound to a kill of a finished process', () => {
    const l = new Lifecycle('exec e1 in c1');
    l.apply('start');
    l.apply('exit');
    expect(() => l.check('kill')).toThrow(NotFoundError);
  });

  it('refuses operations a process kind does not support', () => {
    const l = new Lifecycle('exec e1 in c1', ['pause', 'resume']);
    l.apply('start');
    expect(() => l.apply('pause')).toThrow(/not supported/);
  });

  it('lets a created process exit (killed before start)', () => {
    const l = new Lifecycle('container c1');
    expect(l.apply('exit')).toBe('stopped');
    expect(() => l.apply('start')).toThrow(/cannot start container c1 in stopped state/);
  });
});
