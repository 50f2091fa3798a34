import { X509Certificate, createPrivateKey } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import apn from '@parse/node-apn';
import type { MultiProviderOptions, Notification as ApnNotification } from '@parse/node-apn';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  APNS_PUSH_TYPES,
  CredentialError,
  expired,
  failed,
  invalid,
  retry,
  sent,
  type ApnsPushType,
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
} from './types.js';
import { isRecord } from './shared/json.js';
import { Semaphore } from './shared/limiter.js';
import { RELAY_CLICK_KEY, RELAY_ID_KEY, RELAY_IMAGE_KEY } from './shared/relay-keys.js';

/**
 * APNs channel: Apple's HTTP/2 provider API through `@parse/node-apn` 8.x.
 *
 * - One long-lived node-apn client per credential (`Provider`, or `MultiProvider` when
 *   `APNS_CONNECTIONS` > 1), `connectionRetryLimit: 0`: Relay retries per token with its own
 *   backoff; node-apn would otherwise hammer a 429 four times in a row (it cannot read
 *   `Retry-After`).
 * - In-flight HTTP/2 streams are bounded by one semaphore per provider instance
 *   (`APNS_MAX_STREAMS` × connections permits), shared by every concurrent `send()`.
 * - Everything that can be decided without the network (topic, priority, expiry, collapse id,
 *   payload size, token syntax) is decided by the pure `buildApnsRequest`; every APNs answer is
 *   classified by the pure `classifyApnsResult`.
 */

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

const PEM = /-----BEGIN [A-Z0-9 ]+-----/;
const APPLE_ID = /^[A-Z0-9]{10}$/;

/**
 * `PUT /v1/apps/:app/credentials/apns` body. Exactly one of two shapes:
 * - token auth: `{teamId, keyId, key (.p8 PEM), bundleId, production}`
 * - certificate auth: `{cert (PEM), key (PEM), passphrase?, bundleId, production}`
 *
 * One flat object (not a union) so a validation error names the field (`teamId`, `cert`, …)
 * and the JSON Schema stays readable. PEM text is required (never a file path: node-apn would
 * read any non-PEM string from the server's disk).
 */
export const apnsCredentialSchema = z
  .strictObject({
    teamId: z.string().regex(APPLE_ID, 'teamId must be the 10-character Apple Team ID').optional(),
    keyId: z.string().regex(APPLE_ID, 'keyId must be the 10-character key ID of the .p8 key').optional(),
    key: z.string().regex(PEM, 'key must be a PEM text (the .p8 file content, or the certificate key)'),
    cert: z.string().regex(PEM, 'cert must be a PEM certificate').optional(),
    passphrase: z.string().optional(),
    bundleId: z
      .string()
      .min(1)
      .max(155)
      .regex(/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/, 'bundleId must be a bundle identifier such as com.example.app'),
    production: z.boolean(),
  })
  .superRefine((c, ctx) => {
    if (c.cert !== undefined) {
      for (const f of ['teamId', 'keyId'] as const) {
        if (c[f] !== undefined) ctx.addIssue({ code: 'custom', path: [f], message: `${f} belongs to token auth; omit it with cert` });
      }
    } else {
      if (c.passphrase !== undefined) ctx.addIssue({ code: 'custom', path: ['passphrase'], message: 'passphrase belongs to certificate auth' });
      for (const f of ['teamId', 'keyId'] as const) {
        if (c[f] === undefined) ctx.addIssue({ code: 'custom', path: [f], message: `${f} is required for token auth (or give cert for certificate auth)` });
      }
    }
  });

export type ApnsCredential = z.infer<typeof apnsCredentialSchema>;

export function apnsAuthType(cred: ApnsCredential): 'token' | 'certificate' {
  return cred.cert !== undefined ? 'certificate' : 'token';
}

/** Parses the key material; throws `CredentialError` naming the bad field. */
export function checkApnsCredential(cred: ApnsCredential): void {
  if (apnsAuthType(cred) === 'token') {
    let key;
    try {
      key = createPrivateKey(cred.key);
    } catch (err) {
      throw new CredentialError('key', `key is not a readable private key: ${(err as Error).message}`);
    }
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
      throw new CredentialError('key', `key must be an APNs .p8 key (EC P-256), got ${key.asymmetricKeyType ?? '?'} ${curve ?? ''}`.trim());
    }
    return;
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(cred.cert!);
  } catch (err) {
    throw new CredentialError('cert', `cert is not a readable X.509 certificate: ${(err as Error).message}`);
  }
  let key;
  try {
    key = createPrivateKey({ key: cred.key, ...(cred.passphrase !== undefined ? { passphrase: cred.passphrase } : {}) });
  } catch (err) {
    const msg = (err as Error).message;
    if (/passphrase|decrypt/i.test(msg)) throw new CredentialError('passphrase', `the key could not be decrypted: ${msg}`);
    throw new CredentialError('key', `key is not a readable private key: ${msg}`);
  }
  if (!cert.checkPrivateKey(key)) throw new CredentialError('key', 'key does not belong to cert');
  const notAfter = Date.parse(cert.validTo);
  if (Number.isFinite(notAfter) && notAfter < Date.now()) throw new CredentialError('cert', `cert expired on ${cert.validTo}`);
  // node-apn refuses a certificate without the Apple extension of the configured environment.
  const env = apnsCertEnvironments(cert);
  if (cred.production ? !env.production : !env.sandbox) {
    throw new CredentialError(
      'production',
      `cert is not an APNs ${cred.production ? 'production' : 'development (sandbox)'} certificate (Apple Push Services extension missing)`,
    );
  }
}

/** DER of the Apple Push Services OIDs 1.2.840.113635.100.6.3.1 (development) and .2 (production). */
const APPLE_PUSH_OID_PREFIX = Buffer.from('060a2a864886f763640603', 'hex');

/** Which APNs environments a certificate is valid for (its Apple extensions). */
export function apnsCertEnvironments(cert: X509Certificate): { sandbox: boolean; production: boolean } {
  const der = cert.raw;
  const has = (last: number) => der.includes(Buffer.concat([APPLE_PUSH_OID_PREFIX, Buffer.from([last])]));
  return { sandbox: has(1), production: has(2) };
}

/** Fields safe to show: never key material. */
export function describeApnsCredential(cred: ApnsCredential): Record<string, unknown> {
  const common = { bundleId: cred.bundleId, production: cred.production };
  if (apnsAuthType(cred) === 'token') return { auth: 'token', teamId: cred.teamId, keyId: cred.keyId, ...common };
  try {
    const cert = new X509Certificate(cred.cert!);
    const env = apnsCertEnvironments(cert);
    return {
      auth: 'certificate',
      ...common,
      environments: [...(env.sandbox ? ['sandbox'] : []), ...(env.production ? ['production'] : [])],
      subject: cert.subject,
      issuer: cert.issuer,
      validFrom: new Date(cert.validFrom).toISOString(),
      validTo: new Date(cert.validTo).toISOString(),
      fingerprint256: cert.fingerprint256,
    };
  } catch {
    return { auth: 'certificate', ...common, certReadable: false };
  }
}

// ---------------------------------------------------------------------------------------------
// Overrides (`overrides.apns` of POST /v1/push)
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Classifying an answer (pure)
// ---------------------------------------------------------------------------------------------

/** One per-device result of node-apn's `send()` (`sent[i]` or `failed[i]`). */
export interface ApnsResult {
  device?: string;
  'apns-id'?: string;
  'apns-unique-id'?: string;
  status?: number | string;
  response?: { reason?: string; timestamp?: number | string };
  error?: { message: string };
}

const REASON_TEXT: Record<string, string> = {
  Unregistered: 'the device token is no longer active for the topic',
  ExpiredToken: 'the device token has expired',
  BadDeviceToken: 'the device token is invalid (or from the other APNs environment)',
  DeviceTokenNotForTopic: 'the device token belongs to another app (topic)',
  MissingDeviceToken: 'no device token in the request path',
  TooManyRequests: 'too many requests to this device token',
  TooManyProviderTokenUpdates: 'the provider token was refreshed too often; credential throttled',
  InternalServerError: 'APNs internal server error',
  ServiceUnavailable: 'APNs is unavailable',
  Shutdown: 'the APNs server is shutting down',
  IdleTimeout: 'the connection was idle too long',
  ExpiredProviderToken: 'the provider JWT is older than one hour (check the server clock)',
  InvalidProviderToken: 'the provider JWT is invalid: wrong key, key id or team id',
  MissingProviderToken: 'no provider token and no client certificate',
  BadCertificate: 'the client certificate is invalid',
  BadCertificateEnvironment: 'the client certificate is for the other APNs environment',
  BadEnvironmentKeyIdInToken: 'the .p8 key is restricted to the other APNs environment',
  BadEnvironmentKeyInToken: 'the .p8 key is restricted to the other APNs environment',
  UnrelatedKeyIdInToken: 'the key id changed on this connection',
  Forbidden: 'the action is not allowed',
  TopicDisallowed: 'pushing to this topic is not allowed for the credential',
  BadTopic: 'the apns-topic is invalid for the push type',
  MissingTopic: 'the apns-topic header is required',
  InvalidPushType: 'the apns-push-type is invalid',
  BadCollapseId: 'the collapse id exceeds 64 bytes',
  BadPriority: 'the apns-priority is invalid for this push',
  BadExpirationDate: 'the apns-expiration is invalid',
  BadMessageId: 'the apns-id is not a UUID',
  PayloadEmpty: 'the payload is empty',
  PayloadTooLarge: 'the payload exceeds the APNs limit',
  DuplicateHeaders: 'one or more headers are repeated',
  BadPath: 'the request path is invalid',
  MethodNotAllowed: 'only POST is allowed',
};

/** The token is dead for this app: quarantine it. */
const INVALID_REASONS = new Set(['Unregistered', 'ExpiredToken', 'BadDeviceToken', 'DeviceTokenNotForTopic', 'MissingDeviceToken']);
/** Transient: retry this token with backoff. */
const RETRY_REASONS = new Set(['TooManyRequests', 'InternalServerError', 'ServiceUnavailable', 'Shutdown', 'IdleTimeout']);
/** Credential-level throttle: every token of the credential waits this long. */
export const TOO_MANY_TOKEN_UPDATES_DELAY_MS = 60_000;
const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

/**
 * Maps one node-apn result to an `Outcome`. The APNs reason string is always the `code`;
 * transport failures (no HTTP status) are `Timeout` or `TransportError`.
 */
export function classifyApnsResult(r: ApnsResult): Outcome {
  const apnsId = r['apns-id'];
  const rawStatus = r.status;
  let status = typeof rawStatus === 'number' ? rawStatus : rawStatus !== undefined && /^\d+$/.test(String(rawStatus)) ? Number(rawStatus) : undefined;
  if (r.error === undefined && r.response === undefined && (status === undefined || status === 200)) return sent(apnsId);
  if (status !== undefined && status >= 200 && status < 300) return sent(apnsId);

  let reason = r.response?.reason;
  const errMsg = r.error?.message;
  if (reason === undefined && errMsg !== undefined) {
    // node-apn turns two answers into an error: 403 ExpiredProviderToken, and a 500 whose body it drops.
    if (status === 403 && errMsg === 'ExpiredProviderToken') reason = 'ExpiredProviderToken';
    else if (status === 500) reason = 'InternalServerError';
  }

  if (status === undefined) {
    // No HTTP status: the request never got a complete answer (timeout, reset, GOAWAY, refused
    // connection, TLS failure) or the answer had no body; all are worth another attempt.
    const m = errMsg ?? 'no response';
    const embedded = /with status (\d{3})/.exec(m);
    if (embedded) status = Number(embedded[1]);
    const code = /timeout/i.test(m) ? 'Timeout' : 'TransportError';
    return retry({ code, message: m, evidence: { ...(status !== undefined ? { status } : {}), error: m } });
  }

  const code = reason ?? httpStatusCode(status);
  const evidence: Record<string, unknown> = { status, reason: reason ?? null };
  if (r.response?.timestamp !== undefined) evidence.timestamp = Number(r.response.timestamp);
  if (apnsId) evidence.apnsId = apnsId;
  const why: OutcomeReason = { code, message: (reason && REASON_TEXT[reason]) ?? errMsg ?? `APNs answered ${status}`, evidence };

  if (reason !== undefined) {
    if (INVALID_REASONS.has(reason)) return invalid(why);
    if (reason === 'TooManyProviderTokenUpdates') return retry(why, TOO_MANY_TOKEN_UPDATES_DELAY_MS);
    if (RETRY_REASONS.has(reason)) return retry(why);
    if (REASON_TEXT[reason] !== undefined) return failed(why);
  }
  if (status === 410) return invalid(why);
  if (RETRY_STATUSES.has(status) || status >= 500) return retry(why);
  return failed(why);
}

// ---------------------------------------------------------------------------------------------
// Provider
// ---------------------------------------------------------------------------------------------

/**
 * An optional extra the APNs provider reads from its `ProviderContext` (not in `types.ts`):
 * `apnsRequestTimeoutMs`, node-apn's `requestTimeout` (default 5000), so tests can shorten it.
 * (`ctx.tls.ca`, from types.ts, is added to Node's bundled roots; production trusts private CAs
 * through NODE_EXTRA_CA_CERTS instead.)
 */
export interface ApnsContextExtras {
  apnsRequestTimeoutMs?: number;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

type ApnClient = InstanceType<typeof apn.Provider> | InstanceType<typeof apn.MultiProvider>;

/** Builds the node-apn options for a credential and context (exported for tests). */
export function apnOptions(cred: ApnsCredential, ctx: ProviderContext & ApnsContextExtras): MultiProviderOptions {
  const opts: MultiProviderOptions = {
    production: cred.production,
    connectionRetryLimit: 0,
    requestTimeout: ctx.apnsRequestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
  };
  if (apnsAuthType(cred) === 'token') {
    opts.token = { key: cred.key, keyId: cred.keyId!, teamId: cred.teamId! };
  } else {
    opts.cert = cred.cert!;
    opts.key = cred.key;
    if (cred.passphrase !== undefined) opts.passphrase = cred.passphrase;
  }
  if (ctx.endpoints.apns) {
    const u = new URL(ctx.endpoints.apns);
    opts.address = u.hostname;
    opts.port = u.port ? Number(u.port) : 443;
  } else {
    opts.address = cred.production ? 'api.push.apple.com' : 'api.sandbox.push.apple.com';
  }
  const extraCa = ctx.tls?.ca;
  if (extraCa !== undefined) opts.ca = [...rootCertificates, ...(typeof extraCa === 'string' ? [extraCa] : extraCa)];
  const connections = tuningOf(ctx, APNS_TUNING, 'apnsConnections');
  if (connections > 1) opts.clientCount = connections;
  return opts;
}

function toNotification(req: ApnsRequest): ApnNotification {
  const note = new apn.Notification();
  note.topic = req.topic;
  note.pushType = req.pushType;
  note.priority = req.priority;
  note.expiry = req.expiration;
  if (req.collapseId) note.collapseId = req.collapseId;
  note.rawPayload = req.payload;
  return note;
}

/** One send in flight, registered (in start order) while it holds a stream permit. */
class InFlight {
  readonly since = Date.now();

  constructor(
    private readonly registry: Set<InFlight>,
    private readonly streams: Semaphore,
    private readonly resolve: (o: Outcome) => void,
  ) {
    registry.add(this);
  }

  /** Settles the call once (a late answer after a timeout is dropped) and frees its permit. */
  finish(o: Outcome): void {
    if (!this.registry.delete(this)) return;
    this.streams.release();
    this.resolve(o);
  }
}

export class ApnsProvider implements Provider {
  readonly channel = 'apns' as const;
  private readonly client: ApnClient | undefined;
  private readonly createError: string | undefined;
  private readonly streams: Semaphore;
  private readonly log: Logger;
  private readonly requestTimeoutMs: number;
  /** Sends in flight, in start order. */
  private readonly inflight = new Set<InFlight>();
  private watchdog: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly cred: ApnsCredential,
    ctx: ProviderContext & ApnsContextExtras,
  ) {
    this.log = ctx.logger.child({ channel: 'apns', bundleId: cred.bundleId });
    this.requestTimeoutMs = ctx.apnsRequestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const connections = Math.max(1, tuningOf(ctx, APNS_TUNING, 'apnsConnections'));
    this.streams = new Semaphore(Math.max(1, tuningOf(ctx, APNS_TUNING, 'apnsMaxStreams')) * connections);
    let client: ApnClient | undefined;
    let createError: string | undefined;
    try {
      const opts = apnOptions(cred, ctx);
      client = connections > 1 ? new apn.MultiProvider(opts) : new apn.Provider(opts);
      this.hookLogger(client);
    } catch (err) {
      // A credential that passed checkCredential but that node-apn refuses: every send fails.
      createError = (err as Error).message;
      this.log.error({ err: createError }, 'apns client could not be created');
    }
    this.client = client;
    this.createError = createError;
  }

  /** Routes node-apn's own diagnostics (session errors, GOAWAY) to pino at debug level. */
  private hookLogger(client: ApnClient): void {
    const inner = (client as unknown as { client?: { setLogger?: (l: unknown, e?: unknown) => void } }).client;
    if (typeof inner?.setLogger !== 'function') return;
    const info = Object.assign((msg: string) => this.log.trace(msg), { enabled: this.log.isLevelEnabled('trace') });
    const error = Object.assign((msg: string) => this.log.debug(msg), { enabled: this.log.isLevelEnabled('debug') });
    inner.setLogger(info, error);
  }

  /** Streams currently held (for metrics and tests). */
  get inFlight(): number {
    return this.streams.inUse;
  }

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    if (targets.length === 0) return [];
    if (this.createError !== undefined || this.client === undefined) {
      const o = failed({ code: RELAY_CODES.invalidCredential, message: `APNs client could not be created: ${this.createError ?? 'unknown'}` });
      return targets.map(() => o);
    }
    if (this.closed) return targets.map(() => retry({ code: RELAY_CODES.closed, message: 'the APNs provider was closed' }));

    const built = buildApnsRequest(content, this.cred.bundleId);
    if (!built.ok) return targets.map(() => built.outcome);
    const note = toNotification(built.request);

    const outcomes = await this.sendAll(note, targets.map((t) => t.token));

    // node-apn regenerates its JWT after a 403 ExpiredProviderToken; with retries off in node-apn,
    // Relay re-sends those tokens once at once. A second ExpiredProviderToken stays `failed`
    // (clock skew or a revoked key: no retry will fix it).
    const expired = outcomes.flatMap((o, i) => (o.kind === 'failed' && o.reason.code === 'ExpiredProviderToken' ? [i] : []));
    if (expired.length > 0 && !this.closed) {
      const again = await this.sendAll(note, expired.map((i) => targets[i]!.token));
      expired.forEach((i, j) => (outcomes[i] = again[j]!));
    }

    this.logCredentialProblems(outcomes);
    return outcomes;
  }

  private async sendAll(note: ApnNotification, tokens: readonly string[]): Promise<Outcome[]> {
    const outcomes: Outcome[] = new Array<Outcome>(tokens.length);
    const pending: Promise<void>[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (!isApnsTokenSyntax(token)) {
        outcomes[i] = invalid({
          code: 'BadDeviceToken',
          message: 'the device token is not hex bytes',
          evidence: { local: true, length: token.length },
        });
        continue;
      }
      const wait = this.streams.acquire();
      if (wait) await wait;
      pending.push(
        this.sendOne(note, token).then((o) => {
          outcomes[i] = o;
        }),
      );
    }
    await Promise.all(pending);
    return outcomes;
  }

  /** One token, one stream; the permit is held exactly while node-apn's stream is open. */
  private sendOne(note: ApnNotification, token: string): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      const call = new InFlight(this.inflight, this.streams, resolve);
      this.watchStuckCalls();
      this.client!.send(note, token).then(
        (res) => {
          const r = (res.sent[0] ?? res.failed[0]) as ApnsResult | undefined;
          call.finish(r ? classifyApnsResult(r) : retry({ code: RELAY_CODES.transportError, message: 'node-apn returned no result' }));
        },
        (err: unknown) => call.finish(retry({ code: RELAY_CODES.transportError, message: (err as Error)?.message ?? String(err) })),
      );
    });
  }

  /**
   * node-apn can wait forever on a session an error already destroyed (it awaits `close(cb)` after
   * a 500): a stuck call must not keep its stream permit. One timer sweeps the calls in flight
   * (oldest first) while there are any, rather than a timer per token.
   */
  private watchStuckCalls(): void {
    if (this.watchdog) return;
    const limitMs = this.requestTimeoutMs * 2 + 1000;
    this.watchdog = setInterval(() => {
      const now = Date.now();
      for (const call of this.inflight) {
        if (now - call.since < limitMs) break;
        call.finish(retry({ code: RELAY_CODES.timeout, message: `node-apn gave no result within ${limitMs} ms` }));
      }
      if (this.inflight.size === 0) {
        clearInterval(this.watchdog);
        this.watchdog = undefined;
      }
    }, Math.min(1000, limitMs));
    this.watchdog.unref();
  }

  private logCredentialProblems(outcomes: readonly Outcome[]): void {
    const seen = new Set<string>();
    for (const o of outcomes) {
      if (o.kind !== 'failed' || seen.has(o.reason.code)) continue;
      seen.add(o.reason.code);
      this.log.warn({ code: o.reason.code, evidence: o.reason.evidence }, `apns: ${o.reason.message}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const client = this.client;
    if (!client) return;
    const sessions = internalSessions(client);
    // node-apn 8.1 waits forever in shutdown() for a session that an error already destroyed
    // (`close(cb)` on a destroyed session never calls back): forget those first.
    for (const s of sessions) if (s.holder[s.field]?.destroyed) s.holder[s.field] = null;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => {
        // Provider.shutdown() returns nothing in node-apn 8.1 (despite its typings): use the callback.
        const r = client.shutdown(() => resolve()) as unknown;
        if (r instanceof Promise) r.catch(() => resolve());
      }),
      new Promise<void>((resolve) => {
        // Graceful close lets open streams finish (each ends within requestTimeout); then force.
        timer = setTimeout(() => {
          for (const s of sessions) s.holder[s.field]?.destroy();
          resolve();
        }, this.requestTimeoutMs + 1000);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }
}

type SessionHolder = Record<'session' | 'manageChannelsSession', { destroyed: boolean; destroy(): void } | null | undefined>;

/** node-apn's HTTP/2 session slots (`provider.client` is a Client or a MultiClient of Clients). */
function internalSessions(client: ApnClient): Array<{ holder: SessionHolder; field: keyof SessionHolder }> {
  const inner = (client as unknown as { client?: SessionHolder & { clients?: SessionHolder[] } }).client;
  if (!inner) return [];
  const holders = Array.isArray(inner.clients) ? inner.clients : [inner];
  return holders.flatMap((holder) => (['session', 'manageChannelsSession'] as const).map((field) => ({ holder, field })));
}

/** APNS_ENDPOINT: unset → node-apn's own production host (api.push.apple.com). */
export const APNS_ENDPOINTS = {
  apns: { env: 'APNS_ENDPOINT', doc: 'APNs base URL (e.g. https://api.sandbox.push.apple.com); unset: production' },
} as const satisfies Record<string, EndpointSetting>;

export const APNS_TUNING = {
  apnsMaxStreams: { env: 'APNS_MAX_STREAMS', default: 500, doc: 'Upper bound of concurrent HTTP/2 streams per APNs connection; Apple advertises ~1000' },
  apnsConnections: { env: 'APNS_CONNECTIONS', default: 1, doc: 'HTTP/2 connections per APNs credential' },
} as const satisfies Record<string, TuningSetting>;

const apnsModule = {
  channel: 'apns' as const,
  tokenSchema: z.string().regex(/^[0-9a-fA-F]{32,200}$/, 'an APNs device token is hex'),
  endpoints: APNS_ENDPOINTS,
  tuning: APNS_TUNING,
  overridesSchema: apnsOverridesSchema,
  credentialSchema: apnsCredentialSchema,
  checkCredential: checkApnsCredential,
  describe: describeApnsCredential,
  create: (cred, ctx) => new ApnsProvider(cred, ctx as ProviderContext & ApnsContextExtras),
} satisfies ProviderModule<ApnsCredential>;

export default apnsModule;
