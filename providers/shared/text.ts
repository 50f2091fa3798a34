import type { PushNotification } from '../types.js';

/** Notification text as vendors with length limits and mandatory fields want it. */

/**
 * Cuts `s` to at most `max` UTF-16 code units, so vendors with field limits do not reject it.
 * Vendor servers are Java: their "characters" are `String.length()`, where an emoji counts 2, so
 * a code-point count could send twice the limit. A cut by units is never longer by either count.
 * The cut never falls inside a surrogate pair (that would send a lone surrogate, which is not
 * valid UTF-8); it may still fall inside a grapheme cluster (a ZWJ emoji, a flag).
 */
export function truncateChars(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = Math.max(0, Math.floor(max));
  if (end > 0 && isHighSurrogate(s.charCodeAt(end - 1))) end--;
  return s.slice(0, end);
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/**
 * A notification's title and body for vendors that need both: a blank one (whitespace only) counts
 * as absent, and each falls back on the other. Undefined when both are blank: there is nothing to
 * show. Both are trimmed, so a later cut to the vendor's limit cannot leave only whitespace (Xiaomi
 * refuses an all-whitespace title).
 */
export function notificationTexts(n: PushNotification | undefined): { title: string; body: string } | undefined {
  const title = n?.title?.trim() || undefined;
  const body = n?.body?.trim() || undefined;
  if (!title && !body) return undefined;
  return { title: title ?? body!, body: body ?? title! };
}

export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}
