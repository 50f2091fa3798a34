import { sql, type RawBuilder } from 'kysely';
import { durationMs, type Audience } from './schema.js';

/** `zh` matches `zh`, `zh-CN` and `zh_TW`, not `zha`: a prefix by language subtag. */
function localePatterns(locales: readonly string[]): string[] {
  return locales.flatMap((l) => {
    const p = l.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`);
    return [p, `${p}-%`, `${p}\\_%`];
  });
}

/**
 * The audience as one SQL condition over `devices d` (README: Campaigns): every filter ANDed, each one an
 * index the planner can use (migration 0008), app versions compared as versions through
 * relay_version_key. `now` is the scheduling clock's, for `lastSeen`.
 */
export function audienceFilter(appId: string, a: Audience, now: number): RawBuilder<unknown> {
  const parts: RawBuilder<unknown>[] = [sql`d.app_id = ${appId}`];
  if (a.platforms) parts.push(sql`d.platform = ANY(${a.platforms}::text[])`);
  if (a.brands) parts.push(sql`lower(d.brand) = ANY(${a.brands.map((b) => b.toLowerCase())}::text[])`);
  if (a.tags?.all) parts.push(sql`d.tags @> ${a.tags.all}::text[]`);
  if (a.tags?.any) parts.push(sql`d.tags && ${a.tags.any}::text[]`);
  if (a.tags?.none) parts.push(sql`NOT (d.tags && ${a.tags.none}::text[])`);
  if (a.locales) parts.push(sql`lower(d.locale) LIKE ANY(${localePatterns(a.locales)}::text[])`);
  if (a.appVersion?.gte) parts.push(sql`relay_version_key(d.app_version) >= relay_version_key(${a.appVersion.gte})`);
  if (a.appVersion?.lt) parts.push(sql`relay_version_key(d.app_version) < relay_version_key(${a.appVersion.lt})`);
  if (a.users) parts.push(sql`d.user_id = ANY(${a.users}::text[])`);
  if (a.devices) parts.push(sql`d.id = ANY(${a.devices}::text[])`);
  if (a.lastSeen?.within) parts.push(sql`d.last_seen_at >= ${new Date(now - durationMs(a.lastSeen.within, 0)).toISOString()}::timestamptz`);
  if (a.lastSeen?.notWithin) {
    parts.push(sql`(d.last_seen_at IS NULL OR d.last_seen_at < ${new Date(now - durationMs(a.lastSeen.notWithin, 0)).toISOString()}::timestamptz)`);
  }
  if (a.timezones) parts.push(sql`d.timezone = ANY(${a.timezones}::text[])`);
  return sql.join(parts, sql` AND `);
}
