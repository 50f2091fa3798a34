import { failed, retry, sent, type Outcome, type Provider, type PushContent, type SendTarget } from './types.js';

/**
 * What the self channel needs from the rest of Relay (src/self/dispatch.ts): PostgreSQL for the
 * per-device seq, Redis presence for where each device is connected, the gateway bus, and the
 * ack-timeout queue.
 */
export interface SelfDispatch {
  /** Gives each target the next seq of its device and stores it on the delivery (one statement). */
  assignSeq(appId: string, targets: readonly { deliveryId: string; deviceId: string }[]): Promise<Map<string, number>>;
  /** The live gateway node of each device that is online. */
  locate(appId: string, deviceIds: readonly string[]): Promise<Map<string, string>>;
  /** Checks after SELF_ACK_TIMEOUT that these deliveries (to online devices) were acked, else falls back. */
  scheduleAckCheck(appId: string, messageId: string, deliveryIds: readonly string[]): Promise<void>;
  /** Hands the message to the nodes holding the devices: one pipelined round trip. */
  publish(push: SelfPush, byNode: ReadonlyMap<string, [deviceId: string, seq: number][]>): Promise<void>;
}

export interface SelfPush {
  appId: string;
  messageId: string;
  payload: Record<string, unknown>;
  expiresAt: number;
}

/**
 * The JSON a device receives on `devices/<id>` besides the gateway's own `type`, `id`, `seq` and
 * `expiresAt`: the notification and data, then `overrides.self` merged last.
 */
export function selfPayload(content: Pick<PushContent, 'notification' | 'data' | 'overrides'>): Record<string, unknown> {
  return {
    ...(content.notification ? { notification: content.notification } : {}),
    ...(content.data ? { data: content.data } : {}),
    ...(content.overrides?.self ?? {}),
  };
}

/**
 * Relay's own long-connection channel. No credentials: a target's token is its device id. Every
 * target gets its device's next seq, and the delivery is `sent` (providerId = seq) whether the
 * device is online or not: PostgreSQL is the offline store, and a gateway hands the message out
 * when the device connects. Online devices get it at once through their gateway node, and an
 * ack-timeout check falls back to another channel when no PUBACK comes.
 */
export function createSelfProvider(appId: string, dispatch: SelfDispatch): Provider {
  return {
    channel: 'self',
    async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
      const seqs = new Map<string, number>();
      const fresh: { deliveryId: string; deviceId: string }[] = [];
      for (const t of targets) {
        if (t.seq !== undefined) seqs.set(t.deliveryId, t.seq);
        else fresh.push({ deliveryId: t.deliveryId, deviceId: t.token });
      }
      try {
        // A retried delivery keeps the seq it was given the first time.
        for (const [id, seq] of await dispatch.assignSeq(appId, fresh)) seqs.set(id, seq);
      } catch (err) {
        return targets.map(() => retry({ code: 'SeqUnavailable', message: `could not assign a sequence number: ${(err as Error).message}` }));
      }
      const numbered = targets.filter((t) => seqs.has(t.deliveryId));
      try {
        const nodes = await dispatch.locate(appId, [...new Set(numbered.map((t) => t.token))]);
        const online = numbered.filter((t) => nodes.has(t.token));
        if (online.length > 0) {
          // Scheduled before the publish: a crash in between leaves a check that finds the row unsent.
          await dispatch.scheduleAckCheck(appId, content.messageId, online.map((t) => t.deliveryId));
          const byNode = new Map<string, [string, number][]>();
          for (const t of online) {
            const node = nodes.get(t.token)!;
            const list = byNode.get(node) ?? [];
            list.push([t.token, seqs.get(t.deliveryId)!]);
            byNode.set(node, list);
          }
          await dispatch.publish({ appId, messageId: content.messageId, payload: selfPayload(content), expiresAt: content.expiresAt }, byNode);
        }
      } catch (err) {
        return targets.map((t) =>
          seqs.has(t.deliveryId)
            ? retry({ code: 'GatewayBusUnavailable', message: `could not reach the gateways: ${(err as Error).message}` })
            : failed({ code: 'UnknownDevice', message: 'the device is not registered (any more)' }),
        );
      }
      return targets.map((t) => {
        const seq = seqs.get(t.deliveryId);
        return seq === undefined ? failed({ code: 'UnknownDevice', message: 'the device is not registered (any more)' }) : sent(String(seq));
      });
    },
    async close() {},
  };
}
