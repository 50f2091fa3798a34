import type { z } from 'zod';
import { ApiError, formatPath, validationError } from './errors.js';

/** Deeper JSON is refused before validation: nothing Relay takes nests this far. */
export const MAX_JSON_DEPTH = 64;

/** Parses one part of a request (`body`, `query`, `params`) and names the part in errors. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'query' | 'params' | string): z.infer<S> {
  checkJson(value, where);
  const r = schema.safeParse(value);
  if (!r.success) throw validationError(where, r.error);
  return r.data;
}

interface Node {
  v: unknown;
  key?: string | number;
  parent?: Node;
  depth: number;
}

/**
 * Refuses, as a 400 naming the field, what PostgreSQL or a recursive walk cannot take (both were
 * 500s the fuzzer found): U+0000 in any string or key (text and jsonb cannot hold it), and
 * nesting deeper than MAX_JSON_DEPTH (20,000-deep arrays overflowed the stack). Iterative, so
 * the check itself cannot overflow.
 */
export function checkJson(value: unknown, where: string): void {
  const stack: Node[] = [{ v: value, depth: 0 }];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (typeof n.v === 'string') {
      if (n.v.includes('\u0000')) fail(where, n, 'must not contain the NUL character (U+0000)');
      continue;
    }
    if (n.v === null || typeof n.v !== 'object') continue;
    if (n.depth >= MAX_JSON_DEPTH) fail(where, n, `nested deeper than ${MAX_JSON_DEPTH} levels`);
    const entries: [string | number, unknown][] = Array.isArray(n.v) ? n.v.map((c, i) => [i, c]) : Object.entries(n.v);
    for (const [key, v] of entries) {
      const child = { v, key, parent: n, depth: n.depth + 1 };
      if (typeof key === 'string' && key.includes('\u0000')) fail(where, child, 'must not contain the NUL character (U+0000)');
      stack.push(child);
    }
  }
}

function fail(where: string, n: Node, message: string): never {
  const path: (string | number)[] = [];
  for (let at: Node | undefined = n; at?.key !== undefined; at = at.parent) path.unshift(at.key);
  const field = formatPath(where, path);
  throw new ApiError('validation_failed', `${field}: ${message}`, [{ path: field, message, code: 'invalid_value' }]);
}
