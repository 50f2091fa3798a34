import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { startOppoMock, type OppoMock } from '../mocks/vendors/oppo.js';
import { startVivoMock, type VivoMock } from '../mocks/vendors/vivo.js';
import { startXiaomiMock, type XiaomiMock } from '../mocks/vendors/xiaomi.js';

type Api = Awaited<ReturnType<typeof newApp>>['api'];

/** The next 00:00 in China (UTC+8, no daylight saving), when vendors' days start. */
function nextChinaMidnight(now = Date.now()): number {
  const day = 86_400_000;
  const offset = 8 * 3_600_000;
  return Math.floor((now + offset) / day + 1) * day - offset;
}

async function done(api: Api, id: string) {
  return eventually(async () => {
    const m = await api('GET', `/v1/messages/${id}`);
    return m.body.state === 'done' ? m.body : undefined;
  }, 30_000, `message ${id} done`);
}

async function fates(api: Api, id: string): Promise<Record<string, { channel: string; status: string; error: { code: string; message: string } | null }>> {
  const page = await api('GET', `/v1/messages/${id}/deliveries?limit=100`);
  return Object.fromEntries(page.body.items.map((d: { deviceId: string }) => [d.deviceId, d]));
}

describe('quota days: the app’s daily vendor total ends the day for that vendor, nothing waits for midnight', () => {
  let t: TestRelay;
  let vivo: VivoMock;
  let oppo: OppoMock;
  let xiaomi: XiaomiMock;
  let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
  let app: Awaited<ReturnType<typeof newApp>>;
  /** Calls that would send (auth is not one). */
  const vivoSends = () => vivo.requests.filter((r) => r.path !== '/message/auth').length;
  const fcmSendsTo = (token: string) => mocks.fcm.requests.filter((r) => r.token === token).length;
  const push = async (devices: string[]) => {
    const r = await app.api('POST', '/v1/push', { to: { devices }, notification: { title: 'Order 42', body: 'shipped' }, options: { category: 'order', ttl: 3600 } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    await done(app.api, r.body.id);
    return fates(app.api, r.body.id);
  };
  const settings = async (quotaFallback: 'self' | 'fcm' | 'none') => {
    const r = await app.api('PUT', `/v1/apps/${app.appId}/settings`, { quotaFallback });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };

  before(async () => {
    [vivo, oppo, xiaomi, mocks] = await Promise.all([startVivoMock(), startOppoMock(), startXiaomiMock(), startProviderMocks()]);
    t = await startTestRelay({ ...mocks.env, VIVO_ENDPOINT: vivo.url, OPPO_ENDPOINT: oppo.url, XIAOMI_ENDPOINT: xiaomi.url });
    app = await newApp(t);
    for (const [provider, body] of Object.entries({
      vivo: { appId: vivo.appId, appKey: vivo.appKey, appSecret: vivo.appSecret },
      oppo: { appKey: oppo.appKey, masterSecret: oppo.masterSecret },
      xiaomi: { appSecret: xiaomi.appSecret, packageName: xiaomi.packageName },
      fcm: mocks.credentials.fcm,
    })) {
      const r = await app.api('PUT', `/v1/apps/${app.appId}/credentials/${provider}`, body);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    assert.equal((await app.api('PUT', '/v1/devices/v-1', { platform: 'android', brand: 'vivo', tokens: { vivo: 'reg-v1', fcm: 'fcm-v1' } })).status, 200);
    assert.equal((await app.api('PUT', '/v1/devices/v-2', { platform: 'android', brand: 'vivo', tokens: { vivo: 'reg-v2' } })).status, 200);
  });
  after(async () => {
    t?.relay.ctx.clock.set(Date.now());
    await t?.stop();
    await t?.iso.drop();
    await Promise.all([vivo?.close(), oppo?.close(), xiaomi?.close(), mocks?.close()]);
  });

  test('vivo 10070 fails the delivery `quota` at once, and vivo is not called again that day', async () => {
    vivo.setBehavior({ failFirst: { n: 1, answer: { result: 10070, desc: '超过当日推送总量' } } });
    const first = await push(['v-1']);
    assert.equal(first['v-1']!.status, 'failed');
    assert.equal(first['v-1']!.channel, 'vivo');
    assert.equal(first['v-1']!.error!.code, 'quota');
    assert.equal(vivoSends(), 1, 'one request, refused');

    // Later pushes that day fail `quota` without a request to vivo.
    const later = await push(['v-1', 'v-2']);
    for (const d of ['v-1', 'v-2']) {
      assert.equal(later[d]!.status, 'failed', d);
      assert.equal(later[d]!.error!.code, 'quota', d);
      assert.match(later[d]!.error!.message, /daily vivo total is used up until/);
    }
    assert.equal(vivoSends(), 1, 'vivo was not called again');
    assert.equal(fcmSendsTo('fcm-v1'), 0, 'no fallback without quotaFallback');
    // They are dead letters, to replay another day.
    const dead = await app.api('GET', '/v1/deliveries?code=quota&channel=vivo');
    assert.equal(dead.body.items.length, 3);
  });

  test('quotaFallback fcm sends to the device’s FCM token; a device without one fails `quota`', async () => {
    await settings('fcm');
    const f = await push(['v-1', 'v-2']);
    assert.equal(f['v-1']!.channel, 'fcm');
    assert.equal(f['v-1']!.status, 'sent');
    assert.equal(fcmSendsTo('fcm-v1'), 1, 'FCM got it once');
    assert.equal(f['v-2']!.status, 'failed');
    assert.equal(f['v-2']!.error!.code, 'quota');
    assert.equal(vivoSends(), 1, 'vivo still skipped');
  });

  test('quotaFallback self hands the delivery to the self channel', async () => {
    await settings('self');
    const f = await push(['v-2']);
    assert.equal(f['v-2']!.channel, 'self');
    assert.notEqual(f['v-2']!.status, 'failed');
    assert.equal(vivoSends(), 1);
  });

  test('a receipt that reports the device’s daily cap sends the delivery over FCM with quotaFallback fcm', async () => {
    await settings('fcm');
    assert.equal((await app.api('PUT', '/v1/devices/o-1', { platform: 'android', brand: 'oppo', tokens: { oppo: 'op-regid-0001', fcm: 'fcm-o1' } })).status, 200);
    const p = await app.api('POST', '/v1/push', { to: { devices: ['o-1'] }, notification: { title: 'Order 43' }, options: { category: 'order' } });
    await done(app.api, p.body.id);
    const sent = (await fates(app.api, p.body.id))['o-1'] as unknown as { status: string; providerId: string };
    assert.equal(sent.status, 'sent');
    const creds = await app.api('GET', `/v1/apps/${app.appId}/credentials`);
    const url = new URL(creds.body.items.find((c: { provider: string }) => c.provider === 'oppo').receiptUrl);
    const receipt = oppo.receiptFor([{ messageId: sent.providerId, registrationIds: ['op-regid-0001'], eventType: 'user_daily_limit' }]);
    const posted = await fetch(`${t.base}${url.pathname}${url.search}`, { method: 'POST', headers: { 'content-type': receipt.contentType }, body: receipt.rawBody });
    assert.equal(posted.status, 200);
    const moved = await eventually(async () => {
      const d = (await fates(app.api, p.body.id))['o-1']!;
      return d.channel === 'fcm' && d.status === 'sent' ? d : undefined;
    }, 30_000, 'the dropped delivery sent over FCM');
    assert.ok(moved);
    assert.equal(fcmSendsTo('fcm-o1'), 1);
  });

  test('Xiaomi 200001 (the app’s daily total) fails the delivery `quota` at once, and Xiaomi is not called again that day', async () => {
    await settings('none');
    for (const id of ['x-1', 'x-2']) assert.equal((await app.api('PUT', `/v1/devices/${id}`, { platform: 'android', brand: 'xiaomi', tokens: { xiaomi: `reg-${id}` } })).status, 200);
    xiaomi.setDailyTotal(0);
    const sends = () => xiaomi.requests.filter((r) => r.path.endsWith('/message/regid')).length;
    const first = await push(['x-1']);
    assert.equal(first['x-1']!.channel, 'xiaomi');
    assert.equal(first['x-1']!.status, 'failed');
    assert.equal(first['x-1']!.error!.code, 'quota');
    assert.equal(sends(), 1, 'one request, refused');
    const later = await push(['x-1', 'x-2']);
    for (const d of ['x-1', 'x-2']) {
      assert.equal(later[d]!.status, 'failed', d);
      assert.equal(later[d]!.error!.code, 'quota', d);
    }
    assert.equal(sends(), 1, 'Xiaomi was not called again');
    xiaomi.setDailyTotal(null);
  });

  test('after vivo’s day resets (00:00 China time) vivo is called again', async () => {
    await settings('none');
    // The clock moves past the next China midnight instead of the test waiting for it.
    t.relay.ctx.clock.set(nextChinaMidnight() + 60_000);
    const f = await push(['v-1']);
    assert.equal(f['v-1']!.channel, 'vivo');
    assert.equal(f['v-1']!.status, 'sent');
    assert.equal(vivoSends(), 2, 'one new request');
  });
});
