import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { DB } from './schema.js';

export const DAY_MS = 86_400_000;

/** Bits of a delivery id below its day number (migration 0035). */
const DAY_SHIFT = 37n;

/**
 * A new delivery id whose partition is the UTC day of `at` (an SQL timestamptz): the day number
 * above bit 37, the sequence below (migration 0035 explains the layout).
 */
export function deliveryIdAt(at: RawBuilder<unknown>): RawBuilder<unknown> {
  return sql`((floor(extract(epoch FROM ${at}) / 86400)::bigint << 37) | (nextval('delivery_id_seq') & 137438953471))`;
}

/** The first delivery id of a UTC day number (days since 1970-01-01). */
export function firstIdOfDay(day: number): bigint {
  return BigInt(day) << DAY_SHIFT;
}

export function partitionName(day: number): string {
  return `deliveries_${new Date(day * DAY_MS).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

export interface Partition {
  name: string;
  /** Lowest id (inclusive); null for MINVALUE (the legacy partition). */
  from: bigint | null;
  /** Highest id (exclusive). */
  to: bigint;
}

export interface MaintenanceResult {
  /** False when another process held the maintenance lock: it does the work instead. */
  ran: boolean;
  created: string[];
  dropped: string[];
  messages: number;
  idempotencyKeys: number;
}

/**
 * Day partitions of `deliveries`: created ahead of time, dropped whole once past the retention,
 * with the messages, idempotency keys and vendor request ids of those days. Safe to run from
 * every scheduler process at once: a transaction-scoped advisory lock lets one of them do it,
 * and each step is idempotent, so a pass cut short is finished by the next.
 */
export class PartitionsRepo {
  constructor(private readonly db: Kysely<DB>) {}

  async list(): Promise<Partition[]> {
    const res = await sql<{ name: string; bound: string }>`
      SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'deliveries'::regclass`.execute(this.db);
    return res.rows
      .map((r) => {
        const m = /FROM \((MINVALUE|'?(-?\d+)'?)\) TO \('?(-?\d+)'?\)/.exec(r.bound);
        if (!m) throw new Error(`unexpected partition bound of ${r.name}: ${r.bound}`);
        return { name: r.name, from: m[1] === 'MINVALUE' ? null : BigInt(m[2]!), to: BigInt(m[3]!) };
      })
      .sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
  }

  /**
   * Creates the partitions of the `aheadDays` days after `now` (and after the real clock, which a
   * test may have moved `now` away from) and, with a retention, drops the ones whose every id is
   * older than `now - retentionMs` (rounded down to a day: a partition holds whole days).
   */
  async maintain(now: Date, opts: { aheadDays: number; retentionMs?: number }): Promise<MaintenanceResult> {
    const result: MaintenanceResult = { ran: false, created: [], dropped: [], messages: 0, idempotencyKeys: 0 };
    const cutoffDay = opts.retentionMs ? Math.floor((now.getTime() - opts.retentionMs) / DAY_MS) : null;
    const days = new Set<number>();
    for (const from of [Math.floor(Date.now() / DAY_MS), Math.floor(now.getTime() / DAY_MS)]) {
      for (let d = from; d <= from + opts.aheadDays; d++) days.add(d);
    }
    await this.db.transaction().execute(async (tx) => {
      const lock = await sql<{ ok: boolean }>`
        SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.relay.delivery_partitions')) AS ok`.execute(tx);
      if (!lock.rows[0]?.ok) return;
      result.ran = true;
      // DDL on a partition locks the parent: never queue behind a long query (and block every
      // insert queued behind us); the next pass tries again.
      await sql`SET LOCAL lock_timeout = '5s'`.execute(tx);
      const existing = await new PartitionsRepo(tx).list();
      if (cutoffDay !== null) {
        for (const p of existing) {
          if (p.to > firstIdOfDay(cutoffDay)) continue;
          await sql`DROP TABLE ${sql.id(p.name)}`.execute(tx);
          // Open ids of the dropped rows go with them (the sweeper would prune them anyway).
          await sql`DELETE FROM delivery_open WHERE id < ${p.to.toString()}::bigint
                    ${p.from === null ? sql`` : sql`AND id >= ${p.from.toString()}::bigint`}`.execute(tx);
          result.dropped.push(p.name);
        }
      }
      const left = existing.filter((p) => !result.dropped.includes(p.name));
      for (const day of [...days].sort((a, b) => a - b)) {
        const from = firstIdOfDay(day);
        const to = firstIdOfDay(day + 1);
        // Any overlap (the legacy partition reaches up to the day of the migration) means the
        // day's ids already have a home.
        if (left.some((p) => (p.from === null || p.from < to) && p.to > from)) continue;
        const name = partitionName(day);
        // Built apart and then attached: ATTACH PARTITION takes a lock that lets inserts and
        // updates of the other partitions go on, where CREATE TABLE … PARTITION OF would stop
        // them (https://www.postgresql.org/docs/current/ddl-partitioning.html#DDL-PARTITIONING-DECLARATIVE-MAINTENANCE).
        // The CHECK spares ATTACH its validating scan.
        await sql`CREATE TABLE ${sql.id(name)} (LIKE deliveries INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)
                  WITH (fillfactor = 50)`.execute(tx);
        await sql`ALTER TABLE ${sql.id(name)} ADD CONSTRAINT ${sql.id(`${name}_day`)}
                  CHECK (id >= ${sql.raw(from.toString())} AND id < ${sql.raw(to.toString())})`.execute(tx);
        // Unique per partition, hence overall: a message's deliveries share its day (see 0035).
        await sql`CREATE UNIQUE INDEX ${sql.id(`${name}_message_device`)} ON ${sql.id(name)} (message_id, device_id)`.execute(tx);
        await sql`ALTER TABLE deliveries ATTACH PARTITION ${sql.id(name)}
                  FOR VALUES FROM (${sql.raw(from.toString())}) TO (${sql.raw(to.toString())})`.execute(tx);
        result.created.push(name);
      }
    });
    if (result.ran && cutoffDay !== null) {
      const before = new Date(cutoffDay * DAY_MS).toISOString();
      result.messages = await this.deleteInBatches(sql`
        WITH gone AS (
          -- A message scheduled past the cutoff is kept: its deliveries will be in its send day's partition.
          DELETE FROM messages WHERE id = ANY(ARRAY(
            SELECT id FROM messages WHERE created_at < ${before}::timestamptz
              AND (send_at IS NULL OR send_at < ${before}::timestamptz) LIMIT 5000))
          RETURNING id
        ), counts AS (
          DELETE FROM message_counts WHERE message_id = ANY(ARRAY(SELECT id FROM gone))
        ), recalls AS (
          DELETE FROM recalls WHERE message_id = ANY(ARRAY(SELECT id FROM gone))
        ), recall_rows AS (
          DELETE FROM delivery_recalls WHERE message_id = ANY(ARRAY(SELECT id FROM gone))
        )
        SELECT count(*) AS n FROM gone`);
      // Dead letters of the dropped days: their ids are below the cutoff day's first id.
      await this.deleteInBatches(sql`
        WITH gone AS (
          DELETE FROM dead_letters WHERE delivery_id = ANY(ARRAY(
            SELECT delivery_id FROM dead_letters WHERE delivery_id < ${sql.raw(firstIdOfDay(cutoffDay).toString())} LIMIT 5000))
          RETURNING 1
        )
        SELECT count(*) AS n FROM gone`);
      result.idempotencyKeys = await this.deleteInBatches(sql`
        WITH gone AS (
          DELETE FROM idempotency_keys k USING (
            SELECT app_id, key FROM idempotency_keys WHERE created_at < ${before}::timestamptz LIMIT 5000) o
          WHERE k.app_id = o.app_id AND k.key = o.key
          RETURNING 1
        )
        SELECT count(*) AS n FROM gone`);
      await this.deleteInBatches(sql`
        WITH gone AS (
          DELETE FROM provider_requests WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM provider_requests WHERE created_at < ${before}::timestamptz LIMIT 5000))
          RETURNING 1
        )
        SELECT count(*) AS n FROM gone`);
    }
    return result;
  }

  /** Runs a bounded DELETE (returning its count as `n`) until it deletes less than a batch. */
  private async deleteInBatches(stmt: RawBuilder<unknown>): Promise<number> {
    let total = 0;
    for (;;) {
      const res = await (stmt as RawBuilder<{ n: string }>).execute(this.db);
      const n = Number(res.rows[0]?.n ?? 0);
      total += n;
      if (n < 5000) return total;
    }
  }
}
