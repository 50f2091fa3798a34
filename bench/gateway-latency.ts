/**
 * Self-channel delivery benchmark (README: Tests and benchmarks): `--devices` online devices (raw mqtt-packet clients
 * in their own process, PUBACK at once); in the gateway process a driver calls `deliver()` and
 * measures push → PUBACK (onAck):
 *   - latency: open loop at `--rate` pushes/s for `--secs`, p50 / p99;
 *   - throughput: closed loop, `--window` pushes outstanding per device, acked messages/s.
 * The same driver runs in the same run against a bare mqtt-packet echo loop (generate PUBLISH,
 * parse PUBACK, nothing else) as the baseline. One JSON line.
 *
 *   npx tsx bench/gateway-latency.ts [--devices 1000] [--rate 5000] [--secs 5] [--window 16]
 */
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  APP,
  SECRET,
  bareSend,
  deviceId,
  listenBare,
  openClients,
  percentile,
  request,
  serveRequests,
  spawnRole,
  waitMessage,
  type BareConn,
  type RawClients,
} from './gateway-bench-lib.js';

const SELF = fileURLToPath(import.meta.url);
const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    impl: { type: 'string', default: 'gateway' },
    devices: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '5000' },
    secs: { type: 'string', default: '5' },
    window: { type: 'string', default: '16' },
    port: { type: 'string' },
  },
});
const DEVICES = Number(values.devices);

const PAYLOAD = { notification: { title: 'Order shipped', body: 'Your order #42 is on its way' }, data: { orderId: '42' } };

if (values.role === 'server') await serverRole(values.impl as 'gateway' | 'bare');
else if (values.role === 'clients') await clientsRole();
else await main();

// ------------------------------------------------------------------ server + driver process

/** Sends push number `seq` to device `i`; the ack callback must call `acked(seq)`. */
type Sender = (i: number, seq: number) => void;

async function serverRole(impl: 'gateway' | 'bare'): Promise<void> {
  let onAcked: (seq: number) => void = () => {};
  let send: Sender;
  let port: number;
  const hosts = ['127.0.0.1'];

  if (impl === 'gateway') {
    const { GatewayServer, deviceTokenAuthenticator } = await import('../src/gateway/index.js');
    const gw = new GatewayServer({
      authenticate: deviceTokenAuthenticator(SECRET),
      hooks: { onOnline() {}, onOffline() {}, onControl() {}, onAck: (_a, _d, _id, seq) => onAcked(seq) },
    });
    port = await gw.listenTcp(0, hosts[0]);
    send = (i, seq) => {
      gw.deliver(APP, deviceId(i), { id: `m-${seq}`, seq, payload: PAYLOAD, expiresAt: Date.now() + 3_600_000 });
    };
  } else {
    const conns = new Map<string, BareConn>();
    const inflight = new Map<BareConn, Map<number, number>>();
    port = await listenBare(
      hosts,
      (c, messageId) => {
        const m = inflight.get(c);
        const seq = m?.get(messageId);
        if (seq === undefined) return;
        m!.delete(messageId);
        onAcked(seq);
      },
      (c) => {
        conns.set(c.deviceId, c);
        inflight.set(c, new Map());
      },
    );
    send = (i, seq) => {
      const c = conns.get(deviceId(i));
      if (!c) return;
      const expiresAt = Date.now() + 3_600_000;
      const body = JSON.stringify({ type: 'push', id: `m-${seq}`, seq, ...PAYLOAD, expiresAt });
      inflight.get(c)!.set(bareSend(c, body), seq);
    };
  }

  let seqBase = 1;

  /** Open loop: `rate` pushes per second round-robin over the devices; latency of each. */
  function latency(rate: number, secs: number): Promise<Record<string, number>> {
    const total = Math.round(rate * secs);
    const starts = new Float64Array(total);
    const lat = new Float64Array(total);
    let acked = 0;
    let sent = 0;
    const base = seqBase;
    seqBase += total;
    return new Promise((resolve) => {
      onAcked = (seq) => {
        const k = seq - base;
        if (k < 0 || k >= total) return;
        lat[acked++] = performance.now() - starts[k]!;
        if (acked === total) finish();
      };
      const t0 = performance.now();
      const pump = () => {
        const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
        while (sent < due) {
          starts[sent] = performance.now();
          send(sent % DEVICES, base + sent);
          sent++;
        }
        if (sent < total) setImmediate(pump);
      };
      const guard = setTimeout(finish, secs * 1000 + 30_000);
      function finish() {
        clearTimeout(guard);
        const got = lat.subarray(0, acked).sort();
        resolve({ sent: total, acked, p50Ms: round(percentile(got, 50), 2), p99Ms: round(percentile(got, 99), 2), maxMs: round(got[got.length - 1] ?? NaN, 1) });
      }
      pump();
    });
  }

  /** Closed loop: `window` outstanding per device; acked messages per second after a 1 s warm-up. */
  function throughput(window: number, secs: number): Promise<Record<string, number>> {
    return new Promise((resolve) => {
      let acked = 0;
      let counting = false;
      let stop = false;
      let counted = 0;
      let tStart = 0;
      const deviceOf = new Map<number, number>();
      onAcked = (seq) => {
        const i = deviceOf.get(seq);
        if (i === undefined) return;
        deviceOf.delete(seq);
        acked++;
        if (counting) counted++;
        if (!stop) {
          const next = seqBase++;
          deviceOf.set(next, i);
          send(i, next);
        }
      };
      for (let i = 0; i < DEVICES; i++) {
        for (let w = 0; w < window; w++) {
          const s = seqBase++;
          deviceOf.set(s, i);
          send(i, s);
        }
      }
      setTimeout(() => {
        counting = true;
        tStart = performance.now();
        setTimeout(() => {
          counting = false;
          stop = true;
          const rate = counted / ((performance.now() - tStart) / 1000);
          // let the tail drain before the next phase
          setTimeout(() => resolve({ ackedPerSec: Math.round(rate), acked }), 1000);
        }, secs * 1000);
      }, 1000);
    });
  }

  serveRequests(async (m) => {
    if (m.cmd === 'latency') return latency(Number(m.rate), Number(m.secs));
    if (m.cmd === 'throughput') return throughput(Number(m.window), Number(m.secs));
    throw new Error(`unknown ${String(m.cmd)}`);
  });
  process.send!({ ready: true, port });
}

// ------------------------------------------------------------------ client process

async function clientsRole(): Promise<void> {
  let clients: RawClients | null = null;
  serveRequests(async (m) => {
    if (m.cmd === 'open') {
      clients = await openClients({ port: Number(values.port), first: 0, count: DEVICES, keepalive: 600 });
      return { connected: clients.connected, failed: clients.failed };
    }
    if (m.cmd === 'counts') return { publishes: clients?.publishes ?? 0 };
    throw new Error(`unknown ${String(m.cmd)}`);
  });
  process.send!({ ready: true });
}

// ------------------------------------------------------------------ orchestrator

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

async function measure(impl: 'gateway' | 'bare') {
  const server = spawnRole(SELF, ['--role', 'server', '--impl', impl, '--devices', String(DEVICES)]);
  const children: ChildProcess[] = [server];
  try {
    const { port } = await waitMessage<{ ready?: boolean; port: number }>(server, (m) => m.ready === true);
    const clients = spawnRole(SELF, ['--role', 'clients', '--port', String(port), '--devices', String(DEVICES)]);
    children.push(clients);
    await waitMessage<{ ready?: boolean }>(clients, (m) => m.ready === true);
    const opened = await request<{ connected: number; failed: number }>(clients, { cmd: 'open' });
    if (opened.connected !== DEVICES) throw new Error(`${impl}: only ${opened.connected} of ${DEVICES} devices connected`);
    await request(server, { cmd: 'latency', rate: 500, secs: 1 }); // warm-up
    const lat = await request<{ sent: number; acked: number; p50Ms: number; p99Ms: number; maxMs: number }>(server, { cmd: 'latency', rate: Number(values.rate), secs: Number(values.secs) });
    const tput = await request<Record<string, number>>(server, { cmd: 'throughput', window: Number(values.window), secs: Number(values.secs) });
    return { sent: lat.sent, acked: lat.acked, p50Ms: lat.p50Ms, p99Ms: lat.p99Ms, maxMs: lat.maxMs, ackedPerSec: tput.ackedPerSec! };
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const gateway = await measure('gateway');
  const bare = await measure('bare');
  console.log(
    JSON.stringify({
      bench: 'gateway-latency',
      devices: DEVICES,
      rate: Number(values.rate),
      window: Number(values.window),
      gateway,
      bare,
      ratio: { throughput: round(gateway.ackedPerSec / bare.ackedPerSec, 2), p99: round(gateway.p99Ms / bare.p99Ms, 2) },
      targets: { p99Ms: 20, ackedPerSec: 20_000 },
    }),
  );
}
