import type { PushContent } from '../../providers/types.js';
import type { PushRequest } from './push-request.js';

/**
 * What a recall (`DELETE /v1/messages/:id`) did to one delivery (docs/recall.md):
 * - `cancelled`: nothing reached the device (never sent, or the delivery ended before it did);
 * - `withdrawn`: removed from the device or the provider (a self-channel revoke the device
 *   acked, a vendor's own recall API);
 * - `replaced`: overwritten by a replacement that carries the same collapse id / tag / notify
 *   id, with a payload the device SDK treats as "remove" (`relay_type: "revoke"`);
 * - `not_withdrawable`: the channel offers neither, with the reason;
 * - `pending`: a self-channel revoke waits for its device (offline now), or the recall job has
 *   not reached this delivery yet. Every delivery leaves it for one of the four above.
 */
export const RECALL_STATES = ['pending', 'cancelled', 'withdrawn', 'replaced', 'not_withdrawable'] as const;
export type RecallState = (typeof RECALL_STATES)[number];
export type FinalRecallState = Exclude<RecallState, 'pending'>;

export interface RecallReason {
  code: string;
  message: string;
}

/** The data key (and value) the device SDK reads as "remove the message with this relay_id". */
export const RELAY_TYPE_KEY = 'relay_type';
export const RELAY_TYPE_REVOKE = 'revoke';

/** What the recall job does with one delivery. */
export type RecallPlan =
  | { kind: 'final'; state: 'cancelled' | 'not_withdrawable'; reason: RecallReason | null }
  /** Self channel: a revoke control message, now if the device is online, else on its next connect. */
  | { kind: 'revoke' }
  /** The provider's own recall API (`Provider.recall`). */
  | { kind: 'provider' }
  /** A replacement sent through the provider's send path (`replacementContent`). */
  | { kind: 'replace' };

export interface RecallDelivery {
  channel: string | null;
  status: string;
  seq: string | null;
}

/**
 * Decides what a recall does with one delivery. `canRecall` says whether the channel's provider
 * has a recall API; replacement rules are per channel (`replaceability`).
 */
export function planRecall(d: RecallDelivery, request: PushRequest, canRecall: (channel: string) => boolean): RecallPlan {
  if (d.channel === 'self' && d.seq !== null) return { kind: 'revoke' };
  if (d.status === 'queued' || d.status === 'cancelled') return { kind: 'final', state: 'cancelled', reason: null };
  if (d.status === 'failed' || d.status === 'invalid' || d.status === 'expired' || d.channel === null) {
    return { kind: 'final', state: 'cancelled', reason: { code: 'not_delivered', message: `the delivery had ended ${d.status}: nothing reached the device` } };
  }
  if (canRecall(d.channel)) return { kind: 'provider' };
  const why = replaceability(d.channel, request);
  return why === null ? { kind: 'replace' } : { kind: 'final', state: 'not_withdrawable', reason: why };
}

/** Vendors whose devices overwrite a shown notification by the same notify id / tag (docs/recall.md). */
const VENDOR_COLLAPSE = new Set(['huawei', 'honor', 'meizu', 'xiaomi']);
/** Vendors with neither a recall API Relay can use nor overwriting (docs/recall.md): a second notification would show. */
const VENDOR_NEITHER = new Set(['oppo', 'vivo']);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const pick = (o: unknown, ...path: string[]): unknown => path.reduce<unknown>((v, k) => (isObj(v) ? v[k] : undefined), o);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

/** The APNs collapse id the original went out with (`overrides.apns.collapseId` wins, as in providers/apns.ts). */
export function apnsCollapseId(request: PushRequest): string | undefined {
  return str(pick(request.overrides, 'apns', 'collapseId')) ?? request.options?.collapseKey;
}

/** The Android notification tag an FCM original carried (`overrides.fcm.android.notification.tag`). */
export function fcmTag(request: PushRequest): string | undefined {
  return str(pick(request.overrides, 'fcm', 'android', 'notification', 'tag'));
}

/** The `tag` a Web Push original asked the service worker to show it under. */
export function webpushTag(request: PushRequest): string | undefined {
  return str(pick(request.overrides, 'webpush', 'notification', 'tag'));
}

const visible = (request: PushRequest) => request.notification !== undefined && (request.notification.title !== undefined || request.notification.body !== undefined);

/**
 * Null when a replacement can overwrite what the original left on the device, else why not:
 * - APNs: a notification with the same `apns-collapse-id` replaces the shown one; iOS offers no
 *   silent removal from the server, so without a collapse id nothing can be done.
 * - FCM: a shown Android notification is replaced only by one with the same `tag`; a data-only
 *   original was shown by the app itself, which the SDK's revoke event lets it remove.
 * - Web Push: the service worker shows a notification under its `tag`; the same tag replaces it.
 * - Huawei, Honor, Meizu, Xiaomi: Relay derives the vendor's tag / notify id from
 *   `options.collapseKey` (providers/<vendor>.ts), so an original with a collapse key can be
 *   overwritten. OPPO and vivo devices show the replacement beside the original: not withdrawable.
 */
export function replaceability(channel: string, request: PushRequest): RecallReason | null {
  if (channel === 'apns') {
    return apnsCollapseId(request)
      ? null
      : { code: 'no_collapse_id', message: 'sent without a collapse id (options.collapseKey): APNs can neither remove nor replace a shown notification without one' };
  }
  if (channel === 'fcm') {
    if (fcmTag(request) || !visible(request)) return null;
    return { code: 'no_tag', message: 'sent as an FCM notification without overrides.fcm.android.notification.tag: Android replaces a shown notification only by tag' };
  }
  if (channel === 'webpush') {
    return webpushTag(request)
      ? null
      : { code: 'no_tag', message: 'sent without overrides.webpush.notification.tag: a shown Web Push notification is replaced only by tag' };
  }
  if (VENDOR_NEITHER.has(channel)) {
    return { code: 'no_recall_api', message: `${channel} has no public recall API, and its devices do not overwrite a shown notification (a replacement would show beside it)` };
  }
  if (VENDOR_COLLAPSE.has(channel)) {
    return request.options?.collapseKey
      ? null
      : { code: 'no_collapse_key', message: `sent without options.collapseKey: ${channel} has no recall API Relay can use, and replaces a shown notification only by the same notify id / tag` };
  }
  return { code: 'unsupported', message: `the ${channel} channel cannot withdraw a sent message` };
}

/** What a replacement notification says (RECALL_NOTICE_TITLE / RECALL_NOTICE_BODY). */
export interface RecallNotice {
  title: string;
  body: string;
}

/** How long a replacement stays deliverable: long enough for a device that is offline a while. */
export const REPLACEMENT_TTL_SECONDS = 86_400;

/**
 * The replacement for `channel`: the original's message id (so `relay_id` names what to remove),
 * `relay_type: "revoke"` in its data, and the original's collapse id / tag / collapse key so that
 * the platform overwrites the shown notification. A data-only FCM original gets a data-only
 * replacement (the app removes what it showed when the SDK emits `revoke`).
 */
export function replacementContent(messageId: string, channel: string, request: PushRequest, notice: RecallNotice, now = Date.now()): PushContent {
  const options: PushContent['options'] = { ttl: REPLACEMENT_TTL_SECONDS, priority: 'high' };
  if (request.options?.collapseKey) options.collapseKey = request.options?.collapseKey;
  const content: PushContent = {
    messageId,
    data: { [RELAY_TYPE_KEY]: RELAY_TYPE_REVOKE },
    options,
    expiresAt: now + REPLACEMENT_TTL_SECONDS * 1000,
  };
  const shown = { title: notice.title, body: notice.body };
  if (channel === 'apns') {
    const collapseId = apnsCollapseId(request)!;
    content.notification = shown;
    content.overrides = { apns: { collapseId } };
  } else if (channel === 'fcm') {
    const tag = fcmTag(request);
    if (tag) {
      content.notification = shown;
      content.overrides = { fcm: { android: { notification: { tag } } } };
    }
  } else if (channel === 'webpush') {
    content.notification = shown;
    content.overrides = { webpush: { notification: { tag: webpushTag(request)! } } };
  } else {
    content.notification = shown;
  }
  return content;
}
