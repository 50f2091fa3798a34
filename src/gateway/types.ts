import type { Logger } from 'pino';

/** Who a device is once its CONNECT password has been verified. */
export interface DeviceIdentity {
  appId: string;
  deviceId: string;
}

/**
 * Verifies a CONNECT. Returns the identity, or null for bad credentials (CONNACK 4 / 0x86).
 * A thrown error or a rejected promise answers "server unavailable" (CONNACK 3 / 0x88).
 * The returned `deviceId` must equal the MQTT client id, else the CONNECT is refused (5 / 0x87).
 */
export type Authenticate = (
  clientId: string,
  username: string | undefined,
  password: Buffer | undefined,
) => Promise<DeviceIdentity | null> | DeviceIdentity | null;

export type Transport = 'tcp' | 'ws';

/** A snapshot of one online session, handed to hooks and returned by `GatewayServer.session()`. */
export interface SessionInfo {
  appId: string;
  deviceId: string;
  /** 3 (MQTT 3.1), 4 (MQTT 3.1.1) or 5. */
  protocolVersion: number;
  /** The keep alive in force: the client's for 3.1.1, the Server Keep Alive we sent for MQTT 5. */
  keepAliveSec: number;
  /** What the gateway advised (CONNACK Server Keep Alive for 5, `$relay/heartbeat` for 3.1.1). */
  advisedSec: number;
  /** The heartbeat interval the device last reported on `$relay/heartbeat`, if any. */
  reportedSec?: number;
  /** The interval dead detection follows: reportedSec, else keepAliveSec, else none (0). */
  intervalSec: number;
  /** No packet for this long closes the connection ('timeout'). */
  idleTimeoutMs: number;
  /** Network key (`cmcc-4g`, `wifi:<ssid hash>`…) from the CONNECT or the last heartbeat report. */
  network?: string;
  /** `ip:port` of the peer as this process sees it. */
  remote: string;
  transport: Transport;
  /** Epoch ms of the CONNACK. */
  connectedAt: number;
  /** CONNACK Session Present: the device resumed a persisted subscription to its topic (see `sessions`). */
  sessionPresent: boolean;
  /** How long the session outlives this connection, seconds (0: it ends with it). */
  sessionExpirySec: number;
  /** Highest seq of a downlink written on this connection (0: none). */
  maxSeqWritten: number;
}

export type OfflineReason = 'closed' | 'timeout' | 'takeover' | 'backpressure' | 'protocol-error' | 'shutdown';

/** A downlink the gateway accepted but the device has not acked (yet). */
export interface PendingDelivery {
  kind: 'push' | 'revoke';
  id: string;
  seq: number;
  /** Epoch ms; 0 for revokes (they do not expire). */
  expiresAt: number;
  /** True once it was written to the socket at least once: redeliver it with `dup: true`. */
  written: boolean;
}

export type DropReason = 'expired' | 'rejected' | 'too-large';

/** Why a push was dropped, for the report: the PUBACK reason code ('rejected'), the sizes ('too-large'). */
export interface DropDetail {
  reasonCode?: number;
  /** The PUBLISH in bytes, and the client's Maximum Packet Size. */
  bytes?: number;
  limit?: number;
}

export interface GatewayHooks {
  /** CONNACK sent. For a takeover, the old session's onOffline('takeover') has already run. */
  onOnline(s: SessionInfo): void | Promise<void>;
  /**
   * The session ended. `pending` lists what was accepted by deliver()/revoke() but never acked,
   * in delivery order: the caller persists it for redelivery (the gateway keeps nothing).
   */
  onOffline(s: SessionInfo, why: OfflineReason, pending: PendingDelivery[]): void;
  /** The device PUBACKed a push: it is delivered. */
  onAck(appId: string, deviceId: string, messageId: string, seq: number): void;
  /** A `$relay/heartbeat` or `$relay/control` uplink with a JSON object payload. */
  onControl(appId: string, deviceId: string, topic: string, payload: Record<string, unknown>): void | Promise<void>;
  /** The device PUBACKed a revoke. Optional. */
  onRevokeAck?(appId: string, deviceId: string, messageId: string, seq: number): void;
  /**
   * A push that was accepted but will never be acked on this connection: expired before it was
   * written, refused by an MQTT 5 PUBACK reason code ≥ 0x80 ('rejected'), or larger than the
   * client's Maximum Packet Size ('too-large'). Optional. The push will not be written again on
   * this connection: end its delivery, or it is handed out again on the next.
   */
  onDropped?(appId: string, deviceId: string, messageId: string, seq: number, reason: DropReason, detail?: DropDetail): void;
}

/**
 * Where persistent sessions live (MQTT 3.1.1 clean session 0, MQTT 5 Session Expiry > 0). The only
 * session state the gateway has is the device's subscription to its own topic (Relay keeps the
 * un-acked messages), so that is all a store remembers. Calls for one device come in order; a
 * store that fails answers "no session" (resume) and loses nothing else.
 */
export interface SessionStore {
  /**
   * Before the CONNACK of a CONNECT that asks to resume (clean session / Clean Start 0): does the
   * device still hold a persisted subscription to its topic? If so it is kept again, open-ended,
   * while this connection lasts.
   */
  resume(appId: string, deviceId: string): boolean | Promise<boolean>;
  /** The device subscribed to its topic in a session that persists: keep it while connected. */
  hold(appId: string, deviceId: string): void | Promise<void>;
  /**
   * Keep it `expirySec` more seconds (its connection ended), or forget it now (0: a clean
   * CONNECT, an UNSUBSCRIBE, the end of a session with expiry 0).
   */
  expire(appId: string, deviceId: string, expirySec: number): void | Promise<void>;
}

export interface AdviseInput {
  appId: string;
  deviceId: string;
  network?: string;
  /** The keep alive the CONNECT asked for (0 = none). */
  requestedSec: number;
}

export interface GatewayOptions {
  authenticate: Authenticate;
  hooks: GatewayHooks;
  /** Seconds to advise; default: the requested value capped to 1740 s, or 270 s when none was asked. */
  adviseKeepAlive?(info: AdviseInput): number;
  /** Un-acked QoS 1 downlinks per connection (also capped by the client's MQTT 5 Receive Maximum). Default 32. */
  maxInflight?: number;
  /** Downlinks waiting behind the in-flight window or for the SUBSCRIBE. Default 1000; deliver() returns false beyond. */
  maxQueued?: number;
  /** A socket whose unsent bytes exceed this is closed ('backpressure'). Default 1 MiB. */
  maxWriteBufferBytes?: number;
  /** Largest accepted MQTT packet (advertised as Maximum Packet Size to MQTT 5 clients). Default 256 KiB. */
  maxPacketBytes?: number;
  /** CONNECT must arrive (and be answered) within this. Default 10 s. */
  connectTimeoutMs?: number;
  /** Idle limit for a session with keep alive 0 and no heartbeat report. Default 1800 s. */
  maxIdleSec?: number;
  /**
   * Persistent sessions. Without a store every session ends with its connection (CONNACK Session
   * Present 0, MQTT 5 Session Expiry Interval 0), whatever the client asked.
   */
  sessions?: SessionStore;
  /** Longest a persistent session outlives its connection. Default 2,419,200 s (28 days, Relay's longest TTL). */
  maxSessionExpirySec?: number;
  /** Granularity of the shared dead-connection sweep. Default 1000 ms. */
  sweepIntervalMs?: number;
  logger?: Logger;
}

/** What the lead hands to deliver(). */
export interface DeliverMessage {
  /** Relay message id. */
  id: string;
  /** Per-device monotonically increasing sequence number. */
  seq: number;
  /** `{notification, data, …}`; the gateway adds `type`, `id`, `seq`, `expiresAt`. */
  payload: Record<string, unknown>;
  /** Epoch ms after which the message must never be written. */
  expiresAt: number;
  /** Set when the message was written to an earlier connection (MQTT DUP flag). */
  dup?: boolean;
}
