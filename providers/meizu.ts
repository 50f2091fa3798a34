import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  CredentialError,
  failed,
  invalid,
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
import { type Built } from './shared/built.js';
import { fill, sendInChunks, unsendable } from './shared/batches.js';
import { clickTarget } from './shared/click.js';
import { remainingTtlSeconds } from './shared/expiry.js';
import { networkRetry, outcomeForHttpStatus, redactUrl, retryAfterMs, vendorFetchForm, type VendorFetchResult } from './shared/http.js';
import { shortIdFrom } from './shared/ids.js';
import { clip, deepMerge, isRecord } from './shared/json.js';
import { createLimiter } from './shared/limiter.js';
import { categoryMapSchema, messageClass, type BuiltinClass, vendorMessageClassSchema } from './shared/message-class.js';
import { parseJsonBody } from './shared/receipts.js';
import { relayDataStrings } from './shared/relay-keys.js';
import { truncateChars, utf8Bytes, notificationTexts } from './shared/text.js';

/**
 * Meizu (Flyme) push server API (Meizu's API doc; docs/providers/oppo-vivo-meizu.md). No access token: every request is signed,
 * `sign = md5(k1=v1k2=v2… (params sorted by name, raw values) + appSecret)`. Notifications go to
 * `POST /garcia/api/server/push/varnished/pushByPushId` (form `appId, pushIds (≤ 100, comma-separated),
 * messageJson, sign`); the answer lists only the failed pushIds, keyed by per-id code.
 */

export const MEIZU_DEFAULT_ENDPOINT = 'https://server-api-push.meizu.com';
export const MEIZU_PUSH_PATH = '/garcia/api/server/push/varnished/pushByPushId';
export const MEIZU_BATCH_MAX = 100;
/** `pushTimeInfo.validTime` is in hours, 1..72. */
export const MEIZU_MAX_VALID_HOURS = 72;
const CONCURRENCY = 4;
const LIMITS = { title: 32, content: 100, notifyKey: 8, callbackBytes: 128, callbackParamBytes: 64 };

/** Meizu's built-in class: `noticeMsgType` 0 公信 (marketing) or 1 私信 (service). */
export const meizuClass: BuiltinClass = (_cat, kind) => ({ noticeMsgType: kind === 'marketing' ? 0 : 1 });

export const meizuCredentialSchema = z.object({
  appId: z.string().min(1),
  appSecret: z.string().min(1),
  /** Optional per-app overrides of the neutral category → Meizu `noticeMsgType` mapping. */
  categoryMap: categoryMapSchema.optional(),
  /** Optional: Relay's receipt URL for this app, sent as `extra.callback` (≤ 128 bytes; also register it in Meizu's console). */
  callbackUrl: z.string().url().optional(),
  /** Optional: the granted QPS (200 by default). */
  qps: z.number().int().positive().optional(),
});
export type MeizuCredential = z.infer<typeof meizuCredentialSchema>;

/** `overrides.meizu`: message-class fields, then raw `messageJson` fields merged last. */
export const meizuOverridesSchema = z
  .object({
    kind: vendorMessageClassSchema.shape.kind,
    /** 0 公信 (public / marketing), 1 私信 (private / service). */
    noticeMsgType: vendorMessageClassSchema.shape.noticeMsgType,
    /** Raw `messageJson` fields (noticeBarInfo, advanceInfo, …), merged over Relay's. */
    messageJson: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type MeizuOverrides = z.infer<typeof meizuOverridesSchema>;

/** MZDOC sign: params sorted by name, `k=v` concatenated without separators, then the appSecret; md5 lowercase hex. */
export function meizuSign(params: Record<string, string>, appSecret: string): string {
  const text = Object.keys(params)
    .filter((k) => k !== 'sign')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('');
  return createHash('md5').update(text + appSecret, 'utf8').digest('hex');
}



export function buildMeizuMessage(
  content: PushContent,
  cred: Pick<MeizuCredential, 'categoryMap' | 'callbackUrl'>,
  overrides: MeizuOverrides = {},
  now = Date.now(),
): Built<Record<string, unknown>> {
  const n = content.notification ?? {};
  // title and content are both 1.. characters: a blank one is taken from the other.
  const texts = notificationTexts(n);
  if (!texts) {
    // Pass-through (unvarnished) messages are restricted by Meizu since 2018-06-16.
    return { ok: false, outcome: failed({ code: RELAY_CODES.dataOnlyUnsupported, message: 'Meizu carries notifications only (title and content); data-only messages cannot be sent' }) };
  }
  const { title, body } = texts;
  const cls = messageClass(meizuClass, content.options.category, cred.categoryMap, { kind: overrides.kind, noticeMsgType: overrides.noticeMsgType });
  const noticeBarInfo: Record<string, unknown> = {
    noticeBarType: 0,
    title: truncateChars(title, LIMITS.title),
    content: truncateChars(body, LIMITS.content),
  };
  if (cls) noticeBarInfo.noticeMsgType = cls.noticeMsgType ?? (cls.kind === 'marketing' ? 0 : 1);
  const click = clickTarget(n.clickAction);
  const clickTypeInfo: Record<string, unknown> = {
    // 0 opens the app; 2 opens a URI (web URL or app deep link). The extras ride in `parameters`.
    clickType: click.kind === 'app' ? 0 : 2,
    ...(click.kind === 'url' ? { url: click.url } : click.kind === 'intent' ? { url: click.uri } : {}),
    parameters: relayDataStrings(content),
  };
  // validTime is whole hours (1..72). Rounded down so the message never outlives its TTL by an
  // hour, except that one hour is the minimum Meizu accepts.
  const hours = Math.max(1, Math.min(MEIZU_MAX_VALID_HOURS, Math.floor(remainingTtlSeconds(content.expiresAt, { now }) / 3600)));
  const advanceInfo: Record<string, unknown> = { suspend: content.options.priority === 'high' ? 1 : 0, clearNoticeBar: 1 };
  if (content.options.collapseKey) advanceInfo.notifyKey = shortIdFrom(content.options.collapseKey, LIMITS.notifyKey);
  const msg: Record<string, unknown> = {
    noticeBarInfo,
    clickTypeInfo,
    pushTimeInfo: { offLine: 1, validTime: hours },
    advanceInfo,
  };
  if (cred.callbackUrl) {
    const extra: Record<string, unknown> = { callback: cred.callbackUrl, 'callback.type': 3 };
    if (utf8Bytes(content.messageId) <= LIMITS.callbackParamBytes) extra['callback.param'] = content.messageId;
    msg.extra = extra;
  }
  return { ok: true, value: deepMerge(msg, overrides.messageJson) };
}

/** Top-level codes (the request as a whole). */
export function classifyMeizuTop(code: number, message: string, evidence: Record<string, unknown>): Outcome {
  const reason: OutcomeReason = { code: String(code), message: message || `Meizu code ${code}`, evidence };
  switch (code) {
    case 200:
      return sent();
    case 110010: // app request rate over the limit
    case 500: // other (server side)
    case 1001: // system error
    case 1003: // busy
      return retry(reason);
    case 110019: // app daily push count exceeded
    case 110051: // app count limit
      // ❓ Not in Meizu's current public code table (docs/quota-days.md): these deliveries fail
      // `quota` now, and Meizu is not skipped for the day on an unconfirmed reading. Never held to
      // be sent after midnight.
      return failed({ code: RELAY_CODES.quota, message: reason.message, evidence: { ...evidence, vendorCode: code } });
    default:
      // 1005 / 110004 parameters, 1006 sign, 110000 / 110001 / 110033 credentials, 110009 blacklisted…
      return failed(reason);
  }
}

/**
 * Per-pushId codes in `value`. Note 110010 means "rate too high" at the top level but "the user
 * switched messages off" per id.
 */
export function classifyMeizuTarget(code: number, evidence: Record<string, unknown>): Outcome {
  const reason = (message: string): OutcomeReason => ({ code: String(code), message, evidence });
  switch (code) {
    case 110002:
      return invalid(reason('Meizu: pushId unsubscribed'));
    case 110003:
      return invalid(reason('Meizu: pushId illegal'));
    case 110005:
      return invalid(reason('Meizu: alias invalid'));
    case 110011:
      return failed({ code: RELAY_CODES.quota, message: 'Meizu: daily 公信 limit reached for this device', evidence: { ...evidence, vendorCode: code } });
    case 501:
    case 513:
    case 519:
      return retry(reason('Meizu: send failed / overloaded'));
    case 520:
      // Collapsed: more than 5 messages per minute to the same device. Try again after that minute.
      return retry(reason('Meizu: more than 5 messages per minute to this device'), 60_000);
    case 110010:
      return failed(reason('Meizu: the user switched messages off'));
    case 201:
      return failed(reason('Meizu: no permission'));
    default:
      return failed(reason(`Meizu per-id code ${code}`));
  }
}

const num = (v: unknown): number | undefined =>
  typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : undefined;

export function parseMeizuSendAnswer(res: VendorFetchResult, pushIds: readonly string[]): Outcome[] {
  if (!res.ok) return fill(pushIds.length, networkRetry(res));
  const body = isRecord(res.json) ? res.json : {};
  const evidence = { status: res.status, body: clip(res.json ?? res.text, 1000) };
  // `code` is a string in MZDOC ("200"); a number is accepted too.
  const code = num(body.code);
  if (code === undefined) {
    return fill(pushIds.length, outcomeForHttpStatus(res.status, res.headers, { code: httpStatusCode(res.status), message: 'Meizu answered without a code', evidence }));
  }
  if (code !== 200) {
    const o = classifyMeizuTop(code, typeof body.message === 'string' ? body.message : '', evidence);
    const after = retryAfterMs(res.headers);
    return fill(pushIds.length, o.kind === 'retry' && o.afterMs === undefined && after !== undefined ? retry(o.reason, after) : o);
  }
  const msgId = typeof body.msgId === 'string' || typeof body.msgId === 'number' ? String(body.msgId) : undefined;
  const failedIds = new Map<string, number>();
  if (isRecord(body.value)) {
    for (const [k, ids] of Object.entries(body.value)) {
      const c = num(k);
      const list = Array.isArray(ids) ? ids.map(String) : typeof ids === 'string' ? ids.split(',') : [];
      if (c !== undefined) for (const id of list) if (!failedIds.has(id.trim())) failedIds.set(id.trim(), c);
    }
  }
  return pushIds.map((id) => {
    const c = failedIds.get(id);
    return c === undefined ? sent(msgId) : classifyMeizuTarget(c, { ...(msgId ? { msgId } : {}) });
  });
}

class MeizuProvider implements Provider {
  readonly channel = 'meizu' as const;
  private readonly limit = createLimiter(CONCURRENCY);
  private readonly endpoint: string;
  private closed = false;

  constructor(
    private readonly cred: MeizuCredential,
    private readonly ctx: ProviderContext,
  ) {
    this.endpoint = endpointOf(ctx, MEIZU_ENDPOINTS, 'meizu').replace(/\/+$/, '');
  }

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    const early = unsendable(content, targets.length, this.closed ? 'Meizu' : undefined);
    if (early) return early;
    const built = buildMeizuMessage(content, this.cred, channelOverrides<MeizuOverrides>(content, 'meizu'));
    if (!built.ok) return fill(targets.length, built.outcome);
    const messageJson = JSON.stringify(built.value);
    return sendInChunks(targets.map((t) => t.token), MEIZU_BATCH_MAX, this.limit, (ids) => this.sendChunk(messageJson, ids), this.ctx.logger);
  }

  private async sendChunk(messageJson: string, pushIds: string[]): Promise<Outcome[]> {
    const params: Record<string, string> = { appId: this.cred.appId, pushIds: pushIds.join(','), messageJson };
    params.sign = meizuSign(params, this.cred.appSecret);
    const res = await vendorFetchForm(`${this.endpoint}${MEIZU_PUSH_PATH}`, params);
    return parseMeizuSendAnswer(res, pushIds);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/**
 * Meizu receipt (MZDOC, MYA sample): a form POST with `cb` (a JSON string) and `access_token`:
 * `cb={"<msgId>-<type>":{"param":"…","type":1,"targets":["pushId",…]}}`; type 1 delivered, 2 clicked.
 */
export function parseMeizuReceipt(req: ReceiptRequest): ReceiptEvent[] {
  const form = new URLSearchParams(req.rawBody);
  const cb = form.get('cb');
  if (cb === null) throw new Error('Meizu receipt: form field cb is missing');
  const body = parseJsonBody(cb, 'Meizu');
  if (!isRecord(body)) throw new Error('Meizu receipt: cb must be a JSON object keyed by msgId-type');
  const events: ReceiptEvent[] = [];
  for (const [key, v] of Object.entries(body)) {
    if (!isRecord(v)) throw new Error(`Meizu receipt: entry ${key} is not an object`);
    const t = v.targets;
    const tokens = Array.isArray(t) ? t.map(String) : typeof t === 'string' ? t.split(',') : undefined;
    if (!tokens) throw new Error(`Meizu receipt: entry ${key} has no targets`);
    const dash = key.lastIndexOf('-');
    const suffix = dash > 0 ? key.slice(dash + 1) : '';
    const type = num(v.type) ?? num(suffix);
    const event = type === 1 ? 'delivered' : type === 2 ? 'opened' : undefined;
    if (!event) continue;
    // The outer key is `<msgId>-<type>`; strip the suffix to get the msgId the send answered.
    const providerId = dash > 0 && /^\d+$/.test(suffix) ? key.slice(0, dash) : key;
    const messageId = typeof v.param === 'string' && v.param ? v.param : undefined;
    for (const token of tokens.map((s) => s.trim()).filter(Boolean)) {
      events.push({ event, providerId, token, ...(messageId ? { messageId } : {}) });
    }
  }
  return events;
}

export const MEIZU_ENDPOINTS = {
  meizu: { env: 'MEIZU_ENDPOINT', default: MEIZU_DEFAULT_ENDPOINT, doc: 'Meizu push API' },
} as const satisfies Record<string, EndpointSetting>;

const meizuModule = {
  channel: 'meizu' as const,
  androidBrand: true as const,
  wantsCallbackUrl: true as const,
  endpoints: MEIZU_ENDPOINTS,
  marketingDailyCap: 3,
  overridesSchema: meizuOverridesSchema,
  batchMax: MEIZU_BATCH_MAX,
  credentialSchema: meizuCredentialSchema,
  checkCredential(cred) {
    if (cred.callbackUrl && utf8Bytes(cred.callbackUrl) > LIMITS.callbackBytes) {
      throw new CredentialError('callbackUrl', `Meizu extra.callback is limited to ${LIMITS.callbackBytes} bytes`);
    }
  },
  describe(cred) {
    return {
      appId: cred.appId,
      ...(cred.categoryMap ? { categoryMap: cred.categoryMap } : {}),
      ...(cred.callbackUrl ? { callbackUrl: redactUrl(cred.callbackUrl) } : {}),
      ...(cred.qps ? { qps: cred.qps } : {}),
    };
  },
  create(cred, ctx) {
    return new MeizuProvider(cred, ctx);
  },
  receipts: { parse: parseMeizuReceipt },
  qps: (cred) => cred.qps ?? 200,
} satisfies ProviderModule<MeizuCredential>;

export default meizuModule;
