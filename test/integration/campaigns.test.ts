import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { MqttDevice, type SelfInfo } from '../helpers/self-devices.js';

type App = Awaited<ReturnType<typeof newApp>>;

/** The FCM mock's sends for these tokens: token → the message as received. */
function fcmSends(mocks: Awaited<ReturnType<typeof startProviderMocks>>, prefix: string) {
  const out = new Map<string, { notification?: { title?: string; body?: string }; data?: Record<string, string>; at: number }>();
  for (const r of mocks.fcm.requests) {
    if (!r.token?.startsWith(prefix) || r.status !== 200) continue;
    const m = (r.body as { message: { notification?: { title?: string; body?: string }; data?: Record<string, string> } }).message;
    out.set(r.token, { ...m, at: r.at });
  }
  return out;
}

async function campaignDone(app: App, id: string, timeoutMs = 30_000) {
  return eventually(async () => {
    const c = await app.api('GET', `/v1/campaigns/${id}`);
    return c.body.state === 'completed' && c.body.counts.queued === 0 ? c.body : undefined;
  }, timeoutMs, `campaign ${id} completed`);
}

describe('campaigns: audiences, content, control', () => {
  let t: TestRelay;
  let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
  let app: App;

  const android = (id: string, extra: Record<string, unknown> = {}) => app.api('PUT', `/v1/devices/${id}`, { platform: 'android', brand: 'samsung', tokens: { fcm: `fcm-${id}` }, ...extra });

  before(async () => {
    mocks = await startProviderMocks();
    t = await startTestRelay({ ...mocks.env, CAMPAIGN_TICK: '50ms', CAMPAIGN_LEASE: '3s' });
    app = await newApp(t);
    for (const provider of ['apns', 'fcm'] as const) {
      const r = await app.api('PUT', `/v1/apps/${app.appId}/credentials/${provider}`, mocks.credentials[provider]);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  });
  after(async () => {
    await t?.stop();
    await t?.iso.drop();
    await mocks?.close();
  });

  test('devices: attributes round-trip, IANA zones and attribute limits are validated', async () => {
    const ok = await android('attr-1', { attributes: { first_name: 'Ada' }, timezone: 'Asia/Shanghai' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.attributes, { first_name: 'Ada' });
    assert.ok(ok.body.lastSeenAt);
    const badZone = await android('attr-2', { timezone: 'Mars/Olympus' });
    assert.equal(badZone.status, 400);
    assert.match(badZone.body.error.message, /body\.timezone/);
    const many = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
    const tooMany = await android('attr-3', { attributes: many });
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.body.error.message, /body\.attributes/);
    await app.api('DELETE', '/v1/devices/attr-1');
  });

  test('lastSeenAt moves with SDK events (batched)', async () => {
    await android('seen-1');
    await t.relay.ctx.db.updateTable('devices').set({ last_seen_at: new Date('2020-01-01T00:00:00Z') }).where('id', '=', 'seen-1').execute();
    const r = await app.api('POST', '/v1/events', { deviceId: 'seen-1', messageId: 'msg_none', event: 'opened' });
    assert.equal(r.status, 200);
    await eventually(async () => {
      const d = await app.api('GET', '/v1/devices/seen-1');
      return Date.parse(d.body.lastSeenAt) > Date.parse('2025-01-01') ? true : undefined;
    }, 5000, 'lastSeenAt updated');
    await app.api('DELETE', '/v1/devices/seen-1');
  });

  test('every audience filter, evaluated in SQL, as preview counts', async () => {
    const put = (id: string, body: Record<string, unknown>) => app.api('PUT', `/v1/devices/${id}`, body);
    await put('f-ios-1', { platform: 'ios', tokens: { apns: 'a'.repeat(64) }, tags: ['vip'], locale: 'zh-CN', appVersion: '2.10.0', userId: 'u1', timezone: 'Asia/Shanghai' });
    await put('f-ios-2', { platform: 'ios', tokens: { apns: 'b'.repeat(64) }, tags: ['vip', 'churned'], locale: 'zh_TW', appVersion: '2.9.1', timezone: 'Asia/Taipei' });
    await put('f-and-1', { platform: 'android', brand: 'Xiaomi', tokens: { fcm: 'fcm-f-and-1' }, tags: ['cn'], locale: 'zha', appVersion: '3.0', userId: 'u1' });
    await put('f-and-2', { platform: 'android', brand: 'samsung', tokens: { fcm: 'fcm-f-and-2' }, tags: ['vip', 'hk'], locale: 'en-US', appVersion: '2.3.0', timezone: 'Europe/Berlin' });
    await put('f-web-1', { platform: 'web', tags: ['hk'], locale: 'en', appVersion: 'v1.0.0' });
    await t.relay.ctx.db.updateTable('devices').set({ last_seen_at: new Date(Date.now() - 40 * 86_400_000) }).where('id', 'in', ['f-and-2', 'f-web-1']).execute();
    const ids = ['f-ios-1', 'f-ios-2', 'f-and-1', 'f-and-2', 'f-web-1'];
    const total = async (audience: Record<string, unknown>) => {
      const r = await app.api('POST', '/v1/campaigns/preview', { audience: { devices: ids, ...audience } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body;
    };
    assert.equal((await total({})).total, 5);
    assert.deepEqual((await total({})).byPlatform, { ios: 2, android: 2, web: 1 });
    assert.deepEqual((await total({})).byChannel, { apns: 2, fcm: 2, none: 1 });
    assert.equal((await total({ platforms: ['ios', 'web'] })).total, 3);
    assert.equal((await total({ brands: ['xiaomi'] })).total, 1);
    assert.equal((await total({ tags: { all: ['vip'] } })).total, 3);
    assert.equal((await total({ tags: { any: ['cn', 'hk'] } })).total, 3);
    assert.equal((await total({ tags: { any: ['vip'], none: ['churned'] } })).total, 2);
    assert.equal((await total({ locales: ['zh'] })).total, 2, 'zh matches zh-CN and zh_TW, not zha');
    assert.equal((await total({ locales: ['en-US'] })).total, 1);
    assert.equal((await total({ appVersion: { gte: '2.10.0' } })).total, 2, '2.10.0 and 3.0 (versions, not strings)');
    assert.equal((await total({ appVersion: { gte: '2.3.0', lt: '2.10' } })).total, 2, '2.9.1 and 2.3.0');
    assert.equal((await total({ users: ['u1'] })).total, 2);
    assert.equal((await total({ lastSeen: { within: '30d' } })).total, 3);
    assert.equal((await total({ lastSeen: { notWithin: '30d' } })).total, 2);
    assert.equal((await total({ timezones: ['Asia/Shanghai', 'Europe/Berlin'] })).total, 2);
    const bad = await app.api('POST', '/v1/campaigns/preview', { audience: { appVersion: { gte: 'two' } } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /body\.audience\.appVersion\.gte/);
    // A span no date can reach back to was a 500 (found by the fuzzer): now a 400 naming the field.
    const ages = await app.api('POST', '/v1/campaigns/preview', { audience: { lastSeen: { within: '3310400d' } } });
    assert.equal(ages.status, 400);
    assert.match(ages.body.error.message, /body\.audience\.lastSeen\.within/);
    for (const id of ids) await app.api('DELETE', `/v1/devices/${id}`);
  });

  test('a template error is a 400 naming the field', async () => {
    const r = await app.api('POST', '/v1/campaigns', { name: 'bad', notification: { title: 'ok' }, localized: { zh: { body: 'Hi {{first_name|x' } } });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /body\.localized\.zh\.body/);
    const v = await app.api('POST', '/v1/campaigns', { name: 'bad', notification: { title: 'ok' }, variants: [{ name: 'A', weight: 1, notification: { body: '{{ 9x }}' } }] });
    assert.equal(v.status, 400);
    assert.match(v.body.error.message, /body\.variants\.0\.notification\.body|body\.variants\[0\]\.notification\.body/);
  });

  test('localized and personalised content as the provider received it', async () => {
    await android('c-zh', { locale: 'zh-CN', attributes: { first_name: '小明' }, tags: ['content'] });
    await android('c-zhtw', { locale: 'zh-TW', attributes: {}, tags: ['content'] });
    await android('c-en', { locale: 'en-GB', attributes: { first_name: 'Ada', promo: 'X1' }, tags: ['content'] });
    await android('c-none', { tags: ['content'] });
    const r = await app.api('POST', '/v1/campaigns', {
      name: 'Winter sale',
      audience: { tags: { all: ['content'] } },
      notification: { title: 'Sale', body: 'Hi {{first_name|there}}, 30% off' },
      data: { promo: '{{promo|none}}' },
      localized: { zh: { title: '促销', body: '{{first_name|你好}},全场七折' }, 'zh-TW': { title: '特賣' } },
      options: { ttl: 3600, category: 'marketing' },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.state, 'scheduled');
    const done = await campaignDone(app, r.body.id);
    assert.equal(done.audienceSize, 4);
    assert.equal(done.dispatched, 4);
    assert.equal(done.counts.sent, 4);
    assert.equal(done.runs.length, 1);
    const got = fcmSends(mocks, 'fcm-c-');
    assert.deepEqual(got.get('fcm-c-zh')?.notification, { title: '促销', body: '小明,全场七折' });
    assert.deepEqual(got.get('fcm-c-zhtw')?.notification, { title: '特賣', body: 'Hi there, 30% off' });
    assert.deepEqual(got.get('fcm-c-en')?.notification, { title: 'Sale', body: 'Hi Ada, 30% off' });
    assert.equal(got.get('fcm-c-en')?.data?.promo, 'X1');
    assert.deepEqual(got.get('fcm-c-none')?.notification, { title: 'Sale', body: 'Hi there, 30% off' });
    assert.equal(got.get('fcm-c-none')?.data?.promo, 'none');
    const list = await app.api('GET', '/v1/campaigns?limit=1');
    assert.equal(list.status, 200);
    assert.equal(list.body.items[0].id, r.body.id);
  });

  test('a self-channel device offline at dispatch gets its own localized, personalised copy on connect and in its inbox', async () => {
    const register = async (id: string, body: Record<string, unknown>) => {
      const r = await app.api('PUT', `/v1/devices/${id}`, { platform: 'android', brand: 'samsung', tags: ['self-copy'], ...body });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.self as SelfInfo;
    };
    const zh = await register('sc-zh', { locale: 'zh-CN', attributes: { first_name: '小明' } });
    const en = await register('sc-en', { locale: 'en-GB', attributes: { first_name: 'Ada' } });
    const r = await app.api('POST', '/v1/campaigns', {
      name: 'self copy',
      audience: { tags: { all: ['self-copy'] } },
      notification: { title: 'Sale', body: 'Hi {{first_name|there}}' },
      localized: { zh: { title: '促销', body: '{{first_name|你好}},全场七折' } },
      options: { channels: ['self'] },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    // Stored for the (offline) devices: `sent` on the self channel, waiting for their ack.
    const c = await eventually(async () => {
      const c = (await app.api('GET', `/v1/campaigns/${r.body.id}`)).body;
      return c.state === 'completed' && c.counts.sent === 2 ? c : undefined;
    }, 30_000, 'stored for both devices');
    const messageId = c.runs[0].messageId as string;
    const inbox = await app.api('GET', '/v1/devices/sc-zh/inbox');
    assert.equal(inbox.status, 200, JSON.stringify(inbox.body));
    assert.deepEqual(inbox.body.items.map((m: any) => [m.id, m.notification]), [[messageId, { title: '促销', body: '小明,全场七折' }]]);

    for (const [self, expected] of [
      [zh, { title: '促销', body: '小明,全场七折' }],
      [en, { title: 'Sale', body: 'Hi Ada' }],
    ] as const) {
      const dev = await MqttDevice.connect(self.mqtt, self);
      try {
        const got = await dev.waitFor(messageId);
        assert.deepEqual(got.body.notification, expected, self.clientId);
      } finally {
        await dev.end();
      }
    }
    await eventually(async () => ((await app.api('GET', `/v1/campaigns/${r.body.id}`)).body.counts.delivered === 2 ? true : undefined), 20_000, 'both acked');
  });

  test('the campaigns scope guards the routes', async () => {
    const op = await fetch(`${t.base}/v1/apps/${app.appId}/keys`, { method: 'POST', headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ scopes: ['push'] }) });
    const key = ((await op.json()) as { key: string }).key;
    const r = await fetch(`${t.base}/v1/campaigns`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(r.status, 403);
  });

  test('openapi documents the campaign routes', async () => {
    const doc = (await (await fetch(`${t.base}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    for (const p of ['/v1/campaigns', '/v1/campaigns/preview', '/v1/campaigns/{id}', '/v1/campaigns/{id}/pause', '/v1/campaigns/{id}/resume', '/v1/campaigns/{id}/cancel']) {
      assert.ok(doc.paths[p], `${p} documented`);
    }
  });

});
