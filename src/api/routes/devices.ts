import { Router, type Request } from 'express';
import { z } from 'zod';
import { CHANNELS, deviceTokensSchema, displayToken, type Channel } from '../../../providers/channels.js';
import { maskToken } from '../../core/secrets.js';
import type { Context } from '../../context.js';
import type { DeviceRow, DeviceTokenRow } from '../../db/schema.js';
import { isIanaZone } from '../../core/timezone.js';
import { DeviceCredentials } from '../../self/device-credentials.js';
import { DeviceRegistrations } from '../../services/device-registrations.js';
import { appOf, appOrOperator } from '../auth.js';
import { route } from '../define.js';
import { notFound } from '../errors.js';
import { sendJson } from '../send-json.js';
import { appIdSchema } from './apps.js';

/** Device ids double as MQTT client ids and topic levels, so topic wildcards and `/` are out. */
export const deviceIdSchema = z.string().regex(/^[A-Za-z0-9._:@-]{1,128}$/, 'letters, digits and . _ : @ -, at most 128');

/** At most 50 string keys (README: Using the API), named like template variables so `{{name}}` can reach each. */
export const deviceAttributesSchema = z
  .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, 'attribute names are letters, digits, _ . -, starting with a letter or _'), z.string().max(1024))
  .refine((a) => Object.keys(a).length <= 50, 'at most 50 attributes');

export const deviceBodySchema = z
  .object({
    platform: z.enum(['ios', 'android', 'web']),
    brand: z.string().min(1).max(32).nullable().optional().describe('huawei, xiaomi, oppo, vivo, honor, meizu or another maker'),
    tokens: deviceTokensSchema.optional(),
    userId: z.string().min(1).max(256).nullable().optional(),
    tags: z.array(z.string().min(1).max(128)).max(100).optional(),
    locale: z.string().max(35).nullable().optional(),
    timezone: z
      .string()
      .max(64)
      .refine(isIanaZone, 'an IANA time zone name such as Asia/Shanghai or America/New_York')
      .nullable()
      .optional(),
    appVersion: z.string().max(64).nullable().optional(),
    attributes: deviceAttributesSchema.optional().describe('Flat string map for campaign personalisation ({{first_name|there}}); replaces the stored map'),
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
  attributes: z.record(z.string(), z.string()),
  tokens: z.array(tokenView),
  self: z
    .object({
      mqtt: z.string(),
      ws: z.string(),
      mqtts: z.string().optional().describe('MQTT over TLS, when the gateway has a certificate (GATEWAY_TLS_CERT)'),
      wss: z.string().optional().describe('MQTT over secure WebSocket, when the gateway has a certificate'),
      clientId: z.string(),
      username: z.string(),
      password: z.string().describe('Valid until the device is deleted or its credentials are rotated'),
      topic: z.string(),
    })
    .optional()
    .describe('Self-channel connection info (Android and web)'),
  lastSeenAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

/** The app an operator acts on (quarantine review); a key may name only its own. */
const appIdQuery = appIdSchema.optional().describe('The app (required with the operator token)');

export function tokenJson(t: DeviceTokenRow) {
  return {
    channel: t.channel,
    token: maskToken(displayToken(t.channel, t.token)),
    state: t.state as 'active' | 'invalid',
    ...(t.state === 'invalid' ? { reason: t.invalid_reason ?? 'unknown', invalidAt: t.invalid_at?.toISOString() } : {}),
  };
}

/** Ports the gateway bound (0 in the config binds an ephemeral one): what devices are told. */
export interface BoundPorts {
  mqtt?: number;
  mqtts?: number;
  wss?: number;
}

export function devicesRouter(ctx: Context, bound: BoundPorts = {}): Router {
  const r = Router();
  const { devices } = ctx.repos;
  const { config } = ctx;
  const creds = new DeviceCredentials(ctx);
  const registrations = new DeviceRegistrations(devices, ctx.logger);

  const selfInfo = (req: Request, appId: string, id: string, epoch: string) => {
    const host = config.PUBLIC_HOST ?? req.hostname;
    // Port 0 in the config means "bind an ephemeral port": tell devices the one actually bound.
    const mqttPort = config.GATEWAY_MQTT_PORT || bound.mqtt || config.GATEWAY_MQTT_PORT;
    const httpPort = config.PORT || req.socket.localPort || config.PORT;
    const tls = config.GATEWAY_TLS_CERT !== undefined;
    return {
      mqtt: `mqtt://${host}:${mqttPort}`,
      ws: `${req.protocol === 'https' ? 'wss' : 'ws'}://${host}:${httpPort}/mqtt`,
      ...(tls ? { mqtts: `mqtts://${host}:${config.GATEWAY_MQTTS_PORT || bound.mqtts}`, wss: `wss://${host}:${config.GATEWAY_WSS_PORT || bound.wss}/mqtt` } : {}),
      clientId: id,
      username: id,
      password: creds.password(appId, id, epoch),
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
    attributes: d.attributes ?? {},
    tokens: tokens.map(tokenJson),
    ...(d.platform !== 'ios' ? { self: selfInfo(req, appId, d.id, String(d.credential_epoch)) } : {}),
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
      const input = {
        platform: body.platform,
        ...(body.brand !== undefined ? { brand: body.brand } : {}),
        tokens,
        ...(body.userId !== undefined ? { userId: body.userId } : {}),
        ...(body.tags !== undefined ? { tags: [...new Set(body.tags)] } : {}),
        ...(body.locale !== undefined ? { locale: body.locale } : {}),
        ...(body.timezone !== undefined ? { timezone: body.timezone } : {}),
        ...(body.appVersion !== undefined ? { appVersion: body.appVersion } : {}),
        ...(body.attributes !== undefined ? { attributes: body.attributes } : {}),
      };
      const stored = await registrations.register({ appId, id: params.id, input });
      // A new row has a new credential epoch (the cache may still say "deleted"); an update keeps it.
      if (stored.created) await creds.registered(appId, params.id, stored.device.credential_epoch);
      sendJson(res, 200, view(req, appId, stored.device, stored.tokens));
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
      method: 'delete', path: '/v1/devices/:id', tag: 'devices', auth: 'devices',
      summary: 'Remove a device and its tokens; its self-channel password is refused at once and its live connection closed',
      params: z.object({ id: deviceIdSchema }),
      responses: { 204: { description: 'Removed' } },
    },
    async (_req, res, { params }) => {
      const appId = appOf(res, 'devices');
      if (!(await devices.delete(appId, params.id))) throw notFound('device');
      await creds.revoked(appId, params.id);
      res.status(204).end();
    },
  );

  route(
    r,
    {
      method: 'post', path: '/v1/devices/:id/credentials/rotate', tag: 'devices', auth: 'devices',
      summary: 'Issue a new self-channel password: the old one is refused at once and its live connection closed',
      params: z.object({ id: deviceIdSchema }),
      responses: { 200: { description: 'The device, with its new password in `self`', schema: deviceView } },
    },
    async (req, res, { params }) => {
      const appId = appOf(res, 'devices');
      if ((await creds.rotate(appId, params.id)) === null) throw notFound('device');
      const found = await devices.get(appId, params.id);
      if (!found) throw notFound('device');
      res.json(view(req, appId, found.device, found.tokens));
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/tokens', tag: 'devices', auth: 'admin', summary: 'List quarantined tokens (state invalid) with their evidence (the operator token names the app in `app`)',
      query: z.object({
        app: appIdQuery,
        state: z.literal('invalid').default('invalid'),
        channel: z.enum(CHANNELS).optional(),
        cursor: z.string().max(512).optional(),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
      }),
      responses: { 200: { description: 'Quarantined tokens', schema: z.object({ items: z.array(z.unknown()), next: z.string().nullable() }) } },
    },
    async (_req, res, { query }) => {
      const appId = appOrOperator(res, 'admin', query.app);
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
      summary: 'Restore a quarantined token (an operator overrides the provider’s verdict; the operator token names the app in `app`)',
      params: z.object({ id: deviceIdSchema, channel: z.enum(CHANNELS) }),
      query: z.object({ app: appIdQuery }),
      responses: { 200: { description: 'Restored', schema: tokenView } },
    },
    async (_req, res, { params, query }) => {
      const appId = appOrOperator(res, 'admin', query.app);
      if (!(await devices.restoreToken(appId, params.id, params.channel))) throw notFound('quarantined token');
      const found = await devices.get(appId, params.id);
      const t = found?.tokens.find((x) => x.channel === params.channel);
      if (!t) throw notFound('token');
      res.json(tokenJson(t));
    },
  );

  return r;
}
