import { Router } from 'express';
import { z } from 'zod';
import { PROVIDER_MODULES, providerModule } from '../../../providers/registry.js';
import { CredentialError, CredentialUnreadableError } from '../../../providers/types.js';
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
  const receiptSecretOf = async (appId: string): Promise<string> => {
    if (!(await apps.get(appId))) throw new ApiError('not_found', 'app not found');
    const secret = await apps.receiptSecret(appId);
    // Sealed under another CREDENTIALS_KEY (or written around Relay): a deployment fault, not the caller's.
    if (secret === null) throw new Error(`the receipt secret of app ${appId} does not open under CREDENTIALS_KEY`);
    return secret;
  };
  const baseUrl = (req: { protocol: string; get(h: string): string | undefined }) => `${req.protocol}://${ctx.config.PUBLIC_HOST ?? req.get('host')}`;

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
      const secret = await receiptSecretOf(params.app);
      const mod = providerModule(params.provider)!;
      // Vendors that post receipts only to a URL sent with each message get this app's receipt URL
      // unless the body names another.
      if (mod.wantsCallbackUrl && body.callbackUrl === undefined) {
        body.callbackUrl = receiptUrl(baseUrl(req), params.provider, params.app, secret);
      }
      const parsed = mod.credentialSchema.safeParse(body);
      if (!parsed.success) throw validationError('body', parsed.error);
      let cred = parsed.data;
      if (mod.keepFromStored) {
        try {
          cred = await mod.keepFromStored(cred, async () => (await credentials.load(params.app, params.provider))?.credential ?? null);
        } catch (err) {
          if (err instanceof CredentialUnreadableError) throw new ApiError('credential_unreadable', err.message);
          throw err;
        }
      }
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
      res.json(view(params.app, secret, baseUrl(req), stored));
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
      const secret = await receiptSecretOf(params.app);
      const rows = await credentials.list(params.app);
      res.json({ items: rows.map((c) => view(params.app, secret, baseUrl(req), c)) });
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
