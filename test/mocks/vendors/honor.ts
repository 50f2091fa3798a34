import type { ServerResponse } from 'node:http';
import type { ReceiptRequest } from '../../../providers/types.js';
import {
  AccessTokens,
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
 * A mock of Honor push (docs/providers/huawei-honor.md): the OAuth token endpoint and `sendMessage`.
 * Scripting is the same as the Huawei mock's (token prefixes, `tokens` map, `failFirst`,
 * `expireAccessTokens()`).
 *
 * Honor publishes no error table (❓). Where the mock must answer an error it uses Huawei's codes
 * and HTTP statuses (Honor's API is derived from Huawei's), in Honor's integer `code` field:
 * - auth: HTTP 401 `{code: 80200003}` (expired) / `{code: 80200001}` (unknown token)
 * - rate limit: HTTP 429 (+ Retry-After when scripted) `{code: 429}`
 * - server error: HTTP 500 `{code: 500}`
 * - payload too large (> 4096 bytes without the token list, as Huawei): HTTP 400 `{code: 80300008}`
 * - bad body: HTTP 400 `{code: 80100001}`; too many tokens: HTTP 400 `{code: 80300010}`
 * - per token: `invalid-…` → `data.expireTokens`, `fail-…` → `data.failTokens`
 * - daily quota: enforced silently (accepted, never shown), as with Huawei.
 */

export interface HonorMockOptions extends MockServerOptions {
  appId?: string;
  clientId?: string;
  clientSecret?: string;
  /** Token paths served (default both; drop `/auth/token` to exercise the provider's fallback). */
  oauthPaths?: string[];
  /** ❓ Maximum tokens per request (default 100, the provider's safe choice). */
  maxTokens?: number;
  /** Answer `code` as the string "200" instead of the integer (a TS client compares strings). */
  stringCode?: boolean;
}

export interface HonorSendRecord {
  requestId: string;
  biTag?: string;
  tokens: string[];
  body: Record<string, unknown>;
}

export interface HonorMock {
  port: number;
  url: string;
  appId: string;
  clientId: string;
  clientSecret: string;
  requests: RecordedRequest[];
  sends: HonorSendRecord[];
  readonly tokensIssued: number;
  setBehavior(b: Partial<MockBehavior>): void;
  resetBehavior(): void;
  expireAccessTokens(): void;
  /** A receipt as DOO documents Honor's (⚠️): `status` 40000002 = delivered by default. */
  receiptFor(token: string | string[], opts?: { status?: number; timestamp?: number; requestId?: string; biTag?: string }): ReceiptRequest;
  close(): Promise<void>;
}

export const HONOR_OAUTH_PATHS_DEFAULT = ['/auth/token', '/auth/realms/developer/protocol/openid-connect/token'];

export async function startHonorMock(opts: HonorMockOptions = {}): Promise<HonorMock> {
  const appId = opts.appId ?? '104433299';
  const clientId = opts.clientId ?? 'honor-client';
  const clientSecret = opts.clientSecret ?? 'honor-secret';
  const oauthPaths = new Set(opts.oauthPaths ?? HONOR_OAUTH_PATHS_DEFAULT);
  const maxTokens = opts.maxTokens ?? 100;
  const requests: RecordedRequest[] = [];
  const sends: HonorSendRecord[] = [];
  const lastByToken = new Map<string, HonorSendRecord>();
  const tokens = new AccessTokens();
  let behavior = defaultBehavior();
  const okCode = opts.stringCode ? '200' : 200;

  const answer = (res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}) =>
    sendJson(res, status, { code, message, data: null }, headers);

  const handler = async (req: RecordedRequest, res: ServerResponse) => {
    if (req.method === 'POST' && oauthPaths.has(req.path)) {
      const f = parseForm(req.rawBody);
      if (behavior.oauth === 'serverError') return sendJson(res, 500, { error: 'server_error', error_description: 'internal error' });
      if (f.get('grant_type') !== 'client_credentials') return sendJson(res, 400, { error: 'unsupported_grant_type', error_description: 'grant_type' });
      if (behavior.oauth === 'badCredentials' || f.get('client_id') !== clientId || f.get('client_secret') !== clientSecret) {
        return sendJson(res, 401, { error: 'invalid_client', error_description: 'Invalid client credentials' });
      }
      const ttl = behavior.accessTokenTtlSec;
      return sendJson(res, 200, { access_token: tokens.issue(ttl), expires_in: ttl, token_type: 'Bearer' });
    }
    const m = /^\/api\/v1\/([^/]+)\/sendMessage$/.exec(req.path);
    if (req.method !== 'POST' || !m) return sendJson(res, 404, { code: 404, message: 'not found' });
    if (behavior.sendDelayMs > 0) await delay(behavior.sendDelayMs);

    // ❓ HONDOC / MLV / HIP send `Bearer <token>`, honor-push the bare token: both are accepted.
    const auth = req.headers.authorization ?? '';
    const presented = /^Bearer\s+/i.test(auth) ? auth.replace(/^Bearer\s+/i, '') : auth || undefined;
    const state = tokens.check(presented);
    if (state === 'unknown') return answer(res, 401, 80200001, 'authentication failed');
    if (state === 'expired') return answer(res, 401, 80200003, 'access token expired');
    // ❓ epoch ms in HONDOC / honor-push / MLV, seconds in HIP: any positive integer is accepted.
    const ts = String(req.headers.timestamp ?? '');
    if (!/^\d{10,13}$/.test(ts)) return answer(res, 400, 80100001, 'timestamp header is required');
    if (decodeURIComponent(m[1] ?? '') !== appId) return answer(res, 403, 80300002, 'no permission for this app');

    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(req.rawBody);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    } catch {
      return answer(res, 400, 80100001, 'body is not a JSON object');
    }
    const problem = validateHonorBody(body, maxTokens);
    if (problem) return answer(res, 400, problem.code, problem.message);
    const list = body.token as string[];

    switch (requestFate(list, behavior)) {
      case 'authExpired':
        return answer(res, 401, 80200003, 'access token expired');
      case 'serverError':
        return answer(res, 500, 500, 'internal error');
      case 'rateLimit':
        return answer(res, 429, 429, 'request too frequent', retryAfterHeader(behavior));
      case 'payloadTooLarge':
        return answer(res, 400, 80300008, 'message body too large');
      default:
        break;
    }
    const requestId = numericId();
    const expireTokens = list.filter((t) => fateOf(t, behavior) === 'invalid');
    const failTokens = list.filter((t) => fateOf(t, behavior) === 'fail');
    const accepted = list.filter((t) => !expireTokens.includes(t) && !failTokens.includes(t));
    const android = (body.android ?? {}) as Record<string, unknown>;
    const rec: HonorSendRecord = {
      requestId,
      ...(typeof android.biTag === 'string' ? { biTag: android.biTag } : {}),
      tokens: accepted,
      body,
    };
    sends.push(rec);
    for (const t of accepted) lastByToken.set(t, rec);
    return sendJson(res, 200, {
      code: okCode,
      message: 'success',
      data: { sendResult: accepted.length > 0, requestId, failTokens, expireTokens },
    });
  };

  const started = await startRecordingServer(opts, requests, handler);
  return {
    port: started.port,
    url: started.url,
    appId,
    clientId,
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
          token: t,
          biTag: o.biTag ?? rec?.biTag ?? '',
          status: o.status ?? 40000002,
          timestamp: o.timestamp ?? Date.now(),
          requestId: o.requestId ?? rec?.requestId ?? numericId(),
        };
      });
      return { headers: { 'content-type': 'application/json' }, contentType: 'application/json', rawBody: JSON.stringify({ statuses }) };
    },
    close: started.close,
  };
}

/** Checks a `sendMessage` body (camelCase, HONDOC / honor-push field comments). */
export function validateHonorBody(body: Record<string, unknown>, maxTokens = 100): { code: number; message: string } | undefined {
  const bad = (code: number, message: string) => ({ code, message });
  const tok = body.token;
  if (!Array.isArray(tok) || tok.length < 1 || tok.length > maxTokens || tok.some((t) => typeof t !== 'string' || t === '')) {
    return bad(80300010, `token must hold 1..${maxTokens} tokens`);
  }
  if (body.data !== undefined && typeof body.data !== 'string') return bad(80100001, 'data must be a string');
  const { token: _token, ...payload } = body;
  if (Buffer.byteLength(JSON.stringify(payload), 'utf8') > 4096) return bad(80300008, 'message body too large');
  const android = body.android as Record<string, unknown> | undefined;
  if (android?.ttl !== undefined) {
    const m = typeof android.ttl === 'string' ? /^(\d+)(\.\d+)?s$/.exec(android.ttl) : null;
    if (!m || Number(m[1]) > 1_296_000) return bad(80100001, 'ttl must look like "86400s" and be at most 1296000s');
  }
  if (android?.targetUserType !== undefined && ![0, 1].includes(Number(android.targetUserType))) return bad(80100001, 'invalid targetUserType');
  const n = android?.notification as Record<string, unknown> | undefined;
  const top = body.notification as Record<string, unknown> | undefined;
  if (n !== undefined || top !== undefined) {
    if (!(n?.title || top?.title) || !(n?.body || top?.body)) return bad(80100001, 'notification title and body are required');
    const ca = n?.clickAction as Record<string, unknown> | undefined;
    if (!ca || ![1, 2, 3].includes(Number(ca.type))) return bad(80100001, 'android.notification.clickAction.type is required');
    if (ca.type === 1 && !ca.intent && !ca.action) return bad(80100001, 'clickAction type 1 needs intent or action');
    if (ca.type === 2 && !(typeof ca.url === 'string' && ca.url.startsWith('https://'))) return bad(80100001, 'clickAction type 2 needs an https url');
    if (n?.importance !== undefined && !['LOW', 'NORMAL'].includes(String(n.importance))) return bad(80100001, 'importance must be LOW or NORMAL');
    // ❓ integer in honor-push / HIP, string in MLV: both accepted.
    if (n?.notifyId !== undefined && !/^-?\d+$/.test(String(n.notifyId))) return bad(80100001, 'notifyId must be an integer');
  } else if (body.data === undefined) {
    return bad(80100001, 'a message needs data or a notification');
  }
  return undefined;
}
