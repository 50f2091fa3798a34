import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Logger } from 'pino';
import {
  expired,
  failed,
  retry,
  type Outcome,
  type OutcomeReason,
  type PushContent,
  type PushNotification,
  type VendorChannel,
  httpStatusCode,
} from './types.js';

/**
 * Helpers shared by the vendor providers (Huawei, Honor, Xiaomi, OPPO, vivo, Meizu; FCM and Web
 * Push use some): the single-flight access-token cache, `vendorFetch`, the concurrency limiter,
 * chunking, China-time days, text cutting, and the neutral-category → vendor message class map
 * (which still holds each vendor's class tables: see `builtinClass`). Plain-JSON helpers are in
 * json.ts and Relay's payload keys in relay-keys.ts.
 */

// ---------------------------------------------------------------------------------------------
// Access tokens
// ---------------------------------------------------------------------------------------------

/** What a vendor's token endpoint gave us. */
export interface IssuedToken {
  token: string;
  /** Lifetime in seconds as the vendor stated it (`expires_in`); a default is used when absent. */
  expiresInSec?: number;
}

/**
 * Thrown by a token fetcher (and re-thrown by `TokenCache`) when no token could be obtained.
 * `retryable` says whether the failure is transient (network, 5xx, rate limit) or a credential
 * problem (bad client id / secret) that no retry will fix.
 */
export class VendorAuthError extends Error {
  constructor(
    readonly reason: OutcomeReason,
    readonly retryable: boolean,
    readonly afterMs?: number,
  ) {
    super(`${reason.code}: ${reason.message}`);
    this.name = 'VendorAuthError';
  }

  /** The outcome every target of a batch gets when its token could not be obtained. */
  toOutcome(): Outcome {
    return this.retryable ? retry(this.reason, this.afterMs) : failed(this.reason);
  }
}

export interface TokenCacheOptions {
  /** Refresh this long before the stated expiry (default 5 min, never more than half the lifetime). */
  refreshMarginMs?: number;
  /** Lifetime assumed when the vendor does not state one (default 1 h). */
  defaultLifetimeSec?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/**
 * One vendor access token, shared by every batch of one credential.
 * - `get()` returns the cached token while it is fresh, else fetches a new one.
 * - `refresh(stale)` is the "the vendor said auth expired" path: it refetches only when the
 *   cached token is still the stale one, so N batches that failed with the same token cause one
 *   fetch between them.
 * - At most one fetch is in flight at any time (single flight); every caller waits for it.
 */
export class TokenCache {
  private current?: { token: string; refreshAt: number; expiresAt: number };
  private inflight?: Promise<string>;
  private fetches = 0;
  private readonly margin: number;
  private readonly defaultLifetime: number;
  private readonly now: () => number;

  constructor(
    private readonly fetchToken: () => Promise<IssuedToken>,
    opts: TokenCacheOptions = {},
  ) {
    this.margin = opts.refreshMarginMs ?? 300_000;
    this.defaultLifetime = opts.defaultLifetimeSec ?? 3600;
    this.now = opts.now ?? Date.now;
  }

  /** How many times the vendor's token endpoint was called (for metrics and tests). */
  get fetchCount(): number {
    return this.fetches;
  }

  /** The cached token when it is still fresh, without fetching. */
  peek(): string | undefined {
    return this.current && this.now() < this.current.refreshAt ? this.current.token : undefined;
  }

  async get(): Promise<string> {
    const fresh = this.peek();
    if (fresh !== undefined) return fresh;
    return this.fetchOnce();
  }

  /**
   * The vendor rejected `stale` as expired or invalid. Fetches a new token unless another caller
   * already replaced it, and returns the token to retry with.
   */
  async refresh(stale: string): Promise<string> {
    if (this.inflight) return this.inflight;
    if (this.current && this.current.token !== stale && this.now() < this.current.refreshAt) return this.current.token;
    this.current = undefined;
    return this.fetchOnce();
  }

  /** Forgets the cached token (e.g. when the credential changes). */
  clear(): void {
    this.current = undefined;
  }

  private fetchOnce(): Promise<string> {
    if (this.inflight) return this.inflight;
    this.fetches++;
    const p = (async () => {
      try {
        const issued = await this.fetchToken();
        const lifetimeMs = Math.max(1, issued.expiresInSec ?? this.defaultLifetime) * 1000;
        const now = this.now();
        const margin = Math.min(this.margin, lifetimeMs / 2);
        this.current = { token: issued.token, refreshAt: now + lifetimeMs - margin, expiresAt: now + lifetimeMs };
        return issued.token;
      } finally {
        this.inflight = undefined;
      }
    })();
    this.inflight = p;
    return p;
  }
}

/**
 * Process-wide token caches keyed by credential (endpoint + client id + secret hash), so two
 * provider instances for the same credential share one token. Reference-counted: `release()`
 * drops the cache when its last user closes.
 */
const sharedCaches = new Map<string, { cache: TokenCache; refs: number }>();

export function acquireTokenCache(
  keyParts: readonly string[],
  fetchToken: () => Promise<IssuedToken>,
  opts?: TokenCacheOptions,
): { cache: TokenCache; release: () => void } {
  const key = createHash('sha256').update(keyParts.join('\u0000')).digest('hex');
  let entry = sharedCaches.get(key);
  if (!entry) {
    entry = { cache: new TokenCache(fetchToken, opts), refs: 0 };
    sharedCaches.set(key, entry);
  }
  entry.refs++;
  const held = entry;
  let released = false;
  return {
    cache: held.cache,
    release: () => {
      if (released) return;
      released = true;
      held.refs--;
      if (held.refs <= 0 && sharedCaches.get(key) === held) sharedCaches.delete(key);
    },
  };
}

/**
 * Runs `attempt` with the cached token; when `isAuthRejected` says the vendor refused the token
 * (expired / invalid), refreshes it once (single flight, see `TokenCache.refresh`) and runs
 * `attempt` again. `authRejected` is true when the second attempt was refused as well: the
 * caller then fails the batch with an auth reason. Throws `VendorAuthError` when no token could
 * be obtained (use `err.toOutcome()`).
 */
export async function callWithToken<R>(
  cache: TokenCache,
  attempt: (token: string) => Promise<R>,
  isAuthRejected: (result: R) => boolean,
): Promise<{ result: R; authRejected: boolean; refreshed: boolean }> {
  const token = await cache.get();
  const first = await attempt(token);
  if (!isAuthRejected(first)) return { result: first, authRejected: false, refreshed: false };
  const fresh = await cache.refresh(token);
  const second = await attempt(fresh);
  return { result: second, authRejected: isAuthRejected(second), refreshed: true };
}

/** Parses an OAuth2 token answer (`access_token`, `expires_in`); throws a non-retryable auth error otherwise. */
export function parseOAuthToken(body: unknown, vendor: string): IssuedToken {
  const parsed = oauthTokenSchema.safeParse(body);
  if (!parsed.success && isRecord(body) && body.error !== undefined && body.error !== null) {
    // An OAuth error object on HTTP 200: a credential problem, not a transient one.
    throw new VendorAuthError(
      { code: String(body.error), message: String(body.error_description ?? `${vendor} token endpoint refused the credential`), evidence: { body: clip(body) } },
      false,
    );
  }
  if (!parsed.success) {
    throw new VendorAuthError(
      { code: 'oauth_bad_response', message: `${vendor} token endpoint answered without access_token`, evidence: { body: clip(body) } },
      true,
    );
  }
  const exp = parsed.data.expires_in;
  return { token: parsed.data.access_token, ...(exp !== undefined ? { expiresInSec: Number(exp) } : {}) };
}

const oauthTokenSchema = z.object({
  access_token: z.string().min(1),
  expires_in: z.union([z.number(), z.string().regex(/^\d+$/)]).optional(),
});

/**
 * Fetches an OAuth2 client-credentials token (form body) and classifies failures:
 * network / 429 / 5xx are retryable, other statuses are credential errors.
 */
export async function fetchClientCredentialsToken(opts: {
  vendor: string;
  url: string;
  clientId: string;
  clientSecret: string;
  timeoutMs?: number;
  headers?: Record<string, string>;
}): Promise<IssuedToken> {
  const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: opts.clientId, client_secret: opts.clientSecret });
  const res = await vendorFetch(opts.url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...opts.headers },
    body: body.toString(),
    timeoutMs: opts.timeoutMs,
  });
  if (!res.ok) throw new VendorAuthError(res.reason, true, res.afterMs);
  if (res.status === 200) return parseOAuthToken(res.json, opts.vendor);
  const evidence = { status: res.status, body: clip(res.json ?? res.text) };
  const obj = isRecord(res.json) ? res.json : {};
  const code = String(obj.error ?? obj.code ?? httpStatusCode(res.status));
  const message = String(obj.error_description ?? obj.message ?? obj.msg ?? `${opts.vendor} token endpoint answered HTTP ${res.status}`);
  const retryable = res.status === 429 || res.status >= 500;
  throw new VendorAuthError({ code, message, evidence }, retryable, retryable ? retryAfterMs(res.headers) : undefined);
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

export interface VendorFetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Default 15 s. */
  timeoutMs?: number;
}

export type VendorFetchResult =
  | {
      ok: true;
      status: number;
      headers: Headers;
      text: string;
      /** The parsed JSON body, or undefined when the body is not JSON. */
      json: unknown;
    }
  | {
      /** The request never got an HTTP answer (DNS, connect, TLS, reset, timeout). */
      ok: false;
      reason: OutcomeReason;
      afterMs?: number;
    };

/**
 * `fetch` with a timeout that never throws for transport problems: those come back as
 * `{ok:false, reason}`, ready to become `retry` outcomes (`networkRetry`). Any HTTP answer,
 * whatever its status, is `{ok:true}` with the body as text and, when it parses, as JSON.
 */
export async function vendorFetch(url: string, init: VendorFetchInit = {}): Promise<VendorFetchResult> {
  const timeoutMs = init.timeoutMs ?? 15_000;
  try {
    const res = await fetch(url, {
      method: init.method ?? 'GET',
      headers: init.headers,
      body: init.body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json: unknown;
    if (text.length > 0) {
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
    }
    return { ok: true, status: res.status, headers: res.headers, text, json };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError';
    const code = timedOut ? 'timeout' : (e.cause?.code ?? 'network');
    const message = timedOut ? `no answer within ${timeoutMs} ms` : (e.cause?.message ?? e.message);
    return { ok: false, reason: { code, message, evidence: { url: redactUrl(url) } } };
  }
}

/** `vendorFetch` with a JSON body. */
export function vendorFetchJson(url: string, body: unknown, init: Omit<VendorFetchInit, 'body'> = {}): Promise<VendorFetchResult> {
  return vendorFetch(url, {
    method: init.method ?? 'POST',
    timeoutMs: init.timeoutMs,
    headers: { 'content-type': 'application/json; charset=utf-8', ...init.headers },
    body: JSON.stringify(body),
  });
}

/** `vendorFetch` with an `application/x-www-form-urlencoded` body. */
export function vendorFetchForm(
  url: string,
  fields: Record<string, string> | URLSearchParams,
  init: Omit<VendorFetchInit, 'body'> = {},
): Promise<VendorFetchResult> {
  const params = fields instanceof URLSearchParams ? fields : new URLSearchParams(fields);
  return vendorFetch(url, {
    method: init.method ?? 'POST',
    timeoutMs: init.timeoutMs,
    headers: { 'content-type': 'application/x-www-form-urlencoded;charset=UTF-8', ...init.headers },
    body: params.toString(),
  });
}

/** The outcome for a transport failure (`{ok:false}` from `vendorFetch`). */
export function networkRetry(res: { reason: OutcomeReason; afterMs?: number }): Outcome {
  return retry(res.reason, res.afterMs);
}

/** `Retry-After` in ms (delta-seconds or an HTTP date), or undefined. */
export function retryAfterMs(headers: Headers | Record<string, string | string[] | undefined> | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const raw = headers instanceof Headers ? headers.get('retry-after') : headers['retry-after'];
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (v === undefined || v === null || v === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/** A generic classification of an HTTP status with no usable vendor code: 429 / 5xx retry, the rest fail. */
export function outcomeForHttpStatus(status: number, headers: Headers | undefined, reason: OutcomeReason): Outcome {
  if (status === 429 || status >= 500) return retry(reason, retryAfterMs(headers));
  return failed(reason);
}

/** Removes query strings (which may carry secrets) from URLs kept as evidence. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

// ---------------------------------------------------------------------------------------------
// Concurrency and chunking
// ---------------------------------------------------------------------------------------------

/** A per-instance limiter: at most `max` tasks run at once, the rest wait in FIFO order. */
export interface Limiter {
  <T>(task: () => Promise<T>): Promise<T>;
  readonly active: number;
  readonly pending: number;
}

export function createLimiter(max: number): Limiter {
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`limiter size must be a positive integer, got ${max}`);
  let active = 0;
  const queue: Array<() => void> = [];
  const next = () => {
    if (active >= max) return;
    const start = queue.shift();
    if (start) start();
  };
  const run = (<T>(task: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      queue.push(() => {
        active++;
        let p: Promise<T>;
        try {
          p = task();
        } catch (err) {
          p = Promise.reject(err);
        }
        p.then(resolve, reject).finally(() => {
          active--;
          next();
        });
      });
      next();
    })) as Limiter;
  Object.defineProperties(run, {
    active: { get: () => active },
    pending: { get: () => queue.length },
  });
  return run;
}

/** Splits `items` into consecutive chunks of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`chunk size must be a positive integer, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Sends `targets` in chunks of `size` through `limiter` and stitches the per-chunk outcomes back
 * in target order. A chunk that throws (a bug, not a vendor answer) becomes `retry` for its
 * targets, so `Provider.send` keeps its "never throws" promise.
 */
export async function sendInChunks<T>(
  targets: readonly T[],
  size: number,
  limiter: Limiter,
  sendChunk: (chunk: T[]) => Promise<Outcome[]>,
  logger?: Logger,
): Promise<Outcome[]> {
  const chunks = chunk(targets, size);
  const results = await Promise.all(
    chunks.map((c) =>
      limiter(async () => {
        try {
          const outs = await sendChunk(c);
          if (outs.length !== c.length) throw new Error(`chunk answered ${outs.length} outcomes for ${c.length} targets`);
          return outs;
        } catch (err) {
          logger?.error({ err }, 'vendor chunk failed unexpectedly');
          return c.map(() => retry({ code: 'internal', message: (err as Error).message }));
        }
      }),
    ),
  );
  return results.flat();
}

/** The same outcome for each of `n` targets. */
export function fill(n: number, outcome: Outcome): Outcome[] {
  return Array.from({ length: n }, () => outcome);
}

// ---------------------------------------------------------------------------------------------
// TTL, ids and content helpers
// ---------------------------------------------------------------------------------------------

// Vendor days (daily quotas, caps) start at midnight in China: UTC+8, no daylight saving.
const CHINA_OFFSET_MS = 8 * 3_600_000;
const DAY_MS = 86_400_000;

/** Milliseconds until the next 00:00 in China, when vendors' daily quotas reset. */
export function msUntilChinaMidnight(now = Date.now()): number {
  return Math.floor((now + CHINA_OFFSET_MS) / DAY_MS + 1) * DAY_MS - CHINA_OFFSET_MS - now;
}

/** The vendor day `now` falls in, as `YYYY-MM-DD` in China time. */
export function chinaDay(now = Date.now()): string {
  return new Date(now + CHINA_OFFSET_MS).toISOString().slice(0, 10);
}

/**
 * Whole seconds left until `expiresAt` (ms epoch), clamped to `[0, max]`. 0 means expired: a
 * provider must not send (see `expiredOutcome`).
 */
export function remainingTtlSeconds(expiresAt: number, opts: { now?: number; max?: number } = {}): number {
  const now = opts.now ?? Date.now();
  const left = Math.floor((expiresAt - now) / 1000);
  if (!Number.isFinite(left) || left <= 0) return 0;
  return opts.max !== undefined ? Math.min(left, opts.max) : left;
}

/** What a provider answers for a message whose TTL ran out before it was sent. */
export function expiredOutcome(expiresAt: number): Outcome {
  return expired(expiresAt, 'message TTL elapsed before it was sent');
}

/**
 * A stable notification id in 1..2147483647 from a string (collapse key or message id). Equal
 * strings give equal ids on every vendor that collapses by integer notify id.
 */
export function notifyIdFrom(key: string): number {
  const h = createHash('sha256').update(key).digest().readUInt32BE(0) & 0x7fffffff;
  return h === 0 ? 1 : h;
}

/** A short id of `[0-9A-Za-z_-]{len}` derived from a string (e.g. Meizu `notifyKey`, ≤8 chars). */
export function shortIdFrom(key: string, len = 20): string {
  return createHash('sha256').update(key).digest('base64url').slice(0, len);
}

/** The key under which every vendor payload carries Relay's message id for the device SDK. */
export { RELAY_ID_KEY } from './relay-keys.js';
import { RELAY_ID_KEY } from './relay-keys.js';

/**
 * The custom data every vendor message carries: the request's `data` plus `relay_id`
 * (the device SDK de-duplicates across channels with it). `relay_id` always wins.
 */
export function relayData(content: PushContent): Record<string, unknown> {
  return { ...(content.data ?? {}), [RELAY_ID_KEY]: content.messageId };
}

/** The same as `relayData`, with every value as a string (for vendors whose extras are string maps). */
export function relayDataStrings(content: PushContent): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(relayData(content))) {
    if (v === undefined) continue;
    out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

/** How a notification's click should open: nothing given, a web URL, or an app deep link / intent URI. */
export type ClickTarget = { kind: 'app' } | { kind: 'url'; url: string } | { kind: 'intent'; uri: string };

/**
 * Classifies `notification.clickAction`. `http(s)://` opens a browser; any other URI (an app
 * scheme such as `app://orders/42`, or an `intent:` URI) is handed to the app as an intent URI:
 * Android's `Intent.parseUri` turns a plain URI into an ACTION_VIEW intent on that URI.
 */
export function clickTarget(clickAction: string | undefined): ClickTarget {
  if (!clickAction) return { kind: 'app' };
  if (/^https?:\/\//i.test(clickAction)) return { kind: 'url', url: clickAction };
  return { kind: 'intent', uri: clickAction };
}

/**
 * Cuts `s` to at most `max` UTF-16 code units, so vendors with field limits do not reject it.
 * Vendor servers are Java: their "characters" are `String.length()`, where an emoji counts 2, so
 * a code-point count could send twice the limit. A cut by units is never longer by either count.
 * The cut never falls inside a surrogate pair (that would send a lone surrogate, which is not
 * valid UTF-8); it may still fall inside a grapheme cluster (a ZWJ emoji, a flag).
 */
export function truncateChars(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = Math.max(0, Math.floor(max));
  if (end > 0 && isHighSurrogate(s.charCodeAt(end - 1))) end--;
  return s.slice(0, end);
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/**
 * A notification's title and body for vendors that need both: a blank one (whitespace only) counts
 * as absent, and each falls back on the other. Undefined when both are blank: there is nothing to
 * show. Both are trimmed, so a later cut to the vendor's limit cannot leave only whitespace (Xiaomi
 * refuses an all-whitespace title).
 */
export function notificationTexts(n: PushNotification | undefined): { title: string; body: string } | undefined {
  const title = n?.title?.trim() || undefined;
  const body = n?.body?.trim() || undefined;
  if (!title && !body) return undefined;
  return { title: title ?? body!, body: body ?? title! };
}

export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

// ---------------------------------------------------------------------------------------------
// Message classes (vendor-neutral `options.category` → each vendor's classification)
// ---------------------------------------------------------------------------------------------

/**
 * The vendor-neutral categories `options.category` may take. Everything in the first group is a
 * "service & communication" message (华为/荣耀 服务与通讯, 小米 私信, OPPO 通讯与服务, vivo 系统,
 * 魅族 私信); the second group is "content & marketing" (资讯营销, 公信, 内容与营销, 运营),
 * which vendors cap per device per day.
 */
export const SERVICE_CATEGORIES = [
  'im', 'voip', 'account', 'order', 'todo', 'reminder', 'subscription', 'travel', 'health', 'work', 'finance',
  'express', 'mail', 'system',
] as const;
export const MARKETING_CATEGORIES = ['marketing', 'news', 'content', 'social'] as const;
export const NEUTRAL_CATEGORIES = [...SERVICE_CATEGORIES, ...MARKETING_CATEGORIES] as const;
export type NeutralCategory = (typeof NEUTRAL_CATEGORIES)[number];

/** Everything a vendor may need to classify a message; each provider reads the fields it knows. */
export interface VendorMessageClass {
  /** `service` = 服务与通讯 / 私信 / 系统 ; `marketing` = 资讯营销 / 公信 / 运营. */
  kind: 'service' | 'marketing';
  /** Huawei `android.category`, OPPO / vivo `category` (vendor spelling, uppercase). */
  category?: string;
  /** Huawei / Honor `importance`. */
  importance?: 'LOW' | 'NORMAL';
  /** An app-registered notification channel id (Xiaomi `extra.channel_id`, OPPO `channel_id`, Huawei / vivo channel). */
  channelId?: string;
  /** vivo `classification` (0 operation, 1 system). */
  classification?: 0 | 1;
  /** Meizu `noticeMsgType` (0 公信, 1 私信). */
  noticeMsgType?: 0 | 1;
}

export const vendorMessageClassSchema = z
  .object({
    kind: z.enum(['service', 'marketing']).optional(),
    category: z.string().regex(/^[A-Z_]+$/, 'vendor categories are uppercase, e.g. IM').optional(),
    importance: z.enum(['LOW', 'NORMAL']).optional(),
    channelId: z.string().min(1).max(200).optional(),
    classification: z.union([z.literal(0), z.literal(1)]).optional(),
    noticeMsgType: z.union([z.literal(0), z.literal(1)]).optional(),
  })
  .strict();
export type VendorMessageClassOverride = z.infer<typeof vendorMessageClassSchema>;

/**
 * Per-credential overrides: neutral category (or `default`, used when the message names no or an
 * unknown category) → fields merged over the built-in mapping. Credentials carry it as
 * `categoryMap`, e.g. Xiaomi `{"im": {"channelId": "108423"}, "marketing": {"channelId": "108424"}}`.
 */
export const categoryMapSchema = z.record(z.string().min(1).max(40), vendorMessageClassSchema);
export type CategoryMap = z.infer<typeof categoryMapSchema>;

/** Huawei's self-classification categories (MOD / MZS constants). */
const HUAWEI_CATEGORY: Partial<Record<NeutralCategory, string>> = {
  im: 'IM', voip: 'VOIP', account: 'ACCOUNT', order: 'EXPRESS', express: 'EXPRESS', subscription: 'SUBSCRIPTION',
  travel: 'TRAVEL', health: 'HEALTH', work: 'WORK', finance: 'FINANCE', reminder: 'DEVICE_REMINDER',
  todo: 'WORK', mail: 'MAIL', system: 'DEVICE_REMINDER', marketing: 'MARKETING',
};

/** OPPO and vivo share one category list (通讯与服务 / 内容与营销). */
const OPPO_VIVO_CATEGORY: Partial<Record<NeutralCategory, string>> = {
  im: 'IM', voip: 'IM', account: 'ACCOUNT', order: 'ORDER', express: 'ORDER', todo: 'TODO', work: 'TODO',
  reminder: 'DEVICE_REMINDER', system: 'DEVICE_REMINDER', subscription: 'SUBSCRIPTION', travel: 'ORDER',
  health: 'DEVICE_REMINDER', finance: 'ACCOUNT', mail: 'IM', marketing: 'MARKETING', news: 'NEWS', content: 'CONTENT',
  social: 'SOCIAL',
};

function builtinClass(vendor: VendorChannel, cat: NeutralCategory): VendorMessageClass {
  const kind: VendorMessageClass['kind'] = (MARKETING_CATEGORIES as readonly string[]).includes(cat) ? 'marketing' : 'service';
  const base: VendorMessageClass = { kind };
  switch (vendor) {
    case 'huawei': {
      const c = HUAWEI_CATEGORY[cat];
      return { ...base, importance: kind === 'marketing' ? 'LOW' : 'NORMAL', ...(c ? { category: c } : {}) };
    }
    case 'honor':
      return { ...base, importance: kind === 'marketing' ? 'LOW' : 'NORMAL' };
    case 'oppo':
    case 'vivo': {
      const c = OPPO_VIVO_CATEGORY[cat];
      return {
        ...base,
        ...(c ? { category: c } : {}),
        ...(vendor === 'vivo' ? { classification: kind === 'marketing' ? 0 : 1 } : {}),
      };
    }
    case 'meizu':
      return { ...base, noticeMsgType: kind === 'marketing' ? 0 : 1 };
    case 'xiaomi':
      // Xiaomi classifies by an app-registered channel id only; it comes from the credential's
      // `categoryMap` (or `channelId`), there is no built-in value.
      return base;
  }
}

export function isNeutralCategory(s: string): s is NeutralCategory {
  return (NEUTRAL_CATEGORIES as readonly string[]).includes(s);
}

/**
 * The vendor message class for `category` (case-insensitive), or undefined when the message names
 * none and the credential's `categoryMap` has no `default`: then the provider sends no
 * classification and the vendor applies its own default.
 * Precedence (last wins): built-in mapping → `categoryMap.default` (only for missing / unknown
 * categories) → `categoryMap[category]` → `override` (the request's `overrides.<vendor>` fields).
 */
export function messageClass(
  vendor: VendorChannel,
  category: string | undefined,
  categoryMap?: CategoryMap,
  override?: VendorMessageClassOverride,
): VendorMessageClass | undefined {
  const cat = category?.trim().toLowerCase();
  let out: VendorMessageClass | undefined;
  if (cat && isNeutralCategory(cat)) out = builtinClass(vendor, cat);
  else if (categoryMap?.default) out = { kind: 'service', ...stripUndefined(categoryMap.default) };
  if (cat && categoryMap?.[cat]) out = { ...(out ?? { kind: 'service' }), ...stripUndefined(categoryMap[cat]) };
  if (override && Object.values(override).some((v) => v !== undefined)) {
    out = { ...(out ?? { kind: 'service' }), ...stripUndefined(override) };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

export { clip, deepMerge, isRecord, stripUndefined } from './json.js';
import { clip, isRecord, stripUndefined } from './json.js';

/** A header value from a `ReceiptRequest` (first value, case-insensitive). */
export function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === want) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

/** Parses a JSON receipt body, throwing a clear error that names the vendor when it is not JSON. */
export function parseJsonBody(raw: string, vendor: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new Error(`${vendor} receipt: body is not JSON (${(err as Error).message})`);
  }
}

/** Reads a timestamp a vendor sent (ms or s epoch, number or numeric string); undefined when absent. */
export function epochMs(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n <= 0) return undefined;
  return n < 1e12 ? n * 1000 : n;
}
