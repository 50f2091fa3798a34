// One concept: every statement on the `deliveries` table (each status change carries the TALLIES CTE), kept together so none misses it.
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { RECEIPT_CHANNELS } from '../../providers/channels.js';
import type { OutcomeReason } from '../../providers/types.js';
import type { DeliveryStatus } from '../core/delivery-status.js';
import { idArray, textArray } from './array-literal.js';
import { deliveryIdAt } from './partitions-repo.js';
import { withPlanner } from './planner.js';
import type { DB, DeliveryRow } from './schema.js';
import { DEAD_LETTERS, TALLIES } from './tallies.js';
import { pageOf } from './page.js';

/** PostgreSQL's unique_violation. */
const UNIQUE_VIOLATION = '23505';

export interface NewDeliveryRow {
  deviceId: string;
  platform: string | null;
  channel: string | null;
  token: string | null;
  status: 'queued' | 'failed';
  error: OutcomeReason | null;
  /** The A/B variant this device drew (campaign messages with variants). */
  variant?: string | null;
}

/** A fact about one delivery reported from outside the send path. */
export interface DeviceEvent {
  event: 'delivered' | 'opened' | 'invalid' | 'failed';
  providerId?: string;
  messageId?: string;
  token?: string;
  deviceId?: string;
  at?: number;
  reason?: OutcomeReason;
}

export interface ClaimedDelivery {
  id: string;
  deviceId: string;
  token: string | null;
  attempts: number;
  seq: string | null;
}

export interface OutcomeRow {
  id: string;
  status: Exclude<DeliveryStatus, 'delivered' | 'opened' | 'cancelled'>;
  error: OutcomeReason | null;
  providerId: string | null;
  nextAttemptAt: Date | null;
}

/**
 * The delivery table is the pipeline's source of truth. Every write here is one statement for a
 * whole batch (unnest of parallel arrays), and every state change is guarded by the state it
 * leaves, so a re-run after a crash can never move a delivery twice.
 */
export class DeliveriesRepo {
  constructor(private readonly db: Kysely<DB>) {}

  /**
   * Inserts one routed page and returns the ids waiting for a first attempt, by channel. With
   * `leaseUntil`, the queued rows are leased from birth to the send job the caller queues for them
   * (`leased`): within the lease nobody else claims them, so that job's first run can skip the
   * claim write. Rows an earlier run of the same page left queued and untouched come back in
   * `resumed`, grouped by the lease that run gave them (see `resumeGroups`), or in `pending` when
   * they had none.
   */
  async insertPage(appId: string, messageId: string, rows: NewDeliveryRow[], leaseUntil?: Date): Promise<PageInsert> {
    // The rows' ids carry the day their message was due (created, or scheduled for): all of a
    // message's deliveries share one day partition (migration 0035), whenever they are routed.
    const result: PageInsert = { leased: new Map(), pending: new Map(), resumed: [] };
    if (rows.length === 0) return result;
    const lease = leaseUntil?.toISOString() ?? null;
    // A plain INSERT costs half of ON CONFLICT's speculative insertion; only a re-run of a page
    // (after a crash) meets rows it inserted before, and takes the slower path. Without a conflict
    // target: (message_id, device_id) is unique per day partition, not on the partitioned table
    // (migration 0035), and a target-less DO NOTHING checks the partition's unique indexes.
    let inserted;
    try {
      inserted = await this.insertRows(appId, messageId, rows, lease, sql``);
    } catch (err) {
      if ((err as { code?: string }).code !== UNIQUE_VIOLATION) throw err;
      inserted = await this.insertRows(appId, messageId, rows, lease, sql`ON CONFLICT DO NOTHING`);
    }
    const queued = inserted.rows[0]?.queued ?? {};
    for (const [channel, ids] of Object.entries(queued)) (leaseUntil ? result.leased : result.pending).set(channel, ids);
    if (Number(inserted.rows[0]?.inserted ?? 0) < rows.length) {
      // A re-run after a crash: rows inserted by the first run that no attempt has touched yet.
      const left = await this.db
        .selectFrom('deliveries')
        .select(['id', 'channel', 'lease_until'])
        .where('message_id', '=', messageId)
        .where('device_id', 'in', rows.map((r) => r.deviceId))
        .where('status', '=', 'queued')
        .where('attempts', '=', 0)
        .execute();
      const mine = new Set(Object.values(queued).flat());
      const earlier = left.filter((r) => !mine.has(String(r.id)));
      groupByChannel(result.pending, earlier.filter((r) => r.lease_until === null));
      result.resumed = resumeGroups(earlier.filter((r) => r.lease_until !== null) as { id: string; channel: string | null; lease_until: Date }[]);
    }
    return result;
  }

  private insertRows(appId: string, messageId: string, rows: NewDeliveryRow[], lease: string | null, onConflict: RawBuilder<unknown>) {
    // The new queued ids come back as one JSON object per channel, not a row each: parsing
    // a thousand result rows cost more than the insert's own client work.
    return sql<{ inserted: string; queued: Record<string, string[]> | null }>`
      WITH changed AS (
        INSERT INTO deliveries (id, message_id, app_id, device_id, platform, channel, token, status, error, lease_until, variant)
        SELECT ${deliveryIdAt(sql`coalesce((SELECT greatest(created_at, send_at) FROM messages WHERE id = ${messageId}), now())`)}, ${messageId}, ${appId}, v.device_id, v.platform, v.channel, v.token, v.status, v.error,
               CASE WHEN v.status = 'queued' THEN ${lease}::timestamptz END, v.variant
        FROM unnest(${textArray(rows.map((r) => r.deviceId))}::text[], ${textArray(rows.map((r) => r.platform))}::text[],
                    ${textArray(rows.map((r) => r.channel))}::text[], ${textArray(rows.map((r) => r.token))}::text[],
                    ${textArray(rows.map((r) => r.status))}::text[], ${textArray(rows.map((r) => (r.error ? JSON.stringify(r.error) : null)))}::jsonb[],
                    ${textArray(rows.map((r) => r.variant ?? null))}::text[])
             AS v(device_id, platform, channel, token, status, error, variant)
        ${onConflict}
        RETURNING id, app_id, message_id, channel, platform, variant, status, error, NULL::text AS old_status, NULL::text AS old_channel
      ), opened AS (
        INSERT INTO delivery_open (id) SELECT id FROM changed WHERE status = 'queued'
      ), ${TALLIES}, ${DEAD_LETTERS}
      SELECT (SELECT count(*) FROM changed) AS inserted,
             (SELECT json_object_agg(channel, ids) FROM (
                SELECT channel, json_agg(id::text ORDER BY id) AS ids FROM changed
                WHERE status = 'queued' AND channel IS NOT NULL GROUP BY channel) g) AS queued`.execute(this.db);
  }

  /**
   * The send path's statements (claim, leasedToMe, leasedUntil, writeOutcomes) are one round trip
   * each, not a transaction of four: they name their rows by `id = ANY(<array literal>)`, which
   * PostgreSQL and PGlite plan as a primary-key probe (index or bitmap scan) at any statistics,
   * never analysed or stale included; only a join from an unnest to `deliveries` was planned as a
   * hash join over the whole table there, so writeOutcomes repeats the id list beside its join.
   * (EXPLAIN checked on a never-analysed 60,000-row table, one analysed at 50 rows and grown, and
   * a fresh one, on both; test/integration/send-statements.test.ts keeps that true.)
   *
   * The rarer statements that join first and lock (fallback moves) still run through this: a
   * statement that names its rows by an id list with sequential scans off: without fresh
   * statistics (a young table, autovacuum behind, PGlite which has none) the planner reads the
   * whole table for every batch instead of probing the primary key a few hundred times.
   */
  private byIds<T>(fn: (db: Kysely<DB>) => Promise<T>): Promise<T> {
    return withPlanner(this.db, ['enable_seqscan'], fn);
  }

  /**
   * Takes the still-queued rows of a batch for one attempt: counts the attempt and leases the row
   * so that a duplicate job cannot send it concurrently. A worker that dies leaves the lease to
   * expire, and the job's retry claims the row again.
   *
   * `ownLease` is for the job the router leased the rows to: it may take them back inside that
   * lease while no attempt is counted on them. On a re-run (`lostAttempt`) the dead run may have
   * sent them, and that attempt is counted too.
   */
  async claim(ids: string[], leaseMs: number, opts: { ownLease?: boolean; lostAttempt?: boolean } = {}): Promise<ClaimedDelivery[]> {
    const own = opts.ownLease === true;
    const lost = opts.lostAttempt === true;
    const res = await sql<{ rows: ClaimedTuple[] | null }>`
      WITH c AS (
        UPDATE deliveries
        SET attempts = attempts + CASE WHEN ${lost} AND attempts = 0 THEN 2 ELSE 1 END,
            lease_until = now() + make_interval(secs => ${leaseMs / 1000}), updated_at = now()
        WHERE id = ANY(${idArray(ids)}::bigint[]) AND status = 'queued'
          AND (lease_until IS NULL OR lease_until < now() OR (${own} AND attempts = 0))
        RETURNING id, device_id, token, attempts, seq
      )
      SELECT ${CLAIMED_JSON} AS rows FROM c`.execute(this.db);
    return toClaimed(res.rows[0]?.rows);
  }

  /**
   * The first attempt of rows leased at insert to the calling job: a read, not a claim. The
   * attempt is counted when its outcome is written (`writeOutcomes(…, { countAttempt })`).
   */
  async leasedToMe(ids: string[]): Promise<ClaimedDelivery[]> {
    const res = await sql<{ rows: ClaimedTuple[] | null }>`
      WITH c AS (
        SELECT id, device_id, token, attempts + 1 AS attempts, seq FROM deliveries
        WHERE id = ANY(${idArray(ids)}::bigint[]) AND status = 'queued' AND attempts = 0
      )
      SELECT ${CLAIMED_JSON} AS rows FROM c`.execute(this.db);
    return toClaimed(res.rows[0]?.rows);
  }

  /**
   * When a job that did not get every row of its batch should look again: once the last lease on
   * a still-queued row ends; null when no row is both queued and leased (nothing left to wait for).
   *
   * With `unleased`, a queued row nobody leases counts too, at its next attempt time (now if
   * due): a claimer that found a row leased can see it released right after its claim (the holder
   * wrote its outcome, a retry, in between), and must come back for it rather than end and leave
   * it queued with no job. Only on the job's `channel`: a row a fallback moved elsewhere has its
   * own job there.
   */
  async leasedUntil(ids: string[], opts: { unleased?: { channel: string } } = {}): Promise<Date | null> {
    const unleasedOn = opts.unleased?.channel ?? null;
    const row = await sql<{ until: Date | null }>`
      SELECT max(CASE WHEN lease_until >= now() THEN lease_until ELSE greatest(next_attempt_at, now()) END) AS until FROM deliveries
      WHERE id = ANY(${idArray(ids)}::bigint[]) AND status = 'queued' AND (lease_until >= now() OR channel = ${unleasedOn}::text)`.execute(this.db);
    return row.rows[0]?.until ?? null;
  }

  /**
   * Writes a batch's outcomes, quarantines tokens the provider declared dead and counts the
   * transitions into the rollups: one statement, one round trip.
   */
  async writeOutcomes(rows: OutcomeRow[], opts: { countAttempt?: boolean } = {}): Promise<{ updated: number; quarantined: number }> {
    if (rows.length === 0) return { updated: 0, quarantined: 0 };
    // Only a batch with dead tokens joins device_tokens: the planner may hash-join the whole
    // table, which costs every batch dearly when nothing needs quarantining.
    const quarantine = rows.some((r) => r.status === 'invalid')
      ? sql`
        UPDATE device_tokens t
        SET state = 'invalid', invalid_reason = changed.error->>'code', invalid_at = now(), evidence = changed.error, updated_at = now()
        FROM changed
        WHERE changed.status = 'invalid' AND t.app_id = changed.app_id AND t.device_id = changed.device_id
          AND t.channel = changed.channel AND t.token = changed.token AND t.state = 'active'
        RETURNING 1`
      : sql`SELECT 1 WHERE false`;
    const ids = idArray(rows.map((r) => r.id));
    const res = await sql<{ updated: string; quarantined: string }>`
      WITH v AS (
        SELECT * FROM unnest(${ids}::bigint[], ${textArray(rows.map((r) => r.status))}::text[],
                             ${textArray(rows.map((r) => (r.error ? JSON.stringify(r.error) : null)))}::jsonb[],
                             ${textArray(rows.map((r) => r.providerId))}::text[],
                             ${textArray(rows.map((r) => r.nextAttemptAt?.toISOString() ?? null))}::timestamptz[])
          AS v(id, status, error, provider_id, next_at)
      ), changed AS (
        -- No index names a column set here (see migration 0004), so this is a HOT update.
        UPDATE deliveries d
        SET status = v.status, error = v.error, provider_id = coalesce(v.provider_id, d.provider_id),
            attempts = d.attempts + ${opts.countAttempt ? 1 : 0},
            lease_until = NULL, next_attempt_at = v.next_at, updated_at = now(),
            sent_at = CASE WHEN v.status = 'sent' THEN now() ELSE d.sent_at END,
            pending_seq = CASE WHEN v.status IN ('queued', 'sent') THEN d.pending_seq END
        FROM v
        -- The id list as well as the join: an index probe per row whatever the table's statistics.
        WHERE d.id = v.id AND d.id = ANY(${ids}::bigint[]) AND d.status = 'queued'
        RETURNING d.id, d.app_id, d.message_id, d.device_id, d.channel, d.platform, d.variant, d.token, d.status, v.error,
                  v.provider_id AS new_provider_id, 'queued'::text AS old_status, d.channel AS old_channel
      ), closed AS (
        DELETE FROM delivery_open WHERE id = ANY(ARRAY(SELECT id FROM changed WHERE status <> 'queued'))
      ), requests AS (
        INSERT INTO provider_requests (app_id, channel, provider_id, ids)
        SELECT app_id, channel, new_provider_id, array_agg(id ORDER BY id) FROM changed
        WHERE new_provider_id IS NOT NULL AND channel = ANY(${RECEIPT_CHANNELS}::text[])
        GROUP BY app_id, channel, new_provider_id
      ), quarantined AS (${quarantine}), ${TALLIES}, ${DEAD_LETTERS}
      SELECT (SELECT count(*) FROM changed) AS updated, (SELECT count(*) FROM quarantined) AS quarantined`.execute(this.db);
    const r = res.rows[0];
    return { updated: Number(r?.updated ?? 0), quarantined: Number(r?.quarantined ?? 0) };
  }

  /**
   * Applies device-side facts (vendor receipts, SDK events) to deliveries: `delivered` and
   * `opened` only move a delivery forward, `invalid` quarantines the token, `failed` ends a sent
   * delivery the vendor reports it dropped (with the vendor's reason). Matching is by the
   * provider's message id (plus the token when the id covers a batch) or by Relay's message id and
   * the token or device. Repeats change nothing, so a vendor retrying its callback is harmless.
   */
  async applyEvents(appId: string, channel: string | null, events: DeviceEvent[]): Promise<{ matched: number; changed: number; overQuota: string[] }> {
    if (events.length === 0) return { matched: 0, changed: 0, overQuota: [] };
    const col = <K extends keyof DeviceEvent>(k: K) => events.map((e) => (e[k] === undefined ? null : e[k]));
    const res = await sql<{ matched: string; n: string; over_quota: string[] | null }>`
      WITH v AS (
        SELECT * FROM unnest(${col('event')}::text[], ${col('providerId')}::text[], ${col('messageId')}::text[],
                             ${col('token')}::text[], ${col('deviceId')}::text[],
                             ${events.map((e) => new Date(e.at ?? Date.now()).toISOString())}::timestamptz[],
                             ${events.map((e) => (e.reason ? JSON.stringify(e.reason) : null))}::jsonb[])
          AS v(event, provider_id, message_id, token, device_id, at, reason)
      ), matched AS (
        -- Three plain joins rather than one CASE, so each can use an index: the vendor's request
        -- id, and the (message_id, device_id) key for device acks and SDK events.
        SELECT d.id, v.event, v.at, v.reason
        FROM v JOIN provider_requests r ON r.app_id = ${appId} AND r.provider_id = v.provider_id
          JOIN deliveries d ON d.id = ANY(r.ids) AND (v.token IS NULL OR d.token = v.token)
        WHERE v.provider_id IS NOT NULL AND d.app_id = ${appId} AND (${channel}::text IS NULL OR d.channel = ${channel})
        UNION ALL
        SELECT d.id, v.event, v.at, v.reason
        FROM v JOIN deliveries d ON d.message_id = v.message_id AND d.device_id = v.device_id
        WHERE v.provider_id IS NULL AND d.app_id = ${appId} AND (${channel}::text IS NULL OR d.channel = ${channel})
        UNION ALL
        -- Relay's message id and the token also back up a vendor request id that matches nothing
        -- (Huawei and Honor echo both): the same delivery found twice is one target below.
        SELECT d.id, v.event, v.at, v.reason
        FROM v JOIN deliveries d ON d.message_id = v.message_id AND d.token = v.token
        WHERE v.token IS NOT NULL AND d.app_id = ${appId} AND (${channel}::text IS NULL OR d.channel = ${channel})
      ), target AS (
        SELECT DISTINCT ON (id) id, event, at, reason
        FROM matched
        -- The strongest fact wins: a vendor's "not delivered" only stands when nothing says it was.
        ORDER BY id, CASE event WHEN 'invalid' THEN 0 WHEN 'opened' THEN 1 WHEN 'delivered' THEN 2 ELSE 3 END
      ), locked AS (
        -- The status each row leaves, for the counters: locked first, so no concurrent writer can
        -- change it between this read and the update below.
        SELECT d.id, d.status FROM deliveries d WHERE d.id = ANY(ARRAY(SELECT id FROM target)) ORDER BY d.id FOR UPDATE
      ), changed AS (
        UPDATE deliveries d
        SET status = CASE
              WHEN t.event = 'invalid' THEN 'invalid'
              WHEN t.event = 'failed' THEN 'failed'
              WHEN t.event = 'opened' THEN 'opened'
              WHEN d.status = 'opened' THEN 'opened'
              ELSE 'delivered' END,
            delivered_at = CASE WHEN t.event IN ('delivered', 'opened') THEN coalesce(d.delivered_at, t.at) ELSE d.delivered_at END,
            opened_at = CASE WHEN t.event = 'opened' THEN coalesce(d.opened_at, t.at) ELSE d.opened_at END,
            error = CASE WHEN t.event IN ('invalid', 'failed') THEN t.reason ELSE d.error END,
            lease_until = NULL, pending_seq = NULL, updated_at = now()
        FROM target t JOIN locked l ON l.id = t.id
        WHERE d.id = t.id AND (
          (t.event = 'delivered' AND d.status IN ('queued', 'sent')) OR
          (t.event = 'opened' AND d.status IN ('queued', 'sent', 'delivered')) OR
          (t.event IN ('invalid', 'failed') AND d.status IN ('queued', 'sent')))
        RETURNING d.id, d.app_id, d.message_id, d.device_id, d.channel, d.platform, d.variant, d.token, d.status, d.error,
                  l.status AS old_status, d.channel AS old_channel
      ), quarantined AS (
        UPDATE device_tokens tk
        SET state = 'invalid', invalid_reason = coalesce(changed.error->>'code', 'receipt'), invalid_at = now(),
            evidence = changed.error, updated_at = now()
        FROM changed
        WHERE changed.status = 'invalid' AND tk.app_id = changed.app_id AND tk.device_id = changed.device_id
          AND tk.channel = changed.channel AND tk.token = changed.token AND tk.state = 'active'
        RETURNING 1
      ), ${TALLIES}, ${DEAD_LETTERS}
      SELECT (SELECT count(*) FROM target) AS matched, (SELECT count(*) FROM changed) AS n,
             (SELECT count(*) FROM quarantined) AS q,
             (SELECT coalesce(json_agg(id::text ORDER BY id), '[]'::json) FROM changed
              WHERE status = 'failed' AND error->>'code' = 'quota') AS over_quota`.execute(this.db);
    const r = res.rows[0];
    return { matched: Number(r?.matched ?? 0), changed: Number(r?.n ?? 0), overQuota: r?.over_quota ?? [] };
  }

  /**
   * Queues deliveries a vendor dropped over its daily quota again, on another channel (the
   * MobPush-style fallback for quota reported after the send): they stay queued with the vendor's
   * reason as their last error, open for the sweeper, and come back by message for the send jobs.
   */
  async requeueOnChannel(ids: readonly string[], channel: string): Promise<{ messageId: string; ids: string[] }[]> {
    if (ids.length === 0) return [];
    // The self channel needs a device; another channel (FCM) the device's active token there.
    const res = await this.byIds((tx) => sql<{ moved: [string, string][] | null }>`
      WITH locked AS (
        SELECT d.id, d.channel, t.token FROM deliveries d
        LEFT JOIN device_tokens t ON ${channel} <> 'self' AND t.app_id = d.app_id AND t.device_id = d.device_id
          AND t.channel = ${channel} AND t.state = 'active'
        WHERE d.id = ANY(${idArray(ids)}::bigint[]) AND d.status = 'failed' AND d.device_id <> ''
          AND (${channel} = 'self' OR t.token IS NOT NULL)
        ORDER BY d.id FOR UPDATE OF d
      ), changed AS (
        UPDATE deliveries d SET status = 'queued', channel = ${channel}, token = l.token, provider_id = NULL,
          lease_until = NULL, next_attempt_at = NULL, updated_at = now()
        FROM locked l
        WHERE d.id = l.id AND d.status = 'failed'
        RETURNING d.id, d.app_id, d.message_id, d.channel, d.platform, d.variant, d.status, NULL::jsonb AS error,
                  'failed'::text AS old_status, l.channel AS old_channel
      ), opened AS (
        INSERT INTO delivery_open (id) SELECT id FROM changed ON CONFLICT DO NOTHING
      ), revived AS (
        -- No longer a dead letter: it is queued again on another channel.
        DELETE FROM dead_letters WHERE delivery_id = ANY(ARRAY(SELECT id FROM changed))
      ), ${TALLIES}
      SELECT json_agg(json_build_array(message_id, id::text) ORDER BY id) AS moved FROM changed`.execute(tx));
    const byMessage = new Map<string, string[]>();
    for (const [messageId, id] of res.rows[0]?.moved ?? []) byMessage.set(messageId, [...(byMessage.get(messageId) ?? []), id]);
    return [...byMessage].map(([messageId, list]) => ({ messageId, ids: list }));
  }

  /**
   * Hands queued, unleased deliveries to another channel (a fallback); returns the moved ids.
   * `tokens` (parallel to `ids`) are the device's tokens on that channel; without, none (self).
   */
  async moveQueued(ids: readonly string[], channel: string, tokens?: readonly (string | null)[]): Promise<string[]> {
    if (ids.length === 0) return [];
    // The counters move the row's count to the new channel: its old channel is read under lock.
    const res = await this.byIds((tx) => sql<{ id: string }>`
      WITH v AS (
        SELECT * FROM unnest(${idArray(ids)}::bigint[], ${textArray(tokens ?? ids.map(() => null))}::text[]) AS v(id, token)
      ), locked AS (
        SELECT id, channel FROM deliveries
        WHERE id = ANY(${idArray(ids)}::bigint[]) AND status = 'queued' AND (lease_until IS NULL OR lease_until < now())
        ORDER BY id FOR UPDATE
      ), changed AS (
        UPDATE deliveries d SET channel = ${channel}, token = v.token, provider_id = NULL, lease_until = NULL,
          next_attempt_at = NULL, updated_at = now()
        FROM locked l JOIN v ON v.id = l.id
        WHERE d.id = l.id AND d.status = 'queued' AND (d.lease_until IS NULL OR d.lease_until < now())
        RETURNING d.id, d.app_id, d.message_id, d.channel, d.platform, d.variant, d.status, NULL::jsonb AS error,
                  'queued'::text AS old_status, l.channel AS old_channel
      ), ${TALLIES}
      SELECT id FROM changed`.execute(tx));
    return res.rows.map((r) => String(r.id)).sort(compareIds);
  }

  /** Ends every not-yet-sent delivery of a message as `cancelled`. */
  async cancelPending(messageId: string): Promise<number> {
    const res = await sql<{ n: string }>`
      WITH changed AS (
        UPDATE deliveries SET status = 'cancelled', lease_until = NULL, pending_seq = NULL, updated_at = now()
        WHERE message_id = ${messageId} AND status = 'queued'
        RETURNING id, app_id, message_id, channel, platform, variant, status, NULL::jsonb AS error,
                  'queued'::text AS old_status, channel AS old_channel
      ), closed AS (
        DELETE FROM delivery_open WHERE id = ANY(ARRAY(SELECT id FROM changed))
      ), ${TALLIES}
      SELECT count(*) AS n FROM changed`.execute(this.db);
    return Number(res.rows[0]?.n ?? 0);
  }

  /** Ends queued deliveries of messages whose TTL has passed (leased rows wait for their worker). */
  async expireOverdue(limit = 10_000): Promise<number> {
    const res = await sql<{ n: string }>`
      WITH due AS (
        SELECT d.id FROM delivery_open o JOIN deliveries d ON d.id = o.id JOIN messages m ON m.id = d.message_id
        WHERE d.status = 'queued' AND m.expires_at < now() AND (d.lease_until IS NULL OR d.lease_until < now())
        LIMIT ${limit}
      ), changed AS (
        UPDATE deliveries d SET status = 'expired', lease_until = NULL, pending_seq = NULL, updated_at = now(),
          error = jsonb_build_object('code', 'expired', 'message', 'the message TTL ended before it could be sent')
        FROM due WHERE d.id = due.id AND d.status = 'queued'
        RETURNING d.id, d.app_id, d.message_id, d.channel, d.platform, d.variant, d.status, d.error,
                  'queued'::text AS old_status, d.channel AS old_channel
      ), closed AS (
        DELETE FROM delivery_open WHERE id = ANY(ARRAY(SELECT id FROM changed))
      ), ${TALLIES}, ${DEAD_LETTERS}
      SELECT count(*) AS n FROM changed`.execute(this.db);
    return Number(res.rows[0]?.n ?? 0);
  }

  /** Queued rows that no job seems to hold: not leased, and due for longer than `graceMs`. */
  async stranded(graceMs: number, firstAttemptGraceMs = graceMs, limit = 10_000): Promise<{ appId: string; messageId: string; channel: string; id: string; attempts: number }[]> {
    // A row never attempted may simply be waiting behind a long queue backlog (a big audience):
    // it gets a longer grace, so the sweep does not flood the queue with duplicate jobs.
    const res = await sql<{ app_id: string; message_id: string; channel: string; id: string; attempts: number }>`
      SELECT d.app_id, d.message_id, d.channel, d.id, d.attempts FROM delivery_open o JOIN deliveries d ON d.id = o.id
      WHERE d.status = 'queued' AND d.channel IS NOT NULL AND (d.lease_until IS NULL OR d.lease_until < now())
        AND coalesce(d.next_attempt_at, d.updated_at) < now() - make_interval(secs => CASE WHEN d.attempts = 0
              THEN ${firstAttemptGraceMs / 1000}::float8 ELSE ${graceMs / 1000}::float8 END)
      ORDER BY d.message_id, d.channel, d.id
      LIMIT ${limit}`.execute(this.db);
    return res.rows.map((r) => ({ appId: r.app_id, messageId: r.message_id, channel: r.channel, id: String(r.id), attempts: r.attempts }));
  }

  /**
   * Queued rows last touched before `before`, in id order from `afterId`: after Redis lost its
   * jobs, every one of them is waiting for a job that no longer exists, whatever its lease says.
   */
  async openBefore(before: Date, afterId: string | null, limit = 10_000): Promise<{ appId: string; messageId: string; channel: string; id: string; nextAttemptAt: Date | null }[]> {
    const res = await sql<{ app_id: string; message_id: string; channel: string; id: string; next_attempt_at: Date | null }>`
      SELECT d.app_id, d.message_id, d.channel, o.id::text AS id, d.next_attempt_at
      FROM delivery_open o JOIN deliveries d ON d.id = o.id
      WHERE d.status = 'queued' AND d.channel IS NOT NULL AND d.updated_at < ${before.toISOString()}::timestamptz
        ${afterId ? sql`AND o.id > ${afterId}::bigint` : sql``}
      ORDER BY o.id
      LIMIT ${limit}`.execute(this.db);
    return res.rows.map((r) => ({ appId: r.app_id, messageId: r.message_id, channel: r.channel, id: r.id, nextAttemptAt: r.next_attempt_at }));
  }

  /**
   * Forgets open ids whose delivery is no longer queued. Only the hot paths (outcomes, cancel,
   * expiry) close ids eagerly; receipts, acks and recalls leave theirs for this.
   */
  async pruneOpen(limit = 50_000): Promise<number> {
    // An ended row can be queued again (a fallback's move) while this runs, re-opening its id with
    // ON CONFLICT DO NOTHING against the id this is about to delete: the row lock makes the two
    // take turns, and a row another transaction holds is left for the next pass.
    const res = await sql<{ n: string }>`
      WITH ended AS (
        SELECT d.id FROM delivery_open o JOIN deliveries d ON d.id = o.id
        WHERE d.status <> 'queued'
        LIMIT ${limit}
        FOR UPDATE OF d SKIP LOCKED
      ), gone AS (
        SELECT id FROM ended
        UNION ALL
        (SELECT o.id FROM delivery_open o WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = o.id) LIMIT ${limit})
      ), deleted AS (
        DELETE FROM delivery_open WHERE id = ANY(ARRAY(SELECT id FROM gone)) RETURNING 1
      )
      SELECT count(*) AS n FROM deleted`.execute(this.db);
    return Number(res.rows[0]?.n ?? 0);
  }

  async list(
    appId: string,
    messageId: string,
    filter: { status?: string; channel?: string; after?: string; limit: number },
  ) {
    if (filter.status === 'queued') return this.listQueued(appId, messageId, filter);
    let q = this.db
      .selectFrom('deliveries')
      .selectAll()
      .where('app_id', '=', appId)
      .where('message_id', '=', messageId)
      .orderBy('id')
      .limit(filter.limit + 1);
    if (filter.status) q = q.where('status', '=', filter.status);
    if (filter.channel) q = q.where('channel', '=', filter.channel);
    if (filter.after) q = q.where('id', '>', filter.after as never);
    const rows = await q.execute();
    return pageOf(rows, filter.limit, (last) => String(last.id));
  }

  /**
   * Queued rows are found through the open ids (no index names `status`), walked in id order: a
   * lookup per open row rather than a scan of the whole message. OFFSET 0 keeps the planner from
   * flattening the lookup into a join that reads the message first.
   */
  private async listQueued(appId: string, messageId: string, filter: { channel?: string; after?: string; limit: number }) {
    const res = await sql<DeliveryRow>`
      SELECT d.* FROM delivery_open o JOIN LATERAL (SELECT * FROM deliveries x WHERE x.id = o.id OFFSET 0) d ON true
      WHERE d.app_id = ${appId} AND d.message_id = ${messageId} AND d.status = 'queued'
        ${filter.channel ? sql`AND d.channel = ${filter.channel}` : sql``}
        ${filter.after ? sql`AND o.id > ${filter.after}::bigint` : sql``}
      ORDER BY o.id
      LIMIT ${filter.limit + 1}`.execute(this.db);
    return pageOf(res.rows, filter.limit, (last) => String(last.id));
  }
}

/** What `insertPage` queued, by channel: rows leased to the caller's job, and rows left over. */
export interface PageInsert {
  leased: Map<string, string[]>;
  pending: Map<string, string[]>;
  /** Rows an earlier run of the page inserted and leased, still untouched: see `resumeGroups`. */
  resumed: ResumedGroup[];
}

export interface ResumedGroup {
  channel: string;
  ids: string[];
  leasedUntil: number;
}

/**
 * Rebuilds the send batches an earlier run of a page meant to queue, so that a re-run after a
 * crash (the insert committed, its reply or the queueing was lost) can queue them at once with
 * the same job ids and the same lease, instead of leaving them to wait the lease out.
 *
 * One insertPage call gives all its rows the same lease value, and its jobs take each channel's
 * rows in id order, in batches of a fixed size. A batch's outcomes are written by one statement,
 * so a batch is either wholly untouched or wholly gone from these rows, and all but the last are
 * full: grouping the untouched rows by (lease, channel), in id order, and cutting them in the
 * caller's batch size yields exactly the batches of the earlier run that never ran. A job the
 * earlier run did queue has the same id, so adding it again changes nothing; one it did not
 * queue is the only holder of its rows' lease, which is what lets it skip the claim.
 */
export function resumeGroups(rows: { id: string; channel: string | null; lease_until: Date }[]): ResumedGroup[] {
  const groups = new Map<string, ResumedGroup>();
  for (const r of [...rows].sort((a, b) => compareIds(String(a.id), String(b.id)))) {
    if (!r.channel) continue;
    const leasedUntil = r.lease_until.getTime();
    const key = `${leasedUntil}:${r.channel}`;
    const g = groups.get(key) ?? { channel: r.channel, ids: [], leasedUntil };
    g.ids.push(String(r.id));
    groups.set(key, g);
  }
  return [...groups.values()];
}

function groupByChannel(into: Map<string, string[]>, rows: { id: string; channel: string | null }[]): void {
  for (const r of [...rows].sort((a, b) => compareIds(String(a.id), String(b.id)))) {
    if (!r.channel) continue;
    const list = into.get(r.channel) ?? [];
    list.push(String(r.id));
    into.set(r.channel, list);
  }
}

/** A claimed row as the statements return it: [id, device_id, token, attempts, seq]. */
type ClaimedTuple = [string, string, string | null, number, string | null];

/** Claimed rows as one JSON array in id order (parsing a result row each cost more than the claim). */
const CLAIMED_JSON = sql`coalesce(json_agg(json_build_array(id::text, device_id, token, attempts, seq::text) ORDER BY id), '[]'::json)`;

function toClaimed(rows: ClaimedTuple[] | null | undefined): ClaimedDelivery[] {
  return (rows ?? []).map(([id, deviceId, token, attempts, seq]) => ({ id, deviceId, token, attempts, seq }));
}

/** Orders bigint ids given as decimal text without parsing them: shorter is smaller. */
export function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
