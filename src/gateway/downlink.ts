import { deviceTopic } from './acl.js';
import type { DeliverMessage, PendingDelivery } from './types.js';

export const KIND_PUSH = 0;
export const KIND_REVOKE = 1;

/** The gateway's default Maximum Packet Size (`GatewayOptions.maxPacketBytes`): 256 KiB. */
export const DEFAULT_MAX_PACKET_BYTES = 256 * 1024;

/**
 * One downlink held by a session: queued (body set) or in flight (body released). The JSON body
 * is built when the message is accepted, so a payload that cannot be serialised fails the
 * caller's deliver() and never a session.
 */
export class Downlink {
  written = false;
  /** The JSON text devices receive; null once written. */
  body: string | null;
  constructor(
    readonly kind: number,
    readonly id: string,
    readonly seq: number,
    /** Epoch ms; 0 = never expires (revokes). */
    readonly expiresAt: number,
    payload: Record<string, unknown> | null,
    public dup: boolean,
  ) {
    this.body = buildBody(kind, id, seq, expiresAt, payload);
  }

  static push(msg: DeliverMessage): Downlink {
    return new Downlink(KIND_PUSH, msg.id, msg.seq, msg.expiresAt, msg.payload, msg.dup === true);
  }

  static revoke(id: string, seq: number): Downlink {
    return new Downlink(KIND_REVOKE, id, seq, 0, null, false);
  }

  expired(now: number): boolean {
    return this.expiresAt > 0 && this.expiresAt <= now;
  }

  /** MQTT 5 Message Expiry Interval: the remaining TTL in whole seconds, at least 1. */
  remainingSec(now: number): number {
    return Math.max(1, Math.ceil((this.expiresAt - now) / 1000));
  }

  pending(): PendingDelivery {
    return {
      kind: this.kind === KIND_REVOKE ? 'revoke' : 'push',
      id: this.id,
      seq: this.seq,
      expiresAt: this.expiresAt,
      written: this.written,
    };
  }
}

/** The JSON body of a push as devices receive it (what `Downlink.push` writes). */
export function pushBody(id: string, seq: number, expiresAt: number, payload: Record<string, unknown>): string {
  return buildBody(KIND_PUSH, id, seq, expiresAt, payload);
}

/**
 * Bytes of the QoS 1 PUBLISH that carries a push body of `bodyBytes` to `deviceId`, in its MQTT 5
 * form (3.1.1 has no properties, so it is smaller): fixed header, remaining length, topic, packet
 * id, properties (length, Payload Format Indicator, Message Expiry Interval), body. Compare it with
 * a Maximum Packet Size, which counts the whole packet.
 */
export function pushPacketBytes(deviceId: string, bodyBytes: number): number {
  const rest = 2 + Buffer.byteLength(deviceTopic(deviceId)) + 2 + (1 + 2 + 5) + bodyBytes;
  return 1 + (rest < 128 ? 1 : rest < 16_384 ? 2 : rest < 2_097_152 ? 3 : 4) + rest;
}

/**
 * The JSON body devices receive on `devices/<id>`:
 * push `{"type":"push","id","seq",…payload,"expiresAt"}`, revoke `{"type":"revoke","id","seq"}`.
 * The gateway's own fields win over same-named fields in the payload.
 */
function buildBody(kind: number, id: string, seq: number, expiresAt: number, payload: Record<string, unknown> | null): string {
  if (kind === KIND_REVOKE) return JSON.stringify({ type: 'revoke', id, seq });
  const o: Record<string, unknown> = { type: 'push', id, seq, ...payload };
  o.type = 'push';
  o.id = id;
  o.seq = seq;
  o.expiresAt = expiresAt;
  return JSON.stringify(o);
}
