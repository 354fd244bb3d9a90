import { attachPolicyOf, compactJvm, jvmKindOf } from './jvm-attach';

describe('attaching to a JVM', () => {
  it('is refused with -XX:+DisableAttachMechanism, and never signals with -Xrs or ReduceSignalUsage', () => {
    expect(attachPolicyOf('java -Xmx1g -jar app.jar')).toEqual({});
    expect(attachPolicyOf('java -XX:+DisableAttachMechanism -jar app.jar').refusal).toMatch(/DisableAttachMechanism/);
    expect(attachPolicyOf('java -XX:-DisableAttachMechanism -jar app.jar')).toEqual({});
    expect(attachPolicyOf('java -Xrs -jar app.jar').noSigquit).toMatch(/-Xrs/);
    expect(attachPolicyOf('java -Xrss1m -jar app.jar')).toEqual({}); // not -Xrs
    expect(attachPolicyOf('-XX:+ReduceSignalUsage').noSigquit).toMatch(/ReduceSignalUsage/);
  });

  it('leaves a process that is no JVM alone', async () => {
    expect(jvmKindOf(process.pid)).toBeUndefined();
    expect(await compactJvm(process.pid, { deadline: Date.now() + 1000 })).toMatchObject({ ok: false, failure: 'REFUSED' });
    expect(await compactJvm(2 ** 22 + 1, { deadline: Date.now() + 1000 })).toMatchObject({ ok: false, failure: 'EXITED' });
  });
});
