import type { ServerResponse } from 'node:http';
import type { ReceiptRequest } from '../../../providers/types.js';
import {
  AccessTokens,
  bearer,
  defaultBehavior,
  delay,
  fateOf,
  numericId,
  parseForm,
  requestFate,
  retryAfterHeader,
  sendJson,
  startRecordingServer,
  type MockBehavior,
  type MockServerOptions,
  type RecordedRequest,
} from './scaffold.js';

/**
 * A spec-true mock of Huawei Push Kit (Android v1 API, docs/providers/huawei-honor.md) — OAuth token endpoint and
 * `messages:send`, on the shared scaffold (scaffold.ts).
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
