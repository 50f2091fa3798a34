import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * The self channel's offline store is the deliveries table itself: a self delivery that has a
 * per-device `seq` and is not yet acked (`queued` while its send is in flight, `sent` after) is
 * pending for its device. Gateways read a device's pending rows in seq order on every (re)connect
 * and the inbox pages through them, so they get a partial index of their own: small (acked,
 * failed and expired rows leave it) and untouched by claims, which change no column it names.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    CREATE INDEX deliveries_self_pending ON deliveries (app_id, device_id, seq)
      WHERE seq IS NOT NULL AND status IN ('queued', 'sent');
  `);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `DROP INDEX deliveries_self_pending;`);
}
