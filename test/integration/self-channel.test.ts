import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { client, eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { MqttDevice, RawDevice, type SelfInfo } from '../helpers/self-devices.js';

type App = Awaited<ReturnType<typeof newApp>>;

describe('self channel: REST → route → self provider → gateway → MQTT client → PUBACK', () => {
  let t: TestRelay;
  let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
  let app: App;
  const open: { end(): unknown }[] = [];

  before(async () => {
    mocks = await startProviderMocks();
    // All roles in this process (the gateway on an ephemeral port); a short ack timeout for the
    // fallback, yet long enough for a PUBACK on a busy machine.
    t = await startTestRelay({ ...mocks.env, SELF_ACK_TIMEOUT: '3s' });
    app = await newApp(t);
    const r = await app.api('PUT', `/v1/apps/${app.appId}/credentials/fcm`, mocks.credentials.fcm);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });
  after(async () => {
    for (const d of open) await Promise.resolve(d.end()).catch(() => undefined);
    await t?.stop();
    await t?.iso.drop();
    await mocks?.close();
  });

  async function register(id: string, body: Record<string, unknown> = {}): Promise<SelfInfo> {
    const r = await app.api('PUT', `/v1/devices/${id}`, { platform: 'android', brand: 'samsung', ...body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.self as SelfInfo;
  }

  async function connect(self: SelfInfo, opts: Parameters<typeof MqttDevice.connect>[2] = {}): Promise<MqttDevice> {
    const dev = await MqttDevice.connect(self.mqtt, self, opts);
    open.push(dev);
    await online(self.clientId);
    return dev;
  }

  /** Presence is written right after the CONNACK; wait for it so routing sees the device online. */
  async function online(deviceId: string) {
    await eventually(async () => ((await t.relay.gateway!.presence.get(app.appId, deviceId)) ? true : undefined), 10_000, `${deviceId} online`);
  }

  async function message(id: string) {
    return (await app.api('GET', `/v1/messages/${id}`)).body;
  }

  async function until(id: string, pred: (m: any) => boolean, what: string, ms = 20_000) {
    return eventually(async () => {
      const m = await message(id);
      return pred(m) ? m : undefined;
    }, ms, what);
  }

  async function deliveries(id: string): Promise<any[]> {
    return (await app.api('GET', `/v1/messages/${id}/deliveries?limit=1000`)).body.items;
  }

  test('registration points devices at the in-process gateway', async () => {
    const self = await register('reg-1');
    assert.equal(self.mqtt, `mqtt://127.0.0.1:${t.relay.mqttPort}`);
    assert.equal(self.ws, `ws://127.0.0.1:${t.relay.port}/mqtt`);
    assert.equal(self.topic, 'devices/reg-1');
  });

  test('online → self (MQTT 5 and 3.1.1, TCP and WebSocket): the push arrives, its PUBACK makes it delivered; offline → FCM', async () => {
    const v5 = await register('on-v5', { tokens: { fcm: 'fcm-on-v5' } });
    const v4 = await register('on-v4', { tokens: { fcm: 'fcm-on-v4' } });
    const ws = await register('on-ws');
    await register('off-fcm', { tokens: { fcm: 'fcm-off-1' } });
    const d5 = await connect(v5, { version: 5 });
    const d4 = await connect(v4, { version: 4 });
    const dw = await MqttDevice.connect(ws.ws, ws, { version: 5 });
    open.push(dw);
    await online('on-ws');
    const metrics = await (await fetch(`${t.base}/metrics`)).text();
    const onlineGauge = Number(/relay_gateway_connections\{state="online"\} (\d+)/.exec(metrics)?.[1]);
    assert.ok(onlineGauge >= 3, `the gateway's online sessions are in /metrics (${onlineGauge})`);

    const pushed = await app.api('POST', '/v1/push', {
      to: { devices: ['on-v5', 'on-v4', 'on-ws', 'off-fcm'] },
      notification: { title: 'Hello', body: 'over MQTT' },
      data: { orderId: '42' },
    });
    assert.equal(pushed.status, 202);
    const id = pushed.body.id as string;
    for (const d of [d5, d4, dw]) {
      const got = await d.waitFor(id);
      assert.equal(got.topic, d === d5 ? 'devices/on-v5' : d === d4 ? 'devices/on-v4' : 'devices/on-ws');
      assert.equal(got.body.type, 'push');
      assert.equal(got.body.seq, 1, 'the first message of each device has seq 1');
      assert.deepEqual(got.body.notification, { title: 'Hello', body: 'over MQTT' });
      assert.deepEqual(got.body.data, { orderId: '42' });
      assert.equal(typeof got.body.expiresAt, 'number');
      assert.equal(got.dup, false);
    }
    const m = await until(id, (x) => x.counts.delivered === 3 && x.counts.sent === 1, 'three delivered, one sent');
    assert.deepEqual(m.byChannel.self, { delivered: 3 });
    assert.deepEqual(m.byChannel.fcm, { sent: 1 });
    const fcm = mocks.fcm.requests.find((r) => r.token === 'fcm-off-1');
    assert.ok(fcm, 'the offline device went to FCM');
    assert.equal((fcm.body as { message: { data: Record<string, string> } }).message.data.relay_id, id);
    assert.ok(!mocks.fcm.requests.some((r) => r.token === 'fcm-on-v5' || r.token === 'fcm-on-v4'), 'online devices were not sent to FCM');
    const rows = await deliveries(id);
    const v5row = rows.find((r) => r.deviceId === 'on-v5');
    assert.equal(v5row.providerId, '1', 'the self provider id is the seq');
    assert.ok(v5row.deliveredAt);

    // The next message of the same device gets the next seq.
    const second = await app.api('POST', '/v1/push', { to: { devices: ['on-v5'] }, data: { n: 2 } });
    assert.equal((await d5.waitFor(second.body.id)).body.seq, 2);
    await until(second.body.id, (x) => x.counts.delivered === 1, 'second delivered');
  });

  test('offline: a pinned self message waits in PostgreSQL and arrives on connect; one whose TTL ended never does', async () => {
    const self = await register('later');
    const kept = await app.api('POST', '/v1/push', { to: { devices: ['later'] }, notification: { title: 'kept' }, options: { channels: ['self'] } });
    const stale = await app.api('POST', '/v1/push', { to: { devices: ['later'] }, notification: { title: 'stale' }, options: { channels: ['self'], ttl: 3600 } });
    await until(kept.body.id, (x) => x.counts.sent === 1, 'kept sent');
    await until(stale.body.id, (x) => x.counts.sent === 1, 'stale sent');
    // The TTL runs out while the device is away (moved into the past rather than waited for).
    await sql`UPDATE messages SET expires_at = now() - interval '1 second' WHERE id = ${stale.body.id}`.execute(t.relay.ctx.db);
    const swept = await t.relay.sweeper!.sweep();
    assert.ok(swept.expired >= 1);
    assert.equal((await message(stale.body.id)).counts.expired, 1);

    // The two were numbered by concurrent send jobs: seqs 1 and 2, in either order.
    const keptSeq = Number((await deliveries(kept.body.id))[0].providerId);
    assert.deepEqual([keptSeq, Number((await deliveries(stale.body.id))[0].providerId)].sort(), [1, 2]);

    const dev = await connect(self, { version: 4 });
    const got = await dev.waitFor(kept.body.id);
    assert.equal(got.body.seq, keptSeq);
    assert.deepEqual(got.body.notification, { title: 'kept' });
    assert.equal(got.dup, false, 'never written to the device before: no DUP');
    await until(kept.body.id, (x) => x.counts.delivered === 1, 'kept delivered');
    // A later push arrives behind whatever the connect handed out: had the stale one been handed
    // out, it would be here by now.
    const later = await app.api('POST', '/v1/push', { to: { devices: ['later'] }, data: { n: 3 } });
    assert.equal((await dev.waitFor(later.body.id)).body.seq, 3);
    assert.ok(!dev.received.some((r) => r.body.id === stale.body.id), 'an expired message is never delivered');
    assert.deepEqual((await message(stale.body.id)).counts.expired, 1);
  });

  test('a push the device never acks falls back to FCM after SELF_ACK_TIMEOUT; its late PUBACK still counts', async () => {
    const self = await register('mute', { tokens: { fcm: 'fcm-mute-1' } });
    const dev = await RawDevice.connect(t.relay.mqttPort!, self, 5);
    open.push({ end: () => dev.close() });
    await online('mute');
    const pushed = await app.api('POST', '/v1/push', { to: { devices: ['mute'] }, notification: { title: 'are you there?' } });
    const id = pushed.body.id as string;
    await dev.waitForBody((b) => b.id === id, 'the self copy');
    // The device may have it before the send worker has written `sent`.
    await until(id, (x) => x.byChannel.self?.sent === 1 || x.byChannel.fcm !== undefined, 'sent on self, not acked');

    const fcm = await eventually(async () => mocks.fcm.requests.find((r) => r.token === 'fcm-mute-1'), 20_000, 'the FCM fallback');
    assert.equal((fcm.body as { message: { data: Record<string, string> } }).message.data.relay_id, id, 'the same message id travels on FCM');
    const m = await until(id, (x) => x.byChannel.fcm?.sent === 1, 'the delivery moved to fcm');
    assert.equal(m.recipients, 1);
    assert.equal(m.counts.sent, 1, 'still one delivery');
    const [row] = await deliveries(id);
    assert.equal(row.channel, 'fcm');
    assert.equal(row.attempts, 2, 'the self attempt and the FCM attempt');

    // The device acks the self copy after all: delivered, whichever channel the row is on now.
    dev.ack(id);
    const done = await until(id, (x) => x.counts.delivered === 1, 'delivered by the late PUBACK');
    assert.deepEqual(done.byChannel.fcm, { delivered: 1 });
  });

  test('a pinned self push to an online device that never acks stays sent (no other channel) and comes again on reconnect', async () => {
    const self = await register('pinned-mute', { tokens: { fcm: 'fcm-pinned-mute' } });
    const dev = await RawDevice.connect(t.relay.mqttPort!, self, 4);
    await online('pinned-mute');
    const pushed = await app.api('POST', '/v1/push', { to: { devices: ['pinned-mute'] }, data: { k: 'v' }, options: { channels: ['self'] } });
    await dev.waitForBody((b) => b.id === pushed.body.id, 'the push');
    // The ack-timeout check ran and found nothing else to fall back to.
    const row = await sql<{ id: string }>`SELECT id FROM deliveries WHERE message_id = ${pushed.body.id}`.execute(t.relay.ctx.db);
    const deliveryId = String(row.rows[0]!.id);
    await eventually(async () => {
      const done = await t.relay.ctx.queues.selfAck.getCompleted();
      return done.some((j) => j.data.ids.includes(deliveryId)) ? true : undefined;
    }, 20_000, 'the ack check');
    const m = await message(pushed.body.id);
    assert.deepEqual(m.byChannel, { self: { sent: 1 } });
    assert.ok(!mocks.fcm.requests.some((r) => r.token === 'fcm-pinned-mute'));
    dev.close();
    await dev.closed;
    await eventually(async () => ((await t.relay.gateway!.presence.get(app.appId, 'pinned-mute')) ? undefined : true), 10_000, 'offline');
    const again = await connect(self, { version: 5 });
    const got = await again.waitFor(pushed.body.id);
    assert.equal(got.dup, true);
    await until(pushed.body.id, (x) => x.counts.delivered === 1, 'delivered after the reconnect');
  });

  test('inbox sync: pending messages by seq with device authentication; wrong password 401, another device 403', async () => {
    const self = await register('poller');
    const other = await register('poller-2');
    // One after the other, so that a gets seq 1 and b seq 2.
    const a = await app.api('POST', '/v1/push', { to: { devices: ['poller'] }, notification: { title: 'a' }, data: { x: 1 }, options: { channels: ['self'] } });
    await until(a.body.id, (x) => x.counts.sent === 1, 'a sent');
    const b = await app.api('POST', '/v1/push', { to: { devices: ['poller'] }, notification: { title: 'b' }, options: { channels: ['self'] } });
    await until(b.body.id, (x) => x.counts.sent === 1, 'b sent');
    const device = client(t.base);
    const auth = { authorization: `Device poller:${self.password}` };

    const all = await device('GET', '/v1/devices/poller/inbox', undefined, auth);
    assert.equal(all.status, 200, JSON.stringify(all.body));
    assert.deepEqual(all.body.items.map((i: any) => [i.id, i.seq]), [[a.body.id, 1], [b.body.id, 2]]);
    assert.deepEqual(all.body.items[0].notification, { title: 'a' });
    assert.deepEqual(all.body.items[0].data, { x: 1 });
    assert.equal(typeof all.body.items[0].expiresAt, 'number');
    assert.equal(all.body.next, null);

    const page = await device('GET', '/v1/devices/poller/inbox?limit=1', undefined, auth);
    assert.deepEqual(page.body.items.map((i: any) => i.seq), [1]);
    assert.equal(page.body.next, 1);
    const rest = await device('GET', `/v1/devices/poller/inbox?after=${page.body.next}`, undefined, auth);
    assert.deepEqual(rest.body.items.map((i: any) => i.id), [b.body.id]);

    assert.equal((await device('GET', '/v1/devices/poller/inbox', undefined, { authorization: 'Device poller:app.wrong' })).status, 401);
    assert.equal((await device('GET', '/v1/devices/poller/inbox', undefined, { authorization: `Device poller:${other.password}` })).status, 401, "another device's password");
    assert.equal((await device('GET', '/v1/devices/poller/inbox')).status, 401, 'no credentials');
    const cross = await device('GET', '/v1/devices/poller/inbox', undefined, { authorization: `Device poller-2:${other.password}` });
    assert.equal(cross.status, 403, "a device may not read another device's inbox");
    const own = await device('GET', '/v1/devices/poller-2/inbox', undefined, { authorization: `Device poller-2:${other.password}` });
    assert.equal(own.status, 200);
    assert.deepEqual(own.body, { items: [], next: null });
    // An API key with the devices scope may read any device's inbox of its app.
    const byKey = await app.api('GET', '/v1/devices/poller/inbox');
    assert.equal(byKey.status, 200);
    assert.equal(byKey.body.items.length, 2);

    // Reported delivered (as a polling client does): gone from the inbox.
    const ev = await device('POST', '/v1/events', { messageId: a.body.id, event: 'delivered' }, auth);
    assert.equal(ev.status, 200);
    const remaining = await device('GET', '/v1/devices/poller/inbox', undefined, auth);
    assert.deepEqual(remaining.body.items.map((i: any) => i.id), [b.body.id]);

    const doc = (await client(t.base)('GET', '/openapi.json')).body;
    assert.ok(doc.paths['/v1/devices/{id}/inbox']?.get, 'documented in /openapi.json');
  });

  test('recall: DELETE withdraws un-acked self copies; an online device gets a revoke, an offline one never gets the push', async () => {
    const onSelf = await register('recall-on');
    await register('recall-off');
    const dev = await RawDevice.connect(t.relay.mqttPort!, onSelf, 5);
    open.push({ end: () => dev.close() });
    await online('recall-on');
    const pushed = await app.api('POST', '/v1/push', { to: { devices: ['recall-on', 'recall-off'] }, data: { k: 'v' }, options: { channels: ['self'] } });
    const id = pushed.body.id as string;
    await dev.waitForBody((b) => b.id === id && b.type === 'push', 'the push');
    await until(id, (x) => x.counts.sent === 2, 'both sent');

    const del = await app.api('DELETE', `/v1/messages/${id}`);
    assert.equal(del.status, 200);
    assert.equal(del.body.withdrawn, 2);
    const revoke = await dev.waitForBody((b) => b.id === id && b.type === 'revoke', 'the revoke');
    assert.equal(revoke.body.seq, 1);
    dev.ack(id, 'revoke');
    const m = await message(id);
    assert.equal(m.counts.cancelled, 2);

    const off = await connect((await app.api('GET', '/v1/devices/recall-off')).body.self as SelfInfo, { version: 5 });
    const marker = await app.api('POST', '/v1/push', { to: { devices: ['recall-off'] }, data: { after: 'recall' }, options: { channels: ['self'] } });
    await off.waitFor(marker.body.id);
    assert.ok(!off.received.some((r) => r.body.id === id && r.body.type === 'push'), 'a withdrawn message is not handed out on connect');
    // Its revoke is, instead (it may have taken the push without its PUBACK reaching Relay).
    await eventually(async () => (off.received.some((r) => r.body.id === id && r.body.type === 'revoke') ? true : undefined), 10_000, 'the revoke on connect');
  });

  test('heartbeat learning: stable intervals reported on $relay/heartbeat become the advice for fresh devices on that network', async () => {
    const reporters: MqttDevice[] = [];
    for (const [i, sec] of [600, 620, 580, 610].entries()) {
      const d = await connect(await register(`hb-${i}`), { version: 5, network: 'test-cmcc-4g' });
      reporters.push(d);
      await d.client.publishAsync('$relay/heartbeat', JSON.stringify({ intervalSec: sec, network: 'test-cmcc-4g', state: 'stable' }), { qos: 1 });
    }
    // Probing (not yet stable) reports teach nothing.
    await reporters[0]!.client.publishAsync('$relay/heartbeat', JSON.stringify({ intervalSec: 60, network: 'test-cmcc-4g', state: 'probing' }), { qos: 1 });
    const samples = await eventually(async () => {
      const xs = await t.relay.ctx.queues.connection.lrange(`${t.config.QUEUE_PREFIX}:hb:test-cmcc-4g`, 0, -1);
      return xs.length === 4 ? xs : undefined;
    }, 10_000, 'four samples');
    assert.deepEqual(samples.map(Number).sort(), [580, 600, 610, 620]);

    const fresh = await connect(await register('hb-fresh'), { version: 5, network: 'test-cmcc-4g', keepalive: 270 });
    assert.equal(fresh.connack.properties?.serverKeepAlive, 605, 'the median of the stable intervals');
    const knows = await connect(await register('hb-knows'), { version: 5, network: 'test-cmcc-4g', keepalive: 900 });
    assert.equal(knows.connack.properties?.serverKeepAlive, 900, 'a device with its own interval keeps it');
    const elsewhere = await connect(await register('hb-wifi'), { version: 5, network: 'test-wifi-unknown', keepalive: 270 });
    assert.equal(elsewhere.connack.properties?.serverKeepAlive, 270, 'an unknown network gets the default');
    // The presence entry follows the interval the device reports.
    const p = await eventually(async () => {
      const e = await t.relay.gateway!.presence.get(app.appId, 'hb-0');
      return e?.interval === 60 ? e : undefined;
    }, 10_000, 'presence interval');
    assert.equal(p.network, 'test-cmcc-4g');
  });
});
