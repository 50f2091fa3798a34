import { randomBytes } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { TlsOptions } from 'node:tls';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { selfPayload } from '../../providers/self.js';
import type { OutcomeReason, PushContent } from '../../providers/types.js';
import type { Context } from '../context.js';
import {
  CONTROL_TOPIC,
  GatewayServer,
  HEARTBEAT_TOPIC,
  deviceTokenAuthenticator,
  type Authenticate,
  type DropDetail,
  type DropReason,
  type OfflineReason,
  type SessionInfo,
} from '../gateway/index.js';
import { RecallsRepo } from '../db/recalls-repo.js';
import { AckWriter } from './ack-writer.js';
import { BusPublisher, BusSubscriber, type BusClose, type BusKick, type BusMessage, type BusPush, type BusRevoke } from './bus.js';
import { DeviceCredentials } from './device-credentials.js';
import { KeepAliveAdvisor } from './keepalive-advisor.js';
import { NODE_TTL_MS, Presence, type PresenceEntry } from './presence.js';
import { SelfSessions } from './sessions.js';
import { RELAY_CODES } from '../core/outcome-codes.js';

/** Pending messages handed to a device per connect (the gateway queues at most 1000 per session). */
const REDELIVER_LIMIT = 1000;
const MESSAGE_ID = /^msg_[A-Za-z0-9_-]{1,64}$/;

/**
 * The gateway role: one GatewayServer (src/gateway) wired to the pipeline.
 * - presence: a device that connects is marked online on this node in Redis (and an older session
 *   on another node is kicked); marked offline when it leaves, unless it is already elsewhere;
 * - sessions: persistent MQTT sessions (the device's subscription to its topic) and what earlier
 *   connections wrote live in Redis (SelfSessions);
 * - delivery: workers publish pushes to this node's bus channel; on every connect the device's
 *   pending messages are read from PostgreSQL and handed out again in seq order, with DUP when an
 *   earlier connection may have received them;
 * - receipts: PUBACKs (and `opened` / `delivered` reports on `$relay/control`) are written in
 *   batches, and so are pushes the device refused or could not take (`failed`);
 * - heartbeat: stable intervals reported on `$relay/heartbeat` teach the per-network advice.
 */
export class GatewayNode {
  /** This process's node id: presence entries and the bus channel name it. */
  readonly id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  readonly gw: GatewayServer;
  readonly presence: Presence;
  readonly advisor: KeepAliveAdvisor;
  readonly sessions: SelfSessions;
  private readonly bus: BusPublisher;
  private readonly subscriber: BusSubscriber;
  private readonly acks: AckWriter;
  private readonly recalls: RecallsRepo;
  private readonly log: Logger;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** What each online session's presence entry says, to rewrite it only when it changes. */
  private readonly written = new Map<string, string>();
  /** When each CONNECT still being answered began its credential check (see authenticator()). */
  private readonly authStarted = new Map<string, number>();
  /** Devices whose password was revoked or rotated lately, and when the news came. */
  private readonly recentlyRevoked = new Map<string, number>();
  private aliveTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly ctx: Context) {
    this.log = ctx.logger.child({ component: 'gateway', node: this.id });
    const redis = ctx.queues.connection;
    this.presence = new Presence(redis, ctx.config.QUEUE_PREFIX);
    this.bus = new BusPublisher(redis, ctx.config.QUEUE_PREFIX);
    this.acks = new AckWriter(ctx.repos.deliveries, this.log);
    this.recalls = new RecallsRepo(ctx.db);
    this.advisor = new KeepAliveAdvisor(redis, ctx.config.QUEUE_PREFIX, this.log);
    this.sessions = new SelfSessions(redis, ctx.config.QUEUE_PREFIX, (p) => this.track(p));
    this.subscriber = new BusSubscriber(ctx.redis, ctx.config.QUEUE_PREFIX, this.id, (m) => this.onBus(m), this.log);
    this.gw = new GatewayServer({
      authenticate: this.authenticator(deviceTokenAuthenticator(ctx.secrets.deviceTokenSecret, new DeviceCredentials(ctx).current)),
      adviseKeepAlive: this.advisor.advise,
      sessions: this.sessions,
      logger: this.log,
      hooks: {
        onOnline: (s) => {
          if (this.revokedWhileAuthenticating(s)) this.gw.kick(s.appId, s.deviceId, 'closed');
          else this.track(this.online(s));
        },
        onOffline: (s, why) => this.offline(s, why),
        onAck: (appId, deviceId, messageId) => this.acks.add(appId, { event: 'delivered', messageId, deviceId, at: Date.now() }),
        // The SDK acks a revoke once it has applied it (removed the notification): withdrawn.
        onRevokeAck: (appId, deviceId, messageId) => {
          this.track(
            this.recalls.revokeAcked(appId, deviceId, messageId).catch((err: Error) => {
              this.log.warn({ err: err.message, appId, deviceId, messageId }, 'gateway: revoke ack not written (the device gets the revoke again on its next connect)');
            }),
          );
        },
        onControl: (appId, deviceId, topic, payload) => this.control(appId, deviceId, topic, payload),
        onDropped: (appId, deviceId, messageId, seq, reason, detail) => this.dropped(appId, deviceId, messageId, seq, reason, detail),
      },
    });
  }

  /** Joins the bus and presence, then listens for MQTT over TCP; resolves with the bound port. */
  async listen(port: number, host?: string): Promise<number> {
    await this.presence.markAlive(this.id);
    this.aliveTimer = setInterval(() => {
      this.presence.markAlive(this.id).catch((err: Error) => this.log.warn({ err: err.message }, 'gateway: liveness refresh failed'));
    }, Math.floor(NODE_TTL_MS / 3));
    this.aliveTimer.unref();
    await this.subscriber.start();
    return this.gw.listenTcp(port, host);
  }

  /** MQTT over TLS on another port (after listen()); resolves with the bound port. */
  listenTls(port: number, host: string | undefined, tls: TlsOptions): Promise<number> {
    return this.gw.listenTcp(port, host, tls);
  }

  /** MQTT over WebSocket at `path` of an HTTP(S) server (the API's, the gateway's own, or the wss one). */
  attachWebSocket(server: HttpServer | HttpsServer, path = '/mqtt'): void {
    this.gw.attachWebSocket(server, path);
  }

  /** Ends every session (their presence goes), writes the last acks, leaves the bus. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.aliveTimer);
    await this.gw.close();
    await Promise.allSettled([...this.inFlight]);
    await this.acks.close();
    await this.subscriber.close();
    await this.presence.markDead(this.id).catch(() => undefined);
  }

  // ------------------------------------------------------------------ credentials

  /**
   * The password's epoch must be the device's current one: deleted devices and rotated passwords
   * are refused. A revocation published while a CONNECT is between its epoch read and its CONNACK
   * finds no session to close; onOnline closes it then (the revocation came after the check began).
   */
  private authenticator(check: Authenticate): Authenticate {
    return async (clientId, username, password) => {
      const started = Date.now();
      const id = await check(clientId, username, password);
      // Entries go in onOnline; one whose connection died before its CONNACK stays: bound them.
      if (this.authStarted.size > 100_000) this.authStarted.clear();
      if (id) this.authStarted.set(`${id.appId}\u0000${id.deviceId}`, started);
      return id;
    };
  }

  private revokedWhileAuthenticating(s: SessionInfo): boolean {
    const key = `${s.appId}\u0000${s.deviceId}`;
    const started = this.authStarted.get(key);
    this.authStarted.delete(key);
    const revoked = this.recentlyRevoked.get(key);
    return started !== undefined && revoked !== undefined && revoked >= started;
  }

  private onClose(msg: BusClose): void {
    const now = Date.now();
    // Rare (a delete or a rotation): prune old marks here instead of with a timer.
    for (const [k, at] of this.recentlyRevoked) if (now - at > 60_000) this.recentlyRevoked.delete(k);
    this.recentlyRevoked.set(`${msg.appId}\u0000${msg.deviceId}`, now);
    this.gw.kick(msg.appId, msg.deviceId, 'closed');
  }

  // ------------------------------------------------------------------ sessions

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  private entry(s: SessionInfo): PresenceEntry {
    return { node: this.id, since: s.connectedAt, interval: s.intervalSec, ...(s.network ? { network: s.network } : {}) };
  }

  /** Tells one connection of a device from another in its session record. */
  private tag(s: SessionInfo): string {
    return `${this.id} ${s.connectedAt}`;
  }

  private async online(s: SessionInfo): Promise<void> {
    const { appId, deviceId } = s;
    this.ctx.lastSeen.touch(appId, deviceId);
    // Sent before anything can end this session, so its close always comes after.
    const written = this.sessions.open(appId, deviceId, this.tag(s)).catch((err: Error) => {
      this.log.warn({ err: err.message, appId, deviceId }, 'gateway: session record not read (pending messages go out with DUP)');
      return { writtenSeq: Infinity };
    });
    const entry = this.entry(s);
    this.written.set(`${appId}\u0000${deviceId}`, `${entry.network ?? ''}\u0000${entry.interval}`);
    // Presence first, then the read: a push that found the device offline was numbered before
    // this read, so the read finds it; one that found it online reaches this node on the bus.
    try {
      const prev = await this.presence.claim(appId, deviceId, entry);
      if (prev && prev.node !== this.id) {
        // Takeover across nodes: the node that held the device closes its (stale) session.
        const kick: BusKick = { t: 'kick', appId, deviceId, by: this.id };
        await this.bus.publish([{ node: prev.node, msg: kick }]);
      }
    } catch (err) {
      // Without presence the device is routed as offline (pinned self pushes still wait for it).
      this.log.warn({ err: (err as Error).message, appId, deviceId }, 'gateway: presence not written');
    }
    // Acks of an earlier session on this node are written first, so they are not handed out again.
    await this.acks.flush();
    const pending = await this.ctx.repos.self.pending(appId, deviceId, 0, REDELIVER_LIMIT);
    // [MQTT-3.3.1-1]: DUP on a redelivery, and only then. Seqs grow per device, so one written
    // before is at most the highest seq earlier connections wrote (an unwritten one below it gets
    // DUP too: harmless, unlike a redelivery without it).
    const { writtenSeq } = await written;
    for (const m of pending) {
      if (this.gw.session(appId, deviceId)?.connectedAt !== s.connectedAt) return; // gone or taken over
      const request = m.request as Pick<PushContent, 'notification' | 'data' | 'overrides'>;
      this.deliver(appId, deviceId, m.messageId, m.seq, selfPayload(request), m.expiresAt.getTime(), m.seq <= writtenSeq);
    }
    if (pending.length > 0) this.log.debug({ appId, deviceId, n: pending.length }, 'self channel: pending messages handed out');
    // Revokes of recalled messages the device has not acked: it was offline at recall time, or
    // its connection ended before the PUBACK (docs/recall.md).
    const revokes = await this.recalls.pendingRevokes(appId, deviceId, REDELIVER_LIMIT);
    for (const r of revokes) {
      if (this.gw.session(appId, deviceId)?.connectedAt !== s.connectedAt) return;
      this.gw.revoke(appId, deviceId, r.messageId, r.seq);
    }
    if (revokes.length > 0) this.log.debug({ appId, deviceId, n: revokes.length }, 'self channel: pending revokes handed out');
  }

  private offline(s: SessionInfo, why: OfflineReason): void {
    const key = `${s.appId}\u0000${s.deviceId}`;
    this.written.delete(key);
    this.advisor.forget(key);
    this.sessions.close(s.appId, s.deviceId, this.tag(s), s.maxSeqWritten).catch((err: Error) => {
      this.log.warn({ err: err.message }, 'gateway: session record not closed (its next connection sends pending messages with DUP)');
    });
    // Whatever the session left un-acked stays `sent` in PostgreSQL: the next connect hands it out.
    this.track(
      this.presence.release(s.appId, s.deviceId, this.id, s.connectedAt).catch((err: Error) => {
        this.log.warn({ err: err.message, why }, 'gateway: presence not released (it runs out with this node)');
      }),
    );
  }

  /**
   * A push the device refused (MQTT 5 PUBACK reason code ≥ 0x80) or could not take (above its
   * Maximum Packet Size) ends `failed` and is no longer pending: handing it out again would only
   * meet the same answer. An expired one is left to the sweeper, which ends it `expired`.
   */
  private dropped(appId: string, deviceId: string, messageId: string, seq: number, why: DropReason, detail: DropDetail = {}): void {
    let reason: OutcomeReason;
    if (why === 'rejected') {
      const rc = `0x${(detail.reasonCode ?? 0x80).toString(16).padStart(2, '0')}`;
      reason = { code: RELAY_CODES.refusedByDevice, message: `the device refused the push: PUBACK reason code ${rc}`, evidence: { reasonCode: detail.reasonCode } };
    } else if (why === 'too-large') {
      reason = {
        code: RELAY_CODES.payloadTooLarge,
        message: `the push is ${detail.bytes} bytes as an MQTT packet; the device accepts at most ${detail.limit} (its Maximum Packet Size)`,
        evidence: { bytes: detail.bytes, limit: detail.limit },
      };
    } else {
      this.log.debug({ appId, deviceId, messageId, seq }, 'self channel: push expired in the gateway');
      return;
    }
    this.log.debug({ appId, deviceId, messageId, seq, code: reason.code }, 'self channel: push dropped');
    this.acks.add(appId, { event: 'failed', messageId, deviceId, at: Date.now(), reason });
  }

  /** Hands a push to the local session unless it already holds that message. */
  private deliver(appId: string, deviceId: string, id: string, seq: number, payload: Record<string, unknown>, expiresAt: number, dup: boolean): boolean {
    const held = this.gw.pendingFor(appId, deviceId);
    if (!held) return false;
    if (held.some((p) => p.kind === 'push' && p.id === id)) return true;
    return this.gw.deliver(appId, deviceId, { id, seq, payload, expiresAt, dup });
  }

  private control(appId: string, deviceId: string, topic: string, payload: Record<string, unknown>): void {
    const key = `${appId}\u0000${deviceId}`;
    if (topic === HEARTBEAT_TOPIC) {
      const s = this.gw.session(appId, deviceId);
      // The network named in the report, else the one the device gave in its CONNECT.
      const report = payload.network === undefined && s?.network ? { ...payload, network: s.network } : payload;
      this.track(this.advisor.report(key, report).catch((err: Error) => this.log.warn({ err: err.message }, 'gateway: heartbeat sample not stored')));
      if (!s) return;
      const entry = this.entry(s);
      const mark = `${entry.network ?? ''}\u0000${entry.interval}`;
      if (this.written.get(key) !== mark) {
        this.written.set(key, mark);
        this.track(this.presence.update(appId, deviceId, entry).catch(() => undefined));
      }
    } else if (topic === CONTROL_TOPIC) {
      const { type, id } = payload;
      if ((type === 'delivered' || type === 'opened') && typeof id === 'string' && MESSAGE_ID.test(id)) {
        this.acks.add(appId, { event: type, messageId: id, deviceId, at: Date.now() });
      }
    }
  }

  // ------------------------------------------------------------------ bus

  private onBus(msg: BusMessage): void {
    if (this.closed) return;
    if (msg.t === 'push') this.onPush(msg);
    else if (msg.t === 'kick') this.track(this.onKick(msg));
    else if (msg.t === 'revoke') this.onRevoke(msg);
    // Its password was revoked or rotated: the device must reconnect with the current one.
    else if (msg.t === 'close') this.onClose(msg);
  }

  private onPush(msg: BusPush): void {
    const away: [string, number][] = [];
    for (const [deviceId, seq] of msg.to) {
      if (!this.deliver(msg.appId, deviceId, msg.id, seq, msg.payload, msg.expiresAt, false)) away.push([deviceId, seq]);
    }
    // Moved to another node between the worker's presence read and now: forward once. Otherwise
    // the message waits in PostgreSQL for the device's next connect.
    if (away.length > 0 && !msg.hop) this.track(this.forward(msg, away));
  }

  private async forward(msg: BusPush, away: [string, number][]): Promise<void> {
    try {
      const nodes = await this.presence.locate(msg.appId, away.map(([d]) => d));
      const byNode = new Map<string, [string, number][]>();
      for (const pair of away) {
        const node = nodes.get(pair[0]);
        if (!node || node === this.id) continue;
        byNode.set(node, [...(byNode.get(node) ?? []), pair]);
      }
      await this.bus.publish([...byNode].map(([node, to]) => ({ node, msg: { ...msg, to, hop: 1 } })));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'self channel: forwarding failed (the devices get the message on their next connect)');
    }
  }

  private async onKick(msg: BusKick): Promise<void> {
    if (!this.gw.isOnline(msg.appId, msg.deviceId)) return;
    // Read on the connection that wrote our own claims: if the device came back here since, the
    // entry names this node again and the session stays.
    const now = await this.presence.get(msg.appId, msg.deviceId);
    if (now?.node === this.id) return;
    this.gw.kick(msg.appId, msg.deviceId, 'takeover');
  }

  private onRevoke(msg: BusRevoke): void {
    for (const [deviceId, seq] of msg.to) this.gw.revoke(msg.appId, deviceId, msg.id, seq);
  }
}
