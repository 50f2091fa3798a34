import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { sql } from 'kysely';
import { loadConfig } from '../../src/config.js';
import { DAY_MS, partitionName } from '../../src/db/partitions-repo.js';
import { createLogger } from '../../src/logger.js';
import { startRelay } from '../../src/relay.js';
import { Isolation, eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

/**
 * DELIVERY_RETENTION: `deliveries` is partitioned by day (migration 0035); the scheduler drops a
 * whole day's partition once it is past the retention, and that day's messages and idempotency
 * keys go with it. The clock is moved by calling the rotation with a later `now`.
 */
const apnsToken = (i: number) => 'e' + i.toString(16).padStart(63, '0');

let mocks: Awaited<ReturnType<typeof startProviderMocks>> | undefined;
after(async () => mocks?.close());

async function scenario(t: TestRelay) {
  mocks ??= await startProviderMocks();
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  for (let i = 1; i <= 3; i++) {
    assert.equal((await api('PUT', `/v1/devices/r-${i}`, { platform: 'ios', tokens: { apns: apnsToken(i) }, tags: ['news'] })).status, 200);
  }
  const done = (id: string) =>
    eventually(async () => {
      const m = await api('GET', `/v1/messages/${id}`);
      return m.body.state === 'done' ? m.body : undefined;
    }, 30_000, `message ${id} done`);

  // One push on the transactional path (with an idempotency key), one through the router.
  const direct = await api('POST', '/v1/push', { to: { devices: ['r-1'] }, notification: { title: 'direct' } }, { 'Idempotency-Key': 'k-1' });
  const routed = await api('POST', '/v1/push', { to: { tags: { any: ['news'] } }, notification: { title: 'routed' } });
  assert.equal(direct.status, 202);
  assert.equal(routed.status, 202);
  assert.equal((await done(direct.body.id)).counts.sent, 1);
  assert.equal((await done(routed.body.id)).counts.sent, 3);
  const today = Math.floor(Date.now() / DAY_MS);
  const before = await t.relay.ctx.repos.partitions.list();
  assert.ok(before.some((p) => p.name === partitionName(today)), 'today has its partition');
  assert.ok(before.some((p) => p.name === partitionName(today + t.config.DELIVERY_PARTITIONS_AHEAD)), 'the days ahead have theirs');
  const { rows: inToday } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.table(partitionName(today))}`.execute(t.relay.ctx.db);
  assert.equal(inToday[0]!.n, 4, "today's deliveries are in today's partition");
  // Lookups by id prune to one partition: the id carries its day.
  const { rows: ids } = await sql<{ id: string }>`SELECT id::text AS id FROM deliveries LIMIT 1`.execute(t.relay.ctx.db);
  const some = ids[0]!.id;
  const { rows: plan } = await sql<{ 'QUERY PLAN': string }>`EXPLAIN SELECT * FROM deliveries WHERE id = ${some}::bigint`.execute(t.relay.ctx.db);
  const text = plan.map((r) => r['QUERY PLAN']).join('\n');
  assert.match(text, new RegExp(partitionName(today)));
  assert.doesNotMatch(text, new RegExp(partitionName(today + 1)), text);
  // So do the batch statements' id lists (claims, outcome writes).
  const { rows: plan2 } = await sql<{ 'QUERY PLAN': string }>`EXPLAIN UPDATE deliveries SET updated_at = now() WHERE id = ANY(${`{${some}}`}::bigint[])`.execute(t.relay.ctx.db);
  const text2 = plan2.map((r) => r['QUERY PLAN']).join('\n');
  assert.match(text2, new RegExp(partitionName(today)));
  assert.doesNotMatch(text2, new RegExp(partitionName(today + 1)), text2);

  // Nothing is dropped inside the retention.
  const quiet = await t.relay.sweeper!.rotatePartitions(new Date(Date.now() + 29 * DAY_MS));
  assert.deepEqual(quiet.dropped, []);
  assert.equal((await api('GET', `/v1/messages/${direct.body.id}`)).status, 200);

  // 31 days later, today is past a 30-day retention: its partition is dropped whole.
  const rotated = await t.relay.sweeper!.rotatePartitions(new Date(Date.now() + 31 * DAY_MS));
  assert.ok(rotated.ran);
  assert.ok(rotated.dropped.includes(partitionName(today)), `dropped ${rotated.dropped.join(', ')}`);
  assert.ok(rotated.messages >= 2);
  assert.equal(rotated.idempotencyKeys, 1);
  assert.equal((await api('GET', `/v1/messages/${direct.body.id}`)).status, 404);
  assert.equal((await api('GET', `/v1/messages/${routed.body.id}`)).status, 404);
  const { rows: left } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM deliveries`.execute(t.relay.ctx.db);
  assert.equal(left[0]!.n, 0, 'the deliveries went with their partition');

  // Today's partition is back (empty): new pushes work, and the expired key is free again.
  const after = await t.relay.ctx.repos.partitions.list();
  assert.ok(after.some((p) => p.name === partitionName(today)));
  const again = await api('POST', '/v1/push', { to: { devices: ['r-1'] }, notification: { title: 'direct' } }, { 'Idempotency-Key': 'k-1' });
  assert.equal(again.status, 202);
  assert.notEqual(again.body.id, direct.body.id);
  assert.equal(again.headers.get('idempotent-replayed'), null);
  const routed2 = await api('POST', '/v1/push', { to: { tags: { any: ['news'] } }, notification: { title: 'routed again' } });
  assert.equal((await done(again.body.id)).counts.sent, 1);
  assert.equal((await done(routed2.body.id)).counts.sent, 3);

  // Idempotent and safe with several schedulers: a second pass changes nothing.
  const [a, b] = await Promise.all([t.relay.sweeper!.rotatePartitions(), t.relay.sweeper!.rotatePartitions()]);
  assert.deepEqual([...a.created, ...b.created, ...a.dropped, ...b.dropped], []);
}

describe('on PostgreSQL', () => {
  let t: TestRelay;
  after(async () => {
    await t?.stop();
    await t?.iso.drop();
  });
  test('a day past DELIVERY_RETENTION is dropped whole, with its messages and idempotency keys', async () => {
    mocks ??= await startProviderMocks();
    t = await startTestRelay({ ...mocks.env, DELIVERY_RETENTION: '30d' });
    await scenario(t);
  });
});

describe('on the embedded PGlite', () => {
  const iso = new Isolation();
  let t: TestRelay | undefined;
  after(async () => {
    await t?.stop();
    await iso.drop();
  });
  test('the same rotation works on PGlite', async () => {
    mocks ??= await startProviderMocks();
    const env: Record<string, string> = iso.env({ ...mocks.env, DELIVERY_RETENTION: '30d' });
    delete env.DATABASE_URL;
    delete env.DATABASE_SCHEMA;
    const config = loadConfig(env);
    const relay = await startRelay(config, createLogger(config.LOG_LEVEL), () => undefined);
    t = { relay, config, base: `http://127.0.0.1:${relay.port}`, adminToken: config.ADMIN_TOKEN!, iso, stop: () => relay.stop() };
    await scenario(t);
  });
});
