import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * What a campaign preview of most of an app reads (CampaignsRepo.audienceGroups): each device's
 * platform and brand, and its active tokens' channels, both in device id order so the two meet in
 * a merge join. Covering indexes make both index-only scans, a third of the pages of the tables
 * (bench:preview: a million devices, EXPLAIN (ANALYZE, BUFFERS) per filter).
 *
 * An index-only scan skips the heap only on pages the visibility map marks all-visible, which
 * vacuum sets: inserts alone trigger autovacuum at autovacuum_vacuum_insert_scale_factor (20 % of
 * the table by default, https://www.postgresql.org/docs/current/routine-vacuuming.html#VACUUM-FOR-VISIBILITY-MAP),
 * so an app that registers devices steadily would read the heap again for a long while. 2 % keeps
 * the map near current; the update threshold comes down too (5 %), as every launch updates its
 * device row and clears its page's all-visible bit.
 *
 * Neither index adds a HOT-update loss: device updates already change `last_seen_at` (indexed) and
 * token state changes already touch `device_tokens_quarantine`'s predicate.
 *
 * Migrations run in a transaction, where CREATE INDEX holds writes to the table until it commits
 * (CONCURRENTLY cannot run in one). On a large install, create both indexes beforehand with
 * `CREATE INDEX CONCURRENTLY` under these names and definitions (README: Upgrading); IF NOT EXISTS
 * then makes this step a no-op instead of a write stall.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    CREATE INDEX IF NOT EXISTS devices_route ON devices (app_id, id) INCLUDE (platform, brand);
    CREATE INDEX IF NOT EXISTS device_tokens_active ON device_tokens (app_id, device_id) INCLUDE (channel) WHERE state = 'active';
    ALTER TABLE devices SET (autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
    ALTER TABLE device_tokens SET (autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05)
  `);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    ALTER TABLE device_tokens RESET (autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_scale_factor);
    ALTER TABLE devices RESET (autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_scale_factor);
    DROP INDEX device_tokens_active;
    DROP INDEX devices_route
  `);
}
