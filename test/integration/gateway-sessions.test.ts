/**
 * The self channel with standard MQTT clients used the way apps use them, through the whole of
 * Relay (REST → worker → gateway → client → PUBACK → delivery status): persistent sessions (Paho's
 * "subscribe once, auto-reconnect"), DUP only on redeliveries, and pushes the device refuses or
 * cannot take.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect as mqttConnect, type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { client, eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { RawDevice, type Received, type SelfInfo } from '../helpers/self-devices.js';

type App = Awaited<ReturnType<typeof newApp>>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A stock MQTT.js client that records every message and acks it (MQTT.js acks on its own). */
class Client {
  readonly received: Received[] = [];
  connacks: IConnackPacket[] = [];

  private constructor(readonly c: MqttClient) {
    c.on('error', () => undefined);
    c.on('connect', (connack) => this.connacks.push(connack));
    c.on('message', (topic, payload, packet) => {
      this.received.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown>, dup: packet.dup });
    });
  }

  static async connect(url: string, self: SelfInfo, opts: IClientOptions): Promise<Client> {
    const c = mqttConnect(url, {
      clientId: self.clientId,
      username: self.username,
      password: self.password,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      keepalive: 60,
      ...opts,
    });
    const client = new Client(c);
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('close', () => reject(new Error('closed before CONNACK')));
    });
    return client;
  }

  get connack(): IConnackPacket {
    return this.connacks.at(-1)!;
  }

  async waitFor(id: string, ms = 20_000): Promise<Received> {
    return eventually(async () => this.received.find((r) => r.body.id === id), ms, `message ${id}`);
  }

  end(): Promise<void> {
    return this.c.endAsync();
  }
}

describe('self channel sessions with standard clients', () => {
  let t: TestRelay;
  let app: App;
  const open: { end(): unknown }[] = [];

  before(async () => {
    t = await startTestRelay();
    app = await newApp(t);
  });
  after(async () => {
    for (const d of open) await Promise.resolve(d.end()).catch(() => undefined);
    await t?.stop();
    await t?.iso.drop();
  });

  async function register(id: string): Promise<SelfInfo> {
    const r = await app.api('PUT', `/v1/devices/${id}`, { platform: 'android', brand: 'samsung' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.self as SelfInfo;
  }

  async function connect(self: SelfInfo, opts: IClientOptions): Promise<Client> {
    const c = await Client.connect(self.mqtt, self, opts);
    open.push(c);
    return c;
  }

  /** Presence names this session (connected at or after `since`): routing sees the device online. */
  async function online(deviceId: string, since = 0) {
    await eventually(async () => ((await t.relay.gateway!.presence.get(app.appId, deviceId))?.since ?? -1) >= since || undefined, 10_000, `${deviceId} online`);
  }

  async function offline(deviceId: string) {
    await eventually(async () => ((await t.relay.gateway!.presence.get(app.appId, deviceId)) ? undefined : true), 10_000, `${deviceId} offline`);
  }

  async function push(deviceId: string, body: Record<string, unknown> = {}): Promise<string> {
    const r = await app.api('POST', '/v1/push', { to: { devices: [deviceId] }, data: { n: 1 }, ...body });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.id as string;
  }

  async function until(id: string, pred: (m: any) => boolean, what: string, ms = 20_000) {
    return eventually(async () => {
      const m = (await app.api('GET', `/v1/messages/${id}`)).body;
      return pred(m) ? m : undefined;
    }, ms, what);
  }

  async function delivery(id: string): Promise<any> {
    return (await app.api('GET', `/v1/messages/${id}/deliveries`)).body.items[0];
  }

  test('Paho pattern (3.1.1, clean session 0, subscribe once, auto-reconnect): Session Present and pushes keep arriving', async () => {
    const self = await register('paho-1');
    const dev = await connect(self, { protocolVersion: 4, clean: false, resubscribe: false, reconnectPeriod: 200 });
    assert.equal(dev.connack.sessionPresent, false, 'a first connect has no session');
    await dev.c.subscribeAsync(self.topic, { qos: 1 });
    await online('paho-1');
    const first = await push('paho-1');
    await dev.waitFor(first);
    await until(first, (m) => m.counts.delivered === 1, 'first delivered');

    // The network drops; the client reconnects on its own and does not subscribe again.
    const since = Date.now();
    dev.c.stream.destroy();
    await eventually(async () => (dev.connacks.length === 2 ? true : undefined), 10_000, 'the auto-reconnect');
    assert.equal(dev.connack.sessionPresent, true);
    await online('paho-1', since);
    const second = await push('paho-1');
    const got = await dev.waitFor(second);
    assert.equal(got.dup, false);
    await until(second, (m) => m.counts.delivered === 1, 'delivered after the reconnect');

    // Offline for a while: a push waits in PostgreSQL, the next connect (no SUBSCRIBE) gets it, as a first transmission.
    await dev.end();
    await offline('paho-1');
    const queued = await push('paho-1', { options: { channels: ['self'] } });
    await until(queued, (m) => m.counts.sent === 1, 'queued sent');
    const back = await connect(self, { protocolVersion: 4, clean: false, resubscribe: false });
    assert.equal(back.connack.sessionPresent, true);
    const q = await back.waitFor(queued);
    assert.equal(q.dup, false, 'never written before: no DUP');
    await until(queued, (m) => m.counts.delivered === 1, 'queued delivered');
    await back.end();
  });

  test('MQTT 5 Clean Start 0 with Session Expiry: resumed without SUBSCRIBE; a clean start ends the session', async () => {
    const self = await register('v5-sess');
    const v5 = (): IClientOptions => ({ protocolVersion: 5, clean: false, resubscribe: false, properties: { sessionExpiryInterval: 3600 } });
    const dev = await connect(self, v5());
    assert.equal(dev.connack.sessionPresent, false);
    assert.equal(dev.connack.properties?.sessionExpiryInterval, 3600);
    await dev.c.subscribeAsync(self.topic, { qos: 1 });
    await dev.end();
    await offline('v5-sess');

    const again = await connect(self, v5());
    assert.equal(again.connack.sessionPresent, true);
    await online('v5-sess');
    const id = await push('v5-sess');
    await again.waitFor(id);
    await until(id, (m) => m.counts.delivered === 1, 'delivered');
    await again.end();
    await offline('v5-sess');

    // Clean Start, no Session Expiry (the SDK's way): no session; stored messages still come
    // (store-and-forward), after the SUBSCRIBE only.
    const stored = await push('v5-sess', { options: { channels: ['self'] } });
    await until(stored, (m) => m.counts.sent === 1, 'stored sent');
    const clean = await connect(self, { protocolVersion: 5, clean: true });
    assert.equal(clean.connack.sessionPresent, false);
    await online('v5-sess');
    await sleep(500);
    assert.equal(clean.received.length, 0, 'nothing before the SUBSCRIBE');
    await clean.c.subscribeAsync(self.topic, { qos: 1 });
    await clean.waitFor(stored);
    await clean.end();
    await offline('v5-sess');
    // … and the clean start discarded the persisted subscription.
    const later = await connect(self, v5());
    assert.equal(later.connack.sessionPresent, false);
    await later.end();
  });

  test('DUP: 0 on a first transmission, 1 on the redelivery of a push written before', async () => {
    const self = await register('dup-1');
    const offlineFirst = await push('dup-1', { options: { channels: ['self'] } });
    await until(offlineFirst, (m) => m.counts.sent === 1, 'sent while offline');
    // A client that does not ack: what it got is redelivered on the next connection.
    const raw = await RawDevice.connect(t.relay.mqttPort!, self, 5);
    open.push({ end: () => raw.close() });
    const p1 = await raw.waitForBody((b) => b.id === offlineFirst, 'the stored push');
    assert.equal(p1.packet.dup, false, 'queued while offline, never written: no DUP');
    raw.close();
    await offline('dup-1');
    const meanwhile = await push('dup-1', { options: { channels: ['self'] } });
    await until(meanwhile, (m) => m.counts.sent === 1, 'sent while offline');

    const dev = await connect(self, { protocolVersion: 4, clean: true });
    await dev.c.subscribeAsync(self.topic, { qos: 1 });
    assert.equal((await dev.waitFor(offlineFirst)).dup, true, 'written to the earlier connection: DUP');
    assert.equal((await dev.waitFor(meanwhile)).dup, false);
    await dev.end();
  });

  test('a push the device refuses (PUBACK ≥ 0x80) or cannot take (Maximum Packet Size) ends failed and is not handed out again', async () => {
    const self = await register('refuser');
    const raw = await RawDevice.connect(t.relay.mqttPort!, self, 5);
    open.push({ end: () => raw.close() });
    await online('refuser');
    const refused = await push('refuser');
    const got = await raw.waitForBody((b) => b.id === refused, 'the push');
    raw.send({ cmd: 'puback', messageId: got.packet.messageId!, reasonCode: 0x87 });
    const m = await until(refused, (x) => x.counts.failed === 1, 'failed');
    assert.deepEqual(m.byChannel.self, { failed: 1 });
    const row = await delivery(refused);
    assert.equal(row.error.code, 'RefusedByDevice');
    assert.match(row.error.message, /0x87/);
    raw.close();
    await offline('refuser');

    // Too large for the client: MQTT.js announcing a 512-byte Maximum Packet Size.
    const small = await connect(self, { protocolVersion: 5, clean: true, properties: { maximumPacketSize: 512 } });
    await small.c.subscribeAsync(self.topic, { qos: 1 });
    await online('refuser');
    const big = await push('refuser', { data: { blob: 'x'.repeat(1000) } });
    await until(big, (x) => x.counts.failed === 1, 'too large failed');
    const bigRow = await delivery(big);
    assert.equal(bigRow.error.code, 'PayloadTooLarge');
    assert.match(bigRow.error.message, /512/);
    await small.end();
    await offline('refuser');

    // The next connection gets neither again, only what comes next.
    const dev = await connect(self, { protocolVersion: 5, clean: true });
    await dev.c.subscribeAsync(self.topic, { qos: 1 });
    await online('refuser');
    const marker = await push('refuser');
    await dev.waitFor(marker);
    assert.deepEqual(dev.received.map((r) => r.body.id), [marker]);
    await dev.end();
  });

  test('a persistent session survives a gateway restart', async () => {
    const self = await register('restart-1');
    const dev = await connect(self, { protocolVersion: 4, clean: false, resubscribe: false });
    await dev.c.subscribeAsync(self.topic, { qos: 1 });
    await online('restart-1');
    await t.stop(); // the session ends with the node ('shutdown'); its expiry starts now
    await dev.c.endAsync(true);
    t = await startTestRelay({}, t.iso);
    app = { ...app, api: client(t.base, app.key) }; // the API moved to another port too
    const moved = (await app.api('GET', '/v1/devices/restart-1')).body.self as SelfInfo;
    const back = await connect(moved, { protocolVersion: 4, clean: false, resubscribe: false });
    assert.equal(back.connack.sessionPresent, true);
    await online('restart-1');
    const id = await push('restart-1');
    await back.waitFor(id);
    await until(id, (m) => m.counts.delivered === 1, 'delivered');
    await back.end();
  });
});
