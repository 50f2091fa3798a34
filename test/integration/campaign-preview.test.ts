import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { sql, type Kysely } from 'kysely';
import { audienceFilter } from '../../src/campaigns/audience.js';
import type { Audience } from '../../src/campaigns/schema.js';
import { CampaignsRepo, type AudienceGroup } from '../../src/db/campaigns-repo.js';
import { migrate, openDatabase, type Database } from '../../src/db/database.js';
import type { DB } from '../../src/db/schema.js';
import { Isolation, PG_URL } from '../helpers/harness.js';

/**
 * The preview's grouped counts (CampaignsRepo.audienceGroups: one grouped statement, token masks
 * joined or looked up, online devices moved by a second query) against the plain evaluation: the
 * audience's device ids, then each device's platform, brand, active tokens and presence read one
 * by one. Random devices, random audiences, random online sets, both plans, on PostgreSQL and PGlite.
 */
const APP = 'app_pv';
const ZONES = ['Asia/Tokyo', 'Europe/Berlin', 'UTC'];
const CHANNELS = ['apns', 'fcm', 'huawei', 'xiaomi', 'oppo', 'vivo', 'honor', 'meizu', 'webpush', 'sms'];
const NOW = Date.parse('2026-06-01T00:00:00Z');

const deviceArb = fc.record({
  platform: fc.constantFrom('ios', 'android', 'web'),
  brand: fc.constantFrom(null, 'apple', 'Samsung', 'xiaomi', 'Huawei', 'honor', 'oppo', 'vivo', 'meizu'),
  tags: fc.subarray(['a', 'b', 'c']),
  locale: fc.constantFrom(null, 'en-US', 'zh-CN', 'zh_TW', 'ja'),
  timezone: fc.constantFrom(null, ...ZONES),
  appVersion: fc.constantFrom(null, '1.0', '2.9.1', '2.10.0', '3'),
  seenDaysAgo: fc.option(fc.integer({ min: 0, max: 60 })),
  tokens: fc.uniqueArray(fc.record({ channel: fc.constantFrom(...CHANNELS), active: fc.boolean() }), { selector: (t) => t.channel, maxLength: 3 }),
});

/** Up to three filters (more would leave most audiences empty), each with a value that selects some devices. */
const audienceArb = (n: number): fc.Arbitrary<Audience> => {
  const filters: Record<string, fc.Arbitrary<unknown>> = {
    platforms: fc.subarray(['ios', 'android', 'web'] as const, { minLength: 1 }),
    brands: fc.subarray(['samsung', 'xiaomi', 'huawei', 'apple'], { minLength: 1 }),
    tags: fc.record({ all: fc.subarray(['a', 'b'], { minLength: 1 }), any: fc.subarray(['a', 'b', 'c'], { minLength: 1 }), none: fc.subarray(['a', 'c'], { minLength: 1 }) }, { requiredKeys: [] }),
    locales: fc.subarray(['zh', 'en-US', 'ja'], { minLength: 1 }),
    appVersion: fc.record({ gte: fc.constantFrom('2.9.1', '2.10'), lt: fc.constantFrom('3', '2.10.0') }, { requiredKeys: [] }),
    lastSeen: fc.record({ within: fc.constantFrom('7d', '30d'), notWithin: fc.constantFrom('1d', '20d') }, { requiredKeys: [] }),
    timezones: fc.subarray(ZONES, { minLength: 1 }),
    devices: fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { minLength: 1, maxLength: 40 }).map((ids) => ids.map((i) => `d${i}`)),
  };
  return fc
    .subarray(Object.keys(filters), { maxLength: 3 })
    .chain((keys) => fc.record(Object.fromEntries(keys.map((k) => [k, filters[k]!])))) as fc.Arbitrary<Audience>;
};

type Device = typeof deviceArb extends fc.Arbitrary<infer T> ? T : never;

async function store(db: Kysely<DB>, devices: Device[]): Promise<void> {
  await sql`DELETE FROM devices WHERE app_id = ${APP}`.execute(db);
  const rows = devices.map(
    (d, i) =>
      sql`(${APP}, ${`d${i}`}, ${d.platform}, ${d.brand}, ${`{${d.tags.join(',')}}`}::text[], ${d.locale}, ${d.timezone}, ${d.appVersion}, ${d.seenDaysAgo === null ? null : new Date(NOW - d.seenDaysAgo * 86_400_000 - 3_600_000).toISOString()}::timestamptz)`,
  );
  await sql`INSERT INTO devices (app_id, id, platform, brand, tags, locale, timezone, app_version, last_seen_at) VALUES ${sql.join(rows)}`.execute(db);
  const tokens = devices.flatMap((d, i) => d.tokens.map((t) => sql`(${APP}, ${`d${i}`}, ${t.channel}, ${`tok-${i}-${t.channel}`}, ${t.active ? 'active' : 'invalid'})`));
  if (tokens.length > 0) await sql`INSERT INTO device_tokens (app_id, device_id, channel, token, state) VALUES ${sql.join(tokens)}`.execute(db);
}

/** The plain evaluation: which devices, then each one's attributes read on its own. */
async function plain(db: Kysely<DB>, audience: Audience, online: ReadonlySet<string>): Promise<Map<string, number>> {
  const ids = (await sql<{ id: string }>`SELECT d.id FROM devices d WHERE ${audienceFilter(APP, audience, NOW)}`.execute(db)).rows.map((r) => r.id);
  const out = new Map<string, number>();
  for (const id of ids) {
    const d = await db.selectFrom('devices').select(['platform', 'brand']).where('app_id', '=', APP).where('id', '=', id).executeTakeFirstOrThrow();
    const active = await db.selectFrom('device_tokens').select('channel').where('app_id', '=', APP).where('device_id', '=', id).where('state', '=', 'active').execute();
    const k = key({ platform: d.platform as AudienceGroup['platform'], brand: d.brand?.toLowerCase() ?? null, online: online.has(id), channels: active.map((t) => t.channel).sort() as AudienceGroup['channels'] });
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

const key = (g: Omit<AudienceGroup, 'n'>) => JSON.stringify([g.platform, g.brand, g.online, [...g.channels].sort()]);

function grouped(groups: AudienceGroup[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const g of groups) {
    assert.ok(g.n > 0, `a group of ${g.n}`);
    const k = key(g);
    assert.ok(!out.has(k), `group ${k} twice`);
    out.set(k, g.n);
  }
  return out;
}

const sorted = (m: Map<string, number>) => [...m].sort(([a], [b]) => (a < b ? -1 : 1));

function suite(name: string, open: () => Promise<Database>, runs: number) {
  describe(name, () => {
    let database: Database;
    before(async () => {
      database = await open();
      await sql`INSERT INTO apps (id, name, receipt_secret) VALUES (${APP}, ${APP}, 'x'), ('app_other', 'other', 'x')`.execute(database.db);
      // Another app's device of the same id: never counted.
      await sql`INSERT INTO devices (app_id, id, platform) VALUES ('app_other', 'd0', 'android')`.execute(database.db);
      await sql`INSERT INTO device_tokens (app_id, device_id, channel, token) VALUES ('app_other', 'd0', 'fcm', 'x')`.execute(database.db);
    });
    after(() => database?.close());

    test('grouped counts equal the device-by-device evaluation, for both plans', async () => {
      const repo = new CampaignsRepo(database.db);
      let counted = 0;
      let onlineCounted = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(deviceArb, { minLength: 1, maxLength: 200 }).chain((devices) =>
            fc.tuple(fc.constant(devices), audienceArb(devices.length), fc.uniqueArray(fc.integer({ min: 0, max: devices.length + 5 }), { maxLength: 30 })),
          ),
          async ([devices, audience, onlineIdx]) => {
            await store(database.db, devices);
            const online = onlineIdx.map((i) => `d${i}`);
            const want = sorted(await plain(database.db, audience, new Set(online)));
            if (want.length > 0) counted++;
            if (want.some(([k]) => (JSON.parse(k) as unknown[])[2] === true)) onlineCounted++;
            for (const plan of ['join', 'lateral', 'auto'] as const) {
              assert.deepEqual(sorted(grouped(await repo.audienceGroups(APP, audience, NOW, online, plan))), want, `${plan} plan for ${JSON.stringify(audience)}`);
            }
          },
        ),
        { numRuns: runs },
      );
      // The property must have compared real counts, online devices among them, not empty audiences only.
      assert.ok(counted > runs / 2, `${counted} of ${runs} audiences held devices`);
      assert.ok(onlineCounted > runs / 5, `${onlineCounted} of ${runs} audiences held online devices`);
    });
  });
}

const iso = new Isolation();
const dir = mkdtempSync(join(tmpdir(), 'relay-preview-'));
after(async () => {
  await iso.drop();
  rmSync(dir, { recursive: true, force: true });
});

suite(
  'PostgreSQL',
  async () => {
    const d = await openDatabase({ url: PG_URL, schema: iso.schema, poolSize: 2, dataDir: dir });
    await migrate(d.db, iso.schema);
    return d;
  },
  60,
);
suite(
  'PGlite',
  async () => {
    const d = await openDatabase({ schema: 'public', poolSize: 1, dataDir: dir });
    await migrate(d.db, 'public');
    return d;
  },
  25,
);
