import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * Dead letters: a delivery that ends `failed` or `expired` is also written here, by the same
 * statement that ends it (DEAD_LETTERS in src/db/tallies.ts). `GET /v1/deliveries` pages this
 * table instead of `deliveries`: an index on `deliveries` that named `status` (even only in a
 * partial index's predicate) would end the HOT updates of every outcome write (migration 0004),
 * while this table is written only when a delivery fails, and its indexes serve the filters.
 *
 * `replayed_as` is the message a replay (`POST /v1/deliveries/replay`) sent this delivery again
 * under: set once, so a delivery is never replayed twice. `messages.replay_of` links the new
 * message back to the original.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    CREATE TABLE dead_letters (
      delivery_id bigint PRIMARY KEY,
      app_id text NOT NULL,
      message_id text NOT NULL,
      channel text,
      status text NOT NULL,
      code text,
      at timestamptz NOT NULL DEFAULT now(),
      replayed_as text
    );
    CREATE INDEX dead_letters_app ON dead_letters (app_id, at, delivery_id);
    CREATE INDEX dead_letters_code ON dead_letters (app_id, code, at, delivery_id);
    CREATE INDEX dead_letters_channel ON dead_letters (app_id, channel, at, delivery_id);
    INSERT INTO dead_letters (delivery_id, app_id, message_id, channel, status, code, at)
      SELECT id, app_id, message_id, channel, status, left(error->>'code', 100), updated_at FROM deliveries
      WHERE status IN ('failed', 'expired');
    ALTER TABLE messages ADD COLUMN replay_of text;
  `);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    ALTER TABLE messages DROP COLUMN replay_of;
    DROP TABLE dead_letters;
  `);
}
