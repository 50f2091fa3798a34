import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DIRECT_MAX_DEVICES } from '../../src/services/direct-push.js';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

/** The transactional path (services/direct-push.ts): small direct pushes routed at accept time. */
let t: TestRelay;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;

before(async () => {
  mocks = await startProviderMocks();
  t = await startTestRelay(mocks.env);
});
after(async () => {
  await t?.stop();
  await t?.iso.drop();
  await mocks?.close();
});

const apnsToken = (i: number) => 'd' + i.toString(16).padStart(63, '0');

async function done(api: Awaited<ReturnType<typeof newApp>>['api'], id: string) {
  return eventually(async () => {
    const m = await api('GET', `/v1/messages/${id}`);
    return m.body.state === 'done' ? m.body : undefined;
  }, 30_000, `message ${id} done`);
}

test('named devices and users are routed at accept, many requests of one turn together, and all sent', async () => {
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  for (let i = 1; i <= 6; i++) {
    const res = await api('PUT', `/v1/devices/dev-${i}`, { platform: 'ios', tokens: { apns: apnsToken(i) }, userId: i <= 2 ? 'alice' : `user-${i}` });
    assert.equal(res.status, 200);
  }
  // Concurrent requests: grouped into one statement and one send job per app and channel.
  const pushes = await Promise.all([
    api('POST', '/v1/push', { to: { users: ['alice'] }, notification: { title: 'to alice' } }),
    api('POST', '/v1/push', { to: { devices: ['dev-3', 'dev-4', 'missing'] }, notification: { title: 'to two' } }),
    api('POST', '/v1/push', { to: { devices: ['dev-5'] }, data: { code: '123456' }, options: { ttl: 0 } }),
    api('POST', '/v1/push', { to: { token: { channel: 'fcm', value: 'no-fcm-credentials' } }, notification: { title: 'raw' } }),
  ]);
  assert.deepEqual(pushes.map((p) => [p.status, p.body.recipients]), [[202, 2], [202, 2], [202, 1], [202, 1]]);
  for (const p of pushes) assert.equal(await t.relay.ctx.queues.route.getJob(p.body.id), undefined, 'no route job');

  const [alice, two, code, raw] = await Promise.all(pushes.map((p) => done(api, p.body.id)));
  assert.equal(alice.counts.sent, 2);
  assert.equal(two.counts.sent, 2);
  assert.equal(code.counts.sent, 1);
  assert.equal(raw.counts.failed, 1, 'a raw token of an unconfigured channel fails at once');
  const seen = new Set(mocks.apns.requests.map((r) => r.token));
  for (const i of [1, 2, 3, 4, 5]) assert.ok(seen.has(apnsToken(i)), `APNs got dev-${i}`);
  assert.ok(!seen.has(apnsToken(6)));
  const codeReq = mocks.apns.requests.find((r) => r.token === apnsToken(5))!;
  assert.equal(codeReq.headers['apns-expiration'], '0', 'ttl 0 is still now-or-never on the fast path');
  assert.equal((codeReq.payload as Record<string, unknown>).relay_id, pushes[2]!.body.id);
});

test('an Idempotency-Key replays a direct push; scheduled and large pushes still take the router', async () => {
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  assert.equal((await api('PUT', '/v1/devices/solo', { platform: 'ios', tokens: { apns: apnsToken(100) } })).status, 200);
  const body = { to: { devices: ['solo'] }, notification: { title: 'once' } };
  const first = await api('POST', '/v1/push', body, { 'Idempotency-Key': 'order-1' });
  const again = await api('POST', '/v1/push', body, { 'Idempotency-Key': 'order-1' });
  assert.equal(again.body.id, first.body.id);
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
  await done(api, first.body.id);
  assert.equal(mocks.apns.requests.filter((r) => r.token === apnsToken(100)).length, 1, 'sent once');

  const later = await api('POST', '/v1/push', { ...body, options: { sendAt: new Date(Date.now() + 3_600_000).toISOString() } });
  assert.equal((await api('GET', `/v1/messages/${later.body.id}`)).body.state, 'scheduled');
  assert.ok(await t.relay.ctx.queues.route.getJob(later.body.id), 'a scheduled push waits in the route queue');

  const many = Array.from({ length: DIRECT_MAX_DEVICES + 1 }, (_, i) => `nobody-${i}`);
  const big = await api('POST', '/v1/push', { to: { devices: many }, notification: { title: 'many' } });
  assert.equal(big.status, 202);
  assert.ok(await t.relay.ctx.queues.route.getJob(big.body.id), 'more devices than DIRECT_MAX_DEVICES go through the router');
});
