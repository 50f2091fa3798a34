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
import { categoryMapSchema, messageClass, type BuiltinClass, type NeutralCategory } from './shared/message-class.js';
import { fetchClientCredentialsToken } from './shared/oauth.js';
import { relayData } from './shared/relay-keys.js';
import { acquireTokenCache } from './shared/token-cache.js';

/**
 * Huawei HMS Push Kit, Android v1 API (vendors.md §1).
 * - OAuth2 client credentials at `<huaweiOauth>/oauth2/v3/token` (client id = app id), 1 h tokens,
 *   cached per credential and refreshed 5 min early or when the send answers 80200001 / 80200003.
 * - `POST <huawei>/v1/<appId>/messages:send`, up to 1000 tokens per request (80300010 beyond).
 * - Answer codes are strings in a JSON body; `80100000` is a partial success whose `msg` is a
 *   JSON string with `illegal_tokens`.
 */

/** Tokens per request: `message.token` takes 1..1000 entries (HWBLOG, 80300010 beyond). */
export const HUAWEI_MAX_TOKENS = 1000;
/** `android.ttl` maximum: 15 days. */
export const HUAWEI_MAX_TTL_SEC = HMS_MAX_TTL_SEC;

/** Huawei's self-classification categories (`android.category`) for each neutral category. */
const HUAWEI_CATEGORY: Partial<Record<NeutralCategory, string>> = {
  im: 'IM', voip: 'VOIP', account: 'ACCOUNT', order: 'EXPRESS', express: 'EXPRESS', subscription: 'SUBSCRIPTION',
  travel: 'TRAVEL', health: 'HEALTH', work: 'WORK', finance: 'FINANCE', reminder: 'DEVICE_REMINDER',
  todo: 'WORK', mail: 'MAIL', system: 'DEVICE_REMINDER', marketing: 'MARKETING',
};

/** Huawei's built-in class of a neutral category: importance by kind, plus its category. */
export const huaweiClass: BuiltinClass = (cat, kind) => {
  const c = HUAWEI_CATEGORY[cat];
  return { ...hmsImportance(cat, kind), ...(c ? { category: c } : {}) };
};

export const huaweiCredentialSchema = z
  .object({
    /** AppGallery Connect app id; also the OAuth client id. */
    appId: z.string().regex(/^\d+$/, 'Huawei app ids are numeric'),
    /** The app secret (OAuth client secret). */
    clientSecret: z.string().min(1),
    /** Optional: per-app overrides of the category → {category, importance, channelId} mapping. */
    categoryMap: categoryMapSchema.optional(),
    /** Optional: the receipt configuration id from AppGallery Connect (`android.receipt_id`). */
    receiptId: z.string().min(1).max(64).optional(),
    /** Optional: the app's granted QPS (Huawei's is MAU-based, at least 6000). */
    qps: z.number().int().positive().optional(),
  })
  .strict();
export type HuaweiCredential = z.infer<typeof huaweiCredentialSchema>;

/**
 * `overrides.huawei` of a push request. The named fields cover the usual needs; `android` is
 * deep-merged into `message.android` last, for anything else the v1 API accepts.
 */
export const huaweiOverridesSchema = z
  .object({
    /** Self-classification (`android.category`), e.g. IM, ACCOUNT, EXPRESS, MARKETING. */
    category: z.string().regex(/^[A-Z_]+$/).optional(),
    /** `android.notification.importance`: LOW = 资讯营销, NORMAL = 服务与通讯. */
    importance: z.enum(['LOW', 'NORMAL']).optional(),
    /** `android.notification.channel_id`. */
    channelId: z.string().min(1).optional(),
    /** `android.urgency` for data messages (HIGH needs a permission). */
    urgency: z.enum(['HIGH', 'NORMAL']).optional(),
    /** `android.collapse_key`: -1 keep all offline, 0 only the latest, 1..100 per group. */
    collapseKey: z.number().int().min(-1).max(100).optional(),
    /** `android.target_user_type`: 1 = test message. */
    targetUserType: z.union([z.literal(0), z.literal(1)]).optional(),
    receiptId: z.string().min(1).max(64).optional(),
    android: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type HuaweiOverrides = z.infer<typeof huaweiOverridesSchema>;

/** The `POST /v1/<appId>/messages:send` body for one chunk, or undefined when the message has expired. */
export function buildHuaweiBody(
  content: PushContent,
  tokens: readonly string[],
  cred: Partial<HuaweiCredential>,
  now = Date.now(),
): Record<string, unknown> | undefined {
  const ttl = remainingTtlSeconds(content.expiresAt, { now, max: HUAWEI_MAX_TTL_SEC });
  if (ttl <= 0) return undefined;
  const ov = channelOverrides<HuaweiOverrides>(content, 'huawei');
  const cls = messageClass(huaweiClass, content.options.category, cred.categoryMap, {
    category: ov.category,
    importance: ov.importance,
    channelId: ov.channelId,
  });

  const android: Record<string, unknown> = {
    ttl: `${ttl}s`,
    // Echoed in receipts as `biTag`, so a receipt finds its message even without the request id.
    bi_tag: content.messageId,
  };
  if (ov.collapseKey !== undefined) android.collapse_key = ov.collapseKey;
  if (ov.urgency) android.urgency = ov.urgency;
  if (ov.targetUserType !== undefined) android.target_user_type = ov.targetUserType;
  const receiptId = ov.receiptId ?? cred.receiptId;
  if (receiptId) android.receipt_id = receiptId;

  const notification = hmsNotification(content.notification, content.options.collapseKey, cls, { clickAction: 'click_action', notifyId: 'notify_id' });
  if (notification) {
    if (cls?.channelId) notification.channel_id = cls.channelId;
    const sound = content.notification?.sound;
    if (sound) {
      if (sound === 'default') notification.default_sound = true;
      else {
        // Custom sounds must name a file under the app's res/raw.
        notification.default_sound = false;
        notification.sound = sound.startsWith('/raw/') ? sound : `/raw/${sound}`;
      }
    }
    android.notification = notification;
  }
  // A notification takes any self-classification category; a data message only VOIP or PLAY_VOICE
  // (vendors.md: anything else is not a data message's category), so an `im` data push goes without.
  if (cls?.category && (android.notification || DATA_CATEGORIES.has(cls.category))) android.category = cls.category;

  const message: Record<string, unknown> = {
    token: [...tokens],
    // Notification messages hand `data` to the app on click; without a notification it is a
    // pass-through (data) message. Either way it carries relay_id.
    data: JSON.stringify(relayData(content)),
    android: deepMerge(android, ov.android),
  };
  return { validate_only: false, message };
}

/** The categories a data (pass-through) message may carry. */
const DATA_CATEGORIES = new Set(['VOIP', 'PLAY_VOICE']);

/** Body codes that mean "the access token was refused": refresh once and retry the batch. */
const AUTH_CODES = new Set(['80200001', '80200003']);

export function isHuaweiAuthRejected(res: VendorFetchResult): boolean {
  if (!res.ok) return false;
  const code = answerCode(res);
  return code !== undefined ? AUTH_CODES.has(code) : res.status === 401;
}

/** One outcome per token from a send answer (after the auth refresh, if any, was tried). */
export function classifyHuaweiAnswer(res: VendorFetchResult, tokens: readonly string[]): Outcome[] {
  const n = tokens.length;
  if (!res.ok) return fill(n, networkRetry(res));
  const body = isRecord(res.json) ? res.json : undefined;
  const code = answerCode(res);
  const msg = typeof body?.msg === 'string' ? body.msg : typeof body?.message === 'string' ? body.message : '';
  const requestId = body?.requestId !== undefined ? String(body.requestId) : undefined;
  const evidence: Record<string, unknown> = { status: res.status, ...(requestId ? { requestId } : {}), body: clip(body ?? res.text) };
  const reason = (message: string): OutcomeReason => ({ code: code ?? httpStatusCode(res.status), message: msg || message, evidence });

  if (isHuaweiAuthRejected(res)) return fill(n, failed(reason('access token refused after a refresh')));
  // 503 is Huawei's flow control (HMOS); 5xx and 81000001 are server-side faults.
  if (res.status === 429 || res.status >= 500 || code === '81000001') {
    return fill(n, retry(reason(res.status === 503 ? 'flow control' : 'server error'), retryAfterMs(res.headers)));
  }
  switch (code) {
    case '80000000':
      return fill(n, sent(requestId));
    case '80100000': {
      const illegal = illegalTokens(body?.msg);
      if (!illegal) return fill(n, sent(requestId));
      return tokens.map((t) =>
        illegal.has(t)
          ? invalid({ code: '80100000', message: 'token rejected as illegal (partial success)', evidence })
          : sent(requestId),
      );
    }
    case '80300007':
      return fill(n, invalid(reason('all tokens are invalid')));
    case '80300008':
      return fill(n, failed(reason('message body larger than 4096 bytes')));
    case '80100004':
      return fill(n, failed(reason('TTL earlier than now')));
    case '80300002':
      return fill(n, failed(reason('the app has no permission to send push messages (or the app id is wrong)')));
    case '80300011':
      return fill(n, failed(reason('no permission for high-priority messages')));
    case '80600003':
      return fill(n, failed(reason('OAuth server request failed (client id / secret)')));
    case undefined:
      // An HTTP answer without a body code: only the status can tell.
      return fill(n, res.status >= 200 && res.status < 300
        ? retry(reason('unrecognised answer'))
        : failed(reason(`HTTP ${res.status}`)));
    default:
      // 80100001/2/3/13/16/17/18, 80300010, 80300013 and anything new: the request is at fault.
      return fill(n, failed(reason('request rejected')));
  }
}

/** `illegal_tokens` from the partial-success `msg` (a JSON string; an object is accepted too). */
function illegalTokens(msg: unknown): Set<string> | undefined {
  let obj: unknown = msg;
  if (typeof msg === 'string') {
    try {
      obj = JSON.parse(msg);
    } catch {
      return undefined;
    }
  }
  if (!isRecord(obj) || !Array.isArray(obj.illegal_tokens)) return undefined;
  return new Set(obj.illegal_tokens.filter((t): t is string => typeof t === 'string'));
}

function createHuaweiProvider(cred: HuaweiCredential, ctx: ProviderContext): HmsFamilyProvider {
  const oauthUrl = `${trimSlash(endpointOf(ctx, HUAWEI_ENDPOINTS, 'huaweiOauth'))}/oauth2/v3/token`;
  return new HmsFamilyProvider(
    {
      channel: 'huawei',
      maxTokens: HUAWEI_MAX_TOKENS,
      sendUrl: `${trimSlash(endpointOf(ctx, HUAWEI_ENDPOINTS, 'huawei'))}/v1/${encodeURIComponent(cred.appId)}/messages:send`,
      tokens: acquireTokenCache(['huawei', oauthUrl, cred.appId, cred.clientSecret], () =>
        fetchClientCredentialsToken({ vendor: 'huawei', url: oauthUrl, clientId: cred.appId, clientSecret: cred.clientSecret }),
      ),
      headers: (token) => ({ authorization: `Bearer ${token}` }),
      buildBody: (content, tokens) => buildHuaweiBody(content, tokens, cred),
      isAuthRejected: isHuaweiAuthRejected,
      classify: classifyHuaweiAnswer,
    },
    ctx.logger,
  );
}

/**
 * Android (v1) receipts: `{"statuses":[{timestamp, token, appid, biTag, status, requestId}]}`.
 * Only `status: 0` (delivered) is confirmed (MYA sample). Other values are ❓ in the notes, so
 * they produce no event: quarantining a token on an unverified status code could kill live
 * tokens, while a missed "delivered" only leaves the delivery at `sent`.
 */
export function parseHuaweiReceipt(req: ReceiptRequest): ReceiptEvent[] {
  return parseHmsReceipt(req, 'huawei', (status) => status === 0);
}

export const HUAWEI_ENDPOINTS = {
  huawei: { env: 'HUAWEI_ENDPOINT', default: 'https://push-api.cloud.huawei.com', doc: 'Huawei Push Kit API' },
  huaweiOauth: { env: 'HUAWEI_OAUTH_ENDPOINT', default: 'https://oauth-login.cloud.huawei.com', doc: 'Huawei OAuth 2.0 token endpoint host' },
} as const satisfies Record<string, EndpointSetting>;

const huawei = {
  channel: 'huawei' as const,
  androidBrand: true as const,
  endpoints: HUAWEI_ENDPOINTS,
  marketingDailyCap: 2,
  overridesSchema: huaweiOverridesSchema,
  batchMax: HUAWEI_MAX_TOKENS,
  credentialSchema: huaweiCredentialSchema,
  describe: (cred) => ({
    appId: cred.appId,
    ...(cred.receiptId ? { receiptId: cred.receiptId } : {}),
    ...(cred.categoryMap ? { categoryMap: cred.categoryMap } : {}),
    ...(cred.qps ? { qps: cred.qps } : {}),
  }),
  create: createHuaweiProvider,
  // Huawei's receipts carry no signature (none documented); the per-app URL secret is the check.
  receipts: { parse: parseHuaweiReceipt },
  // MAU × weight × 0.00072, at least 6000 (QALI, QTC): the floor is safe without knowing the MAU.
  qps: (cred) => cred.qps ?? 6000,
} satisfies ProviderModule<HuaweiCredential>;

export default huawei;
