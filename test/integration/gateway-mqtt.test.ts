// One concept: the gateway's MQTT protocol surface (CONNECT, SUBSCRIBE, PUBLISH, keep alive, refusals) against a real GatewayServer.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server as HttpServer } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { connect as mqttConnect, type IClientOptions, type IConnackPacket as MqttConnack, type MqttClient } from 'mqtt';
import { generate, parser as mqttParser, type Packet } from 'mqtt-packet';
import { signDeviceToken } from '../../src/core/device-token.js';
import { GatewayServer, deviceTokenAuthenticator } from '../../src/gateway/index.js';
import type { DropDetail, GatewayOptions, OfflineReason, PendingDelivery, SessionInfo, SessionStore } from '../../src/gateway/index.js';

const SECRET = 'test-secret-0123456789abcdef';
const APP = 'app-1';
const token = (deviceId: string, appId = APP) => signDeviceToken(SECRET, appId, deviceId);

// ------------------------------------------------------------------ recording hooks

type Ev =
  | { t: 'online'; s: SessionInfo }
  | { t: 'offline'; s: SessionInfo; why: OfflineReason; pending: PendingDelivery[] }
  | { t: 'ack'; deviceId: string; id: string; seq: number }
  | { t: 'revokeAck'; deviceId: string; id: string; seq: number }
  | { t: 'control'; deviceId: string; topic: string; payload: Record<string, unknown> }
  | { t: 'dropped'; deviceId: string; id: string; seq: number; reason: string; detail?: DropDetail };

class Recorder {
  events: Ev[] = [];
  private waiters: (() => void)[] = [];
  push(e: Ev) {
    this.events.push(e);
    for (const w of this.waiters.splice(0)) w();
  }
  find<T extends Ev['t']>(t: T, pred: (e: Extract<Ev, { t: T }>) => boolean = () => true) {
    return this.events.find((e) => e.t === t && pred(e as Extract<Ev, { t: T }>)) as Extract<Ev, { t: T }> | undefined;
  }
  async wait<T extends Ev['t']>(t: T, pred: (e: Extract<Ev, { t: T }>) => boolean = () => true, ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.find(t, pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${t}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
  hooks(): GatewayOptions['hooks'] {
    return {
      onOnline: (s) => this.push({ t: 'online', s }),
      onOffline: (s, why, pending) => this.push({ t: 'offline', s, why, pending }),
      onAck: (_a, deviceId, id, seq) => this.push({ t: 'ack', deviceId, id, seq }),
      onRevokeAck: (_a, deviceId, id, seq) => this.push({ t: 'revokeAck', deviceId, id, seq }),
      onControl: (_a, deviceId, topic, payload) => this.push({ t: 'control', deviceId, topic, payload }),
      onDropped: (_a, deviceId, id, seq, reason, detail) => this.push({ t: 'dropped', deviceId, id, seq, reason, detail }),
    };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Never let a missing event hang the file. */
const within = <T>(p: Promise<T>, ms = 5000): Promise<T> =>
  Promise.race([p, sleep(ms).then(() => Promise.reject(new Error(`no event within ${ms} ms`)))]);

// ------------------------------------------------------------------ clients

async function mqttClient(url: string, deviceId: string, opts: IClientOptions = {}): Promise<{ c: MqttClient; connack: MqttConnack }> {
  const c = mqttConnect(url, {
    clientId: deviceId,
    username: deviceId,
    password: token(deviceId),
    reconnectPeriod: 0,
    connectTimeout: 5000,
    keepalive: 30,
    ...opts,
  });
  const connack = await new Promise<MqttConnack>((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  return { c, connack };
}

function connectError(url: string, opts: IClientOptions): Promise<Error & { code?: number }> {
  const c = mqttConnect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  return new Promise((resolve, reject) => {
    c.once('connect', () => reject(new Error('unexpectedly connected')));
    c.once('error', (err) => {
      c.end(true);
      resolve(err as Error & { code?: number });
    });
    c.once('close', () => resolve(new Error('closed without CONNACK')));
  });
}

/** A raw MQTT client over a socket, for what MQTT.js will not send. */
class Raw {
  packets: Packet[] = [];
  closed: Promise<void>;
  private readonly p;
  constructor(
    readonly sock: Socket,
    readonly version: 4 | 5,
  ) {
    this.p = mqttParser({ protocolVersion: version });
    this.p.on('packet', (pk) => this.packets.push(pk));
    this.p.on('error', () => {});
    sock.on('data', (b) => this.p.parse(b));
    sock.on('error', () => {});
    this.closed = new Promise((resolve) => sock.once('close', () => resolve()));
  }
  static async open(port: number, version: 4 | 5 = 4): Promise<Raw> {
    const sock = netConnect(port, '127.0.0.1');
    await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    return new Raw(sock, version);
  }
  send(pk: Packet) {
    this.sock.write(generate(pk, { protocolVersion: this.version }));
  }
  async connect(deviceId: string, keepalive = 60) {
    this.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: this.version, clientId: deviceId, clean: true, keepalive, username: deviceId, password: Buffer.from(token(deviceId)) });
    return this.waitFor('connack');
  }
  async waitFor(cmd: Packet['cmd'], ms = 3000, from = 0): Promise<Packet> {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.packets.slice(from).find((p) => p.cmd === cmd);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`no ${cmd}`);
      await sleep(10);
    }
  }
  async isClosedWithin(ms: number) {
    return Promise.race([this.closed.then(() => true), sleep(ms).then(() => false)]);
  }
}

function onMessage(c: MqttClient, topic: string): Promise<{ payload: Record<string, unknown>; packet: { dup: boolean; qos: number; properties?: Record<string, unknown> } }> {
  return new Promise((resolve) => {
    const h = (t: string, payload: Buffer, packet: { dup: boolean; qos: number; properties?: Record<string, unknown> }) => {
      if (t !== topic) return;
      c.off('message', h);
      resolve({ payload: JSON.parse(payload.toString()) as Record<string, unknown>, packet });
    };
    c.on('message', h);
  });
}

// ------------------------------------------------------------------ fixture

const rec = new Recorder();
let gw: GatewayServer;
let http: HttpServer;
let port: number;
let wsUrl: string;
let tcpUrl: string;
const ADVISE = 240;

before(async () => {
  const base = deviceTokenAuthenticator(SECRET);
  gw = new GatewayServer({
    authenticate: (clientId, username, password) =>
      // A test-only backdoor: an authenticator that vouches for a different device than the client id.
      username === 'mismatch' ? { appId: APP, deviceId: 'someone-else' } : base(clientId, username, password),
    hooks: rec.hooks(),
    adviseKeepAlive: ({ requestedSec }) => (requestedSec >= 60 ? ADVISE : requestedSec),
    maxPacketBytes: 64 * 1024,
    sweepIntervalMs: 100,
    connectTimeoutMs: 800,
  });
  port = await gw.listenTcp(0, '127.0.0.1');
  http = createServer((_req, res) => res.end('ok'));
  gw.attachWebSocket(http, '/mqtt');
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', () => resolve()));
  tcpUrl = `mqtt://127.0.0.1:${port}`;
  wsUrl = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/mqtt`;
});

after(async () => {
  await gw.close();
  await new Promise<void>((resolve) => http.close(() => resolve()));
});

let n = 0;
const dev = (tag: string) => `d-${tag}-${++n}`;
const push = (id: string, seq: number, ttlMs = 60_000) => ({
  id,
  seq,
  payload: { notification: { title: 'Hi', body: 'there' }, data: { orderId: '42' } },
  expiresAt: Date.now() + ttlMs,
});

// ------------------------------------------------------------------ tests

describe('delivery to standard clients', () => {
  for (const transport of ['tcp', 'ws'] as const) {
    for (const protocolVersion of [4, 5] as const) {
      test(`MQTT.js v${protocolVersion === 4 ? '3.1.1' : '5'} over ${transport}: push delivered, PUBACK → onAck`, async () => {
        const id = dev(`${transport}${protocolVersion}`);
        const { c, connack } = await mqttClient(transport === 'tcp' ? tcpUrl : wsUrl, id, { protocolVersion, keepalive: 60 });
        try {
          assert.equal(connack.sessionPresent, false);
          if (protocolVersion === 5) {
            assert.equal(connack.properties?.serverKeepAlive, ADVISE);
            assert.equal(connack.properties?.maximumQoS, 1);
            assert.equal(connack.properties?.maximumPacketSize, 64 * 1024);
          }
          const online = await rec.wait('online', (e) => e.s.deviceId === id);
          assert.equal(online.s.appId, APP);
          assert.equal(online.s.protocolVersion, protocolVersion);
          assert.equal(online.s.transport, transport);
          assert.equal(online.s.keepAliveSec, protocolVersion === 5 ? ADVISE : 60);
          await c.subscribeAsync(`devices/${id}`, { qos: 1 });
          const got = onMessage(c, `devices/${id}`);
          const msg = push('m-1', 7, 30_000);
          assert.equal(gw.deliver(APP, id, msg), true);
          const { payload, packet } = await within(got);
          assert.deepEqual(payload, {
            type: 'push',
            id: 'm-1',
            seq: 7,
            notification: { title: 'Hi', body: 'there' },
            data: { orderId: '42' },
            expiresAt: msg.expiresAt,
          });
          assert.equal(packet.qos, 1);
          if (protocolVersion === 5) {
            const mei = packet.properties?.messageExpiryInterval as number;
            assert.ok(mei >= 29 && mei <= 30, `message expiry ${mei}`);
          }
          const ack = await rec.wait('ack', (e) => e.deviceId === id);
          assert.equal(ack.id, 'm-1');
          assert.equal(ack.seq, 7);
          assert.deepEqual(gw.pendingFor(APP, id), []);
        } finally {
          await c.endAsync();
        }
        const off = await rec.wait('offline', (e) => e.s.deviceId === id);
        assert.equal(off.why, 'closed');
      });
    }
  }

  for (const v of ['mqttv311', '5'] as const) {
    test(`mosquitto_sub -V ${v} receives a push`, async () => {
      const id = dev(`mosq${v}`);
      const child = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-V', v, '-i', id, '-u', id, '-P', token(id), '-t', `devices/${id}`, '-q', '1', '-C', '1']);
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      try {
        await rec.wait('online', (e) => e.s.deviceId === id);
        // Delivered before mosquitto_sub's SUBSCRIBE is processed or after: either way it arrives.
        assert.equal(gw.deliver(APP, id, push('m-mosq', 1)), true);
        const code = await Promise.race([exited, sleep(5000).then(() => 'timeout' as const)]);
        assert.equal(code, 0, `mosquitto_sub exit ${code}; stderr: ${err}`);
        assert.deepEqual(JSON.parse(out.trim()).id, 'm-mosq');
        await rec.wait('ack', (e) => e.deviceId === id && e.id === 'm-mosq');
      } finally {
        child.kill();
      }
    });
  }

  test('a push delivered before SUBSCRIBE waits for it; DUP flag follows msg.dup', async () => {
    const id = dev('presub');
    const { c } = await mqttClient(tcpUrl, id, { protocolVersion: 4 });
    try {
      await rec.wait('online', (e) => e.s.deviceId === id);
      assert.equal(gw.deliver(APP, id, { ...push('m-early', 3), dup: true }), true);
      assert.deepEqual(
        gw.pendingFor(APP, id)?.map((p) => [p.id, p.written]),
        [['m-early', false]],
      );
      const got = onMessage(c, `devices/${id}`);
      await c.subscribeAsync(`devices/${id}`, { qos: 1 });
      const { payload, packet } = await within(got);
      assert.equal(payload.id, 'm-early');
      assert.equal(packet.dup, true);
      await rec.wait('ack', (e) => e.deviceId === id && e.id === 'm-early');
    } finally {
      await c.endAsync();
    }
  });

  test('revoke: the device gets {type:"revoke"} and its PUBACK → onRevokeAck', async () => {
    const id = dev('revoke');
    const { c } = await mqttClient(tcpUrl, id, { protocolVersion: 5 });
    try {
      await c.subscribeAsync(`devices/${id}`, { qos: 1 });
      const got = onMessage(c, `devices/${id}`);
      assert.equal(gw.revoke(APP, id, 'm-9', 9), true);
      assert.deepEqual((await within(got)).payload, { type: 'revoke', id: 'm-9', seq: 9 });
      await rec.wait('revokeAck', (e) => e.deviceId === id && e.id === 'm-9');
      assert.equal(rec.find('ack', (e) => e.deviceId === id), undefined);
    } finally {
      await c.endAsync();
    }
    assert.equal(gw.revoke(APP, id, 'm-9', 9), false);
    assert.equal(gw.deliver(APP, id, push('m-10', 10)), false);
  });
});

describe('heartbeat advice and reports', () => {
  test('3.1.1 gets {"adviseSec":N} on $relay/heartbeat after subscribing', async () => {
    const id = dev('advise4');
    const { c } = await mqttClient(tcpUrl, id, { protocolVersion: 4, keepalive: 120 });
    try {
      const got = onMessage(c, '$relay/heartbeat');
      const granted = await c.subscribeAsync('$relay/heartbeat', { qos: 1 });
      assert.equal(granted[0]?.qos, 1);
      assert.deepEqual((await within(got)).payload, { adviseSec: ADVISE });
      assert.equal(gw.session(APP, id)?.advisedSec, ADVISE);
      assert.equal(gw.session(APP, id)?.keepAliveSec, 120); // 3.1.1: the client's keep alive stays in force
    } finally {
      await c.endAsync();
    }
  });

  test('a $relay/heartbeat report moves dead detection to 1.5 × the reported interval', async () => {
    const id = dev('report');
    const raw = await Raw.open(port, 4);
    await raw.connect(id, 60);
    await rec.wait('online', (e) => e.s.deviceId === id);
    assert.equal(gw.session(APP, id)?.idleTimeoutMs, 90_000);
    raw.send({
      cmd: 'publish',
      topic: '$relay/heartbeat',
      qos: 1,
      messageId: 5,
      dup: false,
      retain: false,
      payload: JSON.stringify({ intervalSec: 1, network: 'cmcc-4g', state: 'probing' }),
    });
    const ack = await raw.waitFor('puback');
    assert.equal(ack.messageId, 5);
    const s = gw.session(APP, id)!;
    assert.equal(s.reportedSec, 1);
    assert.equal(s.intervalSec, 1);
    assert.equal(s.idleTimeoutMs, 1500);
    assert.equal(s.network, 'cmcc-4g');
    const ctl = await rec.wait('control', (e) => e.deviceId === id);
    assert.equal(ctl.topic, '$relay/heartbeat');
    assert.deepEqual(ctl.payload, { intervalSec: 1, network: 'cmcc-4g', state: 'probing' });
    // Behaviour: the raw client now stays silent; keep alive 60 would allow 90 s, the report 1.5 s.
    const t0 = Date.now();
    const off = await rec.wait('offline', (e) => e.s.deviceId === id, 5000);
    assert.equal(off.why, 'timeout');
    assert.ok(Date.now() - t0 < 4000);
    assert.equal(await raw.isClosedWithin(1000), true);
  });

  test('$relay/control uplink → onControl; PUBACK', async () => {
    const id = dev('control');
    const { c } = await mqttClient(tcpUrl, id, { protocolVersion: 5 });
    try {
      await c.publishAsync('$relay/control', JSON.stringify({ type: 'opened', id: 'm-1' }), { qos: 1 });
      const ctl = await rec.wait('control', (e) => e.deviceId === id);
      assert.deepEqual(ctl.payload, { type: 'opened', id: 'm-1' });
      // Not JSON → v5 PUBACK 0x99 Payload format invalid; the connection stays up.
      await assert.rejects(c.publishAsync('$relay/control', 'not json', { qos: 1 }), (e: { code?: number }) => e.code === 0x99);
      assert.equal(c.connected, true);
    } finally {
      await c.endAsync();
    }
  });
});

describe('refusals', () => {
  test('wrong password: 3.1.1 CONNACK 4, MQTT 5 0x86; no session ever', async () => {
    const id = dev('badpw');
    const e4 = await connectError(tcpUrl, { protocolVersion: 4, clientId: id, username: id, password: 'app-1.nope' });
    assert.equal(e4.code, 4);
    const e5 = await connectError(tcpUrl, { protocolVersion: 5, clientId: id, username: id, password: 'app-1.nope' });
    assert.equal(e5.code, 0x86, e5.message);
    const eNone = await connectError(wsUrl, { protocolVersion: 4, clientId: id });
    assert.equal(eNone.code, 4);
    // Another device's token under this client id
    const eOther = await connectError(tcpUrl, { protocolVersion: 5, clientId: id, username: id, password: token('d-other') });
    assert.equal(eOther.code, 0x86);
    await sleep(50);
    assert.equal(rec.find('online', (e) => e.s.deviceId === id), undefined);
  });

  test('an identity for another device than the client id: not authorized (5 / 0x87)', async () => {
    const id = dev('mismatch');
    const e4 = await connectError(tcpUrl, { protocolVersion: 4, clientId: id, username: 'mismatch', password: 'x' });
    assert.equal(e4.code, 5);
    const e5 = await connectError(tcpUrl, { protocolVersion: 5, clientId: id, username: 'mismatch', password: 'x' });
    assert.equal(e5.code, 0x87);
  });

  test("subscribing to another device's topic: SUBACK failure (0x80 / 0x87); a wildcard: MQTT 5 0xA2", async () => {
    for (const protocolVersion of [4, 5] as const) {
      const id = dev(`sub${protocolVersion}`);
      const { c } = await mqttClient(tcpUrl, id, { protocolVersion });
      try {
        for (const [topic, v5code] of [
          ['devices/someone-else', 0x87],
          [`devices/${id}/x`, 0x87],
          ['devices/#', 0xa2],
          ['#', 0xa2],
          ['devices/+', 0xa2],
          [`+/${id}`, 0xa2],
        ] as const) {
          await assert.rejects(
            c.subscribeAsync(topic, { qos: 1 }),
            (e: { packet?: { granted?: number[] } }) => e.packet?.granted?.[0] === (protocolVersion === 4 ? 0x80 : v5code),
            topic,
          );
        }
        const ok = await c.subscribeAsync(`devices/${id}`, { qos: 1 });
        assert.equal(ok[0]?.qos, 1);
        await c.unsubscribeAsync(`devices/${id}`);
        assert.equal(c.connected, true);
        // After UNSUBSCRIBE, pushes wait again.
        gw.deliver(APP, id, push('m-u', 1));
        assert.equal(gw.pendingFor(APP, id)?.[0]?.written, false);
      } finally {
        await c.endAsync();
      }
    }
  });

  test('a SUBSCRIBE in several filters: each gets its own code (MQTT 5: granted, 0xA2, 0x87, 0x9E)', async () => {
    const id = dev('submix');
    const raw = await Raw.open(port, 5);
    await raw.connect(id);
    raw.send({
      cmd: 'subscribe',
      messageId: 7,
      subscriptions: [
        { topic: `devices/${id}`, qos: 1 },
        { topic: 'devices/#', qos: 1 },
        { topic: 'devices/someone-else', qos: 0 },
        { topic: `$share/g/devices/${id}`, qos: 1 },
      ],
    });
    const suback = (await raw.waitFor('suback')) as { messageId?: number; granted?: number[] };
    assert.equal(suback.messageId, 7);
    assert.deepEqual(suback.granted, [1, 0xa2, 0x87, 0x9e]);
    raw.sock.destroy();
  });

  test('MQTT 5 SUBSCRIBE with a Subscription Identifier: DISCONNECT 0xA1, closed (CONNACK says none are available)', async () => {
    const id = dev('subid');
    const { c, connack } = await mqttClient(tcpUrl, id, { protocolVersion: 5 });
    assert.equal(connack.properties?.subscriptionIdentifiersAvailable, false);
    const disconnected = new Promise<{ reasonCode?: number }>((resolve) => c.once('disconnect', (p) => resolve(p)));
    c.subscribe(`devices/${id}`, { qos: 1, properties: { subscriptionIdentifier: 42 } });
    assert.equal((await within(disconnected)).reasonCode, 0xa1);
    const off = await rec.wait('offline', (e) => e.s.deviceId === id);
    assert.equal(off.why, 'protocol-error');
    c.end(true);

    // Without one, the same SUBSCRIBE is granted.
    const id2 = dev('nosubid');
    const other = await mqttClient(tcpUrl, id2, { protocolVersion: 5 });
    assert.equal((await other.c.subscribeAsync(`devices/${id2}`, { qos: 1 }))[0]?.qos, 1);
    await other.c.endAsync();
  });

  test('a Will with Will Retain: MQTT 5 CONNACK 0x9A (CONNACK says Retain Available 0); 3.1.1 accepted; unretained Will accepted', async () => {
    const will = { topic: '$relay/control', payload: Buffer.from('{"type":"gone"}'), qos: 0 as const, retain: true };
    const id5 = dev('willr5');
    const e5 = await connectError(tcpUrl, { protocolVersion: 5, clientId: id5, username: id5, password: token(id5), will });
    assert.equal(e5.code, 0x9a, e5.message);
    await sleep(50);
    assert.equal(rec.find('online', (e) => e.s.deviceId === id5), undefined);

    const id4 = dev('willr4');
    const { c: c4 } = await mqttClient(tcpUrl, id4, { protocolVersion: 4, will });
    await c4.endAsync();
    const idPlain = dev('will5');
    const { c: c5 } = await mqttClient(tcpUrl, idPlain, { protocolVersion: 5, will: { ...will, retain: false } });
    await c5.endAsync();

    // A QoS 2 Will is refused too: CONNACK says Maximum QoS 1.
    const idq2 = dev('willq2');
    const eq2 = await connectError(tcpUrl, { protocolVersion: 5, clientId: idq2, username: idq2, password: token(idq2), will: { ...will, retain: false, qos: 2 } });
    assert.equal(eq2.code, 0x9b, eq2.message);
  });

  test('publishing to a forbidden topic: MQTT 5 PUBACK 0x87; 3.1.1 disconnect', async () => {
    const id5 = dev('pub5');
    const { c: c5 } = await mqttClient(tcpUrl, id5, { protocolVersion: 5 });
    try {
      await assert.rejects(c5.publishAsync(`devices/${id5}`, '{}', { qos: 1 }), (e: { code?: number }) => e.code === 0x87);
      assert.equal(c5.connected, true);
    } finally {
      await c5.endAsync();
    }
    const id4 = dev('pub4');
    const { c: c4 } = await mqttClient(tcpUrl, id4, { protocolVersion: 4 });
    const closed = new Promise<void>((resolve) => c4.once('close', () => resolve()));
    c4.publish('devices/anyone', '{}', { qos: 1 });
    await within(closed);
    const off = await rec.wait('offline', (e) => e.s.deviceId === id4);
    assert.equal(off.why, 'protocol-error');
    c4.end(true);
  });
});

describe('robustness', () => {
  test('garbage bytes and a packet before CONNECT close that connection only', async () => {
    const junk = await Raw.open(port);
    junk.sock.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00])); // bad remaining length
    assert.equal(await junk.isClosedWithin(2000), true);
    const early = await Raw.open(port);
    early.send({ cmd: 'pingreq' });
    assert.equal(await early.isClosedWithin(2000), true);
    const http1 = await Raw.open(port);
    http1.sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(await http1.isClosedWithin(2000), true);
    const bigConnect = await Raw.open(port); // a 20 KB CONNECT: more than a stranger may send
    bigConnect.sock.write(Buffer.from([0x10, 0xa0, 0x9c, 0x01]));
    assert.equal(await bigConnect.isClosedWithin(2000), true);
    // Still serving:
    const id = dev('after-junk');
    const { c } = await mqttClient(tcpUrl, id, { protocolVersion: 4 });
    await c.endAsync();
  });

  test('malformed packet from an online client: closed, onOffline protocol-error', async () => {
    const id = dev('malformed');
    const raw = await Raw.open(port, 4);
    await raw.connect(id);
    raw.sock.write(Buffer.from([0x82, 0x00])); // SUBSCRIBE with no payload
    assert.equal(await raw.isClosedWithin(2000), true);
    assert.equal((await rec.wait('offline', (e) => e.s.deviceId === id)).why, 'protocol-error');
  });

  test('oversized packet: MQTT 5 DISCONNECT 0x95, closed; 3.1.1 closed', async () => {
    const id5 = dev('big5');
    const raw5 = await Raw.open(port, 5);
    await raw5.connect(id5);
    // PUBLISH header announcing 1 MiB, followed by a little of it.
    raw5.sock.write(Buffer.concat([Buffer.from([0x30, 0x80, 0x80, 0x40]), Buffer.alloc(1000)]));
    const disc = await raw5.waitFor('disconnect');
    assert.equal((disc as { reasonCode?: number }).reasonCode, 0x95);
    assert.equal(await raw5.isClosedWithin(2000), true);
    assert.equal((await rec.wait('offline', (e) => e.s.deviceId === id5)).why, 'protocol-error');

    const id4 = dev('big4');
    const raw4 = await Raw.open(port, 4);
    await raw4.connect(id4);
    raw4.send({ cmd: 'publish', topic: '$relay/control', qos: 0, dup: false, retain: false, payload: Buffer.alloc(70 * 1024, 0x61) });
    assert.equal(await raw4.isClosedWithin(2000), true);
    // A big but allowed packet is fine:
    const id = dev('okbig');
    const { c } = await mqttClient(tcpUrl, id, { protocolVersion: 5 });
    await c.publishAsync('$relay/control', JSON.stringify({ type: 'x', pad: 'a'.repeat(30_000) }), { qos: 1 });
    await c.endAsync();
  });

  test('PINGREQ → PINGRESP; second CONNECT, QoS 2 and PUBREC are protocol errors', async () => {
    const a = await Raw.open(port, 4);
    await a.connect(dev('ping'));
    a.send({ cmd: 'pingreq' });
    await a.waitFor('pingresp');
    a.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'x', clean: true, keepalive: 0 });
    assert.equal(await a.isClosedWithin(2000), true);

    const b = await Raw.open(port, 5);
    const idB = dev('qos2');
    await b.connect(idB);
    b.send({ cmd: 'publish', topic: '$relay/control', qos: 2, messageId: 1, dup: false, retain: false, payload: '{}' });
    assert.equal(((await b.waitFor('disconnect')) as { reasonCode?: number }).reasonCode, 0x9b);
    assert.equal(await b.isClosedWithin(2000), true);

    const c = await Raw.open(port, 4);
    await c.connect(dev('pubrec'));
    c.send({ cmd: 'pubrec', messageId: 1 });
    assert.equal(await c.isClosedWithin(2000), true);
  });

  test('no CONNECT within the connect timeout: closed', async () => {
    const raw = await Raw.open(port);
    assert.equal(await raw.isClosedWithin(3000), true);
  });

  test('takeover: a second connection with the same client id closes the first (v5: 0x8E)', async () => {
    const id = dev('takeover');
    const first = await mqttClient(tcpUrl, id, { protocolVersion: 5 });
    const disconnected = new Promise<{ reasonCode?: number }>((resolve) => first.c.once('disconnect', (p) => resolve(p)));
    await rec.wait('online', (e) => e.s.deviceId === id);
    const second = await mqttClient(wsUrl, id, { protocolVersion: 5 });
    try {
      assert.equal((await within(disconnected)).reasonCode, 0x8e);
      const iOff = rec.events.findIndex((e) => e.t === 'offline' && e.s.deviceId === id);
      const iOn2 = rec.events.findIndex((e, i) => i > iOff && e.t === 'online' && e.s.deviceId === id);
      assert.ok(iOff >= 0, 'old session went offline');
      assert.equal((rec.events[iOff] as { why: string }).why, 'takeover');
      assert.ok(iOn2 > iOff, 'onOffline(old) ran before onOnline(new)');
      assert.equal(gw.session(APP, id)?.transport, 'ws');
      assert.equal(gw.isOnline(APP, id), true);
    } finally {
      first.c.end(true);
      await second.c.endAsync();
    }
  });

  test('kick(): the device goes offline with that reason', async () => {
    const id = dev('kick');
    const { c } = await mqttClient(tcpUrl, id, { protocolVersion: 5 });
    const disconnected = new Promise<{ reasonCode?: number }>((resolve) => c.once('disconnect', (p) => resolve(p)));
    assert.equal(gw.kick(APP, id, 'takeover'), true);
    assert.equal((await within(disconnected)).reasonCode, 0x8e);
    assert.equal((await rec.wait('offline', (e) => e.s.deviceId === id)).why, 'takeover');
    assert.equal(gw.isOnline(APP, id), false);
    c.end(true);
  });
});

describe('expiry, window and pending', () => {
  test('an expired message is never written; reported via onDropped', async () => {
    const id = dev('expired');
    const { c } = await mqttClient(tcpUrl, id, { protocolVersion: 5 });
    try {
      await c.subscribeAsync(`devices/${id}`, { qos: 1 });
      let received = 0;
      c.on('message', () => received++);
      assert.equal(gw.deliver(APP, id, { ...push('m-old', 1), expiresAt: Date.now() - 1 }), true);
      await rec.wait('dropped', (e) => e.deviceId === id && e.id === 'm-old');
      // Expires while it waits behind a missing SUBSCRIBE:
      await c.unsubscribeAsync(`devices/${id}`);
      gw.deliver(APP, id, push('m-short', 2, 150));
      await sleep(300);
      await c.subscribeAsync(`devices/${id}`, { qos: 1 });
      const dropped = await rec.wait('dropped', (e) => e.deviceId === id && e.id === 'm-short');
      assert.equal(dropped.reason, 'expired');
      await sleep(200);
      assert.equal(received, 0);
      assert.equal(rec.find('ack', (e) => e.deviceId === id), undefined);
    } finally {
      await c.endAsync();
    }
  });

  test('in-flight window, and un-acked messages handed back in onOffline', async () => {
    const local = new Recorder();
    const g = new GatewayServer({ authenticate: deviceTokenAuthenticator(SECRET), hooks: local.hooks(), maxInflight: 2, maxQueued: 3 });
    const p = await g.listenTcp(0, '127.0.0.1');
    try {
      const id = dev('window');
      const raw = await Raw.open(p, 4);
      await raw.connect(id);
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `devices/${id}`, qos: 1 }] });
      await raw.waitFor('suback');
      for (let i = 1; i <= 5; i++) assert.equal(g.deliver(APP, id, push(`m-${i}`, i)), true);
      assert.equal(g.deliver(APP, id, push('m-6', 6)), false, 'queue bound (3) reached');
      await sleep(100);
      let pubs = raw.packets.filter((x) => x.cmd === 'publish');
      assert.equal(pubs.length, 2, 'only maxInflight written');
      assert.deepEqual(
        g.pendingFor(APP, id)?.map((x) => [x.id, x.written]),
        [['m-1', true], ['m-2', true], ['m-3', false], ['m-4', false], ['m-5', false]],
      );
      raw.send({ cmd: 'puback', messageId: pubs[0]!.messageId! });
      await local.wait('ack', (e) => e.id === 'm-1');
      await sleep(50);
      pubs = raw.packets.filter((x) => x.cmd === 'publish');
      assert.equal(pubs.length, 3);
      assert.equal(JSON.parse(String((pubs[2] as { payload: Buffer }).payload)).id, 'm-3');
      raw.sock.destroy();
      const off = await local.wait('offline', (e) => e.s.deviceId === id);
      assert.equal(off.why, 'closed');
      assert.deepEqual(
        off.pending.map((x) => [x.id, x.seq, x.written]),
        [['m-2', 2, true], ['m-3', 3, true], ['m-4', 4, false], ['m-5', 5, false]],
      );
    } finally {
      await g.close();
    }
  });

  test('close(): MQTT 5 clients get DISCONNECT 0x8B; onOffline shutdown', async () => {
    const local = new Recorder();
    const g = new GatewayServer({ authenticate: deviceTokenAuthenticator(SECRET), hooks: local.hooks() });
    const p = await g.listenTcp(0, '127.0.0.1');
    const id = dev('shutdown');
    const { c } = await mqttClient(`mqtt://127.0.0.1:${p}`, id, { protocolVersion: 5 });
    const disconnected = new Promise<{ reasonCode?: number }>((resolve) => c.once('disconnect', (pk) => resolve(pk)));
    assert.equal(g.connectionCount, 1);
    assert.equal(g.onlineCount, 1);
    await g.close();
    assert.equal((await within(disconnected)).reasonCode, 0x8b);
    assert.equal((await local.wait('offline')).why, 'shutdown');
    assert.equal(g.connectionCount, 0);
    c.end(true);
  });
});

describe('session edge cases', () => {
  test('async authenticate: packets pipelined behind CONNECT are answered after CONNACK, in order', async () => {
    const local = new Recorder();
    const base = deviceTokenAuthenticator(SECRET);
    const g = new GatewayServer({
      authenticate: async (c, u, p) => {
        await sleep(50);
        if (u === 'boom') throw new Error('database down');
        return base(c, u, p);
      },
      hooks: local.hooks(),
    });
    const p = await g.listenTcp(0, '127.0.0.1');
    try {
      const id = dev('pipeline');
      const raw = await Raw.open(p, 4);
      raw.sock.write(
        Buffer.concat([
          generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: true, keepalive: 30, username: id, password: Buffer.from(token(id)) }),
          generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `devices/${id}`, qos: 1 }] }),
          generate({ cmd: 'pingreq' }),
        ]),
      );
      await raw.waitFor('pingresp');
      assert.deepEqual(raw.packets.map((x) => x.cmd), ['connack', 'suback', 'pingresp']);
      raw.sock.destroy();

      // authenticate throwing / rejecting: "server unavailable"
      const e4 = await connectError(`mqtt://127.0.0.1:${p}`, { protocolVersion: 4, clientId: id, username: 'boom', password: 'x' });
      assert.equal(e4.code, 3);
      const e5 = await connectError(`mqtt://127.0.0.1:${p}`, { protocolVersion: 5, clientId: id, username: 'boom', password: 'x' });
      assert.equal(e5.code, 0x88);
    } finally {
      await g.close();
    }
  });

  test('MQTT 5 network user property reaches adviseKeepAlive and SessionInfo; keep alive 0 → server max idle', async () => {
    const local = new Recorder();
    const seen: unknown[] = [];
    const g = new GatewayServer({
      authenticate: deviceTokenAuthenticator(SECRET),
      hooks: local.hooks(),
      adviseKeepAlive: (info) => {
        seen.push(info);
        return info.network === 'cmcc-4g' ? 300 : 0;
      },
      maxIdleSec: 1,
      sweepIntervalMs: 100,
    });
    const p = await g.listenTcp(0, '127.0.0.1');
    try {
      const id = dev('network');
      const { c, connack } = await mqttClient(`mqtt://127.0.0.1:${p}`, id, {
        protocolVersion: 5,
        keepalive: 45,
        properties: { userProperties: { network: 'cmcc-4g' } },
      });
      assert.equal(connack.properties?.serverKeepAlive, 300);
      assert.deepEqual(seen[0], { appId: APP, deviceId: id, network: 'cmcc-4g', requestedSec: 45 });
      const s = g.session(APP, id)!;
      assert.equal(s.network, 'cmcc-4g');
      assert.equal(s.idleTimeoutMs, 450_000);
      await c.endAsync();

      // Keep alive 0 and no report: the server's max idle (1 s here) applies.
      const id0 = dev('ka0');
      const raw = await Raw.open(p, 4);
      await raw.connect(id0, 0);
      assert.equal(g.session(APP, id0)?.idleTimeoutMs, 1000);
      assert.equal((await local.wait('offline', (e) => e.s.deviceId === id0, 4000)).why, 'timeout');
    } finally {
      await g.close();
    }
  });

  test('a client that stops reading is cut off (backpressure), its un-acked pushes handed back', async () => {
    const local = new Recorder();
    const g = new GatewayServer({
      authenticate: deviceTokenAuthenticator(SECRET),
      hooks: local.hooks(),
      maxInflight: 65535,
      maxQueued: 0,
      maxWriteBufferBytes: 256 * 1024,
    });
    const p = await g.listenTcp(0, '127.0.0.1');
    try {
      const id = dev('slow');
      const raw = await Raw.open(p, 4);
      await raw.connect(id);
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `devices/${id}`, qos: 1 }] });
      await raw.waitFor('suback');
      raw.sock.pause(); // never reads again
      const big = { data: { blob: 'x'.repeat(100_000) } };
      let accepted = 0;
      for (let i = 0; i < 2000 && g.isOnline(APP, id); i++) {
        if (g.deliver(APP, id, { id: `m-${i}`, seq: i, payload: big, expiresAt: Date.now() + 60_000 })) accepted++;
        if (i % 20 === 0) await sleep(1); // let the kernel buffers fill
      }
      const off = await local.wait('offline', (e) => e.s.deviceId === id);
      assert.equal(off.why, 'backpressure');
      assert.equal(off.pending.length, accepted);
      assert.ok(off.pending.every((x) => x.written));
      raw.sock.destroy();
    } finally {
      await g.close();
    }
  });
});

/** A session store in memory, answering resume() asynchronously like a Redis one. */
class MemoryStore implements SessionStore {
  /** deviceId → 0 (held by a connection) or the epoch ms its subscription expires. */
  subs = new Map<string, number>();
  calls: string[] = [];
  async resume(_appId: string, deviceId: string): Promise<boolean> {
    await sleep(20);
    this.calls.push(`resume ${deviceId}`);
    const v = this.subs.get(deviceId);
    if (v === undefined || (v !== 0 && v <= Date.now())) return false;
    this.subs.set(deviceId, 0);
    return true;
  }
  hold(_appId: string, deviceId: string): void {
    this.calls.push(`hold ${deviceId}`);
    this.subs.set(deviceId, 0);
  }
  expire(_appId: string, deviceId: string, expirySec: number): void {
    this.calls.push(`expire ${deviceId} ${expirySec}`);
    if (expirySec > 0) this.subs.set(deviceId, Date.now() + expirySec * 1000);
    else this.subs.delete(deviceId);
  }
}

describe('persistent sessions (clean session 0 / Session Expiry > 0)', () => {
  const store = new MemoryStore();
  const local = new Recorder();
  let g: GatewayServer;
  let url: string;

  before(async () => {
    g = new GatewayServer({ authenticate: deviceTokenAuthenticator(SECRET), hooks: local.hooks(), sessions: store, maxSessionExpirySec: 3600 });
    url = `mqtt://127.0.0.1:${await g.listenTcp(0, '127.0.0.1')}`;
  });
  after(() => g.close());

  /** Paho's way: clean session 0, subscribe after the first connect only, never resubscribe. */
  const paho = (id: string, opts: IClientOptions = {}) => mqttClient(url, id, { protocolVersion: 4, clean: false, resubscribe: false, ...opts });

  test('3.1.1: a reconnect without SUBSCRIBE gets Session Present and its pushes; a clean session discards it', async () => {
    const id = dev('paho');
    const first = await paho(id);
    assert.equal(first.connack.sessionPresent, false, 'nothing to resume yet');
    await first.c.subscribeAsync(`devices/${id}`, { qos: 1 });
    await first.c.endAsync();
    await local.wait('offline', (e) => e.s.deviceId === id);
    assert.deepEqual(store.calls.filter((c) => c.split(' ')[1] === id), [`resume ${id}`, `hold ${id}`, `expire ${id} 3600`]);

    // Auto-reconnect after a dropped connection, as Paho does it: no SUBSCRIBE.
    const again = await paho(id, { reconnectPeriod: 100 });
    try {
      assert.equal(again.connack.sessionPresent, true);
      const online = await local.wait('online', (e) => e.s.deviceId === id && e.s.sessionPresent);
      assert.equal(online.s.sessionExpirySec, 3600);
      const got = onMessage(again.c, `devices/${id}`);
      assert.equal(g.deliver(APP, id, push('m-resumed', 1)), true);
      assert.equal((await within(got)).packet.dup, false);
      await local.wait('ack', (e) => e.deviceId === id && e.id === 'm-resumed');

      const reconnected = new Promise<MqttConnack>((resolve) => again.c.once('connect', resolve));
      again.c.stream.destroy();
      assert.equal((await within(reconnected)).sessionPresent, true, 'after an auto-reconnect too');
      const got2 = onMessage(again.c, `devices/${id}`);
      await local.wait('online', (e) => e.s.deviceId === id && e.s.connectedAt > online.s.connectedAt);
      assert.equal(g.deliver(APP, id, push('m-after-drop', 2)), true);
      assert.equal((await within(got2)).payload.id, 'm-after-drop');
    } finally {
      await again.c.endAsync();
    }

    // A clean session starts afresh: Session Present 0, pushes wait for its SUBSCRIBE, and the
    // persisted session is gone for later connects too.
    const clean = await mqttClient(url, id, { protocolVersion: 4, clean: true });
    try {
      assert.equal(clean.connack.sessionPresent, false);
      assert.equal(g.deliver(APP, id, push('m-clean', 3)), true);
      assert.deepEqual(g.pendingFor(APP, id)?.map((p) => p.written), [false], 'waits for the SUBSCRIBE');
    } finally {
      await clean.c.endAsync();
    }
    const later = await paho(id);
    assert.equal(later.connack.sessionPresent, false);
    await later.c.endAsync();
  });

  test('MQTT 5: Session Expiry is granted (capped) and resumed; takeover keeps it; DISCONNECT with expiry 0 ends it', async () => {
    const id = dev('v5sess');
    const opts = (sec: number): IClientOptions => ({ protocolVersion: 5, clean: false, resubscribe: false, properties: { sessionExpiryInterval: sec } });
    const first = await mqttClient(url, id, opts(86_400));
    assert.equal(first.connack.sessionPresent, false);
    assert.equal(first.connack.properties?.sessionExpiryInterval, 3600, 'capped at maxSessionExpirySec');
    await first.c.subscribeAsync(`devices/${id}`, { qos: 1 });
    await first.c.endAsync();
    await local.wait('offline', (e) => e.s.deviceId === id);

    const second = await mqttClient(url, id, opts(600));
    assert.equal(second.connack.sessionPresent, true);
    assert.equal(second.connack.properties?.sessionExpiryInterval, 600);
    const secondOn = g.session(APP, id)!.connectedAt;
    // A takeover (the phone reconnects before the old connection timed out) resumes the session,
    // and the connection taken over does not start the session's expiry.
    const before = store.calls.length;
    const third = await mqttClient(url, id, opts(600));
    second.c.end(true);
    assert.equal(third.connack.sessionPresent, true);
    assert.equal((await local.wait('offline', (e) => e.s.deviceId === id && e.s.connectedAt === secondOn)).why, 'takeover');
    assert.deepEqual(store.calls.slice(before), [`resume ${id}`]);
    const thirdOn = g.session(APP, id)!.connectedAt;
    const got = onMessage(third.c, `devices/${id}`);
    assert.equal(g.deliver(APP, id, push('m-v5', 1)), true);
    assert.equal((await within(got)).payload.id, 'm-v5');
    await third.c.endAsync({ properties: { sessionExpiryInterval: 0 } } as never);
    await local.wait('offline', (e) => e.s.connectedAt === thirdOn && e.s.deviceId === id);
    assert.equal(store.calls.at(-1), `expire ${id} 0`, 'DISCONNECT with Session Expiry 0 ends the session');
    const fourth = await mqttClient(url, id, opts(600));
    assert.equal(fourth.connack.sessionPresent, false);
    await fourth.c.endAsync();
  });

  test('MQTT 5 Clean Start 0 with Session Expiry 0: nothing outlives the connection', async () => {
    const id = dev('v5exp0');
    const first = await mqttClient(url, id, { protocolVersion: 5, clean: false, resubscribe: false });
    assert.equal(first.connack.properties?.sessionExpiryInterval, 0);
    await first.c.subscribeAsync(`devices/${id}`, { qos: 1 });
    await first.c.endAsync();
    const second = await mqttClient(url, id, { protocolVersion: 5, clean: false, resubscribe: false });
    assert.equal(second.connack.sessionPresent, false);
    await second.c.endAsync();
    assert.ok(!store.calls.includes(`hold ${id}`));
  });

  test('MQTT 5 Clean Start 1 with Session Expiry discards the old session and starts a persistent one; UNSUBSCRIBE ends it', async () => {
    const id = dev('v5fresh');
    const opts = (clean: boolean): IClientOptions => ({ protocolVersion: 5, clean, resubscribe: false, properties: { sessionExpiryInterval: 600 } });
    const first = await mqttClient(url, id, opts(true));
    assert.equal(first.connack.sessionPresent, false);
    await first.c.subscribeAsync(`devices/${id}`, { qos: 1 });
    await first.c.endAsync();
    await local.wait('offline', (e) => e.s.deviceId === id);
    const second = await mqttClient(url, id, opts(false));
    assert.equal(second.connack.sessionPresent, true);
    await second.c.unsubscribeAsync(`devices/${id}`);
    assert.equal(g.deliver(APP, id, push('m-unsub', 1)), true);
    assert.deepEqual(g.pendingFor(APP, id)?.map((p) => p.written), [false], 'unsubscribed: pushes wait');
    await second.c.endAsync();
    const third = await mqttClient(url, id, opts(false));
    assert.equal(third.connack.sessionPresent, false);
    await third.c.endAsync();
    assert.deepEqual(store.calls.filter((c) => c.split(' ')[1] === id).slice(0, 5), [
      `expire ${id} 0`, // the clean start
      `hold ${id}`,
      `expire ${id} 600`,
      `resume ${id}`,
      `expire ${id} 0`, // the UNSUBSCRIBE
    ]);
  });

  test('without a session store every session ends with its connection', async () => {
    const id = dev('nostore');
    const first = await mqttClient(tcpUrl, id, { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } });
    assert.equal(first.connack.properties?.sessionExpiryInterval, 0);
    await first.c.subscribeAsync(`devices/${id}`, { qos: 1 });
    await first.c.endAsync();
    const second = await mqttClient(tcpUrl, id, { protocolVersion: 4, clean: false, resubscribe: false });
    assert.equal(second.connack.sessionPresent, false);
    await second.c.endAsync();
  });
});

describe('keep alive 0, protocol levels, pushes the device cannot take', () => {
  test('MQTT 5 keep alive 0: no Server Keep Alive is imposed; the server max idle applies; advice on $relay/heartbeat', async () => {
    const local = new Recorder();
    // Default advice: 270 s for a device that asked for none.
    const g = new GatewayServer({ authenticate: deviceTokenAuthenticator(SECRET), hooks: local.hooks(), maxIdleSec: 1800 });
    const p = await g.listenTcp(0, '127.0.0.1');
    try {
      const id = dev('ka0v5');
      const { c, connack } = await mqttClient(`mqtt://127.0.0.1:${p}`, id, { protocolVersion: 5, keepalive: 0 });
      try {
        assert.equal(connack.properties?.serverKeepAlive, undefined, 'MQTT.js with keepalive 0 would never ping at 270 s');
        const s = g.session(APP, id)!;
        assert.equal(s.keepAliveSec, 0);
        assert.equal(s.intervalSec, 0);
        assert.equal(s.idleTimeoutMs, 1_800_000);
        assert.equal(s.advisedSec, 270);
        const got = onMessage(c, '$relay/heartbeat');
        await c.subscribeAsync('$relay/heartbeat', { qos: 0 });
        assert.deepEqual((await within(got)).payload, { adviseSec: 270 });
      } finally {
        await c.endAsync();
      }
      // A keep alive asked for still gets the advice in force.
      const id2 = dev('ka60v5');
      const other = await mqttClient(`mqtt://127.0.0.1:${p}`, id2, { protocolVersion: 5, keepalive: 60 });
      assert.equal(other.connack.properties?.serverKeepAlive, 60);
      await other.c.endAsync();
    } finally {
      await g.close();
    }
  });

  test('an unsupported protocol level gets a CONNACK before the close (level 6: 0x84 in MQTT 5 form; level 2: return code 1)', async () => {
    const connect = generate(
      { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'lvl', clean: true, keepalive: 30, username: 'lvl', password: Buffer.from('x') },
      { protocolVersion: 5 },
    );
    assert.equal(connect.subarray(4, 8).toString(), 'MQTT');
    for (const [level, version, field, code] of [
      [6, 5, 'reasonCode', 0x84],
      [2, 4, 'returnCode', 1],
    ] as const) {
      const raw = await Raw.open(port, version);
      const bytes = Buffer.from(connect);
      bytes[8] = level;
      raw.sock.write(bytes);
      const connack = (await raw.waitFor('connack')) as unknown as Record<string, unknown>;
      assert.equal(connack[field], code, `level ${level}: ${JSON.stringify(connack)}`);
      assert.equal(await raw.isClosedWithin(2000), true);
    }
  });

  test('MQTT 5 PUBACK reason code ≥ 0x80 → onDropped rejected with the code; a push over the client Maximum Packet Size → too-large with the sizes', async () => {
    const id = dev('refuse');
    const raw = await Raw.open(port, 5);
    raw.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: id,
      clean: true,
      keepalive: 60,
      username: id,
      password: Buffer.from(token(id)),
      properties: { maximumPacketSize: 300 },
    });
    await raw.waitFor('connack');
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `devices/${id}`, qos: 1 }] });
    await raw.waitFor('suback');
    assert.equal(gw.deliver(APP, id, push('m-no', 1)), true);
    const pub = (await raw.waitFor('publish')) as { messageId?: number };
    raw.send({ cmd: 'puback', messageId: pub.messageId!, reasonCode: 0x83 });
    const refused = await rec.wait('dropped', (e) => e.deviceId === id && e.id === 'm-no');
    assert.equal(refused.reason, 'rejected');
    assert.deepEqual(refused.detail, { reasonCode: 0x83 });
    assert.equal(rec.find('ack', (e) => e.deviceId === id), undefined);

    assert.equal(gw.deliver(APP, id, { ...push('m-big', 2), payload: { data: { blob: 'x'.repeat(400) } } }), true);
    const big = await rec.wait('dropped', (e) => e.deviceId === id && e.id === 'm-big');
    assert.equal(big.reason, 'too-large');
    assert.equal(big.detail?.limit, 300);
    assert.ok((big.detail?.bytes ?? 0) > 400, JSON.stringify(big.detail));
    assert.deepEqual(gw.pendingFor(APP, id), []);
    raw.sock.destroy();
  });
});
