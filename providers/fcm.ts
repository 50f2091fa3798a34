import { AsyncLocalStorage } from 'node:async_hooks';
import { createPrivateKey, randomUUID, sign, type KeyObject } from 'node:crypto';
import type { ClientRequest, IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { deleteApp, initializeApp, type App, type Credential, type GoogleOAuthAccessToken } from 'firebase-admin/app';
import { getMessaging, type BaseMessage, type Messaging, type TokenMessage } from 'firebase-admin/messaging';
import { z } from 'zod';
import {
  CredentialError,
  failed,
  invalid,
  retry,
  sent,
  type Outcome,
  type OutcomeReason,
  type Provider,
  type ProviderContext,
  type ProviderModule,
  type PushContent,
  type SendTarget,
  channelOverrides,
  RELAY_CODES,
  httpStatusCode,
  type EndpointSetting,
  type TuningSetting,
  tuningOf,
  endpointOf,
} from './types.js';
import { APNS_MAX_COLLAPSE_ID_BYTES } from './apns.js';
import { deepMerge, isRecord } from './json.js';
import { RELAY_ID_KEY } from './relay-keys.js';
import { createLimiter, expiredOutcome, relayDataStrings, remainingTtlSeconds, retryAfterMs, type Limiter } from './vendor-common.js';

/**
 * FCM HTTP v1 through firebase-admin 13.x (`messaging.send()`, one HTTP/1.1 request per token).
 *
 * Why the pieces below exist (facts in shared/providers/apns-fcm.md §3–§4):
 * - firebase-admin hard-codes `fcm.googleapis.com`; `FCM_ENDPOINT` is honoured by an `https.Agent`
 *   (`AppOptions.httpAgent`, which `send()` uses) whose sockets connect to the endpoint instead.
 * - `cert(object)` ignores agents and always asks `oauth2.googleapis.com`; {@link ServiceAccountCredential}
 *   signs the JWT-bearer assertion itself and asks the service account's own `token_uri` (SPEC §9).
 * - v13 errors carry neither the HTTP status, `Retry-After` nor the error details. The agent records
 *   them per request (an AsyncLocalStorage slot opened around each `send()`), so the classification
 *   sees the real answer ({@link classifyFcmError}).
 * - firebase-admin's own retries (503 up to 4×, honouring Retry-After up to 60 s, and ECONNRESET /
 *   ETIMEDOUT) are switched off: Relay's send worker owns retries per token, with its backoff and TTL.
 * - The access token is cached by {@link ServiceAccountCredential}, not by firebase-admin, so that a
 *   token FCM refuses (401 without FcmError: revoked before its stated expiry) can be dropped; the
 *   provider then fetches one new token and re-sends once ({@link FcmProvider#sendOne}).
 */

// ---------------------------------------------------------------------------------------------
// Limits and constants
// ---------------------------------------------------------------------------------------------

export const FCM_DEFAULT_ENDPOINT = 'https://fcm.googleapis.com';
export const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token';
/** FCM's limit for the payload of a message to a token (data + notification keys and values). */
export const FCM_MAX_PAYLOAD_BYTES = 4096;
/** FCM keeps a message 4 weeks at most (and that is the default). */
export const FCM_MAX_TTL_SECONDS = 2_419_200;
/** FCM asks for at least one minute before retrying a QUOTA_EXCEEDED without Retry-After. */
export const FCM_QUOTA_MIN_BACKOFF_MS = 60_000;
/** OAuth scopes asked for: FCM needs either; cloud-platform keeps the token usable for FCM admin calls. */
export const FCM_OAUTH_SCOPES = [
  'https://www.googleapis.com/auth/firebase.messaging',
  'https://www.googleapis.com/auth/cloud-platform',
] as const;
const FCM_DEFAULT_HOST = 'fcm.googleapis.com';
const TOKEN_REQUEST_TIMEOUT_MS = 15_000;
/** A cached access token is replaced this long before its stated expiry (firebase-admin's own margin). */
const TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;
/** Error bodies kept for classification are google.rpc.Status JSON, far below this. */
const MAX_CAPTURED_BODY = 64 * 1024;
/** Data keys FCM reserves ("from", "message_type", anything starting with "google" or "gcm"). */
const RESERVED_DATA_KEY = /^(from|message_type|google.*|gcm.*)$/i;

// ---------------------------------------------------------------------------------------------
// Credential
// ---------------------------------------------------------------------------------------------

/** A Google service-account JSON key. Unknown fields (auth_uri, client_x509_cert_url…) are kept. */
export const serviceAccountSchema = z.looseObject({
  type: z.literal('service_account', { error: 'type must be "service_account"' }).optional(),
  project_id: z.string().min(1),
  private_key_id: z.string().optional(),
  /** PKCS#8 PEM. Literal `\n` sequences (a key pasted through an env var) are turned into newlines. */
  private_key: z
    .string()
    .min(1)
    .transform((k) => (k.includes('\\n') && !k.includes('\n') ? k.replace(/\\n/g, '\n') : k)),
  client_email: z.email(),
  /** Where the OAuth token is asked for. Must be https. */
  token_uri: z.url({ protocol: /^https$/, error: 'token_uri must be an https URL' }).default(GOOGLE_TOKEN_URI),
});
export type ServiceAccount = z.infer<typeof serviceAccountSchema>;

/** `PUT /v1/apps/:app/credentials/fcm` body. */
export const fcmCredentialSchema = z.object({ serviceAccount: serviceAccountSchema });
export type FcmCredential = z.infer<typeof fcmCredentialSchema>;

function parseRsaKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new CredentialError('serviceAccount.private_key', `private_key is not a valid PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new CredentialError('serviceAccount.private_key', `private_key must be an RSA key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  return key;
}

/** The JWT-bearer assertion (RFC 7523) a service account trades for an access token. */
export function signServiceAccountAssertion(
  sa: Pick<ServiceAccount, 'client_email' | 'token_uri'>,
  key: KeyObject,
  nowSec = Math.floor(Date.now() / 1000),
): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const header = enc({ alg: 'RS256', typ: 'JWT' });
  const claims = enc({ iss: sa.client_email, scope: FCM_OAUTH_SCOPES.join(' '), aud: sa.token_uri, iat: nowSec, exp: nowSec + 3600 });
  const signature = sign('sha256', Buffer.from(`${header}.${claims}`), key).toString('base64url');
  return `${header}.${claims}.${signature}`;
}

/** Why the last token request failed, kept so a send can tell a bad key from an unreachable server. */
export interface OAuthFailure {
  tokenUri: string;
  status?: number;
  /** OAuth `error` (`invalid_grant`, `invalid_client`…), or the network error code. */
  error: string;
  description: string;
  retryable: boolean;
  retryAfterMs?: number;
}

export class OAuthTokenError extends Error {
  constructor(readonly failure: OAuthFailure) {
    super(`OAuth token request to ${failure.tokenUri} failed: ${failure.error}${failure.status ? ` (HTTP ${failure.status})` : ''}: ${failure.description}`);
    this.name = 'OAuthTokenError';
  }
}

/** An access token held by {@link ServiceAccountCredential}. */
export interface CachedAccessToken {
  accessToken: string;
  /** When the token endpoint says it expires (ms since the epoch). */
  expiresAt: number;
  /** When it is replaced proactively: 5 min before `expiresAt` (half its lifetime when shorter). */
  refreshAt: number;
}

/**
 * firebase-admin `Credential` for a service account that honours its own `token_uri`, and the only
 * cache of its OAuth access token.
 *
 * Why this credential caches and not firebase-admin: firebase-admin (lib/app/firebase-app.js,
 * `FirebaseAppInternals`) keeps the token it is given until 5 min before the stated expiry and has
 * no public way to drop it. Google can revoke a token earlier (FCM then answers 401 UNAUTHENTICATED),
 * and a provider stuck on that token would fail every send for up to an hour. The only way in is
 * `app.INTERNAL.getToken(true)`: untyped, not single-flight (every caller starts a token request),
 * and a failed forced refresh stays cached as a rejected promise while the old token looks fresh, so
 * every later send would fail until that expiry. Instead {@link getAccessToken} reports
 * `expires_in: 0` to firebase-admin, which therefore asks this credential before every request (a
 * resolved promise while a token is cached), and this class owns the lifetime: one token request at
 * a time ({@link token}), a proactive refresh, and {@link invalidate} for a token FCM refused.
 */
export class ServiceAccountCredential implements Credential {
  /** Set when the last token request failed, cleared by the next success. */
  lastFailure: OAuthFailure | undefined;
  private readonly key: KeyObject;
  private cached: CachedAccessToken | undefined;
  private inflight: Promise<CachedAccessToken> | undefined;

  constructor(
    private readonly sa: ServiceAccount,
    private readonly agent: https.Agent,
  ) {
    this.key = parseRsaKey(sa.private_key);
  }

  /** For firebase-admin: the current token, with `expires_in: 0` so that it never caches it (see the class doc). */
  async getAccessToken(): Promise<GoogleOAuthAccessToken> {
    const { accessToken } = await this.token();
    return { access_token: accessToken, expires_in: 0 };
  }

  /**
   * The cached token, or a new one when there is none or it is due for refresh. Single-flight:
   * callers arriving while a token request is under way share it. Rejects with {@link OAuthTokenError}.
   */
  token(): Promise<CachedAccessToken> {
    const c = this.cached;
    if (c && Date.now() < c.refreshAt) return Promise.resolve(c);
    this.inflight ??= this.fetchToken().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /**
   * Drops `rejected` (the access token a refused request carried) if it is still the cached one, so
   * the next {@link token} fetches a new one. A request refused with a token that has already been
   * replaced changes nothing: N concurrent refusals of one token cost one token request.
   * `undefined` (the refused token is unknown) drops whatever is cached.
   */
  invalidate(rejected: string | undefined): void {
    if (this.cached && (rejected === undefined || this.cached.accessToken === rejected)) this.cached = undefined;
  }

  private async fetchToken(): Promise<CachedAccessToken> {
    try {
      const t = await this.requestToken();
      const now = Date.now();
      const lifetimeMs = t.expires_in * 1000;
      this.cached = { accessToken: t.access_token, expiresAt: now + lifetimeMs, refreshAt: now + lifetimeMs - Math.min(TOKEN_REFRESH_MARGIN_MS, lifetimeMs / 2) };
      this.lastFailure = undefined;
      return this.cached;
    } catch (err) {
      const failure: OAuthFailure =
        err instanceof OAuthTokenError
          ? err.failure
          : {
              tokenUri: this.sa.token_uri,
              error: (err as NodeJS.ErrnoException).code ?? 'network-error',
              description: (err as Error).message,
              retryable: true,
            };
      this.lastFailure = failure;
      throw err instanceof OAuthTokenError ? err : new OAuthTokenError(failure);
    }
  }

  private requestToken(): Promise<GoogleOAuthAccessToken> {
    const tokenUri = this.sa.token_uri;
    const body = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
      assertion: signServiceAccountAssertion(this.sa, this.key),
    }).toString();
    return new Promise((resolve, reject) => {
      const req = https.request(
        tokenUri,
        {
          method: 'POST',
          agent: this.agent,
          timeout: TOKEN_REQUEST_TIMEOUT_MS,
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), accept: 'application/json' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString('utf8');
            let json: Record<string, unknown> | undefined;
            try {
              json = JSON.parse(text) as Record<string, unknown>;
            } catch {
              json = undefined;
            }
            if (status === 200 && json && typeof json.access_token === 'string') {
              const expiresIn = typeof json.expires_in === 'number' ? json.expires_in : Number(json.expires_in ?? 3600);
              resolve({ access_token: json.access_token, expires_in: Number.isFinite(expiresIn) ? expiresIn : 3600 });
              return;
            }
            const retryAfter = retryAfterMs(res.headers);
            reject(
              new OAuthTokenError({
                tokenUri,
                status,
                error: typeof json?.error === 'string' ? json.error : status === 200 ? 'bad_token_response' : httpStatusCode(status),
                description: typeof json?.error_description === 'string' ? json.error_description : text.slice(0, 200) || 'no body',
                retryable: status === 429 || status >= 500,
                ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}),
              }),
            );
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error(`token request timed out after ${TOKEN_REQUEST_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Transport: FCM_ENDPOINT, TLS trust, per-request evidence
// ---------------------------------------------------------------------------------------------

/**
 * Extra TLS trust a caller may add to the `ProviderContext` (not part of types.ts yet; proposed there).
 * Production trusts private CAs through `NODE_EXTRA_CA_CERTS`, read once at process start. Tests that
 * are run without it pass the test CA here. When given, these CAs are trusted in addition to Node's
 * bundled roots (but `NODE_EXTRA_CA_CERTS` is then no longer consulted by these connections).
 */
export interface FcmTlsOptions {
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
}
export type FcmProviderContext = ProviderContext & { tls?: FcmTlsOptions };

/**
 * One TLS context built up front. Passing `ca` to an agent instead would make Node fold the whole
 * CA list into the pool key of every request (https.Agent#getName), which cost 4× in throughput.
 */
function trustOptions(ctx: ProviderContext): { secureContext?: SecureContext } {
  const extra = (ctx as FcmProviderContext).tls?.ca;
  if (extra === undefined) return {};
  const list = Array.isArray(extra) ? [...(extra as ReadonlyArray<string | Buffer>)] : [extra as string | Buffer];
  return list.length ? { secureContext: createSecureContext({ ca: [...rootCertificates, ...list] }) } : {};
}

/** What one HTTP exchange answered, recorded by the agent for the classification. */
export interface FcmHttpEvidence {
  status?: number;
  /** Raw `Retry-After` header. */
  retryAfter?: string;
  /** Raw error body (google.rpc.Status JSON), only for status ≥ 400. */
  body?: string;
  /** The OAuth access token the request carried (never put into an outcome). */
  bearer?: string;
}

const exchange = new AsyncLocalStorage<FcmHttpEvidence>();

interface EndpointTarget {
  host: string;
  port: number;
  /** SNI and the name the certificate is checked against; '' for an IP address (no SNI). */
  servername: string;
  /** Host header for a non-default endpoint, so a proxy or staging server routes by its own name. */
  hostHeader?: string;
}

export function endpointTarget(endpoint: string): EndpointTarget {
  const url = new URL(endpoint);
  if (url.protocol !== 'https:') throw new Error(`FCM_ENDPOINT must be an https URL, got ${endpoint}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port ? Number(url.port) : 443;
  const isDefault = host === FCM_DEFAULT_HOST && port === 443;
  return {
    host,
    port,
    servername: isIP(host) ? '' : host,
    ...(isDefault ? {} : { hostHeader: url.host }),
  };
}

/**
 * Points every socket at the configured endpoint. firebase-admin still builds
 * `https://fcm.googleapis.com/…` URLs; the connection goes to FCM_ENDPOINT and is verified
 * against FCM_ENDPOINT's own name (or IP), exactly like any https URL. For the default endpoint
 * that is `fcm.googleapis.com`, so nothing changes there.
 */
class FcmAgent extends https.Agent {
  constructor(
    private readonly target: EndpointTarget,
    options: https.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void) {
    return super.createConnection({ ...options, host: this.target.host, port: this.target.port, servername: this.target.servername }, callback);
  }

  /** Node's (undocumented in @types) hook, called once per request, reused socket or not. */
  addRequest(req: ClientRequest, options: https.RequestOptions): void {
    if (this.target.hostHeader) req.setHeader('host', this.target.hostHeader);
    const slot = exchange.getStore();
    if (slot) {
      const bearer = /^Bearer\s+(\S+)$/i.exec(String(req.getHeader('authorization') ?? ''))?.[1];
      if (bearer) slot.bearer = bearer;
      else delete slot.bearer;
      req.once('response', (res: IncomingMessage) => recordResponse(slot, res));
    }
    (https.Agent.prototype as unknown as { addRequest(r: ClientRequest, o: https.RequestOptions): void }).addRequest.call(this, req, options);
  }
}

function recordResponse(slot: FcmHttpEvidence, res: IncomingMessage): void {
  slot.status = res.statusCode;
  const ra = headerValue(res.headers['retry-after']);
  if (ra !== undefined) slot.retryAfter = ra;
  else delete slot.retryAfter;
  delete slot.body;
  if ((res.statusCode ?? 0) < 400 || res.headers['content-encoding']) return;
  // firebase-admin's own listeners were attached first; this one sees the same chunks.
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (c: Buffer) => {
    if (size < MAX_CAPTURED_BODY) chunks.push(c);
    size += c.length;
  });
  res.on('end', () => {
    slot.body = Buffer.concat(chunks).toString('utf8');
  });
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

// ---------------------------------------------------------------------------------------------
// Message building
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Outcome classification
// ---------------------------------------------------------------------------------------------

/** firebase-admin `messaging/*` codes back to FCM's own error codes (lib/utils/error.js). */
const SDK_TO_FCM: Record<string, string> = {
  'messaging/registration-token-not-registered': 'UNREGISTERED',
  'messaging/invalid-registration-token': 'INVALID_ARGUMENT',
  'messaging/invalid-argument': 'INVALID_ARGUMENT',
  'messaging/mismatched-credential': 'SENDER_ID_MISMATCH',
  'messaging/message-rate-exceeded': 'QUOTA_EXCEEDED',
  'messaging/device-message-rate-exceeded': 'QUOTA_EXCEEDED',
  'messaging/topics-message-rate-exceeded': 'QUOTA_EXCEEDED',
  'messaging/third-party-auth-error': 'THIRD_PARTY_AUTH_ERROR',
  'messaging/server-unavailable': 'UNAVAILABLE',
  'messaging/internal-error': 'INTERNAL',
  'messaging/unknown-error': 'UNSPECIFIED_ERROR',
};

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED', 'UND_ERR_SOCKET']);

interface RpcStatus {
  message?: string;
  status?: string;
  fcmErrorCode?: string;
  fieldViolations: string[];
  apnsError?: unknown;
}

function parseRpcStatus(body: string | undefined): RpcStatus | undefined {
  if (!body) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return undefined;
  }
  const error = isRecord(json) ? json.error : undefined;
  if (!isRecord(error)) return undefined;
  const out: RpcStatus = { fieldViolations: [] };
  if (typeof error.message === 'string') out.message = error.message;
  if (typeof error.status === 'string') out.status = error.status;
  for (const d of Array.isArray(error.details) ? error.details : []) {
    if (!isRecord(d)) continue;
    const type = String(d['@type'] ?? '');
    if (type.endsWith('google.firebase.fcm.v1.FcmError') && typeof d.errorCode === 'string') out.fcmErrorCode = d.errorCode;
    else if (type.endsWith('google.firebase.fcm.v1.ApnsError')) out.apnsError = { statusCode: d.statusCode, reason: d.reason };
    else if (type.endsWith('google.rpc.BadRequest') && Array.isArray(d.fieldViolations)) {
      for (const fv of d.fieldViolations) if (isRecord(fv) && typeof fv.field === 'string') out.fieldViolations.push(fv.field);
    }
  }
  return out;
}

/**
 * Maps a failed `messaging.send()` to an outcome (SPEC §4). `http` is what the transport saw
 * (status, Retry-After, error body); without it the firebase-admin error code alone is used.
 * `reason.code` is FCM's code (FcmError.errorCode, else google.rpc status, else the SDK / network code).
 */
export function classifyFcmError(err: unknown, http: FcmHttpEvidence = {}, now = Date.now()): Outcome {
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as { code?: unknown; message?: unknown };
  const sdkCode = typeof e.code === 'string' ? e.code : undefined;
  const rpc = parseRpcStatus(http.body);
  const status = http.status;
  const message = rpc?.message ?? (typeof e.message === 'string' ? e.message : 'unknown error');
  const retryAfter = retryAfterMs({ 'retry-after': http.retryAfter }, now);
  // With the body at hand only an explicit FcmError or status counts; the SDK maps a detail-less
  // 404 / 401 / 403 to token or APNs errors, which would quarantine good tokens.
  const code = rpc ? (rpc.fcmErrorCode ?? rpc.status ?? httpStatusName(status)) : (sdkCode && SDK_TO_FCM[sdkCode]) ?? sdkCode ?? 'UNKNOWN';
  const evidence: Record<string, unknown> = {
    ...(status !== undefined ? { status } : {}),
    errorCode: code,
    ...(sdkCode ? { sdkCode } : {}),
    ...(http.retryAfter !== undefined ? { retryAfter: http.retryAfter } : {}),
    ...(rpc?.fieldViolations.length ? { fieldViolations: rpc.fieldViolations } : {}),
    ...(rpc?.apnsError ? { apnsError: rpc.apnsError } : {}),
  };
  const reason = (why?: string): OutcomeReason => ({ code, message: why ? `${message} (${why})` : message, evidence });

  switch (code) {
    case 'UNREGISTERED':
      return invalid(reason());
    case 'INVALID_ARGUMENT': {
      const aboutToken =
        sdkCode === 'messaging/invalid-registration-token' ||
        (rpc?.fieldViolations ?? []).some((f) => f === 'message.token' || f.startsWith('message.token')) ||
        /registration token|message\.token/i.test(message);
      return aboutToken ? invalid(reason()) : failed(reason());
    }
    case 'QUOTA_EXCEEDED':
    case 'RESOURCE_EXHAUSTED':
      return retry(reason(), retryAfter ?? FCM_QUOTA_MIN_BACKOFF_MS);
    case 'UNAVAILABLE':
    case 'INTERNAL':
      return retry(reason(), retryAfter);
    case 'THIRD_PARTY_AUTH_ERROR':
      return failed(reason('the APNs certificate / auth key or Web Push key configured in the Firebase project was rejected'));
    case 'SENDER_ID_MISMATCH':
      return failed(reason('the token belongs to a different Firebase project than this service account'));
    case 'UNAUTHENTICATED':
      return failed(reason("FCM rejected the service account's OAuth access token"));
    case 'PERMISSION_DENIED':
      return failed(reason('the service account may not send for this project (wrong project_id, missing role or FCM API disabled)'));
    case 'app/network-error':
    case 'app/network-timeout':
      return retry(reason(), retryAfter);
    case 'app/invalid-credential': {
      // Token refresh failed (OAuth). Our credential's messages embed the OAuth error.
      const grantProblem = /invalid_grant|invalid_client|unauthorized_client|invalid_scope|HTTP 4\d\d/.test(message) && !/HTTP 429/.test(message);
      return grantProblem ? failed(reason('OAuth token request rejected')) : retry(reason('OAuth token request failed'));
    }
    case 'messaging/invalid-payload':
    case 'messaging/invalid-argument':
      return failed({ ...reason(), code: 'INVALID_ARGUMENT' });
    default:
      if (sdkCode && NETWORK_CODES.has(sdkCode)) return retry(reason(), retryAfter);
      if (status !== undefined && (status === 429 || status >= 500)) return retry(reason(), status === 429 ? (retryAfter ?? FCM_QUOTA_MIN_BACKOFF_MS) : retryAfter);
      if (status !== undefined) return failed(reason());
      // No HTTP answer and nothing recognised: transport-level, bounded by MAX_ATTEMPTS.
      return sdkCode?.startsWith('messaging/') ? failed(reason()) : retry(reason());
  }
}

/**
 * FCM refused the OAuth access token itself: 401 without an FcmError detail (what Google's front end
 * answers for a revoked, expired or unknown token). THIRD_PARTY_AUTH_ERROR is also a 401, but with an
 * FcmError detail: the APNs / Web Push credential in the Firebase project, which a new token cannot
 * fix. A 401 whose body could not be read counts as a refused token (costs one token request at most).
 */
export function isAccessTokenRejection(http: FcmHttpEvidence): boolean {
  return http.status === 401 && parseRpcStatus(http.body)?.fcmErrorCode === undefined;
}

/** The outcome when FCM refuses the access token again right after a new one was fetched. */
function accessTokenRefusedAgain(http: FcmHttpEvidence): Outcome {
  const server = parseRpcStatus(http.body)?.message;
  return failed({
    code: 'UNAUTHENTICATED',
    message:
      "FCM rejected the service account's OAuth access token again right after a new one was fetched; not re-sent " +
      '(the token endpoint issues tokens FCM does not accept: check token_uri and that the service account is enabled)' +
      (server ? `: ${server}` : ''),
    evidence: { status: 401, errorCode: 'UNAUTHENTICATED', accessTokenRefreshed: true },
  });
}

function httpStatusName(status: number | undefined): string {
  switch (status) {
    case 400: return 'INVALID_ARGUMENT';
    case 401: return 'UNAUTHENTICATED';
    case 403: return 'PERMISSION_DENIED';
    case 404: return 'NOT_FOUND';
    case 429: return 'RESOURCE_EXHAUSTED';
    case 500: return 'INTERNAL';
    case 503: return 'UNAVAILABLE';
    default: return status === undefined ? 'UNKNOWN' : `HTTP_${status}`;
  }
}

/** An OAuth failure seen by our own credential, as an outcome for every target waiting on it. */
export function classifyOAuthFailure(f: OAuthFailure): Outcome {
  const reason: OutcomeReason = {
    code: f.error,
    message: `OAuth token request to ${f.tokenUri} failed: ${f.description}`,
    evidence: { ...(f.status !== undefined ? { status: f.status } : {}), errorCode: f.error, tokenUri: f.tokenUri },
  };
  return f.retryable ? retry(reason, f.retryAfterMs) : failed(reason);
}

// ---------------------------------------------------------------------------------------------
// Provider
// ---------------------------------------------------------------------------------------------

/** firebase-admin internals touched to switch its retries off (lib/utils/api-request.js). */
interface MessagingInternals {
  messagingRequestHandler?: { httpClient?: { retry?: unknown } };
}
const NO_RETRY = { maxRetries: 0, statusCodes: [], ioErrorCodes: [], backOffFactor: 0, maxDelayInMillis: 0 };

class FcmProvider implements Provider {
  readonly channel = 'fcm' as const;
  private readonly app: App;
  private readonly messaging: Messaging;
  private readonly agent: FcmAgent;
  private readonly tokenAgent: https.Agent;
  private readonly credential: ServiceAccountCredential;
  private readonly limiter: Limiter;
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;

  constructor(cred: FcmCredential, ctx: ProviderContext) {
    const sa = cred.serviceAccount;
    const concurrency = Math.max(1, tuningOf(ctx, FCM_TUNING, 'fcmConcurrency'));
    const trust = trustOptions(ctx);
    const endpoint = endpointOf(ctx, FCM_ENDPOINTS, 'fcm');
    const target = endpointTarget(endpoint);
    if (new URL(endpoint).pathname.replace(/\/+$/, '') !== '') {
      ctx.logger.warn({ endpoint }, 'FCM_ENDPOINT path is ignored; requests go to /v1/projects/{project}/messages:send');
    }
    this.agent = new FcmAgent(target, { keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency, ...trust });
    this.tokenAgent = new https.Agent({ keepAlive: false, ...trust });
    this.credential = new ServiceAccountCredential(sa, this.tokenAgent);
    this.limiter = createLimiter(concurrency);
    this.app = initializeApp(
      { credential: this.credential, projectId: sa.project_id, httpAgent: this.agent },
      `relay-fcm-${sa.project_id}-${randomUUID()}`,
    );
    this.messaging = getMessaging(this.app);
    const internals = (this.messaging as unknown as MessagingInternals).messagingRequestHandler?.httpClient;
    if (internals && 'retry' in internals) internals.retry = NO_RETRY;
    else ctx.logger.warn('firebase-admin internals changed: its own 503 retries stay on');
  }

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    if (targets.length === 0) return [];
    const built = buildFcmMessage(content);
    if (!built.ok) return targets.map(() => built.outcome);
    const work = Promise.all(targets.map((t) => this.limiter(() => this.sendOne(built.message, t.token))));
    this.pending.add(work);
    try {
      return await work;
    } finally {
      this.pending.delete(work);
    }
  }

  /**
   * One token: one request, plus one re-send when FCM refused the access token (a 401 without
   * FcmError, see {@link isAccessTokenRejection}). Google may revoke a token before its stated
   * expiry; the refused token is dropped, one new token is fetched (shared by every send refused
   * with that same token) and the request re-sent once. A second refusal is `failed`.
   */
  private async sendOne(message: BaseMessage, token: string): Promise<Outcome> {
    if (this.closed) return retry({ code: RELAY_CODES.closed, message: 'provider closed before the request was made' });
    const first = await this.attempt(message, token);
    if (!first.http || !isAccessTokenRejection(first.http)) return first.outcome;

    this.credential.invalidate(first.http.bearer);
    try {
      // Fetched here, not lazily inside the re-send: an OAuth failure gets its own outcome, and a new
      // token only replaces the refused one across a token request (network I/O), so once this has
      // resolved every firebase-admin token lookup begun before the invalidation (resolved from the
      // cache within microtasks) has settled: the re-send cannot pick up the refused token.
      await this.credential.token();
    } catch (err) {
      return err instanceof OAuthTokenError ? classifyOAuthFailure(err.failure) : retry({ code: RELAY_CODES.authError, message: String(err) });
    }
    const second = await this.attempt(message, token);
    if (!second.http || !isAccessTokenRejection(second.http)) return second.outcome;
    return accessTokenRefusedAgain(second.http);
  }

  /** One `messaging.send()`; `http` is what FCM answered when it answered with an error. */
  private async attempt(message: BaseMessage, token: string): Promise<{ outcome: Outcome; http?: FcmHttpEvidence }> {
    const evidence: FcmHttpEvidence = {};
    try {
      const name = await exchange.run(evidence, () => this.messaging.send({ ...message, token } as TokenMessage));
      return { outcome: sent(name) };
    } catch (err) {
      if ((err as { code?: string }).code === 'app/invalid-credential' && this.credential.lastFailure) {
        return { outcome: classifyOAuthFailure(this.credential.lastFailure) };
      }
      return { outcome: classifyFcmError(err, evidence), http: evidence };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    await deleteApp(this.app).catch(() => undefined);
    this.agent.destroy();
    this.tokenAgent.destroy();
  }
}

export const FCM_ENDPOINTS = {
  fcm: { env: 'FCM_ENDPOINT', default: FCM_DEFAULT_ENDPOINT, doc: 'FCM HTTP v1 base URL' },
} as const satisfies Record<string, EndpointSetting>;

export const FCM_TUNING = {
  fcmConcurrency: { env: 'FCM_CONCURRENCY', default: 64, doc: 'Concurrent FCM requests per credential' },
} as const satisfies Record<string, TuningSetting>;

const fcmModule = {
  channel: 'fcm' as const,
  endpoints: FCM_ENDPOINTS,
  tuning: FCM_TUNING,
  overridesSchema: fcmOverridesSchema,
  credentialSchema: fcmCredentialSchema,
  checkCredential(cred) {
    parseRsaKey(cred.serviceAccount.private_key);
  },
  describe(cred) {
    const sa = cred.serviceAccount;
    return { projectId: sa.project_id, clientEmail: sa.client_email, tokenUri: sa.token_uri };
  },
  create(cred, ctx) {
    return new FcmProvider(cred, ctx);
  },
} satisfies ProviderModule<FcmCredential>;

export default fcmModule;
