/**
 * MQTT return / reason codes the gateway uses, per protocol version.
 * 3.1.1: CONNACK return codes (§3.2.2.3) and SUBACK 0x80. 5.0: reason codes (§2.4).
 */

/** CONNACK refusals as [3.1.1 return code, MQTT 5 reason code]. */
export const Refuse = {
  identifierRejected: [2, 0x85],
  serverUnavailable: [3, 0x88],
  badCredentials: [4, 0x86],
  notAuthorized: [5, 0x87],
  /** MQTT 5 enhanced authentication (AUTH) is not supported. */
  badAuthMethod: [4, 0x8c],
  /** MQTT 5 only: a retained Will while CONNACK says Retain Available 0 [MQTT-3.2.2-13]. */
  retainNotSupported: [5, 0x9a],
  /** MQTT 5 only: a QoS 2 Will while CONNACK says Maximum QoS 1 [MQTT-3.2.2-12]. */
  qosNotSupported: [5, 0x9b],
} as const satisfies Record<string, readonly [number, number]>;
export type Refusal = (typeof Refuse)[keyof typeof Refuse];

export const RC = {
  success: 0x00,
  noSubscriptionExisted: 0x11,
  unspecified: 0x80,
  malformedPacket: 0x81,
  protocolError: 0x82,
  unsupportedProtocolVersion: 0x84,
  notAuthorized: 0x87,
  serverShuttingDown: 0x8b,
  keepAliveTimeout: 0x8d,
  sessionTakenOver: 0x8e,
  topicAliasInvalid: 0x94,
  packetTooLarge: 0x95,
  quotaExceeded: 0x97,
  administrativeAction: 0x98,
  payloadFormatInvalid: 0x99,
  retainNotSupported: 0x9a,
  qosNotSupported: 0x9b,
  sharedSubscriptionsNotSupported: 0x9e,
  subscriptionIdentifiersNotSupported: 0xa1,
  wildcardSubscriptionsNotSupported: 0xa2,
} as const;

/** MQTT 3.1.1 SUBACK failure. */
export const SUBACK_FAILURE_V4 = 0x80;
