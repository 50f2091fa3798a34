import { sql, type Kysely } from 'kysely';
import type { Channel } from '../../providers/types.js';
import { providerModule } from '../../providers/registry.js';
import type { PresenceLookup } from '../../workers/route.js';
import { NOW_OR_NEVER_MS, type PushRequest } from '../core/push-request.js';
import { randomId } from '../core/secrets.js';
import { CampaignContent } from '../campaigns/content.js';
import type { CampaignSpec } from '../campaigns/schema.js';
import { idArray } from '../db/array-literal.js';
import type { Config } from '../config.js';
import { textArray } from '../db/array-literal.js';
import { DEAD_STATUSES, type DeadLetter, type DeadLetterFilter, type DeadLettersRepo } from '../db/dead-letters-repo.js';
import type { NewDeliveryRow } from '../db/deliveries-repo.js';
import { DirectPushRepo, type RoutedMessage } from '../db/direct-push-repo.js';
import type { DB } from '../db/schema.js';
import { ROUTER_LEASE_MS, sendJobId, type Queues } from '../queues.js';
import { deviceRow, tokenRow } from './route-rows.js';

/** Deliveries one replay request may take: bigger selections are paged with `next`. */
export const REPLAY_MAX = 1000;

export const SKIP_REASONS = [
  'not_found', 'not_dead', 'already_replayed', 'message_gone', 'device_gone', 'token_quarantined', 'no_active_token', 'no_channel',
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export type ReplaySelection = { ids: string[] } | { filter: DeadLetterFilter };

export interface ReplayResult {
  replayed: number;
  skipped: Partial<Record<SkipReason, number>>;
  /**
   * The new messages, one per original message with something replayed (a campaign's: one per
   * original message and rendered copy, as each device gets its own text).
   */
  messages: { id: string; replayOf: string; deliveries: number }[];
  /** Per delivery: replayed under `messageId`, or skipped for `reason` (`messageId`: the earlier replay). */
  items: { id: string; result: 'replayed' | 'skipped'; reason?: SkipReason; messageId?: string }[];
  /** Filter selections: the cursor of the next page, as `GET /v1/deliveries` pages. */
  next: string | null;
}

/**
 * Replays dead letters: each chosen delivery is sent again, as a new delivery of a new message
 * that names the original (`replayOf`), routed as a push to that device would be today (its
 * active tokens only: a quarantined token is never used), with the original request's content
 * and options and a fresh TTL. A dead letter is claimed (`replayed_as`) in the transaction that
 * stores the new message, so no delivery is ever replayed twice, whoever repeats the request.
 */
export class ReplayService {
  constructor(
    private readonly config: Config,
    private readonly db: Kysely<DB>,
    private readonly deadLetters: DeadLettersRepo,
    private readonly queues: Queues,
    private readonly presence: PresenceLookup,
  ) {}

  async replay(appId: string, selection: ReplaySelection): Promise<ReplayResult> {
    const result: ReplayResult = { replayed: 0, skipped: {}, messages: [], items: [], next: null };
    const skip = (id: string, reason: SkipReason, messageId?: string) => {
      result.skipped[reason] = (result.skipped[reason] ?? 0) + 1;
      result.items.push({ id, result: 'skipped', reason, ...(messageId ? { messageId } : {}) });
    };

    let chosen: DeadLetter[];
    if ('ids' in selection) {
      const ids = [...new Set(selection.ids)];
      const found = await this.deadLetters.byIds(appId, ids);
      const byId = new Map(found.map((d) => [d.id, d]));
      chosen = [];
      for (const id of ids) {
        const d = byId.get(id);
        if (!d) skip(id, 'not_found');
        else if (!d.dead || !(DEAD_STATUSES as readonly string[]).includes(d.status)) skip(id, 'not_dead');
        else chosen.push(d);
      }
    } else {
      const page = await this.deadLetters.list(appId, selection.filter);
      chosen = page.items;
      result.next = page.next;
    }

    const fresh: DeadLetter[] = [];
    for (const d of chosen) {
      if (d.replayedAs) skip(d.id, 'already_replayed', d.replayedAs);
      else fresh.push(d);
    }
    if (fresh.length === 0) return result;

    // The originals, and what routing needs: the devices' active tokens, the app's channels and
    // policy, quarantined tokens, and who is online on the self channel.
    const originalRows = await this.db
      .selectFrom('messages')
      .select(['id', 'request', 'campaign_id'])
      .where('app_id', '=', appId)
      .where('id', 'in', [...new Set(fresh.map((d) => d.messageId))])
      .execute();
    const originals = new Map(originalRows.map((m) => [m.id, m.request as unknown as PushRequest & { campaign?: unknown }]));
    const copies = await this.campaignCopies(appId, originalRows, fresh);
    const direct = new DirectPushRepo(this.db);
    const deviceIds = [...new Set(fresh.filter((d) => d.deviceId !== '').map((d) => d.deviceId))];
    const found = await direct.lookup({
      devices: deviceIds.map((id) => ({ appId, id })),
      users: [],
      tokens: fresh.filter((d) => d.channel && d.token).map((d) => ({ appId, channel: d.channel!, token: d.token! })),
      apps: [appId],
    });
    const devices = new Map(found.devices.map((d) => [d.id, d]));
    const reachable = found.devices.filter((d) => d.platform !== 'ios').map((d) => d.id);
    const online = reachable.length > 0 ? await this.presence(appId, reachable) : new Set<string>();
    const app = found.apps.get(appId);
    const configured = new Set<Channel>(app?.configured ?? []);
    const quarantined = (d: DeadLetter) => Boolean(d.channel && d.token && found.quarantined.has(`${appId} ${d.channel} ${d.token}`));

    // One new message per original message, with a row per replayable delivery.
    const now = Date.now();
    const plans = new Map<string, { message: RoutedMessage; replayOf: string; originals: string[] }>();
    for (const d of fresh) {
      const request = originals.get(d.messageId);
      if (!request) {
        skip(d.id, 'message_gone');
        continue;
      }
      const pinned = request.options?.channels;
      let row: NewDeliveryRow;
      if (d.deviceId === '') {
        if (!d.channel || !d.token) {
          skip(d.id, 'no_active_token');
          continue;
        }
        row = tokenRow(d.channel, d.token, quarantined(d), configured);
      } else {
        const device = devices.get(d.deviceId);
        if (!device) {
          skip(d.id, 'device_gone');
          continue;
        }
        row = deviceRow(device, online.has(device.id), { configured, ...(app?.strategy ? { strategy: app.strategy } : {}), ...(pinned ? { pinned } : {}) });
      }
      if (row.status !== 'queued') {
        const code = row.error?.code;
        skip(d.id, quarantined(d) || code === 'TokenQuarantined' ? 'token_quarantined' : code === 'NoChannel' ? 'no_channel' : 'no_active_token');
        continue;
      }
      // A campaign run's devices each get their own copy again (variant, locale, attributes), as
      // the campaign's send rendered it: one new message per distinct copy.
      const copy = copies.get(d.id);
      const key = copy ? `${d.messageId}\u0000${JSON.stringify(copy)}` : d.messageId;
      let plan = plans.get(key);
      if (!plan) {
        const base = replayRequest(request, d);
        const copied = copy ? ({ ...base, ...copy } as PushRequest) : base;
        plan = { message: { id: randomId('msg_', 12), appId, request: copied, expiresAt: new Date(now + this.ttlMs(request)), rows: [] }, replayOf: d.messageId, originals: [] };
        plans.set(key, plan);
      }
      plan.message.rows.push(row);
      plan.originals.push(d.id);
    }
    if (plans.size === 0) return result;

    const leasedUntil = Date.now() + ROUTER_LEASE_MS;
    const { taken, queued, stored } = await this.db.transaction().execute(async (trx) => {
      const claims = [...plans.values()].flatMap((p) => p.originals.map((id) => ({ id, messageId: p.message.id })));
      const taken = await this.deadLetters.claim(trx, appId, claims);
      const stored: { message: RoutedMessage; replayOf: string; originals: string[] }[] = [];
      for (const p of plans.values()) {
        const keep = p.originals.map((id) => taken.has(id));
        if (!keep.some(Boolean)) continue;
        const rows = p.message.rows.filter((_, i) => keep[i]);
        // The request names the devices actually replayed.
        const request = p.message.request as PushRequest;
        if (!request.to.token) request.to = { devices: rows.map((r) => r.deviceId) };
        stored.push({ message: { ...p.message, rows }, replayOf: p.replayOf, originals: p.originals.filter((_, i) => keep[i]) });
      }
      if (stored.length === 0) return { taken, queued: [] as [string, string, string][], stored };
      const queued = await new DirectPushRepo(trx).insertRouted(stored.map((s) => s.message), new Date(leasedUntil));
      await sql`
        UPDATE messages m SET replay_of = v.replay_of
        FROM unnest(${textArray(stored.map((s) => s.message.id))}::text[], ${textArray(stored.map((s) => s.replayOf))}::text[]) AS v(id, replay_of)
        WHERE m.id = v.id`.execute(trx);
      return { taken, queued, stored };
    });

    // Claims a concurrent replay won: report the message that one made.
    const lost = [...plans.values()].flatMap((p) => p.originals.filter((id) => !taken.has(id)));
    const winners = await this.deadLetters.replayedAs(appId, lost);
    for (const id of lost) skip(id, 'already_replayed', winners.get(id));
    for (const s of stored) {
      result.messages.push({ id: s.message.id, replayOf: s.replayOf, deliveries: s.originals.length });
      for (const id of s.originals) result.items.push({ id, result: 'replayed', messageId: s.message.id });
      result.replayed += s.originals.length;
    }
    result.items.sort((a, b) => a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

    // Send jobs per new message and channel, the rows leased to them. Should this process die
    // first, the sweeper finds the rows stranded once the lease ends, as for any routed message.
    const byMessageChannel = new Map<string, { messageId: string; channel: Channel; ids: string[] }>();
    for (const [messageId, channel, id] of queued) {
      const key = `${messageId} ${channel}`;
      const entry = byMessageChannel.get(key) ?? { messageId, channel: channel as Channel, ids: [] };
      entry.ids.push(id);
      byMessageChannel.set(key, entry);
    }
    for (const { messageId, channel, ids } of byMessageChannel.values()) {
      const batch = Math.max(this.config.SEND_BATCH_SIZE, providerModule(channel)?.batchMax ?? 0);
      await this.queues.sendInBatches(channel, appId, messageId, ids, batch, (first) => sendJobId(messageId, first), leasedUntil);
    }
    return result;
  }

  /**
   * The copy each dead letter of a campaign run got (src/campaigns/send-hooks.ts renders the same
   * way at send time): its notification, data and overrides. None for transactional messages and
   * campaigns whose content is the same for every device.
   */
  private async campaignCopies(
    appId: string,
    originals: { id: string; campaign_id: string | null }[],
    dead: DeadLetter[],
  ): Promise<Map<string, ReturnType<CampaignContent['render']>>> {
    const out = new Map<string, ReturnType<CampaignContent['render']>>();
    const campaignOf = new Map(originals.filter((m) => m.campaign_id !== null).map((m) => [m.id, m.campaign_id!]));
    if (campaignOf.size === 0) return out;
    const specs = await this.db.selectFrom('campaigns').select(['id', 'spec']).where('app_id', '=', appId).where('id', 'in', [...new Set(campaignOf.values())]).execute();
    const contents = new Map<string, CampaignContent>();
    for (const c of specs) {
      const content = new CampaignContent(c.spec as unknown as CampaignSpec);
      if (!content.uniform) contents.set(c.id, content);
    }
    const chosen = dead.filter((d) => contents.has(campaignOf.get(d.messageId) ?? ''));
    if (chosen.length === 0) return out;
    const res = await sql<{ id: string; variant: string | null; locale: string | null; attributes: Record<string, string> | null }>`
      SELECT d.id::text AS id, d.variant, v.locale, v.attributes FROM deliveries d
      LEFT JOIN devices v ON v.app_id = d.app_id AND v.id = d.device_id
      WHERE d.app_id = ${appId} AND d.id = ANY(${idArray(chosen.map((d) => d.id))}::bigint[])`.execute(this.db);
    const facts = new Map(res.rows.map((r) => [r.id, r]));
    for (const d of chosen) {
      const f = facts.get(d.id);
      out.set(d.id, contents.get(campaignOf.get(d.messageId)!)!.render({ variant: f?.variant ?? null, locale: f?.locale ?? null, attributes: f?.attributes ?? {} }));
    }
    return out;
  }

  /** The original request's TTL, counted again from now (as `POST /v1/push` counts it). */
  private ttlMs(request: PushRequest): number {
    const ttl = request.options?.ttl;
    return ttl === undefined ? this.config.DEFAULT_TTL : ttl === 0 ? NOW_OR_NEVER_MS : ttl * 1000;
  }
}

/**
 * The new message's request: the original's content and options, sent now (no `sendAt`), to the
 * replayed devices (filled in by the caller) or the original raw token. A campaign run's request
 * carries the campaign's default rendering (the caller puts each device's own copy over it); the
 * replay is not a campaign message: the campaign's counts do not include it (see README).
 */
function replayRequest(original: PushRequest & { campaign?: unknown }, first: DeadLetter): PushRequest {
  const { campaign: _campaign, ...request } = structuredClone(original);
  const { sendAt: _sendAt, ...options } = request.options ?? { priority: 'high' };
  const to = first.deviceId === '' && first.channel && first.token ? { token: { channel: first.channel, value: first.token } } : { devices: [] };
  return { ...request, to, options } as PushRequest;
}
