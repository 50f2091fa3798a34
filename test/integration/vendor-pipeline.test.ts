import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { after, before, describe, test } from 'node:test';
import { startHuaweiMock, type HuaweiMock } from '../mocks/vendors/huawei.js';
import { startOppoMock, type OppoMock } from '../mocks/vendors/oppo.js';
import { startXiaomiMock, type XiaomiMock } from '../mocks/vendors/xiaomi.js';
import { startWebPushMock, type WebPushMock } from '../mocks/webpush-server.js';
import { client, eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';

type Api = Awaited<ReturnType<typeof newApp>>['api'];

async function done(api: Api, id: string) {
  return eventually(async () => {
    const m = await api('GET', `/v1/messages/${id}`);
    return m.body.state === 'done' ? m.body : undefined;
  }, 30_000, `message ${id} done`);
}

async function fate(api: Api, id: string, deviceId: string) {
  const page = await api('GET', `/v1/messages/${id}/deliveries?limit=1000`);
  return page.body.items.find((d: { deviceId: string }) => d.deviceId === deviceId);
}

describe('vendor channels, Web Push, receipt webhooks and SDK events through the REST API', () => {
  let t: TestRelay;
  let huawei: HuaweiMock;
  let xiaomi: XiaomiMock;
  let webpush: WebPushMock;
  let oppo: OppoMock;
  let app: Awaited<ReturnType<typeof newApp>>;
  let receiptUrl: Record<string, string>;

  before(async () => {
    [huawei, xiaomi, webpush, oppo] = await Promise.all([startHuaweiMock(), startXiaomiMock(), startWebPushMock(), startOppoMock()]);
    t = await startTestRelay({ HUAWEI_ENDPOINT: huawei.url, HUAWEI_OAUTH_ENDPOINT: huawei.url, XIAOMI_ENDPOINT: xiaomi.url, OPPO_ENDPOINT: oppo.url });
    app = await newApp(t);
    const creds = {
      huawei: { appId: huawei.appId, clientSecret: 'hw-secret' },
      xiaomi: { appSecret: xiaomi.appSecret, packageName: xiaomi.packageName },
      webpush: { subject: 'mailto:ops@example.com' },
      oppo: { appKey: oppo.appKey, masterSecret: oppo.masterSecret },
    };
    for (const [provider, body] of Object.entries(creds)) {
      const r = await app.api('PUT', `/v1/apps/${app.appId}/credentials/${provider}`, body);
      assert.equal(r.status, 200, `${provider}: ${JSON.stringify(r.body)}`);
    }
    const list = await app.api('GET', `/v1/apps/${app.appId}/credentials`);
    receiptUrl = Object.fromEntries(list.body.items.filter((c: { receiptUrl?: string }) => c.receiptUrl).map((c: { provider: string; receiptUrl: string }) => [c.provider, c.receiptUrl]));
    const xm = list.body.items.find((c: { provider: string }) => c.provider === 'xiaomi');
    assert.equal(xm.info.callbackUrl, receiptUrl.xiaomi!.replace(/\?.*$/, ''), 'Xiaomi is told the receipt URL (shown without its secret)');
    const vapid = list.body.items.find((c: { provider: string }) => c.provider === 'webpush').info;
    assert.ok(vapid.vapidPublicKey, 'VAPID keys are generated when omitted and the public key is shown');
    assert.ok(!JSON.stringify(list.body).includes('PrivateKey"'), 'the private key is not shown');

    await app.api('PUT', '/v1/devices/hw-1', { platform: 'android', brand: 'HUAWEI', tokens: { huawei: 'hw-token-0001', fcm: 'fcm-unused' } });
    await app.api('PUT', '/v1/devices/hw-dead', { platform: 'android', brand: 'huawei', tokens: { huawei: 'invalid-hw-0002' } });
    await app.api('PUT', '/v1/devices/xm-1', { platform: 'android', brand: 'xiaomi', tokens: { xiaomi: 'xm-regid-0001' } });
    const sub = webpush.subscribe();
    const web = await app.api('PUT', '/v1/devices/web-1', { platform: 'web', tokens: { webpush: JSON.parse(sub.json) } });
    assert.equal(web.status, 200, JSON.stringify(web.body));
  });
  after(async () => {
    await t?.stop();
    await t?.iso.drop();
    await Promise.all([huawei?.close(), xiaomi?.close(), webpush?.close(), oppo?.close()]);
  });

  test('Android devices go to their brand’s vendor channel, browsers to Web Push', async () => {
    const pushed = await app.api('POST', '/v1/push', {
      to: { devices: ['hw-1', 'hw-dead', 'xm-1', 'web-1'] },
      notification: { title: 'Order shipped', body: 'On its way', clickAction: 'app://orders/42' },
      data: { orderId: '42' },
      options: { category: 'order', ttl: 600 },
    });
    const msg = await done(app.api, pushed.body.id);
    assert.deepEqual(msg.byChannel, { huawei: { sent: 1, invalid: 1 }, xiaomi: { sent: 1 }, webpush: { sent: 1 } });
    assert.equal((await app.api('GET', '/v1/devices/hw-dead')).body.tokens[0].state, 'invalid');
    assert.equal(huawei.sends.length, 1, 'one batch request carried both Huawei tokens');
    assert.ok(huawei.sends[0]!.tokens.includes('hw-token-0001'));
    const decrypted = webpush.requests.at(-1)!;
    assert.match(String(decrypted.plaintext), new RegExp(pushed.body.id), 'the browser gets the relay message id');

    // The vendor's receipt callback marks the delivery delivered, once.
    const url = new URL(receiptUrl.huawei!);
    assert.equal(url.pathname, `/v1/receipts/huawei/${app.appId}`);
    const receipt = huawei.receiptFor('hw-token-0001');
    const post = (u: string, body: string, type = receipt.contentType) => fetch(`${t.base}${u}`, { method: 'POST', headers: { 'content-type': type }, body });
    const first = await post(url.pathname + url.search, receipt.rawBody);
    assert.equal(first.status, 200);
    assert.deepEqual(await first.json(), { received: 1, matched: 1, applied: 1 });
    const repeat = await post(url.pathname + url.search, receipt.rawBody);
    assert.deepEqual(await repeat.json(), { received: 1, matched: 1, applied: 0 }, 'a repeated callback changes nothing');
    assert.equal((await fate(app.api, pushed.body.id, 'hw-1')).status, 'delivered');

    assert.equal((await post(`${url.pathname}?secret=wrong`, receipt.rawBody)).status, 401);
    assert.equal((await post(url.pathname, receipt.rawBody)).status, 401, 'no secret is a wrong secret');
    const malformed = await post(url.pathname + url.search, '{"statuses": 42');
    assert.equal(malformed.status, 400);
    const unknown = await post(url.pathname + url.search, huawei.receiptFor('never-sent-token', { requestId: '999' }).rawBody);
    assert.equal(unknown.status, 400);
    assert.equal((await unknown.json()).error.code, 'unknown_delivery');

    // The device SDK reports the open with its own password, no API key.
    const reg = await app.api('GET', '/v1/devices/hw-1');
    const device = client(t.base);
    const opened = await device('POST', '/v1/events', { messageId: pushed.body.id, event: 'opened' }, { authorization: `Device hw-1:${reg.body.self.password}` });
    assert.equal(opened.status, 200);
    assert.equal(opened.body.applied, 1);
    const f = await fate(app.api, pushed.body.id, 'hw-1');
    assert.equal(f.status, 'opened');
    assert.ok(f.deliveredAt && f.openedAt);
    const forged = await device('POST', '/v1/events', { messageId: pushed.body.id, event: 'opened', deviceId: 'xm-1' }, { authorization: `Device hw-1:${reg.body.self.password}` });
    assert.equal(forged.status, 403);
    const badPassword = await device('POST', '/v1/events', { messageId: pushed.body.id, event: 'opened' }, { authorization: 'Device hw-1:app.forged' });
    assert.equal(badPassword.status, 401);
  });

  test('marketing messages stop at the vendor’s daily per-device cap without a request', async () => {
    const before = huawei.sends.length;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await app.api('POST', '/v1/push', { to: { devices: ['hw-1'] }, notification: { title: `sale ${i}` }, options: { category: 'marketing' } });
      ids.push(p.body.id);
      await done(app.api, p.body.id);
    }
    const fates = await Promise.all(ids.map((id) => fate(app.api, id, 'hw-1')));
    assert.deepEqual(fates.map((f) => f.status), ['sent', 'sent', 'failed']);
    assert.equal(fates[2].error.code, 'quota');
    assert.equal(huawei.sends.length - before, 2, 'the third never reached Huawei');
  });

  test('with quotaFallback=self a message over the daily quota goes to the self channel instead', async () => {
    assert.equal((await app.api('PUT', `/v1/apps/${app.appId}/settings`, { quotaFallback: 'self' })).status, 200);
    // hw-1 used its two marketing messages for today in the test above.
    const p = await app.api('POST', '/v1/push', { to: { devices: ['hw-1'] }, notification: { title: 'one more sale' }, options: { category: 'marketing' } });
    await done(app.api, p.body.id);
    const f = await fate(app.api, p.body.id, 'hw-1');
    assert.equal(f.channel, 'self');
    assert.equal(f.status, 'sent', 'kept for the device on the self channel');
    await app.api('PUT', `/v1/apps/${app.appId}/settings`, { quotaFallback: 'none' });
  });

  test('a receipt that reports the daily quota fails the delivery, or with quotaFallback=self sends it over the self channel', async () => {
    await app.api('PUT', '/v1/devices/op-1', { platform: 'android', brand: 'oppo', tokens: { oppo: 'op-regid-0001' } });
    const url = new URL(receiptUrl.oppo!);
    const dropped = async () => {
      const p = await app.api('POST', '/v1/push', { to: { devices: ['op-1'] }, notification: { title: 'sale' } });
      await done(app.api, p.body.id);
      const sent = await fate(app.api, p.body.id, 'op-1');
      assert.equal(sent.status, 'sent');
      const receipt = oppo.receiptFor([{ messageId: sent.providerId, registrationIds: ['op-regid-0001'], eventType: 'user_daily_limit' }]);
      const post = () => fetch(`${t.base}${url.pathname}${url.search}`, { method: 'POST', headers: { 'content-type': receipt.contentType }, body: receipt.rawBody });
      assert.equal((await post()).status, 200);
      return { id: p.body.id as string, repeat: post };
    };

    const { id: failedId } = await dropped();
    const f = await fate(app.api, failedId, 'op-1');
    assert.deepEqual([f.channel, f.status, f.error.code], ['oppo', 'failed', 'quota']);

    assert.equal((await app.api('PUT', `/v1/apps/${app.appId}/settings`, { quotaFallback: 'self' })).status, 200);
    try {
      const { id: movedId, repeat } = await dropped();
      const moved = await eventually(async () => {
        const d = await fate(app.api, movedId, 'op-1');
        return d.channel === 'self' && d.status === 'sent' ? d : undefined;
      }, 30_000, 'the dropped delivery sent over the self channel');
      assert.equal(moved.attempts, 2, 'the vendor attempt and the self one');
      // A repeat of the callback finds nothing to change: the delivery is the self channel's now.
      assert.equal((await repeat()).status, 400);
      const m = await app.api('GET', `/v1/messages/${movedId}`);
      assert.deepEqual(m.body.byChannel, { self: { sent: 1 } });
    } finally {
      await app.api('PUT', `/v1/apps/${app.appId}/settings`, { quotaFallback: 'none' });
    }
  });

  test('a large Huawei audience goes out in requests as full as Huawei allows (1,000 tokens), not in half-full send jobs', async () => {
    const other = await newApp(t);
    assert.equal((await other.api('PUT', `/v1/apps/${other.appId}/credentials/huawei`, { appId: huawei.appId, clientSecret: 'hw-secret' })).status, 200);
    await sql`
      INSERT INTO devices (app_id, id, platform, brand, tags)
      SELECT ${other.appId}, 'big-' || lpad(i::text, 4, '0'), 'android', 'huawei', '{big}' FROM generate_series(1, 1200) i`.execute(t.relay.ctx.db);
    await sql`
      INSERT INTO device_tokens (app_id, device_id, channel, token)
      SELECT ${other.appId}, 'big-' || lpad(i::text, 4, '0'), 'huawei', 'hw-big-' || lpad(i::text, 4, '0') FROM generate_series(1, 1200) i`.execute(t.relay.ctx.db);
    const before = huawei.sends.length;
    const pushed = await other.api('POST', '/v1/push', { to: { tags: { any: ['big'] } }, notification: { title: 'everyone' } });
    const msg = await done(other.api, pushed.body.id);
    assert.equal(msg.counts.sent, 1200);
    const sizes = huawei.sends.slice(before).map((r) => r.tokens.length).sort((a, b) => b - a);
    assert.deepEqual(sizes, [1000, 200]);
  });

  test('options.channels pins FCM over the brand channel; without FCM credentials that is a clear failure', async () => {
    const pushed = await app.api('POST', '/v1/push', { to: { devices: ['hw-1'] }, data: { k: 'v' }, options: { channels: ['fcm'] } });
    await done(app.api, pushed.body.id);
    const f = await fate(app.api, pushed.body.id, 'hw-1');
    assert.equal(f.status, 'failed');
    assert.equal(f.error.code, 'NoChannel');
  });
});
