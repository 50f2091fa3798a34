import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  failed,
  invalid,
  quotaDay,
  retry,
  sent,
  type Outcome,
  type OutcomeReason,
  type Provider,
  type ProviderContext,
  type ProviderModule,
  type PushContent,
  type ReceiptEvent,
  type ReceiptRequest,
  type SendTarget,
  channelOverrides,
  RELAY_CODES,
  httpStatusCode,
  type EndpointSetting,
  endpointOf,
} from './types.js';
import { fill, sendInChunks } from './shared/batches.js';
import { msUntilChinaMidnight } from './shared/china-time.js';
import { clickTarget } from './shared/click.js';
import { expiredOutcome, remainingTtlSeconds } from './shared/expiry.js';
import { answerJson, networkRetry, retryAfterMs, vendorFetchForm, type VendorFetchResult } from './shared/http.js';
import { notifyIdFrom } from './shared/ids.js';
import { clip, isRecord } from './shared/json.js';
import { createLimiter } from './shared/limiter.js';
import { categoryMapSchema, messageClass, type BuiltinClass } from './shared/message-class.js';
import { epochMs, header } from './shared/receipts.js';
import { relayData } from './shared/relay-keys.js';
import { notificationTexts, truncateChars } from './shared/text.js';

/**
 * Xiaomi MiPush (docs/providers/xiaomi.md).
 * - Every request: `Authorization: key=<AppSecret>` (lowercase `key`); no token call.
 * - `POST <xiaomi>/v3/message/regid`, form-encoded, `registration_id` = comma-joined regIds,
 *   `extra.*` fields flattened.
 * - `{"result":"ok","code":0,"data":{"id":"<msgId>","bad_regids":"a,b"}}` or
 *   `{"result":"error","code":<int>,"description":"…","reason":"…"}`.
 */

/**
 * regIds per request. ❓ Xiaomi's maximum is not in any source we have (MYA caps at 100 by its
 * own choice). 100 is the safest reading: a smaller batch is never refused.
 */
export const XIAOMI_MAX_REGIDS = 100;
/**
 * `time_to_live` (ms) caps ⚠️ (MLV): 公信 (marketing) ≤ 1 day, 私信 (service) ≤ 10 days; the older
 * default/maximum was 2 weeks. We clamp to the class's cap, 10 days when the class is unknown.
 */
export const XIAOMI_MAX_TTL_MARKETING_SEC = 86_400;
export const XIAOMI_MAX_TTL_SERVICE_SEC = 864_000;
/** `title` < 50 and `description` < 128 characters (Xiaomi's API doc): we cut at 49 / 127 UTF-16 units. */
const TITLE_MAX = 49;
const DESCRIPTION_MAX = 127;
/** Bits of `extra.callback.type`: 1 delivered, 2 clicked, 16 invalid target (Xiaomi's Java SDK guide, docs/providers/xiaomi.md). */
export const XIAOMI_CALLBACK_TYPE = 1 | 2 | 16;
const CONCURRENCY = 8;

/**
 * Xiaomi classifies by an app-registered channel id only; it comes from the credential's
 * `categoryMap` (or `channelId`), there is no built-in value.
 */
export const xiaomiClass: BuiltinClass = () => ({});

export const xiaomiCredentialSchema = z
  .object({
    appSecret: z.string().min(1),
    /** The Android package (`restricted_package_name`). */
    packageName: z.string().regex(/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/, 'expected an Android package name'),
    /**
     * Optional: the default notification channel id (`extra.channel_id`) registered in the Xiaomi
     * console; required by apps on the new 公信/私信 classification. `categoryMap` picks one per category.
     */
    channelId: z.string().min(1).max(200).optional(),
    /** Optional: category → {channelId} (Xiaomi has no built-in values: channels are per app). */
    categoryMap: categoryMapSchema.optional(),
    /**
     * Optional: the receipt URL (`POST /v1/receipts/xiaomi/<app>?secret=…`). Xiaomi sends
     * receipts only to the URL given per message in `extra.callback`.
     */
    callbackUrl: z.string().url().max(1024).optional(),
    /** Optional: the app's QPS (500 for <100k daily online devices up to 3000 for >10M; QALI). */
    qps: z.number().int().positive().optional(),
  })
  .strict();
export type XiaomiCredential = z.infer<typeof xiaomiCredentialSchema>;

/** `overrides.xiaomi` of a push request. */
export const xiaomiOverridesSchema = z
  .object({
    /** `extra.channel_id`. */
    channelId: z.string().min(1).max(200).optional(),
    /** `notify_type`: -1 all, else an OR of 1 sound, 2 vibrate, 4 lights. */
    notifyType: z.number().int().min(-1).max(7).optional(),
    /** Extra `extra.<key>` fields (strings), e.g. `{"notify_foreground":"0"}`. */
    extra: z.record(z.string().min(1), z.string()).optional(),
    /** Raw form fields set last (anything else the API takes, e.g. `time_to_send`). */
    fields: z.record(z.string().min(1), z.string()).optional(),
  })
  .strict();
export type XiaomiOverrides = z.infer<typeof xiaomiOverridesSchema>;

/**
 * Without a notify_id Xiaomi shows only the latest notification of the app, so every message gets
 * its own id; a collapse key gives equal ids (and so replacement) on purpose. A recall names the
 * message by it (docs/recall.md).
 */
export function xiaomiNotifyId(content: PushContent): number {
  // `overrides.xiaomi.fields` are set last on the form: a notify_id given there is the one sent.
  const raw = channelOverrides<XiaomiOverrides>(content, 'xiaomi').fields?.notify_id;
  if (raw !== undefined && /^\d{1,10}$/.test(raw)) return Number(raw);
  return notifyIdFrom(content.options.collapseKey ?? content.messageId);
}

/**
 * The revoke request (docs/recall.md): form-encoded `registration_ids` (comma-joined),
 * `restricted_package_name` and the `notify_id` the message was sent with.
 */
export function buildXiaomiRevokeForm(content: PushContent, regIds: readonly string[], packageName: string): URLSearchParams {
  const f = new URLSearchParams();
  f.set('registration_ids', regIds.join(','));
  f.set('restricted_package_name', packageName);
  f.set('notify_id', String(xiaomiNotifyId(content)));
  return f;
}

export function buildXiaomiForm(
  content: PushContent,
  regIds: readonly string[],
  cred: Pick<XiaomiCredential, 'packageName' | 'channelId' | 'categoryMap' | 'callbackUrl'>,
  now = Date.now(),
): URLSearchParams | undefined {
  const ov = channelOverrides<XiaomiOverrides>(content, 'xiaomi');
  const cls = messageClass(xiaomiClass, content.options.category, cred.categoryMap, { channelId: ov.channelId });
  const maxTtl = cls?.kind === 'marketing' ? XIAOMI_MAX_TTL_MARKETING_SEC : XIAOMI_MAX_TTL_SERVICE_SEC;
  const ttl = remainingTtlSeconds(content.expiresAt, { now, max: maxTtl });
  if (ttl <= 0) return undefined;

  const f = new URLSearchParams();
  f.set('registration_id', regIds.join(','));
  f.set('restricted_package_name', cred.packageName);
  // Notification messages hand `payload` to the app on click; pass-through messages are it.
  f.set('payload', JSON.stringify(relayData(content)));
  f.set('time_to_live', String(ttl * 1000));

  const n = content.notification;
  // Both are required for a notification and must not be all whitespace (Xiaomi's API doc): a blank one is
  // taken from the other; with neither there is nothing to show and the message goes as data.
  const texts = notificationTexts(n);
  if (n && texts) {
    f.set('pass_through', '0');
    f.set('title', truncateChars(texts.title, TITLE_MAX));
    f.set('description', truncateChars(texts.body, DESCRIPTION_MAX));
    if (ov.notifyType !== undefined) f.set('notify_type', String(ov.notifyType));
    else if (n.sound) f.set('notify_type', '-1');
    if (n.sound && n.sound !== 'default') f.set('extra.sound_uri', `android.resource://${cred.packageName}/raw/${n.sound.replace(/\.[a-z0-9]+$/i, '')}`);
    const t = clickTarget(n.clickAction);
    if (t.kind === 'url') {
      f.set('extra.notify_effect', '3');
      f.set('extra.web_uri', t.url);
    } else if (t.kind === 'intent') {
      f.set('extra.notify_effect', '2');
      f.set('extra.intent_uri', t.uri);
    } else {
      f.set('extra.notify_effect', '1');
    }
  } else {
    f.set('pass_through', '1');
  }
  f.set('notify_id', String(xiaomiNotifyId(content)));
  // Client-side de-duplication within MiPush: a retried send of the same message never shows twice.
  f.set('extra.jobkey', xiaomiJobkey(content.messageId));
  f.set('extra.relay_id', content.messageId);
  const channelId = cls?.channelId ?? cred.channelId;
  if (channelId) f.set('extra.channel_id', channelId);
  if (cred.callbackUrl) {
    f.set('extra.callback', cred.callbackUrl);
    // Echoed in the receipt as `param` (≤256 bytes).
    f.set('extra.callback.param', content.messageId);
    f.set('extra.callback.type', String(XIAOMI_CALLBACK_TYPE));
  }
  for (const [k, v] of Object.entries(ov.extra ?? {})) f.set(`extra.${k}`, v);
  for (const [k, v] of Object.entries(ov.fields ?? {})) f.set(k, v);
  return f;
}

/** `extra.jobkey` length: one source says ≤ 20, MOD (the vendor's field comment) ≤ 12; the stricter wins. */
const JOBKEY_LEN = 12;
const ALNUM = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * The `extra.jobkey` of a message. The device shows only the first message of a jobkey and drops
 * the rest, so it comes from the message id, never the collapse key: every attempt of one message
 * shares it (a retry after a lost answer is not shown twice) and two messages almost never do.
 * MOD: `[0-9a-zA-Z_-]`, ≤ 12 chars, not starting with `_`. Base62 of a sha256 meets that for any
 * id (a base64url prefix may start with `_` or `-`) and keeps ~71 bits against collisions.
 */
export function xiaomiJobkey(messageId: string): string {
  let n = BigInt(`0x${createHash('sha256').update(messageId).digest('hex')}`);
  let out = '';
  for (let i = 0; i < JOBKEY_LEN; i++) {
    out += ALNUM[Number(n % 62n)];
    n /= 62n;
  }
  return out;
}

/** Rate limits (XMERR): IP / user / special-API / app / app-total call frequency. */
const RATE_CODES = new Set([10022, 10023, 10024, 10027, 10028]);
/** Server side (XMERR): unknown, system error, service paused, remote error, system busy. */
const SERVER_CODES = new Set([-1, 10001, 10002, 10003, 10009]);
/** Credential / app problems (XMERR): no retry and no refresh can fix them. */
const AUTH_CODES = new Set([10004, 10005, 10014, 10026, 22000, 22001, 22002, 22008, 22021, 22022]);

function answerCode(body: Record<string, unknown> | undefined): number | undefined {
  if (!body || body.code === undefined || body.code === null) return undefined;
  const n = Number(body.code);
  return Number.isFinite(n) ? n : undefined;
}

/** `bad_regids` (MZS) or `bad_regIds` (xxgail) ❓: both spellings, comma string or array. */
function badRegIds(data: Record<string, unknown> | undefined): Set<string> {
  const out = new Set<string>();
  for (const key of ['bad_regids', 'bad_regIds']) {
    const v = data?.[key];
    const list = typeof v === 'string' ? v.split(',') : Array.isArray(v) ? v : [];
    for (const t of list) if (typeof t === 'string' && t.trim()) out.add(t.trim());
  }
  return out;
}

/** Xiaomi's answer when the app's daily total is used up (docs/quota-days.md). */
export const XIAOMI_DAILY_TOTAL = 200001;

export function classifyXiaomiAnswer(res: VendorFetchResult, regIds: readonly string[], now = Date.now()): Outcome[] {
  const n = regIds.length;
  if (!res.ok) return fill(n, networkRetry(res));
  const { body, data } = answerJson(res);
  const code = answerCode(body);
  const vendorMsg = [body?.description, body?.reason].filter((s): s is string => typeof s === 'string' && s !== '').join(': ');
  const evidence: Record<string, unknown> = {
    status: res.status,
    ...(typeof body?.trace_id === 'string' ? { traceId: body.trace_id } : {}),
    body: clip(body ?? res.text),
  };
  const reason = (message: string, c?: string): OutcomeReason => ({
    code: c ?? (code !== undefined ? String(code) : httpStatusCode(res.status)),
    message: vendorMsg || message,
    evidence,
  });
  const afterMs = retryAfterMs(res.headers);

  if (code === 0 && (body?.result === undefined || body.result === 'ok')) {
    // ❓ `day_quota`, `day_acked` and `channel_exceed_quota` come with a success (docs/providers/xiaomi.md)
    // but no source says what they mean there or that the message was refused for any regId;
    // the §0 "daily quota" cell names only the fields. One third-party note (⚠️) reads day_quota /
    // day_acked as the app's daily total and delivered count, and channel_exceed_quota
    // (`no_channel:2 a:3`) as counts of dropped messages on the multi_messages API, the
    // single-message APIs refusing with an error code instead. So a success stays `sent`:
    // failing every regId of the request would misreport accepted messages, and `quota` means a
    // per-device cap, while these are app totals (day_quota "0" may well mean unlimited).
    const id = data?.id !== undefined ? String(data.id) : undefined;
    const bad = badRegIds(data);
    return regIds.map((t) => (bad.has(t) ? invalid({ code: 'bad_regids', message: 'Xiaomi listed the regId as bad', evidence }) : sent(id)));
  }
  if (res.status === 429 || res.status >= 500) return fill(n, retry(reason('rate limited or server error'), afterMs));
  if (code === undefined) {
    if (res.status === 401 || res.status === 403) return fill(n, failed(reason('AppSecret refused')));
    return fill(n, res.status < 300 ? retry(reason('unrecognised answer')) : failed(reason(`HTTP ${res.status}`)));
  }
  if (RATE_CODES.has(code)) return fill(n, retry(reason('rate limited'), afterMs));
  if (SERVER_CODES.has(code)) return fill(n, retry(reason('server error'), afterMs));
  // ⚠️ MZS reads 20301 ("发送消息失败") as "all targets failed"; quarantining every token on that
  // single source is too risky, so it is retried (bounded by MAX_ATTEMPTS and the TTL).
  if (code === 20301) return fill(n, retry(reason('send failed')));
  if (AUTH_CODES.has(code)) return fill(n, failed(reason('credential or app refused')));
  // ✅ 200001 "exceed quota, quota: <day total>, have acked: <delivered today>": the app's daily
  // total of 公信 messages is used up (docs/quota-days.md): failed `quota` now, and the app skips
  // Xiaomi until 00:00 China time. Nothing waits to be sent at midnight.
  if (code === XIAOMI_DAILY_TOTAL) return fill(n, quotaDay(reason('the app’s daily Xiaomi total is used up'), now + msUntilChinaMidnight(now)));
  // ❓ 22101 "too many notifications": not documented as the app's total (docs/quota-days.md), so
  // only these deliveries fail `quota`; Xiaomi is not skipped for the day.
  if (code === 22101) {
    return fill(n, failed({ code: RELAY_CODES.quota, message: vendorMsg || 'daily notification quota exceeded', evidence: { ...evidence, vendorCode: code } }));
  }
  if (code === 10018) return fill(n, failed(reason('request too long')));
  // 100, 10008, 10016, 10017, 10025, 22100, 22102, 22103 and anything unknown: the request is at fault.
  return fill(n, failed(reason('request rejected')));
}

class XiaomiProvider implements Provider {
  readonly channel = 'xiaomi' as const;
  private readonly limiter = createLimiter(CONCURRENCY);
  private readonly sendUrl: string;
  private readonly revokeUrl: string;

  constructor(
    private readonly cred: XiaomiCredential,
    private readonly ctx: ProviderContext,
  ) {
    this.sendUrl = `${endpointOf(ctx, XIAOMI_ENDPOINTS, 'xiaomi').replace(/\/+$/, '')}/v3/message/regid`;
    // The v3 revoke by regId; Xiaomi retired the v1/v2 revoke URLs on 2026-12-01 (docs/recall.md).
    this.revokeUrl = `${this.sendUrl}/revoke`;
  }

  /** Xiaomi's own recall (消息撤回) by regId and notify_id: `sent` = withdrawn (Provider.recall). */
  async recall(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    return sendInChunks(targets, XIAOMI_MAX_REGIDS, this.limiter, async (chunk) => {
      const regIds = chunk.map((t) => t.token);
      const form = buildXiaomiRevokeForm(content, regIds, this.cred.packageName);
      const res = await vendorFetchForm(this.revokeUrl, form, { headers: { authorization: `key=${this.cred.appSecret}` } });
      return classifyXiaomiAnswer(res, regIds);
    }, this.ctx.logger);
  }

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    if (remainingTtlSeconds(content.expiresAt) <= 0) return fill(targets.length, expiredOutcome(content.expiresAt));
    return sendInChunks(targets, XIAOMI_MAX_REGIDS, this.limiter, (chunk) => this.sendChunk(content, chunk), this.ctx.logger);
  }

  private async sendChunk(content: PushContent, chunk: SendTarget[]): Promise<Outcome[]> {
    const regIds = chunk.map((t) => t.token);
    const form = buildXiaomiForm(content, regIds, this.cred);
    if (!form) return fill(chunk.length, expiredOutcome(content.expiresAt));
    // The word `key` must be lowercase (Xiaomi's API doc).
    const res = await vendorFetchForm(this.sendUrl, form, { headers: { authorization: `key=${this.cred.appSecret}` } });
    return classifyXiaomiAnswer(res, regIds);
  }

  async close(): Promise<void> {}
}

/** Receipt `type` bits (Xiaomi's Java SDK guide, docs/providers/xiaomi.md), strongest first. */
const RECEIPT_BITS: ReadonlyArray<readonly [number, ReceiptEvent['event']]> = [
  [16, 'invalid'],
  [2, 'opened'],
  [1, 'delivered'],
];

const receiptEntrySchema = z
  .object({
    type: z.union([z.number().int(), z.string().regex(/^\d+$/)]),
    targets: z.union([z.string(), z.array(z.string())]),
    timestamp: z.union([z.number(), z.string()]).optional(),
    param: z.string().nullish(),
    jobkey: z.string().nullish(),
    barStatus: z.string().nullish(),
  })
  .passthrough();

/**
 * Xiaomi receipts: a form POST with one field `data`, a JSON string keyed by Xiaomi's message id:
 * `{"<msgId>":{"type":1,"targets":"a,b","timestamp":…,"param":"<relay_id>","jobkey":…,"barStatus":…}}`.
 * `type` is a bitmask: 16 invalid target → `invalid`, 2 clicked → `opened`, 1 delivered →
 * `delivered`, one event per bit set. Other bits (32, 64, 128…) are ❓ and produce no event.
 * A JSON body (`{"data": …}`) is accepted as well.
 */
export function parseXiaomiReceipt(req: ReceiptRequest): ReceiptEvent[] {
  const ct = (req.contentType || header(req.headers, 'content-type') || '').toLowerCase();
  let data: unknown;
  if (ct.includes('json')) {
    let outer: unknown;
    try {
      outer = JSON.parse(req.rawBody);
    } catch (err) {
      throw new Error(`xiaomi receipt: body is not JSON (${(err as Error).message})`);
    }
    data = isRecord(outer) && 'data' in outer ? outer.data : outer;
  } else {
    data = new URLSearchParams(req.rawBody).get('data') ?? undefined;
  }
  if (data === undefined || data === null) throw new Error('xiaomi receipt: missing form field "data"');
  if (typeof data === 'string') {
    try {
      data = JSON.parse(data);
    } catch (err) {
      throw new Error(`xiaomi receipt: field "data" is not JSON (${(err as Error).message})`);
    }
  }
  if (!isRecord(data) || Object.keys(data).length === 0) throw new Error('xiaomi receipt: "data" must be an object keyed by message id');

  const events: ReceiptEvent[] = [];
  for (const [msgId, raw] of Object.entries(data)) {
    const parsed = receiptEntrySchema.safeParse(raw);
    if (!parsed.success) throw new Error(`xiaomi receipt: entry ${msgId}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    const e = parsed.data;
    const type = Number(e.type);
    const targets = (Array.isArray(e.targets) ? e.targets : e.targets.split(',')).map((t) => t.trim()).filter(Boolean);
    const at = epochMs(e.timestamp);
    // One event per bit, none dropped: the receipt states each fact, and applyEvents keeps only
    // the strongest per delivery (invalid, opened, delivered), so the weaker ones cost nothing.
    for (const [bit, event] of RECEIPT_BITS) {
      if ((type & bit) === 0) continue;
      for (const token of targets) {
        events.push({
          event,
          providerId: msgId,
          token,
          ...(e.param ? { messageId: e.param } : {}),
          ...(at !== undefined ? { at } : {}),
          ...(event === 'invalid'
            ? { reason: { code: 'callback_type_16', message: 'Xiaomi reported the regId as invalid', evidence: { type, msgId } } }
            : {}),
        });
      }
    }
  }
  return events;
}

export const XIAOMI_ENDPOINTS = {
  xiaomi: { env: 'XIAOMI_ENDPOINT', default: 'https://api.xmpush.xiaomi.com', doc: 'Xiaomi push API' },
} as const satisfies Record<string, EndpointSetting>;

const xiaomi = {
  channel: 'xiaomi' as const,
  androidBrand: true as const,
  wantsCallbackUrl: true as const,
  endpoints: XIAOMI_ENDPOINTS,
  marketingDailyCap: 5,
  overridesSchema: xiaomiOverridesSchema,
  batchMax: XIAOMI_MAX_REGIDS,
  credentialSchema: xiaomiCredentialSchema,
  describe: (cred) => ({
    packageName: cred.packageName,
    ...(cred.channelId ? { channelId: cred.channelId } : {}),
    ...(cred.categoryMap ? { categoryMap: cred.categoryMap } : {}),
    ...(cred.callbackUrl ? { callbackUrl: cred.callbackUrl.replace(/\?.*$/, '') } : {}),
    ...(cred.qps ? { qps: cred.qps } : {}),
  }),
  create: (cred, ctx) => new XiaomiProvider(cred, ctx),
  // Xiaomi does not sign receipts (none documented); the per-app URL secret is the check.
  receipts: { parse: parseXiaomiReceipt },
  // The lowest documented tier (500 for <100k daily online devices); `qps` raises it.
  qps: (cred) => cred.qps ?? 500,
} satisfies ProviderModule<XiaomiCredential>;

export default xiaomi;
