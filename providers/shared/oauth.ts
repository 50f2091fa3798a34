import { z } from 'zod';
import { httpStatusCode } from '../types.js';
import { clip, isRecord } from './json.js';
import { retryAfterMs, vendorFetch } from './http.js';
import { VendorAuthError, type IssuedToken } from './token-cache.js';

/** OAuth 2.0 client-credentials tokens (RFC 6749 §4.4), as Huawei and Honor issue them. */

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
