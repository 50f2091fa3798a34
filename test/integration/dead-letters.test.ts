import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

type Api = Awaited<ReturnType<typeof newApp>>['api'];
type Mocks = Awaited<ReturnType<typeof startProviderMocks>>;

interface DeadLetter {
  id: string;
  messageId: string;
  deviceId: string | null;
  channel: string | null;
  status: string;
  error: { code: string } | null;
  failedAt: string;
  replayedAs: string | null;
}

async function done(api: Api, id: string) {
  return eventually(async () => {
    const m = await api('GET', `/v1/messages/${id}`);
    return m.body.state === 'done' ? m.body : undefined;
  }, 30_000, `message ${id} done`);
}

async function list(api: Api, query: string): Promise<{ items: DeadLetter[]; next: string | null }> {
  const r = await api('GET', `/v1/deliveries?${query}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

/** Every dead letter of the filter, a page of `limit` at a time. */
async function walk(api: Api, query: string, limit: number): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const page = await list(api, `${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    assert.ok(page.items.length <= limit);
    out.push(...page.items);
    cursor = page.next;
    if (!cursor) return out;
  }
  throw new Error('paging did not end');
}

const byDevice = (items: DeadLetter[]) => Object.fromEntries(items.map((d) => [d.deviceId, d]));
const APNS_500 = `0500${'0'.repeat(59)}1`;

describe('dead letters across messages, and their replay, through the REST API', () => {
  let t: TestRelay;
  let mocks: Mocks;
  let app: Awaited<ReturnType<typeof newApp>>;
  let other: Awaited<ReturnType<typeof newApp>>;
  let first: string;
  let expiredMsg: string;
  let start: string;
  const sendsTo = (token: string) => mocks.fcm.requests.filter((r) => r.token === token).length;

  before(async () => {
    mocks = await startProviderMocks();
    t = await startTestRelay(mocks.env);
    app = await newApp(t);
    other = await newApp(t);
    for (const a of [app, other]) {
      for (const provider of ['apns', 'fcm'] as const) {
        const r = await a.api('PUT', `/v1/apps/${a.appId}/credentials/${provider}`, mocks.credentials[provider]);
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
    }
    mocks.fcm.setBehavior('tok-int', { error: 'INTERNAL' });
    mocks.fcm.setBehavior('tok-q', { error: 'INTERNAL' });
    mocks.fcm.setBehavior('tok-exp', { error: 'QUOTA_EXCEEDED', retryAfter: 3600 });
    const devices: Record<string, unknown> = {
      'd-int': { platform: 'android', tokens: { fcm: 'tok-int' } },
      'd-mis': { platform: 'android', tokens: { fcm: 'mismatch-d' } },
      'd-q': { platform: 'android', tokens: { fcm: 'tok-q' } },
      'd-ok': { platform: 'android', tokens: { fcm: 'tok-ok' } },
      'd-exp': { platform: 'android', tokens: { fcm: 'tok-exp' } },
      'd-ios': { platform: 'ios', tokens: { apns: APNS_500 } },
    };
    for (const [id, body] of Object.entries(devices)) assert.equal((await app.api('PUT', `/v1/devices/${id}`, body)).status, 200);
    // B has a dead letter of its own, which A must never see.
    mocks.fcm.setBehavior('tok-b', { error: 'INTERNAL' });
    await other.api('PUT', '/v1/devices/b-1', { platform: 'android', tokens: { fcm: 'tok-b' } });

    start = new Date(Date.now() - 1000).toISOString();
    const push = await app.api('POST', '/v1/push', {
      to: { devices: ['d-int', 'd-mis', 'd-q', 'd-ok', 'd-ios'] },
      notification: { title: 'Your order', body: 'shipped' },
      options: { ttl: 600, retry: { maxAttempts: 1 } },
    });
    assert.equal(push.status, 202);
    first = push.body.id;
    // Retried past its TTL: expired.
    const exp = await app.api('POST', '/v1/push', { to: { devices: ['d-exp'] }, data: { k: 'v' }, options: { ttl: 60, retry: { maxAttempts: 3 } } });
    expiredMsg = exp.body.id;
    const b = await other.api('POST', '/v1/push', { to: { devices: ['b-1'] }, data: { k: 'v' }, options: { retry: { maxAttempts: 1 } } });
    await Promise.all([done(app.api, first), done(app.api, expiredMsg), done(other.api, b.body.id)]);
  });
  after(async () => {
    await t?.stop();
    await t?.iso.drop();
    await mocks?.close();
  });

  test('filters by status, channel, code and time; pages with a cursor; shows only the app’s own', async () => {
    const all = await list(app.api, 'limit=100');
    const d = byDevice(all.items);
    assert.deepEqual(Object.keys(d).sort(), ['d-exp', 'd-int', 'd-ios', 'd-mis', 'd-q']);
    assert.equal(all.next, null);
    assert.equal(d['d-int']!.status, 'failed');
    assert.equal(d['d-int']!.error!.code, 'INTERNAL');
    assert.equal(d['d-int']!.messageId, first);
    assert.equal(d['d-mis']!.error!.code, 'SENDER_ID_MISMATCH');
    assert.equal(d['d-ios']!.channel, 'apns');
    assert.equal(d['d-exp']!.status, 'expired');
    assert.equal(d['d-exp']!.messageId, expiredMsg);
    assert.ok(!JSON.stringify(all).includes('tok-int'), 'tokens are masked');

    assert.deepEqual(Object.keys(byDevice((await list(app.api, 'status=expired')).items)), ['d-exp']);
    assert.deepEqual(Object.keys(byDevice((await list(app.api, 'status=failed')).items)).sort(), ['d-int', 'd-ios', 'd-mis', 'd-q']);
    assert.equal((await list(app.api, 'status=failed,expired')).items.length, 5);
    assert.deepEqual(Object.keys(byDevice((await list(app.api, 'channel=apns')).items)), ['d-ios']);
    assert.deepEqual(Object.keys(byDevice((await list(app.api, 'code=INTERNAL')).items)).sort(), ['d-int', 'd-q']);
    assert.deepEqual(Object.keys(byDevice((await list(app.api, 'code=INTERNAL&channel=apns')).items)), []);
    assert.equal((await list(app.api, `from=${encodeURIComponent(start)}`)).items.length, 5);
    assert.equal((await list(app.api, `to=${encodeURIComponent(start)}`)).items.length, 0);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    assert.equal((await list(app.api, `from=${encodeURIComponent(future)}`)).items.length, 0);

    // A page at a time: every dead letter once, in the listing's order.
    const paged = await walk(app.api, 'status=failed,expired', 2);
    assert.deepEqual(paged.map((x) => x.id), all.items.map((x) => x.id));
    assert.equal(new Set(paged.map((x) => x.id)).size, 5);

    const theirs = await list(other.api, 'limit=100');
    assert.deepEqual(theirs.items.map((x) => x.deviceId), ['b-1'], 'B sees only its own dead letter');

    // Year 0000 is a valid RFC 3339 string but no PostgreSQL timestamp (it was a 500).
    for (const bad of ['status=sent', 'status=failed,,expired', 'cursor=abc', 'limit=0', 'from=yesterday', 'channel=pigeon', 'from=0000-01-01T00:00:00Z', 'to=0001-01-01T00:00:00%2B01:00']) {
      const r = await app.api('GET', `/v1/deliveries?${bad}`);
      assert.equal(r.status, 400, bad);
      assert.equal(r.body.error.code, 'validation_failed');
    }
  });

  test('a replay reaches the provider once, under a new message linked to the original; a repeat replays nothing', async () => {
    const dead = byDevice((await list(app.api, 'code=INTERNAL&channel=fcm')).items)['d-int']!;
    mocks.fcm.setBehavior('tok-int', null);
    const before = sendsTo('tok-int');

    const r = await app.api('POST', '/v1/deliveries/replay', { ids: [dead.id] }, { 'idempotency-key': 'replay-1' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.replayed, 1);
    assert.deepEqual(r.body.skipped, {});
    assert.equal(r.body.messages.length, 1);
    const replay = r.body.messages[0];
    assert.equal(replay.replayOf, first);
    assert.notEqual(replay.id, first);
    const msg = await done(app.api, replay.id);
    assert.equal(msg.replayOf, first);
    assert.deepEqual(msg.byChannel, { fcm: { sent: 1 } });
    assert.equal(sendsTo('tok-int'), before + 1, 'the provider got the replay once');
    // A fresh TTL: the original allowed 600 s, counted again from the replay.
    assert.ok(Date.parse(msg.expiresAt) - Date.parse(msg.createdAt) >= 590_000);
    assert.equal((await app.api('GET', `/v1/messages/${first}`)).body.replayOf, null);

    // The same request with its Idempotency-Key: the first answer again.
    const keyed = await app.api('POST', '/v1/deliveries/replay', { ids: [dead.id] }, { 'idempotency-key': 'replay-1' });
    assert.equal(keyed.status, 200);
    assert.equal(keyed.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(keyed.body, r.body);
    const conflict = await app.api('POST', '/v1/deliveries/replay', { ids: [dead.id, '1'] }, { 'idempotency-key': 'replay-1' });
    assert.equal(conflict.status, 409);
    // The same request again without a key (a client retry): nothing new is sent, the earlier replay is named.
    const again = await app.api('POST', '/v1/deliveries/replay', { ids: [dead.id] });
    assert.equal(again.status, 200);
    assert.equal(again.body.replayed, 0);
    assert.deepEqual(again.body.skipped, { already_replayed: 1 });
    assert.deepEqual(again.body.items, [{ id: dead.id, result: 'skipped', reason: 'already_replayed', messageId: replay.id }]);
    assert.deepEqual(again.body.messages, []);
    assert.equal(sendsTo('tok-int'), before + 1);
    const listed = byDevice((await list(app.api, 'code=INTERNAL')).items)['d-int']!;
    assert.equal(listed.replayedAs, replay.id, 'the listing shows the replay');
  });

  test('a campaign run’s dead letters are replayed with each device’s own localized, personalised copy', async () => {
    const devices = { 'rp-zh': { locale: 'zh-CN', attributes: { first_name: '小明' } }, 'rp-en': { locale: 'en-GB', attributes: { first_name: 'Ada' } } };
    for (const [id, facts] of Object.entries(devices)) {
      mocks.fcm.setBehavior(`tok-${id}`, { error: 'INTERNAL' });
      assert.equal((await app.api('PUT', `/v1/devices/${id}`, { platform: 'android', tokens: { fcm: `tok-${id}` }, tags: ['replay-copy'], ...facts })).status, 200);
    }
    const c = await app.api('POST', '/v1/campaigns', {
      name: 'replay copy',
      audience: { tags: { all: ['replay-copy'] } },
      notification: { title: 'Sale', body: 'Hi {{first_name|there}}, 30% off' },
      localized: { zh: { title: '促销', body: '{{first_name|你好}},全场七折' } },
      options: { ttl: 3600, retry: { maxAttempts: 1 } },
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    const dead = await eventually(async () => {
      const mine = (await list(app.api, 'code=INTERNAL&limit=100')).items.filter((d) => d.deviceId?.startsWith('rp-'));
      return mine.length === 2 ? mine : undefined;
    }, 60_000, 'both campaign deliveries dead');
    for (const id of Object.keys(devices)) mocks.fcm.setBehavior(`tok-${id}`, null);
    const sendsBefore = mocks.fcm.requests.length;

    const r = await app.api('POST', '/v1/deliveries/replay', { ids: dead.map((d) => d.id) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.replayed, 2);
    assert.equal(r.body.messages.length, 2, 'one new message per rendered copy');
    assert.ok(r.body.messages.every((m: { replayOf: string }) => m.replayOf === dead[0]!.messageId));
    for (const m of r.body.messages) await done(app.api, m.id);
    const got = new Map<string, { title?: string; body?: string }>();
    for (const q of mocks.fcm.requests.slice(sendsBefore)) {
      if (q.status === 200 && q.token?.startsWith('tok-rp-')) got.set(q.token, (q.body as { message: { notification: { title?: string; body?: string } } }).message.notification);
    }
    assert.deepEqual(got.get('tok-rp-zh'), { title: '促销', body: '小明,全场七折' });
    assert.deepEqual(got.get('tok-rp-en'), { title: 'Sale', body: 'Hi Ada, 30% off' });
  });

  test('a delivery whose token has been quarantined since is skipped; other apps’ deliveries are not found', async () => {
    const dead = byDevice((await list(app.api, 'code=INTERNAL')).items)['d-q']!;
    // The token dies on a later push: quarantined.
    mocks.fcm.setBehavior('tok-q', { error: 'UNREGISTERED' });
    const later = await app.api('POST', '/v1/push', { to: { devices: ['d-q'] }, data: { k: 'v' } });
    await done(app.api, later.body.id);
    const device = await app.api('GET', '/v1/devices/d-q');
    assert.equal(device.body.tokens[0].state, 'invalid');
    const before = sendsTo('tok-q');

    const theirs = (await list(other.api, 'limit=10')).items[0]!;
    const r = await app.api('POST', '/v1/deliveries/replay', { ids: [dead.id, theirs.id] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.replayed, 0);
    assert.deepEqual(r.body.skipped, { token_quarantined: 1, not_found: 1 });
    assert.deepEqual(r.body.messages, []);
    assert.equal(sendsTo('tok-q'), before, 'nothing was sent to the quarantined token');
    // B cannot replay A's dead letter either.
    const cross = await other.api('POST', '/v1/deliveries/replay', { ids: [dead.id] });
    assert.deepEqual(cross.body.skipped, { not_found: 1 });
  });

  test('a filter replay takes one bounded page and answers the cursor of the next', async () => {
    mocks.fcm.setBehavior('tok-exp', null);
    // Replays that fail again would be new dead letters at the end of the walk: these succeed.
    mocks.fcm.setBehavior('mismatch-d', {});
    const page = await app.api('POST', '/v1/deliveries/replay', { status: 'expired,failed', channel: 'fcm', limit: 1 });
    assert.equal(page.status, 200, JSON.stringify(page.body));
    assert.equal(page.body.items.length, 1);
    assert.ok(page.body.next, 'more dead letters follow');
    // The rest, page by page, until the end.
    let cursor: string | null = page.body.next;
    const seen = [...page.body.items];
    while (cursor) {
      const next = await app.api('POST', '/v1/deliveries/replay', { status: ['expired', 'failed'], channel: 'fcm', limit: 1, cursor });
      assert.equal(next.status, 200, JSON.stringify(next.body));
      seen.push(...next.body.items);
      cursor = next.body.next;
    }
    const fcmDead = await list(app.api, 'channel=fcm');
    assert.deepEqual(seen.map((i: { id: string }) => i.id), fcmDead.items.map((d) => d.id), 'each fcm dead letter was taken once, in order');
    const expired = byDevice(fcmDead.items)['d-exp']!;
    const result = seen.find((i: { id: string }) => i.id === expired.id);
    assert.equal(result.result, 'replayed');
    const msg = await done(app.api, result.messageId);
    assert.equal(msg.replayOf, expiredMsg);
    assert.deepEqual(msg.byChannel, { fcm: { sent: 1 } });

    const both = await app.api('POST', '/v1/deliveries/replay', { ids: ['1'], status: 'failed' });
    assert.equal(both.status, 400);
    assert.match(both.body.error.message, /ids/);
    const tooMany = await app.api('POST', '/v1/deliveries/replay', { limit: 1001 });
    assert.equal(tooMany.status, 400);
  });
});
