import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { startRelay } from '../../src/relay.js';
import { Isolation, client, eventually, newApp, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { MqttDevice, RawDevice } from '../helpers/self-devices.js';
import { startHuaweiMock, type HuaweiMock } from '../mocks/vendors/huawei.js';

/**
 * Every secret this test creates or sends (operator token, API keys, provider keys and secrets,
 * device passwords, push tokens, receipt secrets, wrong guesses of each) is looked for in every
 * log line Relay wrote at `trace` level while the API, the pipeline, receipts and device
 * authentication ran, and the provider secrets in the raw database rows.
 */
const lines: string[] = [];
const capture = new Writable({
  write(chunk: Buffer, _enc, done) {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  },
});
const secrets = new Map<string, string>();
const remember = (what: string, value: string) => secrets.set(value, what);
/** A PEM key's body, line by line: any one of them in a log would leak part of the key. */
const rememberPem = (what: string, pem: string) =>
  pem
    .split('\n')
    .filter((l) => l.length >= 32 && !l.startsWith('-----'))
    .forEach((l, i) => remember(`${what} (line ${i + 1})`, l));

let t: TestRelay;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
let huawei: HuaweiMock;
const iso = new Isolation();

before(async () => {
  const clientSecret = `hw-${randomBytes(16).toString('hex')}`;
  [mocks, huawei] = await Promise.all([startProviderMocks(), startHuaweiMock({ clientSecret })]);
  const env = iso.env({ ...mocks.env, HUAWEI_ENDPOINT: huawei.url, HUAWEI_OAUTH_ENDPOINT: huawei.url, LOG_LEVEL: 'trace' });
  const config = loadConfig(env);
  const relay = await startRelay(config, createLogger('trace', 'relay', capture), () => undefined);
  t = { relay, config, base: `http://127.0.0.1:${relay.port}`, adminToken: config.ADMIN_TOKEN!, iso, stop: () => relay.stop() };
  remember('operator token', config.ADMIN_TOKEN!);
  remember('credentials key', config.CREDENTIALS_KEY!);
  remember('device token secret', relay.ctx.secrets.deviceTokenSecret);
  remember('huawei clientSecret', clientSecret);
  rememberPem('APNs .p8 key', mocks.credentials.apns.key);
  rememberPem('FCM private key', mocks.credentials.fcm.serviceAccount.private_key);
});
after(async () => {
  await t?.stop();
  await iso.drop();
  await Promise.all([mocks?.close(), huawei?.close()]);
});

test('no secret, key, password or token reaches a log line; provider credentials are not stored in plaintext', async () => {
  const app = await newApp(t);
  remember('API key', app.key);
  // rk_<id>_<secret>: the secret is base64url, which may itself hold underscores.
  remember('API key secret', app.key.split('_').slice(2).join('_'));
  for (const [provider, body] of Object.entries({
    apns: mocks.credentials.apns,
    fcm: mocks.credentials.fcm,
    huawei: { appId: huawei.appId, clientSecret: huawei.clientSecret },
  })) {
    assert.equal((await app.api('PUT', `/v1/apps/${app.appId}/credentials/${provider}`, body)).status, 200, provider);
  }
  // A bad credential is refused (and its error logged, if at all, without the secret in it).
  const badSecret = `bad-${randomBytes(16).toString('hex')}`;
  remember('a rejected provider secret', badSecret);
  await app.api('PUT', `/v1/apps/${app.appId}/credentials/huawei`, { appId: 'x', clientSecret: badSecret, extra: badSecret });

  const tokens = {
    ios: randomBytes(32).toString('hex'),
    dead: `0410${randomBytes(30).toString('hex')}`,
    fcm: `fcm-${randomBytes(24).toString('base64url')}`,
    huawei: `hw-${randomBytes(24).toString('hex')}`,
  };
  for (const [what, token] of Object.entries(tokens)) remember(`push token (${what})`, token);
  const devices = {
    'ios-1': { platform: 'ios', tokens: { apns: tokens.ios } },
    'ios-dead': { platform: 'ios', tokens: { apns: tokens.dead } },
    'and-1': { platform: 'android', brand: 'google', tokens: { fcm: tokens.fcm } },
    'hw-1': { platform: 'android', brand: 'huawei', tokens: { huawei: tokens.huawei } },
  };
  const passwords: Record<string, string> = {};
  for (const [id, body] of Object.entries(devices)) {
    const r = await app.api('PUT', `/v1/devices/${id}`, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    if (r.body.self) {
      passwords[id] = r.body.self.password;
      remember(`device password (${id})`, r.body.self.password);
    }
  }

  const pushed = await app.api('POST', '/v1/push', { to: { devices: Object.keys(devices) }, notification: { title: 'secrets' }, options: { channels: ['apns', 'fcm', 'huawei'] } });
  assert.equal(pushed.status, 202, JSON.stringify(pushed.body));
  const msg = await eventually(async () => {
    const m = await app.api('GET', `/v1/messages/${pushed.body.id}`);
    return m.body.state === 'done' ? m.body : undefined;
  }, 60_000, 'the push to finish');
  assert.equal(msg.counts.sent, 3, JSON.stringify(msg.counts));
  assert.equal(msg.counts.invalid, 1);

  // Receipts: the right secret, a wrong one, none.
  const creds = await app.api('GET', `/v1/apps/${app.appId}/credentials`);
  const receiptUrl = new URL(creds.body.items.find((c: { provider: string }) => c.provider === 'huawei').receiptUrl);
  remember('receipt secret', receiptUrl.searchParams.get('secret')!);
  const wrongReceiptSecret = randomBytes(18).toString('base64url');
  remember('a wrong receipt secret', wrongReceiptSecret);
  const receipt = huawei.receiptFor(tokens.huawei);
  const post = (search: string) => fetch(`${t.base}${receiptUrl.pathname}${search}`, { method: 'POST', headers: { 'content-type': receipt.contentType }, body: receipt.rawBody });
  assert.equal((await post(receiptUrl.search)).status, 200);
  assert.equal((await post(`?secret=${wrongReceiptSecret}`)).status, 401);
  assert.equal((await post('')).status, 401);

  // Device authentication: right and wrong passwords; a wrong API key; the operator token.
  const anon = client(t.base);
  assert.equal((await anon('GET', '/v1/devices/hw-1/inbox', undefined, { authorization: `Device hw-1:${passwords['hw-1']}` })).status, 200);
  const wrongPassword = `${app.appId}.${randomBytes(20).toString('base64url')}`;
  remember('a wrong device password', wrongPassword);
  assert.equal((await anon('POST', '/v1/events', { messageId: pushed.body.id, event: 'opened' }, { authorization: `Device hw-1:${wrongPassword}` })).status, 401);
  assert.equal((await anon('POST', '/v1/events', { messageId: pushed.body.id, event: 'opened' }, { authorization: `Device hw-1:${passwords['hw-1']}` })).status, 200);
  const wrongKey = `rk_${randomBytes(6).toString('hex')}_${randomBytes(24).toString('base64url')}`;
  remember('a wrong API key', wrongKey);
  assert.equal((await client(t.base, wrongKey)('GET', '/v1/apps')).status, 401);
  assert.equal((await client(t.base, t.adminToken)('GET', '/v1/apps')).status, 200);
  // A malformed body that echoes a secret: the 400 names the field, the log does not carry it.
  await app.api('POST', '/v1/push', { to: { devices: [tokens.ios] }, notification: { title: 1 } });

  // The raw rows: provider secrets and receipt secrets sealed, API keys hashed.
  const db = t.relay.ctx.db;
  const raw = JSON.stringify(
    (
      await sql`SELECT row_to_json(c)::text AS row FROM credentials c
        UNION ALL SELECT row_to_json(k)::text FROM api_keys k
        UNION ALL SELECT row_to_json(a)::text FROM apps a`.execute(db)
    ).rows,
  );
  assert.ok(raw.includes(app.appId), 'the rows were read');
  for (const [value, what] of secrets) {
    if (what.startsWith('APNs') || what.startsWith('FCM') || what.startsWith('huawei') || what.startsWith('API key') || what === 'receipt secret') {
      assert.ok(!raw.includes(value), `${what} is stored in plaintext`);
    }
  }

  assertCleanLogs();
});

/** Every line captured so far, from the start of Relay on, holds none of the remembered secrets. */
function assertCleanLogs(): void {
  assert.ok(lines.some((l) => l.includes('"relay started"')), 'the log was captured');
  assert.ok(lines.some((l) => l.includes('"migration applied"')), 'from the start on');
  const leaks = [...secrets].flatMap(([value, what]) => lines.filter((l) => l.includes(value)).map((l) => `${what}: ${l.slice(0, 300)}`));
  assert.deepEqual(leaks, [], `secrets in ${lines.length} log lines`);
}

test('failures leave no secret in the logs either: refused provider credentials, the gateway with right, wrong, rotated and revoked passwords, revoked keys', async () => {
  const app = await newApp(t);
  remember('API key (second app)', app.key);
  // Credentials the vendors refuse: every send fails on them, and the errors are logged.
  const refusedHw = `hw-refused-${randomBytes(16).toString('hex')}`;
  remember('a Huawei client secret the vendor refuses', refusedHw);
  assert.equal((await app.api('PUT', `/v1/apps/${app.appId}/credentials/huawei`, { appId: huawei.appId, clientSecret: refusedHw })).status, 200);
  const unknownKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  rememberPem('an FCM key Google does not know', unknownKey);
  const fcm = mocks.credentials.fcm;
  assert.equal((await app.api('PUT', `/v1/apps/${app.appId}/credentials/fcm`, { ...fcm, serviceAccount: { ...fcm.serviceAccount, private_key: unknownKey } })).status, 200);
  const hwToken = `hw-${randomBytes(24).toString('hex')}`;
  const fcmToken = `fcm-${randomBytes(24).toString('base64url')}`;
  remember('push token (huawei, refused)', hwToken);
  remember('push token (fcm, refused)', fcmToken);
  assert.equal((await app.api('PUT', '/v1/devices/hw-2', { platform: 'android', brand: 'huawei', tokens: { huawei: hwToken } })).status, 200);
  assert.equal((await app.api('PUT', '/v1/devices/and-2', { platform: 'android', brand: 'google', tokens: { fcm: fcmToken } })).status, 200);
  const failing = await app.api('POST', '/v1/push', { to: { devices: ['hw-2', 'and-2'] }, notification: { title: 'refused' }, options: { channels: ['huawei', 'fcm'] } });
  assert.equal(failing.status, 202, JSON.stringify(failing.body));
  const failed = await eventually(async () => {
    const m = await app.api('GET', `/v1/messages/${failing.body.id}`);
    return m.body.state === 'done' ? m.body : undefined;
  }, 90_000, 'the refused sends to end');
  assert.equal(failed.counts.failed, 2, JSON.stringify(failed.counts));

  // The gateway: a device connects with its password and gets a push; a wrong password is
  // refused; a rotation closes the live connection and refuses the old password; a deleted
  // device is refused too.
  const reg = await app.api('PUT', '/v1/devices/gw-1', { platform: 'android' });
  const self = reg.body.self;
  remember('device password (gw-1)', self.password);
  const dev = await MqttDevice.connect(self.mqtt, self, { version: 5 });
  await eventually(async () => ((await t.relay.gateway!.presence.get(app.appId, 'gw-1')) ? true : undefined), 10_000, 'gw-1 online');
  const sent = await app.api('POST', '/v1/push', { to: { devices: ['gw-1'] }, data: { k: 'v' }, options: { channels: ['self'] } });
  await dev.waitFor(sent.body.id);
  const wrongPassword = `${app.appId}.${Date.now()}.${randomBytes(32).toString('base64url')}`;
  remember('a wrong MQTT password', wrongPassword);
  await assert.rejects(RawDevice.connect(t.relay.mqttPort!, { ...self, password: wrongPassword }, 5));
  const rotated = await app.api('POST', '/v1/devices/gw-1/credentials/rotate');
  assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
  remember('device password (gw-1, rotated)', rotated.body.password ?? rotated.body.self?.password);
  await dev.closed;
  await assert.rejects(RawDevice.connect(t.relay.mqttPort!, self, 5), 'the old password is refused');
  const again = await RawDevice.connect(t.relay.mqttPort!, { ...self, password: rotated.body.password ?? rotated.body.self?.password }, 5);
  assert.equal((await app.api('DELETE', '/v1/devices/gw-1')).status, 204);
  await again.closed;

  // A revoked API key.
  const keys = await client(t.base, t.adminToken)('POST', `/v1/apps/${app.appId}/keys`, { scopes: ['push'] });
  remember('a revoked API key', keys.body.key);
  assert.equal((await client(t.base, t.adminToken)('DELETE', `/v1/apps/${app.appId}/keys/${keys.body.id}`)).status, 204);
  assert.equal((await client(t.base, keys.body.key)('GET', '/v1/devices')).status, 401);

  assertCleanLogs();
  // The scan covered what it claims: the refused sends' batches and the gateway's refusals.
  assert.ok(lines.some((l) => l.includes('"channel":"huawei"') && l.includes('"msg":"batch"')), 'the refused Huawei batch was logged');
  assert.ok(lines.some((l) => l.includes('gateway: CONNECT refused')), 'the gateway logged its refusals');
});
