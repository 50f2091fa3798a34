import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import webpushModule, { checkSubscription, sanitizeTopic, subscriptionToken } from '../../providers/webpush.js';
import type { Provider, ProviderContext, PushContent } from '../../providers/types.js';
import { startWebPushMock, type WebPushMock } from '../mocks/webpush-server.js';
import { providerContext } from '../helpers/provider-context.js';

// Needs NODE_EXTRA_CA_CERTS=<testPki().caPath> (npm test sets it).

const ctx: ProviderContext = providerContext({ tuning: { apnsMaxStreams: 1, apnsConnections: 1, fcmConcurrency: 1 } });

function content(over: Partial<PushContent> = {}): PushContent {
  return {
    messageId: 'msg-web-1',
    notification: { title: 'Your order', body: 'has shipped', clickAction: 'https://shop.example.com/o/42' },
    data: { orderId: '42' },
    options: { ttl: 600, priority: 'high', collapseKey: 'order 42' },
    expiresAt: Date.now() + 600_000,
    ...over,
  };
}

describe('webpush provider against the mock push service', () => {
  let mock: WebPushMock;
  let provider: Provider;
  const cred = webpushModule.complete!({ subject: 'mailto:ops@example.com' });

  before(async () => {
    mock = await startWebPushMock();
    provider = webpushModule.create(cred, ctx);
  });
  after(async () => {
    await provider.close();
    await mock.close();
  });

  it('sends an encrypted payload the subscription can decrypt, with VAPID, TTL, Urgency and Topic', async () => {
    const sub = mock.subscribe({ applicationServerKey: cred.vapidPublicKey });
    const [o] = await provider.send(content(), [{ deliveryId: 'd1', token: sub.json }]);
    assert.equal(o?.kind, 'sent');
    assert.ok(o?.kind === 'sent' && o.providerId?.startsWith(`${mock.origin}/message/`));
    const rec = mock.requests.find((r) => r.subscriptionId === sub.id);
    assert.ok(rec?.plaintext, rec?.error);
    const payload = JSON.parse(rec.plaintext);
    assert.equal(payload.id, 'msg-web-1');
    assert.equal(payload.notification.title, 'Your order');
    assert.deepEqual(payload.data, { orderId: '42' });
    assert.equal(rec.urgency, 'high');
    assert.equal(rec.topic, sanitizeTopic('order 42'));
    assert.ok(rec.ttl !== undefined && rec.ttl > 0 && rec.ttl <= 600);
    assert.equal(rec.jwt?.aud, mock.origin);
    assert.equal(rec.jwt?.sub, 'mailto:ops@example.com');
    assert.equal(rec.vapidKey, cred.vapidPublicKey);
  });

  it('410 from the service → invalid; 404 → invalid', async () => {
    const gone = mock.subscribe();
    mock.unsubscribe(gone);
    const unknown = JSON.parse(mock.subscribe().json);
    unknown.endpoint = `${mock.origin}/push/does-not-exist`;
    const out = await provider.send(content(), [
      { deliveryId: 'd1', token: gone.json },
      { deliveryId: 'd2', token: JSON.stringify(unknown) },
    ]);
    assert.deepEqual(out.map((o) => o.kind), ['invalid', 'invalid']);
    assert.equal(out[0]?.kind === 'invalid' && out[0].reason.code, 'Gone');
  });

  it('429 / 503 → retry with Retry-After, then success on the next attempt', async () => {
    const sub = mock.subscribe();
    mock.script(sub, { status: 429, retryAfter: '7' }, { status: 503 });
    const [a] = await provider.send(content(), [{ deliveryId: 'd', token: sub.json }]);
    assert.deepEqual(a?.kind === 'retry' && [a.reason.code, a.afterMs], ['TooManyRequests', 7000]);
    const [b] = await provider.send(content(), [{ deliveryId: 'd', token: sub.json }]);
    assert.equal(b?.kind, 'retry');
    const [c] = await provider.send(content(), [{ deliveryId: 'd', token: sub.json }]);
    assert.equal(c?.kind, 'sent');
  });

  it('413 → failed PayloadTooLarge; 403 for a foreign VAPID key → failed', async () => {
    const sub = mock.subscribe();
    mock.script(sub, { status: 413 });
    const [a] = await provider.send(content(), [{ deliveryId: 'd', token: sub.json }]);
    assert.equal(a?.kind === 'failed' && a.reason.code, 'PayloadTooLarge');
    const pinned = mock.subscribe({ applicationServerKey: webpushModule.complete!({ subject: 'mailto:x@y.z' }).vapidPublicKey });
    const [b] = await provider.send(content(), [{ deliveryId: 'd', token: pinned.json }]);
    assert.equal(b?.kind === 'failed' && b.reason.code, 'Forbidden');
  });

  it('a mixed batch keeps target order; a malformed subscription never reaches the network', async () => {
    const ok = mock.subscribe();
    const gone = mock.subscribe();
    mock.unsubscribe(gone);
    const slow = mock.subscribe();
    mock.setBehavior(slow, { status: 500 });
    const before = mock.requests.length;
    const out = await provider.send(content({ messageId: 'msg-mixed' }), [
      { deliveryId: 'a', token: ok.json },
      { deliveryId: 'b', token: 'garbage' },
      { deliveryId: 'c', token: gone.json },
      { deliveryId: 'd', token: slow.json },
    ]);
    assert.deepEqual(out.map((o) => o.kind), ['sent', 'invalid', 'invalid', 'retry']);
    assert.equal(mock.requests.length - before, 3);
    mock.setBehavior(slow, undefined);
  });

  it('many targets at once all arrive (bounded concurrency)', async () => {
    const subs = Array.from({ length: 150 }, () => mock.subscribe());
    const out = await provider.send(content({ messageId: 'msg-many' }), subs.map((s, i) => ({ deliveryId: `d${i}`, token: s.json })));
    assert.equal(out.filter((o) => o.kind === 'sent').length, 150);
    const ids = new Set(mock.requests.filter((r) => r.plaintext?.includes('msg-many')).map((r) => r.subscriptionId));
    assert.equal(ids.size, 150);
  });

  it('the canonical token the API stores is sent and decrypts like the browser JSON', async () => {
    const sub = mock.subscribe();
    const parsed = checkSubscription(JSON.parse(sub.json));
    assert.ok(!('message' in parsed));
    const [o] = await provider.send(content({ messageId: 'msg-canonical' }), [{ deliveryId: 'd', token: subscriptionToken(parsed) }]);
    assert.equal(o?.kind, 'sent');
    assert.match(String(mock.requests.find((r) => r.subscriptionId === sub.id)?.plaintext), /msg-canonical/);
  });

  it('a redirect is not followed: failed Redirect with status and Location, the token stays valid', async () => {
    for (const status of [301, 302, 307, 308]) {
      const sub = mock.subscribe();
      // Followed, the POST would reach a subscription that is gone (or, as a GET, no endpoint at all).
      const moved = mock.subscribe();
      mock.unsubscribe(moved);
      mock.script(sub, { status, location: moved.endpoint });
      const [o] = await provider.send(content(), [{ deliveryId: 'd', token: sub.json }]);
      assert.equal(o?.kind, 'failed', String(status));
      assert.equal(o?.kind === 'failed' && o.reason.code, 'Redirect');
      assert.deepEqual(o?.kind === 'failed' && o.reason.evidence, { status, location: moved.endpoint });
      assert.equal(mock.requests.filter((r) => r.subscriptionId === moved.id).length, 0, `${status}: the Location was not requested`);
    }
  });

  it('a closed port → retry (network error)', async () => {
    const sub = JSON.parse(mock.subscribe().json);
    sub.endpoint = 'https://127.0.0.1:1/push/x';
    const [o] = await provider.send(content(), [{ deliveryId: 'd', token: JSON.stringify(sub) }]);
    assert.equal(o?.kind, 'retry');
  });
});
