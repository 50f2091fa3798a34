import type { Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * Campaigns (SPEC §7):
 * - `campaigns`: the validated request (`spec`), its state, counters, and the dispatch cursor of
 *   the current run (`run`: per zone, the next instant it is due and the last device id
 *   dispatched), so a scheduler that dies resumes where it was. `claimed_by`/`claimed_until` is
 *   the row claim that lets several scheduler processes run without firing a run twice;
 * - `campaign_caps`: what campaigns sent each device per device-local day (frequencyCap);
 * - device indexes for the audience filters, each led by app_id: last seen, time zone (the
 *   zone-by-zone walk of a localTime run), locale prefixes, and app versions compared as
 *   versions through `relay_version_key` (2.10.0 > 2.9.1: an int[] of the first four parts).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    CREATE TABLE campaigns (
      app_id text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
      id text NOT NULL,
      name text NOT NULL,
      spec jsonb NOT NULL,
      state text NOT NULL,
      audience_size bigint NOT NULL DEFAULT 0,
      dispatched bigint NOT NULL DEFAULT 0,
      skipped jsonb NOT NULL DEFAULT '{"capped":0,"missed":0,"noChannel":0}'::jsonb,
      variant_dispatched jsonb NOT NULL DEFAULT '{}'::jsonb,
      run jsonb,
      runs integer NOT NULL DEFAULT 0,
      winner text,
      next_run_at timestamptz,
      pace_at timestamptz,
      pace_base bigint NOT NULL DEFAULT 0,
      claimed_by text,
      claimed_until timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (app_id, id)
    );
    CREATE INDEX campaigns_due ON campaigns (next_run_at) WHERE state IN ('scheduled', 'running');
    CREATE INDEX campaigns_list ON campaigns (app_id, created_at DESC, id DESC);

    CREATE TABLE campaign_caps (
      app_id text NOT NULL,
      day date NOT NULL,
      device_id text NOT NULL,
      count integer NOT NULL,
      PRIMARY KEY (app_id, day, device_id)
    );

    CREATE FUNCTION relay_version_key(v text) RETURNS int[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (string_to_array(substring(v from '^[vV]?([0-9]{1,9}(?:[.][0-9]{1,9})*)'), '.')::int[] || '{0,0,0,0}'::int[])[1:4] $$;
    CREATE INDEX devices_version ON devices (app_id, relay_version_key(app_version));
    CREATE INDEX devices_last_seen ON devices (app_id, last_seen_at);
    CREATE INDEX devices_zone ON devices (app_id, timezone, id);
    CREATE INDEX devices_locale ON devices (app_id, lower(locale) text_pattern_ops);
    CREATE INDEX devices_platform ON devices (app_id, platform, id)
  `);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await runStatements(db, `
    DROP INDEX devices_platform;
    DROP INDEX devices_locale;
    DROP INDEX devices_zone;
    DROP INDEX devices_last_seen;
    DROP INDEX devices_version;
    DROP FUNCTION relay_version_key(text);
    DROP TABLE campaign_caps;
    DROP TABLE campaigns
  `);
}
