import { failed, invalid, retry, sent, type Outcome, type OutcomeReason, httpStatusCode } from '../types.js';

/** APNs answers (status and reason) as outcomes: pure. */

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

