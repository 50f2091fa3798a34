/**
 * Cost per delivery of each resource, for sizing a deployment (docs/scaling.md). Prints one JSON
 * line.
 *
 *   npm run bench:cost -- [--fanout 20000] [--singles 2000] [--inflight 64]
 *
 * Everything measured is the run's own: a private PostgreSQL (initdb in a temp dir, with
 * full_page_writes on as in production, and pg_stat_statements), a private redis-server (so INFO
 * commandstats counts only Relay's commands) and the APNs mock in its own process. Relay runs as
 * three processes, one per role (api, worker, scheduler), so each role's CPU is read from /proc
 * apart. Two phases: one `POST /v1/push` to a tag of `--fanout` devices (the router's path), and
 * `--singles` pushes to one device each, `--inflight` at a time (the transactional path). For each:
 * CPU µs per delivery per process, PostgreSQL CPU µs and WAL bytes per delivery (pg_stat_wal),
 * Redis commands per delivery (by command), and the top statements by time. The machine's load
 * average is printed beside the figures: on a busy machine CPU figures run high.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Isolation, client } from '../test/helpers/harness.js';
import { startOwnPostgres } from '../test/helpers/pg-cluster.js';
import { startOwnRedis } from '../test/helpers/redis-server.js';
import { BUNDLE, KID, TEAM, apiPortWhenReady, childEnv, keyPem, startMock } from './lib/apns-bench.js';
import { cpuSeconds, family } from './lib/process-stats.js';

const { values } = parseArgs({
  options: { fanout: { type: 'string', default: '20000' }, singles: { type: 'string', default: '2000' }, inflight: { type: 'string', default: '64' } },
});
const FANOUT = Number(values.fanout);
const SINGLES = Number(values.singles);
const INFLIGHT = Number(values.inflight);
const DEVICES = Math.max(FANOUT, 1);

const pgServer = await startOwnPostgres({
  settings: { full_page_writes: 'on', shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all' },
});
const redisServer = await startOwnRedis();
const mock = await startMock();
const iso = new Isolation();
const children: ChildProcess[] = [];

function startRole(roles: string, extra: Record<string, string> = {}): ChildProcess {
  const env = iso.env({
    DATABASE_URL: pgServer.url,
    DATABASE_SCHEMA: 'public',
    REDIS_URL: redisServer.url,
    APNS_ENDPOINT: `https://127.0.0.1:${mock.port}`,
    APNS_MAX_STREAMS: '1000',
    LOG_LEVEL: 'info',
    WORKER_PROCESSES: '1',
    ROLES: roles,
    PORT: '0',
    ...extra,
  });
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: { ...childEnv, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

const db = new pg.Client({ connectionString: pgServer.url });
const redis = new Redis(redisServer.url);

try {
  // The API first: it migrates the fresh database before the other roles start.
  const api = startRole('api');
  const base = `http://127.0.0.1:${await apiPortWhenReady(api)}`;
  const worker = startRole('worker');
  const scheduler = startRole('scheduler');
  await Promise.all([apiPortWhenReady(worker), apiPortWhenReady(scheduler)]);
  await db.connect();
  await db.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');

  const op = client(base, iso.env().ADMIN_TOKEN);
  await op('POST', '/v1/apps', { id: 'bench', name: 'bench' });
  const key = (await op('POST', '/v1/apps/bench/keys', { scopes: ['admin'] })).body.key as string;
  const relayApi = client(base, key);
  const cred = await relayApi('PUT', '/v1/apps/bench/credentials/apns', { teamId: TEAM, keyId: KID, key: keyPem, bundleId: BUNDLE, production: false });
  if (cred.status !== 200) throw new Error(`credentials: ${JSON.stringify(cred.body)}`);
  await db.query(`INSERT INTO devices (app_id, id, platform, tags) SELECT 'bench', 'd' || i, 'ios', '{bench}' FROM generate_series(0, $1 - 1) i`, [DEVICES]);
  await db.query(`INSERT INTO device_tokens (app_id, device_id, channel, token) SELECT 'bench', 'd' || i, 'apns', 'a' || lpad(to_hex(i), 63, '0') FROM generate_series(0, $1 - 1) i`, [DEVICES]);
  await db.query('ANALYZE devices, device_tokens');

  const processes = { api: api.pid!, worker: worker.pid!, scheduler: scheduler.pid!, apnsMock: mock.child.pid! };
  const snapshot = async () => {
    const cpu: Record<string, number> = {};
    for (const [name, pid] of Object.entries(processes)) cpu[name] = family(pid).reduce((s, p) => s + cpuSeconds(p), 0);
    cpu.postgres = family(pgServer.pid()!).reduce((s, p) => s + cpuSeconds(p), 0);
    const wal = (await db.query<{ wal_bytes: string; wal_records: string; wal_fpi: string }>('SELECT wal_bytes::text, wal_records::text, wal_fpi::text FROM pg_stat_wal')).rows[0]!;
    const stats: Record<string, number> = {};
    for (const line of String(await redis.info('commandstats')).split('\n')) {
      const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
      if (m) stats[m[1]!] = Number(m[2]);
    }
    return { cpu, wal: { bytes: Number(wal.wal_bytes), records: Number(wal.wal_records), fpi: Number(wal.wal_fpi) }, redis: stats, at: performance.now() };
  };
  const sentSoFar = async () => Number((await db.query<{ n: string }>(`SELECT coalesce(sum(n), 0)::text AS n FROM message_counts WHERE status = 'sent'`)).rows[0]!.n);

  async function phase(name: string, deliveries: number, run: () => Promise<void>) {
    const target = (await sentSoFar()) + deliveries;
    await db.query('SELECT pg_stat_statements_reset()');
    const load = loadavg()[0]!;
    const a = await snapshot();
    await run();
    while ((await sentSoFar()) < target) await new Promise((r) => setTimeout(r, 200));
    // Outcomes are written; let the last stats flushes land before the second reading.
    await new Promise((r) => setTimeout(r, 500));
    const b = await snapshot();
    const per = (x: number) => Number((x / deliveries).toFixed(2));
    const redisCalls: Record<string, number> = {};
    let redisTotal = 0;
    for (const [cmd, calls] of Object.entries(b.redis)) {
      const d = calls - (a.redis[cmd] ?? 0);
      if (d > 0 && cmd !== 'info') {
        redisCalls[cmd] = Number((d / deliveries).toFixed(3));
        redisTotal += d;
      }
    }
    const top = await db.query<{ query: string; calls: string; ms: string; wal: string }>(`
      SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query, calls::text, round(total_exec_time::numeric, 1)::text AS ms, wal_bytes::text AS wal
      FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat%' ORDER BY total_exec_time DESC LIMIT 6`);
    return {
      phase: name,
      deliveries,
      seconds: Number(((b.at - a.at) / 1000).toFixed(2)),
      load1AtStart: load,
      load1AtEnd: loadavg()[0],
      cpuUsPerDelivery: Object.fromEntries(Object.keys(b.cpu).map((k) => [k, per((b.cpu[k]! - a.cpu[k]!) * 1e6)])),
      walBytesPerDelivery: per(b.wal.bytes - a.wal.bytes),
      walRecordsPerDelivery: per(b.wal.records - a.wal.records),
      walFullPagesPerDelivery: per(b.wal.fpi - a.wal.fpi),
      redisCommandsPerDelivery: Number((redisTotal / deliveries).toFixed(3)),
      redisByCommand: redisCalls,
      topStatements: top.rows.map((r) => ({ query: r.query, calls: Number(r.calls), ms: Number(r.ms), walBytes: Number(r.wal) })),
    };
  }

  const fanout = await phase('fanout', FANOUT, async () => {
    const r = await relayApi('POST', '/v1/push', { to: { tags: { all: ['bench'] } }, notification: { title: 'cost', body: 'fan-out' } });
    if (r.status !== 202) throw new Error(`push: ${JSON.stringify(r.body)}`);
  });
  const singles = await phase('single', SINGLES, async () => {
    let next = 0;
    await Promise.all(Array.from({ length: INFLIGHT }, async () => {
      while (next < SINGLES) {
        const i = next++;
        const r = await relayApi('POST', '/v1/push', { to: { devices: [`d${i % DEVICES}`] }, notification: { title: 'cost', body: `single ${i}` } });
        if (r.status !== 202) throw new Error(`push: ${JSON.stringify(r.body)}`);
      }
    }));
  });
  console.log(JSON.stringify({ bench: 'cost', cores: (await import('node:os')).availableParallelism(), fanout, singles }));
} finally {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      await once(c, 'exit');
    }
  }
  mock.child.kill('SIGTERM');
  redis.disconnect();
  await db.end().catch(() => undefined);
  await redisServer.stop();
  await pgServer.stop();
}
