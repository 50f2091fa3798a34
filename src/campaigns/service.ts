import { routeDevice } from '../routing.js';
import type { Channel } from '../../providers/types.js';
import { randomId } from '../core/secrets.js';
import type { Context } from '../context.js';
import { CampaignsRepo } from '../db/campaigns-repo.js';
import type { CampaignRow } from '../db/schema.js';
import { notFound } from '../api/errors.js';
import { DomainError } from '../core/errors.js';
import { Presence } from '../self/presence.js';
import { defaultZone, nextTick, type RunState } from '../../workers/campaign-scheduler.js';
import { rates } from './rates.js';
import type { Audience, CampaignSpec } from './schema.js';
import { wallTimeIn } from './zones.js';

/** The zone that reaches a wall-clock time first (UTC+14): a localTime run starts by then. */
const EARLIEST_ZONE = 'Pacific/Kiritimati';
const FINAL = ['completed', 'cancelled'];

/** When the campaign next does something on its own: a run starts, or a zone's local time comes. */
function nextRunAt(c: CampaignRow): string | null {
  if (FINAL.includes(c.state) || c.state === 'paused') return null;
  if (c.state === 'scheduled') return c.next_run_at?.toISOString() ?? null;
  const run = c.run as RunState | null;
  const due = (run?.zones ?? []).filter((z) => !z.done).map((z) => z.dueAt);
  if (run?.phase === 'wait' && run.decideAt) due.push(run.decideAt);
  return due.length > 0 ? new Date(Math.min(...due)).toISOString() : null;
}

/** What the campaign routes do: create, preview, control, and the progress view. */
export class CampaignService {
  readonly repo: CampaignsRepo;
  private readonly presence: Presence;

  constructor(private readonly ctx: Context) {
    this.repo = new CampaignsRepo(ctx.db);
    this.presence = new Presence(ctx.queues.connection, ctx.config.QUEUE_PREFIX);
  }

  async create(appId: string, spec: CampaignSpec): Promise<CampaignRow> {
    const now = this.ctx.clock.now();
    const s = spec.schedule;
    let first: number | null = now;
    if (s?.at) first = Date.parse(s.at);
    // The audience is read when the run starts: as late as the first zone allows.
    else if (s?.localTime) first = Math.min(Math.max(now, wallTimeIn(s.localTime, EARLIEST_ZONE) - 60_000), wallTimeIn(s.localTime, defaultZone(spec)));
    else if (s?.cron) first = nextTick(spec, now);
    if (first === null) throw new DomainError('validation_failed', 'body.schedule.until: no cron tick falls before until');
    return this.repo.create({ appId, id: randomId('cmp_', 12), name: spec.name, spec, state: 'scheduled', nextRunAt: new Date(first) });
  }

  /** How many devices the audience holds, by platform and by the channel each would use now. */
  async preview(appId: string, audience: Audience, options: Pick<CampaignSpec['options'], 'channels'> = {}) {
    const onlineIds = await this.ctx.queues.connection.hkeys(this.presence.key(appId));
    const online = onlineIds.length > 0 ? [...(await this.presence.lookup(appId, onlineIds))] : [];
    const groups = await this.repo.audienceGroups(appId, audience, this.ctx.clock.now(), online);
    const configured = new Set((await this.ctx.repos.credentials.providers(appId)) as Channel[]);
    const strategy = (await this.ctx.repos.apps.get(appId))?.settings.androidStrategy;
    const byPlatform: Record<string, number> = {};
    const byChannel: Record<string, number> = {};
    let total = 0;
    for (const g of groups) {
      const tokens = Object.fromEntries(g.channels.map((c) => [c, 'x'])) as Partial<Record<Channel, string>>;
      const route = routeDevice({ platform: g.platform, brand: g.brand, tokens, online: g.online }, { configured, ...(strategy ? { strategy } : {}), ...(options.channels ? { pinned: options.channels } : {}) });
      const channel = route.channel ?? 'none';
      total += g.n;
      byPlatform[g.platform] = (byPlatform[g.platform] ?? 0) + g.n;
      byChannel[channel] = (byChannel[channel] ?? 0) + g.n;
    }
    return { total, byPlatform, byChannel };
  }

  async get(appId: string, id: string): Promise<CampaignRow> {
    const c = await this.repo.get(appId, id);
    if (!c) throw notFound('campaign');
    return c;
  }

  async pause(appId: string, id: string): Promise<CampaignRow> {
    const moved = (await this.repo.transition(appId, id, ['scheduled', 'running'], 'paused')) ?? (await this.fromSending(appId, id, 'paused'));
    return moved ?? this.refuse(appId, id, 'paused', ['paused']);
  }

  /**
   * A campaign whose dispatch is complete while its last run still has deliveries waiting in the
   * send queues (a backlog, a throttled vendor) can still be paused or cancelled: those are sends
   * that have not left yet. Resuming it lets them go and completes it again.
   */
  private async fromSending(appId: string, id: string, to: 'paused' | 'cancelled'): Promise<CampaignRow | undefined> {
    const c = await this.repo.get(appId, id);
    const run = c?.run as RunState | null | undefined;
    if (!c || c.state !== 'completed' || !run) return undefined;
    const queued = (await this.ctx.repos.counters.forMessages(appId, [run.messageId])).get(run.messageId)?.counts.queued ?? 0;
    if (queued === 0) return undefined;
    return this.repo.transition(appId, id, ['completed'], to, to === 'cancelled' ? { next_run_at: null } : {});
  }

  async resume(appId: string, id: string): Promise<CampaignRow> {
    const c = await this.get(appId, id);
    // The pace starts over from the resume, so a long pause is not made up in one burst.
    const moved = await this.repo.transition(appId, id, ['paused'], c.run ? 'running' : 'scheduled', {
      pace_at: new Date(),
      pace_base: c.dispatched,
      ...(c.run ? { next_run_at: new Date(this.ctx.clock.now()) } : {}),
    });
    return moved ?? this.refuse(appId, id, 'resumed', ['scheduled', 'running']);
  }

  /** Ends the campaign: nothing more is dispatched, and what is queued ends `cancelled`. */
  async cancel(appId: string, id: string): Promise<CampaignRow> {
    const moved = (await this.repo.transition(appId, id, ['draft', 'scheduled', 'running', 'paused'], 'cancelled', { next_run_at: null })) ?? (await this.fromSending(appId, id, 'cancelled'));
    if (!moved) return this.refuse(appId, id, 'cancelled', ['cancelled']);
    const run = moved.run as RunState | null;
    if (run) {
      await this.ctx.repos.messages.transition(run.messageId, ['dispatching', 'routed'], 'cancelled', { cancelled: true });
      await this.ctx.repos.deliveries.cancelPending(run.messageId);
    }
    return moved;
  }

  /** A control that does not apply: a no-op when already there, else a 409 naming the state. */
  private async refuse(appId: string, id: string, verb: string, already: string[]): Promise<CampaignRow> {
    const c = await this.get(appId, id);
    if (already.includes(c.state)) return c;
    throw new DomainError('invalid_state', `a ${c.state} campaign cannot be ${verb}`);
  }

  /** The progress view (README: Campaigns): counts from the per-message counters, never a scan of deliveries. */
  async view(c: CampaignRow) {
    const spec = c.spec as unknown as CampaignSpec;
    const counters = await this.ctx.repos.counters.forCampaign(c.app_id, c.id);
    const runRows = await this.repo.runs(c.app_id, c.id);
    const perRun = await this.ctx.repos.counters.forMessages(c.app_id, runRows.map((r) => r.id));
    const variantDispatched = c.variant_dispatched ?? {};
    return {
      id: c.id,
      name: c.name,
      state: c.state,
      audienceSize: Number(c.audience_size),
      dispatched: Number(c.dispatched),
      skipped: { capped: c.skipped.capped ?? 0, missed: c.skipped.missed ?? 0, noChannel: c.skipped.noChannel ?? 0 },
      counts: counters.counts,
      rates: rates(counters.counts),
      variants: (spec.variants ?? []).map((v) => {
        const counts = counters.byVariant[v.name] ?? { queued: 0, sent: 0, delivered: 0, opened: 0, failed: 0, invalid: 0, expired: 0, cancelled: 0 };
        return { name: v.name, weight: v.weight, dispatched: variantDispatched[v.name] ?? 0, counts, rates: rates(counts) };
      }),
      ...(spec.abTest ? { winner: c.winner } : {}),
      runs: runRows.map((r) => ({ messageId: r.id, startedAt: r.created_at.toISOString(), counts: perRun.get(r.id)!.counts })),
      nextRunAt: nextRunAt(c),
      schedule: spec.schedule ?? null,
      createdAt: c.created_at.toISOString(),
      updatedAt: c.updated_at.toISOString(),
    };
  }
}
