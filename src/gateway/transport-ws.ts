import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Hub } from './hub.js';
import { Session } from './session.js';
import type { Transport } from './types.js';

/** Subprotocols we answer: `mqtt` (3.1.1 and 5, the standard), `mqttv3.1` (old 3.1 clients). */
function selectProtocol(protocols: Set<string>): string | false {
  if (protocols.has('mqtt')) return 'mqtt';
  if (protocols.has('mqttv3.1')) return 'mqttv3.1';
  return false;
}

const kSession = Symbol('relay.gateway.session');
type TaggedWs = WebSocket & { [kSession]: WsSession };

function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  const s = (this as TaggedWs)[kSession];
  // MQTT over WebSocket is binary frames only ([MQTT-6.0.0-1]).
  if (!isBinary) {
    s.terminate('protocol-error');
    return;
  }
  s.feed(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data));
}
function onClose(this: WebSocket): void {
  (this as TaggedWs)[kSession].transportClosed();
}
function onError(this: WebSocket): void {
  // Swallowed; 'close' follows.
}

/** MQTT over a WebSocket (binary frames, any packet/frame boundaries). */
export class WsSession extends Session {
  constructor(
    hub: Hub<Session>,
    private readonly ws: WebSocket,
    remote: string,
  ) {
    super(hub, remote);
    (ws as TaggedWs)[kSession] = this;
    ws.on('message', onMessage);
    ws.on('close', onClose);
    ws.on('error', onError);
  }

  get transport(): Transport {
    return 'ws';
  }

  protected send(buf: Buffer): void {
    if (this.ws.readyState === 1) this.ws.send(buf);
  }

  protected buffered(): number {
    return this.ws.bufferedAmount;
  }

  protected shut(graceful: boolean): void {
    if (this.ws.readyState >= 2) return; // closing or closed
    if (graceful) this.ws.close(1000);
    else this.ws.terminate();
  }
}

function remoteOf(req: IncomingMessage): string {
  const s = req.socket;
  return `${s.remoteAddress}:${s.remotePort}`;
}

/**
 * Serves MQTT over WebSocket on `path` of an existing HTTP(S) server, through its `upgrade`
 * event. Upgrades for other paths are left to other listeners (or refused with 404 when there
 * are none). Returns a function that detaches it.
 */
export function attachWebSocket(hub: Hub<Session>, server: HttpServer | HttpsServer, path: string): () => void {
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    // One frame may carry several packets; the session enforces the per-packet limit itself.
    maxPayload: hub.opts.maxPacketBytes + 1024,
    handleProtocols: selectProtocol,
  });
  wss.on('error', (err) => hub.log.error({ err }, 'gateway: WebSocket server error'));

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    if ((q >= 0 ? url.slice(0, q) : url) !== path) {
      if (server.listenerCount('upgrade') === 1) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    if (hub.closing) {
      socket.destroy();
      return;
    }
    (socket as Socket).setNoDelay?.(true);
    wss.handleUpgrade(req, socket, head, (ws) => {
      new WsSession(hub, ws, remoteOf(req));
    });
  };
  server.on('upgrade', onUpgrade);
  return () => {
    server.off('upgrade', onUpgrade);
    wss.close();
  };
}
