import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { eventually, newApp, PG_URL, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

/**
 * Fairness between apps on the bulk send queues (src/core/fair-share.ts): while one app's large
 * fan-out is being sent through a slow APNs, another app's small fan-out, pushed after the large
 * one was fully routed (all its send jobs queued), is sent before the large one is done.
 */
let t: TestRelay;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
const BIG = 20_000;
const SMALL = 100;

before(async () => {
  mocks = await startProviderMocks({ apnsDelayMs: 100, record: false });
  // Few streams and a slow answer: the big fan-out takes a while, so its send jobs queue up.
  t = await startTestRelay({ ...mocks.env, APNS_MAX_STREAMS: '50', SEND_CONCURRENCY: '2' });
});
after(async () => {
  await t?.stop();
  await t?.iso.drop();
  await mocks?.close();
});

async function devices(appId: string, n: number, prefix: string) {
  const db = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${t.iso.schema}` });
  await db.connect();
  try {
    await db.query(`INSERT INTO devices (app_id, id, platform, tags) SELECT $1, $3 || i, 'ios', '{fan}' FROM generate_series(1, $2::int) i`, [appId, n, prefix]);
    // 'b…' tokens: the mock's plain success (test/mocks/apns-server.ts).
    await db.query(`INSERT INTO device_tokens (app_id, device_id, channel, token) SELECT $1, $3 || i, 'apns', 'b' || lpad(to_hex(i), 63, '0') FROM generate_series(1, $2::int) i`, [appId, n, prefix]);
    await db.query('ANALYZE devices, device_tokens');
  } finally {
    await db.end();
  }
}

test("one app's large fan-out does not hold back another app's small one on the bulk queue", async () => {
  const a = await newApp(t);
  const b = await newApp(t);
  for (const app of [a, b]) {
    const r = await app.api('PUT', `/v1/apps/${app.appId}/credentials/apns`, mocks.credentials.apns);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  await devices(a.appId, BIG, 'a');
  await devices(b.appId, SMALL, 'b');

  const big = await a.api('POST', '/v1/push', { to: { tags: { all: ['fan'] } }, notification: { title: 'sale', body: 'everything must go' } });
  assert.equal(big.status, 202, JSON.stringify(big.body));
  // Routed (every send job of the big fan-out queued) and under way.
  await eventually(async () => {
    const m = await a.api('GET', `/v1/messages/${big.body.id}`);
    const total = Object.values(m.body.counts as Record<string, number>).reduce((x, y) => x + y, 0);
    return total === BIG && m.body.counts.sent > 0 ? true : undefined;
  }, 120_000, 'the big fan-out routed and sending');

  const small = await b.api('POST', '/v1/push', { to: { tags: { all: ['fan'] } }, notification: { title: 'hello', body: 'from app B' } });
  assert.equal(small.status, 202, JSON.stringify(small.body));
  const smallDone = await eventually(async () => {
    const m = await b.api('GET', `/v1/messages/${small.body.id}`);
    return (m.body.counts.queued ?? 0) === 0 && (m.body.counts.sent ?? 0) === SMALL ? m.body : undefined;
  }, 300_000, "app B's fan-out sent");
  assert.equal(smallDone.counts.sent, SMALL);

  // When B's last delivery was sent, A's fan-out was still going: B did not wait behind it.
  const bigNow = await a.api('GET', `/v1/messages/${big.body.id}`);
  assert.ok((bigNow.body.counts.queued ?? 0) > 0, `app A still has queued deliveries (${JSON.stringify(bigNow.body.counts)})`);
  assert.ok((bigNow.body.counts.sent ?? 0) < BIG);
});
