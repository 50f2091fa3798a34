import type { DeliveryStatus } from '../core/delivery-status.js';

export type Counts = Record<DeliveryStatus, number>;

/**
 * Campaign rates (README: Campaigns): delivered / sent and opened / delivered, over everything that reached each stage
 * (a delivery now `opened` was sent and delivered too).
 */
export function rates(c: Counts): { delivered: number | null; opened: number | null } {
  const sent = c.sent + c.delivered + c.opened;
  const delivered = c.delivered + c.opened;
  // Null, not 0, when nothing reached the stage yet: no rate exists, as GET /v1/stats says too.
  return { delivered: sent ? delivered / sent : null, opened: delivered ? c.opened / delivered : null };
}

/**
 * The A/B winner: the variant with the best share of its sends that reached the metric (opened
 * or delivered); a share over sends, not over deliveries, so a variant is not favoured by
 * channels that report no delivery receipts. Ties go to the variant listed first.
 */
export function winner(names: readonly string[], byVariant: Record<string, Counts>, metric: 'opened' | 'delivered'): string {
  let best = names[0]!;
  let bestRate = -1;
  for (const name of names) {
    const c = byVariant[name];
    const sent = c ? c.sent + c.delivered + c.opened : 0;
    const hit = c ? (metric === 'opened' ? c.opened : c.delivered + c.opened) : 0;
    const r = sent ? hit / sent : 0;
    if (r > bestRate) {
      best = name;
      bestRate = r;
    }
  }
  return best;
}
