import { DelayedError, Worker, type Job } from 'bullmq';
import { failed, retry, type Channel, type Outcome, type Provider } from '../providers/types.js';
import { buildPlan, type MessagePlan } from '../src/core/content.js';
import type { PushRequest } from '../src/core/push-request.js';
import { decide } from '../src/core/retry.js';
import type { Context } from '../src/context.js';
import type { ClaimedDelivery, OutcomeRow } from '../src/db/deliveries-repo.js';
import { deliveryOutcomes, providerLatency } from '../src/metrics.js';
import { SEND_JOB_OPTIONS, sendJobId, txQueueName, type SendJob, type SendPart } from '../src/queues.js';
import { isMarketing, type MarketingCaps } from '../src/marketing-caps.js';
import type { RateLimiter } from '../src/rate-limiter.js';
import type { QuotaDays } from '../src/quota-days.js';
import type { CampaignSendHooks } from '../src/campaigns/send-hooks.js';
import { RELAY_CODES } from '../src/core/outcome-codes.js';
import { bullConnection, releaseWith } from '../src/redis.js';
import { BulkGate } from '../src/tx-pressure.js';

export interface ProviderSource {
  get(appId: string, channel: Channel): Promise<Provider | null>;
  /** The credential's published send rate (tokens per second), if the vendor has one. */
  qps?(appId: string, channel: Channel): Promise<number | undefined>;
}

/** Recently used message plans; every batch of one message shares one. */
class PlanCache {
  private readonly map = new Map<string, MessagePlan | null>();
  constructor(private readonly ctx: Context) {}

  async get(messageId: string): Promise<MessagePlan | null> {
    if (this.map.has(messageId)) return this.map.get(messageId)!;
    const row = await this.ctx.repos.messages.byId(messageId);
    const plan = row ? buildPlan(row.id, row.request as unknown as PushRequest, row.expires_at, this.ctx.config) : null;
    if (this.map.size >= 1000) this.map.delete(this.map.keys().next().value!);
    this.map.set(messageId, plan);
    return plan;
  }
}

/** What a send worker may use besides its channel's providers. */
export interface SendWorkerOptions {
  /** `tx`: the channel's transactional lane (single pushes routed at accept), apart from bulk sends. */
  lane?: 'bulk' | 'tx';
  limiter?: RateLimiter;
  caps?: MarketingCaps;
  /** Campaign messages: paused ones wait, and each device gets its own rendered content. */
  campaigns?: CampaignSendHooks;
  /** Vendors whose daily total the app has used up are skipped until their reset. */
  quotaDays?: QuotaDays;
  /** The bulk lane's admission under transactional pressure (default: one of its own, src/tx-pressure.ts). */
  gate?: BulkGate;
}

/**
 * One worker per provider queue. A job is one batch of one message: take the rows still queued
 * (read them if the router leased them to this job at insert, else claim them), hand them to the
 * provider, decide each outcome, schedule the retries, write everything back in one statement. A
 * row is leased while in flight, so a job re-run after a crash skips what a live worker holds and
 * picks up what a dead one left.
 */
export function createSendWorker(ctx: Context, channel: Channel, providers: ProviderSource, opts: SendWorkerOptions = {}): Worker<SendJob> {
  const { limiter, caps, campaigns, quotaDays } = opts;
  const { repos, config, logger } = ctx;
  const plans = new PlanCache(ctx);
  const leaseMs = config.WORKER_LOCK_DURATION * 2;
  const tx = opts.lane === 'tx';
  const pressure = ctx.queues.txPressure;
  // The bulk lane gives way while the transactional lane suffers (docs/scaling.md, Isolation);
  // TX_PRESSURE_AFTER=0 turns the gate off.
  const after = config.TX_PRESSURE_AFTER;
  const gate = tx || after <= 0 ? undefined : (opts.gate ?? new BulkGate(pressure));

  async function writeWithRetry(rows: OutcomeRow[], countAttempt: boolean) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await repos.deliveries.writeOutcomes(rows, { countAttempt });
      } catch (err) {
        // A deadlock or a dropped connection must not strand leased rows until their lease ends.
        if (attempt >= 3) throw err;
        logger.warn({ err, attempt }, 'writing outcomes failed; retrying');
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }

  const expiredRow = (id: string): OutcomeRow => ({
    id,
    status: 'expired',
    error: { code: RELAY_CODES.expired, message: 'the message TTL ended before it could be sent' },
    providerId: null,
    nextAttemptAt: null,
  });

  /**
   * One attempt for every claimed row: the app's quota day, marketing caps, then the provider.
   * Never throws. A provider that says the app's daily total is used up (`quotaDay`) makes the
   * app skip this channel until the reset, for every worker.
   */
  async function attempt(appId: string, plan: MessagePlan, claimed: ClaimedDelivery[]): Promise<Outcome[]> {
    // Redis unreachable: the vendor is asked, and says so again if the day is still over.
    const skipping = quotaDays && channel !== 'self' ? await quotaDays.skippedUntil(appId, channel).catch(() => null) : null;
    if (skipping !== null) {
      const message = `the app's daily ${channel} total is used up until ${new Date(skipping).toISOString()}; not sent`;
      return claimed.map(() => failed({ code: RELAY_CODES.quota, message, evidence: { resetAt: skipping } }));
    }
    const outcomes = await attemptProvider(appId, plan, claimed);
    const resetAt = Math.max(0, ...outcomes.map((o) => (o.kind === 'failed' && o.quotaResetAt) || 0));
    if (resetAt > 0 && quotaDays) {
      await quotaDays.skip(appId, channel, resetAt).catch((err: unknown) => logger.warn({ err, channel }, 'recording a quota day failed'));
    }
    return outcomes;
  }

  async function attemptProvider(appId: string, plan: MessagePlan, claimed: ClaimedDelivery[]): Promise<Outcome[]> {
    const provider = await providers.get(appId, channel);
    if (!provider) return claimed.map(() => failed({ code: RELAY_CODES.noChannel, message: `the app has no ${channel} credentials` }));
    const targets = claimed.map((c) => ({ deliveryId: c.id, token: c.token ?? c.deviceId, ...(c.seq ? { seq: Number(c.seq) } : {}) }));
    const started = secondsNow();
    try {
      if (!caps || !isMarketing(plan.content)) return await sendSafely(provider, plan, targets);
      const admitted = await caps.admit(appId, channel, targets.map((t) => t.token));
      const sendable = targets.filter((_, i) => admitted[i]);
      const results = sendable.length ? await sendSafely(provider, plan, sendable) : [];
      let k = 0;
      return admitted.map((ok) =>
        ok ? results[k++]! : failed({ code: RELAY_CODES.quota, message: `the ${channel} daily cap for marketing messages on this device is reached` }),
      );
    } finally {
      providerLatency.observe({ channel }, secondsNow() - started);
    }
  }

  /** A campaign's personalised content goes out in groups that share one rendering. */
  async function attemptAll(appId: string, messageId: string, plan: MessagePlan, claimed: ClaimedDelivery[]): Promise<Outcome[]> {
    const groups = campaigns ? await campaigns.personalize(messageId, plan, claimed) : null;
    if (!groups) return attempt(appId, plan, claimed);
    const out: Outcome[] = new Array<Outcome>(claimed.length);
    await Promise.all(
      groups.map(async (g) => {
        const res = await attempt(appId, { ...plan, content: g.content }, g.members.map((i) => claimed[i]!));
        g.members.forEach((i, k) => (out[i] = res[k]!));
      }),
    );
    return out;
  }

  /** Turns outcomes into row updates, and collects the rows to try again. */
  function settle(plan: MessagePlan, claimed: ClaimedDelivery[], outcomes: Outcome[]) {
    const rows: OutcomeRow[] = [];
    const retries: { id: string; at: number; attempts: number }[] = [];
    const at = Date.now();
    const kinds = new Map<Outcome['kind'], number>();
    claimed.forEach((c, i) => {
      const outcome = outcomes[i] ?? retry({ code: RELAY_CODES.noOutcome, message: 'the provider returned no outcome for this token' });
      kinds.set(outcome.kind, (kinds.get(outcome.kind) ?? 0) + 1);
      const d = decide(outcome, c.attempts, plan.policy, at, plan.content.expiresAt);
      if (d.status === 'sent') rows.push({ id: c.id, status: 'sent', error: null, providerId: d.providerId, nextAttemptAt: null });
      else if (d.status === 'queued') {
        rows.push({ id: c.id, status: 'queued', error: d.error, providerId: null, nextAttemptAt: new Date(d.retryAt) });
        retries.push({ id: c.id, at: d.retryAt, attempts: c.attempts });
      } else rows.push({ id: c.id, status: d.status, error: d.error, providerId: null, nextAttemptAt: null });
    });
    for (const [outcome, n] of kinds) deliveryOutcomes.inc({ channel, outcome }, n);
    return { rows, retries };
  }

  /** A message's plan: from the job when the request travels in it, else read (and cached). */
  function planOf(part: SendPart): Promise<MessagePlan | null> | MessagePlan {
    if (part.request === undefined || part.expiresAt === undefined) return plans.get(part.messageId);
    return buildPlan(part.messageId, part.request as PushRequest, new Date(part.expiresAt), config);
  }

  /** One message's claimed rows: expired, or attempted and settled. */
  async function sendPart(appId: string, messageId: string, plan: MessagePlan, claimed: ClaimedDelivery[]) {
    if (Date.now() >= plan.content.expiresAt) return { rows: claimed.map((c) => expiredRow(c.id)), retries: [] };
    return settle(plan, claimed, await attemptAll(appId, messageId, plan, claimed));
  }

  /**
   * Where the app's `quotaFallback` sends deliveries a quota refused: the channel, and per
   * delivery the token there (null for the self channel). Devices without that channel (a raw
   * token, an FCM token missing or quarantined, no FCM credentials) are not in the map.
   */
  async function quotaTargets(appId: string, rows: OutcomeRow[], claimed: ClaimedDelivery[]): Promise<{ channel: Channel; tokens: Map<string, string | null> } | null> {
    const setting = (await repos.apps.get(appId))?.settings.quotaFallback;
    if ((setting !== 'self' && setting !== 'fcm') || setting === channel) return null;
    const deviceOf = new Map(claimed.map((c) => [c.id, c.deviceId]));
    // Vendor channels carry Android devices, which the self channel can reach; a raw token has no device.
    const withDevice = rows.filter((r) => (deviceOf.get(r.id) ?? '') !== '');
    const tokens = new Map<string, string | null>();
    if (setting === 'self') {
      for (const r of withDevice) tokens.set(r.id, null);
    } else if ((await repos.credentials.providers(appId)).includes('fcm')) {
      const fcm = await repos.devices.activeTokens(appId, [...new Set(withDevice.map((r) => deviceOf.get(r.id)!))], 'fcm');
      for (const r of withDevice) {
        const t = fcm.get(deviceOf.get(r.id)!);
        if (t) tokens.set(r.id, t);
      }
    }
    return { channel: setting, tokens };
  }

  /**
   * A transactional job that waited in its queue longer than TX_PRESSURE_AFTER, or took longer end
   * to end, signals pressure (the lane is suffering, not merely busy: a steady trickle of single
   * pushes served in time does not slow anyone's fan-out); a bulk job waits for a turn.
   */
  async function handle(job: Job<SendJob>, token?: string) {
    const queuedAt = job.timestamp + (job.opts.delay ?? 0);
    const late = () => after > 0 && Date.now() - queuedAt > after;
    if (tx && late()) pressure.signal();
    const release = gate ? await gate.enter() : undefined;
    try {
      await handleJob(job, token);
    } finally {
      release?.();
      if (tx && late()) pressure.signal();
    }
  }

  async function handleJob(job: Job<SendJob>, token?: string) {
    const { appId, ids } = job.data;
    // A bulk job is one message's batch; a transactional one gathers several messages of the app.
    const parts = job.data.parts ?? [{ messageId: job.data.messageId, ids }];
    // A paused campaign: its queued deliveries wait (checked again every half second). Campaign
    // messages travel in bulk jobs, one message each.
    if (campaigns && token && !job.data.parts && (await campaigns.paused(job.data.messageId))) {
      await job.moveToDelayed(Date.now() + 500, token);
      throw new DelayedError();
    }
    const planned = await Promise.all(parts.map(async (part) => ({ part, plan: await planOf(part) })));
    if (planned.every((p) => !p.plan)) return;
    // Over the vendor's rate for this credential: wait for the next window instead of burning
    // requests the vendor will refuse.
    const qps = limiter && providers.qps ? await providers.qps(appId, channel) : undefined;
    if (qps && token) {
      const waitMs = await limiter!.take(`${appId}:${channel}`, ids.length, qps);
      if (waitMs > 0) {
        await job.moveToDelayed(Date.now() + waitMs, token);
        throw new DelayedError();
      }
    }
    const t0 = performance.now();
    // The router leased these rows to this job: its first run inside the lease (with a margin for
    // clock skew against the database) has nothing to race and only reads them. A re-run takes
    // them back at once rather than waiting out its own lease.
    const take = howToTake(job, Date.now());
    const readOnly = take.read;
    const claimed = readOnly ? await repos.deliveries.leasedToMe(ids) : await repos.deliveries.claim(ids, leaseMs, take);
    const t1 = performance.now();

    if (claimed.length > 0) {
      // Under transactional pressure, one bulk batch at a time goes to the provider and writes.
      await gate?.step();
      const partOf = new Map<string, number>();
      parts.forEach((p, k) => p.ids.forEach((id) => partOf.set(id, k)));
      const groups = planned.map(() => [] as ClaimedDelivery[]);
      for (const c of claimed) groups[partOf.get(c.id)!]!.push(c);
      // Each message goes to the provider at once; their outcomes are written together.
      const done = await Promise.all(
        planned.map(async ({ part, plan }, k) => ({ messageId: part.messageId, ...(plan && groups[k]!.length > 0 ? await sendPart(appId, part.messageId, plan, groups[k]!) : { rows: [], retries: [] }) })),
      );
      const t2 = performance.now();
      // The retry job is queued before the outcomes are written: if this process dies in between,
      // the retry still runs, and finds the rows claimable once their lease ends.
      for (const { messageId, retries } of done) {
        if (retries.length === 0) continue;
        const retryIds = retries.map((r) => r.id);
        const at = Math.max(...retries.map((r) => r.at));
        // Named by its first row and that row's own attempt count, which every attempt raises: an
        // id BullMQ still keeps (a completed job) would make this add a silent no-op. The batch's
        // highest count could repeat, rows of one batch having had different numbers of attempts.
        await ctx.queues.send(channel).add('send', { appId, messageId, ids: retryIds }, { ...SEND_JOB_OPTIONS, jobId: sendJobId(messageId, retryIds[0]!, retries[0]!.attempts), delay: Math.max(0, at - Date.now()), priority: ctx.queues.priorityFor(appId, channel, retryIds.length) });
      }
      const rows = done.flatMap((d) => d.rows);
      // A vendor's daily quota (the device's, or the app's daily total): apps that opt in
      // (MobPush-style) get the message over the self channel or FCM instead, where the device
      // has it. Those rows are released as queued, then moved; the others fail `quota`.
      const overQuota = rows.filter((r) => r.status === 'failed' && r.error?.code === RELAY_CODES.quota);
      const fallback = overQuota.length > 0 ? await quotaTargets(appId, overQuota, claimed) : null;
      if (fallback) for (const r of overQuota) if (fallback.tokens.has(r.id)) Object.assign(r, { status: 'queued', nextAttemptAt: null });
      await gate?.step();
      await writeWithRetry(rows, readOnly);
      if (fallback && fallback.tokens.size > 0) {
        const ids = [...fallback.tokens.keys()];
        const moved = new Set(await repos.deliveries.moveQueued(ids, fallback.channel, ids.map((id) => fallback.tokens.get(id)!)));
        for (const part of parts) await ctx.queues.quotaFallback(appId, part.messageId, part.ids.filter((id) => moved.has(id)), fallback.channel);
      }
      logger.debug({ channel, n: claimed.length, messages: parts.length, claimMs: Math.round(t1 - t0), sendMs: Math.round(t2 - t1), writeMs: Math.round(performance.now() - t2) }, 'batch');
    }

    // Rows another (possibly dead) worker still leases: come back when the lease has run out. A
    // row released since the claim (its holder wrote a retry in between) is still this job's:
    // come back for it too, or it stays queued with no job. (A first run that only read its rows
    // leaves the ones it did not read to the jobs that attempted them.)
    if (claimed.length < ids.length) {
      const until = await repos.deliveries.leasedUntil(ids, readOnly ? {} : { unleased: { channel } });
      if (until && token) {
        await job.moveToDelayed(until.getTime() + 100, token);
        throw new DelayedError();
      }
    }
  }

  return releaseWith(new Worker<SendJob>(tx ? txQueueName(channel) : channel, handle, {
    connection: bullConnection(ctx.redis),
    prefix: config.QUEUE_PREFIX,
    // Transactional jobs are small and mostly wait on I/O: more of them overlap, so a slow one does not queue the next.
    concurrency: tx ? config.SEND_CONCURRENCY * 4 : config.SEND_CONCURRENCY,
    lockDuration: config.WORKER_LOCK_DURATION,
    stalledInterval: config.WORKER_LOCK_DURATION,
    maxStalledCount: 100,
  }));
}

/** Slack between this worker's clock and the database's when trusting a lease the router set. */
export const LEASE_MARGIN_MS = 60_000;

/**
 * How a send job takes its rows. Rows the router leased to the job are only read on its first
 * run inside the lease; a later run claims them, taking back its own (`ownLease`) and counting
 * the attempt a dead run may have made (`lostAttempt`). Any other job claims as usual.
 */
export function howToTake(
  job: { data: Pick<SendJob, 'leasedUntil' | 'reclaimed'>; attemptsMade: number; stalledCounter: number },
  now: number,
): { read: boolean; ownLease: boolean; lostAttempt: boolean } {
  if (job.data.reclaimed) return { read: false, ownLease: true, lostAttempt: true };
  const leased = job.data.leasedUntil !== undefined;
  const firstRun = job.attemptsMade === 0 && job.stalledCounter === 0;
  return {
    read: leased && firstRun && now < job.data.leasedUntil! - LEASE_MARGIN_MS,
    ownLease: leased,
    lostAttempt: leased && !firstRun,
  };
}

function secondsNow(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

/** A provider must never throw, but if one does the whole batch is retried, not lost. */
async function sendSafely(provider: Provider, plan: MessagePlan, targets: Parameters<Provider['send']>[1]): Promise<Outcome[]> {
  try {
    return await provider.send(plan.content, targets);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return targets.map(() => ({ kind: 'retry', reason: { code: RELAY_CODES.providerError, message } }) as const);
  }
}
