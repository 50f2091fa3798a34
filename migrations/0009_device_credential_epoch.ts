import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * `devices.credential_epoch`: the version of a device's self-channel password, signed into it
 * (src/core/device-token.ts). Rows that exist today keep 0, the password form they were given; a
 * device created from now on starts at the creation time in milliseconds, so one deleted and
 * registered again under the same id never accepts its old password. Rotation moves it to
 * max(epoch + 1, now).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    ALTER TABLE devices ADD COLUMN credential_epoch bigint NOT NULL DEFAULT 0;
    ALTER TABLE devices ALTER COLUMN credential_epoch SET DEFAULT (floor(extract(epoch from clock_timestamp()) * 1000))::bigint
  `);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `ALTER TABLE devices DROP COLUMN credential_epoch`);
}
