import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { pushRequestSchema } from '../../src/push-request.js';
import { newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';

let t: TestRelay;
before(async () => {
  // No worker role: jobs stay in Redis where the test can see them.
  t = await startTestRelay({ ROLES: 'api,scheduler' });
  // The pass the scheduler starts with must not take the rows the tests below plant for theirs.
  await t.relay.sweeper!.idle();
});
after(async () => {
  await t?.stop();
  await t?.iso.drop();
});

test('the sweeper expires overdue deliveries, re-queues stranded ones and re-routes lost messages', async () => {
  const { appId } = await newApp(t);
  const { repos, db, queues } = t.relay.ctx;
  const request = pushRequestSchema.parse({ to: { devices: ['d1', 'd2'] }, data: { k: 'v' } });
  const rows = ['d1', 'd2'].map((d) => ({ deviceId: d, platform: 'ios', channel: 'apns', token: `tok-${d}`, status: 'queued' as const, error: null }));

  await repos.messages.insert({ id: 'msg_stranded', appId, request, state: 'routed', recipients: 2, sendAt: null, expiresAt: new Date(Date.now() + 3_600_000) });
  await repos.deliveries.insertPage(appId, 'msg_stranded', rows);
  await repos.messages.insert({ id: 'msg_overdue', appId, request, state: 'routed', recipients: 2, sendAt: null, expiresAt: new Date(Date.now() - 1000) });
  await repos.deliveries.insertPage(appId, 'msg_overdue', rows);
  await repos.messages.insert({ id: 'msg_lost', appId, request, state: 'queued', recipients: 2, sendAt: null, expiresAt: new Date(Date.now() + 3_600_000) });
  // As if the process that wrote them died long ago without queuing their jobs.
  await sql`UPDATE deliveries SET updated_at = now() - interval '1 hour' WHERE message_id = 'msg_stranded'`.execute(db);
  await sql`UPDATE messages SET created_at = now() - interval '1 hour' WHERE id = 'msg_lost'`.execute(db);

  const result = await t.relay.sweeper!.sweep();
  assert.deepEqual(result, { expired: 2, requeued: 2, rerouted: 1, purged: 0 });

  const overdue = (await repos.counters.forMessages(appId, ['msg_overdue'])).get('msg_overdue')!;
  assert.equal(overdue.counts.expired, 2);
  const waiting = await queues.send('apns').getJobs(['wait', 'prioritized']);
  const ids = waiting.filter((j) => j.data.messageId === 'msg_stranded').flatMap((j) => j.data.ids);
  assert.equal(ids.length, 2);
  assert.ok(await queues.route.getJob('msg_lost'), 'the lost message has a route job again');

  // A second sweep in the same window adds nothing twice.
  await t.relay.sweeper!.sweep();
  const again = (await queues.send('apns').getJobs(['wait', 'prioritized'])).filter((j) => j.data.messageId === 'msg_stranded');
  assert.equal(again.length, 1);
});

test('quarantined tokens are purged only after the retention period', async () => {
  const { appId, api } = await newApp(t);
  await api('PUT', '/v1/devices/old', { platform: 'ios', tokens: { apns: 'ab'.repeat(32) } });
  await api('PUT', '/v1/devices/new', { platform: 'ios', tokens: { apns: 'cd'.repeat(32) } });
  await sql`UPDATE device_tokens SET state = 'invalid', invalid_reason = 'Unregistered', invalid_at = now() - interval '31 days' WHERE app_id = ${appId} AND device_id = 'old'`.execute(t.relay.ctx.db);
  await sql`UPDATE device_tokens SET state = 'invalid', invalid_reason = 'Unregistered', invalid_at = now() - interval '1 day' WHERE app_id = ${appId} AND device_id = 'new'`.execute(t.relay.ctx.db);
  const result = await t.relay.sweeper!.sweep();
  assert.equal(result.purged, 1);
  assert.equal((await api('GET', '/v1/devices/old')).body.tokens.length, 0);
  assert.equal((await api('GET', '/v1/devices/new')).body.tokens[0].state, 'invalid');
});
