import type { Context } from '../context.js';
import type { BusPublisher, BusRevoke } from './bus.js';
import type { Presence } from './presence.js';

/** Withdraws a message from the self channel; resolves with how many devices' copies were withdrawn. */
export type SelfRecall = (appId: string, messageId: string) => Promise<number>;

/**
 * Recall on the self channel (README: Self-hosted channel): the message's self deliveries not acked yet end
 * `cancelled`, so no gateway hands them out again, and every online device among them gets a
 * revoke (`{"type":"revoke","id","seq"}`) that the SDK honours; a push still queued in its gateway
 * is dropped instead of sent. A device offline right now that had already received the message
 * without acking it gets no revoke (not kept for its next connect).
 */
export function selfRecall(ctx: Context, presence: Presence, bus: BusPublisher): SelfRecall {
  return async (appId, messageId) => {
    const rows = await ctx.repos.self.withdraw(messageId);
    if (rows.length === 0) return 0;
    const nodes = await presence.locate(appId, rows.map((r) => r.deviceId));
    const byNode = new Map<string, [string, number][]>();
    for (const r of rows) {
      const node = nodes.get(r.deviceId);
      if (node) byNode.set(node, [...(byNode.get(node) ?? []), [r.deviceId, r.seq]]);
    }
    await bus.publish([...byNode].map(([node, to]) => ({ node, msg: { t: 'revoke', appId, id: messageId, to } satisfies BusRevoke })));
    return rows.length;
  };
}
