import type { NextFunction, Request, Response } from 'express';
import type { RedisClient } from '../redis.js';
import type { Logger } from 'pino';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config, RateLimit } from '../config.js';
import type { Authenticator } from './auth.js';
import { rateLimited } from './errors.js';
import { verifyDeviceCredential } from '../core/device-token.js';

type Scope = 'key' | 'app' | 'device';

/**
 * Request budgets in Redis, shared by every API process: per API key, per app (all its keys
 * together) and, for the device SDK's endpoints (`POST /v1/events`, `GET /v1/devices/:id/inbox`
 * with `Authorization: Device …`), per device. Each budget is one fixed window kept by
 * rate-limiter-flexible in one atomic Lua call; a key's and its app's are asked together, so a
 * request waits for one Redis round trip. Every limited answer carries the binding budget as
 * `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` and `RateLimit-Policy` (the
 * IETF httpapi draft's fields, https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/),
 * and a 429 adds `Retry-After`. The operator token, unauthenticated requests (they fail anyway)
 * and vendor receipt callbacks are not limited. If Redis fails, requests pass: the limit
 * protects the service, it must not become the outage.
 */
export class ApiRateLimits {
  private readonly limiters: Partial<Record<Scope, { limiter: RateLimiterRedis; limit: RateLimit }>> = {};
  private lastWarning = 0;

  constructor(
    redis: RedisClient,
    config: Pick<Config, 'QUEUE_PREFIX' | 'RATE_LIMIT_API_KEY' | 'RATE_LIMIT_APP' | 'RATE_LIMIT_DEVICE'>,
    private readonly auth: Authenticator,
    private readonly deviceSecret: string,
    private readonly logger: Logger,
  ) {
    const budgets: Record<Scope, RateLimit | null> = { key: config.RATE_LIMIT_API_KEY, app: config.RATE_LIMIT_APP, device: config.RATE_LIMIT_DEVICE };
    for (const [scope, limit] of Object.entries(budgets) as [Scope, RateLimit | null][]) {
      if (!limit) continue;
      const limiter = new RateLimiterRedis({ storeClient: redis, keyPrefix: `${config.QUEUE_PREFIX}:ratelimit:${scope}`, points: limit.points, duration: limit.seconds });
      this.limiters[scope] = { limiter, limit };
    }
  }

  /** Express middleware, before the routes: identifies the caller, then takes one point from each of its budgets. */
  middleware() {
    return (req: Request, res: Response, next: NextFunction) => {
      this.check(req, res).then(next, next);
    };
  }

  private async check(req: Request, res: Response): Promise<void> {
    if (!req.path.startsWith('/v1/') || req.path.startsWith('/v1/receipts/')) return;
    const budgets = await this.budgetsOf(req, res);
    if (budgets.length === 0) return;
    let outcomes: { scope: Scope; limit: RateLimit; res: RateLimiterRes; rejected: boolean }[];
    try {
      outcomes = await Promise.all(
        budgets.map(({ scope, id }) => {
          const { limiter, limit } = this.limiters[scope]!;
          return limiter.consume(id).then(
            (r) => ({ scope, limit, res: r, rejected: false }),
            (r: unknown) => {
              if (r instanceof RateLimiterRes) return { scope, limit, res: r, rejected: true };
              throw r;
            },
          );
        }),
      );
    } catch (err) {
      if (Date.now() - this.lastWarning > 60_000) {
        this.lastWarning = Date.now();
        this.logger.warn({ err: (err as Error).message }, 'rate limits unavailable (Redis); requests pass unlimited');
      }
      return;
    }
    // The binding budget: a rejected one, else the one with the fewest requests left.
    const binding = outcomes.reduce((a, b) => (a.rejected !== b.rejected ? (a.rejected ? a : b) : b.res.remainingPoints < a.res.remainingPoints ? b : a));
    const resetS = Math.max(1, Math.ceil(binding.res.msBeforeNext / 1000));
    const headers: Record<string, string> = {
      'RateLimit-Limit': String(binding.limit.points),
      'RateLimit-Remaining': String(Math.max(0, binding.res.remainingPoints)),
      'RateLimit-Reset': String(resetS),
      'RateLimit-Policy': outcomes.map((o) => `${o.limit.points};w=${o.limit.seconds};comment="${o.scope}"`).join(', '),
    };
    res.set(headers);
    if (binding.rejected) throw rateLimited(binding.scope, binding.limit, resetS, { ...headers, 'Retry-After': String(resetS) });
  }

  /** The budgets a request draws on: its device's, or its API key's and that key's app's. */
  private async budgetsOf(req: Request, res: Response): Promise<{ scope: Scope; id: string }[]> {
    const header = req.get('authorization') ?? '';
    if (/^Device\s/i.test(header)) {
      // The signature alone names the budget; whether the password is still current (its epoch)
      // is the route's check, so a rate limit costs no extra Redis read.
      const m = /^Device\s+(.+):([^:\s]+)$/.exec(header);
      const cred = m && this.limiters.device ? verifyDeviceCredential(this.deviceSecret, m[1]!, m[2]!) : null;
      return cred ? [{ scope: 'device', id: `${cred.appId}:${m![1]}` }] : [];
    }
    if (!this.limiters.key && !this.limiters.app) return [];
    // The routes' own authentication reuses this (auth.ts: res.locals.principal); a bad key is left to them.
    const principal = await this.auth.resolve(header).catch(() => undefined);
    if (principal?.kind !== 'key') return [];
    res.locals.principal = principal;
    return [
      ...(this.limiters.key ? [{ scope: 'key' as const, id: principal.keyId }] : []),
      ...(this.limiters.app ? [{ scope: 'app' as const, id: principal.appId }] : []),
    ];
  }
}
