/**
 * Dead letters at scale, in well under a minute: fills a throw-away schema with DELIVERIES rows
 * (5 % of them failed or expired, spread over three apps, ten channels and forty codes), then
 * prints EXPLAIN (ANALYZE, BUFFERS) of `GET /v1/deliveries` pages (DeadLettersRepo.list's
 * statement) and how many outcome writes stay HOT updates with the dead-letter table, and with a
 * partial index over end states on `deliveries` instead (the alternative migration 0004 rules out).
 *
 *   tsx bench/dead-letters-explain.ts [deliveries=400000]
 *
 * Uses TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) and drops its schema.
 */
import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { migrate, openDatabase } from '../src/db/database.js';
import { DeliveriesRepo, type OutcomeRow } from '../src/db/deliveries-repo.js';
import type { DB } from '../src/db/schema.js';

const URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const N = Number(process.argv[2] ?? 400_000);
const schema = `relay_bench_dl_${randomBytes(4).toString('hex')}`;

async function explain(db: Kysely<DB>, title: string, q: ReturnType<typeof sql>) {
  const res = await sql<{ 'QUERY PLAN': string }>`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${q}`.execute(db);
  console.log(`\n--- ${title}`);
  for (const r of res.rows) console.log(r['QUERY PLAN']);
}

/** The listing's statement, as DeadLettersRepo.list builds it. */
const page = (app: string, extra: ReturnType<typeof sql>, limit = 100) => sql`
  SELECT dl.delivery_id, dl.message_id, d.device_id, d.token, d.status, d.error, dl.at, (d.status = dl.status) AS live
  FROM (SELECT * FROM dead_letters dl WHERE dl.app_id = ${app} ${extra} ORDER BY dl.at, dl.delivery_id LIMIT ${limit + 1}) dl
  LEFT JOIN LATERAL (SELECT * FROM deliveries x WHERE x.id = dl.delivery_id OFFSET 0) d ON true
  ORDER BY dl.at, dl.delivery_id`;

/** Writes `n` queued rows' outcomes (sent) through the real statement; returns the HOT share. */
async function hotShare(db: Kysely<DB>, n: number): Promise<string> {
  const ids = (await sql<{ id: string }>`SELECT id::text AS id FROM deliveries WHERE status = 'queued' ORDER BY id LIMIT ${n}`.execute(db)).rows.map((r) => r.id);
  const before = await sql<{ upd: string; hot: string }>`SELECT n_tup_upd::text AS upd, n_tup_hot_upd::text AS hot FROM pg_stat_user_tables WHERE schemaname = ${schema} AND relname = 'deliveries'`.execute(db);
  const repo = new DeliveriesRepo(db);
  const t0 = performance.now();
  for (let i = 0; i < ids.length; i += 500) {
    const rows: OutcomeRow[] = ids.slice(i, i + 500).map((id) => ({ id, status: 'sent', error: null, providerId: null, nextAttemptAt: null }));
    await repo.writeOutcomes(rows, { countAttempt: true });
  }
  const ms = performance.now() - t0;
  await sql`SELECT pg_stat_force_next_flush()`.execute(db).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 700));
  const after = await sql<{ upd: string; hot: string }>`SELECT n_tup_upd::text AS upd, n_tup_hot_upd::text AS hot FROM pg_stat_user_tables WHERE schemaname = ${schema} AND relname = 'deliveries'`.execute(db);
  const upd = Number(after.rows[0]!.upd) - Number(before.rows[0]!.upd);
  const hot = Number(after.rows[0]!.hot) - Number(before.rows[0]!.hot);
  return `${hot}/${upd} HOT updates, ${(ms / ids.length * 1000).toFixed(1)} µs per outcome`;
}

async function main() {
  const { db, close } = await openDatabase({ url: URL, schema, poolSize: 2, dataDir: '/tmp' });
  try {
    await migrate(db, schema);
    console.log(`schema ${schema}: ${N} deliveries`);
    const t0 = performance.now();
    await sql`INSERT INTO apps (id, name, receipt_secret) SELECT 'app_' || a, 'bench', 'x' FROM generate_series(0, 2) a`.execute(db);
    // 1,000 deliveries per message; every 20th delivery dead (failed, or expired every 100th).
    await sql`
      INSERT INTO messages (id, app_id, request, state, recipients, expires_at)
      SELECT 'msg_' || m, 'app_' || (m % 3), '{}'::jsonb, 'routed', 1000, now() + interval '1 day'
      FROM generate_series(0, ${Math.ceil(N / 1000) - 1}) m`.execute(db);
    await sql`
      INSERT INTO deliveries (message_id, app_id, device_id, platform, channel, token, status, error, attempts, created_at, updated_at)
      SELECT 'msg_' || (i / 1000), 'app_' || ((i / 1000) % 3), 'dev_' || i, 'android',
             (ARRAY['fcm','apns','huawei','xiaomi','oppo','vivo','honor','meizu','webpush','self'])[1 + (i / 20) % 10],
             'tok_' || i,
             CASE WHEN i % 100 = 0 THEN 'expired' WHEN i % 20 = 0 THEN 'failed' WHEN i % 4 = 0 THEN 'queued' ELSE 'sent' END,
             CASE WHEN i % 20 = 0 THEN jsonb_build_object('code', 'code_' || (i / 20) % 40, 'message', 'x') END,
             1, now() - make_interval(secs => (${N} - i) / 10.0), now() - make_interval(secs => (${N} - i) / 10.0)
      FROM generate_series(0, ${N - 1}) i`.execute(db);
    await sql`
      INSERT INTO dead_letters (delivery_id, app_id, message_id, channel, status, code, at)
      SELECT id, app_id, message_id, channel, status, error->>'code', updated_at FROM deliveries WHERE status IN ('failed', 'expired')`.execute(db);
    await sql`ANALYZE`.execute(db);
    const dead = await sql<{ n: string }>`SELECT count(*)::text AS n FROM dead_letters`.execute(db);
    console.log(`filled in ${Math.round(performance.now() - t0)} ms; ${dead.rows[0]!.n} dead letters`);

    const mid = await sql<{ at: Date; id: string }>`SELECT at, delivery_id::text AS id FROM dead_letters WHERE app_id = 'app_1' ORDER BY at, delivery_id OFFSET 3000 LIMIT 1`.execute(db);
    const { at, id } = mid.rows[0]!;
    await explain(db, 'first page, no filter', page('app_1', sql``));
    await explain(db, 'a deep page (cursor)', page('app_1', sql`AND (dl.at, dl.delivery_id) > (${at.toISOString()}::timestamptz, ${id}::bigint)`));
    await explain(db, 'code filter (1 of 40 codes)', page('app_1', sql`AND dl.code = 'code_7'`));
    await explain(db, 'channel filter', page('app_1', sql`AND dl.channel = 'vivo'`));
    await explain(db, 'status=expired (a fifth of the dead)', page('app_1', sql`AND dl.status = 'expired'`));
    await explain(db, 'from / to: one hour', page('app_1', sql`AND dl.at >= now() - interval '2 hours' AND dl.at < now() - interval '1 hour'`));
    await explain(db, 'a code no row has (worst case: an empty answer)', page('app_1', sql`AND dl.code = 'nope'`));
    await explain(db, 'code and channel together', page('app_1', sql`AND dl.code = 'code_7' AND dl.channel = 'vivo'`));

    console.log(`\noutcome writes with the dead-letter table: ${await hotShare(db, 20_000)}`);
    await sql`CREATE INDEX deliveries_dead ON deliveries (app_id, updated_at, id) WHERE status IN ('failed', 'expired')`.execute(db);
    console.log(`outcome writes with a partial index over end states on deliveries: ${await hotShare(db, 20_000)}`);
  } finally {
    await close();
    const client = new pg.Client({ connectionString: URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  }
}

await main();
