// One concept: the per-minute delivery stats and message counters agree with the deliveries table.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { sql, type Kysely } from 'kysely';
import { loadConfig } from '../../src/config.js';
import { pushRequestSchema } from '../../src/push-request.js';
import type { Context } from '../../src/context.js';
import type { DB } from '../../src/db/schema.js';
import { createLogger } from '../../src/logger.js';
import { startRelay } from '../../src/relay.js';
import { mockToken } from '../mocks/apns-server.js';
import { Isolation, client, eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

type Api = Awaited<ReturnType<typeof newApp>>['api'];
type Counts = Record<string, number>;
const FUNNEL = ['sent', 'delivered', 'opened'];

async function done(api: Api, id: string) {
  return eventually(async () => {
    const m = await api('GET', `/v1/messages/${id}`);
    return m.body.state === 'done' ? m.body : undefined;
  }, 60_000, `message ${id} done`);
}

/** What a message's deliveries say, read from the table itself: the ground truth the counters must match. */
async function truth(db: Kysely<DB>, messageIds: string[]) {
  const res = await sql<{ message_id: string; channel: string | null; status: string; n: string }>`
    SELECT message_id, channel, status, count(*) AS n FROM deliveries WHERE message_id = ANY(${messageIds}::text[])
    GROUP BY 1, 2, 3`.execute(db);
  const out = new Map<string, { counts: Counts; byChannel: Record<string, Counts> }>();
  for (const id of messageIds) out.set(id, { counts: {}, byChannel: {} });
  for (const r of res.rows) {
    const m = out.get(r.message_id)!;
    m.counts[r.status] = (m.counts[r.status] ?? 0) + Number(r.n);
    (m.byChannel[r.channel ?? 'none'] ??= {})[r.status] = Number(r.n);
  }
  return out;
}

/** The counters of each message equal a GROUP BY over its deliveries (zeros left out). */
async function assertCountersExact(ctx: Context, appId: string, messageIds: string[], step: string) {
  const expected = await truth(ctx.db, messageIds);
  const got = await ctx.repos.counters.forMessages(appId, messageIds);
  for (const id of messageIds) {
    const nonZero = Object.fromEntries(Object.entries(got.get(id)!.counts).filter(([, n]) => n !== 0));
    assert.deepEqual(nonZero, expected.get(id)!.counts, `${step}: counts of ${id}`);
    assert.deepEqual(got.get(id)!.byChannel, expected.get(id)!.byChannel, `${step}: byChannel of ${id}`);
  }
}

/**
 * Every statement that moves a delivery, in the orders a real run meets them (duplicates and
 * crash re-runs included), checked against the deliveries after each step.
 */
async function transitionZoo(ctx: Context, appId: string) {
  const { repos, db } = ctx;
  const request = pushRequestSchema.parse({ to: { devices: ['x'] }, data: { k: 'v' } });
  const ids = ['zoo_a', 'zoo_b'];
  for (const id of ids) {
    await repos.messages.insert({ id, appId, request, state: 'routed', recipients: 6, sendAt: null, expiresAt: new Date(Date.now() + 3_600_000) });
  }
  const rows = (channel: string) => ['d1', 'd2', 'd3', 'd4', 'd5', 'd6'].map((d) => ({
    deviceId: d, platform: 'android', channel, token: `${channel}-${d}`, status: 'queued' as const, error: null,
  }));
  const a = await repos.deliveries.insertPage(appId, 'zoo_a', rows('fcm'));
  const b = await repos.deliveries.insertPage(appId, 'zoo_b', [
    ...rows('xiaomi').slice(0, 5),
    { deviceId: 'd6', platform: 'android', channel: null, token: null, status: 'failed', error: { code: 'NoChannel', message: 'none' } },
  ]);
  // A crash re-run of the same page inserts nothing twice.
  await repos.deliveries.insertPage(appId, 'zoo_a', rows('fcm'));
  await assertCountersExact(ctx, appId, ids, 'insert');

  const [a1, a2, a3] = a.pending.get('fcm')!;
  const [b1, b2, b3, b4, b5] = b.pending.get('xiaomi')!;
  const outcome = (id: string, status: 'sent' | 'queued' | 'failed' | 'invalid' | 'expired', code?: string) => ({
    id, status, error: code ? { code, message: code } : null, providerId: status === 'sent' ? `p-${id}` : null,
    nextAttemptAt: status === 'queued' ? new Date() : null,
  });
  await repos.deliveries.writeOutcomes([outcome(a1!, 'sent'), outcome(a2!, 'queued', 'UNAVAILABLE'), outcome(a3!, 'invalid', 'UNREGISTERED'), outcome(b1!, 'sent'), outcome(b2!, 'sent'), outcome(b3!, 'failed', 'quota')]);
  // A worker that died after writing re-runs its batch: the second write changes nothing.
  await repos.deliveries.writeOutcomes([outcome(a1!, 'sent'), outcome(a3!, 'invalid', 'UNREGISTERED'), outcome(b1!, 'sent')]);
  await assertCountersExact(ctx, appId, ids, 'outcomes');

  // The retried row is sent on its second attempt; receipts and SDK events, some repeated.
  await repos.deliveries.writeOutcomes([outcome(a2!, 'sent')]);
  await repos.deliveries.applyEvents(appId, null, [
    { event: 'delivered', messageId: 'zoo_a', deviceId: 'd1' },
    { event: 'opened', messageId: 'zoo_a', deviceId: 'd2' },
    { event: 'delivered', messageId: 'zoo_a', deviceId: 'd2' },
    { event: 'delivered', messageId: 'zoo_a', deviceId: 'd4' }, // an ack that overtakes its send outcome
  ]);
  await repos.deliveries.applyEvents(appId, null, [{ event: 'opened', messageId: 'zoo_a', deviceId: 'd1' }, { event: 'opened', messageId: 'zoo_a', deviceId: 'd1' }]);
  await repos.deliveries.applyEvents(appId, 'xiaomi', [{ event: 'invalid', providerId: `p-${b2}`, reason: { code: 'unregistered', message: 'gone' } }]);
  await assertCountersExact(ctx, appId, ids, 'events');

  // Quota fallback: the failed xiaomi row goes back to the queue on the self channel, and so
  // does a queued one (moveQueued); both are sent there.
  await repos.deliveries.requeueOnChannel([b3!], 'self');
  await repos.deliveries.moveQueued([b5!], 'self');
  await assertCountersExact(ctx, appId, ids, 'requeue and move');
  await repos.deliveries.writeOutcomes([outcome(b3!, 'sent'), outcome(b5!, 'sent')]);
  // (seq is no counted column: set here without a device row to number it)
  await sql`UPDATE deliveries SET seq = 1, pending_seq = 1 WHERE id = ${b5}`.execute(db);
  // The ack timeout hands one to FCM; the recall withdraws the other.
  await repos.self.moveToChannel([{ id: b3!, channel: 'fcm', token: 'fcm-d3' }]);
  await repos.self.withdraw('zoo_b');
  await assertCountersExact(ctx, appId, ids, 'self fallback and withdraw');
  await repos.deliveries.moveQueued([b3!, b4!], 'fcm');
  await assertCountersExact(ctx, appId, ids, 'move again');

  // Cancel what is left of one message; the TTL ends the other's.
  await repos.deliveries.cancelPending('zoo_b');
  await sql`UPDATE messages SET expires_at = now() - interval '1 second' WHERE id = 'zoo_a'`.execute(db);
  await repos.deliveries.expireOverdue();
  await repos.deliveries.expireOverdue();
  await assertCountersExact(ctx, appId, ids, 'cancel and expiry');
  const after = (await ctx.repos.counters.forMessages(appId, ids)).get('zoo_b')!;
  assert.equal(after.counts.cancelled, 3, 'b3 and b4 cancelled (still queued), b5 withdrawn');
  return ids;
}

async function pushMixed(api: Api, appId: string, mocks: Awaited<ReturnType<typeof startProviderMocks>>) {
  for (const provider of ['apns', 'fcm'] as const) {
    const r = await api('PUT', `/v1/apps/${appId}/credentials/${provider}`, mocks.credentials[provider]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const ios = { ok: mockToken('ok', 11), read: mockToken('ok', 12), dead: mockToken('unregistered', 13), bad: mockToken('badDeviceToken', 14), flaky: mockToken('failFirst', 15, 2) };
  const android = { ok: 'fcm-st-ok-01', gone: 'fcm-st-gone-02', busy: 'fcm-st-busy-03', mismatch: 'fcm-st-mismatch-04', down: 'fcm-st-down-05' };
  mocks.fcm.setBehavior(android.gone, { error: 'UNREGISTERED' });
  mocks.fcm.setBehavior(android.busy, { error: 'QUOTA_EXCEEDED', retryAfter: 1, failTimes: 1 });
  mocks.fcm.setBehavior(android.mismatch, { error: 'SENDER_ID_MISMATCH' });
  mocks.fcm.setBehavior(android.down, { error: 'UNAVAILABLE' });
  for (const [k, token] of Object.entries(ios)) await api('PUT', `/v1/devices/ios-${k}`, { platform: 'ios', tokens: { apns: token }, tags: ['st'] });
  for (const [k, token] of Object.entries(android)) await api('PUT', `/v1/devices/and-${k}`, { platform: 'android', brand: 'samsung', tokens: { fcm: token }, tags: k === 'down' ? ['down'] : ['st'] });

  const main = await api('POST', '/v1/push', { to: { tags: { any: ['st'] } }, notification: { title: 'stats' } });
  assert.equal(main.status, 202, JSON.stringify(main.body));
  // A token that never stops failing, on a message whose TTL ends first: expired.
  const short = await api('POST', '/v1/push', { to: { tags: { any: ['down'] } }, notification: { title: 'short' }, options: { ttl: 2 } });
  assert.equal(short.status, 202, JSON.stringify(short.body));
  await done(api, main.body.id);
  await done(api, short.body.id);
  const ev = await api('POST', '/v1/events', {
    events: [
      { messageId: main.body.id, deviceId: 'ios-ok', event: 'delivered' },
      { messageId: main.body.id, deviceId: 'ios-read', event: 'opened' },
      { messageId: main.body.id, deviceId: 'and-ok', event: 'delivered' },
      { messageId: main.body.id, deviceId: 'and-ok', event: 'opened' },
      { messageId: main.body.id, deviceId: 'and-ok', event: 'opened' },
    ],
  });
  assert.equal(ev.status, 200, JSON.stringify(ev.body));
  return [main.body.id as string, short.body.id as string];
}

/** Funnel and end-state counts the stats must show for these deliveries (none was sent then failed). */
async function expectedStats(db: Kysely<DB>, messageIds: string[], by?: 'channel' | 'platform') {
  const col = by ? sql.ref(by) : sql`'all'`;
  const res = await sql<{ k: string; status: string; n: string }>`
    SELECT ${col} AS k, status, count(*) AS n FROM deliveries WHERE message_id = ANY(${messageIds}::text[]) GROUP BY 1, 2`.execute(db);
  const out: Record<string, Counts> = {};
  for (const r of res.rows) {
    const e = (out[r.k] ??= { sent: 0, delivered: 0, opened: 0, failed: 0, invalid: 0, expired: 0, cancelled: 0 });
    const stage = FUNNEL.indexOf(r.status);
    if (stage >= 0) for (const s of FUNNEL.slice(0, stage + 1)) e[s]! += Number(r.n);
    else if (r.status in e) e[r.status]! += Number(r.n);
  }
  return out;
}

describe('delivery stats and counters on PostgreSQL', () => {
  let t: TestRelay;
  let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
  let app: Awaited<ReturnType<typeof newApp>>;
  let pushed: string[];

  before(async () => {
    mocks = await startProviderMocks();
    t = await startTestRelay({ ...mocks.env, RETRY_BASE_DELAY: '100ms', RETRY_MAX_DELAY: '1s' });
    app = await newApp(t);
    pushed = await pushMixed(app.api, app.appId, mocks);
  });
  after(async () => {
    await t?.stop();
    await t?.iso.drop();
    await mocks?.close();
  });

  test('after a mixed push, /v1/stats matches the deliveries, in total and by channel and platform', async () => {
    const { db } = t.relay.ctx;
    const total = (await expectedStats(db, pushed)).all!;
    assert.deepEqual([total.sent, total.delivered, total.opened, total.failed, total.invalid, total.expired], [5, 3, 2, 1, 3, 1], JSON.stringify(total));

    const s = await app.api('GET', '/v1/stats?interval=minute');
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.equal(s.body.interval, 'minute');
    assert.deepEqual(s.body.totals, total);
    assert.deepEqual(s.body.rates, { delivered: 3 / 5, opened: 2 / 3 });
    assert.equal(s.body.series.length, 1);
    assert.deepEqual(s.body.series[0].key, {});
    assert.equal(s.body.series[0].points.length, 60, 'an hour of minutes by default, zeros included');

    for (const by of ['channel', 'platform'] as const) {
      const expected = await expectedStats(db, pushed, by);
      const g = await app.api('GET', `/v1/stats?groupBy=${by}&interval=hour`);
      assert.equal(g.status, 200, JSON.stringify(g.body));
      const got = Object.fromEntries(g.body.series.map((x: { key: Record<string, string>; totals: Counts }) => [x.key[by], x.totals]));
      assert.deepEqual(got, expected, `by ${by}`);
    }
    const both = await app.api('GET', '/v1/stats?groupBy=channel,platform&channel=fcm');
    assert.deepEqual(both.body.series.map((x: { key: unknown }) => x.key), [{ channel: 'fcm', platform: 'android' }]);
  });

  test('hour and day points are sums of the minute rollups', async () => {
    const now = Date.now();
    const from = new Date(now - 3 * 86_400_000).toISOString();
    const to = new Date(now + 60_000).toISOString();
    const minute = await app.api('GET', `/v1/stats?interval=minute&from=${new Date(now - 3_600_000).toISOString()}&to=${to}`);
    const hour = await app.api('GET', `/v1/stats?interval=hour&from=${from}&to=${to}`);
    const day = await app.api('GET', `/v1/stats?interval=day&from=${from}&to=${to}`);
    for (const r of [minute, hour, day]) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(hour.body.totals, minute.body.totals);
    assert.deepEqual(day.body.totals, minute.body.totals);
    const dayStart = Math.floor(Date.parse(from) / 86_400_000) * 86_400_000;
    assert.equal(day.body.series[0].points.length, Math.ceil((Date.parse(to) - dayStart) / 86_400_000));
    assert.ok(day.body.series[0].points.every((p: { t: string }) => p.t.endsWith('T00:00:00.000Z')), 'day points start at UTC midnight');
    const sum = (points: Counts[]) => points.reduce((n, p) => n + p.sent!, 0);
    assert.equal(sum(hour.body.series[0].points), minute.body.totals.sent);
    assert.equal(hour.body.series[0].points.filter((p: Counts) => p.sent! > 0).length >= 1, true);
  });

  test('/v1/stats/errors lists the top reasons per channel with counts', async () => {
    const r = await app.api('GET', '/v1/stats/errors');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const byChannel = Object.fromEntries(r.body.channels.map((c: { channel: string; reasons: { code: string; status: string; count: number }[] }) =>
      [c.channel, Object.fromEntries(c.reasons.map((x) => [`${x.status}:${x.code}`, x.count]))]));
    assert.equal(byChannel.apns['invalid:Unregistered'], 1);
    assert.equal(byChannel.apns['invalid:BadDeviceToken'], 1);
    assert.ok(Object.keys(byChannel.apns).some((k) => k.startsWith('retried:')), JSON.stringify(byChannel.apns));
    assert.equal(byChannel.fcm['invalid:UNREGISTERED'], 1);
    assert.equal(byChannel.fcm['failed:SENDER_ID_MISMATCH'], 1);
    const expired = Object.entries(byChannel.fcm as Record<string, number>).filter(([k]) => k.startsWith('expired:'));
    assert.deepEqual(expired.map(([, n]) => n), [1], JSON.stringify(byChannel.fcm));
    assert.equal(byChannel.fcm['retried:QUOTA_EXCEEDED'], 1);
    const fcm = r.body.channels.find((c: { channel: string }) => c.channel === 'fcm');
    assert.equal(fcm.total, fcm.reasons.reduce((n: number, x: { count: number }) => n + x.count, 0));
    const limited = await app.api('GET', '/v1/stats/errors?channel=fcm&limit=1');
    assert.equal(limited.body.channels.length, 1);
    assert.equal(limited.body.channels[0].reasons.length, 1);
    assert.equal(limited.body.channels[0].total, fcm.total);
  });

  test('message counters equal the deliveries after retries, receipts, events and expiry', async () => {
    await assertCountersExact(t.relay.ctx, app.appId, pushed, 'mixed push');
    const m = await app.api('GET', `/v1/messages/${pushed[0]}`);
    assert.deepEqual(m.body.counts, { queued: 0, sent: 2, delivered: 1, opened: 2, failed: 1, invalid: 3, expired: 0, cancelled: 0 });
    assert.deepEqual(m.body.byChannel.fcm, { sent: 1, opened: 1, invalid: 1, failed: 1 });
  });

  test('every statement that moves a delivery moves exactly one count', async () => {
    const { appId } = await newApp(t);
    await transitionZoo(t.relay.ctx, appId);
  });

  test('a cancel through the API moves the queued counts to cancelled', async () => {
    const slow = await startProviderMocks({ apnsDelayMs: 3000 });
    const t2 = await startTestRelay({ ...slow.env, SEND_BATCH_SIZE: '1', SEND_CONCURRENCY: '1' });
    try {
      const { appId, api } = await newApp(t2);
      await api('PUT', `/v1/apps/${appId}/credentials/apns`, slow.credentials.apns);
      for (let i = 0; i < 6; i++) await api('PUT', `/v1/devices/c-${i}`, { platform: 'ios', tokens: { apns: mockToken('ok', 40 + i) }, tags: ['c'] });
      const p = await api('POST', '/v1/push', { to: { tags: { any: ['c'] } }, notification: { title: 'cancel me' } });
      await eventually(async () => {
        const { counts } = (await api('GET', `/v1/messages/${p.body.id}`)).body;
        return counts.queued + counts.sent === 6 ? true : undefined;
      }, 20_000, 'routed');
      const c = await api('DELETE', `/v1/messages/${p.body.id}`);
      assert.equal(c.status, 200, JSON.stringify(c.body));
      assert.ok(c.body.cancelled >= 4, JSON.stringify(c.body));
      const m = await eventually(async () => {
        const r = await api('GET', `/v1/messages/${p.body.id}`);
        return r.body.counts.queued === 0 ? r.body : undefined;
      }, 30_000, 'nothing queued');
      assert.equal(m.counts.cancelled, c.body.cancelled);
      assert.equal(m.counts.cancelled + m.counts.sent, 6);
      await assertCountersExact(t2.relay.ctx, appId, [p.body.id], 'cancel');
      const s = await api('GET', '/v1/stats');
      assert.equal(s.body.totals.cancelled, c.body.cancelled);
    } finally {
      await t2.stop();
      await t2.iso.drop();
      await slow.close();
    }
  });

  test('campaign and variant series, and campaign counters', async () => {
    const { appId, api } = await newApp(t);
    const { repos, db } = t.relay.ctx;
    const request = pushRequestSchema.parse({ to: { devices: ['x'] }, data: { k: 'v' } });
    for (const id of ['cm_run1', 'cm_run2']) {
      await repos.messages.insert({ id, appId, request, state: 'routed', recipients: 4, sendAt: null, expiresAt: new Date(Date.now() + 3_600_000) });
      await sql`UPDATE messages SET campaign_id = 'cmp_1' WHERE id = ${id}`.execute(db);
      const page = await repos.deliveries.insertPage(appId, id, ['d1', 'd2', 'd3', 'd4'].map((d, i) => ({
        deviceId: d, platform: i < 3 ? 'ios' : 'android', channel: i < 3 ? 'apns' : 'fcm', token: `t-${d}`, status: 'queued' as const, error: null, variant: i % 2 ? 'B' : 'A',
      })));
      const ids = [...page.pending.values()].flat();
      await repos.deliveries.writeOutcomes(ids.map((id2, i) => ({ id: id2, status: i === 0 ? 'invalid' : 'sent', error: i === 0 ? { code: 'Unregistered', message: 'x' } : null, providerId: null, nextAttemptAt: null })));
      await repos.deliveries.applyEvents(appId, null, [{ event: 'opened', messageId: id, deviceId: 'd2' }]);
    }
    const c = await repos.counters.forCampaign(appId, 'cmp_1');
    assert.deepEqual(c.counts, { queued: 0, sent: 4, delivered: 0, opened: 2, failed: 0, invalid: 2, expired: 0, cancelled: 0 });
    assert.deepEqual(c.byVariant.A, { queued: 0, sent: 2, delivered: 0, opened: 0, failed: 0, invalid: 2, expired: 0, cancelled: 0 });
    assert.deepEqual(c.byVariant.B, { queued: 0, sent: 2, delivered: 0, opened: 2, failed: 0, invalid: 0, expired: 0, cancelled: 0 });
    assert.deepEqual((await repos.counters.forCampaign('another_app', 'cmp_1')).counts.sent, 0, 'app isolation');

    const s = await api('GET', '/v1/stats?groupBy=campaign,variant');
    assert.equal(s.status, 200, JSON.stringify(s.body));
    const got = Object.fromEntries(s.body.series.map((x: { key: { campaign: string; variant: string }; totals: Counts; rates: unknown }) =>
      [`${x.key.campaign}/${x.key.variant}`, [x.totals.sent, x.totals.delivered, x.totals.opened, x.totals.invalid, x.rates]]));
    assert.deepEqual(got, {
      'cmp_1/A': [2, 0, 0, 2, { delivered: 0, opened: null }],
      'cmp_1/B': [4, 2, 2, 0, { delivered: 0.5, opened: 1 }],
    });
    const only = await api('GET', '/v1/stats?groupBy=variant&campaign=cmp_1&variant=B');
    assert.deepEqual(only.body.series.map((x: { key: unknown }) => x.key), [{ variant: 'B' }]);
    // Another app's key sees none of it.
    const other = await newApp(t);
    assert.deepEqual((await other.api('GET', '/v1/stats?groupBy=campaign')).body.series, []);
  });

  test('the stats scope guards /v1/stats, and queries are validated with field paths', async () => {
    const op = client(t.base, t.adminToken);
    const pushOnly = await op('POST', `/v1/apps/${app.appId}/keys`, { scopes: ['push'] });
    const statsOnly = await op('POST', `/v1/apps/${app.appId}/keys`, { scopes: ['stats'] });
    const p = client(t.base, pushOnly.body.key);
    const s = client(t.base, statsOnly.body.key);
    assert.equal((await p('GET', '/v1/stats')).status, 403);
    assert.equal((await p('GET', '/v1/stats/errors')).status, 403);
    assert.equal((await client(t.base)('GET', '/v1/stats')).status, 401);
    assert.equal((await s('GET', '/v1/stats')).status, 200);
    assert.equal((await s('GET', '/v1/stats/errors')).status, 200);
    assert.equal((await s('GET', `/v1/messages/${pushed[0]}`)).status, 403);

    const bad = async (query: string, path: string) => {
      const r = await s('GET', `/v1/stats${query}`);
      assert.equal(r.status, 400, `${query}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.details[0].path, path, query);
    };
    await bad('?groupBy=channel,bogus', 'query.groupBy');
    await bad('?interval=week', 'query.interval');
    await bad('?from=yesterday', 'query.from');
    await bad(`?interval=minute&from=${new Date(Date.now() - 3 * 86_400_000).toISOString()}`, 'query.from');
    await bad(`?from=${new Date().toISOString()}&to=${new Date(Date.now() - 3_600_000).toISOString()}`, 'query.from');
    await bad('?limit=0', 'query.limit');

    const doc = (await client(t.base)('GET', '/openapi.json')).body;
    assert.ok(doc.paths['/v1/stats'].get.parameters.some((x: { name: string }) => x.name === 'groupBy'));
    assert.ok(doc.paths['/v1/stats/errors'].get.responses['200']);
  });

  test('the sweep prunes minute rollups older than STATS_RETENTION', async () => {
    const { appId } = await newApp(t);
    const { db } = t.relay.ctx;
    for (const [bucket, n] of [[`now() - interval '40 days'`, 5], [`now() - interval '29 days'`, 7]] as const) {
      await sql`INSERT INTO stats_minute VALUES (${appId}, date_trunc('minute', ${sql.raw(bucket)}), 'apns', 'ios', '', '', 'sent', ${n})`.execute(db);
      await sql`INSERT INTO stats_errors VALUES (${appId}, date_trunc('minute', ${sql.raw(bucket)}), 'apns', 'Unregistered', 'invalid', ${n})`.execute(db);
    }
    await t.relay.sweeper!.sweep();
    const left = await sql<{ n: string }>`SELECT sum(count) AS n FROM stats_minute WHERE app_id = ${appId}`.execute(db);
    const leftErrors = await sql<{ n: string }>`SELECT sum(count) AS n FROM stats_errors WHERE app_id = ${appId}`.execute(db);
    assert.equal(Number(left.rows[0]!.n), 7);
    assert.equal(Number(leftErrors.rows[0]!.n), 7);
  });
});

describe('delivery stats and counters on the embedded PGlite', () => {
  const iso = new Isolation();
  let t: TestRelay;
  let mocks: Awaited<ReturnType<typeof startProviderMocks>>;

  before(async () => {
    mocks = await startProviderMocks();
    const env: Record<string, string> = iso.env({ ...mocks.env, RETRY_BASE_DELAY: '100ms', RETRY_MAX_DELAY: '1s' });
    delete env.DATABASE_URL;
    delete env.DATABASE_SCHEMA;
    const config = loadConfig(env);
    const relay = await startRelay(config, createLogger(config.LOG_LEVEL), () => undefined);
    t = { relay, config, base: `http://127.0.0.1:${relay.port}`, adminToken: config.ADMIN_TOKEN!, iso, stop: () => relay.stop() };
  });
  after(async () => {
    await t?.stop();
    await mocks?.close();
    await iso.drop();
    rmSync(iso.env().DATA_DIR!, { recursive: true, force: true });
  });

  test('a mixed push: stats and counters match the deliveries', async () => {
    const { appId, api } = await newApp(t);
    const pushed = await pushMixed(api, appId, mocks);
    const total = (await expectedStats(t.relay.ctx.db, pushed)).all!;
    const s = await api('GET', '/v1/stats?groupBy=channel&interval=day');
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.deepEqual(s.body.totals, total);
    await assertCountersExact(t.relay.ctx, appId, pushed, 'mixed push');
    const e = await api('GET', '/v1/stats/errors');
    assert.ok(e.body.channels.some((c: { channel: string }) => c.channel === 'apns'));
  });

  test('every statement that moves a delivery moves exactly one count', async () => {
    const { appId } = await newApp(t);
    await transitionZoo(t.relay.ctx, appId);
  });
});
