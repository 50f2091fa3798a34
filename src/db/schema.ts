import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T = unknown> = ColumnType<T, string | T, string | T>;

export interface AppsTable {
  id: string;
  name: string;
  receipt_secret: string;
  settings: ColumnType<AppSettings, string | undefined, string>;
  created_at: Timestamp;
}

/** Per-app routing policy. */
export interface AppSettings {
  /**
   * Android channel order, like Getui's strategies: `self-first` (online → self, else vendor, else
   * FCM), `vendor-first` (vendor, then self, then FCM), `vendor-only` (never the self channel).
   */
  androidStrategy?: 'self-first' | 'vendor-first' | 'vendor-only';
  /**
   * A vendor's daily quota (the device's, or the app's daily total) refused a delivery: send it
   * over the self channel (`self`) or FCM (`fcm`) when the device has that channel, else fail it
   * `quota` (`none`, the default).
   */
  quotaFallback?: 'self' | 'fcm' | 'none';
  /** SMS per UTC day for this app, below the operator's SMS_DAILY_CAP (src/sms-cap.ts). */
  smsDailyCap?: number;
}

export interface ApiKeysTable {
  id: string;
  app_id: string;
  name: string | null;
  scopes: string[];
  hash: string;
  created_at: Timestamp;
  revoked_at: NullableTimestamp;
}

export interface CredentialsTable {
  app_id: string;
  provider: string;
  secret: string;
  info: Json<Record<string, unknown>>;
  version: Generated<number>;
  updated_at: Timestamp;
}

export interface DevicesTable {
  app_id: string;
  id: string;
  platform: string;
  brand: string | null;
  user_id: string | null;
  tags: ColumnType<string[], string[] | undefined, string[]>;
  locale: string | null;
  timezone: string | null;
  app_version: string | null;
  /** A flat string map for campaign personalisation (`{{first_name|there}}`). */
  attributes: ColumnType<Record<string, string>, string | Record<string, string> | undefined, string | Record<string, string>>;
  self_seq: ColumnType<string, string | number | undefined, string | number>;
  /** Version of the self-channel password (migration 0009); int8, so a string from pg. */
  credential_epoch: ColumnType<string, string | number | undefined, string | number>;
  last_seen_at: NullableTimestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface DeviceTokensTable {
  app_id: string;
  device_id: string;
  channel: string;
  token: string;
  state: ColumnType<string, string | undefined, string>;
  invalid_reason: string | null;
  invalid_at: NullableTimestamp;
  evidence: Json<Record<string, unknown> | null> | null;
  updated_at: Timestamp;
}

export interface MessagesTable {
  id: string;
  app_id: string;
  request: Json<Record<string, unknown>>;
  state: string;
  recipients: ColumnType<number, number | undefined, number>;
  send_at: NullableTimestamp;
  expires_at: Timestamp;
  routed_at: NullableTimestamp;
  cancelled_at: NullableTimestamp;
  /** The campaign this message is a run of; null for a transactional push. */
  campaign_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The message this one replays deliveries of (`POST /v1/deliveries/replay`); null otherwise. */
  replay_of: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
}

export interface IdempotencyKeysTable {
  app_id: string;
  key: string;
  message_id: string;
  request_hash: string;
  created_at: Timestamp;
}

export interface DeliveriesTable {
  id: ColumnType<string, never, never>;
  message_id: string;
  app_id: string;
  device_id: string;
  platform: string | null;
  channel: string | null;
  token: string | null;
  status: string;
  attempts: ColumnType<number, number | undefined, number>;
  error: Json<{ code: string; message: string } | null> | null;
  provider_id: string | null;
  seq: string | null;
  /** The A/B variant this device drew (campaign messages with variants only). */
  variant: ColumnType<string | null, string | null | undefined, never>;
  /** The seq while the device has not acked this self delivery (indexed per device). */
  pending_seq: string | null;
  lease_until: NullableTimestamp;
  next_attempt_at: NullableTimestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
  sent_at: NullableTimestamp;
  delivered_at: NullableTimestamp;
  opened_at: NullableTimestamp;
}

/** Transitions per minute (migration 0007): `''` campaign / variant when there is none. */
export interface StatsMinuteTable {
  app_id: string;
  bucket: Timestamp;
  channel: string;
  platform: string;
  campaign: string;
  variant: string;
  status: string;
  count: ColumnType<string, number | string, number | string>;
}

/** Error codes per minute and channel; `status` is the end state, or `retried`. */
export interface StatsErrorsTable {
  app_id: string;
  bucket: Timestamp;
  channel: string;
  code: string;
  status: string;
  count: ColumnType<string, number | string, number | string>;
}

/** A message's deliveries per status now, by channel and variant (`''` without one). */
export interface MessageCountsTable {
  message_id: string;
  channel: string;
  variant: string;
  status: string;
  app_id: string;
  n: ColumnType<string, number | string, number | string>;
}

/** Ids of deliveries that may still be queued; rows that moved on are pruned by the sweeper. */
export interface DeliveryOpenTable {
  id: string;
}

/** One vendor request: its id, as receipts name it, and the deliveries it carried. */
export interface ProviderRequestsTable {
  app_id: string;
  channel: string;
  provider_id: string;
  ids: string[];
  created_at: ColumnType<Date, Date | undefined, never>;
}

/** A delivery that ended `failed` or `expired` (migration 0015), written by the statement that ended it. */
export interface DeadLettersTable {
  delivery_id: string;
  app_id: string;
  message_id: string;
  channel: string | null;
  status: string;
  code: string | null;
  at: Timestamp;
  /** The message a replay sent this delivery again under; set once. */
  replayed_as: string | null;
}

export interface CampaignsTable {
  app_id: string;
  id: string;
  name: string;
  spec: Json<Record<string, unknown>>;
  state: string;
  audience_size: ColumnType<string, number | string | undefined, number | string>;
  dispatched: ColumnType<string, number | string | undefined, number | string>;
  skipped: ColumnType<Record<string, number>, string | undefined, string>;
  variant_dispatched: ColumnType<Record<string, number>, string | undefined, string>;
  run: Json<Record<string, unknown> | null> | null;
  runs: ColumnType<number, number | undefined, number>;
  winner: string | null;
  next_run_at: NullableTimestamp;
  pace_at: NullableTimestamp;
  pace_base: ColumnType<string, number | string | undefined, number | string>;
  claimed_by: string | null;
  claimed_until: NullableTimestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface CampaignCapsTable {
  app_id: string;
  day: string;
  device_id: string;
  count: number;
}

/** Small facts Relay remembers beyond Redis (migration 0030). */
export interface RelayStateTable {
  key: string;
  value: string;
  updated_at: Generated<Date>;
}

/** A recalled message (migration 0010): `running` until every delivery has its recall row. */
export interface RecallsTable {
  message_id: string;
  app_id: string;
  state: ColumnType<string, string | undefined, string>;
  requested_at: ColumnType<Date, Date | string | undefined, Date | string>;
  done_at: NullableTimestamp;
}

/** One delivery's recall fate (migration 0010). */
export interface DeliveryRecallsTable {
  message_id: string;
  delivery_id: string;
  app_id: string;
  device_id: string;
  channel: string | null;
  state: string;
  reason: Json<{ code: string; message: string } | null> | null;
  seq: string | null;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface DB {
  relay_state: RelayStateTable;
  campaigns: CampaignsTable;
  campaign_caps: CampaignCapsTable;
  apps: AppsTable;
  api_keys: ApiKeysTable;
  credentials: CredentialsTable;
  devices: DevicesTable;
  device_tokens: DeviceTokensTable;
  messages: MessagesTable;
  idempotency_keys: IdempotencyKeysTable;
  deliveries: DeliveriesTable;
  stats_minute: StatsMinuteTable;
  stats_errors: StatsErrorsTable;
  message_counts: MessageCountsTable;
  delivery_open: DeliveryOpenTable;
  provider_requests: ProviderRequestsTable;
  recalls: RecallsTable;
  delivery_recalls: DeliveryRecallsTable;
  dead_letters: DeadLettersTable;
}

export type DeviceRow = Selectable<DevicesTable>;
export type CampaignRow = Selectable<CampaignsTable>;
export type DeviceTokenRow = Selectable<DeviceTokensTable>;
export type MessageRow = Selectable<MessagesTable>;
export type DeliveryRow = Selectable<DeliveriesTable>;
export type NewDelivery = Insertable<DeliveriesTable>;
