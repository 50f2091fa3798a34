import { createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { ReceiptRequest } from '../../../providers/types.js';
import { testPki } from '../tls.js';

/**
 * A spec-true mock of Huawei Push Kit (Android v1 API, docs/providers/huawei-honor.md) — OAuth token endpoint and
 * `messages:send` — plus the scaffolding the Honor and Xiaomi mocks share (exported below).
 *
 * Scripting (every vendor mock):
 * - Token prefixes: `invalid-…`, `fail-…`, `ratelimit-…`, `quota-…`, `server-…`, `large-…`,
 *   `authexp-…` give that token the matching fate; anything else succeeds.
 * - `setBehavior({tokens: {tok: 'invalid'}})` sets fates explicitly (wins over prefixes).
 * - `setBehavior({failFirst: {count: 2, fate: 'rateLimit'}})`: the next 2 send requests fail so,
 *   then sends behave normally again.
 * - `expireAccessTokens()`: every issued access token is now expired (the refresh path).
 * Fates that concern a whole request (rate limit, server error, payload too large, auth expired)
 * fail the whole batch when any of its tokens has them; `invalid` / `fail` are per token.
 */

// ---------------------------------------------------------------------------------------------
// Shared scaffolding (used by the Honor and Xiaomi mocks too)
// ---------------------------------------------------------------------------------------------

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  rawBody: string;
  at: number;
}

export type TokenFate = 'ok' | 'invalid' | 'fail' | 'rateLimit' | 'quota' | 'serverError' | 'payloadTooLarge' | 'authExpired';
export type RequestFate = Exclude<TokenFate, 'ok' | 'fail' | 'invalid'>;

export const TOKEN_PREFIXES: ReadonlyArray<readonly [string, TokenFate]> = [
  ['invalid-', 'invalid'],
  ['fail-', 'fail'],
  ['ratelimit-', 'rateLimit'],
  ['quota-', 'quota'],
  ['server-', 'serverError'],
  ['large-', 'payloadTooLarge'],
  ['authexp-', 'authExpired'],
];

export interface MockBehavior {
  /** Explicit per-token fates; win over the prefix convention. */
  tokens: Record<string, TokenFate>;
  /** The next `count` send requests end with `fate`; decremented per send request. */
  failFirst?: { count: number; fate: RequestFate };
  /** `Retry-After` (seconds) on rate-limit / flow-control answers; none when undefined. */
  retryAfterSec?: number;
  /** `expires_in` of issued access tokens (OAuth vendors). */
  accessTokenTtlSec: number;
  /** How the OAuth endpoint answers. */
  oauth: 'ok' | 'badCredentials' | 'serverError';
  /** Delay before answering a send (ms), to hold requests in flight together. */
  sendDelayMs: number;
}

export function defaultBehavior(): MockBehavior {
  return { tokens: {}, accessTokenTtlSec: 3600, oauth: 'ok', sendDelayMs: 0 };
}

export function fateOf(token: string, behavior: MockBehavior): TokenFate {
  const explicit = behavior.tokens[token];
  if (explicit) return explicit;
  for (const [prefix, fate] of TOKEN_PREFIXES) if (token.startsWith(prefix)) return fate;
  return 'ok';
}

/** The request-level fate for a batch: a scripted `failFirst`, else the first request-level token fate. */
export function requestFate(tokens: readonly string[], behavior: MockBehavior): RequestFate | undefined {
  if (behavior.failFirst && behavior.failFirst.count > 0) {
    behavior.failFirst.count--;
    return behavior.failFirst.fate;
  }
  for (const order of ['authExpired', 'serverError', 'rateLimit', 'payloadTooLarge', 'quota'] as const) {
    if (tokens.some((t) => fateOf(t, behavior) === order)) return order;
  }
  return undefined;
}

/** Access tokens a mock OAuth server issued, with forced expiry. */
export class AccessTokens {
  private readonly tokens = new Map<string, number>();
  issued = 0;

  issue(ttlSec: number, now = Date.now()): string {
    const token = `at-${randomBytes(12).toString('base64url')}`;
    this.tokens.set(token, now + ttlSec * 1000);
    this.issued++;
    return token;
  }

  check(token: string | undefined, now = Date.now()): 'ok' | 'expired' | 'unknown' {
    if (!token) return 'unknown';
    const exp = this.tokens.get(token);
    if (exp === undefined) return 'unknown';
    return now < exp ? 'ok' : 'expired';
  }

  expireAll(): void {
    for (const k of this.tokens.keys()) this.tokens.set(k, 0);
  }
}

export interface StartedServer {
  server: Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

export interface MockServerOptions {
  /** Serve HTTPS with the test PKI (default) or plain HTTP. */
  tls?: boolean;
  /** Default 0 (ephemeral). */
  port?: number;
}

/** Starts an HTTP(S) server on 127.0.0.1 that records every request and hands it to `handler`. */
export async function startRecordingServer(
  opts: MockServerOptions,
  requests: RecordedRequest[],
  handler: (req: RecordedRequest, res: ServerResponse) => void | Promise<void>,
): Promise<StartedServer> {
  const tls = opts.tls ?? true;
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://mock');
      const rec: RecordedRequest = {
        method: req.method ?? 'GET',
        path: u.pathname,
        query: u.searchParams,
        headers: req.headers,
        rawBody: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      requests.push(rec);
      Promise.resolve(handler(rec, res)).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { error: 'mock failure', message: (err as Error).message });
      });
    });
  };
  let server: Server;
  if (tls) {
    const pki = testPki();
    server = createHttpsServer({ cert: pki.certPem, key: pki.keyPem }, listener);
  } else {
    server = createHttpServer(listener);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function retryAfterHeader(behavior: MockBehavior): Record<string, string> {
  return behavior.retryAfterSec !== undefined ? { 'retry-after': String(behavior.retryAfterSec) } : {};
}

export function parseForm(raw: string): URLSearchParams {
  return new URLSearchParams(raw);
}

export function bearer(headers: IncomingHttpHeaders): string | undefined {
  const h = headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(h);
  return m ? m[1] : undefined;
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let idSeq = 0;
/** A numeric request id like Huawei's (`155245981150032647501`). */
export function numericId(): string {
  idSeq = (idSeq + 1) % 100000;
  return `${Date.now()}${String(idSeq).padStart(5, '0')}${Math.floor(Math.random() * 1e4).toString().padStart(4, '0')}`;
}

// ---------------------------------------------------------------------------------------------
// Huawei
// ---------------------------------------------------------------------------------------------

export interface HuaweiMockOptions extends MockServerOptions {
  appId?: string;
  clientSecret?: string;
}

export interface HuaweiSendRecord {
  requestId: string;
  biTag?: string;
  tokens: string[];
  body: Record<string, unknown>;
}

export interface HuaweiMock {
  port: number;
  url: string;
  appId: string;
  clientSecret: string;
  requests: RecordedRequest[];
  /** Accepted send requests (80000000 / 80100000), in order. */
  sends: HuaweiSendRecord[];
  /** Token endpoint calls that issued a token. */
  readonly tokensIssued: number;
  setBehavior(b: Partial<MockBehavior>): void;
  resetBehavior(): void;
  expireAccessTokens(): void;
  /** A receipt exactly as Huawei posts it for the last send to `token` (status 0 = delivered). */
  receiptFor(token: string | string[], opts?: { status?: number; timestamp?: number; requestId?: string; biTag?: string }): ReceiptRequest;
  close(): Promise<void>;
}

/** Huawei's documented answer codes (docs/providers/huawei-honor.md). */
export const HW = {
  SUCCESS: '80000000',
  PARTIAL: '80100000',
  PARAM: '80100001',
  BAD_MESSAGE: '80100003',
  TTL_PAST: '80100004',
  COLLAPSE_KEY: '80100013',
  AUTH: '80200001',
  AUTH_EXPIRED: '80200003',
  NO_PERMISSION: '80300002',
  ALL_INVALID: '80300007',
  TOO_LARGE: '80300008',
  TOKEN_COUNT: '80300010',
  INTERNAL: '81000001',
} as const;

const HUAWEI_CATEGORIES = new Set([
  'IM', 'VOIP', 'SUBSCRIPTION', 'TRAVEL', 'HEALTH', 'WORK', 'ACCOUNT', 'EXPRESS', 'FINANCE', 'DEVICE_REMINDER', 'MAIL',
  'PLAY_VOICE', 'MARKETING',
]);

export async function startHuaweiMock(opts: HuaweiMockOptions = {}): Promise<HuaweiMock> {
  const appId = opts.appId ?? '100405075';
  const clientSecret = opts.clientSecret ?? 'hw-secret';
  const requests: RecordedRequest[] = [];
  const sends: HuaweiSendRecord[] = [];
  const lastByToken = new Map<string, HuaweiSendRecord>();
  const tokens = new AccessTokens();
  let behavior = defaultBehavior();

  const answer = (res: ServerResponse, status: number, code: string, msg: string, headers: Record<string, string> = {}) =>
    sendJson(res, status, { code, msg, requestId: numericId() }, headers);

  const handler = async (req: RecordedRequest, res: ServerResponse) => {
    // OAuth: v3 is current (MZS, HMSD); v2 is still used by MOD and DOO.
    if (req.method === 'POST' && (req.path === '/oauth2/v3/token' || req.path === '/oauth2/v2/token')) {
      if (!String(req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded')) {
        return sendJson(res, 400, { error: 1102, error_description: 'unsupported content type' });
      }
      const f = parseForm(req.rawBody);
      if (behavior.oauth === 'serverError') return sendJson(res, 500, { error: 1500, error_description: 'internal error' });
      // ❓ HMSD models `error` / `error_description`; status and values are unverified.
      if (f.get('grant_type') !== 'client_credentials') return sendJson(res, 400, { error: 1102, error_description: 'unsupported grant_type' });
      if (behavior.oauth === 'badCredentials' || f.get('client_id') !== appId || f.get('client_secret') !== clientSecret) {
        return sendJson(res, 400, { error: 1101, error_description: 'invalid client' });
      }
      const ttl = behavior.accessTokenTtlSec;
      return sendJson(res, 200, { access_token: tokens.issue(ttl), expires_in: ttl, token_type: 'Bearer', scope: 'push' });
    }

    const m = /^\/v1\/([^/]+)\/messages:send$/.exec(req.path);
    if (req.method !== 'POST' || !m) return sendJson(res, 404, { code: '404', msg: 'not found' });
    if (behavior.sendDelayMs > 0) await delay(behavior.sendDelayMs);

    // Auth first, as the real service does. HTTP 401 per HMOS (❓ for v1).
    const state = tokens.check(bearer(req.headers));
    if (state === 'unknown') return answer(res, 401, HW.AUTH, 'Oauth authentication error');
    if (state === 'expired') return answer(res, 401, HW.AUTH_EXPIRED, 'Oauth Token expired');
    if (decodeURIComponent(m[1] ?? '') !== appId) return answer(res, 403, HW.NO_PERMISSION, 'no permission to send message to these tokens');

    let body: unknown;
    try {
      body = JSON.parse(req.rawBody);
    } catch {
      return answer(res, 400, HW.BAD_MESSAGE, 'Incorrect message structure');
    }
    const problem = validateHuaweiBody(body);
    if (problem) return answer(res, 400, problem.code, problem.msg);
    const message = (body as { message: Record<string, unknown> }).message;
    const list = message.token as string[];

    const fate = requestFate(list, behavior);
    switch (fate) {
      case 'authExpired':
        return answer(res, 401, HW.AUTH_EXPIRED, 'Oauth Token expired');
      case 'serverError':
        return answer(res, 500, HW.INTERNAL, 'Internal error');
      case 'rateLimit':
        // Flow control is HTTP 503 (HMOS); the body code is ❓, so the mock gives the status only.
        return sendJson(res, 503, { msg: 'flow control', requestId: numericId() }, retryAfterHeader(behavior));
      case 'payloadTooLarge':
        return answer(res, 400, HW.TOO_LARGE, 'message body size exceeds the default value');
      // Huawei enforces per-device daily caps silently (❓ no answer code): accepted, never shown.
      case 'quota':
      case undefined:
        break;
    }
    const illegal = list.filter((t) => fateOf(t, behavior) === 'invalid');
    if (illegal.length === list.length) return answer(res, 400, HW.ALL_INVALID, 'all the tokens are invalid');
    const requestId = numericId();
    const android = (message.android ?? {}) as Record<string, unknown>;
    const rec: HuaweiSendRecord = {
      requestId,
      ...(typeof android.bi_tag === 'string' ? { biTag: android.bi_tag } : {}),
      tokens: list.filter((t) => !illegal.includes(t)),
      body: body as Record<string, unknown>,
    };
    sends.push(rec);
    for (const t of rec.tokens) lastByToken.set(t, rec);
    if (illegal.length === 0) return sendJson(res, 200, { code: HW.SUCCESS, msg: 'Success', requestId });
    const msg = JSON.stringify({ success: list.length - illegal.length, failure: illegal.length, illegal_tokens: illegal });
    return sendJson(res, 200, { code: HW.PARTIAL, msg, requestId });
  };

  const started = await startRecordingServer(opts, requests, handler);
  return {
    port: started.port,
    url: started.url,
    appId,
    clientSecret,
    requests,
    sends,
    get tokensIssued() {
      return tokens.issued;
    },
    setBehavior: (b) => {
      behavior = { ...behavior, ...b, tokens: { ...behavior.tokens, ...b.tokens } };
    },
    resetBehavior: () => {
      behavior = defaultBehavior();
    },
    expireAccessTokens: () => tokens.expireAll(),
    receiptFor: (token, o = {}) => {
      const list = Array.isArray(token) ? token : [token];
      const statuses = list.map((t) => {
        const rec = lastByToken.get(t);
        return {
          timestamp: o.timestamp ?? Date.now(),
          token: t,
          appid: appId,
          biTag: o.biTag ?? rec?.biTag ?? '',
          status: o.status ?? 0,
          requestId: o.requestId ?? rec?.requestId ?? numericId(),
        };
      });
      return { headers: { 'content-type': 'application/json' }, contentType: 'application/json', rawBody: JSON.stringify({ statuses }) };
    },
    close: started.close,
  };
}

/** Checks a send body the way the v1 API documents it; returns the answer code for the first problem. */
export function validateHuaweiBody(body: unknown): { code: string; msg: string } | undefined {
  const bad = (code: string, msg: string) => ({ code, msg });
  if (typeof body !== 'object' || body === null) return bad(HW.BAD_MESSAGE, 'Incorrect message structure');
  const message = (body as Record<string, unknown>).message;
  if (typeof message !== 'object' || message === null) return bad(HW.BAD_MESSAGE, 'message is required');
  const msg = message as Record<string, unknown>;
  const tok = msg.token;
  if (!Array.isArray(tok) || tok.length < 1 || tok.length > 1000 || tok.some((t) => typeof t !== 'string' || t === '')) {
    return bad(HW.TOKEN_COUNT, 'the number of tokens must be 1..1000');
  }
  if (msg.data !== undefined && typeof msg.data !== 'string') return bad(HW.PARAM, 'data must be a string');
  // 4096 bytes for the message itself (the token list is the address, not the payload).
  const { token: _token, ...payload } = msg;
  if (Buffer.byteLength(JSON.stringify(payload), 'utf8') > 4096) return bad(HW.TOO_LARGE, 'message body size exceeds the default value');
  const android = msg.android as Record<string, unknown> | undefined;
  if (android !== undefined && (typeof android !== 'object' || android === null)) return bad(HW.PARAM, 'android must be an object');
  if (android?.ttl !== undefined) {
    const m = typeof android.ttl === 'string' ? /^(\d+)(\.\d+)?s$/.exec(android.ttl) : null;
    if (!m || Number(m[1]) > 1_296_000) return bad(HW.PARAM, 'ttl must look like "86400s" and be at most 1296000s');
  }
  if (android?.collapse_key !== undefined) {
    const c = android.collapse_key;
    if (typeof c !== 'number' || !Number.isInteger(c) || c < -1 || c > 100) return bad(HW.COLLAPSE_KEY, 'invalid collapse_key');
  }
  if (android?.category !== undefined && !HUAWEI_CATEGORIES.has(String(android.category))) return bad(HW.PARAM, 'invalid category');
  if (android?.urgency !== undefined && !['HIGH', 'NORMAL'].includes(String(android.urgency))) return bad(HW.PARAM, 'invalid urgency');
  const n = android?.notification as Record<string, unknown> | undefined;
  const top = msg.notification as Record<string, unknown> | undefined;
  if (n !== undefined || top !== undefined) {
    if (!(n?.title || top?.title) || !(n?.body || top?.body)) return bad(HW.PARAM, 'notification title and body are required');
    const ca = n?.click_action as Record<string, unknown> | undefined;
    if (!ca || ![1, 2, 3].includes(Number(ca.type))) return bad(HW.PARAM, 'android.notification.click_action.type is required (1, 2 or 3)');
    if (ca.type === 1 && !ca.intent && !ca.action) return bad(HW.PARAM, 'click_action type 1 needs intent or action');
    if (ca.type === 2 && !(typeof ca.url === 'string' && ca.url.startsWith('https://'))) return bad(HW.PARAM, 'click_action type 2 needs an https url');
    if (n?.importance !== undefined && !['LOW', 'NORMAL', 'HIGH'].includes(String(n.importance))) return bad(HW.PARAM, 'invalid importance');
    if (n?.notify_id !== undefined && !Number.isInteger(n.notify_id)) return bad(HW.PARAM, 'notify_id must be an integer');
    if (n?.image !== undefined && !String(n.image).startsWith('https://')) return bad(HW.PARAM, 'image must be an https url');
  } else if (msg.data === undefined) {
    return bad(HW.BAD_MESSAGE, 'a message needs data or a notification');
  } else if (android?.category !== undefined && !['VOIP', 'PLAY_VOICE'].includes(String(android.category))) {
    return bad(HW.PARAM, 'a data message takes category VOIP or PLAY_VOICE only');
  }
  return undefined;
}
