import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * The core schema. Text ids are caller-visible (apps, devices, messages); deliveries use a bigint
 * identity because the pipeline updates them in bulk by id. Statuses are text so that a row is
 * readable in psql without a lookup table.
 *
 * Deliveries are the hot table: every row is written three times (insert, claim, outcome). The
 * claim touches no indexed column, so with free space on the page (fillfactor) it is a HOT
 * update that writes no index entry; message-scoped reads use the (message_id, device_id) key.
 * Provider message ids are indexed only for vendor channels, whose receipt webhooks look them up.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    CREATE TABLE apps (
      id text PRIMARY KEY,
      name text NOT NULL,
      receipt_secret text NOT NULL,
      settings jsonb NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE api_keys (
      id text PRIMARY KEY,
      app_id text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
      name text,
      scopes text[] NOT NULL,
      hash text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      revoked_at timestamptz
    );
    CREATE INDEX api_keys_app ON api_keys (app_id);

    CREATE TABLE credentials (
      app_id text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
      provider text NOT NULL,
      secret text NOT NULL,
      info jsonb NOT NULL,
      version integer NOT NULL DEFAULT 1,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (app_id, provider)
    );

    CREATE TABLE devices (
      app_id text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
      id text NOT NULL,
      platform text NOT NULL,
      brand text,
      user_id text,
      tags text[] NOT NULL DEFAULT '{}',
      locale text,
      timezone text,
      app_version text,
      self_seq bigint NOT NULL DEFAULT 0,
      last_seen_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (app_id, id)
    );
    CREATE INDEX devices_user ON devices (app_id, user_id) WHERE user_id IS NOT NULL;
    CREATE INDEX devices_tags ON devices USING gin (tags);

    CREATE TABLE device_tokens (
      app_id text NOT NULL,
      device_id text NOT NULL,
      channel text NOT NULL,
      token text NOT NULL,
      state text NOT NULL DEFAULT 'active',
      invalid_reason text,
      invalid_at timestamptz,
      evidence jsonb,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (app_id, device_id, channel),
      FOREIGN KEY (app_id, device_id) REFERENCES devices (app_id, id) ON DELETE CASCADE
    );
    CREATE INDEX device_tokens_quarantine ON device_tokens (app_id, invalid_at) WHERE state = 'invalid';
    CREATE INDEX device_tokens_value ON device_tokens (app_id, channel, token);

    CREATE TABLE messages (
      id text PRIMARY KEY,
      app_id text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
      request jsonb NOT NULL,
      state text NOT NULL,
      recipients integer NOT NULL DEFAULT 0,
      send_at timestamptz,
      expires_at timestamptz NOT NULL,
      routed_at timestamptz,
      cancelled_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX messages_app ON messages (app_id, created_at DESC);

    CREATE TABLE idempotency_keys (
      app_id text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
      key text NOT NULL,
      message_id text NOT NULL,
      request_hash text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (app_id, key)
    );

    CREATE TABLE deliveries (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      message_id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
      app_id text NOT NULL,
      device_id text NOT NULL,
      platform text,
      channel text,
      token text,
      status text NOT NULL,
      attempts integer NOT NULL DEFAULT 0,
      error jsonb,
      provider_id text,
      seq bigint,
      lease_until timestamptz,
      next_attempt_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      sent_at timestamptz,
      delivered_at timestamptz,
      opened_at timestamptz,
      UNIQUE (message_id, device_id)
    ) WITH (fillfactor = 70);
    CREATE INDEX deliveries_queued ON deliveries (id) WHERE status = 'queued';
    CREATE INDEX deliveries_provider_id ON deliveries (app_id, channel, provider_id)
      WHERE provider_id IS NOT NULL AND channel NOT IN ('apns', 'fcm', 'webpush', 'self');

    CREATE TABLE delivery_rollups (
      app_id text NOT NULL,
      bucket timestamptz NOT NULL,
      channel text NOT NULL,
      platform text NOT NULL,
      status text NOT NULL,
      count bigint NOT NULL,
      PRIMARY KEY (app_id, bucket, channel, platform, status)
    );
  `);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    DROP TABLE delivery_rollups, deliveries, idempotency_keys, messages, device_tokens, devices,
      credentials, api_keys, apps;
  `);
}
