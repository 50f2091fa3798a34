/**
 * Fixtures shared by the per-vendor tests (test/unit/vendor-*.test.ts and
 * test/integration/vendor-*.test.ts): sample push content, fake HTTP answers for the classifiers,
 * send targets, and small readers of provider outcomes. Each test file picks the preset it was
 * written against, so the values its assertions expect stay the same.
 */
import { createServer } from 'node:net';
import type { Outcome, ProviderContext, PushContent, ReceiptRequest, SendTarget } from '../../providers/types.js';
import type { VendorFetchResult } from '../../providers/shared/http.js';
import { NOWHERE, providerContext } from './provider-context.js';

// ----- clocks --------------------------------------------------------------------------------

/** The fixed clock of the Honor, Huawei, Xiaomi and shared-helper unit tests. */
export const FIXED_NOW = 1_750_000_000_000;
/** 04:00 UTC = 12:00 in China: a fixed clock well inside the Chinese vendors' quiet-hours rules. */
export const CHINA_NOON = Date.UTC(2025, 0, 10, 4, 0, 0);

// ----- push content --------------------------------------------------------------------------

type ContentFactory = (over?: Partial<PushContent>) => PushContent;

/** "Order 42 shipped" (messageId `m-1`), expiring an hour after `now`. */
export function orderContentAt(now: number): ContentFactory {
  return (over = {}) => ({
    messageId: 'm-1',
    notification: { title: 'Order shipped', body: 'Your order 42 is on its way', clickAction: 'app://orders/42' },
    data: { orderId: '42', n: 3 },
    options: { ttl: 3600, priority: 'high' },
    expiresAt: now + 3_600_000,
    ...over,
  });
}

/** "Your parcel is on its way" (messageId `m-42`, collapse key and category set), expiring an hour after `now`. */
export function parcelContentAt(now: number): ContentFactory {
  return (over = {}) => ({
    messageId: 'm-42',
    notification: { title: 'Order shipped', body: 'Your parcel is on its way', clickAction: 'app://orders/42' },
    data: { orderId: '42', n: 7 },
    options: { ttl: 3600, priority: 'high', collapseKey: 'order-42', category: 'im' },
    expiresAt: now + 3600_000,
    ...over,
  });
}

/** Live content for tests against a mock: a fresh messageId per call (`msg-1`, `msg-2`, …), expiring an hour from now. */
export function liveContent(): ContentFactory {
  let seq = 0;
  return (over = {}) => ({
    messageId: `msg-${++seq}`,
    notification: { title: 'Hello', body: 'World', clickAction: 'app://inbox/1' },
    data: { k: 'v' },
    options: { ttl: 3600, priority: 'high', category: 'im' },
    expiresAt: Date.now() + 3_600_000,
    ...over,
  });
}

/** Live "parcel" content for tests against a mock (messageId `msg-1` every time), expiring an hour from now. */
export function liveParcelContent(): ContentFactory {
  return (over = {}) => ({
    messageId: 'msg-1',
    notification: { title: 'Order shipped', body: 'Your parcel is on its way', clickAction: 'app://orders/42' },
    data: { orderId: '42' },
    options: { ttl: 3600, priority: 'high', collapseKey: 'order-42', category: 'im' },
    expiresAt: Date.now() + 3600_000,
    ...over,
  });
}

// ----- fake vendor answers and receipts ------------------------------------------------------

/** A fake HTTP answer for the classifiers (`json` undefined = an empty body). */
export function http(status: number, json: unknown, headers: Record<string, string> = {}): VendorFetchResult {
  return { ok: true, status, headers: new Headers(headers), text: json === undefined ? '' : JSON.stringify(json), json };
}

/** A transport failure, as the shared vendor fetch reports it. */
export const netErr: VendorFetchResult = { ok: false, reason: { code: 'ECONNRESET', message: 'socket hang up' } };

/** A receipt callback request with the given raw body. */
export function req(rawBody: string, contentType = 'application/json'): ReceiptRequest {
  return { headers: { 'content-type': contentType }, rawBody, contentType };
}

/** The value of a body builder's result; throws (failing the test) when it built an outcome instead. */
export function built<T>(b: { ok: true; value: T } | { ok: false; outcome: Outcome }): T {
  if (!b.ok) throw new Error(`expected a body, got ${JSON.stringify(b.outcome)}`);
  return b.value;
}

// ----- outcomes ------------------------------------------------------------------------------

export const kinds = (o: Outcome[]) => o.map((x) => x.kind);
/** The reason code of a non-sent outcome (undefined for `sent` or no outcome). */
export const codeOf = (o: Outcome | undefined) => (o && o.kind !== 'sent' ? o.reason.code : undefined);

// ----- targets and provider context (tests against a mock) -----------------------------------

/** Send targets with delivery ids `d0`, `d1`, … */
export const targets = (tokens: string[]): SendTarget[] => tokens.map((token, i) => ({ deliveryId: `d${i}`, token }));
/** Send targets with delivery ids `d-0`, `d-1`, … */
export const dashedTargets = (...tokens: string[]): SendTarget[] => tokens.map((token, i) => ({ deliveryId: `d-${i}`, token }));

/** The vendor requests that are sends, not token fetches. */
export const sendPaths = <T extends { path: string }>(reqs: T[]): T[] => reqs.filter((r) => !/token/.test(r.path));

/** An endpoint nothing listens on (for transport-failure tests). */
export const CLOSED = NOWHERE;

/** A port with nothing listening (for transport-failure tests). */
export async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

type Tuning = Partial<ProviderContext['tuning']>;
/** The smallest tuning (one stream, one connection). */
export const SINGLE_TUNING: Tuning = { apnsMaxStreams: 1, apnsConnections: 1, fcmConcurrency: 1 };
/** A wider tuning (100 APNs streams, 8 FCM sends at once). */
export const WIDE_TUNING: Tuning = { apnsMaxStreams: 100, apnsConnections: 1, fcmConcurrency: 8 };

/** A provider context pointing the given channels at mock endpoints. */
export function ctxFor(endpoints: Partial<ProviderContext['endpoints']>, tuning: Tuning = SINGLE_TUNING): ProviderContext {
  return providerContext({ endpoints, tuning });
}
