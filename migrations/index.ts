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
import * as m0015 from './0015_dead_letters.js';

/** Append-only: a new migration is a new numbered file added here, never an edit of an old one. */
export const migrations: Record<string, Migration> = {
  '0001_init': m0001,
  '0002_self_channel': m0002,
  '0003_deliveries_without_message_fk': m0003,
  '0004_hot_outcomes': m0004,
  '0005_webpush_canonical_tokens': m0005,
  '0006_campaign_columns': m0006,
  '0007_minute_stats_and_counters': m0007,
  '0008_campaigns': m0008,
  '0009_device_credential_epoch': m0009,
  '0015_dead_letters': m0015,
};
