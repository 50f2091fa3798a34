import { failed, retry, type Outcome, type OutcomeReason } from '../types.js';
import { isRecord } from './json.js';

/**
 * HTTP for the vendor providers: a `fetch` that turns transport failures into data, and the
 * classification every vendor shares for answers without a usable vendor code.
 */

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
    return { ok: true, status: res.status, headers: res.headers, text, json: jsonOrUndefined(text) };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError';
    const code = timedOut ? 'timeout' : (e.cause?.code ?? 'network');
    const message = timedOut ? `no answer within ${timeoutMs} ms` : (e.cause?.message ?? e.message);
    return { ok: false, reason: { code, message, evidence: { url: redactUrl(url) } } };
  }
}

/** An answer body's JSON, or undefined when it is empty or not JSON. */
export function jsonOrUndefined(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
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
  // Credentials may sit in the query or in the user info (https://user:pass@host/): drop both.
  const q = url.indexOf('?');
  return (q < 0 ? url : url.slice(0, q)).replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
}

/** A configured base URL without its trailing slashes, ready for `${base}/path`. */
export function trimSlash(u: string): string {
  return u.replace(/\/+$/, '');
}

/** An HTTP answer's JSON object and its `data` object (each undefined when the answer has none). */
export function answerJson(res: { json: unknown }): { body: Record<string, unknown> | undefined; data: Record<string, unknown> | undefined } {
  const body = isRecord(res.json) ? res.json : undefined;
  return { body, data: isRecord(body?.data) ? body.data : undefined };
}
