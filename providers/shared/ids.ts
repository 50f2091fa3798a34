import { createHash } from 'node:crypto';

/** Stable vendor-side ids derived from Relay's strings (collapse keys, message ids). */

/**
 * A stable notification id in 1..2147483647 from a string (collapse key or message id). Equal
 * strings give equal ids on every vendor that collapses by integer notify id.
 */
export function notifyIdFrom(key: string): number {
  const h = createHash('sha256').update(key).digest().readUInt32BE(0) & 0x7fffffff;
  return h === 0 ? 1 : h;
}

/** A short id of `[0-9A-Za-z_-]{len}` derived from a string (e.g. Meizu `notifyKey`, ≤8 chars). */
export function shortIdFrom(key: string, len = 20): string {
  return createHash('sha256').update(key).digest('base64url').slice(0, len);
}

