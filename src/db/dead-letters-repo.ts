import { sql, type Kysely } from 'kysely';
import { idArray, textArray } from './array-literal.js';
import type { DB } from './schema.js';
import { pageOf } from './page.js';

/** The end states a dead letter is in. */
export const DEAD_STATUSES = ['failed', 'expired'] as const;
export type DeadStatus = (typeof DEAD_STATUSES)[number];

export interface DeadLetterFilter {
  statuses: readonly DeadStatus[];
  channel?: string;
  code?: string;
  from?: Date;
  to?: Date;
  /** `next` of the previous page: `<microseconds since epoch>.<delivery id>`. */
  cursor?: string;
  limit: number;
}

/** One dead delivery with what a listing and a replay need of it. */
export interface DeadLetter {
  id: string;
  messageId: string;
  deviceId: string;
  platform: string | null;
  channel: string | null;
  token: string | null;
  status: string;
  attempts: number;
  error: { code: string; message: string } | null;
  /** When it ended failed / expired. */
  at: Date;
  /** The message a replay sent it again under, if one did. */
  replayedAs: string | null;
}

interface Row {
  delivery_id: string;
  message_id: string;
  device_id: string;
  platform: string | null;
  channel: string | null;
  token: string | null;
  status: string;
  attempts: number;
  error: { code: string; message: string } | null;
  at: Date;
  at_us: string;
  replayed_as: string | null;
}

const toDeadLetter = (r: Row): DeadLetter => ({
  id: String(r.delivery_id),
  messageId: r.message_id,
  deviceId: r.device_id,
  platform: r.platform,
  channel: r.channel,
  token: r.token,
  status: r.status,
  attempts: r.attempts,
  error: r.error ? { code: r.error.code, message: r.error.message } : null,
  at: r.at,
  replayedAs: r.replayed_as,
});

/**
 * Dead letters (migration 0015) across an app's messages. Pages walk one of the table's indexes
 * in (at, delivery id) order: (app, at), (app, code, at) or (app, channel, at), whichever the
 * filter pins, so a page costs about `limit` index entries and as many primary-key probes of
 * `deliveries` for the details, however many millions of rows the app has.
 */
export class DeadLettersRepo {
  constructor(private readonly db: Kysely<DB>) {}

  async list(appId: string, f: DeadLetterFilter): Promise<{ items: DeadLetter[]; next: string | null }> {
    const cursor = f.cursor ? parseCursor(f.cursor) : null;
    // The statuses are a filter, not a key: two values, nearly always both.
    const statuses = f.statuses.length === DEAD_STATUSES.length ? sql`` : sql`AND dl.status = ANY(${textArray(f.statuses)}::text[])`;
    // The page is cut from dead_letters alone (an ordered index walk that stops after `limit`),
    // then each entry probes `deliveries` once. Filtering on the joined row in the same query
    // made the planner sort every dead letter of the app instead (see bench/dead-letters-explain.ts).
    const res = await sql<Row & { live: boolean | null }>`
      SELECT dl.delivery_id::text AS delivery_id, dl.message_id, d.device_id, d.platform, dl.channel, d.token, d.status,
             d.attempts, d.error, dl.at, (extract(epoch FROM dl.at) * 1000000)::bigint::text AS at_us, dl.replayed_as,
             -- A dead letter whose delivery has since moved on (a late fallback) is not shown.
             (d.status = dl.status AND d.app_id = dl.app_id) AS live
      FROM (
        SELECT * FROM dead_letters dl
        WHERE dl.app_id = ${appId} ${statuses}
          ${f.channel ? sql`AND dl.channel = ${f.channel}` : sql``}
          ${f.code ? sql`AND dl.code = ${f.code}` : sql``}
          ${f.from ? sql`AND dl.at >= ${f.from.toISOString()}::timestamptz` : sql``}
          ${f.to ? sql`AND dl.at < ${f.to.toISOString()}::timestamptz` : sql``}
          ${cursor ? sql`AND (dl.at, dl.delivery_id) > (timestamptz 'epoch' + (${cursor.us} || ' microseconds')::interval, ${cursor.id}::bigint)` : sql``}
        ORDER BY dl.at, dl.delivery_id
        LIMIT ${f.limit + 1}
      ) dl
      LEFT JOIN LATERAL (SELECT * FROM deliveries x WHERE x.id = dl.delivery_id OFFSET 0) d ON true
      ORDER BY dl.at, dl.delivery_id`.execute(this.db);
    const page = pageOf(res.rows, f.limit, (last) => `${last.at_us}.${last.delivery_id}`);
    return { items: page.items.filter((r) => r.live).map(toDeadLetter), next: page.next };
  }

  /**
   * The named deliveries of the app (ids of other apps are simply absent), dead or not: a
   * dead one carries its dead-letter entry (`at`, `replayedAs`), others `status` as they are.
   */
  async byIds(appId: string, ids: readonly string[]): Promise<(DeadLetter & { dead: boolean })[]> {
    if (ids.length === 0) return [];
    const res = await sql<Row & { dead: boolean }>`
      SELECT d.id::text AS delivery_id, d.message_id, d.device_id, d.platform, d.channel, d.token, d.status, d.attempts, d.error,
             coalesce(dl.at, d.updated_at) AS at, '0' AS at_us, dl.replayed_as,
             (dl.delivery_id IS NOT NULL AND dl.status = d.status) AS dead
      FROM deliveries d LEFT JOIN dead_letters dl ON dl.delivery_id = d.id
      WHERE d.id = ANY(${idArray(ids)}::bigint[]) AND d.app_id = ${appId}
      ORDER BY d.id`.execute(this.db);
    return res.rows.map((r) => ({ ...toDeadLetter(r), dead: r.dead }));
  }

  /**
   * Marks dead letters replayed under the given messages, each at most once: returns the ids this
   * call took. Run in the replay's transaction, so a claim exists only with its new message.
   */
  async claim(db: Kysely<DB>, appId: string, claims: readonly { id: string; messageId: string }[]): Promise<Set<string>> {
    if (claims.length === 0) return new Set();
    const res = await sql<{ id: string }>`
      UPDATE dead_letters dl SET replayed_as = v.message_id
      FROM unnest(${idArray(claims.map((c) => c.id))}::bigint[], ${textArray(claims.map((c) => c.messageId))}::text[]) AS v(id, message_id)
      WHERE dl.delivery_id = v.id AND dl.app_id = ${appId} AND dl.replayed_as IS NULL
      RETURNING dl.delivery_id::text AS id`.execute(db);
    return new Set(res.rows.map((r) => String(r.id)));
  }

  /** Who replayed these, for claims a concurrent replay won. */
  async replayedAs(appId: string, ids: readonly string[]): Promise<Map<string, string>> {
    if (ids.length === 0) return new Map();
    const res = await sql<{ id: string; replayed_as: string | null }>`
      SELECT delivery_id::text AS id, replayed_as FROM dead_letters
      WHERE delivery_id = ANY(${idArray(ids)}::bigint[]) AND app_id = ${appId}`.execute(this.db);
    return new Map(res.rows.filter((r) => r.replayed_as).map((r) => [String(r.id), r.replayed_as!]));
  }
}

/** `<µs since epoch>.<delivery id>`, both decimal. */
export const CURSOR_PATTERN = /^\d{1,17}\.\d{1,18}$/;

function parseCursor(cursor: string): { us: string; id: string } {
  const [us, id] = cursor.split('.') as [string, string];
  return { us, id };
}
