import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { startTestRelay, type TestRelay } from '../helpers/harness.js';

/**
 * Every HTTP listener is bounded: a client that trickles its headers or body (slowloris) is cut
 * off after HTTP_HEADERS_TIMEOUT / HTTP_REQUEST_TIMEOUT, oversized headers are refused, idle
 * keep-alive sockets close, and a listener holds at most HTTP_MAX_CONNECTIONS sockets.
 */
let api: TestRelay;
let health: TestRelay;
before(async () => {
  const limits = { HTTP_HEADERS_TIMEOUT: '1s', HTTP_REQUEST_TIMEOUT: '2s', HTTP_MAX_HEADER_BYTES: '4096' };
  api = await startTestRelay({ ROLES: 'api', ...limits, HTTP_KEEPALIVE_TIMEOUT: '4s' });
  // A scheduler-only process answers /healthz on its own listener: the same limits apply there.
  health = await startTestRelay({ ROLES: 'scheduler', HEALTH_PORT: '0', HTTP_MAX_CONNECTIONS: '3', HTTP_KEEPALIVE_TIMEOUT: '1s', ...limits });
});
after(async () => {
  for (const t of [api, health]) {
    await t?.stop();
    await t?.iso.drop();
  }
});

interface Conn {
  socket: Socket;
  /** Everything the server sent. */
  received(): string;
  /** Resolves when the server closed the connection. */
  closed: Promise<void>;
  isClosed(): boolean;
}

async function open(port: number): Promise<Conn> {
  const socket = connect({ host: '127.0.0.1', port });
  let data = '';
  let done = false;
  socket.on('data', (b: Buffer) => (data += b.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => ((done = true), resolve())));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => data, closed, isClosed: () => done };
}

/** Writes `chunks` one at a time, `gapMs` apart, until they run out or the server closes. Resolves with how many went out. */
async function trickle(c: Conn, chunks: string[], gapMs: number): Promise<number> {
  let sent = 0;
  for (const chunk of chunks) {
    if (c.isClosed()) break;
    c.socket.write(chunk);
    sent++;
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return sent;
}

test('a client that trickles its headers (slowloris) is cut off with a 408 long before it is done', async () => {
  const c = await open(api.relay.port!);
  // 150 header lines, one every 200 ms: 30 s of headers, far beyond HTTP_HEADERS_TIMEOUT (1 s).
  const lines = ['GET /healthz HTTP/1.1\r\nHost: relay\r\n', ...Array.from({ length: 150 }, (_, i) => `X-Slow-${i}: a\r\n`)];
  const sent = await trickle(c, lines, 200);
  assert.ok(c.isClosed(), 'the server closed the connection');
  assert.ok(sent < lines.length, `cut off after ${sent} of ${lines.length} header lines`);
  assert.match(c.received(), /^HTTP\/1\.1 408 /);
  await c.closed;
});

test('a client that trickles its body is cut off with a 408', async () => {
  const c = await open(api.relay.port!);
  // Authenticated, so the API waits for the body (an unauthenticated one is answered 401 at once).
  const head = `POST /v1/apps HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer ${api.adminToken}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n`;
  const sent = await trickle(c, [head, ...Array.from({ length: 200 }, () => ' ')], 200);
  assert.ok(c.isClosed(), 'the server closed the connection');
  assert.ok(sent < 201, `cut off after ${sent - 1} of 200 body bytes`);
  assert.match(c.received(), /^HTTP\/1\.1 408 /);
});

test('headers above HTTP_MAX_HEADER_BYTES are refused with a 431', async () => {
  const c = await open(api.relay.port!);
  c.socket.write(`GET /healthz HTTP/1.1\r\nHost: relay\r\nX-Big: ${'a'.repeat(8192)}\r\n\r\n`);
  await c.closed;
  assert.match(c.received(), /^HTTP\/1\.1 431 /);
});

test('a keep-alive socket idle longer than the headers timeout still serves its next request, and closes after HTTP_KEEPALIVE_TIMEOUT', async () => {
  const c = await open(api.relay.port!);
  const get = 'GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n';
  c.socket.write(get);
  for (let i = 0; i < 500 && !/\r\n\r\n/.test(c.received()); i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(c.received(), /^HTTP\/1\.1 200 /);
  assert.match(c.received(), /Keep-Alive: timeout=4/);
  // Idle between requests is the keep-alive timeout's business, not the headers timeout's (1 s).
  await new Promise((r) => setTimeout(r, 2500));
  assert.ok(!c.isClosed(), 'still open after 2.5 s idle');
  c.socket.write(get);
  await c.closed; // HTTP_KEEPALIVE_TIMEOUT after the second answer, without a byte from the client
  assert.equal(c.received().match(/HTTP\/1\.1 200 /g)?.length, 2, c.received());
});

test('past HTTP_MAX_CONNECTIONS a listener drops new sockets; a freed slot serves again', async () => {
  const port = health.relay.port!;
  const held = [await open(port), await open(port), await open(port)];
  // Node counts a socket once it is accepted: make sure all three are before the fourth comes.
  for (const h of held) h.socket.write('GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n');
  await Promise.all(held.map(async (h) => {
    for (let i = 0; i < 200 && !/\r\n\r\n/.test(h.received()); i++) await new Promise((r) => setTimeout(r, 20));
  }));
  const fourth = await open(port);
  fourth.socket.write('GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n');
  await fourth.closed;
  assert.equal(fourth.received(), '', 'dropped without an answer');

  held[0]!.socket.destroy();
  await held[0]!.closed;
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(res.status, 200);
  for (const h of held) h.socket.destroy();
});
