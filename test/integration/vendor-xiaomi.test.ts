import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Outcome, Provider, ProviderContext, PushContent, SendTarget } from '../../providers/types.js';
import xiaomi from '../../providers/xiaomi.js';
import { startXiaomiMock, type XiaomiMock } from '../mocks/vendors/xiaomi.js';
import { providerContext } from '../helpers/provider-context.js';

/**
 * Each provider's `create()` against its mock on an ephemeral HTTPS port (run with
 * NODE_EXTRA_CA_CERTS = the test CA, as `npm test` does). Assertions are on outcomes and on what
 * the mock received, never on timings.
 */

function ctx(over: Partial<ProviderContext['endpoints']>): ProviderContext {
  return providerContext({ endpoints: over, tuning: { apnsMaxStreams: 100, apnsConnections: 1, fcmConcurrency: 8 } });
}

let seq = 0;
function content(over: Partial<PushContent> = {}): PushContent {
  return {
    messageId: `msg-${++seq}`,
    notification: { title: 'Hello', body: 'World', clickAction: 'app://inbox/1' },
    data: { k: 'v' },
    options: { ttl: 3600, priority: 'high', category: 'im' },
    expiresAt: Date.now() + 3_600_000,
    ...over,
  };
}
const targets = (...tokens: string[]): SendTarget[] => tokens.map((token, i) => ({ deliveryId: `d-${i}`, token }));
const kinds = (o: Outcome[]) => o.map((x) => x.kind);
const codeOf = (o: Outcome | undefined) => (o && 'reason' in o ? o.reason.code : undefined);

/** A port with nothing listening (for transport-failure tests). */
async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

// ---------------------------------------------------------------------------------------------

describe('xiaomi provider against the mock', () => {
  let mock: XiaomiMock;
  let provider: Provider;
  const callbackUrl = 'https://relay.example/v1/receipts/xiaomi/app-1?secret=s3';

  before(async () => {
    mock = await startXiaomiMock();
    provider = xiaomi.create(
      { appSecret: mock.appSecret, packageName: mock.packageName, categoryMap: { im: { channelId: '108423' } }, callbackUrl },
      ctx({ xiaomi: mock.url }),
    );
  });
  beforeEach(() => {
    mock.resetBehavior();
    mock.requests.length = 0;
  });
  after(async () => {
    await provider.close();
    await mock.close();
  });

  it('sends a form with key= auth; the Xiaomi message id is the providerId', async () => {
    const c = content();
    const out = await provider.send(c, targets('r1', 'r2'));
    assert.deepEqual(kinds(out), ['sent', 'sent']);
    const rec = mock.sends.at(-1)!;
    assert.deepEqual(out[0], { kind: 'sent', providerId: rec.msgId });
    const req = mock.requests[0]!;
    assert.equal(req.path, '/v3/message/regid');
    assert.equal(req.headers.authorization, `key=${mock.appSecret}`);
    assert.equal(rec.fields.registration_id, 'r1,r2');
    assert.equal(rec.fields['extra.channel_id'], '108423');
    assert.equal(rec.fields['extra.relay_id'], c.messageId);
    assert.equal(rec.fields['extra.callback'], callbackUrl);
    assert.equal(JSON.parse(rec.fields.payload ?? '').relay_id, c.messageId);
  });

  it('bad_regids → invalid; both spellings', async () => {
    const out = await provider.send(content(), targets('ok', 'invalid-1'));
    assert.deepEqual(kinds(out), ['sent', 'invalid']);
    const m2 = await startXiaomiMock({ badRegIdsField: 'bad_regIds' });
    const p2 = xiaomi.create({ appSecret: m2.appSecret, packageName: m2.packageName }, ctx({ xiaomi: m2.url }));
    try {
      assert.deepEqual(kinds(await p2.send(content(), targets('invalid-1', 'ok'))), ['invalid', 'sent']);
    } finally {
      await p2.close();
      await m2.close();
    }
  });

  it('rate limit 10027 with Retry-After, server error, fail-first-then-succeed', async () => {
    mock.setBehavior({ retryAfterSec: 2 });
    const rl = await provider.send(content(), targets('ratelimit-1'));
    assert.equal(rl[0]?.kind, 'retry');
    assert.equal(codeOf(rl[0]), '10027');
    assert.equal((rl[0] as { afterMs?: number }).afterMs, 2000);
    assert.equal((await provider.send(content(), targets('server-1')))[0]?.kind, 'retry');
    mock.setBehavior({ failFirst: { count: 2, fate: 'rateLimit' } });
    assert.equal((await provider.send(content(), targets('a')))[0]?.kind, 'retry');
    assert.equal((await provider.send(content(), targets('a')))[0]?.kind, 'retry');
    assert.equal((await provider.send(content(), targets('a')))[0]?.kind, 'sent');
  });

  it('daily quota → failed "quota"; payload too large → failed 10018; bad secret → failed 22008', async () => {
    const q = await provider.send(content(), targets('quota-1'));
    assert.equal(q[0]?.kind, 'failed');
    assert.equal(codeOf(q[0]), 'quota');
    const big = await provider.send(content({ data: { blob: 'x'.repeat(5000) } }), targets('a'));
    assert.equal(codeOf(big[0]), '10018');
    const wrong = xiaomi.create({ appSecret: 'nope', packageName: mock.packageName }, ctx({ xiaomi: mock.url }));
    const bad = await wrong.send(content(), targets('a'));
    assert.equal(bad[0]?.kind, 'failed');
    assert.equal(codeOf(bad[0]), '22008');
    await wrong.close();
  });

  it('batches of 250 regIds go out as 100 + 100 + 50, outcomes in order', async () => {
    const toks = Array.from({ length: 250 }, (_, i) => (i % 100 === 99 ? `invalid-${i}` : `r${i}`));
    const out = await provider.send(content(), targets(...toks));
    const sizes = mock.requests.map((r) => (new URLSearchParams(r.rawBody).get('registration_id') ?? '').split(',').length);
    assert.deepEqual(sizes.sort((a, b) => a - b), [50, 100, 100]);
    out.forEach((o, i) => assert.equal(o.kind, i % 100 === 99 ? 'invalid' : 'sent'));
  });

  it('network failure → retry', async () => {
    const port = await deadPort();
    const p = xiaomi.create({ appSecret: 'a', packageName: 'com.a.b' }, ctx({ xiaomi: `https://127.0.0.1:${port}` }));
    const out = await p.send(content(), targets('a'));
    assert.equal(out[0]?.kind, 'retry');
    await p.close();
  });

  it('receipts: delivered, clicked and invalid map back to msg id, token and relay id', async () => {
    const c = content();
    const out = await provider.send(c, targets('r-9'));
    const id = (out[0] as { providerId: string }).providerId;
    for (const [type, event] of [[1, 'delivered'], [2, 'opened'], [16, 'invalid']] as const) {
      const ev = xiaomi.receipts!.parse(mock.receiptFor('r-9', { type }));
      assert.deepEqual(ev.map((e) => [e.event, e.providerId, e.token, e.messageId]), [[event, id, 'r-9', c.messageId]]);
    }
  });
});
