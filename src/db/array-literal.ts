/**
 * PostgreSQL array literals for the hot statements' parameters. node-postgres turns a JS array
 * into a literal by escaping every element with two regex replacements and a call per element;
 * for batches of hundreds of ids and tokens that was a tenth of the send path's CPU. Decimal ids
 * need no quoting at all, and most text needs only a check.
 */

/** A bigint[] literal from decimal ids. */
export function idArray(ids: readonly string[]): string {
  const literal = `{${ids.join(',')}}`;
  if (!/^\{[0-9,]*\}$/.test(literal)) throw new Error('delivery ids must be decimal integers');
  return literal;
}

const NEEDS_ESCAPE = /[\\"]/;

/** A text[] literal: every element quoted (so "NULL" stays a string), null as NULL. */
export function textArray(values: readonly (string | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const v = values[i];
    if (v === null || v === undefined) out += 'NULL';
    else out += NEEDS_ESCAPE.test(v) ? `"${v.replace(/[\\"]/g, '\\$&')}"` : `"${v}"`;
  }
  return out + '}';
}
