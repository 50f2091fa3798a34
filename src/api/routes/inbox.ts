import { Router } from 'express';
import { z } from 'zod';
import { selfPayload } from '../../../providers/self.js';
import type { PushContent } from '../../../providers/types.js';
import type { Context } from '../../context.js';
import { DeviceCredentials } from '../../self/device-credentials.js';
import { appOf, type Authenticator } from '../auth.js';
import { route } from '../define.js';
import { ApiError, notFound } from '../errors.js';
import { deviceIdSchema } from './devices.js';
import { deviceAuth } from './events.js';

const inboxItem = z.object({
  id: z.string().describe('Relay message id (the SDK de-duplicates by it across channels)'),
  seq: z.number().int().describe("The device's sequence number; pass the highest one seen as `after`"),
  notification: z.record(z.string(), z.unknown()).optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  expiresAt: z.number().int().describe('Epoch milliseconds after which the message is no longer valid'),
});

/**
 * `GET /v1/devices/:id/inbox?after=<seq>`: the sync / poll fallback of the self channel (README: Self-hosted channel; docs/self-channel.md).
 * Returns the device's pending messages in seq order: every self-channel message with a seq above
 * `after` that the device has not acked (PUBACK, or a `delivered` / `opened` event) and whose TTL
 * has not ended. A message stays in the inbox until it is acked, so a client that polls reports
 * `delivered` (POST /v1/events) for what it took; `after` skips what it has already seen.
 * Authenticated as the device itself (`Authorization: Device <id>:<password>`), or with an API key
 * that has the `devices` scope.
 */
export function inboxRouter(ctx: Context, auth: Authenticator): Router {
  const r = Router();
  const creds = new DeviceCredentials(ctx);
  route(
    r,
    {
      method: 'get', path: '/v1/devices/:id/inbox', tag: 'devices', auth: 'device',
      summary: 'Pending self-channel messages of a device after a seq (device password, or an API key with the devices scope)',
      params: z.object({ id: deviceIdSchema }),
      query: z.object({
        after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0).describe('Highest seq already seen'),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
      }),
      responses: {
        200: {
          description: 'A page of pending messages; `next` is the `after` of the next page, null on the last',
          schema: z.object({ items: z.array(inboxItem), next: z.number().int().nullable() }),
        },
        401: { description: 'Bad device password or API key' },
        403: { description: "A device reading another device's inbox" },
      },
    },
    async (req, res, { params, query }) => {
      const device = await deviceAuth(req, creds);
      let appId: string;
      if (device) {
        if (device.deviceId !== params.id) throw new ApiError('forbidden', 'a device may read only its own inbox');
        appId = device.appId;
      } else {
        res.locals.principal = await auth.resolve(req.get('authorization'));
        appId = appOf(res, 'devices');
      }
      const exists = await ctx.db.selectFrom('devices').select('id').where('app_id', '=', appId).where('id', '=', params.id).executeTakeFirst();
      if (!exists) throw notFound('device');
      const rows = await ctx.repos.self.pending(appId, params.id, query.after, query.limit + 1);
      const more = rows.length > query.limit;
      const page = more ? rows.slice(0, query.limit) : rows;
      res.json({
        items: page.map((m) => ({
          id: m.messageId,
          seq: m.seq,
          ...selfPayload(m.request as Pick<PushContent, 'notification' | 'data' | 'overrides'>),
          expiresAt: m.expiresAt.getTime(),
        })),
        next: more ? page[page.length - 1]!.seq : null,
      });
    },
  );
  return r;
}
