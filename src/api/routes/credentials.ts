import { Router } from 'express';
import { z } from 'zod';
import { PROVIDER_MODULES, providerModule } from '../../../providers/registry.js';
import { CredentialError } from '../../../providers/types.js';
import { webpushCredentialSchema, type WebPushCredential } from '../../../providers/webpush.js';
import type { Context } from '../../context.js';
import { QuotaDays } from '../../quota-days.js';
import { requireAppAdmin } from '../auth.js';
import { route } from '../define.js';
import { ApiError, formatPath, validationError } from '../errors.js';
import { appIdSchema } from './apps.js';

const credentialView = z.object({
  provider: z.string(),
  info: z.record(z.string(), z.unknown()),
  version: z.number(),
  updatedAt: z.string(),
  receiptUrl: z.string().optional().describe('Vendor receipt callback URL, ready to paste into the vendor console'),
});

const receiptUrl = (base: string, provider: string, appId: string, secret: string) =>
  `${base}/v1/receipts/${provider}/${appId}?secret=${secret}`;

export function credentialsRouter(ctx: Context): Router {
  const r = Router();
  const { credentials, apps } = ctx.repos;

  const view = (appId: string, secret: string, base: string, c: { provider: string; info: Record<string, unknown>; version: number; updatedAt: Date }) => ({
    provider: c.provider,
    info: c.info,
    version: c.version,
    updatedAt: c.updatedAt.toISOString(),
    ...(providerModule(c.provider)?.receipts ? { receiptUrl: receiptUrl(base, c.provider, appId, secret) } : {}),
  });
  const baseUrl = (req: { protocol: string; get(h: string): string | undefined }) => `${req.protocol}://${ctx.config.PUBLIC_HOST ?? req.get('host')}`;

  /**
   * A Web Push PUT without keys keeps the app's stored VAPID keys: browsers bound every
   * subscription to the public key, and push services refuse another one (403, RFC 8292 §4.1).
   * Keys are generated (by complete()) only when the app has none yet.
   */
  const keepVapidKeys = async (appId: string, cred: WebPushCredential): Promise<WebPushCredential> => {
    if (cred.vapidPublicKey !== undefined) return cred;
    let stored;
    try {
      stored = await credentials.load(appId, 'webpush');
    } catch {
      // Generating new keys here would silently orphan every subscription: ask for the keys instead.
      throw new ApiError('credential_unreadable', 'the stored webpush credential cannot be decrypted (was CREDENTIALS_KEY changed?): send vapidPublicKey and vapidPrivateKey to replace it');
    }
    const prev = stored ? webpushCredentialSchema.safeParse(stored.credential) : undefined;
    const { vapidPublicKey, vapidPrivateKey } = prev?.success ? prev.data : {};
    return vapidPublicKey && vapidPrivateKey ? { ...cred, vapidPublicKey, vapidPrivateKey } : cred;
  };

  route(
    r,
    {
      method: 'put', path: '/v1/apps/:app/credentials/:provider', tag: 'credentials', auth: 'admin',
      summary: "Set a provider's credentials (validated; stored encrypted; never returned)",
      params: z.object({ app: appIdSchema, provider: z.enum(Object.keys(PROVIDER_MODULES) as [string, ...string[]]) }),
      body: z.record(z.string(), z.unknown()),
      responses: { 200: { description: 'Stored', schema: credentialView } },
    },
    async (req, res, { params, body }) => {
      requireAppAdmin(res, params.app);
      const app = await apps.get(params.app);
      if (!app) throw new ApiError('not_found', 'app not found');
      const mod = providerModule(params.provider)!;
      // Vendors that post receipts only to a URL sent with each message get this app's receipt URL
      // unless the body names another.
      if (mod.wantsCallbackUrl && body.callbackUrl === undefined) {
        body.callbackUrl = receiptUrl(baseUrl(req), params.provider, params.app, app.receipt_secret);
      }
      const parsed = mod.credentialSchema.safeParse(body);
      if (!parsed.success) throw validationError('body', parsed.error);
      let cred = parsed.data;
      if (params.provider === 'webpush') cred = await keepVapidKeys(params.app, cred as WebPushCredential);
      try {
        mod.checkCredential?.(cred);
        cred = mod.complete ? mod.complete(cred) : cred;
      } catch (err) {
        if (err instanceof CredentialError) {
          const path = formatPath('body', err.path ? err.path.split('.') : []);
          throw new ApiError('invalid_credentials', `${path}: ${err.message}`, [{ path, message: err.message }]);
        }
        throw err;
      }
      const stored = await credentials.put(params.app, params.provider, cred, mod.describe(cred));
      // A new credential may be another vendor app, with a daily total of its own.
      await new QuotaDays(ctx.queues.connection, ctx.config.QUEUE_PREFIX, ctx.clock).clear(params.app, params.provider);
      res.json(view(params.app, app.receipt_secret, baseUrl(req), stored));
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/apps/:app/credentials', tag: 'credentials', auth: 'admin', summary: 'Which providers are configured (redacted)',
      params: z.object({ app: appIdSchema }),
      responses: { 200: { description: 'Configured providers', schema: z.object({ items: z.array(credentialView) }) } },
    },
    async (req, res, { params }) => {
      requireAppAdmin(res, params.app);
      const app = await apps.get(params.app);
      if (!app) throw new ApiError('not_found', 'app not found');
      const rows = await credentials.list(params.app);
      res.json({ items: rows.map((c) => view(params.app, app.receipt_secret, baseUrl(req), c)) });
    },
  );

  route(
    r,
    {
      method: 'delete', path: '/v1/apps/:app/credentials/:provider', tag: 'credentials', auth: 'admin', summary: "Remove a provider's credentials",
      params: z.object({ app: appIdSchema, provider: z.string() }),
      responses: { 204: { description: 'Removed' } },
    },
    async (_req, res, { params }) => {
      requireAppAdmin(res, params.app);
      if (!(await credentials.delete(params.app, params.provider))) throw new ApiError('not_found', 'credentials not found');
      res.status(204).end();
    },
  );

  return r;
}
