import { sql, type Kysely, type RawBuilder } from 'kysely';
import { CHANNELS } from '../../providers/channels.js';
import type { Channel } from '../../providers/types.js';
import { audienceFilter } from '../campaigns/audience.js';
import type { Audience } from '../campaigns/schema.js';
import type { Platform } from '../core/routing.js';
import { textArray } from './array-literal.js';
import type { CampaignRow, DB } from './schema.js';

export interface AudienceDevice {
  id: string;
  platform: Platform;
  brand: string | null;
  tokens: Partial<Record<Channel, string>>;
}

export interface NewCampaign {
  appId: string;
  id: string;
  name: string;
  spec: unknown;
  state: string;
  nextRunAt: Date | null;
}

/** Campaign rows, their audience walks and the per-day cap. Every query names its app. */
export class CampaignsRepo {
  constructor(private readonly db: Kysely<DB>) {}

  async create(c: NewCampaign): Promise<CampaignRow> {
    return this.db
      .insertInto('campaigns')
      .values({ app_id: c.appId, id: c.id, name: c.name, spec: JSON.stringify(c.spec), state: c.state, next_run_at: c.nextRunAt })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  get(appId: string, id: string, db: Kysely<DB> = this.db): Promise<CampaignRow | undefined> {
    return db.selectFrom('campaigns').selectAll().where('app_id', '=', appId).where('id', '=', id).executeTakeFirst();
  }

  /** Newest first; the cursor is the last row's `created_at|id`. */
  async list(appId: string, after: { at: Date; id: string } | null, limit: number): Promise<CampaignRow[]> {
    let q = this.db.selectFrom('campaigns').selectAll().where('app_id', '=', appId);
    if (after) q = q.where((eb) => eb.or([eb('created_at', '<', after.at), eb.and([eb('created_at', '=', after.at), eb('id', '<', after.id)])]));
    return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
  }

  /** Moves a campaign on only from the given states; returns the row as it is now, when it moved. */
  async transition(appId: string, id: string, from: readonly string[], to: string, set: Record<string, unknown> = {}): Promise<CampaignRow | undefined> {
    return this.db
      .updateTable('campaigns')
      .set({ ...set, state: to, updated_at: new Date() })
      .where('app_id', '=', appId)
      .where('id', '=', id)
      .where('state', 'in', from as string[])
      .returningAll()
      .executeTakeFirst();
  }

  /**
   * Claims due campaigns for one scheduler process: a row claim with a lease, taken with SKIP
   * LOCKED, so several schedulers never drive one campaign at once, and a dead scheduler's
   * campaigns are taken over when its lease runs out.
   */
  async claimDue(me: string, now: number, leaseMs: number, limit: number, skip: readonly string[]): Promise<CampaignRow[]> {
    const res = await sql<CampaignRow>`
      UPDATE campaigns c SET claimed_by = ${me}, claimed_until = now() + make_interval(secs => ${leaseMs / 1000})
      FROM (
        SELECT app_id, id FROM campaigns
        WHERE state IN ('scheduled', 'running') AND next_run_at <= ${new Date(now).toISOString()}::timestamptz
          AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = ${me})
          AND NOT (id = ANY(${textArray(skip)}::text[]))
        ORDER BY next_run_at LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      ) due
      WHERE c.app_id = due.app_id AND c.id = due.id
      RETURNING c.*`.execute(this.db);
    return res.rows;
  }

  /** Locks the campaign for one dispatch step, renewing the claim; undefined when it is no longer ours. */
  async lockForStep(db: Kysely<DB>, appId: string, id: string, me: string, leaseMs: number): Promise<CampaignRow | undefined> {
    const res = await sql<CampaignRow>`
      UPDATE campaigns SET claimed_until = now() + make_interval(secs => ${leaseMs / 1000})
      WHERE app_id = ${appId} AND id = ${id} AND claimed_by = ${me}
      RETURNING *`.execute(db);
    return res.rows[0];
  }

  async release(appId: string, id: string, me: string, nextRunAt: number | null): Promise<void> {
    await this.db
      .updateTable('campaigns')
      .set({ claimed_by: null, claimed_until: null, ...(nextRunAt !== null ? { next_run_at: new Date(nextRunAt) } : {}) })
      .where('app_id', '=', appId)
      .where('id', '=', id)
      .where('claimed_by', '=', me)
      .execute();
  }

  /**
   * The audience by platform, brand, active channels and presence: a handful of groups the
   * caller routes, instead of a million devices. Each device's active channels are a bit mask
   * (bit i: CHANNELS[i]), cheaper to aggregate than an array. A small audience looks its devices'
   * tokens up one by one; a large one (most of the app) joins the app's tokens aggregated once:
   * both sides walked in device id order over covering indexes (migration 0040), a merge join of
   * two index-only scans. The planner's row estimates pick the plan: it cannot make that choice
   * across the aggregate itself.
   *
   * Presence is a second, small query: the online devices of the audience, grouped the same way,
   * move from their offline group to an online one. Asking `id = ANY(online)` of every device cost
   * a third of a million-device preview with a thousand devices online (bench:preview). Both
   * queries read one snapshot (REPEATABLE READ), so the move is exact. `plan` overrides the
   * estimates' choice (tests compare both plans on a few hundred devices).
   */
  async audienceGroups(appId: string, audience: Audience, now: number, online: readonly string[], plan: 'auto' | 'join' | 'lateral' = 'auto'): Promise<AudienceGroup[]> {
    const where = audienceFilter(appId, audience, now);
    return this.db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute(async (tx) => {
        const large = plan === 'auto' ? await isLarge(tx, appId, where) : plan === 'join';
        // JIT compilation costs a quarter of a second and saves nothing on these plans. Parallel
        // workers would each aggregate the app's whole token index again (the join's inner side
        // is not split among them): slower than one process (a million devices: whole app 1.3×,
        // tags.none 1.8×). Not so with a btree-indexed filter (appVersion, lastSeen, zones…):
        // without workers the planner walks that index over most of the table in random heap
        // order instead of a parallel sequential scan (286k pages read instead of 24k).
        const serial = large && Object.keys(audience).every((k) => k === 'platforms' || k === 'tags');
        await sql`SELECT set_config('jit', 'off', true) ${serial ? sql`, set_config('max_parallel_workers_per_gather', '0', true)` : sql``}`.execute(tx);
        const all = await groupRows(tx, where, large ? sql`LEFT JOIN (${tokenMasks(sql`t.app_id = ${appId}`)} GROUP BY t.device_id) t ON t.device_id = d.id` : lateralMasks);
        const present = online.length === 0 ? [] : await groupRows(tx, sql`${where} AND d.id = ANY(${textArray(online)}::text[])`, lateralMasks);
        return presenceGroups(all, present);
      });
  }

  /** The audience's time zones (null: none registered) and how many devices each holds. */
  async zones(db: Kysely<DB>, appId: string, audience: Audience, now: number): Promise<{ tz: string | null; n: number }[]> {
    const res = await sql<{ tz: string | null; n: string }>`
      SELECT d.timezone AS tz, count(*) AS n FROM devices d WHERE ${audienceFilter(appId, audience, now)} GROUP BY 1 ORDER BY 1`.execute(db);
    return res.rows.map((r) => ({ tz: r.tz, n: Number(r.n) }));
  }

  /**
   * One keyset page of a zone's audience (id order, after the cursor) with each device's active
   * tokens: the walk of devices_zone (app_id, timezone, id), never the whole audience in memory.
   */
  async page(db: Kysely<DB>, appId: string, audience: Audience, now: number, tz: string | null, after: string | null, limit: number): Promise<AudienceDevice[]> {
    const res = await sql<{ page: [string, Platform, string | null][] | null }>`
      SELECT json_agg(json_build_array(id, platform, brand) ORDER BY id) AS page FROM (
        SELECT d.id, d.platform, d.brand FROM devices d
        WHERE ${audienceFilter(appId, audience, now)} AND ${tz === null ? sql`d.timezone IS NULL` : sql`d.timezone = ${tz}`}
          ${after === null ? sql`` : sql`AND d.id > ${after}`}
        ORDER BY d.id LIMIT ${limit}) p`.execute(db);
    const page = (res.rows[0]?.page ?? []).map(([id, platform, brand]): AudienceDevice => ({ id, platform, brand, tokens: {} }));
    if (page.length === 0) return page;
    const tokens = await sql<{ tokens: [string, Channel, string][] | null }>`
      SELECT json_agg(json_build_array(device_id, channel, token)) AS tokens FROM device_tokens
      WHERE app_id = ${appId} AND state = 'active' AND device_id = ANY(${textArray(page.map((d) => d.id))}::text[])`.execute(db);
    const byId = new Map(page.map((d) => [d.id, d]));
    for (const [deviceId, channel, token] of tokens.rows[0]?.tokens ?? []) {
      const d = byId.get(deviceId);
      if (d) d.tokens[channel] = token;
    }
    return page;
  }

  /** Devices that campaigns already sent `perDay` times on that device-local day. */
  async capped(db: Kysely<DB>, appId: string, day: string, ids: readonly string[], perDay: number): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const res = await sql<{ device_id: string }>`
      SELECT device_id FROM campaign_caps
      WHERE app_id = ${appId} AND day = ${day}::date AND device_id = ANY(${textArray(ids)}::text[]) AND count >= ${perDay}`.execute(db);
    return new Set(res.rows.map((r) => r.device_id));
  }

  /** Counts one campaign send per device on its local day (every campaign counts, capped or not). */
  async countSends(db: Kysely<DB>, appId: string, day: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await sql`
      INSERT INTO campaign_caps (app_id, day, device_id, count)
      SELECT ${appId}, ${day}::date, id, 1 FROM unnest(${textArray(ids)}::text[]) AS id ORDER BY id
      ON CONFLICT (app_id, day, device_id) DO UPDATE SET count = campaign_caps.count + 1`.execute(db);
  }

  /** Caps of days no device anywhere is still in (two days back covers every zone). */
  async purgeCaps(): Promise<void> {
    await sql`DELETE FROM campaign_caps WHERE day < current_date - 2`.execute(this.db);
  }

  /** The messages of a campaign's runs, oldest first. */
  async runs(appId: string, campaignId: string): Promise<{ id: string; created_at: Date; state: string }[]> {
    return this.db
      .selectFrom('messages')
      .select(['id', 'created_at', 'state'])
      .where('app_id', '=', appId)
      .where('campaign_id', '=', campaignId)
      .orderBy('created_at')
      .execute();
  }

  /** The state of the campaign a message is a run of (null: a transactional message). */
  async stateOfMessage(messageId: string): Promise<{ campaignId: string | null; state: string | null }> {
    const res = await sql<{ campaign_id: string | null; state: string | null }>`
      SELECT m.campaign_id, c.state FROM messages m
      LEFT JOIN campaigns c ON c.app_id = m.app_id AND c.id = m.campaign_id
      WHERE m.id = ${messageId}`.execute(this.db);
    return { campaignId: res.rows[0]?.campaign_id ?? null, state: res.rows[0]?.state ?? null };
  }
}

export interface AudienceGroup {
  platform: Platform;
  brand: string | null;
  online: boolean;
  channels: Channel[];
  n: number;
}

interface GroupRow {
  platform: Platform;
  brand: string | null;
  mask: number;
  n: number;
}

/** A channel's bit: CASE over literals, cheaper per token than array_position() over a parameter array. */
const channelBit = sql`CASE t.channel ${sql.join(
  CHANNELS.map((c, i) => sql`WHEN ${sql.lit(c)} THEN ${sql.lit(1 << i)}`),
  sql` `,
)} ELSE 0 END`;

/** Active-token masks per device of the app, `t.device_id` and `t.mask`. */
const tokenMasks = (where: RawBuilder<unknown>) =>
  sql`SELECT t.device_id, bit_or(${channelBit}) AS mask FROM device_tokens t WHERE ${where} AND t.state = 'active'`;
const lateralMasks = sql`LEFT JOIN LATERAL (${tokenMasks(sql`t.app_id = d.app_id AND t.device_id = d.id`)} GROUP BY t.device_id) t ON true`;

/**
 * The audience's devices counted by platform, brand (as stored: lower-cased once per group here,
 * not once per device) and token mask.
 */
async function groupRows(db: Kysely<DB>, where: RawBuilder<unknown>, masks: RawBuilder<unknown>): Promise<GroupRow[]> {
  const res = await sql<{ platform: Platform; brand: string | null; mask: number | null; n: string }>`
    SELECT d.platform, d.brand, coalesce(t.mask, 0) AS mask, count(*) AS n
    FROM devices d ${masks}
    WHERE ${where}
    GROUP BY 1, 2, 3`.execute(db);
  return res.rows.map((r) => ({ platform: r.platform, brand: r.brand, mask: Number(r.mask), n: Number(r.n) }));
}

/** Every audience group offline, less the online devices, which make online groups of their own. */
function presenceGroups(all: readonly GroupRow[], present: readonly GroupRow[]): AudienceGroup[] {
  const groups = new Map<string, AudienceGroup>();
  const add = (r: GroupRow, online: boolean, n: number) => {
    const brand = r.brand === null ? null : r.brand.toLowerCase();
    const key = JSON.stringify([r.platform, brand, r.mask, online]);
    const g = groups.get(key) ?? { platform: r.platform, brand, online, channels: CHANNELS.filter((_, i) => r.mask & (1 << i)), n: 0 };
    g.n += n;
    groups.set(key, g);
  };
  for (const r of all) add(r, false, r.n);
  for (const r of present) {
    add(r, false, -r.n);
    add(r, true, r.n);
  }
  return [...groups.values()].filter((g) => g.n !== 0);
}

/** Whether the planner expects the audience to be most of a large app. */
async function isLarge(db: Kysely<DB>, appId: string, where: RawBuilder<unknown>): Promise<boolean> {
  const [inAudience, inApp] = [await estimate(db, where), await estimate(db, sql`d.app_id = ${appId}`)];
  return inAudience > 10_000 && inAudience > inApp * 0.3;
}

/** The planner's estimate of the devices a condition selects (a plan, not a count: no scan). */
async function estimate(db: Kysely<DB>, where: RawBuilder<unknown>): Promise<number> {
  const res = await sql<{ 'QUERY PLAN': unknown }>`EXPLAIN (FORMAT JSON) SELECT 1 FROM devices d WHERE ${where}`.execute(db);
  const raw = res.rows[0]?.['QUERY PLAN'];
  const plan = (typeof raw === 'string' ? JSON.parse(raw) : raw) as [{ Plan: { 'Plan Rows': number } }];
  return plan[0].Plan['Plan Rows'];
}
