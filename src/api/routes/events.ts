import express, { Router, type Request } from 'express';
import { z } from 'zod';
import { verifyDeviceToken } from '../../core/device-token.js';
import type { Context } from '../../context.js';
import { appOf, type Authenticator } from '../auth.js';
import { route } from '../define.js';
import { ApiError } from '../errors.js';
import { deviceIdSchema } from './devices.js';

const eventSchema = z
  .object({
    deviceId: deviceIdSchema.optional().describe('Required with an API key; implied by device authentication'),
    messageId: z.string().min(1).max(128),
    event: z.enum(['delivered', 'opened']),
    at: z.union([z.iso.datetime({ offset: true }), z.number().int().positive()]).optional().describe('When it happened (default: now)'),
  })
  .strict();

const bodySchema = z.union([eventSchema, z.object({ events: z.array(eventSchema).min(1).max(1000) }).strict()]);

/**
 * `Authorization: Device <deviceId>:<password>` (the self-channel password from the device's
 * registration) lets an app report its own events without holding an API key.
 */
export function deviceAuth(req: Request, secret: string): { appId: string; deviceId: string } | null {
  const m = /^Device\s+(.+):([^:\s]+)$/.exec(req.get('authorization') ?? '');
  if (!m) return null;
  const appId = verifyDeviceToken(secret, m[1]!, m[2]!);
  return appId ? { appId, deviceId: m[1]! } : null;
}

/** Client SDK reports: a push was delivered to, or opened on, a device. */
export function eventsRouter(ctx: Context, auth: Authenticator): Router {
  const r = Router();
  r.use('/v1/events', express.json({ limit: ctx.config.MAX_BODY_BYTES }));
  route(
    r,
    {
      method: 'post', path: '/v1/events', tag: 'push', auth: 'device',
      summary: 'Report `delivered` / `opened` for a message on a device (device password, or an API key with the push scope)',
      body: bodySchema,
      responses: { 200: { description: 'Applied', schema: z.object({ received: z.number(), applied: z.number() }) } },
    },
    async (req, res, { body }) => {
      const events = 'events' in body ? body.events : [body];
      const device = deviceAuth(req, ctx.secrets.deviceTokenSecret);
      let appId: string;
      if (device) {
        appId = device.appId;
        if (events.some((e) => e.deviceId !== undefined && e.deviceId !== device.deviceId)) {
          throw new ApiError(403, 'forbidden', 'a device may report only its own events');
        }
      } else {
        res.locals.principal = await auth.resolve(req.get('authorization'));
        appId = appOf(res, 'push');
        const i = events.findIndex((e) => !e.deviceId);
        if (i >= 0) throw new ApiError(400, 'validation_failed', `body${'events' in body ? `.events[${i}]` : ''}.deviceId: required with an API key`);
      }
      for (const e of events) ctx.lastSeen.touch(appId, device?.deviceId ?? e.deviceId!);
      const result = await ctx.repos.deliveries.applyEvents(
        appId,
        null,
        events.map((e) => ({
          event: e.event,
          messageId: e.messageId,
          deviceId: device?.deviceId ?? e.deviceId!,
          at: e.at === undefined ? Date.now() : typeof e.at === 'number' ? e.at : Date.parse(e.at),
        })),
      );
      res.json({ received: events.length, applied: result.changed });
    },
  );
  return r;
}
