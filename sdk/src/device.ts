import mqtt from 'mqtt';
import type { IClientOptions, IConnackPacket, IPublishPacket, ISubscriptionGrant, MqttClient, Packet } from 'mqtt';
import { REVOKED, SHOWN, SeenIds } from './dedupe.js';
import { Emitter } from './emitter.js';
import { SmartHeartbeat, resolveHeartbeat, type BeatKind, type HeartbeatConfig, type HeartbeatMemory, type HeartbeatState } from './heartbeat.js';
import { deviceRequest, type DeviceHttp, type FetchLike } from './http.js';
import { normalize, payloadText, type Incoming, type Notification } from './payload.js';
import { MemoryStore, readJson, writeJson, type RelayStore } from './store.js';

/** Relay's uplink / advice topic and its control topic (docs/self-channel.md). */
export const HEARTBEAT_TOPIC = '$relay/heartbeat';
export const CONTROL_TOPIC = '$relay/control';

/** Where a message came from: 'self' (MQTT), 'sync' (inbox poll), or what the app says for ingest() ('fcm', 'huawei', …). */
export type Channel = string;

export interface RelayMessage {
  id: string;
  seq?: number;
  notification?: Notification;
  data?: Record<string, unknown>;
  /** Epoch ms after which Relay would not have delivered it. */
  expiresAt?: number;
  channel: Channel;
}

export interface RevokeEvent {
  id: string;
  seq?: number;
  channel: Channel;
  /** The message was already emitted: withdraw the notification you showed. Otherwise it will never be emitted. */
  shown: boolean;
}

/**
 * Where the app shows notifications (a system tray, an in-app list). With one, the SDK shows each
 * message once and removes it when Relay recalls it (a revoke, on any channel), before the
 * revoke is acked: a recall reported `withdrawn` is gone from the screen. Without one, the app
 * does both itself on 'message' and 'revoke'.
 */
export interface NotificationSurface {
  show(message: RelayMessage): void | Promise<void>;
  /** Remove what show() put up for this message id. */
  remove(id: string): void | Promise<void>;
}

export interface HeartbeatEvent {
  /** The interval this beat waited. */
  intervalSec: number;
  ok: boolean;
  /** The state after this beat. */
  state: HeartbeatState;
  /** The interval the next beat waits. */
  nextSec: number;
  /** `traffic`: not a beat but a push that arrived after the link sat idle `intervalSec` (a free probe). */
  kind: BeatKind | 'traffic';
  network: string;
}

export interface ConnectedEvent {
  url: string;
  protocolVersion: 4 | 5;
  /** The server's keep-alive advice, when it gave one. */
  advisedSec?: number;
  intervalSec: number;
  state: HeartbeatState;
}

export type DisconnectReason = 'heartbeat-timeout' | 'closed' | 'server-disconnect' | 'network-change' | 'client-close';

export interface DisconnectedEvent {
  reason: DisconnectReason;
  /** MQTT 5 DISCONNECT reason code from the server (0x8E taken over, 0x8B shutting down, …). */
  reasonCode?: number;
  error?: Error;
}

export interface RelayDeviceEvents {
  message: RelayMessage;
  revoke: RevokeEvent;
  heartbeat: HeartbeatEvent;
  connected: ConnectedEvent;
  disconnected: DisconnectedEvent;
  /** Poll mode (HTTP inbox sync) started or ended. */
  poll: { active: boolean };
  /** An inbox sync finished. */
  sync: { received: number };
  /** Something failed that the SDK recovers from (a report, a poll, the store); fatal ones also reject connect(). */
  error: Error;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RelayDeviceOptions {
  /** `mqtt://host:1884`, `mqtts://…`, `ws://host:3000/mqtt`, `wss://…` (from the registration's `self`). */
  url: string;
  /** `http://host:3000`: for POST /v1/events and the inbox sync. */
  apiBase?: string;
  deviceId: string;
  /** The device token from PUT /v1/devices/:id (`self.password`). */
  password: string;
  /** Key of the per-network heartbeat memory (`cmcc-4g`, `wifi:<ssid hash>`). Default 'default'. */
  network?: string;
  heartbeat?: Partial<HeartbeatConfig>;
  /** Persistence for heartbeat memory, seen ids and the inbox cursor. Default: memory. */
  store?: RelayStore;
  /** MQTT 5 (default) or 3.1.1. */
  protocolVersion?: 4 | 5;
  /** CONNECT → SUBACK must complete within this. Default clamp(3 × ackTimeoutSec, 3, 30). */
  connectTimeoutSec?: number;
  /** Jittered exponential back-off between connection attempts: delay ∈ [½, 1] × min(maxSec, minSec × factor^n). */
  reconnect?: { minSec?: number; maxSec?: number; factor?: number };
  /** Poll the inbox after this many consecutive connections that could not be held (0 = never). Default 5; needs apiBase. */
  poll?: { afterFailures?: number; intervalSec?: number };
  /** Message ids remembered for de-duplication. Default 1000. */
  dedupeSize?: number;
  /** POST a `delivered` event for messages that arrive by ingest() or sync (the self channel's PUBACK already is one). Default true. */
  reportDelivered?: boolean;
  /** Timeout of each HTTP request. Default 15 s. */
  httpTimeoutSec?: number;
  /** Defaults to the global fetch. */
  fetch?: FetchLike;
  /** Defaults to the global timers; inject e.g. an AlarmManager- or background-timer-backed pair on mobile. */
  timers?: Timers;
  /** Extra MQTT.js options (TLS `ca`, `wsOptions`, …). Identity, keepalive, session and reconnect fields are the SDK's. */
  mqttOptions?: IClientOptions;
  /** Shows messages and removes recalled ones (see NotificationSurface). */
  notifications?: NotificationSurface;
}

/** Counters since construction (what bench/heartbeat.ts reads). */
export interface RelayDeviceStats {
  /** Connection attempts, and those that reached SUBACK. */
  attempts: number;
  connects: number;
  /** Heartbeats sent (each a QoS 1 `$relay/heartbeat`), and how many failed. */
  heartbeats: number;
  heartbeatFailures: number;
  /** Interval reports sent outside the beat schedule (right after connecting, when the server's bound was shorter). */
  reports: number;
  /** Messages emitted, and duplicates dropped (any channel). */
  messages: number;
  duplicates: number;
}

/** The heartbeat in flight. */
interface Beat {
  intervalSec: number;
  kind: BeatKind;
  /** What it reported: the server's dead detection follows this once it is acked. */
  reportSec: number;
}

/** Is this MQTT.js error the server's CONNACK refusal that retrying will not fix? */
function isFatalRefusal(err: unknown, version: 4 | 5): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'number') return false;
  // 3.1.1: 1 bad protocol, 2 identifier rejected, 4 bad credentials, 5 not authorized.
  // 5: 0x84 bad protocol, 0x85 identifier, 0x86 credentials, 0x87 not authorized, 0x8A banned, 0x8C bad auth method.
  return version === 5 ? [0x84, 0x85, 0x86, 0x87, 0x8a, 0x8c].includes(code) : [1, 2, 4, 5].includes(code);
}

/** A PUBACK came back, even one with an MQTT 5 error reason code: the path is alive. */
function isPubackResult(err: unknown): boolean {
  return !err || typeof (err as { code?: unknown }).code === 'number';
}

/** Keep alive / report value: whole seconds in [1, 65535], rounded up so the server's 1.5 × bound never bites early. */
function wholeSec(sec: number): number {
  return Math.min(65535, Math.max(1, Math.ceil(sec - 1e-9)));
}

const now: () => number =
  typeof performance === 'object' && performance !== null && typeof performance.now === 'function'
    ? () => performance.now()
    : () => Date.now();

const defaultTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof globalThis.setTimeout>),
};

/**
 * A device on Relay's self-hosted channel (SPEC §6): one MQTT connection held with a smart
 * heartbeat, messages de-duplicated across every channel, delivered / opened reporting,
 * reconnects with jittered back-off and an HTTP inbox poll when no connection can be held.
 * Core path uses only timers, fetch and MQTT.js, so it runs in Node, browsers and React Native.
 */
export class RelayDevice extends Emitter<RelayDeviceEvents> {
  readonly deviceId: string;
  private readonly opts: RelayDeviceOptions;
  private readonly hbConfig: HeartbeatConfig;
  private readonly store: RelayStore;
  private readonly ids: SeenIds;
  private readonly timers: Timers;
  private readonly version: 4 | 5;
  private readonly connectTimeoutMs: number;
  private readonly http: DeviceHttp | null;
  private hb: SmartHeartbeat;
  private networkKey: string;

  private client: MqttClient | null = null;
  private isConnected = false;
  /** The current connection proved itself (a beat acked or a message arrived). */
  private held = false;
  /** Consecutive connections that were not held: drives the back-off and poll mode. */
  private unheld = 0;
  private closing = false;
  private fatal: Error | null = null;
  private dropReason: DisconnectReason | null = null;
  private serverReasonCode: number | undefined;
  private lastError: Error | undefined;
  /** The interval the server's dead detection follows now (keep alive, advice or our last report). */
  private serverSec = 0;
  private lastSent = 0;
  private lastRecv = 0;
  private beat: Beat | null = null;
  private beatTimer: unknown = null;
  private ackTimer: unknown = null;
  private reconnectTimer: unknown = null;
  private pollTimer: unknown = null;
  private polling = false;
  private loaded: Promise<void> | null = null;
  readonly stats: RelayDeviceStats = {
    attempts: 0,
    connects: 0,
    heartbeats: 0,
    heartbeatFailures: 0,
    reports: 0,
    messages: 0,
    duplicates: 0,
  };
  private ready: { promise: Promise<void>; resolve(): void; reject(err: Error): void; settled: boolean } | null = null;

  constructor(options: RelayDeviceOptions) {
    super();
    if (!options || typeof options.url !== 'string' || !options.url) throw new TypeError('RelayDevice: url is required');
    if (typeof options.deviceId !== 'string' || !options.deviceId) throw new TypeError('RelayDevice: deviceId is required');
    if (typeof options.password !== 'string' || !options.password) throw new TypeError('RelayDevice: password is required');
    this.opts = options;
    this.deviceId = options.deviceId;
    this.networkKey = options.network ?? 'default';
    this.hbConfig = resolveHeartbeat(options.heartbeat);
    this.hb = new SmartHeartbeat(this.hbConfig);
    this.store = options.store ?? new MemoryStore();
    this.ids = new SeenIds(options.dedupeSize ?? 1000, this.store, `relay:seen:${this.deviceId}`);
    this.timers = options.timers ?? defaultTimers;
    this.version = options.protocolVersion === 4 ? 4 : 5;
    this.connectTimeoutMs = 1000 * (options.connectTimeoutSec ?? Math.min(30, Math.max(3, 3 * this.hbConfig.ackTimeoutSec)));
    const fetchImpl = options.fetch ?? (typeof fetch === 'function' ? (fetch as unknown as FetchLike) : undefined);
    this.http =
      options.apiBase && fetchImpl
        ? {
            apiBase: options.apiBase,
            deviceId: this.deviceId,
            password: options.password,
            fetch: fetchImpl,
            timeoutMs: 1000 * (options.httpTimeoutSec ?? 15),
          }
        : null;
  }

  // ------------------------------------------------------------------ public surface

  /** The current heartbeat interval, in seconds. */
  get intervalSec(): number {
    return this.hb.intervalSec;
  }

  get heartbeatState(): HeartbeatState {
    return this.hb.state;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  get network(): string {
    return this.networkKey;
  }

  /** True while the SDK polls the inbox because no connection could be held. */
  get pollMode(): boolean {
    return this.polling;
  }

  /**
   * Starts the device. Resolves once connected (or once poll mode starts); rejects on a refusal
   * that retrying cannot fix (bad credentials) or when close() comes first. Reconnects forever.
   */
  connect(): Promise<void> {
    if (this.closing) return Promise.reject(new Error('RelayDevice: closed'));
    if (!this.ready) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      const ready = {
        promise,
        settled: false,
        resolve: () => {
          if (ready.settled) return;
          ready.settled = true;
          resolve();
        },
        reject: (err: Error) => {
          if (ready.settled) return;
          ready.settled = true;
          reject(err);
        },
      };
      this.ready = ready;
      // Handled here too: an app that never awaits connect() must not crash on a later close().
      promise.catch(() => undefined);
      void this.load().then(() => this.attempt());
    }
    return this.ready.promise;
  }

  /** Has this message id already been shown (or revoked) on this device, on any channel? */
  seen(id: string): boolean {
    return this.ids.get(id) !== undefined;
  }

  /**
   * Feeds a payload that arrived on another channel (FCM / vendor data with `relay_id`, an APNs
   * userInfo, …). Emits 'message' (or 'revoke') when the id is new; resolves true when it was.
   */
  async ingest(message: unknown, channel: Channel = 'fcm'): Promise<boolean> {
    await this.load();
    const m = normalize(message);
    if (!m) return false;
    if (m.type === 'revoke') return this.applyRevoke(m, channel);
    const fresh = await this.accept(m, channel);
    if (fresh && channel !== 'self') this.reportDelivered(m.id);
    return fresh;
  }

  /**
   * Reports that the user opened a message: `$relay/control {"type":"opened","id"}` while
   * connected, else (or when that is not acked) `POST /v1/events`.
   */
  async opened(id: string): Promise<void> {
    if (typeof id !== 'string' || !id) throw new TypeError('opened(id): id must be a non-empty string');
    const client = this.client;
    if (client && this.isConnected) {
      try {
        await this.publishAcked(client, CONTROL_TOPIC, JSON.stringify({ type: 'opened', id }));
        return;
      } catch {
        // fall back to HTTP
      }
    }
    await this.postEvent('opened', id);
  }

  /**
   * Pulls pending messages: `GET /v1/devices/:id/inbox?after=<cursor>` until it is drained.
   * Resolves with the number of new messages emitted.
   */
  async sync(): Promise<number> {
    const http = this.requireHttp();
    await this.load();
    const fresh: string[] = [];
    const revoked: string[] = [];
    for (let page = 0; page < 100; page++) {
      const after = this.ids.seq;
      const path = `/v1/devices/${encodeURIComponent(this.deviceId)}/inbox?after=${after}`;
      const res = (await deviceRequest(http, 'GET', path)) as { items?: unknown; next?: unknown } | undefined;
      const items = Array.isArray(res?.items) ? (res.items as unknown[]) : [];
      const parsed = items.map(normalize).filter((m): m is Incoming => m !== null);
      parsed.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
      let top = after;
      for (const m of parsed) {
        if (m.type === 'revoke') {
          // A recall (docs/recall.md): applied (removed) once, confirmed every time it is listed.
          await this.applyRevoke(m, 'sync');
          revoked.push(m.id);
          continue; // its seq is the recalled message's: it does not move the cursor
        }
        if (await this.accept(m, 'sync')) fresh.push(m.id);
        if (m.seq !== undefined) top = Math.max(top, m.seq);
      }
      // `next` is the cursor of the next page; null (or absent) on the last one.
      const next = typeof res?.next === 'number' && Number.isFinite(res.next) ? res.next : null;
      await this.ids.advance(Math.max(top, next ?? 0));
      if (next === null || parsed.length === 0 || this.ids.seq <= after) break;
    }
    // The inbox keeps a message until it is acked: tell Relay what was taken (one batch).
    this.reportDelivered(...fresh);
    // And a revoke until it is confirmed: Relay then reports the recall withdrawn.
    for (let i = 0; i < revoked.length; i += 500) {
      this.postEvent('revoked', ...revoked.slice(i, i + 500)).catch((err: unknown) => this.emit('error', err as Error));
    }
    this.emit('sync', { received: fresh.length });
    return fresh.length;
  }

  /**
   * The device moved to another network (Wi-Fi ↔ cellular, another carrier): switch to that
   * network's heartbeat memory and reconnect at once.
   */
  async setNetwork(network: string): Promise<void> {
    await this.load();
    if (network === this.networkKey) return;
    this.networkKey = network;
    const memory = await this.loadMemory();
    if (this.networkKey !== network) return; // a later call won
    // A beat in flight measured the old network: it must not land in the new one's state.
    this.beat = null;
    this.clear('ackTimer');
    this.clear('beatTimer');
    this.hb = new SmartHeartbeat(this.hbConfig, memory);
    const client = this.client;
    if (client) this.drop(client, 'network-change');
    else if (this.reconnectTimer !== null) {
      this.clear('reconnectTimer');
      this.reconnectTimer = this.timers.setTimeout(() => this.attempt(), 0);
    }
  }

  /** Disconnects (MQTT DISCONNECT) and stops every timer. The instance cannot connect again. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.clear('reconnectTimer');
    this.clear('beatTimer');
    this.clear('ackTimer');
    this.clear('pollTimer');
    this.polling = false;
    this.beat = null;
    this.ready?.reject(new Error('RelayDevice: closed'));
    const client = this.client;
    this.client = null;
    const wasConnected = this.isConnected;
    this.isConnected = false;
    if (client) {
      // A graceful DISCONNECT; if the link is a black hole (no FIN ever comes back), cut it after 1 s.
      await new Promise<void>((resolve) => {
        let t: unknown = null;
        const done = () => {
          if (t !== null) this.timers.clearTimeout(t);
          t = null;
          resolve();
        };
        t = this.timers.setTimeout(() => {
          t = null;
          client.stream?.destroy();
          done();
        }, 1000);
        client.once('close', done);
        client.end(false, {}, done);
      });
    }
    if (wasConnected) this.emit('disconnected', { reason: 'client-close' });
  }

  // ------------------------------------------------------------------ connection lifecycle

  private load(): Promise<void> {
    this.loaded ??= (async () => {
      try {
        await this.ids.load();
      } catch (err) {
        this.emit('error', err as Error);
      }
      const memory = await this.loadMemory();
      if (memory) this.hb = new SmartHeartbeat(this.hbConfig, memory);
    })();
    return this.loaded;
  }

  private memoryKey(): string {
    return `relay:heartbeat:${this.networkKey}`;
  }

  private async loadMemory(): Promise<HeartbeatMemory | null> {
    try {
      const m = (await readJson(this.store, this.memoryKey())) as HeartbeatMemory | null | undefined;
      return m && typeof m === 'object' && typeof m.intervalSec === 'number' ? m : null;
    } catch (err) {
      this.emit('error', err as Error);
      return null;
    }
  }

  private attempt(): void {
    this.reconnectTimer = null;
    if (this.closing || this.fatal) return;
    this.hb.connectionStarted();
    const requested = wholeSec(this.hb.intervalSec);
    const extra = this.opts.mqttOptions ?? {};
    const options: IClientOptions = {
      ...extra,
      clientId: this.deviceId,
      username: this.deviceId,
      password: this.opts.password,
      protocolVersion: this.version,
      clean: true,
      // Sent in CONNECT so the gateway knows our interval (and can advise another); MQTT.js's own
      // pinger is switched off right after (see 'packetsend'): the SDK drives heartbeats itself.
      keepalive: requested,
      reconnectPeriod: 0,
      connectTimeout: this.connectTimeoutMs,
      resubscribe: false,
      reschedulePings: false,
      // Listeners first (the CONNECT must be seen on 'packetsend'), then connect().
      manualConnect: true,
    };
    if (this.version === 5) {
      const props = extra.properties ?? {};
      options.properties = { ...props, userProperties: { ...(props.userProperties ?? {}), network: this.networkKey } };
    }
    this.stats.attempts++;
    const client = mqtt.connect(this.opts.url, options);
    this.client = client;
    this.isConnected = false;
    this.held = false;
    this.dropReason = null;
    this.serverReasonCode = undefined;
    this.lastError = undefined;
    this.serverSec = requested;
    this.lastSent = this.lastRecv = now();

    let subscribeTimer: unknown = null;
    const clearSubscribeTimer = () => {
      if (subscribeTimer !== null) this.timers.clearTimeout(subscribeTimer);
      subscribeTimer = null;
    };
    client.handleMessage = (packet: IPublishPacket, done: (err?: Error) => void) => {
      void this.onPublish(client, packet).then(() => done());
    };
    client.on('packetsend', (packet: Packet) => {
      if (packet.cmd === 'connect') {
        client.options.keepalive = 0;
        return;
      }
      this.lastSent = now();
    });
    client.on('packetreceive', (packet: Packet) => {
      const t = now();
      // A push after a quiet spell is a free probe of that spell (see SmartHeartbeat.observeIdle).
      if (packet.cmd === 'publish' && client === this.client && this.isConnected && !this.beat) {
        this.observeIdle(client, (t - Math.max(this.lastSent, this.lastRecv)) / 1000);
      }
      this.lastRecv = t;
    });
    client.on('connect', (connack: IConnackPacket) => {
      if (client !== this.client) return;
      const advised = this.version === 5 ? connack.properties?.serverKeepAlive : undefined;
      if (advised !== undefined) {
        this.serverSec = advised;
        if (advised !== requested) this.hb.adoptAdvice(advised);
      }
      const topics: Record<string, { qos: 0 | 1 }> = { [`devices/${this.deviceId}`]: { qos: 1 } };
      // 3.1.1 devices learn the advice on the heartbeat topic (MQTT 5 has it in the CONNACK).
      if (this.version === 4) topics[HEARTBEAT_TOPIC] = { qos: 0 };
      subscribeTimer = this.timers.setTimeout(() => this.drop(client, 'closed'), this.connectTimeoutMs);
      client.subscribe(topics, (err: Error | null, granted?: ISubscriptionGrant[]) => {
        clearSubscribeTimer();
        if (client !== this.client) return;
        const device = granted?.find((g) => g.topic === `devices/${this.deviceId}`);
        const refused = typeof (err as { code?: unknown } | null)?.code === 'number' || (device !== undefined && device.qos > 2);
        if (err || !device || refused) {
          // A SUBACK refusal (0x80 / 0x87) will not change on retry: the credentials do not fit the topic.
          if (refused) this.fatal = new Error(`RelayDevice: subscription to devices/${this.deviceId} refused`);
          this.drop(client, 'closed');
          return;
        }
        this.onReady(client, advised);
      });
    });
    client.on('disconnect', (packet: { reasonCode?: number }) => {
      if (client !== this.client) return;
      this.serverReasonCode = packet.reasonCode;
      this.dropReason ??= 'server-disconnect';
    });
    client.on('error', (err: Error) => {
      if (client !== this.client) return;
      this.lastError = err;
      if (isFatalRefusal(err, this.version)) this.fatal = err;
    });
    client.on('close', () => {
      clearSubscribeTimer();
      this.onClose(client);
    });
    client.connect();
  }

  private onReady(client: MqttClient, advisedSec: number | undefined): void {
    this.isConnected = true;
    this.stats.connects++;
    const event: ConnectedEvent = {
      url: this.opts.url,
      protocolVersion: this.version,
      intervalSec: this.hb.intervalSec,
      state: this.hb.state,
    };
    if (advisedSec !== undefined) event.advisedSec = advisedSec;
    this.emit('connected', event);
    this.ready?.resolve();
    if (client !== this.client) return; // a listener closed us
    this.reportIfBehind(client);
    this.armBeat();
  }

  /** Ends a connection on purpose; its 'close' then schedules the reconnect. */
  private drop(client: MqttClient, reason: DisconnectReason): void {
    if (client !== this.client) return;
    this.dropReason ??= reason;
    client.end(true);
  }

  private onClose(client: MqttClient): void {
    if (client !== this.client) return;
    this.client = null;
    this.clear('beatTimer');
    this.clear('ackTimer');
    const wasConnected = this.isConnected;
    this.isConnected = false;
    const beat = this.beat;
    // The connection died under a heartbeat: that beat failed.
    if (beat) this.finishBeat(beat, false);
    if (wasConnected) {
      const ev: DisconnectedEvent = { reason: this.dropReason ?? 'closed' };
      if (this.serverReasonCode !== undefined) ev.reasonCode = this.serverReasonCode;
      if (this.lastError) ev.error = this.lastError;
      this.emit('disconnected', ev);
    }
    if (this.closing) return;
    if (this.fatal) {
      this.ready?.reject(this.fatal);
      this.emit('error', this.fatal);
      return;
    }
    const immediate = this.dropReason === 'network-change';
    if (!this.held && !immediate) this.unheld++;
    const poll = this.opts.poll ?? {};
    const after = poll.afterFailures ?? 5;
    if (after > 0 && this.unheld >= after) this.startPolling();
    this.reconnectTimer = this.timers.setTimeout(() => this.attempt(), immediate ? 0 : this.backoffMs(this.unheld));
  }

  /** Jittered exponential back-off: ∈ [½, 1] × min(maxSec, minSec × factor^(n-1)); n = 0 → minSec. */
  private backoffMs(n: number): number {
    const r = this.opts.reconnect ?? {};
    const min = r.minSec ?? 1;
    const max = Math.max(min, r.maxSec ?? 60);
    const factor = r.factor ?? 2;
    const base = Math.min(max, min * Math.pow(factor, Math.max(0, n - 1)));
    return 1000 * base * (0.5 + 0.5 * Math.random());
  }

  /** The connection is good: back-off restarts, poll mode ends. */
  private markHeld(): void {
    if (this.held) return;
    this.held = true;
    this.unheld = 0;
    if (this.polling) this.stopPolling();
  }

  // ------------------------------------------------------------------ smart heartbeat

  /** Sends our interval now when the server's dead detection would otherwise fire before our first beat. */
  private reportIfBehind(client: MqttClient): void {
    const sec = wholeSec(this.hb.intervalSec);
    if (sec <= this.serverSec) return;
    this.serverSec = sec;
    this.stats.reports++;
    client.publish(HEARTBEAT_TOPIC, this.report(sec), { qos: 1 }, () => undefined);
  }

  private report(intervalSec: number): string {
    return JSON.stringify({ intervalSec, network: this.networkKey, state: this.hb.state });
  }

  private observeIdle(client: MqttClient, idleSec: number): void {
    const before = this.hb.intervalSec;
    if (!this.hb.observeIdle(idleSec)) return;
    this.emit('heartbeat', { intervalSec: idleSec, ok: true, state: this.hb.state, nextSec: this.hb.intervalSec, kind: 'traffic', network: this.networkKey });
    if (this.hb.intervalSec === before) return;
    // A longer interval is announced before the gateway's dead detection could bite; a shorter
    // one (settling) must not wait for the timer armed for the longer one.
    this.reportIfBehind(client);
    this.armBeat();
  }

  /** When the next beat is due: an interval after the last packet in either direction, as a NAT counts idle time. */
  private lastPacket(): number {
    return Math.max(this.lastSent, this.lastRecv);
  }

  private armBeat(): void {
    this.clear('beatTimer');
    if (!this.isConnected || this.beat) return;
    const due = this.lastPacket() + this.hb.intervalSec * 1000;
    this.beatTimer = this.timers.setTimeout(() => this.onBeatTimer(), Math.max(0, due - now()));
  }

  private onBeatTimer(): void {
    this.beatTimer = null;
    const client = this.client;
    if (!client || !this.isConnected || this.beat) return;
    const interval = this.hb.intervalSec;
    const intervalMs = interval * 1000;
    const t = now();
    // Any packet since, either way, restarts the wait: the heartbeat is only for idle links.
    const due = this.lastPacket() + intervalMs;
    if (due - t > 5) {
      this.beatTimer = this.timers.setTimeout(() => this.onBeatTimer(), due - t);
      return;
    }
    // A beat proves (or refutes) its interval only if the link really sat idle for about that
    // long: off by more than half the search resolution, it says nothing about the interval.
    const idle = t - this.lastPacket();
    const tolMs = Math.max(500 * this.hbConfig.resolutionSec, 20);
    const kind: BeatKind = t - due > tolMs ? 'late' : idle < intervalMs - tolMs ? 'short' : 'probe';
    const reportSec = wholeSec(this.hb.nextAfterSuccess(kind));
    const beat: Beat = { intervalSec: interval, kind, reportSec };
    this.beat = beat;
    this.stats.heartbeats++;
    client.publish(HEARTBEAT_TOPIC, this.report(reportSec), { qos: 1 }, (err?: Error) => {
      if (this.beat !== beat || !isPubackResult(err)) return; // a closed connection is handled by onClose
      this.clear('ackTimer');
      this.serverSec = beat.reportSec;
      this.finishBeat(beat, true);
      this.markHeld();
      this.armBeat();
    });
    this.ackTimer = this.timers.setTimeout(() => {
      this.ackTimer = null;
      if (this.beat !== beat) return;
      this.finishBeat(beat, false);
      this.drop(client, 'heartbeat-timeout');
    }, this.hbConfig.ackTimeoutSec * 1000);
  }

  private finishBeat(beat: Beat, ok: boolean): void {
    this.beat = null;
    if (!ok) this.stats.heartbeatFailures++;
    const outcome = this.hb.record(ok, beat.intervalSec, beat.kind);
    if (outcome.save !== undefined) {
      const key = this.memoryKey();
      writeJson(this.store, key, outcome.save).catch((err: unknown) => this.emit('error', err as Error));
    }
    this.emit('heartbeat', {
      intervalSec: beat.intervalSec,
      ok,
      state: this.hb.state,
      nextSec: this.hb.intervalSec,
      kind: beat.kind,
      network: this.networkKey,
    });
  }

  // ------------------------------------------------------------------ messages

  private async onPublish(client: MqttClient, packet: IPublishPacket): Promise<void> {
    try {
      if (packet.topic === `devices/${this.deviceId}`) {
        let body: unknown;
        try {
          body = JSON.parse(payloadText(packet.payload));
        } catch {
          this.emit('error', new Error(`RelayDevice: unreadable message on devices/${this.deviceId}`));
          return; // still PUBACKed: a redelivery would not read better
        }
        if (client === this.client) this.markHeld();
        const m = normalize(body);
        if (!m) return;
        if (m.type === 'revoke') await this.applyRevoke(m, 'self');
        else await this.accept(m, 'self');
      } else if (packet.topic === HEARTBEAT_TOPIC) {
        const advice = (JSON.parse(payloadText(packet.payload)) as { adviseSec?: unknown }).adviseSec;
        if (typeof advice === 'number' && client === this.client && this.hb.adoptAdvice(advice)) {
          this.reportIfBehind(client);
          if (!this.beat) this.armBeat();
        }
      }
    } catch (err) {
      this.emit('error', err as Error);
    }
  }

  /**
   * Shows a message once: recorded (and persisted) before it is emitted, so a crash never shows
   * it twice; the self channel's PUBACK goes out after this resolves.
   */
  private async accept(m: Incoming, channel: Channel): Promise<boolean> {
    if (this.ids.get(m.id) !== undefined) {
      this.stats.duplicates++;
      return false;
    }
    const saved = this.ids.set(m.id, SHOWN);
    try {
      await saved;
    } catch (err) {
      this.emit('error', err as Error);
    }
    const msg: RelayMessage = { id: m.id, channel };
    if (m.seq !== undefined) msg.seq = m.seq;
    if (m.notification) msg.notification = m.notification;
    if (m.data) msg.data = m.data;
    if (m.expiresAt !== undefined) msg.expiresAt = m.expiresAt;
    this.stats.messages++;
    this.emit('message', msg);
    await this.surface((n) => n.show(msg));
    return true;
  }

  /** Calls the app's NotificationSurface, if any; its failure is reported, never thrown. */
  private async surface(call: (n: NotificationSurface) => void | Promise<void>): Promise<void> {
    const n = this.opts.notifications;
    if (!n) return;
    try {
      await call(n);
    } catch (err) {
      this.emit('error', err as Error);
    }
  }

  private async applyRevoke(m: Incoming, channel: Channel): Promise<boolean> {
    const before = this.ids.get(m.id);
    if (before === REVOKED) return false;
    try {
      await this.ids.set(m.id, REVOKED);
    } catch (err) {
      this.emit('error', err as Error);
    }
    const ev: RevokeEvent = { id: m.id, channel, shown: before === SHOWN };
    if (m.seq !== undefined) ev.seq = m.seq;
    // Removed before this resolves: on the self channel the revoke's PUBACK (Relay's `withdrawn`) follows.
    if (ev.shown) await this.surface((n) => n.remove(m.id));
    this.emit('revoke', ev);
    return true;
  }

  // ------------------------------------------------------------------ reporting and inbox

  private publishAcked(client: MqttClient, topic: string, payload: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => reject(new Error('RelayDevice: no PUBACK')), this.hbConfig.ackTimeoutSec * 1000);
      client.publish(topic, payload, { qos: 1 }, (err?: Error) => {
        this.timers.clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      });
    });
  }

  private requireHttp(): DeviceHttp {
    if (!this.http) throw new Error('RelayDevice: apiBase (and a fetch implementation) is needed for this');
    return this.http;
  }

  /** `POST /v1/events`: `{deviceId, messageId, event}`, or `{events: [...]}` for several. */
  private async postEvent(event: 'opened' | 'delivered' | 'revoked', ...messageIds: string[]): Promise<void> {
    const one = (messageId: string) => ({ deviceId: this.deviceId, messageId, event });
    const body = messageIds.length === 1 ? one(messageIds[0]!) : { events: messageIds.map(one) };
    await deviceRequest(this.requireHttp(), 'POST', '/v1/events', body);
  }

  private reportDelivered(...messageIds: string[]): void {
    if (this.opts.reportDelivered === false || !this.http) return;
    for (let i = 0; i < messageIds.length; i += 500) {
      this.postEvent('delivered', ...messageIds.slice(i, i + 500)).catch((err: unknown) => this.emit('error', err as Error));
    }
  }

  private startPolling(): void {
    if (this.polling || !this.http) return;
    this.polling = true;
    this.emit('poll', { active: true });
    this.ready?.resolve();
    void this.pollOnce();
  }

  private stopPolling(): void {
    this.polling = false;
    this.clear('pollTimer');
    this.emit('poll', { active: false });
  }

  private async pollOnce(): Promise<void> {
    this.pollTimer = null;
    if (!this.polling || this.closing) return;
    try {
      await this.sync();
    } catch (err) {
      this.emit('error', err as Error);
    }
    if (!this.polling || this.closing) return;
    const everySec = this.opts.poll?.intervalSec ?? Math.max(60, this.hbConfig.minSec);
    this.pollTimer = this.timers.setTimeout(() => void this.pollOnce(), everySec * 1000);
  }

  private clear(name: 'beatTimer' | 'ackTimer' | 'reconnectTimer' | 'pollTimer'): void {
    const h = this[name];
    if (h !== null) {
      this.timers.clearTimeout(h);
      this[name] = null;
    }
  }
}
