import { CronExpressionParser } from 'cron-parser';
import type { Kysely } from 'kysely';
import { providerModule } from '../providers/registry.js';
import type { Channel } from '../providers/types.js';
import { CampaignContent } from '../src/campaigns/content.js';
import { winner } from '../src/campaigns/rates.js';
import { durationMs, type CampaignSpec } from '../src/campaigns/schema.js';
import { inTestSlice, pickVariant } from '../src/campaigns/variants.js';
import { localDay, quietUntil, wallTimeIn, zoneOr } from '../src/campaigns/zones.js';
import { NOW_OR_NEVER_MS } from '../src/core/push-request.js';
import { routeDevice, type Platform } from '../src/routing.js';
import { randomId } from '../src/core/secrets.js';
import type { Context } from '../src/context.js';
import { CampaignsRepo } from '../src/db/campaigns-repo.js';
import { CountersRepo } from '../src/db/counters-repo.js';
import { DeliveriesRepo, type NewDeliveryRow } from '../src/db/deliveries-repo.js';
import type { CampaignRow, DB } from '../src/db/schema.js';
import { ROUTER_LEASE_MS, sendJobId } from '../src/queues.js';
import type { PresenceLookup } from './route.js';

/** One zone of a run: its devices are due at `dueAt`, walked in id order after `cursor`. */
export interface RunZone {
  tz: string | null;
  n: number;
  dueAt: number;
  cursor: string | null;
  started: boolean;
  done: boolean;
}

/** The persisted dispatch cursor of a campaign's current run (campaigns.run). */
export interface RunState {
  messageId: string;
  startedAt: number;
  /** `all`: one pass; A/B with a test slice: `test`, then `wait` until decideAt, then `rest`. */
  phase: 'all' | 'test' | 'wait' | 'rest';
  decideAt?: number;
  zones: RunZone[];
  /**
   * The send jobs of the last page dispatched, written in the page's transaction (an outbox):
   * a scheduler killed after the commit and before it queued them leaves them here, and the next
   * one to drive the campaign queues them again under the same job ids (BullMQ adds a job id once).
   */
  outbox?: Outbox;
}

/** Delivery ids as runs of consecutive ids: [first id, count] (a page's ids mostly are one run). */
type IdRuns = [string, number][];
export interface Outbox {
  messageId: string;
  leasedUntil: number;
  leased: [channel: string, ids: IdRuns][];
  pending: [channel: string, ids: IdRuns][];
}

/** `at`: the scheduling-clock instant to come back at, when the wait is for one. */
type Step = { kind: 'wait'; ms: number; at?: number } | { kind: 'stop' } | { kind: 'lost' };
interface AppRouting {
  configured: ReadonlySet<Channel>;
  strategy?: 'self-first' | 'vendor-first' | 'vendor-only';
  at: number;
}
export type Enqueue = { messageId: string; leased: Map<string, string[]>; pending: Map<string, string[]>; leasedUntil: number };

/** Longest wait a driver sleeps through holding its claim; longer ones release the campaign. */
const HOLD_MS = 2000;
const DEFAULT_LATE_WINDOW = 3_600_000;

/**
 * The scheduler role's campaign driver (README: Campaigns). It claims due campaigns (a row claim with a
 * lease: several scheduler processes never drive one campaign at once), and dispatches each run
 * zone by zone, a keyset page at a time, inside one transaction per page that inserts the
 * deliveries, counts the per-day cap and advances the persisted cursor: a scheduler killed at any
 * point leaves either the whole page or none of it, and the next claim resumes at the cursor.
 */
export class CampaignScheduler {
  readonly id = randomId('sch_', 6);
  private readonly repo: CampaignsRepo;
  private readonly active = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopping = false;
  private lastPurge = 0;
  private readonly routings = new Map<string, AppRouting>();
  /** Campaign → the outbox this instance queued last: only another's (a dead one's) is queued again. */
  private readonly queued = new Map<string, string>();

  constructor(
    private readonly ctx: Context,
    private readonly presence: PresenceLookup,
    private readonly opts: { tickMs: number; leaseMs: number; maxActive?: number },
  ) {
    this.repo = new CampaignsRepo(ctx.db);
  }

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.opts.tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await Promise.allSettled([...this.active.values()]);
  }

  /** Claims what is due and drives it; returns once the claims are taken. */
  async poll(): Promise<void> {
    if (this.polling || this.stopping) return;
    this.polling = true;
    try {
      const room = (this.opts.maxActive ?? 8) - this.active.size;
      if (room <= 0) return;
      const due = await this.repo.claimDue(this.id, this.ctx.clock.now(), this.opts.leaseMs, room, [...this.active.keys()]);
      for (const c of due) {
        const key = `${c.app_id}\u0000${c.id}`;
        if (this.active.has(key)) continue;
        this.active.set(key, this.drive(c.app_id, c.id).finally(() => this.active.delete(key)));
      }
      if (Date.now() - this.lastPurge > 3_600_000) {
        this.lastPurge = Date.now();
        await this.repo.purgeCaps();
      }
    } catch (err) {
      this.ctx.logger.error({ err }, 'campaign poll failed');
    } finally {
      this.polling = false;
    }
  }

  private async drive(appId: string, id: string): Promise<void> {
    for (;;) {
      if (this.stopping) return this.repo.release(appId, id, this.id, null);
      let step: Step;
      try {
        step = await this.step(appId, id);
      } catch (err) {
        this.ctx.logger.error({ err, campaign: id }, 'campaign step failed; retrying in 1 s');
        return this.repo.release(appId, id, this.id, this.ctx.clock.now() + 1000).catch(() => undefined);
      }
      if (step.kind === 'lost') return;
      if (step.kind === 'stop') return this.repo.release(appId, id, this.id, null);
      if (step.ms > HOLD_MS) return this.repo.release(appId, id, this.id, step.at ?? this.ctx.clock.now() + step.ms);
      if (step.ms > 0) await new Promise((r) => setTimeout(r, step.ms));
    }
  }

  /** One step of one campaign: start a run, decide a winner, or dispatch one page. */
  async step(appId: string, id: string): Promise<Step> {
    let enqueue: Enqueue | undefined;
    // Read before the transaction: every query inside it goes through `tx` (the embedded PGlite
    // has one connection, which the transaction holds).
    const routing = await this.routing(appId);
    const step = await this.ctx.db.transaction().execute(async (tx): Promise<Step> => {
      const c = await this.repo.lockForStep(tx, appId, id, this.id, this.opts.leaseMs);
      if (!c) return { kind: 'lost' };
      const outbox = (c.run as unknown as RunState | null)?.outbox;
      if (outbox && this.queued.get(id) !== outboxKey(outbox)) {
        // Left by a scheduler that may have died before queueing it: queued now, not after the
        // rows' five-minute router lease (the same job ids make this a no-op if it had).
        await this.enqueue(appId, fromOutbox(outbox));
        this.queued.set(id, outboxKey(outbox));
      }
      if (c.state !== 'running' && c.state !== 'scheduled') return { kind: 'stop' };
      const spec = c.spec as unknown as CampaignSpec;
      const now = this.ctx.clock.now();
      if (c.state === 'scheduled') {
        const at = c.next_run_at?.getTime() ?? now;
        if (at > now) return { kind: 'wait', ms: at - now, at };
        await this.startRun(tx, c, spec, now);
        return { kind: 'wait', ms: 0 };
      }
      const run = c.run as unknown as RunState;
      if (run.phase === 'wait') {
        if (now < run.decideAt!) return { kind: 'wait', ms: run.decideAt! - now, at: run.decideAt! };
        const counts = await new CountersRepo(tx).forCampaign(appId, id);
        const best = winner(spec.variants!.map((v) => v.name), counts.byVariant, spec.abTest!.metric);
        for (const z of run.zones) Object.assign(z, { cursor: null, started: false, done: false });
        await this.save(tx, c, { run: { ...run, phase: 'rest' }, winner: best });
        return { kind: 'wait', ms: 0 };
      }
      const zone = run.zones.filter((z) => !z.done).sort((a, b) => a.dueAt - b.dueAt)[0];
      if (!zone) return this.finishPhase(tx, c, spec, run, now);
      if (zone.dueAt > now) return { kind: 'wait', ms: zone.dueAt - now, at: zone.dueAt };
      const tz = zoneOr(zone.tz, defaultZone(spec));
      const late = now - zone.dueAt;
      if (spec.schedule?.localTime && !zone.started && run.phase !== 'rest' && late > durationMs(spec.schedule.lateWindow, DEFAULT_LATE_WINDOW)) {
        zone.done = true;
        await this.save(tx, c, { run, skipped: bump(c.skipped, { missed: zone.n }) });
        return { kind: 'wait', ms: 0 };
      }
      const quietEnd = spec.quietHours ? quietUntil(now, tz, spec.quietHours) : null;
      if (quietEnd !== null) {
        zone.dueAt = quietEnd;
        await this.save(tx, c, { run });
        return { kind: 'wait', ms: 0 };
      }
      let limit = this.ctx.config.ROUTE_PAGE_SIZE;
      if (spec.throttle) {
        // Paced from the moment the run (or its resume) started: what the rate allowed since
        // then, minus what went out. Small steps, so the sends spread over the minute.
        const perMs = spec.throttle.perMinute / 60_000;
        const sent = Number(c.dispatched) - Number(c.pace_base);
        const elapsed = Date.now() - (c.pace_at?.getTime() ?? Date.now());
        const allowed = Math.floor(elapsed * perMs) + 1 - sent;
        if (allowed <= 0) return { kind: 'wait', ms: Math.max(5, Math.ceil((sent + 1) / perMs - elapsed)) };
        limit = Math.min(limit, allowed);
      }
      const page = await this.repo.page(tx, appId, spec.audience, run.startedAt, zone.tz, zone.cursor, limit);
      zone.started = true;
      if (page.length < limit) zone.done = true;
      if (page.length > 0) zone.cursor = page[page.length - 1]!.id;
      const result = await this.dispatchPage(tx, routing, c, spec, run, tz, page, now);
      enqueue = result.enqueue;
      run.outbox = toOutbox(result.enqueue);
      await this.save(tx, c, {
        run,
        dispatched: Number(c.dispatched) + result.dispatched,
        skipped: bump(c.skipped, result.skipped),
        variant_dispatched: bump(c.variant_dispatched, result.byVariant),
      });
      return { kind: 'wait', ms: 0 };
    });
    if (enqueue) {
      await this.enqueue(appId, enqueue);
      this.queued.set(id, outboxKey(toOutbox(enqueue)));
    }
    return step;
  }

  /** The app's credentials and Android policy, re-read at most every few seconds. */
  private async routing(appId: string): Promise<AppRouting> {
    const hit = this.routings.get(appId);
    if (hit && Date.now() - hit.at < 5000) return hit;
    const configured = new Set((await this.ctx.repos.credentials.providers(appId)) as Channel[]);
    const strategy = (await this.ctx.repos.apps.get(appId))?.settings.androidStrategy;
    const fresh: AppRouting = { configured, ...(strategy ? { strategy } : {}), at: Date.now() };
    this.routings.set(appId, fresh);
    return fresh;
  }

  private async startRun(tx: Kysely<DB>, c: CampaignRow, spec: CampaignSpec, now: number): Promise<void> {
    const zones = await this.repo.zones(tx, c.app_id, spec.audience, now);
    const fallback = defaultZone(spec);
    const dueOf = (tz: string | null) => (spec.schedule?.localTime ? wallTimeIn(spec.schedule.localTime, zoneOr(tz, fallback)) : now);
    const runZones: RunZone[] = zones.map((z) => ({ tz: z.tz, n: z.n, dueAt: dueOf(z.tz), cursor: null, started: false, done: false }));
    const total = zones.reduce((s, z) => s + z.n, 0);
    const messageId = randomId('msg_', 12);
    // The TTL runs from each device's due time: the last zone of a localTime run is a day later.
    const lastDue = Math.max(now, ...runZones.map((z) => z.dueAt));
    const ttl = spec.options.ttl;
    const ttlMs = ttl === undefined ? this.ctx.config.DEFAULT_TTL : ttl === 0 ? NOW_OR_NEVER_MS : ttl * 1000;
    const first = spec.variants?.[0]?.name ?? null;
    // What the message carries as stored: the default text with every fallback filled in. The
    // send path renders each device's own (src/campaigns/send-hooks.ts).
    const content = new CampaignContent(spec).render({ variant: first, locale: null, attributes: {} });
    const request = { to: { all: true }, ...content, options: spec.options, campaign: { id: c.id } };
    await tx
      .insertInto('messages')
      .values({
        id: messageId,
        app_id: c.app_id,
        request: JSON.stringify(request),
        state: 'dispatching',
        recipients: total,
        send_at: null,
        expires_at: new Date(Date.now() + (lastDue - now) + ttlMs),
        campaign_id: c.id,
      })
      .execute();
    const run: RunState = { messageId, startedAt: now, phase: spec.abTest ? 'test' : 'all', zones: runZones };
    await this.save(tx, c, { state: 'running', run, runs: c.runs + 1, audience_size: total, pace_at: new Date(), pace_base: c.dispatched, next_run_at: new Date(now) });
  }

  private async finishPhase(tx: Kysely<DB>, c: CampaignRow, spec: CampaignSpec, run: RunState, now: number): Promise<Step> {
    if (run.phase === 'test') {
      const decideAt = now + durationMs(spec.abTest!.decideAfter, 0);
      await this.save(tx, c, { run: { ...run, phase: 'wait', decideAt } });
      return { kind: 'wait', ms: decideAt - now, at: decideAt };
    }
    await tx.updateTable('messages').set({ state: 'routed', routed_at: new Date() }).where('id', '=', run.messageId).where('state', '=', 'dispatching').execute();
    const next = spec.schedule?.cron ? nextTick(spec, now) : null;
    if (next !== null) {
      await this.save(tx, c, { state: 'scheduled', run: null, next_run_at: new Date(next) });
      return { kind: 'wait', ms: next - now, at: next };
    }
    await this.save(tx, c, { state: 'completed', next_run_at: null });
    return { kind: 'stop' };
  }

  /** Routes one page and inserts its deliveries, skipping capped and channel-less devices. */
  private async dispatchPage(tx: Kysely<DB>, routing: AppRouting, c: CampaignRow, spec: CampaignSpec, run: RunState, tz: string, page: { id: string; platform: Platform; brand: string | null; tokens: Partial<Record<Channel, string>> }[], now: number) {
    const appId = c.app_id;
    const skipped = { capped: 0, noChannel: 0 };
    const byVariant: Record<string, number> = {};
    let devices = page;
    if (run.phase === 'test') devices = devices.filter((d) => inTestSlice(spec.abTest!.testPercent, c.id, d.id));
    if (run.phase === 'rest') devices = devices.filter((d) => !inTestSlice(spec.abTest!.testPercent, c.id, d.id));
    const day = localDay(now, tz);
    if (spec.frequencyCap && devices.length > 0) {
      const capped = await this.repo.capped(tx, appId, day, devices.map((d) => d.id), spec.frequencyCap.perDay);
      skipped.capped = capped.size;
      devices = devices.filter((d) => !capped.has(d.id));
    }
    const { configured, strategy } = routing;
    const pinned = spec.options.channels;
    const reachable = devices.filter((d) => d.platform !== 'ios').map((d) => d.id);
    const online = reachable.length > 0 ? await this.presence(appId, reachable) : new Set<string>();
    const rows: NewDeliveryRow[] = [];
    for (const d of devices) {
      const route = routeDevice({ platform: d.platform, brand: d.brand, tokens: d.tokens, online: online.has(d.id) }, { configured, ...(strategy ? { strategy } : {}), ...(pinned ? { pinned } : {}) });
      if (route.channel === null) {
        skipped.noChannel++;
        continue;
      }
      const variant = !spec.variants ? null : run.phase === 'rest' ? c.winner : pickVariant(spec.variants, c.id, d.id);
      if (variant) byVariant[variant] = (byVariant[variant] ?? 0) + 1;
      rows.push({ deviceId: d.id, platform: d.platform, channel: route.channel, token: route.token, status: 'queued', error: null, variant });
    }
    const leasedUntil = Date.now() + ROUTER_LEASE_MS;
    const { leased, pending, resumed } = await new DeliveriesRepo(tx).insertPage(appId, run.messageId, rows, new Date(leasedUntil));
    // The page and its outbox commit together, so a page is never inserted twice; should it be,
    // its earlier rows are claimed as usual (they wait out their lease).
    for (const g of resumed) pending.set(g.channel, [...(pending.get(g.channel) ?? []), ...g.ids]);
    await this.repo.countSends(tx, appId, day, rows.map((r) => r.deviceId));
    return { dispatched: rows.length, skipped, byVariant, enqueue: { messageId: run.messageId, leased, pending, leasedUntil } };
  }

  /** Hands a committed page to the send queues, as the router does (protected: tests cut in here). */
  protected async enqueue(appId: string, e: Enqueue): Promise<void> {
    const batch = (channel: string) => Math.max(this.ctx.config.SEND_BATCH_SIZE, providerModule(channel)?.batchMax ?? 0);
    const jobId = (first: string) => sendJobId(e.messageId, first);
    for (const [channel, ids] of e.leased) await this.ctx.queues.sendInBatches(channel as Channel, appId, e.messageId, ids, batch(channel), jobId, e.leasedUntil);
    for (const [channel, ids] of e.pending) await this.ctx.queues.sendInBatches(channel as Channel, appId, e.messageId, ids, batch(channel), jobId);
  }

  private async save(tx: Kysely<DB>, c: CampaignRow, set: Record<string, unknown>): Promise<void> {
    const values: Record<string, unknown> = { updated_at: new Date() };
    for (const [k, v] of Object.entries(set)) values[k] = k === 'run' || k === 'skipped' || k === 'variant_dispatched' ? (v === null ? null : JSON.stringify(v)) : v;
    await tx.updateTable('campaigns').set(values).where('app_id', '=', c.app_id).where('id', '=', c.id).execute();
  }
}

export function defaultZone(spec: CampaignSpec): string {
  return spec.schedule?.timezone ?? 'UTC';
}

/** The next cron tick after `after`, or null past `until`. */
export function nextTick(spec: CampaignSpec, after: number): number | null {
  const s = spec.schedule!;
  // cron-parser carries the milliseconds of currentDate into the tick: start from a whole second.
  const next = CronExpressionParser.parse(s.cron!, { tz: s.timezone ?? 'UTC', currentDate: new Date(Math.floor(after / 1000) * 1000) }).next().getTime();
  return s.until && next > Date.parse(s.until) ? null : next;
}

function toRuns(ids: readonly string[]): IdRuns {
  const runs: IdRuns = [];
  let prev: bigint | null = null;
  for (const id of ids) {
    const n = BigInt(id);
    const last = runs[runs.length - 1];
    if (last && prev !== null && n === prev + 1n) last[1]++;
    else runs.push([id, 1]);
    prev = n;
  }
  return runs;
}

function fromRuns(runs: IdRuns): string[] {
  const ids: string[] = [];
  for (const [first, count] of runs) for (let i = 0n; i < BigInt(count); i++) ids.push(String(BigInt(first) + i));
  return ids;
}

export function toOutbox(e: Enqueue): Outbox {
  const enc = (m: Map<string, string[]>) => [...m].map(([ch, ids]): [string, IdRuns] => [ch, toRuns(ids)]);
  return { messageId: e.messageId, leasedUntil: e.leasedUntil, leased: enc(e.leased), pending: enc(e.pending) };
}

export function fromOutbox(o: Outbox): Enqueue {
  const dec = (l: [string, IdRuns][]) => new Map(l.map(([ch, runs]) => [ch, fromRuns(runs)]));
  return { messageId: o.messageId, leasedUntil: o.leasedUntil, leased: dec(o.leased), pending: dec(o.pending) };
}

function outboxKey(o: Outbox): string {
  return JSON.stringify([o.messageId, o.leased[0]?.[1][0]?.[0] ?? o.pending[0]?.[1][0]?.[0] ?? null, o.leasedUntil]);
}

function bump(base: Record<string, number>, add: Record<string, number>): Record<string, number> {
  const out = { ...base };
  for (const [k, v] of Object.entries(add)) if (v) out[k] = (out[k] ?? 0) + v;
  return out;
}

