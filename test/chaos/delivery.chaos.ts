/**
 * Chaos suite (`npm run test:chaos`): 24,000 deliveries over APNs, FCM, Huawei and the self
 * channel, sent in six waves while, in turn, a worker process is SIGKILLed (twice), Redis comes
 * back empty, PostgreSQL restarts, APNs answers 503/429 for 30 s and Huawei hangs without
 * answering. Relay runs as real processes (an API + scheduler process and two worker processes)
 * on a Redis and a PostgreSQL cluster of this test's own, so the shared servers are never touched.
 * Then every delivery must be in exactly one end state, none lost, and the duplicates the
 * providers saw within the README's bound. Prints one JSON line of figures.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { client, eventually } from '../helpers/harness.js';
import { NatProxy } from '../helpers/nat-proxy.js';
import { startOwnPostgres, type OwnPostgres } from '../helpers/pg-cluster.js';
import { startProviderMocks } from '../helpers/providers.js';
import { freePort, startOwnRedis, type OwnRedis } from '../helpers/redis-server.js';
import { startHuaweiMock, type HuaweiMock } from '../mocks/vendors/huawei.js';

const PER_GROUP = Number(process.env.CHAOS_PER_GROUP ?? 1000);
const GROUPS = ['apns', 'fcm', 'huawei', 'self'] as const;
type Group = (typeof GROUPS)[number];
const SEND_BATCH_SIZE = 100;
const SEND_CONCURRENCY = 8;
const WORKERS = 2;

let pgc: OwnPostgres;
let redis: OwnRedis;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
let huawei: HuaweiMock;
let hwLink: NatProxy;
let dataDir: string;
let db: pg.Pool;
const procs: ChildProcess[] = [];

const ADMIN = 'chaos-operator-token-0123456789';
let env: Record<string, string>;
let base: string;

/** A process of these roles; one without the API answers /healthz on an ephemeral port of its own. */
function spawnRelay(roles: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: { ...process.env, ...env, ROLES: roles, ...(roles.includes('api') ? {} : { HEALTH_PORT: '0' }) }, stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr?.on('data', (b: Buffer) => {
    tail = (tail + b.toString()).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGKILL' && signal !== 'SIGTERM' && code !== null) console.error(`relay (${roles}) exited ${code}: ${tail}`);
  });
  procs.push(child);
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}

before(async () => {
  // synchronous_commit on: the restart below is a crash, and with it off PostgreSQL acknowledges
  // commits it may then lose (https://www.postgresql.org/docs/current/wal-async-commit.html): an
  // outcome write the worker saw commit came back undone, its rows queued with no job. Relay's
  // guarantees assume a database that keeps what it acknowledged, as production runs it. fsync
  // may stay off: a server crash leaves the operating system's page cache intact.
  [pgc, redis] = await Promise.all([startOwnPostgres({ settings: { synchronous_commit: 'on' } }), startOwnRedis()]);
  mocks = await startProviderMocks();
  huawei = await startHuaweiMock();
  // Huawei through a TCP link the test can cut without a FIN: requests hang, unanswered.
  hwLink = new NatProxy({ target: { host: '127.0.0.1', port: huawei.port } });
  await hwLink.listen();
  const hwUrl = `https://127.0.0.1:${hwLink.port}`;
  dataDir = mkdtempSync(join(tmpdir(), 'relay-chaos-'));
  const port = await freePort();
  env = {
    ...mocks.env,
    HUAWEI_ENDPOINT: hwUrl,
    HUAWEI_OAUTH_ENDPOINT: hwUrl,
    DATABASE_URL: pgc.url,
    DATABASE_SCHEMA: 'relay',
    REDIS_URL: redis.url,
    QUEUE_PREFIX: 'chaos',
    ADMIN_TOKEN: ADMIN,
    CREDENTIALS_KEY: Buffer.alloc(32, 9).toString('base64'),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: String(port),
    GATEWAY_MQTT_PORT: '0',
    SWEEP_INTERVAL: '5s',
    WORKER_PROCESSES: '1',
    WORKER_LOCK_DURATION: '10s',
    SEND_BATCH_SIZE: String(SEND_BATCH_SIZE),
    SEND_CONCURRENCY: String(SEND_CONCURRENCY),
  };
  base = `http://127.0.0.1:${port}`;
  spawnRelay('api,scheduler');
  await eventually(async () => ((await fetch(`${base}/healthz`)).ok ? true : undefined), 60_000, 'the API');
  db = new pg.Pool({ connectionString: pgc.url, options: '-c search_path=relay', max: 4 });
  db.on('error', () => undefined);
});

after(async () => {
  for (const p of procs) await kill(p);
  await db?.end().catch(() => undefined);
  await Promise.allSettled([mocks?.close(), huawei?.close(), hwLink?.close()]);
  await Promise.allSettled([pgc?.stop(), redis?.stop()]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function q<T extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<T[]> {
  return (await db.query<T>(text, params)).rows;
}

/** Deliveries of these messages that have left `queued`, and how many exist. */
async function progress(ids: string[]): Promise<{ total: number; ended: number }> {
  const [r] = await q<{ total: string; ended: string }>(
    `SELECT count(*) AS total, count(*) FILTER (WHERE status <> 'queued') AS ended FROM deliveries WHERE message_id = ANY($1)`,
    [ids],
  );
  return { total: Number(r!.total), ended: Number(r!.ended) };
}

test('24,000 deliveries through worker kills, an empty Redis, a PostgreSQL restart, a 5xx storm and a hung provider', { timeout: 900_000 }, async () => {
  const op = client(base, ADMIN);
  assert.equal((await op('POST', '/v1/apps', { id: 'chaos', name: 'chaos' })).status, 201);
  const key = await op('POST', '/v1/apps/chaos/keys', { scopes: ['push', 'devices', 'admin'] });
  const api = client(base, key.body.key as string);
  assert.equal((await api('PUT', '/v1/apps/chaos/credentials/apns', mocks.credentials.apns)).status, 200);
  assert.equal((await api('PUT', '/v1/apps/chaos/credentials/fcm', mocks.credentials.fcm)).status, 200);
  assert.equal((await api('PUT', '/v1/apps/chaos/credentials/huawei', { appId: huawei.appId, clientSecret: huawei.clientSecret })).status, 200);

  // Devices: one group per channel, written straight into PostgreSQL.
  const platform: Record<Group, string> = { apns: 'ios', fcm: 'android', huawei: 'android', self: 'android' };
  for (const g of GROUPS) {
    await q(
      `INSERT INTO devices (app_id, id, platform, brand, tags)
       SELECT 'chaos', $1 || '-' || i, $2, CASE WHEN $1 = 'huawei' THEN 'huawei' END, ARRAY[$1] FROM generate_series(1, $3::int) AS i`,
      [g, platform[g], PER_GROUP],
    );
    if (g !== 'self') {
      const token = g === 'apns' ? `'a' || lpad(to_hex(i), 63, '0')` : `$1 || '-tok-' || i`;
      await q(`INSERT INTO device_tokens (app_id, device_id, channel, token) SELECT 'chaos', $1 || '-' || i, $1, ${token} FROM generate_series(1, $2::int) AS i`, [g, PER_GROUP]);
    }
  }
  const apnsTokens = (await q<{ token: string }>(`SELECT token FROM device_tokens WHERE channel = 'apns'`)).map((r) => r.token);

  let workers = Array.from({ length: WORKERS }, () => spawnRelay('worker'));
  const messages: string[] = [];
  const retry = { maxAttempts: 12, backoff: { type: 'exponential', delayMs: 1000 } };
  async function wave(n: number): Promise<string[]> {
    const ids: string[] = [];
    for (const g of GROUPS) {
      const r = await api('POST', '/v1/push', {
        to: { tags: { all: [g] } },
        notification: { title: `wave ${n}`, body: g },
        options: { channels: [g], ttl: 3600, retry },
      }, { 'Idempotency-Key': `wave-${n}-${g}` });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal(r.body.recipients, PER_GROUP);
      ids.push(r.body.id as string);
    }
    messages.push(...ids);
    return ids;
  }
  const untilShare = (ids: string[], share: number) =>
    eventually(async () => ((await progress(ids)).ended >= share * ids.length * PER_GROUP ? true : undefined), 120_000, `${share * 100} % of the wave`);
  /** Every delivery queued so far has ended; the time it took from `from`. */
  async function settled(from: number, what: string): Promise<number> {
    try {
      await eventually(async () => {
        const p = await progress(messages).catch(() => undefined);
        return p && p.total === messages.length * PER_GROUP && p.ended === p.total ? true : undefined;
      }, 240_000, `every delivery to end after ${what}`);
    } catch (err) {
      const left = await q(
        `SELECT channel, status, attempts, lease_until > now() AS leased, next_attempt_at > now() AS waiting, count(*) AS n
         FROM deliveries WHERE message_id = ANY($1) AND status = 'queued' GROUP BY 1, 2, 3, 4, 5`, [messages]);
      console.error(`after ${what}: ${JSON.stringify(await progress(messages))}, still queued: ${JSON.stringify(left)}`);
      throw err;
    }
    return Date.now() - from;
  }
  const recovery: Record<string, number> = {};
  const started = Date.now();

  // 1, 2: a worker process SIGKILLed mid-wave (each of the two once), replaced at once.
  for (const i of [0, 1]) {
    const ids = await wave(i + 1);
    await untilShare(ids, 0.3);
    await kill(workers[i]!);
    const at = Date.now();
    workers[i] = spawnRelay('worker');
    recovery[`workerKill${i + 1}`] = await settled(at, `worker kill ${i + 1}`);
  }

  // 3: Redis restarted empty (no persistence) mid-wave.
  {
    const ids = await wave(3);
    await untilShare(ids, 0.3);
    await redis.restartEmpty(1000);
    recovery.redisEmpty = await settled(Date.now(), 'Redis came back empty');
  }

  // 4: PostgreSQL restarted (immediate shutdown, as a crash) mid-wave.
  {
    const ids = await wave(4);
    await untilShare(ids, 0.3);
    await pgc.restart(1000);
    recovery.postgresRestart = await settled(Date.now(), 'PostgreSQL restarted');
  }

  // 5: APNs answers 503 / 429 to every token for 30 s.
  {
    apnsTokens.forEach((t, i) => mocks.apns.setBehavior(t, i % 2 ? { status: 503, reason: 'ServiceUnavailable' } : { status: 429, reason: 'TooManyRequests' }));
    await wave(5);
    await new Promise((r) => setTimeout(r, 30_000));
    for (const t of apnsTokens) mocks.apns.setBehavior(t, undefined);
    recovery.apns5xx429 = await settled(Date.now(), 'the APNs storm');
  }

  // 6: Huawei hangs: connections stay open, nothing is answered, for 20 s.
  {
    hwLink.blackhole(true);
    await wave(6);
    await new Promise((r) => setTimeout(r, 20_000));
    hwLink.restore();
    recovery.huaweiHang = await settled(Date.now(), 'Huawei hung');
  }

  // Exactly one end state each: one row per device and message, none queued, all sent.
  const states = await q<{ status: string; n: string }>(`SELECT status, count(*) AS n FROM deliveries GROUP BY status`);
  const byState = Object.fromEntries(states.map((s) => [s.status, Number(s.n)]));
  const total = messages.length * PER_GROUP;
  const [dupRows] = await q<{ n: string }>(`SELECT count(*) AS n FROM (SELECT 1 FROM deliveries GROUP BY message_id, device_id HAVING count(*) > 1) d`);
  assert.equal(Number(dupRows!.n), 0, 'one delivery row per device and message');
  assert.deepEqual(byState, { sent: total }, `every delivery sent: ${JSON.stringify(byState)}`);

  // What the providers accepted: each (message, token) at least once; more than once is a duplicate.
  const accepted = new Map<string, number>();
  const count = (k: string) => accepted.set(k, (accepted.get(k) ?? 0) + 1);
  for (const r of mocks.apns.requests) if (r.status === 200) count(`apns ${(r.payload as { relay_id?: string }).relay_id} ${r.token}`);
  for (const r of mocks.fcm.requests) {
    if (r.status !== 200) continue;
    const m = (r.body as { message?: { data?: { relay_id?: string } } }).message;
    count(`fcm ${m?.data?.relay_id} ${r.token}`);
  }
  for (const s of huawei.sends) {
    const relayId = (JSON.parse(String((s.body as { message?: { data?: string } }).message?.data ?? '{}')) as { relay_id?: string }).relay_id;
    for (const t of s.tokens) count(`huawei ${relayId} ${t}`);
  }
  const [selfRows] = await q<{ n: string; seqs: string }>(`SELECT count(*) AS n, count(DISTINCT (device_id, seq)) AS seqs FROM deliveries WHERE channel = 'self'`);
  const providerTotal = [...accepted.values()].length + Number(selfRows!.seqs);
  const duplicates = [...accepted.values()].reduce((a, n) => a + n - 1, 0);
  assert.equal(providerTotal, total, 'every delivery reached its provider (the self channel: a seq in the device outbox)');
  assert.equal(Number(selfRows!.seqs), Number(selfRows!.n), 'each self delivery got one seq');
  // README bound: a SIGKILLed worker or a lost Redis can re-send what was in flight, at most
  // worker processes × SEND_CONCURRENCY × SEND_BATCH_SIZE per such fault.
  const bound = 3 * WORKERS * SEND_CONCURRENCY * SEND_BATCH_SIZE;
  assert.ok(duplicates <= bound, `${duplicates} duplicates > bound ${bound}`);

  console.log(
    JSON.stringify({
      chaos: 'delivery',
      deliveries: total,
      byChannel: Object.fromEntries(GROUPS.map((g) => [g, messages.length / GROUPS.length * PER_GROUP])),
      duplicates,
      duplicateBound: bound,
      recoveryMs: recovery,
      totalSec: Math.round((Date.now() - started) / 1000),
    }),
  );
  for (const w of workers) await kill(w);
  workers = [];
});
