import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect as mqttConnect, type IConnackPacket, type IDisconnectPacket } from 'mqtt';
import { signDeviceToken } from '../../src/core/device-token.js';
import { client, eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { MqttDevice, type SelfInfo } from '../helpers/self-devices.js';
import { testPki } from '../mocks/tls.js';

type App = Awaited<ReturnType<typeof newApp>>;
type Self = SelfInfo & { mqtts?: string; wss?: string };

/** A CONNECT with these credentials: the CONNACK reason code (0 accepted, 0x86 bad user name or password). */
async function connackCode(url: string, self: Pick<SelfInfo, 'clientId' | 'password'>): Promise<number> {
  const c = mqttConnect(url, { clientId: self.clientId, username: self.clientId, password: self.password, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 10_000 });
  try {
    return await new Promise<number>((resolve, reject) => {
      c.once('connect', (p: IConnackPacket) => resolve(p.reasonCode ?? 0));
      c.once('error', (err: Error & { code?: number }) => (typeof err.code === 'number' ? resolve(err.code) : reject(err)));
    });
  } finally {
    c.end(true);
  }
}

/** Resolves with the server's DISCONNECT reason code (or -1 for a plain close) once the client is closed. */
function closedBy(dev: MqttDevice): Promise<number> {
  return new Promise((resolve) => {
    let code = -1;
    dev.client.on('disconnect', (p: IDisconnectPacket) => (code = p.reasonCode ?? 0));
    void dev.closed.then(() => resolve(code));
  });
}

describe('device credentials: revoke on delete, rotation, MQTT over TLS and wss', () => {
  let t: TestRelay;
  let app: App;
  const open: MqttDevice[] = [];

  before(async () => {
    const pki = testPki();
    t = await startTestRelay({
      GATEWAY_TLS_CERT: `${pki.dir}/server.crt`,
      GATEWAY_TLS_KEY: `${pki.dir}/server.key`,
      GATEWAY_MQTTS_PORT: '0',
      GATEWAY_WSS_PORT: '0',
    });
    app = await newApp(t);
  });
  after(async () => {
    for (const d of open) await d.end().catch(() => undefined);
    await t?.stop();
    await t?.iso.drop();
  });

  async function register(id: string): Promise<Self> {
    const r = await app.api('PUT', `/v1/devices/${id}`, { platform: 'android' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.self as Self;
  }

  async function connect(url: string, self: SelfInfo): Promise<MqttDevice> {
    const dev = await MqttDevice.connect(url, self, { version: 5 });
    open.push(dev);
    await eventually(async () => ((await t.relay.gateway!.presence.get(app.appId, self.clientId)) ? true : undefined), 10_000, 'online');
    return dev;
  }

  test('the device is told the TLS endpoints, and a standard client receives a push over mqtts (verifying the certificate)', async () => {
    const self = await register('tls-1');
    assert.equal(self.mqtts, `mqtts://127.0.0.1:${t.relay.mqttsPort}`);
    assert.equal(self.wss, `wss://127.0.0.1:${t.relay.wssPort}/mqtt`);
    // The test CA is trusted through NODE_EXTRA_CA_CERTS (scripts/test.mjs), as a deployment's CA would be.
    const dev = await connect(self.mqtts!, self);
    const sent = await app.api('POST', '/v1/push', { to: { devices: ['tls-1'] }, data: { over: 'tls' }, options: { channels: ['self'] } });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const got = await dev.waitFor(sent.body.id);
    assert.deepEqual(got.body.data, { over: 'tls' });
    // A client that does not trust the CA is refused by its own check: the gateway serves the configured chain.
    const untrusting = mqttConnect(self.mqtts!, { clientId: 'x', username: 'x', password: 'x', reconnectPeriod: 0, rejectUnauthorized: true, ca: [] as unknown as string });
    const err = await new Promise<Error>((resolve) => untrusting.once('error', resolve));
    untrusting.end(true);
    assert.match(err.message, /certificate|self.signed|issuer/i);
  });

  test('DELETE /v1/devices/:id closes the live connection at once and refuses a reconnect; a re-registered id gets a new password', async () => {
    const self = await register('del-1');
    const dev = await connect(self.mqtt, self);
    const closed = closedBy(dev);
    assert.equal((await app.api('DELETE', '/v1/devices/del-1')).status, 204);
    assert.equal(await closed, 0x98, 'MQTT 5 DISCONNECT: administrative action');
    assert.equal(await connackCode(self.mqtt, self), 0x86, 'reconnect refused: bad user name or password');
    assert.equal(await connackCode(self.mqtts!, self), 0x86, 'over TLS too');
    // The device password no longer authenticates the device's HTTP endpoints either.
    const inbox = await client(t.base)('GET', '/v1/devices/del-1/inbox', undefined, { authorization: `Device del-1:${self.password}` });
    assert.equal(inbox.status, 401);

    const again = await register('del-1');
    assert.notEqual(again.password, self.password);
    assert.equal(await connackCode(self.mqtt, self), 0x86, 'the old password stays refused after the id is registered again');
    assert.equal(await connackCode(again.mqtt, again), 0);
  });

  test('rotation: the old password is refused and its live connection closed; the new one works over wss', async () => {
    const self = await register('rot-1');
    const dev = await connect(self.mqtt, self);
    const closed = closedBy(dev);
    const r = await app.api('POST', '/v1/devices/rot-1/credentials/rotate');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const fresh = r.body.self as Self;
    assert.notEqual(fresh.password, self.password);
    assert.equal(await closed, 0x98);
    assert.equal(await connackCode(self.mqtt, self), 0x86);
    const dw = await connect(fresh.wss!, fresh);
    assert.equal(dw.connack.reasonCode ?? 0, 0);
    // GET returns the current password; an unknown device cannot be rotated.
    assert.equal((await app.api('GET', '/v1/devices/rot-1')).body.self.password, fresh.password);
    assert.equal((await app.api('POST', '/v1/devices/nobody/credentials/rotate')).status, 404);
    const inbox = await client(t.base)('GET', '/v1/devices/rot-1/inbox', undefined, { authorization: `Device rot-1:${fresh.password}` });
    assert.equal(inbox.status, 200);
    const stale = await client(t.base)('GET', '/v1/devices/rot-1/inbox', undefined, { authorization: `Device rot-1:${self.password}` });
    assert.equal(stale.status, 401);
  });

  test('a password of another app or device, or with a forged epoch, is refused', async () => {
    const self = await register('forge-1');
    const secret = t.relay.ctx.secrets.deviceTokenSecret;
    const [appId, epoch] = self.password.split('.');
    assert.equal(await connackCode(self.mqtt, { clientId: 'forge-2', password: self.password }), 0x86);
    assert.equal(await connackCode(self.mqtt, { clientId: 'forge-1', password: `${appId}.${Number(epoch) + 1}.${self.password.split('.')[2]}` }), 0x86);
    // Correctly signed for an epoch the device does not have (an old one): refused by the epoch check.
    assert.equal(await connackCode(self.mqtt, { clientId: 'forge-1', password: signDeviceToken(secret, appId!, 'forge-1', String(Number(epoch) - 1)) }), 0x86);
    assert.equal(await connackCode(self.mqtt, { clientId: 'forge-1', password: signDeviceToken(secret, appId!, 'forge-1') }), 0x86);
    assert.equal(await connackCode(self.mqtt, self), 0);
  });

  test('devices registered before credential versions (epoch 0) keep their original password until rotated', async () => {
    await register('legacy-1');
    await t.relay.ctx.db.updateTable('devices').set({ credential_epoch: 0 }).where('app_id', '=', app.appId).where('id', '=', 'legacy-1').execute();
    // As after migration 0009: the row says 0 and no gateway has cached the device yet.
    await t.relay.ctx.queues.connection.del(`${t.config.QUEUE_PREFIX}:devcred:${app.appId}/legacy-1`);
    const self = await register('legacy-1');
    assert.equal(self.password, signDeviceToken(t.relay.ctx.secrets.deviceTokenSecret, app.appId, 'legacy-1'));
    assert.equal(await connackCode(self.mqtt, self), 0);
    const rotated = (await app.api('POST', '/v1/devices/legacy-1/credentials/rotate')).body.self as Self;
    assert.equal(await connackCode(self.mqtt, self), 0x86);
    assert.equal(await connackCode(rotated.mqtt, rotated), 0);
  });

  test('the epoch cache is refilled from PostgreSQL when Redis lost it', async () => {
    const self = await register('cache-1');
    const redis = t.relay.ctx.queues.connection;
    await redis.del(`${t.config.QUEUE_PREFIX}:devcred:${app.appId}/cache-1`);
    assert.equal(await connackCode(self.mqtt, self), 0);
    assert.ok(await redis.get(`${t.config.QUEUE_PREFIX}:devcred:${app.appId}/cache-1`));
    await app.api('DELETE', '/v1/devices/cache-1');
    await redis.del(`${t.config.QUEUE_PREFIX}:devcred:${app.appId}/cache-1`);
    assert.equal(await connackCode(self.mqtt, self), 0x86, 'a deleted device stays refused without its cache entry');
  });
});
