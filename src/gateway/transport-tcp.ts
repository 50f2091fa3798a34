import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import type { Hub } from './hub.js';
import { Session } from './session.js';
import type { Transport } from './types.js';

/** How long a gracefully ended socket may linger (peer not closing its side) before it is destroyed. */
const LINGER_MS = 5_000;

const kSession = Symbol('relay.gateway.session');
type TaggedSocket = Socket & { [kSession]: TcpSession };

// Shared listeners (this = the socket): no closures per connection.
function onData(this: TaggedSocket, chunk: Buffer): void {
  this[kSession].feed(chunk);
}
function onClose(this: TaggedSocket): void {
  this[kSession].transportClosed();
}
function onError(this: TaggedSocket): void {
  // Swallowed: ECONNRESET, EPIPE… are normal for phones; 'close' follows and ends the session.
}
function destroySelf(this: Socket): void {
  this.destroy();
}

/** MQTT over a plain TCP socket. */
export class TcpSession extends Session {
  constructor(
    hub: Hub<Session>,
    private readonly sock: Socket,
  ) {
    super(hub, `${sock.remoteAddress}:${sock.remotePort}`);
    (sock as TaggedSocket)[kSession] = this;
    sock.on('data', onData);
    sock.on('error', onError);
    sock.on('close', onClose);
  }

  get transport(): Transport {
    return 'tcp';
  }

  protected send(buf: Buffer): void {
    if (!this.sock.destroyed) this.sock.write(buf);
  }

  protected buffered(): number {
    return this.sock.writableLength;
  }

  protected shut(graceful: boolean): void {
    const sock = this.sock;
    if (sock.destroyed) return;
    if (!graceful) {
      sock.destroy();
      return;
    }
    sock.end();
    sock.setTimeout(LINGER_MS, destroySelf);
  }
}

/**
 * A TCP listener feeding sessions into the hub; with `tls` (a certificate and key), MQTT over TLS.
 * A TLS handshake gets no longer than a CONNECT would: a client that stalls it is cut off.
 */
export function createTcpListener(hub: Hub<Session>, tls?: TlsOptions): Server {
  const server = tls ? createTlsServer({ ...tls, handshakeTimeout: hub.opts.connectTimeoutMs }) : createServer({ noDelay: true });
  server.on(tls ? 'secureConnection' : 'connection', (sock: Socket) => {
    if (hub.closing) {
      sock.destroy();
      return;
    }
    if (tls) sock.setNoDelay(true);
    new TcpSession(hub, sock);
  });
  // A failed or timed-out handshake (scanners, plain MQTT on the TLS port, a stalled ClientHello):
  // with a listener here Node leaves the socket open, so close it (found by the slowloris fuzz).
  if (tls) server.on('tlsClientError', (_err, sock) => sock.destroy());
  server.on('error', (err) => hub.log.error({ err }, 'gateway: TCP listener error'));
  return server;
}
