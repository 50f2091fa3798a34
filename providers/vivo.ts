import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  CredentialError,
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
import { notificationOnly, refuse, type Built } from './shared/built.js';
import { fill, sendInChunks, unsendable } from './shared/batches.js';
import { msUntilChinaMidnight } from './shared/china-time.js';
import { clickTarget } from './shared/click.js';
import { remainingTtlSeconds } from './shared/expiry.js';
import { networkRetry, outcomeForHttpStatus, redactUrl, retryAfterMs, vendorFetchJson, type VendorFetchResult } from './shared/http.js';
import { notifyIdFrom } from './shared/ids.js';
import { clip, deepMerge, isRecord } from './shared/json.js';
import { createLimiter } from './shared/limiter.js';
import { categoryMapSchema, messageClass, type BuiltinClass, vendorMessageClassSchema } from './shared/message-class.js';
import { oppoVivoCategory } from './shared/oppo-vivo-categories.js';
import { epochMs, parseJsonBody } from './shared/receipts.js';
import { relayDataStrings } from './shared/relay-keys.js';
import { VendorAuthError, acquireTokenCache, callWithToken, type TokenCache, authErrorFromStatus } from './shared/token-cache.js';

/**
 * vivo push server API (v2.9.2; docs/providers/oppo-vivo-meizu.md):
 * - auth: `POST /message/auth` JSON `{appId, appKey, timestamp (ms), sign = md5(appId + appKey + timestamp + appSecret)}`
 *   → `authToken` (24 h; vivo asks for central caching and a refresh every 1–2 h). Other calls send
 *   it in the `authToken` header.
 * - one token: `POST /message/send`; 2..1000 tokens: `POST /message/saveListPayload` (the message
 *   without `regId`) → `taskId`, then `POST /message/pushToList {appId, regIds, taskId, requestId}`,
 *   whose `invalidUsers` list the dead tokens. vivo has no pass-through message.
 *
 * One file on purpose (one concept: vivo's wire protocol): its auth, message, answers and
 * receipts are vivo's alone; what vendors share lives in providers/shared/.
 */

export const VIVO_DEFAULT_ENDPOINT = 'https://api-push.vivo.com.cn';
export const VIVO_BATCH_MAX = 1000;
/** `timeToLive`: 60 s .. 1 day in v2.9.2 (older docs allowed 7 days: the shorter bound is safe for both). */
export const VIVO_MIN_TTL = 60;
export const VIVO_MAX_TTL = 86_400;
/** vivo allows 24 h per token but asks for a refresh every 1–2 h: we treat tokens as 2 h tokens. */
const TOKEN_LIFETIME_S = 2 * 3600;
const CONCURRENCY = 8;
/** `title` / `content` are weighted lengths (see `truncateWeighted`): 40 = 20 Chinese characters, 100 = 50. */
const LIMITS = { title: 40, content: 100, skipContent: 1024, customPairs: 10, customChars: 1024, callback: 128, callbackParam: 64 };

export const VIVO_CODES = {
  ok: 0,
  /**
   * "auth failed" on a send. The notes have no code for an expired authToken (❓); one Node SDK
   * refreshes and retries on 10000, so that is what triggers the single refresh here.
   */
  authInvalid: 10000,
  dailyLimit: 10070,
  /** The day's saveListPayload count is used up (VVDOC: do not call saveListPayload again that day). */
  batchCount: 10252,
  authRateLimit: 10250,
  invalidRegId: 10302,
} as const;

/** vivo's built-in class: the category list it shares with OPPO, and `classification` (0 operation, 1 system). */
export const vivoClass: BuiltinClass = (cat, kind) => ({ ...oppoVivoCategory(cat), classification: kind === 'marketing' ? 0 : 1 });

export const vivoCredentialSchema = z.object({
  appId: z.string().min(1),
  appKey: z.string().min(1),
  appSecret: z.string().min(1),
  /** Optional per-app overrides of the neutral category → vivo classification/category mapping. */
  categoryMap: categoryMapSchema.optional(),
  /** Optional: Relay's receipt URL for this app, sent as `extra.callback` (≤ 128 chars). */
  callbackUrl: z.string().url().optional(),
  /** Optional: a receipt id configured in vivo's console (`extra.callback.id`, takes precedence over the URL). */
  callbackId: z.string().min(1).optional(),
  /** Optional: send with `pushMode: 1` (test devices only; outside the daily quota). */
  testMode: z.boolean().optional(),
  /** Optional: the granted QPS (3000 / 4000 / 5000 by user count). */
  qps: z.number().int().positive().optional(),
});
export type VivoCredential = z.infer<typeof vivoCredentialSchema>;

/** `overrides.vivo`: message-class fields, a few vivo knobs, then raw body fields merged last. */
export const vivoOverridesSchema = z
  .object({
    kind: vendorMessageClassSchema.shape.kind,
    category: vendorMessageClassSchema.shape.category,
    classification: vendorMessageClassSchema.shape.classification,
    /** 1 none, 2 ring, 3 vibrate, 4 ring + vibrate. */
    notifyType: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]).optional(),
    /** -1 any network, 1 Wi-Fi only. */
    networkType: z.union([z.literal(-1), z.literal(1)]).optional(),
    /** Raw vivo message fields (camelCase, as vivo documents them), merged over Relay's. */
    message: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type VivoOverrides = z.infer<typeof vivoOverridesSchema>;

export function vivoSign(appId: string, appKey: string, timestamp: string, appSecret: string): string {
  return createHash('md5').update((appId + appKey + timestamp + appSecret).trim(), 'utf8').digest('hex');
}

/**
 * The appId as vivo's JSON wants it. The doc's sample has a number (`"appId":10004`) and vivo's
 * Java SDK an int; the notes do not say whether a string is accepted (❓), so a numeric id goes
 * out as a number, anything else as given.
 */
export function vivoAppIdValue(appId: string): number | string {
  return /^\d{1,15}$/.test(appId) ? Number(appId) : appId;
}


/**
 * Cuts `s` to `max` in vivo's weighting: VVDOC counts "一个汉字等于两个英文字符". Only ASCII is
 * known to count 1, so every other code point counts 2 (a cut too short beats a 10056). Iterating
 * by code point never splits a surrogate pair.
 */
export function truncateWeighted(s: string, max: number): string {
  let used = 0;
  let out = '';
  for (const ch of s) {
    used += ch.codePointAt(0)! < 0x80 ? 1 : 2;
    if (used > max) return out;
    out += ch;
  }
  return s;
}


/** The vivo message body without `regId` / `requestId` (saveListPayload shape). */
export function buildVivoMessage(
  content: PushContent,
  cred: Pick<VivoCredential, 'appId' | 'categoryMap' | 'callbackUrl' | 'callbackId' | 'testMode'>,
  overrides: VivoOverrides = {},
  now = Date.now(),
): Built<Record<string, unknown>> {
  const n = content.notification ?? {};
  const texts = notificationOnly(n, 'vivo', 'title and content');
  if (!texts.ok) return texts;
  const { title, body } = texts.value;
  const custom = relayDataStrings(content);
  const customChars = JSON.stringify(custom).length;
  if (Object.keys(custom).length > LIMITS.customPairs || customChars > LIMITS.customChars) {
    return refuse({
      code: RELAY_CODES.payloadTooLarge,
      message: `vivo clientCustomMap allows ${LIMITS.customPairs} pairs and ${LIMITS.customChars} chars (relay_id included); got ${Object.keys(custom).length} pairs, ${customChars} chars`,
      evidence: { pairs: Object.keys(custom).length, chars: customChars },
    });
  }
  const remaining = remainingTtlSeconds(content.expiresAt, { now, max: VIVO_MAX_TTL });
  const msg: Record<string, unknown> = {
    appId: vivoAppIdValue(cred.appId),
    notifyType: overrides.notifyType ?? (content.options.priority === 'high' ? 4 : 2),
    title: truncateWeighted(title, LIMITS.title),
    content: truncateWeighted(body, LIMITS.content),
    // vivo refuses less than 60 s; a message with less left is sent with 60 s (at most 59 s late).
    timeToLive: Math.max(VIVO_MIN_TTL, remaining),
    networkType: overrides.networkType ?? -1,
    clientCustomMap: custom,
    pushMode: cred.testMode ? 1 : 0,
  };
  const click = clickTarget(n.clickAction);
  if (click.kind !== 'app') {
    const target = click.kind === 'url' ? click.url : click.uri;
    // skipContent: ≤ 1024 in v2.9.2, ≤ 2048 in MLV; the smaller bound is safe for both.
    if (target.length > LIMITS.skipContent) return refuse({ code: RELAY_CODES.payloadTooLarge, message: `clickAction longer than ${LIMITS.skipContent} chars` });
    // 2 = open a URL; 4 = open an in-app page by intent URI (3, "custom", is deprecated).
    Object.assign(msg, { skipType: click.kind === 'url' ? 2 : 4, skipContent: target });
  } else {
    msg.skipType = 1;
  }
  const cls = messageClass(vivoClass, content.options.category, cred.categoryMap, {
    kind: overrides.kind,
    category: overrides.category,
    classification: overrides.classification,
  });
  // The default `classification` is disputed (0 in MOD, 1 in MLV: ❓). With no category, Relay
  // sends none and lets vivo apply its own default, like every other vendor; a category always
  // sends both fields so they cannot mismatch (10097).
  if (cls) {
    const classification = cls.classification ?? (cls.kind === 'marketing' ? 0 : 1);
    msg.classification = classification;
    if (cls.category) msg.category = cls.category;
  }
  if (content.options.collapseKey) msg.notifyId = notifyIdFrom(content.options.collapseKey);
  const extra: Record<string, string> = {};
  if (cred.callbackId) extra['callback.id'] = cred.callbackId;
  if (cred.callbackUrl) extra.callback = cred.callbackUrl;
  // callback.param: ≤ 64 in v2.9.2, ≤ 192 in MLV: sent only when the id fits the smaller bound.
  if ((cred.callbackId || cred.callbackUrl) && content.messageId.length <= LIMITS.callbackParam) extra['callback.param'] = content.messageId;
  if (Object.keys(extra).length) msg.extra = extra;
  return { ok: true, value: deepMerge(msg, overrides.message) };
}

/** Classifies a vivo `result` code that is not 0 (VVDOC table). */
export function classifyVivoResult(result: number, desc: string, evidence: Record<string, unknown>, now = Date.now()): Outcome {
  const reason: OutcomeReason = { code: String(result), message: desc || `vivo result ${result}`, evidence };
  switch (result) {
    case VIVO_CODES.ok:
      return sent();
    case VIVO_CODES.invalidRegId:
      return invalid(reason);
    case VIVO_CODES.dailyLimit:
      // The app's daily total (docs/quota-days.md): failed `quota` now, and the app skips vivo
      // until 00:00 China time. Nothing waits to be sent at midnight.
      return quotaDay(reason, now + msUntilChinaMidnight(now));
    case VIVO_CODES.batchCount:
      // The daily saveListPayload count: batches wait for the reset, single sends go on.
      return retry(reason, msUntilChinaMidnight(now));
    case VIVO_CODES.authRateLimit:
      return retry(reason);
    default:
      // 10000 after the one refresh, 10094 appId mismatch, 10096/10097 category errors, 10050–10056
      // body errors, 10200–10207 credential errors. No retry fixes them.
      return failed(reason);
  }
}

/** One entry of `invalidUser` / `invalidUsers` → an outcome. */
export function vivoInvalidUserOutcome(status: number, userid: string, evidence: Record<string, unknown>): Outcome {
  const msgs: Record<number, string> = {
    1: 'vivo: regId does not exist',
    2: 'vivo: app uninstalled, unsubscribed or data cleared',
    3: 'vivo: device offline for 90 days',
  };
  if (status === 4) return failed({ code: 'not_test_user', message: 'vivo: not a test device (pushMode 1)', evidence: { ...evidence, status, userid } });
  const m = msgs[status];
  // Status 3 comes from one SDK only (⚠️); it and 1/2 mean the token is dead. Unknown statuses fail
  // rather than quarantine a token on a guess.
  if (m) return invalid({ code: String(VIVO_CODES.invalidRegId), message: m, evidence: { ...evidence, status, userid } });
  return failed({ code: `invalidUser_${status}`, message: `vivo listed the target as invalid with unknown status ${status}`, evidence: { ...evidence, status, userid } });
}

function resultOf(res: VendorFetchResult): { result?: number; desc: string; body: Record<string, unknown> } {
  const body = res.ok && isRecord(res.json) ? res.json : {};
  const r = body.result;
  const result = typeof r === 'number' ? r : typeof r === 'string' && /^-?\d+$/.test(r) ? Number(r) : undefined;
  return { ...(result !== undefined ? { result } : {}), desc: typeof body.desc === 'string' ? body.desc : '', body };
}

const isAuthRejected = (res: VendorFetchResult): boolean => res.ok && (res.status === 401 || resultOf(res).result === VIVO_CODES.authInvalid);

/** The list of dead targets in an answer; vivo spells it `invalidUser` (single) and `invalidUsers` (list): both accepted. */
function invalidUsersOf(body: Record<string, unknown>): { status: number; userid: string }[] {
  const raw = body.invalidUsers ?? body.invalidUser;
  const list = Array.isArray(raw) ? raw : isRecord(raw) ? [raw] : [];
  return list.filter(isRecord).flatMap((u) => (typeof u.userid === 'string' ? [{ status: Number(u.status), userid: u.userid }] : []));
}

/** Outcomes for a send / pushToList answer. `taskId` is the saved payload's id for list pushes. */
export function parseVivoSendAnswer(res: VendorFetchResult, regIds: readonly string[], taskId?: string, now = Date.now()): Outcome[] {
  if (!res.ok) return fill(regIds.length, networkRetry(res));
  const { result, desc, body } = resultOf(res);
  const evidence = { status: res.status, body: clip(res.json ?? res.text, 1000) };
  if (result === undefined) {
    return fill(regIds.length, outcomeForHttpStatus(res.status, res.headers, { code: httpStatusCode(res.status), message: 'vivo answered without a result code', evidence }));
  }
  const id = typeof body.taskId === 'string' || typeof body.taskId === 'number' ? String(body.taskId) : taskId;
  const dead = new Map(invalidUsersOf(body).map((u) => [u.userid, u.status]));
  if (result === VIVO_CODES.invalidRegId && dead.size === 0 && regIds.length > 1) {
    // Which of several targets is dead is known only from `invalidUsers`; a list answer naming
    // none must not quarantine every token on it.
    return fill(regIds.length, failed({ code: String(result), message: desc || `vivo result ${result}`, evidence }));
  }
  if (result === VIVO_CODES.ok || (result === VIVO_CODES.invalidRegId && dead.size > 0)) {
    return regIds.map((regId) => {
      const status = dead.get(regId);
      if (status !== undefined) return vivoInvalidUserOutcome(status, regId, { result, desc });
      if (result === VIVO_CODES.ok) return sent(id);
      // 10302 naming other targets: this one was not accepted either; try again.
      return retry({ code: String(result), message: 'vivo refused the list because of other targets', evidence });
    });
  }
  const o = classifyVivoResult(result, desc, evidence, now);
  const after = retryAfterMs(res.headers);
  return fill(regIds.length, o.kind === 'retry' && o.afterMs === undefined && after !== undefined ? retry(o.reason, after) : o);
}

class VivoProvider implements Provider {
  readonly channel = 'vivo' as const;
  private readonly limit = createLimiter(CONCURRENCY);
  private readonly endpoint: string;
  private readonly cache: TokenCache;
  private readonly release: () => void;
  private closed = false;
  /**
   * Until when (ms epoch) batches are not sent: set by a 10252, which uses up the day's
   * saveListPayload count for this credential. Kept per instance; a restart just meets one more 10252.
   */
  private listsCappedUntil = 0;

  constructor(
    private readonly cred: VivoCredential,
    private readonly ctx: ProviderContext,
  ) {
    this.endpoint = endpointOf(ctx, VIVO_ENDPOINTS, 'vivo').replace(/\/+$/, '');
    const held = acquireTokenCache(['vivo', this.endpoint, cred.appId, cred.appKey, cred.appSecret], () => this.fetchToken(), {
      defaultLifetimeSec: TOKEN_LIFETIME_S,
    });
    this.cache = held.cache;
    this.release = held.release;
  }

  private async fetchToken(): Promise<{ token: string; expiresInSec: number }> {
    const timestamp = Date.now();
    const res = await vendorFetchJson(`${this.endpoint}/message/auth`, {
      appId: vivoAppIdValue(this.cred.appId),
      appKey: this.cred.appKey,
      timestamp,
      sign: vivoSign(this.cred.appId, this.cred.appKey, String(timestamp), this.cred.appSecret),
    });
    if (!res.ok) throw new VendorAuthError(res.reason, true, res.afterMs);
    const { result, desc, body } = resultOf(res);
    const evidence = { status: res.status, body: clip(res.json ?? res.text, 500) };
    if (result === VIVO_CODES.ok && typeof body.authToken === 'string' && body.authToken) {
      return { token: body.authToken, expiresInSec: TOKEN_LIFETIME_S };
    }
    if (result === undefined) {
      throw authErrorFromStatus(res, 'vivo auth answered without a result code', evidence);
    }
    // 10250: more than 10 auth calls per second; the rest (10200–10207) are credential errors.
    throw new VendorAuthError({ code: String(result), message: `vivo auth failed: ${desc}`.trim(), evidence }, result === VIVO_CODES.authRateLimit);
  }

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    const early = unsendable(content, targets.length, this.closed ? 'vivo' : undefined);
    if (early) return early;
    const built = buildVivoMessage(content, this.cred, channelOverrides<VivoOverrides>(content, 'vivo'));
    if (!built.ok) return fill(targets.length, built.outcome);
    const message = built.value;
    return sendInChunks(
      targets.map((t) => t.token),
      VIVO_BATCH_MAX,
      this.limit,
      (regIds) => (regIds.length === 1 ? this.sendSingle(message, regIds[0]!) : this.sendList(message, regIds)),
      this.ctx.logger,
    );
  }

  private headers(token: string): Record<string, string> {
    return { authToken: token };
  }

  private async sendSingle(message: Record<string, unknown>, regId: string): Promise<Outcome[]> {
    try {
      const { result, authRejected } = await callWithToken(
        this.cache,
        // requestId must be unique; a fresh one per request (as vivo's Node SDK does) never collides.
        (token) => vendorFetchJson(`${this.endpoint}/message/send`, { ...message, regId, requestId: randomUUID() }, { headers: this.headers(token) }),
        isAuthRejected,
      );
      if (authRejected) return [this.authFailed(result)];
      return parseVivoSendAnswer(result, [regId]);
    } catch (err) {
      if (err instanceof VendorAuthError) return [err.toOutcome()];
      throw err;
    }
  }

  private async sendList(message: Record<string, unknown>, regIds: string[]): Promise<Outcome[]> {
    const capped = this.listCap();
    if (capped) return fill(regIds.length, capped);
    type Step = { res: VendorFetchResult; taskId?: string; saved: boolean };
    try {
      const { result, authRejected } = await callWithToken<Step>(
        this.cache,
        async (token) => {
          // One saved payload per chunk: whether a taskId may serve several pushToList calls is not documented.
          const save = await vendorFetchJson(`${this.endpoint}/message/saveListPayload`, { ...message, requestId: randomUUID() }, { headers: this.headers(token) });
          const saved = resultOf(save);
          const taskId = saved.body.taskId;
          if (!save.ok || saved.result !== VIVO_CODES.ok || (typeof taskId !== 'string' && typeof taskId !== 'number')) return { res: save, saved: false };
          const push = await vendorFetchJson(
            `${this.endpoint}/message/pushToList`,
            { appId: vivoAppIdValue(this.cred.appId), regIds, taskId: String(taskId), requestId: randomUUID(), pushMode: message.pushMode ?? 0 },
            { headers: this.headers(token) },
          );
          return { res: push, taskId: String(taskId), saved: true };
        },
        (step) => isAuthRejected(step.res),
      );
      if (authRejected) return fill(regIds.length, this.authFailed(result.res));
      const r = resultOf(result.res);
      if (result.res.ok && r.result === VIVO_CODES.batchCount) this.listsCappedUntil = Date.now() + msUntilChinaMidnight();
      if (!result.saved) {
        // saveListPayload failed: nothing was sent, the answer applies to every target alike (a
        // 10302 here names no target: parseVivoSendAnswer fails the list, as for pushToList).
        if (result.res.ok && r.result === VIVO_CODES.ok) {
          return fill(regIds.length, retry({ code: 'no_taskId', message: 'vivo saveListPayload answered without taskId', evidence: { body: clip(result.res.json) } }));
        }
        return parseVivoSendAnswer(result.res, regIds);
      }
      return parseVivoSendAnswer(result.res, regIds, result.taskId);
    } catch (err) {
      if (err instanceof VendorAuthError) return fill(regIds.length, err.toOutcome());
      throw err;
    }
  }

  /** The retry for a batch while the day's saveListPayload count is used up, else undefined. */
  private listCap(): Outcome | undefined {
    const left = this.listsCappedUntil - Date.now();
    if (left <= 0) return undefined;
    return retry(
      {
        code: String(VIVO_CODES.batchCount),
        message: 'vivo: the daily saveListPayload count is used up (10252); batches wait for 00:00 China time',
        evidence: { cappedUntil: new Date(this.listsCappedUntil).toISOString() },
      },
      left,
    );
  }

  private authFailed(res: VendorFetchResult): Outcome {
    return failed({ code: String(VIVO_CODES.authInvalid), message: 'vivo rejected a freshly issued authToken', evidence: { body: res.ok ? clip(res.json ?? res.text, 500) : undefined } });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.release();
  }
}

/**
 * vivo receipt body (MYA sample): a JSON object keyed by taskId,
 * `{"<taskId>": {"param": "<callback.param>", "targets": "regId1,regId2", "ackTime"?, "ackType"?}}`.
 * `ackType` "0" = delivered (DOO ⚠️); other values are not documented (❓) and are not reported.
 */
export function parseVivoReceipt(req: ReceiptRequest): ReceiptEvent[] {
  const body = parseJsonBody(req.rawBody, 'vivo');
  if (!isRecord(body)) throw new Error('vivo receipt: expected a JSON object keyed by taskId');
  const events: ReceiptEvent[] = [];
  for (const [taskId, v] of Object.entries(body)) {
    if (!isRecord(v)) throw new Error(`vivo receipt: entry ${taskId} is not an object`);
    const t = v.targets;
    const tokens = typeof t === 'string' ? t.split(',') : Array.isArray(t) ? t.map(String) : undefined;
    if (!tokens) throw new Error(`vivo receipt: entry ${taskId} has no targets`);
    if (v.ackType !== undefined && v.ackType !== null && String(v.ackType) !== '0') continue;
    const messageId = typeof v.param === 'string' && v.param ? v.param : undefined;
    const at = epochMs(v.ackTime);
    for (const token of tokens.map((s) => s.trim()).filter(Boolean)) {
      events.push({ event: 'delivered', providerId: taskId, token, ...(messageId ? { messageId } : {}), ...(at ? { at } : {}) });
    }
  }
  return events;
}

export const VIVO_ENDPOINTS = {
  vivo: { env: 'VIVO_ENDPOINT', default: VIVO_DEFAULT_ENDPOINT, doc: 'vivo push API' },
} as const satisfies Record<string, EndpointSetting>;

const vivoModule = {
  channel: 'vivo' as const,
  androidBrand: true as const,
  wantsCallbackUrl: true as const,
  endpoints: VIVO_ENDPOINTS,
  marketingDailyCap: 2,
  overridesSchema: vivoOverridesSchema,
  batchMax: VIVO_BATCH_MAX,
  credentialSchema: vivoCredentialSchema,
  checkCredential(cred) {
    if (cred.callbackUrl && cred.callbackUrl.length > LIMITS.callback) {
      throw new CredentialError('callbackUrl', `vivo extra.callback is limited to ${LIMITS.callback} characters`);
    }
  },
  describe(cred) {
    return {
      appId: cred.appId,
      appKey: cred.appKey,
      ...(cred.categoryMap ? { categoryMap: cred.categoryMap } : {}),
      ...(cred.callbackUrl ? { callbackUrl: redactUrl(cred.callbackUrl) } : {}),
      ...(cred.callbackId ? { callbackId: cred.callbackId } : {}),
      ...(cred.testMode ? { testMode: true } : {}),
      ...(cred.qps ? { qps: cred.qps } : {}),
    };
  },
  create(cred, ctx) {
    return new VivoProvider(cred, ctx);
  },
  receipts: { parse: parseVivoReceipt },
  qps: (cred) => cred.qps ?? 3000,
} satisfies ProviderModule<VivoCredential>;

export default vivoModule;
