import { EventEmitter } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy that behaves like a carrier NAT: each client connection is a "mapping" to the
 * target. A mapping idle for `idleTimeoutMs` in both directions is dropped the way a NAT drops
 * it: silently. Nothing is forwarded any more, in either direction, and neither side gets a FIN
 * or RST: both sockets stay open, their bytes fall into a black hole. The client and the server
 * only find out through their own heartbeats / timeouts.
 *
 *   const nat = new NatProxy({ target: { host: '127.0.0.1', port }, idleTimeoutMs: 3000 });
 *   const natPort = await nat.listen();
 *   nat.blackhole();          // drop every current mapping now
 *   nat.blackhole(true);      // …and every future one (the link is down)
 *   nat.restore();            // new mappings work again (dropped ones stay dead)
 *
 * Events: 'mapping' ({id}), 'drop' ({id, reason: 'idle'|'manual', idleMs}).
 */
export interface NatProxyOptions {
  target: { host: string; port: number };
  /** Drop a mapping after this long without bytes in either direction; 0/undefined = never. */
  idleTimeoutMs?: number;
  /** How often idle mappings are checked. Default: idleTimeoutMs / 20, clamped to [10, 250] ms. */
  checkIntervalMs?: number;
}

export interface MappingStats {
  id: number;
  dropped: boolean;
  bytesUp: number;
  bytesDown: number;
  /** ms since the last forwarded byte. */
  idleMs: number;
}

interface Mapping {
  id: number;
  client: Socket;
  upstream: Socket;
  lastActivity: number;
  dropped: boolean;
  bytesUp: number;
  bytesDown: number;
}

export class NatProxy extends EventEmitter {
  private readonly server: Server;
  private readonly mappings = new Set<Mapping>();
  private timer: NodeJS.Timeout | null = null;
  private nextId = 1;
  private linkDown = false;
  /** Mappings dropped so far (idle or manual). */
  droppedCount = 0;

  constructor(private readonly opts: NatProxyOptions) {
    super();
    this.server = createServer((client) => this.accept(client));
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    const idle = this.opts.idleTimeoutMs ?? 0;
    if (idle > 0) {
      const every = this.opts.checkIntervalMs ?? Math.min(250, Math.max(10, Math.floor(idle / 20)));
      this.timer = setInterval(() => this.expireIdle(), every);
      this.timer.unref();
    }
    return (this.server.address() as AddressInfo).port;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Live (not dropped) mappings. */
  get activeCount(): number {
    let n = 0;
    for (const m of this.mappings) if (!m.dropped) n++;
    return n;
  }

  stats(): MappingStats[] {
    const now = Date.now();
    return [...this.mappings].map((m) => ({
      id: m.id,
      dropped: m.dropped,
      bytesUp: m.bytesUp,
      bytesDown: m.bytesDown,
      idleMs: now - m.lastActivity,
    }));
  }

  /** Silently drops every current mapping; with `persist`, new connections are black-holed too. */
  blackhole(persist = false): void {
    for (const m of this.mappings) this.drop(m, 'manual');
    if (persist) this.linkDown = true;
  }

  /** New mappings forward again. */
  restore(): void {
    this.linkDown = false;
  }

  /** Closes the listener and destroys every socket (this one does send FIN/RST: it is teardown). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const m of this.mappings) {
      m.client.destroy();
      m.upstream.destroy();
    }
    this.mappings.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const upstream = createConnection(this.opts.target);
    const m: Mapping = {
      id: this.nextId++,
      client,
      upstream,
      lastActivity: Date.now(),
      dropped: false,
      bytesUp: 0,
      bytesDown: 0,
    };
    this.mappings.add(m);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // Until the upstream connects, client bytes wait in a small list (like a SYN the NAT forwards first).
    const early: Buffer[] = [];
    upstream.once('connect', () => {
      for (const b of early.splice(0)) if (!m.dropped) upstream.write(b);
    });
    client.on('data', (chunk: Buffer) => {
      if (m.dropped) return; // black hole
      m.lastActivity = Date.now();
      m.bytesUp += chunk.length;
      if (upstream.connecting) early.push(chunk);
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (m.dropped) return;
      m.lastActivity = Date.now();
      m.bytesDown += chunk.length;
      client.write(chunk);
    });
    // A real close (FIN) from either side still travels while the mapping exists.
    const forget = () => {
      if (!m.dropped) {
        client.destroy();
        upstream.destroy();
      }
      if (client.destroyed && upstream.destroyed) this.mappings.delete(m);
    };
    client.on('close', forget);
    upstream.on('close', forget);
    client.on('error', () => {});
    upstream.on('error', () => {});
    this.emit('mapping', { id: m.id });
    if (this.linkDown) this.drop(m, 'manual');
  }

  private drop(m: Mapping, reason: 'idle' | 'manual'): void {
    if (m.dropped) return;
    m.dropped = true;
    this.droppedCount++;
    // Stop reading so nothing is even buffered; the kernel keeps both TCP connections up.
    m.client.pause();
    m.upstream.pause();
    this.emit('drop', { id: m.id, reason, idleMs: Date.now() - m.lastActivity });
  }

  private expireIdle(): void {
    const limit = this.opts.idleTimeoutMs ?? 0;
    const now = Date.now();
    for (const m of this.mappings) if (!m.dropped && now - m.lastActivity >= limit) this.drop(m, 'idle');
  }
}
