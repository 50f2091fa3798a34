import { sql } from 'kysely';
import type { Channel } from '../providers/types.js';
import type { Context } from '../src/context.js';
import { fallbackAfterMs } from '../src/core/push-request.js';
import { RecallsRepo } from '../src/db/recalls-repo.js';
import { SmsFallbackRepo } from '../src/db/sms-fallback-repo.js';
import { RECALL_JOB_OPTIONS, ROUTE_JOB_OPTIONS, SEND_JOB_OPTIONS, SMS_FALLBACK_JOB_OPTIONS, recallJobId, sendJobId, type SendJob } from '../src/queues.js';
import { RedisEpoch } from '../src/redis-epoch.js';
import { smsFallbackJobId } from '../src/services/sms-fallback.js';

/** How far ahead the reconciliation looks for scheduled messages whose delayed route job was lost. */
const RECONCILE_HORIZON_MS = 400 * 86_400_000;

/**
 * The scheduler role's safety net, so that every delivery reaches exactly one end state even when
 * Redis lost jobs: expire what outlived its TTL (self-channel messages still waiting for their
 * device's ack included), re-queue what no job holds, re-route messages
 * whose route job vanished, and purge quarantined tokens and minute stats past their retention.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly epoch: RedisEpoch;
  private readonly onReady = () => this.tick();

  constructor(private readonly ctx: Context) {
    this.epoch = new RedisEpoch(ctx.queues.connection, ctx.config.QUEUE_PREFIX, ctx.db);
  }

  /**
   * Sweeps now (a restarted Relay finds what its last run left at once), every SWEEP_INTERVAL,
   * and whenever the Redis connection comes back: a Redis that returns empty is noticed within
   * a reconnect, not a sweep interval.
   */
  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.ctx.config.SWEEP_INTERVAL);
    this.timer.unref();
    this.ctx.queues.connection.on('ready', this.onReady);
  }

  /** One pass at a time: a tick while one runs waits for it. */
  private tick(): void {
    this.running = this.running
      .then(async () => {
        if (this.stopped) return;
        const epoch = await this.epoch.check();
        // A first start reconciles too (cheap on an empty database; an upgraded one may hold rows
        // no job of this Redis knows), but quietly: nothing was lost.
        if (epoch === 'lost' || epoch === 'fresh') await this.reconcile(epoch === 'lost');
        await this.sweep();
      })
      .catch((err: unknown) => this.ctx.logger.error({ err }, 'sweep failed'));
  }

  /** Resolves when the pass under way (the one start() began, say) has ended. */
  idle(): Promise<void> {
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.ctx.queues.connection.off('ready', this.onReady);
    await this.running;
  }

  /**
   * Redis lost every job (it restarted without persistence, or was flushed): PostgreSQL knows
   * what is left. Every queued delivery last touched before now gets a send job at once (at its
   * retry time if it waits for one), taking back rows leased to jobs that no longer exist; every
   * message not fully routed gets its route job back. Rows in flight in a live worker may be sent
   * twice (the README's bound); rows written after this moment belong to jobs in the new Redis.
   */
  async reconcile(lost = true): Promise<{ requeued: number; rerouted: number }> {
    const { repos, config, queues, db, logger } = this.ctx;
    const started = Date.now();
    const epoch = this.epoch.current ?? 'x';
    const { rows } = await sql<{ now: Date }>`SELECT now() AS now`.execute(db);
    const before = rows[0]!.now;
    let requeued = 0;
    for (let after: string | null = null; ; ) {
      const page = await repos.deliveries.openBefore(before, after);
      if (page.length === 0) break;
      after = page[page.length - 1]!.id;
      requeued += page.length;
      const groups = new Map<string, typeof page>();
      for (const r of page) {
        const key = `${r.messageId}\u0000${r.channel}`;
        const list = groups.get(key);
        if (list) list.push(r);
        else groups.set(key, [r]);
      }
      for (const list of groups.values()) {
        const { appId, messageId, channel } = list[0]!;
        const jobs = [];
        for (let i = 0; i < list.length; i += config.SEND_BATCH_SIZE) {
          const chunk = list.slice(i, i + config.SEND_BATCH_SIZE);
          const due = Math.max(0, ...chunk.map((r) => (r.nextAttemptAt ? r.nextAttemptAt.getTime() : 0)));
          const data: SendJob = { appId, messageId, ids: chunk.map((r) => r.id), reclaimed: true };
          jobs.push({ name: 'send', data, opts: { ...SEND_JOB_OPTIONS, jobId: `reconcile.${epoch}.${messageId}.${chunk[0]!.id}`, delay: Math.max(0, due - Date.now()) } });
        }
        await queues.send(channel as Channel).addBulk(jobs);
      }
    }
    // Messages still to route (or scheduled): after the rows above, so a re-run of the router
    // finds its earlier pages' rows already queued again.
    const unrouted = await repos.messages.unrouted(-RECONCILE_HORIZON_MS);
    for (const m of unrouted) {
      const delay = m.send_at ? Math.max(0, m.send_at.getTime() - Date.now()) : 0;
      await queues.route.add('route', { appId: m.app_id, messageId: m.id }, { ...ROUTE_JOB_OPTIONS, jobId: m.id, delay });
    }
    const topUps = await this.restoreTopUps();
    const figures = { requeued, rerouted: unrouted.length, topUps, ms: Date.now() - started };
    if (lost) logger.warn(figures, 'Redis lost its jobs: reconciled from PostgreSQL');
    // No marker ever recorded, yet open work: a database from before markers were recorded.
    else if (requeued + unrouted.length + topUps > 0) logger.warn(figures, 'Redis had no epoch marker: open work re-queued from PostgreSQL');
    else logger.info(figures, 'first start with this Redis and database: epoch marker written');
    return { requeued, rerouted: unrouted.length };
  }

  /**
   * SMS top-ups (`options.fallback.sms`) live only as delayed jobs until they run: after a loss,
   * each push whose top-up has not run (its linked `<id>-sms` message does not exist yet) gets its
   * job back, due when it was due (at once if that passed). One that ran is never run twice: its
   * linked message exists, and the job id is the one the push queued.
   */
  private async restoreTopUps(): Promise<number> {
    const { queues, db } = this.ctx;
    const repo = new SmsFallbackRepo(db);
    let n = 0;
    for (let after = ''; ; ) {
      const page = await repo.pendingTopUps(after, 1000);
      if (page.length === 0) break;
      after = page[page.length - 1]!.id;
      n += page.length;
      await queues.smsFallback.addBulk(
        page.map((m) => ({
          name: 'fallback',
          data: { appId: m.appId, messageId: m.id },
          opts: { ...SMS_FALLBACK_JOB_OPTIONS, jobId: smsFallbackJobId(m.id), delay: Math.max(0, m.start.getTime() + fallbackAfterMs(m.after) - Date.now()) },
        })),
      );
      if (page.length < 1000) break;
    }
    return n;
  }

  /**
   * Recalls whose job vanished (Redis lost it, or it failed every attempt) get it back, so every
   * delivery of a recalled message ends with a recall state; self-channel revokes whose device
   * never came back within RECALL_REVOKE_WAIT end `not_withdrawable`.
   */
  private async sweepRecalls(grace: number): Promise<void> {
    const { queues, config, db } = this.ctx;
    const recalls = new RecallsRepo(db);
    for (const r of await recalls.running(new Date(Date.now() - grace))) {
      const job = await queues.recall.getJob(recallJobId(r.messageId));
      if (!job) await queues.recall.add('recall', { appId: r.appId, messageId: r.messageId }, { ...RECALL_JOB_OPTIONS, jobId: recallJobId(r.messageId) });
      else if (await job.isFailed()) await job.retry();
    }
    await recalls.expirePending(new Date(Date.now() - config.RECALL_REVOKE_WAIT));
  }

  /**
   * Day partitions of `deliveries`: the next days' created, those past DELIVERY_RETENTION dropped
   * with their messages and idempotency keys. `now` is movable for tests.
   */
  async rotatePartitions(now = new Date()) {
    const { repos, config, logger } = this.ctx;
    const r = await repos.partitions.maintain(now, {
      aheadDays: config.DELIVERY_PARTITIONS_AHEAD,
      ...(config.DELIVERY_RETENTION ? { retentionMs: config.DELIVERY_RETENTION } : {}),
    });
    if (r.dropped.length + r.messages > 0) logger.info({ dropped: r.dropped, messages: r.messages, idempotencyKeys: r.idempotencyKeys }, 'retention: expired day partitions dropped');
    return r;
  }

  async sweep(): Promise<{ expired: number; requeued: number; rerouted: number; purged: number }> {
    const { repos, config, queues } = this.ctx;
    // A partition step that fails (a lock it would not wait for) is retried next pass; the sweep
    // itself goes on.
    await this.rotatePartitions().catch((err: unknown) => this.ctx.logger.warn({ err }, 'partition maintenance failed'));
    // Queued rows past their TTL, and self-channel rows the device never acked before it.
    const expired = (await repos.deliveries.expireOverdue()) + (await repos.self.expireOverdue());
    // Grace: well past a lock duration, so a job that is merely slow or delayed is left alone.
    const grace = Math.max(config.WORKER_LOCK_DURATION * 4, 60_000);
    const stranded = await repos.deliveries.stranded(grace, Math.max(grace, 600_000));
    const groups = new Map<string, typeof stranded>();
    for (const s of stranded) {
      const key = `${s.messageId}\u0000${s.channel}`;
      groups.set(key, [...(groups.get(key) ?? []), s]);
    }
    for (const rows of groups.values()) {
      const first = rows[0]!;
      for (let i = 0; i < rows.length; i += config.SEND_BATCH_SIZE) {
        const chunk = rows.slice(i, i + config.SEND_BATCH_SIZE);
        const attempts = Math.max(...chunk.map((r) => r.attempts));
        await queues
          .send(first.channel as Channel)
          .add('send', { appId: first.appId, messageId: first.messageId, ids: chunk.map((r) => r.id) }, { ...SEND_JOB_OPTIONS, jobId: `sweep.${sendJobId(first.messageId, chunk[0]!.id, attempts)}.${Math.floor(Date.now() / grace)}`, priority: queues.priorityFor(first.appId, first.channel as Channel, chunk.length) });
      }
    }
    const unrouted = await repos.messages.unrouted(grace);
    for (const m of unrouted) {
      const job = await queues.route.getJob(m.id);
      if (!job) await queues.route.add('route', { appId: m.app_id, messageId: m.id }, { ...ROUTE_JOB_OPTIONS, jobId: m.id });
      else if (await job.isFailed()) await job.retry();
    }
    await this.sweepRecalls(grace);
    await repos.deliveries.pruneOpen();
    const purged = await repos.devices.purgeQuarantined(config.TOKEN_RETENTION);
    const statsPruned = await repos.stats.prune(config.STATS_RETENTION);
    if (expired + stranded.length + purged + statsPruned > 0) {
      this.ctx.logger.info({ expired, requeued: stranded.length, rerouted: unrouted.length, purged, statsPruned }, 'sweep');
    }
    return { expired, requeued: stranded.length, rerouted: unrouted.length, purged };
  }
}
