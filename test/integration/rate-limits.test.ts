import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { client, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';

let t: TestRelay;
before(async () => {
  // Windows of a minute: every request below falls in one window, however slow the machine.
  t = await startTestRelay({ ROLES: 'api', RATE_LIMIT_API_KEY: '5/1m', RATE_LIMIT_APP: '8/1m', RATE_LIMIT_DEVICE: '3/1m' });
});
after(async () => {
  await t?.stop();
  await t?.iso.drop();
});

test('per API key, then per app: 429 with Retry-After and RateLimit headers, from the error catalog; other apps and the operator unaffected', async () => {
  const a = await newApp(t);
  const first: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await a.api('GET', '/v1/messages/msg_none');
    assert.equal(r.status, 404);
    assert.equal(r.headers.get('ratelimit-limit'), '5');
    first.push(Number(r.headers.get('ratelimit-remaining')));
    assert.match(r.headers.get('ratelimit-policy') ?? '', /^5;w=60;comment="key", 8;w=60;comment="app"$/);
  }
  assert.deepEqual(first, [4, 3, 2, 1, 0]);
  const limited = await a.api('GET', '/v1/messages/msg_none');
  assert.equal(limited.status, 429);
  assert.equal(limited.body.error.code, 'rate_limited');
  assert.equal(limited.body.error.details.scope, 'key');
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  assert.equal(limited.headers.get('ratelimit-remaining'), '0');
  assert.equal(limited.headers.get('ratelimit-reset'), String(retryAfter));

  // A second key of the same app has its own budget, but shares the app's (8, of which 6 are gone).
  const op = client(t.base, t.adminToken);
  const key2 = await op('POST', `/v1/apps/${a.appId}/keys`, { scopes: ['push'] });
  assert.equal(key2.status, 201, 'the operator token is not limited');
  const api2 = client(t.base, key2.body.key);
  assert.equal((await api2('GET', '/v1/messages/msg_none')).status, 404);
  assert.equal((await api2('GET', '/v1/messages/msg_none')).status, 404);
  const appLimited = await api2('GET', '/v1/messages/msg_none');
  assert.equal(appLimited.status, 429);
  assert.equal(appLimited.body.error.details.scope, 'app');

  // Another app is untouched.
  const b = await newApp(t);
  assert.equal((await b.api('GET', '/v1/messages/msg_none')).status, 404);
});

test('the device SDK endpoints are limited per device; a wrong password spends nothing', async () => {
  const app = await newApp(t);
  const op = client(t.base, t.adminToken);
  // The app's own key budget is small: register the devices through a second key.
  const k = await op('POST', `/v1/apps/${app.appId}/keys`, { scopes: ['devices'] });
  const devices = client(t.base, k.body.key);
  const d1 = await devices('PUT', '/v1/devices/d-1', { platform: 'android', brand: 'xiaomi' });
  const d2 = await devices('PUT', '/v1/devices/d-2', { platform: 'android', brand: 'xiaomi' });
  assert.equal(d1.status, 200);
  const as = (id: string, password: string) => client(t.base)('GET', `/v1/devices/${id}/inbox`, undefined, { authorization: `Device ${id}:${password}` });

  for (let i = 0; i < 5; i++) assert.equal((await as('d-1', 'wrong')).status, 401);
  for (let i = 0; i < 3; i++) {
    const r = await as('d-1', d1.body.self.password);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('ratelimit-remaining'), String(2 - i));
  }
  const limited = await as('d-1', d1.body.self.password);
  assert.equal(limited.status, 429);
  assert.equal(limited.body.error.details.scope, 'device');
  assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  const events = await client(t.base)('POST', '/v1/events', { messageId: 'msg_x', event: 'opened' }, { authorization: `Device d-1:${d1.body.self.password}` });
  assert.equal(events.status, 429, 'events share the device budget');
  assert.equal((await as('d-2', d2.body.self.password)).status, 200, 'another device has its own budget');
});
