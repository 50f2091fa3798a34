import type { Outcome, OutcomeReason } from './outcome.js';
import type { DeliveryStatus } from './delivery-status.js';

export interface RetryPolicy {
  maxAttempts: number;
  type: 'exponential' | 'fixed';
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Delay before attempt `attempt + 1`: exponential with full jitter, never under Retry-After. */
export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfterMs = 0, random = Math.random): number {
  const ceiling =
    policy.type === 'fixed'
      ? policy.baseDelayMs
      : Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  // Full jitter between half and all of the ceiling keeps retries of one batch from moving in lockstep.
  const jittered = policy.type === 'fixed' ? ceiling : ceiling / 2 + random() * (ceiling / 2);
  return Math.round(Math.max(jittered, retryAfterMs));
}

export type Decision =
  | { status: 'sent'; providerId: string | null }
  | { status: Extract<DeliveryStatus, 'failed' | 'invalid' | 'expired'>; error: OutcomeReason }
  | { status: 'queued'; retryAt: number; error: OutcomeReason };

/** What one outcome means for the delivery row, given how many attempts it has had. */
export function decide(outcome: Outcome, attempts: number, policy: RetryPolicy, now: number, expiresAt: number, random = Math.random): Decision {
  switch (outcome.kind) {
    case 'sent':
      return { status: 'sent', providerId: outcome.providerId ?? null };
    case 'invalid':
      return { status: 'invalid', error: outcome.reason };
    case 'failed':
      return { status: 'failed', error: outcome.reason };
    case 'expired':
      return { status: 'expired', error: outcome.reason };
    case 'retry': {
      if (attempts >= policy.maxAttempts) {
        return { status: 'failed', error: { ...outcome.reason, message: `${outcome.reason.message} (gave up after ${attempts} attempts)` } };
      }
      const retryAt = now + backoffDelay(policy, attempts, outcome.afterMs, random);
      if (retryAt >= expiresAt) {
        return { status: 'expired', error: { ...outcome.reason, message: `${outcome.reason.message} (TTL ends before the next attempt)` } };
      }
      return { status: 'queued', retryAt, error: outcome.reason };
    }
  }
}
