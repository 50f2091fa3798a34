import type { BaseMessage } from 'firebase-admin/messaging';
import { z } from 'zod';
import { channelOverrides, failed, type Outcome, type PushContent } from '../types.js';
import { APNS_MAX_COLLAPSE_ID_BYTES } from '../apns.js';
import { expiredOutcome, remainingTtlSeconds } from '../shared/expiry.js';
import { deepMerge, isRecord } from '../shared/json.js';
import { RELAY_ID_KEY, relayDataStrings } from '../shared/relay-keys.js';

/** The FCM message Relay sends: `overrides.fcm`, the payload limit, and the build from neutral content. */

/** FCM's limit for the payload of a message to a token (data + notification keys and values). */
export const FCM_MAX_PAYLOAD_BYTES = 4096;
/** FCM keeps a message 4 weeks at most (and that is the default). */
export const FCM_MAX_TTL_SECONDS = 2_419_200;
/** Data keys FCM reserves ("from", "message_type", anything starting with "google" or "gcm"). */
const RESERVED_DATA_KEY = /^(from|message_type|google.*|gcm.*)$/i;


const stringMap = z.record(z.string(), z.string());
const labelSchema = z.string().regex(/^[a-zA-Z0-9-_.~%]{1,50}$/, 'analyticsLabel: 1–50 of [a-zA-Z0-9-_.~%]');

const androidNotificationSchema = z.strictObject({
  title: z.string(),
  body: z.string(),
  icon: z.string(),
  color: z.string().regex(/^#[0-9a-fA-F]{6}$/, 'color must be #RRGGBB'),
  sound: z.string(),
  tag: z.string(),
  imageUrl: z.url(),
  clickAction: z.string(),
  bodyLocKey: z.string(),
  bodyLocArgs: z.array(z.string()),
  titleLocKey: z.string(),
  titleLocArgs: z.array(z.string()),
  /** Android 8+ notification channel; must exist in the app. */
  channelId: z.string(),
  ticker: z.string(),
  sticky: z.boolean(),
  /** RFC 3339 time the event happened (sent as `event_time`). */
  eventTimestamp: z.iso.datetime({ offset: true }),
  localOnly: z.boolean(),
  priority: z.enum(['min', 'low', 'default', 'high', 'max']),
  vibrateTimingsMillis: z.array(z.number().nonnegative()).min(1),
  defaultVibrateTimings: z.boolean(),
  defaultSound: z.boolean(),
  lightSettings: z.strictObject({
    color: z.string().regex(/^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$/),
    lightOnDurationMillis: z.number().nonnegative(),
    lightOffDurationMillis: z.number().nonnegative(),
  }),
  defaultLightSettings: z.boolean(),
  visibility: z.enum(['private', 'public', 'secret']),
  notificationCount: z.number().int().nonnegative(),
  proxy: z.enum(['allow', 'deny', 'if_priority_lowered']),
}).partial();

const apsSchema = z.looseObject({
  alert: z.union([z.string(), z.looseObject({ title: z.string().optional(), subtitle: z.string().optional(), body: z.string().optional() })]).optional(),
  badge: z.number().int().nonnegative().optional(),
  sound: z.union([z.string().min(1), z.strictObject({ critical: z.boolean().optional(), name: z.string().min(1), volume: z.number().min(0).max(1).optional() })]).optional(),
  contentAvailable: z.boolean().optional(),
  mutableContent: z.boolean().optional(),
  category: z.string().optional(),
  threadId: z.string().optional(),
});

/**
 * `overrides.fcm` of `POST /v1/push`: a partial firebase-admin `Message` **without a target**
 * (`token`, `topic`, `condition` are refused), in firebase-admin's camelCase names and units
 * (e.g. `android.ttl` in milliseconds, `notification.imageUrl`). It is deep-merged over what Relay
 * derives from the vendor-neutral request (objects merge key by key, arrays and scalars replace),
 * after which two rules still hold: `data.relay_id` is Relay's message id, and `android.ttl` never
 * exceeds the message's remaining TTL.
 *
 * @example { "android": { "notification": { "channelId": "orders", "color": "#ff6600" } },
 *            "apns": { "payload": { "aps": { "mutableContent": true } } },
 *            "fcmOptions": { "analyticsLabel": "spring_sale" } }
 */
export const fcmOverridesSchema = z.strictObject({
  /** Extra data (string values), merged over `data`. */
  data: stringMap.optional(),
  notification: z.strictObject({ title: z.string(), body: z.string(), imageUrl: z.url() }).partial().optional(),
  android: z
    .strictObject({
      collapseKey: z.string(),
      priority: z.enum(['high', 'normal']),
      /** Milliseconds; capped to the message's remaining TTL and to 4 weeks. */
      ttl: z.number().int().nonnegative().max(FCM_MAX_TTL_SECONDS * 1000),
      restrictedPackageName: z.string(),
      data: stringMap,
      notification: androidNotificationSchema,
      fcmOptions: z.strictObject({ analyticsLabel: labelSchema }).partial(),
      directBootOk: z.boolean(),
      bandwidthConstrainedOk: z.boolean(),
      restrictedSatelliteOk: z.boolean(),
    })
    .partial()
    .optional(),
  /** For iOS devices reached through FCM. */
  apns: z
    .strictObject({
      liveActivityToken: z.string().min(1),
      headers: stringMap,
      payload: z.looseObject({ aps: apsSchema }),
      fcmOptions: z.strictObject({ analyticsLabel: labelSchema, imageUrl: z.url() }).partial(),
    })
    .partial()
    .optional(),
  webpush: z
    .strictObject({
      headers: stringMap,
      data: stringMap,
      notification: z.record(z.string(), z.unknown()),
      fcmOptions: z.strictObject({ link: z.url({ protocol: /^https$/ }) }).partial(),
    })
    .partial()
    .optional(),
  fcmOptions: z.strictObject({ analyticsLabel: labelSchema }).partial().optional(),
});
export type FcmOverrides = z.infer<typeof fcmOverridesSchema>;

type Plain = Record<string, unknown>;

/**
 * Bytes FCM counts against the 4096-byte limit: keys and values of `data` (top level and
 * `android.data`) and of the notification (top level and `android.notification`), UTF-8.
 * Configuration (ttl, priority, collapse key, the token itself) does not count.
 */
export function fcmPayloadBytes(message: BaseMessage): number {
  let n = 0;
  const count = (o: unknown) => {
    if (!isRecord(o)) return;
    for (const [k, v] of Object.entries(o)) {
      if (v === undefined || v === null) continue;
      n += Buffer.byteLength(k);
      n += Buffer.byteLength(typeof v === 'string' ? v : JSON.stringify(v));
    }
  };
  count(message.data);
  count(message.notification);
  count(message.android?.data);
  count(message.android?.notification);
  return n;
}

/** The message every target of one content receives, or the one outcome all of them get. */
export type FcmMessageResult =
  | { ok: true; message: BaseMessage; payloadBytes: number }
  | { ok: false; outcome: Outcome };

/**
 * Builds the firebase-admin message (without the token) that every target of `content` receives.
 * Pure: the same content and `now` give the same message.
 *
 * - `notification` title/body/image; `android.notification` adds clickAction, sound, badge (as
 *   notificationCount) when the request has a notification. No notification → a data message.
 * - `data`: string map (non-strings JSON-encoded) plus `relay_id` = message id, always.
 * - `android`: priority, ttl = whole seconds left until `expiresAt` (≤ 4 weeks; 0 for a ttl 0
 *   message), collapse key.
 * - `overrides.fcm` (see {@link fcmOverridesSchema}) merged last.
 * Fails (one outcome for every target) when the TTL has passed, a data
 * key is reserved, or the payload exceeds {@link FCM_MAX_PAYLOAD_BYTES}.
 */
export function buildFcmMessage(content: PushContent, now = Date.now()): FcmMessageResult {
  const remainingSec = remainingTtlSeconds(content.expiresAt, { now, max: FCM_MAX_TTL_SECONDS });
  if (remainingSec <= 0) return { ok: false, outcome: expiredOutcome(content.expiresAt) };

  const overrides = channelOverrides<FcmOverrides>(content, 'fcm');

  const n = content.notification;
  const base: Plain = {};
  base.data = relayDataStrings(content);
  if (n && (n.title !== undefined || n.body !== undefined || n.image !== undefined)) {
    base.notification = {
      ...(n.title !== undefined ? { title: n.title } : {}),
      ...(n.body !== undefined ? { body: n.body } : {}),
      ...(n.image !== undefined ? { imageUrl: n.image } : {}),
    };
  }
  // ttl 0 (now or never): FCM tries once and does not store the message.
  const ttlMs = content.options.ttl === 0 ? 0 : remainingSec * 1000;
  const android: Plain = {
    priority: content.options.priority === 'high' ? 'high' : 'normal',
    ttl: ttlMs,
  };
  if (content.options.collapseKey) android.collapseKey = content.options.collapseKey;
  // android.notification alone makes Android show a notification: without a title or body it
  // would be an empty one, so click action, sound and badge ride only on a visible notification.
  if (n && (n.title !== undefined || n.body !== undefined)) {
    const an: Plain = {};
    if (n.clickAction !== undefined) an.clickAction = n.clickAction;
    if (n.sound !== undefined) an.sound = n.sound;
    if (n.badge !== undefined) an.notificationCount = n.badge;
    if (Object.keys(an).length) android.notification = an;
  }
  base.android = android;
  base.apns = apnsBlock(content, ttlMs === 0);

  const merged = deepMerge(base, overrides as Plain);
  // Rules that overrides cannot break.
  merged.data = { ...(merged.data as Record<string, string>), [RELAY_ID_KEY]: content.messageId };
  const mergedAndroid = merged.android as Plain;
  mergedAndroid.ttl = Math.min(Number(mergedAndroid.ttl), ttlMs);
  const an = mergedAndroid.notification;
  if (isRecord(an) && typeof an.eventTimestamp === 'string') an.eventTimestamp = new Date(an.eventTimestamp);

  const reserved = [...Object.keys(merged.data as Plain), ...Object.keys((mergedAndroid.data as Plain | undefined) ?? {})].filter((k) =>
    RESERVED_DATA_KEY.test(k),
  );
  if (reserved.length) {
    return { ok: false, outcome: failed({ code: 'INVALID_ARGUMENT', message: `reserved data key(s) for FCM: ${reserved.join(', ')}` }) };
  }

  const message = merged as BaseMessage;
  const payloadBytes = fcmPayloadBytes(message);
  if (payloadBytes > FCM_MAX_PAYLOAD_BYTES) {
    return {
      ok: false,
      outcome: failed({
        code: 'INVALID_ARGUMENT',
        message: `message too big: payload is ${payloadBytes} bytes; FCM allows ${FCM_MAX_PAYLOAD_BYTES}`,
        evidence: { errorCode: 'INVALID_ARGUMENT', payloadBytes, limit: FCM_MAX_PAYLOAD_BYTES },
      }),
    };
  }
  return { ok: true, message, payloadBytes };
}

/**
 * What FCM passes to APNs for an iOS token (an iOS app registered through Firebase): the options
 * `android` carries, in APNs' own headers and `aps`. Android tokens ignore it. A message with
 * nothing to show goes as a background push, which APNs takes only at priority 5.
 */
function apnsBlock(content: PushContent, nowOrNever: boolean): Plain {
  const n = content.notification;
  const visible = n !== undefined && (n.title !== undefined || n.body !== undefined);
  const headers: Record<string, string> = {
    'apns-priority': visible && content.options.priority === 'high' ? '10' : '5',
    'apns-expiration': nowOrNever ? '0' : String(Math.floor(content.expiresAt / 1000)),
  };
  const key = content.options.collapseKey;
  if (key && Buffer.byteLength(key, 'utf8') <= APNS_MAX_COLLAPSE_ID_BYTES) headers['apns-collapse-id'] = key;
  const aps: Plain = {};
  if (!visible) aps.contentAvailable = true;
  if (visible && n.sound !== undefined) aps.sound = n.sound;
  if (visible && n.badge !== undefined) aps.badge = n.badge;
  return { headers, payload: { aps } };
}

