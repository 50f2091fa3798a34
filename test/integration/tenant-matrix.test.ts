/**
 * Tenant and scope matrix: every route of the route table (ROUTES, the same list /openapi.json is
 * built from) × every kind of caller, with the status each must get. The expectations follow from
 * the route's declared `auth`; the request comes from test/helpers/route-examples.ts, and a route
 * without an example fails here, so a new route cannot skip the matrix.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ROUTES, type RouteDoc } from '../../src/api/define.js';
import type { Scope } from '../../src/db/apps-repo.js';
import { client, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { EXAMPLES, createFixture, routeKey, urlOf, type Example, type Fixture } from '../helpers/route-examples.js';

const CALLERS = ['no-key', 'revoked-key', 'other-app-key', 'own-key-without-scope', 'operator', 'device-password', 'own-key-with-scope'] as const;
type Caller = (typeof CALLERS)[number];

/** The scope a key needs for the route (`admin` implies every scope; operator routes take no key). */
function scopeOf(doc: RouteDoc, ex: Example): Scope {
  if (doc.auth === 'device') return ex.scope!;
  if (doc.auth === 'operator' || doc.auth === 'none') return 'admin';
  if (doc.auth === 'any') return 'push'; // any key will do: a narrow one stands for all
  return doc.auth as Scope;
}

/** What each caller must get, from the route's declared auth. */
function expected(doc: RouteDoc, ex: Example, who: Caller): number {
  if (doc.auth === 'none') return ex.ok; // authenticated by its URL secret: the bearer does not matter
  // Who am I (`GET /v1/me`): any key or the operator is answered, about itself only.
  if (doc.auth === 'any') return who === 'no-key' || who === 'revoked-key' || who === 'device-password' ? 401 : ex.ok;
  const operatorAllowed = doc.auth === 'operator' || doc.auth === 'admin';
  switch (who) {
    case 'no-key':
    case 'revoked-key':
      return 401;
    case 'device-password':
      return doc.auth === 'device' ? ex.ok : 401;
    case 'operator':
      return ex.operator ?? (operatorAllowed ? ex.ok : 403);
    case 'other-app-key':
      return doc.auth === 'operator' ? 403 : (ex.otherApp ?? 404);
    case 'own-key-without-scope':
      return 403;
    case 'own-key-with-scope':
      return doc.auth === 'operator' ? 403 : ex.ok;
  }
}

function authorization(f: Fixture, doc: RouteDoc, ex: Example, who: Caller): string | undefined {
  const scope = scopeOf(doc, ex);
  switch (who) {
    case 'no-key':
      return undefined;
    case 'revoked-key':
      return `Bearer ${f.keys.revoked}`;
    case 'other-app-key':
      return `Bearer ${f.keys.otherApp}`;
    case 'own-key-without-scope':
      return `Bearer ${f.keys.without[scope]}`;
    case 'operator':
      return `Bearer ${f.operator}`;
    case 'device-password':
      return `Device ${f.deviceA}:${f.devicePasswordA}`;
    case 'own-key-with-scope':
      return `Bearer ${f.keys.only[scope]}`;
  }
}

describe('tenant and scope matrix over the route table', () => {
  let t: TestRelay;
  let f: Fixture;

  before(async () => {
    // The matrix sends one device-password request per route in a burst: the per-device rate
    // limit (a test of its own in rate-limits.test.ts) would answer 429 before auth is judged.
    t = await startTestRelay({ ROLES: 'api', RATE_LIMIT_DEVICE: '100000/1s' });
    f = await createFixture(t);
  });
  after(async () => {
    await t?.stop();
    await t?.iso.drop();
  });

  test('every route in the route table has a matrix example (a new route must add one)', () => {
    assert.ok(ROUTES.length >= 20, `the route table is loaded (${ROUTES.length} routes)`);
    const missing = ROUTES.map(routeKey).filter((k) => !EXAMPLES[k]);
    assert.deepEqual(missing, [], `add these routes to test/helpers/route-examples.ts: ${missing.join(', ')}`);
    const stale = Object.keys(EXAMPLES).filter((k) => !ROUTES.some((r) => routeKey(r) === k));
    assert.deepEqual(stale, [], 'examples for routes that no longer exist');
  });

  test('every route × {no key, revoked key, other app, own key without / with the scope, operator, device password}', async () => {
    const failures: string[] = [];
    let calls = 0;
    // Markers of app A that no other caller may ever read back.
    const secrets = () => [f.tokenA, f.receiptSecretA, f.devicePasswordA];
    for (const doc of ROUTES) {
      const ex = EXAMPLES[routeKey(doc)];
      if (!ex) continue; // reported by the test above
      for (const who of CALLERS) {
        // Once per route, and before every call of one that consumes its target (DELETE, restore).
        if (who === CALLERS[0] || doc.method === 'delete' || ex.destructive) await f.ensure();
        const req = ex.req(f);
        const auth = authorization(f, doc, ex, who);
        const res = await client(t.base)(doc.method.toUpperCase(), urlOf(doc.path, req), req.body, {
          ...(auth ? { authorization: auth } : {}),
          ...(req.headers ?? {}),
        });
        calls++;
        const want = expected(doc, ex, who);
        const text = JSON.stringify(res.body);
        if (res.status !== want) failures.push(`${routeKey(doc)} as ${who}: ${res.status} (want ${want}) ${text.slice(0, 200)}`);
        if (res.status >= 400 && (res.body as { error?: { code?: string } })?.error?.code === undefined) {
          failures.push(`${routeKey(doc)} as ${who}: error without the {error:{code}} envelope`);
        }
        if (res.status === 401 && doc.auth !== 'none' && !res.headers.get('www-authenticate') && who !== 'device-password') {
          failures.push(`${routeKey(doc)} as ${who}: 401 without WWW-Authenticate`);
        }
        const mayRead = who === 'own-key-with-scope' || who === 'operator' || who === 'device-password';
        if (!mayRead) {
          for (const s of secrets()) if (s && text.includes(s)) failures.push(`${routeKey(doc)} as ${who}: response leaks app A's ${s.slice(0, 12)}…`);
        }
      }
    }
    assert.deepEqual(failures, []);
    assert.equal(calls, ROUTES.length * CALLERS.length);
  });

  test("another app's key changes nothing of app A", async () => {
    await f.ensure();
    const b = client(t.base, f.keys.otherApp);
    const ev = await b('POST', '/v1/events', { deviceId: f.deviceA, messageId: f.messageA, event: 'opened' });
    assert.equal(ev.body.applied, 0);
    const put = await b('PUT', `/v1/devices/${f.deviceA}`, { platform: 'web' });
    assert.equal(put.status, 200);
    const a = await client(t.base, f.keys.only.devices)('GET', `/v1/devices/${f.deviceA}`);
    assert.equal(a.body.platform, 'android', "B's device of the same id is B's own");
    assert.notEqual(put.body.self.password, a.body.self.password);
    const tokens = await b('GET', '/v1/tokens');
    assert.deepEqual(tokens.body.items, [], "B's quarantine list holds none of A's tokens");
  });

  test('the operator reviews and restores quarantined tokens of any app, and must name it', async () => {
    await f.ensure();
    const op = client(t.base, f.operator);
    const none = await op('GET', '/v1/tokens');
    assert.equal(none.status, 400);
    assert.match(none.body.error.message, /query\.app/);
    const list = await op('GET', `/v1/tokens?app=${f.appA}`);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.items.map((i: { deviceId: string }) => i.deviceId), [f.deviceA]);
    const restored = await op('POST', `/v1/devices/${f.deviceA}/tokens/fcm/restore?app=${f.appA}`);
    assert.equal(restored.status, 200);
    assert.equal(restored.body.state, 'active');
    assert.equal((await op('GET', `/v1/tokens?app=${f.appA}`)).body.items.length, 0);
    // In app B there is no such device: the operator acts exactly on the app it names.
    assert.equal((await op('POST', `/v1/devices/${f.deviceA}/tokens/fcm/restore?app=${f.appB}`)).status, 404);
  });
});
