// One concept: the APNs provider (node-apn) end to end against the APNs mock.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import apnsModule, { type ApnsContextExtras, type ApnsCredential } from '../../providers/apns/index.js';
import type { Outcome, Provider, ProviderContext, PushContent, SendTarget } from '../../providers/types.js';
import { mockToken, startApnsMock, type ApnsMock, type MockTokenKind } from '../mocks/apns-server.js';
import { testPki } from '../mocks/tls.js';
import { providerContext } from '../helpers/provider-context.js';

/**
 * The real node-apn client, through providers/apns.ts `create()`, against the APNs mock on an
 * ephemeral port. The test CA is trusted through NODE_EXTRA_CA_CERTS when the runner set it
 * (scripts/test.mjs does), else through `ProviderContext.tls.ca`.
 */

const TEAM = 'TEAM123456';
const KID = 'KEY1234567';
const BUNDLE = 'com.example.relay';

const p8 = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const KEY = p8();
const cred: ApnsCredential = { teamId: TEAM, keyId: KID, key: KEY, bundleId: BUNDLE, production: false };

/** True when Node was started with NODE_EXTRA_CA_CERTS naming a file that holds the test CA. */
function caTrustedByProcess(): boolean {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file) return false;
  try {
    return readFileSync(file, 'utf8').includes(testPki().caPem.trim());
  } catch {
    return false;
  }
}

function context(mock: ApnsMock, tuning: Partial<ProviderContext['tuning']> = {}, extra: ApnsContextExtras = {}): ProviderContext {
  const ca = caTrustedByProcess() ? {} : { tls: { ca: testPki().caPem } };
  const ctx: ProviderContext & ApnsContextExtras = {
    ...providerContext({ endpoints: { apns: mock.url }, tuning: { apnsMaxStreams: 100, apnsConnections: 1, fcmConcurrency: 1, ...tuning } }),
    ...ca,
    ...extra,
  };
  return ctx;
}

function message(over: Partial<PushContent> = {}, opts: Partial<PushContent['options']> = {}): PushContent {
  return {
    messageId: `msg-${randomUUID()}`,
    notification: { title: 'Order shipped', body: 'Your order 42 is on its way' },
    data: { orderId: '42' },
    options: { ttl: 3600, priority: 'high', ...opts },
    expiresAt: Date.now() + 3_600_000,
    ...over,
  };
}

const targets = (tokens: readonly string[]): SendTarget[] => tokens.map((token, i) => ({ deliveryId: `d-${i}`, token }));
const codeOf = (o: Outcome): string | undefined => ('reason' in o ? o.reason.code : undefined);
const summary = (outs: readonly Outcome[]) => outs.map((o) => `${o.kind}:${codeOf(o) ?? ''}`);

describe('APNs provider against the APNs mock', () => {
  let mock: ApnsMock;
  let provider: Provider;

  before(async () => {
    mock = await startApnsMock({ keys: [{ teamId: TEAM, keyId: KID, key: KEY }], bundleIds: [BUNDLE], slowMs: 5000 });
    provider = apnsModule.create(cred, context(mock, {}, { apnsRequestTimeoutMs: 500 }));
  });
  after(async () => {
    await provider.close();
    await mock.close();
  });

  it('classifies a mixed batch and sends spec-true headers', async () => {
    const kinds: MockTokenKind[] = ['ok', 'unregistered', 'expiredToken', 'badDeviceToken', 'notForTopic', 'tooManyRequests', 'serviceUnavailable', 'reset', 'ok'];
    const tokens = [...kinds.map((k, i) => mockToken(k, 100 + i)), 'not-a-hex-token'];
    const msg = message({}, { collapseKey: 'order-42' });
    const before410 = Date.now();
    const out = await provider.send(msg, targets(tokens));

    assert.deepEqual(summary(out), [
      'sent:',
      'invalid:Unregistered',
      'invalid:ExpiredToken',
      'invalid:BadDeviceToken',
      'invalid:DeviceTokenNotForTopic',
      'retry:TooManyRequests',
      'retry:ServiceUnavailable',
      'retry:TransportError',
      'sent:',
      'invalid:BadDeviceToken',
    ]);
    // APNs gives no Retry-After that node-apn can read: the worker's backoff decides.
    assert.equal(out[5]!.kind === 'retry' && out[5]!.afterMs, undefined);
    const unreg = out[1]!;
    assert.ok(unreg.kind === 'invalid');
    assert.equal(unreg.reason.evidence?.status, 410);
    assert.equal(unreg.reason.evidence?.reason, 'Unregistered');
    assert.equal(typeof unreg.reason.evidence?.timestamp, 'number');
    assert.ok((unreg.reason.evidence!.timestamp as number) >= before410, 'the 410 timestamp is in ms');
    assert.equal(out[3]!.kind === 'invalid' && out[3]!.reason.evidence?.status, 400);
    assert.equal(out[9]!.kind === 'invalid' && out[9]!.reason.evidence?.local, true);

    const sentOut = out[0]!;
    assert.ok(sentOut.kind === 'sent');
    const recorded = mock.requests.filter((r) => (r.payload as { relay_id?: string }).relay_id === msg.messageId);
    assert.equal(recorded.length, kinds.length, 'every hex token reached the mock once; the bad one never did');
    const first = recorded.find((r) => r.token === tokens[0])!;
    assert.equal(first.headers[':method'], 'POST');
    assert.equal(first.path, `/3/device/${tokens[0]}`);
    assert.equal(first.headers['apns-topic'], BUNDLE);
    assert.equal(first.headers['apns-push-type'], 'alert');
    assert.equal(first.headers['apns-priority'], '10');
    assert.equal(first.headers['apns-expiration'], String(Math.floor(msg.expiresAt / 1000)));
    assert.equal(first.headers['apns-collapse-id'], 'order-42');
    assert.match(first.headers.authorization ?? '', /^bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    assert.deepEqual({ kid: first.jwt?.kid, iss: first.jwt?.iss }, { kid: KID, iss: TEAM });
    assert.deepEqual(first.payload, {
      orderId: '42',
      aps: { alert: { title: 'Order shipped', body: 'Your order 42 is on its way' } },
      relay_id: msg.messageId,
    });
    assert.match(sentOut.providerId ?? '', /^[0-9a-f-]{36}$/);
  });

  it('a 500 is retryable and the next send reconnects', async () => {
    const out = await provider.send(message(), targets([mockToken('internalError', 1)]));
    assert.deepEqual(summary(out), ['retry:InternalServerError']);
    const next = await provider.send(message(), targets([mockToken('ok', 2)]));
    assert.deepEqual(summary(next), ['sent:']);
  });

  it('503 Shutdown with GOAWAY is retryable and a later send gets through on a new connection', async () => {
    const sessionsBefore = mock.stats.sessions;
    const out = await provider.send(message(), targets([mockToken('shutdown', 1)]));
    assert.deepEqual(summary(out), ['retry:Shutdown']);
    // A send racing the GOAWAY may itself come back as a transport retry; the worker would retry it.
    let later: Outcome | undefined;
    for (let i = 0; i < 5 && later?.kind !== 'sent'; i++) {
      later = (await provider.send(message(), targets([mockToken('ok', 3)])))[0]!;
      assert.ok(later.kind === 'sent' || later.kind === 'retry', JSON.stringify(later));
    }
    assert.equal(later?.kind, 'sent');
    assert.ok(mock.stats.sessions > sessionsBefore, 'a new connection was opened');
  });

  it('voip and background pushes: topic suffix, priority, content-available', async () => {
    const voip = message({ data: { callId: 'c-1' } }, { pushType: 'voip', priority: 'high' });
    const bg = message({ notification: undefined, data: { sync: '1' } }, { priority: 'high' });
    const [v, b] = await Promise.all([provider.send(voip, targets([mockToken('ok', 10)])), provider.send(bg, targets([mockToken('ok', 11)]))]);
    assert.deepEqual(summary(v!), ['sent:']);
    assert.deepEqual(summary(b!), ['sent:']);
    const rv = mock.requests.find((r) => (r.payload as { relay_id?: string }).relay_id === voip.messageId)!;
    assert.equal(rv.headers['apns-topic'], `${BUNDLE}.voip`);
    assert.equal(rv.headers['apns-push-type'], 'voip');
    assert.equal(rv.headers['apns-priority'], '10');
    assert.deepEqual(rv.payload, { callId: 'c-1', relay_id: voip.messageId });
    const rb = mock.requests.find((r) => (r.payload as { relay_id?: string }).relay_id === bg.messageId)!;
    assert.equal(rb.headers['apns-topic'], BUNDLE);
    assert.equal(rb.headers['apns-push-type'], 'background');
    assert.equal(rb.headers['apns-priority'], '5');
    assert.deepEqual(rb.payload, { sync: '1', aps: { 'content-available': 1 }, relay_id: bg.messageId });
  });

  it('a topic outside the credential is failed TopicDisallowed', async () => {
    const out = await provider.send(message({ overrides: { apns: { topic: 'com.someone.else' } } }), targets([mockToken('ok', 12)]));
    assert.deepEqual(summary(out), ['failed:TopicDisallowed']);
  });

  it('a payload over 4096 bytes fails without reaching the mock', async () => {
    const msg = message({ data: { blob: 'x'.repeat(5000) } });
    const out = await provider.send(msg, targets([mockToken('ok', 20), mockToken('ok', 21)]));
    assert.deepEqual(summary(out), ['failed:PayloadTooLarge', 'failed:PayloadTooLarge']);
    assert.equal(mock.requests.filter((r) => JSON.stringify(r.payload).includes(msg.messageId)).length, 0);
  });

  it('fails the first N attempts, then succeeds', async () => {
    const token = mockToken('failFirst', 30, 2);
    const msg = message();
    assert.deepEqual(summary(await provider.send(msg, targets([token]))), ['retry:ServiceUnavailable']);
    assert.deepEqual(summary(await provider.send(msg, targets([token]))), ['retry:ServiceUnavailable']);
    assert.deepEqual(summary(await provider.send(msg, targets([token]))), ['sent:']);
    assert.equal(mock.requests.filter((r) => r.token === token).length, 3);
  });

  it('re-sends once after ExpiredProviderToken (node-apn has a fresh JWT), and fails when it persists', async () => {
    const once = mockToken('ok', 40);
    const always = mockToken('ok', 41);
    mock.setBehavior(once, { status: 403, reason: 'ExpiredProviderToken', failFirst: 1 });
    mock.setBehavior(always, { status: 403, reason: 'ExpiredProviderToken' });
    const out = await provider.send(message(), targets([once, always]));
    assert.deepEqual(summary(out), ['sent:', 'failed:ExpiredProviderToken']);
    assert.equal(mock.requests.filter((r) => r.token === once).length, 2);
    assert.equal(mock.requests.filter((r) => r.token === always).length, 2);
    mock.setBehavior(once, undefined);
    mock.setBehavior(always, undefined);
  });

  it('a slow answer becomes a Timeout retry', async () => {
    const out = await provider.send(message(), targets([mockToken('slow', 50), mockToken('ok', 51)]));
    assert.deepEqual(summary(out), ['retry:Timeout', 'sent:']);
  });

  it('a stream that never ends is settled as a Timeout retry and gives its stream permit back', { timeout: 15_000 }, async () => {
    // The mock trickles the body, so node-apn's idle timeout never fires and its promise never
    // settles: only the provider's own watchdog ends the call. With one stream permit, the second
    // token can only go out once the stuck call has released it.
    const stuck = mockToken('ok', 80);
    mock.setBehavior(stuck, { stall: true });
    const p = apnsModule.create(cred, context(mock, { apnsMaxStreams: 1 }, { apnsRequestTimeoutMs: 200 }));
    try {
      const out = await p.send(message(), targets([stuck, mockToken('ok', 81)]));
      assert.deepEqual(summary(out), ['retry:Timeout', 'sent:']);
      assert.match(out[0]!.kind === 'retry' ? out[0]!.reason.message : '', /node-apn gave no result within 1400 ms/);
      assert.equal((p as unknown as { inFlight: number }).inFlight, 0);
    } finally {
      mock.setBehavior(stuck, undefined);
      await p.close();
    }
  });

  it('a key the mock does not know → failed InvalidProviderToken for every token', async () => {
    const other = apnsModule.create({ ...cred, key: p8() }, context(mock));
    try {
      const tokens = [mockToken('ok', 60), mockToken('ok', 61), mockToken('unregistered', 62)];
      const out = await other.send(message(), targets(tokens));
      assert.deepEqual(summary(out), ['failed:InvalidProviderToken', 'failed:InvalidProviderToken', 'failed:InvalidProviderToken']);
      const rec = mock.requests.filter((r) => tokens.includes(r.token));
      assert.deepEqual(
        rec.map((r) => [r.status, r.reason]),
        tokens.map(() => [403, 'InvalidProviderToken']),
      );
    } finally {
      await other.close();
    }
  });

  it('after close(), send() answers retry without touching the network', async () => {
    const p = apnsModule.create(cred, context(mock));
    await p.close();
    const n = mock.stats.received;
    const out = await p.send(message(), targets([mockToken('ok', 70)]));
    assert.deepEqual(summary(out), ['retry:closed']);
    assert.equal(mock.stats.received, n);
  });
});

describe('APNs provider concurrency', () => {
  it('one send() of 20,000 tokens under a 100-stream server limit: all sent, none refused', async () => {
    const mock = await startApnsMock({ keys: [{ teamId: TEAM, keyId: KID, key: KEY }], maxConcurrentStreams: 100, record: false });
    const provider = apnsModule.create(cred, context(mock, { apnsMaxStreams: 100 }));
    try {
      const tokens = Array.from({ length: 20_000 }, (_, i) => mockToken('ok', i));
      const out = await provider.send(message(), targets(tokens));
      const counts: Record<string, number> = {};
      for (const o of out) counts[`${o.kind}:${codeOf(o) ?? ''}`] = (counts[`${o.kind}:${codeOf(o) ?? ''}`] ?? 0) + 1;
      assert.deepEqual(counts, { 'sent:': 20_000 });
      assert.equal(mock.stats.received, 20_000);
      assert.equal(mock.stats.byStatus[200], 20_000);
      assert.ok(mock.stats.maxInFlight <= 100, `at most 100 streams at once (saw ${mock.stats.maxInFlight})`);
    } finally {
      await provider.close();
      await mock.close();
    }
  });

  it('two concurrent send() calls share one stream budget', async () => {
    const mock = await startApnsMock({ keys: [{ teamId: TEAM, keyId: KID, key: KEY }], delayMs: 3, record: false });
    const provider = apnsModule.create(cred, context(mock, { apnsMaxStreams: 20 }));
    try {
      const a = Array.from({ length: 400 }, (_, i) => mockToken('ok', i));
      const b = Array.from({ length: 400 }, (_, i) => mockToken('ok', 10_000 + i));
      const [oa, ob] = await Promise.all([provider.send(message(), targets(a)), provider.send(message(), targets(b))]);
      assert.ok(oa.every((o) => o.kind === 'sent'));
      assert.ok(ob.every((o) => o.kind === 'sent'));
      assert.equal(mock.stats.received, 800);
      assert.ok(mock.stats.maxInFlight <= 20, `the budget is shared: at most 20 streams (saw ${mock.stats.maxInFlight})`);
    } finally {
      await provider.close();
      await mock.close();
    }
  });

  it('apnsConnections > 1 opens that many connections (MultiProvider)', async () => {
    const mock = await startApnsMock({ keys: [{ teamId: TEAM, keyId: KID, key: KEY }], record: false });
    const provider = apnsModule.create(cred, context(mock, { apnsMaxStreams: 10, apnsConnections: 3 }));
    try {
      const out = await provider.send(message(), targets(Array.from({ length: 90 }, (_, i) => mockToken('ok', i))));
      assert.ok(out.every((o) => o.kind === 'sent'));
      assert.equal(mock.stats.sessions, 3);
      assert.ok(mock.stats.maxInFlight <= 30);
    } finally {
      await provider.close();
      await mock.close();
    }
  });
});

describe('APNs mock protocol checks (raw HTTP/2 client)', () => {
  let mock: ApnsMock;
  let session: http2.ClientHttp2Session;

  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  function jwt(opts: { kid?: string; iss?: string; iat?: number; key?: string } = {}): string {
    const head = b64({ alg: 'ES256', kid: opts.kid ?? KID });
    const claims = b64({ iss: opts.iss ?? TEAM, iat: opts.iat ?? Math.floor(Date.now() / 1000) });
    const sig = sign('sha256', Buffer.from(`${head}.${claims}`), { key: opts.key ?? KEY, dsaEncoding: 'ieee-p1363' });
    return `${head}.${claims}.${sig.toString('base64url')}`;
  }
  const GOOD = jwt();

  function request(headers: http2.OutgoingHttpHeaders, body?: string): Promise<{ status: number; headers: http2.IncomingHttpHeaders; json: Record<string, unknown> | undefined }> {
    return new Promise((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': `/3/device/${mockToken('ok', 1)}`, ...headers });
      let data = '';
      let h: http2.IncomingHttpHeaders = {};
      req.setEncoding('utf8');
      req.on('response', (r) => (h = r));
      req.on('data', (d: string) => (data += d));
      req.on('end', () => resolve({ status: Number(h[':status']), headers: h, json: data ? (JSON.parse(data) as Record<string, unknown>) : undefined }));
      req.on('error', reject);
      req.end(body);
    });
  }
  const base = (over: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders => ({
    authorization: `bearer ${GOOD}`,
    'apns-topic': BUNDLE,
    'apns-push-type': 'alert',
    'apns-priority': '10',
    ...over,
  });
  const BODY = JSON.stringify({ aps: { alert: 'hi' } });

  before(async () => {
    mock = await startApnsMock({ keys: [{ teamId: TEAM, keyId: KID, key: KEY }], bundleIds: [BUNDLE] });
    session = http2.connect(mock.url, { ca: testPki().caPem });
  });
  after(async () => {
    await new Promise<void>((resolve) => session.close(() => resolve()));
    await mock.close();
  });

  it('200 with an empty body, apns-id echoed and apns-unique-id (sandbox)', async () => {
    const id = randomUUID();
    const r = await request(base({ 'apns-id': id }), BODY);
    assert.equal(r.status, 200);
    assert.equal(r.json, undefined);
    assert.equal(r.headers['apns-id'], id);
    assert.match(String(r.headers['apns-unique-id']), /^[0-9a-f-]{36}$/);
  });

  const cases: Array<[string, () => Promise<{ status: number; headers: http2.IncomingHttpHeaders; json: Record<string, unknown> | undefined }>, number, string]> = [
    ['GET', () => request(base({ ':method': 'GET' })), 405, 'MethodNotAllowed'],
    ['bad path', () => request(base({ ':path': '/3/devices/abc' }), BODY), 404, 'BadPath'],
    ['no authorization', () => request(base({ authorization: undefined }), BODY), 403, 'MissingProviderToken'],
    ['unknown key id', () => request(base({ authorization: `bearer ${jwt({ kid: 'NOPE000000' })}` }), BODY), 403, 'InvalidProviderToken'],
    ['wrong team', () => request(base({ authorization: `bearer ${jwt({ iss: 'OTHER00000' })}` }), BODY), 403, 'InvalidProviderToken'],
    ['bad signature', () => request(base({ authorization: `bearer ${jwt({ key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string })}` }), BODY), 403, 'InvalidProviderToken'],
    ['iat over an hour old', () => request(base({ authorization: `bearer ${jwt({ iat: Math.floor(Date.now() / 1000) - 3700 })}` }), BODY), 403, 'ExpiredProviderToken'],
    ['no topic', () => request(base({ 'apns-topic': undefined }), BODY), 400, 'MissingTopic'],
    ['voip without .voip', () => request(base({ 'apns-push-type': 'voip' }), BODY), 400, 'BadTopic'],
    ['alert to a .voip topic', () => request(base({ 'apns-topic': `${BUNDLE}.voip` }), BODY), 400, 'BadTopic'],
    ['other bundle', () => request(base({ 'apns-topic': 'com.other.app' }), BODY), 400, 'TopicDisallowed'],
    ['push type', () => request(base({ 'apns-push-type': 'banner' }), BODY), 400, 'InvalidPushType'],
    ['priority 7', () => request(base({ 'apns-priority': '7' }), BODY), 400, 'BadPriority'],
    ['background at 10', () => request(base({ 'apns-push-type': 'background' }), BODY), 400, 'BadPriority'],
    ['expiration', () => request(base({ 'apns-expiration': 'tomorrow' }), BODY), 400, 'BadExpirationDate'],
    ['apns-id', () => request(base({ 'apns-id': 'not-a-uuid' }), BODY), 400, 'BadMessageId'],
    ['collapse id 65 bytes', () => request(base({ 'apns-collapse-id': 'x'.repeat(65) }), BODY), 400, 'BadCollapseId'],
    ['duplicate topic', () => request(base({ 'apns-topic': [BUNDLE, BUNDLE] }), BODY), 400, 'DuplicateHeaders'],
    ['empty payload', () => request(base()), 400, 'PayloadEmpty'],
    ['4097 bytes', () => request(base(), JSON.stringify({ p: 'x'.repeat(4097 - 8) })), 413, 'PayloadTooLarge'],
    ['bad token', () => request(base({ ':path': '/3/device/xyz' }), BODY), 400, 'BadDeviceToken'],
    ['410 has a timestamp', () => request(base({ ':path': `/3/device/${mockToken('unregistered', 9)}` }), BODY), 410, 'Unregistered'],
    ['429 has retry-after', () => request(base({ ':path': `/3/device/${mockToken('tooManyRequests', 9)}` }), BODY), 429, 'TooManyRequests'],
  ];
  for (const [name, run, status, reason] of cases) {
    it(`${name} → ${status} ${reason}`, async () => {
      const r = await run();
      assert.equal(r.status, status);
      assert.equal(r.json?.reason, reason);
      if (status === 410) assert.ok(Number(r.json?.timestamp) > 1_600_000_000_000, 'timestamp in ms');
      if (status === 429) assert.equal(r.headers['retry-after'], '1');
      if (status !== 200) assert.equal(r.headers['content-type'], 'application/json');
    });
  }

  it('voip allows 5120 bytes; background at 5 passes', async () => {
    const voip = await request(base({ 'apns-push-type': 'voip', 'apns-topic': `${BUNDLE}.voip` }), JSON.stringify({ p: 'x'.repeat(5120 - 8) }));
    assert.equal(voip.status, 200);
    const bg = await request(base({ 'apns-push-type': 'background', 'apns-priority': '5' }), JSON.stringify({ aps: { 'content-available': 1 } }));
    assert.equal(bg.status, 200);
  });

  it('explicit behaviors win over the prefix convention, and can be removed', async () => {
    const token = mockToken('unregistered', 77);
    mock.setBehavior(token, { status: 400, reason: 'BadDeviceToken' });
    assert.equal((await request(base({ ':path': `/3/device/${token}` }), BODY)).json?.reason, 'BadDeviceToken');
    mock.setBehavior(token, undefined);
    assert.equal((await request(base({ ':path': `/3/device/${token}` }), BODY)).json?.reason, 'Unregistered');
  });
});
