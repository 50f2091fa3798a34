import { AsyncLocalStorage } from 'node:async_hooks';
import type { ClientRequest, IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { ProviderContext } from '../types.js';

/**
 * FCM's transport: firebase-admin hard-codes `fcm.googleapis.com`, so `FCM_ENDPOINT` is honoured by
 * an `https.Agent` whose sockets connect to the endpoint instead, and the same agent records what
 * each request was answered (status, Retry-After, error body) for the classification.
 */

export const FCM_DEFAULT_ENDPOINT = 'https://fcm.googleapis.com';
const FCM_DEFAULT_HOST = 'fcm.googleapis.com';
/** Error bodies kept for classification are google.rpc.Status JSON, far below this. */
const MAX_CAPTURED_BODY = 64 * 1024;


/**
 * Extra TLS trust a caller may add to the `ProviderContext` (not part of types.ts yet; proposed there).
 * Production trusts private CAs through `NODE_EXTRA_CA_CERTS`, read once at process start. Tests that
 * are run without it pass the test CA here. When given, these CAs are trusted in addition to Node's
 * bundled roots (but `NODE_EXTRA_CA_CERTS` is then no longer consulted by these connections).
 */
export interface FcmTlsOptions {
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
}
export type FcmProviderContext = ProviderContext & { tls?: FcmTlsOptions };

/**
 * One TLS context built up front. Passing `ca` to an agent instead would make Node fold the whole
 * CA list into the pool key of every request (https.Agent#getName), which cost 4× in throughput.
 */
export function trustOptions(ctx: ProviderContext): { secureContext?: SecureContext } {
  const extra = (ctx as FcmProviderContext).tls?.ca;
  if (extra === undefined) return {};
  const list = Array.isArray(extra) ? [...(extra as ReadonlyArray<string | Buffer>)] : [extra as string | Buffer];
  return list.length ? { secureContext: createSecureContext({ ca: [...rootCertificates, ...list] }) } : {};
}

/** What one HTTP exchange answered, recorded by the agent for the classification. */
export interface FcmHttpEvidence {
  status?: number;
  /** Raw `Retry-After` header. */
  retryAfter?: string;
  /** Raw error body (google.rpc.Status JSON), only for status ≥ 400. */
  body?: string;
  /** The OAuth access token the request carried (never put into an outcome). */
  bearer?: string;
}

export const exchange = new AsyncLocalStorage<FcmHttpEvidence>();

interface EndpointTarget {
  host: string;
  port: number;
  /** SNI and the name the certificate is checked against; '' for an IP address (no SNI). */
  servername: string;
  /** Host header for a non-default endpoint, so a proxy or staging server routes by its own name. */
  hostHeader?: string;
}

export function endpointTarget(endpoint: string): EndpointTarget {
  const url = new URL(endpoint);
  if (url.protocol !== 'https:') throw new Error(`FCM_ENDPOINT must be an https URL, got ${endpoint}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port ? Number(url.port) : 443;
  const isDefault = host === FCM_DEFAULT_HOST && port === 443;
  return {
    host,
    port,
    servername: isIP(host) ? '' : host,
    ...(isDefault ? {} : { hostHeader: url.host }),
  };
}

/**
 * Points every socket at the configured endpoint. firebase-admin still builds
 * `https://fcm.googleapis.com/…` URLs; the connection goes to FCM_ENDPOINT and is verified
 * against FCM_ENDPOINT's own name (or IP), exactly like any https URL. For the default endpoint
 * that is `fcm.googleapis.com`, so nothing changes there.
 */
export class FcmAgent extends https.Agent {
  constructor(
    private readonly target: EndpointTarget,
    options: https.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void) {
    return super.createConnection({ ...options, host: this.target.host, port: this.target.port, servername: this.target.servername }, callback);
  }

  /** Node's (undocumented in @types) hook, called once per request, reused socket or not. */
  addRequest(req: ClientRequest, options: https.RequestOptions): void {
    if (this.target.hostHeader) req.setHeader('host', this.target.hostHeader);
    const slot = exchange.getStore();
    if (slot) {
      const bearer = /^Bearer\s+(\S+)$/i.exec(String(req.getHeader('authorization') ?? ''))?.[1];
      if (bearer) slot.bearer = bearer;
      else delete slot.bearer;
      req.once('response', (res: IncomingMessage) => recordResponse(slot, res));
    }
    (https.Agent.prototype as unknown as { addRequest(r: ClientRequest, o: https.RequestOptions): void }).addRequest.call(this, req, options);
  }
}

function recordResponse(slot: FcmHttpEvidence, res: IncomingMessage): void {
  slot.status = res.statusCode;
  const ra = headerValue(res.headers['retry-after']);
  if (ra !== undefined) slot.retryAfter = ra;
  else delete slot.retryAfter;
  delete slot.body;
  if ((res.statusCode ?? 0) < 400 || res.headers['content-encoding']) return;
  // firebase-admin's own listeners were attached first; this one sees the same chunks.
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (c: Buffer) => {
    if (size < MAX_CAPTURED_BODY) chunks.push(c);
    size += c.length;
  });
  res.on('end', () => {
    slot.body = Buffer.concat(chunks).toString('utf8');
  });
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

