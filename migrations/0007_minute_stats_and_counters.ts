import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * Delivery stats by the minute and per-message counters, both kept by the statements that write
 * outcomes (see src/db/tallies.ts), so neither `GET /v1/stats` nor `GET /v1/messages/:id` ever
 * scans `deliveries`:
 * - `stats_minute`: transitions per minute, app × channel × platform × campaign × variant ×
 *   status (`''` for no campaign / no variant, `'none'` for no channel or platform). Replaces the
 *   hourly `delivery_rollups`, whose rows move over as the first minute of their hour;
 * - `stats_errors`: error codes per minute, app × channel × code × status (`retried` for an
 *   attempt that will be retried);
 * - `message_counts`: how many of a message's deliveries are in each status now, by channel and
 *   A/B variant. Every transition moves one count from the old key to the new one.
 *
 * Counts are the only columns the upserts change and no index names them, so the updates are HOT.
 * `bucket` has an index of its own for the retention sweep, which deletes across apps.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    CREATE TABLE stats_minute (
      app_id text NOT NULL,
      bucket timestamptz NOT NULL,
      channel text NOT NULL,
      platform text NOT NULL,
      campaign text NOT NULL,
      variant text NOT NULL,
      status text NOT NULL,
      count bigint NOT NULL,
      PRIMARY KEY (app_id, bucket, channel, platform, campaign, variant, status)
    );
    CREATE INDEX stats_minute_bucket ON stats_minute (bucket);
    INSERT INTO stats_minute (app_id, bucket, channel, platform, campaign, variant, status, count)
      SELECT app_id, bucket, channel, platform, '', '', status, count FROM delivery_rollups WHERE status <> 'queued';
    DROP TABLE delivery_rollups;

    CREATE TABLE stats_errors (
      app_id text NOT NULL,
      bucket timestamptz NOT NULL,
      channel text NOT NULL,
      code text NOT NULL,
      status text NOT NULL,
      count bigint NOT NULL,
      PRIMARY KEY (app_id, bucket, channel, code, status)
    );
    CREATE INDEX stats_errors_bucket ON stats_errors (bucket);
    INSERT INTO stats_errors (app_id, bucket, channel, code, status, count)
      SELECT app_id, date_trunc('minute', updated_at), coalesce(channel, 'none'), left(error->>'code', 100), status, count(*)
      FROM deliveries WHERE status IN ('failed', 'invalid', 'expired') AND error->>'code' IS NOT NULL
      GROUP BY 1, 2, 3, 4, 5;

    CREATE TABLE message_counts (
      message_id text NOT NULL,
      channel text NOT NULL,
      variant text NOT NULL,
      status text NOT NULL,
      app_id text NOT NULL,
      n bigint NOT NULL,
      PRIMARY KEY (message_id, channel, variant, status)
    );
    INSERT INTO message_counts (message_id, channel, variant, status, app_id, n)
      SELECT message_id, coalesce(channel, 'none'), coalesce(variant, ''), status, app_id, count(*)
      FROM deliveries GROUP BY 1, 2, 3, 4, 5;
  `);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    DROP TABLE message_counts;
    DROP TABLE stats_errors;
    CREATE TABLE delivery_rollups (
      app_id text NOT NULL,
      bucket timestamptz NOT NULL,
      channel text NOT NULL,
      platform text NOT NULL,
      status text NOT NULL,
      count bigint NOT NULL,
      PRIMARY KEY (app_id, bucket, channel, platform, status)
    );
    INSERT INTO delivery_rollups (app_id, bucket, channel, platform, status, count)
      SELECT app_id, date_trunc('hour', bucket), channel, platform, status, sum(count) FROM stats_minute GROUP BY 1, 2, 3, 4, 5;
    DROP TABLE stats_minute;
  `);
}
