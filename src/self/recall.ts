import type { Context } from '../context.js';
import { RecallsRepo } from '../db/recalls-repo.js';
import type { BusPublisher, BusRevoke } from './bus.js';
import type { Presence } from './presence.js';

/** Withdraws a message from the self channel; resolves with how many devices' copies were withdrawn. */
export type SelfRecall = (appId: string, messageId: string) => Promise<number>;

/**
 * Sends a revoke (`{"type":"revoke","id","seq"}`) to every device of `to` that is online now, on
 * the node that holds it. An offline device gets it from its gateway on its next connect, from
 * the `pending` recall rows (src/self/gateway-node.ts): pub/sub may lose a publish, PostgreSQL
 * does not.
 */
export async function publishRevokes(presence: Presence, bus: BusPublisher, appId: string, messageId: string, to: readonly { deviceId: string; seq: number }[]): Promise<void> {
  if (to.length === 0) return;
  const nodes = await presence.locate(appId, to.map((r) => r.deviceId));
  const byNode = new Map<string, [string, number][]>();
  for (const r of to) {
    const node = nodes.get(r.deviceId);
    if (node) byNode.set(node, [...(byNode.get(node) ?? []), [r.deviceId, r.seq]]);
  }
  await bus.publish([...byNode].map(([node, list]) => ({ node, msg: { t: 'revoke', appId, id: messageId, to: list } satisfies BusRevoke })));
}

/**
 * Recall on the self channel, at once from the API: the message's self deliveries not acked yet
 * end `cancelled`, so no gateway hands them out again (a push still queued in its gateway is
 * dropped instead of sent), and each gets a `pending` recall row and a revoke. The recall job
 * (workers/recall.ts) does the same for copies the devices had already acked. A revoke is
 * `withdrawn` once the device PUBACKs it; an offline device gets it when it reconnects.
 */
export function selfRecall(ctx: Context, presence: Presence, bus: BusPublisher): SelfRecall {
  const recalls = new RecallsRepo(ctx.db);
  return async (appId, messageId) => {
    const rows = await ctx.repos.self.withdraw(messageId);
    if (rows.length === 0) return 0;
    // Rows first: a revoke acked before its row exists would be lost.
    await recalls.record(
      messageId,
      rows.map((r) => ({ deliveryId: r.id, appId, deviceId: r.deviceId, channel: 'self', state: 'pending', reason: null, seq: String(r.seq) })),
    );
    await publishRevokes(presence, bus, appId, messageId, rows);
    return rows.length;
  };
}
