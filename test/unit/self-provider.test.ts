import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSelfProvider, selfPayload, type SelfDispatch, type SelfPush } from '../../providers/self.js';
import { EXPIRED_CODE, type PushContent, type SendTarget } from '../../providers/types.js';
import { DEFAULT_MAX_PACKET_BYTES, pushBody, pushPacketBytes } from '../../src/gateway/downlink.js';

/** A dispatch with known devices (all online on node `n1`) that records what it was asked. */
function fakeDispatch(known: string[], fail: { seq?: boolean; bus?: boolean } = {}) {
  const calls = { assigned: [] as string[], published: [] as [string, number][] };
  let next = 0;
  const dispatch: SelfDispatch = {
    async assignSeq(_app, targets) {
      if (fail.seq) throw new Error('database down');
      calls.assigned.push(...targets.map((t) => t.deviceId));
      return new Map(targets.filter((t) => known.includes(t.deviceId)).map((t) => [t.deliveryId, ++next]));
    },
    async locate(_app, ids) {
      if (fail.bus) throw new Error('Connection is closed.');
      return new Map(ids.map((id) => [id, 'n1']));
    },
    async scheduleAckCheck() {},
    async publish(_push: SelfPush, byNode) {
      for (const to of byNode.values()) calls.published.push(...to);
    },
  };
  return { dispatch, calls };
}

const content = (over: Partial<PushContent> = {}): PushContent => ({
  messageId: 'msg_1',
  notification: { title: 't' },
  options: { ttl: 3600, priority: 'high' },
  expiresAt: Date.now() + 3_600_000,
  ...over,
});
const targets = (...tokens: string[]): SendTarget[] => tokens.map((token, i) => ({ deliveryId: String(i + 1), token }));
const kinds = (outs: { kind: string; reason?: { code: string } }[]) => outs.map((o) => (o.kind === 'sent' ? 'sent' : `${o.kind}:${o.reason!.code}`));

test('self provider: expired content fails `expired` before any seq or publish', async () => {
  const { dispatch, calls } = fakeDispatch(['a']);
  const out = await createSelfProvider('app', dispatch).send(content({ expiresAt: Date.now() - 1 }), targets('a'));
  assert.deepEqual(kinds(out), [`expired:${EXPIRED_CODE}`]);
  assert.deepEqual(calls, { assigned: [], published: [] });
});

test('self provider: a push over the gateway Maximum Packet Size fails PayloadTooLarge, per target, before its seq', async () => {
  // The largest data map whose worst-case PUBLISH (widest seq) to `a` fits exactly.
  const size = (n: number, id: string) => {
    const c = content({ data: { b: 'x'.repeat(n) } });
    return pushPacketBytes(id, Buffer.byteLength(pushBody(c.messageId, Number.MAX_SAFE_INTEGER, c.expiresAt, selfPayload(c))));
  };
  let n = DEFAULT_MAX_PACKET_BYTES - 200;
  while (size(n + 1, 'a') <= DEFAULT_MAX_PACKET_BYTES) n++;
  assert.equal(size(n, 'a'), DEFAULT_MAX_PACKET_BYTES);

  const { dispatch, calls } = fakeDispatch(['a', 'longer-id']);
  const fits = await createSelfProvider('app', dispatch).send(content({ data: { b: 'x'.repeat(n) } }), targets('a', 'longer-id'));
  // The same body is one topic too long for the longer device id.
  assert.deepEqual(kinds(fits), ['sent', 'failed:PayloadTooLarge']);
  assert.deepEqual(calls.assigned, ['a']);
  assert.deepEqual(calls.published, [['a', 1]]);
  const over = await createSelfProvider('app', dispatch).send(content({ data: { b: 'x'.repeat(n + 1) } }), targets('a'));
  assert.deepEqual(kinds(over), ['failed:PayloadTooLarge']);
  assert.deepEqual((over[0] as { reason: { evidence: unknown } }).reason.evidence, { bytes: DEFAULT_MAX_PACKET_BYTES + 1, limit: DEFAULT_MAX_PACKET_BYTES });
});

test('self provider: an unknown device is invalid UnknownDevice; infrastructure failures retry', async () => {
  const { dispatch } = fakeDispatch(['a']);
  const out = await createSelfProvider('app', dispatch).send(content(), targets('a', 'ghost'));
  assert.deepEqual(kinds(out), ['sent', 'invalid:UnknownDevice']);
  assert.deepEqual((out[1] as { reason: { evidence: unknown } }).reason.evidence, { deviceId: 'ghost' });

  const seqDown = await createSelfProvider('app', fakeDispatch(['a'], { seq: true }).dispatch).send(content(), targets('a'));
  assert.deepEqual(kinds(seqDown), ['retry:SeqUnavailable']);
  const busDown = await createSelfProvider('app', fakeDispatch(['a'], { bus: true }).dispatch).send(content(), targets('a', 'ghost'));
  assert.deepEqual(kinds(busDown), ['retry:GatewayBusUnavailable', 'invalid:UnknownDevice']);
  const unserialisable = await createSelfProvider('app', fakeDispatch(['a']).dispatch).send(content({ data: { n: 1n } }), targets('a'));
  assert.deepEqual(kinds(unserialisable), ['failed:InvalidPayload']);
});
