import { z } from 'zod';
import { DEFAULT_MAX_PACKET_BYTES, pushBody, pushPacketBytes } from '../src/core/self-wire.js';
import { expired, failed, type ChannelModule, invalid, retry, sent, type Outcome, type Provider, type PushContent, type SendTarget, RELAY_CODES } from './types.js';

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
 * `overrides.self`: any JSON object, merged last into what the device receives (the app's own
 * client reads it, so Relay cannot know its fields).
 */
export const selfOverridesSchema = z.record(z.string(), z.unknown()).describe('Fields merged last into the JSON the device receives');

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

/** A seq as wide as a device's can get: a push is sized before its seq is known. */
const WIDEST_SEQ = Number.MAX_SAFE_INTEGER;

const unknownDevice = (deviceId: string): Outcome =>
  invalid({ code: RELAY_CODES.unknownDevice, message: 'the device is not registered (any more)', evidence: { deviceId } });

/**
 * Relay's own long-connection channel. No credentials: a target's token is its device id. Every
 * target gets its device's next seq, and the delivery is `sent` (providerId = seq) whether the
 * device is online or not: PostgreSQL is the offline store, and a gateway hands the message out
 * when the device connects. Online devices get it at once through their gateway node, and an
 * ack-timeout check falls back to another channel when no PUBACK comes.
 *
 * Refused before a seq is spent: an expired message (`failed` `expired`), and a push whose MQTT
 * PUBLISH would exceed the gateway's Maximum Packet Size (`failed` `PayloadTooLarge`). A device
 * that no longer exists is `invalid` (`UnknownDevice`): the target is gone, like a dead token.
 */
export function createSelfProvider(appId: string, dispatch: SelfDispatch): Provider {
  return {
    channel: 'self',
    async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
      if (targets.length === 0) return [];
      if (!(content.expiresAt > Date.now())) {
        return targets.map(() => expired(content.expiresAt));
      }
      const payload = selfPayload(content);
      let bodyBytes: number;
      try {
        bodyBytes = Buffer.byteLength(pushBody(content.messageId, WIDEST_SEQ, content.expiresAt, payload));
      } catch (err) {
        return targets.map(() => failed({ code: RELAY_CODES.invalidPayload, message: `the payload cannot be serialised: ${(err as Error).message}` }));
      }
      const refused = new Map<string, Outcome>();
      for (const t of targets) {
        const bytes = pushPacketBytes(t.token, bodyBytes);
        if (bytes > DEFAULT_MAX_PACKET_BYTES) {
          refused.set(
            t.deliveryId,
            failed({ code: RELAY_CODES.payloadTooLarge, message: `the push is ${bytes} bytes as an MQTT packet; the self channel allows ${DEFAULT_MAX_PACKET_BYTES}`, evidence: { bytes, limit: DEFAULT_MAX_PACKET_BYTES } }),
          );
        }
      }
      const sendable = refused.size === 0 ? targets : targets.filter((t) => !refused.has(t.deliveryId));

      const seqs = new Map<string, number>();
      const fresh: { deliveryId: string; deviceId: string }[] = [];
      for (const t of sendable) {
        if (t.seq !== undefined) seqs.set(t.deliveryId, t.seq);
        else fresh.push({ deliveryId: t.deliveryId, deviceId: t.token });
      }
      try {
        // A retried delivery keeps the seq it was given the first time.
        for (const [id, seq] of await dispatch.assignSeq(appId, fresh)) seqs.set(id, seq);
      } catch (err) {
        const reason = { code: RELAY_CODES.seqUnavailable, message: `could not assign a sequence number: ${(err as Error).message}` };
        return targets.map((t) => refused.get(t.deliveryId) ?? retry(reason));
      }
      const numbered = sendable.filter((t) => seqs.has(t.deliveryId));
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
          await dispatch.publish({ appId, messageId: content.messageId, payload, expiresAt: content.expiresAt }, byNode);
        }
      } catch (err) {
        const reason = { code: RELAY_CODES.gatewayBusUnavailable, message: `could not reach the gateways: ${(err as Error).message}` };
        return targets.map((t) => refused.get(t.deliveryId) ?? (seqs.has(t.deliveryId) ? retry(reason) : unknownDevice(t.token)));
      }
      return targets.map((t) => {
        const seq = seqs.get(t.deliveryId);
        return refused.get(t.deliveryId) ?? (seq === undefined ? unknownDevice(t.token) : sent(String(seq)));
      });
    },
    async close() {},
  };
}

/**
 * The self channel as the registry sees it: built in (no credentials; its provider is made per app
 * by the worker role with the gateway bus), reached by device id, overrides merged into the payload.
 */
const selfModule = {
  channel: 'self' as const,
  builtin: true as const,
  overridesSchema: selfOverridesSchema,
} satisfies ChannelModule;

export default selfModule;
