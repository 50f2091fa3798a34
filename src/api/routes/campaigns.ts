import { Router } from 'express';
import { z } from 'zod';
import { CHANNELS } from '../../../providers/channels.js';
import { CampaignService } from '../../campaigns/service.js';
import { audienceSchema, campaignSchema, campaignStates } from '../../campaigns/schema.js';
import { DELIVERY_STATUSES } from '../../core/delivery-status.js';
import type { Context } from '../../context.js';
import { RecallsRepo } from '../../db/recalls-repo.js';
import { CampaignsRepo } from '../../db/campaigns-repo.js';
import { PushService } from '../../services/push-service.js';
import type { SelfRecall } from '../../self/recall.js';
import { DomainError } from '../../core/errors.js';
import { appOf } from '../auth.js';
import { route } from '../define.js';
import { ApiError } from '../errors.js';

const counts = z.object(Object.fromEntries(DELIVERY_STATUSES.map((s) => [s, z.number()])));
const rates = z.object({
  delivered: z.number().nullable().describe('delivered / sent; null when nothing was sent'),
  opened: z.number().nullable().describe('opened / delivered; null when nothing was delivered'),
});

const campaignView = z.object({
  id: z.string(),
  name: z.string(),
  state: z.enum(campaignStates),
  audienceSize: z.number().describe('Devices in the audience when the current (or last) run started'),
  dispatched: z.number().describe('Deliveries created, over every run'),
  skipped: z.object({ capped: z.number(), missed: z.number(), noChannel: z.number() }),
  counts,
  rates,
  variants: z.array(z.object({ name: z.string(), weight: z.number(), dispatched: z.number(), counts, rates })),
  winner: z.string().nullable().optional().describe('A/B test: the variant sent to the rest, once decided'),
  runs: z.array(z.object({ messageId: z.string(), startedAt: z.string(), counts })),
  nextRunAt: z.string().nullable(),
  schedule: z.unknown(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

const idParams = z.object({ id: z.string().min(1).max(128) });

/** Campaigns (README: Campaigns), behind the `campaigns` scope. */
export function campaignsRouter(ctx: Context, selfRecall?: SelfRecall): Router {
  const r = Router();
  const service = new CampaignService(ctx);
  // `cancel` with `{"recall": true}` recalls every run's message as DELETE /v1/messages/:id does.
  const push = new PushService(ctx.config, ctx.repos.messages, ctx.repos.deliveries, ctx.queues, selfRecall, undefined, new RecallsRepo(ctx.db));
  const runs = new CampaignsRepo(ctx.db);

  route(
    r,
    {
      method: 'post', path: '/v1/campaigns/preview', tag: 'campaigns', auth: 'campaigns',
      summary: 'Audience size by platform and by the channel each device would use now; nothing is created',
      body: z.object({ audience: audienceSchema.default({}), options: z.object({ channels: z.array(z.enum(CHANNELS)).min(1).optional() }).passthrough().optional() }).passthrough(),
      responses: {
        200: {
          description: 'Counts',
          schema: z.object({ total: z.number(), byPlatform: z.record(z.string(), z.number()), byChannel: z.record(z.string(), z.number()).describe('`none`: no usable channel') }),
        },
      },
    },
    async (_req, res, { body }) => {
      const appId = appOf(res, 'campaigns');
      res.json(await service.preview(appId, body.audience, body.options?.channels ? { channels: body.options.channels } : {}));
    },
  );

  route(
    r,
    {
      method: 'post', path: '/v1/campaigns', tag: 'campaigns', auth: 'campaigns',
      summary: 'Create a campaign: audience, content (localized, {{var|fallback}}), schedule, throttle, quiet hours, frequency cap, A/B variants',
      body: campaignSchema,
      responses: { 201: { description: 'Created', schema: campaignView } },
    },
    async (_req, res, { body }) => {
      const appId = appOf(res, 'campaigns');
      const c = await service.create(appId, body);
      res.status(201).json(await service.view(c));
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/campaigns', tag: 'campaigns', auth: 'campaigns', summary: 'Campaigns, newest first, cursor-paged',
      query: z.object({ cursor: z.string().max(256).optional().describe('`next` from the previous page'), limit: z.coerce.number().int().min(1).max(100).default(20) }),
      responses: { 200: { description: 'A page', schema: z.object({ items: z.array(campaignView), next: z.string().nullable() }) } },
    },
    async (_req, res, { query }) => {
      const appId = appOf(res, 'campaigns');
      let after: { at: Date; id: string } | null = null;
      if (query.cursor) {
        const [at, id] = Buffer.from(query.cursor, 'base64url').toString().split('|');
        if (!at || !id || Number.isNaN(Date.parse(at))) throw new ApiError('validation_failed', 'query.cursor: not a cursor this API returned');
        after = { at: new Date(at), id };
      }
      const rows = await service.repo.list(appId, after, query.limit + 1);
      const page = rows.slice(0, query.limit);
      const last = page[page.length - 1];
      res.json({
        items: await Promise.all(page.map((c) => service.view(c))),
        next: rows.length > query.limit && last ? Buffer.from(`${last.created_at.toISOString()}|${last.id}`).toString('base64url') : null,
      });
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/campaigns/:id', tag: 'campaigns', auth: 'campaigns', summary: 'Progress, counts and rates, per variant and per run',
      params: idParams,
      responses: { 200: { description: 'The campaign', schema: campaignView } },
    },
    async (_req, res, { params }) => {
      const appId = appOf(res, 'campaigns');
      res.json(await service.view(await service.get(appId, params.id)));
    },
  );

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    route(
      r,
      {
        method: 'post', path: `/v1/campaigns/:id/${action}`, tag: 'campaigns', auth: 'campaigns',
        summary: {
          pause: 'Pause: nothing more is dispatched or sent (queued sends wait) until resumed',
          resume: 'Resume a paused campaign where it stopped, at its throttle',
          cancel: 'Cancel: nothing more is dispatched, and deliveries not sent yet end `cancelled`',
        }[action],
        params: idParams,
        body: z.strictObject({
          recall: z.boolean().optional().describe(action === 'cancel' ? 'Also recall what every run sent (GET /v1/messages/:id/recall per run reports it)' : 'Only for cancel'),
        }),
        responses: { 200: { description: 'The campaign', schema: campaignView }, 409: { description: 'Not possible in the campaign’s state' } },
      },
      async (_req, res, { params, body }) => {
        const appId = appOf(res, 'campaigns');
        if (body.recall && action !== 'cancel') throw new ApiError('validation_failed', `body.recall: only cancel can recall`);
        let c;
        try {
          c = await service[action](appId, params.id);
        } catch (err) {
          // A campaign that already completed can still be recalled: only the cancel is moot.
          if (!(body.recall && err instanceof DomainError && err.code === 'invalid_state')) throw err;
          c = await service.get(appId, params.id);
        }
        if (body.recall) for (const run of await runs.runs(appId, c.id)) await push.cancel(appId, run.id);
        res.json(await service.view(c));
      },
    );
  }

  return r;
}
