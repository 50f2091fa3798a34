// One concept: a spec-true APNs provider API server (HTTP/2, JWT and certificate auth, every documented answer).
import { X509Certificate, createPublicKey, randomUUID, verify, type KeyObject } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { readFileSync, realpathSync } from 'node:fs';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { testPki } from './tls.js';

/**
 * A spec-true mock of the APNs provider API (HTTP/2 over TLS), for conformance tests and the
 * pipeline benchmark. It follows Apple's "Sending notification requests to APNs" and "Handling
 * notification responses from APNs" (https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns and …/handling-notification-responses-from-apns):
 *
 * - `POST /3/device/<hex token>` only (405 `MethodNotAllowed`, 404 `BadPath`).
 * - Certificate-based trust (with `clientCerts`): a request without a JWT must come over a TLS
 *   connection whose client certificate is registered (403 `MissingProviderToken` without one,
 *   `BadCertificate` with an unknown one).
 * - ES256 provider JWT: `kid` registered, `iss` = the key's team, `iat` at most 1 h old
 *   (403 `MissingProviderToken` / `InvalidProviderToken` / `ExpiredProviderToken`); a key id that
 *   changes on one connection gives 403 `UnrelatedKeyIdInToken`. Verification is cached per
 *   distinct JWT string.
 * - Headers: duplicates (`DuplicateHeaders`), topic (`MissingTopic`, `BadTopic` for a push-type
 *   suffix mismatch, `TopicDisallowed` outside `bundleIds`), `InvalidPushType`, `BadPriority`
 *   (not 10/5/1; and, unless `strictBackgroundPriority: false`, a `background` push at 10),
 *   `BadExpirationDate`, `BadMessageId`, `BadCollapseId` (> 64 bytes).
 * - Payload: 400 `PayloadEmpty`; 413 `PayloadTooLarge` above 4096 bytes (5120 for voip).
 * - Token: 400 `MissingDeviceToken` / `BadDeviceToken` when not hex bytes.
 * - Success: 200, empty body, `apns-id` (echoed or generated) and, in the sandbox environment,
 *   `apns-unique-id`. Errors: JSON `{reason}`; 410 adds `timestamp` (ms since the epoch).
 *
 * Scripted answers per token, after the checks above (an explicit `setBehavior` entry wins over
 * the prefix convention). Tokens that start with `0` are scripted by prefix (`mockToken()`):
 *
 * | prefix | answer |
 * |---|---|
 * | `0410` | 410 `Unregistered` (+ timestamp) |
 * | `0411` | 410 `ExpiredToken` |
 * | `0400` | 400 `BadDeviceToken` |
 * | `0401` | 400 `DeviceTokenNotForTopic` |
 * | `0429` | 429 `TooManyRequests`, `retry-after: 1` |
 * | `0500` | 500 `InternalServerError` |
 * | `0503` | 503 `ServiceUnavailable` |
 * | `05d0` | 503 `Shutdown`, then GOAWAY on the connection |
 * | `0de1` | 200 after `slowMs` (default 10 s) |
 * | `0e5e` | the stream is reset (RST_STREAM INTERNAL_ERROR) |
 * | `0fa<N>` | the first N (hex digit) attempts get 503 `ServiceUnavailable`, later ones 200 |
 *
 * Standalone (for a benchmark in another process):
 * `tsx test/mocks/apns-server.ts --port 0 --max-streams 1000 [--delay-ms N]
 *   --team TEAMID --key-id KEYID --public-key-file key.pem [--key TEAM:KID:path]…
 *   [--bundle-id com.x]… [--production] [--record] [--skip-jwt-verify] [--host 127.0.0.1]`
 * prints one JSON line `{"port":N}` and serves until SIGTERM / SIGINT.
 */

const PUSH_TYPES = [
  'alert', 'background', 'location', 'voip', 'complication', 'fileprovider', 'mdm', 'liveactivity', 'pushtotalk', 'widgets',
] as const;

const TOPIC_SUFFIX: Record<string, string> = {
  location: '.location-query',
  voip: '.voip',
  complication: '.complication',
  fileprovider: '.pushkit.fileprovider',
  liveactivity: '.push-type.liveactivity',
  pushtotalk: '.voip-ptt',
  widgets: '.push-type.widgets',
};
const SUFFIXES = Object.entries(TOPIC_SUFFIX).sort((a, b) => b[1].length - a[1].length);

export interface ApnsMockKey {
  teamId: string;
  keyId: string;
  /** The key's public half, or the `.p8` private key itself (its public half is derived). */
  key: string | Buffer | KeyObject;
}

/**
 * What the mock answers for one token (after the protocol checks pass).
 * - `status` / `reason`: the error to answer (default 200). 410 adds `timestamp`.
 * - `failFirst`: only the first N attempts get the error (default 503 `ServiceUnavailable`), later ones 200.
 * - `retryAfter`: seconds, sent as `retry-after`.
 * - `goaway`: send GOAWAY on the connection after answering.
 * - `delayMs`: answer this much later.
 * - `reset`: reset the stream instead of answering.
 * - `stall`: answer the error's headers and the start of its body, then trickle a space every
 *   100 ms and never end the stream: a stuck server whose stream never goes idle, so the client's
 *   idle timeout never fires.
 */
export interface ApnsMockBehavior {
  status?: number;
  reason?: string;
  timestamp?: number;
  failFirst?: number;
  retryAfter?: number;
  goaway?: boolean;
  delayMs?: number;
  reset?: boolean;
  stall?: boolean;
}

export interface ApnsMockOptions {
  port?: number;
  host?: string;
  /** Registered provider-token keys. */
  keys?: ApnsMockKey[];
  /** false: accept any well-formed bearer token without checking key, team or signature. */
  verifyJwt?: boolean;
  /** Allowed bundle ids (topic without suffix); unset allows any. */
  bundleIds?: string[];
  /** `sandbox` (default) also answers `apns-unique-id`. */
  environment?: 'sandbox' | 'production';
  /** SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients (default 1000). */
  maxConcurrentStreams?: number;
  /** Delay of every answer, ms (default 0). */
  delayMs?: number;
  /** Delay of the `0de1` slow prefix, ms (default 10 000). */
  slowMs?: number;
  /** Record every request in `requests` (default true). */
  record?: boolean;
  /** Reject a `background` push at priority 10 with `BadPriority` (default true). */
  strictBackgroundPriority?: boolean;
  /** TLS key and certificate (default: `testPki()`). */
  tls?: { key: string; cert: string };
  /**
   * Provider certificates (PEM) accepted for certificate-based trust: the server then asks every
   * client for a certificate, and a request without a JWT must come over a connection whose
   * client certificate is one of these (else 403 `MissingProviderToken` without one,
   * `BadCertificate` with another). Unset: token auth only.
   */
  clientCerts?: string[];
}

export interface ApnsMockRequest {
  token: string;
  method: string;
  path: string;
  /** Request headers (lower-case names, pseudo-headers included, authorization included). */
  headers: Record<string, string>;
  /** The JSON body parsed, or the raw text when it is not JSON. */
  payload: unknown;
  /** What the mock answered. */
  status: number;
  reason?: string;
  /** The JWT claims/kid when a bearer token was present. */
  jwt?: { kid?: string; iss?: string; iat?: number };
}

export interface ApnsMockStats {
  /** Streams that reached the handler. */
  received: number;
  inFlight: number;
  /** The most streams open at once (over all connections). */
  maxInFlight: number;
  /** Connections accepted so far. */
  sessions: number;
  /** Answers by status. */
  byStatus: Record<number, number>;
}

export interface ApnsMock {
  port: number;
  /** `https://127.0.0.1:<port>`: what `APNS_ENDPOINT` should be. */
  url: string;
  requests: ApnsMockRequest[];
  stats: ApnsMockStats;
  /** Scripts one token (exact match); `undefined` removes the script. */
  setBehavior(token: string, behavior: ApnsMockBehavior | undefined): void;
  /** Registers another provider-token key. */
  addKey(key: ApnsMockKey): void;
  /** Forgets recorded requests, attempt counts and stats (not keys or behaviors). */
  reset(): void;
  close(): Promise<void>;
}

export const MOCK_TOKEN_PREFIX = {
  ok: 'a',
  unregistered: '0410',
  expiredToken: '0411',
  badDeviceToken: '0400',
  notForTopic: '0401',
  tooManyRequests: '0429',
  internalError: '0500',
  serviceUnavailable: '0503',
  shutdown: '05d0',
  slow: '0de1',
  reset: '0e5e',
  failFirst: '0fa',
} as const;
export type MockTokenKind = keyof typeof MOCK_TOKEN_PREFIX;

/** A 64-hex-digit token that the mock scripts by its prefix; `n` makes it unique. */
export function mockToken(kind: MockTokenKind, n = 0, failTimes = 1): string {
  let prefix: string = MOCK_TOKEN_PREFIX[kind];
  if (kind === 'failFirst') {
    if (!(failTimes >= 1 && failTimes <= 15)) throw new RangeError('failTimes must be 1..15');
    prefix += failTimes.toString(16);
  }
  const tail = n.toString(16);
  return prefix + tail.padStart(64 - prefix.length, '0');
}

function prefixBehavior(token: string, slowMs: number): ApnsMockBehavior | undefined {
  if (token.charCodeAt(0) !== 48 /* '0' */) return undefined;
  const p = token.slice(0, 4).toLowerCase();
  switch (p) {
    case '0410': return { status: 410, reason: 'Unregistered' };
    case '0411': return { status: 410, reason: 'ExpiredToken' };
    case '0400': return { status: 400, reason: 'BadDeviceToken' };
    case '0401': return { status: 400, reason: 'DeviceTokenNotForTopic' };
    case '0429': return { status: 429, reason: 'TooManyRequests', retryAfter: 1 };
    case '0500': return { status: 500, reason: 'InternalServerError' };
    case '0503': return { status: 503, reason: 'ServiceUnavailable' };
    case '05d0': return { status: 503, reason: 'Shutdown', goaway: true };
    case '0de1': return { delayMs: slowMs };
    case '0e5e': return { reset: true };
  }
  if (p.startsWith('0fa')) {
    const n = parseInt(p[3] ?? '', 16);
    if (n > 0) return { failFirst: n };
  }
  return undefined;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const HEX = /^[0-9a-fA-F]+$/;
const CHECKED_DUPLICATES = new Set(['authorization', 'apns-id', 'apns-expiration', 'apns-priority', 'apns-topic', 'apns-collapse-id', 'apns-push-type']);
const JWT_MAX_AGE_SEC = 3600;

interface JwtCheck {
  ok: boolean;
  reason?: string;
  kid?: string;
  iss?: string;
  iat?: number;
}

type Answer = { status: number; reason?: string; timestamp?: number; retryAfter?: number; goaway?: boolean };

export async function startApnsMock(opts: ApnsMockOptions = {}): Promise<ApnsMock> {
  const tlsMaterial = opts.tls ?? (() => {
    const pki = testPki();
    return { key: pki.keyPem, cert: pki.certPem };
  })();
  const host = opts.host ?? '127.0.0.1';
  const record = opts.record ?? true;
  const verifyJwt = opts.verifyJwt ?? true;
  const baseDelay = opts.delayMs ?? 0;
  const slowMs = opts.slowMs ?? 10_000;
  const strictBackground = opts.strictBackgroundPriority ?? true;
  const sandbox = (opts.environment ?? 'sandbox') === 'sandbox';
  const bundleIds = opts.bundleIds ? new Set(opts.bundleIds) : undefined;

  const keys = new Map<string, { teamId: string; publicKey: KeyObject }>();
  const addKey = (k: ApnsMockKey) => {
    keys.set(k.keyId, { teamId: k.teamId, publicKey: createPublicKey(k.key as string) });
    jwtCache.clear();
  };
  const jwtCache = new Map<string, JwtCheck>();
  for (const k of opts.keys ?? []) addKey(k);

  const behaviors = new Map<string, ApnsMockBehavior>();
  const attempts = new Map<string, number>();
  const requests: ApnsMockRequest[] = [];
  const stats: ApnsMockStats = { received: 0, inFlight: 0, maxInFlight: 0, sessions: 0, byStatus: {} };
  const timers = new Set<NodeJS.Timeout>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const sessionKid = new WeakMap<http2.Http2Session, string>();
  const lastStreamId = new WeakMap<http2.Http2Session, number>();

  function checkJwt(jwt: string): JwtCheck {
    const cached = jwtCache.get(jwt);
    if (cached) return cached;
    const result = verifyJwtOnce(jwt);
    if (jwtCache.size > 10_000) jwtCache.clear();
    jwtCache.set(jwt, result);
    return result;
  }

  function verifyJwtOnce(jwt: string): JwtCheck {
    const parts = jwt.split('.');
    if (parts.length !== 3) return { ok: false, reason: 'InvalidProviderToken' };
    let header: { alg?: unknown; kid?: unknown };
    let claims: { iss?: unknown; iat?: unknown };
    try {
      header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    } catch {
      return { ok: false, reason: 'InvalidProviderToken' };
    }
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    const iss = typeof claims.iss === 'string' ? claims.iss : undefined;
    const iat = typeof claims.iat === 'number' ? claims.iat : undefined;
    const base = { kid, iss, iat };
    if (header.alg !== 'ES256' || !kid || !iss || iat === undefined) return { ok: false, reason: 'InvalidProviderToken', ...base };
    if (!verifyJwt) return { ok: true, ...base };
    const key = keys.get(kid);
    if (!key || key.teamId !== iss) return { ok: false, reason: 'InvalidProviderToken', ...base };
    const good = verify(
      'sha256',
      Buffer.from(`${parts[0]}.${parts[1]}`),
      { key: key.publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(parts[2]!, 'base64url'),
    );
    return good ? { ok: true, ...base } : { ok: false, reason: 'InvalidProviderToken', ...base };
  }

  /** The protocol checks, in the order APNs is documented to apply them; undefined = passed. */
  function check(
    session: http2.Http2Session,
    h: http2.IncomingHttpHeaders,
    rawHeaders: string[],
    token: string | undefined,
    body: Buffer,
    jwt: JwtCheck | undefined,
  ): Answer | undefined {
    if (h[':method'] !== 'POST') return { status: 405, reason: 'MethodNotAllowed' };
    if (token === undefined) return { status: 404, reason: 'BadPath' };

    const auth = h.authorization;
    if (auth === undefined) {
      // Certificate-based trust: no JWT, the TLS client certificate authenticates the provider.
      const cert = clientCertOf(session);
      if (cert === undefined) return { status: 403, reason: 'MissingProviderToken' };
      if (!cert.ok) return { status: 403, reason: 'BadCertificate' };
    } else {
      if (!jwt) return { status: 403, reason: 'InvalidProviderToken' };
      if (!jwt.ok) return { status: 403, reason: jwt.reason ?? 'InvalidProviderToken' };
      if (Math.floor(Date.now() / 1000) - jwt.iat! > JWT_MAX_AGE_SEC) return { status: 403, reason: 'ExpiredProviderToken' };
      // A stream can end after its session closed (the client went away mid-request): no session to key by.
      const firstKid = session ? sessionKid.get(session) : undefined;
      if (firstKid === undefined) {
        if (session) sessionKid.set(session, jwt.kid!);
      }
      else if (firstKid !== jwt.kid) return { status: 403, reason: 'UnrelatedKeyIdInToken' };
    }

    // Duplicate apns-* headers (Node joins or drops repeats, so look at the raw list).
    const seen = new Set<string>();
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toLowerCase();
      if (!CHECKED_DUPLICATES.has(name)) continue;
      if (seen.has(name)) return { status: 400, reason: 'DuplicateHeaders' };
      seen.add(name);
    }

    const pushType = h['apns-push-type'] as string | undefined;
    if (pushType !== undefined && !(PUSH_TYPES as readonly string[]).includes(pushType)) {
      return { status: 400, reason: 'InvalidPushType' };
    }
    const topic = h['apns-topic'] as string | undefined;
    if (!topic) return { status: 400, reason: 'MissingTopic' };
    if (pushType !== 'mdm') {
      const wanted = pushType !== undefined ? TOPIC_SUFFIX[pushType] : undefined;
      let bundle = topic;
      if (wanted !== undefined) {
        if (!topic.endsWith(wanted) || topic.length === wanted.length) return { status: 400, reason: 'BadTopic' };
        bundle = topic.slice(0, -wanted.length);
      } else {
        const other = SUFFIXES.find(([, s]) => topic.endsWith(s));
        if (other && pushType !== undefined) return { status: 400, reason: 'BadTopic' };
        if (other) bundle = topic.slice(0, -other[1].length);
      }
      if (bundleIds && !bundleIds.has(bundle)) return { status: 400, reason: 'TopicDisallowed' };
    }

    const priority = h['apns-priority'] as string | undefined;
    if (priority !== undefined && priority !== '10' && priority !== '5' && priority !== '1') return { status: 400, reason: 'BadPriority' };
    if (strictBackground && pushType === 'background' && (priority ?? '10') === '10') return { status: 400, reason: 'BadPriority' };

    const expiration = h['apns-expiration'] as string | undefined;
    if (expiration !== undefined && !/^\d+$/.test(expiration)) return { status: 400, reason: 'BadExpirationDate' };
    const apnsId = h['apns-id'] as string | undefined;
    if (apnsId !== undefined && !UUID.test(apnsId)) return { status: 400, reason: 'BadMessageId' };
    const collapseId = h['apns-collapse-id'] as string | undefined;
    if (collapseId !== undefined && Buffer.byteLength(collapseId, 'utf8') > 64) return { status: 400, reason: 'BadCollapseId' };

    if (body.length === 0) return { status: 400, reason: 'PayloadEmpty' };
    const isVoip = pushType === 'voip' || (pushType === undefined && topic.endsWith('.voip'));
    if (body.length > (isVoip ? 5120 : 4096)) return { status: 413, reason: 'PayloadTooLarge' };

    if (token === '') return { status: 400, reason: 'MissingDeviceToken' };
    if (!HEX.test(token) || token.length % 2 !== 0 || token.length > 400) return { status: 400, reason: 'BadDeviceToken' };
    return undefined;
  }

  function answerFor(behavior: ApnsMockBehavior | undefined, token: string): Answer {
    if (!behavior) return { status: 200 };
    if (behavior.failFirst !== undefined) {
      const n = (attempts.get(token) ?? 0) + 1;
      attempts.set(token, n);
      if (n > behavior.failFirst) return { status: 200 };
      return {
        status: behavior.status ?? 503,
        reason: behavior.reason ?? 'ServiceUnavailable',
        ...(behavior.retryAfter !== undefined ? { retryAfter: behavior.retryAfter } : {}),
      };
    }
    if (behavior.status === undefined || behavior.status === 200) return { status: 200 };
    return {
      status: behavior.status,
      reason: behavior.reason ?? 'InternalServerError',
      ...(behavior.timestamp !== undefined ? { timestamp: behavior.timestamp } : {}),
      ...(behavior.retryAfter !== undefined ? { retryAfter: behavior.retryAfter } : {}),
      ...(behavior.goaway ? { goaway: true } : {}),
    };
  }

  function respond(stream: http2.ServerHttp2Stream, apnsId: string, a: Answer): void {
    if (stream.destroyed || stream.closed) return;
    stats.byStatus[a.status] = (stats.byStatus[a.status] ?? 0) + 1;
    const headers: http2.OutgoingHttpHeaders = { ':status': a.status, 'apns-id': apnsId };
    if (sandbox) headers['apns-unique-id'] = randomUUID();
    if (a.status === 200) {
      stream.respond(headers, { endStream: true });
    } else {
      if (a.retryAfter !== undefined) headers['retry-after'] = String(a.retryAfter);
      headers['content-type'] = 'application/json';
      const json: Record<string, unknown> = { reason: a.reason };
      if (a.status === 410) json.timestamp = a.timestamp ?? Date.now();
      stream.respond(headers);
      stream.end(JSON.stringify(json));
    }
    if (a.goaway) {
      // After this answer is flushed: GOAWAY naming the last stream this connection received
      // (those still get their answers), then close the connection gracefully.
      const session = stream.session;
      stream.once('close', () => {
        if (!session || session.destroyed || session.closed) return;
        const last = lastStreamId.get(session) ?? stream.id ?? 0;
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, last, Buffer.from(JSON.stringify({ reason: a.reason ?? 'Shutdown' })));
        session.close();
      });
    }
  }

  function stall(stream: http2.ServerHttp2Stream, apnsId: string): void {
    stats.byStatus[500] = (stats.byStatus[500] ?? 0) + 1;
    stream.respond({ ':status': 500, 'apns-id': apnsId, 'content-type': 'application/json' });
    stream.write('{"reason":"InternalServerError"');
    const tick = setInterval(() => {
      if (!stream.destroyed && !stream.closed) stream.write(' ');
    }, 100);
    stream.once('close', () => clearInterval(tick));
  }

  function later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  }

  const clientFingerprints = new Set((opts.clientCerts ?? []).map((pem) => new X509Certificate(pem).fingerprint256));
  /** The connection's client certificate: undefined without one, ok when it is registered. */
  function clientCertOf(session: http2.Http2Session | undefined): { ok: boolean; fingerprint: string } | undefined {
    const socket = session?.socket as TLSSocket | undefined;
    const peer = socket?.getPeerCertificate?.();
    if (!peer || !peer.fingerprint256) return undefined;
    return { ok: clientFingerprints.has(peer.fingerprint256), fingerprint: peer.fingerprint256 };
  }

  const server = http2.createSecureServer({
    key: tlsMaterial.key,
    cert: tlsMaterial.cert,
    // The provider certificates are self-issued test certificates: the mock checks them itself.
    ...(opts.clientCerts ? { requestCert: true, rejectUnauthorized: false } : {}),
    allowHTTP1: false,
    settings: { maxConcurrentStreams: opts.maxConcurrentStreams ?? 1000 },
  });
  server.on('session', (session) => {
    stats.sessions++;
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => {});
  });
  server.on('sessionError', () => {});
  server.on('tlsClientError', () => {});

  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders?: string[]) => {
    stats.received++;
    stats.inFlight++;
    if (stream.session && stream.id !== undefined) lastStreamId.set(stream.session, stream.id);
    if (stats.inFlight > stats.maxInFlight) stats.maxInFlight = stats.inFlight;
    stream.on('close', () => stats.inFlight--);
    stream.on('error', () => {});
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const path = (headers[':path'] as string | undefined) ?? '';
      const m = /^\/3\/device\/([^/?#]*)$/.exec(path);
      const token = m ? decodeURIComponent(m[1]!) : undefined;
      const auth = headers.authorization as string | undefined;
      const jwt = auth !== undefined && /^bearer /i.test(auth) ? checkJwt(auth.slice(7).trim()) : undefined;

      // The client may have closed the connection while the body was arriving: nobody to answer.
      const session = stream.session;
      if (!session) return;
      let answer = check(session, headers, rawHeaders ?? [], token, body, jwt);
      let behavior: ApnsMockBehavior | undefined;
      if (!answer && token !== undefined) {
        behavior = behaviors.get(token) ?? prefixBehavior(token, slowMs);
        if (!behavior?.reset) answer = answerFor(behavior, token);
      }

      if (record) {
        const flat: Record<string, string> = {};
        for (const [k, v] of Object.entries(headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : String(v);
        let payload: unknown = body.toString('utf8');
        try {
          payload = JSON.parse(payload as string);
        } catch {
          /* keep the raw text */
        }
        requests.push({
          token: token ?? '',
          method: String(headers[':method']),
          path,
          headers: flat,
          payload,
          status: answer?.status ?? 0,
          ...(answer?.reason ? { reason: answer.reason } : {}),
          ...(jwt ? { jwt: { ...(jwt.kid ? { kid: jwt.kid } : {}), ...(jwt.iss ? { iss: jwt.iss } : {}), ...(jwt.iat !== undefined ? { iat: jwt.iat } : {}) } } : {}),
        });
      }

      const apnsId = (headers['apns-id'] as string | undefined) && UUID.test(headers['apns-id'] as string) ? (headers['apns-id'] as string) : randomUUID();
      if (behavior?.reset) {
        stats.byStatus[0] = (stats.byStatus[0] ?? 0) + 1;
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        return;
      }
      if (behavior?.stall) {
        stall(stream, apnsId);
        return;
      }
      const delay = (behavior?.delayMs ?? 0) + baseDelay;
      if (delay > 0) later(delay, () => respond(stream, apnsId, answer!));
      else respond(stream, apnsId, answer!);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  return {
    port,
    url: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    requests,
    stats,
    setBehavior(token, behavior) {
      attempts.delete(token);
      if (behavior === undefined) behaviors.delete(token);
      else behaviors.set(token, behavior);
    },
    addKey,
    reset() {
      requests.length = 0;
      attempts.clear();
      Object.assign(stats, { received: 0, maxInFlight: stats.inFlight, sessions: 0, byStatus: {} });
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.destroy();
      await closed;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Standalone
// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'max-streams': { type: 'string', default: '1000' },
      'delay-ms': { type: 'string', default: '0' },
      'slow-ms': { type: 'string' },
      team: { type: 'string' },
      'key-id': { type: 'string' },
      'public-key-file': { type: 'string' },
      key: { type: 'string', multiple: true },
      'bundle-id': { type: 'string', multiple: true },
      production: { type: 'boolean', default: false },
      record: { type: 'boolean', default: false },
      'skip-jwt-verify': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const keys: ApnsMockKey[] = [];
  if (values.team || values['key-id'] || values['public-key-file']) {
    if (!values.team || !values['key-id'] || !values['public-key-file']) {
      throw new Error('--team, --key-id and --public-key-file go together');
    }
    keys.push({ teamId: values.team, keyId: values['key-id'], key: readFileSync(values['public-key-file'], 'utf8') });
  }
  for (const spec of values.key ?? []) {
    const [teamId, keyId, ...rest] = spec.split(':');
    const file = rest.join(':');
    if (!teamId || !keyId || !file) throw new Error(`--key expects TEAM:KEYID:path, got ${spec}`);
    keys.push({ teamId, keyId, key: readFileSync(file, 'utf8') });
  }
  if (keys.length === 0 && !values['skip-jwt-verify']) {
    throw new Error('give a provider key (--team/--key-id/--public-key-file or --key) or --skip-jwt-verify');
  }
  const mock = await startApnsMock({
    port: Number(values.port),
    host: values.host,
    maxConcurrentStreams: Number(values['max-streams']),
    delayMs: Number(values['delay-ms']),
    ...(values['slow-ms'] !== undefined ? { slowMs: Number(values['slow-ms']) } : {}),
    keys,
    verifyJwt: !values['skip-jwt-verify'],
    ...(values['bundle-id'] ? { bundleIds: values['bundle-id'] } : {}),
    environment: values.production ? 'production' : 'sandbox',
    record: values.record,
  });
  process.stdout.write(JSON.stringify({ port: mock.port }) + '\n');
  const stop = () => {
    void mock.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
