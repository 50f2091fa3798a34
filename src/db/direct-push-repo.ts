import { sql, type Kysely } from 'kysely';
import type { Channel } from '../../providers/types.js';
import type { AndroidStrategy, Platform } from '../core/routing.js';
import { textArray } from './array-literal.js';
import type { NewDeliveryRow } from './deliveries-repo.js';
import type { DB } from './schema.js';
import { DEAD_LETTERS, TALLIES } from './tallies.js';

/** A device a direct push names, by id or through its user, with its active tokens. */
export interface DirectDevice {
  appId: string;
  id: string;
  platform: Platform;
  brand: string | null;
  userId: string | null;
  tokens: Partial<Record<Channel, string>>;
}

/** What routing needs to know about an app: its configured channels and Android policy. */
export interface AppRouting {
  configured: Channel[];
  strategy?: AndroidStrategy;
}

export interface DirectLookup {
  devices: DirectDevice[];
  /** `${appId} ${channel} ${token}` of the raw tokens asked about that are quarantined. */
  quarantined: Set<string>;
  apps: Map<string, AppRouting>;
}

/** A message routed at accept time, with its deliveries. */
export interface RoutedMessage {
  id: string;
  appId: string;
  request: unknown;
  expiresAt: Date;
  rows: NewDeliveryRow[];
}

/**
 * The statements of the transactional path (services/direct-push.ts): everything that the
 * concurrent requests of one event-loop turn need is read in one statement, and their messages
 * and deliveries are written in another, whatever the number of requests and apps.
 */
export class DirectPushRepo {
  constructor(private readonly db: Kysely<DB>) {}

  async lookup(q: {
    devices: { appId: string; id: string }[];
    users: { appId: string; userId: string }[];
    tokens: { appId: string; channel: string; token: string }[];
    apps: string[];
  }): Promise<DirectLookup> {
    const res = await sql<{ devices: [string, string, Platform, string | null, string | null, Record<string, string> | null][] | null; quarantined: string[] | null; apps: Record<string, { providers: Channel[]; strategy: AndroidStrategy | null }> | null }>`
      WITH wd AS (SELECT * FROM unnest(${textArray(q.devices.map((d) => d.appId))}::text[], ${textArray(q.devices.map((d) => d.id))}::text[]) AS w(app_id, id)),
      wu AS (SELECT * FROM unnest(${textArray(q.users.map((u) => u.appId))}::text[], ${textArray(q.users.map((u) => u.userId))}::text[]) AS w(app_id, user_id)),
      found AS (
        -- A probe of the primary key (or the user index) per name: never a scan of devices.
        SELECT d.* FROM wd CROSS JOIN LATERAL (
          SELECT app_id, id, platform, brand, user_id FROM devices x WHERE x.app_id = wd.app_id AND x.id = wd.id) d
        UNION
        SELECT d.* FROM wu CROSS JOIN LATERAL (
          SELECT app_id, id, platform, brand, user_id FROM devices x WHERE x.app_id = wu.app_id AND x.user_id = wu.user_id) d
      )
      SELECT
        (SELECT json_agg(json_build_array(f.app_id, f.id, f.platform, f.brand, f.user_id,
                 (SELECT json_object_agg(t.channel, t.token) FROM device_tokens t
                  WHERE t.app_id = f.app_id AND t.device_id = f.id AND t.state = 'active')))
         FROM found f) AS devices,
        (SELECT json_agg(v.app_id || ' ' || v.channel || ' ' || v.token)
         FROM unnest(${textArray(q.tokens.map((t) => t.appId))}::text[], ${textArray(q.tokens.map((t) => t.channel))}::text[],
                     ${textArray(q.tokens.map((t) => t.token))}::text[]) AS v(app_id, channel, token)
         WHERE EXISTS (SELECT 1 FROM device_tokens t WHERE t.app_id = v.app_id AND t.channel = v.channel
                       AND t.token = v.token AND t.state = 'invalid')) AS quarantined,
        (SELECT json_object_agg(a.id, json_build_object('strategy', a.settings->>'androidStrategy',
                 'providers', (SELECT coalesce(json_agg(c.provider), '[]') FROM credentials c WHERE c.app_id = a.id)))
         FROM apps a WHERE a.id = ANY(${textArray(q.apps)}::text[])) AS apps`.execute(this.db);
    const row = res.rows[0];
    const apps = new Map<string, AppRouting>();
    for (const [id, a] of Object.entries(row?.apps ?? {})) apps.set(id, { configured: a.providers, ...(a.strategy ? { strategy: a.strategy } : {}) });
    return {
      devices: (row?.devices ?? []).map(([appId, id, platform, brand, userId, tokens]) => ({ appId, id, platform, brand, userId, tokens: tokens ?? {} })),
      quarantined: new Set(row?.quarantined ?? []),
      apps,
    };
  }

  /**
   * Stores routed messages and their deliveries in one statement, the queued rows leased until
   * `leaseUntil` to the send jobs the caller queues; returns the queued ids by message and channel.
   * Rows are counted into the stats and per-message counters as the router's are (TALLIES).
   */
  async insertRouted(messages: RoutedMessage[], leaseUntil: Date): Promise<[messageId: string, channel: string, id: string][]> {
    const rows = messages.flatMap((m) => m.rows.map((r) => ({ ...r, messageId: m.id, appId: m.appId })));
    const res = await sql<{ queued: [string, string, string][] | null }>`
      WITH m AS (
        INSERT INTO messages (id, app_id, request, state, recipients, expires_at, routed_at)
        SELECT v.id, v.app_id, v.request, 'routed', v.recipients, v.expires_at, now()
        FROM unnest(${textArray(messages.map((m) => m.id))}::text[], ${textArray(messages.map((m) => m.appId))}::text[],
                    ${textArray(messages.map((m) => JSON.stringify(m.request)))}::jsonb[],
                    ${`{${messages.map((m) => new Set(m.rows.map((r) => r.deviceId)).size).join(',')}}`}::int[],
                    ${textArray(messages.map((m) => m.expiresAt.toISOString()))}::timestamptz[])
          AS v(id, app_id, request, recipients, expires_at)
      ), changed AS (
        INSERT INTO deliveries (message_id, app_id, device_id, platform, channel, token, status, error, lease_until)
        SELECT v.message_id, v.app_id, v.device_id, v.platform, v.channel, v.token, v.status, v.error,
               CASE WHEN v.status = 'queued' THEN ${leaseUntil.toISOString()}::timestamptz END
        FROM unnest(${textArray(rows.map((r) => r.messageId))}::text[], ${textArray(rows.map((r) => r.appId))}::text[],
                    ${textArray(rows.map((r) => r.deviceId))}::text[], ${textArray(rows.map((r) => r.platform))}::text[],
                    ${textArray(rows.map((r) => r.channel))}::text[], ${textArray(rows.map((r) => r.token))}::text[],
                    ${textArray(rows.map((r) => r.status))}::text[], ${textArray(rows.map((r) => (r.error ? JSON.stringify(r.error) : null)))}::jsonb[])
             AS v(message_id, app_id, device_id, platform, channel, token, status, error)
        RETURNING id, message_id, app_id, channel, platform, variant, status, error, NULL::text AS old_status, NULL::text AS old_channel
      ), opened AS (
        INSERT INTO delivery_open (id) SELECT id FROM changed WHERE status = 'queued'
      ), ${TALLIES}, ${DEAD_LETTERS}
      SELECT json_agg(json_build_array(message_id, channel, id::text) ORDER BY id) AS queued
      FROM changed WHERE status = 'queued' AND channel IS NOT NULL`.execute(this.db);
    return res.rows[0]?.queued ?? [];
  }
}
