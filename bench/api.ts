/**
 * API benchmark (README: Tests and benchmarks): `POST /v1/push` for one device, as many requests as C concurrent
 * keep-alive connections can push in D seconds, from a separate load process; the same load
 * against a bare `node:http` server that parses the JSON and answers 202 is the baseline.
 * Prints one JSON line: requests/s and latency percentiles for both, and their ratio.
 *
 *   npm run bench:api -- [--seconds 10] [--connections 64] [--endpoint push|device]
 *
 * `--endpoint device` measures `PUT /v1/devices/:id` instead: a registration storm, each request
 * a new device with its own APNs token (the bare baseline answers 200 the same way).
 *
 * Relay runs with the api role only (on PostgreSQL, a fresh schema and queue prefix), so the
 * figure is the acceptance path: validate, count the audience, store the message, queue it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Isolation, PG_URL, client } from '../test/helpers/harness.js';
import { cpuDelta, cpuNow, cpuSeconds } from './lib/process-stats.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    role: { type: 'string', default: 'main' },
    url: { type: 'string' },
    key: { type: 'string' },
    port: { type: 'string', default: '0' },
    endpoint: { type: 'string', default: 'push' },
  },
});
const DEVICE = values.endpoint === 'device';

const BODY = JSON.stringify({ to: { devices: ['bench-device'] }, notification: { title: 'hi', body: 'bench' }, data: { k: 'v' } });

/** The load generator, in its own process so it does not share a core's event loop with the server. */
async function load(url: string, key: string, seconds: number, connections: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const u = new URL(url);
  const latencies: number[] = [];
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  let n = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const started = performance.now();
      const i = n++;
      const body = DEVICE ? JSON.stringify({ platform: 'ios', tokens: { apns: (process.pid * 1e7 + i).toString(16).padStart(64, 'c') }, tags: ['bench'] }) : BODY;
      const path = DEVICE ? `/v1/devices/b${process.pid}-${i}` : '/v1/push';
      const req = http.request(
        { host: u.hostname, port: u.port, path, method: DEVICE ? 'PUT' : 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === (DEVICE ? 200 : 202)) latencies.push(performance.now() - started);
            else errors++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < until) await one();
    }),
  );
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => Number((latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN).toFixed(2));
  return { rps: Math.round(latencies.length / seconds), p50: pct(50), p99: pct(99), errors };
}

async function runLoad(url: string, key: string): Promise<Awaited<ReturnType<typeof load>>> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/api.ts', '--role', 'load', '--url', url, '--key', key, '--seconds', values.seconds!, '--connections', values.connections!, '--endpoint', values.endpoint!], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const rl = createInterface({ input: child.stdout! });
  const [line] = (await once(rl, 'line')) as [string];
  await once(child, 'exit');
  return JSON.parse(line) as Awaited<ReturnType<typeof load>>;
}

/** The baseline: a bare HTTP server that reads and parses the body and answers 202 with an id. */
async function bareServer(): Promise<{ url: string; close(): void }> {
  let n = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      JSON.parse(body);
      res.writeHead(DEVICE ? 200 : 202, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: `msg_${++n}`, recipients: 1 }));
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

async function startRelayApi(iso: Isolation): Promise<{ child: ChildProcess; url: string; key: string }> {
  const env = iso.env({
    ROLES: 'api',
    // Names Relay's PostgreSQL sessions, so their CPU is told apart from other users of the server.
    DATABASE_URL: `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}application_name=${iso.prefix}`,
    LOG_LEVEL: 'info',
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_RELAY_')).map(([k, v]) => [k.slice('BENCH_RELAY_'.length), v!])),
  });
  const profile = process.env.RELAY_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.RELAY_CPU_PROF] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', 'src/main.ts'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = createInterface({ input: child.stdout! });
  let port = 0;
  for await (const line of rl) {
    const m = /"port":(\d+)/.exec(line);
    if (m && line.includes('relay started')) {
      port = Number(m[1]);
      break;
    }
  }
  rl.on('line', () => undefined);
  const url = `http://127.0.0.1:${port}`;
  const op = client(url, env.ADMIN_TOKEN);
  await op('POST', '/v1/apps', { id: 'bench', name: 'bench' });
  const key = (await op('POST', '/v1/apps/bench/keys', { scopes: ['push', 'devices'] })).body.key as string;
  await client(url, key)('PUT', '/v1/devices/bench-device', { platform: 'ios', tokens: { apns: 'ab'.repeat(32) } });
  return { child, url, key };
}

/** CPU seconds of each PostgreSQL backend serving this Relay (by application_name), by pid. */
async function ownBackends(iso: Isolation): Promise<Map<number, number>> {
  const db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  try {
    const r = await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [iso.prefix]);
    return new Map(r.rows.map(({ pid }) => [pid, cpuSeconds(pid)]));
  } finally {
    await db.end();
  }
}

if (values.role === 'load') {
  console.log(JSON.stringify(await load(values.url!, values.key!, Number(values.seconds), Number(values.connections))));
} else {
  const bare = await bareServer();
  const baseline = await runLoad(bare.url, 'unused');
  bare.close();
  const iso = new Isolation();
  const relay = await startRelayApi(iso);
  try {
    const cpu0 = cpuNow(process.pid, relay.child.pid);
    const pg0 = await ownBackends(iso);
    const result = await runLoad(relay.url, relay.key);
    const cpu = cpuDelta(cpu0, cpuNow(process.pid, relay.child.pid));
    // Sessions opened during the run started at 0; one closed during it is missed (the pool keeps them while busy).
    const pgOwn = [...(await ownBackends(iso))].reduce((sum, [pid, s]) => sum + s - (pg0.get(pid) ?? 0), 0);
    const requests = result.rps * Number(values.seconds);
    const uptime = (await import('node:os')).loadavg().map((x) => Number(x.toFixed(2)));
    console.log(
      JSON.stringify({
        bench: 'api',
        endpoint: DEVICE ? 'PUT /v1/devices/:id (new device)' : 'POST /v1/push (one device)',
        connections: Number(values.connections),
        seconds: Number(values.seconds),
        relay: result,
        bare: baseline,
        ratio: Number((result.rps / baseline.rps).toFixed(3)),
        goal: DEVICE ? { rps: 3000, p99Ms: 50 } : { rps: 5000, p99Ms: 50 },
        cpuSecondsRelay: { relay: cpu.relay, postgres: cpu.postgres, postgresOwnSessions: Number(pgOwn.toFixed(2)) },
        // What the 2-core goal rests on: CPU per answered request in the API process and in its own PostgreSQL sessions.
        cpuMsPerRequest: { relay: Number((((cpu.relay ?? 0) * 1000) / requests).toFixed(3)), postgres: Number(((pgOwn * 1000) / requests).toFixed(3)) },
        loadAverage: uptime,
      }),
    );
  } finally {
    relay.child.kill('SIGTERM');
    await once(relay.child, 'exit');
    await iso.drop();
  }
}
