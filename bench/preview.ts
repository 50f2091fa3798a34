/**
 * Campaign preview benchmark (README: Campaigns): one app of `--devices` devices (default 1,000,000)
 * inserted with COPY into a schema of its own, a realistic mix of platforms, brands and tokens, then
 * per audience filter the preview's SQL (CampaignsRepo.audienceGroups) timed end to end and its
 * plan with EXPLAIN (ANALYZE, BUFFERS). A second app of a tenth the size keeps `app_id` from being
 * the whole table. Also times device writes: COPY, and the registration upsert at one connection.
 * Prints one JSON line.
 *
 *   npm run bench:preview -- [--devices 1000000] [--online 1000] [--keep schema] [--reuse schema]
 *
 * `--keep` leaves the schema for another run's `--reuse` (building a million devices takes minutes);
 * without it the schema is dropped at the end.
 * Both take only a name of the kind the bench creates (`relay_pv_...`, bench/preview-schema.ts).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { Kysely, PostgresDialect, sql, type CompiledQuery } from 'kysely';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Audience } from '../src/campaigns/schema.js';
import { CampaignsRepo } from '../src/db/campaigns-repo.js';
import { migrate } from '../src/db/database.js';
import { DevicesRepo } from '../src/db/devices-repo.js';
import type { DB } from '../src/db/schema.js';
import { PG_URL } from '../test/helpers/harness.js';
import { previewSchema } from './preview-schema.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000000' },
    online: { type: 'string', default: '1000' },
    keep: { type: 'string' },
    reuse: { type: 'string' },
    repeat: { type: 'string', default: '3' },
    upserts: { type: 'string', default: '2000' },
    'copy-check': { type: 'string', default: '100000' },
    filters: { type: 'string' },
  },
});
const N = Number(values.devices);
const ONLINE = Number(values.online);
const REPEAT = Number(values.repeat);
let schema: string;
try {
  schema = previewSchema(values, randomBytes(4).toString('hex'));
} catch (err) {
  console.error(`bench:preview: ${(err as Error).message}`);
  process.exit(2);
}
const APP = 'bench';
const OTHER = 'other';

const ZONES = ['Asia/Shanghai', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'UTC'];
const LOCALES = ['en-US', 'en-GB', 'zh-CN', 'zh-TW', 'de-DE', 'ja-JP', 'fr-FR', 'es-ES'];
const ANDROID_BRANDS = ['samsung', 'samsung', 'xiaomi', 'huawei', 'oppo', 'vivo', 'google', 'honor', 'Xiaomi'];
const id = (i: number) => `d${String(i).padStart(8, '0')}`;
/** 60 % Android, 30 % iOS, 10 % web. */
const platformOf = (i: number) => (i % 10 < 6 ? 'android' : i % 10 < 9 ? 'ios' : 'web');
const brandOf = (i: number) => (platformOf(i) === 'android' ? ANDROID_BRANDS[(i >> 4) % ANDROID_BRANDS.length]! : platformOf(i) === 'ios' ? 'apple' : null);

/** A device's tokens: most have their platform's token, a vendor brand often its own, some none. */
function tokensOf(i: number): [string, string][] {
  const p = platformOf(i);
  const out: [string, string][] = [];
  const h = (i * 2654435761) >>> 0;
  if (p === 'ios') {
    if (h % 20 !== 0) out.push(['apns', `a${i.toString(16).padStart(63, '0')}`]);
    if (h % 10 === 3) out.push(['fcm', `f${i}`]);
  } else if (p === 'android') {
    if (h % 10 !== 0) out.push(['fcm', `f${i}`]);
    const brand = brandOf(i)!.toLowerCase();
    if (['xiaomi', 'huawei', 'oppo', 'vivo', 'honor'].includes(brand) && h % 3 !== 0) out.push([brand, `v${i}`]);
  } else if (h % 5 !== 0) out.push(['webpush', `{"endpoint":"https://push.example/${i}"}`]);
  return out;
}

function* chunks(from: number, to: number, line: (i: number) => string) {
  for (let i = from; i < to; i += 10_000) {
    let chunk = '';
    for (let k = i; k < Math.min(i + 10_000, to); k++) chunk += line(k);
    yield chunk;
  }
}

/** Devices `from`..`to` of an app with COPY; returns the seconds each table took. */
async function copyDevices(client: pg.PoolClient, app: string, from: number, to: number): Promise<{ devices: number; tokens: number }> {
  const now = Date.now();
  const seenAt = (i: number) => new Date(now - ((i * 7919) % 365) * 86_400_000).toISOString();
  const tags = (i: number) => [...(i % 100 === 7 ? ['vip'] : []), ...(i % 20 === 3 ? ['beta'] : []), ...(i % 10 === 5 ? ['churned'] : [])].join(',');
  const device = (i: number) =>
    [app, id(i), platformOf(i), brandOf(i) ?? '\\N', `u${String(i).padStart(8, '0')}`, `{${tags(i)}}`, LOCALES[(i >> 3) % LOCALES.length], ZONES[i % ZONES.length], `2.${9 + (i % 3)}.${i % 7}`, seenAt(i)].join('\t') +
    '\n';
  const t0 = performance.now();
  await pipeline(Readable.from(chunks(from, to, device)), client.query(copyFrom('COPY devices (app_id, id, platform, brand, user_id, tags, locale, timezone, app_version, last_seen_at) FROM STDIN')));
  const t1 = performance.now();
  // 2 % of tokens quarantined: they never count.
  const token = (i: number) =>
    tokensOf(i)
      .map(([c, t]) => `${app}\t${id(i)}\t${c}\t${t.replace(/\\/g, '\\\\')}\t${(i * 31) % 50 === 1 ? 'invalid' : 'active'}\n`)
      .join('');
  await pipeline(Readable.from(chunks(from, to, token)), client.query(copyFrom('COPY device_tokens (app_id, device_id, channel, token, state) FROM STDIN')));
  return { devices: (t1 - t0) / 1000, tokens: (performance.now() - t1) / 1000 };
}

/** Each audience filter alone, and a combination, sized as in bench:campaign. */
const FILTERS: Record<string, Audience> = {
  all: {},
  platforms: { platforms: ['android', 'ios'] },
  platformsIos: { platforms: ['ios'] },
  tagsNone: { tags: { none: ['churned'] } },
  tagsAny: { tags: { any: ['vip', 'beta'] } },
  locales: { locales: ['ja'] },
  appVersion: { appVersion: { gte: '2.10.0', lt: '2.11.0' } },
  lastSeenWithin: { lastSeen: { within: '30d' } },
  timezones: { timezones: ['Asia/Tokyo'] },
  brands: { brands: ['huawei'] },
  combined: { platforms: ['android', 'ios'], tags: { none: ['churned'] }, appVersion: { gte: '2.10.0' } },
  combinedSelective: { platforms: ['ios'], tags: { any: ['vip'], none: ['churned'] }, locales: ['zh'], appVersion: { gte: '2.3.0' }, lastSeen: { within: '30d' } },
};

const pool = new pg.Pool({ connectionString: PG_URL, max: 2, options: `-c search_path=${schema}` });
const captured: CompiledQuery[] = [];
const db = new Kysely<DB>({
  dialect: new PostgresDialect({ pool }),
  log: (e) => {
    if (e.level === 'query') captured.push(e.query);
  },
});
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await admin.end();
  await migrate(db, schema);
  const build: Record<string, unknown> = {};
  const have = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM devices WHERE app_id = ${APP}`.execute(db)).rows[0]!.n);
  if (have !== N) {
    await sql`DELETE FROM apps`.execute(db);
    await sql`INSERT INTO apps (id, name, receipt_secret) VALUES (${APP}, ${APP}, 'x'), (${OTHER}, ${OTHER}, 'x')`.execute(db);
    const client = await pool.connect();
    try {
      build.copy = await copyDevices(client, APP, 0, N);
      build.copyOther = await copyDevices(client, OTHER, 0, Math.ceil(N / 10));
      const t0 = performance.now();
      await client.query('VACUUM (ANALYZE) devices, device_tokens');
      build.vacuumSeconds = (performance.now() - t0) / 1000;
    } finally {
      client.release();
    }
  }
  // Online devices (self channel): Android and web ones spread over the app.
  const online = Array.from({ length: ONLINE }, (_, k) => id(Math.floor((k * N) / Math.max(ONLINE, 1)) + (k % 3 === 0 ? 9 : 1)));
  const repo = new CampaignsRepo(db);
  const results: Record<string, unknown> = {};
  const only = values.filters?.split(',');
  for (const [name, audience] of Object.entries(FILTERS).filter(([name]) => !only || only.includes(name))) {
    const ms: number[] = [];
    let total = 0;
    for (let r = 0; r < REPEAT; r++) {
      captured.length = 0;
      const t0 = performance.now();
      const groups = await repo.audienceGroups(APP, audience, Date.now(), online);
      ms.push(performance.now() - t0);
      total = groups.reduce((s, g) => s + g.n, 0);
    }
    // The statements that read devices, each explained with their own parameters.
    const plans: { ms: number; buffers: { hit: number; read: number }; nodes: string[] }[] = [];
    // With the planner settings the preview's transaction made (set_config(…, true)).
    const settings = captured.filter((c) => /set_config/.test(c.sql));
    for (const q of captured.filter((c) => /FROM devices d/.test(c.sql) && !/^EXPLAIN/.test(c.sql))) {
      const plan = await db.transaction().execute(async (tx) => {
        await sql`SET LOCAL jit = off`.execute(tx);
        for (const s of settings) await tx.executeQuery(s);
        const res = await tx.executeQuery<{ 'QUERY PLAN': unknown }>({ ...q, sql: `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${q.sql}` });
        return (res.rows[0]!['QUERY PLAN'] as [{ Plan: Record<string, unknown>; 'Execution Time': number }])[0];
      });
      const nodes: string[] = [];
      const walk = (n: Record<string, unknown>) => {
        const rel = n['Relation Name'] ?? n['Index Name'];
        nodes.push(`${n['Node Type'] as string}${n['Index Name'] ? ` using ${String(n['Index Name'])}` : rel ? ` on ${String(rel)}` : ''} (${String(n['Actual Rows'])} rows${n['Heap Fetches'] !== undefined ? `, ${String(n['Heap Fetches'])} heap fetches` : ''})`);
        for (const c of (n.Plans as Record<string, unknown>[] | undefined) ?? []) walk(c);
      };
      walk(plan.Plan);
      plans.push({ ms: Math.round(plan['Execution Time']), buffers: { hit: Number(plan.Plan['Shared Hit Blocks']), read: Number(plan.Plan['Shared Read Blocks']) }, nodes });
    }
    results[name] = { ms: Math.round(median(ms)), runs: ms.map(Math.round), total, plans };
  }
  // The write side: registrations through the upsert statement at one connection, one device per statement.
  const devices = new DevicesRepo(db);
  const UPSERTS = Number(values.upserts);
  const t0 = performance.now();
  for (let k = 0; k < UPSERTS; k++) {
    await devices.upsertMany([{ appId: APP, id: `reg-${k}`, input: { platform: 'android', brand: 'xiaomi', tokens: { fcm: `reg-fcm-${k}`, xiaomi: `reg-mi-${k}` }, tags: ['x'] } }]);
  }
  const upsertsPerSec = Math.round(UPSERTS / ((performance.now() - t0) / 1000));
  await sql`DELETE FROM devices WHERE app_id = ${APP} AND id LIKE 'reg-%'`.execute(db);
  // And registrations by COPY into an app of their own, removed after.
  const COPY_CHECK = Number(values['copy-check']);
  await sql`INSERT INTO apps (id, name, receipt_secret) VALUES ('copycheck', 'copycheck', 'x') ON CONFLICT DO NOTHING`.execute(db);
  const client = await pool.connect();
  let copyCheck: Record<string, number> = {};
  try {
    const took = await copyDevices(client, 'copycheck', 0, COPY_CHECK);
    copyCheck = { devicesPerSec: Math.round(COPY_CHECK / took.devices), tokensPerSec: Math.round(COPY_CHECK / took.tokens) };
  } finally {
    client.release();
  }
  await sql`DELETE FROM apps WHERE id = 'copycheck'`.execute(db);
  console.log(JSON.stringify({ bench: 'preview', devices: N, online: ONLINE, schema, build, upsertsPerSec, copyCheck, results }));
} finally {
  if (!values.keep && !values.reuse) await sql.raw(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).execute(db);
  await db.destroy();
}
