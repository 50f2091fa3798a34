import { z } from 'zod';
import type { Logger } from 'pino';
import type { Outcome, Provider, PushContent, PushNotification, ReceiptEvent, ReceiptRequest, SendTarget } from './types.js';
import { sendInChunks, fill } from './shared/batches.js';
import { clickTarget } from './shared/click.js';
import { expiredOutcome, remainingTtlSeconds } from './shared/expiry.js';
import { vendorFetchJson, type VendorFetchResult } from './shared/http.js';
import { notifyIdFrom } from './shared/ids.js';
import { isRecord } from './shared/json.js';
import { createLimiter } from './shared/limiter.js';
import type { BuiltinClass, VendorMessageClass } from './shared/message-class.js';
import { epochMs, parseJsonBody } from './shared/receipts.js';
import { callWithToken, VendorAuthError, type TokenCache } from './shared/token-cache.js';

/**
 * What Huawei Push Kit and Honor Push share: Honor's push API is derived from Huawei's (same
 * message shape, camelCase instead of snake_case names, same receipt body), so the notification
 * builder, the click action, the provider loop and the receipt parser live here once. Each vendor
 * module keeps only what differs: credentials, URLs, field names, answer codes.
 * Sources: docs/vendors/huawei-honor.md.
 */

/** `android.ttl` maximum on both: 15 days. */
export const HMS_MAX_TTL_SEC = 1_296_000;
/** Requests in flight per credential. */
const CONCURRENCY = 8;

/** Both classify by `importance`: LOW = 资讯营销 (marketing), NORMAL = 服务与通讯 (service). */
export const hmsImportance: BuiltinClass = (_cat, kind) => ({ importance: kind === 'marketing' ? 'LOW' : 'NORMAL' });

/** The field names that differ between the two APIs. */
export interface HmsNaming {
  clickAction: 'click_action' | 'clickAction';
  notifyId: 'notify_id' | 'notifyId';
}

/**
 * The part of `android.notification` both vendors build alike, or undefined for a data
 * (pass-through) message (no title and no body).
 */
export function hmsNotification(
  n: PushNotification | undefined,
  collapseKey: string | undefined,
  cls: VendorMessageClass | undefined,
  naming: HmsNaming,
): Record<string, unknown> | undefined {
  if (!n || !(n.title || n.body)) return undefined;
  const notification: Record<string, unknown> = {};
  // Both are required for a notification message: each falls back on the other.
  notification.title = n.title || n.body;
  notification.body = n.body || n.title;
  // The image must be an HTTPS URL (the vendor rejects the whole request otherwise): without one
  // the notification goes out with no image rather than not at all.
  if (n.image && /^https:\/\//i.test(n.image)) notification.image = n.image;
  notification[naming.clickAction] = hmsClickAction(n.clickAction);
  if (cls?.importance) notification.importance = cls.importance;
  if (collapseKey) {
    // Same tag / notify id → the new notification replaces the shown one. Sent as an integer.
    notification.tag = collapseKey;
    notification[naming.notifyId] = notifyIdFrom(collapseKey);
  }
  return notification;
}

function hmsClickAction(clickAction: string | undefined): Record<string, unknown> {
  const t = clickTarget(clickAction);
  // type 2 (open URL) takes HTTPS URLs only; anything else opens as an intent URI (type 1).
  if (t.kind === 'url' && /^https:/i.test(t.url)) return { type: 2, url: t.url };
  if (t.kind === 'url') return { type: 1, intent: t.url };
  if (t.kind === 'intent') return { type: 1, intent: t.uri };
  return { type: 3 };
}

/** The answer's `code` as a string (both send it as a string or an int), or undefined. */
export function answerCode(res: VendorFetchResult): string | undefined {
  if (!res.ok || !isRecord(res.json) || res.json.code === undefined || res.json.code === null) return undefined;
  return String(res.json.code);
}

/** How one vendor of the family sends a chunk; the loop around it is {@link HmsFamilyProvider}. */
export interface HmsFlavour {
  channel: 'huawei' | 'honor';
  maxTokens: number;
  sendUrl: string;
  tokens: { cache: TokenCache; release: () => void };
  headers(token: string): Record<string, string>;
  buildBody(content: PushContent, tokens: readonly string[]): Record<string, unknown> | undefined;
  isAuthRejected(res: VendorFetchResult): boolean;
  classify(res: VendorFetchResult, tokens: readonly string[]): Outcome[];
}

/**
 * The provider both vendors use: chunks of `maxTokens`, a cached OAuth token refreshed once when
 * the vendor refuses it, one outcome per token.
 */
export class HmsFamilyProvider implements Provider {
  readonly channel: 'huawei' | 'honor';
  private readonly limiter = createLimiter(CONCURRENCY);

  constructor(
    private readonly flavour: HmsFlavour,
    private readonly logger: Logger,
  ) {
    this.channel = flavour.channel;
  }

  /** Token endpoint calls so far (shared with other instances of the same credential). */
  get tokenFetches(): number {
    return this.flavour.tokens.cache.fetchCount;
  }

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    if (remainingTtlSeconds(content.expiresAt) <= 0) return fill(targets.length, expiredOutcome(content.expiresAt));
    return sendInChunks(targets, this.flavour.maxTokens, this.limiter, (chunk) => this.sendChunk(content, chunk), this.logger);
  }

  private async sendChunk(content: PushContent, chunk: SendTarget[]): Promise<Outcome[]> {
    const f = this.flavour;
    const tokens = chunk.map((t) => t.token);
    const body = f.buildBody(content, tokens);
    if (!body) return fill(chunk.length, expiredOutcome(content.expiresAt));
    try {
      const { result } = await callWithToken(f.tokens.cache, (token) => vendorFetchJson(f.sendUrl, body, { headers: f.headers(token) }), (r) => f.isAuthRejected(r));
      this.logger.debug({ channel: f.channel, tokens: tokens.length, status: result.ok ? result.status : 'network' }, `${f.channel} batch sent`);
      return f.classify(result, tokens);
    } catch (err) {
      if (err instanceof VendorAuthError) return fill(chunk.length, err.toOutcome());
      throw err;
    }
  }

  async close(): Promise<void> {
    this.flavour.tokens.release();
  }
}

const receiptSchema = z.object({
  statuses: z
    .array(
      z
        .object({
          token: z.string().optional(),
          requestId: z.union([z.string(), z.number()]).optional(),
          biTag: z.string().optional(),
          status: z.union([z.number(), z.string().regex(/^-?\d+$/)]),
          timestamp: z.union([z.number(), z.string()]).optional(),
        })
        .passthrough(),
    )
    .min(1),
});

/**
 * The family's receipt body: `{"statuses":[{token, biTag, status, timestamp, requestId, …}]}`.
 * Only the statuses `delivered` accepts produce an event: quarantining a token on an unverified
 * status code could kill live tokens, while a missed "delivered" only leaves the delivery at `sent`.
 */
export function parseHmsReceipt(req: ReceiptRequest, vendor: 'huawei' | 'honor', delivered: (status: number) => boolean): ReceiptEvent[] {
  const json = parseJsonBody(req.rawBody, vendor);
  const parsed = receiptSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${vendor} receipt: expected {"statuses":[…]}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const events: ReceiptEvent[] = [];
  for (const s of parsed.data.statuses) {
    if (!delivered(Number(s.status))) continue;
    const at = epochMs(s.timestamp);
    events.push({
      event: 'delivered',
      ...(s.requestId !== undefined ? { providerId: String(s.requestId) } : {}),
      ...(s.biTag ? { messageId: s.biTag } : {}),
      ...(s.token ? { token: s.token } : {}),
      ...(at !== undefined ? { at } : {}),
    });
  }
  return events;
}
