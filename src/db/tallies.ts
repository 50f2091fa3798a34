import { sql } from 'kysely';

/**
 * What every statement that changes a delivery's status also writes, in the same statement (no
 * extra round trip): the minute stats, the error codes and the per-message counters. The
 * statement names its changed rows `changed`, with the columns
 *
 *   app_id, message_id, channel, platform, variant, status, error,
 *   old_status (null for a new row), old_channel (the channel before, when the statement moves it)
 *
 * and appends `TALLIES` to its WITH list (it adds the CTEs `tally_stats`, `tally_errors` and
 * `tally_counts`). Data-modifying CTEs always run to completion, referenced or not.
 *
 * - Stats count transitions into a status, in the minute they happen. The funnel sent → delivered
 *   → opened counts every stage a transition passes, so a device ack that overtakes its send
 *   outcome (queued → delivered) counts `sent` too, and the rates stay ≤ 1. A retry (queued →
 *   queued) counts nothing; its error code counts as `retried`.
 * - Counters are state, not events: −1 on the old (channel, status), +1 on the new.
 *
 * Each upsert sorts its keys, and each waits for the one before (the one-time filter on its
 * count), so every statement locks counter rows in one order and concurrent batches of one
 * message queue behind each other rather than deadlock.
 */
export const TALLIES = sql`
  tally_stats AS (
    INSERT INTO stats_minute (app_id, bucket, channel, platform, campaign, variant, status, count)
    SELECT c.app_id, date_trunc('minute', now()), coalesce(c.channel, 'none'), coalesce(c.platform, 'none'),
           coalesce(m.campaign_id, ''), coalesce(c.variant, ''), s.status, count(*)
    FROM changed c
    -- The campaign comes from the message: one key probe per message of the batch (usually one).
    LEFT JOIN (SELECT id, campaign_id FROM messages WHERE id = ANY(ARRAY(SELECT DISTINCT message_id FROM changed))) m
      ON m.id = c.message_id
    CROSS JOIN LATERAL unnest(CASE
      WHEN c.status IN ('sent', 'delivered', 'opened') THEN (ARRAY['sent', 'delivered', 'opened'])[
        CASE c.old_status WHEN 'sent' THEN 2 WHEN 'delivered' THEN 3 WHEN 'opened' THEN 4 ELSE 1 END :
        CASE c.status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 ELSE 3 END]
      WHEN c.status = 'queued' OR c.status IS NOT DISTINCT FROM c.old_status THEN '{}'::text[]
      ELSE ARRAY[c.status] END) AS s(status)
    GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (app_id, bucket, channel, platform, campaign, variant, status)
      DO UPDATE SET count = stats_minute.count + EXCLUDED.count
    RETURNING 1
  ), tally_errors AS (
    INSERT INTO stats_errors (app_id, bucket, channel, code, status, count)
    SELECT c.app_id, date_trunc('minute', now()), coalesce(c.channel, 'none'), left(c.error->>'code', 100),
           CASE WHEN c.status = 'queued' THEN 'retried' ELSE c.status END, count(*)
    FROM changed c
    WHERE c.error->>'code' IS NOT NULL AND (SELECT count(*) FROM tally_stats) >= 0
      AND (c.status IN ('failed', 'invalid', 'expired') OR (c.status = 'queued' AND c.old_status = 'queued'))
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (app_id, bucket, channel, code, status) DO UPDATE SET count = stats_errors.count + EXCLUDED.count
    RETURNING 1
  ), tally_counts AS (
    INSERT INTO message_counts (message_id, channel, variant, status, app_id, n)
    SELECT message_id, channel, variant, status, min(app_id), sum(n) FROM (
      SELECT message_id, coalesce(channel, 'none') AS channel, coalesce(variant, '') AS variant, status, app_id, 1 AS n
      FROM changed
      UNION ALL
      SELECT message_id, coalesce(old_channel, channel, 'none'), coalesce(variant, ''), old_status, app_id, -1
      FROM changed WHERE old_status IS NOT NULL
    ) x
    WHERE (SELECT count(*) FROM tally_errors) >= 0
    GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 ORDER BY 1, 2, 3, 4
    ON CONFLICT (message_id, channel, variant, status) DO UPDATE SET n = message_counts.n + EXCLUDED.n
    RETURNING 1
  )`;

/**
 * The dead-letter index (migration 0015), for every statement that may end a delivery `failed` or
 * `expired`: appended to its WITH list after TALLIES, it needs `changed.id` besides the columns
 * above. Written here rather than indexed on `deliveries`, so outcome writes stay HOT updates (an
 * index naming `status` would end that, see migration 0004); only failing rows cost an insert.
 * A delivery that fails again after leaving its end state (a quota fallback) gets a fresh entry.
 */
export const DEAD_LETTERS = sql`
  dead_letter AS (
    INSERT INTO dead_letters (delivery_id, app_id, message_id, channel, status, code)
    SELECT c.id, c.app_id, c.message_id, c.channel, c.status, left(c.error->>'code', 100)
    FROM changed c
    WHERE c.status IN ('failed', 'expired') AND c.status IS DISTINCT FROM c.old_status
    ON CONFLICT (delivery_id) DO UPDATE
      SET status = EXCLUDED.status, channel = EXCLUDED.channel, code = EXCLUDED.code, at = now(), replayed_as = NULL
    RETURNING 1
  )`;
