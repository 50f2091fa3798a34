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

export interface Registration {
  appId: string;
  id: string;
  input: DeviceInput;
}

export interface Registered {
  created: boolean;
  device: DeviceRow;
  tokens: DeviceTokenRow[];
}

/**
 * The device columns a registration may write: name, SQL type, and the value it writes
 * (undefined: not given, the stored value stays).
 */
const COLUMNS: [string, string, (input: DeviceInput) => unknown][] = [
  ['platform', 'text', (d) => d.platform],
  ['brand', 'text', (d) => (d.brand === undefined ? undefined : (d.brand?.toLowerCase() ?? null))],
  ['user_id', 'text', (d) => d.userId],
  ['tags', 'text[]', (d) => d.tags],
  ['locale', 'text', (d) => d.locale],
  ['timezone', 'text', (d) => d.timezone],
  ['app_version', 'text', (d) => d.appVersion],
  ['attributes', 'jsonb', (d) => d.attributes],
];

/** The device columns a registration writes, as a key: registrations of one shape share a statement. */
export function registrationShape(input: DeviceInput): string {
  return COLUMNS.filter(([, , value]) => value(input) !== undefined)
    .map(([name]) => name)
    .join(',');
}

/**
 * JSON for a jsonb parameter. JSON.stringify writes a lone UTF-16 surrogate (valid in a JS string,
 * not in Unicode) as a `\\udXXX` escape, which jsonb refuses; a text parameter carries it as
 * U+FFFD (UTF-8 encoding), as this does.
 * https://www.postgresql.org/docs/current/datatype-json.html
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function jsonParam(value: unknown): string {
  const text = JSON.stringify(value);
  if (!/\\ud[89a-f]/i.test(text)) return text;
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'string' ? v.replace(LONE_SURROGATE, '\ufffd') : v));
}

/** A device's key across apps (app id, then device id): how a grouped write names and orders its devices. */
export function deviceKey(appId: string, id: string): string {
  return `${appId}\u0000${id}`;
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
   * Registers or updates devices in one statement (the devices, removed and changed tokens, the
   * current tokens) and returns each as stored, in order: apps register on every launch, and
   * services/device-registrations.ts groups the registrations that arrive together. All must
   * write the same columns (`registrationShape`): a column a request leaves out keeps its stored
   * value, and `ON CONFLICT DO UPDATE` names the columns of the whole statement. No device may
   * appear twice: one statement cannot update a row twice. A token that changes value becomes
   * active again; the same value keeps its state, so re-registering a quarantined token does not
   * revive it.
   */
  async upsertMany(regs: readonly Registration[]): Promise<Registered[]> {
    if (regs.length === 0) return [];
    const shape = registrationShape(regs[0]!.input);
    const columns = COLUMNS.filter(([, , value]) => value(regs[0]!.input) !== undefined);
    const rows: Record<string, unknown>[] = [];
    const put: { a: string; d: string; c: string; t: string }[] = [];
    const removed: { a: string; d: string; c: string }[] = [];
    const seen = new Set<string>();
    // In key order, as every batch is: two statements locking the same devices in opposite orders deadlock.
    // (NUL sorts before every character an id may hold, so the keys order as (app, id) pairs do.)
    const keyed = regs.map((r) => ({ ...r, key: deviceKey(r.appId, r.id) })).sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    for (const { appId, id, input, key } of keyed) {
      if (registrationShape(input) !== shape) throw new Error('upsertMany: registrations of one statement must write the same columns');
      if (seen.has(key)) throw new Error('upsertMany: a device may appear once per statement');
      seen.add(key);
      const row: Record<string, unknown> = { a: appId, i: id };
      for (const [name, , value] of columns) row[name] = value(input);
      rows.push(row);
      for (const [c, t] of Object.entries(input.tokens ?? {})) {
        if (t === null) removed.push({ a: appId, d: id, c });
        else if (t !== undefined) put.push({ a: appId, d: id, c, t });
      }
    }
    const now = new Date();
    const cols = [...columns.map(([name]) => sql.ref(name)), sql.ref('last_seen_at'), sql.ref('updated_at')];
    // The statement's parts share one snapshot: the tokens it returns are the ones it read,
    // minus those it removed, with those it wrote in their place. The rows travel as one JSON
    // parameter: ragged per-device arrays (tags, tokens) do not fit parallel unnest() arrays.
    const res = await sql<DeviceRow & { created: boolean; token_list: [string, string, string, string | null, string | null][] | null }>`
      WITH v AS (
        SELECT * FROM jsonb_to_recordset(${jsonParam(rows)}::jsonb)
          AS v(a text, i text${sql.join(columns.map(([name, type]) => sql`, ${sql.ref(name)} ${sql.raw(type)}`), sql``)})
      ), dev AS (
        INSERT INTO devices (app_id, id, ${sql.join(cols)})
        SELECT a, i${sql.join(columns.map(([name]) => sql`, ${sql.ref(name)}`), sql``)}, ${now}::timestamptz, ${now}::timestamptz FROM v
        ON CONFLICT (app_id, id) DO UPDATE SET ${sql.join(cols.map((c) => sql`${c} = EXCLUDED.${c}`))}
        RETURNING *, (xmax = 0) AS created
      ), removed AS (
        DELETE FROM device_tokens t USING jsonb_to_recordset(${jsonParam(removed)}::jsonb) AS r(a text, d text, c text)
        WHERE t.app_id = r.a AND t.device_id = r.d AND t.channel = r.c
        RETURNING t.app_id, t.device_id, t.channel
      ), put AS (
        INSERT INTO device_tokens (app_id, device_id, channel, token, state, updated_at)
        SELECT p.a, p.d, p.c, p.t, 'active', now() FROM jsonb_to_recordset(${jsonParam(put)}::jsonb) AS p(a text, d text, c text, t text)
        ON CONFLICT (app_id, device_id, channel) DO UPDATE
        SET token = EXCLUDED.token, state = 'active', invalid_reason = NULL, invalid_at = NULL, evidence = NULL, updated_at = now()
        WHERE device_tokens.token IS DISTINCT FROM EXCLUDED.token
        RETURNING app_id, device_id, channel, token, state, invalid_reason, invalid_at
      ), cur AS (
        -- Per device by its key (LATERAL): a join the planner might hash over the whole table.
        SELECT c.* FROM v CROSS JOIN LATERAL (
          SELECT app_id, device_id, channel, token, state, invalid_reason, invalid_at FROM device_tokens t WHERE t.app_id = v.a AND t.device_id = v.i) c
      ), tok AS (
        SELECT * FROM put
        UNION ALL
        SELECT * FROM cur c
        WHERE NOT EXISTS (SELECT 1 FROM put p WHERE p.app_id = c.app_id AND p.device_id = c.device_id AND p.channel = c.channel)
          AND NOT EXISTS (SELECT 1 FROM removed r WHERE r.app_id = c.app_id AND r.device_id = c.device_id AND r.channel = c.channel)
      )
      SELECT dev.*, t.token_list FROM dev LEFT JOIN (
        SELECT app_id, device_id, json_agg(json_build_array(channel, token, state, invalid_reason, invalid_at) ORDER BY channel) AS token_list
        FROM tok GROUP BY app_id, device_id
      ) t ON t.app_id = dev.app_id AND t.device_id = dev.id`.execute(this.db);
    const byKey = new Map(res.rows.map((r) => [deviceKey(r.app_id, r.id), r]));
    return regs.map(({ appId, id }) => {
      const { created, token_list, ...device } = byKey.get(deviceKey(appId, id))!;
      return {
        created,
        device: device as DeviceRow,
        tokens: (token_list ?? []).map(([channel, token, state, reason, at]) => ({
          app_id: appId,
          device_id: id,
          channel,
          token,
          state,
          invalid_reason: reason,
          invalid_at: at === null ? null : new Date(at),
        })) as DeviceTokenRow[],
      };
    });
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
