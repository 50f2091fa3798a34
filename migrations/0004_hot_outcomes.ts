import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * Outcome writes become HOT updates. A delivery's first attempt changes its status, provider id,
 * lease and timestamps; while any index named one of those columns (even only in a partial
 * index's predicate), every outcome wrote a new entry into every index of the table: about 15 µs
 * of a 25 µs per-delivery budget. Now no index of `deliveries` names a column the hot path
 * changes, and pages keep room for the new row version (fillfactor 50: one update per row).
 *
 * What the dropped indexes answered moves to places the hot path does not rewrite:
 * - `delivery_open` lists the ids that may still be queued (a superset: the sweeper prunes ids
 *   whose row has moved on), for the sweeper's stranded and expired scans;
 * - `provider_requests` maps a vendor's request id to the deliveries it carried, one row per
 *   request rather than an index entry per token, for receipt webhooks;
 * - `pending_seq` is a self delivery's seq while its device has not acked it, so the gateway's
 *   per-device index no longer depends on `status`.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    CREATE TABLE delivery_open (id bigint PRIMARY KEY);
    INSERT INTO delivery_open (id) SELECT id FROM deliveries WHERE status = 'queued';
    DROP INDEX deliveries_queued;

    CREATE TABLE provider_requests (
      app_id text NOT NULL,
      channel text NOT NULL,
      provider_id text NOT NULL,
      ids bigint[] NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX provider_requests_id ON provider_requests (app_id, provider_id);
    INSERT INTO provider_requests (app_id, channel, provider_id, ids)
      SELECT app_id, channel, provider_id, array_agg(id ORDER BY id) FROM deliveries
      WHERE provider_id IS NOT NULL AND channel NOT IN ('apns', 'fcm', 'webpush', 'self')
      GROUP BY app_id, channel, provider_id;
    DROP INDEX deliveries_provider_id;

    ALTER TABLE deliveries ADD COLUMN pending_seq bigint;
    UPDATE deliveries SET pending_seq = seq WHERE seq IS NOT NULL AND status IN ('queued', 'sent');
    DROP INDEX deliveries_self_pending;
    CREATE INDEX deliveries_self_pending ON deliveries (app_id, device_id, pending_seq) WHERE pending_seq IS NOT NULL;

    ALTER TABLE deliveries SET (fillfactor = 50);
  `);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    ALTER TABLE deliveries SET (fillfactor = 70);
    DROP INDEX deliveries_self_pending;
    CREATE INDEX deliveries_self_pending ON deliveries (app_id, device_id, seq)
      WHERE seq IS NOT NULL AND status IN ('queued', 'sent');
    ALTER TABLE deliveries DROP COLUMN pending_seq;
    CREATE INDEX deliveries_provider_id ON deliveries (app_id, channel, provider_id)
      WHERE provider_id IS NOT NULL AND channel NOT IN ('apns', 'fcm', 'webpush', 'self');
    DROP TABLE provider_requests;
    CREATE INDEX deliveries_queued ON deliveries (id) WHERE status = 'queued';
    DROP TABLE delivery_open;
  `);
}
