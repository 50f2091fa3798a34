/**
 * Shared parts of the gateway benchmarks (bench/gateway-idle.ts, bench/gateway-latency.ts):
 * spawning role processes with a raised fd limit and an IPC channel, a request/response helper
 * over IPC, the bare `mqtt-packet` baseline server, and cheap raw-socket MQTT clients.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { generate, parser as mqttParser, type Packet } from 'mqtt-packet';
import { WebSocket, WebSocketServer } from 'ws';
import { signDeviceToken } from '../src/core/device-token.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SECRET = 'bench-secret-0123456789abcdef';
export const APP = 'bench-app';
export const deviceId = (i: number) => `dev-${i}`;

// ------------------------------------------------------------------ processes

/** The largest fd limit a child can get (tries 1,048,576, else the hard limit). */
export function maxFdLimit(want = 1_048_576): number {
  const r = spawnSync('bash', ['-c', `ulimit -n ${want} 2>/dev/null && ulimit -n || ulimit -Hn`], { encoding: 'utf8' });
  const n = Number(r.stdout.trim());
  return Number.isFinite(n) && n > 0 ? n : 1024; // "unlimited" → NaN → be conservative
}

/**
 * Starts `node --import tsx <script> ...args` through `bash -c 'ulimit -n …; exec node …'` so the
 * child gets the largest fd limit available; stdio inherits, plus an IPC channel.
 */
export function spawnRole(script: string, args: string[], opts: { gc?: boolean; fd?: number } = {}): ChildProcess {
  const fd = opts.fd ?? 1_048_576;
  const nodeArgs = [...(opts.gc ? ['--expose-gc'] : []), '--import', 'tsx', script, ...args];
  const child = spawn(
    'bash',
    ['-c', `ulimit -n ${fd} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`, process.execPath, ...nodeArgs],
    { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  return child;
}

let nextReq = 1;
/** Sends `{id, ...msg}` and resolves with the child's `{id, ...}` answer. */
export function request<T = Record<string, unknown>>(child: ChildProcess, msg: Record<string, unknown>, timeoutMs = 600_000): Promise<T> {
  const id = nextReq++;
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMsg);
      reject(new Error(`no answer to ${String(msg.cmd)}`));
    }, timeoutMs);
    const onMsg = (m: { id?: number; error?: string }) => {
      if (m.id !== id) return;
      clearTimeout(timer);
      child.off('message', onMsg);
      if (m.error) reject(new Error(m.error));
      else resolvePromise(m as T);
    };
    child.on('message', onMsg);
    child.send({ id, ...msg });
  });
}

/** Child side: answers requests with a handler. */
export function serveRequests(handler: (msg: Record<string, unknown>) => Promise<Record<string, unknown>> | Record<string, unknown>): void {
  process.on('message', (m: { id: number; cmd: string }) => {
    Promise.resolve()
      .then(() => handler(m))
      .then(
        (r) => process.send!({ id: m.id, ...r }),
        (err: unknown) => process.send!({ id: m.id, error: String(err instanceof Error ? err.stack : err) }),
      );
  });
  process.on('disconnect', () => process.exit(0));
}

export function waitMessage<T>(child: ChildProcess, pred: (m: T) => boolean, timeoutMs = 120_000): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not report')), timeoutMs);
    const onMsg = (m: T) => {
      if (!pred(m)) return;
      clearTimeout(timer);
      child.off('message', onMsg);
      resolvePromise(m);
    };
    child.on('message', onMsg);
    child.once('exit', (code) => reject(new Error(`child exited (${code})`)));
  });
}

/**
 * Process stats; with `collect`, after forcing GC (the server children run with --expose-gc).
 * CPU windows must be measured without `collect`, or the forced GC is counted in them.
 */
export async function processStats(collect = true): Promise<{ rss: number; heapUsed: number; cpuMicros: number; at: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc && collect) {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const m = process.memoryUsage();
  const c = process.cpuUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, cpuMicros: c.user + c.system, at: performance.now() };
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

// ------------------------------------------------------------------ bare baseline server

const V4 = { protocolVersion: 4 };
const PINGRESP = generate({ cmd: 'pingresp' });
const CONNACK = generate({ cmd: 'connack', returnCode: 0, sessionPresent: false });

export interface BareConn {
  sock: Socket;
  deviceId: string;
  nextId: number;
}

/**
 * The baseline: the least an MQTT server on mqtt-packet can do (CONNECT → CONNACK, SUBSCRIBE →
 * SUBACK, PINGREQ → PINGRESP, PUBACK → callback). No auth, no ACL, no timers, no bookkeeping.
 */
export function bareServer(onPuback?: (c: BareConn, messageId: number) => void, onSubscribed?: (c: BareConn) => void): Server {
  return createServer({ noDelay: true }, (sock) => {
    const p = mqttParser(V4);
    const conn: BareConn = { sock, deviceId: '', nextId: 0 };
    p.on('packet', (pk: Packet) => {
      switch (pk.cmd) {
        case 'connect':
          conn.deviceId = pk.clientId;
          sock.write(CONNACK);
          return;
        case 'subscribe':
          sock.write(generate({ cmd: 'suback', messageId: pk.messageId!, granted: pk.subscriptions.map(() => 1) }, V4));
          onSubscribed?.(conn);
          return;
        case 'pingreq':
          sock.write(PINGRESP);
          return;
        case 'puback':
          onPuback?.(conn, pk.messageId!);
          return;
        default:
      }
    });
    p.on('error', () => sock.destroy());
    sock.on('data', (b) => p.parse(b));
    sock.on('error', () => {});
  });
}

export function bareSend(c: BareConn, payload: string): number {
  c.nextId = c.nextId >= 0xffff ? 1 : c.nextId + 1;
  c.sock.write(
    generate(
      { cmd: 'publish', topic: `devices/${c.deviceId}`, payload: Buffer.from(payload), qos: 1, dup: false, retain: false, messageId: c.nextId },
      V4,
    ),
  );
  return c.nextId;
}

export function listenPort(server: Server | HttpServer, port = 0, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: 4096 }, () => resolvePromise((server.address() as AddressInfo).port));
  });
}

/** The baseline over WebSocket: `ws` at /mqtt (subprotocol mqtt) + the same bare handling. */
export function bareWsServer(): HttpServer {
  const http = createHttpServer();
  const wss = new WebSocketServer({ server: http, path: '/mqtt', perMessageDeflate: false, clientTracking: false });
  wss.on('connection', (ws) => {
    const p = mqttParser(V4);
    p.on('packet', (pk: Packet) => {
      if (pk.cmd === 'connect') ws.send(CONNACK);
      else if (pk.cmd === 'subscribe') ws.send(generate({ cmd: 'suback', messageId: pk.messageId!, granted: pk.subscriptions.map(() => 1) }, V4));
      else if (pk.cmd === 'pingreq') ws.send(PINGRESP);
    });
    p.on('error', () => ws.terminate());
    ws.on('message', (b: Buffer) => p.parse(b));
    ws.on('error', () => {});
  });
  return http;
}

/** A bare server on the same port at every address of `hosts`. */
export async function listenBare(hosts: string[], onPuback?: (c: BareConn, messageId: number) => void, onSubscribed?: (c: BareConn) => void): Promise<number> {
  const port = await listenPort(bareServer(onPuback, onSubscribed), 0, hosts[0]);
  for (const h of hosts.slice(1)) await listenPort(bareServer(onPuback, onSubscribed), port, h);
  return port;
}

// ------------------------------------------------------------------ raw clients

const PINGREQ = generate({ cmd: 'pingreq' });

/** One client connection, whatever the transport. */
export interface Link {
  write(buf: Buffer): void;
  destroy(): void;
}

export type BenchTransport = 'tcp' | 'ws';

export interface RawClients {
  connected: number;
  failed: number;
  /** Why handshakes failed: errno codes, 'closed' (by the server), 'refused' (CONNACK ≠ 0), 'parse'. */
  errors: Record<string, number>;
  pingresps: number;
  publishes: number;
  links: Link[];
  startPings(ratePerSec: number): void;
  stopPings(): void;
  close(): void;
}

/** Loopback addresses a server must listen on (same port) for `n` clients, 20,000 per address. */
export const PER_ADDRESS = 20_000;
export function loopbackAddresses(n: number): string[] {
  return Array.from({ length: Math.max(1, Math.ceil(n / PER_ADDRESS)) }, (_, k) => `127.0.0.${1 + k}`);
}

/**
 * Opens `count` MQTT 3.1.1 connections (CONNECT + SUBSCRIBE devices/<id>) over TCP or WebSocket
 * (`/mqtt`, subprotocol `mqtt`), with at most `parallel` handshakes in flight. Every QoS 1
 * PUBLISH is PUBACKed at once. To stay clear of ephemeral-port exhaustion (~28k ports per
 * destination), client i connects to 127.0.0.(1 + i / 20,000): the server listens on each of
 * those addresses. (Spreading *source* addresses with bind() instead makes the kernel's port
 * search O(sockets) and connects crawl.)
 */
export async function openClients(opts: {
  port: number;
  first: number;
  count: number;
  keepalive: number;
  transport?: BenchTransport;
  parallel?: number;
  perAddress?: number;
}): Promise<RawClients> {
  const parallel = opts.parallel ?? 256;
  const perAddress = opts.perAddress ?? PER_ADDRESS;
  const state: RawClients = {
    connected: 0,
    failed: 0,
    errors: {},
    pingresps: 0,
    publishes: 0,
    links: [],
    startPings,
    stopPings,
    close,
  };
  let pingTimer: NodeJS.Timeout | null = null;
  const fail = (why: string) => (state.errors[why] = (state.errors[why] ?? 0) + 1);

  function openOne(i: number): Promise<void> {
    const id = deviceId(i);
    const host = `127.0.0.${1 + Math.floor(i / perAddress)}`;
    return new Promise((done) => {
      const p = mqttParser(V4);
      let settled = false;
      let link: Link;
      const finish = (ok: boolean, why?: string) => {
        if (settled) return;
        settled = true;
        if (ok) {
          state.connected++;
          state.links.push(link);
        } else {
          state.failed++;
          if (why) fail(why);
          link.destroy();
        }
        done();
      };
      p.on('packet', (pk: Packet) => {
        switch (pk.cmd) {
          case 'connack':
            if ((pk.returnCode ?? 0) !== 0) return finish(false, 'refused');
            link.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `devices/${id}`, qos: 1 }] }, V4));
            return;
          case 'suback':
            return finish(true);
          case 'pingresp':
            state.pingresps++;
            return;
          case 'publish':
            state.publishes++;
            if (pk.qos === 1) link.write(generate({ cmd: 'puback', messageId: pk.messageId! }, V4));
            return;
          default:
        }
      });
      p.on('error', () => finish(false, 'parse'));
      const connectPacket = () =>
        generate(
          {
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clientId: id,
            username: id,
            password: Buffer.from(signDeviceToken(SECRET, APP, id)),
            clean: true,
            keepalive: opts.keepalive,
          },
          V4,
        );
      if (opts.transport === 'ws') {
        const ws = new WebSocket(`ws://${host}:${opts.port}/mqtt`, 'mqtt', { perMessageDeflate: false });
        link = { write: (b) => ws.send(b), destroy: () => ws.terminate() };
        ws.on('open', () => ws.send(connectPacket()));
        ws.on('message', (b: Buffer) => p.parse(b));
        ws.on('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
        ws.on('close', () => finish(false, 'closed'));
      } else {
        const sock = netConnect({ port: opts.port, host, noDelay: true });
        link = sock;
        sock.on('connect', () => sock.write(connectPacket()));
        sock.on('data', (b) => p.parse(b));
        sock.on('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
        sock.on('close', () => finish(false, 'closed'));
      }
    });
  }

  let next = opts.first;
  const end = opts.first + opts.count;
  await Promise.all(
    Array.from({ length: Math.min(parallel, opts.count) }, async () => {
      while (next < end) await openOne(next++);
    }),
  );

  function startPings(ratePerSec: number): void {
    stopPings();
    const tickMs = 20;
    let credit = 0;
    let cursor = 0;
    pingTimer = setInterval(() => {
      credit += (ratePerSec * tickMs) / 1000;
      const links = state.links;
      while (credit >= 1 && links.length > 0) {
        credit -= 1;
        links[cursor++ % links.length]!.write(PINGREQ);
      }
    }, tickMs);
  }
  function stopPings(): void {
    if (pingTimer) clearInterval(pingTimer);
    pingTimer = null;
  }
  function close(): void {
    stopPings();
    for (const l of state.links) l.destroy();
  }
  return state;
}
