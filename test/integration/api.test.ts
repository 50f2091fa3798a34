import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { verifyDeviceToken } from '../../src/core/device-token.js';
import { client, eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';

const p8 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

describe('REST API against real PostgreSQL and Redis', () => {
  let t: TestRelay;
  before(async () => {
    t = await startTestRelay();
  });
  after(async () => {
    await t.stop();
    await t.iso.drop();
  });

  test('health, readiness, metrics, OpenAPI and docs', async () => {
    const anon = client(t.base);
    assert.equal((await anon('GET', '/healthz')).status, 200);
    const ready = await anon('GET', '/readyz');
    assert.equal(ready.status, 200);
    // Every role of this process is checked, besides the database and Redis.
    assert.deepEqual(ready.body.checks, { database: 'ok', redis: 'ok', draining: 'ok', workers: 'ok' });
    const metrics = await anon('GET', '/metrics');
    assert.match(metrics.body, /relay_queue_jobs\{queue="route",state="waiting"\}/);
    const doc = await anon('GET', '/openapi.json');
    assert.equal(doc.body.openapi, '3.1.0');
    for (const p of ['/v1/push', '/v1/messages/{id}', '/v1/messages/{id}/deliveries', '/v1/devices/{id}', '/v1/apps/{app}/credentials/{provider}']) {
      assert.ok(doc.body.paths[p], `openapi documents ${p}`);
    }
    const pushBody = doc.body.paths['/v1/push'].post.requestBody.content['application/json'].schema;
    assert.ok(pushBody.properties.to && pushBody.properties.options, 'push schema comes from zod');
    // Every channel's overrides are documented with their own fields.
    const overrides = pushBody.properties.overrides.properties;
    assert.deepEqual(Object.keys(overrides).sort(), ['apns', 'fcm', 'honor', 'huawei', 'meizu', 'oppo', 'self', 'sms', 'vivo', 'webpush', 'xiaomi']);
    assert.ok(overrides.huawei.properties.importance && overrides.apns.properties.topic && overrides.fcm.properties.android, 'per-channel fields');
    assert.equal(overrides.huawei.additionalProperties, false);
    const docs = await anon('GET', '/docs');
    assert.equal(docs.status, 200);
    assert.match(docs.body, /swagger-ui/);
    assert.equal((await anon('GET', '/docs/assets/swagger-ui-bundle.js')).status, 200);
  });

  test('authentication and scopes', async () => {
    const anon = client(t.base);
    const none = await anon('POST', '/v1/push', {});
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'unauthenticated');
    assert.equal((await client(t.base, 'rk_000000000000_' + 'x'.repeat(32))('GET', '/v1/devices/a')).status, 401);
    const op = client(t.base, t.adminToken);
    assert.equal((await op('POST', '/v1/push', { to: { all: true }, data: { a: 1 } })).status, 403, 'the operator token is not an app key');

    const { appId, api } = await newApp(t);
    const devicesOnly = await api('POST', `/v1/apps/${appId}/keys`, { scopes: ['devices'], name: 'sdk' });
    assert.equal(devicesOnly.status, 201);
    assert.match(devicesOnly.body.key, /^rk_[0-9a-f]{12}_/);
    const limited = client(t.base, devicesOnly.body.key);
    assert.equal((await limited('POST', '/v1/push', { to: { all: true }, data: { a: 1 } })).status, 403);
    assert.equal((await limited('PUT', '/v1/devices/d1', { platform: 'ios' })).status, 200);
    assert.equal((await limited('POST', `/v1/apps/${appId}/keys`, { scopes: ['push'] })).status, 403);

    const listed = await api('GET', `/v1/apps/${appId}/keys`);
    assert.equal(listed.status, 200);
    assert.ok(listed.body.items.length >= 2);
    assert.ok(!JSON.stringify(listed.body).includes(devicesOnly.body.key), 'keys are shown once');

    assert.equal((await api('DELETE', `/v1/apps/${appId}/keys/${devicesOnly.body.id}`)).status, 204);
    assert.equal((await limited('GET', '/v1/devices/d1')).status, 401, 'a revoked key stops working');
  });

  test('validation errors name the field path; bad JSON and unknown routes', async () => {
    const { api } = await newApp(t);
    const bad = await api('POST', '/v1/push', { to: { devices: ['ok', 7] }, notification: { title: 'x' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'validation_failed');
    assert.equal(bad.body.error.details[0].path, 'body.to.devices[1]');
    assert.match(bad.body.error.message, /^body\.to\.devices\[1\]: /);

    const two = await api('POST', '/v1/push', { to: { devices: ['a'], all: true }, data: { k: 'v' } });
    assert.equal(two.status, 400);
    assert.match(two.body.error.message, /exactly one of/);

    const ttl = await api('POST', '/v1/push', { to: { all: true }, data: { k: 'v' }, options: { ttl: -1, priority: 'urgent' } });
    assert.equal(ttl.status, 400);
    const paths = ttl.body.error.details.map((d: { path: string }) => d.path).sort();
    assert.deepEqual(paths, ['body.options.priority', 'body.options.ttl']);

    const empty = await api('POST', '/v1/push', { to: { all: true } });
    assert.equal(empty.status, 400);
    assert.equal(empty.body.error.details[0].path, 'body.notification');

    const json = await api('POST', '/v1/push', '{"to":', {});
    assert.equal(json.status, 400);
    assert.equal(json.body.error.code, 'invalid_json');

    const dev = await api('PUT', '/v1/devices/bad%2Fid', { platform: 'ios' });
    assert.equal(dev.status, 400);
    assert.equal(dev.body.error.details[0].path, 'params.id');
    const tok = await api('PUT', '/v1/devices/d2', { platform: 'ios', tokens: { apns: 'not-hex' } });
    assert.equal(tok.body.error.details[0].path, 'body.tokens.apns');

    // Each channel's overrides are checked when the push is accepted, by that channel's own schema.
    for (const [channel, overrides, path] of [
      ['huawei', { typo: 1 }, 'body.overrides.huawei.typo'],
      ['honor', { typo: 1 }, 'body.overrides.honor.typo'],
      ['xiaomi', { notifyType: 9 }, 'body.overrides.xiaomi.notifyType'],
      ['oppo', { notifyLevel: 3 }, 'body.overrides.oppo.notifyLevel'],
      ['vivo', { typo: 1 }, 'body.overrides.vivo.typo'],
      ['meizu', { typo: 1 }, 'body.overrides.meizu.typo'],
      ['webpush', { urgency: 'asap' }, 'body.overrides.webpush.urgency'],
      ['apns', { priority: 7 }, 'body.overrides.apns.priority'],
      ['apns', { nope: 1 }, 'body.overrides.apns.nope'],
      ['apns', { payload: { relay_id: 'x' } }, 'body.overrides.apns.payload'],
      ['fcm', { token: 't' }, 'body.overrides.fcm.token'],
      ['nochannel', {}, 'body.overrides.nochannel'],
    ] as const) {
      const r = await api('POST', '/v1/push', { to: { all: true }, data: { k: 'v' }, overrides: { [channel]: overrides } });
      assert.equal(r.status, 400, `overrides.${channel} ${JSON.stringify(overrides)}`);
      assert.deepEqual(r.body.error.details.map((d: { path: string }) => d.path), [path]);
    }
    const good = await api('POST', '/v1/push', {
      to: { all: true },
      data: { k: 'v' },
      overrides: { huawei: { importance: 'LOW' }, apns: { priority: 5 }, fcm: { android: { priority: 'normal' } }, self: { anything: { goes: 1 } } },
    });
    assert.equal(good.status, 202, JSON.stringify(good.body));

    const nothing = await api('GET', '/v1/nothing-here');
    assert.equal(nothing.status, 404);
    assert.deepEqual(Object.keys(nothing.body.error), ['code', 'message', 'details'], 'every error has the same three fields');
    assert.equal(nothing.body.error.details, null);

    // An id Relay never issued is not found, whatever it looks like.
    assert.equal((await api('GET', '/v1/messages/m-1')).status, 404);
    assert.equal((await api('GET', '/v1/messages/m-1/deliveries')).status, 404);

    // A body that matches no shape of a union is reported at the field of the closest shape.
    const one = await api('POST', '/v1/events', { messageId: 'msg_a', event: 'clicked', deviceId: 'd-1' });
    assert.equal(one.status, 400);
    assert.equal(one.body.error.details[0].path, 'body.event');
    const many = await api('POST', '/v1/events', { events: [{ messageId: 'msg_a', event: 'opened', deviceId: 'd-1' }, { messageId: 'msg_a', event: 'clicked', deviceId: 'd-1' }] });
    assert.equal(many.body.error.details[0].path, 'body.events[1].event');

    // A body sent as a form (curl -d without a content type) is named for what it is.
    const form = await api('POST', '/v1/push', 'to=all', { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(form.status, 415);
    assert.equal(form.body.error.code, 'unsupported_media_type');
  });

  test('devices: register idempotently, masked tokens, self-channel info', async () => {
    const { appId, api } = await newApp(t);
    const body = {
      platform: 'android', brand: 'Xiaomi', tokens: { xiaomi: 'xm-token-0001a1b2', fcm: 'fcm-token-9999c3d4' },
      userId: 'u-9', tags: ['vip', 'vip', 'cn'], locale: 'zh-CN', timezone: 'Asia/Shanghai',
    };
    const first = await api('PUT', '/v1/devices/d-1', body);
    assert.equal(first.status, 200);
    const again = await api('PUT', '/v1/devices/d-1', body);
    assert.equal(again.status, 200);
    const d = again.body;
    assert.equal(d.brand, 'xiaomi');
    assert.deepEqual(d.tags, ['vip', 'cn']);
    assert.deepEqual(
      d.tokens.map((x: { channel: string; token: string; state: string }) => [x.channel, x.token, x.state]),
      [['fcm', '…c3d4', 'active'], ['xiaomi', '…a1b2', 'active']],
    );
    assert.ok(!JSON.stringify(d).includes('xm-token-0001'), 'raw tokens never leave the API');
    assert.equal(d.self.clientId, 'd-1');
    assert.equal(d.self.topic, 'devices/d-1');
    // GATEWAY_MQTT_PORT=0 in tests: devices are told the port the in-process gateway bound.
    assert.equal(d.self.mqtt, `mqtt://127.0.0.1:${t.relay.mqttPort}`);
    assert.equal(verifyDeviceToken(t.relay.ctx.secrets.deviceTokenSecret, 'd-1', d.self.password), appId);

    const removed = await api('PUT', '/v1/devices/d-1', { platform: 'android', tokens: { fcm: null } });
    assert.deepEqual(removed.body.tokens.map((x: { channel: string }) => x.channel), ['xiaomi']);
    assert.equal(removed.body.userId, 'u-9', 'fields left out keep their values');

    assert.equal((await api('DELETE', '/v1/devices/d-1')).status, 204);
    assert.equal((await api('GET', '/v1/devices/d-1')).status, 404);
  });

  test('credentials are validated, stored encrypted and shown redacted', async () => {
    const { appId, api } = await newApp(t);
    const bad = await api('PUT', `/v1/apps/${appId}/credentials/apns`, { teamId: 'TEAM123456', keyId: 'KEY1234567', key: '-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----', bundleId: 'com.example.app', production: false });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.details[0].path, /^body\.key/);
    const missing = await api('PUT', `/v1/apps/${appId}/credentials/apns`, { keyId: 'KEY1234567' });
    assert.equal(missing.status, 400);
    const unknown = await api('PUT', `/v1/apps/${appId}/credentials/nokia`, {});
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error.details[0].path, 'params.provider');

    const ok = await api('PUT', `/v1/apps/${appId}/credentials/apns`, { teamId: 'TEAM123456', keyId: 'KEY1234567', key: p8, bundleId: 'com.example.app', production: false });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const list = await api('GET', `/v1/apps/${appId}/credentials`);
    assert.equal(list.body.items.length, 1);
    assert.equal(list.body.items[0].provider, 'apns');
    assert.ok(!JSON.stringify(list.body).includes('PRIVATE KEY'), 'key material is never returned');
    const stored = await t.relay.ctx.db.selectFrom('credentials').select('secret').where('app_id', '=', appId).executeTakeFirstOrThrow();
    assert.ok(stored.secret.startsWith('v1.') && !stored.secret.includes('PRIVATE'), 'encrypted at rest');
  });

  test('app settings: the Android routing strategy', async () => {
    const { appId, api } = await newApp(t);
    const ok = await api('PUT', `/v1/apps/${appId}/settings`, { androidStrategy: 'vendor-first' });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, { androidStrategy: 'vendor-first' });
    const bad = await api('PUT', `/v1/apps/${appId}/settings`, { androidStrategy: 'random' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.details[0].path, 'body.androidStrategy');
  });

  test('app isolation: one app never sees or reaches another app', async () => {
    const a = await newApp(t);
    const b = await newApp(t);
    await a.api('PUT', '/v1/devices/shared-id', { platform: 'android' });
    const pushed = await a.api('POST', '/v1/push', { to: { devices: ['shared-id'] }, data: { k: 'v' } });
    assert.equal(pushed.status, 202);
    assert.equal(pushed.body.recipients, 1);

    assert.equal((await b.api('GET', '/v1/devices/shared-id')).status, 404);
    assert.equal((await b.api('GET', `/v1/messages/${pushed.body.id}`)).status, 404);
    assert.equal((await b.api('GET', `/v1/messages/${pushed.body.id}/deliveries`)).status, 404);
    assert.equal((await b.api('DELETE', `/v1/messages/${pushed.body.id}`)).status, 404);
    assert.equal((await b.api('GET', `/v1/apps/${a.appId}/credentials`)).status, 404);
    assert.equal((await b.api('POST', `/v1/apps/${a.appId}/keys`, { scopes: ['push'] })).status, 404);
    const fromB = await b.api('POST', '/v1/push', { to: { devices: ['shared-id'] }, data: { k: 'v' } });
    assert.equal(fromB.body.recipients, 0, "B's push cannot address A's device");
  });

  test('a device without a usable token ends failed, and the message is done', async () => {
    const { api } = await newApp(t);
    await api('PUT', '/v1/devices/lonely', { platform: 'ios' });
    const pushed = await api('POST', '/v1/push', { to: { devices: ['lonely'] }, notification: { title: 'hi' } });
    const msg = await eventually(async () => {
      const m = await api('GET', `/v1/messages/${pushed.body.id}`);
      return m.body.state === 'done' ? m.body : undefined;
    });
    assert.equal(msg.counts.failed, 1);
    const d = await api('GET', `/v1/messages/${pushed.body.id}/deliveries?status=failed`);
    assert.equal(d.body.items[0].error.code, 'NoActiveToken');
    assert.equal(d.body.items[0].deviceId, 'lonely');
  });

  test('Idempotency-Key returns the first message; another body with it is a conflict', async () => {
    const { api } = await newApp(t);
    const body = { to: { all: true }, data: { n: '1' }, options: { sendAt: new Date(Date.now() + 3_600_000).toISOString() } };
    const first = await api('POST', '/v1/push', body, { 'idempotency-key': 'order-42' });
    const second = await api('POST', '/v1/push', body, { 'idempotency-key': 'order-42' });
    assert.equal(first.status, 202);
    assert.equal(second.status, 202);
    assert.equal(second.body.id, first.body.id);
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    const other = await api('POST', '/v1/push', { ...body, data: { n: '2' } }, { 'idempotency-key': 'order-42' });
    assert.equal(other.status, 409);
    const fresh = await api('POST', '/v1/push', body, { 'idempotency-key': 'order-43' });
    assert.notEqual(fresh.body.id, first.body.id);
  });

  test('a scheduled message can be cancelled before it is routed', async () => {
    const { api } = await newApp(t);
    await api('PUT', '/v1/devices/later', { platform: 'ios' });
    const pushed = await api('POST', '/v1/push', { to: { devices: ['later'] }, data: { k: 'v' }, options: { sendAt: new Date(Date.now() + 1500).toISOString() } });
    assert.equal((await api('GET', `/v1/messages/${pushed.body.id}`)).body.state, 'scheduled');
    const del = await api('DELETE', `/v1/messages/${pushed.body.id}`);
    assert.equal(del.status, 200);
    assert.equal(del.body.state, 'cancelled');
    await new Promise((r) => setTimeout(r, 2500));
    const m = await api('GET', `/v1/messages/${pushed.body.id}`);
    assert.equal(m.body.state, 'cancelled');
    assert.equal(m.body.counts.failed + m.body.counts.queued + m.body.counts.sent, 0, 'nothing was routed');
  });

  test('cancelling a message whose every delivery has ended leaves it done', async () => {
    const { api } = await newApp(t);
    await api('PUT', '/v1/devices/finished', { platform: 'ios' });
    const pushed = await api('POST', '/v1/push', { to: { devices: ['finished'] }, notification: { title: 'hi' } });
    await eventually(async () => ((await api('GET', `/v1/messages/${pushed.body.id}`)).body.state === 'done' ? true : undefined));
    const del = await api('DELETE', `/v1/messages/${pushed.body.id}`);
    assert.equal(del.status, 200);
    assert.deepEqual({ state: del.body.state, cancelled: del.body.cancelled }, { state: 'done', cancelled: 0 });
    assert.equal((await api('GET', `/v1/messages/${pushed.body.id}`)).body.state, 'done');
    assert.equal((await api('DELETE', '/v1/messages/msg_unknown')).status, 404);
  });
});
