import { Router } from 'express';
import { z } from 'zod';
import { randomId } from '../../core/secrets.js';
import { SCOPES } from '../../db/apps-repo.js';
import type { Context } from '../../context.js';
import { requireAppAdmin, requireOperator, type Authenticator } from '../auth.js';
import { route } from '../define.js';
import { ApiError } from '../errors.js';

export const appIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and -, at most 64');

const appSchema = z.object({ id: z.string(), name: z.string(), createdAt: z.string() });
const keySchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  scopes: z.array(z.enum(SCOPES)),
  createdAt: z.string(),
  revokedAt: z.string().nullable().optional(),
});

export function appsRouter(ctx: Context, auth: Authenticator): Router {
  const r = Router();
  const { apps } = ctx.repos;

  route(
    r,
    {
      method: 'post', path: '/v1/apps', tag: 'apps', auth: 'operator', summary: 'Create an app (a tenant)',
      body: z.object({ name: z.string().min(1).max(200), id: appIdSchema.optional() }).strict(),
      responses: { 201: { description: 'Created', schema: appSchema } },
    },
    async (_req, res, { body }) => {
      requireOperator(res);
      const created = await apps.create(body.id ?? randomId('app_', 9).replace(/[^A-Za-z0-9_]/g, '_'), body.name);
      if (!created) throw new ApiError('conflict', `app ${body.id} already exists`);
      res.status(201).json({ id: created.id, name: created.name, createdAt: created.created_at.toISOString() });
    },
  );

  route(
    r,
    { method: 'get', path: '/v1/apps', tag: 'apps', auth: 'operator', summary: 'List apps', responses: { 200: { description: 'Apps', schema: z.object({ items: z.array(appSchema) }) } } },
    async (_req, res) => {
      requireOperator(res);
      const rows = await apps.list();
      res.json({ items: rows.map((a) => ({ id: a.id, name: a.name, createdAt: a.created_at.toISOString() })) });
    },
  );

  const settingsSchema = z
    .object({
      androidStrategy: z
        .enum(['self-first', 'vendor-first', 'vendor-only'])
        .optional()
        .describe('Android channel order: self channel first (default), vendor first, or vendor channels only'),
      quotaFallback: z
        .enum(['self', 'fcm', 'none'])
        .optional()
        .describe(
          "When a vendor's daily quota (the device's, or the app's daily total) refuses a message, send it over the self channel (`self`) or FCM (`fcm`) if the device has that channel, or fail it `quota` (`none`, default)",
        ),
      smsDailyCap: z
        .number()
        .int()
        .min(1)
        .max(100_000_000)
        .optional()
        .describe('SMS this app may send per UTC day; never more than the operator’s SMS_DAILY_CAP'),
    })
    .strict();

  route(
    r,
    {
      method: 'put', path: '/v1/apps/:app/settings', tag: 'apps', auth: 'admin', summary: "Set the app's routing policy",
      params: z.object({ app: appIdSchema }),
      body: settingsSchema,
      responses: { 200: { description: 'The settings', schema: settingsSchema } },
    },
    async (_req, res, { params, body }) => {
      requireAppAdmin(res, params.app);
      const row = await apps.setSettings(params.app, body);
      if (!row) throw new ApiError('not_found', 'app not found');
      res.json(row.settings);
    },
  );

  route(
    r,
    {
      method: 'post', path: '/v1/apps/:app/keys', tag: 'apps', auth: 'admin', summary: 'Create an API key (the key is returned once)',
      params: z.object({ app: appIdSchema }),
      body: z.object({ name: z.string().max(200).optional(), scopes: z.array(z.enum(SCOPES)).min(1) }).strict(),
      responses: { 201: { description: 'Created; `key` is shown only in this response', schema: keySchema.extend({ key: z.string() }) } },
    },
    async (_req, res, { params, body }) => {
      requireAppAdmin(res, params.app);
      if (!(await apps.get(params.app))) throw new ApiError('not_found', 'app not found');
      const k = await apps.createKey(params.app, body.name ?? null, [...new Set(body.scopes)]);
      res.status(201).json({ id: k.id, key: k.key, name: k.name, scopes: k.scopes, createdAt: k.createdAt.toISOString() });
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/apps/:app/keys', tag: 'apps', auth: 'admin', summary: 'List API keys (never the secrets)',
      params: z.object({ app: appIdSchema }),
      responses: { 200: { description: 'Keys', schema: z.object({ items: z.array(keySchema) }) } },
    },
    async (_req, res, { params }) => {
      requireAppAdmin(res, params.app);
      const rows = await apps.listKeys(params.app);
      res.json({
        items: rows.map((k) => ({ id: k.id, name: k.name, scopes: k.scopes, createdAt: k.created_at.toISOString(), revokedAt: k.revoked_at?.toISOString() ?? null })),
      });
    },
  );

  route(
    r,
    {
      method: 'delete', path: '/v1/apps/:app/keys/:key', tag: 'apps', auth: 'admin', summary: 'Revoke an API key',
      params: z.object({ app: appIdSchema, key: z.string().min(1).max(64) }),
      responses: { 204: { description: 'Revoked' } },
    },
    async (_req, res, { params }) => {
      requireAppAdmin(res, params.app);
      if (!(await apps.revokeKey(params.app, params.key))) throw new ApiError('not_found', 'key not found');
      auth.forget(params.key);
      res.status(204).end();
    },
  );

  return r;
}
