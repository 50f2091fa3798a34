import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { startRelay, type Relay } from '../../src/relay.js';
import { mockToken } from '../mocks/apns-server.js';
import { Isolation, client, eventually, newApp, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

/**
 * The zero-setup default: no DATABASE_URL, so Relay runs on the embedded PGlite in DATA_DIR. The
 * same migrations and hot-path statements (leases at insert, HOT outcome writes, open ids, the
 * self channel's pending seqs) must work there as on PostgreSQL.
 */
let t: TestRelay;
let relay: Relay;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
const iso = new Isolation();

before(async () => {
  mocks = await startProviderMocks();
  const env: Record<string, string> = iso.env({ ...mocks.env, RETRY_BASE_DELAY: '100ms', RETRY_MAX_DELAY: '1s' });
  delete env.DATABASE_URL;
  delete env.DATABASE_SCHEMA;
  const config = loadConfig(env);
  relay = await startRelay(config, createLogger(config.LOG_LEVEL), () => undefined);
  t = {
    relay,
    config,
    base: `http://127.0.0.1:${relay.port}`,
    adminToken: config.ADMIN_TOKEN!,
    iso,
    stop: () => relay.stop(),
  };
});
after(async () => {
  await relay?.stop();
  await mocks?.close();
  await iso.drop();
  rmSync(iso.env().DATA_DIR!, { recursive: true, force: true });
});

test('on the embedded database a push ends with every token in its right state', async () => {
  assert.equal(t.relay.ctx.config.DATABASE_URL, undefined);
  const { appId, api } = await newApp(t);
  const cred = await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns);
  assert.equal(cred.status, 200, JSON.stringify(cred.body));
  const tokens = { ok: mockToken('ok', 71), dead: mockToken('unregistered', 72), flaky: mockToken('failFirst', 73, 2) };
  for (const [k, token] of Object.entries(tokens)) {
    assert.equal((await api('PUT', `/v1/devices/ios-${k}`, { platform: 'ios', tokens: { apns: token }, tags: ['e'] })).status, 200);
  }

  const pushed = await api('POST', '/v1/push', { to: { tags: { any: ['e'] } }, notification: { title: 'embedded' } });
  assert.equal(pushed.status, 202, JSON.stringify(pushed.body));
  const m = await eventually(async () => {
    const r = await api('GET', `/v1/messages/${pushed.body.id}`);
    return r.body.state === 'done' ? r.body : undefined;
  }, 60_000, 'the message done');
  assert.deepEqual([m.counts.sent, m.counts.invalid, m.counts.queued], [2, 1, 0]);

  const list = await api('GET', `/v1/messages/${pushed.body.id}/deliveries?limit=10`);
  const byDevice = Object.fromEntries(list.body.items.map((d: { deviceId: string }) => [d.deviceId, d]));
  assert.deepEqual([byDevice['ios-ok'].status, byDevice['ios-ok'].attempts], ['sent', 1]);
  assert.deepEqual([byDevice['ios-flaky'].status, byDevice['ios-flaky'].attempts], ['sent', 3]);
  assert.deepEqual([byDevice['ios-dead'].status, byDevice['ios-dead'].error.code], ['invalid', 'Unregistered']);
  assert.equal((await api('GET', `/v1/messages/${pushed.body.id}/deliveries?status=queued`)).body.items.length, 0);
  const quarantine = await api('GET', '/v1/tokens?state=invalid');
  assert.deepEqual(quarantine.body.items.map((x: { deviceId: string }) => x.deviceId), ['ios-dead'], 'the dead token is quarantined');
});

test('on the embedded database the self channel keeps offline messages pending for the inbox', async () => {
  const { api } = await newApp(t);
  const reg = await api('PUT', '/v1/devices/poller', { platform: 'android', brand: 'samsung' });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  const pushed = await api('POST', '/v1/push', { to: { devices: ['poller'] }, data: { k: 'v' }, options: { channels: ['self'] } });
  assert.equal(pushed.status, 202);
  await eventually(async () => ((await api('GET', `/v1/messages/${pushed.body.id}`)).body.counts.sent === 1 ? true : undefined), 30_000, 'sent');

  const inbox = await client(t.base)('GET', '/v1/devices/poller/inbox', undefined, { authorization: `Device poller:${reg.body.self.password}` });
  assert.equal(inbox.status, 200, JSON.stringify(inbox.body));
  assert.deepEqual(inbox.body.items.map((i: { id: string; seq: number }) => [i.id, i.seq]), [[pushed.body.id, 1]]);
});

test('on the embedded database a push to the whole app walks every device', async () => {
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  for (let i = 0; i < 5; i++) {
    assert.equal((await api('PUT', `/v1/devices/all-${i}`, { platform: 'ios', tokens: { apns: mockToken('ok', 80 + i) } })).status, 200);
  }
  const pushed = await api('POST', '/v1/push', { to: { all: true }, notification: { title: 'everyone' } });
  assert.equal(pushed.status, 202, JSON.stringify(pushed.body));
  const m = await eventually(async () => {
    const r = await api('GET', `/v1/messages/${pushed.body.id}`);
    return r.body.state === 'done' ? r.body : undefined;
  }, 60_000, 'the message done');
  assert.equal(m.counts.sent, 5);
});

test('on the embedded database a re-run of a routed page meets its own rows and takes the ON CONFLICT path', async () => {
  const { appId } = await newApp(t);
  const { deliveries, messages } = t.relay.ctx.repos;
  await messages.insert({ id: 'msg_rerun', appId, request: { to: { all: true }, options: {} } as never, state: 'routed', recipients: 2, sendAt: null, expiresAt: new Date(Date.now() + 3_600_000) });
  const row = (d: string) => ({ deviceId: d, platform: 'ios', channel: 'apns', token: `t-${d}`, status: 'queued' as const, error: null });
  const until = new Date(Date.now() + 300_000);
  const first = await deliveries.insertPage(appId, 'msg_rerun', [row('a'), row('b')], until);
  const again = await deliveries.insertPage(appId, 'msg_rerun', [row('a'), row('b'), row('c')], until);
  assert.deepEqual(again.resumed, [{ channel: 'apns', ids: first.leased.get('apns'), leasedUntil: until.getTime() }]);
  assert.equal(again.leased.get('apns')?.length, 1);
});
