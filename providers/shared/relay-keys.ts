import type { PushContent } from '../types.js';

/**
 * Top-level payload / data keys Relay writes into every channel's message, which the device SDK
 * reads: the message id (for receipts, opened events and de-duplication across channels), the
 * image and the click action.
 */
export const RELAY_ID_KEY = 'relay_id';
export const RELAY_IMAGE_KEY = 'relay_image';
export const RELAY_CLICK_KEY = 'relay_click';

/**
 * The custom data every vendor message carries: the request's `data` plus `relay_id`
 * (the device SDK de-duplicates across channels with it). `relay_id` always wins.
 */
export function relayData(content: PushContent): Record<string, unknown> {
  return { ...(content.data ?? {}), [RELAY_ID_KEY]: content.messageId };
}

/** The same as `relayData`, with every value as a string (for vendors whose extras are string maps). */
export function relayDataStrings(content: PushContent): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(relayData(content))) {
    if (v === undefined) continue;
    out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}
