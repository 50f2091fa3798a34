import { Router } from 'express';
import { z } from 'zod';
import { selfPayload } from '../../../providers/self.js';
import type { PushContent } from '../../../providers/types.js';
import type { Context } from '../../context.js';
import { RecallsRepo } from '../../db/recalls-repo.js';
import { DeviceCredentials } from '../../self/device-credentials.js';
import { appOf, type Authenticator } from '../auth.js';
import { route } from '../define.js';
import { ApiError, notFound } from '../errors.js';
import { deviceIdSchema } from './devices.js';
import { deviceAuth } from './events.js';

/** Pending revokes listed per inbox read; the rest follow on the next reads. */
const REVOKES_PER_SYNC = 100;

const inboxItem = z.object({
  id: z.string().describe('Relay message id (the SDK de-duplicates by it across channels)'),
  seq: z.number().int().describe("The device's sequence number; pass the highest one seen as `after`"),
  notification: z.record(z.string(), z.unknown()).optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  expiresAt: z.number().int().describe('Epoch milliseconds after which the message is no longer valid'),
});

/** A recalled message the device may have shown: remove it, then report `revoked` (POST /v1/events). */
const revokeItem = z.object({
  type: z.literal('revoke'),
  id: z.string(),
  seq: z.number().int().describe('The seq the message had (below `after` usually: it does not move the cursor)'),
});

/**
 * `GET /v1/devices/:id/inbox?after=<seq>`: the sync / poll fallback of the self channel (README: Self-hosted channel; docs/self-channel.md).
 * Returns the device's pending messages in seq order: every self-channel message with a seq above
 * `after` that the device has not acked (PUBACK, or a `delivered` / `opened` event) and whose TTL
 * has not ended. A message stays in the inbox until it is acked, so a client that polls reports
 * `delivered` (POST /v1/events) for what it took; `after` skips what it has already seen. The
 * last page ends with `{"type":"revoke","id","seq"}` items for recalled messages: the client
 * removes them and reports `revoked`.
 * Authenticated as the device itself (`Authorization: Device <id>:<password>`), or with an API key
 * that has the `devices` scope.
 */
export function inboxRouter(ctx: Context, auth: Authenticator): Router {
  const r = Router();
  const creds = new DeviceCredentials(ctx);
  const recalls = new RecallsRepo(ctx.db);
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
          schema: z.object({ items: z.array(z.union([inboxItem, revokeItem])), next: z.number().int().nullable() }),
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
      // The last page also lists the revokes of recalled messages the device has not confirmed
      // (docs/recall.md): a device that only polls gets them too.
      const revokes = more ? [] : await recalls.pendingRevokes(appId, params.id, REVOKES_PER_SYNC);
      res.json({
        items: [
          ...page.map((m) => ({
            id: m.messageId,
            seq: m.seq,
            ...selfPayload(m.request as Pick<PushContent, 'notification' | 'data' | 'overrides'>),
            expiresAt: m.expiresAt.getTime(),
          })),
          ...revokes.map((r) => ({ type: 'revoke' as const, id: r.messageId, seq: r.seq })),
        ],
        next: more ? page[page.length - 1]!.seq : null,
      });
    },
  );
  return r;
}
