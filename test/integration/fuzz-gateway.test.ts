/**
 * Hostile bytes against the MQTT gateway (src/gateway): mutated, truncated and oversized MQTT
 * frames before and after authentication, slow (slowloris) CONNECTs and TLS handshakes, and
 * mutated WebSocket upgrades and frames. Properties: the process never sees an uncaught exception
 * or unhandled rejection, every hostile connection ends (none outlives the connect timeout),
 * memory stays bounded, and a well-behaved device still connects and gets its push afterwards.
 * `FUZZ_RUNS=2000 npm test -- fuzz-gateway` (or `npm run fuzz`) runs a long campaign.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server as HttpServer } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { connect as mqttConnect } from 'mqtt';
import { generate, type Packet } from 'mqtt-packet';
import { signDeviceToken } from '../../src/core/device-token.js';
import { GatewayServer, deviceTokenAuthenticator } from '../../src/gateway/index.js';
import { fuzzRuns } from '../helpers/fuzz.js';
import { testPki } from '../mocks/tls.js';

const SECRET = 'fuzz-secret-0123456789abcdef';
const APP = 'fuzz-app';
const CONNECT_TIMEOUT_MS = 1500;
const MAX_PACKET = 64 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Like events.once, but an 'error' (ECONNRESET from a server that hung up) does not reject. */
const event = (sock: Socket, name: string) => new Promise<void>((resolve) => sock.once(name, () => resolve()));

const problems: string[] = [];
const onRejection = (err: unknown) => problems.push(`unhandledRejection: ${String(err)}`);
const onException = (err: unknown) => problems.push(`uncaughtException: ${String(err)}`);

/** Opens a TCP connection, writes the chunks, waits up to `ms` for the server to close it; true if it did. */
async function throwBytes(port: number, chunks: Buffer[], ms = 150, gapMs = 0): Promise<boolean> {
  const sock = netConnect(port, '127.0.0.1');
  sock.on('error', () => undefined);
  sock.on('data', () => undefined);
  const closed = event(sock, 'close').then(() => true);
  await Promise.race([event(sock, 'connect'), closed]);
  for (const c of chunks) {
    if (sock.destroyed) break;
    sock.write(c);
    if (gapMs) await sleep(gapMs);
  }
  const byServer = await Promise.race([closed, sleep(ms).then(() => false)]);
  sock.destroy();
  return byServer;
}

/** `valid` nine times in ten, else `broken`. */
const usually = <T>(valid: fc.Arbitrary<T>, broken: fc.Arbitrary<T>) => fc.oneof({ arbitrary: valid, weight: 9 }, { arbitrary: broken, weight: 1 });

/** Valid packets a device may send, in every protocol version, with fuzzed fields. */
const deviceId = fc.stringMatching(/^[A-Za-z0-9._:@-]{1,24}$/);
const props5 = fc.option(
  fc.record(
    {
      sessionExpiryInterval: fc.nat({ max: 2 ** 32 - 1 }),
      receiveMaximum: fc.integer({ min: 1, max: 65535 }),
      maximumPacketSize: fc.integer({ min: 1, max: 2 ** 28 }),
      topicAliasMaximum: fc.nat({ max: 65535 }),
      requestResponseInformation: fc.boolean(),
      userProperties: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 30 }), { maxKeys: 3 }),
      authenticationMethod: fc.string({ maxLength: 10 }),
    },
    { requiredKeys: [] },
  ),
  { nil: undefined },
);
const connectPacket = fc.record({
  id: deviceId,
  version: fc.constantFrom(3, 4, 5),
  clean: fc.boolean(),
  keepalive: fc.nat({ max: 65535 }),
  valid: fc.boolean(),
  properties: props5,
  will: fc.option(fc.record({ topic: fc.string({ minLength: 1, maxLength: 20 }), payload: fc.uint8Array({ maxLength: 20 }), qos: fc.constantFrom(0, 1, 2), retain: fc.boolean() }), { nil: undefined }),
}).map(({ id, version, clean, keepalive, valid, properties, will }) => {
  const p = {
    cmd: 'connect',
    protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: version,
    clientId: id,
    clean,
    keepalive,
    username: id,
    password: Buffer.from(valid ? signDeviceToken(SECRET, APP, id) : 'x.y'),
    ...(will ? { will: { ...will, payload: Buffer.from(will.payload) } } : {}),
    ...(version === 5 && properties ? { properties } : {}),
  };
  return { bytes: safeGenerate(p as unknown as Packet, version), version, id };
});

function safeGenerate(p: Packet, version: number): Buffer {
  try {
    return generate(p, { protocolVersion: version as 4 });
  } catch {
    return Buffer.from([0x10, 0x00]); // a field mqtt-packet itself refuses to encode
  }
}

const topic = fc.oneof(
  fc.constantFrom('$relay/heartbeat', '$relay/control', 'devices/x', '#', '+/+', 'devices/+', '$SYS/#', ''),
  fc.string({ maxLength: 40 }),
);
const payload = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v))),
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  fc.constantFrom('{"interval":-1}', '{"interval":1e309}', '{"type":"opened","id":"msg_x"}', '{"network":"' + 'n'.repeat(5000) + '"}').map((s) => Buffer.from(s)),
);
/** Packets after the CONNECT: mostly well-formed, any command, any field. */
const afterConnect = (version: number) =>
  fc.oneof(
    fc.record({ cmd: fc.constant('publish'), topic, payload, qos: fc.constantFrom(0, 1, 2), messageId: fc.integer({ min: 1, max: 65535 }), retain: fc.boolean(), dup: fc.boolean() }),
    fc.record({ cmd: fc.constant('subscribe'), messageId: fc.integer({ min: 1, max: 65535 }), subscriptions: fc.array(fc.record({ topic, qos: fc.constantFrom(0, 1, 2) }), { minLength: 1, maxLength: 4 }) }),
    fc.record({ cmd: fc.constant('unsubscribe'), messageId: fc.integer({ min: 1, max: 65535 }), unsubscriptions: fc.array(topic, { minLength: 1, maxLength: 3 }) }),
    fc.record({ cmd: fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp'), messageId: fc.integer({ min: 1, max: 65535 }), reasonCode: fc.constantFrom(0, 0x10, 0x80, 0x97) }),
    fc.record({ cmd: fc.constantFrom('pingreq', 'pingresp', 'disconnect', 'auth', 'connack', 'suback', 'unsuback') }),
  ).map((p) => safeGenerate(p as unknown as Packet, version));

type Mutation = { kind: 'flip' | 'truncate' | 'insert' | 'length' | 'none'; at: number; byte: number; bytes: Uint8Array };
const mutation = fc.record({
  kind: fc.constantFrom('flip', 'truncate', 'insert', 'length', 'none'),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
  bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
}) as fc.Arbitrary<Mutation>;

function mutate(buf: Buffer, m: Mutation): Buffer {
  const at = buf.length ? m.at % buf.length : 0;
  switch (m.kind) {
    case 'flip': {
      const b = Buffer.from(buf);
      if (b.length) b[at] = b[at]! ^ (1 << (m.byte % 8));
      return b;
    }
    case 'truncate':
      return buf.subarray(0, at);
    case 'insert':
      return Buffer.concat([buf.subarray(0, at), Buffer.from(m.bytes), buf.subarray(at)]);
    case 'length':
      // A remaining length that lies: varint bytes with the continuation bit, or a huge value.
      return Buffer.concat([buf.subarray(0, 1), Buffer.from([0xff, 0xff, 0xff, 0x7f]), buf.subarray(2)]);
    default:
      return buf;
  }
}

describe('fuzzing the MQTT gateway: frames, slowloris, WebSocket upgrades', () => {
  let gw: GatewayServer;
  let http: HttpServer;
  let port: number;
  let tlsPort: number;
  let httpPort: number;
  let tried = 0;
  let rss0 = 0;
  const acked: string[] = [];

  before(async () => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtException', onException);
    gw = new GatewayServer({
      authenticate: deviceTokenAuthenticator(SECRET),
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      maxPacketBytes: MAX_PACKET,
      sweepIntervalMs: 100,
      hooks: {
        onOnline: () => undefined,
        onOffline: () => undefined,
        onAck: (_a, _d, id) => void acked.push(id),
        onControl: () => undefined,
      },
    });
    port = await gw.listenTcp(0, '127.0.0.1');
    const pki = testPki();
    tlsPort = await gw.listenTcp(0, '127.0.0.1', { cert: pki.certPem, key: pki.keyPem });
    http = createServer((_req, res) => res.writeHead(404).end());
    gw.attachWebSocket(http, '/mqtt');
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    httpPort = (http.address() as AddressInfo).port;
    rss0 = process.memoryUsage().rss;
  });
  after(async () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    await gw?.close();
    http?.close();
  });

  test('mutated and truncated CONNECTs, then mutated packet sequences after a valid CONNECT', { timeout: 120_000 + fuzzRuns(150) * 200 }, async () => {
    const runs = fuzzRuns(150);
    await fc.assert(
      fc.asyncProperty(connectPacket, fc.array(mutation, { maxLength: 3 }), async (c, ms) => {
        tried++;
        await throwBytes(port, [ms.reduce(mutate, c.bytes)], 30);
      }),
      { numRuns: runs, includeErrorInReport: true },
    );
    await fc.assert(
      fc.asyncProperty(
        connectPacket.filter((c) => c.bytes.length > 2),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 100 }), mutation), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        async (c, seq, split) => {
          tried++;
          const v = c.version;
          const sample = fc.sample(afterConnect(v), { numRuns: seq.length, seed: seq[0]![0] });
          const packets = sample.map((b, i) => (seq[i]![0] < 70 ? b : mutate(b, seq[i]![1])));
          const bytes = Buffer.concat([c.bytes, ...packets]);
          // Split at odd places, as TCP may.
          const chunks = split ? [bytes.subarray(0, 3), bytes.subarray(3, 11), bytes.subarray(11)].filter((b) => b.length) : [bytes];
          await throwBytes(port, chunks, 30);
        },
      ),
      { numRuns: runs, includeErrorInReport: true },
    );
    // Every hostile connection ends: closed by the server or by us, none lingers as a session.
    await waitFor(() => gw.connectionCount === 0, 5000, () => `connections left open: ${gw.connectionCount}`);
  });

  test('an oversized packet is refused from its header, without buffering the body', async () => {
    for (const header of [
      Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]), // CONNECT of 256 MB
      Buffer.from([0x10, 0x80, 0x80, 0x04]), // CONNECT of 64 KiB, over the pre-auth limit
    ]) {
      tried++;
      const before = process.memoryUsage().rss;
      const closed = await throwBytes(port, [header, ...Array.from({ length: 64 }, () => Buffer.alloc(32 * 1024, 0x61))], 2000);
      assert.ok(closed, 'the server closed the connection');
      assert.ok(process.memoryUsage().rss - before < 64 * 2 ** 20);
    }
    // After authentication: the advertised limit holds too.
    const id = 'big-1';
    const conn = safeGenerate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: true, keepalive: 60, username: id, password: Buffer.from(signDeviceToken(SECRET, APP, id)) } as Packet, 4);
    const huge = safeGenerate({ cmd: 'publish', topic: '$relay/control', payload: Buffer.alloc(MAX_PACKET + 10, 0x7b), qos: 0 } as Packet, 4);
    tried++;
    assert.ok(await throwBytes(port, [conn, huge.subarray(0, 10)], 2000), 'closed from the header of a too-large PUBLISH');
  });

  test('slowloris: CONNECTs trickled byte by byte and stalled TLS handshakes are cut at the connect timeout', async () => {
    const id = 'slow-1';
    const conn = safeGenerate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: true, keepalive: 60, username: id, password: Buffer.from(signDeviceToken(SECRET, APP, id)) } as Packet, 4);
    const started = Date.now();
    const slow = Array.from({ length: 20 }, () => throwBytes(port, [...conn].map((b) => Buffer.from([b])), CONNECT_TIMEOUT_MS * 4, 200));
    // TLS: connect and never say hello; and a partial ClientHello.
    const tls = Array.from({ length: 10 }, (_, i) => throwBytes(tlsPort, i % 2 ? [] : [Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])], CONNECT_TIMEOUT_MS * 4));
    // WebSocket: upgraded, then silent.
    const ws = Array.from({ length: 5 }, () => throwBytes(httpPort, [Buffer.from(upgradeRequest({}))], CONNECT_TIMEOUT_MS * 4));
    const results = await Promise.all([...slow, ...tls, ...ws]);
    tried += results.length;
    assert.deepEqual(results.filter((closed) => !closed).length, 0, 'every slow connection was closed by the server');
    const took = Date.now() - started;
    assert.ok(took < CONNECT_TIMEOUT_MS * 3, `closed after ${took} ms, not when the trickle ended (${40 * 200} ms)`);
  });

  test('mutated WebSocket upgrades and frames', { timeout: 120_000 + fuzzRuns(100) * 400 }, async () => {
    const runs = fuzzRuns(100);
    const statuses: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(
        // Each field is usually valid, so about a third of the upgrades succeed and carry frames.
        fc.record({
          drop: usually(fc.constant<string[]>([]), fc.subarray(['Upgrade', 'Connection', 'Sec-WebSocket-Key', 'Sec-WebSocket-Version', 'Sec-WebSocket-Protocol'])),
          key: usually(fc.constant('dGhlIHNhbXBsZSBub25jZQ=='), fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, ''))),
          version: usually(fc.constant('13'), fc.constantFrom('8', '12', '', 'x')),
          protocol: usually(fc.constantFrom('mqtt', 'mqttv3.1', 'mqtt, mqttv3.1'), fc.constantFrom('foo', '')),
          method: usually(fc.constant('GET'), fc.constantFrom('POST', 'HEAD')),
          path: usually(fc.constantFrom('/mqtt', '/mqtt?x=1'), fc.constantFrom('/other', '/mqtt/..', '*')),
          pad: usually(fc.constant(0), fc.constant(20_000)),
        }),
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { maxLength: 4 }),
        async (req, frames) => {
          tried++;
          const head = Buffer.from(upgradeRequest(req));
          const reply = await exchange(httpPort, head, frames.map((f) => Buffer.from(f)));
          const status = /^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 'closed';
          statuses[status] = (statuses[status] ?? 0) + 1;
          assert.ok(!status.startsWith('5'), `${status} for ${head.toString().slice(0, 300)}`);
        },
      ),
      { numRuns: runs, includeErrorInReport: true },
    );
    // A valid upgrade carrying mutated MQTT inside binary frames, and frames that break the rules.
    await fc.assert(
      fc.asyncProperty(connectPacket, mutation, fc.constantFrom(0x82, 0x81, 0x89, 0x88, 0x80, 0x02), async (c, m, opcode) => {
        tried++;
        const body = mutate(c.bytes, m);
        await exchange(httpPort, Buffer.from(upgradeRequest({})), [wsFrame(opcode, body)]);
      }),
      { numRuns: runs, includeErrorInReport: true },
    );
    assert.ok(statuses['101'] && statuses['400'], `both accepted and refused upgrades were tried: ${JSON.stringify(statuses)}`);
    await waitFor(() => gw.connectionCount === 0, 5000, () => `connections left open: ${gw.connectionCount}`);
  });

  test('afterwards: nothing unhandled, memory bounded, and a standard client still connects and gets its push', async () => {
    const id = 'after-1';
    const c = mqttConnect(`mqtt://127.0.0.1:${port}`, { clientId: id, username: id, password: signDeviceToken(SECRET, APP, id), protocolVersion: 5, reconnectPeriod: 0 });
    await new Promise((resolve) => c.once('connect', resolve));
    await c.subscribeAsync(`devices/${id}`, { qos: 1 });
    const got = new Promise((resolve) => c.once('message', resolve));
    assert.ok(gw.deliver(APP, id, { id: 'msg_after', seq: 1, payload: { data: { ok: true } }, expiresAt: Date.now() + 60_000 }));
    await got;
    await waitFor(() => acked.includes('msg_after'), 5000, () => 'PUBACK');
    await c.endAsync();
    const growthMb = Math.round((process.memoryUsage().rss - rss0) / 2 ** 20);
    console.log(JSON.stringify({ fuzz: 'gateway', inputs: tried, rssGrowthMb: growthMb, problems: problems.length }));
    assert.deepEqual(problems, []);
    assert.ok(growthMb < 200, `RSS grew ${growthMb} MB`);
  });
});

function upgradeRequest(o: Partial<{ drop: string[]; key: string; version: string; protocol: string; method: string; path: string; pad: number }>): string {
  const headers: [string, string][] = [
    ['Host', '127.0.0.1'],
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Key', o.key ?? 'dGhlIHNhbXBsZSBub25jZQ=='],
    ['Sec-WebSocket-Version', o.version ?? '13'],
    ['Sec-WebSocket-Protocol', o.protocol ?? 'mqtt'],
  ];
  const kept = headers.filter(([k]) => !(o.drop ?? []).includes(k));
  if (o.pad) kept.push(['X-Pad', 'p'.repeat(o.pad)]);
  return `${o.method ?? 'GET'} ${o.path ?? '/mqtt'} HTTP/1.1\r\n${kept.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
}

/** A masked client frame (RFC 6455 §5.2). */
function wsFrame(firstByte: number, payload: Buffer): Buffer {
  const mask = Buffer.from([1, 2, 3, 4]);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([firstByte, 0x80 | len]) : Buffer.from([firstByte, 0x80 | 126, len >> 8, len & 0xff]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([head, mask, body]);
}

/** Sends an upgrade request, then frames; returns what the server answered before closing (or 300 ms). */
async function exchange(port: number, head: Buffer, frames: Buffer[]): Promise<string> {
  const sock: Socket = netConnect(port, '127.0.0.1');
  sock.on('error', () => undefined);
  let reply = '';
  sock.on('data', (d: Buffer) => (reply += d.toString('latin1')));
  const closed = event(sock, 'close');
  await Promise.race([event(sock, 'connect'), closed]);
  sock.write(head);
  await Promise.race([sleep(20), closed]);
  for (const f of frames) if (!sock.destroyed) sock.write(f);
  await Promise.race([closed, sleep(60)]);
  sock.destroy();
  return reply;
}

async function waitFor(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) assert.fail(what());
    await sleep(20);
  }
}
