import { Router } from 'express';
import { z } from 'zod';
import { CHANNELS } from '../../../providers/channels.js';
import { DomainError } from '../../core/errors.js';
import { maskToken, sha256 } from '../../core/secrets.js';
import type { Context } from '../../context.js';
import { CURSOR_PATTERN, DEAD_STATUSES, DeadLettersRepo, type DeadLetterFilter, type DeadStatus } from '../../db/dead-letters-repo.js';
import type { PresenceLookup } from '../../../workers/route.js';
import { REPLAY_MAX, ReplayService, SKIP_REASONS } from '../../services/replay.js';
import { appOf } from '../auth.js';
import { route } from '../define.js';
import { ApiError } from '../errors.js';
import { instantSchema } from '../../core/instant.js';

/** `failed`, `expired` or `failed,expired`; in a JSON body also a list. */
const statusText = z
  .string()
  .regex(/^(failed|expired)(,(failed|expired))?$/, { message: 'a comma-separated list of failed, expired' })
  .describe('End states, comma-separated: failed, expired (default both)');
const statusList = z.array(z.enum(DEAD_STATUSES)).min(1).max(DEAD_STATUSES.length);

const filterFields = {
  channel: z.enum(CHANNELS).optional(),
  code: z.string().min(1).max(100).optional().describe("The delivery's error code (`quota`, `UNREGISTERED`, `10070`, …)"),
  from: instantSchema().optional().describe('Ended at or after (RFC 3339)'),
  to: instantSchema().optional().describe('Ended before (RFC 3339)'),
  cursor: z.string().regex(CURSOR_PATTERN).optional().describe('`next` from the previous page'),
};

const deadLetterView = z.object({
  id: z.string().describe('The delivery id'),
  messageId: z.string(),
  deviceId: z.string().nullable(),
  channel: z.string().nullable(),
  token: z.string().nullable().describe('Masked'),
  status: z.enum(DEAD_STATUSES),
  attempts: z.number(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  failedAt: z.string().describe('When the delivery ended failed or expired'),
  replayedAs: z.string().nullable().describe('The message a replay sent it again under'),
});

const replayBody = z
  .object({
    ids: z
      .array(z.string().regex(/^\d{1,18}$/, { message: 'a delivery id' }))
      .min(1)
      .max(REPLAY_MAX)
      .optional()
      .describe('Delivery ids to replay (instead of a filter)'),
    status: z.union([statusText, statusList]).optional(),
    ...filterFields,
    limit: z.number().int().min(1).max(REPLAY_MAX).optional().describe(`Dead letters of the filter to replay (default 100, at most ${REPLAY_MAX}); page with \`next\``),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.ids === undefined) return;
    const mixed = (['status', 'channel', 'code', 'from', 'to', 'cursor', 'limit'] as const).filter((k) => b[k] !== undefined);
    if (mixed.length > 0) ctx.addIssue({ code: 'custom', path: ['ids'], message: `give ids or a filter, not both (also got ${mixed.join(', ')})` });
  });

const replayAnswer = z.object({
  replayed: z.number(),
  skipped: z.record(z.enum(SKIP_REASONS), z.number()).describe('Deliveries not replayed, by reason'),
  messages: z.array(z.object({ id: z.string(), replayOf: z.string(), deliveries: z.number() })).describe('The new messages'),
  items: z.array(
    z.object({
      id: z.string(),
      result: z.enum(['replayed', 'skipped']),
      reason: z.enum(SKIP_REASONS).optional(),
      messageId: z.string().optional().describe('The new message (or, for already_replayed, the earlier replay)'),
    }),
  ),
  next: z.string().nullable().describe('Filter replays: the cursor of the next page; null at the end'),
});

function statuses(s: string | readonly DeadStatus[] | undefined): DeadStatus[] {
  if (s === undefined) return [...DEAD_STATUSES];
  return [...new Set(typeof s === 'string' ? (s.split(',') as DeadStatus[]) : s)];
}

function filterOf(q: { status?: string | DeadStatus[]; channel?: string; code?: string; from?: string; to?: string; cursor?: string }, limit: number): DeadLetterFilter {
  return {
    statuses: statuses(q.status),
    ...(q.channel ? { channel: q.channel } : {}),
    ...(q.code ? { code: q.code } : {}),
    ...(q.from ? { from: new Date(q.from) } : {}),
    ...(q.to ? { to: new Date(q.to) } : {}),
    ...(q.cursor ? { cursor: q.cursor } : {}),
    limit,
  };
}

/** Dead letters across an app's messages, and their replay. */
export function deliveriesRouter(ctx: Context, presence?: PresenceLookup): Router {
  const r = Router();
  const deadLetters = new DeadLettersRepo(ctx.db);
  const replay = new ReplayService(ctx.config, ctx.db, deadLetters, ctx.queues, presence ?? (async () => new Set()));

  route(
    r,
    {
      method: 'get', path: '/v1/deliveries', tag: 'push', auth: 'push',
      summary: 'Dead letters: failed and expired deliveries across the app’s messages, oldest first, cursor-paged',
      query: z.object({ status: statusText.optional(), ...filterFields, limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict(),
      responses: { 200: { description: 'A page of dead letters', schema: z.object({ items: z.array(deadLetterView), next: z.string().nullable() }) } },
    },
    async (_req, res, { query }) => {
      const appId = appOf(res, 'push');
      const page = await deadLetters.list(appId, filterOf(query, query.limit));
      res.json({
        items: page.items.map((d) => ({
          id: d.id,
          messageId: d.messageId,
          deviceId: d.deviceId === '' ? null : d.deviceId,
          channel: d.channel,
          token: d.token ? maskToken(d.token) : null,
          status: d.status,
          attempts: d.attempts,
          error: d.error,
          failedAt: d.at.toISOString(),
          replayedAs: d.replayedAs,
        })),
        next: page.next,
      });
    },
  );

  route(
    r,
    {
      method: 'post', path: '/v1/deliveries/replay', tag: 'push', auth: 'push',
      summary: 'Send dead letters again, each as a new delivery of a new message linked to the original; never twice, never to a quarantined token; `Idempotency-Key` returns the first answer to a retried request',
      body: replayBody,
      responses: {
        200: { description: 'What was replayed and skipped', schema: replayAnswer },
        409: { description: 'Idempotency-Key reused with another body, or its first request still running' },
      },
    },
    async (req, res, { body }) => {
      const appId = appOf(res, 'push');
      const run = () => (body.ids ? replay.replay(appId, { ids: body.ids }) : replay.replay(appId, { filter: filterOf(body, body.limit ?? 100) }));
      const key = req.get('idempotency-key');
      if (key === undefined) return res.json(await run());
      if (key.length === 0 || key.length > 255) throw new ApiError('validation_failed', 'headers.idempotency-key: must be 1 to 255 characters');
      // A repeated request with the key gets the first answer again. Without one, a repeat is
      // still harmless: a delivery is never replayed twice (the answer then says already_replayed).
      const slot = `${ctx.config.QUEUE_PREFIX}:replay-key:${appId}:${sha256(key)}`;
      const hash = sha256(JSON.stringify(body));
      const redis = ctx.queues.connection;
      // Pending for a minute only: a process that dies mid-replay does not block the key for a day.
      if ((await redis.set(slot, JSON.stringify({ hash }), 'EX', 60, 'NX')) === null) {
        const prior = JSON.parse((await redis.get(slot)) ?? '{}') as { hash?: string; result?: unknown };
        if (prior.hash !== undefined && prior.hash !== hash) throw new DomainError('idempotency_conflict', 'this Idempotency-Key was already used with a different request body');
        if (prior.result === undefined) throw new DomainError('idempotency_in_progress', 'a replay with this Idempotency-Key is still running; retry shortly');
        res.set('Idempotent-Replayed', 'true');
        return res.json(prior.result);
      }
      try {
        const result = await run();
        await redis.set(slot, JSON.stringify({ hash, result }), 'EX', 86_400);
        return res.json(result);
      } catch (err) {
        await redis.del(slot).catch(() => undefined);
        throw err;
      }
    },
  );

  return r;
}
