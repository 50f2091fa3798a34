// One concept: a spec-true FCM HTTP v1 server with its OAuth token endpoint.
import { createPublicKey, randomBytes, verify as verifySignature, type KeyObject } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { testPki } from './tls.js';

/**
 * A spec-true FCM HTTP v1 server plus the Google OAuth token endpoint (docs/providers/fcm.md),
 * on one TLS port with ALPN h2 and http/1.1 (firebase-admin's `send()` speaks
 * HTTP/1.1, `sendEach()` HTTP/2).
 *
 * - `POST /token`: JWT-bearer grant. The RS256 assertion is verified with the registered service
 *   account's public key; `aud` must be this server's `/token` URL (or Google's), `iat`/`exp` a
 *   ≤ 1 h window around now, a scope given. Answers `{access_token, expires_in, token_type}`; a bad
 *   grant is 400 `{"error":"invalid_grant",…}` as Google answers.
 * - `POST /v1/projects/{p}/messages:send`: `Authorization: Bearer <issued token>` or 401
 *   UNAUTHENTICATED (no FcmError detail); the token's service account must belong to `{p}` (else 403
 *   PERMISSION_DENIED) and carry the firebase.messaging or cloud-platform scope. The body is parsed
 *   as proto3 JSON (lowerCamel and snake_case names, enums in any case, unknown names refused);
 *   exactly one target; data values strings; `ttl` a Duration ≤ 4 weeks; payload ≤ 4096 bytes
 *   (2048 for a topic); reserved data keys refused. `validate_only` → `…/messages/fake_message_id`.
 * - Errors are google.rpc.Status with an FcmError detail and the right HTTP status; 429 and 503
 *   carry `Retry-After`.
 *
 * Scripting, per token (first match wins): the explicit map (`setBehavior`, `opts.behaviors`), then
 * the token's prefix, then the `'*'` behavior. Prefixes (`<name>[N]-…`; with N only the first N
 * attempts fail, then the token succeeds):
 *   unregistered → 404 UNREGISTERED        invalid → 400 INVALID_ARGUMENT on message.token
 *   mismatch → 403 SENDER_ID_MISMATCH       quota → 429 QUOTA_EXCEEDED (Retry-After 30)
 *   unavailable | flaky → 503 UNAVAILABLE (Retry-After 5)      internal → 500 INTERNAL
 *   thirdparty → 401 THIRD_PARTY_AUTH_ERROR unspecified → 500 UNSPECIFIED_ERROR
 *   reset → connection destroyed without an answer               slow → answered after `slowMs`
 *
 * Standalone (for benchmarks in another process):
 *   tsx test/mocks/fcm-server.ts --port 0 --public-key-file sa.pub.pem --client-email x@p.iam.gserviceaccount.com
 *     [--project-id p] [--host 127.0.0.1] [--delay-ms 0] [--access-token t …] [--quota-per-minute n] [--record]
 * prints one JSON line `{"port":N}` and serves until SIGINT/SIGTERM. `GET /__mock/stats` returns counters.
 */

export type FcmErrorCode =
  | 'UNREGISTERED'
  | 'INVALID_ARGUMENT'
  | 'SENDER_ID_MISMATCH'
  | 'QUOTA_EXCEEDED'
  | 'UNAVAILABLE'
  | 'INTERNAL'
  | 'THIRD_PARTY_AUTH_ERROR'
  | 'UNSPECIFIED_ERROR';

export interface FcmBehavior {
  /** Answer with this FcmError. Without it (and without `reset`) the send succeeds. */
  error?: FcmErrorCode;
  /** Server message instead of the default for `error`. */
  message?: string;
  /** `Retry-After` seconds for 429/503 (defaults 30 / 5); null sends none. Also used on any status. */
  retryAfter?: number | string | null;
  /** Only the first N attempts for the token fail; later ones succeed. */
  failTimes?: number;
  /** Extra latency before answering (ms). */
  delayMs?: number;
  /** Destroy the connection instead of answering. */
  reset?: boolean;
  /** For THIRD_PARTY_AUTH_ERROR: add an ApnsError detail `{statusCode: 403, reason}`. */
  apnsReason?: string;
}

export interface FcmMockOptions {
  port?: number;
  host?: string;
  /** Per-token behaviors (same as `setBehavior`); key `'*'` is the default behavior. */
  behaviors?: Record<string, FcmBehavior>;
  /** Latency added to every send (ms). */
  delayMs?: number;
  /** Latency of `slow-` tokens (ms, default 200). */
  slowMs?: number;
  /** `expires_in` of issued access tokens (default 3599). */
  tokenLifetimeSec?: number;
  /** Access tokens accepted without an OAuth exchange; `projectId` undefined = any project. */
  staticTokens?: Array<{ token: string; projectId?: string }>;
  /** Messages per minute per project before 429 QUOTA_EXCEEDED (FCM's default is 600,000). Off by default. */
  quotaPerMinute?: number;
  /** Keep every request in `requests` / `tokenRequests` (default true; off for benchmarks). */
  record?: boolean;
}

export interface RecordedSend {
  at: number;
  httpVersion: string;
  method: string;
  path: string;
  projectId?: string;
  headers: Record<string, string | string[] | undefined>;
  /** The request body as received (parsed JSON, or the raw text when it did not parse). */
  body: unknown;
  /** `body.message.token` when present. */
  token?: string;
  status: number;
  response: unknown;
}

export interface RecordedTokenRequest {
  at: number;
  form: Record<string, string>;
  jwtHeader?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  status: number;
  response: unknown;
}

export interface TokenEndpointBehavior {
  status: number;
  error?: string;
  description?: string;
  /** Only the next N token requests get this answer. */
  times?: number;
  retryAfter?: number;
}

export interface FcmMockStats {
  sends: number;
  tokenRequests: number;
  byStatus: Record<string, number>;
  inFlight: number;
  maxInFlight: number;
}

export interface FcmMock {
  port: number;
  /** `https://127.0.0.1:<port>`; the token endpoint is `${url}/token`. */
  url: string;
  requests: RecordedSend[];
  tokenRequests: RecordedTokenRequest[];
  stats: FcmMockStats;
  /** Scripts a token (`'*'` = every token without a more specific rule); null removes the rule. */
  setBehavior(token: string, behavior: FcmBehavior | null): void;
  /** Trust a service account; its project is `projectId` or derived from `…@<project>.iam.gserviceaccount.com`. */
  registerServiceAccount(publicKeyPem: string, clientEmail: string, projectId?: string): void;
  /** Scripts the token endpoint (e.g. 503 for a while); null restores normal grants. */
  setTokenBehavior(behavior: TokenEndpointBehavior | null): void;
  /** Forgets every issued access token: the next sends get 401 UNAUTHENTICATED. */
  revokeAccessTokens(): void;
  /** Clears records, counters and per-token attempt counts. */
  reset(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// proto3 JSON schema of SendMessageRequest (field names in snake_case; lowerCamel accepted too)
// ---------------------------------------------------------------------------------------------

type Field =
  | 'string'
  | 'bool'
  | 'int'
  | 'number'
  | 'duration'
  | 'timestamp'
  | 'map'
  | 'struct'
  | { enum: readonly string[]; type: string }
  | { repeated: Field }
  | { message: Schema };
interface Schema {
  [name: string]: Field;
}

const DURATION_RE = /^\d+(\.\d{1,9})?s$/;
const MAX_TTL_S = 2_419_200;
const TOKEN_SCOPES = ['https://www.googleapis.com/auth/firebase.messaging', 'https://www.googleapis.com/auth/cloud-platform'];

const lightSettings: Schema = {
  color: { message: { red: 'number', green: 'number', blue: 'number', alpha: 'number' } },
  light_on_duration: 'duration',
  light_off_duration: 'duration',
};
const androidNotification: Schema = {
  title: 'string', body: 'string', icon: 'string', color: 'string', sound: 'string', tag: 'string', click_action: 'string',
  body_loc_key: 'string', body_loc_args: { repeated: 'string' }, title_loc_key: 'string', title_loc_args: { repeated: 'string' },
  channel_id: 'string', ticker: 'string', sticky: 'bool', event_time: 'timestamp', local_only: 'bool',
  notification_priority: {
    type: 'google.firebase.fcm.v1.AndroidNotification.NotificationPriority',
    enum: ['PRIORITY_UNSPECIFIED', 'PRIORITY_MIN', 'PRIORITY_LOW', 'PRIORITY_DEFAULT', 'PRIORITY_HIGH', 'PRIORITY_MAX'],
  },
  default_sound: 'bool', default_vibrate_timings: 'bool', default_light_settings: 'bool', vibrate_timings: { repeated: 'duration' },
  visibility: { type: 'google.firebase.fcm.v1.AndroidNotification.Visibility', enum: ['VISIBILITY_UNSPECIFIED', 'PRIVATE', 'PUBLIC', 'SECRET'] },
  notification_count: 'int', light_settings: { message: lightSettings }, image: 'string', bypass_proxy_notification: 'bool',
  proxy: { type: 'google.firebase.fcm.v1.AndroidNotification.Proxy', enum: ['PROXY_UNSPECIFIED', 'ALLOW', 'DENY', 'IF_PRIORITY_LOWERED'] },
};
const messageSchema: Schema = {
  name: 'string',
  data: 'map',
  notification: { message: { title: 'string', body: 'string', image: 'string' } },
  android: {
    message: {
      collapse_key: 'string',
      priority: { type: 'google.firebase.fcm.v1.AndroidMessagePriority', enum: ['NORMAL', 'HIGH'] },
      ttl: 'duration',
      restricted_package_name: 'string',
      data: 'map',
      notification: { message: androidNotification },
      fcm_options: { message: { analytics_label: 'string' } },
      direct_boot_ok: 'bool',
      bandwidth_constrained_ok: 'bool',
      restricted_satellite_ok: 'bool',
    },
  },
  webpush: {
    message: { headers: 'map', data: 'map', notification: 'struct', fcm_options: { message: { link: 'string', analytics_label: 'string' } } },
  },
  apns: {
    message: { headers: 'map', payload: 'struct', fcm_options: { message: { analytics_label: 'string', image: 'string' } }, live_activity_token: 'string' },
  },
  fcm_options: { message: { analytics_label: 'string' } },
  token: 'string',
  topic: 'string',
  condition: 'string',
};
const requestSchema: Schema = { validate_only: 'bool', message: { message: messageSchema } };

const camel = (snake: string) => snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

class ParseError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

const typeName = (f: Field): string =>
  typeof f === 'string'
    ? { string: 'TYPE_STRING', bool: 'TYPE_BOOL', int: 'TYPE_INT32', number: 'TYPE_FLOAT', duration: 'type.googleapis.com/google.protobuf.Duration', timestamp: 'type.googleapis.com/google.protobuf.Timestamp', map: 'TYPE_MAP', struct: 'type.googleapis.com/google.protobuf.Struct' }[f]
    : 'enum' in f
      ? `type.googleapis.com/${f.type}`
      : 'TYPE_MESSAGE';

function badValue(path: string, f: Field, v: unknown): never {
  throw new ParseError(path, `Invalid value at '${path}' (${typeName(f)}), ${JSON.stringify(v)}`);
}

/** Normalises a proto3 JSON object to snake_case names and canonical enum values; throws ParseError. */
function parseMessage(obj: unknown, schema: Schema, path: string): Record<string, unknown> {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new ParseError(path, `Invalid value at '${path}' (TYPE_MESSAGE), ${JSON.stringify(obj)}`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    const name = key in schema ? key : Object.keys(schema).find((s) => camel(s) === key);
    const child = path ? `${path}.${name ?? key}` : (name ?? key);
    if (!name) {
      throw new ParseError(path, `Invalid JSON payload received. Unknown name "${key}"${path ? ` at '${path}'` : ''}: Cannot find field.`);
    }
    if (name in out) throw new ParseError(child, `Invalid JSON payload received. Duplicate value for "${name}".`);
    if (value === null) continue; // proto3 JSON: null is the default value
    out[name] = parseValue(value, schema[name]!, child);
  }
  return out;
}

function parseValue(v: unknown, f: Field, path: string): unknown {
  if (typeof f === 'object') {
    if ('message' in f) return parseMessage(v, f.message, path);
    if ('repeated' in f) {
      if (!Array.isArray(v)) badValue(path, f, v);
      return (v as unknown[]).map((x, i) => parseValue(x, f.repeated, `${path}[${i}]`));
    }
    const s = typeof v === 'number' ? f.enum[v] : typeof v === 'string' ? f.enum.find((e) => e === v.toUpperCase()) : undefined;
    if (s === undefined) badValue(path, f, v);
    return s;
  }
  switch (f) {
    case 'string':
      if (typeof v !== 'string') badValue(path, f, v);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') badValue(path, f, v);
      return v;
    case 'int': {
      const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isInteger(n)) badValue(path, f, v);
      return n;
    }
    case 'number':
      if (typeof v !== 'number') badValue(path, f, v);
      return v;
    case 'duration':
      if (typeof v !== 'string' || !DURATION_RE.test(v)) badValue(path, f, v);
      return v;
    case 'timestamp':
      if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) badValue(path, f, v);
      return v;
    case 'struct':
      if (typeof v !== 'object' || v === null || Array.isArray(v)) badValue(path, f, v);
      return v;
    case 'map': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) badValue(path, f, v);
      Object.entries(v as Record<string, unknown>).forEach(([, val], i) => {
        if (typeof val !== 'string') badValue(`${path}[${i}].value`, 'string', val);
      });
      return v;
    }
  }
}

/** FCM's payload size: keys and values of data and notification (top level and android). */
function payloadBytes(m: Record<string, unknown>): number {
  let n = 0;
  const count = (o: unknown) => {
    if (typeof o !== 'object' || o === null) return;
    for (const [k, v] of Object.entries(o)) n += Buffer.byteLength(k) + Buffer.byteLength(typeof v === 'string' ? v : JSON.stringify(v));
  };
  const android = m.android as Record<string, unknown> | undefined;
  count(m.data);
  count(m.notification);
  count(android?.data);
  count(android?.notification);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

const FCM_ERRORS: Record<FcmErrorCode, { http: number; status: string; message: string }> = {
  UNREGISTERED: { http: 404, status: 'NOT_FOUND', message: 'Requested entity was not found.' },
  INVALID_ARGUMENT: { http: 400, status: 'INVALID_ARGUMENT', message: 'The registration token is not a valid FCM registration token' },
  SENDER_ID_MISMATCH: { http: 403, status: 'PERMISSION_DENIED', message: 'SenderId mismatch' },
  QUOTA_EXCEEDED: { http: 429, status: 'RESOURCE_EXHAUSTED', message: 'Quota exceeded for quota metric messages per minute.' },
  UNAVAILABLE: { http: 503, status: 'UNAVAILABLE', message: 'The service is currently unavailable.' },
  INTERNAL: { http: 500, status: 'INTERNAL', message: 'Internal error encountered.' },
  THIRD_PARTY_AUTH_ERROR: { http: 401, status: 'UNAUTHENTICATED', message: 'Auth error from APNS or Web Push Service' },
  UNSPECIFIED_ERROR: { http: 500, status: 'UNKNOWN', message: 'Unknown error.' },
};
const DEFAULT_RETRY_AFTER: Partial<Record<FcmErrorCode, number>> = { QUOTA_EXCEEDED: 30, UNAVAILABLE: 5 };
const PREFIXES: Record<string, FcmBehavior> = {
  unregistered: { error: 'UNREGISTERED' },
  invalid: { error: 'INVALID_ARGUMENT' },
  mismatch: { error: 'SENDER_ID_MISMATCH' },
  quota: { error: 'QUOTA_EXCEEDED' },
  unavailable: { error: 'UNAVAILABLE' },
  flaky: { error: 'UNAVAILABLE' },
  internal: { error: 'INTERNAL' },
  thirdparty: { error: 'THIRD_PARTY_AUTH_ERROR' },
  unspecified: { error: 'UNSPECIFIED_ERROR' },
  reset: { reset: true },
  slow: {},
};
const FCM_ERROR_TYPE = 'type.googleapis.com/google.firebase.fcm.v1.FcmError';
const BAD_REQUEST_TYPE = 'type.googleapis.com/google.rpc.BadRequest';

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

function rpcError(http: number, status: string, message: string, details: unknown[] = []): Answer {
  return { status: http, body: { error: { code: http, message, status, ...(details.length ? { details } : {}) } } };
}

function fcmError(code: FcmErrorCode, message?: string, extra: unknown[] = []): Answer {
  const e = FCM_ERRORS[code];
  return rpcError(e.http, e.status, message ?? e.message, [{ '@type': FCM_ERROR_TYPE, errorCode: code }, ...extra]);
}

function invalidArgument(field: string, message: string, withFcmError: boolean): Answer {
  const violation = { '@type': BAD_REQUEST_TYPE, fieldViolations: [{ field, description: message }] };
  return withFcmError ? fcmError('INVALID_ARGUMENT', message, [violation]) : rpcError(400, 'INVALID_ARGUMENT', message, [violation]);
}

const UNAUTHENTICATED = rpcError(
  401,
  'UNAUTHENTICATED',
  'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
);

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

interface AccessToken {
  projectId?: string;
  scopes: string[];
  expiresAt: number;
}

export async function startFcmMock(opts: FcmMockOptions = {}): Promise<FcmMock> {
  const pki = testPki();
  const host = opts.host ?? '127.0.0.1';
  const record = opts.record ?? true;
  const slowMs = opts.slowMs ?? 200;
  const lifetime = opts.tokenLifetimeSec ?? 3599;
  const behaviors = new Map<string, FcmBehavior>(Object.entries(opts.behaviors ?? {}));
  const attempts = new Map<string, number>();
  const accounts = new Map<string, { key: KeyObject; projectId?: string }>();
  const tokens = new Map<string, AccessToken>();
  for (const s of opts.staticTokens ?? []) tokens.set(s.token, { projectId: s.projectId, scopes: TOKEN_SCOPES, expiresAt: Infinity });
  const quota = new Map<string, { start: number; count: number }>();
  let tokenBehavior: TokenEndpointBehavior | null = null;
  let idCounter = 0;
  const idBase = Date.now() * 1000;

  const requests: RecordedSend[] = [];
  const tokenRequests: RecordedTokenRequest[] = [];
  const stats: FcmMockStats = { sends: 0, tokenRequests: 0, byStatus: {}, inFlight: 0, maxInFlight: 0 };
  const sockets = new Set<Socket>();

  const server = createSecureServer({ key: pki.keyPem, cert: pki.certPem, allowHTTP1: true, ALPNProtocols: ['h2', 'http/1.1'] });
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('sessionError', () => undefined);
  server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 1_048_576) chunks.push(c);
    });
    req.on('end', () => {
      void handle(req, res, Buffer.concat(chunks).toString('utf8')).catch(() => {
        if (!res.headersSent) send(res, 500, { error: { code: 500, message: 'mock failure', status: 'INTERNAL' } });
      });
    });
    req.on('error', () => undefined);
  });

  function send(res: Http2ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/html; charset=UTF-8' : 'application/json; charset=UTF-8',
      'content-length': String(Buffer.byteLength(text)),
      ...headers,
    });
    res.end(text);
  }

  async function handle(req: Http2ServerRequest, res: Http2ServerResponse, text: string): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'POST' && path === '/token') return handleToken(res, text);
    const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(path);
    if (req.method === 'POST' && m) return handleSend(req, res, decodeURIComponent(m[1]!), text);
    if (req.method === 'GET' && path === '/__mock/stats') return send(res, 200, stats);
    // Google's front end answers unknown paths with an HTML 404.
    return send(res, 404, `<!DOCTYPE html><html><body><p>The requested URL <code>${path}</code> was not found on this server.</p></body></html>`);
  }

  function handleToken(res: Http2ServerResponse, text: string): void {
    stats.tokenRequests++;
    const form = Object.fromEntries(new URLSearchParams(text));
    const rec: RecordedTokenRequest = { at: Date.now(), form, status: 0, response: undefined };
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      rec.status = status;
      rec.response = body;
      if (record) tokenRequests.push(rec);
      send(res, status, body, { 'cache-control': 'no-cache, no-store, max-age=0, must-revalidate', ...headers });
    };
    const grantError = (description: string, error = 'invalid_grant') => answer(400, { error, error_description: description });

    const [h, p, sig] = (form.assertion ?? '').split('.');
    try {
      rec.jwtHeader = JSON.parse(Buffer.from(h ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
      rec.claims = JSON.parse(Buffer.from(p ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      /* judged below */
    }
    if (tokenBehavior) {
      const b = tokenBehavior;
      if (b.times !== undefined && --b.times <= 0) tokenBehavior = null;
      return answer(b.status, { error: b.error ?? 'internal_failure', error_description: b.description ?? 'scripted failure' }, b.retryAfter !== undefined ? { 'retry-after': String(b.retryAfter) } : {});
    }
    if (form.grant_type !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      return grantError(`Invalid grant_type: ${form.grant_type ?? ''}`, 'unsupported_grant_type');
    }
    const claims = rec.claims;
    if (!h || !p || !sig || !claims || !rec.jwtHeader) return grantError('Invalid JWT: could not be decoded.');
    if (rec.jwtHeader.alg !== 'RS256') return grantError('Invalid JWT: alg must be RS256.');
    const account = typeof claims.iss === 'string' ? accounts.get(claims.iss) : undefined;
    if (!account) return grantError('Invalid grant: account not found');
    if (!verifySignature('sha256', Buffer.from(`${h}.${p}`), account.key, Buffer.from(sig, 'base64url'))) {
      return grantError('Invalid JWT Signature.');
    }
    const audiences = [`${url}/token`, `https://localhost:${port}/token`, 'https://oauth2.googleapis.com/token'];
    if (typeof claims.aud !== 'string' || !audiences.includes(claims.aud)) return grantError('Invalid JWT: Failed audience check.');
    const now = Date.now() / 1000;
    const { iat, exp } = claims;
    if (typeof iat !== 'number' || typeof exp !== 'number' || exp <= now || iat > now + 300 || exp - iat > 3600 || exp <= iat) {
      return grantError(
        'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.',
      );
    }
    const scopes = typeof claims.scope === 'string' ? claims.scope.split(/\s+/).filter(Boolean) : [];
    if (scopes.length === 0) return grantError('Invalid OAuth scope or ID token audience provided.', 'invalid_scope');
    const accessToken = `ya29.mock-${randomBytes(24).toString('base64url')}`;
    tokens.set(accessToken, { projectId: account.projectId, scopes, expiresAt: Date.now() + lifetime * 1000 });
    answer(200, { access_token: accessToken, expires_in: lifetime, token_type: 'Bearer' });
  }

  function behaviorFor(token: string): FcmBehavior | undefined {
    const explicit = behaviors.get(token);
    if (explicit) return explicit;
    const m = /^([a-z]+)(\d*)[-_]/.exec(token);
    const prefixed = m ? PREFIXES[m[1]!] : undefined;
    if (prefixed && m) return { ...prefixed, ...(m[1] === 'slow' ? { delayMs: slowMs } : {}), ...(m[2] ? { failTimes: Number(m[2]) } : {}) };
    return behaviors.get('*');
  }

  async function handleSend(req: Http2ServerRequest, res: Http2ServerResponse, projectId: string, text: string): Promise<void> {
    stats.sends++;
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    let body: unknown = text;
    let token: string | undefined;
    const finish = (a: Answer) => {
      stats.inFlight--;
      stats.byStatus[a.status] = (stats.byStatus[a.status] ?? 0) + 1;
      if (record) {
        requests.push({
          at: Date.now(), httpVersion: req.httpVersion, method: req.method, path: req.url ?? '', projectId,
          headers: { ...req.headers }, body, ...(token !== undefined ? { token } : {}), status: a.status, response: a.body,
        });
      }
      send(res, a.status, a.body, a.headers);
    };
    try {
      if (opts.delayMs) await sleep(opts.delayMs);
      const a = await answerSend(req, projectId, text, (b, t) => {
        body = b;
        token = t;
      });
      if (a === 'reset') {
        stats.inFlight--;
        stats.byStatus.reset = (stats.byStatus.reset ?? 0) + 1;
        req.socket.destroy();
        return;
      }
      finish(a);
    } catch {
      finish(rpcError(500, 'INTERNAL', 'Internal error encountered.'));
    }
  }

  async function answerSend(
    req: Http2ServerRequest,
    projectId: string,
    text: string,
    note: (body: unknown, token?: string) => void,
  ): Promise<Answer | 'reset'> {
    // Authentication first, as Google's front end does.
    const auth = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
    const access = auth ? tokens.get(auth[1]!) : undefined;
    let parsedBody: unknown;
    try {
      parsedBody = JSON.parse(text);
      note(parsedBody);
    } catch {
      parsedBody = undefined;
    }
    if (!access || access.expiresAt <= Date.now()) return UNAUTHENTICATED;
    if (!access.scopes.some((s) => TOKEN_SCOPES.includes(s))) {
      return rpcError(403, 'PERMISSION_DENIED', 'Request had insufficient authentication scopes.');
    }
    if (access.projectId !== undefined && access.projectId !== projectId) {
      return rpcError(
        403,
        'PERMISSION_DENIED',
        `Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/${projectId}' (or it may not exist).`,
      );
    }
    if (parsedBody === undefined) {
      return invalidArgument('', 'Invalid JSON payload received. Unexpected token.', false);
    }

    let request: Record<string, unknown>;
    try {
      request = parseMessage(parsedBody, requestSchema, '');
    } catch (e) {
      if (e instanceof ParseError) return invalidArgument(e.field, e.message, false);
      throw e;
    }
    const message = request.message as Record<string, unknown> | undefined;
    if (!message) return invalidArgument('message', 'Request contains an invalid argument.', true);
    const targets = (['token', 'topic', 'condition'] as const).filter((t) => typeof message[t] === 'string' && message[t] !== '');
    if (targets.length > 1) {
      return invalidArgument(`message.${targets[1]}`, `Invalid JSON payload received. Oneof field 'target' is already set. Cannot set '${targets[1]}'`, false);
    }
    if (targets.length === 0) return invalidArgument('message', 'Recipient of the message is not set.', true);
    const token = typeof message.token === 'string' ? message.token : undefined;
    note(parsedBody, token);

    const android = message.android as Record<string, unknown> | undefined;
    if (typeof android?.ttl === 'string' && Number(android.ttl.slice(0, -1)) > MAX_TTL_S) {
      return invalidArgument('message.android.ttl', 'The value provided for message.android.ttl exceeds the maximum of 4 weeks (2419200s).', true);
    }
    const dataKeys = [...Object.keys((message.data as object | undefined) ?? {}), ...Object.keys((android?.data as object | undefined) ?? {})];
    const reserved = dataKeys.find((k) => /^(from|message_type|google.*|gcm.*)$/i.test(k));
    if (reserved) return invalidArgument('message.data', `Invalid data payload key: ${reserved}`, true);
    const limit = targets[0] === 'topic' ? 2048 : 4096;
    if (payloadBytes(message) > limit) return invalidArgument('message', 'Message is too big', true);

    if (targets[0] === 'topic' || targets[0] === 'condition') {
      const q = overQuota(projectId);
      if (q) return q;
      return success(projectId, request.validate_only === true);
    }
    const b = behaviorFor(token!);
    if (b) {
      const n = (attempts.get(token!) ?? 0) + 1;
      attempts.set(token!, n);
      const failing = b.failTimes === undefined || n <= b.failTimes;
      if (b.delayMs) await sleep(b.delayMs);
      if (failing && b.reset) return 'reset';
      if (failing && b.error) {
        const extra: unknown[] = [];
        if (b.error === 'INVALID_ARGUMENT') {
          extra.push({ '@type': BAD_REQUEST_TYPE, fieldViolations: [{ field: 'message.token', description: 'Invalid registration token' }] });
        }
        if (b.error === 'THIRD_PARTY_AUTH_ERROR' && b.apnsReason) {
          extra.push({ '@type': 'type.googleapis.com/google.firebase.fcm.v1.ApnsError', statusCode: 403, reason: b.apnsReason });
        }
        const a = fcmError(b.error, b.message, extra);
        const ra = b.retryAfter === undefined ? DEFAULT_RETRY_AFTER[b.error] : b.retryAfter;
        if (ra !== null && ra !== undefined) a.headers = { 'retry-after': String(ra) };
        return a;
      }
    }
    const q = overQuota(projectId);
    if (q) return q;
    return success(projectId, request.validate_only === true);
  }

  function overQuota(projectId: string): Answer | undefined {
    if (!opts.quotaPerMinute) return undefined;
    const now = Date.now();
    let w = quota.get(projectId);
    if (!w || now - w.start >= 60_000) quota.set(projectId, (w = { start: now, count: 0 }));
    if (++w.count <= opts.quotaPerMinute) return undefined;
    const a = fcmError('QUOTA_EXCEEDED', undefined, [
      { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ subject: `project_number:${projectId}`, description: 'messages per minute' }] },
    ]);
    a.headers = { 'retry-after': String(Math.max(1, Math.ceil((w.start + 60_000 - now) / 1000))) };
    return a;
  }

  function success(projectId: string, validateOnly: boolean): Answer {
    const id = validateOnly ? 'fake_message_id' : `0:${idBase + ++idCounter}%31bd1c9631bd1c96`;
    return { status: 200, body: { name: `projects/${projectId}/messages/${id}` } };
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    port,
    url,
    requests,
    tokenRequests,
    stats,
    setBehavior(token, behavior) {
      if (behavior) behaviors.set(token, behavior);
      else behaviors.delete(token);
      attempts.delete(token);
    },
    registerServiceAccount(publicKeyPem, clientEmail, projectId) {
      const derived = /@([^.@]+)\.iam\.gserviceaccount\.com$/.exec(clientEmail)?.[1];
      accounts.set(clientEmail, { key: createPublicKey(publicKeyPem), projectId: projectId ?? derived });
    },
    setTokenBehavior(b) {
      tokenBehavior = b ? { ...b } : null;
    },
    revokeAccessTokens() {
      tokens.clear();
    },
    reset() {
      requests.length = 0;
      tokenRequests.length = 0;
      attempts.clear();
      Object.assign(stats, { sends: 0, tokenRequests: 0, byStatus: {}, inFlight: 0, maxInFlight: 0 });
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------
// Standalone
// ---------------------------------------------------------------------------------------------

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'public-key-file': { type: 'string' },
      'client-email': { type: 'string' },
      'project-id': { type: 'string' },
      'delay-ms': { type: 'string' },
      'access-token': { type: 'string', multiple: true },
      'quota-per-minute': { type: 'string' },
      record: { type: 'boolean', default: false },
    },
  });
  const mock = await startFcmMock({
    port: Number(values.port),
    host: values.host,
    record: values.record,
    ...(values['delay-ms'] ? { delayMs: Number(values['delay-ms']) } : {}),
    ...(values['quota-per-minute'] ? { quotaPerMinute: Number(values['quota-per-minute']) } : {}),
    staticTokens: (values['access-token'] ?? []).map((token) => ({ token, ...(values['project-id'] ? { projectId: values['project-id'] } : {}) })),
  });
  if (values['public-key-file'] && values['client-email']) {
    mock.registerServiceAccount(readFileSync(values['public-key-file'], 'utf8'), values['client-email'], values['project-id']);
  } else if (values['public-key-file'] || values['client-email']) {
    console.error('--public-key-file and --client-email go together');
    process.exit(2);
  }
  console.log(JSON.stringify({ port: mock.port }));
  const stop = () => void mock.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
