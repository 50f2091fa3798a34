import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * `relay_state`: small facts Relay must remember beyond Redis. `redis_epoch` is the marker Relay
 * last wrote into Redis (src/redis-epoch.ts): a Redis without a marker while this table names one
 * lost its data (a real loss, reconciled and logged as a warning); with no row at all this is the
 * first start against this database (nothing was ever queued: no warning).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    CREATE TABLE relay_state (
      key text PRIMARY KEY,
      value text NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now()
    )
  `);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `DROP TABLE relay_state`);
}
