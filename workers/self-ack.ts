import { Worker, type Job } from 'bullmq';
import type { Channel } from '../providers/types.js';
import type { PushRequest } from '../src/core/push-request.js';
import { routeDevice, type Platform } from '../src/routing.js';
import type { Context } from '../src/context.js';
import { SELF_ACK_QUEUE, type SelfAckJob } from '../src/queues.js';
import { bullConnection, releaseWith } from '../src/redis.js';

/**
 * A self-channel delivery to an online device that is not acked within SELF_ACK_TIMEOUT
 * falls back the way an offline device is routed: the request's pinned channels without `self`,
 * else the device's vendor channel, else FCM. The row moves to that channel as `queued` (its
 * attempts and seq kept) and a send job takes it from there. With no other channel it stays `sent`
 * on self: the offline store hands it out on the device's next connect. A PUBACK that arrives
 * later still marks it delivered (acks match by message id and device on any channel).
 */
export function createSelfAckWorker(ctx: Context): Worker<SelfAckJob> {
  const { repos, config, queues } = ctx;

  async function handle(job: Job<SelfAckJob>) {
    const { appId, messageId, ids } = job.data;
    const unacked = await repos.self.unacked(ids);
    if (unacked.length === 0) return;
    const msg = await repos.messages.byId(messageId);
    if (!msg || msg.state === 'cancelled' || msg.expires_at.getTime() <= Date.now()) return;
    const request = msg.request as unknown as PushRequest;
    const pinned = request.options.channels?.filter((c) => c !== 'self');
    const configured = new Set((await repos.credentials.providers(appId)) as Channel[]);
    const strategy = (await repos.apps.get(appId))?.settings.androidStrategy;
    const devices = await repos.devices.page(appId, { devices: unacked.map((u) => u.deviceId) }, null, unacked.length);
    const byDevice = new Map(devices.map((d) => [d.id, d]));

    const moves: { id: string; channel: string; token: string | null }[] = [];
    for (const u of unacked) {
      const d = byDevice.get(u.deviceId);
      if (!d) continue;
      const route = routeDevice(
        { platform: d.platform as Platform, brand: d.brand, tokens: d.tokens, online: false },
        { configured, ...(strategy ? { strategy } : {}), ...(pinned ? { pinned } : {}) },
      );
      if (route.channel === null || route.channel === 'self') continue;
      moves.push({ id: u.id, channel: route.channel, token: route.token });
    }
    const moved = await repos.self.moveToChannel(moves);
    const byChannel = new Map<string, string[]>();
    for (const m of moved) byChannel.set(m.channel, [...(byChannel.get(m.channel) ?? []), m.id]);
    for (const [channel, list] of byChannel) {
      await queues.sendInBatches(channel as Channel, appId, messageId, list, config.SEND_BATCH_SIZE, (first) => `fallback.${messageId}.${first}`);
    }
    if (moved.length > 0) ctx.logger.debug({ appId, messageId, moved: moved.length }, 'self channel: un-acked deliveries fell back');
  }

  return releaseWith(new Worker<SelfAckJob>(SELF_ACK_QUEUE, handle, {
    connection: bullConnection(ctx.redis),
    prefix: config.QUEUE_PREFIX,
    concurrency: 4,
    lockDuration: config.WORKER_LOCK_DURATION,
    stalledInterval: config.WORKER_LOCK_DURATION,
  }));
}
