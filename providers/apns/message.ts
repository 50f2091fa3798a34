import { z } from 'zod';
import { APNS_PUSH_TYPES, expired, failed, type ApnsPushType, type Outcome, type PushContent, channelOverrides } from '../types.js';
import { isRecord } from '../shared/json.js';
import { RELAY_CLICK_KEY, RELAY_ID_KEY, RELAY_IMAGE_KEY } from '../shared/relay-keys.js';

/** The APNs request Relay sends: `overrides.apns`, and the pure build from neutral content (topic, priority, expiry, collapse id, payload size). */

const jsonObject = z.record(z.string(), z.unknown());

/**
 * `overrides.apns` of `POST /v1/push`, applied after Relay's vendor-neutral mapping:
 *
 * | field | effect |
 * |---|---|
 * | `topic` | replaces the whole `apns-topic` (bundle id + push-type suffix). Required for `mdm`. |
 * | `pushType` | replaces `options.pushType` (and so the default topic suffix and size limit). |
 * | `priority` | `10`, `5` or `1`; replaces the priority from `options.priority`. Ignored for `background`, which is always 5. |
 * | `collapseId` | replaces `options.collapseKey` as `apns-collapse-id` (at most 64 bytes). |
 * | `aps` | deep-merged into the built `aps` dictionary: objects merge key by key, anything else replaces, `null` deletes the key (e.g. `{"sound": null}`). Use it for `thread-id`, `category`, `interruption-level`, `relevance-score`, Live Activity `event` / `content-state` / `timestamp` … |
 * | `payload` | extra top-level payload keys, merged over `data`. May not contain `aps` (use `aps`) or `relay_id` (Relay's own). |
 *
 * Unknown fields are rejected.
 */
export const apnsOverridesSchema = z.strictObject({
  topic: z.string().min(1).max(255).optional(),
  pushType: z.enum(APNS_PUSH_TYPES).optional(),
  priority: z.union([z.literal(10), z.literal(5), z.literal(1)]).optional(),
  collapseId: z
    .string()
    .min(1)
    .refine((s) => Buffer.byteLength(s, 'utf8') <= 64, 'collapseId must be at most 64 bytes')
    .optional(),
  aps: jsonObject.optional(),
  payload: jsonObject
    .refine((p) => !('aps' in p), { message: 'payload may not set aps; use overrides.apns.aps' })
    .refine((p) => !(RELAY_ID_KEY in p), { message: `${RELAY_ID_KEY} is reserved` })
    .optional(),
});

export type ApnsOverrides = z.infer<typeof apnsOverridesSchema>;

// ---------------------------------------------------------------------------------------------
// Building a request (pure)
// ---------------------------------------------------------------------------------------------

/** `apns-topic` suffix per push type (Apple "Sending notification requests to APNs"). */
export const APNS_TOPIC_SUFFIX: Readonly<Record<ApnsPushType, string>> = {
  alert: '',
  background: '',
  location: '.location-query',
  voip: '.voip',
  complication: '.complication',
  fileprovider: '.pushkit.fileprovider',
  mdm: '',
  liveactivity: '.push-type.liveactivity',
  pushtotalk: '.voip-ptt',
  widgets: '.push-type.widgets',
};

export const APNS_MAX_PAYLOAD_BYTES = 4096;
export const APNS_MAX_VOIP_PAYLOAD_BYTES = 5120;
export const APNS_MAX_COLLAPSE_ID_BYTES = 64;

/** Everything node-apn needs for one message; identical for every token of the message. */
export interface ApnsRequest {
  topic: string;
  pushType: ApnsPushType;
  priority: 10 | 5 | 1;
  /** `apns-expiration`, epoch seconds; 0 = one attempt, not stored (ttl 0). */
  expiration: number;
  collapseId?: string;
  payload: Record<string, unknown>;
  /** The exact JSON body and its size in bytes. */
  body: string;
  bytes: number;
}

export type BuildResult = { ok: true; request: ApnsRequest } | { ok: false; outcome: Outcome };

const localFail = (code: string, message: string, extra: Record<string, unknown> = {}): BuildResult => ({
  ok: false,
  outcome: failed({ code, message, evidence: { local: true, ...extra } }),
});

/** Deep merge for `overrides.apns.aps`: objects merge, other values replace, `null` deletes. */
export function mergeAps(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else if (isRecord(v) && isRecord(out[k])) out[k] = mergeAps(out[k] as Record<string, unknown>, v);
    else out[k] = v;
  }
  return out;
}

/**
 * The push type when neither `overrides.apns.pushType` nor `options.pushType` names one: `alert`
 * when there is something to show (title, body, sound or badge), else `background`.
 */
export function inferPushType(content: PushContent): ApnsPushType {
  const n = content.notification;
  const visible = n && (n.title !== undefined || n.body !== undefined || n.sound !== undefined || n.badge !== undefined);
  return visible ? 'alert' : 'background';
}

function baseAps(content: PushContent, pushType: ApnsPushType, now: number): Record<string, unknown> {
  const n = content.notification ?? {};
  const alert: Record<string, unknown> = {};
  if (n.title !== undefined) alert.title = n.title;
  if (n.body !== undefined) alert.body = n.body;
  switch (pushType) {
    case 'alert': {
      const aps: Record<string, unknown> = {};
      if (Object.keys(alert).length > 0) aps.alert = alert;
      if (n.sound !== undefined) aps.sound = n.sound;
      if (n.badge !== undefined) aps.badge = n.badge;
      if (n.image !== undefined) aps['mutable-content'] = 1;
      return aps;
    }
    case 'background':
      return { 'content-available': 1 };
    case 'widgets':
      return { 'content-changed': true };
    case 'liveactivity': {
      // A Live Activity update needs `event` and `content-state` from overrides.apns.aps;
      // Relay fills `timestamp` (required by Apple) and the optional alert.
      const aps: Record<string, unknown> = { timestamp: Math.floor(now / 1000) };
      if (n.sound !== undefined) alert.sound = n.sound;
      if (Object.keys(alert).length > 0) aps.alert = alert;
      return aps;
    }
    default:
      // voip, pushtotalk, location, complication, fileprovider, mdm: PushKit / system pushes
      // that show nothing by themselves; the app reads the data keys.
      return {};
  }
}

/**
 * Builds the APNs request for one message. Returns a `failed` outcome (no network) when the
 * message cannot be valid: an over-long collapse id, a past deadline, no
 * topic for `mdm`, or a payload over 4096 bytes (5120 for `voip`).
 */
export function buildApnsRequest(content: PushContent, bundleId: string, now: number = Date.now()): BuildResult {
  const ov = channelOverrides<ApnsOverrides>(content, 'apns');
  const { options } = content;

  const pushType: ApnsPushType = ov.pushType ?? options.pushType ?? inferPushType(content);

  let topic = ov.topic;
  if (topic === undefined) {
    if (pushType === 'mdm') return localFail('MissingTopic', 'an mdm push needs overrides.apns.topic (the MDM certificate topic)');
    topic = bundleId + APNS_TOPIC_SUFFIX[pushType];
  }

  const priority: 10 | 5 | 1 = pushType === 'background' ? 5 : (ov.priority ?? (options.priority === 'high' ? 10 : 5));

  let expiration: number;
  if (options.ttl === 0) {
    expiration = 0; // now or never: APNs tries once and does not store it
  } else {
    if (!(content.expiresAt > now)) {
      return { ok: false, outcome: expired(content.expiresAt) };
    }
    expiration = Math.floor(content.expiresAt / 1000);
  }

  const collapseId = ov.collapseId ?? options.collapseKey;
  if (collapseId !== undefined && Buffer.byteLength(collapseId, 'utf8') > APNS_MAX_COLLAPSE_ID_BYTES) {
    return localFail('BadCollapseId', `collapse id is ${Buffer.byteLength(collapseId, 'utf8')} bytes; APNs allows ${APNS_MAX_COLLAPSE_ID_BYTES}`);
  }

  let aps = baseAps(content, pushType, now);
  if (ov.aps) aps = mergeAps(aps, ov.aps);

  const payload: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(content.data ?? {})) if (k !== 'aps') payload[k] = v;
  const n = content.notification;
  if (n?.image !== undefined) payload[RELAY_IMAGE_KEY] = n.image;
  if (n?.clickAction !== undefined) payload[RELAY_CLICK_KEY] = n.clickAction;
  if (ov.payload) Object.assign(payload, ov.payload);
  delete payload.aps;
  if (Object.keys(aps).length > 0) payload.aps = aps;
  payload[RELAY_ID_KEY] = content.messageId;

  const body = JSON.stringify(payload);
  const bytes = Buffer.byteLength(body, 'utf8');
  const limit = pushType === 'voip' ? APNS_MAX_VOIP_PAYLOAD_BYTES : APNS_MAX_PAYLOAD_BYTES;
  if (bytes > limit) return localFail('PayloadTooLarge', `payload is ${bytes} bytes; APNs allows ${limit} for ${pushType}`, { bytes, limit });

  return {
    ok: true,
    request: { topic, pushType, priority, expiration, ...(collapseId ? { collapseId } : {}), payload, body, bytes },
  };
}

/** A device token APNs can address: hex digits only, an even count (bytes), at most 200 bytes. */
export function isApnsTokenSyntax(token: string): boolean {
  return token.length >= 2 && token.length <= 400 && token.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(token);
}

