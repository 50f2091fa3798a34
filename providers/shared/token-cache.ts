import { createHash } from 'node:crypto';
import { failed, retry, type Outcome, type OutcomeReason } from '../types.js';

/**
 * The one single-flight access-token cache every provider with an OAuth-style token uses (the
 * vendors' client-credential tokens, FCM's service-account tokens): a fresh token is reused, at
 * most one fetch is in flight, and a token the vendor refused is replaced once however many
 * batches saw it refused.
 */

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

  /**
   * Drops the cached token if it is still `rejected` (a token the vendor refused); `undefined`
   * drops whatever is cached. A token already replaced is kept: N refusals of one token cost one
   * fetch between them.
   */
  invalidate(rejected: string | undefined): void {
    if (this.current && (rejected === undefined || this.current.token === rejected)) this.current = undefined;
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

