import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import { migrationsFor } from '../../migrations/index.js';
import { pushRequestSchema } from '../../src/push-request.js';
import { idArray, textArray } from '../../src/db/array-literal.js';
import { DeliveriesRepo, type NewDeliveryRow } from '../../src/db/deliveries-repo.js';
import type { DB } from '../../src/db/schema.js';
import { Isolation, PG_URL, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';

/**
 * The delivery table's hot path: rows leased at insert to their first send job, outcomes written
 * as HOT updates, and what the dropped indexes used to answer (open ids, vendor request ids).
 */
let t: TestRelay;
before(async () => {
  // No worker role: nothing but the test touches the rows.
  t = await startTestRelay({ ROLES: 'api,scheduler' });
});
after(async () => {
  await t?.stop();
  await t?.iso.drop();
});

const request = pushRequestSchema.parse({ to: { devices: ['d1'] }, data: { k: 'v' } });
const rowsFor = (devices: string[], channel = 'huawei'): NewDeliveryRow[] =>
  devices.map((d) => ({ deviceId: d, platform: 'android', channel, token: `tok-${d}`, status: 'queued', error: null }));

async function newMessage(appId: string, id: string) {
  await t.relay.ctx.repos.messages.insert({ id, appId, request, state: 'routed', recipients: 0, sendAt: null, expiresAt: new Date(Date.now() + 3_600_000) });
}

async function openIds(): Promise<string[]> {
  const res = await sql<{ id: string }>`SELECT id FROM delivery_open ORDER BY id`.execute(t.relay.ctx.db);
  return res.rows.map((r) => String(r.id));
}

test('array literals built for hot statements round-trip through PostgreSQL unchanged', async () => {
  const texts = ['plain', '', 'NULL', null, 'with "quotes"', 'back\\slash\\', 'a,b{c}', ' spaced ', '令牌-token', '{"code":"x","message":"y \\"z\\""}'];
  const res = await sql<{ t: (string | null)[]; i: string[] }>`SELECT ${textArray(texts)}::text[] AS t, ${idArray(['1', '42', '9007199254740993'])}::bigint[] AS i`.execute(t.relay.ctx.db);
  assert.deepEqual(res.rows[0]!.t, texts);
  assert.deepEqual(res.rows[0]!.i.map(String), ['1', '42', '9007199254740993']);
  assert.deepEqual((await sql<{ t: string[] }>`SELECT ${textArray([])}::text[] AS t`.execute(t.relay.ctx.db)).rows[0]!.t, []);
  assert.throws(() => idArray(['1', '2}; DROP TABLE x; --']), /decimal integers/);
});

test('no index of deliveries names a column an outcome write changes (so outcomes are HOT updates)', async () => {
  const res = await sql<{ indexdef: string }>`
    SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()
      AND tablename IN (SELECT relid::regclass::text FROM pg_partition_tree('deliveries'))`.execute(t.relay.ctx.db);
  // The table and each of its day partitions (migration 0035): the key, the (message, device) key
  // of each partition and the self index.
  assert.ok(res.rows.length >= 3, 'the table has its key, its (message, device) key and the self index');
  assert.ok(res.rows.some((r) => /UNIQUE INDEX .* \(message_id, device_id\)/.test(r.indexdef)), 'each partition has its (message, device) key');
  const hot = ['status', 'provider_id', 'lease_until', 'attempts', 'error', 'sent_at', 'updated_at', 'next_attempt_at'];
  for (const { indexdef } of res.rows) {
    for (const column of hot) assert.doesNotMatch(indexdef, new RegExp(`\\b${column}\\b`), `${indexdef} names ${column}`);
  }
});

test('rows leased at insert belong to their job: others wait, the owner takes them back, a page re-run skips them', async () => {
  const { appId } = await newApp(t);
  const { deliveries } = t.relay.ctx.repos;
  await newMessage(appId, 'msg_lease');
  const until = new Date(Date.now() + 300_000);

  const first = await deliveries.insertPage(appId, 'msg_lease', rowsFor(['a', 'b']), until);
  const ab = first.leased.get('huawei')!;
  assert.equal(ab.length, 2);
  assert.equal(first.pending.size, 0);

  // A re-run of the page after a crash, now with a third device: no unique violation escapes, the
  // new row is leased to the new job and the untouched old ones come back with the lease the
  // first run gave them, for the same jobs to be queued again.
  const again = await deliveries.insertPage(appId, 'msg_lease', rowsFor(['a', 'b', 'c']), new Date(until.getTime() + 1000));
  assert.equal(again.leased.get('huawei')?.length, 1);
  assert.equal(again.pending.size, 0);
  assert.deepEqual(again.resumed, [{ channel: 'huawei', ids: ab, leasedUntil: until.getTime() }]);

  // Any other job (the re-run's, a sweep's) finds them leased, and learns until when.
  assert.deepEqual(await deliveries.claim(ab, 60_000), []);
  assert.equal((await deliveries.leasedUntil(ab))?.getTime(), until.getTime());
  const stranded = await deliveries.stranded(0, 0);
  assert.equal(stranded.filter((s) => s.messageId === 'msg_lease').length, 0, 'the sweeper leaves leased rows alone');

  // The owner's first run reads them: one attempt, counted when the outcome is written.
  const read = await deliveries.leasedToMe(ab);
  assert.deepEqual(read.map((r) => [r.id, r.token, r.attempts]), [[ab[0], 'tok-a', 1], [ab[1], 'tok-b', 1]]);

  // The owner's re-run (its first run died) takes them back at once, counting the lost attempt.
  const claimed = await deliveries.claim(ab, 60_000, { ownLease: true, lostAttempt: true });
  assert.deepEqual(claimed.map((r) => r.attempts), [2, 2]);
});

test('an outcome write ends the rows, closes their open ids, records the vendor request and counts the attempt', async () => {
  const { appId } = await newApp(t);
  const { deliveries } = t.relay.ctx.repos;
  await newMessage(appId, 'msg_out');
  const { leased } = await deliveries.insertPage(appId, 'msg_out', rowsFor(['a', 'b', 'c']), new Date(Date.now() + 300_000));
  const ids = leased.get('huawei')!;
  assert.deepEqual((await openIds()).filter((id) => ids.includes(id)), ids);

  const rows = await deliveries.leasedToMe(ids);
  const result = await deliveries.writeOutcomes(
    [
      { id: rows[0]!.id, status: 'sent', error: null, providerId: 'req-1', nextAttemptAt: null },
      { id: rows[1]!.id, status: 'sent', error: null, providerId: 'req-1', nextAttemptAt: null },
      { id: rows[2]!.id, status: 'queued', error: { code: 'RateLimited', message: 'later' }, providerId: null, nextAttemptAt: new Date(Date.now() + 60_000) },
    ],
    { countAttempt: true },
  );
  assert.equal(result.updated, 3);
  const after = await t.relay.ctx.db.selectFrom('deliveries').select(['id', 'status', 'attempts', 'lease_until']).where('message_id', '=', 'msg_out').orderBy('id').execute();
  assert.deepEqual(after.map((r) => [r.status, r.attempts, r.lease_until]), [['sent', 1, null], ['sent', 1, null], ['queued', 1, null]]);
  // The retried row stays open for the sweeper; the sent ones do not.
  assert.deepEqual((await openIds()).filter((id) => ids.includes(id)), [ids[2]]);

  const requests = await t.relay.ctx.db.selectFrom('provider_requests').selectAll().where('app_id', '=', appId).execute();
  assert.deepEqual(requests.map((r) => [r.channel, r.provider_id, r.ids.map(String)]), [['huawei', 'req-1', [ids[0], ids[1]]]]);

  // A receipt names the vendor's request id and a token: it finds its delivery through that record.
  const receipt = await deliveries.applyEvents(appId, 'huawei', [{ event: 'delivered', providerId: 'req-1', token: 'tok-b' }]);
  assert.deepEqual(receipt, { matched: 1, changed: 1, overQuota: [] });
  const b = await t.relay.ctx.db.selectFrom('deliveries').select('status').where('id', '=', ids[1]! as never).executeTakeFirstOrThrow();
  assert.equal(b.status, 'delivered');
});

test('a vendor receipt that reports a drop fails a sent delivery with its reason, and never undoes a delivery', async () => {
  const { appId } = await newApp(t);
  const { deliveries } = t.relay.ctx.repos;
  await newMessage(appId, 'msg_drop');
  const { leased } = await deliveries.insertPage(appId, 'msg_drop', rowsFor(['a', 'b'], 'oppo'), new Date(Date.now() + 300_000));
  const rows = await deliveries.leasedToMe(leased.get('oppo')!);
  await deliveries.writeOutcomes(rows.map((r) => ({ id: r.id, status: 'sent', error: null, providerId: 'oppo-msg-1', nextAttemptAt: null })), { countAttempt: true });

  const quota = { code: 'quota', message: 'daily limit' };
  // b is reported delivered and dropped in one callback: the delivery stands.
  const applied = await deliveries.applyEvents(appId, 'oppo', [
    { event: 'failed', providerId: 'oppo-msg-1', token: 'tok-a', reason: quota },
    { event: 'failed', providerId: 'oppo-msg-1', token: 'tok-b', reason: quota },
    { event: 'delivered', providerId: 'oppo-msg-1', token: 'tok-b' },
  ]);
  // a is dropped over its quota: the caller learns which, for an app that falls back to the self channel.
  assert.deepEqual(applied, { matched: 2, changed: 2, overQuota: [rows.find((r) => r.token === 'tok-a')!.id] });
  const after = await t.relay.ctx.db.selectFrom('deliveries').select(['device_id', 'status', 'error']).where('message_id', '=', 'msg_drop').orderBy('device_id').execute();
  assert.deepEqual(after.map((r) => [r.device_id, r.status, (r.error as { code?: string } | null)?.code ?? null]), [['a', 'failed', 'quota'], ['b', 'delivered', null]]);
  // A late "dropped" for a delivered one changes nothing; a repeat changes nothing either.
  assert.deepEqual(await deliveries.applyEvents(appId, 'oppo', [{ event: 'failed', providerId: 'oppo-msg-1', token: 'tok-b', reason: quota }]), { matched: 1, changed: 0, overQuota: [] });
  assert.deepEqual(await deliveries.applyEvents(appId, 'oppo', [{ event: 'failed', providerId: 'oppo-msg-1', token: 'tok-a', reason: quota }]), { matched: 1, changed: 0, overQuota: [] });
});

test('a receipt whose vendor request id matches nothing still finds its delivery by message id and token', async () => {
  const { appId } = await newApp(t);
  const { deliveries } = t.relay.ctx.repos;
  await newMessage(appId, 'msg_bitag');
  const { leased } = await deliveries.insertPage(appId, 'msg_bitag', rowsFor(['a', 'b']), new Date(Date.now() + 300_000));
  const rows = await deliveries.leasedToMe(leased.get('huawei')!);
  await deliveries.writeOutcomes(rows.map((r) => ({ id: r.id, status: 'sent', error: null, providerId: 'hw-req-1', nextAttemptAt: null })), { countAttempt: true });
  const res = await deliveries.applyEvents(appId, 'huawei', [
    { event: 'delivered', providerId: 'unknown-req', messageId: 'msg_bitag', token: 'tok-a' },
    { event: 'delivered', providerId: 'hw-req-1', messageId: 'msg_bitag', token: 'tok-b' },
  ]);
  assert.deepEqual(res, { matched: 2, changed: 2, overQuota: [] }, 'b, found both ways, is one delivery');
});

test('the sweeper prunes open ids whose row moved on, and queued listings walk the open ids in order', async () => {
  const { appId, api } = await newApp(t);
  const { deliveries } = t.relay.ctx.repos;
  await newMessage(appId, 'msg_open');
  const devices = Array.from({ length: 5 }, (_, i) => `d${i}`);
  const { leased } = await deliveries.insertPage(appId, 'msg_open', rowsFor(devices), new Date(Date.now() + 300_000));
  const ids = leased.get('huawei')!;
  // A receipt moves one row on without closing its open id (only the hot paths close eagerly).
  await sql`UPDATE deliveries SET status = 'delivered' WHERE id = ${ids[1]}::bigint`.execute(t.relay.ctx.db);

  const page1 = await api('GET', '/v1/messages/msg_open/deliveries?status=queued&limit=2');
  assert.equal(page1.status, 200);
  assert.deepEqual(page1.body.items.map((d: { deviceId: string }) => d.deviceId), ['d0', 'd2']);
  const page2 = await api('GET', `/v1/messages/msg_open/deliveries?status=queued&limit=2&cursor=${page1.body.next}`);
  assert.deepEqual(page2.body.items.map((d: { deviceId: string }) => d.deviceId), ['d3', 'd4']);
  assert.equal(page2.body.next, null);

  assert.ok((await openIds()).includes(ids[1]!));
  assert.ok((await deliveries.pruneOpen()) >= 1);
  const open = await openIds();
  assert.ok(!open.includes(ids[1]!), 'the delivered row is no longer open');
  for (const id of [ids[0], ids[2], ids[3], ids[4]]) assert.ok(open.includes(id!), `queued row ${id} stays open`);
});

test('a self delivery handed to another channel by the ack-timeout fallback is open again for the sweeper', async () => {
  const { appId } = await newApp(t);
  const { deliveries, self } = t.relay.ctx.repos;
  await newMessage(appId, 'msg_fallback');
  const { leased } = await deliveries.insertPage(appId, 'msg_fallback', rowsFor(['s1'], 'self'), new Date(Date.now() + 300_000));
  const [id] = leased.get('self')!;
  await deliveries.writeOutcomes([{ id: id!, status: 'sent', error: null, providerId: null, nextAttemptAt: null }], { countAttempt: true });
  assert.ok(!(await openIds()).includes(id!), 'sent: no longer open');

  assert.deepEqual(await self.moveToChannel([{ id: id!, channel: 'fcm', token: 'fcm-s1' }]), [{ id, channel: 'fcm' }]);
  assert.ok((await openIds()).includes(id!), 'queued on fcm: open again');
});

test('audience pages walk the app in id order with each device\'s active tokens, for every kind of target', async () => {
  const { appId, api } = await newApp(t);
  const put = async (id: string, body: Record<string, unknown>) => assert.equal((await api('PUT', `/v1/devices/${id}`, body)).status, 200);
  await put('a1', { platform: 'ios', tags: ['x'], userId: 'u1' });
  await put('a2', { platform: 'android', brand: 'huawei', tags: ['x', 'y'] });
  await put('a3', { platform: 'android', brand: 'xiaomi', tags: ['y'] });
  await put('a4', { platform: 'web', userId: 'u1' });
  await put('a5', { platform: 'ios', tags: ['x'] });
  const webpush = '{"endpoint":"https://push.example/4","keys":{"p256dh":"k","auth":"a"}}';
  // Tokens as stored; a5's was quarantined, and a quarantined token is not a route.
  await sql`
    INSERT INTO device_tokens (app_id, device_id, channel, token, state) VALUES
      (${appId}, 'a1', 'apns', 'aa01', 'active'), (${appId}, 'a2', 'huawei', 'hw02', 'active'),
      (${appId}, 'a2', 'fcm', 'fcm02', 'active'), (${appId}, 'a4', 'webpush', ${webpush}, 'active'),
      (${appId}, 'a5', 'apns', 'aa05', 'invalid')`.execute(t.relay.ctx.db);

  const { devices } = t.relay.ctx.repos;
  const walk = async (to: Parameters<typeof devices.page>[1]) => {
    const seen: [string, Record<string, string>][] = [];
    let after: string | null = null;
    for (;;) {
      const page = await devices.page(appId, to, after, 2);
      if (page.length === 0) return seen;
      seen.push(...page.map((d): [string, Record<string, string>] => [d.id, d.tokens as Record<string, string>]));
      after = page[page.length - 1]!.id;
    }
  };
  assert.deepEqual(await walk({ all: true }), [
    ['a1', { apns: 'aa01' }],
    ['a2', { huawei: 'hw02', fcm: 'fcm02' }],
    ['a3', {}],
    ['a4', { webpush }],
    ['a5', {}],
  ]);
  assert.deepEqual((await walk({ tags: { any: ['y'] } })).map(([id]) => id), ['a2', 'a3']);
  assert.deepEqual(await walk({ tags: { all: ['x'] } }), [['a1', { apns: 'aa01' }], ['a2', { huawei: 'hw02', fcm: 'fcm02' }], ['a5', {}]]);
  assert.deepEqual(await walk({ users: ['u1'] }), [['a1', { apns: 'aa01' }], ['a4', { webpush }]]);
  assert.deepEqual(await walk({ devices: ['a5', 'a2', 'zz'] }), [['a2', { huawei: 'hw02', fcm: 'fcm02' }], ['a5', {}]]);
});

/** A fresh schema migrated up to `migration`, with app `app`: what an older deployment holds. */
async function atMigration(migration: string, fn: (db: Kysely<DB>, migrator: Migrator) => Promise<void>): Promise<void> {
  const iso = new Isolation();
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2, options: `-c search_path=${iso.schema}` });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql.raw(`CREATE SCHEMA ${iso.schema}`).execute(db);
    // The key seals the app's receipt secret when migration 0031 runs.
    const migrations = migrationsFor({ credentialsKey: Buffer.alloc(32, 7) });
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations }, migrationTableSchema: iso.schema });
    assert.equal((await migrator.migrateTo(migration)).error, undefined);
    await sql`INSERT INTO apps (id, name, receipt_secret) VALUES ('app', 'app', 's')`.execute(db);
    await fn(db, migrator);
  } finally {
    await db.destroy();
    await iso.drop();
  }
}

test('migration 0004 carries existing deliveries over: open ids, vendor request ids and self pending seqs', async () => {
  await atMigration('0003_deliveries_without_message_fk', async (db, migrator) => {
    await sql`
      INSERT INTO deliveries (message_id, app_id, device_id, channel, token, status, provider_id, seq) VALUES
        ('m', 'app', 'queued-one', 'huawei', 't1', 'queued', NULL, NULL),
        ('m', 'app', 'sent-one', 'huawei', 't2', 'sent', 'req-9', NULL),
        ('m', 'app', 'sent-two', 'huawei', 't3', 'sent', 'req-9', NULL),
        ('m', 'app', 'apns-one', 'apns', 't4', 'sent', 'apns-id', NULL),
        ('m', 'app', 'self-pending', 'self', NULL, 'sent', NULL, 7),
        ('m', 'app', 'self-acked', 'self', NULL, 'delivered', NULL, 8)`.execute(db);

    const latest = await migrator.migrateToLatest();
    assert.equal(latest.error, undefined);
    const byDevice = new Map(
      (await db.selectFrom('deliveries').select(['id', 'device_id', 'pending_seq']).execute()).map((r) => [r.device_id, r]),
    );
    const open = await db.selectFrom('delivery_open').select('id').execute();
    assert.deepEqual(open.map((r) => String(r.id)), [String(byDevice.get('queued-one')!.id)]);
    const requests = await db.selectFrom('provider_requests').selectAll().execute();
    assert.deepEqual(
      requests.map((r) => [r.channel, r.provider_id, r.ids.map(String)]),
      [['huawei', 'req-9', [String(byDevice.get('sent-one')!.id), String(byDevice.get('sent-two')!.id)]]],
    );
    assert.equal(String(byDevice.get('self-pending')!.pending_seq), '7');
    assert.equal(byDevice.get('self-acked')!.pending_seq, null);

    // And the repository matches receipts on the migrated data.
    const receipt = await new DeliveriesRepo(db).applyEvents('app', 'huawei', [{ event: 'delivered', providerId: 'req-9', token: 't3' }]);
    assert.deepEqual(receipt, { matched: 1, changed: 1, overQuota: [] });
  });
});

test('migration 0005 rewrites stored Web Push subscriptions to the canonical form, and leaves other tokens alone', async () => {
  await atMigration('0004_hot_outcomes', async (db, migrator) => {
    const keys = { p256dh: 'BP256', auth: 'AUTH' };
    const canonical = JSON.stringify({ endpoint: 'https://push.example/a', keys });
    const tokens: [string, string, string][] = [
      ['w-reordered', 'webpush', JSON.stringify({ keys: { auth: keys.auth, p256dh: keys.p256dh }, expirationTime: null, endpoint: 'https://push.example/a' })],
      ['w-canonical', 'webpush', canonical],
      ['w-junk', 'webpush', 'not json'],
      ['f-1', 'fcm', JSON.stringify({ keys, endpoint: 'x' })],
    ];
    for (const [device, channel, token] of tokens) {
      await sql`INSERT INTO devices (app_id, id, platform) VALUES ('app', ${device}, 'web')`.execute(db);
      await sql`INSERT INTO device_tokens (app_id, device_id, channel, token, state) VALUES ('app', ${device}, ${channel}, ${token}, 'invalid')`.execute(db);
    }
    assert.equal((await migrator.migrateToLatest()).error, undefined);
    const after = new Map((await db.selectFrom('device_tokens').select(['device_id', 'token', 'state']).execute()).map((r) => [r.device_id, r]));
    assert.equal(after.get('w-reordered')!.token, canonical);
    assert.equal(after.get('w-reordered')!.state, 'invalid', 'the state is kept');
    assert.equal(after.get('w-canonical')!.token, canonical);
    assert.equal(after.get('w-junk')!.token, 'not json');
    assert.equal(after.get('f-1')!.token, tokens[3]![2]);
  });
});
