import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * What campaigns and their stats need on the existing tables:
 * - `messages.campaign_id`: the campaign whose run (or test slice) this message is; null for a
 *   transactional push, which is never capped and never counted as a campaign's;
 * - `deliveries.variant`: the A/B variant a device drew for this message (null without variants).
 *   Written once at insert; no index names it, so outcome updates stay HOT (see 0004);
 * - `devices.attributes`: a flat string map for `{{variable}}` personalisation.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    ALTER TABLE messages ADD COLUMN campaign_id text;
    CREATE INDEX messages_campaign ON messages (app_id, campaign_id, created_at) WHERE campaign_id IS NOT NULL;
    ALTER TABLE deliveries ADD COLUMN variant text;
    ALTER TABLE devices ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}'::jsonb
  `);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    ALTER TABLE devices DROP COLUMN attributes;
    ALTER TABLE deliveries DROP COLUMN variant;
    DROP INDEX messages_campaign;
    ALTER TABLE messages DROP COLUMN campaign_id
  `);
}
