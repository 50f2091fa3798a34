import { failed, invalid, retry, type Outcome, type OutcomeReason } from '../types.js';
import { retryAfterMs } from '../shared/http.js';
import { isRecord } from '../shared/json.js';
import type { OAuthFailure } from './credential.js';
import type { FcmHttpEvidence } from './transport.js';

/** FCM's answers (google.rpc.Status with FcmError details, or a firebase-admin error) as outcomes. */

/** FCM asks for at least one minute before retrying a QUOTA_EXCEEDED without Retry-After. */
export const FCM_QUOTA_MIN_BACKOFF_MS = 60_000;


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
export function accessTokenRefusedAgain(http: FcmHttpEvidence): Outcome {
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

