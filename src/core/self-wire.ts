/**
 * The self channel's wire format, shared by the gateway (src/gateway/) that writes it and the
 * provider (providers/self.ts) that must size a push before handing it over. Pure: JSON and byte
 * arithmetic only.
 */

export const KIND_PUSH = 0;
export const KIND_REVOKE = 1;

/** The gateway's default Maximum Packet Size (`GatewayOptions.maxPacketBytes`): 256 KiB. */
export const DEFAULT_MAX_PACKET_BYTES = 256 * 1024;

export const DEVICE_PREFIX = 'devices/';

/** The topic a device receives its pushes on. */
export function deviceTopic(deviceId: string): string {
  return DEVICE_PREFIX + deviceId;
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
export function buildBody(kind: number, id: string, seq: number, expiresAt: number, payload: Record<string, unknown> | null): string {
  if (kind === KIND_REVOKE) return JSON.stringify({ type: 'revoke', id, seq });
  const o: Record<string, unknown> = { type: 'push', id, seq, ...payload };
  o.type = 'push';
  o.id = id;
  o.seq = seq;
  o.expiresAt = expiresAt;
  return JSON.stringify(o);
}
