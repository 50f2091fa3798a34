/**
 * A real GatewayServer (src/gateway) wrapped in the part of the lead's pipeline the device SDK
 * depends on, small enough to read in one go:
 * - an outbox per device: accepted pushes stay until the PUBACK (onAck); what a session leaves
 *   un-acked (onOffline `pending`) is redelivered on the next onOnline, with DUP when it was
 *   written before — the redelivery contract of docs/self-channel.md;
 * - `POST /v1/events` and `GET /v1/devices/:id/inbox?after=` with `Authorization: Device id:password`
 *   (the lead owns the real endpoints; these follow the contract in the SDK brief);
 * - MQTT over TCP, and over WebSocket at /mqtt on the same HTTP server.
 * Used by test/sdk/*.test.ts and bench/heartbeat.ts.
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signDeviceToken, verifyDeviceToken } from '../../src/core/device-token.js';
import { GatewayServer, deviceTokenAuthenticator } from '../../src/gateway/index.js';
import type { AdviseInput, GatewayOptions, OfflineReason, PendingDelivery, SessionInfo } from '../../src/gateway/index.js';

export const SECRET = 'sdk-test-secret-0123456789';
export const APP = 'app-sdk';

export type GatewayEvent =
  | { t: 'online'; at: number; s: SessionInfo }
  | { t: 'offline'; at: number; s: SessionInfo; why: OfflineReason; pending: PendingDelivery[] }
  | { t: 'ack'; at: number; deviceId: string; id: string; seq: number }
  | { t: 'revokeAck'; at: number; deviceId: string; id: string; seq: number }
  | { t: 'control'; at: number; deviceId: string; topic: string; payload: Record<string, unknown> }
  | { t: 'dropped'; at: number; deviceId: string; id: string; reason: string }
  | { t: 'deliver'; at: number; deviceId: string; id: string; seq: number; dup: boolean; kind: 'push' | 'revoke' };

interface OutboxEntry {
  kind: 'push' | 'revoke';
  id: string;
  seq: number;
  payload: Record<string, unknown>;
  expiresAt: number;
  /** Written to some connection before: redeliver with DUP. */
  written: boolean;
}

export interface HttpCall {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
  status: number;
}

export interface LeadOptions {
  adviseKeepAlive?(info: AdviseInput): number;
  /** Default 100 ms: dead detection is checked this often. */
  sweepIntervalMs?: number;
}

export class Lead {
  readonly events: GatewayEvent[] = [];
  readonly http: HttpCall[] = [];
  /** Accepted POST /v1/events, one entry per event. */
  readonly reported: { deviceId: string; messageId: string; event: string }[] = [];
  readonly gw: GatewayServer;
  tcpPort = 0;
  httpPort = 0;
  private readonly server: HttpServer;
  private readonly outbox = new Map<string, Map<string, OutboxEntry>>();
  private readonly seqs = new Map<string, number>();
  private readonly waiters = new Set<() => void>();

  private constructor(opts: LeadOptions) {
    const gwOpts: GatewayOptions = {
      authenticate: deviceTokenAuthenticator(SECRET),
      hooks: {
        onOnline: (s) => this.onOnline(s),
        onOffline: (s, why, pending) => this.onOffline(s, why, pending),
        onAck: (_a, deviceId, id, seq) => {
          this.box(deviceId).delete(`push:${id}`);
          this.record({ t: 'ack', at: Date.now(), deviceId, id, seq });
        },
        onRevokeAck: (_a, deviceId, id, seq) => {
          this.box(deviceId).delete(`revoke:${id}`);
          this.record({ t: 'revokeAck', at: Date.now(), deviceId, id, seq });
        },
        onControl: (_a, deviceId, topic, payload) => this.record({ t: 'control', at: Date.now(), deviceId, topic, payload }),
        onDropped: (_a, deviceId, id, _seq, reason) => {
          this.box(deviceId).delete(`push:${id}`);
          this.record({ t: 'dropped', at: Date.now(), deviceId, id, reason });
        },
      },
      sweepIntervalMs: opts.sweepIntervalMs ?? 100,
      connectTimeoutMs: 2000,
    };
    if (opts.adviseKeepAlive) gwOpts.adviseKeepAlive = opts.adviseKeepAlive;
    this.gw = new GatewayServer(gwOpts);
    this.server = createServer((req, res) => void this.api(req, res));
  }

  static async start(opts: LeadOptions = {}): Promise<Lead> {
    const lead = new Lead(opts);
    lead.tcpPort = await lead.gw.listenTcp(0, '127.0.0.1');
    lead.gw.attachWebSocket(lead.server, '/mqtt');
    await new Promise<void>((resolve) => lead.server.listen(0, '127.0.0.1', () => resolve()));
    lead.httpPort = (lead.server.address() as AddressInfo).port;
    return lead;
  }

  get tcpUrl(): string {
    return `mqtt://127.0.0.1:${this.tcpPort}`;
  }
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.httpPort}/mqtt`;
  }
  get apiBase(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  password(deviceId: string): string {
    return signDeviceToken(SECRET, APP, deviceId);
  }

  /** Accepts a push for a device: delivered now when online, else on its next onOnline. */
  send(deviceId: string, id: string, extra: { notification?: unknown; data?: unknown; ttlMs?: number } = {}): number {
    const seq = this.nextSeq(deviceId);
    const e: OutboxEntry = {
      kind: 'push',
      id,
      seq,
      payload: { notification: extra.notification ?? { title: 'Hi', body: `message ${id}` }, data: extra.data ?? { n: String(seq) } },
      expiresAt: Date.now() + (extra.ttlMs ?? 600_000),
      written: false,
    };
    this.box(deviceId).set(`push:${id}`, e);
    this.push(deviceId, e);
    return seq;
  }

  /** Withdraws a message: a revoke control message on the device topic (queued like a push). */
  revoke(deviceId: string, id: string): void {
    const e: OutboxEntry = { kind: 'revoke', id, seq: this.nextSeq(deviceId), payload: {}, expiresAt: 0, written: false };
    this.box(deviceId).set(`revoke:${id}`, e);
    this.push(deviceId, e);
  }

  /** Un-acked entries of a device. */
  pending(deviceId: string): number {
    return this.box(deviceId).size;
  }

  isOnline(deviceId: string): boolean {
    return this.gw.isOnline(APP, deviceId);
  }

  kick(deviceId: string, why: OfflineReason = 'closed'): boolean {
    return this.gw.kick(APP, deviceId, why);
  }

  find<T extends GatewayEvent['t']>(t: T, pred: (e: Extract<GatewayEvent, { t: T }>) => boolean = () => true): Extract<GatewayEvent, { t: T }>[] {
    return this.events.filter((e): e is Extract<GatewayEvent, { t: T }> => e.t === t && pred(e as Extract<GatewayEvent, { t: T }>));
  }

  /** Waits until `cond` holds (checked on every event and every 50 ms). */
  async until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
    await waitFor(cond, ms, what, this.waiters);
  }

  async close(): Promise<void> {
    await this.gw.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ------------------------------------------------------------------ gateway side

  private record(e: GatewayEvent): void {
    this.events.push(e);
    for (const w of [...this.waiters]) w();
  }

  private box(deviceId: string): Map<string, OutboxEntry> {
    let b = this.outbox.get(deviceId);
    if (!b) this.outbox.set(deviceId, (b = new Map()));
    return b;
  }

  private nextSeq(deviceId: string): number {
    const s = (this.seqs.get(deviceId) ?? 0) + 1;
    this.seqs.set(deviceId, s);
    return s;
  }

  private push(deviceId: string, e: OutboxEntry): void {
    const dup = e.written;
    const ok =
      e.kind === 'push'
        ? this.gw.deliver(APP, deviceId, { id: e.id, seq: e.seq, payload: e.payload, expiresAt: e.expiresAt, dup })
        : this.gw.revoke(APP, deviceId, e.id, e.seq);
    if (ok) this.record({ t: 'deliver', at: Date.now(), deviceId, id: e.id, seq: e.seq, dup, kind: e.kind });
  }

  private onOnline(s: SessionInfo): void {
    this.record({ t: 'online', at: Date.now(), s });
    const entries = [...this.box(s.deviceId).values()].sort((a, b) => a.seq - b.seq);
    for (const e of entries) this.push(s.deviceId, e);
  }

  private onOffline(s: SessionInfo, why: OfflineReason, pending: PendingDelivery[]): void {
    const box = this.box(s.deviceId);
    for (const p of pending) {
      const e = box.get(`${p.kind}:${p.id}`);
      if (e && p.written) e.written = true;
    }
    this.record({ t: 'offline', at: Date.now(), s, why, pending });
  }

  // ------------------------------------------------------------------ HTTP side

  private async api(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = raw;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const call: HttpCall = { method: req.method ?? '', path: url.pathname + url.search, authorization: req.headers.authorization, body, status: 0 };
    const reply = (status: number, json?: unknown) => {
      call.status = status;
      this.http.push(call);
      res.writeHead(status, { 'content-type': 'application/json' }).end(json === undefined ? '' : JSON.stringify(json));
      for (const w of [...this.waiters]) w();
    };
    const who = this.deviceFrom(req.headers.authorization);
    const inbox = /^\/v1\/devices\/([^/]+)\/inbox$/.exec(url.pathname);
    if (req.method === 'POST' && url.pathname === '/v1/events') {
      // One event, or {events: [...]} (src/api/routes/events.ts accepts both).
      type Ev = { deviceId?: string; messageId?: string; event?: string };
      const evs: Ev[] = Array.isArray((body as { events?: Ev[] } | undefined)?.events) ? (body as { events: Ev[] }).events : [body as Ev];
      if (!who) return reply(401, { error: { code: 'unauthorized', message: 'device auth' } });
      if (evs.some((e) => !e || e.deviceId !== who || typeof e.messageId !== 'string' || (e.event !== 'opened' && e.event !== 'delivered'))) {
        return reply(400, { error: { code: 'validation', message: 'bad event' } });
      }
      for (const e of evs) this.reported.push({ deviceId: who, messageId: e.messageId!, event: e.event! });
      return reply(200, { received: evs.length, applied: evs.length });
    }
    if (req.method === 'GET' && inbox) {
      const deviceId = decodeURIComponent(inbox[1]!);
      if (who !== deviceId) return reply(401, { error: { code: 'unauthorized', message: 'device auth' } });
      const after = Number(url.searchParams.get('after') ?? '0');
      const items = [...this.box(deviceId).values()]
        .filter((e) => e.seq > after)
        .sort((a, b) => a.seq - b.seq)
        .map((e) => (e.kind === 'push' ? { id: e.id, seq: e.seq, ...e.payload, expiresAt: e.expiresAt } : { type: 'revoke', id: e.id, seq: e.seq }));
      // Like src/api/routes/inbox.ts: one page here, so `next` is null (the last page).
      return reply(200, { items, next: null });
    }
    return reply(404, { error: { code: 'not_found', message: url.pathname } });
  }

  /** `Authorization: Device <deviceId>:<password>` → the device id, when the password is valid. */
  private deviceFrom(h: string | undefined): string | null {
    const m = /^Device ([^:]+):(.+)$/.exec(h ?? '');
    if (!m) return null;
    return verifyDeviceToken(SECRET, m[1]!, m[2]!) === APP ? m[1]! : null;
  }
}

/** Polls `cond` until it holds; `waiters` lets an event source wake it early. */
export async function waitFor(cond: () => boolean, ms: number, what: string, waiters?: Set<() => void>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        waiters?.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, Math.min(50, left));
      waiters?.add(wake);
    });
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
