import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import http from 'node:http';
import pg from 'pg';
import type { Registered } from '../../src/db/devices-repo.js';
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

test('concurrent registrations of two apps over REST: each answered with its own device', async () => {
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
  // How many statements stored them depends on how the requests spread over event-loop turns:
  // the next test counts them where that is certain.

  // Registering again updates: the same devices, created earlier, updated now.
  const again = await Promise.all(ids.slice(0, 5).map((id, i) => a.api('PUT', `/v1/devices/${id}`, { platform: 'ios', tokens: { apns: apns(i) }, tags: ['again'] })));
  for (const [i, r] of again.entries()) {
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.tags, ['again']);
    assert.equal(r.body.createdAt, replies[i * 2]!.body.createdAt, 'an update keeps createdAt');
    assert.ok(r.body.updatedAt > replies[i * 2]!.body.updatedAt);
  }
});

test('registrations of two apps started in one turn are stored by exactly one statement', async () => {
  const a = await newApp(t);
  const b = await newApp(t);
  const regs = new DeviceRegistrations(t.relay.ctx.repos.devices);
  const ids = Array.from({ length: 40 }, (_, i) => `one-${i}`);
  const stored = await Promise.all(
    ids.flatMap((id, i) => [a, b].map((app) => regs.register({ appId: app.appId, id, input: { platform: 'ios', tokens: { apns: apns(app === a ? i : 1000 + i) }, tags: [app.appId] } }))),
  );
  for (const [k, r] of stored.entries()) {
    const app = k % 2 === 0 ? a : b;
    assert.deepEqual([r.created, r.device.app_id, r.device.id, r.device.tags], [true, app.appId, ids[Math.floor(k / 2)], [app.appId]]);
  }
  assert.equal(await writers([a.appId, b.appId], ids), 1, '80 registrations, one statement');
});

/** Holds a device's row lock on a connection of its own until `release`. */
async function lockDevice(appId: string, id: string): Promise<{ blocked: () => Promise<number[]>; release: () => Promise<void> }> {
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${t.iso.schema}` });
  await c.connect();
  await c.query('BEGIN');
  await c.query('SELECT 1 FROM devices WHERE app_id = $1 AND id = $2 FOR UPDATE', [appId, id]);
  const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  return {
    // The statements waiting for this lock (other tests' databases and schemas do not count).
    blocked: async () => (await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [pid])).rows.map((r) => r.pid),
    release: async () => {
      await c.query('COMMIT');
      await c.end();
    },
  };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a device registered in a loop while its row is locked does not hold up other devices', async () => {
  const { appId } = await newApp(t);
  const regs = new DeviceRegistrations(t.relay.ctx.repos.devices);
  await regs.register({ appId, id: 'loop', input: { platform: 'ios', tags: ['first'] } });
  const lock = await lockDevice(appId, 'loop');
  const loop: Promise<Registered>[] = [];
  const put = (i: number) => loop.push(regs.register({ appId, id: 'loop', input: { platform: 'ios', tags: [`k${i}`] } }));
  for (let i = 0; i < 10; i++) put(i);
  await until('the first batch to wait for the lock', async () => ((await lock.blocked()).length === 1 ? true : undefined));
  // The client keeps looping: before, these formed the second (last) batch slot, also waiting.
  for (let i = 10; i < 20; i++) put(i);
  await new Promise((r) => setTimeout(r, 50));
  const other = regs.register({ appId, id: 'other', input: { platform: 'ios', tags: ['other'] } });
  const stalled = new Promise<'stalled'>((r) => setTimeout(() => r('stalled'), 10_000).unref());
  const got = await Promise.race([other, stalled]);
  assert.notEqual(got, 'stalled', 'another device is stored while the looping one waits for its lock');
  assert.deepEqual((got as Registered).device.tags, ['other']);
  assert.equal((await lock.blocked()).length, 1, 'one statement waits for the locked device, not one per batch slot');
  await lock.release();
  for (const [i, r] of (await Promise.all(loop)).entries()) assert.deepEqual(r.device.tags, [`k${i}`], 'each answered with its own write');
  const stored = await t.relay.ctx.repos.devices.get(appId, 'loop');
  assert.deepEqual(stored!.device.tags, ['k19'], 'the last write wins');
});

test('a statement that fails for its rows is retried in halves, one after the other', async () => {
  const { appId } = await newApp(t);
  const regs = new DeviceRegistrations(t.relay.ctx.repos.devices);
  const ids = Array.from({ length: 16 }, (_, i) => `half-${i}`);
  // The sixth has no app: the foreign key refuses it (SQLSTATE 23503).
  const all = ids.map((id, i) => regs.register({ appId: i === 5 ? 'no-such-app' : appId, id, input: { platform: 'web', tags: ['h'] } }));
  const settled = await Promise.allSettled(all);
  assert.deepEqual(settled.map((s) => s.status), ids.map((_, i) => (i === 5 ? 'rejected' : 'fulfilled')));
  assert.match(String((settled[5] as PromiseRejectedResult).reason), /foreign key/);
  // 16 → 8 (bad) → 4 ok, 4 (bad) → 2 (bad) → 1 ok, 1 bad; 2 ok; 8 ok: four statements store the
  // fifteen, where one statement each (fifteen at once) took that many connections.
  assert.equal(await writers([appId], ids), 4);
});

test('a statement that fails for another reason (cancelled) fails its registrations without retrying them', async () => {
  const { appId } = await newApp(t);
  const regs = new DeviceRegistrations(t.relay.ctx.repos.devices);
  await regs.register({ appId, id: 'held', input: { platform: 'ios', tags: ['h'] } });
  const lock = await lockDevice(appId, 'held');
  const ids = ['held', ...Array.from({ length: 5 }, (_, i) => `c-${i}`)];
  const all = Promise.allSettled(ids.map((id) => regs.register({ appId, id, input: { platform: 'ios', tags: ['c'] } })));
  const [pid] = await until('the statement to wait for the lock', async () => ((await lock.blocked()).length === 1 ? lock.blocked() : undefined));
  // As a statement_timeout or an operator would: SQLSTATE 57014, nothing to do with the rows.
  await db.query('SELECT pg_cancel_backend($1)', [pid]);
  await lock.release();
  const settled = await all;
  assert.equal(settled.length, 6);
  for (const s of settled) {
    assert.equal(s.status, 'rejected', 'every registration of the statement fails with it');
    assert.equal((s as PromiseRejectedResult).reason.code, '57014');
  }
  assert.equal((await db.query('SELECT 1 FROM devices WHERE app_id = $1 AND id LIKE $2', [appId, 'c-%'])).rowCount, 0, 'none was retried alone');
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
