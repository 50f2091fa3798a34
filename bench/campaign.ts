/**
 * Campaign benchmark (README: Tests and benchmarks): devices inserted with COPY, Relay (all roles, forked workers)
 * against the APNs mock in its own process. Per audience size, on a fresh schema and a fresh
 * Relay: the fan-out pipeline's own rate (`POST /v1/push` to everyone, the baseline), an
 * unthrottled campaign to the same audience (rate as a ratio to the pipeline, time to first send),
 * the peak RSS of every Relay process; `POST /v1/campaigns/preview` timed per audience filter,
 * with the plan PostgreSQL chose for each (a `Seq Scan` on devices for a selective filter means
 * an index is missing); then, once, a throttled campaign measured per minute against its
 * throttle. Prints one JSON line.
 *
 *   npm run bench:campaign -- [--sizes 20000,100000] [--throttle 30000] [--throttle-seconds 60]
 *   npm run bench:campaign -- --sizes 100000,1000000          # the flat-memory check, 1M devices
 *   npm run bench:campaign -- --sizes 100000,1000000 --dispatch-only --throttle-seconds 0 \
 *     --mem-trace /tmp/trace --node-options=--max-old-space-size=1536   # the scheduler's memory, split
 *
 * With --dispatch-only, campaignSendsPerSec is the dispatch rate (nothing is sent).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { audienceFilter } from '../src/campaigns/audience.js';
import type { Audience } from '../src/campaigns/schema.js';
import { testPki } from '../test/mocks/tls.js';
import { Isolation, PG_URL, client } from '../test/helpers/harness.js';
import { apiPortWhenReady } from './lib/apns-bench.js';
import { family, peakRssMb } from './lib/process-stats.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '20000,100000' },
    throttle: { type: 'string', default: '30000' },
    'throttle-seconds': { type: 'string', default: '60' },
    /** A directory: every Relay process writes its memory split there (bench/lib/mem-trace.mjs), the bench its phases. */
    'mem-trace': { type: 'string' },
    /**
     * The scheduler's dispatch alone (no previews, no pipeline baseline, no ratio): Relay runs
     * without its worker role, so nothing is sent, and a campaign is timed until it has dispatched
     * its whole audience (the queues hold the send jobs). The primary's memory without sends.
     */
    'dispatch-only': { type: 'boolean', default: false },
    /** Extra Node/V8 flags for Relay's processes (NODE_OPTIONS), e.g. to measure a GC setting's effect. */
    'node-options': { type: 'string', default: '' },
  },
});
const SIZES = values.sizes.split(',').map(Number);
const THROTTLE = Number(values.throttle);
const THROTTLE_SECONDS = Number(values['throttle-seconds']);
const TRACE = values['mem-trace'];
const DISPATCH_ONLY = values['dispatch-only'];
const nodeOptions = [process.env.NODE_OPTIONS ?? '', values['node-options'], TRACE ? `--import=${new URL('./lib/mem-trace.mjs', import.meta.url).pathname}` : ''].join(' ').trim();
const traceEnv: Record<string, string> = { ...(TRACE ? { MEM_TRACE_DIR: TRACE } : {}), ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) };
/**
 * Per process, from the memory traces over [from, to): peak RSS, V8 heap and external memory, and
 * the smallest heapUsed (about the live set, right after a collection) with the collections.
 */
function memorySplit(pids: number[], from: number, to: number) {
  return pids.map((pid) => {
    const file = join(TRACE!, `${pid}.jsonl`);
    if (!existsSync(file)) return null;
    const rows = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((r) => r.t! >= from && r.t! < to);
    if (rows.length === 0) return null;
    const max = (k: string) => Math.max(...rows.map((r) => r[k] ?? 0));
    const sum = (k: string) => rows.reduce((a, r) => a + (r[k] ?? 0), 0);
    return { rssMb: max('rss'), heapTotalMb: max('heapTotal'), heapUsedMaxMb: max('heapUsed'), heapUsedMinMb: Math.min(...rows.map((r) => r.heapUsed!)), externalMb: max('external'), oldSpaceMb: max('oldSpace'), newSpaceMb: max('newSpace'), scavenges: sum('minor'), markCompacts: sum('major'), gcMs: sum('gcMs') };
  });
}
/** Phase markers on the traces' clock. */
const mark = (phase: string, devices: number) => TRACE && appendFileSync(join(TRACE, 'phases.jsonl'), JSON.stringify({ t: Date.now(), phase, devices }) + '\n');
const TEAM = 'TEAMBENCH1';
const KID = 'KEYBENCH01';
const BUNDLE = 'com.example.bench';

const dir = mkdtempSync(join(tmpdir(), 'relay-bench-'));
const p8 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const keyPem = p8.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
writeFileSync(join(dir, 'pub.pem'), p8.publicKey.export({ type: 'spki', format: 'pem' }).toString());
const pki = testPki();
const childEnv = { ...process.env, NODE_EXTRA_CA_CERTS: pki.caPath };
const ZONES = ['Asia/Shanghai', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'UTC'];
/** `sony`: 1 device in 100, a selective brand. */
const brandOf = (i: number) => (i % 100 === 11 ? 'sony' : ['apple', 'apple', 'apple', 'samsung', 'xiaomi', 'huawei', 'oppo', 'vivo', 'google'][i % 9]!);
const LOCALES = ['en-US', 'en-GB', 'zh-CN', 'zh-TW', 'de-DE', 'ja-JP', 'fr-FR', 'es-ES'];

/** Each audience filter alone (a selective value where it can be), and all of them together. */
const FILTERS: Record<string, Audience> = {
  all: {},
  platforms: { platforms: ['ios'] },
  brands: { brands: ['sony'] },
  tagsAll: { tags: { all: ['vip'] } },
  tagsAny: { tags: { any: ['vip', 'beta'] } },
  tagsNone: { tags: { none: ['churned'] } },
  locales: { locales: ['ja'] },
  appVersion: { appVersion: { gte: '2.10.0', lt: '2.11.0' } },
  users: { users: ['u00000042', 'u00000043'] },
  devices: { devices: ['d00000042', 'd00000043'] },
  lastSeenWithin: { lastSeen: { within: '1d' } },
  lastSeenNotWithin: { lastSeen: { notWithin: '300d' } },
  timezones: { timezones: ['Asia/Tokyo'] },
  combined: { platforms: ['ios'], tags: { any: ['vip'], none: ['churned'] }, locales: ['zh'], appVersion: { gte: '2.3.0' }, lastSeen: { within: '30d' } },
};

/** The scan nodes of a plan (`Index Scan using devices_zone`, `Seq Scan on devices`, …). */
function scans(plan: Record<string, unknown>): string[] {
  const out: string[] = [];
  const walk = (n: Record<string, unknown>) => {
    const type = n['Node Type'] as string;
    if (/Scan/.test(type) && n['Relation Name'] === 'devices') out.push(`${type}${n['Index Name'] ? ` using ${String(n['Index Name'])}` : ''}`);
    for (const c of (n.Plans as Record<string, unknown>[] | undefined) ?? []) walk(c);
  };
  walk(plan);
  return out;
}

/** Preview time through the API, and the plan of the audience's count, per filter. */
async function previews(api: Api, db: pg.Client, schema: string): Promise<Record<string, { ms: number; total: number; plan: string[] }>> {
  const out: Record<string, { ms: number; total: number; plan: string[] }> = {};
  const compiler = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ max: 1 }) }) });
  for (const [name, audience] of Object.entries(FILTERS)) {
    const t0 = performance.now();
    const r = await api('POST', '/v1/campaigns/preview', { audience });
    const ms = Math.round(performance.now() - t0);
    if (r.status !== 200) throw new Error(`preview ${name}: ${JSON.stringify(r.body)}`);
    const q = sql`EXPLAIN (FORMAT JSON) SELECT count(*) FROM devices d WHERE ${audienceFilter('bench', audience, Date.now())}`.compile(compiler);
    await db.query(`SET search_path = ${schema}`);
    const plan = (await db.query(q.sql, q.parameters as unknown[])).rows[0]['QUERY PLAN'][0].Plan as Record<string, unknown>;
    out[name] = { ms, total: r.body.total as number, plan: scans(plan) };
  }
  await compiler.destroy();
  return out;
}

async function startMock(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/mocks/apns-server.ts', '--port', '0', '--max-streams', '1000', '--team', TEAM, '--key-id', KID, '--public-key-file', join(dir, 'pub.pem'), '--bundle-id', BUNDLE],
    { env: childEnv, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const rl = createInterface({ input: child.stdout! });
  const [line] = (await once(rl, 'line')) as [string];
  rl.close();
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

/** `n` iOS devices (and their APNs tokens) with COPY: tagged `t`, spread over a few zones. */
async function copyDevices(db: pg.Client, n: number, offset: number, tag: string): Promise<void> {
  const rows = function* (line: (i: number) => string) {
    for (let i = offset; i < offset + n; i += 10_000) {
      let chunk = '';
      for (let k = i; k < Math.min(i + 10_000, offset + n); k++) chunk += line(k);
      yield chunk;
    }
  };
  const id = (i: number) => `d${String(i).padStart(8, '0')}`;
  // Every filter has something to select: brands, locales, versions (2.9.x to 2.11.x), users,
  // last seen over a year, a few tags (vip 1 %, beta 5 %, churned 10 %).
  const seenAt = (i: number) => new Date(Date.now() - ((i * 7919) % 365) * 86_400_000).toISOString();
  const tags = (i: number) => [tag, ...(i % 100 === 7 ? ['vip'] : []), ...(i % 20 === 3 ? ['beta'] : []), ...(i % 10 === 5 ? ['churned'] : [])].join(',');
  const device = (i: number) =>
    [
      'bench', id(i), 'ios', brandOf(i), `u${String(i).padStart(8, '0')}`, `{${tags(i)}}`, LOCALES[(i >> 3) % LOCALES.length], ZONES[i % ZONES.length],
      `2.${9 + (i % 3)}.${i % 7}`, seenAt(i),
    ].join('\t') + '\n';
  await pipeline(Readable.from(rows(device)), db.query(copyFrom('COPY devices (app_id, id, platform, brand, user_id, tags, locale, timezone, app_version, last_seen_at) FROM STDIN')));
  await pipeline(Readable.from(rows((i) => `bench\t${id(i)}\tapns\ta${i.toString(16).padStart(63, '0')}\n`)), db.query(copyFrom('COPY device_tokens (app_id, device_id, channel, token) FROM STDIN')));
  await db.query('ANALYZE devices, device_tokens');
}

async function startRelay(port: number, iso: Isolation) {
  // The sweeper at its production interval: the test isolation's (an hour) would leave a row a
  // lost job stranded for the whole run, and the run waiting for it.
  const env = iso.env({ APNS_ENDPOINT: `https://127.0.0.1:${port}`, APNS_MAX_STREAMS: '1000', LOG_LEVEL: 'info', WORKER_PROCESSES: 'auto', CAMPAIGN_TICK: '100ms', SWEEP_INTERVAL: '30s', ...(DISPATCH_ONLY ? { ROLES: 'api,gateway,scheduler' } : {}) });
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: { ...childEnv, ...env, ...traceEnv, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const apiPort = await apiPortWhenReady(child);
  const base = `http://127.0.0.1:${apiPort}`;
  const op = client(base, env.ADMIN_TOKEN);
  await op('POST', '/v1/apps', { id: 'bench', name: 'bench' });
  const key = (await op('POST', '/v1/apps/bench/keys', { scopes: ['admin', 'campaigns', 'push'] })).body.key as string;
  const api = client(base, key);
  const cred = await api('PUT', '/v1/apps/bench/credentials/apns', { teamId: TEAM, keyId: KID, key: keyPem, bundleId: BUNDLE, production: false });
  if (cred.status !== 200) throw new Error(`credentials: ${JSON.stringify(cred.body)}`);
  return { child, api };
}

type Api = ReturnType<typeof client>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pushAll(api: Api, tag: string, n: number): Promise<number> {
  const started = performance.now();
  const pushed = await api('POST', '/v1/push', { to: { tags: { all: [tag] } }, notification: { title: 'bench', body: 'pipeline' } });
  for (;;) {
    const m = await api('GET', `/v1/messages/${pushed.body.id}`);
    if (m.body.state === 'done') {
      if (m.body.counts.sent !== n) throw new Error(`pipeline ended with ${JSON.stringify(m.body.counts)}`);
      return n / ((performance.now() - started) / 1000);
    }
    await sleep(100);
  }
}

async function campaign(api: Api, body: Record<string, unknown>, n: number) {
  const started = performance.now();
  const c = await api('POST', '/v1/campaigns', { notification: { title: 'bench', body: 'Hi {{first_name|there}}' }, ...body });
  if (c.status !== 201) throw new Error(`campaign: ${JSON.stringify(c.body)}`);
  let firstSendMs = 0;
  const samples: { at: number; sent: number }[] = [];
  for (;;) {
    const g = (await api('GET', `/v1/campaigns/${c.body.id}`)).body;
    const sent = g.counts.sent as number;
    samples.push({ at: performance.now() - started, sent });
    if (!firstSendMs && sent > 0) firstSendMs = Math.round(performance.now() - started);
    if (DISPATCH_ONLY && g.state === 'completed') {
      if (g.dispatched !== n) throw new Error(`campaign dispatched ${String(g.dispatched)} of ${n}`);
      return { rate: n / ((performance.now() - started) / 1000), firstSendMs, samples };
    }
    if (g.state === 'completed' && g.counts.queued === 0) {
      if (sent !== n) throw new Error(`campaign ended with ${JSON.stringify(g.counts)}`);
      return { rate: n / ((performance.now() - started) / 1000), firstSendMs, samples };
    }
    await sleep(200);
  }
}

const mock = await startMock();
const perSize: Record<string, unknown>[] = [];
let throttled: Record<string, unknown> | undefined;
try {
  for (const [k, n] of SIZES.entries()) {
    const iso = new Isolation();
    const relay = await startRelay(mock.port, iso);
    try {
      const db = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${iso.schema}` });
      await db.connect();
      mark('copy', n);
      const copyStart = performance.now();
      await copyDevices(db, n, 0, 'bench');
      const copySeconds = (performance.now() - copyStart) / 1000;
      mark('previews', n);
      const preview = DISPATCH_ONLY ? {} : await previews(relay.api, db, iso.schema);
      mark('pipeline', n);
      const pipelineRate = DISPATCH_ONLY ? NaN : await pushAll(relay.api, 'bench', n);
      mark('campaign', n);
      const campaignFrom = Date.now();
      const unthrottled = await campaign(relay.api, { name: 'unthrottled', audience: { tags: { all: ['bench'] } } }, n);
      mark('campaign-done', n);
      const campaignMemory = TRACE ? memorySplit(family(relay.child.pid!), campaignFrom, Date.now()) : undefined;
      if (k === SIZES.length - 1 && THROTTLE_SECONDS > 0) {
        const m = Math.round((THROTTLE * THROTTLE_SECONDS) / 60);
        await copyDevices(db, m, n, 'paced');
        mark('throttled', n);
        const run = await campaign(relay.api, { name: 'paced', audience: { tags: { all: ['paced'] } }, throttle: { perMinute: THROTTLE } }, m);
        // Per-minute rate over the steady part (after the first send, before the last).
        const first = run.samples.find((s) => s.sent > 0)!;
        const last = run.samples.find((s) => s.sent >= m)!;
        const perMinute = ((m - first.sent) / (last.at - first.at)) * 60_000;
        throttled = { devices: m, throttlePerMinute: THROTTLE, measuredPerMinute: Math.round(perMinute), errorPct: Number(((Math.abs(perMinute - THROTTLE) / THROTTLE) * 100).toFixed(1)), goalPct: 5 };
      }
      mark('end', n);
      await db.end();
      const rss = family(relay.child.pid!).map(peakRssMb);
      perSize.push({
        devices: n,
        copySeconds: Number(copySeconds.toFixed(1)),
        pipelineSendsPerSec: Math.round(pipelineRate),
        campaignSendsPerSec: Math.round(unthrottled.rate),
        ratioToPipeline: Number((unthrottled.rate / pipelineRate).toFixed(3)),
        firstSendMs: unthrottled.firstSendMs,
        previewMsMax: Math.max(0, ...Object.values(preview).map((p) => p.ms)),
        preview,
        peakRssMbPerProcess: rss,
        ...(campaignMemory ? { campaignMemory } : {}),
      });
    } finally {
      relay.child.kill('SIGTERM');
      await once(relay.child, 'exit');
      await iso.drop();
    }
  }
  const rssOf = (i: number) => Math.max(...(perSize[i]!.peakRssMbPerProcess as number[]));
  // Per process (the API/scheduler process, then each forked worker, in the same order every run).
  const first = perSize[0]?.peakRssMbPerProcess as number[] | undefined;
  const last = perSize[perSize.length - 1]?.peakRssMbPerProcess as number[] | undefined;
  const rssGrowthPerProcess = perSize.length > 1 && first && last ? last.map((mb, i) => (first[i] ? Number((mb / first[i]).toFixed(2)) : null)) : null;
  console.log(
    JSON.stringify({
      bench: 'campaign',
      provider: 'apns',
      nodeOptions: values['node-options'] || null,
      dispatchOnly: DISPATCH_ONLY,
      sizes: perSize,
      rssGrowth: perSize.length > 1 ? Number((rssOf(perSize.length - 1) / rssOf(0)).toFixed(2)) : null,
      rssGrowthPerProcess,
      rssGoal: 1.5,
      ratioGoal: 0.8,
      throttled,
    }),
  );
} finally {
  mock.child.kill('SIGTERM');
}
