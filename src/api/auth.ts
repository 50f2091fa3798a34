import type { NextFunction, Request, Response } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import { parseApiKey, safeEqual, sha256 } from '../core/secrets.js';
import type { AppsRepo, Scope } from '../db/apps-repo.js';
import { ApiError } from './errors.js';

/** `appId` on the operator: the app it acts on (`X-Relay-App`), as the dashboard's app selector does. */
export type Principal = { kind: 'operator'; appId?: string } | { kind: 'key'; appId: string; keyId: string; scopes: ReadonlySet<Scope> };

const CACHE_MS = 15_000;

/**
 * Resolves `Authorization: Bearer …` to the operator (ADMIN_TOKEN) or an app's API key. Verified
 * keys are cached briefly so a busy push endpoint does not read the key table per request; a
 * revoked key stops working within CACHE_MS.
 */
export class Authenticator {
  private readonly cache = new Map<string, { principal: Principal | null; until: number }>();

  /** Drops a revoked key from this process's cache at once (other processes: within CACHE_MS). */
  forget(keyId: string): void {
    for (const [k, v] of this.cache) if (v.principal?.kind === 'key' && v.principal.keyId === keyId) this.cache.delete(k);
  }

  private readonly adminDigest: Buffer;

  constructor(
    private readonly apps: AppsRepo,
    adminToken: string,
  ) {
    this.adminDigest = createHash('sha256').update(adminToken).digest();
  }

  async resolve(header: string | undefined): Promise<Principal> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!m) throw new ApiError('unauthenticated', 'missing or malformed Authorization: Bearer <key>');
    const token = m[1]!;
    // One digest per request serves both the constant-time operator check (as safeEqual does it)
    // and the cache key: the token itself is never kept.
    const digest = createHash('sha256').update(token).digest();
    if (timingSafeEqual(digest, this.adminDigest)) return { kind: 'operator' };
    const cacheKey = digest.toString('base64');
    const hit = this.cache.get(cacheKey);
    const now = Date.now();
    let principal: Principal | null;
    if (hit && hit.until > now) {
      principal = hit.principal;
    } else {
      principal = await this.lookup(token);
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(cacheKey, { principal, until: now + CACHE_MS });
    }
    if (!principal) throw new ApiError('unauthenticated', 'unknown or revoked API key');
    return principal;
  }

  private async lookup(token: string): Promise<Principal | null> {
    const parsed = parseApiKey(token);
    if (!parsed) return null;
    const row = await this.apps.findKey(parsed.id);
    if (!row || row.revoked_at || !safeEqual(row.hash, sha256(parsed.secret))) return null;
    return { kind: 'key', appId: row.app_id, keyId: row.id, scopes: new Set(row.scopes as Scope[]) };
  }
}

export function principal(res: Response): Principal {
  return res.locals.principal as Principal;
}

export function authenticate(auth: Authenticator, apps: AppsRepo) {
  return async (req: Request, res: Response, next: NextFunction) => {
    // The rate limiter may have resolved it already (ApiRateLimits).
    const p = (res.locals.principal as Principal | undefined) ?? (await auth.resolve(req.headers.authorization));
    // The operator may read and act on any app (it can mint that app's keys anyway) by naming it;
    // without the header it stays the app manager, refused on app-scoped endpoints.
    const actAs = req.get('x-relay-app');
    if (p.kind === 'operator' && actAs !== undefined) {
      if (!(await apps.get(actAs))) throw new ApiError('not_found', `app ${actAs} (X-Relay-App) not found`);
      res.locals.principal = { kind: 'operator', appId: actAs } satisfies Principal;
    } else {
      res.locals.principal = p;
    }
    next();
  };
}

/** The app an app-scoped request acts on: the key's own app, never another. */
export function appOf(res: Response, scope: Scope): string {
  const p = principal(res);
  if (p.kind === 'operator') {
    if (p.appId !== undefined) return p.appId;
    throw new ApiError('forbidden', 'the operator token manages apps; use an app API key, or name the app in X-Relay-App');
  }
  if (!p.scopes.has(scope) && !p.scopes.has('admin')) throw new ApiError('forbidden', `this API key lacks the '${scope}' scope`);
  return p.appId;
}

/** For `/v1/apps/:app/...`: the operator, or a key of that very app with the `admin` scope. */
export function requireAppAdmin(res: Response, appId: string): void {
  const p = principal(res);
  if (p.kind === 'operator') return;
  if (p.appId !== appId) throw new ApiError('not_found', 'app not found');
  if (!p.scopes.has('admin')) throw new ApiError('forbidden', "this API key lacks the 'admin' scope");
}

export function requireOperator(res: Response): void {
  if (principal(res).kind !== 'operator') throw new ApiError('forbidden', 'only the operator token (ADMIN_TOKEN) may do this');
}

/**
 * For app-scoped admin routes the operator may also use (quarantine review): a key acts on its
 * own app (`app`, when given, must name it); the operator names the app in `app`.
 */
export function appOrOperator(res: Response, scope: Scope, app: string | undefined): string {
  if (principal(res).kind === 'operator') {
    if (app === undefined) throw new ApiError('validation_failed', 'query.app: required with the operator token (the app to act on)', [{ path: 'query.app', message: 'required with the operator token' }]);
    return app;
  }
  const own = appOf(res, scope);
  if (app !== undefined && app !== own) throw new ApiError('not_found', 'app not found');
  return own;
}
