/** Delivery states (README: Delivery states and retries). `queued` includes a token waiting for its next retry. */
export const DELIVERY_STATUSES = ['queued', 'sent', 'delivered', 'opened', 'failed', 'invalid', 'expired', 'cancelled'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** States a delivery never leaves through the send pipeline (receipts may still move sent on). */
export const END_STATUSES: readonly DeliveryStatus[] = ['failed', 'invalid', 'expired', 'cancelled'];

export function emptyCounts(): Record<DeliveryStatus, number> {
  return Object.fromEntries(DELIVERY_STATUSES.map((s) => [s, 0])) as Record<DeliveryStatus, number>;
}
