import { DelayedError, Worker, type Job } from 'bullmq';
import { bullConnection } from '../src/redis.js';
import type { PushRequest } from '../src/core/push-request.js';
import { RELAY_CODES } from '../src/core/outcome-codes.js';
import type { Context } from '../src/context.js';
import type { NewDeliveryRow } from '../src/db/deliveries-repo.js';
import { SmsFallbackRepo } from '../src/db/sms-fallback-repo.js';
import { SMS_FALLBACK_QUEUE, type SmsFallbackJob } from '../src/queues.js';
import { SMS_FALLBACK_TTL_MS, smsFallbackId } from '../src/services/sms-fallback.js';

/** Devices read and SMS deliveries stored per page. */
const PAGE = 1000;

/**
 * Runs a push's SMS top-up when its window ends (src/services/sms-fallback.ts): reads the push's
 * deliveries a page at a time, stores one sms delivery per device it has not reached under the
 * linked message, and queues them on the sms channel. Safe to re-run after a crash: each device has
 * one delivery in the linked message (its key), and send jobs have deterministic ids.
 */
export function createSmsFallbackWorker(ctx: Context): Worker<SmsFallbackJob> {
  const { repos, config, queues } = ctx;
  const repo = new SmsFallbackRepo(ctx.db);

  async function handle(job: Job<SmsFallbackJob>, token?: string) {
    const { appId, messageId } = job.data;
    const msg = await repos.messages.byId(messageId);
    if (!msg || msg.app_id !== appId || msg.state === 'cancelled') return;
    const fallback = (msg.request as unknown as PushRequest).options.fallback?.sms;
    if (!fallback) return;
    // Still being routed (a large audience): its deliveries are not all there yet. A message that
    // is still not routed an hour after its top-up was due gets it for the deliveries it has.
    const due = job.timestamp + (job.opts.delay ?? 0);
    if (msg.state !== 'routed' && Date.now() < due + 3_600_000 && token) {
      await job.moveToDelayed(Date.now() + 2000, token);
      throw new DelayedError();
    }
    const id = smsFallbackId(messageId);
    await repo.ensureMessage({ id, appId, parentId: messageId, text: fallback.text, expiresAt: new Date(Date.now() + SMS_FALLBACK_TTL_MS) });
    const configured = (await repos.credentials.providers(appId)).includes('sms');
    let after = '';
    for (;;) {
      const page = await repo.candidates(appId, messageId, after, PAGE);
      if (page.length === 0) break;
      after = page[page.length - 1]!.deviceId;
      const rows: NewDeliveryRow[] = page.map((c) =>
        configured
          ? { deviceId: c.deviceId, platform: c.platform, channel: 'sms', token: c.token, status: 'queued', error: null }
          : { deviceId: c.deviceId, platform: c.platform, channel: 'sms', token: c.token, status: 'failed', error: { code: RELAY_CODES.noChannel, message: 'the app has no sms credentials' } },
      );
      const { pending } = await repos.deliveries.insertPage(appId, id, rows);
      const ids = pending.get('sms') ?? [];
      await queues.sendInBatches('sms', appId, id, ids, config.SEND_BATCH_SIZE, (first) => `smsfb.${id}.${first}`);
      if (page.length < PAGE) break;
    }
    const n = await repo.countRecipients(id);
    if (n > 0) ctx.logger.debug({ appId, messageId, sms: n }, 'sms top-up queued');
  }

  return new Worker<SmsFallbackJob>(SMS_FALLBACK_QUEUE, handle, {
    connection: bullConnection(ctx.redis),
    prefix: config.QUEUE_PREFIX,
    concurrency: 2,
    lockDuration: config.WORKER_LOCK_DURATION,
    stalledInterval: config.WORKER_LOCK_DURATION,
  });
}
