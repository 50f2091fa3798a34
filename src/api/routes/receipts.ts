import express, { Router } from 'express';
import { z } from 'zod';
import { PROVIDER_MODULES, providerModule } from '../../../providers/registry.js';
import type { ReceiptEvent } from '../../../providers/types.js';
import { safeEqual } from '../../core/secrets.js';
import type { Context } from '../../context.js';
import { route } from '../define.js';
import { checkJson } from '../validate.js';
import { ApiError } from '../errors.js';

const receiptProviders = Object.entries(PROVIDER_MODULES)
  .filter(([, m]) => m?.receipts)
  .map(([c]) => c) as [string, ...string[]];

/**
 * Vendor receipt webhooks: `POST /v1/receipts/<provider>/<appId>?secret=<per-app secret>`. The
 * secret in the URL authenticates the vendor (plus its signature where it signs); the body is
 * parsed by the provider's own module and applied to the matching deliveries.
 */
export function receiptsRouter(ctx: Context): Router {
  const r = Router();
  r.use('/v1/receipts', express.text({ type: () => true, limit: ctx.config.MAX_BODY_BYTES }));

  route(
    r,
    {
      method: 'post', path: '/v1/receipts/:provider/:app', tag: 'receipts', auth: 'none',
      summary: 'Vendor receipt callback (delivered / opened / invalid token); authenticated by the per-app secret in the URL',
      params: z.object({ provider: z.enum(receiptProviders), app: z.string().min(1).max(64) }),
      // A missing secret is the same failure as a wrong one (401), not a malformed request.
      query: z.object({ secret: z.string().max(256).optional() }),
      responses: { 200: { description: 'Applied', schema: z.object({ received: z.number(), matched: z.number(), applied: z.number() }) } },
    },
    async (req, res, { params, query }) => {
      const secret = await ctx.repos.apps.receiptSecret(params.app);
      if (secret === null || !query.secret || !safeEqual(secret, query.secret)) throw new ApiError('unauthenticated', 'unknown app or wrong receipt secret');
      const mod = providerModule(params.provider)!;
      const request = {
        headers: req.headers,
        rawBody: typeof req.body === 'string' ? req.body : '',
        contentType: req.get('content-type') ?? '',
      };
      if (mod.receipts!.verify) {
        const stored = await ctx.repos.credentials.load(params.app, params.provider);
        if (!stored || !mod.receipts!.verify(mod.credentialSchema.parse(stored.credential), request)) {
          throw new ApiError('unauthenticated', 'the receipt signature does not verify');
        }
      }
      let events: ReceiptEvent[];
      try {
        events = mod.receipts!.parse(request);
        checkJson(events, 'body');
      } catch (err) {
        throw new ApiError('invalid_receipt', `malformed ${params.provider} receipt: ${(err as Error).message}`);
      }
      const result = await ctx.repos.deliveries.applyEvents(
        params.app,
        params.provider,
        events.map((e) => ({
          event: e.event,
          ...(e.providerId ? { providerId: e.providerId } : {}),
          ...(e.messageId ? { messageId: e.messageId } : {}),
          ...(e.token ? { token: e.token } : {}),
          ...(e.at ? { at: e.at } : {}),
          ...(e.reason ? { reason: e.reason } : {}),
        })),
      );
      if (events.length > 0 && result.matched === 0) {
        throw new ApiError('unknown_delivery', 'no delivery matches this receipt', { received: events.length });
      }
      // Dropped over the vendor's daily per-device quota: apps that opt in (MobPush-style) get the
      // message over the self channel or FCM instead, as when the quota is known at send time.
      const fallback = (await ctx.repos.apps.get(params.app))?.settings.quotaFallback;
      if (result.overQuota.length > 0 && (fallback === 'self' || (fallback === 'fcm' && (await ctx.repos.credentials.providers(params.app)).includes('fcm')))) {
        for (const moved of await ctx.repos.deliveries.requeueOnChannel(result.overQuota, fallback)) {
          await ctx.queues.quotaFallback(params.app, moved.messageId, moved.ids, fallback);
        }
      }
      res.json({ received: events.length, matched: result.matched, applied: result.changed });
    },
  );
  return r;
}
