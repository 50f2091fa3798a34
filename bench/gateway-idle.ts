/**
 * Self-channel idle benchmark (README: Tests and benchmarks): N idle MQTT connections (CONNECT + SUBSCRIBE to their
 * own topic) held by the gateway in its own process; measures the gateway's RSS and JS heap per
 * connection ((after − before) / N, after forced GC) and its CPU while the clients send PINGREQ
 * at `--ping-rate` per second in total (1,667/s = 100,000 devices at a 60 s interval). The same
 * is measured in the same run against a bare mqtt-packet server (the baseline). One JSON line.
 *
 *   npx tsx bench/gateway-idle.ts [--n 100000] [--ping-rate 1667] [--ping-secs 10] [--transport tcp|ws] [--no-baseline]
 *
 * Each process's fd limit is raised through `bash -c 'ulimit -n …'`; when the hard limit does not
 * allow N sockets in one process (no CAP_SYS_RESOURCE), N is capped and the output says so.
 * Clients are raw sockets + mqtt-packet in several processes; the server listens on 127.0.0.1, .2, …
 * (one address per 20,000 clients) so no source runs out of ephemeral ports.
 */
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServer as createHttpServer } from 'node:http';
import {
  bareWsServer,
  listenBare,
  listenPort,
  loopbackAddresses,
  maxFdLimit,
  openClients,
  processStats,
  request,
  serveRequests,
  spawnRole,
  SECRET,
  waitMessage,
  type RawClients,
} from './gateway-bench-lib.js';

const SELF = fileURLToPath(import.meta.url);
const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    transport: { type: 'string', default: 'tcp' },
    impl: { type: 'string', default: 'gateway' },
    n: { type: 'string', default: '100000' },
    'ping-rate': { type: 'string', default: '1667' },
    'ping-secs': { type: 'string', default: '10' },
    'no-baseline': { type: 'boolean', default: false },
    port: { type: 'string' },
    first: { type: 'string' },
    count: { type: 'string' },
  },
});

const FD_RESERVE = 200;
const TRANSPORT = values.transport === 'ws' ? 'ws' : 'tcp';
const PER_CLIENT_PROCESS = 15_000;

if (values.role === 'server') await serverRole(values.impl!);
else if (values.role === 'clients') await clientsRole();
else await main();

// ------------------------------------------------------------------ server process

async function serverRole(impl: string): Promise<void> {
  const hosts = loopbackAddresses(Number(values.n));
  let port = 0;
  if (impl === 'bare') {
    if (TRANSPORT === 'ws') for (const h of hosts) port = await listenPort(bareWsServer(), port, h);
    else port = await listenBare(hosts);
  } else {
    const { GatewayServer, deviceTokenAuthenticator } = await import('../src/gateway/index.js');
    const gw = new GatewayServer({
      authenticate: deviceTokenAuthenticator(SECRET),
      hooks: { onOnline() {}, onOffline() {}, onAck() {}, onControl() {} },
    });
    if (TRANSPORT === 'ws') {
      for (const h of hosts) {
        const http = createHttpServer();
        gw.attachWebSocket(http, '/mqtt');
        port = await listenPort(http, port, h);
      }
    } else {
      port = await gw.listenTcp(0, hosts[0]);
      for (const h of hosts.slice(1)) await gw.listenTcp(port, h);
    }
  }
  // Warm the code paths (parser, auth, session) so their one-off cost is not counted per connection.
  const warm = await openClients({ port, first: 0, count: 50, keepalive: 600, transport: TRANSPORT });
  warm.close();
  await new Promise((r) => setTimeout(r, 300));
  serveRequests(async (m) => {
    if (m.cmd === 'stats') return processStats(true);
    if (m.cmd === 'cpu') return processStats(false);
    throw new Error(`unknown ${String(m.cmd)}`);
  });
  process.send!({ ready: true, port });
}

// ------------------------------------------------------------------ client process

async function clientsRole(): Promise<void> {
  let clients: RawClients | null = null;
  serveRequests(async (m) => {
    switch (m.cmd) {
      case 'open':
        clients = await openClients({
          port: Number(values.port),
          first: Number(values.first),
          count: Number(values.count),
          keepalive: 600,
          transport: TRANSPORT,
        });
        return { connected: clients.connected, failed: clients.failed, errors: clients.errors };
      case 'ping':
        clients!.startPings(Number(m.rate));
        return {};
      case 'stop':
        clients!.stopPings();
        return { pingresps: clients!.pingresps };
      case 'counts':
        return { pingresps: clients!.pingresps };
      default:
        throw new Error(`unknown ${String(m.cmd)}`);
    }
  });
  process.send!({ ready: true });
}

// ------------------------------------------------------------------ orchestrator

interface Stats {
  rss: number;
  heapUsed: number;
  cpuMicros: number;
  at: number;
}

async function measure(impl: 'gateway' | 'bare', n: number, pingRate: number, pingSecs: number) {
  const server = spawnRole(SELF, ['--role', 'server', '--impl', impl, '--n', String(n), '--transport', TRANSPORT], { gc: true });
  const children: ChildProcess[] = [server];
  try {
    const { port } = await waitMessage<{ ready?: boolean; port: number }>(server, (m) => m.ready === true);
    const before = await request<Stats>(server, { cmd: 'stats' });

    const procs = Math.max(1, Math.ceil(n / PER_CLIENT_PROCESS));
    const share = Math.ceil(n / procs);
    const clientProcs: ChildProcess[] = [];
    for (let k = 0; k < procs; k++) {
      const count = Math.min(share, n - k * share);
      if (count <= 0) break;
      const c = spawnRole(SELF, [
        '--role', 'clients', '--port', String(port), '--first', String(k * share), '--count', String(count), '--transport', TRANSPORT,
      ]);
      children.push(c);
      clientProcs.push(c);
    }
    await Promise.all(clientProcs.map((c) => waitMessage<{ ready?: boolean }>(c, (m) => m.ready === true)));
    const t0 = performance.now();
    const opened = await Promise.all(
      clientProcs.map((c) => request<{ connected: number; failed: number; errors: Record<string, number> }>(c, { cmd: 'open' })),
    );
    const connectSecs = (performance.now() - t0) / 1000;
    const connected = opened.reduce((a, o) => a + o.connected, 0);
    const failed = opened.reduce((a, o) => a + o.failed, 0);
    const errors: Record<string, number> = {};
    for (const o of opened) for (const [k, v] of Object.entries(o.errors)) errors[k] = (errors[k] ?? 0) + v;
    await new Promise((r) => setTimeout(r, 2000));
    const after = await request<Stats>(server, { cmd: 'stats' });

    // Idle CPU (no traffic at all).
    const idle0 = await request<Stats>(server, { cmd: 'cpu' });
    await new Promise((r) => setTimeout(r, 5000));
    const idle1 = await request<Stats>(server, { cmd: 'cpu' });

    // Heartbeat CPU at the given PINGREQ rate.
    await Promise.all(clientProcs.map((c) => request(c, { cmd: 'ping', rate: pingRate / clientProcs.length })));
    await new Promise((r) => setTimeout(r, 2000));
    const ping0 = await request<Stats>(server, { cmd: 'cpu' });
    const resp0 = await Promise.all(clientProcs.map((c) => request<{ pingresps: number }>(c, { cmd: 'counts' })));
    await new Promise((r) => setTimeout(r, pingSecs * 1000));
    const ping1 = await request<Stats>(server, { cmd: 'cpu' });
    const resp1 = await Promise.all(clientProcs.map((c) => request<{ pingresps: number }>(c, { cmd: 'stop' })));
    const pingresps = resp1.reduce((a, r) => a + r.pingresps, 0) - resp0.reduce((a, r) => a + r.pingresps, 0);

    const cpuPct = (a: Stats, b: Stats) => (100 * (b.cpuMicros - a.cpuMicros)) / 1000 / (b.at - a.at);
    const KB = 1024;
    return {
      connected,
      failed,
      ...(failed > 0 ? { errors } : {}),
      connectSecs: round(connectSecs, 1),
      connectsPerSec: Math.round(connected / connectSecs),
      rssBeforeMB: round(before.rss / KB / KB, 1),
      rssAfterMB: round(after.rss / KB / KB, 1),
      rssPerConnKB: round((after.rss - before.rss) / connected / KB, 2),
      heapPerConnKB: round((after.heapUsed - before.heapUsed) / connected / KB, 2),
      idleCpuPct: round(cpuPct(idle0, idle1), 2),
      pingCpuPct: round(cpuPct(ping0, ping1), 2),
      pingrespPerSec: Math.round(pingresps / ((ping1.at - ping0.at) / 1000)),
      rssFor100kMB: round(((after.rss - before.rss) / connected) * 100_000 / KB / KB + before.rss / KB / KB, 0),
    };
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

async function main(): Promise<void> {
  const requested = Number(values.n);
  const pingRate = Number(values['ping-rate']);
  const pingSecs = Number(values['ping-secs']);
  const fdLimit = maxFdLimit();
  const n = Math.min(requested, fdLimit - FD_RESERVE);
  if (n < requested) {
    console.error(`gateway-idle: fd limit ${fdLimit} per process (hard limit; raising it needs CAP_SYS_RESOURCE): N capped ${requested} → ${n}`);
  }
  const gateway = await measure('gateway', n, pingRate, pingSecs);
  const bare = values['no-baseline'] ? null : await measure('bare', n, pingRate, pingSecs);
  const out = {
    bench: 'gateway-idle',
    transport: TRANSPORT,
    n,
    nRequested: requested,
    ...(n < requested ? { cappedBy: `RLIMIT_NOFILE ${fdLimit}` } : {}),
    pingRate,
    gateway,
    ...(bare
      ? {
          bare,
          ratio: {
            rssPerConn: round(gateway.rssPerConnKB / bare.rssPerConnKB, 2),
            heapPerConn: round(gateway.heapPerConnKB / bare.heapPerConnKB, 2),
            pingCpu: round(gateway.pingCpuPct / bare.pingCpuPct, 2),
          },
        }
      : {}),
    targets: { rssFor100kMB: 800, perConnKB: 8, pingCpuPct: 5 },
  };
  console.log(JSON.stringify(out));
}
