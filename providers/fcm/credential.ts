import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import https from 'node:https';
import type { Credential, GoogleOAuthAccessToken } from 'firebase-admin/app';
import { z } from 'zod';
import { CredentialError, httpStatusCode } from '../types.js';
import { retryAfterMs } from '../shared/http.js';
import { TokenCache, type IssuedToken } from '../shared/token-cache.js';

/**
 * FCM's credential: a Google service-account key, the JWT-bearer assertion it signs (RFC 7523),
 * and the OAuth access token it is traded for, cached in the shared single-flight TokenCache.
 * Sources: docs/providers/fcm.md.
 */

export const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token';
/** OAuth scopes asked for: FCM needs either; cloud-platform keeps the token usable for FCM admin calls. */
export const FCM_OAUTH_SCOPES = [
  'https://www.googleapis.com/auth/firebase.messaging',
  'https://www.googleapis.com/auth/cloud-platform',
] as const;
const TOKEN_REQUEST_TIMEOUT_MS = 15_000;
/** A cached access token is replaced this long before its stated expiry (firebase-admin's own margin). */
const TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;

/** A Google service-account JSON key. Unknown fields (auth_uri, client_x509_cert_url…) are kept. */
export const serviceAccountSchema = z.looseObject({
  type: z.literal('service_account', { error: 'type must be "service_account"' }).optional(),
  project_id: z.string().min(1),
  private_key_id: z.string().optional(),
  /** PKCS#8 PEM. Literal `\n` sequences (a key pasted through an env var) are turned into newlines. */
  private_key: z
    .string()
    .min(1)
    .transform((k) => (k.includes('\\n') && !k.includes('\n') ? k.replace(/\\n/g, '\n') : k)),
  client_email: z.email(),
  /** Where the OAuth token is asked for. Must be https. */
  token_uri: z.url({ protocol: /^https$/, error: 'token_uri must be an https URL' }).default(GOOGLE_TOKEN_URI),
});
export type ServiceAccount = z.infer<typeof serviceAccountSchema>;

/** `PUT /v1/apps/:app/credentials/fcm` body. */
export const fcmCredentialSchema = z.object({ serviceAccount: serviceAccountSchema });
export type FcmCredential = z.infer<typeof fcmCredentialSchema>;

export function parseRsaKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new CredentialError('serviceAccount.private_key', `private_key is not a valid PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new CredentialError('serviceAccount.private_key', `private_key must be an RSA key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  return key;
}

/** The JWT-bearer assertion (RFC 7523) a service account trades for an access token. */
export function signServiceAccountAssertion(
  sa: Pick<ServiceAccount, 'client_email' | 'token_uri'>,
  key: KeyObject,
  nowSec = Math.floor(Date.now() / 1000),
): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const header = enc({ alg: 'RS256', typ: 'JWT' });
  const claims = enc({ iss: sa.client_email, scope: FCM_OAUTH_SCOPES.join(' '), aud: sa.token_uri, iat: nowSec, exp: nowSec + 3600 });
  const signature = sign('sha256', Buffer.from(`${header}.${claims}`), key).toString('base64url');
  return `${header}.${claims}.${signature}`;
}

/** Why the last token request failed, kept so a send can tell a bad key from an unreachable server. */
export interface OAuthFailure {
  tokenUri: string;
  status?: number;
  /** OAuth `error` (`invalid_grant`, `invalid_client`…), or the network error code. */
  error: string;
  description: string;
  retryable: boolean;
  retryAfterMs?: number;
}

export class OAuthTokenError extends Error {
  constructor(readonly failure: OAuthFailure) {
    super(`OAuth token request to ${failure.tokenUri} failed: ${failure.error}${failure.status ? ` (HTTP ${failure.status})` : ''}: ${failure.description}`);
    this.name = 'OAuthTokenError';
  }
}


/**
 * firebase-admin `Credential` for a service account that honours its own `token_uri`, and the only
 * cache of its OAuth access token.
 *
 * Why this credential caches and not firebase-admin: firebase-admin (lib/app/firebase-app.js,
 * `FirebaseAppInternals`) keeps the token it is given until 5 min before the stated expiry and has
 * no public way to drop it. Google can revoke a token earlier (FCM then answers 401 UNAUTHENTICATED),
 * and a provider stuck on that token would fail every send for up to an hour. The only way in is
 * `app.INTERNAL.getToken(true)`: untyped, not single-flight (every caller starts a token request),
 * and a failed forced refresh stays cached as a rejected promise while the old token looks fresh, so
 * every later send would fail until that expiry. Instead {@link getAccessToken} reports
 * `expires_in: 0` to firebase-admin, which therefore asks this credential before every request (a
 * resolved promise while a token is cached), and this class owns the lifetime: one token request at
 * a time ({@link token}), a proactive refresh, and {@link invalidate} for a token FCM refused: all
 * three are the shared TokenCache's (providers/shared/token-cache.ts).
 */
export class ServiceAccountCredential implements Credential {
  /** Set when the last token request failed, cleared by the next success. */
  lastFailure: OAuthFailure | undefined;
  private readonly key: KeyObject;
  private readonly cache: TokenCache;

  constructor(
    private readonly sa: ServiceAccount,
    private readonly agent: https.Agent,
  ) {
    this.key = parseRsaKey(sa.private_key);
    this.cache = new TokenCache(() => this.fetchToken(), { refreshMarginMs: TOKEN_REFRESH_MARGIN_MS });
  }

  /** For firebase-admin: the current token, with `expires_in: 0` so that it never caches it (see the class doc). */
  async getAccessToken(): Promise<GoogleOAuthAccessToken> {
    return { access_token: await this.token(), expires_in: 0 };
  }

  /**
   * The cached token, or a new one when there is none or it is due for refresh. Single-flight:
   * callers arriving while a token request is under way share it. Rejects with {@link OAuthTokenError}.
   */
  token(): Promise<string> {
    return this.cache.get();
  }

  /**
   * Drops `rejected` (the access token a refused request carried) if it is still the cached one, so
   * the next {@link token} fetches a new one. A request refused with a token that has already been
   * replaced changes nothing: N concurrent refusals of one token cost one token request.
   * `undefined` (the refused token is unknown) drops whatever is cached.
   */
  invalidate(rejected: string | undefined): void {
    this.cache.invalidate(rejected);
  }

  private async fetchToken(): Promise<IssuedToken> {
    try {
      const t = await this.requestToken();
      this.lastFailure = undefined;
      return { token: t.access_token, expiresInSec: t.expires_in };
    } catch (err) {
      const failure: OAuthFailure =
        err instanceof OAuthTokenError
          ? err.failure
          : {
              tokenUri: this.sa.token_uri,
              error: (err as NodeJS.ErrnoException).code ?? 'network-error',
              description: (err as Error).message,
              retryable: true,
            };
      this.lastFailure = failure;
      throw err instanceof OAuthTokenError ? err : new OAuthTokenError(failure);
    }
  }

  private requestToken(): Promise<GoogleOAuthAccessToken> {
    const tokenUri = this.sa.token_uri;
    const body = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
      assertion: signServiceAccountAssertion(this.sa, this.key),
    }).toString();
    return new Promise((resolve, reject) => {
      const req = https.request(
        tokenUri,
        {
          method: 'POST',
          agent: this.agent,
          timeout: TOKEN_REQUEST_TIMEOUT_MS,
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), accept: 'application/json' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString('utf8');
            let json: Record<string, unknown> | undefined;
            try {
              json = JSON.parse(text) as Record<string, unknown>;
            } catch {
              json = undefined;
            }
            if (status === 200 && json && typeof json.access_token === 'string') {
              const expiresIn = typeof json.expires_in === 'number' ? json.expires_in : Number(json.expires_in ?? 3600);
              resolve({ access_token: json.access_token, expires_in: Number.isFinite(expiresIn) ? expiresIn : 3600 });
              return;
            }
            const retryAfter = retryAfterMs(res.headers);
            reject(
              new OAuthTokenError({
                tokenUri,
                status,
                error: typeof json?.error === 'string' ? json.error : status === 200 ? 'bad_token_response' : httpStatusCode(status),
                description: typeof json?.error_description === 'string' ? json.error_description : text.slice(0, 200) || 'no body',
                retryable: status === 429 || status >= 500,
                ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}),
              }),
            );
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error(`token request timed out after ${TOKEN_REQUEST_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  }
}

