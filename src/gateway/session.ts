// One concept: one MQTT connection's state machine (CONNECT to close); its parts (ACL, downlink, codes, byte queue) are modules of their own.
import {
  generate,
  parser as createParser,
  type IConnackPacket,
  type IConnectPacket,
  type IPubackPacket,
  type IPublishPacket,
  type ISubscribePacket,
  type IUnsubscribePacket,
  type Packet,
  type Parser,
} from 'mqtt-packet';
import {
  HEARTBEAT_TOPIC,
  SUB_DEVICE,
  SUB_HEARTBEAT,
  deviceTopic,
  grantedQos,
  isWildcard,
  subscriptionBit,
  uplinkKind,
} from './acl.js';
import { RC, Refuse, SUBACK_FAILURE_V4, type Refusal } from './codes.js';
import { slimParser } from './byte-queue.js';
import { Downlink, KIND_PUSH, KIND_REVOKE } from './downlink.js';
import {
  clampKeepAlive,
  defaultAdviseKeepAlive,
  effectiveIntervalSec,
  idleLimitMs,
  parseHeartbeatReport,
  parseJsonObject,
  type HeartbeatReport,
} from './heartbeat.js';
import { Hub } from './hub.js';
import type { WheelEntry } from './timer-wheel.js';
import type { DeviceIdentity, OfflineReason, PendingDelivery, SessionInfo, Transport } from './types.js';

const ST_CONNECT = 0; // waiting for CONNECT
const ST_AUTH = 1; // CONNECT received, authenticate() running
const ST_ONLINE = 2; // CONNACK 0 sent
const ST_CLOSED = 3;

// Session bits beside the SUB_* ones (1, 2, 4) in `flags`.
/** The session store holds this device's subscription to its topic (a persistent session). */
const F_HELD = 8;
/** The CONNACK said Session Present. */
const F_PRESENT = 16;

/** Packets a client may pipeline behind its CONNECT while authenticate() runs. */
const MAX_EARLY_PACKETS = 16;
/** Largest packet accepted before CONNACK: a CONNECT is small, and strangers get no big buffers. */
const PRE_AUTH_MAX_PACKET = 16 * 1024;

// Shared, immutable parser / generator settings: no per-connection copies.
const V4 = Object.freeze({ protocolVersion: 4 });
const V5 = Object.freeze({ protocolVersion: 5 });
const PINGRESP = generate({ cmd: 'pingresp' });

/** The parser fields we read; mqtt-packet's typings do not declare them. */
interface ParserInternals {
  /** The packet being parsed; a CONNECT's level is set before the parser checks it. */
  packet: { length: number; cmd?: string; protocolVersion?: number };
  settings: object;
  session: Session;
  _list: { length: number };
  _stateCounter: number;
}

/** True when the parser holds no partial packet (so the next bytes start a new one). */
function parserIdle(p: Parser): boolean {
  const i = p as unknown as ParserInternals;
  return i._list.length === 0 && i._stateCounter === 0;
}

// Listeners are shared functions (this = the parser), not per-connection closures.
function onParserPacket(this: ParserInternals, packet: Packet): void {
  this.session.onPacket(packet);
}
function onParserError(this: ParserInternals, err: Error): void {
  this.session.onParseError(err);
}

/**
 * MQTT 5 SUBACK code for a refused filter: CONNACK said Shared Subscription Available 0 and
 * Wildcard Subscription Available 0 (§3.9.3), so those say "not supported" rather than "forbidden".
 */
function subackRefusalV5(filter: string): number {
  if (filter.startsWith('$share/')) return RC.sharedSubscriptionsNotSupported;
  return isWildcard(filter) ? RC.wildcardSubscriptionsNotSupported : RC.notAuthorized;
}

/** v5 DISCONNECT reason for each way a session can be ended by the server. */
const DISCONNECT_CODE: Record<OfflineReason, number> = {
  closed: RC.administrativeAction,
  timeout: RC.keepAliveTimeout,
  takeover: RC.sessionTakenOver,
  backpressure: RC.quotaExceeded,
  'protocol-error': RC.protocolError,
  shutdown: RC.serverShuttingDown,
};

/**
 * One MQTT connection: the protocol state machine, transport-agnostic. Subclasses supply the
 * byte pipe (TCP socket or WebSocket). State is kept in plain fields; the in-flight map, the
 * local queue and the early-packet buffer are allocated only when used.
 */
export abstract class Session implements WheelEntry {
  wheelTick = -1;
  state = ST_CONNECT;
  /** 3, 4 or 5 once the CONNECT is parsed. */
  version = 4;
  /** SUB_* and F_* bits. */
  flags = 0;
  appId = '';
  deviceId = '';
  /** Registry key (appId NUL deviceId), '' until authenticated. */
  key = '';
  keepAliveSec = 0;
  advisedSec = 0;
  reportedSec = 0;
  network: string | undefined = undefined;
  /** Epoch ms of the last bytes received (online) or of the accept (before CONNACK). */
  lastActivity: number;
  idleMs = 0;
  connectedAt = 0;
  /** Seconds the session outlives the connection; 0 without a session store. */
  sessionExpirySec = 0;
  /** Highest seq written: the lead sets DUP from it on the next connection. */
  maxSeqWritten = 0;
  private nextPacketId = 0;
  /** In-flight window: min(maxInflight, client's Receive Maximum). */
  private window: number;
  /** Client's MQTT 5 Maximum Packet Size; 0 = no limit. */
  private clientMaxPacket = 0;
  private inflight: Map<number, Downlink> | null = null;
  private queue: Downlink[] | null = null;
  private early: Packet[] | null = null;
  private readonly parser: Parser;

  constructor(
    protected readonly hub: Hub<Session>,
    readonly remote: string,
  ) {
    const now = Date.now();
    this.lastActivity = now;
    this.window = hub.opts.maxInflight;
    const p = slimParser(createParser(V4));
    (p as unknown as ParserInternals).session = this;
    p.on('packet', onParserPacket);
    p.on('error', onParserError);
    this.parser = p;
    hub.connections.add(this);
    hub.wheel.schedule(this, now + hub.opts.connectTimeoutMs);
  }

  abstract get transport(): Transport;
  /** Writes bytes to the peer. */
  protected abstract send(buf: Buffer): void;
  /** Bytes accepted by send() and not yet handed to the kernel. */
  protected abstract buffered(): number;
  /** Closes the pipe: graceful flushes what was written first. Idempotent. */
  protected abstract shut(graceful: boolean): void;

  get online(): boolean {
    return this.state === ST_ONLINE;
  }

  // ---------------------------------------------------------------- inbound

  /** Bytes from the transport. */
  feed(chunk: Buffer): void {
    if (this.state === ST_CLOSED) return;
    if (this.state === ST_ONLINE) {
      this.lastActivity = Date.now();
      // Heartbeat fast path: a lone PINGREQ between packets skips the parser (most of the traffic
      // of 100,000 idle devices).
      if (chunk.length === 2 && chunk[0] === 0xc0 && chunk[1] === 0 && parserIdle(this.parser)) {
        this.write(PINGRESP);
        return;
      }
    }
    try {
      this.parser.parse(chunk);
    } catch (err) {
      // A parser bug on hostile bytes, or a throwing packet handler: this connection only.
      this.hub.log.warn({ err, remote: this.remote }, 'gateway: error while handling a packet');
      this.terminate('protocol-error', RC.malformedPacket);
      return;
    }
    // A packet whose header announced more than the limit: refuse it before buffering the rest.
    if (this.state !== ST_CLOSED && (this.parser as unknown as ParserInternals).packet.length > this.maxPacket()) {
      this.terminate('protocol-error', RC.packetTooLarge);
    }
  }

  private maxPacket(): number {
    const max = this.hub.opts.maxPacketBytes;
    return this.state === ST_ONLINE ? max : Math.min(max, PRE_AUTH_MAX_PACKET);
  }

  /** The transport closed under us (peer FIN/RST, socket error). */
  transportClosed(): void {
    this.terminate('closed');
  }

  onParseError(err: Error): void {
    if (this.state === ST_CLOSED) return;
    this.hub.log.debug({ remote: this.remote, err: err.message }, 'gateway: malformed packet');
    if (this.state === ST_CONNECT) {
      // The parser reads the level into the packet, then refuses any but 3, 4 and 5.
      const { cmd, protocolVersion: level } = (this.parser as unknown as ParserInternals).packet;
      if (cmd === 'connect' && level !== undefined && (level < 3 || level > 5)) return this.refuseLevel(level);
    }
    this.terminate('protocol-error', RC.malformedPacket);
  }

  onPacket(p: Packet): void {
    const st = this.state;
    if (st === ST_CLOSED) return;
    if ((p.length ?? 0) > this.maxPacket()) {
      this.terminate('protocol-error', RC.packetTooLarge);
      return;
    }
    if (st === ST_ONLINE) {
      this.dispatch(p);
    } else if (st === ST_CONNECT) {
      // [MQTT-3.1.0-1]: the first packet must be CONNECT.
      if (p.cmd === 'connect') this.onConnect(p);
      else this.terminate('protocol-error');
    } else if (p.cmd === 'connect' || (this.early?.length ?? 0) >= MAX_EARLY_PACKETS) {
      this.terminate('protocol-error');
    } else {
      (this.early ??= []).push(p);
    }
  }

  private dispatch(p: Packet): void {
    switch (p.cmd) {
      case 'pingreq':
        this.write(PINGRESP);
        return;
      case 'puback':
        this.onPuback(p);
        return;
      case 'publish':
        this.onPublish(p);
        return;
      case 'subscribe':
        this.onSubscribe(p);
        return;
      case 'unsubscribe':
        this.onUnsubscribe(p);
        return;
      case 'disconnect':
        // MQTT 5 may change the Session Expiry on the way out (never from 0 [MQTT-3.14.2-2]).
        if (this.sessionExpirySec > 0 && p.properties?.sessionExpiryInterval !== undefined) {
          this.sessionExpirySec = Math.min(p.properties.sessionExpiryInterval, this.hub.opts.maxSessionExpirySec);
        }
        this.terminate('closed');
        return;
      default:
        // A second CONNECT, QoS 2 flow packets (we never send QoS 2), AUTH, server-only packets.
        this.terminate('protocol-error', p.cmd === 'pubrec' ? RC.qosNotSupported : RC.protocolError);
    }
  }

  // ---------------------------------------------------------------- CONNECT

  private onConnect(p: IConnectPacket): void {
    this.state = ST_AUTH;
    const v = p.protocolVersion === 5 ? 5 : p.protocolVersion === 3 ? 3 : 4;
    this.version = v;
    // The parser keeps the CONNECT as its settings; swap in the shared object (and drop the password).
    (this.parser as unknown as ParserInternals).settings = v === 5 ? V5 : V4;
    this.keepAliveSec = p.keepalive ?? 0;
    const props = v === 5 ? p.properties : undefined;
    const store = this.hub.opts.sessions;
    if (store) {
      // Persistent: 3.1.1 clean session 0 (no expiry, so the server's longest); MQTT 5 Session Expiry.
      const max = this.hub.opts.maxSessionExpirySec;
      this.sessionExpirySec = v === 5 ? Math.min(props?.sessionExpiryInterval ?? 0, max) : p.clean ? 0 : max;
    }
    const resume = store !== null && !p.clean;
    if (props) {
      if (props.receiveMaximum) this.window = Math.min(this.window, props.receiveMaximum);
      if (props.maximumPacketSize) this.clientMaxPacket = props.maximumPacketSize;
      const net = props.userProperties?.network;
      if (typeof net === 'string' && net.length > 0) this.network = net.slice(0, 128);
      if (props.authenticationMethod) return this.refuse(Refuse.badAuthMethod);
    }
    // Wills are ignored, but MQTT 5 must not accept one CONNACK's capabilities rule out: retained
    // (Retain Available 0) or QoS 2 (Maximum QoS 1). 3.1.1 has no way to say so: it is ignored too.
    if (v === 5 && p.will?.retain) return this.refuse(Refuse.retainNotSupported);
    if (v === 5 && (p.will?.qos ?? 0) > 1) return this.refuse(Refuse.qosNotSupported);
    const clientId = p.clientId;
    if (!clientId) return this.refuse(Refuse.identifierRejected);
    if (!p.password || p.password.length === 0) return this.refuse(Refuse.badCredentials);
    let result: ReturnType<Hub['opts']['authenticate']>;
    try {
      result = this.hub.opts.authenticate(clientId, p.username, p.password);
    } catch (err) {
      this.hub.log.error({ err }, 'gateway: authenticate threw');
      return this.refuse(Refuse.serverUnavailable);
    }
    if (result && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<DeviceIdentity | null>).then(
        (id) => this.authenticated(clientId, id, resume),
        (err: unknown) => {
          this.hub.log.error({ err }, 'gateway: authenticate rejected');
          this.refuse(Refuse.serverUnavailable);
        },
      );
    } else {
      this.authenticated(clientId, result as DeviceIdentity | null, resume);
    }
  }

  /** `resume`: the CONNECT asked to continue a session (clean session / Clean Start 0) and a store exists. */
  private authenticated(clientId: string, id: DeviceIdentity | null, resume: boolean): void {
    if (this.state !== ST_AUTH) return; // closed (or timed out) while authenticating
    if (!id) return this.refuse(Refuse.badCredentials);
    if (id.deviceId !== clientId || !id.appId) return this.refuse(Refuse.notAuthorized);
    if (!resume) return this.accept(id, false, false);
    // [MQTT-3.2.2-2]: Session Present only when the store still holds the session.
    let present: boolean | Promise<boolean>;
    try {
      present = this.hub.opts.sessions!.resume(id.appId, id.deviceId);
    } catch (err) {
      this.hub.log.error({ err }, 'gateway: session store threw; no session resumed');
      present = false;
    }
    if (typeof present === 'boolean') return this.accept(id, true, present);
    present.then(
      (yes) => this.accept(id, true, yes === true),
      (err: unknown) => {
        this.hub.log.error({ err }, 'gateway: session store rejected; no session resumed');
        this.accept(id, true, false);
      },
    );
  }

  private accept(id: DeviceIdentity, resume: boolean, present: boolean): void {
    if (this.state !== ST_AUTH) return;
    if (this.hub.closing) return this.refuse(Refuse.serverUnavailable);

    const hub = this.hub;
    this.appId = id.appId;
    this.deviceId = id.deviceId;
    this.key = Hub.key(id.appId, id.deviceId);
    hub.register(this); // an older session for this device is taken over (its onOffline runs now)
    this.state = ST_ONLINE;
    const now = Date.now();
    this.connectedAt = now;
    this.lastActivity = now;
    // The one subscription a session can hold is the device's own topic: resumed, it is in force now.
    if (present) this.flags |= SUB_DEVICE | F_HELD | F_PRESENT;
    else if (!resume && hub.opts.sessions) hub.storeWrite(this.appId, this.deviceId, 0); // a clean start discards the old session

    const requestedSec = this.keepAliveSec;
    const adviseInput = { appId: this.appId, deviceId: this.deviceId, network: this.network, requestedSec };
    let advised: number;
    try {
      advised = clampKeepAlive(hub.opts.adviseKeepAlive(adviseInput));
    } catch (err) {
      hub.log.error({ err }, 'gateway: adviseKeepAlive threw');
      advised = clampKeepAlive(defaultAdviseKeepAlive(adviseInput));
    }
    this.advisedSec = advised;
    // [MQTT-3.2.2-21]: an MQTT 5 client must use the Server Keep Alive instead of its own. Not
    // imposed on one that asked for none: MQTT.js then never pings, whatever we say, and would be
    // cut off. Such a session gets the server's max idle; the advice still goes to `$relay/heartbeat`.
    const serverKeepAlive = this.version === 5 && requestedSec > 0;
    if (serverKeepAlive) this.keepAliveSec = advised;
    this.idleMs = idleLimitMs(this.keepAliveSec, 0, hub.opts.maxIdleSec);
    hub.wheel.schedule(this, now + this.idleMs);

    let connack: IConnackPacket;
    if (this.version === 5) {
      connack = {
        cmd: 'connack',
        sessionPresent: present,
        reasonCode: RC.success,
        properties: {
          // What we keep (the subscription; Relay's database holds the messages), capped.
          sessionExpiryInterval: this.sessionExpirySec,
          maximumQoS: 1,
          retainAvailable: false,
          maximumPacketSize: hub.opts.maxPacketBytes,
          wildcardSubscriptionAvailable: false,
          subscriptionIdentifiersAvailable: false,
          sharedSubscriptionAvailable: false,
        },
      };
      if (serverKeepAlive) connack.properties!.serverKeepAlive = advised;
    } else {
      connack = { cmd: 'connack', sessionPresent: present, returnCode: 0 };
    }
    this.send(generate(connack, this.genOpts()));
    hub.log.debug({ appId: this.appId, deviceId: this.deviceId, v: this.version, remote: this.remote }, 'gateway: online');
    hub.emitOnline(this.info());

    const early = this.early;
    this.early = null;
    if (early) for (const p of early) if (this.state === ST_ONLINE) this.dispatch(p);
  }

  /** CONNACK with a refusal code, then close. The session never went online: no hooks run. */
  private refuse(r: Refusal): void {
    if (this.state === ST_CLOSED) return;
    const connack: IConnackPacket =
      this.version === 5
        ? { cmd: 'connack', sessionPresent: false, reasonCode: r[1] }
        : { cmd: 'connack', sessionPresent: false, returnCode: r[0] };
    this.hub.log.debug({ remote: this.remote, code: this.version === 5 ? r[1] : r[0] }, 'gateway: CONNECT refused');
    this.send(generate(connack, this.genOpts()));
    this.terminate('closed');
  }

  /**
   * [MQTT-3.1.2-2]: an unsupported protocol level gets CONNACK "unacceptable protocol level" before
   * the close. A level above 5 is answered in MQTT 5 form (0x84 Unsupported Protocol Version), the
   * newest we speak; any other in 3.1.1 form (return code 1), as mosquitto does.
   */
  private refuseLevel(level: number): void {
    const connack: IConnackPacket =
      level > 5
        ? { cmd: 'connack', sessionPresent: false, reasonCode: RC.unsupportedProtocolVersion }
        : { cmd: 'connack', sessionPresent: false, returnCode: 1 };
    this.hub.log.debug({ remote: this.remote, level }, 'gateway: unsupported protocol level');
    this.send(generate(connack, level > 5 ? V5 : V4));
    this.terminate('closed');
  }

  // ---------------------------------------------------------------- uplink

  private onPublish(p: IPublishPacket): void {
    const v5 = this.version === 5;
    // We advertise Maximum QoS 1, no retain, no topic aliases (MQTT 5 §3.3.1 / §3.3.2.3.4).
    if (p.qos === 2) return this.terminate('protocol-error', RC.qosNotSupported);
    if (v5 && p.properties?.topicAlias !== undefined) return this.terminate('protocol-error', RC.topicAliasInvalid);
    if (v5 && p.retain) return this.terminate('protocol-error', RC.retainNotSupported);

    const kind = uplinkKind(p.topic);
    if (kind === null) {
      // 3.1.1 cannot say "not authorized" in a PUBACK: §3.3.5 lets the server close instead.
      if (!v5) return this.terminate('protocol-error');
      if (p.qos === 1) this.puback(p.messageId!, RC.notAuthorized);
      return;
    }
    const obj = parseJsonObject(p.payload);
    let report: HeartbeatReport | null = null;
    if (obj && kind === 'heartbeat') report = parseHeartbeatReport(obj);
    if (!obj || (kind === 'heartbeat' && !report)) {
      if (p.qos === 1) this.puback(p.messageId!, RC.payloadFormatInvalid);
      return;
    }
    if (report) this.applyReport(report);
    this.hub.emitControl(this.appId, this.deviceId, p.topic, obj);
    if (p.qos === 1 && this.state === ST_ONLINE) this.puback(p.messageId!, RC.success);
  }

  /** From now on dead detection follows the device's own heartbeat interval. */
  private applyReport(r: HeartbeatReport): void {
    this.reportedSec = r.intervalSec;
    if (r.network) this.network = r.network;
    this.idleMs = idleLimitMs(this.keepAliveSec, this.reportedSec, this.hub.opts.maxIdleSec);
    // A longer limit is picked up lazily when the current bucket fires; a shorter one must move now.
    this.hub.wheel.scheduleEarlier(this, this.lastActivity + this.idleMs);
  }

  private puback(messageId: number, reasonCode: number): void {
    const pkt: IPubackPacket =
      this.version === 5 ? { cmd: 'puback', messageId, reasonCode } : { cmd: 'puback', messageId };
    this.write(generate(pkt, this.genOpts()));
  }

  private onSubscribe(p: ISubscribePacket): void {
    const v5 = this.version === 5;
    // CONNACK said Subscription Identifiers Available 0: receiving one is a Protocol Error (§3.8.2.1.2).
    if (v5 && p.properties?.subscriptionIdentifier !== undefined) {
      return this.terminate('protocol-error', RC.subscriptionIdentifiersNotSupported);
    }
    const granted: number[] = [];
    let added = 0;
    for (const sub of p.subscriptions) {
      const bit = subscriptionBit(this.deviceId, sub.topic);
      if (bit === 0) {
        granted.push(v5 ? subackRefusalV5(sub.topic) : SUBACK_FAILURE_V4);
      } else {
        // Downlinks are always QoS 1 (the PUBACK is the delivered receipt), so the device topic is granted 1.
        granted.push(bit === SUB_DEVICE ? 1 : grantedQos(sub.qos));
        added |= bit;
      }
    }
    this.flags |= added;
    if (added & SUB_DEVICE && this.sessionExpirySec > 0 && !(this.flags & F_HELD)) {
      this.flags |= F_HELD;
      this.hub.storeWrite(this.appId, this.deviceId, -1);
    }
    this.write(generate({ cmd: 'suback', messageId: p.messageId!, granted }, this.genOpts()));
    if (added & SUB_HEARTBEAT && this.state === ST_ONLINE) this.publishAdvice();
    if (added & SUB_DEVICE) this.pump();
  }

  private onUnsubscribe(p: IUnsubscribePacket): void {
    const codes: number[] = [];
    for (const topic of p.unsubscriptions) {
      const bit = subscriptionBit(this.deviceId, topic);
      if (bit !== 0 && (this.flags & bit) !== 0) {
        this.flags &= ~bit;
        if (bit === SUB_DEVICE && this.flags & F_HELD) {
          this.flags &= ~F_HELD;
          this.hub.storeWrite(this.appId, this.deviceId, 0);
        }
        codes.push(RC.success);
      } else {
        codes.push(RC.noSubscriptionExisted);
      }
    }
    const pkt =
      this.version === 5
        ? { cmd: 'unsuback' as const, messageId: p.messageId!, granted: codes }
        : { cmd: 'unsuback' as const, messageId: p.messageId!, granted: [] };
    this.write(generate(pkt, this.genOpts()));
  }

  /** The keep-alive advice on `$relay/heartbeat` (QoS 0): how 3.1.1 devices learn it. */
  private publishAdvice(): void {
    const pkt: IPublishPacket = {
      cmd: 'publish',
      topic: HEARTBEAT_TOPIC,
      payload: Buffer.from(`{"adviseSec":${this.advisedSec}}`),
      qos: 0,
      dup: false,
      retain: false,
    };
    this.write(generate(pkt, this.genOpts()));
  }

  // ---------------------------------------------------------------- downlink

  /** Accepts a downlink: written now, or queued behind the window / until the SUBSCRIBE. */
  enqueue(d: Downlink): boolean {
    if (this.state !== ST_ONLINE) return false;
    const now = Date.now();
    if (d.expired(now)) {
      this.hub.emitDropped(this.appId, this.deviceId, d.id, d.seq, 'expired');
      return true;
    }
    if (this.queue === null && this.canTransmit()) {
      this.transmit(d, now);
      return true;
    }
    if ((this.queue?.length ?? 0) >= this.hub.opts.maxQueued) return false;
    (this.queue ??= []).push(d);
    return true;
  }

  /** Queues a revoke; a push for the same message that was never written is discarded instead of sent. */
  revoke(id: string, seq: number): boolean {
    if (this.state !== ST_ONLINE) return false;
    const q = this.queue;
    if (q) {
      const i = q.findIndex((d) => d.kind === KIND_PUSH && d.id === id);
      if (i >= 0) q.splice(i, 1);
      if (q.length === 0) this.queue = null;
    }
    return this.enqueue(Downlink.revoke(id, seq));
  }

  private canTransmit(): boolean {
    return (this.flags & SUB_DEVICE) !== 0 && (this.inflight?.size ?? 0) < this.window;
  }

  private pump(): void {
    const q = this.queue;
    if (!q) return;
    const now = Date.now();
    while (q.length > 0 && this.state === ST_ONLINE && this.canTransmit()) {
      const d = q.shift()!;
      if (d.expired(now)) this.hub.emitDropped(this.appId, this.deviceId, d.id, d.seq, 'expired');
      else this.transmit(d, now);
    }
    if (q.length === 0 && this.queue === q) this.queue = null;
  }

  private transmit(d: Downlink, now: number): void {
    const messageId = this.allocPacketId();
    const pkt: IPublishPacket = {
      cmd: 'publish',
      topic: deviceTopic(this.deviceId),
      payload: Buffer.from(d.body!),
      qos: 1,
      dup: d.dup,
      retain: false,
      messageId,
    };
    if (this.version === 5) {
      pkt.properties =
        d.expiresAt > 0
          ? { payloadFormatIndicator: true, messageExpiryInterval: d.remainingSec(now) }
          : { payloadFormatIndicator: true };
    }
    const buf = generate(pkt, this.genOpts());
    d.body = null;
    if (this.clientMaxPacket > 0 && buf.length > this.clientMaxPacket) {
      // MQTT 5 §3.1.2.11.4: discard as if delivered; Relay reports it instead.
      this.hub.emitDropped(this.appId, this.deviceId, d.id, d.seq, 'too-large', { bytes: buf.length, limit: this.clientMaxPacket });
      return;
    }
    d.written = true;
    if (d.seq > this.maxSeqWritten) this.maxSeqWritten = d.seq;
    (this.inflight ??= new Map()).set(messageId, d);
    this.write(buf);
  }

  private allocPacketId(): number {
    let id = this.nextPacketId;
    do id = id >= 0xffff ? 1 : id + 1;
    while (this.inflight?.has(id));
    this.nextPacketId = id;
    return id;
  }

  private onPuback(p: IPubackPacket): void {
    const id = p.messageId!;
    const d = this.inflight?.get(id);
    if (!d) return; // unknown or duplicate PUBACK: harmless
    this.inflight!.delete(id);
    const rc = p.reasonCode ?? 0;
    if (this.version === 5 && rc >= 0x80) {
      if (d.kind === KIND_PUSH) this.hub.emitDropped(this.appId, this.deviceId, d.id, d.seq, 'rejected', { reasonCode: rc });
    } else {
      this.hub.emitAck(this.appId, this.deviceId, d.id, d.seq, d.kind === KIND_REVOKE);
    }
    if (this.queue) this.pump();
  }

  /** Un-acked downlinks in delivery order: in flight (written) first, then queued. */
  pending(): PendingDelivery[] {
    const out: PendingDelivery[] = [];
    if (this.inflight) for (const d of this.inflight.values()) out.push(d.pending());
    if (this.queue) for (const d of this.queue) out.push(d.pending());
    return out;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Called by the timer wheel: returns the next deadline, or -1 once closed. */
  onDeadline(now: number): number {
    if (this.state === ST_CLOSED) return -1;
    if (this.state !== ST_ONLINE) {
      this.hub.log.debug({ remote: this.remote }, 'gateway: no CONNECT in time');
      this.terminate('timeout');
      return -1;
    }
    const deadline = this.lastActivity + this.idleMs;
    if (deadline > now) return deadline;
    this.terminate('timeout', RC.keepAliveTimeout);
    return -1;
  }

  /** Closes the session for `why`, sending an MQTT 5 DISCONNECT with a matching reason when sensible. */
  kick(why: OfflineReason): void {
    this.terminate(why, DISCONNECT_CODE[why]);
  }

  /**
   * The one way a session ends. `code` ≥ 0: DISCONNECT reason for an online MQTT 5 client
   * (never before CONNACK; never into a dead or backed-up socket).
   */
  terminate(why: OfflineReason, code = -1): void {
    const st = this.state;
    if (st === ST_CLOSED) return;
    this.state = ST_CLOSED;
    this.hub.forget(this);
    const graceful = why !== 'timeout' && why !== 'backpressure';
    if (st === ST_ONLINE && this.version === 5 && code >= 0 && graceful) {
      this.send(generate({ cmd: 'disconnect', reasonCode: code }, V5));
    }
    this.shut(graceful);
    this.early = null;
    if (st === ST_ONLINE) {
      // The session's expiry runs from now. After a takeover the new connection owns the session.
      if (this.flags & F_HELD && why !== 'takeover') this.hub.storeWrite(this.appId, this.deviceId, this.sessionExpirySec);
      const pending = this.pending();
      this.inflight = null;
      this.queue = null;
      this.hub.log.debug({ appId: this.appId, deviceId: this.deviceId, why, pending: pending.length }, 'gateway: offline');
      this.hub.emitOffline(this.info(), why, pending);
    }
  }

  info(): SessionInfo {
    const info: SessionInfo = {
      appId: this.appId,
      deviceId: this.deviceId,
      protocolVersion: this.version,
      keepAliveSec: this.keepAliveSec,
      advisedSec: this.advisedSec,
      intervalSec: effectiveIntervalSec(this.keepAliveSec, this.reportedSec),
      idleTimeoutMs: this.idleMs,
      remote: this.remote,
      transport: this.transport,
      connectedAt: this.connectedAt,
      sessionPresent: (this.flags & F_PRESENT) !== 0,
      sessionExpirySec: this.sessionExpirySec,
      maxSeqWritten: this.maxSeqWritten,
    };
    if (this.reportedSec > 0) info.reportedSec = this.reportedSec;
    if (this.network !== undefined) info.network = this.network;
    return info;
  }

  // ---------------------------------------------------------------- output

  private genOpts(): object {
    return this.version === 5 ? V5 : V4;
  }

  /** Every write but the last gasp goes here: a peer that stops reading is cut off. */
  protected write(buf: Buffer): void {
    this.send(buf);
    if (this.buffered() > this.hub.opts.maxWriteBufferBytes) this.terminate('backpressure');
  }
}
