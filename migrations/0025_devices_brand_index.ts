import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * An index for the campaign audience's `brands` filter (`lower(brand) = ANY(…)`), the one filter
 * 0008 left without: a rare brand in a million-device app was a scan of every device of the app
 * (bench:campaign prints each filter's plan).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `CREATE INDEX devices_brand ON devices (app_id, lower(brand))`);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `DROP INDEX devices_brand`);
}
