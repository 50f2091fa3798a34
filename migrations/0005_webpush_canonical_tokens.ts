import { sql, type Kysely } from 'kysely';

const PAGE = 5000;

/**
 * Web Push tokens are stored in one canonical form, `{"endpoint","keys":{"p256dh","auth"}}` in
 * that order, so that the same subscription re-registered in another shape is the same token (and
 * a quarantined one stays quarantined). Tokens stored before were the JSON as the client sent it;
 * this rewrites them once. The form is spelled out here rather than imported: a migration must
 * keep doing what it did when it was written. A token that is not such JSON is left as it is.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  let after: [string, string] | null = null;
  for (;;) {
    const page: { rows: { app_id: string; device_id: string; token: string }[] } = await sql<{ app_id: string; device_id: string; token: string }>`
      SELECT app_id, device_id, token FROM device_tokens
      WHERE channel = 'webpush' ${after ? sql`AND (app_id, device_id) > (${after[0]}, ${after[1]})` : sql``}
      ORDER BY app_id, device_id
      LIMIT ${PAGE}`.execute(db);
    const changed = page.rows.flatMap((r) => {
      const canonical = canonicalSubscription(r.token);
      return canonical !== undefined && canonical !== r.token ? [{ ...r, token: canonical }] : [];
    });
    if (changed.length > 0) {
      await sql`
        UPDATE device_tokens t SET token = v.token, updated_at = now()
        FROM unnest(${changed.map((r) => r.app_id)}::text[], ${changed.map((r) => r.device_id)}::text[], ${changed.map((r) => r.token)}::text[])
          AS v(app_id, device_id, token)
        WHERE t.app_id = v.app_id AND t.device_id = v.device_id AND t.channel = 'webpush'`.execute(db);
    }
    const last = page.rows[page.rows.length - 1];
    if (!last || page.rows.length < PAGE) return;
    after = [last.app_id, last.device_id];
  }
}

export async function down(): Promise<void> {
  // The client's original shapes are gone; the canonical form is a valid subscription either way.
}

function canonicalSubscription(token: string): string | undefined {
  let sub: unknown;
  try {
    sub = JSON.parse(token);
  } catch {
    return undefined;
  }
  if (typeof sub !== 'object' || sub === null) return undefined;
  const { endpoint, keys } = sub as { endpoint?: unknown; keys?: { p256dh?: unknown; auth?: unknown } | null };
  if (typeof endpoint !== 'string' || typeof keys !== 'object' || keys === null) return undefined;
  if (typeof keys.p256dh !== 'string' || typeof keys.auth !== 'string') return undefined;
  return JSON.stringify({ endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } });
}
