import { createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { testPki } from '../tls.js';

/**
 * What the six vendor mocks share: an HTTPS server on an ephemeral port that records every request
 * and hands it over with its body read, JSON and form plumbing, an OAuth access-token store with
 * forced expiry, the token-prefix scripting of the Huawei-family and Xiaomi mocks, and the "top
 * answer" (a vendor code, or an HTTP status with a raw body) the OPPO, vivo and Meizu mocks script.
 */

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  rawBody: string;
  at: number;
}

export type TokenFate = 'ok' | 'invalid' | 'fail' | 'rateLimit' | 'quota' | 'serverError' | 'payloadTooLarge' | 'authExpired';
export type RequestFate = Exclude<TokenFate, 'ok' | 'fail' | 'invalid'>;

export const TOKEN_PREFIXES: ReadonlyArray<readonly [string, TokenFate]> = [
  ['invalid-', 'invalid'],
  ['fail-', 'fail'],
  ['ratelimit-', 'rateLimit'],
  ['quota-', 'quota'],
  ['server-', 'serverError'],
  ['large-', 'payloadTooLarge'],
  ['authexp-', 'authExpired'],
];

export interface MockBehavior {
  /** Explicit per-token fates; win over the prefix convention. */
  tokens: Record<string, TokenFate>;
  /** The next `count` send requests end with `fate`; decremented per send request. */
  failFirst?: { count: number; fate: RequestFate };
  /** `Retry-After` (seconds) on rate-limit / flow-control answers; none when undefined. */
  retryAfterSec?: number;
  /** `expires_in` of issued access tokens (OAuth vendors). */
  accessTokenTtlSec: number;
  /** How the OAuth endpoint answers. */
  oauth: 'ok' | 'badCredentials' | 'serverError';
  /** Delay before answering a send (ms), to hold requests in flight together. */
  sendDelayMs: number;
}

export function defaultBehavior(): MockBehavior {
  return { tokens: {}, accessTokenTtlSec: 3600, oauth: 'ok', sendDelayMs: 0 };
}

export function fateOf(token: string, behavior: MockBehavior): TokenFate {
  const explicit = behavior.tokens[token];
  if (explicit) return explicit;
  for (const [prefix, fate] of TOKEN_PREFIXES) if (token.startsWith(prefix)) return fate;
  return 'ok';
}

/** The request-level fate for a batch: a scripted `failFirst`, else the first request-level token fate. */
export function requestFate(tokens: readonly string[], behavior: MockBehavior): RequestFate | undefined {
  if (behavior.failFirst && behavior.failFirst.count > 0) {
    behavior.failFirst.count--;
    return behavior.failFirst.fate;
  }
  for (const order of ['authExpired', 'serverError', 'rateLimit', 'payloadTooLarge', 'quota'] as const) {
    if (tokens.some((t) => fateOf(t, behavior) === order)) return order;
  }
  return undefined;
}

/** Access tokens a mock OAuth server issued, with forced expiry. */
export class AccessTokens {
  private readonly tokens = new Map<string, number>();
  issued = 0;

  issue(ttlSec: number, now = Date.now()): string {
    const token = `at-${randomBytes(12).toString('base64url')}`;
    this.tokens.set(token, now + ttlSec * 1000);
    this.issued++;
    return token;
  }

  check(token: string | undefined, now = Date.now()): 'ok' | 'expired' | 'unknown' {
    if (!token) return 'unknown';
    const exp = this.tokens.get(token);
    if (exp === undefined) return 'unknown';
    return now < exp ? 'ok' : 'expired';
  }

  expireAll(): void {
    for (const k of this.tokens.keys()) this.tokens.set(k, 0);
  }
}

export interface StartedServer {
  server: Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

export interface MockServerOptions {
  /** Serve HTTPS with the test PKI (default) or plain HTTP. */
  tls?: boolean;
  /** Default 0 (ephemeral). */
  port?: number;
}

/**
 * Starts an HTTP(S) server on 127.0.0.1 that reads each request's body, records the request in
 * `requests` (when given: a mock with its own records passes none) and hands it to `handler`.
 */
export async function startRecordingServer(
  opts: MockServerOptions,
  requests: RecordedRequest[] | undefined,
  handler: (req: RecordedRequest, res: ServerResponse) => void | Promise<void>,
): Promise<StartedServer> {
  const tls = opts.tls ?? true;
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://mock');
      const rec: RecordedRequest = {
        method: req.method ?? 'GET',
        path: u.pathname,
        query: u.searchParams,
        headers: req.headers,
        rawBody: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      requests?.push(rec);
      Promise.resolve(handler(rec, res)).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { error: 'mock failure', message: (err as Error).message });
      });
    });
  };
  let server: Server;
  if (tls) {
    const pki = testPki();
    server = createHttpsServer({ cert: pki.certPem, key: pki.keyPem }, listener);
  } else {
    server = createHttpServer(listener);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function retryAfterHeader(behavior: MockBehavior): Record<string, string> {
  return behavior.retryAfterSec !== undefined ? { 'retry-after': String(behavior.retryAfterSec) } : {};
}

export function parseForm(raw: string): URLSearchParams {
  return new URLSearchParams(raw);
}

export function bearer(headers: IncomingHttpHeaders): string | undefined {
  const h = headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(h);
  return m ? m[1] : undefined;
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let idSeq = 0;
/** A numeric request id like Huawei's (`155245981150032647501`). */
export function numericId(): string {
  idSeq = (idSeq + 1) % 100000;
  return `${Date.now()}${String(idSeq).padStart(5, '0')}${Math.floor(Math.random() * 1e4).toString().padStart(4, '0')}`;
}


/** A scripted answer for a whole request: a vendor body, or an HTTP status (with Retry-After) and a raw body. */
export interface RawAnswer {
  status?: number;
  retryAfter?: string;
  rawBody?: string;
}

/**
 * Sends `answer`: as a raw status + body when it names either, else as a JSON body with `status`.
 * Returns what was sent, for the mock's request record.
 */
export function sendAnswer(res: ServerResponse, answer: RawAnswer | Record<string, unknown>, status = 200): { status: number; answer: unknown } {
  const a = answer as RawAnswer;
  if (a.status !== undefined || a.rawBody !== undefined) {
    res.writeHead(a.status ?? 200, { 'content-type': 'text/plain', ...(a.retryAfter ? { 'retry-after': a.retryAfter } : {}) });
    res.end(a.rawBody ?? '');
    return { status: a.status ?? 200, answer: a.rawBody ?? '' };
  }
  sendJson(res, status, answer);
  return { status, answer };
}
