import { Router } from 'express';
import { z } from 'zod';
import { CHANNELS } from '../../../providers/channels.js';
import { DELIVERY_STATUSES } from '../../core/delivery-status.js';
import { pushRequestSchema } from '../../push-request.js';
import { maskToken } from '../../core/secrets.js';
import type { Context } from '../../context.js';
import type { MessageRow } from '../../db/schema.js';
import { DirectPushRepo } from '../../db/direct-push-repo.js';
import { RecallsRepo } from '../../db/recalls-repo.js';
import { RECALL_STATES } from '../../core/recall.js';
import { DirectPush } from '../../services/direct-push.js';
import type { PresenceLookup } from '../../../workers/route.js';
import { PushService } from '../../services/push-service.js';
import { smsFallbackId } from '../../services/sms-fallback.js';
import { appOf } from '../auth.js';
import { route } from '../define.js';
import { ApiError, notFound } from '../errors.js';
import { sendJson } from '../send-json.js';

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
  fallback: z
    .object({ sms: z.object({ after: z.string(), messageId: z.string().describe('The linked message that carries the SMS deliveries') }) })
    .optional()
    .describe('The SMS top-up this push asked for (options.fallback)'),
  fallbackOf: z.string().optional().describe('This message is the SMS top-up of that push'),
  replayOf: z.string().nullable().describe('The message whose dead letters this one replays (`POST /v1/deliveries/replay`)'),
});

/** The SMS top-up links between a push and its `<id>-sms` message (docs/sms.md). */
function fallbackLinks(m: MessageRow) {
  const request = m.request as { options?: { fallback?: { sms?: { after?: string } } }; fallbackOf?: unknown };
  const after = request.options?.fallback?.sms?.after;
  return {
    ...(typeof after === 'string' ? { fallback: { sms: { after, messageId: smsFallbackId(m.id) } } } : {}),
    ...(typeof request.fallbackOf === 'string' ? { fallbackOf: request.fallbackOf } : {}),
  };
}

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

const recallTotals = z.object(Object.fromEntries(RECALL_STATES.map((s) => [s, z.number()])));
const recallSummary = z.object({
  state: z.enum(['running', 'done']).describe('`done` once every delivery has its recall state (self-channel revokes may still be `pending` for offline devices)'),
  totals: recallTotals,
});

const recallItem = z.object({
  deliveryId: z.string(),
  deviceId: z.string().nullable(),
  channel: z.string().nullable(),
  token: z.string().nullable().describe('Masked'),
  state: z.enum(RECALL_STATES),
  reason: z.object({ code: z.string(), message: z.string() }).nullable().describe('Why a delivery was not withdrawn (or why it was cancelled)'),
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
  const recalls = new RecallsRepo(ctx.db);
  const push = new PushService(ctx.config, messages, deliveries, ctx.queues, recall, direct, recalls);

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
      sendJson(res, 202, { id: accepted.id, recipients: accepted.recipients });
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
        ...fallbackLinks(m),
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
        cursor: z.string().regex(/^\d{1,18}$/).optional().describe('`next` from the previous page'),
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
      summary: 'Recall: cancel what has not been sent, withdraw or replace what was, per delivery (GET …/recall reports it)',
      params: z.object({ id: messageId }),
      responses: {
        200: {
          description: 'Recall started (idempotent: a repeated DELETE changes nothing). `recall.totals` is the state so far; the recall runs on in the background for the rest',
          schema: z.object({
            id: z.string(),
            state: z.enum(['cancelled', 'done']),
            cancelled: z.number().describe('Deliveries cancelled before they were sent (by this request)'),
            withdrawn: z.number().describe('Self-channel deliveries withdrawn before the device acked them (by this request)'),
            recall: recallSummary,
          }),
        },
      },
    },
    async (_req, res, { params }) => {
      const appId = appOf(res, 'push');
      const result = await push.cancel(appId, params.id);
      const state = (await recalls.get(appId, params.id))?.state ?? 'running';
      res.json({ id: result.id, state: result.state, cancelled: result.cancelled, withdrawn: result.withdrawn, recall: { state, totals: await recalls.totals(params.id) } });
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/messages/:id/recall', tag: 'push', auth: 'push',
      summary: 'Recall report: per delivery, cancelled / withdrawn / replaced / not_withdrawable (with the reason) or pending; totals per state; cursor-paged',
      params: z.object({ id: messageId }),
      query: z.object({
        state: z.enum(RECALL_STATES).optional(),
        channel: z.enum(CHANNELS).optional(),
        cursor: z.string().regex(/^\d{1,18}$/).optional().describe('`next` from the previous page'),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
      }),
      responses: {
        200: {
          description: 'The recall so far (`state: none` and no items when the message was never recalled)',
          schema: z.object({
            id: z.string(),
            state: z.enum(['none', 'running', 'done']),
            requestedAt: z.string().nullable(),
            totals: recallTotals,
            items: z.array(recallItem),
            next: z.string().nullable(),
          }),
        },
      },
    },
    async (_req, res, { params, query }) => {
      const appId = appOf(res, 'push');
      if (!(await messages.get(appId, params.id))) throw notFound('message');
      const rec = await recalls.get(appId, params.id);
      if (!rec) {
        res.json({ id: params.id, state: 'none', requestedAt: null, totals: await recalls.totals(params.id), items: [], next: null });
        return;
      }
      const page = await recalls.report(appId, params.id, {
        ...(query.state ? { state: query.state } : {}),
        ...(query.channel ? { channel: query.channel } : {}),
        ...(query.cursor ? { after: query.cursor } : {}),
        limit: query.limit,
      });
      res.json({
        id: params.id,
        state: rec.state,
        requestedAt: rec.requestedAt.toISOString(),
        totals: page.totals,
        items: page.items.map((i) => ({
          deliveryId: i.delivery_id,
          deviceId: i.device_id === '' ? null : i.device_id,
          channel: i.channel,
          token: i.token ? maskToken(i.token) : null,
          state: i.state,
          reason: i.reason ? { code: i.reason.code, message: i.reason.message } : null,
          updatedAt: i.updated_at.toISOString(),
        })),
        next: page.next,
      });
    },
  );

  return r;
}
