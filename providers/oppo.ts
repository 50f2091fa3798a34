import { createHash } from 'node:crypto';
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
import { networkRetry, outcomeForHttpStatus, redactUrl, retryAfterMs, vendorFetchForm, type VendorFetchResult } from './shared/http.js';
import { notifyIdFrom } from './shared/ids.js';
import { clip, deepMerge, isRecord } from './shared/json.js';
import { createLimiter } from './shared/limiter.js';
import { categoryMapSchema, messageClass, type BuiltinClass, vendorMessageClassSchema } from './shared/message-class.js';
import { oppoVivoCategory } from './shared/oppo-vivo-categories.js';
import { epochMs, parseJsonBody } from './shared/receipts.js';
import { relayDataStrings } from './shared/relay-keys.js';
import { truncateChars } from './shared/text.js';
import { VendorAuthError, acquireTokenCache, callWithToken, type TokenCache, authErrorFromStatus } from './shared/token-cache.js';

/**
 * OPPO push (OPUSH / HeyTap), server API v1. Facts (with sources): docs/providers/oppo-vivo-meizu.md.
 * - auth: `POST /server/v1/auth` form `app_key, timestamp (ms), sign = hex(sha256(appKey + timestamp + masterSecret))`
 *   → `data.auth_token`, valid 24 h; every other call carries it in the form body.
 * - send: `unicast` (one target) and `unicast_batch` (≤ 1000 targets, per-target `errorCode` in
 *   `data[]`: the documented way to get one result per token). Broadcast (save_message_content +
 *   broadcast) reports invalid ids only in an undocumented `data["10000"]` key, so it is not used.
 * - notification only: OPPO has no pass-through message, so a message without title and body fails.
 *
 * One file on purpose (one concept: OPPO's wire protocol): its auth, message, answers and
 * receipts are OPPO's alone; what vendors share lives in providers/shared/.
 */

export const OPPO_DEFAULT_ENDPOINT = 'https://api.push.oppomobile.com';
/** Devices registered outside mainland China are served by this host (OPDOC-common). */
export const OPPO_INTL_ENDPOINT = 'https://api-intl.push.oppomobile.com';
export const OPPO_BATCH_MAX = 1000;
/** `off_line_ttl` is at most 10 days. */
export const OPPO_MAX_TTL = 10 * 86_400;
const TOKEN_LIFETIME_S = 24 * 3600;
const CONCURRENCY = 8;
const LIMITS = { title: 50, content: 50, longContent: 128, actionParameters: 4000, clickUrl: 2000, callbackUrl: 200, callbackParam: 100 };

export const OPPO_CODES = {
  ok: 0,
  flowControl: -2,
  unavailable: -1,
  authExpired: 11,
  callLimit: 13,
  dailyLimit: 33,
  frequency: 55,
  invalidRegId: 10000,
} as const;

/** OPPO's 通讯与服务 categories: 私信, which needs the app's registered private channel (docs/providers/oppo-vivo-meizu.md). */
const PRIVATE_CATEGORIES: readonly string[] = ['IM', 'ACCOUNT', 'TODO', 'DEVICE_REMINDER', 'ORDER', 'SUBSCRIPTION'];

/** OPPO's built-in class of a neutral category: the category list it shares with vivo. */
export const oppoClass: BuiltinClass = (cat) => oppoVivoCategory(cat);

export const oppoCredentialSchema = z.object({
  appKey: z.string().min(1),
  masterSecret: z.string().min(1),
  /**
   * Optional: the notification channel (Android 8+) registered by the app for service messages.
   * OPPO's 私信 (通讯与服务) class needs the app's registered private channel. Per-category
   * channels go in `categoryMap` (`{"im": {"channelId": "chat"}, "marketing": {"channelId": "promo"}}`).
   */
  channelId: z.string().min(1).max(200).optional(),
  /** Optional per-app overrides of the neutral category → OPPO class mapping (see providers/shared/message-class.ts). */
  categoryMap: categoryMapSchema.optional(),
  /** Optional: Relay's receipt URL for this app (`/v1/receipts/oppo/<app>?secret=…`), sent as `call_back_url`. */
  callbackUrl: z.string().url().optional(),
  /** Optional: the app's granted QPS (OPPO sizes it by user count; 5000 is the smallest documented tier). */
  qps: z.number().int().positive().optional(),
});
export type OppoCredential = z.infer<typeof oppoCredentialSchema>;

/** `overrides.oppo`: message-class fields, then raw OPPO notification fields merged last. */
export const oppoOverridesSchema = z
  .object({
    kind: vendorMessageClassSchema.shape.kind,
    category: vendorMessageClassSchema.shape.category,
    channelId: vendorMessageClassSchema.shape.channelId,
    /** 1 bar, 2 bar + lock screen, 16 bar + lock screen + banner + vibrate + ring (needs `category`). */
    notifyLevel: z.union([z.literal(1), z.literal(2), z.literal(16)]).optional(),
    /** Raw `notification` fields (snake_case, as OPPO's SDKs send them), merged over Relay's. */
    notification: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type OppoOverrides = z.infer<typeof oppoOverridesSchema>;

export function oppoSign(appKey: string, timestamp: string, masterSecret: string): string {
  return createHash('sha256').update(appKey + timestamp + masterSecret, 'utf8').digest('hex');
}

/**
 * Which host serves a registration id: split on `_`; 1 part → CN; 2 parts → CN when the first is
 * `CN`; 3 parts → CN when the second is `CN` (OPDOC-common). Anything else goes abroad.
 */
export function oppoIsChinaRegId(regId: string): boolean {
  const parts = regId.split('_');
  if (parts.length === 1) return true;
  if (parts.length === 2) return parts[0] === 'CN';
  if (parts.length === 3) return parts[1] === 'CN';
  return false;
}



/** The `notification` object of one OPPO message, or the failed outcome when OPPO cannot carry it. */
export function buildOppoNotification(
  content: PushContent,
  cred: Pick<OppoCredential, 'channelId' | 'categoryMap' | 'callbackUrl'>,
  overrides: OppoOverrides = {},
  now = Date.now(),
): Built<Record<string, unknown>> {
  const n = content.notification ?? {};
  const texts = notificationOnly(n, 'OPPO', 'title and body');
  if (!texts.ok) return texts;
  const { title, body } = texts.value;
  const extras = JSON.stringify(relayDataStrings(content));
  if (extras.length > LIMITS.actionParameters) {
    return refuse({ code: RELAY_CODES.payloadTooLarge, message: `OPPO action_parameters is ${extras.length} chars; max ${LIMITS.actionParameters}`, evidence: { chars: extras.length } });
  }
  const longText = Array.from(body).length > LIMITS.content;
  const out: Record<string, unknown> = {
    // Field names: OPPO's SDKs (MOD, MZS, MLV) send snake_case; the doc's example shows camelCase (❓).
    // We send snake_case, what real integrations send.
    title: truncateChars(title, LIMITS.title),
    content: truncateChars(body, longText ? LIMITS.longContent : LIMITS.content),
    style: longText ? 2 : 1,
    action_parameters: extras,
    // Server-side de-duplication: OPPO pushes the same app_message_id once per target, so a retry
    // of an attempt whose answer was lost cannot show the notification twice.
    app_message_id: content.messageId,
    off_line: true,
    off_line_ttl: remainingTtlSeconds(content.expiresAt, { now, max: OPPO_MAX_TTL }),
  };
  const click = clickTarget(n.clickAction);
  if (click.kind === 'url') {
    if (click.url.length > LIMITS.clickUrl) return refuse({ code: RELAY_CODES.payloadTooLarge, message: `clickAction longer than ${LIMITS.clickUrl} chars` });
    Object.assign(out, { click_action_type: 2, click_action_url: click.url });
  } else if (click.kind === 'intent') {
    // 5 = open an activity by intent scheme URI; the URI travels in click_action_url (❓: the notes
    // list type 5 but not its field; click_action_url is the field OPPO's SDKs fill for it).
    if (click.uri.length > LIMITS.clickUrl) return refuse({ code: RELAY_CODES.payloadTooLarge, message: `clickAction longer than ${LIMITS.clickUrl} chars` });
    Object.assign(out, { click_action_type: 5, click_action_url: click.uri });
  } else {
    out.click_action_type = 0;
  }
  const cls = messageClass(oppoClass, content.options.category, cred.categoryMap, {
    kind: overrides.kind,
    category: overrides.category,
    channelId: overrides.channelId,
  });
  const channelId = cls?.channelId ?? cred.channelId;
  if (channelId) out.channel_id = channelId;
  // 私信 needs the registered private channel (docs/providers/oppo-vivo-meizu.md); what OPPO does with a 私信 category
  // and no channel is not documented. Without a channel Relay sends neither category nor
  // notify_level (it needs a category): the message goes out as an ordinary public message.
  const privateWithoutChannel = !channelId && cls?.category !== undefined && PRIVATE_CATEGORIES.includes(cls.category);
  if (cls?.category && !privateWithoutChannel) {
    out.category = cls.category;
    // notify_level needs a category. Service messages ring only when the sender asked for high priority.
    out.notify_level = overrides.notifyLevel ?? (cls.kind === 'marketing' ? 1 : content.options.priority === 'high' ? 16 : 2);
  }
  // notify_id: the notes name the field (collapse / overwrite) but not its type (❓); an integer in
  // 1..2^31-1 is accepted by every integer or string reading.
  if (content.options.collapseKey) out.notify_id = notifyIdFrom(content.options.collapseKey);
  if (cred.callbackUrl) {
    out.call_back_url = cred.callbackUrl;
    if (content.messageId.length <= LIMITS.callbackParam) out.call_back_parameter = content.messageId;
  }
  return { ok: true, value: deepMerge(out, overrides.notification) };
}

export interface OppoAnswer {
  code?: number;
  message?: string;
}

/**
 * Classifies an OPPO return code (OPDOC-common). `scope` is `target` for a per-target `errorCode`
 * inside a batch answer: there a daily limit means this device's cap (failed `quota`), while at
 * the top level it is the app's daily total: failed `quota`, and the app skips OPPO until the
 * daily reset, China time (docs/quota-days.md).
 */
export function classifyOppoCode(code: number, message: string, evidence: Record<string, unknown>, scope: 'top' | 'target', now = Date.now()): Outcome {
  const reason: OutcomeReason = { code: String(code), message: message || `OPPO code ${code}`, evidence };
  switch (code) {
    case OPPO_CODES.ok:
      return sent();
    case OPPO_CODES.invalidRegId:
      return invalid(reason);
    case OPPO_CODES.flowControl:
    case OPPO_CODES.unavailable:
    case OPPO_CODES.callLimit:
    case OPPO_CODES.frequency:
      return retry(reason);
    case OPPO_CODES.dailyLimit:
      return scope === 'target'
        ? failed({ code: RELAY_CODES.quota, message: `OPPO daily limit for this device: ${reason.message}`, evidence: { ...evidence, vendorCode: code } })
        : quotaDay(reason, now + msUntilChinaMidnight(now));
    default:
      // 11 (auth) only gets here after the one refresh; 12–30 are credential / permission errors;
      // 31–67 argument errors; other 10000–20000 codes are business errors. None improve on retry.
      return failed(reason);
  }
}

function answerOf(res: VendorFetchResult): OppoAnswer | undefined {
  if (!res.ok || !isRecord(res.json)) return undefined;
  const code = res.json.code;
  const n = typeof code === 'number' ? code : typeof code === 'string' && /^-?\d+$/.test(code) ? Number(code) : undefined;
  return { ...(n !== undefined ? { code: n } : {}), ...(typeof res.json.message === 'string' ? { message: res.json.message } : {}) };
}

/** Outcomes for one send request's answer, in target order. */
export function parseOppoSendAnswer(res: VendorFetchResult, regIds: readonly string[], batch: boolean, now = Date.now()): Outcome[] {
  if (!res.ok) return fill(regIds.length, networkRetry(res));
  const body = isRecord(res.json) ? res.json : undefined;
  const evidence = { status: res.status, body: clip(res.json ?? res.text, 1000) };
  const ans = answerOf(res);
  if (ans?.code === undefined) {
    return fill(regIds.length, outcomeForHttpStatus(res.status, res.headers, { code: httpStatusCode(res.status), message: 'OPPO answered without a code', evidence }));
  }
  if (batch && ans.code === OPPO_CODES.invalidRegId) {
    // In a batch, invalid targets come back as rows (`errorCode` 10000); a top-level 10000 names
    // no target, so it must not quarantine every token of the batch.
    return fill(regIds.length, failed({ code: String(ans.code), message: ans.message || `OPPO code ${ans.code}`, evidence }));
  }
  if (ans.code !== OPPO_CODES.ok) {
    const o = classifyOppoCode(ans.code, ans.message ?? '', evidence, 'top', now);
    // A transient top-level answer that came with Retry-After keeps it.
    const after = retryAfterMs(res.headers);
    return fill(regIds.length, o.kind === 'retry' && after !== undefined && o.afterMs === undefined ? retry(o.reason, after) : o);
  }
  if (!batch) {
    const data = isRecord(body?.data) ? body.data : {};
    const id = typeof data.messageId === 'string' ? data.messageId : undefined;
    return [sent(id)];
  }
  const rows = Array.isArray(body?.data) ? body.data.filter(isRecord) : [];
  const byRegId = new Map<string, Record<string, unknown>>();
  for (const r of rows) if (typeof r.registrationId === 'string' && !byRegId.has(r.registrationId)) byRegId.set(r.registrationId, r);
  return regIds.map((regId) => {
    const row = byRegId.get(regId);
    if (!row) {
      // No row for this target. Safe to retry: app_message_id makes OPPO push it at most once.
      return retry({ code: RELAY_CODES.missingResult, message: 'OPPO batch answer has no row for this target', evidence });
    }
    const providerId = typeof row.messageId === 'string' ? row.messageId : undefined;
    const errorCode = row.errorCode === undefined || row.errorCode === null ? 0 : Number(row.errorCode);
    if (errorCode === 0 || Number.isNaN(errorCode)) return sent(providerId);
    const msg = typeof row.errorMessage === 'string' ? row.errorMessage : '';
    return classifyOppoCode(errorCode, msg, { errorCode, errorMessage: msg, ...(providerId ? { messageId: providerId } : {}) }, 'target', now);
  });
}

interface HostState {
  endpoint: string;
  cache: TokenCache;
  release: () => void;
}

class OppoProvider implements Provider {
  readonly channel = 'oppo' as const;
  private readonly limit = createLimiter(CONCURRENCY);
  private readonly hosts = new Map<string, HostState>();
  private closed = false;

  constructor(
    private readonly cred: OppoCredential,
    private readonly ctx: ProviderContext,
  ) {}

  /** The configured host for everything, unless it is OPPO's CN default and the device is abroad. */
  private hostFor(regId: string): HostState {
    const configured = endpointOf(this.ctx, OPPO_ENDPOINTS, 'oppo').replace(/\/+$/, '');
    const endpoint = configured === OPPO_DEFAULT_ENDPOINT && !oppoIsChinaRegId(regId) ? OPPO_INTL_ENDPOINT : configured;
    let h = this.hosts.get(endpoint);
    if (!h) {
      const { cache, release } = acquireTokenCache(
        ['oppo', endpoint, this.cred.appKey, this.cred.masterSecret],
        () => this.fetchToken(endpoint),
        { defaultLifetimeSec: TOKEN_LIFETIME_S, refreshMarginMs: 30 * 60_000 },
      );
      h = { endpoint, cache, release };
      this.hosts.set(endpoint, h);
    }
    return h;
  }

  private async fetchToken(endpoint: string): Promise<{ token: string; expiresInSec: number }> {
    // OPPO wants a 13-digit ms timestamp "in GMT+8"; a ms epoch is zone-free, so Date.now() is it.
    const timestamp = String(Date.now());
    const res = await vendorFetchForm(`${endpoint}/server/v1/auth`, {
      app_key: this.cred.appKey,
      timestamp,
      sign: oppoSign(this.cred.appKey, timestamp, this.cred.masterSecret),
    });
    if (!res.ok) throw new VendorAuthError(res.reason, true, res.afterMs);
    const evidence = { status: res.status, body: clip(res.json ?? res.text, 500) };
    const ans = answerOf(res);
    const data = isRecord(res.json) && isRecord(res.json.data) ? res.json.data : undefined;
    if (ans?.code === OPPO_CODES.ok && typeof data?.auth_token === 'string' && data.auth_token) {
      const created = epochMs(data.create_time);
      // Lifetime counts from create_time when OPPO states it (24 h), else from now.
      const lifetime = created ? Math.max(60, TOKEN_LIFETIME_S - Math.max(0, Math.floor((Date.now() - created) / 1000))) : TOKEN_LIFETIME_S;
      return { token: data.auth_token, expiresInSec: lifetime };
    }
    if (ans?.code === undefined) {
      throw authErrorFromStatus(res, 'OPPO auth answered without a code', evidence);
    }
    const retryable = [OPPO_CODES.flowControl, OPPO_CODES.unavailable, OPPO_CODES.callLimit, OPPO_CODES.frequency].includes(ans.code as never);
    throw new VendorAuthError({ code: String(ans.code), message: `OPPO auth failed: ${ans.message ?? ''}`.trim(), evidence }, retryable);
  }

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    const early = unsendable(content, targets.length, this.closed ? 'OPPO' : undefined);
    if (early) return early;
    const built = buildOppoNotification(content, this.cred, channelOverrides<OppoOverrides>(content, 'oppo'));
    if (!built.ok) return fill(targets.length, built.outcome);
    const notification = built.value;
    // Group by host (CN / abroad), keeping the original order for the answer.
    const groups = new Map<HostState, number[]>();
    targets.forEach((t, i) => {
      const h = this.hostFor(t.token);
      groups.set(h, [...(groups.get(h) ?? []), i]);
    });
    const out: Outcome[] = new Array(targets.length);
    await Promise.all(
      [...groups].map(async ([host, idx]) => {
        const outs = await sendInChunks(idx, OPPO_BATCH_MAX, this.limit, (c) => this.sendChunk(host, notification, c.map((i) => targets[i]!.token)), this.ctx.logger);
        idx.forEach((i, k) => (out[i] = outs[k]!));
      }),
    );
    return out;
  }

  private async sendChunk(host: HostState, notification: Record<string, unknown>, regIds: string[]): Promise<Outcome[]> {
    const batch = regIds.length > 1;
    const messageFor = (regId: string) => ({ target_type: 2, target_value: regId, notification });
    const url = `${host.endpoint}/server/v1/message/notification/${batch ? 'unicast_batch' : 'unicast'}`;
    try {
      const { result, authRejected } = await callWithToken(
        host.cache,
        (token) =>
          vendorFetchForm(
            url,
            batch
              ? { auth_token: token, messages: JSON.stringify(regIds.map(messageFor)) }
              : { auth_token: token, message: JSON.stringify(messageFor(regIds[0]!)) },
            // The official doc puts auth_token in the body; one SDK (MLV) sends it as a header.
            // Sending both satisfies either reading.
            { headers: { auth_token: token } },
          ),
        (r) => answerOf(r)?.code === OPPO_CODES.authExpired,
      );
      if (authRejected) {
        return fill(regIds.length, failed({ code: String(OPPO_CODES.authExpired), message: 'OPPO rejected a freshly issued auth_token', evidence: { url: redactUrl(url) } }));
      }
      return parseOppoSendAnswer(result, regIds, batch);
    } catch (err) {
      if (err instanceof VendorAuthError) return fill(regIds.length, err.toOutcome());
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const h of this.hosts.values()) h.release();
    this.hosts.clear();
  }
}

const EVENT_KIND: Record<string, ReceiptEvent['event'] | undefined> = {
  push_arrive: 'delivered',
  regid_invalid: 'invalid',
  // The device's daily cap was hit: OPPO accepted the message and then dropped it.
  user_daily_limit: 'failed',
};

/**
 * OPPO receipt body (OPDOC-receipt): a JSON array of
 * `{messageId, appId, taskId, registrationIds: "r1,r2", eventTime, param, eventType}`.
 */
export function parseOppoReceipt(req: ReceiptRequest): ReceiptEvent[] {
  const body = parseJsonBody(req.rawBody, 'OPPO');
  // The documented body is an array; a lone object is taken as a one-element array.
  const entries = Array.isArray(body) ? body : isRecord(body) ? [body] : undefined;
  if (!entries) throw new Error('OPPO receipt: expected a JSON array of events');
  const events: ReceiptEvent[] = [];
  entries.forEach((e, i) => {
    if (!isRecord(e)) throw new Error(`OPPO receipt: entry ${i} is not an object`);
    if (typeof e.eventType !== 'string') throw new Error(`OPPO receipt: entry ${i} has no eventType`);
    if (typeof e.messageId !== 'string' || !e.messageId) throw new Error(`OPPO receipt: entry ${i} has no messageId`);
    const ids = e.registrationIds;
    const tokens = typeof ids === 'string' ? ids.split(',') : Array.isArray(ids) ? ids.map(String) : undefined;
    if (!tokens) throw new Error(`OPPO receipt: entry ${i} has no registrationIds`);
    const kind = EVENT_KIND[e.eventType];
    if (!kind) return;
    const at = epochMs(e.eventTime);
    const messageId = typeof e.param === 'string' && e.param ? e.param : undefined;
    for (const token of tokens.map((t) => t.trim()).filter(Boolean)) {
      events.push({
        event: kind,
        providerId: e.messageId,
        token,
        ...(messageId ? { messageId } : {}),
        ...(at ? { at } : {}),
        ...(kind === 'invalid' ? { reason: { code: e.eventType, message: 'OPPO: registration id invalid (uninstalled, unregistered or offline > 30 days)' } } : {}),
        ...(kind === 'failed' ? { reason: { code: RELAY_CODES.quota, message: 'OPPO dropped the message: the daily limit for this device was hit (user_daily_limit)', evidence: { vendorEvent: e.eventType } } } : {}),
      });
    }
  });
  return events;
}

export const OPPO_ENDPOINTS = {
  oppo: { env: 'OPPO_ENDPOINT', default: OPPO_DEFAULT_ENDPOINT, doc: 'OPPO push API (registration ids outside China go to the international host)' },
} as const satisfies Record<string, EndpointSetting>;

const oppoModule = {
  channel: 'oppo' as const,
  androidBrand: true as const,
  wantsCallbackUrl: true as const,
  endpoints: OPPO_ENDPOINTS,
  marketingDailyCap: 2,
  overridesSchema: oppoOverridesSchema,
  batchMax: OPPO_BATCH_MAX,
  credentialSchema: oppoCredentialSchema,
  checkCredential(cred) {
    if (cred.callbackUrl && cred.callbackUrl.length > LIMITS.callbackUrl) {
      throw new CredentialError('callbackUrl', `OPPO call_back_url is limited to ${LIMITS.callbackUrl} characters`);
    }
  },
  describe(cred) {
    return {
      appKey: cred.appKey,
      ...(cred.channelId ? { channelId: cred.channelId } : {}),
      ...(cred.categoryMap ? { categoryMap: cred.categoryMap } : {}),
      ...(cred.callbackUrl ? { callbackUrl: redactUrl(cred.callbackUrl) } : {}),
      ...(cred.qps ? { qps: cred.qps } : {}),
    };
  },
  create(cred, ctx) {
    return new OppoProvider(cred, ctx);
  },
  receipts: { parse: parseOppoReceipt },
  // QPS = reference × weight × coefficient; the smallest reference (apps under 10 M users) is 5000.
  qps: (cred) => cred.qps ?? 5000,
} satisfies ProviderModule<OppoCredential>;

export default oppoModule;
