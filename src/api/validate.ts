import type { z } from 'zod';
import { ApiError, formatPath, validationError } from './errors.js';

/** Parses one part of a request (`body`, `query`, `params`) and names the part in errors. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'query' | 'params' | string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw validationError(where, r.error);
  refuseNul(r.data, where);
  return r.data;
}

/**
 * PostgreSQL text and jsonb cannot hold U+0000 (the write fails: a 500 the fuzzer found), and no
 * field has a use for it: refuse it up front as a 400 naming the field, in keys and values alike.
 */
export function refuseNul(value: unknown, where: string): void {
  const path: (string | number)[] = [];
  if (!hasNul(value, path)) return;
  const at = formatPath(where, path);
  throw new ApiError(400, 'validation_failed', `${at}: must not contain the NUL character (U+0000)`, [{ path: at, message: 'must not contain U+0000', code: 'invalid_string' }]);
}

/** Depth-first; on a hit `path` is left holding the way to it. */
function hasNul(v: unknown, path: (string | number)[]): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (v === null || typeof v !== 'object') return false;
  const entries: [string | number, unknown][] = Array.isArray(v) ? v.map((c, i) => [i, c]) : Object.entries(v);
  for (const [k, c] of entries) {
    path.push(k);
    if ((typeof k === 'string' && k.includes('\u0000')) || hasNul(c, path)) return true;
    path.pop();
  }
  return false;
}
