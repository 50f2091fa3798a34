/** Plain-JSON helpers every provider shares: one `isRecord`, one `deepMerge`. */

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function stripUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/**
 * Deep-merges plain objects: objects merge key by key, arrays and scalars from `b` replace,
 * `undefined` is skipped. Used to apply a request's raw overrides last.
 */
export function deepMerge<T extends Record<string, unknown>>(a: T, b: Record<string, unknown> | undefined): T {
  if (!b) return a;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] = isRecord(prev) && isRecord(v) ? deepMerge(prev, v) : v;
  }
  return out as T;
}

/** A bounded copy of a vendor answer for `evidence` (long bodies are cut). */
export function clip(v: unknown, max = 2000): unknown {
  if (v === undefined) return undefined;
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  if (s === undefined) return undefined;
  if (s.length <= max) return v;
  return `${s.slice(0, max)}…`;
}
