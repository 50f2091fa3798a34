import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { client, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';

describe('what the dashboard reads: /v1/me, /v1/queues, X-Relay-App, /dashboard', () => {
  let t: TestRelay;
  before(async () => {
    t = await startTestRelay({ ROLES: 'api' });
  });
  after(async () => {
    await t?.stop();
    await t?.iso.drop();
  });

  test('/v1/me names the caller', async () => {
    const a = await newApp(t);
    assert.deepEqual((await client(t.base, t.adminToken)('GET', '/v1/me')).body, { kind: 'operator' });
    const me = (await a.api('GET', '/v1/me')).body;
    assert.equal(me.kind, 'key');
    assert.equal(me.appId, a.appId);
    assert.deepEqual([...me.scopes].sort(), ['admin', 'campaigns', 'devices', 'push', 'stats']);
    assert.equal((await client(t.base)('GET', '/v1/me')).status, 401);
  });

  test('the operator acts on an app only when it names one that exists; a key cannot name another app', async () => {
    const a = await newApp(t);
    const b = await newApp(t);
    const op = client(t.base, t.adminToken);
    assert.equal((await a.api('PUT', '/v1/devices/d-1', { platform: 'ios', tokens: { apns: 'a'.repeat(64) } })).status, 200);
    assert.equal((await op('GET', '/v1/devices/d-1')).status, 403);
    assert.equal((await op('GET', '/v1/devices/d-1', undefined, { 'x-relay-app': a.appId })).status, 200);
    assert.equal((await op('GET', '/v1/devices/d-1', undefined, { 'x-relay-app': b.appId })).status, 404);
    const none = await op('GET', '/v1/devices/d-1', undefined, { 'x-relay-app': 'no_such_app' });
    assert.equal(none.status, 404);
    assert.match(none.body.error.message, /X-Relay-App/);
    // An app key's own app wins: the header is the operator's alone.
    assert.equal((await b.api('GET', '/v1/devices/d-1', undefined, { 'x-relay-app': a.appId })).status, 404);
  });

  test('/v1/queues: depths per queue for a key with the stats scope', async () => {
    const a = await newApp(t);
    const r = await a.api('GET', '/v1/queues');
    assert.equal(r.status, 200);
    const names = r.body.queues.map((q: any) => q.name);
    for (const q of ['route', 'apns', 'fcm', 'self', 'webpush']) assert.ok(names.includes(q), q);
    for (const q of r.body.queues) for (const s of ['waiting', 'active', 'delayed', 'prioritized', 'failed']) assert.equal(typeof q[s], 'number');
    const op = client(t.base, t.adminToken);
    const k = await op('POST', `/v1/apps/${a.appId}/keys`, { scopes: ['push'] });
    assert.equal((await client(t.base, k.body.key)('GET', '/v1/queues')).status, 403);
    assert.equal((await op('GET', '/v1/queues')).status, 200);
  });

  test('/dashboard serves the built page, hashed assets compressed and cached for good', async () => {
    const redirect = await fetch(`${t.base}/dashboard`, { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    const page = await fetch(`${t.base}/dashboard/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const html = await page.text();
    const js = /src="(assets\/app-[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(js, html);
    const asset = await fetch(`${t.base}/dashboard/${js}`, { headers: { 'accept-encoding': 'br' } });
    assert.equal(asset.status, 200);
    assert.equal(asset.headers.get('content-encoding'), 'br');
    assert.match(asset.headers.get('content-type') ?? '', /javascript/);
    assert.match(asset.headers.get('cache-control') ?? '', /immutable/);
    const plain = await fetch(`${t.base}/dashboard/${js}`, { headers: { 'accept-encoding': 'identity' } });
    assert.equal(plain.headers.get('content-encoding'), null);
    assert.ok((await plain.text()).length > 10_000);
  });
});
