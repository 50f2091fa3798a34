import { RELAY_CODES } from './outcome-codes.js';

/** Why a send did not end in `sent`: the provider's own code (or Relay's), a human message and the raw evidence. */
export interface OutcomeReason {
  code: string;
  message: string;
  /** What the provider answered (status, reason, timestamp…): kept with a quarantined token. */
  evidence?: Record<string, unknown>;
}

/**
 * The fate of one token in one send attempt. Providers classify every answer into one of these;
 * the send worker alone decides what a classification means for the delivery row (core/retry.ts).
 * `expired`: the message's deadline passed before it could be sent; the delivery ends `expired`.
 */
export type Outcome =
  | { kind: 'sent'; providerId?: string }
  | { kind: 'retry'; afterMs?: number; reason: OutcomeReason }
  | { kind: 'invalid'; reason: OutcomeReason }
  | {
      kind: 'failed';
      reason: OutcomeReason;
      /**
       * The app's daily total at this provider is used up (see `quotaDay`): the provider is not
       * called again for the app until this moment (ms since the epoch), its next daily reset.
       */
      quotaResetAt?: number;
    }
  | { kind: 'expired'; reason: OutcomeReason };

export const sent = (providerId?: string): Outcome => ({ kind: 'sent', ...(providerId ? { providerId } : {}) });
export const retry = (reason: OutcomeReason, afterMs?: number): Outcome => ({
  kind: 'retry',
  reason,
  ...(afterMs !== undefined && Number.isFinite(afterMs) ? { afterMs: Math.max(0, afterMs) } : {}),
});
export const invalid = (reason: OutcomeReason): Outcome => ({ kind: 'invalid', reason });
export const failed = (reason: OutcomeReason): Outcome => ({ kind: 'failed', reason });

/**
 * The vendor refused because the app's daily total is used up (vivo 10070, OPPO 33; see
 * docs/quota-days.md): the delivery fails `quota` now, with the vendor's own code as evidence,
 * and the app skips this vendor until `resetAt`, when the vendor's day starts again. Nothing is
 * held back to be sent at the reset: a notification arriving after midnight helps nobody.
 */
export const quotaDay = (reason: OutcomeReason, resetAt: number): Outcome => ({
  kind: 'failed',
  reason: {
    code: RELAY_CODES.quota,
    message: `${reason.message} (the app's daily total is used up until ${new Date(resetAt).toISOString()})`,
    evidence: { ...reason.evidence, vendorCode: reason.code, resetAt },
  },
  quotaResetAt: resetAt,
});

/** The message's deadline passed before it was sent: no request is made, the delivery ends `expired`. */
export const expired = (expiresAt: number, message = 'the message deadline has passed; not sent'): Outcome => ({
  kind: 'expired',
  reason: { code: RELAY_CODES.expired, message, evidence: { expiresAt } },
});
