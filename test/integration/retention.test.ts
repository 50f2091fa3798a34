import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import { migrationsFor } from '../../migrations/index.js';
import { DeliveriesRepo } from '../../src/db/deliveries-repo.js';
import type { DB } from '../../src/db/schema.js';
import { loadConfig } from '../../src/config.js';
import { DAY_MS, PartitionsRepo, firstIdOfDay, partitionName, type Partition } from '../../src/db/partitions-repo.js';
import { createLogger } from '../../src/logger.js';
import { startRelay } from '../../src/relay.js';
import { Isolation, PG_URL, eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

/**
 * DELIVERY_RETENTION: `deliveries` is partitioned by day (migration 0035); the scheduler drops a
 * whole day's partition once it is past the retention, and that day's messages and idempotency
 * keys go with it. The clock is moved by calling the rotation with a later `now`.
 */
const apnsToken = (i: number) => 'e' + i.toString(16).padStart(63, '0');

/** The partition holding the ids of a UTC day. */
function covering(parts: Partition[], day: number): Partition | undefined {
  const id = firstIdOfDay(day);
  return parts.find((p) => (p.from === null || p.from <= id) && id < p.to);
}

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
  // A recall report and a dead letter of the day, which must go with it.
  assert.equal((await api('DELETE', `/v1/messages/${routed.body.id}`)).status, 200);
  await eventually(async () => ((await api('GET', `/v1/messages/${routed.body.id}/recall`)).body.state === 'done' ? true : undefined), 30_000, 'the recall done');
  await sql`INSERT INTO dead_letters (delivery_id, app_id, message_id, channel, status, code)
            SELECT id, app_id, message_id, channel, 'failed', 'Unregistered' FROM deliveries WHERE message_id = ${direct.body.id}`.execute(t.relay.ctx.db);
  const today = Math.floor(Date.now() / DAY_MS);
  const before = await t.relay.ctx.repos.partitions.list();
  // On the day of the upgrade (a fresh schema here), today's rows live in the legacy partition.
  const todays = covering(before, today);
  assert.ok(todays, 'today has its partition');
  assert.ok(before.some((p) => p.name === partitionName(today + t.config.DELIVERY_PARTITIONS_AHEAD)), 'the days ahead have theirs');
  const { rows: inToday } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.table(todays.name)}`.execute(t.relay.ctx.db);
  assert.equal(inToday[0]!.n, 4, "today's deliveries are in today's partition");
  // Lookups by id prune to one partition: the id carries its day.
  const { rows: ids } = await sql<{ id: string }>`SELECT id::text AS id FROM deliveries LIMIT 1`.execute(t.relay.ctx.db);
  const some = ids[0]!.id;
  const { rows: plan } = await sql<{ 'QUERY PLAN': string }>`EXPLAIN SELECT * FROM deliveries WHERE id = ${some}::bigint`.execute(t.relay.ctx.db);
  const text = plan.map((r) => r['QUERY PLAN']).join('\n');
  assert.match(text, new RegExp(todays.name));
  assert.doesNotMatch(text, new RegExp(partitionName(today + 1)), text);
  // So do the batch statements' id lists (claims, outcome writes).
  const { rows: plan2 } = await sql<{ 'QUERY PLAN': string }>`EXPLAIN UPDATE deliveries SET updated_at = now() WHERE id = ANY(${`{${some}}`}::bigint[])`.execute(t.relay.ctx.db);
  const text2 = plan2.map((r) => r['QUERY PLAN']).join('\n');
  assert.match(text2, new RegExp(todays.name));
  assert.doesNotMatch(text2, new RegExp(partitionName(today + 1)), text2);

  // A push scheduled past the retention is kept: its deliveries will live in its send day's partition.
  const later = await api('POST', '/v1/push', { to: { devices: ['r-2'] }, notification: { title: 'later' }, options: { sendAt: new Date(Date.now() + 40 * DAY_MS).toISOString() } });
  assert.equal(later.status, 202);

  // Nothing is dropped inside the retention.
  const quiet = await t.relay.sweeper!.rotatePartitions(new Date(Date.now() + 29 * DAY_MS));
  assert.deepEqual(quiet.dropped, []);
  assert.equal((await api('GET', `/v1/messages/${direct.body.id}`)).status, 200);

  // 31 days later, today is past a 30-day retention: its partition is dropped whole.
  const rotated = await t.relay.sweeper!.rotatePartitions(new Date(Date.now() + 31 * DAY_MS));
  assert.ok(rotated.ran);
  assert.ok(rotated.dropped.includes(todays.name), `dropped ${rotated.dropped.join(', ')}`);
  assert.ok(rotated.messages >= 2);
  assert.equal(rotated.idempotencyKeys, 1);
  assert.equal((await api('GET', `/v1/messages/${direct.body.id}`)).status, 404);
  assert.equal((await api('GET', `/v1/messages/${routed.body.id}`)).status, 404);
  assert.equal((await api('GET', `/v1/messages/${later.body.id}`)).body.state, 'scheduled');
  const { rows: left } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM deliveries`.execute(t.relay.ctx.db);
  assert.equal(left[0]!.n, 0, 'the deliveries went with their partition');
  const { rows: rest } = await sql<{ recalls: number; rows: number; dead: number }>`
    SELECT (SELECT count(*)::int FROM recalls) AS recalls, (SELECT count(*)::int FROM delivery_recalls) AS rows,
           (SELECT count(*)::int FROM dead_letters) AS dead`.execute(t.relay.ctx.db);
  assert.deepEqual(rest[0], { recalls: 0, rows: 0, dead: 0 }, 'recall reports and dead letters went with their day');

  // Today's partition is back (empty): new pushes work, and the expired key is free again.
  const after = await t.relay.ctx.repos.partitions.list();
  assert.equal(covering(after, today)?.name, partitionName(today));
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

describe('migration 0035', () => {
  test('existing deliveries become the legacy partition: same ids, still unique per message and device, dropped as a whole', async () => {
    const iso = new Isolation();
    const pool = new pg.Pool({ connectionString: PG_URL, max: 2, options: `-c search_path=${iso.schema}` });
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
    try {
      await sql.raw(`CREATE SCHEMA ${iso.schema}`).execute(db);
      const migrator = new Migrator({ db, provider: { getMigrations: async () => migrationsFor({ credentialsKey: Buffer.alloc(32, 7) }) }, migrationTableSchema: iso.schema });
      // Kysely's introspector fails (3F000) when another test drops its schema meanwhile: again.
      const retry = async (run: () => Promise<{ error?: unknown }>) => {
        for (let i = 0; ; i++) {
          const { error } = await run();
          const e = error as { code?: string; message?: string } | undefined;
          if (!e || i >= 5 || e.code !== '3F000' || e.message?.includes(iso.schema)) return error;
        }
      };
      assert.equal(await retry(() => migrator.migrateTo('0009_device_credential_epoch')), undefined);
      await sql`INSERT INTO apps (id, name, receipt_secret) VALUES ('app', 'app', 's')`.execute(db);
      await sql`INSERT INTO messages (id, app_id, request, state, expires_at) VALUES ('m-old', 'app', '{}', 'routed', now() + interval '1 day')`.execute(db);
      await sql`INSERT INTO deliveries (message_id, app_id, device_id, channel, status) VALUES
        ('m-old', 'app', 'a', 'huawei', 'queued'), ('m-old', 'app', 'b', 'huawei', 'sent')`.execute(db);
      const before = (await db.selectFrom('deliveries').select(['id', 'device_id']).orderBy('id').execute()).map((r) => [String(r.id), r.device_id]);

      assert.equal(await retry(() => migrator.migrateToLatest()), undefined);
      const after = (await db.selectFrom('deliveries').select(['id', 'device_id']).orderBy('id').execute()).map((r) => [String(r.id), r.device_id]);
      assert.deepEqual(after, before, 'the same rows under the same ids');
      const parts = await new PartitionsRepo(db).list();
      assert.equal(parts[0]!.name, 'deliveries_legacy');
      assert.equal(parts[0]!.from, null);
      const today = Math.floor(Date.now() / DAY_MS);
      assert.equal(covering(parts, today)?.name, 'deliveries_legacy', 'the day of the upgrade stays with the legacy rows');
      assert.ok(parts.some((p) => p.name === partitionName(today + 1)));

      // A page re-run for the old message meets its rows in the legacy partition: no duplicate,
      // and the untouched queued row comes back to the caller.
      const repo = new DeliveriesRepo(db);
      const rows = ['a', 'c'].map((deviceId) => ({ deviceId, platform: 'android', channel: 'huawei', token: `t-${deviceId}`, status: 'queued' as const, error: null }));
      const page = await repo.insertPage('app', 'm-old', rows, new Date(Date.now() + 60_000));
      assert.deepEqual(page.pending.get('huawei'), [before[0]![0]]);
      assert.equal(page.leased.get('huawei')?.length, 1);
      const { rows: counts } = await sql<{ device_id: string; n: number }>`
        SELECT device_id, count(*)::int AS n FROM deliveries WHERE message_id = 'm-old' GROUP BY 1 ORDER BY 1`.execute(db);
      assert.deepEqual(counts.map((r) => [r.device_id, r.n]), [['a', 1], ['b', 1], ['c', 1]]);
      const { rows: where } = await sql<{ part: string }>`
        SELECT tableoid::regclass::text AS part FROM deliveries WHERE message_id = 'm-old' AND device_id = 'c'`.execute(db);
      assert.equal(where[0]!.part, 'deliveries_legacy', "a message's deliveries stay in its day's partition");

      // Once the upgrade's day is past the retention, the legacy partition goes whole.
      const r = await new PartitionsRepo(db).maintain(new Date(Date.now() + 31 * DAY_MS), { aheadDays: 2, retentionMs: 30 * DAY_MS });
      assert.ok(r.dropped.includes('deliveries_legacy'));
      assert.equal(r.messages, 1);
      assert.equal((await db.selectFrom('deliveries').select('id').execute()).length, 0);
    } finally {
      await db.destroy();
      await iso.drop();
    }
  });
});
