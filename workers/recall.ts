import { Worker, type Job } from 'bullmq';
import type { Channel, Outcome, Provider, SendTarget } from '../providers/types.js';
import { buildPlan } from '../src/core/content.js';
import type { PushRequest } from '../src/core/push-request.js';
import { planRecall, replacementContent, type RecallPlan } from '../src/core/recall.js';
import type { Context } from '../src/context.js';
import { RecallsRepo, type RecallRow, type UnrecalledDelivery } from '../src/db/recalls-repo.js';
import { RECALL_JOB_OPTIONS, RECALL_QUEUE, type RecallJob } from '../src/queues.js';
import { RateLimiter } from '../src/rate-limiter.js';
import type { BusPublisher } from '../src/self/bus.js';
import type { Presence } from '../src/self/presence.js';
import { publishRevokes } from '../src/self/recall.js';
import type { ProviderSource } from './send.js';
import { bullConnection, releaseWith } from '../src/redis.js';

/** Deliveries read per page; a vendor request carries at most its own batch size of them. */
const PAGE = 500;

/**
 * The recall of one message (docs/recall.md), walked page by page in device id order until
 * every delivery has exactly one recall row:
 * - never sent → `cancelled` (deliveries the router added after the DELETE are cancelled first);
 * - self channel → a `pending` revoke, sent now to online devices and on connect to the others;
 * - a provider with a recall API (`Provider.recall`) → `withdrawn` or `not_withdrawable`;
 * - a channel that replaces by collapse id / tag / notify id → a replacement sent through the
 *   provider's own send path: `replaced` once the provider accepted it;
 * - anything else → `not_withdrawable` with the reason.
 * Idempotent: a re-run (retry, crash, the sweeper re-queueing a lost job) skips the deliveries
 * that have their row; a provider call whose answer was not recorded before a crash is repeated.
 */
export function createRecallWorker(ctx: Context, providers: ProviderSource, presence: Presence, bus: BusPublisher): Worker<RecallJob> {
  const { repos, config, logger } = ctx;
  const recalls = new RecallsRepo(ctx.db);
  // The send path's per-credential budget (workers/send.ts): a recall of a large audience spends
  // the same vendor quota as a send, so it waits for the same windows.
  const limiter = new RateLimiter(ctx.queues.connection, config.QUEUE_PREFIX);
  const notice = { title: config.RECALL_NOTICE_TITLE, body: config.RECALL_NOTICE_BODY };

  async function handle(job: Job<RecallJob>) {
    const { appId, messageId } = job.data;
    const msg = await repos.messages.byId(messageId);
    if (!msg || msg.app_id !== appId) return;
    // What the router queued after the DELETE's own cancel: cancelled now, before the walk.
    await repos.deliveries.cancelPending(messageId);
    const request = msg.request as unknown as PushRequest;
    const original = buildPlan(messageId, request, msg.expires_at, config).content;
    // The last attempt records what still fails as not_withdrawable: every delivery ends with a state.
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const clients = new Map<string, Provider | null>();
    const client = async (channel: string) => {
      if (!clients.has(channel)) clients.set(channel, channel === 'self' ? null : await providers.get(appId, channel as Channel));
      return clients.get(channel) ?? null;
    };
    let unfinished = 0;
    for (let after: string | null = null; ; ) {
      const page = await recalls.unrecalled(messageId, after, PAGE);
      if (page.last === null) break;
      after = page.last;
      for (const d of page.rows) if (d.channel && d.channel !== 'self') await client(d.channel);
      const plans = page.rows.map((d) => ({ d, plan: planRecall(d, request, (c) => clients.get(c)?.recall !== undefined) }));
      unfinished += await applyPage(appId, messageId, plans, original, request, client, lastAttempt);
    }
    if (unfinished > 0) throw new Error(`recall of ${messageId}: ${unfinished} deliveries got no answer from their provider; retrying`);
    await recalls.finish(messageId);
    logger.debug({ appId, messageId }, 'recall walked every delivery');
  }

  /** Records one page's recall rows; returns how many deliveries must wait for a retry. */
  async function applyPage(
    appId: string,
    messageId: string,
    plans: { d: UnrecalledDelivery; plan: RecallPlan }[],
    original: ReturnType<typeof buildPlan>['content'],
    request: PushRequest,
    client: (channel: string) => Promise<Provider | null>,
    lastAttempt: boolean,
  ): Promise<number> {
    const rows: RecallRow[] = [];
    const row = (d: UnrecalledDelivery, state: RecallRow['state'], reason: RecallRow['reason'] = null): RecallRow => ({
      deliveryId: d.id, appId, deviceId: d.deviceId, channel: d.channel, state, reason,
    });
    const revokes: UnrecalledDelivery[] = [];
    const byChannel = new Map<string, { kind: 'provider' | 'replace'; list: UnrecalledDelivery[] }>();
    for (const { d, plan } of plans) {
      if (plan.kind === 'final') rows.push(row(d, plan.state, plan.reason));
      else if (plan.kind === 'revoke') revokes.push(d);
      else {
        const key = `${plan.kind}\u0000${d.channel}`;
        const group = byChannel.get(key) ?? { kind: plan.kind, list: [] };
        group.list.push(d);
        byChannel.set(key, group);
      }
    }
    // Self: pending until the device acks the revoke. Rows first, so no ack finds none.
    if (revokes.length > 0) {
      const inserted = await recalls.record(messageId, revokes.map((d) => ({ ...row(d, 'pending'), seq: d.seq })));
      const fresh = revokes.filter((d) => inserted.has(d.id)).map((d) => ({ deviceId: d.deviceId, seq: Number(d.seq) }));
      await publishRevokes(presence, bus, appId, messageId, fresh).catch((err: Error) =>
        logger.warn({ err: err.message, messageId }, 'recall: revoke publish failed (devices get it on their next connect)'),
      );
    }
    let unfinished = 0;
    for (const { kind, list } of byChannel.values()) {
      const channel = list[0]!.channel!;
      const provider = await client(channel);
      if (!provider) {
        for (const d of list) rows.push(row(d, 'not_withdrawable', { code: 'no_credentials', message: `the app has no ${channel} credentials now` }));
        continue;
      }
      const targets: SendTarget[] = list.map((d) => ({ deliveryId: d.id, token: d.token ?? '' }));
      // A vendor's recall API withdraws (`sent`); a replacement only overwrites.
      const viaApi = kind === 'provider' && provider.recall !== undefined;
      const replacement = viaApi ? undefined : replacementContent(messageId, channel, request, notice);
      // At most the credential's QPS of tokens per window, waiting here (not re-queued: the page's
      // rows are recorded together at its end, and a re-run would send its replacements again).
      const qps = providers.qps ? await providers.qps(appId, channel as Channel) : undefined;
      const step = qps ?? targets.length;
      const outcomes: Outcome[] = [];
      for (let i = 0; i < targets.length; i += step) {
        const part = targets.slice(i, i + step);
        if (qps) {
          for (let wait = await limiter.take(`${appId}:${channel}`, part.length, qps); wait > 0; wait = await limiter.take(`${appId}:${channel}`, part.length, qps)) {
            await new Promise((r) => setTimeout(r, wait));
          }
        }
        outcomes.push(...(viaApi ? await provider.recall!(original, part) : await provider.send(replacement!, part)));
      }
      const what = viaApi ? 'the recall was refused' : 'the replacement was not accepted';
      list.forEach((d, i) => {
        const o = outcomes[i];
        if (o?.kind === 'sent') rows.push(row(d, viaApi ? 'withdrawn' : 'replaced'));
        else if (o?.kind === 'retry' && !lastAttempt) unfinished++;
        else rows.push(row(d, 'not_withdrawable', { code: o?.reason.code ?? 'no_answer', message: `${what}: ${o?.reason.message ?? 'no answer'}` }));
      });
    }
    await recalls.record(messageId, rows);
    return unfinished;
  }

  return releaseWith(
    new Worker<RecallJob>(RECALL_QUEUE, handle, {
      connection: bullConnection(ctx.redis),
      prefix: config.QUEUE_PREFIX,
      concurrency: 2,
      lockDuration: config.WORKER_LOCK_DURATION,
      stalledInterval: config.WORKER_LOCK_DURATION,
    }),
  );
}

export { RECALL_JOB_OPTIONS };
