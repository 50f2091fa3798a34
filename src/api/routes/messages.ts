import { Router } from 'express';
import { z } from 'zod';
import { CHANNELS } from '../../../providers/channels.js';
import { DELIVERY_STATUSES } from '../../core/delivery-status.js';
import { pushRequestSchema } from '../../core/push-request.js';
import { maskToken } from '../../core/secrets.js';
import type { Context } from '../../context.js';
import type { MessageRow } from '../../db/schema.js';
import { DirectPushRepo } from '../../db/direct-push-repo.js';
import { DirectPush } from '../../services/direct-push.js';
import type { PresenceLookup } from '../../../workers/route.js';
import { PushService } from '../../services/push-service.js';
import { appOf } from '../auth.js';
import { route } from '../define.js';
import { ApiError, notFound } from '../errors.js';

/** Any id is looked up: one Relay never issued is simply not found (404), not malformed. */
const messageId = z.string().min(1).max(128);
const counts = z.object(Object.fromEntries(DELIVERY_STATUSES.map((s) => [s, z.number()])));

const messageView = z.object({
  id: z.string(),
  state: z.enum(['scheduled', 'sending', 'done', 'cancelled']),
  recipients: z.number(),
  counts,
  byChannel: z.record(z.string(), z.record(z.string(), z.number())),
  sendAt: z.string().nullable(),
  expiresAt: z.string(),
  createdAt: z.string(),
  replayOf: z.string().nullable().describe('The message whose dead letters this one replays (`POST /v1/deliveries/replay`)'),
});

const deliveryView = z.object({
  deviceId: z.string().nullable(),
  channel: z.string().nullable(),
  token: z.string().nullable().describe('Masked'),
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.number(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  providerId: z.string().nullable(),
  sentAt: z.string().nullable(),
  deliveredAt: z.string().nullable(),
  openedAt: z.string().nullable(),
  updatedAt: z.string(),
});

function publicState(m: MessageRow, queued: number): z.infer<typeof messageView>['state'] {
  if (m.state === 'cancelled') return 'cancelled';
  if (m.state === 'scheduled') return 'scheduled';
  if (m.state === 'routed' && queued === 0) return 'done';
  return 'sending';
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

export function messagesRouter(ctx: Context, recall?: (appId: string, messageId: string) => Promise<number>, presence?: PresenceLookup): Router {
  const r = Router();
  const { messages, deliveries, counters } = ctx.repos;
  const direct = new DirectPush(ctx.config, new DirectPushRepo(ctx.db), ctx.queues, presence ?? (async () => new Set()), ctx.logger);
  const push = new PushService(ctx.config, messages, deliveries, ctx.queues, recall, direct);

  route(
    r,
    {
      method: 'post', path: '/v1/push', tag: 'push', auth: 'push',
      summary: 'Accept one push request; `Idempotency-Key` makes a retried request return the first id',
      body: pushRequestSchema,
      responses: {
        202: { description: 'Accepted', schema: z.object({ id: z.string(), recipients: z.number() }) },
        409: { description: 'Idempotency-Key reused with another body' },
      },
    },
    async (req, res, { body }) => {
      const appId = appOf(res, 'push');
      const key = req.get('idempotency-key');
      if (key !== undefined && (key.length === 0 || key.length > 255)) {
        throw new ApiError('validation_failed', 'headers.idempotency-key: must be 1 to 255 characters');
      }
      const accepted = await push.accept(appId, body, key);
      if (accepted.replayed) res.set('Idempotent-Replayed', 'true');
      res.status(202).json({ id: accepted.id, recipients: accepted.recipients });
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/messages/:id', tag: 'push', auth: 'push', summary: 'Status and counts per state and per channel',
      params: z.object({ id: messageId }),
      responses: { 200: { description: 'The message', schema: messageView } },
    },
    async (_req, res, { params }) => {
      const appId = appOf(res, 'push');
      const m = await messages.get(appId, params.id);
      if (!m) throw notFound('message');
      const c = (await counters.forMessages(appId, [m.id])).get(m.id)!;
      res.json({
        id: m.id,
        state: publicState(m, c.counts.queued),
        recipients: m.recipients,
        counts: c.counts,
        byChannel: c.byChannel,
        sendAt: iso(m.send_at),
        expiresAt: m.expires_at.toISOString(),
        createdAt: m.created_at.toISOString(),
        replayOf: m.replay_of,
      });
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/messages/:id/deliveries', tag: 'push', auth: 'push', summary: 'Per-token fates, filtered by status or channel, cursor-paged',
      params: z.object({ id: messageId }),
      query: z.object({
        status: z.enum(DELIVERY_STATUSES).optional(),
        channel: z.enum(CHANNELS).optional(),
        cursor: z.string().regex(/^\d{1,19}$/).optional().describe('`next` from the previous page'),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
      }),
      responses: { 200: { description: 'A page of deliveries', schema: z.object({ items: z.array(deliveryView), next: z.string().nullable() }) } },
    },
    async (_req, res, { params, query }) => {
      const appId = appOf(res, 'push');
      if (!(await messages.get(appId, params.id))) throw notFound('message');
      const page = await deliveries.list(appId, params.id, {
        ...(query.status ? { status: query.status } : {}),
        ...(query.channel ? { channel: query.channel } : {}),
        ...(query.cursor ? { after: query.cursor } : {}),
        limit: query.limit,
      });
      res.json({
        items: page.items.map((d) => ({
          deviceId: d.device_id === '' ? null : d.device_id,
          channel: d.channel,
          token: d.token ? maskToken(d.token) : null,
          status: d.status,
          attempts: d.attempts,
          error: d.error ? { code: d.error.code, message: d.error.message } : null,
          providerId: d.provider_id,
          sentAt: iso(d.sent_at),
          deliveredAt: iso(d.delivered_at),
          openedAt: iso(d.opened_at),
          updatedAt: d.updated_at.toISOString(),
        })),
        next: page.next,
      });
    },
  );

  route(
    r,
    {
      method: 'delete', path: '/v1/messages/:id', tag: 'push', auth: 'push',
      summary: 'Cancel what has not been sent yet, and withdraw self-channel copies not acked yet (online devices get a revoke)',
      params: z.object({ id: messageId }),
      responses: {
        200: {
          description: 'Cancelled, or already done when every delivery had ended before the cancel',
          schema: z.object({
            id: z.string(),
            state: z.enum(['cancelled', 'done']),
            cancelled: z.number().describe('Deliveries cancelled before they were sent'),
            withdrawn: z.number().describe('Self-channel deliveries withdrawn before the device acked them (now cancelled too)'),
          }),
        },
      },
    },
    async (_req, res, { params }) => {
      const appId = appOf(res, 'push');
      const result = await push.cancel(appId, params.id);
      res.json({ id: result.id, state: result.state, cancelled: result.cancelled, withdrawn: result.withdrawn });
    },
  );

  return r;
}
