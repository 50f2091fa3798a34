import type { Migration } from 'kysely/migration';
import * as m0001 from './0001_init.js';
import * as m0002 from './0002_self_channel.js';
import * as m0003 from './0003_deliveries_without_message_fk.js';
import * as m0004 from './0004_hot_outcomes.js';
import * as m0005 from './0005_webpush_canonical_tokens.js';
import * as m0006 from './0006_campaign_columns.js';
import * as m0007 from './0007_minute_stats_and_counters.js';
import * as m0008 from './0008_campaigns.js';
import * as m0009 from './0009_device_credential_epoch.js';
import * as m0010 from './0010_recalls.js';
import * as m0015 from './0015_dead_letters.js';
import * as m0025 from './0025_devices_brand_index.js';
import * as m0030 from './0030_relay_state.js';
import { sealReceiptSecrets } from './0031_sealed_receipt_secrets.js';
import * as m0035 from './0035_partitioned_deliveries.js';
import * as m0040 from './0040_preview_indexes.js';

/** What a data migration may need beyond the database: the key that seals secrets at rest. */
export interface MigrationEnv {
  credentialsKey?: Buffer;
}

/** Append-only: a new migration is a new numbered file added here, never an edit of an old one. */
export function migrationsFor(env: MigrationEnv): Record<string, Migration> {
  return {
    ...schemaMigrations,
    '0030_relay_state': m0030,
    '0031_sealed_receipt_secrets': sealReceiptSecrets(env.credentialsKey),
  };
}

const schemaMigrations: Record<string, Migration> = {
  '0001_init': m0001,
  '0002_self_channel': m0002,
  '0003_deliveries_without_message_fk': m0003,
  '0004_hot_outcomes': m0004,
  '0005_webpush_canonical_tokens': m0005,
  '0006_campaign_columns': m0006,
  '0007_minute_stats_and_counters': m0007,
  '0008_campaigns': m0008,
  '0009_device_credential_epoch': m0009,
  '0010_recalls': m0010,
  '0015_dead_letters': m0015,
  '0025_devices_brand_index': m0025,
  '0035_partitioned_deliveries': m0035,
  '0040_preview_indexes': m0040,
};

/** Every migration, for callers with no CREDENTIALS_KEY (they can migrate only schemas with no app yet). */
export const migrations: Record<string, Migration> = migrationsFor({});
