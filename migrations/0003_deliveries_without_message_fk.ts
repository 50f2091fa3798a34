import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * The foreign key from deliveries to messages ran a lookup in messages for every inserted
 * delivery (about a third of the insert's cost on the hot path). Deliveries are only ever
 * inserted by the router for a message it has just read, and messages are never deleted, so the
 * check bought nothing.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_message_id_fkey;`);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    ALTER TABLE deliveries ADD CONSTRAINT deliveries_message_id_fkey
      FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE;
  `);
}
