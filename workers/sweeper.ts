import type { Channel } from '../providers/types.js';
import type { Context } from '../src/context.js';
import { ROUTE_JOB_OPTIONS, SEND_JOB_OPTIONS, sendJobId } from '../src/queues.js';

/**
 * The scheduler role's safety net, so that every delivery reaches exactly one end state even when
 * Redis lost jobs: expire what outlived its TTL (self-channel messages still waiting for their
 * device's ack included), re-queue what no job holds, re-route messages
 * whose route job vanished, and purge quarantined tokens and minute stats past their retention.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly ctx: Context) {}

  start(): void {
    const tick = () => {
      this.running = this.sweep()
        .then(() => undefined)
        .catch((err) => this.ctx.logger.error({ err }, 'sweep failed'))
        .finally(() => {
          this.running = undefined;
        });
    };
    this.timer = setInterval(tick, this.ctx.config.SWEEP_INTERVAL);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  async sweep(): Promise<{ expired: number; requeued: number; rerouted: number; purged: number }> {
    const { repos, config, queues } = this.ctx;
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
          .add('send', { appId: first.appId, messageId: first.messageId, ids: chunk.map((r) => r.id) }, { ...SEND_JOB_OPTIONS, jobId: `sweep.${sendJobId(first.messageId, chunk[0]!.id, attempts)}.${Math.floor(Date.now() / grace)}` });
      }
    }
    const unrouted = await repos.messages.unrouted(grace);
    for (const m of unrouted) {
      const job = await queues.route.getJob(m.id);
      if (!job) await queues.route.add('route', { appId: m.app_id, messageId: m.id }, { ...ROUTE_JOB_OPTIONS, jobId: m.id });
      else if (await job.isFailed()) await job.retry();
    }
    await repos.deliveries.pruneOpen();
    const purged = await repos.devices.purgeQuarantined(config.TOKEN_RETENTION);
    const statsPruned = await repos.stats.prune(config.STATS_RETENTION);
    if (expired + stranded.length + purged + statsPruned > 0) {
      this.ctx.logger.info({ expired, requeued: stranded.length, rerouted: unrouted.length, purged, statsPruned }, 'sweep');
    }
    return { expired, requeued: stranded.length, rerouted: unrouted.length, purged };
  }
}
