import { Router, type Request } from 'express';
import { z } from 'zod';
import { CHANNELS, type Channel } from '../../../providers/types.js';
import { checkSubscription, subscriptionToken } from '../../../providers/webpush.js';
import { signDeviceToken } from '../../core/device-token.js';
import { maskToken } from '../../core/secrets.js';
import type { Context } from '../../context.js';
import type { DeviceRow, DeviceTokenRow } from '../../db/schema.js';
import { appOf } from '../auth.js';
import { route } from '../define.js';
import { notFound } from '../errors.js';

/** Device ids double as MQTT client ids and topic levels, so topic wildcards and `/` are out. */
export const deviceIdSchema = z.string().regex(/^[A-Za-z0-9._:@-]{1,128}$/, 'letters, digits and . _ : @ -, at most 128');

/**
 * The shape is here for the docs and to refuse unknown fields; what makes a subscription sendable
 * is the provider's checkSubscription(), so registration refuses what a send would quarantine.
 * The value becomes the canonical token string (subscriptionToken()).
 */
const webPushSubscription = z
  .object({
    endpoint: z.string(),
    expirationTime: z.number().nullable().optional(),
    keys: z.object({ p256dh: z.string(), auth: z.string() }).strict(),
  })
  .strict()
  .transform((sub, ctx) => {
    const checked = checkSubscription(sub);
    if (!('message' in checked)) return subscriptionToken(checked);
    ctx.addIssue({ code: 'custom', path: checked.path, message: checked.message });
    return z.NEVER;
  });

const tokenValue = z.string().min(1).max(4096);
const tokensSchema = z
  .object({
    apns: z.string().regex(/^[0-9a-fA-F]{32,200}$/, 'an APNs device token is hex').nullable().optional(),
    fcm: tokenValue.nullable().optional(),
    huawei: tokenValue.nullable().optional(),
    xiaomi: tokenValue.nullable().optional(),
    oppo: tokenValue.nullable().optional(),
    vivo: tokenValue.nullable().optional(),
    honor: tokenValue.nullable().optional(),
    meizu: tokenValue.nullable().optional(),
    webpush: webPushSubscription.nullable().optional().describe("The browser's PushSubscription JSON"),
  })
  .strict()
  .describe('Channel tokens; null removes one');

export const deviceBodySchema = z
  .object({
    platform: z.enum(['ios', 'android', 'web']),
    brand: z.string().min(1).max(32).nullable().optional().describe('huawei, xiaomi, oppo, vivo, honor, meizu or another maker'),
    tokens: tokensSchema.optional(),
    userId: z.string().min(1).max(256).nullable().optional(),
    tags: z.array(z.string().min(1).max(128)).max(100).optional(),
    locale: z.string().max(35).nullable().optional(),
    timezone: z.string().max(64).nullable().optional(),
    appVersion: z.string().max(64).nullable().optional(),
  })
  .strict();

const tokenView = z.object({
  channel: z.string(),
  token: z.string().describe('Masked'),
  state: z.enum(['active', 'invalid']),
  reason: z.string().optional(),
  invalidAt: z.string().optional(),
});

const deviceView = z.object({
  id: z.string(),
  platform: z.string(),
  brand: z.string().nullable(),
  userId: z.string().nullable(),
  tags: z.array(z.string()),
  locale: z.string().nullable(),
  timezone: z.string().nullable(),
  appVersion: z.string().nullable(),
  tokens: z.array(tokenView),
  self: z
    .object({ mqtt: z.string(), ws: z.string(), clientId: z.string(), username: z.string(), password: z.string(), topic: z.string() })
    .optional()
    .describe('Self-channel connection info (Android and web)'),
  lastSeenAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export function tokenJson(t: DeviceTokenRow) {
  return {
    channel: t.channel,
    token: maskToken(t.channel === 'webpush' ? safeEndpoint(t.token) : t.token),
    state: t.state as 'active' | 'invalid',
    ...(t.state === 'invalid' ? { reason: t.invalid_reason ?? 'unknown', invalidAt: t.invalid_at?.toISOString() } : {}),
  };
}

function safeEndpoint(sub: string): string {
  try {
    return String((JSON.parse(sub) as { endpoint?: string }).endpoint ?? sub);
  } catch {
    return sub;
  }
}

export function devicesRouter(ctx: Context, boundMqttPort?: number): Router {
  const r = Router();
  const { devices } = ctx.repos;
  const { config } = ctx;

  const selfInfo = (req: Request, appId: string, id: string) => {
    const host = config.PUBLIC_HOST ?? req.hostname;
    // Port 0 in the config means "bind an ephemeral port": tell devices the one actually bound.
    const mqttPort = config.GATEWAY_MQTT_PORT || boundMqttPort || config.GATEWAY_MQTT_PORT;
    const httpPort = config.PORT || req.socket.localPort || config.PORT;
    return {
      mqtt: `mqtt://${host}:${mqttPort}`,
      ws: `${req.protocol === 'https' ? 'wss' : 'ws'}://${host}:${httpPort}/mqtt`,
      clientId: id,
      username: id,
      password: signDeviceToken(ctx.secrets.deviceTokenSecret, appId, id),
      topic: `devices/${id}`,
    };
  };

  const view = (req: Request, appId: string, d: DeviceRow, tokens: DeviceTokenRow[]) => ({
    id: d.id,
    platform: d.platform,
    brand: d.brand,
    userId: d.user_id,
    tags: d.tags,
    locale: d.locale,
    timezone: d.timezone,
    appVersion: d.app_version,
    tokens: tokens.map(tokenJson),
    ...(d.platform !== 'ios' ? { self: selfInfo(req, appId, d.id) } : {}),
    lastSeenAt: d.last_seen_at?.toISOString() ?? null,
    createdAt: d.created_at.toISOString(),
    updatedAt: d.updated_at.toISOString(),
  });

  route(
    r,
    {
      method: 'put', path: '/v1/devices/:id', tag: 'devices', auth: 'devices',
      summary: 'Register or update a device and its tokens (idempotent); returns its self-channel connection info',
      params: z.object({ id: deviceIdSchema }),
      body: deviceBodySchema,
      responses: { 200: { description: 'The device', schema: deviceView } },
    },
    async (req, res, { params, body }) => {
      const appId = appOf(res, 'devices');
      const tokens: Partial<Record<Channel, string | null>> = {};
      for (const [channel, value] of Object.entries(body.tokens ?? {})) {
        if (value === undefined) continue;
        tokens[channel as Channel] = value;
      }
      const stored = await devices.upsert(appId, params.id, {
        platform: body.platform,
        ...(body.brand !== undefined ? { brand: body.brand } : {}),
        tokens,
        ...(body.userId !== undefined ? { userId: body.userId } : {}),
        ...(body.tags !== undefined ? { tags: [...new Set(body.tags)] } : {}),
        ...(body.locale !== undefined ? { locale: body.locale } : {}),
        ...(body.timezone !== undefined ? { timezone: body.timezone } : {}),
        ...(body.appVersion !== undefined ? { appVersion: body.appVersion } : {}),
      });
      res.json(view(req, appId, stored.device, stored.tokens));
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/devices/:id', tag: 'devices', auth: 'devices', summary: 'Read a device (tokens masked, with their states)',
      params: z.object({ id: deviceIdSchema }),
      responses: { 200: { description: 'The device', schema: deviceView } },
    },
    async (req, res, { params }) => {
      const appId = appOf(res, 'devices');
      const found = await devices.get(appId, params.id);
      if (!found) throw notFound('device');
      res.json(view(req, appId, found.device, found.tokens));
    },
  );

  route(
    r,
    {
      method: 'delete', path: '/v1/devices/:id', tag: 'devices', auth: 'devices', summary: 'Remove a device and its tokens',
      params: z.object({ id: deviceIdSchema }),
      responses: { 204: { description: 'Removed' } },
    },
    async (_req, res, { params }) => {
      const appId = appOf(res, 'devices');
      if (!(await devices.delete(appId, params.id))) throw notFound('device');
      res.status(204).end();
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/tokens', tag: 'devices', auth: 'admin', summary: 'List quarantined tokens (state invalid) with their evidence',
      query: z.object({
        state: z.literal('invalid').default('invalid'),
        channel: z.enum(CHANNELS).optional(),
        cursor: z.string().max(512).optional(),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
      }),
      responses: { 200: { description: 'Quarantined tokens', schema: z.object({ items: z.array(z.unknown()), next: z.string().nullable() }) } },
    },
    async (_req, res, { query }) => {
      const appId = appOf(res, 'admin');
      const after = query.cursor ? Buffer.from(query.cursor, 'base64url').toString() : undefined;
      const page = await devices.quarantined(appId, { ...(query.channel ? { channel: query.channel } : {}), ...(after ? { after } : {}), limit: query.limit });
      res.json({
        items: page.items.map((t) => ({ deviceId: t.device_id, ...tokenJson(t), evidence: t.evidence })),
        next: page.next ? Buffer.from(page.next).toString('base64url') : null,
      });
    },
  );

  route(
    r,
    {
      method: 'post', path: '/v1/devices/:id/tokens/:channel/restore', tag: 'devices', auth: 'admin',
      summary: 'Restore a quarantined token (an operator overrides the provider’s verdict)',
      params: z.object({ id: deviceIdSchema, channel: z.enum(CHANNELS) }),
      responses: { 200: { description: 'Restored', schema: tokenView } },
    },
    async (_req, res, { params }) => {
      const appId = appOf(res, 'admin');
      if (!(await devices.restoreToken(appId, params.id, params.channel))) throw notFound('quarantined token');
      const found = await devices.get(appId, params.id);
      const t = found?.tokens.find((x) => x.channel === params.channel);
      if (!t) throw notFound('token');
      res.json(tokenJson(t));
    },
  );

  return r;
}
