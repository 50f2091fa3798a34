import { z } from 'zod';
import {
  failed,
  invalid,
  retry,
  sent,
  type Outcome,
  type OutcomeReason,
  type ProviderContext,
  type ProviderModule,
  type PushContent,
  type ReceiptEvent,
  type ReceiptRequest,
  channelOverrides,
  httpStatusCode,
  type EndpointSetting,
  endpointOf,
} from './types.js';
import { answerCode, HMS_MAX_TTL_SEC, HmsFamilyProvider, hmsImportance, hmsNotification, parseHmsReceipt } from './huawei-family.js';
import { fill } from './shared/batches.js';
import { remainingTtlSeconds } from './shared/expiry.js';
import { networkRetry, retryAfterMs, trimSlash, type VendorFetchResult } from './shared/http.js';
import { clip, deepMerge, isRecord } from './shared/json.js';
import { categoryMapSchema, messageClass, type BuiltinClass } from './shared/message-class.js';
import { fetchClientCredentialsToken } from './shared/oauth.js';
import { relayData } from './shared/relay-keys.js';
import { acquireTokenCache, VendorAuthError, type IssuedToken } from './shared/token-cache.js';

/**
 * Honor push (vendors.md §2): a Huawei-derived API with camelCase fields.
 * - OAuth2 client credentials with the console's Client ID / Client Secret (not the app secret).
 * - `POST <honor>/api/v1/<appId>/sendMessage` with `Authorization: Bearer`, a `timestamp` header
 *   (epoch ms) and `{token:[…], data, android:{ttl, biTag, notification:{…}}}`.
 * - Success is `code == 200` (int; "200" accepted too); `data.expireTokens` are dead tokens,
 *   `data.failTokens` failed ones.
 * Several facts are ❓ in the notes; each choice is marked below.
 */

/**
 * Tokens per request. ❓ Honor's maximum is not documented anywhere we found. Huawei (whose API
 * Honor's copies) allows 1000; we use 100 so that a smaller real limit cannot fail whole batches.
 */
export const HONOR_MAX_TOKENS = 100;
/** `android.ttl` maximum: 15 days (ZHP comments). */
export const HONOR_MAX_TTL_SEC = HMS_MAX_TTL_SEC;

/** Honor classifies by importance only (no self-classification category). */
export const honorClass: BuiltinClass = hmsImportance;

/**
 * Token endpoint paths. The SDKs (ZHP, MLV, DOO, HIP) use `/auth/token` ✅; Honor's own guide
 * shows the Keycloak path. We call the first and fall back to the second when it answers 404.
 */
export const HONOR_OAUTH_PATHS = ['/auth/token', '/auth/realms/developer/protocol/openid-connect/token'] as const;

export const honorCredentialSchema = z
  .object({
    /** The app id (numeric) used in the send URL. */
    appId: z.string().regex(/^\d+$/, 'Honor app ids are numeric'),
    /** The console's Client ID / Client Secret (they differ from App ID / App Secret). */
    clientId: z.string().min(1),
    clientSecret: z.string().min(1),
    /** Optional: per-app overrides of the category → importance mapping. */
    categoryMap: categoryMapSchema.optional(),
    /** Optional: the app's granted QPS (default 3000, QALI). */
    qps: z.number().int().positive().optional(),
  })
  .strict();
export type HonorCredential = z.infer<typeof honorCredentialSchema>;

/** `overrides.honor` of a push request; `android` is deep-merged into the body's `android` last. */
export const honorOverridesSchema = z
  .object({
    /** `android.notification.importance`: LOW = 资讯营销, NORMAL = 服务与通讯. */
    importance: z.enum(['LOW', 'NORMAL']).optional(),
    /** `android.targetUserType`: 1 = test message (1000/app/day, outside per-device caps). */
    targetUserType: z.union([z.literal(0), z.literal(1)]).optional(),
    android: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type HonorOverrides = z.infer<typeof honorOverridesSchema>;

export function buildHonorBody(
  content: PushContent,
  tokens: readonly string[],
  cred: Partial<HonorCredential>,
  now = Date.now(),
): Record<string, unknown> | undefined {
  const ttl = remainingTtlSeconds(content.expiresAt, { now, max: HONOR_MAX_TTL_SEC });
  if (ttl <= 0) return undefined;
  const ov = channelOverrides<HonorOverrides>(content, 'honor');
  const cls = messageClass(honorClass, content.options.category, cred.categoryMap, { importance: ov.importance });

  const android: Record<string, unknown> = { ttl: `${ttl}s`, biTag: content.messageId };
  if (ov.targetUserType !== undefined) android.targetUserType = ov.targetUserType;

  const notification = hmsNotification(content.notification, content.options.collapseKey, cls, { clickAction: 'clickAction', notifyId: 'notifyId' });
  if (notification) android.notification = notification;
  return {
    token: [...tokens],
    // Top-level `data`: a JSON string; with no notification it makes a pass-through message.
    data: JSON.stringify(relayData(content)),
    android: deepMerge(android, ov.android),
  };
}

/**
 * ❓ Honor publishes no error table. Treated as "token refused, refresh once": HTTP 401, and the
 * body codes 401 and Huawei's 80200001 / 80200003 (Honor's API is Huawei's).
 */
const AUTH_CODES = new Set(['401', '80200001', '80200003']);
/** ❓ Treated as retryable: rate limit / server codes in the body, and Huawei's internal-error code. */
const RETRY_CODES = new Set(['429', '500', '502', '503', '504', '81000001']);
/** ❓ Treated as "payload too large". */
const TOO_LARGE_CODES = new Set(['413', '80300008']);

export function isHonorAuthRejected(res: VendorFetchResult): boolean {
  if (!res.ok) return false;
  const code = answerCode(res);
  return res.status === 401 || (code !== undefined && AUTH_CODES.has(code));
}

function tokenList(v: unknown): Set<string> {
  const out = new Set<string>();
  if (!Array.isArray(v)) return out;
  for (const t of v) {
    if (typeof t === 'string') out.add(t);
    else if (isRecord(t) && typeof t.token === 'string') out.add(t.token);
  }
  return out;
}

export function classifyHonorAnswer(res: VendorFetchResult, tokens: readonly string[]): Outcome[] {
  const n = tokens.length;
  if (!res.ok) return fill(n, networkRetry(res));
  const body = isRecord(res.json) ? res.json : undefined;
  const code = answerCode(res);
  const data = isRecord(body?.data) ? body.data : undefined;
  const requestId = data?.requestId !== undefined ? String(data.requestId) : undefined;
  const vendorMsg = typeof body?.message === 'string' ? body.message : '';
  const evidence: Record<string, unknown> = { status: res.status, ...(requestId ? { requestId } : {}), body: clip(body ?? res.text) };
  const reason = (message: string, c?: string): OutcomeReason => ({ code: c ?? code ?? httpStatusCode(res.status), message: vendorMsg || message, evidence });

  if (isHonorAuthRejected(res)) return fill(n, failed(reason('access token refused after a refresh')));
  if (res.status === 429 || res.status >= 500 || (code !== undefined && RETRY_CODES.has(code))) {
    return fill(n, retry(reason('rate limited or server error'), retryAfterMs(res.headers)));
  }
  if (res.status === 413 || (code !== undefined && TOO_LARGE_CODES.has(code))) {
    return fill(n, failed(reason('message too large')));
  }
  if (code === '200') {
    const expired = tokenList(data?.expireTokens);
    const failedTokens = tokenList(data?.failTokens);
    if (data?.sendResult === false && expired.size === 0 && failedTokens.size === 0) {
      return fill(n, retry(reason('sendResult false without failed tokens', 'sendResult_false')));
    }
    return tokens.map((t) => {
      if (expired.has(t)) return invalid({ code: 'expireTokens', message: 'Honor listed the token as expired', evidence });
      // ❓ `failTokens` carry no reason. A retry (bounded by MAX_ATTEMPTS and the TTL) is safer
      // than quarantining a token that may be fine, or failing a delivery that may succeed.
      if (failedTokens.has(t)) return retry({ code: 'failTokens', message: 'Honor listed the token as failed', evidence });
      return sent(requestId);
    });
  }
  if (code === undefined && res.status >= 200 && res.status < 300) return fill(n, retry(reason('unrecognised answer')));
  return fill(n, failed(reason('request rejected')));
}

function createHonorProvider(cred: HonorCredential, ctx: ProviderContext): HmsFamilyProvider {
  const oauthBase = trimSlash(endpointOf(ctx, HONOR_ENDPOINTS, 'honorOauth'));
  let oauthPath = 0;
  const fetchToken = async (): Promise<IssuedToken> => {
    for (;;) {
      const path = HONOR_OAUTH_PATHS[oauthPath] ?? HONOR_OAUTH_PATHS[0];
      try {
        return await fetchClientCredentialsToken({ vendor: 'honor', url: `${oauthBase}${path}`, clientId: cred.clientId, clientSecret: cred.clientSecret });
      } catch (err) {
        const notFound = err instanceof VendorAuthError && err.reason.evidence?.status === 404;
        if (notFound && oauthPath + 1 < HONOR_OAUTH_PATHS.length) {
          oauthPath++;
          continue;
        }
        throw err;
      }
    }
  };
  return new HmsFamilyProvider(
    {
      channel: 'honor',
      maxTokens: HONOR_MAX_TOKENS,
      sendUrl: `${trimSlash(endpointOf(ctx, HONOR_ENDPOINTS, 'honor'))}/api/v1/${encodeURIComponent(cred.appId)}/sendMessage`,
      tokens: acquireTokenCache(['honor', oauthBase, cred.clientId, cred.clientSecret], fetchToken),
      // ❓ `timestamp` is epoch ms in HONDOC / ZHP / MLV (HIP sends seconds); we send ms.
      headers: (token) => ({ authorization: `Bearer ${token}`, timestamp: String(Date.now()) }),
      buildBody: (content, tokens) => buildHonorBody(content, tokens, cred),
      isAuthRejected: isHonorAuthRejected,
      classify: classifyHonorAnswer,
    },
    ctx.logger,
  );
}

/**
 * Honor receipts ⚠️ (DOO only): `{"statuses":[{token, biTag, status, timestamp, requestId}]}`.
 * DOO reads `status == 40000002` as delivered; Huawei's format (which Honor's follows) uses 0.
 * Both are read as delivered; every other status is unverified and produces no event.
 */
export function parseHonorReceipt(req: ReceiptRequest): ReceiptEvent[] {
  return parseHmsReceipt(req, 'honor', (status) => status === 40000002 || status === 0);
}

export const HONOR_ENDPOINTS = {
  honor: { env: 'HONOR_ENDPOINT', default: 'https://push-api.cloud.honor.com', doc: 'Honor Push API' },
  honorOauth: { env: 'HONOR_OAUTH_ENDPOINT', default: 'https://iam.developer.honor.com', doc: 'Honor OAuth 2.0 token endpoint host' },
} as const satisfies Record<string, EndpointSetting>;

const honor = {
  channel: 'honor' as const,
  androidBrand: true as const,
  endpoints: HONOR_ENDPOINTS,
  marketingDailyCap: 2,
  overridesSchema: honorOverridesSchema,
  batchMax: HONOR_MAX_TOKENS,
  credentialSchema: honorCredentialSchema,
  describe: (cred) => ({
    appId: cred.appId,
    clientId: cred.clientId,
    ...(cred.categoryMap ? { categoryMap: cred.categoryMap } : {}),
    ...(cred.qps ? { qps: cred.qps } : {}),
  }),
  create: createHonorProvider,
  receipts: { parse: parseHonorReceipt },
  qps: (cred) => cred.qps ?? 3000,
} satisfies ProviderModule<HonorCredential>;

export default honor;
