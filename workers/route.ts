import { Worker, type Job } from 'bullmq';
import { providerModule } from '../providers/registry.js';
import type { Channel } from '../providers/types.js';
import type { PushRequest } from '../src/core/push-request.js';
import type { Context } from '../src/context.js';
import type { NewDeliveryRow } from '../src/db/deliveries-repo.js';
import { deviceRow, tokenRow } from '../src/services/route-rows.js';
import { ROUTE_QUEUE, ROUTER_LEASE_MS, sendJobId, type RouteJob } from '../src/queues.js';
import { bullConnection, releaseWith } from '../src/redis.js';
import { BulkGate } from '../src/tx-pressure.js';

/** Which devices are online on the self channel right now (the gateway's presence). */
export type PresenceLookup = (appId: string, deviceIds: string[]) => Promise<ReadonlySet<string>>;

const nobodyOnline: PresenceLookup = async () => new Set();

/**
 * Expands a message into one delivery per device, a page at a time (never the whole audience in
 * memory), and hands each channel's deliveries to its send queue in batches. Safe to re-run: rows
 * are inserted once, and send jobs have deterministic ids.
 */
export function createRouteWorker(ctx: Context, presence: PresenceLookup = nobodyOnline): Worker<RouteJob> {
  const { repos, config, queues } = ctx;
  // A fan-out's page writes give way to transactional work as its sends do (docs/scaling.md,
  // Isolation); TX_PRESSURE_AFTER=0 turns the gate off.
  const gate = config.TX_PRESSURE_AFTER > 0 ? new BulkGate(queues.txPressure) : undefined;

  /** A send job carries at least one full request of the channel's provider (Huawei takes 1,000). */
  const batchSize = (channel: string) => Math.max(config.SEND_BATCH_SIZE, providerModule(channel)?.batchMax ?? 0);

  /** Inserts a routed page and queues its send jobs, the new rows leased to them. */
  async function insertAndEnqueue(appId: string, messageId: string, rows: NewDeliveryRow[]) {
    const release = await gate?.enter();
    try {
      await insertPage(appId, messageId, rows);
    } finally {
      release?.();
    }
  }

  async function insertPage(appId: string, messageId: string, rows: NewDeliveryRow[]) {
    const leasedUntil = Date.now() + ROUTER_LEASE_MS;
    const { leased, pending, resumed } = await repos.deliveries.insertPage(appId, messageId, rows, new Date(leasedUntil));
    const jobId = (first: string) => sendJobId(messageId, first);
    for (const [channel, ids] of leased) {
      await queues.sendInBatches(channel as Channel, appId, messageId, ids, batchSize(channel), jobId, leasedUntil);
    }
    for (const g of resumed) {
      await queues.sendInBatches(g.channel as Channel, appId, messageId, g.ids, batchSize(g.channel), jobId, g.leasedUntil);
    }
    for (const [channel, ids] of pending) {
      await queues.sendInBatches(channel as Channel, appId, messageId, ids, batchSize(channel), jobId);
    }
  }

  async function handle(job: Job<RouteJob>) {
    const { appId, messageId } = job.data;
    const msg = await repos.messages.byId(messageId);
    if (!msg || msg.state === 'cancelled' || msg.state === 'routed') return;
    await repos.messages.transition(messageId, ['scheduled', 'queued'], 'routing');
    const request = msg.request as unknown as PushRequest;
    const configured = new Set((await repos.credentials.providers(appId)) as Channel[]);
    const strategy = (await repos.apps.get(appId))?.settings.androidStrategy;
    const pinned = request.options.channels;

    if (request.to.token) {
      const { channel, value } = request.to.token;
      const row = tokenRow(channel, value, await repos.devices.isQuarantined(appId, channel, value), configured);
      await insertAndEnqueue(appId, messageId, [row]);
    } else {
      let after: string | null = null;
      for (;;) {
        const page = await repos.devices.page(appId, request.to, after, config.ROUTE_PAGE_SIZE);
        if (page.length === 0) break;
        after = page[page.length - 1]!.id;
        // iOS devices never take the self channel: only the others are worth a presence lookup.
        const reachable = page.filter((d) => d.platform !== 'ios').map((d) => d.id);
        const online = reachable.length > 0 ? await presence(appId, reachable) : new Set<string>();
        const routing = { configured, ...(strategy ? { strategy } : {}), ...(pinned ? { pinned } : {}) };
        const rows = page.map((d) => deviceRow(d, online.has(d.id), routing));
        await insertAndEnqueue(appId, messageId, rows);
        if (page.length < config.ROUTE_PAGE_SIZE) break;
        const now = await repos.messages.byId(messageId);
        if (now?.state === 'cancelled') break;
      }
    }
    if (!(await repos.messages.transition(messageId, ['routing'], 'routed', { routed: true }))) {
      // Cancelled while routing: what this run inserted after the cancel is cancelled too.
      await repos.deliveries.cancelPending(messageId);
    }
  }

  return releaseWith(new Worker<RouteJob>(ROUTE_QUEUE, handle, {
    connection: bullConnection(ctx.redis),
    prefix: config.QUEUE_PREFIX,
    concurrency: 2,
    lockDuration: config.WORKER_LOCK_DURATION,
    stalledInterval: config.WORKER_LOCK_DURATION,
  }));
}
