import { sql, type Kysely } from 'kysely';
import type { PushRequest, Target } from '../core/push-request.js';
import type { DB, MessageRow } from './schema.js';

/** Stored message states; the API derives `sending` / `done` from these and the delivery counts. */
/** `dispatching`: a campaign run the campaign scheduler is still expanding (the router leaves it alone). */
export type MessageState = 'scheduled' | 'queued' | 'routing' | 'routed' | 'cancelled' | 'dispatching';

export interface NewMessage {
  id: string;
  appId: string;
  request: PushRequest;
  state: MessageState;
  recipients: number;
  sendAt: Date | null;
  expiresAt: Date;
}

export class MessagesRepo {
  constructor(private readonly db: Kysely<DB>) {}

  async insert(m: NewMessage): Promise<void> {
    await this.db
      .insertInto('messages')
      .values({
        id: m.id,
        app_id: m.appId,
        request: JSON.stringify(m.request),
        state: m.state,
        recipients: m.recipients,
        send_at: m.sendAt,
        expires_at: m.expiresAt,
      })
      .execute();
  }

  /**
   * Stores a message and counts its audience in the same statement (one round trip on the hot
   * path of `POST /v1/push`); returns the count.
   */
  async insertCounting(m: Omit<NewMessage, 'recipients'>, to: Target): Promise<number> {
    const recipients = to.token ? sql`1` : sql`(SELECT count(*) FROM devices d WHERE ${targetFilter(m.appId, to)})`;
    const res = await sql<{ recipients: number }>`
      INSERT INTO messages (id, app_id, request, state, recipients, send_at, expires_at)
      VALUES (${m.id}, ${m.appId}, ${JSON.stringify(m.request)}::jsonb, ${m.state}, ${recipients},
              ${m.sendAt?.toISOString() ?? null}::timestamptz, ${m.expiresAt.toISOString()}::timestamptz)
      RETURNING recipients`.execute(this.db);
    return Number(res.rows[0]?.recipients ?? 0);
  }

  async get(appId: string, id: string): Promise<MessageRow | undefined> {
    return this.db.selectFrom('messages').selectAll().where('app_id', '=', appId).where('id', '=', id).executeTakeFirst();
  }

  async byId(id: string): Promise<MessageRow | undefined> {
    return this.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Moves a message on only from the states given, so a cancel always wins over a late router. */
  async transition(id: string, from: MessageState[], to: MessageState, extra: { routed?: boolean; cancelled?: boolean } = {}): Promise<boolean> {
    const res = await this.db
      .updateTable('messages')
      .set({
        state: to,
        ...(extra.routed ? { routed_at: new Date() } : {}),
        ...(extra.cancelled ? { cancelled_at: new Date() } : {}),
      })
      .where('id', '=', id)
      .where('state', 'in', from)
      .executeTakeFirst();
    return res.numUpdatedRows > 0n;
  }

  /** Messages accepted but not yet routed, e.g. after Redis lost their route job. */
  async unrouted(graceMs: number): Promise<{ id: string; app_id: string; send_at: Date | null }[]> {
    const res = await sql<{ id: string; app_id: string; send_at: Date | null }>`
      SELECT id, app_id, send_at FROM messages
      WHERE state IN ('queued', 'routing', 'scheduled')
        AND coalesce(send_at, created_at) < now() - make_interval(secs => ${graceMs / 1000})
      LIMIT 1000`.execute(this.db);
    return res.rows;
  }

  /** Idempotency: the message an earlier request with this key created, if any. */
  async findIdempotent(appId: string, key: string): Promise<{ messageId: string; requestHash: string } | undefined> {
    const row = await this.db
      .selectFrom('idempotency_keys')
      .select(['message_id', 'request_hash'])
      .where('app_id', '=', appId)
      .where('key', '=', key)
      .executeTakeFirst();
    return row ? { messageId: row.message_id, requestHash: row.request_hash } : undefined;
  }

  /** Records the key; false when a concurrent request took it first. */
  async claimIdempotency(appId: string, key: string, messageId: string, requestHash: string): Promise<boolean> {
    const res = await this.db
      .insertInto('idempotency_keys')
      .values({ app_id: appId, key, message_id: messageId, request_hash: requestHash })
      .onConflict((oc) => oc.columns(['app_id', 'key']).doNothing())
      .executeTakeFirst();
    return (res.numInsertedOrUpdatedRows ?? 0n) > 0n;
  }

  async deleteIdempotency(appId: string, key: string): Promise<void> {
    await this.db.deleteFrom('idempotency_keys').where('app_id', '=', appId).where('key', '=', key).execute();
  }
}

/** A SQL condition selecting the target's devices (alias `d`), for counting and for routing. */
export function targetFilter(appId: string, to: Target) {
  const base = sql`d.app_id = ${appId}`;
  if (to.devices) return sql`${base} AND d.id = ANY(${to.devices}::text[])`;
  if (to.users) return sql`${base} AND d.user_id = ANY(${to.users}::text[])`;
  if (to.tags) {
    const all = to.tags.all ? sql` AND d.tags @> ${to.tags.all}::text[]` : sql``;
    const any = to.tags.any ? sql` AND d.tags && ${to.tags.any}::text[]` : sql``;
    return sql`${base}${all}${any}`;
  }
  return base;
}
