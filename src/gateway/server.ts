import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { TlsOptions } from 'node:tls';
import { Downlink } from './downlink.js';
import { Hub } from './hub.js';
import type { Session } from './session.js';
import { createTcpListener } from './transport-tcp.js';
import { attachWebSocket } from './transport-ws.js';
import type { DeliverMessage, GatewayOptions, OfflineReason, PendingDelivery, SessionInfo } from './types.js';

/**
 * Relay's push gateway: MQTT 3.1.1 and 5 over TCP and WebSocket, devices subscribe to their own
 * topic, Relay publishes QoS 1 and learns "delivered" from the PUBACK. Not a general broker.
 * Protocol contract: docs/self-channel.md.
 */
export class GatewayServer {
  private readonly hub: Hub<Session>;
  private readonly listeners: NetServer[] = [];
  private readonly detachers: (() => void)[] = [];
  private closed = false;

  constructor(options: GatewayOptions) {
    this.hub = new Hub<Session>(options, options.hooks);
  }

  /**
   * Listens for MQTT over TCP, or over TLS with `tls` (`{cert, key}` at least); resolves with the
   * bound port (pass 0 for an ephemeral one).
   */
  listenTcp(port: number, host?: string, tls?: TlsOptions): Promise<number> {
    const server = createTcpListener(this.hub, tls);
    this.listeners.push(server);
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen({ port, host, backlog: 4096 }, () => {
        server.off('error', onError);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  /** Serves MQTT over WebSocket (subprotocol `mqtt`) at `path` of an existing HTTP(S) server. */
  attachWebSocket(server: HttpServer | HttpsServer, path = '/mqtt'): void {
    this.detachers.push(attachWebSocket(this.hub, server, path));
  }

  /**
   * Hands a push to the device's connection on this node. Returns false when the device is not
   * online here, or its local queue is full (then nothing was taken: keep it pending).
   * True means the gateway owns it until one of: onAck, onDropped ('expired' when already past
   * `expiresAt`, checked again right before the write; 'rejected'; 'too-large'), or the
   * `pending` list of onOffline. Throws (TypeError) only for a payload JSON cannot serialise.
   */
  deliver(appId: string, deviceId: string, msg: DeliverMessage): boolean {
    const s = this.hub.get(appId, deviceId);
    return s ? s.enqueue(Downlink.push(msg)) : false;
  }

  /**
   * Sends `{"type":"revoke","id","seq"}` on the device topic (QoS 1, acked via onRevokeAck).
   * A push of that message still queued here (never written) is discarded instead of sent.
   * False when the device is not online here.
   */
  revoke(appId: string, deviceId: string, messageId: string, seq: number): boolean {
    const s = this.hub.get(appId, deviceId);
    return s ? s.revoke(messageId, seq) : false;
  }

  isOnline(appId: string, deviceId: string): boolean {
    return this.hub.get(appId, deviceId) !== undefined;
  }

  /** The live session snapshot (interval in force, network, …), or undefined when not online here. */
  session(appId: string, deviceId: string): SessionInfo | undefined {
    return this.hub.get(appId, deviceId)?.info();
  }

  /** Accepted but un-acked downlinks of a device online here (in flight first, then queued). */
  pendingFor(appId: string, deviceId: string): PendingDelivery[] | undefined {
    return this.hub.get(appId, deviceId)?.pending();
  }

  /**
   * Closes a device's connection: onOffline(s, reason) runs, and an MQTT 5 client gets a
   * DISCONNECT with the matching reason (takeover 0x8E, shutdown 0x8B, closed 0x98 administrative
   * action…). Use 'takeover' when the device reconnected on another node. False if not here.
   */
  kick(appId: string, deviceId: string, reason: OfflineReason = 'takeover'): boolean {
    const s = this.hub.get(appId, deviceId);
    if (!s) return false;
    s.kick(reason);
    return true;
  }

  /** Open connections, including those not yet authenticated. */
  get connectionCount(): number {
    return this.hub.connections.size;
  }

  /** Authenticated sessions. */
  get onlineCount(): number {
    return this.hub.online.size;
  }

  /** Stops accepting, ends every session (onOffline 'shutdown'; MQTT 5: DISCONNECT 0x8B), closes listeners. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hub.closing = true;
    for (const d of this.detachers) d();
    for (const s of [...this.hub.connections]) s.kick('shutdown');
    await Promise.all(
      this.listeners.map((srv) => new Promise<void>((resolve) => (srv.listening ? srv.close(() => resolve()) : resolve()))),
    );
    this.hub.stop();
  }
}
