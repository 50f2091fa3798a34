import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mockToken } from '../mocks/apns-server.js';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

type Api = Awaited<ReturnType<typeof newApp>>['api'];

async function done(api: Api, id: string) {
  return eventually(async () => {
    const m = await api('GET', `/v1/messages/${id}`);
    return m.body.state === 'done' ? m.body : undefined;
  }, 60_000, `message ${id} done`);
}

async function fates(api: Api, id: string): Promise<Record<string, { status: string; attempts: number; error: { code: string } | null; channel: string }>> {
  const out: Record<string, { status: string; attempts: number; error: { code: string } | null; channel: string }> = {};
  let cursor = '';
  for (;;) {
    const page = await api('GET', `/v1/messages/${id}/deliveries?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
    for (const d of page.body.items) out[d.deviceId ?? 'raw'] = d;
    if (!page.body.next) return out;
    cursor = page.body.next;
  }
}

describe('pipeline: REST → BullMQ → APNs (node-apn) and FCM (firebase-admin) mocks', () => {
  let t: TestRelay;
  let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
  let app: Awaited<ReturnType<typeof newApp>>;

  const ios = {
    ok: mockToken('ok', 1),
    dead: mockToken('unregistered', 2),
    bad: mockToken('badDeviceToken', 3),
    flaky: mockToken('failFirst', 4, 2),
  };
  const android = { ok: 'fcm-ok-0001', gone: 'fcm-gone-0002', busy: 'fcm-busy-0003', mismatch: 'fcm-mismatch-0004' };

  before(async () => {
    mocks = await startProviderMocks();
    t = await startTestRelay({ ...mocks.env, RETRY_BASE_DELAY: '100ms', RETRY_MAX_DELAY: '2s' });
    app = await newApp(t);
    for (const provider of ['apns', 'fcm'] as const) {
      const r = await app.api('PUT', `/v1/apps/${app.appId}/credentials/${provider}`, mocks.credentials[provider]);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    mocks.fcm.setBehavior(android.gone, { error: 'UNREGISTERED' });
    mocks.fcm.setBehavior(android.busy, { error: 'QUOTA_EXCEEDED', retryAfter: 1, failTimes: 1 });
    mocks.fcm.setBehavior(android.mismatch, { error: 'SENDER_ID_MISMATCH' });
    for (const [k, token] of Object.entries(ios)) await app.api('PUT', `/v1/devices/ios-${k}`, { platform: 'ios', tokens: { apns: token }, tags: ['all'] });
    for (const [k, token] of Object.entries(android)) await app.api('PUT', `/v1/devices/and-${k}`, { platform: 'android', brand: 'samsung', tokens: { fcm: token }, tags: ['all'] });
  });
  after(async () => {
    await t?.stop();
    await t?.iso.drop();
    await mocks?.close();
  });

  test('a mixed send ends with the right state for every token', async () => {
    const pushed = await app.api('POST', '/v1/push', {
      to: { tags: { all: ['all'] } },
      notification: { title: 'Order shipped', body: 'It is on its way' },
      data: { orderId: 42 },
      options: { collapseKey: 'order-42', ttl: 600 },
    });
    assert.equal(pushed.status, 202);
    assert.equal(pushed.body.recipients, 8);
    const msg = await done(app.api, pushed.body.id);
    assert.deepEqual(
      { sent: msg.counts.sent, invalid: msg.counts.invalid, failed: msg.counts.failed, queued: msg.counts.queued },
      { sent: 4, invalid: 3, failed: 1, queued: 0 },
    );
    assert.deepEqual(msg.byChannel.apns, { sent: 2, invalid: 2 });
    assert.deepEqual(msg.byChannel.fcm, { sent: 2, invalid: 1, failed: 1 });

    const f = await fates(app.api, pushed.body.id);
    assert.equal(f['ios-ok']!.status, 'sent');
    assert.equal(f['ios-dead']!.status, 'invalid');
    assert.equal(f['ios-dead']!.error!.code, 'Unregistered');
    assert.equal(f['ios-bad']!.error!.code, 'BadDeviceToken');
    assert.equal(f['ios-flaky']!.status, 'sent');
    assert.equal(f['ios-flaky']!.attempts, 3, 'two 503s retried, third attempt sent');
    assert.equal(f['and-ok']!.status, 'sent');
    assert.equal(f['and-gone']!.status, 'invalid');
    assert.equal(f['and-busy']!.status, 'sent');
    assert.equal(f['and-busy']!.attempts, 2);
    assert.equal(f['and-mismatch']!.status, 'failed');
    assert.equal(f['and-mismatch']!.error!.code, 'SENDER_ID_MISMATCH');

    // The wire: what the providers received carries the message id and the options.
    const apnsOk = mocks.apns.requests.find((r) => r.token === ios.ok)!;
    assert.equal(apnsOk.headers['apns-topic'], 'com.example.relay');
    assert.equal(apnsOk.headers['apns-collapse-id'], 'order-42');
    assert.equal((apnsOk.payload as Record<string, unknown>).relay_id, pushed.body.id);
    const fcmOk = mocks.fcm.requests.find((r) => r.token === android.ok)!;
    const fm = (fcmOk.body as { message: { data: Record<string, string>; android: { ttl: string } } }).message;
    assert.equal(fm.data.relay_id, pushed.body.id);
    assert.equal(fm.data.orderId, '42');
    assert.match(fm.android.ttl, /^\d+(\.\d+)?s$/);

    // Retry-After honoured: the second FCM attempt for the throttled token came at least 1 s later.
    const busy = mocks.fcm.requests.filter((r) => r.token === android.busy).map((r) => r.at);
    assert.equal(busy.length, 2);
    assert.ok(busy[1]! - busy[0]! >= 950, `retry waited ${busy[1]! - busy[0]!} ms for Retry-After: 1`);
  });

  test('quarantined tokens are shown, skipped next time, and restorable by an operator', async () => {
    const dev = await app.api('GET', '/v1/devices/ios-dead');
    assert.equal(dev.body.tokens[0].state, 'invalid');
    assert.equal(dev.body.tokens[0].reason, 'Unregistered');
    const listed = await app.api('GET', '/v1/tokens?state=invalid');
    assert.deepEqual(listed.body.items.map((x: { deviceId: string }) => x.deviceId).sort(), ['and-gone', 'ios-bad', 'ios-dead']);
    const evidence = listed.body.items.find((x: { deviceId: string }) => x.deviceId === 'ios-dead').evidence;
    assert.equal(evidence.evidence.status, 410, 'the provider evidence is kept');

    const apnsBefore = mocks.apns.requests.filter((r) => r.token === ios.dead).length;
    const fcmBefore = mocks.fcm.requests.filter((r) => r.token === android.gone).length;
    const again = await app.api('POST', '/v1/push', { to: { devices: ['ios-dead', 'and-gone', 'ios-ok'] }, notification: { title: 'again' } });
    const msg = await done(app.api, again.body.id);
    assert.equal(msg.counts.sent, 1);
    assert.equal(msg.counts.failed, 2);
    const f = await fates(app.api, again.body.id);
    assert.equal(f['ios-dead']!.error!.code, 'NoActiveToken');
    assert.equal(mocks.apns.requests.filter((r) => r.token === ios.dead).length, apnsBefore, 'APNs never saw the dead token again');
    assert.equal(mocks.fcm.requests.filter((r) => r.token === android.gone).length, fcmBefore, 'FCM never saw the dead token again');

    const restored = await app.api('POST', '/v1/devices/ios-bad/tokens/apns/restore');
    assert.equal(restored.status, 200);
    assert.equal(restored.body.state, 'active');
    // A new token value re-activates a device's channel by itself.
    const renewed = await app.api('PUT', '/v1/devices/ios-dead', { platform: 'ios', tokens: { apns: mockToken('ok', 99) } });
    assert.equal(renewed.body.tokens[0].state, 'active');
  });

  test('a raw token target, and a quarantined raw token is skipped', async () => {
    const ok = await app.api('POST', '/v1/push', { to: { token: { channel: 'apns', value: mockToken('ok', 7) } }, notification: { body: 'raw' } });
    assert.equal(ok.body.recipients, 1);
    const m1 = await done(app.api, ok.body.id);
    assert.equal(m1.counts.sent, 1);
    const dead = await app.api('POST', '/v1/push', { to: { token: { channel: 'fcm', value: android.gone } }, notification: { body: 'raw' } });
    const m2 = await done(app.api, dead.body.id);
    assert.equal(m2.counts.failed, 1);
    assert.equal((await fates(app.api, dead.body.id)).raw!.error!.code, 'TokenQuarantined');
  });

  test('per-request retry policy bounds attempts; TTL bounds retries', async () => {
    // 503, not 500: node-apn tears its session down after a 500 and may stall until its watchdog.
    const always500 = mockToken('serviceUnavailable', 5);
    await app.api('PUT', '/v1/devices/ios-500', { platform: 'ios', tokens: { apns: always500 } });
    const capped = await app.api('POST', '/v1/push', {
      to: { devices: ['ios-500'] },
      notification: { title: 'x' },
      options: { retry: { maxAttempts: 3, backoff: { type: 'fixed', delayMs: 50 } } },
    });
    await done(app.api, capped.body.id);
    const f = (await fates(app.api, capped.body.id))['ios-500']!;
    assert.equal(f.status, 'failed');
    assert.equal(f.attempts, 3);
    assert.equal(mocks.apns.requests.filter((r) => r.token === always500).length, 3);

    const short = await app.api('POST', '/v1/push', {
      to: { devices: ['ios-500'] },
      notification: { title: 'x' },
      options: { ttl: 1, retry: { backoff: { type: 'fixed', delayMs: 2000 } } },
    });
    await done(app.api, short.body.id);
    const g = (await fates(app.api, short.body.id))['ios-500']!;
    assert.equal(g.status, 'expired');
    assert.equal(g.attempts, 1);
  });

  test('ttl 0 is now or never: one attempt, sent with the providers\' "do not store"', async () => {
    const pushed = await app.api('POST', '/v1/push', {
      to: { devices: ['ios-ok', 'and-ok'] },
      notification: { title: 'Incoming call' },
      options: { ttl: 0 },
    });
    assert.equal(pushed.status, 202);
    const msg = await done(app.api, pushed.body.id);
    assert.deepEqual({ sent: msg.counts.sent, expired: msg.counts.expired ?? 0 }, { sent: 2, expired: 0 });
    const apns = mocks.apns.requests.filter((r) => r.token === ios.ok).at(-1)!;
    assert.equal((apns.payload as Record<string, unknown>).relay_id, pushed.body.id);
    assert.equal(apns.headers['apns-expiration'], '0');
    const fcm = mocks.fcm.requests.filter((r) => r.token === android.ok).at(-1)!;
    const fm = (fcm.body as { message: { data: Record<string, string>; android: { ttl: string } } }).message;
    assert.equal(fm.data.relay_id, pushed.body.id);
    assert.equal(fm.android.ttl, '0s');
  });

  test('cancel: pending deliveries end cancelled, sent ones stay sent', async () => {
    const slow = mockToken('failFirst', 6, 15);
    await app.api('PUT', '/v1/devices/ios-slow', { platform: 'ios', tokens: { apns: slow } });
    const pushed = await app.api('POST', '/v1/push', {
      to: { devices: ['ios-slow', 'ios-ok'] },
      notification: { title: 'x' },
      options: { retry: { backoff: { type: 'fixed', delayMs: 1000 } } },
    });
    await eventually(async () => ((await fates(app.api, pushed.body.id))['ios-ok']?.status === 'sent' ? true : undefined));
    const del = await app.api('DELETE', `/v1/messages/${pushed.body.id}`);
    assert.equal(del.body.cancelled, 1);
    const m = await app.api('GET', `/v1/messages/${pushed.body.id}`);
    assert.equal(m.body.state, 'cancelled');
    assert.equal(m.body.counts.cancelled, 1);
    assert.equal(m.body.counts.sent, 1);
    await new Promise((r) => setTimeout(r, 1500));
    const f = await fates(app.api, pushed.body.id);
    assert.equal(f['ios-slow']!.status, 'cancelled', 'a retry after the cancel does not resurrect it');
  });
});
