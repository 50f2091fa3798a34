import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as mqttConnect } from 'mqtt';
import { signDeviceToken } from '../../src/core/device-token.js';
import { GatewayServer, deviceTokenAuthenticator } from '../../src/gateway/index.js';
import type { OfflineReason, SessionInfo } from '../../src/gateway/index.js';
import { NatProxy } from '../helpers/nat-proxy.js';

const SECRET = 'halfopen-secret-0123456789';
const APP = 'app-h';
const SWEEP_MS = 250;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const offline: { s: SessionInfo; why: OfflineReason; at: number }[] = [];
const online: SessionInfo[] = [];
let gw: GatewayServer;
let port: number;

before(async () => {
  gw = new GatewayServer({
    authenticate: deviceTokenAuthenticator(SECRET),
    hooks: {
      onOnline: (s) => void online.push(s),
      onOffline: (s, why) => void offline.push({ s, why, at: Date.now() }),
      onAck: () => {},
      onControl: () => {},
    },
    sweepIntervalMs: SWEEP_MS,
  });
  port = await gw.listenTcp(0, '127.0.0.1');
});

after(async () => {
  await gw.close();
});

async function waitFor<T>(fn: () => T | undefined, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(20);
  }
}

test('a client black-holed by the NAT is marked offline (timeout) after 1.5 × keepalive', async () => {
  const nat = new NatProxy({ target: { host: '127.0.0.1', port } });
  const natPort = await nat.listen();
  const deviceId = 'd-halfopen';
  const c = mqttConnect(`mqtt://127.0.0.1:${natPort}`, {
    protocolVersion: 4,
    clientId: deviceId,
    username: deviceId,
    password: signDeviceToken(SECRET, APP, deviceId),
    keepalive: 2,
    reconnectPeriod: 0,
  });
  c.on('error', () => {});
  try {
    await waitFor(() => online.find((s) => s.deviceId === deviceId), 5000);
    assert.equal(gw.session(APP, deviceId)?.idleTimeoutMs, 3000);
    // Pings flow through the NAT for a while: the session stays up past 1.5 × keepalive.
    await sleep(3500);
    assert.equal(gw.isOnline(APP, deviceId), true, 'PINGREQs keep the session alive');

    const t0 = Date.now();
    nat.blackhole();
    const off = await waitFor(() => offline.find((o) => o.s.deviceId === deviceId), 15_000);
    assert.equal(off.why, 'timeout');
    const took = off.at - t0;
    // Bound: last packet ≤ 2 s before the black hole, then 3 s, plus one sweep: well within 10 s.
    assert.ok(took <= 3000 + SWEEP_MS + 2000, `offline after ${took} ms`);
    assert.equal(gw.isOnline(APP, deviceId), false);
    assert.equal(gw.connectionCount, 0);
  } finally {
    c.end(true);
    await nat.close();
  }
});

test('a device behind an idle-dropping NAT with a heartbeat report shorter than the NAT timeout survives', async () => {
  // The NAT drops idle mappings after 1.2 s; the device pings every 0.5 s (keep alive 1).
  const nat = new NatProxy({ target: { host: '127.0.0.1', port }, idleTimeoutMs: 1200 });
  const natPort = await nat.listen();
  const deviceId = 'd-nat-ok';
  const c = mqttConnect(`mqtt://127.0.0.1:${natPort}`, {
    protocolVersion: 5,
    clientId: deviceId,
    username: deviceId,
    password: signDeviceToken(SECRET, APP, deviceId),
    keepalive: 1,
    reconnectPeriod: 0,
  });
  c.on('error', () => {});
  try {
    await waitFor(() => online.find((s) => s.deviceId === deviceId), 5000);
    await sleep(2500);
    assert.equal(gw.isOnline(APP, deviceId), true);
    assert.equal(nat.droppedCount, 0);
  } finally {
    c.end(true);
    await nat.close();
  }
});

// ---------------------------------------------------------------- the NAT simulator itself

/** An echo server that records whether its peer ever closed. */
async function echoServer(): Promise<{ server: Server; port: number; closes: () => number }> {
  let closes = 0;
  const server = createServer((s) => {
    s.on('data', (b) => s.write(b));
    s.on('close', () => closes++);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, port: (server.address() as AddressInfo).port, closes: () => closes };
}

function received(sock: Socket): { text: () => string; closed: () => boolean } {
  let text = '';
  let closed = false;
  sock.on('data', (b) => (text += b.toString()));
  sock.on('close', () => (closed = true));
  sock.on('error', () => {});
  return { text: () => text, closed: () => closed };
}

test('NatProxy: forwards, then silently black-holes an idle mapping (no FIN, no RST)', async () => {
  const echo = await echoServer();
  const nat = new NatProxy({ target: { host: '127.0.0.1', port: echo.port }, idleTimeoutMs: 300 });
  const natPort = await nat.listen();
  const drops: { reason: string }[] = [];
  nat.on('drop', (d) => drops.push(d));
  const sock = netConnect(natPort, '127.0.0.1');
  const r = received(sock);
  try {
    sock.write('a');
    await waitFor(() => (r.text() === 'a' ? true : undefined), 2000);
    // Traffic every 100 ms keeps the mapping.
    for (let i = 0; i < 5; i++) {
      await sleep(100);
      sock.write('b');
    }
    await waitFor(() => (r.text() === 'abbbbb' ? true : undefined), 2000);
    assert.equal(nat.droppedCount, 0);
    await sleep(600); // idle > 300 ms: dropped
    assert.equal(nat.droppedCount, 1);
    assert.deepEqual(drops.map((d) => d.reason), ['idle']);
    sock.write('c');
    await sleep(200);
    assert.equal(r.text(), 'abbbbb', 'nothing crosses a dropped mapping');
    assert.equal(r.closed(), false, 'the client saw no FIN/RST');
    assert.equal(echo.closes(), 0, 'the server saw no FIN/RST');
    // A new connection gets a new mapping.
    const sock2 = netConnect(natPort, '127.0.0.1');
    const r2 = received(sock2);
    sock2.write('x');
    await waitFor(() => (r2.text() === 'x' ? true : undefined), 2000);
    sock2.destroy();
  } finally {
    sock.destroy();
    await nat.close();
    echo.server.close();
  }
});

test('NatProxy: manual blackhole(persist) and restore()', async () => {
  const echo = await echoServer();
  const nat = new NatProxy({ target: { host: '127.0.0.1', port: echo.port } });
  const natPort = await nat.listen();
  const a = netConnect(natPort, '127.0.0.1');
  const ra = received(a);
  try {
    a.write('1');
    await waitFor(() => (ra.text() === '1' ? true : undefined), 2000);
    nat.blackhole(true);
    a.write('2');
    const b = netConnect(natPort, '127.0.0.1');
    const rb = received(b);
    b.write('3');
    await sleep(200);
    assert.equal(ra.text(), '1');
    assert.equal(rb.text(), '');
    assert.equal(ra.closed() || rb.closed(), false);
    nat.restore();
    const c = netConnect(natPort, '127.0.0.1');
    const rc = received(c);
    c.write('4');
    await waitFor(() => (rc.text() === '4' ? true : undefined), 2000);
    b.destroy();
    c.destroy();
  } finally {
    a.destroy();
    await nat.close();
    echo.server.close();
  }
});
