import { Router } from 'express';
import { z } from 'zod';
import { SCOPES } from '../../db/apps-repo.js';
import type { Context } from '../../context.js';
import { appOf, principal } from '../auth.js';
import { route } from '../define.js';

const JOB_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed'] as const;

const queueDepth = z.object({ name: z.string(), ...Object.fromEntries(JOB_STATES.map((s) => [s, z.number()])) });

/**
 * What the dashboard needs besides the resource APIs: who the key is, and live queue depths. Bull
 * Board (/admin/queues) is the operator's; these depths are read-only numbers any key with the
 * `stats` scope may see. The queues are shared by every app, so they are not split per app.
 */
export function consoleRouter(ctx: Context): Router {
  const r = Router();

  route(
    r,
    {
      method: 'get', path: '/v1/me', tag: 'apps', auth: 'any', summary: "The caller: the operator, or an API key's app and scopes",
      responses: {
        200: {
          description: 'The caller',
          schema: z.union([
            z.object({ kind: z.literal('operator') }),
            z.object({ kind: z.literal('key'), appId: z.string(), scopes: z.array(z.enum(SCOPES)) }),
          ]),
        },
      },
    },
    (_req, res) => {
      const p = principal(res);
      res.json(p.kind === 'operator' ? { kind: 'operator' } : { kind: 'key', appId: p.appId, scopes: [...p.scopes] });
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/queues', tag: 'stats', auth: 'stats', summary: 'Jobs per queue (route, each channel, self-ack) and state, shared by every app',
      responses: { 200: { description: 'Queue depths', schema: z.object({ at: z.string(), queues: z.array(queueDepth) }) } },
    },
    async (_req, res) => {
      if (principal(res).kind !== 'operator') appOf(res, 'stats');
      const queues = await Promise.all(
        ctx.queues.all().map(async (q) => {
          const c = await q.getJobCounts(...JOB_STATES);
          return { name: q.name, ...Object.fromEntries(JOB_STATES.map((s) => [s, c[s] ?? 0])) };
        }),
      );
      res.json({ at: new Date().toISOString(), queues });
    },
  );

  return r;
}
