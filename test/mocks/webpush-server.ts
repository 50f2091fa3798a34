import { createDecipheriv, createECDH, createPublicKey, hkdfSync, randomBytes, randomUUID, verify as verifySignature } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { testPki } from './tls.js';

/**
 * A Web Push service (RFC 8030) that checks what a real one checks:
 * - RFC 8292 VAPID: `Authorization: vapid t=<ES256 JWT>, k=<P-256 public key>`; the JWT is verified
 *   with `k`, `aud` must be the endpoint's origin, `exp` in the future and ≤ 24 h ahead, `sub` a
 *   mailto:/https: URL. A subscription created with an `applicationServerKey` only accepts that key
 *   (403 otherwise, as browsers' push services do).
 * - RFC 8030: `TTL` header required (400 without); `Urgency` ∈ very-low|low|normal|high; `Topic`
 *   ≤ 32 base64url characters.
 * - RFC 8291/8188: `Content-Encoding: aes128gcm`; the body is decrypted with the subscription's
 *   private key and auth secret, so tests can assert the plaintext. Bodies over 4096 bytes → 413.
 * Success is `201 Created` with a `Location` for the message. Answers can be scripted per subscription
 * (status, Retry-After, Location: a 3xx whose Location is another subscription tests redirects).
 */

export interface MockSubscription {
  id: string;
  endpoint: string;
  keys: { p256dh: string; auth: string };
  /** The JSON string a browser would hand to the application server. */
  json: string;
}

export interface WebPushRecord {
  subscriptionId: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  ttl?: number;
  urgency?: string;
  topic?: string;
  /** Decoded JWT claims when the Authorization header parsed. */
  jwt?: { aud?: unknown; exp?: unknown; sub?: unknown };
  vapidKey?: string;
  /** The decrypted plaintext (UTF-8) when the body decrypted. */
  plaintext?: string;
  /** Why the mock refused the request, when it did. */
  error?: string;
}

export interface ScriptedAnswer {
  status: number;
  retryAfter?: string;
  /** A `Location` header, e.g. with a 301/307 that moves the subscription elsewhere. */
  location?: string;
  body?: string;
}

export interface WebPushBehavior {
  /** Per subscription id: answers used once each, in order, before normal processing. */
  scripted: Map<string, ScriptedAnswer[]>;
  /** Per subscription id: always answer this (after validation), e.g. 410 for an unsubscribed browser. */
  fixed: Map<string, ScriptedAnswer>;
}

export interface WebPushMock {
  port: number;
  url: string;
  origin: string;
  requests: WebPushRecord[];
  /** Creates a subscription as a browser would; `applicationServerKey` pins the VAPID key. */
  subscribe(opts?: { applicationServerKey?: string }): MockSubscription;
  /** Scripts the next answers for one subscription (by id or endpoint). */
  script(subscription: string | MockSubscription, ...answers: ScriptedAnswer[]): void;
  /** Answers every request for this subscription with `answer` (e.g. `{status: 410}`). */
  setBehavior(subscription: string | MockSubscription, answer: ScriptedAnswer | undefined): void;
  /** Removes a subscription: later pushes get 410 Gone. */
  unsubscribe(subscription: string | MockSubscription): void;
  close(): Promise<void>;
}

interface SubState {
  id: string;
  ecdh: ReturnType<typeof createECDH>;
  publicKey: Buffer;
  auth: Buffer;
  serverKey?: string;
  gone: boolean;
}

const MAX_BODY = 4096;

export async function startWebPushMock(opts: { port?: number } = {}): Promise<WebPushMock> {
  const pki = testPki();
  const subs = new Map<string, SubState>();
  const requests: WebPushRecord[] = [];
  const behavior: WebPushBehavior = { scripted: new Map(), fixed: new Map() };
  let origin = '';

  const idOf = (s: string | MockSubscription): string => {
    if (typeof s !== 'string') return s.id;
    const m = /\/push\/([^/?#]+)$/.exec(s);
    return m?.[1] ?? s;
  };

  const server = createServer({ cert: pki.certPem, key: pki.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY + 1) chunks.push(c);
    });
    req.on('end', () => handle(req, res, Buffer.concat(chunks), size));
    req.on('error', () => res.destroy());
  });

  function answer(res: ServerResponse, rec: WebPushRecord, status: number, extra: Record<string, string> = {}, body = ''): void {
    rec.status = status;
    requests.push(rec);
    res.writeHead(status, { 'content-type': 'text/plain', ...extra });
    res.end(body);
  }

  function handle(req: IncomingMessage, res: ServerResponse, body: Buffer, size: number): void {
    const m = /^\/push\/([^/?#]+)$/.exec(req.url ?? '');
    const rec: WebPushRecord = { subscriptionId: m?.[1] ?? '', status: 0, headers: { ...req.headers } };
    if (req.method !== 'POST' || !m) return answer(res, rec, 404, {}, 'no such endpoint');
    const sub = subs.get(rec.subscriptionId);
    if (!sub) return answer(res, rec, 404, {}, 'unknown subscription');

    // RFC 8292 §3: vapid t=<jwt>, k=<key>
    const auth = req.headers.authorization ?? '';
    const vapid = /^vapid\s+(.+)$/i.exec(auth);
    if (!vapid?.[1]) return fail(res, rec, 401, 'missing or non-vapid Authorization');
    const params = new Map<string, string>();
    for (const part of vapid[1].split(',')) {
      const eq = part.indexOf('=');
      if (eq > 0) params.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
    }
    const token = params.get('t');
    const key = params.get('k');
    if (!token || !key) return fail(res, rec, 401, 'Authorization needs t= and k=');
    rec.vapidKey = key;
    const jwtCheck = checkJwt(token, key, origin);
    if (typeof jwtCheck === 'string') return fail(res, rec, 401, jwtCheck);
    rec.jwt = jwtCheck;
    if (sub.serverKey && sub.serverKey !== key) return fail(res, rec, 403, 'VAPID key differs from the applicationServerKey');

    // RFC 8030 §5.2–5.4
    const ttlHeader = req.headers.ttl;
    if (typeof ttlHeader !== 'string' || !/^\d+$/.test(ttlHeader)) return fail(res, rec, 400, 'TTL header missing or not a number');
    rec.ttl = Number(ttlHeader);
    const urgency = req.headers.urgency;
    if (urgency !== undefined) {
      if (typeof urgency !== 'string' || !['very-low', 'low', 'normal', 'high'].includes(urgency)) return fail(res, rec, 400, 'bad Urgency');
      rec.urgency = urgency;
    }
    const topic = req.headers.topic;
    if (topic !== undefined) {
      if (typeof topic !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(topic)) return fail(res, rec, 400, 'bad Topic');
      rec.topic = topic;
    }

    const queue = behavior.scripted.get(sub.id);
    const scripted = queue?.shift() ?? behavior.fixed.get(sub.id);
    if (scripted) {
      const extra = {
        ...(scripted.retryAfter ? { 'retry-after': scripted.retryAfter } : {}),
        ...(scripted.location ? { location: scripted.location } : {}),
      };
      return answer(res, rec, scripted.status, extra, scripted.body ?? '');
    }
    if (sub.gone) return answer(res, rec, 410, {}, 'subscription expired');
    if (size > MAX_BODY) return fail(res, rec, 413, `body is ${size} bytes; max ${MAX_BODY}`);

    if (size > 0) {
      if (req.headers['content-encoding'] !== 'aes128gcm') return fail(res, rec, 415, 'Content-Encoding must be aes128gcm');
      try {
        rec.plaintext = decryptAes128gcm(body, sub).toString('utf8');
      } catch (err) {
        return fail(res, rec, 400, `cannot decrypt: ${(err as Error).message}`);
      }
    }
    const location = `${origin}/message/${randomUUID()}`;
    answer(res, rec, 201, { location });
  }

  function fail(res: ServerResponse, rec: WebPushRecord, status: number, error: string): void {
    rec.error = error;
    answer(res, rec, status, {}, error);
  }

  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  origin = `https://127.0.0.1:${port}`;

  return {
    port,
    url: origin,
    origin,
    requests,
    subscribe(o = {}) {
      const ecdh = createECDH('prime256v1');
      const publicKey = ecdh.generateKeys();
      const id = randomUUID();
      const state: SubState = { id, ecdh, publicKey, auth: randomBytes(16), gone: false, ...(o.applicationServerKey ? { serverKey: o.applicationServerKey } : {}) };
      subs.set(id, state);
      const endpoint = `${origin}/push/${id}`;
      const keys = { p256dh: publicKey.toString('base64url'), auth: state.auth.toString('base64url') };
      return { id, endpoint, keys, json: JSON.stringify({ endpoint, expirationTime: null, keys }) };
    },
    script(s, ...answers) {
      const id = idOf(s);
      behavior.scripted.set(id, [...(behavior.scripted.get(id) ?? []), ...answers]);
    },
    setBehavior(s, a) {
      if (a) behavior.fixed.set(idOf(s), a);
      else behavior.fixed.delete(idOf(s));
    },
    unsubscribe(s) {
      const st = subs.get(idOf(s));
      if (st) st.gone = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Verifies an RFC 8292 JWT; returns its claims or why it is refused. */
function checkJwt(token: string, key: string, origin: string): { aud?: unknown; exp?: unknown; sub?: unknown } | string {
  const parts = token.split('.');
  if (parts.length !== 3) return 'JWT must have three parts';
  const [h, p, s] = parts as [string, string, string];
  let header: { alg?: unknown; typ?: unknown };
  let claims: { aud?: unknown; exp?: unknown; sub?: unknown };
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    return 'JWT header or claims are not JSON';
  }
  if (header.alg !== 'ES256') return 'JWT alg must be ES256';
  const raw = Buffer.from(key, 'base64url');
  if (raw.length !== 65 || raw[0] !== 0x04) return 'k must be an uncompressed P-256 point';
  let ok = false;
  try {
    const pub = createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') },
      format: 'jwk',
    });
    ok = verifySignature('sha256', Buffer.from(`${h}.${p}`), { key: pub, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  } catch {
    ok = false;
  }
  if (!ok) return 'JWT signature does not verify with k';
  if (claims.aud !== origin) return `JWT aud must be ${origin}`;
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp !== 'number' || claims.exp <= now) return 'JWT expired or exp missing';
  if (claims.exp > now + 24 * 3600) return 'JWT exp is more than 24 h ahead';
  if (typeof claims.sub !== 'string' || !/^(mailto:|https:)/.test(claims.sub)) return 'JWT sub must be mailto: or https:';
  return claims;
}

/** RFC 8291 §3.4 + RFC 8188 §2: decrypts an aes128gcm body for the user agent. */
function decryptAes128gcm(body: Buffer, sub: SubState): Buffer {
  if (body.length < 21) throw new Error('body shorter than the aes128gcm header');
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20] ?? 0;
  if (rs < 18) throw new Error('record size too small');
  const keyid = body.subarray(21, 21 + idlen);
  if (keyid.length !== 65) throw new Error('keyid must be the 65-byte application server public key');
  const records = body.subarray(21 + idlen);
  const ecdhSecret = sub.ecdh.computeSecret(keyid);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), sub.publicKey, keyid]);
  const ikm = Buffer.from(hkdfSync('sha256', ecdhSecret, sub.auth, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const out: Buffer[] = [];
  let offset = 0;
  for (let seq = 0; offset < records.length; seq++) {
    const record = records.subarray(offset, offset + rs);
    offset += rs;
    const iv = Buffer.from(nonce);
    // RFC 8188 §2.3: nonce XOR the record sequence number (records < 2^32 here, so the low 4 bytes).
    iv.writeUInt32BE((iv.readUInt32BE(8) ^ seq) >>> 0, 8);
    const decipher = createDecipheriv('aes-128-gcm', cek, iv);
    decipher.setAuthTag(record.subarray(record.length - 16));
    const plain = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
    const last = offset >= records.length;
    let end = plain.length - 1;
    while (end >= 0 && plain[end] === 0) end--;
    if (end < 0) throw new Error('record has no padding delimiter');
    if (plain[end] !== (last ? 2 : 1)) throw new Error(`bad padding delimiter ${plain[end]}`);
    out.push(plain.subarray(0, end));
  }
  return Buffer.concat(out);
}
