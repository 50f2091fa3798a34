import { sql, type Kysely } from 'kysely';
import { CampaignContent } from '../campaigns/content.js';
import type { CampaignSpec } from '../campaigns/schema.js';
import { compareIds } from './deliveries-repo.js';
import type { DB } from './schema.js';
import { DEAD_LETTERS, TALLIES } from './tallies.js';

/** A self-channel message still waiting for its device's ack, as a gateway or the inbox hands it out. */
export interface PendingSelfMessage {
  messageId: string;
  seq: number;
  /** The stored push request (notification, data, overrides). */
  request: Record<string, unknown>;
  expiresAt: Date;
}

export interface UnackedSelfDelivery {
  id: string;
  appId: string;
  messageId: string;
  deviceId: string;
}

/** Postgres deadlock: two seq batches locked the same devices in another order. Retried. */
const DEADLOCK = '40P01';

/**
 * The self channel's statements. Relay's own channel keeps no store of its own: a delivery with a
 * per-device `seq` that is still `queued` (its send in flight) or `sent` is pending for its
 * device (its `pending_seq`, which every statement that ends it clears) until the device acks it
 * (→ delivered), its TTL ends (→ expired) or it is withdrawn (→ cancelled). A row moved to another channel by the ack-timeout fallback keeps its seq and
 * stays pending until some channel's receipt confirms it: the device de-duplicates by message id.
 */
export class SelfRepo {
  constructor(private readonly db: Kysely<DB>) {}

  /**
   * Gives every target the next seq of its device and stores it on the delivery: one statement
   * for the whole batch (devices bumped in id order, so concurrent batches lock them in one order).
   * Targets whose device no longer exists get no seq.
   */
  async assignSeq(appId: string, targets: readonly { deliveryId: string; deviceId: string }[]): Promise<Map<string, number>> {
    if (targets.length === 0) return new Map();
    const ids = targets.map((t) => t.deliveryId);
    const devices = targets.map((t) => t.deviceId);
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await sql<{ id: string; seq: string }>`
          WITH t AS (
            SELECT * FROM unnest(${ids}::bigint[], ${devices}::text[]) AS t(id, device_id)
          ), n AS (
            SELECT device_id, count(*)::bigint AS k FROM t GROUP BY device_id ORDER BY device_id
          ), bumped AS (
            UPDATE devices d SET self_seq = d.self_seq + n.k
            FROM n WHERE d.app_id = ${appId} AND d.id = n.device_id
            RETURNING d.id, d.self_seq
          ), numbered AS (
            SELECT t.id, b.self_seq - row_number() OVER (PARTITION BY t.device_id ORDER BY t.id DESC) + 1 AS seq
            FROM t JOIN bumped b ON b.id = t.device_id
          )
          UPDATE deliveries dl SET seq = numbered.seq, pending_seq = numbered.seq, updated_at = now()
          FROM numbered WHERE dl.id = numbered.id
          RETURNING dl.id, dl.seq`.execute(this.db);
        return new Map(res.rows.map((r) => [String(r.id), Number(r.seq)]));
      } catch (err) {
        if ((err as { code?: string }).code !== DEADLOCK || attempt >= 3) throw err;
      }
    }
  }

  /**
   * A device's pending messages in seq order (seq > `after`), not expired: what a gateway hands a
   * (re)connecting device and what the inbox returns.
   */
  async pending(appId: string, deviceId: string, after: number, limit: number): Promise<PendingSelfMessage[]> {
    const res = await sql<{ message_id: string; seq: string; request: Record<string, unknown>; expires_at: Date; campaign_id: string | null; variant: string | null }>`
      SELECT d.message_id, d.seq, m.request, m.expires_at, m.campaign_id, d.variant
      FROM deliveries d JOIN messages m ON m.id = d.message_id
      WHERE d.app_id = ${appId} AND d.device_id = ${deviceId} AND d.pending_seq IS NOT NULL AND d.pending_seq > ${after}
        AND d.status IN ('queued', 'sent') AND m.expires_at > now()
      ORDER BY d.pending_seq
      LIMIT ${limit}`.execute(this.db);
    const out = res.rows.map((r) => ({ messageId: r.message_id, seq: Number(r.seq), request: r.request, expiresAt: r.expires_at }));
    const campaign = res.rows.filter((r) => r.campaign_id !== null);
    if (campaign.length === 0) return out;
    // A campaign's stored message is its default text: the device gets its own copy again (its
    // variant, locale and attributes), as the send worker rendered it the first time.
    const device = await this.db.selectFrom('devices').select(['locale', 'attributes']).where('app_id', '=', appId).where('id', '=', deviceId).executeTakeFirst();
    const facts = { locale: device?.locale ?? null, attributes: (device?.attributes ?? {}) as Record<string, string> };
    for (const [i, r] of res.rows.entries()) {
      if (r.campaign_id === null) continue;
      const content = await this.campaignContent(appId, r.campaign_id);
      if (content && !content.uniform) out[i]!.request = { ...r.request, ...content.render({ ...facts, variant: r.variant }) };
    }
    return out;
  }

  /** Compiled campaign contents (a campaign's content never changes once created). */
  private readonly contents = new Map<string, CampaignContent | null>();

  private async campaignContent(appId: string, campaignId: string): Promise<CampaignContent | null> {
    const key = `${appId}\u0000${campaignId}`;
    if (this.contents.has(key)) return this.contents.get(key)!;
    const row = await this.db.selectFrom('campaigns').select('spec').where('app_id', '=', appId).where('id', '=', campaignId).executeTakeFirst();
    const content = row ? new CampaignContent(row.spec as unknown as CampaignSpec) : null;
    if (this.contents.size >= 1000) this.contents.delete(this.contents.keys().next().value!);
    this.contents.set(key, content);
    return content;
  }

  /** Ends self deliveries the device never acked once their message's TTL is over. */
  async expireOverdue(limit = 10_000): Promise<number> {
    const res = await sql<{ n: string }>`
      WITH due AS (
        SELECT d.id FROM deliveries d JOIN messages m ON m.id = d.message_id
        WHERE d.pending_seq IS NOT NULL AND d.status = 'sent' AND d.channel = 'self' AND m.expires_at < now()
        LIMIT ${limit}
      ), changed AS (
        UPDATE deliveries d SET status = 'expired', pending_seq = NULL, updated_at = now(),
          error = jsonb_build_object('code', 'expired', 'message', 'the message TTL ended before the device acked it')
        FROM due WHERE d.id = due.id AND d.status = 'sent'
        RETURNING d.id, d.app_id, d.message_id, d.channel, d.platform, d.variant, d.status, d.error,
                  'sent'::text AS old_status, d.channel AS old_channel
      ), ${TALLIES}, ${DEAD_LETTERS}
      SELECT count(*) AS n FROM changed`.execute(this.db);
    return Number(res.rows[0]?.n ?? 0);
  }

  /** Of these deliveries, the self ones still `sent`: not acked within the ack timeout. */
  async unacked(ids: readonly string[]): Promise<UnackedSelfDelivery[]> {
    if (ids.length === 0) return [];
    const res = await sql<{ id: string; app_id: string; message_id: string; device_id: string }>`
      SELECT id, app_id, message_id, device_id FROM deliveries
      WHERE id = ANY(${ids}::bigint[]) AND status = 'sent' AND channel = 'self'
      ORDER BY id`.execute(this.db);
    return res.rows.map((r) => ({ id: String(r.id), appId: r.app_id, messageId: r.message_id, deviceId: r.device_id }));
  }

  /**
   * Hands un-acked self deliveries to another channel: `queued` there, attempts and seq kept.
   * Guarded by `sent` on self, so an ack that won the race keeps its row. Returns the moved ids.
   */
  async moveToChannel(rows: readonly { id: string; channel: string; token: string | null }[]): Promise<{ id: string; channel: string }[]> {
    if (rows.length === 0) return [];
    const res = await sql<{ id: string; channel: string }>`
      WITH changed AS (
        UPDATE deliveries d
        SET channel = v.channel, token = v.token, status = 'queued', provider_id = NULL, error = NULL,
            lease_until = NULL, next_attempt_at = NULL, updated_at = now()
        FROM unnest(${rows.map((r) => r.id)}::bigint[], ${rows.map((r) => r.channel)}::text[], ${rows.map((r) => r.token)}::text[])
          AS v(id, channel, token)
        WHERE d.id = v.id AND d.status = 'sent' AND d.channel = 'self'
        RETURNING d.id, d.app_id, d.message_id, d.channel, d.platform, d.variant, d.status, NULL::jsonb AS error,
                  'sent'::text AS old_status, 'self'::text AS old_channel
      ), opened AS (
        -- Queued again: open for the sweeper, should the fallback's job be lost.
        INSERT INTO delivery_open (id) SELECT id FROM changed ON CONFLICT DO NOTHING
      ), ${TALLIES}
      SELECT id, channel FROM changed`.execute(this.db);
    return res.rows.map((r) => ({ id: String(r.id), channel: r.channel })).sort((a, b) => compareIds(a.id, b.id));
  }

  /**
   * Recall: a message's self deliveries not acked yet end `cancelled`, so no gateway hands them
   * out again. Returns the devices (and seqs) that may hold a copy, to send them a revoke.
   */
  async withdraw(messageId: string): Promise<{ id: string; appId: string; deviceId: string; seq: number }[]> {
    const res = await sql<{ id: string; app_id: string; device_id: string; seq: string }>`
      WITH changed AS (
        UPDATE deliveries SET status = 'cancelled', lease_until = NULL, pending_seq = NULL, updated_at = now()
        WHERE message_id = ${messageId} AND channel = 'self' AND status = 'sent' AND seq IS NOT NULL
        RETURNING id, app_id, message_id, device_id, seq, channel, platform, variant, status, NULL::jsonb AS error,
                  'sent'::text AS old_status, channel AS old_channel
      ), ${TALLIES}
      SELECT id::text AS id, app_id, device_id, seq FROM changed`.execute(this.db);
    return res.rows.map((r) => ({ id: r.id, appId: r.app_id, deviceId: r.device_id, seq: Number(r.seq) }));
  }
}
