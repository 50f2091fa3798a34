import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import webpush from 'web-push';
import webpushModule, {
  WEBPUSH_MAX_TTL,
  buildPayload,
  checkSubscription,
  classifyResponse,
  parseSubscription,
  requestOptions,
  sanitizeTopic,
  subscriptionToken,
  webpushCredentialSchema,
} from '../../providers/webpush.js';
import { CredentialError, CredentialUnreadableError, type ProviderContext, type PushContent } from '../../providers/types.js';
import { providerContext } from '../helpers/provider-context.js';

const ctx: ProviderContext = providerContext({ tuning: { apnsMaxStreams: 1, apnsConnections: 1, fcmConcurrency: 1 } });

const headers = (h: Record<string, string> = {}) => new Headers(h);

function content(over: Partial<PushContent> = {}): PushContent {
  return {
    messageId: 'm-1',
    notification: { title: 'Hello', body: 'World' },
    data: { orderId: '42' },
    options: { ttl: 3600, priority: 'high' },
    expiresAt: Date.now() + 3600_000,
    ...over,
  };
}

function subscriptionJson(): string {
  const ecdh = createECDH('prime256v1');
  return JSON.stringify({
    endpoint: 'https://push.example.com/p/abc',
    keys: { p256dh: ecdh.generateKeys().toString('base64url'), auth: randomBytes(16).toString('base64url') },
  });
}

describe('webpush topic sanitizing', () => {
  it('keeps a collapse key that already fits the RFC 8030 alphabet', () => {
    assert.equal(sanitizeTopic('order-42_x'), 'order-42_x');
  });
  it('hashes keys with other characters or over 32 chars to 32 base64url chars, stably', () => {
    for (const key of ['order 42', 'ordre:42/é', 'x'.repeat(33)]) {
      const t = sanitizeTopic(key);
      assert.match(t, /^[A-Za-z0-9_-]{32}$/);
      assert.equal(sanitizeTopic(key), t);
    }
    assert.notEqual(sanitizeTopic('order 42'), sanitizeTopic('order 43'));
    assert.notEqual(sanitizeTopic('order 42'), sanitizeTopic('order42'));
  });
});

describe('webpush response classification', () => {
  it('201/200 → sent with Location as provider id', () => {
    assert.deepEqual(classifyResponse(201, headers({ location: 'https://p/m/1' }), ''), { kind: 'sent', providerId: 'https://p/m/1' });
    assert.deepEqual(classifyResponse(200, headers(), ''), { kind: 'sent' });
  });
  it('404 and 410 → invalid', () => {
    assert.equal(classifyResponse(404, headers(), '').kind, 'invalid');
    const o = classifyResponse(410, headers(), 'gone');
    assert.equal(o.kind, 'invalid');
    assert.equal(o.kind === 'invalid' && o.reason.code, 'Gone');
  });
  it('429 and 5xx → retry with Retry-After', () => {
    const o = classifyResponse(429, headers({ 'retry-after': '30' }), '');
    assert.deepEqual(o.kind === 'retry' && [o.reason.code, o.afterMs], ['TooManyRequests', 30_000]);
    const d = classifyResponse(503, headers({ 'retry-after': new Date(Date.now() + 60_000).toUTCString() }), '');
    assert.equal(d.kind, 'retry');
    assert.ok(d.kind === 'retry' && d.afterMs !== undefined && d.afterMs > 50_000 && d.afterMs <= 60_000);
    const n = classifyResponse(500, headers(), '');
    assert.equal(n.kind === 'retry' && n.afterMs, undefined);
  });
  it('3xx → failed Redirect with status and Location, never invalid', () => {
    for (const s of [301, 302, 303, 307, 308]) {
      const o = classifyResponse(s, headers({ location: 'https://elsewhere.example/push/1' }), '');
      assert.equal(o.kind, 'failed', String(s));
      assert.equal(o.kind === 'failed' && o.reason.code, 'Redirect');
      assert.deepEqual(o.kind === 'failed' && o.reason.evidence, { status: s, location: 'https://elsewhere.example/push/1' });
    }
  });
  it('413 → failed PayloadTooLarge; 400/401/403 → failed', () => {
    const o = classifyResponse(413, headers(), '');
    assert.deepEqual(o.kind === 'failed' && o.reason.code, 'PayloadTooLarge');
    for (const s of [400, 401, 403]) assert.equal(classifyResponse(s, headers(), '').kind, 'failed', String(s));
  });
});

describe('webpush subscription parsing', () => {
  it('accepts a browser PushSubscription', () => {
    const s = parseSubscription(subscriptionJson());
    assert.equal(typeof s, 'object');
  });
  it('rejects malformed subscriptions with a reason', () => {
    const good = JSON.parse(subscriptionJson());
    const cases = [
      'not json',
      JSON.stringify({ endpoint: good.endpoint }),
      JSON.stringify({ ...good, endpoint: 'http://push.example.com/x' }),
      JSON.stringify({ ...good, keys: { ...good.keys, p256dh: Buffer.alloc(64, 1).toString('base64url') } }),
      JSON.stringify({ ...good, keys: { ...good.keys, p256dh: Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 7)]).toString('base64url') } }),
      JSON.stringify({ ...good, keys: { ...good.keys, auth: randomBytes(8).toString('base64url') } }),
    ];
    for (const c of cases) assert.equal(typeof parseSubscription(c), 'string', c);
  });
  it('names the field a registration must fix', () => {
    const good = JSON.parse(subscriptionJson());
    const cases: [unknown, string][] = [
      [{ ...good, endpoint: 'http://push.example.com/x' }, 'endpoint'],
      [{ ...good, endpoint: 'ftp://push.example.com/x' }, 'endpoint'],
      [{ ...good, endpoint: 'mailto:ops@example.com' }, 'endpoint'],
      [{ ...good, endpoint: 'not a url' }, 'endpoint'],
      [{ ...good, keys: { ...good.keys, p256dh: 'junk' } }, 'keys.p256dh'],
      [{ ...good, keys: { ...good.keys, p256dh: 'a+b/c=' } }, 'keys.p256dh'],
      [{ ...good, keys: { ...good.keys, auth: randomBytes(17).toString('base64url') } }, 'keys.auth'],
      [{ endpoint: good.endpoint }, 'keys'],
    ];
    for (const [raw, path] of cases) {
      const c = checkSubscription(raw);
      assert.ok('message' in c, path);
      assert.equal(c.path.join('.'), path, JSON.stringify(raw));
    }
  });
  it('the stored form is endpoint then keys (p256dh, auth) whatever order and extras came in, and parses back', () => {
    const good = JSON.parse(subscriptionJson());
    const canonical = JSON.stringify({ endpoint: good.endpoint, keys: { p256dh: good.keys.p256dh, auth: good.keys.auth } });
    const variants = [
      { keys: { auth: good.keys.auth, p256dh: good.keys.p256dh }, endpoint: good.endpoint },
      { endpoint: good.endpoint, expirationTime: null, keys: good.keys },
      { expirationTime: 1_900_000_000_000, keys: good.keys, endpoint: good.endpoint, extra: 1 },
    ];
    for (const v of variants) {
      const c = checkSubscription(v);
      assert.ok(!('message' in c));
      assert.equal(subscriptionToken(c), canonical);
    }
    assert.deepEqual(parseSubscription(canonical), { endpoint: good.endpoint, keys: good.keys });
  });
});

describe('webpush request building', () => {
  it('uses the remaining TTL, capped, and maps priority to urgency', () => {
    const now = Date.now();
    const o = requestOptions(content({ expiresAt: now + 120_500 }), undefined, now);
    assert.deepEqual(o, { TTL: 120, urgency: 'high' });
    const long = requestOptions(content({ expiresAt: now + 90 * 86_400_000, options: { ttl: 1, priority: 'normal' } }), undefined, now);
    assert.deepEqual(long, { TTL: WEBPUSH_MAX_TTL, urgency: 'normal' });
  });
  it('ttl 0 (now or never) sends TTL: 0 within its attempt window, whatever the override', () => {
    const now = Date.now();
    const c = content({ expiresAt: now + 30_000, options: { ttl: 0, priority: 'high' } });
    assert.deepEqual(requestOptions(c, undefined, now), { TTL: 0, urgency: 'high' });
    assert.equal(requestOptions(c, { ttl: 60 }, now).TTL, 0);
  });
  it('overrides win for urgency, ttl (never above remaining) and topic', () => {
    const now = Date.now();
    const c = content({ expiresAt: now + 100_000, options: { ttl: 100, priority: 'high', collapseKey: 'a b' } });
    assert.deepEqual(requestOptions(c, { urgency: 'low', ttl: 5000, topic: 'room-1' }, now), { TTL: 100, urgency: 'low', topic: 'room-1' });
    assert.equal(requestOptions(c, undefined, now).topic, sanitizeTopic('a b'));
  });
  it('payload carries the relay id, notification and data, overrides merged last', () => {
    const p = JSON.parse(buildPayload(content(), { notification: { icon: '/i.png' }, data: { extra: 1 } }));
    assert.deepEqual(p, { id: 'm-1', notification: { title: 'Hello', body: 'World', icon: '/i.png' }, data: { orderId: '42', extra: 1 } });
  });
});

describe('webpush credentials', () => {
  it('keepFromStored() keeps the stored VAPID keys when the PUT names none, and only then', async () => {
    const stored = webpushModule.complete!({ subject: 'mailto:ops@example.com' });
    const bare = webpushCredentialSchema.parse({ subject: 'mailto:new@example.com' });
    const kept = await webpushModule.keepFromStored!(bare, async () => stored);
    assert.equal(kept.vapidPublicKey, stored.vapidPublicKey);
    assert.equal(kept.vapidPrivateKey, stored.vapidPrivateKey);
    assert.equal(kept.subject, 'mailto:new@example.com');
    const given = webpushModule.complete!({ subject: 'mailto:ops@example.com' });
    let read = false;
    const unchanged = await webpushModule.keepFromStored!(given, async () => {
      read = true;
      return stored;
    });
    assert.equal(unchanged.vapidPublicKey, given.vapidPublicKey);
    assert.equal(read, false, 'keys given in the PUT: the stored credential is not read');
    assert.equal((await webpushModule.keepFromStored!(bare, async () => null)).vapidPublicKey, undefined);
  });
  it('keepFromStored() refuses to go on when the stored credential does not decrypt', async () => {
    const bare = webpushCredentialSchema.parse({ subject: 'mailto:ops@example.com' });
    await assert.rejects(
      webpushModule.keepFromStored!(bare, async () => {
        throw new Error('bad decrypt');
      }),
      CredentialUnreadableError,
    );
  });

  it('complete() generates a valid key pair when omitted', () => {
    const cred = webpushCredentialSchema.parse({ subject: 'mailto:ops@example.com' });
    const done = webpushModule.complete!(cred);
    assert.match(done.vapidPublicKey ?? '', /^[A-Za-z0-9_-]{87}$/);
    assert.match(done.vapidPrivateKey ?? '', /^[A-Za-z0-9_-]{43}$/);
    webpushModule.checkCredential!(done);
    assert.deepEqual(webpushModule.describe(done), { vapidPublicKey: done.vapidPublicKey, subject: 'mailto:ops@example.com' });
  });
  it('the schema wants both keys or neither', () => {
    assert.equal(webpushCredentialSchema.safeParse({ subject: 'mailto:a@b.c', vapidPublicKey: 'abc' }).success, false);
  });
  it('checkCredential refuses bad subjects, short keys and mismatched pairs', () => {
    const a = webpushModule.complete!({ subject: 'https://example.com/contact' });
    const b = webpushModule.complete!({ subject: 'https://example.com/contact' });
    const bad = [
      { ...a, subject: 'http://example.com' },
      { ...a, subject: 'ops@example.com' },
      { ...a, subject: 'mailto:nobody' },
      { ...a, vapidPrivateKey: Buffer.alloc(31, 1).toString('base64url') },
      { ...a, vapidPublicKey: Buffer.alloc(65, 4).toString('base64url') },
      { ...a, vapidPublicKey: b.vapidPublicKey },
    ];
    for (const c of bad) assert.throws(() => webpushModule.checkCredential!(c), CredentialError, JSON.stringify(c.subject));
  });
});

describe('webpush send without network', () => {
  it('a malformed subscription is invalid, a too-large payload is failed, an expired message is expired', async () => {
    const p = webpushModule.create(webpushModule.complete!({ subject: 'mailto:ops@example.com' }), ctx);
    try {
      const [o] = await p.send(content(), [{ deliveryId: 'd1', token: '{"endpoint":"nope"}' }]);
      assert.equal(o?.kind, 'invalid');
      assert.equal(o?.kind === 'invalid' && o.reason.code, 'BadSubscription');
      const [big] = await p.send(content({ data: { blob: 'x'.repeat(5000) } }), [{ deliveryId: 'd2', token: subscriptionJson() }]);
      assert.equal(big?.kind === 'failed' && big.reason.code, 'PayloadTooLarge');
      const [exp] = await p.send(content({ expiresAt: Date.now() - 1 }), [{ deliveryId: 'd3', token: subscriptionJson() }]);
      assert.equal(exp?.kind === 'expired' && exp.reason.code, 'expired');
      // Bad overrides never reach a send: the API refuses them with the channel's schema.
      assert.equal(webpushModule.overridesSchema.safeParse({ urgency: 'asap' }).success, false);
      assert.equal(webpushModule.overridesSchema.safeParse({ typo: 1 }).success, false);
    } finally {
      await p.close();
    }
  });
  it('a VAPID signing error fails the deliveries as a credential problem and never quarantines the tokens', async (t) => {
    const p = webpushModule.create(webpushModule.complete!({ subject: 'mailto:ops@example.com' }), ctx);
    t.mock.method(webpush, 'getVapidHeaders', () => {
      throw new Error('Vapid private key should be 32 bytes long when decoded.');
    });
    try {
      const out = await p.send(content(), [{ deliveryId: 'd1', token: subscriptionJson() }, { deliveryId: 'd2', token: subscriptionJson() }]);
      assert.deepEqual(out.map((o) => o.kind), ['failed', 'failed']);
      for (const o of out) assert.equal(o.kind === 'failed' && o.reason.code, 'InvalidCredential');
    } finally {
      await p.close();
    }
  });
});
