/**
 * Which topics a device may touch. Exact string matches only: no wildcards are ever granted,
 * so a device id containing `+`, `#` or `/` cannot widen its reach (it simply cannot subscribe).
 */

import { DEVICE_PREFIX, deviceTopic } from '../core/self-wire.js';

export { deviceTopic };

export const HEARTBEAT_TOPIC = '$relay/heartbeat';
export const CONTROL_TOPIC = '$relay/control';

/** Subscription bits kept per session. */
export const SUB_DEVICE = 1;
export const SUB_HEARTBEAT = 2;
export const SUB_CONTROL = 4;


/**
 * The subscription bit a device gets for `topic`, or 0 when the subscription is refused.
 * The granted QoS is min(requested, 1) for every allowed topic.
 */
export function subscriptionBit(deviceId: string, topic: string): number {
  if (topic === HEARTBEAT_TOPIC) return SUB_HEARTBEAT;
  if (topic === CONTROL_TOPIC) return SUB_CONTROL;
  if (topic.length === DEVICE_PREFIX.length + deviceId.length && topic.startsWith(DEVICE_PREFIX) && topic.endsWith(deviceId)) {
    return SUB_DEVICE;
  }
  return 0;
}

/** True for a filter with `+` or `#`: MQTT 5 refuses it as unsupported (0xA2), not as forbidden. */
export function isWildcard(filter: string): boolean {
  return filter.includes('#') || filter.includes('+');
}

export function grantedQos(requested: number): 0 | 1 {
  return requested >= 1 ? 1 : 0;
}

export type UplinkKind = 'heartbeat' | 'control';

/** The uplink topics a device may PUBLISH to; null means forbidden. */
export function uplinkKind(topic: string): UplinkKind | null {
  if (topic === HEARTBEAT_TOPIC) return 'heartbeat';
  if (topic === CONTROL_TOPIC) return 'control';
  return null;
}
