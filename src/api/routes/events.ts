import express, { Router, type Request } from 'express';
import { z } from 'zod';
import type { Context } from '../../context.js';
import { RecallsRepo } from '../../db/recalls-repo.js';
import { DeviceCredentials } from '../../self/device-credentials.js';
import { appOf, type Authenticator } from '../auth.js';
import { route } from '../define.js';
import { ApiError } from '../errors.js';
import { deviceIdSchema } from './devices.js';

/** 9999-12-31T23:59:59.999Z. */
const MAX_EPOCH_MS = 253_402_300_799_999;

const eventSchema = z
  .object({
    deviceId: deviceIdSchema.optional().describe('Required with an API key; implied by device authentication'),
    messageId: z.string().min(1).max(128),
    event: z.enum(['delivered', 'opened', 'revoked']).describe('`revoked`: the device applied a recall (removed the message) it took from the inbox'),
    // Bounded to what a PostgreSQL timestamp and an ISO string both hold: a 5-digit year failed the write (500).
    at: z
      .union([z.iso.datetime({ offset: true }), z.number().int().positive().max(MAX_EPOCH_MS, 'epoch milliseconds up to the year 9999')])
      .optional()
      .describe('When it happened (default: now)'),
  })
  .strict();

const bodySchema = z.union([eventSchema, z.object({ events: z.array(eventSchema).min(1).max(1000) }).strict()]);

/**
 * `Authorization: Device <deviceId>:<password>` (the self-channel password from the device's
 * registration) lets an app report its own events without holding an API key. A password of a
 * deleted device, or one replaced by a rotation, no longer verifies.
 */
export async function deviceAuth(req: Request, creds: DeviceCredentials): Promise<{ appId: string; deviceId: string } | null> {
  const m = /^Device\s+(.+):([^:\s]+)$/.exec(req.get('authorization') ?? '');
  if (!m) return null;
  const appId = await creds.verify(m[1]!, m[2]!);
  return appId ? { appId, deviceId: m[1]! } : null;
}

/** Client SDK reports: a push was delivered to, or opened on, a device. */
export function eventsRouter(ctx: Context, auth: Authenticator): Router {
  const r = Router();
  const creds = new DeviceCredentials(ctx);
  const recalls = new RecallsRepo(ctx.db);
  r.use('/v1/events', express.json({ limit: ctx.config.MAX_BODY_BYTES }));
  route(
    r,
    {
      method: 'post', path: '/v1/events', tag: 'push', auth: 'device',
      summary: 'Report `delivered` / `opened` (or `revoked`, a recall applied) for a message on a device (device password, or an API key with the push scope)',
      body: bodySchema,
      responses: { 200: { description: 'Applied', schema: z.object({ received: z.number(), applied: z.number() }) } },
    },
    async (req, res, { body }) => {
      const events = 'events' in body ? body.events : [body];
      const device = await deviceAuth(req, creds);
      let appId: string;
      if (device) {
        appId = device.appId;
        if (events.some((e) => e.deviceId !== undefined && e.deviceId !== device.deviceId)) {
          throw new ApiError('forbidden', 'a device may report only its own events');
        }
      } else {
        res.locals.principal = await auth.resolve(req.get('authorization'));
        appId = appOf(res, 'push');
        const i = events.findIndex((e) => !e.deviceId);
        if (i >= 0) throw new ApiError('validation_failed', `body${'events' in body ? `.events[${i}]` : ''}.deviceId: required with an API key`);
      }
      for (const e of events) ctx.lastSeen.touch(appId, device?.deviceId ?? e.deviceId!);
      // A revoke the device applied: its recall is withdrawn (docs/recall.md). Only pending ones move.
      let revoked = 0;
      for (const e of events) if (e.event === 'revoked') revoked += await recalls.revokeAcked(appId, device?.deviceId ?? e.deviceId!, e.messageId);
      const delivery = events.filter((e): e is typeof e & { event: 'delivered' | 'opened' } => e.event !== 'revoked');
      const result = await ctx.repos.deliveries.applyEvents(
        appId,
        null,
        delivery.map((e) => ({
          event: e.event,
          messageId: e.messageId,
          deviceId: device?.deviceId ?? e.deviceId!,
          at: e.at === undefined ? Date.now() : typeof e.at === 'number' ? e.at : Date.parse(e.at),
        })),
      );
      res.json({ received: events.length, applied: result.changed + revoked });
    },
  );
  return r;
}
