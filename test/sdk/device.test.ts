// One concept: the device SDK against a real gateway.
/**
 * The device SDK (sdk/src) against a real GatewayServer: delivery, de-duplication across
 * redelivery and channels, opened / delivered reporting, revoke, inbox sync and poll mode,
 * server advice, transports and refusals.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NatProxy } from '../helpers/nat-proxy.js';
import { RelayDevice, type RelayDeviceOptions, type RelayMessage, type RevokeEvent } from '../../sdk/src/index.js';
import { Lead, waitFor } from './harness.js';

let lead: Lead;
const devices: RelayDevice[] = [];
let n = 0;
const newId = (tag: string) => `sdk-${tag}-${++n}`;

/** Seconds-scale heartbeat so nothing in these tests waits for minutes. */
const FAST = { initialSec: 1, stepSec: 1, minSec: 0.5, maxSec: 30, marginSec: 0.2, trustBeats: 2, failLimit: 5, ackTimeoutSec: 0.5 };

function device(deviceId: string, opts: Partial<RelayDeviceOptions> = {}): RelayDevice {
  const dev = new RelayDevice({
    url: lead.tcpUrl,
    apiBase: lead.apiBase,
    deviceId,
    password: lead.password(deviceId),
    network: 'test-net',
    heartbeat: FAST,
    reconnect: { minSec: 0.05, maxSec: 0.5 },
    connectTimeoutSec: 2,
    ...opts,
  });
  devices.push(dev);
  return dev;
}

function collect(dev: RelayDevice): { messages: RelayMessage[]; revokes: RevokeEvent[] } {
  const out = { messages: [] as RelayMessage[], revokes: [] as RevokeEvent[] };
  dev.on('message', (m) => out.messages.push(m));
  dev.on('revoke', (r) => out.revokes.push(r));
  return out;
}

before(async () => {
  lead = await Lead.start({
    // A server that learned something: 7 s for devices on 'learned-net' (MQTT 5 names the network in
    // CONNECT) or devices it knows ('advice' ids: a 3.1.1 CONNECT cannot name it), else echo the request.
    adviseKeepAlive: ({ network, deviceId, requestedSec }) =>
      network === 'learned-net' || deviceId.includes('advice') ? 7 : requestedSec || 270,
  });
});

after(async () => {
  await Promise.all(devices.map((d) => d.close()));
  await lead.close();
});

describe('delivery and de-duplication', () => {
  test('connects, receives a push with its fields, and the PUBACK reaches onAck', async () => {
    const id = newId('basic');
    const dev = device(id);
    const got = collect(dev);
    let connected = 0;
    dev.on('connected', () => connected++);
    await dev.connect();
    assert.equal(dev.connected, true);
    assert.equal(connected, 1);
    await lead.until(() => lead.isOnline(id), 5000, 'online');

    const seq = lead.send(id, 'm-basic-1', { notification: { title: 'T', body: 'B' }, data: { orderId: '42' } });
    await lead.until(() => lead.find('ack', (e) => e.id === 'm-basic-1').length === 1, 5000, 'ack');
    assert.equal(got.messages.length, 1);
    const m = got.messages[0]!;
    assert.equal(m.id, 'm-basic-1');
    assert.equal(m.seq, seq);
    assert.equal(m.channel, 'self');
    assert.deepEqual(m.notification, { title: 'T', body: 'B' });
    assert.deepEqual(m.data, { orderId: '42' });
    assert.equal(typeof m.expiresAt, 'number');
    assert.equal(dev.seen('m-basic-1'), true);
    assert.equal(dev.seen('m-never'), false);
  });

  test('a redelivery with DUP after a forced reconnect is acked but never emitted twice', async () => {
    const id = newId('dup');
    const dev = device(id);
    const got = collect(dev);
    let kicked = false;
    // Cut the connection from the gateway inside the app's handler: the message is shown, but
    // its PUBACK (sent after the handler) never reaches the gateway, so it stays pending.
    dev.on('message', (m) => {
      if (m.id === 'm-dup-1' && !kicked) {
        kicked = true;
        assert.equal(lead.kick(id), true);
      }
    });
    let connects = 0;
    dev.on('connected', () => connects++);
    await dev.connect();
    await lead.until(() => lead.isOnline(id), 5000, 'online');

    lead.send(id, 'm-dup-1');
    // The gateway reported it un-acked (written) when the session ended …
    await lead.until(
      () => lead.find('offline', (e) => e.s.deviceId === id && e.pending.some((p) => p.id === 'm-dup-1' && p.written)).length === 1,
      5000,
      'offline with the message pending',
    );
    // … redelivered it with DUP on the reconnect, and the device acked that copy.
    await lead.until(() => lead.find('ack', (e) => e.id === 'm-dup-1').length === 1, 10_000, 'ack of the DUP copy');
    assert.equal(lead.find('deliver', (e) => e.id === 'm-dup-1' && e.dup).length, 1, 'a DUP redelivery happened');
    assert.ok(connects >= 2, 'the SDK reconnected');
    assert.deepEqual(
      got.messages.map((m) => m.id),
      ['m-dup-1'],
    );
    assert.equal(dev.stats.duplicates, 1);

    // The same id arriving from FCM later is dropped too; a new FCM id is emitted once.
    assert.equal(await dev.ingest({ data: { relay_id: 'm-dup-1', orderId: '1' } }, 'fcm'), false);
    assert.equal(await dev.ingest({ data: { relay_id: 'm-fcm-1', orderId: '2' }, notification: { title: 'F' } }, 'fcm'), true);
    assert.equal(await dev.ingest({ data: { relay_id: 'm-fcm-1', orderId: '2' } }, 'huawei'), false);
    const fcm = got.messages.find((m) => m.id === 'm-fcm-1');
    assert.deepEqual(fcm, { id: 'm-fcm-1', channel: 'fcm', notification: { title: 'F' }, data: { orderId: '2' } });

    // … and the FCM-delivered id arriving on the self channel afterwards is acked, not emitted.
    lead.send(id, 'm-fcm-1');
    await lead.until(() => lead.find('ack', (e) => e.id === 'm-fcm-1').length === 1, 5000, 'ack of m-fcm-1');
    assert.deepEqual(
      got.messages.map((m) => m.id),
      ['m-dup-1', 'm-fcm-1'],
    );

    // ingest() of a new id reports `delivered` over HTTP with device auth.
    await lead.until(
      () => lead.http.some((c) => c.path === '/v1/events' && (c.body as { messageId?: string }).messageId === 'm-fcm-1'),
      5000,
      'delivered event',
    );
    const ev = lead.http.find((c) => c.path === '/v1/events' && (c.body as { messageId?: string }).messageId === 'm-fcm-1')!;
    assert.deepEqual(ev.body, { deviceId: id, messageId: 'm-fcm-1', event: 'delivered' });
    assert.equal(ev.authorization, `Device ${id}:${lead.password(id)}`);
    assert.equal(ev.status, 200);
  });

  test('the PUBACK (delivered) waits until the id is stored and the message emitted', async () => {
    const id = newId('slowstore');
    const data = new Map<string, string>();
    let release: (() => void) | null = null;
    const store = {
      get: (k: string) => data.get(k),
      set: (k: string, v: string) =>
        new Promise<void>((resolve) => {
          release = () => {
            data.set(k, v);
            resolve();
          };
        }),
    };
    const dev = device(id, { store });
    const got = collect(dev);
    await dev.connect();
    lead.send(id, 'm-slow-1');
    await waitFor(() => release !== null, 5000, 'the store write');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(got.messages.length, 0, 'not emitted before it is recorded');
    assert.equal(lead.find('ack', (e) => e.id === 'm-slow-1').length, 0, 'not acked before it is recorded');
    release!();
    await lead.until(() => lead.find('ack', (e) => e.id === 'm-slow-1').length === 1, 5000, 'ack');
    assert.equal(got.messages.length, 1);
    assert.deepEqual(JSON.parse(data.get(`relay:seen:${id}`)!).ids, [['m-slow-1', 1]]);
  });

  test('seen ids persist through the store: a new instance drops a message an earlier one showed', async () => {
    const id = newId('persist');
    const store = new Map<string, string>();
    const first = device(id, { store });
    const got1 = collect(first);
    await first.connect();
    lead.send(id, 'm-persist-1');
    await lead.until(() => got1.messages.length === 1, 5000, 'first delivery');
    await first.close();

    const second = device(id, { store });
    const got2 = collect(second);
    assert.equal(await second.ingest({ relay_id: 'm-persist-1', aps: { alert: 'x' } }, 'apns'), false);
    assert.equal(second.seen('m-persist-1'), true);
    await second.connect();
    lead.send(id, 'm-persist-2');
    await lead.until(() => got2.messages.length === 1, 5000, 'second delivery');
    assert.equal(got2.messages[0]!.id, 'm-persist-2');
  });
});

describe('opened, revoke, inbox', () => {
  test('opened() while connected publishes $relay/control and reaches onControl', async () => {
    const id = newId('opened');
    const dev = device(id);
    await dev.connect();
    await dev.opened('m-open-1');
    const ctl = lead.find('control', (e) => e.deviceId === id && e.topic === '$relay/control');
    assert.equal(ctl.length, 1);
    assert.deepEqual(ctl[0]!.payload, { type: 'opened', id: 'm-open-1' });
    assert.equal(lead.http.filter((c) => (c.body as { messageId?: string } | undefined)?.messageId === 'm-open-1').length, 0);
  });

  test('opened() while not connected falls back to POST /v1/events with device auth', async () => {
    const id = newId('opened-http');
    const dev = device(id);
    await dev.opened('m-open-2');
    const call = lead.http.find((c) => (c.body as { messageId?: string } | undefined)?.messageId === 'm-open-2');
    assert.ok(call);
    assert.equal(call.method, 'POST');
    assert.equal(call.path, '/v1/events');
    assert.equal(call.authorization, `Device ${id}:${lead.password(id)}`);
    assert.deepEqual(call.body, { deviceId: id, messageId: 'm-open-2', event: 'opened' });

    const bad = new RelayDevice({ url: lead.tcpUrl, apiBase: lead.apiBase, deviceId: id, password: 'app-sdk.forged' });
    await assert.rejects(bad.opened('m-open-3'), (err: Error & { status?: number }) => err.status === 401);
    const noApi = new RelayDevice({ url: lead.tcpUrl, deviceId: id, password: lead.password(id) });
    await assert.rejects(noApi.opened('m-open-4'), /apiBase/);
  });

  test('revoke: a shown message is withdrawn once; a revoked id is never shown later', async () => {
    const id = newId('revoke');
    const dev = device(id);
    const got = collect(dev);
    await dev.connect();
    lead.send(id, 'm-rv-1');
    await lead.until(() => got.messages.length === 1, 5000, 'm-rv-1');
    lead.revoke(id, 'm-rv-1');
    await lead.until(() => lead.find('revokeAck', (e) => e.id === 'm-rv-1').length === 1, 5000, 'revoke ack');
    assert.deepEqual(got.revokes, [{ id: 'm-rv-1', seq: 2, channel: 'self', shown: true }]);

    // Revoked before it arrived: the later copy (here from a vendor channel, then the self channel) is dropped.
    lead.revoke(id, 'm-rv-2');
    await lead.until(() => got.revokes.length === 2, 5000, 'second revoke');
    assert.equal(got.revokes[1]!.shown, false);
    assert.equal(await dev.ingest({ data: { relay_id: 'm-rv-2' } }, 'xiaomi'), false);
    lead.send(id, 'm-rv-2');
    await lead.until(() => lead.find('ack', (e) => e.id === 'm-rv-2').length === 1, 5000, 'ack of m-rv-2');
    assert.deepEqual(
      got.messages.map((m) => m.id),
      ['m-rv-1'],
    );
    // A repeated revoke is not emitted again.
    assert.equal(await dev.ingest({ type: 'revoke', id: 'm-rv-1' }, 'self'), false);
    assert.equal(got.revokes.length, 2);
  });

  test('recall: a NotificationSurface shows each message once and removes a recalled one before the revoke is acked', async () => {
    const id = newId('surface');
    const shown = new Map<string, RelayMessage>();
    const log: string[] = [];
    const dev = device(id, {
      notifications: {
        show: (m) => {
          shown.set(m.id, m);
          log.push(`show ${m.id}`);
        },
        remove: async (mid) => {
          // Slow on purpose: the revoke's PUBACK must wait for the removal.
          await new Promise((r) => setTimeout(r, 50));
          shown.delete(mid);
          log.push(`remove ${mid}`);
        },
      },
    });
    await dev.connect();
    lead.send(id, 'm-sf-1');
    await lead.until(() => shown.has('m-sf-1'), 5000, 'shown');
    lead.revoke(id, 'm-sf-1');
    await lead.until(() => lead.find('revokeAck', (e) => e.id === 'm-sf-1').length === 1, 5000, 'revoke ack');
    assert.equal(shown.has('m-sf-1'), false, 'removed by the time the revoke is acked');
    // A recall's replacement on another channel removes too: FCM / vendor data, APNs userInfo.
    assert.equal(await dev.ingest({ data: { relay_id: 'm-sf-2', k: 'v' } }, 'fcm'), true);
    assert.equal(await dev.ingest({ data: { relay_id: 'm-sf-2', relay_type: 'revoke' } }, 'fcm'), true);
    assert.equal(await dev.ingest({ aps: { alert: { title: 'a' } }, relay_id: 'm-sf-3' }, 'apns'), true);
    assert.equal(await dev.ingest({ aps: { alert: { title: 'Message withdrawn' } }, relay_id: 'm-sf-3', relay_type: 'revoke' }, 'apns'), true);
    assert.deepEqual(log, ['show m-sf-1', 'remove m-sf-1', 'show m-sf-2', 'remove m-sf-2', 'show m-sf-3', 'remove m-sf-3']);
    assert.equal(shown.size, 0);
  });

  test('sync() pulls the inbox with device auth, emits each message once and advances the cursor', async () => {
    const id = newId('sync');
    lead.send(id, 'm-sync-1');
    lead.send(id, 'm-sync-2', { data: { k: 'v' } });
    const dev = device(id);
    const got = collect(dev);
    const syncs: number[] = [];
    dev.on('sync', (s) => syncs.push(s.received));
    assert.equal(await dev.sync(), 2);
    assert.deepEqual(
      got.messages.map((m) => [m.id, m.seq, m.channel]),
      [
        ['m-sync-1', 1, 'sync'],
        ['m-sync-2', 2, 'sync'],
      ],
    );
    assert.deepEqual(got.messages[1]!.data, { k: 'v' });
    const inboxCalls = () => lead.http.filter((c) => c.path.startsWith(`/v1/devices/${id}/inbox`));
    assert.deepEqual(
      inboxCalls().map((c) => c.path),
      [`/v1/devices/${id}/inbox?after=0`],
      'one page (next: null) and done',
    );
    assert.equal(inboxCalls()[0]!.authorization, `Device ${id}:${lead.password(id)}`);

    // Nothing new: nothing emitted; a third message arrives by the cursor.
    assert.equal(await dev.sync(), 0);
    assert.equal(inboxCalls().at(-1)!.path, `/v1/devices/${id}/inbox?after=2`);
    lead.send(id, 'm-sync-3');
    assert.equal(await dev.sync(), 1);
    assert.deepEqual(syncs, [2, 0, 1]);
    // What it took is reported delivered: the first two in one batch, then the third.
    const delivered = () => lead.reported.filter((e) => e.deviceId === id && e.event === 'delivered').map((e) => e.messageId);
    await waitFor(() => delivered().length === 3, 5000, 'delivered events for synced messages');
    assert.deepEqual(delivered(), ['m-sync-1', 'm-sync-2', 'm-sync-3']);
    const batch = lead.http.find((c) => c.path === '/v1/events' && Array.isArray((c.body as { events?: unknown }).events));
    assert.deepEqual((batch!.body as { events: unknown[] }).events, [
      { deviceId: id, messageId: 'm-sync-1', event: 'delivered' },
      { deviceId: id, messageId: 'm-sync-2', event: 'delivered' },
    ]);

    // Connecting now: the gateway delivers the same three; none is emitted again.
    await dev.connect();
    await lead.until(() => lead.pending(id) === 0, 5000, 'all acked');
    assert.equal(got.messages.length, 3);
  });

  test('poll mode: after N connections that fail, the inbox is polled; a held connection ends it', async () => {
    const id = newId('poll');
    const nat = new NatProxy({ target: { host: '127.0.0.1', port: lead.tcpPort } });
    const port = await nat.listen();
    nat.blackhole(true); // the link is down: TCP connects, nothing gets through
    try {
      lead.send(id, 'm-poll-1');
      const dev = device(id, {
        url: `mqtt://127.0.0.1:${port}`,
        connectTimeoutSec: 0.3,
        poll: { afterFailures: 2, intervalSec: 0.3 },
      });
      const got = collect(dev);
      const poll: boolean[] = [];
      dev.on('poll', (p) => poll.push(p.active));
      await dev.connect(); // resolves when poll mode starts
      assert.equal(dev.connected, false);
      assert.equal(dev.pollMode, true);
      await waitFor(() => got.messages.length === 1, 5000, 'message by poll');
      assert.equal(got.messages[0]!.channel, 'sync');
      assert.ok(dev.stats.attempts >= 2);

      nat.restore();
      await waitFor(() => dev.connected && !dev.pollMode, 15_000, 'connected and poll mode over');
      assert.deepEqual(poll, [true, false]);
      // The gateway still redelivers it (nobody told it otherwise); it is acked, not shown again.
      await lead.until(() => lead.find('ack', (e) => e.id === 'm-poll-1').length === 1, 5000, 'ack');
      assert.equal(got.messages.length, 1);
      await dev.close();
    } finally {
      await nat.close();
    }
  });
});

describe('connection details', () => {
  for (const protocolVersion of [4, 5] as const) {
    test(`MQTT ${protocolVersion === 5 ? '5 (CONNACK Server Keep Alive)' : '3.1.1 ($relay/heartbeat advice)'}: advice sets the start interval of an unknown network`, async () => {
      const id = newId(`advice${protocolVersion}`);
      const dev = device(id, { network: 'learned-net', protocolVersion, heartbeat: { ...FAST, initialSec: 2, maxSec: 60 } });
      assert.equal(dev.intervalSec, 2);
      const connected: { advisedSec?: number }[] = [];
      dev.on('connected', (e) => connected.push(e));
      await dev.connect();
      await waitFor(() => dev.intervalSec === 7, 3000, 'interval = advice');
      if (protocolVersion === 5) assert.equal(connected[0]!.advisedSec, 7);
      const s = lead.gw.session('app-sdk', id)!;
      assert.equal(s.protocolVersion, protocolVersion);
      if (protocolVersion === 5) assert.equal(s.network, 'learned-net'); // a CONNECT user property
      // The server's dead detection covers the adopted interval (3.1.1: the SDK reported it at once).
      await waitFor(() => lead.gw.session('app-sdk', id)!.intervalSec >= 7, 3000, 'server interval ≥ 7');
    });
  }

  test('MQTT 3.1.1: heartbeats are acked and reported, and the gateway follows them', async () => {
    const id = newId('v4beat');
    const dev = device(id, { protocolVersion: 4 });
    const beats: { ok: boolean; intervalSec: number }[] = [];
    dev.on('heartbeat', (h) => beats.push(h));
    await dev.connect();
    await waitFor(() => beats.length >= 3, 10_000, 'three beats');
    assert.ok(beats.every((b) => b.ok));
    const reports = lead.find('control', (e) => e.deviceId === id && e.topic === '$relay/heartbeat');
    assert.ok(reports.length >= 3);
    assert.deepEqual(reports[0]!.payload, { intervalSec: 1, network: 'test-net', state: 'probing' });
    assert.equal(lead.gw.session('app-sdk', id)!.reportedSec, reports.at(-1)!.payload.intervalSec);
  });

  test('a remembered network beats the advice; an unknown one without advice starts at initialSec', async () => {
    const store = new Map<string, string>([['relay:heartbeat:learned-net', JSON.stringify({ intervalSec: 3.5, goodSec: 3.7 })]]);
    const id = newId('memory');
    const dev = device(id, { network: 'learned-net', store });
    await dev.connect();
    assert.equal(dev.intervalSec, 3.5);
    assert.equal(dev.heartbeatState, 'stable');
    const other = device(newId('plain'), { network: 'other-net' });
    await other.connect();
    assert.equal(other.intervalSec, 1);
    assert.equal(other.heartbeatState, 'probing');
  });

  test('setNetwork() switches to that network\'s memory and reconnects at once', async () => {
    const store = new Map<string, string>([['relay:heartbeat:wifi-home', JSON.stringify({ intervalSec: 9 })]]);
    const id = newId('switch');
    const dev = device(id, { network: 'cell', store });
    const down: string[] = [];
    dev.on('disconnected', (e) => down.push(e.reason));
    await dev.connect();
    assert.equal(dev.intervalSec, 1);
    const connects = dev.stats.connects;
    await dev.setNetwork('wifi-home');
    assert.equal(dev.network, 'wifi-home');
    assert.equal(dev.intervalSec, 9);
    assert.equal(dev.heartbeatState, 'stable');
    await waitFor(() => dev.connected && dev.stats.connects === connects + 1, 5000, 'reconnected');
    assert.deepEqual(down, ['network-change']);
    await lead.until(() => lead.gw.session('app-sdk', id)?.network === 'wifi-home', 5000, 'session on the new network');
  });

  test('MQTT over WebSocket', async () => {
    const id = newId('ws');
    const dev = device(id, { url: lead.wsUrl });
    const got = collect(dev);
    await dev.connect();
    assert.equal(lead.gw.session('app-sdk', id)?.transport, 'ws');
    lead.send(id, 'm-ws-1');
    await lead.until(() => lead.find('ack', (e) => e.id === 'm-ws-1').length === 1, 5000, 'ack');
    assert.equal(got.messages[0]?.id, 'm-ws-1');
  });

  test('bad credentials reject connect() and stop retrying', async () => {
    for (const protocolVersion of [4, 5] as const) {
      const id = newId('badpw');
      const dev = device(id, { password: `${'app-sdk'}.not-the-signature`, protocolVersion });
      const errors: Error[] = [];
      dev.on('error', (e) => errors.push(e));
      await assert.rejects(dev.connect(), (err: Error & { code?: number }) => err.code === (protocolVersion === 5 ? 0x86 : 4));
      const attempts = dev.stats.attempts;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(dev.stats.attempts, attempts, 'no retry after a credential refusal');
      assert.equal(errors.length, 1);
    }
  });

  test('close() ends the session and every timer; the instance stays closed', async () => {
    const id = newId('close');
    const dev = device(id);
    const disconnected: string[] = [];
    dev.on('disconnected', (e) => disconnected.push(e.reason));
    await dev.connect();
    await lead.until(() => lead.isOnline(id), 5000, 'online');
    await dev.close();
    await lead.until(() => !lead.isOnline(id), 5000, 'offline');
    assert.deepEqual(disconnected, ['client-close']);
    await assert.rejects(dev.connect(), /closed/);
    const offline = lead.find('offline', (e) => e.s.deviceId === id);
    assert.equal(offline[0]!.why, 'closed');
  });
});
