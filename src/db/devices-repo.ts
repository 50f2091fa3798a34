import { sql, type Kysely } from 'kysely';
import type { Channel } from '../../providers/types.js';
import type { Target } from '../core/push-request.js';
import type { Platform } from '../core/routing.js';
import { textArray } from './array-literal.js';
import { targetFilter } from './messages-repo.js';
import { withPlanner } from './planner.js';
import type { DB, DeviceRow, DeviceTokenRow } from './schema.js';
import { pageOf } from './page.js';

export interface DeviceInput {
  platform: Platform;
  brand?: string | null;
  tokens?: Partial<Record<Channel, string | null>>;
  userId?: string | null;
  tags?: string[];
  locale?: string | null;
  timezone?: string | null;
  appVersion?: string | null;
  attributes?: Record<string, string>;
}

export interface RoutingDevice {
  id: string;
  platform: Platform;
  brand: string | null;
  tokens: Partial<Record<Channel, string>>;
}

export class DevicesRepo {
  constructor(private readonly db: Kysely<DB>) {}

  /**
   * Registers or updates a device and returns it as stored: one statement (the device, removed
   * and changed tokens, the current tokens), since apps register on every launch. A token that
   * changes value becomes active again; the same value keeps its state, so re-registering a
   * quarantined token does not revive it.
   */
  async upsert(appId: string, id: string, input: DeviceInput): Promise<{ created: boolean; device: DeviceRow; tokens: DeviceTokenRow[] }> {
    const now = new Date();
    const set: [string, unknown][] = [['platform', input.platform]];
    if (input.brand !== undefined) set.push(['brand', input.brand?.toLowerCase() ?? null]);
    if (input.userId !== undefined) set.push(['user_id', input.userId]);
    if (input.tags !== undefined) set.push(['tags', textArray(input.tags)]);
    if (input.locale !== undefined) set.push(['locale', input.locale]);
    if (input.timezone !== undefined) set.push(['timezone', input.timezone]);
    if (input.appVersion !== undefined) set.push(['app_version', input.appVersion]);
    if (input.attributes !== undefined) set.push(['attributes', JSON.stringify(input.attributes)]);
    set.push(['last_seen_at', now], ['updated_at', now]);
    const tokens = Object.entries(input.tokens ?? {}).filter(([, v]) => v !== undefined);
    const put = tokens.filter((e): e is [string, string] => e[1] !== null);
    const removed = tokens.filter(([, v]) => v === null).map(([c]) => c);
    const value = (c: string, v: unknown) => (c === 'tags' ? sql`${v}::text[]` : c === 'attributes' ? sql`${v}::jsonb` : sql`${v}`);
    // The statement's parts share one snapshot: the tokens it returns are the ones it read,
    // minus those it removed, with those it wrote in their place.
    const res = await sql<DeviceRow & { created: boolean; token_list: [string, string, string, string | null, string | null][] }>`
      WITH dev AS (
        INSERT INTO devices (app_id, id, ${sql.join(set.map(([c]) => sql.ref(c)))})
        VALUES (${appId}, ${id}, ${sql.join(set.map(([c, v]) => value(c, v)))})
        ON CONFLICT (app_id, id) DO UPDATE SET ${sql.join(set.map(([c]) => sql`${sql.ref(c)} = EXCLUDED.${sql.ref(c)}`))}
        RETURNING *, (xmax = 0) AS created
      ), removed AS (
        DELETE FROM device_tokens WHERE app_id = ${appId} AND device_id = ${id} AND channel = ANY(${textArray(removed)}::text[])
        RETURNING channel
      ), put AS (
        INSERT INTO device_tokens (app_id, device_id, channel, token, state, updated_at)
        SELECT ${appId}, ${id}, v.channel, v.token, 'active', now()
        FROM unnest(${textArray(put.map(([c]) => c))}::text[], ${textArray(put.map(([, t]) => t))}::text[]) AS v(channel, token)
        ON CONFLICT (app_id, device_id, channel) DO UPDATE
        SET token = EXCLUDED.token, state = 'active', invalid_reason = NULL, invalid_at = NULL, evidence = NULL, updated_at = now()
        WHERE device_tokens.token IS DISTINCT FROM EXCLUDED.token
        RETURNING channel, token, state, invalid_reason, invalid_at
      ), cur AS (
        SELECT channel, token, state, invalid_reason, invalid_at FROM device_tokens WHERE app_id = ${appId} AND device_id = ${id}
      )
      SELECT dev.*, (
        SELECT coalesce(json_agg(json_build_array(channel, token, state, invalid_reason, invalid_at) ORDER BY channel), '[]')
        FROM (SELECT * FROM put
              UNION ALL
              SELECT * FROM cur WHERE channel NOT IN (SELECT channel FROM put) AND channel NOT IN (SELECT channel FROM removed)) x
      ) AS token_list
      FROM dev`.execute(this.db);
    const { created, token_list, ...device } = res.rows[0]!;
    return {
      created,
      device: device as DeviceRow,
      tokens: token_list.map(([channel, token, state, reason, at]) => ({
        app_id: appId,
        device_id: id,
        channel,
        token,
        state,
        invalid_reason: reason,
        invalid_at: at === null ? null : new Date(at),
      })) as DeviceTokenRow[],
    };
  }

  async get(appId: string, id: string): Promise<{ device: DeviceRow; tokens: DeviceTokenRow[] } | undefined> {
    const device = await this.db.selectFrom('devices').selectAll().where('app_id', '=', appId).where('id', '=', id).executeTakeFirst();
    if (!device) return undefined;
    const tokens = await this.db
      .selectFrom('device_tokens')
      .selectAll()
      .where('app_id', '=', appId)
      .where('device_id', '=', id)
      .orderBy('channel')
      .execute();
    return { device, tokens };
  }

  async delete(appId: string, id: string): Promise<boolean> {
    const res = await this.db.deleteFrom('devices').where('app_id', '=', appId).where('id', '=', id).executeTakeFirst();
    return res.numDeletedRows > 0n;
  }

  /**
   * One page of the audience in id order, with each device's active tokens: the devices, then
   * their tokens by one key range. Each answers with one JSON array: a correlated lookup per
   * device cost ~5 µs, and parsing a result row per device and per token more than the queries.
   */
  async page(appId: string, to: Target, after: string | null, limit: number): Promise<RoutingDevice[]> {
    const read = async (db: Kysely<DB>) => {
      const devices = await sql<{ page: [string, Platform, string | null][] | null }>`
        SELECT json_agg(json_build_array(id, platform, brand) ORDER BY id) AS page FROM (
          SELECT d.id, d.platform, d.brand FROM devices d
          WHERE ${targetFilter(appId, to)} ${after === null ? sql`` : sql`AND d.id > ${after}`}
          ORDER BY d.id
          LIMIT ${limit}) p`.execute(db);
      const page = (devices.rows[0]?.page ?? []).map(([id, platform, brand]): RoutingDevice => ({ id, platform, brand, tokens: {} }));
      if (page.length === 0) return page;
      // A walk of the whole app or of tags reads its tokens as one key range (the id list stays a
      // filter: the planner turns a long list alone into a scan of the table). Named devices and
      // users can lie anywhere in the key space: the list is the probe.
      const ids = page.map((d) => d.id);
      const walk = to.all || to.tags;
      const tokens = await sql<{ tokens: [string, Channel, string][] | null }>`
        SELECT json_agg(json_build_array(device_id, channel, token)) AS tokens FROM device_tokens
        WHERE app_id = ${appId} AND state = 'active' AND device_id = ANY(${textArray(ids)}::text[])
          ${walk ? sql`AND device_id >= ${ids[0]!} AND device_id <= ${ids[ids.length - 1]!}` : sql``}`.execute(db);
      const byId = new Map(page.map((d) => [d.id, d]));
      for (const [deviceId, channel, token] of tokens.rows[0]?.tokens ?? []) {
        const d = byId.get(deviceId);
        if (d) d.tokens[channel] = token;
      }
      return page;
    };
    if (!to.all) return read(this.db);
    // The whole app is a walk of the primary key. Without fresh statistics (devices imported just
    // before the push, autovacuum behind) the planner instead bitmap-scans every row after the
    // cursor and sorts them for each page: quadratic over a large audience.
    return withPlanner(this.db, ['enable_bitmapscan', 'enable_sort'], read);
  }

  /** The devices' active tokens on one channel, by device id (a quota fallback's target). */
  async activeTokens(appId: string, deviceIds: readonly string[], channel: string): Promise<Map<string, string>> {
    if (deviceIds.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('device_tokens')
      .select(['device_id', 'token'])
      .where('app_id', '=', appId)
      .where('device_id', 'in', [...deviceIds])
      .where('channel', '=', channel)
      .where('state', '=', 'active')
      .execute();
    return new Map(rows.map((r) => [r.device_id, r.token]));
  }

  /** Whether a raw token was quarantined on any device of the app. */
  async isQuarantined(appId: string, channel: string, token: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('device_tokens')
      .select('state')
      .where('app_id', '=', appId)
      .where('channel', '=', channel)
      .where('token', '=', token)
      .where('state', '=', 'invalid')
      .executeTakeFirst();
    return row !== undefined;
  }

  async quarantined(appId: string, opts: { channel?: string; after?: string; limit: number }) {
    let q = this.db
      .selectFrom('device_tokens')
      .selectAll()
      .where('app_id', '=', appId)
      .where('state', '=', 'invalid')
      .orderBy('device_id')
      .orderBy('channel')
      .limit(opts.limit + 1);
    if (opts.channel) q = q.where('channel', '=', opts.channel);
    if (opts.after) {
      const [dev, ch] = opts.after.split('\u0000');
      q = q.where((eb) => eb.or([eb('device_id', '>', dev!), eb.and([eb('device_id', '=', dev!), eb('channel', '>', ch ?? '')])]));
    }
    const rows = await q.execute();
    return pageOf(rows, opts.limit, (last) => `${last.device_id}\u0000${last.channel}`);
  }

  /** An operator's word that a quarantined token is good after all. */
  async restoreToken(appId: string, deviceId: string, channel: string): Promise<boolean> {
    const res = await this.db
      .updateTable('device_tokens')
      .set({ state: 'active', invalid_reason: null, invalid_at: null, evidence: null, updated_at: new Date() })
      .where('app_id', '=', appId)
      .where('device_id', '=', deviceId)
      .where('channel', '=', channel)
      .where('state', '=', 'invalid')
      .executeTakeFirst();
    return res.numUpdatedRows > 0n;
  }

  /** Deletes quarantined tokens whose retention period has passed. */
  async purgeQuarantined(olderThanMs: number): Promise<number> {
    const res = await sql<{ n: string }>`
      WITH gone AS (
        DELETE FROM device_tokens WHERE state = 'invalid' AND invalid_at < now() - make_interval(secs => ${olderThanMs / 1000})
        RETURNING 1
      ) SELECT count(*) AS n FROM gone`.execute(this.db);
    return Number(res.rows[0]?.n ?? 0);
  }
}
