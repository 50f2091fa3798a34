import { sql, type Kysely } from 'kysely';
import type { PushContent } from '../../providers/types.js';
import type { MessagePlan } from '../core/content.js';
import { idArray } from '../db/array-literal.js';
import type { CampaignsRepo } from '../db/campaigns-repo.js';
import type { ClaimedDelivery } from '../db/deliveries-repo.js';
import type { DB } from '../db/schema.js';
import { CampaignContent } from './content.js';
import type { CampaignSpec } from './schema.js';

/** How long a campaign's state is trusted by a send worker: pause takes effect within this. */
const STATE_TTL_MS = 250;

/**
 * The send path's two campaign hooks (workers/send.ts):
 * - `paused`: a send job of a paused campaign's message waits instead of sending;
 * - `personalize`: splits a batch into groups that share one rendered content (per variant,
 *   locale and attribute values), each compiled once per campaign and process.
 */
export class CampaignSendHooks {
  private readonly states = new Map<string, { campaignId: string | null; state: string | null; at: number }>();
  private readonly contents = new Map<string, CampaignContent | null>();

  constructor(
    private readonly db: Kysely<DB>,
    private readonly campaigns: CampaignsRepo,
  ) {}

  private async lookup(messageId: string) {
    const hit = this.states.get(messageId);
    if (hit && (hit.campaignId === null || Date.now() - hit.at < STATE_TTL_MS)) return hit;
    const found = { ...(await this.campaigns.stateOfMessage(messageId)), at: Date.now() };
    if (this.states.size > 5000) this.states.clear();
    this.states.set(messageId, found);
    return found;
  }

  async paused(messageId: string): Promise<boolean> {
    return (await this.lookup(messageId)).state === 'paused';
  }

  private async content(messageId: string, campaignId: string): Promise<CampaignContent | null> {
    if (this.contents.has(messageId)) return this.contents.get(messageId)!;
    const row = await this.db.selectFrom('campaigns').select('spec').where('id', '=', campaignId).executeTakeFirst();
    const content = row ? new CampaignContent(row.spec as unknown as CampaignSpec) : null;
    if (this.contents.size > 1000) this.contents.delete(this.contents.keys().next().value!);
    this.contents.set(messageId, content);
    return content;
  }

  /** Null: every row gets the plan's content as it is (a transactional message, or uniform content). */
  async personalize(messageId: string, plan: MessagePlan, claimed: readonly ClaimedDelivery[]): Promise<{ content: PushContent; members: number[] }[] | null> {
    const { campaignId } = await this.lookup(messageId);
    if (!campaignId || claimed.length === 0) return null;
    const content = await this.content(messageId, campaignId);
    if (!content || content.uniform) return null;
    const res = await sql<{ id: string; variant: string | null; locale: string | null; attributes: Record<string, string> | null }>`
      SELECT d.id::text AS id, d.variant, v.locale, v.attributes FROM deliveries d
      LEFT JOIN devices v ON v.app_id = d.app_id AND v.id = d.device_id
      WHERE d.id = ANY(${idArray(claimed.map((c) => c.id))}::bigint[])`.execute(this.db);
    const facts = new Map(res.rows.map((r) => [r.id, r]));
    const groups = new Map<string, { content: PushContent; members: number[] }>();
    claimed.forEach((c, i) => {
      const f = facts.get(c.id);
      const rendered = content.render({ variant: f?.variant ?? null, locale: f?.locale ?? null, attributes: f?.attributes ?? {} });
      const key = JSON.stringify(rendered);
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { content: { ...plan.content, ...rendered }, members: [] }));
      g.members.push(i);
    });
    return [...groups.values()];
  }
}
