import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import http from 'node:http';
import pg from 'pg';
import { DeviceRegistrations } from '../../src/services/device-registrations.js';
import { PG_URL, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';

/**
 * Group commit of `PUT /v1/devices/:id` (services/device-registrations.ts) on real PostgreSQL.
 * A row's `xmin` is the transaction that last wrote it, and each statement is its own
 * transaction: registrations stored together share one.
 */
let t: TestRelay;
let db: pg.Client;

before(async () => {
  t = await startTestRelay({ ROLES: 'api' });
  db = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${t.iso.schema}` });
  await db.connect();
});
after(async () => {
  await db?.end();
  await t?.stop();
  await t?.iso.drop();
});

/** One request on a keep-alive agent (fetch opens connections as it goes). */
function request(agent: http.Agent, base: string, key: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const u = new URL(base);
  const text = body === undefined ? '' : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method, agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }, (res) => {
      let out = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (out += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: out ? JSON.parse(out) : null }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

const apns = (i: number) => 'a' + i.toString(16).padStart(63, '0');

/** How many transactions last wrote these devices of the app. */
async function writers(apps: string[], ids: string[]): Promise<number> {
  const r = await db.query<{ n: string }>('SELECT count(DISTINCT xmin::text) AS n FROM devices WHERE app_id = ANY($1::text[]) AND id = ANY($2::text[])', [apps, ids]);
  return Number(r.rows[0]!.n);
}

test('concurrent registrations of two apps are grouped, each answered with its own device', async () => {
  const a = await newApp(t);
  const b = await newApp(t);
  const ids = Array.from({ length: 40 }, (_, i) => `dev-${i}`);
  // The same ids in both apps, each with its own token and tags: isolation by app. On open
  // keep-alive connections (as an app backend's or the bench's) the requests arrive together.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 80 });
  after(() => agent.destroy());
  const call = (app: typeof a, method: string, path: string, body?: unknown) => request(agent, t.base, app.key, method, path, body);
  await Promise.all(ids.flatMap((id) => [call(a, 'GET', `/v1/devices/${id}`), call(b, 'GET', `/v1/devices/${id}`)]));
  const put = (app: typeof a, i: number) => call(app, 'PUT', `/v1/devices/${ids[i]}`, { platform: 'ios', tokens: { apns: apns(app === a ? i : 1000 + i) }, tags: [app.appId, `n${i}`] });
  const replies = await Promise.all(ids.flatMap((_, i) => [put(a, i), put(b, i)]));
  for (const [k, r] of replies.entries()) {
    const app = k % 2 === 0 ? a : b;
    const i = Math.floor(k / 2);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.id, ids[i]);
    assert.deepEqual(r.body.tags, [app.appId, `n${i}`]);
    assert.equal(r.body.tokens.length, 1);
    assert.equal(r.body.tokens[0].state, 'active');
    assert.equal(r.body.self, undefined, 'iOS devices get no self channel');
  }
  const stored = await db.query<{ app_id: string; id: string; token: string }>(
    'SELECT d.app_id, d.id, t.token FROM devices d JOIN device_tokens t ON t.app_id = d.app_id AND t.device_id = d.id WHERE d.app_id = ANY($1::text[])',
    [[a.appId, b.appId]],
  );
  assert.equal(stored.rows.length, 80);
  for (const row of stored.rows) {
    const i = Number(row.id.slice(4));
    assert.equal(row.token, apns(row.app_id === a.appId ? i : 1000 + i), `${row.app_id}/${row.id} has its own token`);
  }
  // Forty requests a app, one statement each before grouping: far fewer now (the requests reach
  // the server over a few event-loop turns).
  const statements = await writers([a.appId, b.appId], ids);
  assert.ok(statements <= 20, `80 registrations in ${statements} statements`);

  // Registering again updates: the same devices, created earlier, updated now.
  const again = await Promise.all(ids.slice(0, 5).map((id, i) => a.api('PUT', `/v1/devices/${id}`, { platform: 'ios', tokens: { apns: apns(i) }, tags: ['again'] })));
  for (const [i, r] of again.entries()) {
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.tags, ['again']);
    assert.equal(r.body.createdAt, replies[i * 2]!.body.createdAt, 'an update keeps createdAt');
    assert.ok(r.body.updatedAt > replies[i * 2]!.body.updatedAt);
  }
});

test('one device named twice in a turn: written in arrival order, each answered with its own write', async () => {
  const { appId } = await newApp(t);
  const regs = new DeviceRegistrations(t.relay.ctx.repos.devices);
  const ids = Array.from({ length: 10 }, (_, i) => `many-${i}`);
  // All in one turn: the same shape for ten devices, another shape, and the same device three times.
  const many = ids.map((id, i) => regs.register({ appId, id, input: { platform: 'android', tokens: { fcm: `fcm-${i}` }, tags: ['x'] } }));
  const first = regs.register({ appId, id: 'twice', input: { platform: 'ios', tokens: { apns: apns(1) }, tags: ['one'], attributes: { name: 'Ann' }, timezone: 'Europe/Paris' } });
  const second = regs.register({ appId, id: 'twice', input: { platform: 'ios', tags: ['two'] } });
  const third = regs.register({ appId, id: 'twice', input: { platform: 'android', tokens: { apns: null, fcm: 'fcm-twice' } } });
  const [r1, r2, r3] = await Promise.all([first, second, third]);
  assert.equal(r1.created, true);
  assert.deepEqual([r1.device.tags, r1.device.attributes, r1.device.timezone, r1.tokens.map((x) => x.channel)], [['one'], { name: 'Ann' }, 'Europe/Paris', ['apns']]);
  assert.equal(r2.created, false);
  assert.deepEqual([r2.device.tags, r2.device.attributes, r2.device.timezone, r2.tokens.map((x) => x.token)], [['two'], { name: 'Ann' }, 'Europe/Paris', [apns(1)]], 'the second write keeps what it does not name');
  assert.equal(r3.created, false);
  assert.deepEqual([r3.device.platform, r3.device.tags, r3.tokens.map((x) => [x.channel, x.token])], ['android', ['two'], [['fcm', 'fcm-twice']]], 'the third removes apns and adds fcm');
  const stored = await t.relay.ctx.repos.devices.get(appId, 'twice');
  assert.deepEqual([stored!.device.platform, stored!.device.tags, stored!.tokens.map((x) => x.channel)], ['android', ['two'], ['fcm']], 'the last write wins');

  for (const [i, r] of (await Promise.all(many)).entries()) {
    assert.equal(r.created, true);
    assert.equal(r.device.id, ids[i]);
    assert.deepEqual(r.tokens.map((x) => x.token), [`fcm-${i}`]);
  }
  assert.equal(await writers([appId], ids), 1, 'ten registrations of one shape in one turn: one statement');
  assert.equal(await writers([appId], [...ids, 'twice']), 2, 'the repeated device is written by its own statements');
});

test('a registration that fails does not fail the others of its turn', async () => {
  const { appId } = await newApp(t);
  const regs = new DeviceRegistrations(t.relay.ctx.repos.devices);
  const ok = Array.from({ length: 5 }, (_, i) => regs.register({ appId, id: `ok-${i}`, input: { platform: 'ios', tokens: { apns: apns(i) } } }));
  // No such app: the foreign key refuses the row, and with it the grouped statement.
  const bad = regs.register({ appId: 'no-such-app', id: 'ok-0', input: { platform: 'ios', tokens: { apns: apns(9) } } });
  await assert.rejects(bad, /foreign key/);
  for (const r of await Promise.all(ok)) assert.equal(r.created, true);
  assert.equal((await db.query('SELECT 1 FROM devices WHERE app_id = $1', [appId])).rowCount, 5);

  // Through the API: a key still cached by the server whose app was removed meanwhile.
  const gone = await newApp(t);
  assert.equal((await gone.api('PUT', '/v1/devices/warm', { platform: 'ios' })).status, 200);
  await db.query('DELETE FROM apps WHERE id = $1', [gone.appId]);
  const live = await newApp(t);
  const replies = await Promise.all([
    ...Array.from({ length: 6 }, (_, i) => live.api('PUT', `/v1/devices/live-${i}`, { platform: 'web', tags: ['live'] })),
    gone.api('PUT', '/v1/devices/orphan', { platform: 'web', tags: ['live'] }),
  ]);
  assert.deepEqual(replies.slice(0, 6).map((r) => r.status), [200, 200, 200, 200, 200, 200]);
  assert.ok(replies[6]!.status >= 400, `the orphan registration fails (${replies[6]!.status})`);
  for (const [i, r] of replies.slice(0, 6).entries()) {
    assert.equal(r.body.id, `live-${i}`);
    assert.equal(r.body.self.clientId, `live-${i}`, 'web devices get their self-channel info');
  }
});

test('validation errors are per request and repeats are idempotent', async () => {
  const { api } = await newApp(t);
  const replies = await Promise.all([
    api('PUT', '/v1/devices/v-1', { platform: 'ios', timezone: 'Mars/Olympus' }),
    api('PUT', '/v1/devices/v-2', { platform: 'ios', attributes: { '1bad': 'x' } }),
    api('PUT', '/v1/devices/v-3', { platform: 'ios', timezone: 'Asia/Shanghai', attributes: { first_name: 'Li' } }),
    api('PUT', '/v1/devices/v-3', { platform: 'ios', timezone: 'Asia/Shanghai', attributes: { first_name: 'Li' } }),
  ]);
  assert.deepEqual(replies.map((r) => r.status), [400, 400, 200, 200]);
  assert.equal(replies[0]!.body.error.details[0].path, 'body.timezone');
  assert.match(replies[1]!.body.error.details[0].path, /^body\.attributes/);
  for (const r of replies.slice(2)) assert.deepEqual([r.body.timezone, r.body.attributes], ['Asia/Shanghai', { first_name: 'Li' }]);
  assert.equal(replies[2]!.body.createdAt, replies[3]!.body.createdAt, 'one device');
});
