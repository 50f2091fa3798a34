import { pino, type Logger } from 'pino';
import { DEFAULT_MAX_PACKET_BYTES } from './downlink.js';
import { defaultAdviseKeepAlive } from './heartbeat.js';
import { TimerWheel, type WheelEntry } from './timer-wheel.js';
import type {
  AdviseInput,
  Authenticate,
  DropDetail,
  DropReason,
  GatewayHooks,
  GatewayOptions,
  OfflineReason,
  PendingDelivery,
  SessionInfo,
  SessionStore,
} from './types.js';

/** Relay keeps a message 28 days at most (MAX_TTL_SECONDS), so a session outlives its connection no longer. */
export const DEFAULT_MAX_SESSION_EXPIRY_SEC = 2_419_200;

/** Options with every default filled; one frozen object shared by all sessions. */
export interface ResolvedOptions {
  authenticate: Authenticate;
  adviseKeepAlive(info: AdviseInput): number;
  maxInflight: number;
  maxQueued: number;
  maxWriteBufferBytes: number;
  maxPacketBytes: number;
  connectTimeoutMs: number;
  maxIdleSec: number;
  sweepIntervalMs: number;
  /** null: sessions end with their connection. */
  sessions: SessionStore | null;
  maxSessionExpirySec: number;
}

export function resolveOptions(o: GatewayOptions): ResolvedOptions {
  const int = (v: number | undefined, def: number, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (v === undefined) return def;
    if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`gateway option out of range: ${v}`);
    return v;
  };
  return Object.freeze({
    authenticate: o.authenticate,
    adviseKeepAlive: o.adviseKeepAlive ?? defaultAdviseKeepAlive,
    maxInflight: int(o.maxInflight, 32, 1, 65535),
    maxQueued: int(o.maxQueued, 1000, 0),
    maxWriteBufferBytes: int(o.maxWriteBufferBytes, 1 << 20, 1024),
    // 268,435,455 is the largest remaining length MQTT can encode.
    maxPacketBytes: int(o.maxPacketBytes, DEFAULT_MAX_PACKET_BYTES, 64, 268_435_455),
    connectTimeoutMs: int(o.connectTimeoutMs, 10_000, 1),
    maxIdleSec: int(o.maxIdleSec, 1800, 1),
    sweepIntervalMs: int(o.sweepIntervalMs, 1000, 10),
    sessions: o.sessions ?? null,
    maxSessionExpirySec: int(o.maxSessionExpirySec, DEFAULT_MAX_SESSION_EXPIRY_SEC, 1, 0xffffffff),
  });
}

/**
 * The state every session shares: options, hooks (called safely), the registry of online
 * devices, all open connections and the one timer wheel. Transports create sessions against it;
 * GatewayServer is its public face.
 */
/**
 * What the hub needs of a session. Sessions (session.ts) depend on the hub, never the other way:
 * the hub holds them only through this shape.
 */
export interface HubMember extends WheelEntry {
  readonly key: string;
  kick(reason: OfflineReason): void;
  /** Called by the timer wheel: returns the next deadline, or -1 once closed. */
  onDeadline(now: number): number;
}

export class Hub<S extends HubMember = HubMember> {
  readonly opts: ResolvedOptions;
  readonly log: Logger;
  /** Online sessions by appId NUL deviceId. */
  readonly online = new Map<string, S>();
  /** Every open connection, authenticated or not. */
  readonly connections = new Set<S>();
  readonly wheel: TimerWheel<S>;
  closing = false;
  private readonly sweepTimer: NodeJS.Timeout;

  constructor(
    options: GatewayOptions,
    private readonly hooks: GatewayHooks,
  ) {
    this.opts = resolveOptions(options);
    this.log = options.logger ?? pino({ level: 'silent' });
    this.wheel = new TimerWheel<S>(this.opts.sweepIntervalMs, (s, now) => s.onDeadline(now), Date.now());
    this.sweepTimer = setInterval(() => this.wheel.advance(Date.now()), this.opts.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  static key(appId: string, deviceId: string): string {
    return `${appId}\u0000${deviceId}`;
  }

  get(appId: string, deviceId: string): S | undefined {
    return this.online.get(Hub.key(appId, deviceId));
  }

  /** Registers a newly authenticated session; an older one for the same device is taken over first. */
  register(s: S): void {
    const old = this.online.get(s.key);
    if (old && old !== s) old.kick('takeover');
    this.online.set(s.key, s);
  }

  /** Called once by a session when it closes. */
  forget(s: S): void {
    this.connections.delete(s);
    this.wheel.unschedule(s);
    if (this.online.get(s.key) === s) this.online.delete(s.key);
  }

  stop(): void {
    clearInterval(this.sweepTimer);
  }

  // ---- hooks, isolated: a throwing or rejecting hook never breaks a session ----

  private caught(what: string, r: unknown): void {
    if (r && typeof (r as Promise<void>).then === 'function') {
      (r as Promise<void>).then(undefined, (err: unknown) => this.log.error({ err }, `gateway hook ${what} rejected`));
    }
  }

  emitOnline(info: SessionInfo): void {
    try {
      this.caught('onOnline', this.hooks.onOnline(info));
    } catch (err) {
      this.log.error({ err }, 'gateway hook onOnline threw');
    }
  }

  emitOffline(info: SessionInfo, why: OfflineReason, pending: PendingDelivery[]): void {
    try {
      this.caught('onOffline', this.hooks.onOffline(info, why, pending));
    } catch (err) {
      this.log.error({ err }, 'gateway hook onOffline threw');
    }
  }

  emitAck(appId: string, deviceId: string, id: string, seq: number, revoke: boolean): void {
    try {
      if (revoke) this.hooks.onRevokeAck?.(appId, deviceId, id, seq);
      else this.hooks.onAck(appId, deviceId, id, seq);
    } catch (err) {
      this.log.error({ err }, 'gateway hook onAck threw');
    }
  }

  emitDropped(appId: string, deviceId: string, id: string, seq: number, reason: DropReason, detail?: DropDetail): void {
    try {
      this.hooks.onDropped?.(appId, deviceId, id, seq, reason, detail);
    } catch (err) {
      this.log.error({ err }, 'gateway hook onDropped threw');
    }
  }

  /** A SessionStore write; a failure is logged (the session may come back without its subscription). */
  storeWrite(appId: string, deviceId: string, expirySec: number): void {
    const store = this.opts.sessions!;
    try {
      this.caught('sessions', expirySec < 0 ? store.hold(appId, deviceId) : store.expire(appId, deviceId, expirySec));
    } catch (err) {
      this.log.error({ err }, 'gateway session store threw');
    }
  }

  emitControl(appId: string, deviceId: string, topic: string, payload: Record<string, unknown>): void {
    try {
      this.caught('onControl', this.hooks.onControl(appId, deviceId, topic, payload));
    } catch (err) {
      this.log.error({ err }, 'gateway hook onControl threw');
    }
  }
}
