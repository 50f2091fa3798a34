import { failed, RELAY_CODES, type Outcome, type OutcomeReason, type PushNotification } from '../types.js';

/** A vendor message built from neutral content: the value, or the one outcome every target gets. */
export type Built<T> = { ok: true; value: T } | { ok: false; outcome: Outcome };

/** A message the vendor cannot carry: every target fails with `reason`. */
export const refuse = (reason: OutcomeReason): Built<never> => ({ ok: false, outcome: failed(reason) });

/**
 * Title and body for a vendor that carries notifications only: each falls back on the other, and a
 * message with neither (data only) is refused as `dataOnlyUnsupported`, naming the vendor's fields.
 */
export function notificationOnly(n: PushNotification | undefined, vendor: string, fields: string): Built<{ title: string; body: string }> {
  const title = n?.title ?? n?.body;
  const body = n?.body ?? n?.title;
  if (!title || !body) {
    return refuse({ code: RELAY_CODES.dataOnlyUnsupported, message: `${vendor} carries notifications only (${fields}); data-only messages cannot be sent` });
  }
  return { ok: true, value: { title, body } };
}
