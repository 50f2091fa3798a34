import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * Recall (`DELETE /v1/messages/:id`) reported per delivery. Kept out of `deliveries` on purpose:
 * no column or index there changes (migration 0004 keeps every index of that table off the
 * columns the send path rewrites), and a recall writes each of its rows about once.
 * - `recalls`: one row per recalled message; `running` until every delivery has its recall row,
 *   so the sweeper can queue the job again when Redis lost it.
 * - `delivery_recalls`: one row per delivery of a recalled message (the primary key makes that
 *   at most one), in one of `cancelled`, `withdrawn`, `replaced`, `not_withdrawable`, or
 *   `pending` while a self-channel revoke waits for its device's PUBACK. A gateway reads a
 *   device's pending revokes on every connect (`delivery_recalls_self_pending`).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    CREATE TABLE recalls (
      message_id text PRIMARY KEY,
      app_id text NOT NULL,
      state text NOT NULL DEFAULT 'running',
      requested_at timestamptz NOT NULL DEFAULT now(),
      done_at timestamptz
    );
    CREATE INDEX recalls_running ON recalls (requested_at) WHERE state = 'running';
    CREATE TABLE delivery_recalls (
      message_id text NOT NULL,
      delivery_id bigint NOT NULL,
      app_id text NOT NULL,
      device_id text NOT NULL,
      channel text,
      state text NOT NULL,
      reason jsonb,
      seq bigint,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (message_id, delivery_id)
    );
    CREATE INDEX delivery_recalls_self_pending ON delivery_recalls (app_id, device_id) WHERE state = 'pending';
    CREATE INDEX delivery_recalls_pending_age ON delivery_recalls (updated_at) WHERE state = 'pending'
  `);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    DROP TABLE delivery_recalls;
    DROP TABLE recalls
  `);
}
