import { expired, type Outcome } from '../types.js';

/** A message's remaining TTL, and what a provider answers once it has run out. */

/**
 * Whole seconds left until `expiresAt` (ms epoch), clamped to `[0, max]`. 0 means expired: a
 * provider must not send (see `expiredOutcome`).
 */
export function remainingTtlSeconds(expiresAt: number, opts: { now?: number; max?: number } = {}): number {
  const now = opts.now ?? Date.now();
  const left = Math.floor((expiresAt - now) / 1000);
  if (!Number.isFinite(left) || left <= 0) return 0;
  return opts.max !== undefined ? Math.min(left, opts.max) : left;
}

/** What a provider answers for a message whose TTL ran out before it was sent. */
export function expiredOutcome(expiresAt: number): Outcome {
  return expired(expiresAt, 'message TTL elapsed before it was sent');
}

