/**
 * The SDK's smart heartbeat end to end: RelayDevice → NAT-simulating proxy (idle mappings are
 * dropped silently after T) → a real GatewayServer. Time is scaled down to seconds.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { NatProxy } from '../helpers/nat-proxy.js';
import { RelayDevice, type DisconnectedEvent, type HeartbeatEvent, type RelayMessage } from '../../sdk/src/index.js';
import { Lead, sleep, waitFor } from './harness.js';

const T_MS = 3300;
const NETWORK = 'nat-3300';
// marginSec + resolutionSec (default min(2 × 0.15, 1 / 4) = 0.25) = 0.4 s ≤ 15 % of T.
const HEARTBEAT = { initialSec: 1, stepSec: 1, minSec: 0.5, maxSec: 30, marginSec: 0.15, trustBeats: 2, failLimit: 5, ackTimeoutSec: 1 };

let lead: Lead;
let nat: NatProxy;
const store = new Map<string, string>();
const devices: RelayDevice[] = [];
const drops: { reason: string; idleMs: number }[] = [];

before(async () => {
  lead = await Lead.start({ sweepIntervalMs: 100 });
  nat = new NatProxy({ target: { host: '127.0.0.1', port: lead.tcpPort }, idleTimeoutMs: T_MS, checkIntervalMs: 10 });
  nat.on('drop', (d: { reason: string; idleMs: number }) => drops.push(d));
  await nat.listen();
});

after(async () => {
  await Promise.all(devices.map((d) => d.close()));
  await nat.close();
  await lead.close();
});

function device(deviceId: string): { dev: RelayDevice; beats: HeartbeatEvent[]; messages: RelayMessage[]; down: DisconnectedEvent[] } {
  const dev = new RelayDevice({
    url: `mqtt://127.0.0.1:${nat.port}`,
    apiBase: lead.apiBase,
    deviceId,
    password: lead.password(deviceId),
    network: NETWORK,
    heartbeat: HEARTBEAT,
    store,
    reconnect: { minSec: 0.05, maxSec: 0.5 },
    connectTimeoutSec: 1,
  });
  devices.push(dev);
  const out = { dev, beats: [] as HeartbeatEvent[], messages: [] as RelayMessage[], down: [] as DisconnectedEvent[] };
  dev.on('heartbeat', (h) => out.beats.push(h));
  dev.on('message', (m) => out.messages.push(m));
  dev.on('disconnected', (e) => out.down.push(e));
  return out;
}

test('converges just under the NAT timeout, remembers it, keeps delivering, and survives a black hole', { timeout: 150_000 }, async () => {
  const d = device('nat-dev-1');
  await d.dev.connect();

  // Messages now and then while it probes; some land on mappings the NAT already dropped.
  const sent: string[] = [];
  let k = 0;
  const sender = setInterval(() => {
    const id = `nat-m-${++k}`;
    sent.push(id);
    lead.send('nat-dev-1', id);
  }, 7000);
  try {
    await waitFor(() => d.dev.heartbeatState === 'stable' && store.has(`relay:heartbeat:${NETWORK}`), 120_000, 'a remembered stable interval');
  } finally {
    clearInterval(sender);
  }
  const stable = d.dev.intervalSec;
  const T = T_MS / 1000;
  assert.ok(stable < T && stable >= 0.85 * T, `stable interval ${stable} s for a NAT of ${T} s`);
  assert.equal(JSON.parse(store.get(`relay:heartbeat:${NETWORK}`)!).intervalSec, stable);

  // Probing really hit the NAT: it dropped idle mappings, and only for beats longer than T.
  const failed = d.beats.filter((b) => !b.ok);
  assert.ok(failed.length >= 1, 'at least one probe failed');
  assert.ok(drops.some((x) => x.reason === 'idle'));
  for (const b of failed) assert.ok(b.intervalSec >= T, `a beat of ${b.intervalSec} s failed under a ${T} s NAT`);
  assert.ok(d.down.some((e) => e.reason === 'heartbeat-timeout'));
  assert.ok(d.beats.some((b) => b.state === 'probing') && d.beats.at(-1)!.state === 'stable');

  // The gateway follows the reported interval (rounded up; dead after 1.5 ×) and knows the network.
  await waitFor(() => lead.gw.session('app-sdk', 'nat-dev-1')?.reportedSec === Math.ceil(stable), 10_000, 'reported interval');
  assert.equal(lead.gw.session('app-sdk', 'nat-dev-1')!.network, NETWORK);

  // Every message arrived exactly once.
  await lead.until(() => lead.pending('nat-dev-1') === 0, 15_000, 'outbox drained');
  assert.deepEqual(d.messages.map((m) => m.id).sort(), [...sent].sort());

  // Stable beats keep the mapping: a few more intervals without a failure or a drop.
  const beatsBefore = d.beats.length;
  const dropsBefore = drops.length;
  await waitFor(() => d.beats.length >= beatsBefore + 3, 20_000, 'three more beats');
  assert.ok(d.beats.slice(beatsBefore).every((b) => b.ok && b.intervalSec === stable));
  assert.equal(drops.length, dropsBefore);
  lead.send('nat-dev-1', 'nat-idle-1');
  await waitFor(() => d.messages.some((m) => m.id === 'nat-idle-1'), 5000, 'a message over the held connection');

  // The gateway's dead detection followed every probe: it never timed the device out.
  assert.equal(lead.find('offline', (e) => e.s.deviceId === 'nat-dev-1' && e.why === 'timeout').length, 0);

  // Black hole: the NAT silently forgets the mapping. The next beat goes unanswered, the SDK
  // reconnects, and a message written into the hole is redelivered on the new connection.
  const downBefore = d.down.length;
  nat.blackhole();
  lead.send('nat-dev-1', 'nat-hole-1');
  await waitFor(() => d.down.length > downBefore, 15_000, 'the SDK noticing');
  assert.equal(d.down.at(-1)!.reason, 'heartbeat-timeout');
  await waitFor(() => d.dev.connected, 15_000, 'reconnected');
  await waitFor(() => d.messages.some((m) => m.id === 'nat-hole-1'), 10_000, 'message from the black hole');
  assert.equal(d.dev.heartbeatState, 'stable', 'one failure does not end the stable state');
  assert.equal(d.dev.intervalSec, stable);

  // The link stays down for a while (connects time out), then comes back.
  nat.blackhole(true);
  const downNow = d.down.length;
  await waitFor(() => d.down.length > downNow, 15_000, 'the second outage noticed');
  const attempts = d.dev.stats.attempts;
  await waitFor(() => d.dev.stats.attempts >= attempts + 2, 15_000, 'reconnect attempts during the outage');
  assert.equal(d.dev.connected, false);
  nat.restore();
  await waitFor(() => d.dev.connected, 15_000, 'reconnected after the outage');
  lead.send('nat-dev-1', 'nat-after-1');
  await waitFor(() => d.messages.some((m) => m.id === 'nat-after-1'), 5000, 'delivery after the outage');
  const ids = d.messages.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, 'no message emitted twice');
});

test('a second device on the same network starts from the remembered interval', { timeout: 60_000 }, async () => {
  const remembered = JSON.parse(store.get(`relay:heartbeat:${NETWORK}`)!) as { intervalSec: number };
  const d = device('nat-dev-2');
  await d.dev.connect();
  assert.equal(d.dev.heartbeatState, 'stable');
  assert.equal(d.dev.intervalSec, remembered.intervalSec);
  await waitFor(() => d.beats.length >= 3, 20_000, 'three beats');
  assert.deepEqual(
    d.beats.slice(0, 3).map((b) => [b.intervalSec, b.ok, b.state]),
    Array.from({ length: 3 }, () => [remembered.intervalSec, true, 'stable']),
  );
  await sleep(10);
});

test('a late beat (timers held back, as in Doze) that finds the mapping gone is not blamed on the interval', { timeout: 60_000 }, async () => {
  const shortNat = new NatProxy({ target: { host: '127.0.0.1', port: lead.tcpPort }, idleTimeoutMs: 1500, checkIntervalMs: 10 });
  await shortNat.listen();
  try {
    let asleep = false;
    const mem = new Map([['relay:heartbeat:short', JSON.stringify({ intervalSec: 1.2, goodSec: 1.3, upperSec: 1.5 })]]);
    const dev = new RelayDevice({
      url: `mqtt://127.0.0.1:${shortNat.port}`,
      deviceId: 'nat-dev-late',
      password: lead.password('nat-dev-late'),
      network: 'short',
      heartbeat: HEARTBEAT,
      store: mem,
      reconnect: { minSec: 0.05, maxSec: 0.5 },
      connectTimeoutSec: 1,
      // Long timers fire a second late while "asleep" (the beat timer; not the short ack / reconnect ones).
      timers: {
        setTimeout: (fn, ms) => setTimeout(fn, asleep && ms >= 1000 ? ms + 1000 : ms),
        clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
      },
    });
    devices.push(dev);
    const beats: HeartbeatEvent[] = [];
    dev.on('heartbeat', (h) => beats.push(h));
    await dev.connect();
    await waitFor(() => beats.length >= 2, 10_000, 'two beats');
    assert.ok(beats.every((b) => b.ok && b.kind === 'probe' && b.intervalSec === 1.2));

    asleep = true;
    await waitFor(() => beats.some((b) => !b.ok), 15_000, 'a failed late beat');
    asleep = false;
    const failed = beats.filter((b) => !b.ok);
    assert.ok(failed.every((b) => b.kind === 'late'), JSON.stringify(failed));
    await waitFor(() => dev.connected && beats.at(-1)!.ok, 15_000, 'back, beating');
    assert.equal(dev.heartbeatState, 'stable');
    assert.equal(dev.intervalSec, 1.2, 'the remembered interval stands');
    assert.equal(JSON.parse(mem.get('relay:heartbeat:short')!).intervalSec, 1.2);
  } finally {
    await shortNat.close();
  }
});

