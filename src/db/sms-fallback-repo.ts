import { sql, type Kysely } from 'kysely';
import type { DB } from './schema.js';

export interface FallbackCandidate {
  deviceId: string;
  platform: string | null;
  token: string;
}

/** The reads and writes of the SMS top-up (src/services/sms-fallback.ts). */
export class SmsFallbackRepo {
  constructor(private readonly db: Kysely<DB>) {}

  /**
   * A page of the push's devices, in device order from `afterDevice`, that it has not reached and
   * that have an active sms token. The (message_id, device_id) key walks the message in order, so
   * a page costs the same at any depth of a large audience. Raw-token pushes have no device.
   */
  async candidates(appId: string, messageId: string, afterDevice: string, limit: number): Promise<FallbackCandidate[]> {
    const res = await sql<{ device_id: string; platform: string | null; token: string }>`
      SELECT d.device_id, d.platform, t.token
      FROM deliveries d
      JOIN device_tokens t ON t.app_id = d.app_id AND t.device_id = d.device_id AND t.channel = 'sms' AND t.state = 'active'
      WHERE d.message_id = ${messageId} AND d.app_id = ${appId} AND d.device_id > ${afterDevice}
        AND d.status NOT IN ('delivered', 'opened', 'cancelled') AND d.channel IS DISTINCT FROM 'sms'
      ORDER BY d.device_id
      LIMIT ${limit}`.execute(this.db);
    return res.rows.map((r) => ({ deviceId: r.device_id, platform: r.platform, token: r.token }));
  }

  /**
   * The linked message that carries the top-up's deliveries, stored once (a re-run finds it). It is
   * born routed: the worker, not the router, adds its deliveries.
   */
  async ensureMessage(m: { id: string; appId: string; parentId: string; text: string; expiresAt: Date }): Promise<void> {
    const request = {
      to: { devices: [] },
      notification: { body: m.text },
      options: { priority: 'high', channels: ['sms'], ttl: Math.round((m.expiresAt.getTime() - Date.now()) / 1000) },
      overrides: { sms: { text: m.text } },
      fallbackOf: m.parentId,
    };
    await sql`
      INSERT INTO messages (id, app_id, request, state, recipients, expires_at, routed_at)
      VALUES (${m.id}, ${m.appId}, ${JSON.stringify(request)}::jsonb, 'routed', 0, ${m.expiresAt.toISOString()}::timestamptz, now())
      ON CONFLICT (id) DO NOTHING`.execute(this.db);
  }

  /**
   * Pushes with an SMS top-up that has not run yet (no linked `<id>-sms` message: the worker stores
   * it before anything else) and whose window ended less than a week ago, a page at a time in id
   * order. Only a Redis that lost its jobs needs this (workers/sweeper.ts reconcile), so a scan of
   * the week's messages is acceptable there.
   */
  async pendingTopUps(afterId: string, limit: number): Promise<{ id: string; appId: string; start: Date; after: string }[]> {
    const res = await sql<{ id: string; app_id: string; start: Date; after: string }>`
      SELECT m.id, m.app_id, coalesce(m.send_at, m.created_at) AS start, m.request #>> '{options,fallback,sms,after}' AS after
      FROM messages m
      WHERE m.id > ${afterId}
        AND coalesce(m.send_at, m.created_at) > now() - interval '10 days'
        AND m.state <> 'cancelled'
        -- A replay copies its original's options, fallback included, but never queued a top-up.
        AND m.replay_of IS NULL
        AND m.request #> '{options,fallback,sms}' IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM messages s WHERE s.id = m.id || '-sms')
      ORDER BY m.id
      LIMIT ${limit}`.execute(this.db);
    return res.rows.map((r) => ({ id: r.id, appId: r.app_id, start: new Date(r.start), after: r.after }));
  }

  /** The linked message's recipients: its deliveries, counted once every page is in. */
  async countRecipients(id: string): Promise<number> {
    const res = await sql<{ n: number }>`
      UPDATE messages SET recipients = (SELECT count(*) FROM deliveries WHERE message_id = ${id}) WHERE id = ${id}
      RETURNING recipients AS n`.execute(this.db);
    return Number(res.rows[0]?.n ?? 0);
  }
}
