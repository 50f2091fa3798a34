import { sql, type Kysely } from 'kysely';
import { RECALL_STATES, type RecallReason, type RecallState } from '../core/recall.js';
import { idArray, textArray } from './array-literal.js';
import type { DB } from './schema.js';
import { pageOf } from './page.js';

/** A delivery of a recalled message that has no recall row yet. */
export interface UnrecalledDelivery {
  id: string;
  deviceId: string;
  channel: string | null;
  token: string | null;
  status: string;
  seq: string | null;
  providerId: string | null;
}

export interface RecallRow {
  deliveryId: string;
  appId: string;
  deviceId: string;
  channel: string | null;
  state: RecallState;
  reason: RecallReason | null;
  /** Self channel: the seq the revoke names. */
  seq?: string | null;
}

export type RecallTotals = Record<RecallState, number>;

/**
 * Recall state (migration 0010), kept beside `deliveries` rather than in it. Every write is
 * idempotent: a delivery's row is inserted once (primary key), and `pending` is left only for a
 * final state, never the other way.
 */
export class RecallsRepo {
  constructor(private readonly db: Kysely<DB>) {}

  /** Records that a message is being recalled; false when it already was (a repeated DELETE). */
  async start(appId: string, messageId: string): Promise<boolean> {
    const res = await sql<{ message_id: string }>`
      INSERT INTO recalls (message_id, app_id) VALUES (${messageId}, ${appId})
      ON CONFLICT (message_id) DO NOTHING RETURNING message_id`.execute(this.db);
    return res.rows.length > 0;
  }

  async get(appId: string, messageId: string): Promise<{ state: 'running' | 'done'; requestedAt: Date; doneAt: Date | null } | null> {
    const row = await this.db.selectFrom('recalls').selectAll().where('app_id', '=', appId).where('message_id', '=', messageId).executeTakeFirst();
    return row ? { state: row.state as 'running' | 'done', requestedAt: row.requested_at, doneAt: row.done_at } : null;
  }

  async finish(messageId: string): Promise<void> {
    await this.db.updateTable('recalls').set({ state: 'done', done_at: new Date() }).where('message_id', '=', messageId).where('state', '=', 'running').execute();
  }

  /** Recalls still running that were asked for before `before` (their job may be lost). */
  async running(before: Date, limit = 1000): Promise<{ appId: string; messageId: string }[]> {
    const rows = await this.db
      .selectFrom('recalls')
      .select(['app_id', 'message_id'])
      .where('state', '=', 'running')
      .where('requested_at', '<', before)
      .orderBy('requested_at')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ appId: r.app_id, messageId: r.message_id }));
  }

  /**
   * The message's deliveries after device `afterDevice` (device id order) that have no recall row
   * yet, and the cursor for the next page. Walked by device id: the (message_id, device_id) unique
   * key is the one index of `deliveries` that names the message, so a page is a range read of it
   * whatever the table's size.
   */
  async unrecalled(messageId: string, afterDevice: string | null, limit: number): Promise<{ rows: UnrecalledDelivery[]; last: string | null }> {
    const res = await sql<{ id: string; device_id: string; channel: string | null; token: string | null; status: string; seq: string | null; provider_id: string | null; done: boolean }>`
      SELECT d.id::text AS id, d.device_id, d.channel, d.token, d.status, d.seq::text AS seq, d.provider_id,
             EXISTS (SELECT 1 FROM delivery_recalls r WHERE r.message_id = d.message_id AND r.delivery_id = d.id) AS done
      FROM deliveries d
      WHERE d.message_id = ${messageId} ${afterDevice !== null ? sql`AND d.device_id > ${afterDevice}` : sql``}
      ORDER BY d.device_id
      LIMIT ${limit}`.execute(this.db);
    const last = res.rows.length > 0 ? res.rows[res.rows.length - 1]!.device_id : null;
    const rows = res.rows
      .filter((r) => !r.done)
      .map((r) => ({ id: r.id, deviceId: r.device_id, channel: r.channel, token: r.token, status: r.status, seq: r.seq, providerId: r.provider_id }));
    return { rows, last };
  }

  /** Inserts recall rows (a delivery that has one keeps it); returns the delivery ids inserted. */
  async record(messageId: string, rows: readonly RecallRow[]): Promise<Set<string>> {
    if (rows.length === 0) return new Set();
    const res = await sql<{ delivery_id: string }>`
      INSERT INTO delivery_recalls (message_id, delivery_id, app_id, device_id, channel, state, reason, seq)
      SELECT ${messageId}, v.delivery_id, v.app_id, v.device_id, v.channel, v.state, v.reason, v.seq
      FROM unnest(${idArray(rows.map((r) => r.deliveryId))}::bigint[], ${textArray(rows.map((r) => r.appId))}::text[],
                  ${textArray(rows.map((r) => r.deviceId))}::text[], ${textArray(rows.map((r) => r.channel))}::text[],
                  ${textArray(rows.map((r) => r.state))}::text[], ${textArray(rows.map((r) => (r.reason ? JSON.stringify(r.reason) : null)))}::jsonb[],
                  ${textArray(rows.map((r) => r.seq ?? null))}::bigint[])
           AS v(delivery_id, app_id, device_id, channel, state, reason, seq)
      ON CONFLICT (message_id, delivery_id) DO NOTHING
      RETURNING delivery_id::text AS delivery_id`.execute(this.db);
    return new Set(res.rows.map((r) => r.delivery_id));
  }

  /** The device acked the revoke of a message: its self copy is withdrawn. */
  async revokeAcked(appId: string, deviceId: string, messageId: string): Promise<number> {
    const res = await this.db
      .updateTable('delivery_recalls')
      .set({ state: 'withdrawn', updated_at: new Date() })
      .where('message_id', '=', messageId)
      .where('app_id', '=', appId)
      .where('device_id', '=', deviceId)
      .where('state', '=', 'pending')
      .executeTakeFirst();
    return Number(res.numUpdatedRows);
  }

  /** Revokes a device has not acked yet, oldest first: what a gateway hands it on connect. */
  async pendingRevokes(appId: string, deviceId: string, limit: number): Promise<{ messageId: string; seq: number }[]> {
    const rows = await this.db
      .selectFrom('delivery_recalls')
      .select(['message_id', 'seq'])
      .where('app_id', '=', appId)
      .where('device_id', '=', deviceId)
      .where('state', '=', 'pending')
      .orderBy('updated_at')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ messageId: r.message_id, seq: Number(r.seq ?? 0) }));
  }

  /** Revokes still waiting after `before`: their device never came back; they end not_withdrawable. */
  async expirePending(before: Date, limit = 10_000): Promise<number> {
    const res = await sql<{ n: string }>`
      WITH due AS (
        SELECT message_id, delivery_id FROM delivery_recalls WHERE state = 'pending' AND updated_at < ${before.toISOString()}::timestamptz LIMIT ${limit}
      ), changed AS (
        UPDATE delivery_recalls r SET state = 'not_withdrawable', updated_at = now(),
          reason = jsonb_build_object('code', 'device_unreachable', 'message', 'the device did not connect to take the revoke within RECALL_REVOKE_WAIT')
        FROM due WHERE r.message_id = due.message_id AND r.delivery_id = due.delivery_id AND r.state = 'pending'
        RETURNING 1
      )
      SELECT count(*) AS n FROM changed`.execute(this.db);
    return Number(res.rows[0]?.n ?? 0);
  }

  /** One page and the totals, read from one snapshot (a revoke acked in between shows in both or neither). */
  async report(appId: string, messageId: string, filter: { state?: RecallState; channel?: string; after?: string; limit: number }) {
    return this.db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute(async (tx) => {
        const repo = new RecallsRepo(tx);
        const page = await repo.list(appId, messageId, filter);
        return { ...page, totals: await repo.totals(messageId) };
      });
  }

  async totals(messageId: string): Promise<RecallTotals> {
    const rows = await this.db
      .selectFrom('delivery_recalls')
      .select(['state', (eb) => eb.fn.countAll<string>().as('n')])
      .where('message_id', '=', messageId)
      .groupBy('state')
      .execute();
    const out = Object.fromEntries(RECALL_STATES.map((s) => [s, 0])) as RecallTotals;
    for (const r of rows) if (r.state in out) out[r.state as RecallState] = Number(r.n);
    return out;
  }

  /** One page of a message's recall rows with their delivery's token, in delivery id order. */
  async list(appId: string, messageId: string, filter: { state?: RecallState; channel?: string; after?: string; limit: number }) {
    const res = await sql<{ delivery_id: string; device_id: string; channel: string | null; token: string | null; state: RecallState; reason: RecallReason | null; updated_at: Date }>`
      SELECT r.delivery_id::text AS delivery_id, r.device_id, r.channel, d.token, r.state, r.reason, r.updated_at
      FROM delivery_recalls r LEFT JOIN deliveries d ON d.id = r.delivery_id
      WHERE r.message_id = ${messageId} AND r.app_id = ${appId}
        ${filter.state ? sql`AND r.state = ${filter.state}` : sql``}
        ${filter.channel ? sql`AND r.channel = ${filter.channel}` : sql``}
        ${filter.after ? sql`AND r.delivery_id > ${filter.after}::bigint` : sql``}
      ORDER BY r.delivery_id
      LIMIT ${filter.limit + 1}`.execute(this.db);
    return pageOf(res.rows, filter.limit, (last) => last.delivery_id);
  }
}
