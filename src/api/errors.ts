import type { ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import type { z } from 'zod';

/** An error the API answers as `{"error": {"code", "message", "details"}}` with its status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const notFound = (what: string) => new ApiError(404, 'not_found', `${what} not found`);

/** 429: a request budget (API key, app or device; RATE_LIMIT_*) is spent until its window resets. */
export const rateLimited = (scope: 'key' | 'app' | 'device', limit: { points: number; seconds: number }, retryAfterS: number, headers: Record<string, string>) =>
  new ApiError(
    429,
    'rate_limited',
    `rate limit of this ${scope === 'key' ? 'API key' : scope} (${limit.points} requests per ${limit.seconds} s) reached; retry after ${retryAfterS} s`,
    { scope, limit: limit.points, windowSeconds: limit.seconds, retryAfter: retryAfterS },
    headers,
  );

/** Turns zod issues into a 400 that names each field by its path, e.g. `body.to.devices[2]`. */
export function validationError(where: string, error: z.ZodError): ApiError {
  const details = error.issues.flatMap(unionBranch).map((i) => ({ path: formatPath(where, i.path), message: i.message, code: i.code }));
  const first = details[0];
  return new ApiError(400, 'validation_failed', first ? `${first.path}: ${first.message}` : 'invalid request', details);
}

type Issue = { path: PropertyKey[]; message: string; code: string; errors?: Issue[][] };

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
    const send = (status: number, code: string, message: string, details: unknown = null) => res.status(status).json({ error: { code, message, details } });
    if (err instanceof ApiError) {
      if (err.headers) res.set(err.headers);
      send(err.status, err.code, err.message, err.details ?? null);
      return;
    }
    // body-parser errors carry a status and a type
    const e = err as { status?: number; type?: string; message?: string };
    if (e.type === 'entity.too.large') {
      send(413, 'payload_too_large', 'request body is too large');
      return;
    }
    if (e.type === 'entity.parse.failed') {
      send(400, 'invalid_json', `body is not valid JSON: ${e.message ?? ''}`.trim());
      return;
    }
    if (e.status && e.status >= 400 && e.status < 500) {
      send(e.status, 'bad_request', e.message ?? 'bad request');
      return;
    }
    logger.error({ err }, 'unhandled API error');
    send(500, 'internal', 'internal error');
  };
}
