import type { SelfDispatch } from '../../providers/self.js';
import type { Context } from '../context.js';
import { SELF_ACK_JOB_OPTIONS } from '../queues.js';
import type { BusPublisher, BusPush } from './bus.js';
import type { Presence } from './presence.js';

/** The worker side of the self channel: seq in PostgreSQL, presence and bus in Redis, ack checks in BullMQ. */
export function selfDispatch(ctx: Context, presence: Presence, bus: BusPublisher): SelfDispatch {
  return {
    assignSeq: (appId, targets) => ctx.repos.self.assignSeq(appId, targets),
    locate: (appId, deviceIds) => presence.locate(appId, deviceIds),
    async scheduleAckCheck(appId, messageId, deliveryIds) {
      await ctx.queues.selfAck.add('check', { appId, messageId, ids: [...deliveryIds] }, { ...SELF_ACK_JOB_OPTIONS, delay: ctx.config.SELF_ACK_TIMEOUT });
    },
    async publish(push, byNode) {
      const batch = [...byNode].map(([node, to]) => {
        const msg: BusPush = { t: 'push', appId: push.appId, id: push.messageId, payload: push.payload, expiresAt: push.expiresAt, to };
        return { node, msg };
      });
      const received = await bus.publish(batch);
      const lost = batch.filter((_, i) => received[i] === 0).map((b) => b.node);
      // A node that no longer listens died without cleaning up: its devices read as offline once
      // its liveness mark runs out; meanwhile the ack check falls these deliveries back.
      if (lost.length > 0) ctx.logger.debug({ nodes: lost }, 'self channel: publish reached no gateway node');
    },
  };
}
