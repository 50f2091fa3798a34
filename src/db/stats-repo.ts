import { sql, type Kysely } from 'kysely';
import type { DB } from './schema.js';

export const STATS_INTERVALS = ['minute', 'hour', 'day'] as const;
export type StatsInterval = (typeof STATS_INTERVALS)[number];

export const STATS_DIMENSIONS = ['channel', 'platform', 'campaign', 'variant'] as const;
export type StatsDimension = (typeof STATS_DIMENSIONS)[number];

/** The transitions the stats report (`queued` is not one: a retry is no event). */
export const STATS_FIELDS = ['sent', 'delivered', 'opened', 'failed', 'invalid', 'expired', 'cancelled'] as const;
export type StatsField = (typeof STATS_FIELDS)[number];

export interface StatsQuery {
  from: Date;
  to: Date;
  interval: StatsInterval;
  groupBy: readonly StatsDimension[];
  /** Only rows with these values (`''` for no campaign / variant, `none` for no channel). */
  where: Partial<Record<StatsDimension, string>>;
}

export interface StatsRow {
  t: Date;
  key: Partial<Record<StatsDimension, string>>;
  status: StatsField;
  n: number;
}

export interface ErrorRow {
  channel: string;
  code: string;
  status: string;
  n: number;
}

/**
 * Reads the minute rollups the outcome statements write (src/db/tallies.ts). Coarser intervals
 * are sums of minutes, in UTC. Every read names the app and a bucket range, the primary key's
 * leading columns.
 */
export class StatsRepo {
  constructor(private readonly db: Kysely<DB>) {}

  async series(appId: string, q: StatsQuery): Promise<StatsRow[]> {
    const dims = q.groupBy.map((d) => sql.ref(d));
    const filters = Object.entries(q.where).map(([d, v]) => sql`AND ${sql.ref(d)} = ${v}`);
    const res = await sql<{ t: Date; status: StatsField; n: string } & Record<StatsDimension, string>>`
      SELECT date_trunc(${q.interval}, bucket, 'UTC') AS t, ${sql.join([...dims, sql.ref('status')])}, sum(count) AS n
      FROM stats_minute
      WHERE app_id = ${appId} AND bucket >= ${q.from.toISOString()}::timestamptz AND bucket < ${q.to.toISOString()}::timestamptz
        AND status = ANY(${STATS_FIELDS as readonly string[]}::text[]) ${sql.join(filters, sql` `)}
      GROUP BY ${sql.join([sql`1`, ...dims, sql.ref('status')])}
      ORDER BY 1`.execute(this.db);
    return res.rows.map((r) => ({
      t: new Date(r.t),
      key: Object.fromEntries(q.groupBy.map((d) => [d, r[d]])),
      status: r.status,
      n: Number(r.n),
    }));
  }

  /** Error codes per channel and status over the range, most frequent first. */
  async errors(appId: string, from: Date, to: Date, channel?: string): Promise<ErrorRow[]> {
    const res = await sql<{ channel: string; code: string; status: string; n: string }>`
      SELECT channel, code, status, sum(count) AS n FROM stats_errors
      WHERE app_id = ${appId} AND bucket >= ${from.toISOString()}::timestamptz AND bucket < ${to.toISOString()}::timestamptz
        ${channel ? sql`AND channel = ${channel}` : sql``}
      GROUP BY channel, code, status
      ORDER BY n DESC, channel, code, status`.execute(this.db);
    return res.rows.map((r) => ({ channel: r.channel, code: r.code, status: r.status, n: Number(r.n) }));
  }

  /** Deletes minute rows older than the retention, a batch at a time; returns how many went. */
  async prune(olderThanMs: number, batch = 50_000): Promise<number> {
    let total = 0;
    for (const table of ['stats_minute', 'stats_errors'] as const) {
      for (;;) {
        const res = await sql<{ n: string }>`
          WITH gone AS (
            DELETE FROM ${sql.table(table)} WHERE ctid = ANY(ARRAY(
              SELECT ctid FROM ${sql.table(table)} WHERE bucket < now() - make_interval(secs => ${olderThanMs / 1000}) LIMIT ${batch}))
            RETURNING 1
          )
          SELECT count(*) AS n FROM gone`.execute(this.db);
        const n = Number(res.rows[0]?.n ?? 0);
        total += n;
        if (n < batch) break;
      }
    }
    return total;
  }
}
