import { createECDH, createHash, createPublicKey } from 'node:crypto';
import webpush from 'web-push';
import { z } from 'zod';
import {
  CredentialError,
  failed,
  invalid,
  retry,
  sent,
  type Outcome,
  type Provider,
  type ProviderContext,
  type ProviderModule,
  type PushContent,
  type SendTarget,
  channelOverrides,
  RELAY_CODES,
  httpStatusCode,
} from './types.js';
import { expiredOutcome, remainingTtlSeconds } from './shared/expiry.js';
import { retryAfterMs } from './shared/http.js';
import { createLimiter } from './shared/limiter.js';

/**
 * Web Push (RFC 8030 protocol, RFC 8291 aes128gcm payload encryption, RFC 8292 VAPID) through the
 * `web-push` library, which builds the encrypted body and the VAPID `Authorization` header. The
 * request itself goes out through Node's `fetch` so a timeout is an AbortSignal and the connection
 * pool is undici's, shared with the vendor providers.
 *
 * The device token is the browser's PushSubscription as JSON, which the API stores in the one form
 * subscriptionToken() writes:
 * `{"endpoint":"https://…","keys":{"p256dh":"<65-byte point, base64url>","auth":"<16 bytes, base64url>"}}`.
 * Sending still takes any PushSubscription JSON (a raw `to.token`, rows stored before that form).
 */

/** Largest plaintext that fits one 4096-byte aes128gcm record (RFC 8291 §4: 4096 − 86 header − 16 tag − 1 delimiter). */
export const WEBPUSH_MAX_PLAINTEXT = 3993;
/** RFC 8030 lets the push service shorten the TTL; 28 days is what the big services keep at most. */
export const WEBPUSH_MAX_TTL = 2_419_200;
/** Requests in flight per provider instance (one instance per app credential). */
export const WEBPUSH_CONCURRENCY = 64;
const REQUEST_TIMEOUT_MS = 15_000;
/** VAPID JWTs are signed for 12 h and reused per audience until 1 h before they expire. */
const JWT_LIFETIME_S = 12 * 3600;
const JWT_RENEW_BEFORE_S = 3600;

const b64url = /^[A-Za-z0-9_-]+$/;

export const webpushCredentialSchema = z
  .object({
    /** Uncompressed P-256 point (65 bytes), base64url without padding. Generated when omitted. */
    vapidPublicKey: z.string().regex(b64url, 'must be base64url without padding').optional(),
    /** P-256 private scalar (32 bytes), base64url without padding. Generated when omitted. */
    vapidPrivateKey: z.string().regex(b64url, 'must be base64url without padding').optional(),
    /** Contact for the push services: a `mailto:` address or an `https:` URL (RFC 8292 §2.1). */
    subject: z.string().min(1),
  })
  .refine((c) => (c.vapidPublicKey === undefined) === (c.vapidPrivateKey === undefined), {
    message: 'give both vapidPublicKey and vapidPrivateKey, or neither to have them generated',
    path: ['vapidPrivateKey'],
  });
export type WebPushCredential = z.infer<typeof webpushCredentialSchema>;

/** `overrides.webpush`: merged last over what Relay derives from the vendor-neutral request. */
export const webpushOverridesSchema = z
  .object({
    urgency: z.enum(['very-low', 'low', 'normal', 'high']).optional(),
    /** Replaces the topic derived from `options.collapseKey`; sanitized the same way. */
    topic: z.string().min(1).optional(),
    /** Seconds; never longer than the remaining TTL of the message. */
    ttl: z.number().int().min(0).optional(),
    /** Extra fields for the service worker's `showNotification()` (icon, badge, tag, actions…). */
    notification: z.record(z.string(), z.unknown()).optional(),
    /** Extra data merged over `data`. */
    data: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type WebPushOverrides = z.infer<typeof webpushOverridesSchema>;

const subscriptionSchema = z.object({
  endpoint: z.string().url(),
  expirationTime: z.number().nullable().optional(),
  keys: z.object({
    p256dh: z.string().regex(b64url, 'must be base64url without padding'),
    auth: z.string().regex(b64url, 'must be base64url without padding'),
  }),
});
export interface ParsedSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}
/** Why a subscription cannot be sent to, with the field it is about (`keys.p256dh`). */
export interface SubscriptionIssue {
  path: PropertyKey[];
  message: string;
}

/**
 * The rules a PushSubscription must meet before Relay can encrypt for it and post to it. The API
 * checks them at registration and the provider again at send time, so a token the API took is
 * never quarantined later as malformed.
 */
export function checkSubscription(raw: unknown): ParsedSubscription | SubscriptionIssue {
  const parsed = subscriptionSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { path: issue?.path ?? [], message: issue?.message ?? 'invalid' };
  }
  const { endpoint, keys } = parsed.data;
  if (new URL(endpoint).protocol !== 'https:') return { path: ['endpoint'], message: 'must be an https: URL' };
  const p256dh = Buffer.from(keys.p256dh, 'base64url');
  if (p256dh.length !== 65 || p256dh[0] !== 0x04 || !isP256Point(p256dh)) {
    return { path: ['keys', 'p256dh'], message: 'must be an uncompressed P-256 public key (65 bytes, base64url)' };
  }
  if (Buffer.from(keys.auth, 'base64url').length !== 16) return { path: ['keys', 'auth'], message: 'must be 16 bytes (base64url)' };
  return { endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } };
}

/** Parses a device token; returns a reason string when it cannot be a valid subscription. */
export function parseSubscription(token: string): ParsedSubscription | string {
  let raw: unknown;
  try {
    raw = JSON.parse(token);
  } catch {
    return 'the token is not JSON (expected a PushSubscription)';
  }
  const checked = checkSubscription(raw);
  if (!('message' in checked)) return checked;
  return `not a PushSubscription: ${checked.path.map(String).join('.') || '(root)'}: ${checked.message}`;
}

/**
 * The stored token: endpoint and keys only, always in this order. The same subscription sent again
 * with its keys reordered or with an `expirationTime` is then the same token, so re-registering
 * cannot revive one the push service declared gone.
 */
export function subscriptionToken(sub: ParsedSubscription): string {
  return JSON.stringify({ endpoint: sub.endpoint, keys: { p256dh: sub.keys.p256dh, auth: sub.keys.auth } });
}

function isP256Point(raw: Buffer): boolean {
  try {
    createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33, 65).toString('base64url') },
      format: 'jwk',
    });
    return true;
  } catch {
    return false;
  }
}

/**
 * RFC 8030 §5.4: a Topic is at most 32 characters of the URL- and filename-safe base64 alphabet.
 * A collapse key that already fits is used as is; anything else is hashed (SHA-256, base64url,
 * first 32 characters) so that distinct keys stay distinct and the same key always maps the same.
 */
export function sanitizeTopic(key: string): string {
  if (/^[A-Za-z0-9_-]{1,32}$/.test(key)) return key;
  return createHash('sha256').update(key, 'utf8').digest('base64url').slice(0, 32);
}

/** The JSON the service worker receives: Relay's id first, so the SDK can drop duplicates. */
export function buildPayload(content: PushContent, overrides?: WebPushOverrides): string {
  const notification = { ...(content.notification ?? {}), ...(overrides?.notification ?? {}) };
  const data = { ...(content.data ?? {}), ...(overrides?.data ?? {}) };
  return JSON.stringify({
    id: content.messageId,
    ...(Object.keys(notification).length ? { notification } : {}),
    ...(Object.keys(data).length ? { data } : {}),
  });
}

export interface WebPushRequestOptions {
  TTL: number;
  urgency: 'very-low' | 'low' | 'normal' | 'high';
  topic?: string;
}

/** TTL, Urgency and Topic for one message (the same for every subscription). */
export function requestOptions(content: PushContent, overrides?: WebPushOverrides, now = Date.now()): WebPushRequestOptions {
  // ttl 0 (now or never): the push service delivers only to a browser connected right now.
  const remaining = content.options.ttl === 0 ? 0 : remainingTtlSeconds(content.expiresAt, { now, max: WEBPUSH_MAX_TTL });
  const ttl = overrides?.ttl !== undefined ? Math.min(overrides.ttl, remaining) : remaining;
  const urgency = overrides?.urgency ?? (content.options.priority === 'high' ? 'high' : 'normal');
  const topicSource = overrides?.topic ?? content.options.collapseKey;
  return { TTL: ttl, urgency, ...(topicSource ? { topic: sanitizeTopic(topicSource) } : {}) };
}

/** Classifies a push service answer (RFC 8030 §5 and §8, RFC 8292 §4.1). */
export function classifyResponse(status: number, headers: Headers, body: string): Outcome {
  const evidence = { status, ...(body ? { body: body.slice(0, 500) } : {}) };
  if (status === 200 || status === 201 || status === 202) {
    return sent(headers.get('location') ?? undefined);
  }
  if (status >= 300 && status < 400) {
    // Redirects are not followed: fetch would resend the POST as a GET, and a 404/410 at the new
    // address would quarantine a subscription that is fine.
    const location = headers.get('location');
    return failed({ code: RELAY_CODES.redirect, message: `push service answered ${status}; redirects are not followed`, evidence: { ...evidence, ...(location ? { location } : {}) } });
  }
  if (status === 404 || status === 410) {
    return invalid({ code: status === 410 ? 'Gone' : 'NotFound', message: 'the push subscription has expired or was removed', evidence });
  }
  if (status === 429 || status >= 500) {
    return retry(
      { code: status === 429 ? 'TooManyRequests' : httpStatusCode(status), message: `push service answered ${status}`, evidence },
      retryAfterMs(headers),
    );
  }
  if (status === 413) return failed({ code: RELAY_CODES.payloadTooLarge, message: 'the push service refused the payload size', evidence });
  if (status === 401 || status === 403) {
    return failed({ code: status === 401 ? 'Unauthorized' : 'Forbidden', message: 'the push service refused the VAPID credentials', evidence });
  }
  return failed({ code: httpStatusCode(status), message: `push service answered ${status}`, evidence });
}

function checkCredential(cred: WebPushCredential): void {
  const subject = cred.subject.trim();
  let url: URL;
  try {
    url = new URL(subject);
  } catch {
    throw new CredentialError('subject', 'subject must be a mailto: address or an https: URL');
  }
  if (url.protocol !== 'mailto:' && url.protocol !== 'https:') {
    throw new CredentialError('subject', 'subject must be a mailto: address or an https: URL');
  }
  if (url.protocol === 'mailto:' && !/^[^@\s]+@[^@\s]+$/.test(decodeURIComponent(url.pathname))) {
    throw new CredentialError('subject', 'subject mailto: must hold an e-mail address');
  }
  if (cred.vapidPublicKey === undefined || cred.vapidPrivateKey === undefined) return; // generated by complete()
  const pub = Buffer.from(cred.vapidPublicKey, 'base64url');
  if (pub.length !== 65 || pub[0] !== 0x04 || !isP256Point(pub)) {
    throw new CredentialError('vapidPublicKey', 'vapidPublicKey must be an uncompressed P-256 public key (65 bytes, base64url)');
  }
  const priv = Buffer.from(cred.vapidPrivateKey, 'base64url');
  if (priv.length !== 32) throw new CredentialError('vapidPrivateKey', 'vapidPrivateKey must be a 32-byte P-256 private key (base64url)');
  let derived: Buffer;
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(priv);
    derived = ecdh.getPublicKey();
  } catch {
    throw new CredentialError('vapidPrivateKey', 'vapidPrivateKey is not a valid P-256 private key');
  }
  if (!derived.equals(pub)) throw new CredentialError('vapidPublicKey', 'vapidPublicKey does not belong to vapidPrivateKey');
}

class WebPushProvider implements Provider {
  readonly channel = 'webpush' as const;
  private readonly limit = createLimiter(WEBPUSH_CONCURRENCY);
  private readonly jwtByAudience = new Map<string, { header: string; exp: number }>();
  private readonly inflight = new Set<AbortController>();
  private closed = false;

  constructor(
    private readonly cred: Required<WebPushCredential>,
    private readonly ctx: ProviderContext,
  ) {}

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    const overrides = channelOverrides<WebPushOverrides>(content, 'webpush');
    const opts = requestOptions(content, overrides);
    if (remainingTtlSeconds(content.expiresAt) <= 0) return targets.map(() => expiredOutcome(content.expiresAt));
    const payload = buildPayload(content, overrides);
    const bytes = Buffer.byteLength(payload);
    if (bytes > WEBPUSH_MAX_PLAINTEXT) {
      const reason = { code: RELAY_CODES.payloadTooLarge, message: `payload is ${bytes} bytes; Web Push allows ${WEBPUSH_MAX_PLAINTEXT}`, evidence: { bytes } };
      return targets.map(() => failed(reason));
    }
    return Promise.all(targets.map((t) => this.limit(() => this.sendOne(t, payload, opts))));
  }

  private async sendOne(target: SendTarget, payload: string, opts: WebPushRequestOptions): Promise<Outcome> {
    const sub = parseSubscription(target.token);
    if (typeof sub === 'string') return invalid({ code: RELAY_CODES.badSubscription, message: sub });
    if (this.closed) return retry({ code: RELAY_CODES.closed, message: 'provider closed before the request was made' });

    // The VAPID header is the app's credential, not the subscription's: when it cannot be signed
    // the delivery fails and the token stays active.
    let authorization: string;
    try {
      authorization = this.vapidHeader(new URL(sub.endpoint).origin);
    } catch (err) {
      return failed({ code: RELAY_CODES.invalidCredential, message: `the VAPID header could not be signed: ${(err as Error).message}` });
    }

    let details: webpush.RequestDetails;
    try {
      details = webpush.generateRequestDetails(sub, payload, {
        TTL: opts.TTL,
        urgency: opts.urgency,
        ...(opts.topic ? { topic: opts.topic } : {}),
        contentEncoding: 'aes128gcm',
        // null (not undefined) turns off the library's own VAPID step, including any process-wide
        // setVapidDetails(); the header comes from a per-audience JWT cache instead of one
        // signature per request. (The typings do not admit null; the library tests !== undefined.)
        vapidDetails: null as unknown as undefined,
        headers: { Authorization: authorization },
      });
    } catch (err) {
      // Everything subscription-shaped was checked above, so this is a key the library rejects.
      return invalid({ code: RELAY_CODES.badSubscription, message: (err as Error).message });
    }

    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(details.headers)) {
      if (k.toLowerCase() !== 'content-length') headers[k] = String(v);
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`timed out after ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
    this.inflight.add(controller);
    try {
      const res = await fetch(details.endpoint, {
        method: 'POST',
        headers,
        body: details.body ? new Uint8Array(details.body) : undefined,
        redirect: 'manual', // see classifyResponse
        signal: controller.signal,
      });
      const text = await res.text().catch(() => '');
      return classifyResponse(res.status, res.headers, text);
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const code = e.cause?.code ?? (e.name === 'AbortError' || e.name === 'TimeoutError' ? 'Timeout' : 'NetworkError');
      this.ctx.logger.debug({ err: e, deliveryId: target.deliveryId }, 'web push request failed');
      return retry({ code, message: e.cause?.message ?? e.message, evidence: { endpointOrigin: new URL(sub.endpoint).origin } });
    } finally {
      clearTimeout(timer);
      this.inflight.delete(controller);
    }
  }

  private vapidHeader(audience: string): string {
    const now = Math.floor(Date.now() / 1000);
    const cached = this.jwtByAudience.get(audience);
    if (cached && cached.exp - now > JWT_RENEW_BEFORE_S) return cached.header;
    const exp = now + JWT_LIFETIME_S;
    const { Authorization } = webpush.getVapidHeaders(
      audience,
      this.cred.subject,
      this.cred.vapidPublicKey,
      this.cred.vapidPrivateKey,
      'aes128gcm',
      exp,
    );
    if (this.jwtByAudience.size > 1000) this.jwtByAudience.clear(); // a handful of push services in practice
    this.jwtByAudience.set(audience, { header: Authorization, exp });
    return Authorization;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.inflight) c.abort(new Error('provider closed'));
  }
}

/**
 * `tokens.webpush` of `PUT /v1/devices/:id`: the browser's PushSubscription JSON. The shape is here
 * for the docs and to refuse unknown fields; what makes a subscription sendable is
 * checkSubscription(), so registration refuses what a send would quarantine. The value becomes the
 * canonical token string (subscriptionToken()).
 */
export const webPushSubscriptionSchema = z
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
  })
  .describe("The browser's PushSubscription JSON");

/** The endpoint of a stored subscription (what the API shows, masked), or the token when it is not JSON. */
export function subscriptionEndpoint(token: string): string {
  try {
    return String((JSON.parse(token) as { endpoint?: string }).endpoint ?? token);
  } catch {
    return token;
  }
}

const webpushModule = {
  channel: 'webpush' as const,
  tokenSchema: webPushSubscriptionSchema,
  normaliseToken(raw) {
    const sub = parseSubscription(raw);
    return typeof sub === 'string' ? { path: [], message: sub } : subscriptionToken(sub);
  },
  displayToken: subscriptionEndpoint,
  overridesSchema: webpushOverridesSchema,
  credentialSchema: webpushCredentialSchema,
  checkCredential,
  complete(cred) {
    if (cred.vapidPublicKey && cred.vapidPrivateKey) return { ...cred, subject: cred.subject.trim() };
    const keys = webpush.generateVAPIDKeys();
    return { ...cred, subject: cred.subject.trim(), vapidPublicKey: keys.publicKey, vapidPrivateKey: keys.privateKey };
  },
  describe(cred) {
    return { vapidPublicKey: cred.vapidPublicKey, subject: cred.subject };
  },
  create(cred, ctx) {
    if (!cred.vapidPublicKey || !cred.vapidPrivateKey) {
      throw new CredentialError('vapidPrivateKey', 'VAPID keys are missing; complete() the credential before storing it');
    }
    checkCredential(cred);
    return new WebPushProvider({ vapidPublicKey: cred.vapidPublicKey, vapidPrivateKey: cred.vapidPrivateKey, subject: cred.subject.trim() }, ctx);
  },
} satisfies ProviderModule<WebPushCredential>;

export default webpushModule;
