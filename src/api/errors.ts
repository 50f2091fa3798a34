import type { ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { DomainError, type ErrorCode } from '../core/errors.js';

/**
 * The one table of what each API error code means in HTTP: its status and the headers it always
 * carries. Typed over every code, so a new code cannot be thrown without a status here.
 */
export const API_ERRORS: Readonly<Record<ErrorCode, { status: number; headers?: Record<string, string> }>> = {
  validation_failed: { status: 400 },
  invalid_json: { status: 400 },
  bad_request: { status: 400 },
  invalid_credentials: { status: 400 },
  invalid_receipt: { status: 400 },
  unknown_delivery: { status: 400 },
  unauthenticated: { status: 401, headers: { 'WWW-Authenticate': 'Bearer' } },
  forbidden: { status: 403 },
  not_found: { status: 404 },
  conflict: { status: 409 },
  // A campaign asked to do what its state does not allow (resume a completed one).
  invalid_state: { status: 409 },
  idempotency_conflict: { status: 409 },
  // The first request is still between claiming the key and storing its message: ask for a retry.
  idempotency_in_progress: { status: 409, headers: { 'Retry-After': '1' } },
  credential_unreadable: { status: 409 },
  payload_too_large: { status: 413 },
  rate_limited: { status: 429 },
  unsupported_media_type: { status: 415 },
  internal: { status: 500 },
};

/** An error the API answers as `{"error": {"code", "message", "details"}}`, its status from {@link API_ERRORS}. */
export class ApiError extends DomainError {
  constructor(
    code: ErrorCode,
    message: string,
    details?: unknown,
    /** Headers this answer carries beyond its code's own (a Basic challenge instead of Bearer). */
    readonly headers?: Record<string, string>,
  ) {
    super(code, message, details);
  }

  get status(): number {
    return API_ERRORS[this.code].status;
  }
}

export const notFound = (what: string) => new ApiError('not_found', `${what} not found`);

/** 429: a request budget (API key, app or device; RATE_LIMIT_*) is spent until its window resets. */
export const rateLimited = (scope: 'key' | 'app' | 'device', limit: { points: number; seconds: number }, retryAfterS: number, headers: Record<string, string>) =>
  new ApiError(
    'rate_limited',
    `rate limit of this ${scope === 'key' ? 'API key' : scope} (${limit.points} requests per ${limit.seconds} s) reached; retry after ${retryAfterS} s`,
    { scope, limit: limit.points, windowSeconds: limit.seconds, retryAfter: retryAfterS },
    headers,
  );

/** Turns zod issues into a 400 that names each field by its path, e.g. `body.to.devices[2]`. */
export function validationError(where: string, error: z.ZodError): ApiError {
  const details = error.issues.flatMap(unionBranch).flatMap(unknownKeys).map((i) => ({ path: formatPath(where, i.path), message: i.message, code: i.code }));
  const first = details[0];
  return new ApiError('validation_failed', first ? `${first.path}: ${first.message}` : 'invalid request', details);
}

type Issue = { path: PropertyKey[]; message: string; code: string; errors?: Issue[][]; keys?: string[] };

/** Unknown fields of a strict object, one issue each under the field's own path: `body.overrides.huawei.typo`. */
function unknownKeys(issue: Issue): Issue[] {
  if (issue.code !== 'unrecognized_keys' || !issue.keys?.length) return [issue];
  return issue.keys.map((k) => ({ path: [...issue.path, k], message: 'unknown field', code: issue.code }));
}

/**
 * A value that matches no branch of a union gets the issues of the branch it came closest to (the
 * fewest issues), under the union's own path: "body.events[0].event: invalid option" rather than
 * "body: Invalid input".
 */
function unionBranch(issue: Issue): Issue[] {
  if (issue.code !== 'invalid_union' || !issue.errors?.length) return [issue];
  const closest = issue.errors.reduce((best, b) => (b.length > 0 && (best.length === 0 || b.length < best.length) ? b : best), [] as Issue[]);
  if (closest.length === 0) return [issue];
  return closest.flatMap((i) => unionBranch({ ...i, path: [...issue.path, ...i.path] }));
}

export function formatPath(root: string, path: readonly PropertyKey[]): string {
  let out = root;
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out;
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    // Every error has the same three fields; `details` is null when there is nothing more to say.
    const send = (code: ErrorCode, message: string, details: unknown = null, extra?: Record<string, string>) => {
      const { status, headers } = API_ERRORS[code];
      if (headers || extra) res.set({ ...headers, ...extra });
      res.status(status).json({ error: { code, message, details } });
    };
    if (err instanceof DomainError) {
      send(err.code, err.message, err.details ?? null, err instanceof ApiError ? err.headers : undefined);
      return;
    }
    // body-parser errors carry a status and a type
    const e = err as { status?: number; type?: string; message?: string };
    if (e.type === 'entity.too.large') {
      send('payload_too_large', 'request body is too large');
      return;
    }
    if (e.type === 'entity.parse.failed') {
      send('invalid_json', `body is not valid JSON: ${e.message ?? ''}`.trim());
      return;
    }
    if (e.status && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ error: { code: 'bad_request', message: e.message ?? 'bad request', details: null } });
      return;
    }
    logger.error({ err }, 'unhandled API error');
    send('internal', 'internal error');
  };
}
