import type { z } from 'zod';
import { validationError } from './errors.js';

/** Parses one part of a request (`body`, `query`, `params`) and names the part in errors. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'query' | 'params' | string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw validationError(where, r.error);
  return r.data;
}
