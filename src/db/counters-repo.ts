import { sql, type Kysely } from 'kysely';
import { DELIVERY_STATUSES, emptyCounts, type DeliveryStatus } from '../core/delivery-status.js';
import type { DB } from './schema.js';

export type StatusCounts = Record<DeliveryStatus, number>;

export interface MessageCounters {
  counts: StatusCounts;
  /** Per channel, only the statuses with deliveries (`none` for deliveries that had no channel). */
  byChannel: Record<string, Partial<StatusCounts>>;
}

export interface CampaignCounters {
  counts: StatusCounts;
  /** Per A/B variant; deliveries without a variant count in `counts` only. */
  byVariant: Record<string, StatusCounts>;
}

const KNOWN = new Set<string>(DELIVERY_STATUSES);

/**
 * Reads the per-message counters that the outcome statements keep (src/db/tallies.ts): a few rows
 * per message whatever its audience, never a GROUP BY over `deliveries`.
 */
export class CountersRepo {
  constructor(private readonly db: Kysely<DB>) {}

  /** Counts of each given message of the app; a message without deliveries (or not the app's) has zeros. */
  async forMessages(appId: string, messageIds: readonly string[]): Promise<Map<string, MessageCounters>> {
    const out = new Map<string, MessageCounters>(messageIds.map((id) => [id, { counts: emptyCounts(), byChannel: {} }]));
    if (messageIds.length === 0) return out;
    const rows = await this.db
      .selectFrom('message_counts')
      .select(['message_id', 'channel', 'status', (eb) => eb.fn.sum<string>('n').as('n')])
      .where('message_id', 'in', [...new Set(messageIds)])
      .where('app_id', '=', appId)
      .groupBy(['message_id', 'channel', 'status'])
      .execute();
    for (const r of rows) {
      const n = Number(r.n);
      const entry = out.get(r.message_id);
      if (!entry || n === 0 || !KNOWN.has(r.status)) continue;
      const status = r.status as DeliveryStatus;
      entry.counts[status] += n;
      const ch = (entry.byChannel[r.channel] ??= {});
      ch[status] = (ch[status] ?? 0) + n;
    }
    return out;
  }

  /** Counts over every message (run, test slice, winner send) of a campaign, and per variant. */
  async forCampaign(appId: string, campaignId: string): Promise<CampaignCounters> {
    const res = await sql<{ variant: string; status: string; n: string }>`
      SELECT c.variant, c.status, sum(c.n) AS n
      FROM messages m JOIN message_counts c ON c.message_id = m.id
      WHERE m.app_id = ${appId} AND m.campaign_id = ${campaignId} AND c.app_id = ${appId}
      GROUP BY c.variant, c.status`.execute(this.db);
    const counts = emptyCounts();
    const byVariant: Record<string, StatusCounts> = {};
    for (const r of res.rows) {
      const n = Number(r.n);
      if (n === 0 || !KNOWN.has(r.status)) continue;
      const status = r.status as DeliveryStatus;
      counts[status] += n;
      if (r.variant !== '') (byVariant[r.variant] ??= emptyCounts())[status] += n;
    }
    return { counts, byVariant };
  }
}
