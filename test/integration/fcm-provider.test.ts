import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import http2 from 'node:http2';
import https from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import fcmModule, { type FcmCredential, type FcmProviderContext } from '../../providers/fcm/index.js';
import type { Outcome, Provider, PushContent, SendTarget } from '../../providers/types.js';
import { startFcmMock, type FcmMock } from '../mocks/fcm-server.js';
import { testPki } from '../mocks/tls.js';

// The real firebase-admin client (through providers/fcm.ts) against the FCM + OAuth mock over TLS.
// The test CA is handed to the provider explicitly (ctx.tls.ca), so this file also runs without
// NODE_EXTRA_CA_CERTS: node --import tsx --test test/integration/fcm-provider.test.ts

const pki = testPki();
const PROJECT = 'demo-project';
const EMAIL = `relay-push@${PROJECT}.iam.gserviceaccount.com`;

function rsaPair() {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
}

function context(endpoint: string, fcmConcurrency = 8): FcmProviderContext {
  const unused = 'https://127.0.0.1:1';
  return {
    endpoints: {
      fcm: endpoint, huawei: unused, huaweiOauth: unused, xiaomi: unused, oppo: unused, vivo: unused, honor: unused, honorOauth: unused, meizu: unused,
    },
    tuning: { apnsMaxStreams: 1, apnsConnections: 1, fcmConcurrency },
    logger: pino({ level: 'silent' }),
    tls: { ca: pki.caPem },
  };
}

function credential(mock: FcmMock, privateKey: string, over: Record<string, unknown> = {}): FcmCredential {
  return fcmModule.credentialSchema.parse({
    serviceAccount: {
      type: 'service_account',
      project_id: PROJECT,
      private_key_id: 'test-key-1',
      private_key: privateKey,
      client_email: EMAIL,
      token_uri: `${mock.url}/token`,
      ...over,
    },
  });
}

function content(over: Partial<PushContent> = {}): PushContent {
  return {
    messageId: 'msg-fcm-1',
    notification: { title: 'Your order', body: 'has shipped', clickAction: 'app://orders/42', sound: 'default' },
    data: { orderId: 42, vip: true, tags: ['a', 'b'] },
    options: { ttl: 600, priority: 'high', collapseKey: 'order-42' },
    expiresAt: Date.now() + 600_000,
    ...over,
  };
}

const targets = (...tokens: string[]): SendTarget[] => tokens.map((token, i) => ({ deliveryId: `d-${i}`, token }));
/** Requests for a device token, also those refused before the mock notes the token (401 UNAUTHENTICATED). */
const sendsFor = (mock: FcmMock, token: string) =>
  mock.requests.filter((r) => (r.token ?? (r.body as { message?: { token?: unknown } } | undefined)?.message?.token) === token);

function assertKind(o: Outcome | undefined, kind: Outcome['kind'], code?: string): Outcome {
  assert.ok(o, 'missing outcome');
  assert.equal(o.kind, kind, JSON.stringify(o));
  if (code !== undefined) assert.equal(o.kind !== 'sent' && o.reason.code, code, JSON.stringify(o));
  return o;
}

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A token endpoint that grants every request a token the FCM mock never accepts. */
async function startRogueTokenEndpoint(): Promise<{ url: string; requests(): number; close(): Promise<void> }> {
  let n = 0;
  const srv = https.createServer({ key: pki.keyPem, cert: pki.certPem }, (req, res) => {
    req.resume();
    req.on('end', () => {
      n++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: `ya29.rogue-${n}`, expires_in: 3599, token_type: 'Bearer' }));
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    requests: () => n,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

describe('fcm provider (firebase-admin 13) against the FCM mock', () => {
  const keys = rsaPair();
  let mock: FcmMock;
  let provider: Provider;
  const extra: Provider[] = [];

  before(async () => {
    mock = await startFcmMock({ slowMs: 40 });
    mock.registerServiceAccount(keys.publicKey, EMAIL);
    provider = fcmModule.create(credential(mock, keys.privateKey), context(mock.url));
  });
  after(async () => {
    await Promise.all([provider, ...extra].map((p) => p.close()));
    await mock.close();
  });

  it('classifies a mixed batch, one outcome per target in order', async () => {
    const out = await provider.send(
      content(),
      targets('ok-1', 'unregistered-1', 'invalid-1', 'quota-1', 'unavailable-1', 'internal-1', 'mismatch-1', 'thirdparty-1', 'ok-2'),
    );
    assert.equal(out.length, 9);
    const ok = assertKind(out[0], 'sent');
    assert.match(ok.kind === 'sent' ? (ok.providerId ?? '') : '', /^projects\/demo-project\/messages\/0:\d+%/);
    const unreg = assertKind(out[1], 'invalid', 'UNREGISTERED');
    assert.deepEqual(unreg.kind === 'invalid' && { status: unreg.reason.evidence?.status, errorCode: unreg.reason.evidence?.errorCode }, {
      status: 404,
      errorCode: 'UNREGISTERED',
    });
    assertKind(out[2], 'invalid', 'INVALID_ARGUMENT');
    const quota = assertKind(out[3], 'retry', 'QUOTA_EXCEEDED');
    assert.equal(quota.kind === 'retry' && quota.afterMs, 30_000, 'Retry-After of the 429 is honoured');
    const unavailable = assertKind(out[4], 'retry', 'UNAVAILABLE');
    assert.equal(unavailable.kind === 'retry' && unavailable.afterMs, 5_000, 'Retry-After of the 503 is honoured');
    assertKind(out[5], 'retry', 'INTERNAL');
    const mismatch = assertKind(out[6], 'failed', 'SENDER_ID_MISMATCH');
    assert.match(mismatch.kind === 'failed' ? mismatch.reason.message : '', /different Firebase project/);
    assertKind(out[7], 'failed', 'THIRD_PARTY_AUTH_ERROR');
    assertKind(out[8], 'sent');
    // firebase-admin's own 503 retry is off: the worker's per-token backoff decides.
    assert.equal(sendsFor(mock, 'unavailable-1').length, 1);
    assert.equal(sendsFor(mock, 'quota-1').length, 1);
  });

  it('puts data as strings with relay_id, a Duration ttl and the priority on the wire', async () => {
    const [o] = await provider.send(content({ messageId: 'msg-wire' }), targets('ok-wire'));
    assertKind(o, 'sent');
    const [rec] = sendsFor(mock, 'ok-wire');
    assert.ok(rec);
    assert.equal(rec.httpVersion, '1.1');
    assert.equal(rec.headers.host, `127.0.0.1:${mock.port}`, 'Host names the configured endpoint');
    assert.match(String(rec.headers.authorization), /^Bearer ya29\.mock-/);
    const msg = (rec.body as { message: Record<string, unknown> }).message;
    assert.deepEqual(msg.data, { orderId: '42', vip: 'true', tags: '["a","b"]', relay_id: 'msg-wire' });
    for (const v of Object.values(msg.data as object)) assert.equal(typeof v, 'string');
    const android = msg.android as Record<string, unknown>;
    assert.match(String(android.ttl), /^\d+(\.\d{1,9})?s$/);
    const ttl = Number(String(android.ttl).slice(0, -1));
    assert.ok(ttl > 500 && ttl <= 600, `ttl ${String(android.ttl)} is the remaining TTL`);
    assert.equal(android.priority, 'high');
    assert.equal(android.collapse_key, 'order-42');
    assert.deepEqual(android.notification, { click_action: 'app://orders/42', sound: 'default' });
    assert.deepEqual(msg.notification, { title: 'Your order', body: 'has shipped' });
    assert.equal(msg.token, 'ok-wire');
  });

  it("fetches the OAuth token once from the service account's token_uri and reuses it", async () => {
    await provider.send(content(), targets(...Array.from({ length: 20 }, (_, i) => `ok-many-${i}`)));
    assert.equal(mock.tokenRequests.length, 1, 'one token for every send so far');
    const [t] = mock.tokenRequests;
    assert.equal(t?.status, 200);
    assert.equal(t?.form.grant_type, 'urn:ietf:params:oauth:grant-type:jwt-bearer');
    assert.equal(t?.jwtHeader?.alg, 'RS256');
    assert.equal(t?.claims?.iss, EMAIL);
    assert.equal(t?.claims?.aud, `${mock.url}/token`);
    assert.match(String(t?.claims?.scope), /https:\/\/www\.googleapis\.com\/auth\/firebase\.messaging/);
    assert.equal(Number(t?.claims?.exp) - Number(t?.claims?.iat), 3600);
    const tokensUsed = new Set(mock.requests.map((r) => r.headers.authorization));
    assert.equal(tokensUsed.size, 1);
  });

  it('retries a token that fails its first attempts, then sends it', async () => {
    assertKind((await provider.send(content(), targets('flaky2-a')))[0], 'retry', 'UNAVAILABLE');
    assertKind((await provider.send(content(), targets('flaky2-a')))[0], 'retry', 'UNAVAILABLE');
    assertKind((await provider.send(content(), targets('flaky2-a')))[0], 'sent');
    mock.setBehavior('scripted-token', { error: 'QUOTA_EXCEEDED', retryAfter: null, failTimes: 1 });
    const q = assertKind((await provider.send(content(), targets('scripted-token')))[0], 'retry', 'QUOTA_EXCEEDED');
    assert.equal(q.kind === 'retry' && q.afterMs, 60_000, 'no Retry-After: at least one minute');
    assertKind((await provider.send(content(), targets('scripted-token')))[0], 'sent');
  });

  it('a dropped connection is a retry', async () => {
    assertKind((await provider.send(content(), targets('reset-1')))[0], 'retry', 'app/network-error');
    assertKind((await provider.send(content(), targets('ok-after-reset')))[0], 'sent');
  });

  it('bounds in-flight requests to fcmConcurrency across concurrent send() calls', async () => {
    const p = fcmModule.create(credential(mock, keys.privateKey), context(mock.url, 3));
    extra.push(p);
    await p.send(content(), targets('ok-warm')); // token fetched outside the measured window
    mock.reset();
    const batches = await Promise.all([
      p.send(content(), targets(...Array.from({ length: 12 }, (_, i) => `slow-a${i}`))),
      p.send(content(), targets(...Array.from({ length: 12 }, (_, i) => `slow-b${i}`))),
    ]);
    for (const o of batches.flat()) assertKind(o, 'sent');
    assert.equal(mock.stats.sends, 24);
    assert.ok(mock.stats.maxInFlight <= 3, `max in flight ${mock.stats.maxInFlight}`);
    assert.ok(mock.stats.maxInFlight >= 2, 'requests did run concurrently');
  });

  it('fails with an auth reason when the service-account key is wrong, without reaching FCM', async () => {
    const other = rsaPair();
    const p = fcmModule.create(credential(mock, other.privateKey), context(mock.url));
    extra.push(p);
    const out = await p.send(content(), targets('ok-wrong-key-1', 'ok-wrong-key-2'));
    for (const o of out) {
      assertKind(o, 'failed', 'invalid_grant');
      assert.match(o.kind === 'failed' ? o.reason.message : '', /Invalid JWT Signature/);
      assert.equal(o.kind === 'failed' && o.reason.evidence?.status, 400);
    }
    assert.equal(sendsFor(mock, 'ok-wrong-key-1').length, 0);
  });

  it('retries when the token endpoint is unavailable, and recovers', async () => {
    const p = fcmModule.create(credential(mock, keys.privateKey), context(mock.url));
    extra.push(p);
    mock.setTokenBehavior({ status: 503, error: 'backend_error', times: 1, retryAfter: 2 });
    const [first] = await p.send(content(), targets('ok-token-503'));
    assertKind(first, 'retry', 'backend_error');
    assert.equal(first?.kind === 'retry' && first.afterMs, 2_000);
    assertKind((await p.send(content(), targets('ok-token-503')))[0], 'sent');
  });

  it('a revoked access token is dropped: one new token, one re-send, then sent', async () => {
    const p = fcmModule.create(credential(mock, keys.privateKey), context(mock.url));
    extra.push(p);
    assertKind((await p.send(content(), targets('ok-before-revoke')))[0], 'sent');
    const t0 = mock.tokenRequests.length;
    mock.revokeAccessTokens();
    const [o] = await p.send(content(), targets('ok-after-revoke'));
    assertKind(o, 'sent');
    assert.equal(mock.tokenRequests.length - t0, 1, 'exactly one new token');
    assert.equal(mock.tokenRequests.at(-1)?.status, 200);
    const tries = sendsFor(mock, 'ok-after-revoke');
    assert.deepEqual(
      tries.map((r) => r.status),
      [401, 200],
      'the refused request and one re-send',
    );
    assert.notEqual(tries[0]?.headers.authorization, tries[1]?.headers.authorization, 'the re-send carries the new token');
    // The new token is cached and reused.
    assertKind((await p.send(content(), targets('ok-after-refresh')))[0], 'sent');
    assert.equal(mock.tokenRequests.length - t0, 1);
    assert.equal(sendsFor(mock, 'ok-after-refresh')[0]?.headers.authorization, tries[1]?.headers.authorization);
  });

  it('concurrent sends refused after a revocation share one token request', async () => {
    // Room for all ten at once, so every first attempt goes out with the revoked token.
    const p = fcmModule.create(credential(mock, keys.privateKey), context(mock.url, 10));
    extra.push(p);
    assertKind((await p.send(content(), targets('ok-warm-concurrent')))[0], 'sent');
    const t0 = mock.tokenRequests.length;
    mock.revokeAccessTokens();
    const a = Array.from({ length: 5 }, (_, i) => `ok-concurrent-a${i}`);
    const b = Array.from({ length: 5 }, (_, i) => `ok-concurrent-b${i}`);
    const batches = await Promise.all([p.send(content(), targets(...a)), p.send(content({ messageId: 'msg-fcm-2' }), targets(...b))]);
    for (const o of batches.flat()) assertKind(o, 'sent');
    for (const t of [...a, ...b]) {
      assert.deepEqual(
        sendsFor(mock, t).map((r) => r.status),
        [401, 200],
        `${t}: refused once with the revoked token, then re-sent once`,
      );
    }
    assert.equal(mock.tokenRequests.length - t0, 1, 'ten refusals of the same token, one token request');
    const resent = new Set([...a, ...b].map((t) => sendsFor(mock, t)[1]?.headers.authorization));
    assert.equal(resent.size, 1, 'every re-send carries the one new token');
  });

  it('a token endpoint whose tokens FCM keeps refusing: failed UNAUTHENTICATED after one re-send', async () => {
    const issuer = await startRogueTokenEndpoint();
    try {
      const p = fcmModule.create(credential(mock, keys.privateKey, { token_uri: `${issuer.url}/token` }), context(mock.url));
      extra.push(p);
      const [o] = await p.send(content(), targets('ok-never-authorized'));
      assertKind(o, 'failed', 'UNAUTHENTICATED');
      assert.match(o?.kind === 'failed' ? o.reason.message : '', /again right after a new one was fetched/);
      assert.equal(o?.kind === 'failed' && o.reason.evidence?.status, 401);
      assert.equal(issuer.requests(), 2, 'the first token and exactly one refresh');
      assert.deepEqual(
        sendsFor(mock, 'ok-never-authorized').map((r) => r.status),
        [401, 401],
        'no more than one re-send',
      );
    } finally {
      await issuer.close();
    }
  });

  it('a refused access token whose refresh is refused ends with the OAuth error', async () => {
    const p = fcmModule.create(credential(mock, keys.privateKey), context(mock.url));
    extra.push(p);
    assertKind((await p.send(content(), targets('ok-before-revoke-2')))[0], 'sent');
    mock.revokeAccessTokens();
    mock.setTokenBehavior({ status: 400, error: 'invalid_grant', description: 'Invalid JWT Signature.', times: 1 });
    const [o] = await p.send(content(), targets('ok-refresh-refused'));
    assertKind(o, 'failed', 'invalid_grant');
    assert.equal(sendsFor(mock, 'ok-refresh-refused').length, 1, 'not re-sent without a token');
    // The next send fetches a token again (the failure is not cached) and goes out.
    assertKind((await p.send(content(), targets('ok-refresh-recovered')))[0], 'sent');
  });

  it('THIRD_PARTY_AUTH_ERROR (a 401 with FcmError) is failed without a token refresh', async () => {
    // The shared provider's token was revoked by the tests above: this send refreshes it.
    assertKind((await provider.send(content(), targets('ok-warm-thirdparty')))[0], 'sent');
    const t0 = mock.tokenRequests.length;
    const [o] = await provider.send(content(), targets('thirdparty-no-refresh'));
    assertKind(o, 'failed', 'THIRD_PARTY_AUTH_ERROR');
    assert.equal(mock.tokenRequests.length, t0);
    assert.equal(sendsFor(mock, 'thirdparty-no-refresh').length, 1);
  });

  it("a project the service account does not belong to is PERMISSION_DENIED", async () => {
    const p = fcmModule.create(credential(mock, keys.privateKey, { project_id: 'someone-elses-project' }), context(mock.url));
    extra.push(p);
    const [o] = await p.send(content(), targets('ok-wrong-project'));
    assertKind(o, 'failed', 'PERMISSION_DENIED');
  });

  it('content-level problems fail every target without a request', async () => {
    const before = mock.stats.sends;
    const big = await provider.send(content({ data: { blob: 'x'.repeat(5000) } }), targets('ok-big-1', 'ok-big-2'));
    for (const o of big) assertKind(o, 'failed', 'INVALID_ARGUMENT');
    const expired = await provider.send(content({ expiresAt: Date.now() - 1 }), targets('ok-expired'));
    assertKind(expired[0], 'expired', 'expired');
    assert.equal(mock.stats.sends, before);
  });

  it('an unreachable endpoint is a retry', async () => {
    const p = fcmModule.create(credential(mock, keys.privateKey), context(`https://127.0.0.1:${await closedPort()}`));
    extra.push(p);
    const [o] = await p.send(content(), targets('ok-nowhere'));
    assertKind(o, 'retry', 'app/network-error');
  });

  it('refuses to send after close()', async () => {
    const p = fcmModule.create(credential(mock, keys.privateKey), context(mock.url));
    await p.close();
    assertKind((await p.send(content(), targets('ok-closed')))[0], 'retry', 'closed');
  });
});

// -- the mock itself: what a real FCM server would answer ---------------------------------------

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: any;  
}

function post(mock: FcmMock, path: string, body: string, headers: Record<string, string>): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(`${mock.url}${path}`, { method: 'POST', ca: pki.caPem, headers: { 'content-length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('FCM mock conformance', () => {
  let mock: FcmMock;
  const send = (message: unknown, token = 'static-token', project = 'p1', extra: Record<string, unknown> = {}) =>
    post(mock, `/v1/projects/${project}/messages:send`, JSON.stringify({ message, ...extra }), {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
    });
  const details = (a: RawAnswer) => (a.json.error.details ?? []) as Array<Record<string, any>>;  
  const fcmCode = (a: RawAnswer) => details(a).find((d) => String(d['@type']).endsWith('FcmError'))?.errorCode;

  before(async () => {
    mock = await startFcmMock({ staticTokens: [{ token: 'static-token', projectId: 'p1' }] });
  });
  after(() => mock.close());

  it('requires a known bearer token (401 UNAUTHENTICATED without FcmError)', async () => {
    const a = await send({ token: 'ok-1' }, 'nope');
    assert.equal(a.status, 401);
    assert.equal(a.json.error.status, 'UNAUTHENTICATED');
    assert.equal(fcmCode(a), undefined);
  });

  it('requires the project of the token (403 PERMISSION_DENIED)', async () => {
    const a = await send({ token: 'ok-1' }, 'static-token', 'p2');
    assert.equal(a.status, 403);
    assert.equal(a.json.error.status, 'PERMISSION_DENIED');
  });

  it('accepts lowerCamel and snake_case names and enums in any case', async () => {
    const a = await send({
      token: 'ok-1',
      data: { a: 'b' },
      fcmOptions: { analyticsLabel: 'x' },
      android: { collapseKey: 'c', priority: 'high', ttl: '3.500000000s', notification: { clickAction: 'x', notification_priority: 'priority_high', visibility: 2 } },
      apns: { headers: { 'apns-priority': '10' }, payload: { aps: { 'content-available': 1 } } },
    });
    assert.equal(a.status, 200, JSON.stringify(a.json));
    assert.match(a.json.name, /^projects\/p1\/messages\/0:/);
  });

  it('refuses non-string data values with a BadRequest field violation', async () => {
    const a = await send({ token: 'ok-1', data: { a: 'fine', b: 2 } });
    assert.equal(a.status, 400);
    assert.equal(a.json.error.status, 'INVALID_ARGUMENT');
    const violation = details(a).find((d) => String(d['@type']).endsWith('google.rpc.BadRequest'));
    assert.equal(violation?.fieldViolations[0].field, 'message.data[1].value');
  });

  it('refuses unknown fields, a malformed or too long ttl, and bad enums', async () => {
    assert.equal((await send({ token: 'ok-1', android: { colapse_key: 'x' } })).status, 400);
    assert.equal((await send({ token: 'ok-1', android: { ttl: '10' } })).status, 400);
    assert.equal((await send({ token: 'ok-1', android: { ttl: 3600 } })).status, 400);
    const long = await send({ token: 'ok-1', android: { ttl: '2419201s' } });
    assert.equal(long.status, 400);
    assert.equal(fcmCode(long), 'INVALID_ARGUMENT');
    assert.equal((await send({ token: 'ok-1', android: { ttl: '2419200s' } })).status, 200);
    assert.equal((await send({ token: 'ok-1', android: { priority: 'urgent' } })).status, 400);
  });

  it('wants exactly one target', async () => {
    assert.equal((await send({ data: { a: 'b' } })).status, 400);
    assert.equal((await send({ token: 'ok-1', topic: 'news' })).status, 400);
    assert.equal((await send({ topic: 'news' })).status, 200);
  });

  it('limits the payload to 4096 bytes (2048 for topics)', async () => {
    const fits = { a: 'x'.repeat(4096 - 1) };
    assert.equal((await send({ token: 'ok-1', data: fits })).status, 200);
    const big = await send({ token: 'ok-1', data: { a: 'x'.repeat(4096) } });
    assert.equal(big.status, 400);
    assert.match(big.json.error.message, /too big/);
    assert.equal((await send({ topic: 'news', data: { a: 'x'.repeat(2048) } })).status, 400);
  });

  it('answers validate_only with fake_message_id', async () => {
    const a = await send({ token: 'ok-1' }, 'static-token', 'p1', { validate_only: true });
    assert.equal(a.json.name, 'projects/p1/messages/fake_message_id');
  });

  it('sends FcmError codes with the right HTTP status and Retry-After', async () => {
    const cases: Array<[string, number, string, string | undefined]> = [
      ['unregistered-x', 404, 'UNREGISTERED', undefined],
      ['invalid-x', 400, 'INVALID_ARGUMENT', undefined],
      ['mismatch-x', 403, 'SENDER_ID_MISMATCH', undefined],
      ['quota-x', 429, 'QUOTA_EXCEEDED', '30'],
      ['unavailable-x', 503, 'UNAVAILABLE', '5'],
      ['internal-x', 500, 'INTERNAL', undefined],
      ['thirdparty-x', 401, 'THIRD_PARTY_AUTH_ERROR', undefined],
    ];
    for (const [token, status, code, retryAfter] of cases) {
      const a = await send({ token });
      assert.equal(a.status, status, token);
      assert.equal(fcmCode(a), code, token);
      assert.equal(a.headers['retry-after'], retryAfter, token);
    }
  });

  it('follows an explicit per-token script before the prefix convention', async () => {
    mock.setBehavior('ok-scripted', { error: 'UNREGISTERED', failTimes: 1 });
    assert.equal((await send({ token: 'ok-scripted' })).status, 404);
    assert.equal((await send({ token: 'ok-scripted' })).status, 200);
  });

  it('serves HTTP/2 on the same port', async () => {
    const session = http2.connect(mock.url, { ca: pki.caPem });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const body = JSON.stringify({ message: { token: 'ok-h2' } });
        const req = session.request({ ':method': 'POST', ':path': '/v1/projects/p1/messages:send', authorization: 'Bearer static-token', 'content-type': 'application/json' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.end(body);
      });
      assert.equal(status, 200);
      assert.equal(mock.requests.find((r) => r.token === 'ok-h2')?.httpVersion, '2.0');
    } finally {
      session.close();
    }
  });

  it('answers bad OAuth grants as Google does', async () => {
    const form = (o: Record<string, string>) => new URLSearchParams(o).toString();
    const ct = { 'content-type': 'application/x-www-form-urlencoded' };
    const wrongGrant = await post(mock, '/token', form({ grant_type: 'client_credentials' }), ct);
    assert.equal(wrongGrant.status, 400);
    assert.equal(wrongGrant.json.error, 'unsupported_grant_type');
    const garbage = await post(mock, '/token', form({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: 'a.b.c' }), ct);
    assert.equal(garbage.status, 400);
    assert.equal(garbage.json.error, 'invalid_grant');
  });
});
